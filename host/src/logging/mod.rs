//! Where the agent's log records go: stderr text or stdout JSON lines (`log_format`), at
//! `log_level` (`RUST_LOG`, when set, wins), to Waldur (`log_shipping`) and to Sentry
//! (`sentry_dsn`).
//!
//! `run` sets logging up once it has read the config ([`init_for_run`]); the other commands
//! log text at INFO ([`init_for_tools`]).

pub mod fields;
pub mod json;
pub mod sentry;
pub mod shipping;

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat, LogLevel};

/// Crates whose INFO lines are transport noise and can hold URLs with credentials; they log
/// at WARNING and above unless `RUST_LOG` says otherwise (the reference does the same for
/// httpx/httpcore).
const QUIET_CRATES: &[&str] = &[
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tungstenite",
    "tokio_tungstenite",
];

/// `RUST_LOG` when set (it wins), else `level` with the transport crates at WARNING.
pub fn filter(level: LogLevel) -> EnvFilter {
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    let level = level.tracing_level().as_str().to_ascii_lowercase();
    let mut directives = level;
    for quiet in QUIET_CRATES {
        directives.push_str(&format!(",{quiet}=warn"));
    }
    EnvFilter::new(directives)
}

/// Colour on a terminal only, and never with `NO_COLOR` set.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn text_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour())
}

/// The tools' logging: text on stderr at INFO (or `RUST_LOG`).
pub fn init_for_tools() {
    let _ = tracing_subscriber::registry()
        .with(filter(LogLevel::Info))
        .with(text_layer())
        .try_init();
}

/// Keeps what must outlive `run`'s work: the Sentry client (flushed when dropped) and the
/// log-shipping buffer (flushed by `run` at shutdown).
#[derive(Default)]
pub struct LoggingGuard {
    pub sentry: Option<::sentry::ClientInitGuard>,
    pub shipping: Option<std::sync::Arc<shipping::Hub>>,
}

/// `run`'s logging from its config; `format` (`--log-format`) wins over `log_format`.
pub fn init_for_run(config: &Config, format: Option<LogFormat>) -> LoggingGuard {
    let format = format.unwrap_or(config.log_format);
    let hub = config.log_shipping.enabled.then(|| {
        let max_bytes = config
            .log_shipping
            .buffer_size_mb
            .saturating_mul(1024 * 1024);
        shipping::Hub::new(usize::try_from(max_bytes).unwrap_or(usize::MAX))
    });
    let shipping_layer = hub.clone().map(|hub| {
        shipping::ShippingLayer(hub).with_filter(LevelFilter::from_level(
            config.log_shipping.log_level.tracing_level(),
        ))
    });
    let sentry_layer = config
        .sentry_dsn
        .is_some()
        .then(::sentry::integrations::tracing::layer);
    let installed = tracing_subscriber::registry()
        .with(filter(config.log_level))
        .with(fields::RememberSpanFields)
        .with((format == LogFormat::Text).then(text_layer))
        .with((format == LogFormat::Json).then_some(json::JsonLines))
        .with(shipping_layer)
        .with(sentry_layer)
        .try_init()
        .is_ok();
    if let Some(hub) = &hub {
        shipping::install(std::sync::Arc::clone(hub));
    }
    if installed && config.elastic_apm_server_url.is_some() {
        tracing::warn!(
            "elastic_apm_server_url is set, but this agent does not support Elastic APM; \
             it is ignored (use the metrics endpoint or Sentry instead)"
        );
    }
    LoggingGuard {
        sentry: self::sentry::init(config),
        shipping: hub,
    }
}
