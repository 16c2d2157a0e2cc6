//! Requests plugins make through the agent (the host API's `waldur_request` callback): any
//! path below the offering's API URL, with the offering's credentials.

use reqwest::Method;
use serde_json::Value;

use super::super::call::Call;
use super::super::error::WaldurError;
use super::super::retry::RetryMode;
use super::super::WaldurClient;

impl WaldurClient {
    /// One request for a plugin. `path` is relative to the API URL (`marketplace-orders/`);
    /// `query` is a JSON object whose arrays become repeated keys. Only GET, PUT and PATCH are
    /// retried freely: the agent cannot know whether a plugin's POST is safe to repeat.
    pub async fn plugin_request(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
    ) -> Result<Value, WaldurError> {
        let endpoint = "plugin request";
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            WaldurError::Unexpected {
                endpoint,
                message: format!("'{method}' is not an HTTP method"),
            }
        })?;
        let segments = relative_segments(path).ok_or_else(|| WaldurError::Unexpected {
            endpoint,
            message: format!("'{path}' is not a path below the Waldur API"),
        })?;
        let mut url = self.http.url(&segments, Default::default());
        if let Some(pairs) = query.as_object() {
            let mut url_query = url.query_pairs_mut();
            for (key, value) in pairs {
                match value {
                    Value::Array(items) => {
                        for item in items {
                            url_query.append_pair(key, &scalar(item));
                        }
                    }
                    Value::Null => {}
                    other => {
                        url_query.append_pair(key, &scalar(other));
                    }
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let retry = if matches!(method, Method::GET | Method::PUT | Method::PATCH) {
            RetryMode::Idempotent
        } else {
            RetryMode::UnlessDelivered
        };
        let call = match body {
            Some(body) => Call::with_json(endpoint, method, url, body),
            None => Call {
                endpoint,
                method,
                url,
                body: None,
                accepted: &[200],
                retry,
                planned_reply: "{}",
            },
        }
        .accept(&[200, 201, 202, 204])
        .retry(retry);
        let reply = self.http.execute(&call).await?;
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&reply.body).map_err(|e| WaldurError::Unexpected {
            endpoint,
            message: format!("the answer to {} is not JSON: {e}", call.url.path()),
        })
    }
}

/// Path segments of a relative API path; `None` for anything that could leave the API
/// (absolute URLs, `..`, an empty path).
fn relative_segments(path: &str) -> Option<Vec<&str>> {
    let path = path.trim_start_matches('/').trim_start_matches("api/");
    if path.contains("://") || path.is_empty() {
        return None;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() || segments.iter().any(|s| *s == ".." || *s == ".") {
        return None;
    }
    Some(segments)
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::relative_segments;

    #[test]
    fn only_paths_below_the_api_are_accepted() {
        assert_eq!(
            relative_segments("marketplace-orders/abc/"),
            Some(vec!["marketplace-orders", "abc"])
        );
        assert_eq!(
            relative_segments("/api/users/me/"),
            Some(vec!["users", "me"])
        );
        assert_eq!(relative_segments("https://evil.example/x"), None);
        assert_eq!(relative_segments("../admin/"), None);
        assert_eq!(relative_segments(""), None);
    }
}
