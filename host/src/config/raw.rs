//! The document as written: every key optional, types checked, nothing else.
//!
//! Every field is an `Option` so that a missing key, and an empty value (`key:` or `key: null`),
//! both mean "use the default"; required keys are checked in `validate`, which can then say
//! which key is missing and where. Fields not listed here are reported as unknown keys.
//!
//! Scalars are read the way the reference's pydantic models read them ("lax mode"), because the
//! reference's configs must load unchanged: a boolean may be written `true`, `"true"`, `yes`,
//! `on`, `1`, ...; an integer may be quoted (`"2"`) or written `2.0`.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(expecting = "a mapping of configuration keys (offerings, timezone, ...)")]
pub(crate) struct RawConfig {
    pub offerings: Option<Vec<RawOffering>>,
    pub sentry_dsn: Option<String>,
    pub elastic_apm_server_url: Option<String>,
    pub timezone: Option<String>,
    pub global_proxy: Option<String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub reporting_periods: Option<i64>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub expose_backend_error_details: Option<bool>,
    pub log_shipping: Option<RawLogShipping>,
    #[serde(default, deserialize_with = "opt_paths")]
    pub plugin_dirs: Option<Vec<PathBuf>>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub allow_insecure_plugin_permissions: Option<bool>,
    pub runtime_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "opt_int")]
    pub shutdown_grace_seconds: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub heartbeat_interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub plugin_probe_timeout_seconds: Option<i64>,
    pub metrics_address: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping of log_shipping keys (enabled, ship_interval_seconds, ...)")]
pub(crate) struct RawLogShipping {
    #[serde(default, deserialize_with = "opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_int")]
    pub ship_interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub buffer_size_mb: Option<i64>,
    pub log_level: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping of offering keys (name, waldur_api_url, ...)")]
pub(crate) struct RawOffering {
    pub name: Option<String>,
    pub waldur_api_url: Option<String>,
    pub waldur_api_token: Option<String>,
    pub oidc_token_url: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<String>,
    pub waldur_offering_uuid: Option<String>,
    pub backend_type: Option<String>,
    /// Free-form: kept as YAML and converted to JSON in `validate`, so that any YAML (non-string
    /// keys, tags) is accepted as the reference accepts it.
    pub backend_settings: Option<serde_norway::Value>,
    pub backend_components: Option<serde_norway::Value>,
    pub order_processing_backend: Option<String>,
    pub membership_sync_backend: Option<String>,
    pub reporting_backend: Option<String>,
    pub username_management_backend: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub stomp_enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub stomp_membership_sync_enabled: Option<bool>,
    pub stomp_ws_host: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    pub stomp_ws_port: Option<i64>,
    pub stomp_ws_path: Option<String>,
    pub stomp_subscription_flow: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub websocket_use_tls: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub resource_import_enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub username_reconciliation_enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    pub verify_ssl: Option<bool>,
    #[serde(default, deserialize_with = "opt_int")]
    pub max_user_removals_per_cycle: Option<i64>,
    #[serde(default, deserialize_with = "opt_int")]
    pub max_terminations_per_cycle: Option<i64>,
}

/// The field names serde knows for a struct, read from its derived `Deserialize` impl, so the
/// "did you mean" hints for unknown keys can never drift from the structs above.
pub(crate) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab(Option<&'static [&'static str]>);

    #[derive(Debug)]
    struct Stop;
    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &mut Grab {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut grab = Grab(None);
    let _ = T::deserialize(&mut grab);
    grab.0.unwrap_or(&[])
}

/// A reference-compatible boolean: `true`/`false`, the strings pydantic accepts (`yes`, `no`,
/// `on`, `off`, `y`, `n`, `t`, `f`, `1`, `0`, any case), and the integers 0 and 1. Empty means
/// unset.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean (true or false)")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_any(self)
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            match value {
                0 => Ok(Some(false)),
                1 => Ok(Some(true)),
                _ => Err(E::invalid_value(de::Unexpected::Signed(value), &self)),
            }
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            match value {
                0 => Ok(Some(false)),
                1 => Ok(Some(true)),
                _ => Err(E::invalid_value(de::Unexpected::Unsigned(value), &self)),
            }
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            lax_bool(value)
                .map(Some)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }

    de.deserialize_any(V)
}

/// pydantic's lax string-to-bool table.
pub(crate) fn lax_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Some(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// A reference-compatible integer: an integer, an integer-valued float (`2.0`) or a string
/// holding an integer (`"2"`). Empty means unset.
pub(crate) fn opt_int<'de, D: Deserializer<'de>>(de: D) -> Result<Option<i64>, D::Error> {
    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_any(self)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i64::try_from(value)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            lax_int_from_f64(value)
                .map(Some)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Float(value), &self))
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
            lax_int_from_str(value)
                .map(Some)
                .ok_or_else(|| E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }

    de.deserialize_any(V)
}

pub(crate) fn lax_int_from_f64(value: f64) -> Option<i64> {
    // The bounds are exactly representable; `as` is exact for integral values inside them.
    let in_range = (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&value);
    (value.fract() == 0.0 && in_range).then_some(value as i64)
}

pub(crate) fn lax_int_from_str(text: &str) -> Option<i64> {
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(lax_int_from_f64))
}

/// A list of paths; a single path is accepted as a list of one. Empty means unset.
fn opt_paths<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Vec<PathBuf>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "must be a directory path or a list of them")]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }

    Ok(
        Option::<OneOrMany>::deserialize(de)?.map(|paths| match paths {
            OneOrMany::One(path) => vec![path],
            OneOrMany::Many(paths) => paths,
        }),
    )
}
