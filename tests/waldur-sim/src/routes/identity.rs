//! How users come to exist on a target Waldur without logging in: the identity bridge
//! (another Waldur pushes a user's profile by username, or deactivates the user), shaped by
//! the scenario's `identity_bridge`, and the eduTEAMS lookup of a user by CUID. Every push
//! and removal is kept in `Store::identity_bridge_log` for tests.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::{body_json, field_error, ok, ApiError, ApiResult};
use crate::app::App;
use crate::ids;
use crate::store::{now, Store, User};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/identity-bridge/", post(push))
        .route("/api/identity-bridge/allowed_fields/", get(allowed_fields))
        .route("/api/identity-bridge/remove/", post(remove))
        .route("/api/remote-eduteams/", post(eduteams))
}

/// Fields of a push that are not profile fields.
const ENVELOPE: &[&str] = &["username", "source"];

/// The store, when the bridge is enabled (a disabled bridge is not there: 404).
fn bridge(app: &App) -> Result<std::sync::MutexGuard<'_, Store>, ApiError> {
    let st = app.store();
    if !st.identity_bridge.enabled {
        return Err(ApiError::not_found());
    }
    Ok(st)
}

fn required<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| field_error(key, "This field is required."))
}

fn user_named<'a>(st: &'a mut Store, username: &str) -> Option<&'a mut User> {
    st.users.values_mut().find(|u| u.username == username)
}

/// Sets one profile field: the ones `User` has by name, the rest in `details`.
fn set_profile_field(user: &mut User, key: &str, value: &Value) {
    let text = value.as_str().unwrap_or_default().to_string();
    match key {
        "first_name" => user.first_name = text,
        "last_name" => user.last_name = text,
        "email" => user.email = text,
        "civil_number" => user.civil_number = text,
        _ => {
            user.details.insert(key.to_string(), value.clone());
        }
    }
}

/// `{username, source, <allowed profile fields>}` -> 200 `{uuid, username, created}`: the
/// user of that username, updated (and active again), or a new one.
async fn push(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let username = required(&body, "username")?.to_string();
    let source = required(&body, "source")?.to_string();
    let mut st = bridge(&app)?;
    let fields = body.as_object().cloned().unwrap_or_default();
    let mut refused: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|k| !ENVELOPE.contains(k))
        .filter(|k| !st.identity_bridge.allowed_fields.iter().any(|a| a == k))
        .collect();
    if !refused.is_empty() {
        refused.sort_unstable();
        return Err(ApiError::bad_request(format!(
            "Fields not allowed by Identity Bridge configuration: {}",
            refused.join(", ")
        )));
    }
    if st.identity_bridge.refused_usernames.contains(&username) {
        return Err(ApiError::bad_request("User cannot be resolved."));
    }
    let is_new = user_named(&mut st, &username).is_none();
    if is_new {
        let user = User::new(
            ids::generate(),
            username.clone(),
            String::new(),
            String::new(),
        );
        st.users.insert(user.uuid.clone(), user);
    }
    let user = user_named(&mut st, &username).expect("found or made above");
    for (key, value) in fields
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()))
    {
        set_profile_field(user, key, value);
    }
    user.full_name = format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_string();
    user.is_active = true;
    let uuid = user.uuid.clone();
    st.identity_bridge_log.push(json!({
        "action": "push", "username": username, "source": source, "created": is_new,
        "fields": fields, "at": now(),
    }));
    ok(json!({"uuid": uuid, "username": username, "created": is_new}))
}

async fn allowed_fields(State(app): State<App>) -> ApiResult {
    let st = bridge(&app)?;
    ok(json!({"allowed_fields": st.identity_bridge.allowed_fields}))
}

/// `{username, source}` -> 200 `{deactivated: true}`; an unknown username is a 404.
async fn remove(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let username = required(&body, "username")?.to_string();
    let source = required(&body, "source")?.to_string();
    let mut st = bridge(&app)?;
    let user = user_named(&mut st, &username).ok_or_else(ApiError::not_found)?;
    user.is_active = false;
    st.identity_bridge_log.push(json!({
        "action": "remove", "username": username, "source": source, "at": now(),
    }));
    ok(json!({"deactivated": true}))
}

/// `{cuid}` -> 200 `{uuid}` of the user with that civil number, or with that username (a
/// user eduTEAMS brought in is named by their CUID); 404 when there is none.
async fn eduteams(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let cuid = required(&body, "cuid")?;
    let st = app.store();
    let user = st
        .users
        .values()
        .find(|u| u.civil_number == cuid)
        .or_else(|| st.users.values().find(|u| u.username == cuid))
        .ok_or_else(ApiError::not_found)?;
    ok(json!({"uuid": user.uuid}))
}
