//! The `template` entry's logic, free of the ABI: profile -> template -> normalised base name
//! -> first free name. The existing usernames are a parameter ([`ExistingUsernames`]) so the
//! whole path runs in unit tests without an agent.
//!
//! A user whose profile cannot fill the template (no last name, a name only in a script the
//! transliteration table does not cover, a result shorter than `min_length`) gets the
//! ADDITIONAL_VALIDATION_REQUIRED error, which the agent turns into Waldur's "pending
//! additional validation" state with our message as the comment. Inventing a name instead
//! (`u3f2504e0`, `user17`) would give the person a permanent POSIX username nobody chose;
//! asking keeps a human in the loop, and the agent retries once the profile is fixed.

use waldur_plugin_abi::wire::OfferingUser;
use waldur_plugin_abi::{Error, Result};

use crate::existing::ExistingUsernames;
use crate::normalize::{cut, normalize, trim_separators};
use crate::profile::Profile;
use crate::settings::TemplateSettings;
use crate::unique::{first_free, Taken};

/// Generates usernames for one offering.
#[derive(Debug, Clone)]
pub struct Generator {
    settings: TemplateSettings,
}

impl Generator {
    pub fn new(settings: TemplateSettings) -> Self {
        Self { settings }
    }

    pub fn settings(&self) -> &TemplateSettings {
        &self.settings
    }

    /// The username the offering user already has, if any (blank counts as none).
    pub fn existing_username(user: &OfferingUser) -> Option<String> {
        user.username
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    }

    /// The existing username, or else a new one.
    pub fn get_or_create(
        &self,
        user: &OfferingUser,
        existing: &dyn ExistingUsernames,
    ) -> Result<String> {
        match Self::existing_username(user) {
            Some(name) => Ok(name),
            None => self.generate(user, existing),
        }
    }

    /// A new username, unique among `existing` and the reserved names.
    pub fn generate(
        &self,
        user: &OfferingUser,
        existing: &dyn ExistingUsernames,
    ) -> Result<String> {
        // The profile is checked before Waldur is asked anything: an unusable profile needs
        // no network round trip.
        let base = self.base_name(user)?;
        let mut taken = Taken::new(&self.settings.reserved);
        taken.extend(existing.existing_usernames()?);
        let s = &self.settings;
        first_free(&base, &taken, s.min_length, s.max_length).ok_or_else(|| {
            Error::backend(format!(
                "template usernames: every name derived from {base:?} within {} characters is \
                 taken",
                s.max_length
            ))
        })
    }

    /// The rendered, normalised, prefixed and cut name before collision handling.
    pub fn base_name(&self, user: &OfferingUser) -> Result<String> {
        let s = &self.settings;
        let rendered = s.template.render(&Profile::from_offering_user(user));
        if !rendered.missing.is_empty() {
            let mut fields: Vec<&str> = Vec::new();
            for field in rendered.missing.iter().map(|p| p.profile_field()) {
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
            let verbs = match fields.len() {
                1 => "is missing or has",
                _ => "are missing or have",
            };
            return Err(self.needs_validation(
                user,
                &format!(
                    "the {} {verbs} no Latin letters or digits",
                    fields.join(" and the ")
                ),
            ));
        }
        let mut name = normalize(&rendered.text);
        if name.is_empty() {
            return Err(
                self.needs_validation(user, "the profile yields no Latin letters or digits")
            );
        }
        // POSIX tools reject names starting with a digit or '-'; a prefix keeps the name.
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            name = format!("{}{name}", s.prefix);
        }
        let name = trim_separators(cut(&name, s.max_length)).to_string();
        if name.len() < s.min_length {
            return Err(self.needs_validation(
                user,
                &format!(
                    "the profile yields only {name:?}, shorter than {} characters",
                    s.min_length
                ),
            ));
        }
        Ok(name)
    }

