//! The Waldur API surface, one module per area, plus the helpers they share: error answers,
//! repeated-key query parameters, lenient JSON bodies, UUID path ids and DRF-style pagination.

pub mod api_keys;
pub mod consumer;
pub mod events;
pub mod identity;
pub mod imports;
pub mod offering_users;
pub mod oidc;
pub mod orders;
pub mod policies;
pub mod projects;
pub mod registry;
pub mod resources;
pub mod usages;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::App;
use crate::ids;

/// All Waldur routes, relative to the server root (they carry the `/api/` prefix themselves).
pub fn api_router() -> Router<App> {
    Router::new()
        .merge(registry::router())
        .merge(events::router())
        .merge(policies::router())
        .merge(orders::router())
        .merge(resources::router())
        .merge(offering_users::router())
        .merge(usages::router())
        .merge(api_keys::router())
        .merge(imports::router())
        .merge(projects::router())
        .merge(consumer::router())
        .merge(identity::router())
}

/// A Mastermind timestamp (ISO 8601 with an offset).
pub fn parse_timestamp(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok()
}

/// An error answer in DRF's shape (`{"detail": …}` or a field map).
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub Value);

impl ApiError {
    pub fn not_found() -> Self {
        ApiError(StatusCode::NOT_FOUND, json!({"detail": "Not found."}))
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, json!({"detail": msg.into()}))
    }
    pub fn conflict(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::CONFLICT, json!({"detail": msg.into()}))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// `200 {"status": "OK"}`: the `Status` model several actions must return.
pub fn status_ok() -> ApiResult {
    Ok(Json(json!({"status": "OK"})).into_response())
}

pub fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

pub fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// A path id in any UUID form; an invalid one is a 404 like Django's URL resolver gives.
pub fn path_id(raw: &str) -> Result<String, ApiError> {
    ids::normalize(raw).ok_or_else(ApiError::not_found)
}

/// Request body as JSON; an empty body (the agent sends none for `set_state_done` and friends)
/// is `{}`.
pub fn body_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("JSON parse error - {e}")))
}

/// A non-empty string field of a JSON body; missing or empty is a 400 naming the field.
pub fn required_text(body: &Value, key: &str) -> Result<String, ApiError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request(format!("{key} is required")))
}

/// A field error in DRF's shape (`{"field": ["message"]}`).
pub fn field_error(field: &str, message: &str) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

/// The object id in a hyperlink such as `<origin>/api/projects/<uuid>/`: the segment after
/// one of `collections`; a bare UUID is taken as it is.
pub fn id_in_url(link: &str, collections: &[&str]) -> Option<String> {
    if let Some(id) = ids::normalize(link) {
        return Some(id);
    }
    let segments: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
    segments
        .windows(2)
        .find(|w| collections.contains(&w[0]))
        .and_then(|w| ids::normalize(w[1]))
}

/// An optional `YYYY-MM-DD` field (`null` clears it); anything else is a 400 naming it.
pub fn date_field(body: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10 => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(field_error(
            key,
            "Date has wrong format. Use one of these formats instead: YYYY-MM-DD.",
        )),
    }
}

/// A string field of a JSON body, `""` when absent.
pub fn text_or_empty(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// `(error_message, error_traceback)` of the body of a `set_*erred` action.
pub fn error_details(bytes: &[u8]) -> Result<(String, String), ApiError> {
    let body = body_json(bytes)?;
    Ok((
        text_or_empty(&body, "error_message"),
        text_or_empty(&body, "error_traceback"),
    ))
}

/// The query string as ordered pairs, keeping repeated keys (`state=OK&state=Erred`), which
/// serde-based extractors would collapse.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: &str) -> Self {
        Params {
            pairs: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A UUID filter, normalised; an invalid value is a 400 as in Mastermind's filter sets.
    pub fn uuid(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => ids::normalize(v).map(Some).ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    json!({key: ["Enter a valid UUID."]}),
                )
            }),
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        }
    }

    /// A datetime filter such as `modified_before`; an invalid value is a 400.
    pub fn timestamp(&self, key: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => parse_timestamp(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("{key}: invalid datetime"))),
        }
    }

    /// Multi-valued filter: `None` when absent, so "no filter" differs from "match nothing".
    pub fn set(&self, key: &str) -> Option<Vec<&str>> {
        let v = self.all(key);
        (!v.is_empty()).then_some(v)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query().unwrap_or("")))
    }
}

/// DRF `PageNumberPagination` as Mastermind configures it: `page` (1-based) and `page_size`
/// (default from settings, capped), a bare JSON array body, `X-Result-Count`, and a `Link`
/// header with `first`/`prev`/`next`/`last` absolute URLs. A page past the end is a 404.
pub fn paginate<T>(
    app: &App,
    path: &str,
    params: &Params,
    items: Vec<T>,
    render: impl Fn(&T) -> Value,
) -> ApiResult {
    // Not from the store: list handlers call this while holding the store lock.
    let (default_size, max_size) = app.page_limits();
    let page_size = match params.get("page_size") {
        None | Some("") => default_size,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| n.min(max_size))
            .unwrap_or(default_size),
    };
    let page = match params.get("page") {
        None | Some("") => 1,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(ApiError::not_found_page)?,
    };
    let total = items.len();
    let last = total.div_ceil(page_size).max(1);
    if page > last {
        return Err(ApiError::not_found_page());
    }
    let start = (page - 1) * page_size;
    let body: Vec<Value> = items
        .iter()
        .skip(start)
        .take(page_size)
        .map(render)
        .collect();

    let link_for = |n: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params.pairs {
            if k != "page" {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("page", &n.to_string());
        format!("<{}{}?{}>", app.origin, path, ser.finish())
    };
    let mut links = vec![format!("{}; rel=\"first\"", link_for(1))];
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_for(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", link_for(page + 1)));
    }
    links.push(format!("{}; rel=\"last\"", link_for(last)));

    let mut resp = Json(Value::Array(body)).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(header::LINK, v);
    }
    headers.insert("x-result-count", HeaderValue::from(total));
    Ok(resp)
}

impl ApiError {
    fn not_found_page() -> Self {
        ApiError(StatusCode::NOT_FOUND, json!({"detail": "Invalid page."}))
    }
}
