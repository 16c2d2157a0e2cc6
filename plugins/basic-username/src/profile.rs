//! What a template can say about a user: the placeholder values, taken from the offering
//! user's Waldur profile.
//!
//! Waldur often has a full name but empty first/last name fields (or the reverse), so each
//! name part falls back to the other form: first name = first word of the full name, last
//! name = last word of a full name of two words or more, full name = first + last. Nothing
//! else is guessed: a value Waldur does not have stays empty, and the generator asks for
//! additional validation instead of inventing it.

use waldur_plugin_abi::wire::OfferingUser;

use crate::normalize::normalize;

/// The placeholders a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placeholder {
    FirstName,
    LastName,
    FirstInitial,
    LastInitial,
    FullName,
    /// The Waldur username (often a CUID such as `jsmith@myaccessid.org`).
    UserUsername,
    /// The Waldur username up to its first `@`.
    UserUsernameLocal,
    /// The e-mail address up to its first `@`.
    EmailLocal,
    /// The first 8 hex digits of the Waldur user's uuid: unique enough, never a name.
    UuidShort,
}

impl Placeholder {
    pub const ALL: &'static [Placeholder] = &[
        Self::FirstName,
        Self::LastName,
        Self::FirstInitial,
        Self::LastInitial,
        Self::FullName,
        Self::UserUsername,
        Self::UserUsernameLocal,
        Self::EmailLocal,
        Self::UuidShort,
    ];

    /// The name written between braces in a template.
    pub fn name(self) -> &'static str {
        match self {
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::FirstInitial => "first_initial",
            Self::LastInitial => "last_initial",
            Self::FullName => "full_name",
            Self::UserUsername => "user_username",
            Self::UserUsernameLocal => "user_username_local",
            Self::EmailLocal => "email_local",
            Self::UuidShort => "uuid_short",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }

    /// The profile field a user (or support) must fill in when this placeholder is empty;
    /// goes into the "additional validation" comment shown in Waldur.
    pub fn profile_field(self) -> &'static str {
        match self {
            Self::FirstName | Self::FirstInitial => "first name",
            Self::LastName | Self::LastInitial => "last name",
            Self::FullName => "full name",
            Self::UserUsername | Self::UserUsernameLocal => "username",
            Self::EmailLocal => "e-mail address",
            Self::UuidShort => "user uuid",
        }
    }
}

/// The raw (not yet normalised) placeholder values of one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    first_name: String,
    last_name: String,
    full_name: String,
    user_username: String,
    email: String,
    user_uuid: String,
}

impl Profile {
    pub fn from_offering_user(user: &OfferingUser) -> Self {
        let full = user.user_full_name.trim();
        let words: Vec<&str> = full.split_whitespace().collect();
        let first_name = non_empty(&user.user_first_name)
            .or_else(|| words.first().copied())
            .unwrap_or_default();
        let last_name = non_empty(&user.user_last_name)
            .or_else(|| (words.len() >= 2).then(|| words[words.len() - 1]))
            .unwrap_or_default();
        let full_name = match full {
            "" => format!("{first_name} {last_name}").trim().to_string(),
            full => full.to_string(),
        };
        Self {
            first_name: first_name.to_string(),
            last_name: last_name.to_string(),
            full_name,
            user_username: user.user_username.trim().to_string(),
            email: user.user_email.trim().to_string(),
            user_uuid: user.user_uuid.trim().to_string(),
        }
    }

    /// The value of `placeholder`, before normalisation (initials are taken after it, so
    /// `Élodie` gives `e` and `'Amr` gives `a`).
    pub fn value(&self, placeholder: Placeholder) -> String {
        match placeholder {
            Placeholder::FirstName => self.first_name.clone(),
            Placeholder::LastName => self.last_name.clone(),
            Placeholder::FirstInitial => initial(&self.first_name),
            Placeholder::LastInitial => initial(&self.last_name),
            Placeholder::FullName => self.full_name.clone(),
            Placeholder::UserUsername => self.user_username.clone(),
            Placeholder::UserUsernameLocal => local_part(&self.user_username).to_string(),
            Placeholder::EmailLocal => local_part(&self.email).to_string(),
            Placeholder::UuidShort => self
                .user_uuid
                .chars()
                .filter(|c| c.is_ascii_hexdigit())
                .take(8)
                .collect(),
        }
    }
}

fn non_empty(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

fn initial(name: &str) -> String {
    normalize(name)
        .chars()
        .find(char::is_ascii_alphanumeric)
        .map(String::from)
        .unwrap_or_default()
}

/// Everything before the first `@` (all of it when there is none).
fn local_part(address: &str) -> &str {
    address.split('@').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(first: &str, last: &str, full: &str) -> OfferingUser {
        OfferingUser {
            user_first_name: first.into(),
            user_last_name: last.into(),
            user_full_name: full.into(),
            user_username: "jsmith@myaccessid.org".into(),
            user_email: "John.Smith@example.org".into(),
            user_uuid: "3F2504E0-4F89-11D3-9A0C-0305E82C3301".into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_placeholder_has_a_unique_name() {
        for p in Placeholder::ALL {
            assert_eq!(Placeholder::from_name(p.name()), Some(*p));
        }
        assert_eq!(Placeholder::from_name("nope"), None);
    }

    #[test]
    fn values_from_a_complete_profile() {
        let p = Profile::from_offering_user(&user("Élodie", "Dupont", "Élodie Dupont"));
        assert_eq!(p.value(Placeholder::FirstName), "Élodie");
        assert_eq!(p.value(Placeholder::FirstInitial), "e");
        assert_eq!(p.value(Placeholder::LastInitial), "d");
        assert_eq!(p.value(Placeholder::FullName), "Élodie Dupont");
        assert_eq!(p.value(Placeholder::UserUsername), "jsmith@myaccessid.org");
        assert_eq!(p.value(Placeholder::UserUsernameLocal), "jsmith");
        assert_eq!(p.value(Placeholder::EmailLocal), "John.Smith");
        assert_eq!(p.value(Placeholder::UuidShort), "3F2504E0");
    }

    #[test]
    fn name_parts_fall_back_to_the_full_name_and_back() {
        let p = Profile::from_offering_user(&user("", "", "Anna Maria Rossi"));
        assert_eq!(p.value(Placeholder::FirstName), "Anna");
        assert_eq!(p.value(Placeholder::LastName), "Rossi");
        let p = Profile::from_offering_user(&user("Anna", "Rossi", ""));
        assert_eq!(p.value(Placeholder::FullName), "Anna Rossi");
    }

    #[test]
    fn a_single_word_is_a_first_name_only() {
        let p = Profile::from_offering_user(&user("", "", "Madonna"));
        assert_eq!(p.value(Placeholder::FirstName), "Madonna");
        assert_eq!(p.value(Placeholder::LastName), "");
        assert_eq!(p.value(Placeholder::LastInitial), "");
    }

    #[test]
    fn missing_values_stay_empty() {
        let p = Profile::from_offering_user(&OfferingUser::default());
        for placeholder in Placeholder::ALL {
            assert_eq!(p.value(*placeholder), "", "{}", placeholder.name());
        }
    }
}
