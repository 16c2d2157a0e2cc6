//! The `backend_settings` of the federation backend: declared once as [`SETTINGS`] (validation
//! and `waldur-agent plugins inspect`) and parsed into [`FederationSettings`] at construction.
//! Names and defaults are the reference's; a value the plugin cannot work with is
//! INVALID_SETTINGS with a one-line message naming the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use waldur_plugin_abi::sdk::settings::{string_list, truthy};
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::{Error, Result, SettingKind, SettingSpec};

use crate::target::normalize_uuid;

/// Every setting the federation backend reads.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec::required(
        "target_api_url",
        SettingKind::String,
        "API URL of the target Waldur (https://waldur-b.example.org/api/)",
    ),
    SettingSpec::required(
        "target_api_token",
        SettingKind::String,
        "API token of the target Waldur user who orders (a member of the target customer)",
    ),
    SettingSpec::required(
        "target_offering_uuid",
        SettingKind::String,
        "The offering on the target Waldur that source orders become orders of",
    ),
    SettingSpec::required(
        "target_customer_uuid",
        SettingKind::String,
        "The customer on the target Waldur that holds the projects the plugin creates",
    ),
    SettingSpec::optional(
        "user_match_field",
        SettingKind::String,
        "How a source user is found on the target: cuid, email or username",
    )
    .default_json("\"cuid\""),
    SettingSpec::optional(
        "user_resolve_method",
        SettingKind::String,
        "identity_bridge (POST identity-bridge), remote_eduteams (POST remote-eduteams) or \
         user_field (GET users by user_match_field)",
    )
    .default_json("\"identity_bridge\""),
    SettingSpec::optional(
        "identity_bridge_source",
        SettingKind::String,
        "Identity source of the identity bridge (e.g. isd:efp); required by identity_bridge",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "user_not_found_action",
        SettingKind::String,
        "A user the target cannot resolve: warn (skip them) or fail (the call errs)",
    )
    .default_json("\"warn\""),
    SettingSpec::optional(
        "role_mapping",
        SettingKind::Object,
        "Source role name -> target role name (e.g. PROJECT.ADMIN: PROJECT.MANAGER); \
         unmapped roles pass unchanged",
    ),
    SettingSpec::optional(
        "end_date_sync_direction",
        SettingKind::String,
        "End dates of resources and projects: a_to_b, b_to_a, bidirectional (the later change \
         wins) or disabled",
    )
    .default_json("\"bidirectional\""),
    SettingSpec::optional(
        "limit_sync_direction",
        SettingKind::String,
        "Limits: b_to_a (the target's limits are pushed to the source) or disabled",
    )
    .default_json("\"b_to_a\""),
    SettingSpec::optional(
        "passthrough_attributes",
        SettingKind::List,
        "Order attribute keys copied from the source resource into the target order",
    ),
    SettingSpec::optional(
        "fetch_consented_users_only",
        SettingKind::Boolean,
        "Sync only the members who consented to share their data with the offering",
    )
    .default_json("false"),
    SettingSpec::optional(
        "target_stomp_enabled",
        SettingKind::Boolean,
        "Subscribe to the target's order, offering-user and resource events (event_process \
         mode), so a finished target order completes the source order at once",
    )
    .default_json("false"),
    SettingSpec::optional(
        "target_stomp_ws_url",
        SettingKind::String,
        "WebSocket STOMP URL of the target's broker (ws:// or wss://); default: the source \
         offering's, as the reference does",
    ),
    SettingSpec::optional(
        "target_request_timeout",
        SettingKind::Number,
        "Seconds one request to the target Waldur may take",
    )
    .default_json("30"),
    SettingSpec::optional(
        "order_poll_timeout",
        SettingKind::Integer,
        "Legacy (the reference's blocking poll); read and ignored: orders never block",
    ),
    SettingSpec::optional(
        "order_poll_interval",
        SettingKind::Integer,
        "Legacy (the reference's blocking poll); read and ignored: orders never block",
    ),
];

/// How source users are found on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMethod {
    IdentityBridge,
    RemoteEduteams,
    UserField,
}

/// The source user field a user is matched by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchField {
    Cuid,
    Email,
    Username,
}

impl MatchField {
    pub fn name(self) -> &'static str {
        match self {
            MatchField::Cuid => "cuid",
            MatchField::Email => "email",
            MatchField::Username => "username",
        }
    }
}

/// Which side wins when end dates differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDateSync {
    AToB,
    BToA,
    Bidirectional,
    Disabled,
}

/// The parsed settings.
#[derive(Debug, Clone)]
pub struct FederationSettings {
    pub api_url: String,
    pub api_token: String,
    pub offering_uuid: String,
    pub customer_uuid: String,
    pub match_field: MatchField,
    pub resolve_method: ResolveMethod,
    pub identity_bridge_source: String,
    pub fail_on_unknown_user: bool,
    pub role_mapping: BTreeMap<String, String>,
    pub end_date_sync: EndDateSync,
    pub limits_from_target: bool,
    pub passthrough_attributes: Vec<String>,
    pub fetch_consented_users_only: bool,
    pub stomp_enabled: bool,
    pub stomp_ws_url: Option<String>,
    pub request_timeout: Duration,
}

fn invalid(key: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid_settings(format!("backend_settings.{key}: {what}"))
}

fn text<'a>(settings: &'a JsonMap, key: &str) -> Result<Option<&'a str>> {
    match settings.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(invalid(key, format!("must be a string, got {other}"))),
    }
}

fn required(settings: &JsonMap, key: &str) -> Result<String> {
    match text(settings, key)? {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(invalid(key, "is required")),
    }
}

