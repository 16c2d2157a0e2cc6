//! What one request to Waldur is, as an endpoint method describes it: endpoint, method, URL
//! with its query, body, accepted statuses and retry mode. [`super::http`] sends it.

use reqwest::{Method, Url};
use serde::Serialize;

use super::retry::RetryMode;
use super::uuid::normalize_uuid;

/// One request to Waldur, as an endpoint method describes it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Reference id and name, e.g. `"O3 approve_by_provider"`; used in errors and logs.
    pub endpoint: &'static str,
    pub method: Method,
    pub url: Url,
    /// A serialized JSON body; `None` sends no body and no `Content-Type` (the reference's
    /// body-less POSTs such as `set_state_done`).
    pub body: Option<Vec<u8>>,
    /// The status codes the reference's client accepts for this endpoint; anything else is a
    /// [`super::error::WaldurError::Status`].
    pub accepted: &'static [u16],
    pub retry: RetryMode,
    /// What a dry run answers for this write instead of sending it: JSON with the fields the
    /// endpoint method reads from the real answer. `{}` for most writes.
    pub planned_reply: &'static str,
}

impl Call {
    /// A GET accepting 200.
    pub(crate) fn get(endpoint: &'static str, url: Url) -> Call {
        Call {
            endpoint,
            method: Method::GET,
            url,
            body: None,
            accepted: &[200],
            retry: RetryMode::Idempotent,
            planned_reply: "{}",
        }
    }

    /// A request with a JSON body accepting 200, retried as idempotent unless told otherwise.
    pub(crate) fn with_json(
        endpoint: &'static str,
        method: Method,
        url: Url,
        body: &impl Serialize,
    ) -> Call {
        Call {
            endpoint,
            method,
            url,
            // Our request bodies are plain structs and maps with string keys.
            body: Some(serde_json::to_vec(body).expect("request bodies serialize to JSON")),
            accepted: &[200],
            retry: RetryMode::Idempotent,
            planned_reply: "{}",
        }
    }

    /// A body-less POST accepting 200.
    pub(crate) fn post_empty(endpoint: &'static str, url: Url) -> Call {
        Call {
            endpoint,
            method: Method::POST,
            url,
            body: None,
            accepted: &[200],
            retry: RetryMode::Idempotent,
            planned_reply: "{}",
        }
    }

    pub(crate) fn accept(mut self, accepted: &'static [u16]) -> Call {
        self.accepted = accepted;
        self
    }

    pub(crate) fn retry(mut self, retry: RetryMode) -> Call {
        self.retry = retry;
        self
    }

    pub(crate) fn planned_reply(mut self, reply: &'static str) -> Call {
        self.planned_reply = reply;
        self
    }
}

/// The planned reply of writes whose answer is `{status}`.
pub(crate) const PLANNED_STATUS: &str = r#"{"status": "not sent (dry run)"}"#;

/// Query parameters in the order they are added; lists are repeated keys
/// (`state=OK&state=Erred`), booleans `true`/`false`, as httpx sends them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(&'static str, String)>);

impl Query {
    pub(crate) fn new() -> Query {
        Query::default()
    }

    pub(crate) fn add(mut self, key: &'static str, value: impl Into<String>) -> Query {
        self.0.push((key, value.into()));
        self
    }

    /// A UUID, normalised.
    pub(crate) fn uuid(self, key: &'static str, uuid: &str) -> Query {
        self.add(key, normalize_uuid(uuid))
    }

    pub(crate) fn opt_uuid(self, key: &'static str, uuid: Option<&str>) -> Query {
        match uuid {
            Some(uuid) => self.uuid(key, uuid),
            None => self,
        }
    }

    pub(crate) fn flag(self, key: &'static str, value: bool) -> Query {
        self.add(key, if value { "true" } else { "false" })
    }

    /// One `key=value` pair per value.
    pub(crate) fn each<S: AsRef<str>>(mut self, key: &'static str, values: &[S]) -> Query {
        for value in values {
            self.0.push((key, value.as_ref().to_owned()));
        }
        self
    }

    /// Appends the pairs to `url`'s query, in order.
    pub(crate) fn append_to(&self, url: &mut Url) {
        if !self.0.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.0.iter().map(|(k, v)| (*k, v.as_str())));
        }
    }

    /// `field=a&field=b`: Waldur's field selection.
    pub(crate) fn fields<S: AsRef<str>>(self, fields: &[S]) -> Query {
        self.each("field", fields)
    }
}
