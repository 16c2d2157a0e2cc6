//! The one UUID form the agent sends.
//!
//! The reference sends some UUIDs dashed, some as hex and the offering UUID as configured
//! (reference §1.6); Waldur accepts every form. We send every UUID in a path or a query in one
//! canonical form: dashes removed, lower-case (`uuid.hex`). Normalising the configured offering
//! UUID too is a deliberate, harmless deviation (reference §1.6 allows it).

/// `"6F1A-...-9C"` -> `"6f1a...9c"`: dashes and surrounding blanks removed, lower-cased.
pub fn normalize_uuid(uuid: &str) -> String {
    uuid.trim()
        .chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_and_upper_case_become_hex() {
        assert_eq!(
            normalize_uuid(" 6F1A2B3C-4D5E-6F70-8192-A3B4C5D6E7F8 "),
            "6f1a2b3c4d5e6f708192a3b4c5d6e7f8"
        );
        assert_eq!(
            normalize_uuid("6f1a2b3c4d5e6f708192a3b4c5d6e7f8"),
            "6f1a2b3c4d5e6f708192a3b4c5d6e7f8"
        );
    }
}
