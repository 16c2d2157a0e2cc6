//! Finding the line of a key path in the YAML text.
//!
//! serde_norway keeps positions only in its errors, so we ask the real parser: a seed walks the
//! document down the key path and fails on purpose at the target (the key scalar for a mapping
//! key, the value for a list item). The parser stamps that failure with the position of the
//! event being read, which is the line we want. This follows anchors and aliases, flow and block
//! style, quoting and comments exactly as the loader does, with no second YAML grammar to keep in
//! sync. A path that is not in the text (a missing key, a key brought in by a `<<` merge) falls
//! back to its nearest ancestor that is.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::Seg;

/// The marker in the deliberate error; never produced by the parser itself.
const MARKER: &str = "\u{1}waldur-agent: located\u{1}";

/// The 1-based line of `path` in `text`, or of its nearest ancestor found there. `None` for the
/// document itself or when not even the first key is found.
pub(crate) fn line_of(text: &str, path: &[Seg]) -> Option<usize> {
    let mut len = path.len();
    while len > 0 {
        if let Some(line) = exact(text, &path[..len]) {
            return Some(line);
        }
        len -= 1;
    }
    None
}

/// The 1-based line of the key at `path` after skipping `skip` earlier keys with the same name in
/// the same mapping (for duplicate keys). Unlike [`line_of`], no fallback to an ancestor.
pub(crate) fn line_of_repeated(text: &str, path: &[Seg], skip: usize) -> Option<usize> {
    find(text, path, skip)
}

fn exact(text: &str, path: &[Seg]) -> Option<usize> {
    find(text, path, 0)
}

fn find(text: &str, path: &[Seg], skip: usize) -> Option<usize> {
    let de = serde_norway::Deserializer::from_str(text);
    match (Walk { path, skip }).deserialize(de) {
        Err(err) if err.to_string().contains(MARKER) => err.location().map(|loc| loc.line()),
        _ => None,
    }
}

/// Walks to `path`; `Ok(())` means "not there".
struct Walk<'p> {
    path: &'p [Seg],
    /// Matches of the final key to pass over before the target.
    skip: usize,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            // The target is this value: any visit fails with the marker (via `expecting`).
            None => de.deserialize_any(Hit),
            Some((Seg::Key(key), rest)) => de.deserialize_map(InMap {
                key,
                rest,
                skip: self.skip,
            }),
            Some((Seg::Index(index), rest)) => de.deserialize_seq(InSeq {
                index: *index,
                rest,
                skip: self.skip,
            }),
        }
    }
}

/// A visitor whose every visit is an error that mentions the marker.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MARKER)
    }
}

struct InMap<'p> {
    key: &'p str,
    rest: &'p [Seg],
    skip: usize,
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut skip = self.skip;
        loop {
            let seed = KeySeed {
                key: self.key,
                is_target: self.rest.is_empty() && skip == 0,
            };
            match map.next_key_seed(seed)? {
                None => return Ok(()),
                Some(true) if self.rest.is_empty() => {
                    // Only reached while passing over earlier duplicates.
                    skip -= 1;
                    map.next_value::<IgnoredAny>()?;
                }
                Some(true) => {
                    return map.next_value_seed(Walk {
                        path: self.rest,
                        skip: self.skip,
                    })
                }
                Some(false) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
    }
}

/// Reads a key; `true` if it is the one wanted, an error carrying the marker if it is the target.
struct KeySeed<'p> {
    key: &'p str,
    is_target: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
        match (value == self.key, self.is_target) {
            (true, true) => Err(E::custom(MARKER)),
            (found, _) => Ok(found),
        }
    }
}

struct InSeq<'p> {
    index: usize,
    rest: &'p [Seg],
    skip: usize,
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk {
            path: self.rest,
            skip: self.skip,
        })?;
        Ok(())
    }
}
