//! From the document as written ([`RawConfig`]) to the validated [`Config`]: defaults, required
//! keys, ranges, URLs, the time zone, credentials and backend components.
//!
//! Errors and warnings carry a key path only; `mod.rs` turns the path into a line.

use std::collections::HashSet;

use jiff::tz::TimeZone;
use serde_json::Value as Json;
use waldur_plugin_abi::wire::{BackendComponent, BackendComponents, JsonMap};

use super::error::{ConfigErrorKind, KeyPath};
use super::raw::{
    lax_bool, lax_int_from_f64, lax_int_from_str, RawConfig, RawLogShipping, RawOffering,
};
use super::types::{
    Config, LogFormat, LogLevel, LogShipping, Offering, OidcCredentials, Secret, SubscriptionFlow,
    WaldurAuth, DEFAULT_HOMEDIR_UMASK, PLUGIN_PROBE_TIMEOUT_SECONDS,
};

/// An error or a warning at a key path.
#[derive(Debug)]
pub(crate) struct Issue {
    pub kind: ConfigErrorKind,
    pub path: KeyPath,
    pub message: String,
}

type Res<T> = Result<T, Issue>;

fn invalid(path: KeyPath, message: impl Into<String>) -> Issue {
    Issue {
        kind: ConfigErrorKind::Invalid,
        path,
        message: message.into(),
    }
}

fn wrong_type(path: KeyPath, message: impl Into<String>) -> Issue {
    Issue {
        kind: ConfigErrorKind::Type,
        path,
        message: message.into(),
    }
}

const MISSING: &str = "required key is missing";

