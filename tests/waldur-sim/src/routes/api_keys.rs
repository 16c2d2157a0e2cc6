//! Resource API keys (K1-K4) and Mastermind's side of a rotation: a user asks for a new key,
//! the row goes to Updating and the agent is told by a `resource_api_key_rotation` event.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    body_json, created, ok, paginate, parse_timestamp, path_id, required_text, ApiError, ApiResult,
    Params,
};
use crate::app::App;
use crate::render;
use crate::store::{now, ResourceApiKey};

const P: &str = "/api/marketplace-resource-api-keys";

pub fn router() -> Router<App> {
    Router::new()
        .route(&format!("{P}/"), get(list))
        .route(&format!("{P}/report_created/"), post(report_created))
        .route(&format!("{P}/{{uuid}}/set_key/"), post(set_key))
        .route(&format!("{P}/{{uuid}}/set_erred/"), post(set_erred))
}

async fn list(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let resource = params.uuid("resource_uuid")?;
    let offering = params.uuid("offering_uuid")?;
    let states = params.set("state");
    let modified_before = params.timestamp("modified_before")?;
    let st = app.store();
    let items: Vec<&ResourceApiKey> = st
        .resource_api_keys
        .values()
        .filter(|k| resource.as_ref().is_none_or(|r| *r == k.resource_uuid))
        .filter(|k| {
            offering.as_ref().is_none_or(|o| {
                st.resources
                    .get(&k.resource_uuid)
                    .is_some_and(|r| r.offering_uuid == *o)
            })
        })
        .filter(|k| {
            states
                .as_ref()
                .is_none_or(|s| s.contains(&k.state.as_str()))
        })
        .filter(|k| {
            modified_before.is_none_or(|b| parse_timestamp(&k.modified).is_some_and(|m| m < b))
        })
        .collect();
    paginate(&app, uri.path(), &params, items, |k| {
        render::resource_api_key(&st, &app.base, k)
    })
}

/// A key the agent minted: a new row in state OK. The same client id twice on one resource
/// is refused, so a key reported twice shows up in tests instead of doubling silently.
async fn report_created(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let resource = crate::ids::normalize(&required_text(&body, "resource")?)
        .ok_or_else(|| ApiError::bad_request("resource: invalid UUID"))?;
    let client_id = required_text(&body, "client_id")?;
    let api_key = required_text(&body, "api_key")?;
    let mut st = app.store();
    if !st.resources.contains_key(&resource) {
        return Err(ApiError::bad_request("resource: object does not exist"));
    }
    let duplicate = st
        .resource_api_keys
        .values()
        .any(|k| k.resource_uuid == resource && k.client_id.as_deref() == Some(&client_id));
    if duplicate {
        return Err(ApiError::bad_request(format!(
            "the resource already has a key with client_id {client_id}"
        )));
    }
    let ts = now();
    let key = ResourceApiKey {
        uuid: crate::ids::generate(),
        resource_uuid: resource,
        client_id: Some(client_id),
        api_key: Some(api_key),
        state: "OK".into(),
        pending_action: String::new(),
        error_message: String::new(),
        created: ts.clone(),
        modified: ts,
    };
    let rendered = render::resource_api_key(&st, &app.base, &key);
    st.resource_api_keys.insert(key.uuid.clone(), key);
    created(rendered)
}

/// Runs `f` on the key under the store lock and answers the key.
fn with_key(
    app: &App,
    raw: &str,
    f: impl FnOnce(&mut ResourceApiKey) -> Result<(), ApiError>,
) -> ApiResult {
    let id = path_id(raw)?;
    let mut st = app.store();
    let key = st
        .resource_api_keys
        .get_mut(&id)
        .ok_or_else(ApiError::not_found)?;
    f(key)?;
    let key = key.clone();
    ok(render::resource_api_key(&st, &app.base, &key))
}

