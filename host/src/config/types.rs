//! The validated configuration the rest of the agent reads.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use jiff::tz::TimeZone;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap};

/// A credential. `Debug` prints `***` (or `""` when empty, which hides nothing), and there is no
/// `Display`, so a secret cannot end up in a log line by accident; call [`Secret::expose`] where
/// the value is really needed (an `Authorization` header, a token request).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("***")
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// A log level as the reference spells it (`log_level`, `log_shipping.log_level`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
    ];

    /// Case-insensitive, like the reference: `debug`, `INFO`, `Warning`, ...
    pub fn parse(text: &str) -> Option<LogLevel> {
        let text = text.trim();
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
    }

    /// The reference's (Python logging's) upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }

    /// The closest `tracing` level (`tracing` has no CRITICAL; it maps to ERROR).
    pub fn tracing_level(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warning => tracing::Level::WARN,
            LogLevel::Error | LogLevel::Critical => tracing::Level::ERROR,
        }
    }
}

/// **Agent extension** (`log_format`, `run --log-format`): how `run` writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines on stderr (colour only on a terminal).
    #[default]
    Text,
    /// One JSON object per line on stdout, with the reference's fields (`timestamp`, `level`,
    /// `logger`, `event`) and the offering and mode of the work it is about.
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `log_shipping`: sending the agent's own log records to Waldur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogShipping {
    pub enabled: bool,
    /// At least 10.
    pub ship_interval_seconds: u64,
    /// Size of the in-memory ring buffer; at least 1.
    pub buffer_size_mb: u64,
    /// Minimum level captured.
    pub log_level: LogLevel,
}

impl Default for LogShipping {
    fn default() -> Self {
        LogShipping {
            enabled: false,
            ship_interval_seconds: 60,
            buffer_size_mb: 1,
            log_level: LogLevel::Warning,
        }
    }
}

/// `plugin_probe_timeout_seconds` when the config has none.
pub const DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS: u64 = 20;

/// The accepted `plugin_probe_timeout_seconds` (and `--probe-timeout`): a library that has
/// not loaded after ten minutes is hung, and every agent start would wait that long for it.
pub const PLUGIN_PROBE_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=600;

/// The whole agent configuration: the reference's global keys (all with the reference's
/// defaults) plus the agent's own extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub offerings: Vec<Offering>,
    /// `sentry_dsn`; the reference's `""` means unset. It embeds a key, hence [`Secret`].
    pub sentry_dsn: Option<Secret>,
    pub elastic_apm_server_url: Option<String>,
    /// `timezone` (default `UTC`), resolved; `timezone.iana_name()` gives the configured name.
    /// Used for billing periods.
    pub timezone: TimeZone,
    /// `global_proxy` for Waldur API clients; the reference's `""` means none. A proxy URL can
    /// carry a password, hence [`Secret`].
    pub global_proxy: Option<Secret>,
    pub log_level: LogLevel,
    /// **Agent extension** (`log_format`: `text`, the default, or `json`).
    pub log_format: LogFormat,
    /// Number of months reported (current, previous, ...): 1..=12, default 2.
    pub reporting_periods: u8,
    /// Whether backend error details go into order error messages sent to Waldur (default true).
    pub expose_backend_error_details: bool,
    pub log_shipping: LogShipping,
    /// **Agent extension** (`plugin_dirs`, not in the reference): extra plugin directories,
    /// searched after `/usr/lib/waldur-agent/plugins` and `WALDUR_AGENT_PLUGIN_PATH`. Relative
    /// entries are resolved against the config file's directory by [`super::load`].
    pub plugin_dirs: Vec<PathBuf>,
    /// **Agent extension** (`allow_insecure_plugin_permissions`, default false): load plugin
    /// files and directories that another non-root user can write. For development only.
    pub allow_insecure_plugin_permissions: bool,
    /// **Agent extension** (`runtime_dir`): where the agent keeps its instance locks, the
    /// backend write locks, the heartbeat and the plugin probe cache; `None` picks the
    /// default (see [`super::runtime_dir`]). Relative paths are resolved against the config
    /// file's directory by [`super::load`].
    pub runtime_dir: Option<PathBuf>,
    /// **Agent extension** (`shutdown_grace_seconds`, default 30, 0..=3600): after SIGTERM,
    /// how long the items in hand may take to finish before they are cancelled.
    pub shutdown_grace: std::time::Duration,
    /// **Agent extension** (`heartbeat_interval_seconds`, default 60, 1..=3600): how often
    /// `run` touches the liveness heartbeat, also between and during cycles.
    pub heartbeat_interval: std::time::Duration,
    /// **Agent extension** (`plugin_probe_timeout_seconds`, default 20, 1 to 600): how long
    /// one plugin file may take to load in the prober child before it is refused as hung.
    /// `--probe-timeout` overrides it.
    pub plugin_probe_timeout_seconds: u64,
    /// **Agent extension** (`metrics_address`, `IP:PORT`, default none): where `run` serves
    /// its Prometheus metrics; `run --metrics-address` overrides it.
    pub metrics_address: Option<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            offerings: Vec::new(),
            sentry_dsn: None,
            elastic_apm_server_url: None,
            timezone: TimeZone::UTC,
            global_proxy: None,
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            reporting_periods: 2,
            expose_backend_error_details: true,
            log_shipping: LogShipping::default(),
            plugin_dirs: Vec::new(),
            allow_insecure_plugin_permissions: false,
            runtime_dir: None,
            shutdown_grace: std::time::Duration::from_secs(30),
            heartbeat_interval: std::time::Duration::from_secs(60),
            plugin_probe_timeout_seconds: DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS,
            metrics_address: None,
        }
    }
}