/// Validates `raw`; warnings go to `warnings`, the first error is returned.
pub(crate) fn build(raw: RawConfig, warnings: &mut Vec<Issue>) -> Res<Config> {
    let root = KeyPath::root();
    let defaults = Config::default();

    // Globals first, in the order of the reference's table.
    let sentry_dsn = optional_url(&root.key("sentry_dsn"), raw.sentry_dsn, true)?.map(Secret::from);
    let elastic_apm_server_url = optional_url(
        &root.key("elastic_apm_server_url"),
        raw.elastic_apm_server_url,
        false,
    )?;
    let timezone = match raw.timezone {
        None => defaults.timezone,
        Some(name) => time_zone(&root.key("timezone"), &name)?,
    };
    let global_proxy = raw
        .global_proxy
        .filter(|proxy| !proxy.trim().is_empty())
        .map(Secret::from);
    let log_level = match raw.log_level {
        None => defaults.log_level,
        Some(text) => log_level(&root.key("log_level"), &text)?,
    };
    let log_format = match raw.log_format.as_deref().map(str::trim) {
        None | Some("") => defaults.log_format,
        Some(text) => LogFormat::parse(text).ok_or_else(|| {
            invalid(
                root.key("log_format"),
                format!("must be text or json, got {text:?}"),
            )
        })?,
    };
    let reporting_periods = match raw.reporting_periods {
        None => defaults.reporting_periods,
        Some(n) => u8::try_from(n)
            .ok()
            .filter(|n| (1..=12).contains(n))
            .ok_or_else(|| {
                invalid(
                    root.key("reporting_periods"),
                    format!("must be between 1 and 12 (months), got {n}"),
                )
            })?,
    };
    let expose_backend_error_details = raw
        .expose_backend_error_details
        .unwrap_or(defaults.expose_backend_error_details);
    let log_shipping = match raw.log_shipping {
        None => LogShipping::default(),
        Some(raw) => log_shipping(&root.key("log_shipping"), raw)?,
    };
    let plugin_dirs = raw.plugin_dirs.unwrap_or_default();
    for (i, dir) in plugin_dirs.iter().enumerate() {
        if dir.as_os_str().is_empty() {
            return Err(invalid(
                root.key("plugin_dirs").index(i),
                "must not be empty",
            ));
        }
    }
    let allow_insecure_plugin_permissions = raw
        .allow_insecure_plugin_permissions
        .unwrap_or(defaults.allow_insecure_plugin_permissions);
    let runtime_dir = raw.runtime_dir.filter(|dir| !dir.as_os_str().is_empty());
    let shutdown_grace = seconds_within(
        &root,
        "shutdown_grace_seconds",
        raw.shutdown_grace_seconds,
        0..=3600,
    )?
    .map_or(defaults.shutdown_grace, std::time::Duration::from_secs);
    let heartbeat_interval = seconds_within(
        &root,
        "heartbeat_interval_seconds",
        raw.heartbeat_interval_seconds,
        1..=3600,
    )?
    .map_or(defaults.heartbeat_interval, std::time::Duration::from_secs);
    let plugin_probe_timeout_seconds = seconds_within(
        &root,
        "plugin_probe_timeout_seconds",
        raw.plugin_probe_timeout_seconds,
        PLUGIN_PROBE_TIMEOUT_SECONDS,
    )?
    .unwrap_or(defaults.plugin_probe_timeout_seconds);
    let metrics_address = match raw.metrics_address.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse().map_err(|_| {
            invalid(
                root.key("metrics_address"),
                format!("must be IP:PORT (e.g. 127.0.0.1:9100), got {text:?}"),
            )
        })?),
    };

    let offerings_path = root.key("offerings");
    let raw_offerings = raw.offerings.ok_or_else(|| {
        invalid(
            offerings_path.clone(),
            format!("{MISSING} (the list of offerings this agent serves)"),
        )
    })?;
    if raw_offerings.is_empty() {
        warnings.push(invalid(
            offerings_path.clone(),
            "the list is empty: the agent has nothing to do",
        ));
    }
    let mut offerings = Vec::with_capacity(raw_offerings.len());
    let mut seen = HashSet::new();
    for (i, raw) in raw_offerings.into_iter().enumerate() {
        let path = offerings_path.index(i);
        let offering = offering(&path, raw, warnings)?;
        if !seen.insert((
            offering.waldur_api_url.clone(),
            offering
                .waldur_offering_uuid
                .replace('-', "")
                .to_ascii_lowercase(),
        )) {
            // Two entries would race for the same orders and send every usage twice.
            return Err(invalid(
                path.key("waldur_offering_uuid"),
                "another offering above has the same waldur_api_url and waldur_offering_uuid; \
                 list each offering once",
            ));
        }
        offerings.push(offering);
    }

    Ok(Config {
        offerings,
        sentry_dsn,
        elastic_apm_server_url,
        timezone,
        global_proxy,
        log_level,
        log_format,
        reporting_periods,
        expose_backend_error_details,
        log_shipping,
        plugin_dirs,
        allow_insecure_plugin_permissions,
        runtime_dir,
        shutdown_grace,
        heartbeat_interval,
        plugin_probe_timeout_seconds,
        metrics_address,
    })
}

