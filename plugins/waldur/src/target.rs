//! The target Waldur's REST API, as the plugin's own backend: token authentication, `Link`
//! pagination, uuids checked before they reach a path, and failures sorted into what the
//! agent retries (unreachable, 5xx, 429, a garbled answer: BACKEND_NOT_READY) and what it
//! reports (a refusal: BACKEND_ERROR naming the call and Waldur's reason).

use std::time::Duration;

use serde_json::Value;
use waldur_plugin_abi::Error;

/// Attempts of a read before its failure is returned (writes are never repeated here: the
/// agent's next attempt finds and adopts what a lost write did).
const READ_ATTEMPTS: u32 = 3;
const READ_BACKOFF: Duration = Duration::from_millis(200);
/// Longest piece of an error body kept in a message.
const DETAIL_CHARS: usize = 300;
const PAGE_SIZE: &str = "200";

/// A uuid as Waldur writes it in paths and filters (32 lower-case hex digits), from either
/// form; `None` for anything else, so a hostile value never becomes part of a path.
pub fn normalize_uuid(value: &str) -> Option<String> {
    let hex: String = value.trim().chars().filter(|c| *c != '-').collect();
    let dashes = value.trim().len() - hex.len();
    if hex.len() == 32 && (dashes == 0 || dashes == 4) && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        Some(hex.to_ascii_lowercase())
    } else {
        None
    }
}

/// A uuid from Waldur that must be one, or INVALID_INPUT naming what it was.
pub fn checked_uuid(value: &str, what: &str) -> Result<String, Error> {
    normalize_uuid(value)
        .ok_or_else(|| Error::invalid_input(format!("{what} {value:?} is not a uuid")))
}

/// A failed call to the target.
#[derive(Debug, Clone)]
pub struct TargetError {
    /// The HTTP status; `None` when no answer came (or it could not be read).
    pub status: Option<u16>,
    /// `GET /api/marketplace-orders/<uuid>/`.
    pub call: String,
    pub detail: String,
}

impl TargetError {
    /// Worth another attempt later: no answer, a garbled one, 5xx or 429.
    pub fn is_transient(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status >= 500 || status == 429,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(
                f,
                "target Waldur answered {status} to {}: {}",
                self.call, self.detail
            ),
            None => write!(f, "target Waldur: {}: {}", self.call, self.detail),
        }
    }
}

impl From<TargetError> for Error {
    fn from(e: TargetError) -> Self {
        if e.is_transient() {
            Error::not_ready(e.to_string())
        } else {
            Error::backend(e.to_string())
        }
    }
}

pub type TargetResult<T> = Result<T, TargetError>;

/// One line of an error body: Waldur's `detail` or the body itself, shortened.
fn detail_of(body: &str) -> String {
    let text = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > DETAIL_CHARS {
        format!("{}...", line.chars().take(DETAIL_CHARS).collect::<String>())
    } else {
        line
    }
}

/// The next page of a `Link: <url>; rel="next"` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

