//! The `backend_settings` of the `template` entry: declared once as [`SETTINGS`] (so the
//! agent's validation and `waldur-agent plugins inspect` show them) and parsed into
//! [`TemplateSettings`], which also checks what the declared types cannot (lengths, a usable
//! prefix, a template with known placeholders).

use std::collections::BTreeSet;

use serde_json::Value;
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::{Error, Result, SettingKind, SettingSpec};

use crate::normalize::is_separator;
use crate::template::Template;

pub const DEFAULT_TEMPLATE: &str = "{first_initial}{last_name}";
pub const DEFAULT_PREFIX: &str = "u";
/// 32 is the limit of `useradd` on common Linux systems and of `utmp` records.
pub const DEFAULT_MAX_LENGTH: usize = 32;
pub const DEFAULT_MIN_LENGTH: usize = 2;
/// System accounts a generated name must never take, whatever Waldur knows.
pub const DEFAULT_RESERVED: &[&str] = &[
    "root", "daemon", "bin", "sys", "adm", "admin", "nobody", "operator", "slurm",
];
/// The upper bound of `max_length`: longer names break too many tools to be useful.
const LONGEST_ALLOWED: usize = 255;

/// Every setting the `template` entry reads.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec::optional(
        "username_template",
        SettingKind::String,
        "Username template; placeholders: {first_name} {last_name} {first_initial} \
         {last_initial} {full_name} {user_username} {user_username_local} {email_local} \
         {uuid_short}",
    )
    .default_json("\"{first_initial}{last_name}\""),
    SettingSpec::optional(
        "prefix",
        SettingKind::String,
        "Prepended when a name does not start with a letter (e.g. one made of digits)",
    )
    .default_json("\"u\""),
    SettingSpec::optional(
        "max_length",
        SettingKind::Integer,
        "Longest username; names and numeric suffixes are cut to fit",
    )
    .default_json("32"),
    SettingSpec::optional(
        "min_length",
        SettingKind::Integer,
        "Shortest acceptable username; shorter results need additional validation",
    )
    .default_json("2"),
    SettingSpec::optional(
        "reserved_usernames",
        SettingKind::List,
        "Names never generated (in addition to the offering's existing usernames); \
         replaces the default list",
    )
    .default_json(
        "[\"root\",\"daemon\",\"bin\",\"sys\",\"adm\",\"admin\",\"nobody\",\"operator\",\"slurm\"]",
    ),
    SettingSpec::optional(
        "validation_comment_url",
        SettingKind::String,
        "URL sent with 'pending additional validation' when a user's profile yields no username",
    ),
];

/// The parsed settings of the `template` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSettings {
    pub template: Template,
    pub prefix: String,
    pub max_length: usize,
    pub min_length: usize,
    /// Normalised, so they compare with generated names.
    pub reserved: BTreeSet<String>,
    pub validation_comment_url: Option<String>,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self::parse(&JsonMap::new()).expect("the defaults are valid")
    }
}

impl TemplateSettings {
    /// Parses `backend_settings`. The SDK checked the JSON types already when the agent
    /// constructs the entry, but tests and `validate_settings` call this directly, so types
    /// are checked again; every message names its key.
    pub fn parse(settings: &JsonMap) -> Result<Self> {
        let template = Template::parse(&string(settings, "username_template", DEFAULT_TEMPLATE)?)?;
        let prefix = string(settings, "prefix", DEFAULT_PREFIX)?;
        // May end with a separator (`u_`): it is never the end of a name.
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || is_separator(c);
        if !prefix.chars().all(allowed) || !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(invalid(format!(
                "backend_settings.prefix must start with a lower-case letter and contain only \
                 [a-z0-9_-], got {prefix:?}"
            )));
        }
        let max_length = length(settings, "max_length", DEFAULT_MAX_LENGTH)?;
        let min_length = length(settings, "min_length", DEFAULT_MIN_LENGTH)?;
        if min_length > max_length {
            return Err(invalid(format!(
                "backend_settings.min_length ({min_length}) exceeds max_length ({max_length})"
            )));
        }
        // A prefixed name keeps at least one character of its own.
        if max_length <= prefix.len() {
            return Err(invalid(format!(
                "backend_settings.max_length ({max_length}) must exceed the prefix length ({})",
                prefix.len()
            )));
        }
        Ok(Self {
            template,
            prefix,
            max_length,
            min_length,
            reserved: reserved(settings)?,
            validation_comment_url: optional_string(settings, "validation_comment_url")?,
        })
    }
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid_settings(format!("template usernames: {message}"))
}