/// A whole number of seconds under `key`, when given, within `range`.
fn seconds_within(
    root: &KeyPath,
    key: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<u64>,
) -> Res<Option<u64>> {
    let Some(n) = value else {
        return Ok(None);
    };
    u64::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            invalid(
                root.key(key),
                format!(
                    "must be between {} and {} (seconds), got {n}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

fn time_zone(path: &KeyPath, name: &str) -> Res<TimeZone> {
    TimeZone::get(name.trim()).map_err(|_| {
        invalid(
            path.clone(),
            format!(
                "unknown time zone {name:?}; use an IANA time zone name such as \"UTC\" or \
                 \"Europe/Tallinn\""
            ),
        )
    })
}

fn log_level(path: &KeyPath, text: &str) -> Res<LogLevel> {
    LogLevel::parse(text).ok_or_else(|| {
        invalid(
            path.clone(),
            format!(
                "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case), got {text:?}"
            ),
        )
    })
}

fn log_shipping(path: &KeyPath, raw: RawLogShipping) -> Res<LogShipping> {
    let defaults = LogShipping::default();
    let ship_interval_seconds = match raw.ship_interval_seconds {
        None => defaults.ship_interval_seconds,
        Some(n) => u64::try_from(n).ok().filter(|n| *n >= 10).ok_or_else(|| {
            invalid(
                path.key("ship_interval_seconds"),
                format!("must be at least 10 (seconds), got {n}"),
            )
        })?,
    };
    let buffer_size_mb = match raw.buffer_size_mb {
        None => defaults.buffer_size_mb,
        Some(n) => u64::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(
                path.key("buffer_size_mb"),
                format!("must be at least 1 (MiB), got {n}"),
            )
        })?,
    };
    let log_level = match raw.log_level {
        None => defaults.log_level,
        Some(text) => log_level(&path.key("log_level"), &text)?,
    };
    Ok(LogShipping {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        ship_interval_seconds,
        buffer_size_mb,
        log_level,
    })
}

/// Whether `url` is `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let rest = match lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    {
        Some(rest) => rest,
        None => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace)
}

/// An optional URL key; `""` means unset, as in the reference. `secret` keeps the value out of
/// the message.
fn optional_url(path: &KeyPath, value: Option<String>, secret: bool) -> Res<Option<String>> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    if is_http_url(value.trim()) {
        return Ok(Some(value.trim().to_owned()));
    }
    let got = if secret {
        String::new()
    } else {
        format!(", got {value:?}")
    };
    Err(invalid(
        path.clone(),
        format!("must be an http:// or https:// URL{got}"),
    ))
}

/// A required, non-empty string key.
fn required(path: KeyPath, value: Option<String>) -> Res<String> {
    match value {
        None => Err(invalid(path, MISSING)),
        Some(value) if value.trim().is_empty() => Err(invalid(path, "must not be empty")),
        Some(value) => Ok(value),
    }
}

