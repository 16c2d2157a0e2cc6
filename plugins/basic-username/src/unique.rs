//! Collision handling: the first of `base`, `base1`, `base2`, ... that nobody has, each cut
//! so that it fits `max_length` (`averyveryverylongname` with `max_length` 8 gives
//! `averyver`, then `averyve1`, ..., `averyv10`).

use std::collections::BTreeSet;

use crate::normalize::{cut, trim_separators};

/// Names one offering may not hand out again: existing usernames and reserved names, all
/// lower-case (generated names are lower-case, and `JSmith` and `jsmith` are the same person
/// to most humans and some backends).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Taken(BTreeSet<String>);

impl Taken {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(
            names
                .into_iter()
                .map(|n| n.as_ref().trim().to_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }

    pub fn extend<I, S>(&mut self, names: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.0.extend(Self::new(names).0);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(&name.to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first free name derived from `base` (a normalised name that starts with a letter and
/// fits `max_length`), or `None` when every candidate is taken or too short. Candidates
/// shorter than `min_length` (possible only when cutting exposed a separator) are skipped.
pub fn first_free(
    base: &str,
    taken: &Taken,
    min_length: usize,
    max_length: usize,
) -> Option<String> {
    if !taken.contains(base) {
        return Some(base.to_string());
    }
    // At most `taken.len()` candidates can be taken, so one of the first `taken.len() + 1`
    // is free, unless cutting made two candidates equal (`a1` + `1` and `a` + `11`): such
    // corner cases end in `None` rather than in a longer search.
    for n in 1..=taken.len() + 1 {
        let suffix = n.to_string();
        let room = max_length.checked_sub(suffix.len()).filter(|r| *r > 0)?;
        let stem = trim_separators(cut(base, room));
        if stem.is_empty() {
            return None;
        }
        let candidate = format!("{stem}{suffix}");
        if candidate.len() >= min_length && !taken.contains(&candidate) {
            return Some(candidate);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_base_is_kept() {
        assert_eq!(
            first_free("jdoe", &Taken::default(), 2, 32).as_deref(),
            Some("jdoe")
        );
    }

    #[test]
    fn suffixes_count_up_from_one() {
        let taken = Taken::new(["jdoe", "JDoe1", "jdoe2"]);
        assert_eq!(first_free("jdoe", &taken, 2, 32).as_deref(), Some("jdoe3"));
    }

    #[test]
    fn suffixed_names_still_fit_max_length() {
        let taken = Taken::new(["abcdefgh"]);
        assert_eq!(
            first_free("abcdefgh", &taken, 2, 8).as_deref(),
            Some("abcdefg1")
        );
        let taken = Taken::new((0..10).map(|n| match n {
            0 => "abcdefgh".to_string(),
            n => format!("abcdefg{n}"),
        }));
        assert_eq!(
            first_free("abcdefgh", &taken, 2, 8).as_deref(),
            Some("abcdef10")
        );
    }

    #[test]
    fn cutting_does_not_leave_a_separator_before_the_suffix() {
        let taken = Taken::new(["ab-cd"]);
        assert_eq!(first_free("ab-cd", &taken, 1, 4).as_deref(), Some("ab1"));
    }

    #[test]
    fn too_short_candidates_are_skipped() {
        // "a-b" cut to 2 gives "a" (separator trimmed): "a1" is shorter than min_length 3.
        let taken = Taken::new(["a-b", "a-1"]);
        assert_eq!(first_free("a-b", &taken, 3, 3), None);
    }

    #[test]
    fn no_room_for_a_suffix_means_none() {
        let taken = Taken::new(["a"]);
        assert_eq!(first_free("a", &taken, 1, 1), None);
        let taken = Taken::new(["ab", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"]);
        assert_eq!(first_free("ab", &taken, 1, 2), None);
    }

    #[test]
    fn taken_ignores_case_blanks_and_empty_names() {
        let taken = Taken::new(["  Root ", ""]);
        assert!(taken.contains("root"));
        assert!(taken.contains("ROOT"));
        assert_eq!(taken.len(), 1);
    }
}