/// OIDC client-credentials settings (`oidc_token_url`, `oidc_client_id`, `oidc_client_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// How an offering authenticates to Waldur. As in the reference, a non-empty `waldur_api_token`
/// wins; OIDC is used only when the token is empty and all three `oidc_*` keys are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaldurAuth {
    /// `Authorization: Token <token>`.
    Token(Secret),
    /// `Authorization: Bearer <jwt>` from a client-credentials grant.
    Oidc(OidcCredentials),
}

impl WaldurAuth {
    /// The static token, if this offering uses one. The reference also uses it as the STOMP
    /// passcode.
    pub fn token(&self) -> Option<&Secret> {
        match self {
            WaldurAuth::Token(token) => Some(token),
            WaldurAuth::Oidc(_) => None,
        }
    }
}

/// One `offerings[]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Offering {
    pub name: String,
    /// `waldur_api_url`, always ending with `/`.
    pub waldur_api_url: String,
    /// From `waldur_api_token` or the `oidc_*` keys.
    pub auth: WaldurAuth,
    /// Used verbatim, as in the reference.
    pub waldur_offering_uuid: String,
    /// Lower-cased.
    pub backend_type: String,
    /// Free-form; each plugin validates its own keys.
    pub backend_settings: JsonMap,
    /// `measured_unit`, `accounting_type` and `label` are present in every entry. Keys that
    /// were not in the file stay unset (`unit_factor: None` means 1.0).
    pub backend_components: BackendComponents,
    /// Entry name of the order-processing backend; empty disables order processing.
    pub order_processing_backend: String,
    /// Empty disables membership sync.
    pub membership_sync_backend: String,
    /// Empty disables reporting.
    pub reporting_backend: String,
    /// Default `base`.
    pub username_management_backend: String,
    pub stomp_enabled: bool,
    /// `None` inherits `stomp_enabled`; see [`Offering::stomp_membership_sync`].
    pub stomp_membership_sync_enabled: Option<bool>,
    pub stomp_ws_host: Option<String>,
    pub stomp_ws_port: Option<u16>,
    pub stomp_ws_path: Option<String>,
    /// How the agent asks Waldur for its event queues (agent extension).
    pub stomp_subscription_flow: SubscriptionFlow,
    /// `wss` (default) or `ws`.
    pub websocket_use_tls: bool,
    pub resource_import_enabled: bool,
    pub username_reconciliation_enabled: bool,
    /// TLS verification for the Waldur API (default true).
    pub verify_ssl: bool,
    /// `backend_settings.default_homedir_umask` (default `0077`): the umask of the home
    /// directories the agent asks the plugin to create. Checked at load time; the plugin
    /// still sees the setting in `backend_settings`.
    pub homedir_umask: String,
    /// Agent extension: a membership cycle that would remove more user associations than
    /// this stops before writing anything (`None`: no bound, as the reference).
    pub max_user_removals_per_cycle: Option<usize>,
    /// Agent extension: an order cycle with more Terminate orders than this stops before
    /// processing any order (`None`: no bound, as the reference).
    pub max_terminations_per_cycle: Option<usize>,
}

/// The reference's `default_homedir_umask`.
pub const DEFAULT_HOMEDIR_UMASK: &str = "0077";