/// Updating -> OK with the new value (and client id, when given). Repeating the same value
/// on an OK key is accepted, as a retried request whose answer was lost would.
async fn set_key(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let api_key = required_text(&body, "api_key")?;
    let client_id = body
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    with_key(&app, &u, |key| {
        let repeated = key.state == "OK" && key.api_key.as_deref() == Some(&api_key);
        if key.state != "Updating" && !repeated {
            return Err(ApiError::conflict(format!(
                "cannot set the key of an API key in state {}",
                key.state
            )));
        }
        key.api_key = Some(api_key);
        if client_id.is_some() {
            key.client_id = client_id;
        }
        key.state = "OK".into();
        key.pending_action.clear();
        key.error_message.clear();
        key.modified = now();
        Ok(())
    })
}

/// Creating or Updating -> Erred. Mastermind refuses it from OK: a late failure report after a
/// rotation that landed must not break a healthy key.
async fn set_erred(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let message = super::text_or_empty(&body_json(&body)?, "error_message");
    with_key(&app, &u, |key| {
        if !matches!(key.state.as_str(), "Creating" | "Updating") {
            return Err(ApiError::conflict(format!(
                "cannot set an API key in state {} as erred",
                key.state
            )));
        }
        key.state = "Erred".into();
        key.pending_action.clear();
        key.error_message = message;
        key.modified = now();
        Ok(())
    })
}

/// A key row as a test wants it (the `/__sim/resource-api-keys` setter).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KeySpec {
    pub uuid: Option<String>,
    pub resource_uuid: String,
    pub client_id: Option<String>,
    pub api_key: Option<String>,
    /// Default `OK`.
    pub state: Option<String>,
    pub pending_action: String,
    /// Default now; set it in the past for a stuck rotation.
    pub modified: Option<String>,
}

/// Adds a key row; answers its id.
pub fn add_key(app: &App, spec: KeySpec) -> Result<String, String> {
    let uuid = crate::ids::given_or_new(spec.uuid.as_deref())?;
    let resource = crate::ids::parse(&spec.resource_uuid, "resource_uuid")?;
    if let Some(modified) = &spec.modified {
        parse_timestamp(modified)
            .ok_or_else(|| format!("modified {modified:?} is not a datetime"))?;
    }
    let mut st = app.store();
    if !st.resources.contains_key(&resource) {
        return Err(format!("no resource {resource}"));
    }
    let ts = now();
    st.resource_api_keys.insert(
        uuid.clone(),
        ResourceApiKey {
            uuid: uuid.clone(),
            resource_uuid: resource,
            client_id: spec.client_id,
            api_key: spec.api_key,
            state: spec.state.unwrap_or_else(|| "OK".into()),
            pending_action: spec.pending_action,
            error_message: String::new(),
            modified: spec.modified.unwrap_or_else(|| ts.clone()),
            created: ts,
        },
    );
    Ok(uuid)
}

/// A user asks for a new key: the row goes to Updating (`pending_action: rotate`) and the
/// agent gets the `resource_api_key_rotation` event. Answers the event body.
pub fn request_rotation(app: &App, key_uuid: &str) -> Result<Value, String> {
    let id = crate::ids::parse(key_uuid, "API key")?;
    let (offering, body) = {
        let mut st = app.store();
        let key = st
            .resource_api_keys
            .get_mut(&id)
            .ok_or_else(|| format!("no API key {id}"))?;
        key.state = "Updating".into();
        key.pending_action = "rotate".into();
        key.modified = now();
        let key = key.clone();
        let resource = st
            .resources
            .get(&key.resource_uuid)
            .ok_or_else(|| format!("the key's resource {} is gone", key.resource_uuid))?;
        let body = json!({
            "action": "rotate", "resource_uuid": key.resource_uuid,
            "resource_backend_id": resource.backend_id, "api_key_uuid": key.uuid,
            "client_id": key.client_id.clone().unwrap_or_default(),
        });
        (resource.offering_uuid.clone(), body)
    };
    app.publish_event(&offering, "resource_api_key_rotation", body.clone());
    Ok(body)
}
