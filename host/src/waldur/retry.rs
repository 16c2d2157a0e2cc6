//! When to try a Waldur request again, and how long to wait before doing so.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::error::WaldurError;

/// Retries of transient failures (transport errors, timeouts, 5xx, 429) inside one client call.
///
/// The wait before retry `n` (1-based) is `min(max_delay, base_delay * 2^(n-1))`, scaled by a
/// random factor in `[0.5, 1.0)` so that many resources failing together do not retry in
/// lock-step. A `Retry-After` header on a 429 or 503 replaces the computed wait (capped at
/// `max_retry_after`).
///
/// These retries are short and local; the order processor's own 10 x 5 s retry loop of the
/// reference (processors.py `process_order_with_retries`) sits above them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first one; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` we honour; a longer one is shortened to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The jittered exponential wait before retry number `retry` (1-based).
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let raw = self.base_delay.saturating_mul(1u32 << exponent);
        let capped = raw.min(self.max_delay);
        capped.mul_f64(0.5 + 0.5 * random_unit())
    }
}

/// Whether a request may be sent again after a failure.
///
/// Every Waldur call of the agent is idempotent except creating an agent identity (A2) and
/// shipping log lines (A9): repeating those after the first attempt reached Waldur would create
/// a duplicate identity or duplicate log lines. See the per-endpoint notes in `endpoints/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryMode {
    /// Safe to repeat: GET, PUT, PATCH and POSTs that set a value or move a state machine to a
    /// target state.
    Idempotent,
    /// Repeat only when the request provably did not reach Waldur: the connection was never
    /// established, or Waldur refused it with 429 before doing anything.
    UnlessDelivered,
}

impl RetryMode {
    pub(crate) fn allows(self, error: &WaldurError) -> bool {
        if !error.is_transient() {
            return false;
        }
        match self {
            RetryMode::Idempotent => true,
            RetryMode::UnlessDelivered => match error {
                WaldurError::Transport { connect, .. } => *connect,
                WaldurError::Status { status, .. } => *status == 429,
                // The token endpoint is not Waldur: nothing was sent to Waldur yet.
                WaldurError::Oidc { .. } => true,
                _ => false,
            },
        }
    }
}

/// The wait a 429/503 answer asks for: `Retry-After` as delta-seconds or as an HTTP date.
pub(crate) fn retry_after(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if status != 429 && status != 503 {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let millis = when.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(millis.max(0) as u64))
}

/// A number in `[0, 1)`, random enough for jitter. The standard library's per-instance
/// random hash keys avoid a dependency for this one use.
fn random_unit() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(100));
            let second = policy.backoff(2);
            assert!(second >= Duration::from_millis(100) && second < Duration::from_millis(200));
            let late = policy.backoff(40);
            assert!(late >= Duration::from_millis(175) && late < Duration::from_millis(350));
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(429, &headers), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(500, &headers), None);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(503, &headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(429, &headers), None);
    }

    #[test]
    fn non_idempotent_requests_retry_only_when_undelivered() {
        let transport = |connect| WaldurError::Transport {
            method: reqwest::Method::POST,
            path: "/api/x/".into(),
            message: String::new(),
            connect,
        };
        let status = |status| WaldurError::Status {
            method: reqwest::Method::POST,
            path: "/api/x/".into(),
            status,
            body: String::new(),
        };
        assert!(RetryMode::UnlessDelivered.allows(&transport(true)));
        assert!(!RetryMode::UnlessDelivered.allows(&transport(false)));
        assert!(RetryMode::UnlessDelivered.allows(&status(429)));
        assert!(!RetryMode::UnlessDelivered.allows(&status(502)));
        assert!(RetryMode::Idempotent.allows(&status(502)));
        assert!(!RetryMode::Idempotent.allows(&status(400)));
    }
}
