//! The `backend_settings` the demo backend reads: declared once as [`SETTINGS`] (so the agent's
//! validation and `plugins inspect` show them) and parsed into [`DemoSettings`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use waldur_plugin_abi::sdk::settings::string_list;
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::{Error, Result, SettingKind, SettingSpec};

/// Every setting the demo backend reads.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec::required(
        "state_dir",
        SettingKind::String,
        "Directory holding state.json, its lock file and usage/<YYYY-MM>/<account>.json",
    ),
    SettingSpec::optional(
        "create_state_dir",
        SettingKind::Boolean,
        "Create state_dir (and its parents) when it does not exist",
    )
    .default_json("false"),
    SettingSpec::optional(
        "customer_prefix",
        SettingKind::String,
        "Prefix of customer account names",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "project_prefix",
        SettingKind::String,
        "Prefix of project account names",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "allocation_prefix",
        SettingKind::String,
        "Prefix of allocation account names (the agent lower-cases the result)",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "default_account",
        SettingKind::String,
        "Default account recorded for new associations",
    )
    .default_json("\"root\""),
    SettingSpec::optional(
        "root_account",
        SettingKind::String,
        "Implicit top of the hierarchy: the parent of customer accounts",
    )
    .default_json("\"root\""),
    SettingSpec::optional(
        "max_limits",
        SettingKind::Object,
        "Component -> maximum limit in Waldur units; pending orders above it are rejected",
    ),
    SettingSpec::optional(
        "fail_methods",
        SettingKind::List,
        "Method names that answer a BACKEND error (failure injection for tests)",
    )
    .default_json("[]"),
    SettingSpec::optional(
        "decreasing_usage_allowed",
        SettingKind::Boolean,
        "Reported as supports_decreasing_usage: usage may go down between reports",
    )
    .default_json("false"),
    SettingSpec::optional(
        "resource_api_keys",
        SettingKind::Boolean,
        "Reported as supports_resource_api_keys: the agent mints, rotates and prunes keys of resources",
    )
    .default_json("false"),
    SettingSpec::optional(
        "requires_source_project",
        SettingKind::Boolean,
        "Reported as requires_source_project: membership sync passes the Waldur project, which is recorded on the account",
    )
    .default_json("false"),
    SettingSpec::optional(
        "consented_users_only",
        SettingKind::Boolean,
        "Reported as fetch_consented_users_only: only team members who consented to the offering are synced",
    )
    .default_json("false"),
    SettingSpec::optional(
        "shared_project_membership",
        SettingKind::Boolean,
        "Reported as shared_project_membership: a user consenting to any offering of the project stays",
    )
    .default_json("false"),
    SettingSpec::optional(
        "membership_sync_report",
        SettingKind::Boolean,
        "Answer get_membership_sync_report: every user of the account as synced",
    )
    .default_json("false"),
];

/// The parsed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSettings {
    pub state_dir: PathBuf,
    pub create_state_dir: bool,
    pub customer_prefix: String,
    pub project_prefix: String,
    pub allocation_prefix: String,
    pub default_account: String,
    pub root_account: String,
    /// `None` accepts every order; an empty map accepts every order too.
    pub max_limits: Option<BTreeMap<String, f64>>,
    pub fail_methods: Vec<String>,
    pub decreasing_usage_allowed: bool,
    pub resource_api_keys: bool,
    pub requires_source_project: bool,
    pub consented_users_only: bool,
    pub shared_project_membership: bool,
    pub membership_sync_report: bool,
}

