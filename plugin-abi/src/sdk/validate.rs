//! Settings validation from declared [`SettingSpec`]s.
//!
//! Like the reference, unknown keys are warnings (sites carry keys for other tools); a wrong
//! type or a missing required key is an error, because the backend could not work with it.

use crate::error::{Error, Result};
use crate::manifest::SettingSpec;
use crate::wire::{BackendComponents, JsonMap, WALDUR_COMPONENT_FIELDS};

/// Core `backend_settings` keys the agent itself reads; never "unknown".
const CORE_SETTINGS: &[&str] = &[
    "check_backend_id_uniqueness",
    "check_all_offerings",
    "backend_id_max_retries",
    "allocation_prefix",
    "project_prefix",
    "customer_prefix",
    "default_account",
    "soft_delete",
    "default_homedir_umask",
    "enable_user_homedir_account_creation",
    "homedir_base_path",
    "homedir_quota",
    "periodic_limits",
    "target_api_url",
    "target_api_token",
];

/// Validates `settings` against `specs`. With no specs declared, everything is accepted.
pub fn validate_settings(specs: &[SettingSpec], settings: &JsonMap) -> Result<Vec<String>> {
    check(specs, settings, CORE_SETTINGS, "backend_settings")
}

/// Validates the plugin-specific keys of every component against `specs`.
pub fn validate_component_extras(
    specs: &[SettingSpec],
    components: &BackendComponents,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for (name, component) in components {
        let context = format!("backend_components.{name}");
        warnings.extend(check(
            specs,
            &component.extra,
            // The typed fields never reach `extra`; the optional Waldur ones may.
            WALDUR_COMPONENT_FIELDS,
            &context,
        )?);
        if let Some(factor) = component.unit_factor {
            if !(factor.is_finite() && factor > 0.0) {
                return Err(Error::invalid_settings(format!(
                    "{context}.unit_factor must be a positive number, got {factor}"
                )));
            }
        }
    }
    Ok(warnings)
}

fn check(
    specs: &[SettingSpec],
    values: &JsonMap,
    core_keys: &[&str],
    context: &str,
) -> Result<Vec<String>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut errors = Vec::new();
    for spec in specs {
        match values.get(spec.name) {
            None if spec.required => errors.push(format!("{context}.{} is required", spec.name)),
            Some(value) if !spec.kind.accepts(value) => errors.push(format!(
                "{context}.{} must be {}, got {value}",
                spec.name,
                article(spec.kind.name())
            )),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(Error::invalid_settings(errors.join("; ")));
    }
    Ok(values
        .keys()
        .filter(|key| !core_keys.contains(&key.as_str()))
        .filter(|key| !specs.iter().any(|spec| spec.name == key.as_str()))
        .map(|key| format!("{context}.{key} is not a setting this plugin knows; ignored"))
        .collect())
}

fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}