impl Default for Offering {
    /// The reference's defaults; `name`, URL, token, UUID and `backend_type` are empty.
    fn default() -> Self {
        Offering {
            name: String::new(),
            waldur_api_url: String::new(),
            auth: WaldurAuth::Token(Secret::default()),
            waldur_offering_uuid: String::new(),
            backend_type: String::new(),
            backend_settings: JsonMap::new(),
            backend_components: BackendComponents::new(),
            order_processing_backend: String::new(),
            membership_sync_backend: String::new(),
            reporting_backend: String::new(),
            username_management_backend: "base".to_owned(),
            stomp_enabled: false,
            stomp_membership_sync_enabled: None,
            stomp_ws_host: None,
            stomp_ws_port: None,
            stomp_ws_path: None,
            stomp_subscription_flow: SubscriptionFlow::Auto,
            websocket_use_tls: true,
            homedir_umask: DEFAULT_HOMEDIR_UMASK.to_owned(),
            resource_import_enabled: false,
            username_reconciliation_enabled: false,
            verify_ssl: true,
            max_user_removals_per_cycle: None,
            max_terminations_per_cycle: None,
        }
    }
}

/// How event queues are obtained from Waldur (`stomp_subscription_flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionFlow {
    /// `single_queue` first; `per_object_type` when Waldur does not know `register_queue`.
    #[default]
    Auto,
    /// One `register_queue` call and one queue `consumer_<id>` for every object type (the
    /// reference's PyPI 1.0.7).
    SingleQueue,
    /// `register_event_subscription` + `create_queue` per object type, one connection each
    /// (the reference's earlier releases).
    PerObjectType,
}

impl SubscriptionFlow {
    pub const NAMES: [&'static str; 3] = ["auto", "single_queue", "per_object_type"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "single_queue" => Some(Self::SingleQueue),
            "per_object_type" => Some(Self::PerObjectType),
            _ => None,
        }
    }
}

/// The default STOMP-over-WebSocket path.
pub const DEFAULT_STOMP_WS_PATH: &str = "/rmqws-stomp";

impl Offering {
    /// The plugin entries this offering needs, as `(config key, entry name)`: `backend_type`
    /// first, then every non-empty `*_backend` key (`order_processing_backend`,
    /// `membership_sync_backend`, `reporting_backend`, `username_management_backend`). The same
    /// entry name can appear under several keys.
    pub fn plugin_entries(&self) -> Vec<(&'static str, &str)> {
        [
            ("backend_type", self.backend_type.as_str()),
            (
                "order_processing_backend",
                self.order_processing_backend.as_str(),
            ),
            (
                "membership_sync_backend",
                self.membership_sync_backend.as_str(),
            ),
            ("reporting_backend", self.reporting_backend.as_str()),
            (
                "username_management_backend",
                self.username_management_backend.as_str(),
            ),
        ]
        .into_iter()
        .filter(|(_, name)| !name.is_empty())
        .collect()
    }

    /// Whether membership events come over STOMP: `stomp_membership_sync_enabled`, or
    /// `stomp_enabled` when that is unset. Nothing arrives unless `stomp_enabled` is also true.
    pub fn stomp_membership_sync(&self) -> bool {
        self.stomp_membership_sync_enabled
            .unwrap_or(self.stomp_enabled)
    }

    /// The host part of `waldur_api_url` (no scheme, credentials, port or path).
    pub fn api_host(&self) -> &str {
        let rest = self
            .waldur_api_url
            .split_once("://")
            .map_or(self.waldur_api_url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if let Some(bracketed) = host_port.strip_prefix('[') {
            // IPv6 literal: keep the brackets, drop a port after them.
            let end = bracketed.find(']').map_or(host_port.len(), |i| i + 2);
            return &host_port[..end];
        }
        host_port.split(':').next().unwrap_or("")
    }

    /// The STOMP WebSocket URL with the reference's defaults: host of `waldur_api_url`, port 443
    /// if `verify_ssl` else 80 (sic: the reference keys the port on `verify_ssl`, not on
    /// `websocket_use_tls`), path `/rmqws-stomp`; scheme `wss` if `websocket_use_tls` else `ws`.
    pub fn stomp_ws_url(&self) -> String {
        let scheme = if self.websocket_use_tls { "wss" } else { "ws" };
        let host = self
            .stomp_ws_host
            .as_deref()
            .unwrap_or_else(|| self.api_host());
        let port = self
            .stomp_ws_port
            .unwrap_or(if self.verify_ssl { 443 } else { 80 });
        let path = self
            .stomp_ws_path
            .as_deref()
            .unwrap_or(DEFAULT_STOMP_WS_PATH);
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{host}:{port}{slash}{path}")
    }
}
