//! The typed Waldur REST client.
//!
//! One [`WaldurClient`] per offering (cheap to clone, safe to share between tasks). It speaks
//! to exactly the endpoints of the reference agent (reference §2) with the reference's methods,
//! paths, query keys, body keys and accepted status codes; the endpoint methods live in
//! `endpoints/` and each names its reference call (A1, B3, O3, R2, U1, C3, ...).
//!
//! ```no_run
//! # async fn demo(offering: &waldur_agent::config::Offering,
//! #               config: &waldur_agent::config::Config) -> Result<(), waldur_agent::waldur::WaldurError> {
//! use waldur_agent::waldur::{OrderFilter, WaldurClient};
//! let client = WaldurClient::for_offering(offering, config, "order_process")?;
//! let orders = client
//!     .list_orders(&OrderFilter::pending(&offering.waldur_offering_uuid))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//! - **Base URL**: `waldur_api_url` (`http://host:port/api/`) + `<path>`. A URL whose path
//!   does not end in an `api` segment gets `api/` appended (`http://h/` -> `http://h/api/`),
//!   which is where the reference's requests go too; unlike the reference's
//!   `rstrip("/api")`, hosts ending in `a`, `p` or `i` are not mangled.
//! - **Auth** on every call: `Authorization: Token <t>`, or `Bearer <jwt>` from an OIDC
//!   client-credentials grant (cached until 30 s before expiry, 300 s when the server gives no
//!   lifetime, one fetch at a time, refetched once when Waldur answers 401). Unlike the
//!   reference, every code path supports OIDC.
//! - **Headers**: `User-Agent: waldur-agent/<version> (<mode>)` (the reference sends
//!   `waldur-site-agent-<mode>/<version>`); `Accept: application/json`; JSON bodies with
//!   `Content-Type: application/json`. Redirects are not followed (as the reference).
//! - **UUIDs** in paths and queries are normalised to lower-case hex ([`normalize_uuid`]).
//! - **Lists**: `page_size=100` where the reference's `sync_all` sends it, and every
//!   `Link: <url>; rel="next"` is followed, also for the lists the reference reads one page of.
//! - **Status codes** are strict: anything but the reference's accepted codes is a
//!   [`WaldurError::Status`] (e.g. `set_usage` must answer 201).
//! - **Retries**: transient failures (transport, timeout, 5xx, 429) are retried with jittered
//!   exponential backoff ([`RetryPolicy`]); `Retry-After` is honoured. Non-idempotent POSTs are
//!   retried only when they provably did not reach Waldur.
//! - **Secrets**: tokens, client secrets and proxy credentials never appear in `Debug`,
//!   `Display`, error messages or log records.
//! - **Concurrency**: calls are `async` and independent; modes bound their fan-out with
//!   [`for_each_concurrent`] / [`map_concurrent`].

mod auth;
mod call;
mod concurrency;
mod decode;
mod endpoints;
mod error;
mod http;
mod models;
mod pagination;
mod retry;
mod uuid;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use concurrency::{for_each_concurrent, map_concurrent, DEFAULT_CONCURRENCY};
pub use endpoints::{
    ApiKeyFilter, NewKeyValue, OfferingUserFilter, OrderFilter, ResourceFilter,
    HISTORICAL_RESOURCE_FIELDS, MEMBERSHIP_RESOURCE_FIELDS, REPORT_RESOURCE_FIELDS,
};
pub use error::WaldurError;
pub use models::*;
pub use retry::RetryPolicy;
pub use uuid::normalize_uuid;

use crate::config::{Config, Offering, Secret, WaldurAuth};