impl DemoSettings {
    /// Parses `backend_settings`. Type errors are caught by the SDK's validation before
    /// construction, but `new` can be called directly (tests, other hosts), so every key is
    /// checked again here; the messages name the key, on one line.
    pub fn parse(settings: &JsonMap) -> Result<Self> {
        let state_dir = match settings.get("state_dir") {
            Some(Value::String(dir)) if !dir.trim().is_empty() => PathBuf::from(dir),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(invalid("backend_settings.state_dir is required"))
            }
            Some(other) => {
                return Err(invalid(format!(
                    "backend_settings.state_dir must be a string, got {other}"
                )))
            }
        };
        Ok(Self {
            state_dir,
            create_state_dir: boolean(settings, "create_state_dir")?,
            customer_prefix: string(settings, "customer_prefix", "")?,
            project_prefix: string(settings, "project_prefix", "")?,
            allocation_prefix: string(settings, "allocation_prefix", "")?,
            default_account: string(settings, "default_account", "root")?,
            root_account: string(settings, "root_account", "root")?,
            max_limits: max_limits(settings)?,
            fail_methods: fail_methods(settings)?,
            decreasing_usage_allowed: boolean(settings, "decreasing_usage_allowed")?,
            resource_api_keys: boolean(settings, "resource_api_keys")?,
            requires_source_project: boolean(settings, "requires_source_project")?,
            consented_users_only: boolean(settings, "consented_users_only")?,
            shared_project_membership: boolean(settings, "shared_project_membership")?,
            membership_sync_report: boolean(settings, "membership_sync_report")?,
        })
    }
}

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid_settings(format!("demo: {message}"))
}

fn string(settings: &JsonMap, key: &str, default: &str) -> Result<String> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(invalid(format!(
            "backend_settings.{key} must be a string, got {other}"
        ))),
    }
}

fn boolean(settings: &JsonMap, key: &str) -> Result<bool> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid(format!(
            "backend_settings.{key} must be a boolean, got {other}"
        ))),
    }
}

fn max_limits(settings: &JsonMap) -> Result<Option<BTreeMap<String, f64>>> {
    let map = match settings.get("max_limits") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(invalid(format!(
                "backend_settings.max_limits must be an object, got {other}"
            )))
        }
    };
    map.iter()
        .map(|(component, value)| match value.as_f64() {
            Some(max) => Ok((component.clone(), max)),
            None => Err(invalid(format!(
                "backend_settings.max_limits.{component} must be a number, got {value}"
            ))),
        })
        .collect::<Result<_>>()
        .map(Some)
}

fn fail_methods(settings: &JsonMap) -> Result<Vec<String>> {
    string_list(
        settings.get("fail_methods"),
        "backend_settings.fail_methods",
    )
    .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults_follow_the_reference() {
        let s = DemoSettings::parse(&map(json!({"state_dir": "/tmp/x"}))).unwrap();
        assert_eq!(s.default_account, "root");
        assert_eq!(s.root_account, "root");
        assert_eq!(s.customer_prefix, "");
        assert_eq!(s.max_limits, None);
        assert!(s.fail_methods.is_empty());
        assert!(!s.decreasing_usage_allowed);
    }

    #[test]
    fn missing_state_dir_is_invalid_settings() {
        let err = DemoSettings::parse(&map(json!({}))).unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::INVALID_SETTINGS);
        assert_eq!(err.message, "demo: backend_settings.state_dir is required");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = DemoSettings::parse(&map(
            json!({"state_dir": "/x", "max_limits": {"cpu": "ten"}}),
        ))
        .unwrap_err();
        assert!(err.message.contains("max_limits.cpu"), "{}", err.message);
        let err =
            DemoSettings::parse(&map(json!({"state_dir": "/x", "fail_methods": [1]}))).unwrap_err();
        assert!(err.message.contains("fail_methods"), "{}", err.message);
    }

    #[test]
    fn declared_settings_validate_through_the_sdk() {
        let warnings = waldur_plugin_abi::sdk::validate_settings(
            SETTINGS,
            &map(json!({"state_dir": "/x", "soft_delete": true, "bogus": 1})),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(waldur_plugin_abi::sdk::validate_settings(SETTINGS, &map(json!({}))).is_err());
    }
}