fn looks_like_uuid(text: &str) -> bool {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

fn offering(path: &KeyPath, mut raw: RawOffering, warnings: &mut Vec<Issue>) -> Res<Offering> {
    let defaults = Offering::default();
    let name = required(path.key("name"), raw.name.take())?;

    let url_path = path.key("waldur_api_url");
    let mut waldur_api_url = required(url_path.clone(), raw.waldur_api_url.take())?
        .trim()
        .to_owned();
    if !is_http_url(&waldur_api_url) {
        return Err(invalid(
            url_path,
            format!("must start with http:// or https://, got {waldur_api_url:?}"),
        ));
    }
    if !waldur_api_url.ends_with('/') {
        waldur_api_url.push('/');
    }

    let auth = auth(path, &raw, warnings)?;

    let uuid_path = path.key("waldur_offering_uuid");
    let waldur_offering_uuid = required(uuid_path.clone(), raw.waldur_offering_uuid)?;
    if !looks_like_uuid(&waldur_offering_uuid) {
        warnings.push(invalid(
            uuid_path,
            format!("{waldur_offering_uuid:?} does not look like a UUID; it is used as written"),
        ));
    }

    let backend_type = required(path.key("backend_type"), raw.backend_type)?
        .trim()
        .to_lowercase();

    let backend_settings = match raw.backend_settings {
        None | Some(serde_norway::Value::Null) => JsonMap::new(),
        Some(value) => match yaml_to_json(&value) {
            Json::Object(map) => map,
            other => {
                return Err(wrong_type(
                    path.key("backend_settings"),
                    format!("must be a mapping of settings, got {}", describe(&other)),
                ))
            }
        },
    };

    let homedir_umask = homedir_umask(
        &path.key("backend_settings").key("default_homedir_umask"),
        backend_settings.get("default_homedir_umask"),
    )?;

    let backend_components = match raw.backend_components {
        None | Some(serde_norway::Value::Null) => BackendComponents::new(),
        Some(value) => components(&path.key("backend_components"), &value)?,
    };

    let stomp_ws_port = match raw.stomp_ws_port {
        None => None,
        Some(port) => Some(
            u16::try_from(port)
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| {
                    invalid(
                        path.key("stomp_ws_port"),
                        format!("must be a TCP port (1-65535), got {port}"),
                    )
                })?,
        ),
    };

    let bound = |key: &str, value: Option<i64>| -> Res<Option<usize>> {
        value
            .map(|n| {
                usize::try_from(n).map_err(|_| {
                    invalid(
                        path.key(key),
                        format!("must be a number of 0 or more, got {n}"),
                    )
                })
            })
            .transpose()
    };
    let max_user_removals_per_cycle = bound(
        "max_user_removals_per_cycle",
        raw.max_user_removals_per_cycle,
    )?;
    let max_terminations_per_cycle =
        bound("max_terminations_per_cycle", raw.max_terminations_per_cycle)?;

    let stomp_subscription_flow = match raw.stomp_subscription_flow.as_deref().map(str::trim) {
        None | Some("") => defaults.stomp_subscription_flow,
        Some(name) => SubscriptionFlow::from_name(&name.to_ascii_lowercase()).ok_or_else(|| {
            invalid(
                path.key("stomp_subscription_flow"),
                format!(
                    "must be one of {}, got {name:?}",
                    SubscriptionFlow::NAMES.join(", ")
                ),
            )
        })?,
    };

    let stomp_enabled = raw.stomp_enabled.unwrap_or(defaults.stomp_enabled);
    if raw.stomp_membership_sync_enabled == Some(true) && !stomp_enabled {
        warnings.push(invalid(
            path.key("stomp_membership_sync_enabled"),
            "is true but stomp_enabled is false, so no membership events are received and \
             nothing is synced over STOMP",
        ));
    }

    let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    Ok(Offering {
        name,
        waldur_api_url,
        auth,
        waldur_offering_uuid,
        backend_type,
        backend_settings,
        backend_components,
        order_processing_backend: raw.order_processing_backend.unwrap_or_default(),
        membership_sync_backend: raw.membership_sync_backend.unwrap_or_default(),
        reporting_backend: raw.reporting_backend.unwrap_or_default(),
        username_management_backend: raw
            .username_management_backend
            .unwrap_or(defaults.username_management_backend),
        stomp_enabled,
        stomp_membership_sync_enabled: raw.stomp_membership_sync_enabled,
        stomp_ws_host: non_empty(raw.stomp_ws_host),
        stomp_ws_port,
        stomp_ws_path: non_empty(raw.stomp_ws_path),
        stomp_subscription_flow,
        websocket_use_tls: raw.websocket_use_tls.unwrap_or(defaults.websocket_use_tls),
        resource_import_enabled: raw
            .resource_import_enabled
            .unwrap_or(defaults.resource_import_enabled),
        username_reconciliation_enabled: raw
            .username_reconciliation_enabled
            .unwrap_or(defaults.username_reconciliation_enabled),
        verify_ssl: raw.verify_ssl.unwrap_or(defaults.verify_ssl),
        homedir_umask,
        max_user_removals_per_cycle,
        max_terminations_per_cycle,
    })
}

/// `default_homedir_umask`: three or four octal digits, quoted (an unquoted `0077` is the
/// number 77 in YAML, which no umask means).
fn homedir_umask(path: &KeyPath, value: Option<&Json>) -> Res<String> {
    match value {
        None | Some(Json::Null) => Ok(DEFAULT_HOMEDIR_UMASK.to_owned()),
        Some(Json::String(umask))
            if (3..=4).contains(&umask.len())
                && umask.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
        {
            Ok(umask.clone())
        }
        Some(other) => Err(invalid(
            path.clone(),
            format!(
                "must be a quoted octal umask such as \"{DEFAULT_HOMEDIR_UMASK}\", got {other}"
            ),
        )),
    }
}