/// Settings of a [`WaldurClient`] besides URL and credentials.
#[derive(Clone)]
pub struct ClientOptions {
    /// See [`user_agent`].
    pub user_agent: String,
    /// Per attempt, from connect to the end of the body. Default 600 s, as the reference.
    pub timeout: Duration,
    /// For the OIDC token request. Default 30 s, as the reference.
    pub oidc_timeout: Duration,
    /// `verify_ssl` of the offering; false accepts any certificate.
    pub verify_ssl: bool,
    /// `global_proxy`: every request, including the OIDC token request, goes through it.
    pub proxy: Option<Secret>,
    pub retry: RetryPolicy,
    /// A dry run: requests other than GET are recorded here and not sent (see
    /// [`crate::dry_run`]).
    pub dry_run: Option<crate::dry_run::WaldurWrites>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("oidc_timeout", &self.oidc_timeout)
            .field("verify_ssl", &self.verify_ssl)
            .field("proxy", &self.proxy) // Secret: prints ***
            .field("retry", &self.retry)
            .field("dry_run", &self.dry_run.is_some())
            .finish()
    }
}

impl ClientOptions {
    /// The defaults for an agent mode (`order_process`, `report`, `membership_sync`,
    /// `event_process`, or a CLI tool name).
    pub fn new(mode: &str) -> ClientOptions {
        ClientOptions {
            user_agent: user_agent(mode),
            timeout: Duration::from_secs(600),
            oidc_timeout: Duration::from_secs(30),
            verify_ssl: true,
            proxy: None,
            retry: RetryPolicy::default(),
            dry_run: None,
        }
    }
}

/// `waldur-agent/<version> (<mode>)`. The reference sends `waldur-site-agent-<mode>/<version>`;
/// the product token here names this agent, and the mode travels as a comment so that Waldur's
/// logs can still tell the modes apart.
pub fn user_agent(mode: &str) -> String {
    format!("waldur-agent/{} ({mode})", crate::AGENT_VERSION)
}

/// A client for one Waldur API and one set of credentials. Clones share the connection pool
/// and the OIDC token.
#[derive(Clone)]
pub struct WaldurClient {
    http: Arc<http::Http>,
}

impl std::fmt::Debug for WaldurClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WaldurClient").field(&self.http).finish()
    }
}

impl WaldurClient {
    /// A client for `api_url` (`waldur_api_url`, e.g. `https://waldur.example.com/api/`).
    pub fn new(
        api_url: &str,
        auth: &WaldurAuth,
        options: ClientOptions,
    ) -> Result<WaldurClient, WaldurError> {
        let http = http::Http::new(api_url, auth::Auth::from_config(auth), &options)?;
        Ok(WaldurClient {
            http: Arc::new(http),
        })
    }

    /// The client for an offering of the configuration: its URL, token or OIDC credentials
    /// and `verify_ssl`, the global proxy, the default timeout and retries.
    pub fn for_offering(
        offering: &Offering,
        config: &Config,
        mode: &str,
    ) -> Result<WaldurClient, WaldurError> {
        let options = WaldurClient::offering_options(offering, config, mode);
        WaldurClient::new(&offering.waldur_api_url, &offering.auth, options)
    }

    /// The options [`WaldurClient::for_offering`] uses, for callers that adjust them.
    pub fn offering_options(offering: &Offering, config: &Config, mode: &str) -> ClientOptions {
        ClientOptions {
            verify_ssl: offering.verify_ssl,
            proxy: config.global_proxy.clone(),
            ..ClientOptions::new(mode)
        }
    }

    /// In a dry run: a withheld write set `field` of `uuid` (a no-op otherwise).
    pub(crate) fn assume(&self, field: crate::dry_run::Assumed, uuid: &str, value: &str) {
        if let Some(withheld) = self.http.withheld() {
            withheld.assume(field, uuid, value);
        }
    }

    /// In a dry run: what a withheld write set `field` of `uuid` to.
    pub(crate) fn assumed(&self, field: crate::dry_run::Assumed, uuid: &str) -> Option<String> {
        self.http.withheld()?.assumed(field, uuid)
    }

    /// The URL every request path is appended to; ends with `/api/`.
    pub fn api_base(&self) -> &str {
        self.http.base().as_str()
    }

    /// [`Self::api_base`] fit to print: a password in the URL (`https://user:pass@host/`)
    /// is shown as `***`.
    pub fn api_base_redacted(&self) -> String {
        let mut url = self.http.base().clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have credentials, and this one has them.
            let _ = url.set_password(Some("***"));
        }
        url.to_string()
    }
}