fn uuid(settings: &JsonMap, key: &str) -> Result<String> {
    let value = required(settings, key)?;
    normalize_uuid(&value).ok_or_else(|| invalid(key, format!("{value:?} is not a uuid")))
}

/// One of `choices` (the setting's default when absent).
fn choice<'a>(
    settings: &JsonMap,
    key: &str,
    choices: &[&'a str],
    default: &'a str,
) -> Result<&'a str> {
    let Some(value) = text(settings, key)? else {
        return Ok(default);
    };
    choices
        .iter()
        .find(|c| **c == value)
        .copied()
        .ok_or_else(|| {
            invalid(
                key,
                format!("{value:?} is not one of {}", choices.join(", ")),
            )
        })
}

impl FederationSettings {
    pub fn parse(settings: &JsonMap) -> Result<Self> {
        let api_url = required(settings, "target_api_url")?;
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(invalid(
                "target_api_url",
                format!("{api_url:?} must start with http:// or https://"),
            ));
        }
        let match_field = match choice(
            settings,
            "user_match_field",
            &["cuid", "email", "username"],
            "cuid",
        )? {
            "email" => MatchField::Email,
            "username" => MatchField::Username,
            _ => MatchField::Cuid,
        };
        let resolve_method = match choice(
            settings,
            "user_resolve_method",
            &["identity_bridge", "remote_eduteams", "user_field"],
            "identity_bridge",
        )? {
            "remote_eduteams" => ResolveMethod::RemoteEduteams,
            "user_field" => ResolveMethod::UserField,
            _ => ResolveMethod::IdentityBridge,
        };
        let identity_bridge_source = text(settings, "identity_bridge_source")?
            .unwrap_or_default()
            .to_string();
        // The reference logs this on every user and resolves nobody; refused up front here.
        if resolve_method == ResolveMethod::IdentityBridge && identity_bridge_source.is_empty() {
            return Err(invalid(
                "identity_bridge_source",
                "is required when user_resolve_method is identity_bridge (the default)",
            ));
        }
        let fail_on_unknown_user =
            choice(settings, "user_not_found_action", &["warn", "fail"], "warn")? == "fail";
        let role_mapping = match settings.get("role_mapping") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(from, to)| match to {
                    Value::String(to) if !to.is_empty() => Ok((from.clone(), to.clone())),
                    other => Err(invalid(
                        &format!("role_mapping.{from}"),
                        format!("must be a role name, got {other}"),
                    )),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(invalid(
                    "role_mapping",
                    format!("must be an object, got {other}"),
                ))
            }
        };
        let end_date_sync = match choice(
            settings,
            "end_date_sync_direction",
            &["a_to_b", "b_to_a", "bidirectional", "disabled"],
            "bidirectional",
        )? {
            "a_to_b" => EndDateSync::AToB,
            "b_to_a" => EndDateSync::BToA,
            "disabled" => EndDateSync::Disabled,
            _ => EndDateSync::Bidirectional,
        };
        let limits_from_target = choice(
            settings,
            "limit_sync_direction",
            &["b_to_a", "disabled"],
            "b_to_a",
        )? == "b_to_a";
        let passthrough_attributes = string_list(
            settings.get("passthrough_attributes"),
            "backend_settings.passthrough_attributes",
        )
        .map_err(Error::invalid_settings)?;
        let stomp_ws_url = text(settings, "target_stomp_ws_url")?.map(str::to_string);
        if let Some(url) = &stomp_ws_url {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                return Err(invalid(
                    "target_stomp_ws_url",
                    format!("{url:?} must start with ws:// or wss://"),
                ));
            }
        }
        let request_timeout = match settings.get("target_request_timeout") {
            None | Some(Value::Null) => Duration::from_secs(30),
            Some(value) => match value.as_f64() {
                Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
                    Duration::from_secs_f64(seconds)
                }
                _ => {
                    return Err(invalid(
                        "target_request_timeout",
                        format!("must be a positive number of seconds, got {value}"),
                    ))
                }
            },
        };
        for key in ["order_poll_timeout", "order_poll_interval"] {
            if let Some(value) = settings.get(key) {
                if !value.is_null() && value.as_i64().is_none_or(|v| v <= 0) {
                    return Err(invalid(
                        key,
                        format!("must be a positive integer, got {value}"),
                    ));
                }
            }
        }
        Ok(Self {
            api_url,
            api_token: required(settings, "target_api_token")?,
            offering_uuid: uuid(settings, "target_offering_uuid")?,
            customer_uuid: uuid(settings, "target_customer_uuid")?,
            match_field,
            resolve_method,
            identity_bridge_source,
            fail_on_unknown_user,
            role_mapping,
            end_date_sync,
            limits_from_target,
            passthrough_attributes,
            fetch_consented_users_only: truthy(settings.get("fetch_consented_users_only")),
            stomp_enabled: truthy(settings.get("target_stomp_enabled")),
            stomp_ws_url,
            request_timeout,
        })
    }

    /// The legacy polling keys still work but do nothing: say so once, at validation.
    pub fn warnings(settings: &JsonMap) -> Vec<String> {
        ["order_poll_timeout", "order_poll_interval"]
            .into_iter()
            .filter(|key| settings.contains_key(*key))
            .map(|key| {
                format!(
                    "backend_settings.{key} is ignored: target orders are followed without \
                     blocking (check_pending_order), never polled in a loop"
                )
            })
            .collect()
    }

    /// The target role a source role maps to.
    pub fn target_role<'a>(&'a self, source_role: &'a str) -> &'a str {
        self.role_mapping
            .get(source_role)
            .map(String::as_str)
            .unwrap_or(source_role)
    }
}