/// `waldur_api_token`, or all three `oidc_*` keys when the token is empty.
fn auth(path: &KeyPath, raw: &RawOffering, warnings: &mut Vec<Issue>) -> Res<WaldurAuth> {
    let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
    let oidc_keys = [
        ("oidc_token_url", &raw.oidc_token_url),
        ("oidc_client_id", &raw.oidc_client_id),
        ("oidc_client_secret", &raw.oidc_client_secret),
    ];

    if let Some(token) = raw
        .waldur_api_token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        if let Some((key, _)) = oidc_keys.iter().find(|(_, value)| set(value)) {
            warnings.push(invalid(
                path.key(key),
                "is ignored: waldur_api_token is set, and a static token takes precedence over OIDC",
            ));
        }
        return Ok(WaldurAuth::Token(Secret::new(token.trim())));
    }

    let missing: Vec<&str> = oidc_keys
        .iter()
        .filter(|(_, value)| !set(value))
        .map(|(key, _)| *key)
        .collect();
    if missing.len() == oidc_keys.len() {
        return Err(invalid(
            path.key("waldur_api_token"),
            "is empty or missing, and no OIDC credentials are given: set waldur_api_token, or \
             all of oidc_token_url, oidc_client_id and oidc_client_secret",
        ));
    }
    if !missing.is_empty() {
        return Err(invalid(
            path.key(missing[0]),
            format!(
                "{MISSING}: without waldur_api_token, all of oidc_token_url, oidc_client_id and \
                 oidc_client_secret are required (missing: {})",
                missing.join(", ")
            ),
        ));
    }

    let text = |value: &Option<String>| value.as_deref().unwrap_or_default().trim().to_owned();
    let token_url = text(&raw.oidc_token_url);
    if !is_http_url(&token_url) {
        return Err(invalid(
            path.key("oidc_token_url"),
            format!("must start with http:// or https://, got {token_url:?}"),
        ));
    }
    Ok(WaldurAuth::Oidc(OidcCredentials {
        token_url,
        client_id: text(&raw.oidc_client_id),
        client_secret: Secret::new(text(&raw.oidc_client_secret)),
    }))
}

/// What a component key must hold. Keys not listed are plugin extras and pass through as they
/// are.
#[derive(Clone, Copy)]
enum Expect {
    Str,
    Number,
    Int,
    Bool,
    OneOf(&'static [&'static str]),
}

const REQUIRED_COMPONENT_KEYS: [&str; 3] = ["measured_unit", "accounting_type", "label"];

const COMPONENT_KEYS: &[(&str, Expect)] = &[
    ("measured_unit", Expect::Str),
    ("accounting_type", Expect::OneOf(&["usage", "limit", "one"])),
    ("label", Expect::Str),
    ("unit_factor", Expect::Number),
    ("unit_factor_reporting", Expect::Number),
    ("limit", Expect::Number),
    ("description", Expect::Str),
    ("article_code", Expect::Str),
    ("min_value", Expect::Int),
    ("max_value", Expect::Int),
    ("max_available_limit", Expect::Int),
    ("default_limit", Expect::Int),
    (
        "limit_period",
        Expect::OneOf(&["annual", "month", "quarterly", "total"]),
    ),
    ("is_boolean", Expect::Bool),
    ("is_prepaid", Expect::Bool),
    ("min_prepaid_duration", Expect::Int),
    ("max_prepaid_duration", Expect::Int),
    ("prepaid_duration_step", Expect::Int),
    ("min_renewal_duration", Expect::Int),
    ("max_renewal_duration", Expect::Int),
    ("renewal_duration_step", Expect::Int),
];

fn components(path: &KeyPath, value: &serde_norway::Value) -> Res<BackendComponents> {
    let serde_norway::Value::Mapping(mapping) = value else {
        return Err(wrong_type(
            path.clone(),
            format!(
                "must be a mapping from component type to its settings, got {}",
                describe(&yaml_to_json(value))
            ),
        ));
    };
    let mut components = BackendComponents::new();
    for (key, value) in mapping {
        let name = key_string(key);
        let component_path = path.key(&name);
        let component = component(&component_path, value)?;
        components.insert(name, component);
    }
    Ok(components)
}

