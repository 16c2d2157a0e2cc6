//! The `Authorization` header: a static token, or a bearer token from an OIDC
//! client-credentials grant (reference §1.2, `fetch_oidc_token`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;

use super::error::{chain_message, excerpt, is_transient_status, WaldurError};
use crate::config::{OidcCredentials, Secret, WaldurAuth};

/// A token is refreshed this long before it expires, as in the reference.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token endpoint sends no `expires_in`, as in the reference.
const FALLBACK_TTL: Duration = Duration::from_secs(300);

/// Where the client's credentials come from.
#[derive(Clone)]
pub(crate) enum Auth {
    /// `Authorization: Token <token>`.
    Token(Secret),
    /// `Authorization: Bearer <access token>`.
    Oidc(Arc<OidcTokenSource>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(***)"),
            Auth::Oidc(source) => write!(
                f,
                "Oidc {{ token_url: {:?}, client_id: {:?} }}",
                source.credentials.token_url, source.credentials.client_id
            ),
        }
    }
}

impl Auth {
    pub(crate) fn from_config(auth: &WaldurAuth) -> Auth {
        match auth {
            WaldurAuth::Token(token) => Auth::Token(token.clone()),
            WaldurAuth::Oidc(credentials) => Auth::Oidc(OidcTokenSource::shared(credentials)),
        }
    }

    /// The header for the next request and the credential it carries (so that a 401 can
    /// invalidate exactly that token).
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        oidc_timeout: Duration,
    ) -> Result<(HeaderValue, Secret), WaldurError> {
        let (scheme, secret) = match self {
            Auth::Token(token) => ("Token", token.clone()),
            Auth::Oidc(source) => ("Bearer", source.token(http, oidc_timeout).await?),
        };
        let mut value =
            HeaderValue::from_str(&format!("{scheme} {}", secret.expose())).map_err(|_| {
                WaldurError::Setup(
                    "the Waldur token contains characters not allowed in an HTTP header".into(),
                )
            })?;
        // Keeps the value out of `Debug` output of the header map and of HTTP/2 tables.
        value.set_sensitive(true);
        Ok((value, secret))
    }

    /// Forgets a bearer token Waldur refused, so the next request fetches a new one.
    /// Returns whether a retry with a fresh credential makes sense.
    pub(crate) async fn reject(&self, used: &Secret) -> bool {
        match self {
            Auth::Token(_) => false,
            Auth::Oidc(source) => {
                source.invalidate(used).await;
                true
            }
        }
    }

    /// The long-lived secrets, for scrubbing error messages.
    pub(crate) fn secrets(&self) -> Vec<Secret> {
        match self {
            Auth::Token(token) => vec![token.clone()],
            Auth::Oidc(source) => vec![source.credentials.client_secret.clone()],
        }
    }
}

/// One client-credentials grant and its cached access token.
///
/// Shared process-wide per (token URL, client id, secret), like the reference's module-level
/// cache keyed by (url, client_id), so offerings with the same credentials share one token.
/// The cache lock is held while a token is fetched: concurrent requests wait for that one
/// fetch instead of starting their own.
pub(crate) struct OidcTokenSource {
    credentials: OidcCredentials,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

type Registry = Mutex<HashMap<(String, String, String), Arc<OidcTokenSource>>>;

impl OidcTokenSource {
    fn shared(credentials: &OidcCredentials) -> Arc<OidcTokenSource> {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        let key = (
            credentials.token_url.clone(),
            credentials.client_id.clone(),
            credentials.client_secret.expose().to_owned(),
        );
        let mut registry = REGISTRY
            .get_or_init(Registry::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry
            .entry(key)
            .or_insert_with(|| {
                Arc::new(OidcTokenSource {
                    credentials: credentials.clone(),
                    cached: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    async fn token(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<Secret, WaldurError> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            if Instant::now() < current.refresh_at {
                return Ok(current.token.clone());
            }
        }
        let fresh = self.fetch(http, timeout).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn invalidate(&self, used: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == used) {
            *cached = None;
        }
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<CachedToken, WaldurError> {
        let url = &self.credentials.token_url;
        let error = |message: String, status: Option<u16>, transient: bool| WaldurError::Oidc {
            url: url.clone(),
            message: scrub(&message, &self.credentials.client_secret),
            status,
            transient,
        };
        tracing::debug!(token_url = %url, client_id = %self.credentials.client_id, "fetching an OIDC access token");
        let started = Instant::now();
        let response = http
            .post(url)
            .timeout(timeout)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.credentials.client_id.as_str()),
                ("client_secret", self.credentials.client_secret.expose()),
            ])
            .send()
            .await
            .map_err(|e| error(chain_message(&e.without_url()), None, true))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| error(chain_message(&e.without_url()), None, true))?;
        if !(200..300).contains(&status) {
            return Err(error(
                format!("HTTP {status}: {}", excerpt(&body)),
                Some(status),
                is_transient_status(status),
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            error(
                format!("the answer has no usable access_token: {e}"),
                Some(status),
                false,
            )
        })?;
        if parsed.access_token.is_empty() {
            return Err(error(
                "the answer has an empty access_token".into(),
                Some(status),
                false,
            ));
        }
        let lifetime = parsed
            .expires_in
            .as_ref()
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()))
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map_or(FALLBACK_TTL, Duration::from_secs_f64);
        tracing::debug!(
            token_url = %url,
            lifetime_s = lifetime.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "got an OIDC access token"
        );
        Ok(CachedToken {
            token: Secret::new(parsed.access_token),
            // `started`, not now: the lifetime counts from when the server issued it.
            refresh_at: started + lifetime.saturating_sub(EXPIRY_MARGIN),
        })
    }
}

/// Replaces every occurrence of `secret` in `text` by `***`.
pub(crate) fn scrub(text: &str, secret: &Secret) -> String {
    if secret.expose().len() < 4 {
        // Too short to be a real credential; replacing it would mangle ordinary words.
        return text.to_owned();
    }
    text.replace(secret.expose(), "***")
}