/// The target Waldur.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://waldur-b.example.org` (no `/api`, no trailing slash).
    origin: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Target {
    pub fn new(api_url: &str, token: &str, timeout: Duration) -> Result<Self, Error> {
        let trimmed = api_url.trim().trim_end_matches('/');
        let origin = trimmed.strip_suffix("/api").unwrap_or(trimmed).to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("waldur-plugin-waldur/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the target Waldur client: {e}")))?;
        Ok(Self {
            origin,
            token: token.to_string(),
            http,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `<origin>/api/<path>`: the hyperlinks Waldur takes in bodies.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/{path}", self.origin)
    }

    fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> TargetResult<(Value, Option<String>)> {
        let path = url.strip_prefix(&self.origin).unwrap_or(url);
        let call = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let fail = |status: Option<u16>, detail: String| TargetError {
            status,
            call: call.clone(),
            detail,
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", self.token),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        // The error of reqwest names the URL, never the token (it is a header).
        let response = request
            .send()
            .map_err(|e| fail(None, e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let next = next_link(response.headers());
        let text = response
            .text()
            .map_err(|e| fail(None, format!("reading the answer: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(fail(Some(status), detail_of(&text)));
        }
        if text.trim().is_empty() {
            return Ok((Value::Null, next));
        }
        let value = serde_json::from_str(&text).map_err(|e| {
            fail(
                None,
                format!("the answer is not JSON ({e}): {}", detail_of(&text)),
            )
        })?;
        Ok((value, next))
    }

    fn read(&self, url: &str, query: &[(&str, String)]) -> TargetResult<(Value, Option<String>)> {
        let mut attempt = 1;
        loop {
            match self.send(reqwest::Method::GET, url, query, None) {
                Err(e) if e.is_transient() && attempt < READ_ATTEMPTS => {
                    log::debug!("{e}; retrying");
                    std::thread::sleep(READ_BACKOFF * attempt);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `GET /api/<path>` -> the JSON answer.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> TargetResult<Value> {
        self.read(&self.url(path), query).map(|(value, _)| value)
    }

    /// `GET /api/<path>`, or `None` on 404.
    pub fn find(&self, path: &str) -> TargetResult<Option<Value>> {
        match self.get(path, &[]) {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a list endpoint, following `Link: rel="next"`.
    pub fn list(&self, path: &str, query: &[(&str, String)]) -> TargetResult<Vec<Value>> {
        let mut query = query.to_vec();
        query.push(("page_size", PAGE_SIZE.to_string()));
        let (mut page, mut next) = self.read(&self.url(path), &query)?;
        let mut items = Vec::new();
        loop {
            match page {
                Value::Array(values) => items.extend(values),
                Value::Null => {}
                other => {
                    return Err(TargetError {
                        status: None,
                        call: format!("GET /api/{path}"),
                        detail: format!("expected a list, got {}", detail_of(&other.to_string())),
                    })
                }
            }
            let Some(url) = next.take() else {
                return Ok(items);
            };
            (page, next) = self.read(&url, &[])?;
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> TargetResult<Value> {
        self.send(reqwest::Method::POST, &self.url(path), &[], Some(body))
            .map(|(value, _)| value)
    }

    pub fn patch(&self, path: &str, body: &Value) -> TargetResult<Value> {
        self.send(reqwest::Method::PATCH, &self.url(path), &[], Some(body))
            .map(|(value, _)| value)
    }
}

/// A string field of a Waldur object (`""` when absent or not a string).
pub fn field<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A uuid field of a Waldur object, normalised (`""` when absent or not a uuid).
pub fn uuid_field(object: &Value, key: &str) -> String {
    normalize_uuid(field(object, key)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_normalised_and_anything_else_refused() {
        assert_eq!(
            normalize_uuid("0F0F0F0F-0F0F-0F0F-0F0F-0F0F0F0F0F01").as_deref(),
            Some("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01")
        );
        for bad in [
            "",
            "../../users",
            "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
            "0f0f-0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01",
            "zz0f0f0f0f0f0f0f0f0f0f0f0f0f0f01",
        ] {
            assert_eq!(normalize_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::LINK,
            "<http://b/api/x/?page=1>; rel=\"prev\", <http://b/api/x/?page=3>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("http://b/api/x/?page=3")
        );
        assert_eq!(next_link(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn error_details_are_one_short_line() {
        assert_eq!(detail_of(r#"{"detail": "Not\nfound."}"#), "Not found.");
        assert_eq!(
            detail_of("<html>\n<b>boom</b>\n</html>"),
            "<html> <b>boom</b> </html>"
        );
        assert!(detail_of(&"x".repeat(1000)).len() < 310);
        let transient = TargetError {
            status: Some(503),
            call: "GET /api/x/".into(),
            detail: "d".into(),
        };
        assert_eq!(
            Error::from(transient).kind,
            waldur_plugin_abi::ErrorKind::BACKEND_NOT_READY
        );
        let refused = TargetError {
            status: Some(400),
            call: "POST /api/x/".into(),
            detail: "d".into(),
        };
        assert_eq!(
            Error::from(refused).kind,
            waldur_plugin_abi::ErrorKind::BACKEND
        );
    }
}
