//! The one error type of the Waldur client.

use std::time::Duration;

use reqwest::Method;

/// Anything that can go wrong talking to Waldur. `Display` is a single line that never contains
/// a token, a client secret or proxy credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaldurError {
    /// The request did not get an HTTP answer (DNS, connect, TLS, reset, ...). `connect` is true
    /// when the connection was never established, i.e. the request provably did not reach Waldur.
    #[error("{method} {path}: cannot reach Waldur: {message}")]
    Transport {
        method: Method,
        path: String,
        message: String,
        connect: bool,
    },
    /// No complete answer within the request timeout.
    #[error("{method} {path}: no complete response within {}s", timeout.as_secs_f64())]
    Timeout {
        method: Method,
        path: String,
        timeout: Duration,
    },
    /// Waldur answered with a status code the endpoint does not accept (the reference's
    /// `UnexpectedStatus`). `body` is a short one-line excerpt.
    #[error("{method} {path}: unexpected HTTP status {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        body: String,
    },
    /// The answer had an accepted status but its body does not fit the endpoint's model.
    /// `field` is the JSON path of the offending value (`[3].uuid`, `components[0].type`), or
    /// `(body)` when the body is not JSON at all.
    #[error("{endpoint}: undecodable response of {method} {path} at {field}: {message}")]
    Decode {
        endpoint: &'static str,
        method: Method,
        path: String,
        field: String,
        message: String,
    },
    /// Getting an OIDC access token failed. `transient` as for [`WaldurError::is_transient`].
    #[error("OIDC token request to {url} failed: {message}")]
    Oidc {
        url: String,
        message: String,
        status: Option<u16>,
        transient: bool,
    },
    /// The answer decoded but breaks an expectation of the endpoint (e.g. an empty
    /// service-provider list, a `Link` to another host).
    #[error("{endpoint}: {message}")]
    Unexpected {
        endpoint: &'static str,
        message: String,
    },
    /// The client could not be built (bad URL, bad proxy, TLS setup).
    #[error("Waldur client setup: {0}")]
    Setup(String),
}

impl WaldurError {
    /// Worth retrying later: transport errors, timeouts, HTTP 5xx and 429 (the reference's
    /// `_is_transient_waldur_api_error`), and the same failures of the OIDC token endpoint.
    pub fn is_transient(&self) -> bool {
        match self {
            WaldurError::Transport { .. } | WaldurError::Timeout { .. } => true,
            WaldurError::Status { status, .. } => is_transient_status(*status),
            WaldurError::Oidc { transient, .. } => *transient,
            WaldurError::Decode { .. } | WaldurError::Unexpected { .. } | WaldurError::Setup(_) => {
                false
            }
        }
    }

    /// The HTTP status of a [`WaldurError::Status`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            WaldurError::Status { status, .. } => Some(*status),
            WaldurError::Oidc { status, .. } => *status,
            _ => None,
        }
    }

    /// True for HTTP 404 (the reference raises for it like for any unlisted status).
    pub fn is_not_found(&self) -> bool {
        matches!(self, WaldurError::Status { status: 404, .. })
    }

    /// The body excerpt of a [`WaldurError::Status`] error (e.g. to look for Waldur's
    /// "backfilling past billing periods" message on a 400).
    pub fn body(&self) -> Option<&str> {
        match self {
            WaldurError::Status { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// 5xx and 429.
pub(crate) fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429
}

/// At most this many characters of a response body go into an error.
const EXCERPT_CHARS: usize = 300;

/// A single-line, bounded excerpt of a response body.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push_str("...");
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "(empty body)".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Flattens an error and its sources into one line, without the request URL (callers put the
/// path in the message themselves).
pub(crate) fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string().replace(['\n', '\r'], " ");
        // hyper and reqwest repeat the cause in the outer message; keep each text once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        let status = |status| WaldurError::Status {
            method: Method::GET,
            path: "/api/x/".into(),
            status,
            body: String::new(),
        };
        assert!(status(500).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).is_transient());
        assert!(status(404).is_not_found());
    }

    #[test]
    fn excerpt_is_one_bounded_line() {
        let long = "a\nb".repeat(500);
        let e = excerpt(long.as_bytes());
        assert!(!e.contains('\n'));
        assert!(e.len() <= EXCERPT_CHARS + 3);
        assert_eq!(excerpt(b"  "), "(empty body)");
    }
}