fn string(settings: &JsonMap, key: &str, default: &str) -> Result<String> {
    Ok(optional_string(settings, key)?.unwrap_or_else(|| default.to_string()))
}

fn optional_string(settings: &JsonMap, key: &str) -> Result<Option<String>> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "backend_settings.{key} must be a string, got {other}"
        ))),
    }
}

fn length(settings: &JsonMap, key: &str, default: usize) -> Result<usize> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => match value.as_u64() {
            Some(n) if (1..=LONGEST_ALLOWED as u64).contains(&n) => Ok(n as usize),
            _ => Err(invalid(format!(
                "backend_settings.{key} must be an integer from 1 to {LONGEST_ALLOWED}, got {value}"
            ))),
        },
    }
}

fn reserved(settings: &JsonMap) -> Result<BTreeSet<String>> {
    let list = match settings.get("reserved_usernames") {
        None | Some(Value::Null) => {
            return Ok(DEFAULT_RESERVED.iter().map(|s| s.to_string()).collect())
        }
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(invalid(format!(
                "backend_settings.reserved_usernames must be a list, got {other}"
            )))
        }
    };
    list.iter()
        .map(|value| match value {
            // Lower-cased like existing names: generated names are lower-case.
            Value::String(name) => Ok(name.to_lowercase()),
            other => Err(invalid(format!(
                "backend_settings.reserved_usernames entries must be strings, got {other}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults() {
        let s = TemplateSettings::default();
        assert_eq!(s.template, Template::parse(DEFAULT_TEMPLATE).unwrap());
        assert_eq!(s.prefix, "u");
        assert_eq!((s.min_length, s.max_length), (2, 32));
        assert!(s.reserved.contains("root"));
        assert_eq!(s.validation_comment_url, None);
    }

    #[test]
    fn declared_defaults_match_the_parsed_ones() {
        let declared = |name: &str| -> Value {
            let spec = SETTINGS.iter().find(|s| s.name == name).unwrap();
            serde_json::from_str(spec.default_json.unwrap()).unwrap()
        };
        assert_eq!(declared("username_template"), json!(DEFAULT_TEMPLATE));
        assert_eq!(declared("prefix"), json!(DEFAULT_PREFIX));
        assert_eq!(declared("max_length"), json!(DEFAULT_MAX_LENGTH));
        assert_eq!(declared("min_length"), json!(DEFAULT_MIN_LENGTH));
        assert_eq!(declared("reserved_usernames"), json!(DEFAULT_RESERVED));
    }

    #[test]
    fn everything_set() {
        let s = TemplateSettings::parse(&map(json!({
            "username_template": "{user_username_local}",
            "prefix": "x_",
            "max_length": 8,
            "min_length": 3,
            "reserved_usernames": ["Admin", "guest"],
            "validation_comment_url": "https://example.org/profile",
        })))
        .unwrap();
        assert_eq!(s.prefix, "x_");
        assert_eq!((s.min_length, s.max_length), (3, 8));
        assert_eq!(
            s.reserved,
            ["admin", "guest"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(
            s.validation_comment_url.as_deref(),
            Some("https://example.org/profile")
        );
    }

    #[test]
    fn unusable_values_are_invalid_settings() {
        for bad in [
            json!({"prefix": "1"}),
            json!({"prefix": ""}),
            json!({"prefix": "A"}),
            json!({"prefix": "u."}),
            json!({"max_length": 0}),
            json!({"max_length": -3}),
            json!({"max_length": "32"}),
            json!({"min_length": 10, "max_length": 5}),
            json!({"prefix": "usr", "max_length": 3, "min_length": 1}),
            json!({"reserved_usernames": "root"}),
            json!({"reserved_usernames": [1]}),
            json!({"username_template": "{nope}"}),
            json!({"username_template": 5}),
        ] {
            let err = TemplateSettings::parse(&map(bad.clone())).unwrap_err();
            assert_eq!(
                err.kind,
                waldur_plugin_abi::ErrorKind::INVALID_SETTINGS,
                "{bad}"
            );
        }
    }
}