fn component(path: &KeyPath, value: &serde_norway::Value) -> Res<BackendComponent> {
    let mut map = match yaml_to_json(value) {
        Json::Object(map) => map,
        other => {
            return Err(wrong_type(
                path.clone(),
                format!(
                    "must be a mapping with measured_unit, accounting_type and label, got {}",
                    describe(&other)
                ),
            ))
        }
    };
    for key in REQUIRED_COMPONENT_KEYS {
        if map.get(key).is_none_or(Json::is_null) {
            return Err(invalid(
                path.key(key),
                format!(
                    "{MISSING} (every component needs measured_unit, accounting_type and label)"
                ),
            ));
        }
    }
    for (key, expect) in COMPONENT_KEYS {
        let Some(slot) = map.get_mut(*key) else {
            continue;
        };
        if slot.is_null() {
            continue;
        }
        *slot = check(&path.key(key), slot, *expect)?;
    }
    serde_json::from_value(Json::Object(map))
        .map_err(|err| wrong_type(path.clone(), err.to_string()))
}

/// Checks one component value, applying the reference's lax coercions (`"10"` for 10, ...).
fn check(path: &KeyPath, value: &Json, expect: Expect) -> Res<Json> {
    let fail = |what: &str| {
        wrong_type(
            path.clone(),
            format!("must be {what}, got {}", describe(value)),
        )
    };
    match expect {
        Expect::Str => match value {
            Json::String(_) => Ok(value.clone()),
            _ => Err(fail("a string")),
        },
        Expect::OneOf(choices) => match value.as_str() {
            Some(text) if choices.contains(&text) => Ok(value.clone()),
            _ => Err(fail(&format!("one of {}", choices.join(", ")))),
        },
        Expect::Number => match value {
            Json::Number(_) => Ok(value.clone()),
            Json::String(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Json::Number)
                .ok_or_else(|| fail("a number")),
            _ => Err(fail("a number")),
        },
        Expect::Int => {
            let int = match value {
                Json::Number(n) => n.as_i64().or_else(|| n.as_f64().and_then(lax_int_from_f64)),
                Json::String(text) => lax_int_from_str(text),
                _ => None,
            };
            int.map(Json::from).ok_or_else(|| fail("an integer"))
        }
        Expect::Bool => {
            let flag = match value {
                Json::Bool(b) => Some(*b),
                Json::Number(n) => match n.as_u64() {
                    Some(0) => Some(false),
                    Some(1) => Some(true),
                    _ => None,
                },
                Json::String(text) => lax_bool(text),
                _ => None,
            };
            flag.map(Json::Bool).ok_or_else(|| fail("true or false"))
        }
    }
}

/// How a value is named in messages.
fn describe(value: &Json) -> String {
    match value {
        Json::Null => "an empty value".to_owned(),
        Json::Bool(b) => format!("{b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "a mapping".to_owned(),
    }
}

/// A YAML key as a JSON object key (as Python would print it).
fn key_string(key: &serde_norway::Value) -> String {
    match key {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Null => "null".to_owned(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Number(n) => n.to_string(),
        other => yaml_to_json(other).to_string(),
    }
}

/// Free-form YAML to JSON: keys become strings, tags are dropped, non-finite floats become null.
pub(crate) fn yaml_to_json(value: &serde_norway::Value) -> Json {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        Y::String(s) => Json::String(s.clone()),
        Y::Sequence(items) => Json::Array(items.iter().map(yaml_to_json).collect()),
        Y::Mapping(mapping) => Json::Object(
            mapping
                .iter()
                .map(|(k, v)| (key_string(k), yaml_to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(&tagged.value),
    }
}
