//! Turns arbitrary text (names, e-mail local parts, rendered templates) into POSIX-friendly
//! username material: `[a-z0-9_-]`, no leading, trailing or repeated separators.
//!
//! The rules, in order:
//! 1. lower-case (Unicode-aware, so `É` becomes `é` before step 2);
//! 2. transliterate common Latin letters with diacritics to ASCII with a small table
//!    (`é` -> `e`, `ä` -> `a`, `ß` -> `ss`, `æ` -> `ae`, `ł` -> `l`); accents are stripped,
//!    not spelled out (`ä` is `a`, not `ae`), which is what most sites expect of `jmuller`;
//! 3. drop apostrophes and combining marks, so `O'Brien` is `obrien` and a decomposed
//!    `e` + U+0301 is `e`, rather than splitting the name;
//! 4. every other character outside `[a-z0-9_-]` (spaces, dots, `@`, scripts the table does
//!    not cover) becomes a `-` separator;
//! 5. a run of separators (`-` and `_`) collapses to its first character, and separators are
//!    trimmed from both ends.
//!
//! The result may be empty (e.g. a name written only in Cyrillic): callers treat that as
//! "nothing usable" instead of guessing.

/// `-` and `_`: kept inside a username, never at its ends, never repeated.
pub fn is_separator(c: char) -> bool {
    c == '-' || c == '_'
}

/// Normalises `text` by the rules in the module documentation.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_dropped(c) {
            continue;
        }
        match ascii_for(c) {
            Some(ascii) => ascii.chars().for_each(|a| push(&mut out, a)),
            None => push(&mut out, c),
        }
    }
    trim_separators(&out).to_string()
}

/// Removes separators from both ends.
pub fn trim_separators(text: &str) -> &str {
    text.trim_matches(is_separator)
}

/// The first `max` characters of `text`.
pub fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Appends one character, mapping it into the allowed set and collapsing separator runs.
fn push(out: &mut String, c: char) {
    let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || is_separator(c) {
        c
    } else {
        '-'
    };
    if is_separator(c) && out.ends_with(is_separator) {
        return;
    }
    out.push(c);
}

/// Characters that vanish instead of separating: apostrophes and quotes inside names, and
/// combining diacritical marks (U+0300..U+036F) of decomposed text.
fn is_dropped(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02bc}' | '`' | '"')
        || ('\u{0300}'..='\u{036f}').contains(&c)
}

/// The ASCII spelling of a lower-case Latin letter with a diacritic, or of a Latin ligature.
/// Only lower-case forms are listed: [`normalize`] lower-cases first.
fn ascii_for(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_keeps_the_allowed_set() {
        assert_eq!(normalize("JSmith_2-x"), "jsmith_2-x");
    }

    #[test]
    fn transliterates_common_latin_accents() {
        assert_eq!(normalize("Élodie"), "elodie");
        assert_eq!(normalize("Müller"), "muller");
        assert_eq!(normalize("Łukasz Świątek"), "lukasz-swiatek");
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("Ærøskøbing"), "aeroskobing");
        assert_eq!(normalize("Dvořák"), "dvorak");
        assert_eq!(normalize("Şahin Ağaoğlu"), "sahin-agaoglu");
        assert_eq!(normalize("Þórður"), "thordur");
    }

    #[test]
    fn apostrophes_and_combining_marks_vanish() {
        assert_eq!(normalize("O'Brien"), "obrien");
        assert_eq!(normalize("D\u{2019}Angelo"), "dangelo");
        assert_eq!(normalize("Rene\u{0301}e"), "renee");
    }

    #[test]
    fn other_characters_become_one_separator() {
        assert_eq!(normalize("van der  Berg"), "van-der-berg");
        assert_eq!(
            normalize("john.smith@example.org"),
            "john-smith-example-org"
        );
        assert_eq!(normalize("a_-_b"), "a_b");
        assert_eq!(normalize("--a--"), "a");
        assert_eq!(normalize(" _x_ "), "x");
    }

    #[test]
    fn cut_counts_characters() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("ab", 3), "ab");
        assert_eq!(cut("éé", 1), "é");
    }

    #[test]
    fn scripts_without_a_table_entry_leave_nothing() {
        assert_eq!(normalize("Иван"), "");
        assert_eq!(normalize("李"), "");
        assert_eq!(normalize("  "), "");
    }
}
