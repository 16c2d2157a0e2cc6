//! `sentry_dsn`: errors and panics reported to Sentry (`SENTRY_ENVIRONMENT` names the
//! environment), as the reference does; ERROR records become events, INFO and WARNING ones
//! their breadcrumbs. Every string of an event is scrubbed before it leaves: the configured
//! tokens and secrets, `Token`/`Bearer` credentials and the query parameters the reference
//! scrubs (`token`, `password`, `api_key`, `secret_key`, ...).

use std::sync::Arc;

use serde_json::Value;

use crate::config::Config;

/// The reference's scrubbed query parameter names.
const SECRET_PARAMETERS: &[&str] = &[
    "secretKey",
    "secret_key",
    "secret-key",
    "api_key",
    "apiKey",
    "api-key",
    "token",
    "password",
];

/// What replaces a secret.
pub const FILTERED: &str = "[Filtered]";

/// Replaces secrets in text.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// The secrets of `config`: tokens, OIDC client secrets, the proxy URL.
    pub fn for_config(config: &Config) -> Scrubber {
        let mut secrets: Vec<String> = Vec::new();
        for offering in &config.offerings {
            match &offering.auth {
                crate::config::WaldurAuth::Token(token) => secrets.push(token.expose().into()),
                crate::config::WaldurAuth::Oidc(oidc) => {
                    secrets.push(oidc.client_secret.expose().into())
                }
            }
        }
        if let Some(proxy) = &config.global_proxy {
            secrets.push(proxy.expose().into());
        }
        // Short values would turn ordinary words into "[Filtered]".
        secrets.retain(|s| s.len() >= 6);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Scrubber { secrets }
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), FILTERED);
            }
        }
        for scheme in ["Token ", "Bearer "] {
            text = replace_after(&text, scheme, |c: char| c.is_whitespace() || c == '"');
        }
        for name in SECRET_PARAMETERS {
            for separator in ["=", "\": \"", "\":\""] {
                let key = format!("{name}{separator}");
                text = replace_after(&text, &key, |c: char| {
                    c == '&' || c == '"' || c == '\'' || c.is_whitespace()
                });
            }
        }
        text
    }

    /// Every string inside `value`, scrubbed.
    pub fn scrub_json(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.scrub(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.scrub_json(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.scrub_json(v)),
            _ => {}
        }
    }

    /// A Sentry payload (event or breadcrumb) with every string scrubbed; `None` if it does
    /// not survive the round trip (it is then not sent at all rather than sent unscrubbed).
    fn scrub_payload<T>(&self, payload: T) -> Option<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut value = serde_json::to_value(&payload).ok()?;
        self.scrub_json(&mut value);
        serde_json::from_value(value).ok()
    }
}

/// Replaces the word after each `marker` (up to a character `end` accepts) with [`FILTERED`].
fn replace_after(text: &str, marker: &str, end: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        let stop = after.find(&end).unwrap_or(after.len());
        if stop > 0 && &after[..stop] != FILTERED {
            out.push_str(FILTERED);
        } else {
            out.push_str(&after[..stop]);
        }
        rest = &after[stop..];
    }
    out.push_str(rest);
    out
}

/// Starts the Sentry client when `sentry_dsn` is set; the guard flushes it when dropped.
/// A DSN Sentry cannot use is one error line, and the agent runs without Sentry.
pub fn init(config: &Config) -> Option<sentry::ClientInitGuard> {
    let dsn_text = config.sentry_dsn.as_ref()?;
    let dsn: sentry::types::Dsn = match dsn_text.expose().parse() {
        Ok(dsn) => dsn,
        Err(e) => {
            tracing::error!("sentry_dsn is not a Sentry DSN ({e}); errors are not reported");
            return None;
        }
    };
    let scrubber = Arc::new(Scrubber::for_config(config));
    let for_events = Arc::clone(&scrubber);
    let options = sentry::ClientOptions {
        dsn: Some(dsn),
        release: Some(format!("waldur-agent@{}", crate::AGENT_VERSION).into()),
        environment: std::env::var("SENTRY_ENVIRONMENT")
            .ok()
            .filter(|e| !e.is_empty())
            .map(Into::into),
        send_default_pii: false,
        before_send: Some(Arc::new(move |event| for_events.scrub_payload(event))),
        before_breadcrumb: Some(Arc::new(move |crumb| scrubber.scrub_payload(crumb))),
        ..Default::default()
    };
    Some(sentry::init(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber {
            secrets: vec!["s3cr3t-token-value".into()],
        }
    }

    #[test]
    fn configured_secrets_credentials_and_parameters_are_filtered() {
        let s = scrubber();
        assert_eq!(
            s.scrub("GET /x?token=abc&page=2 failed with s3cr3t-token-value"),
            "GET /x?token=[Filtered]&page=2 failed with [Filtered]"
        );
        assert_eq!(
            s.scrub("Authorization: Token abcdef123 sent"),
            "Authorization: Token [Filtered] sent"
        );
        assert_eq!(
            s.scrub(r#"{"password": "hunter2"}"#),
            r#"{"password": "[Filtered]"}"#
        );
        assert_eq!(
            s.scrub("api_key=k1 apiKey=k2"),
            "api_key=[Filtered] apiKey=[Filtered]"
        );
        assert_eq!(s.scrub("nothing secret here"), "nothing secret here");
        // Idempotent.
        let once = s.scrub("token=abc");
        assert_eq!(s.scrub(&once), once);
    }

    #[test]
    fn every_string_of_an_event_is_scrubbed() {
        let s = scrubber();
        let mut event = sentry::protocol::Event {
            message: Some("failed with s3cr3t-token-value".into()),
            ..Default::default()
        };
        event.extra.insert(
            "url".into(),
            Value::String("https://w/api/?token=zzz".into()),
        );
        let event = s.scrub_payload(event).unwrap();
        assert_eq!(event.message.as_deref(), Some("failed with [Filtered]"));
        assert_eq!(event.extra["url"], "https://w/api/?token=[Filtered]");
    }

    #[test]
    fn secrets_come_from_the_config() {
        let config = Config {
            offerings: vec![crate::config::Offering {
                auth: crate::config::WaldurAuth::Token(crate::config::Secret::new(
                    "0123456789abcdef",
                )),
                ..Default::default()
            }],
            ..Default::default()
        };
        let s = Scrubber::for_config(&config);
        assert_eq!(s.scrub("x 0123456789abcdef y"), "x [Filtered] y");
    }
}
