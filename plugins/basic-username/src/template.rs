//! The `username_template` language: literal text and `{placeholder}`s, nothing more.
//!
//! Parsing happens once, when settings are read, so a typo in a placeholder is an
//! INVALID_SETTINGS error at configuration time rather than a failure per user. Rendering
//! normalises every placeholder value on its own, which is how an empty value is detected
//! (a template that needs a last name must not quietly produce `j` for a user without one).

use waldur_plugin_abi::{Error, Result};

use crate::normalize::normalize;
use crate::profile::{Placeholder, Profile};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// A parsed `username_template`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// The result of rendering a template for one user.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Literals and normalised values, not yet normalised as a whole.
    pub text: String,
    /// Placeholders whose value was empty after normalisation, in template order.
    pub missing: Vec<Placeholder>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self> {
        let mut segments = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(invalid(source, "a '}' without its '{'"));
            }
            push_literal(&mut segments, &rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| invalid(source, "a '{' without its '}'"))?;
            let name = after[..close].trim();
            let placeholder = Placeholder::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
                invalid(
                    source,
                    &format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        known.join(", ")
                    ),
                )
            })?;
            segments.push(Segment::Placeholder(placeholder));
            rest = &after[close + 1..];
        }
        push_literal(&mut segments, rest);
        Ok(Self {
            source: source.to_string(),
            segments,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Substitutes the user's values.
    pub fn render(&self, profile: &Profile) -> Rendered {
        let mut text = String::new();
        let mut missing = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => text.push_str(literal),
                Segment::Placeholder(placeholder) => {
                    let value = normalize(&profile.value(*placeholder));
                    if value.is_empty() && !missing.contains(placeholder) {
                        missing.push(*placeholder);
                    }
                    text.push_str(&value);
                }
            }
        }
        Rendered { text, missing }
    }
}

fn push_literal(segments: &mut Vec<Segment>, literal: &str) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal.to_string()));
    }
}

fn invalid(source: &str, problem: &str) -> Error {
    Error::invalid_settings(format!(
        "template usernames: backend_settings.username_template {source:?}: {problem}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::wire::OfferingUser;
    use waldur_plugin_abi::ErrorKind;

    fn profile(first: &str, last: &str) -> Profile {
        Profile::from_offering_user(&OfferingUser {
            user_first_name: first.into(),
            user_last_name: last.into(),
            user_username: "Jane.Doe@idp.example".into(),
            ..Default::default()
        })
    }

    #[test]
    fn renders_placeholders_and_literals() {
        let t = Template::parse("{first_initial}{last_name}").unwrap();
        let r = t.render(&profile("Jane", "Doe"));
        assert_eq!(r.text, "jdoe");
        assert!(r.missing.is_empty());

        let t = Template::parse("{ first_name }.{last_name}-x").unwrap();
        assert_eq!(t.render(&profile("Jane", "Doe")).text, "jane.doe-x");

        let t = Template::parse("{user_username_local}").unwrap();
        assert_eq!(t.render(&profile("", "")).text, "jane-doe");
    }

    #[test]
    fn templates_without_placeholders_are_allowed() {
        let t = Template::parse("guest").unwrap();
        assert_eq!(t.render(&profile("", "")).text, "guest");
        assert_eq!(t.source(), "guest");
    }

    #[test]
    fn empty_values_are_reported_once() {
        let t = Template::parse("{first_initial}{last_name}{last_initial}{last_name}").unwrap();
        let r = t.render(&profile("Jane", ""));
        assert_eq!(r.text, "j");
        assert_eq!(
            r.missing,
            vec![Placeholder::LastName, Placeholder::LastInitial]
        );
    }

    #[test]
    fn values_that_normalise_to_nothing_are_missing() {
        let t = Template::parse("{last_name}").unwrap();
        assert_eq!(
            t.render(&profile("Иван", "Петров")).missing,
            vec![Placeholder::LastName]
        );
    }

    #[test]
    fn malformed_templates_are_invalid_settings() {
        for bad in [
            "{nope}",
            "{first_name",
            "first_name}",
            "{}",
            "{{first_name}}",
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS, "{bad}");
        }
    }
}