    fn needs_validation(&self, user: &OfferingUser, reason: &str) -> Error {
        log::info!(
            "template usernames: no username for offering user {} (user {}) from template {:?}: \
             {reason}",
            user.uuid,
            user.user_uuid,
            self.settings.template.source()
        );
        Error::additional_validation_required(
            format!(
                "A username cannot be generated automatically: {reason}. Please complete the \
                 profile or contact support."
            ),
            self.settings.validation_comment_url.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use waldur_plugin_abi::wire::JsonMap;
    use waldur_plugin_abi::ErrorKind;

    fn generator(settings: Value) -> Generator {
        Generator::new(TemplateSettings::parse(settings.as_object().unwrap()).unwrap())
    }

    fn user(first: &str, last: &str) -> OfferingUser {
        OfferingUser {
            uuid: "ou-1".into(),
            user_uuid: "9b2c7e4a-0000-4000-8000-000000000001".into(),
            user_first_name: first.into(),
            user_last_name: last.into(),
            user_full_name: format!("{first} {last}").trim().into(),
            user_username: "jane.doe@idp.example".into(),
            user_email: "Jane.Doe@example.org".into(),
            ..Default::default()
        }
    }

    fn none() -> Vec<String> {
        Vec::new()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_template_is_first_initial_and_last_name() {
        let g = Generator::new(TemplateSettings::default());
        assert_eq!(g.generate(&user("Jane", "Doe"), &none()).unwrap(), "jdoe");
        assert_eq!(
            g.generate(&user("Élodie", "Müller-Lüdenscheidt"), &none())
                .unwrap(),
            "emuller-ludenscheidt"
        );
    }

    #[test]
    fn every_placeholder_renders() {
        let cases = [
            ("{first_name}_{last_name}", "jane_doe"),
            ("{first_initial}{last_initial}", "jd"),
            ("{full_name}", "jane-doe"),
            ("{user_username}", "jane-doe-idp-example"),
            ("{user_username_local}", "jane-doe"),
            ("{email_local}", "jane-doe"),
            ("{last_name}{uuid_short}", "doe9b2c7e4a"),
        ];
        for (template, expected) in cases {
            let g = generator(json!({"username_template": template}));
            assert_eq!(
                g.generate(&user("Jane", "Doe"), &none()).unwrap(),
                expected,
                "{template}"
            );
        }
    }

    #[test]
    fn names_not_starting_with_a_letter_get_the_prefix() {
        let g = generator(json!({"username_template": "{uuid_short}"}));
        assert_eq!(
            g.generate(&user("Jane", "Doe"), &none()).unwrap(),
            "u9b2c7e4a"
        );
        let mut digits = user("Jane", "Doe");
        digits.user_uuid = "12345678-aaaa".into();
        assert_eq!(g.generate(&digits, &none()).unwrap(), "u12345678");
        let g = generator(json!({"username_template": "{uuid_short}", "prefix": "x_"}));
        assert_eq!(g.generate(&digits, &none()).unwrap(), "x_12345678");
    }

    #[test]
    fn long_names_are_cut_to_max_length() {
        let g = generator(json!({"username_template": "{full_name}", "max_length": 10}));
        let long = user("Maximilian", "Vanderbilt-Smithson");
        assert_eq!(g.generate(&long, &none()).unwrap(), "maximilian");
        // A cut right after a separator does not leave it dangling.
        let g = generator(json!({"username_template": "{full_name}", "max_length": 11}));
        assert_eq!(g.generate(&long, &none()).unwrap(), "maximilian");
        let default = Generator::new(TemplateSettings::default());
        let very_long = user("A", &"b".repeat(60));
        assert_eq!(default.generate(&very_long, &none()).unwrap().len(), 32);
    }

    #[test]
    fn collisions_get_numeric_suffixes() {
        let g = Generator::new(TemplateSettings::default());
        let existing = names(&["jdoe", "JDOE1", "other"]);
        assert_eq!(
            g.generate(&user("Jane", "Doe"), &existing).unwrap(),
            "jdoe2"
        );
    }

    #[test]
    fn suffixed_names_still_fit_max_length() {
        let g = generator(json!({"max_length": 6}));
        let existing = names(&["jdoeso", "jdoes1"]);
        assert_eq!(
            g.generate(&user("Jane", "Doesonberg"), &existing).unwrap(),
            "jdoes2"
        );
    }

    #[test]
    fn reserved_names_are_never_generated() {
        let g = Generator::new(TemplateSettings::default());
        assert_eq!(g.generate(&user("R", "Oot"), &none()).unwrap(), "root1");
        let g = generator(json!({"reserved_usernames": ["JDoe", "jdoe1"]}));
        assert_eq!(g.generate(&user("Jane", "Doe"), &none()).unwrap(), "jdoe2");
        // An explicit list replaces the default one.
        assert_eq!(g.generate(&user("R", "Oot"), &none()).unwrap(), "root");
    }

    #[test]
    fn an_existing_username_is_reused() {
        let g = Generator::new(TemplateSettings::default());
        let mut u = user("Jane", "Doe");
        u.username = Some("legacy_jd".into());
        // The lookup is not even consulted: it would fail.
        struct Unreachable;
        impl ExistingUsernames for Unreachable {
            fn existing_usernames(&self) -> Result<Vec<String>> {
                Err(Error::internal("must not be called"))
            }
        }
        assert_eq!(g.get_or_create(&u, &Unreachable).unwrap(), "legacy_jd");
        u.username = Some("  ".into());
        assert_eq!(g.get_or_create(&u, &none()).unwrap(), "jdoe");
        assert_eq!(Generator::existing_username(&user("Jane", "Doe")), None);
    }

    #[test]
    fn unusable_profiles_need_additional_validation() {
        let g = generator(json!({"validation_comment_url": "https://example.org/profile"}));
        for unusable in [user("", ""), user("Jane", ""), user("Иван", "Петров")] {
            let err = g.generate(&unusable, &none()).unwrap_err();
            assert_eq!(
                err.kind,
                ErrorKind::ADDITIONAL_VALIDATION_REQUIRED,
                "{unusable:?}"
            );
            assert_eq!(err.comment_url(), Some("https://example.org/profile"));
        }
        let err = g.generate(&user("Jane", ""), &none()).unwrap_err();
        assert!(
            err.message.contains("the last name is missing"),
            "{}",
            err.message
        );
        let err = g.generate(&user("", ""), &none()).unwrap_err();
        assert!(
            err.message
                .contains("the first name and the last name are missing"),
            "{}",
            err.message
        );
    }

    #[test]
    fn results_shorter_than_min_length_need_additional_validation() {
        let g =
            generator(json!({"username_template": "{first_initial}{last_name}", "min_length": 4}));
        let err = g.generate(&user("Li", "Wu"), &none()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ADDITIONAL_VALIDATION_REQUIRED);
        assert_eq!(err.comment_url(), None);
        assert!(err.message.contains("\"lwu\""), "{}", err.message);
    }

    #[test]
    fn unusable_profiles_do_not_reach_waldur() {
        let g = Generator::new(TemplateSettings::default());
        struct Fails;
        impl ExistingUsernames for Fails {
            fn existing_usernames(&self) -> Result<Vec<String>> {
                Err(Error::backend("Waldur is down"))
            }
        }
        let err = g.generate(&user("", ""), &Fails).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ADDITIONAL_VALIDATION_REQUIRED);
        let err = g.generate(&user("Jane", "Doe"), &Fails).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BACKEND);
    }

    #[test]
    fn readme_examples() {
        let g = Generator::new(TemplateSettings::default());
        assert_eq!(
            g.generate(&user("Seán", "O'Brien"), &none()).unwrap(),
            "sobrien"
        );
        let g = generator(json!({"username_template": "{first_name}", "max_length": 8}));
        let long = user("averyverylongname", "");
        assert_eq!(g.generate(&long, &none()).unwrap(), "averyver");
        let mut existing = names(&["averyver"]);
        existing.extend((1..=9).map(|n| format!("averyve{n}")));
        assert_eq!(g.generate(&long, &existing).unwrap(), "averyv10");
    }

    #[test]
    fn no_free_name_is_a_backend_error() {
        let g = generator(json!({"username_template": "ab", "max_length": 2, "min_length": 1}));
        let existing: Vec<String> = std::iter::once("ab".to_string())
            .chain((1..=9).map(|n| format!("a{n}")))
            .collect();
        let err = g.generate(&user("Jane", "Doe"), &existing).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BACKEND);
    }

    #[test]
    fn settings_round_trip_through_the_generator() {
        let g = Generator::new(TemplateSettings::parse(&JsonMap::new()).unwrap());
        assert_eq!(g.settings().max_length, 32);
    }
}
