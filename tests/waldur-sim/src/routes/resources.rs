//! Provider resources (R1–R11) and the consumer resource list (R12).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{body_json, ok, paginate, path_id, status_ok, ApiError, ApiResult, Params};
use crate::app::App;
use crate::render;
use crate::store::{now, Resource, TeamMember};

const P: &str = "/api/marketplace-provider-resources";

pub fn router() -> Router<App> {
    let action = |name: &str| format!("{P}/{{uuid}}/{name}/");
    Router::new()
        .route(&format!("{P}/"), get(list))
        .route("/api/marketplace-resources/", get(list))
        .route(&format!("{P}/{{uuid}}/"), get(retrieve))
        .route(&action("team"), get(team))
        .route(&action("set_backend_id"), post(set_backend_id))
        .route(&action("set_limits"), post(set_limits))
        .route(&action("set_backend_metadata"), post(set_backend_metadata))
        .route(&action("set_endpoints"), post(set_endpoints))
        .route(&action("refresh_last_sync"), post(refresh_last_sync))
        .route(&action("set_as_ok"), post(set_as_ok))
        .route(&action("set_as_erred"), post(set_as_erred))
        .route(
            &action("set_membership_sync_statuses"),
            post(set_membership_sync_statuses),
        )
}

async fn list(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let offering = params.uuid("offering_uuid")?;
    let project = params.uuid("project_uuid")?;
    let customer = params.uuid("customer_uuid")?;
    let uuid = params.uuid("uuid")?;
    let backend_id = params.get("backend_id").map(str::to_string);
    let states = params.set("state");
    let st = app.store();
    let items: Vec<&Resource> = st
        .resources
        .values()
        .filter(|r| offering.as_ref().is_none_or(|x| *x == r.offering_uuid))
        .filter(|r| project.as_ref().is_none_or(|x| *x == r.project_uuid))
        .filter(|r| uuid.as_ref().is_none_or(|x| *x == r.uuid))
        .filter(|r| backend_id.as_ref().is_none_or(|x| *x == r.backend_id))
        .filter(|r| {
            states
                .as_ref()
                .is_none_or(|s| s.contains(&r.state.as_str()))
        })
        .filter(|r| {
            customer.as_ref().is_none_or(|c| {
                st.projects
                    .get(&r.project_uuid)
                    .is_some_and(|p| p.customer_uuid == *c)
            })
        })
        .collect();
    paginate(&app, uri.path(), &params, items, |r| {
        render::resource(&st, &app.base, r)
    })
}

pub(crate) async fn retrieve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let r = st.resources.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::resource(&st, &app.base, r))
}

/// The resource's project team with each member's offering user (not paginated, like
/// Mastermind's `team` action); with `has_consent=true` only the members who consented to
/// the terms of service of the resource's offering, when it has any (`Store::consents`).
pub(crate) async fn team(
    State(app): State<App>,
    Path(u): Path<String>,
    params: Params,
) -> ApiResult {
    let id = path_id(&u)?;
    let consented_only = params.get("has_consent") == Some("true");
    let st = app.store();
    let r = st.resources.get(&id).ok_or_else(ApiError::not_found)?;
    let consents = st.consents.get(&r.offering_uuid).filter(|_| consented_only);
    let members: Vec<Value> = st
        .team
        .iter()
        .filter(|m: &&TeamMember| m.project_uuid == r.project_uuid)
        .filter(|m| consents.is_none_or(|users| users.contains(&m.user_uuid)))
        .map(|m| render::team_member(&st, &app.base, m, &r.offering_uuid))
        .collect();
    ok(Value::Array(members))
}

/// Applies `f` to the resource; the answer is the `Status` model these actions must return.
fn update(
    app: &App,
    raw: &str,
    f: impl FnOnce(&mut Resource) -> Result<(), ApiError>,
) -> ApiResult {
    let id = path_id(raw)?;
    let mut st = app.store();
    let r = st.resources.get_mut(&id).ok_or_else(ApiError::not_found)?;
    f(r)?;
    r.modified = now();
    status_ok()
}

fn object_field(body: &Value, key: &str) -> Result<Map<String, Value>, ApiError> {
    body.get(key)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| ApiError::bad_request(format!("{key} must be an object")))
}

async fn set_backend_id(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let backend_id = body
        .get("backend_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("backend_id is required"))?
        .to_string();
    update(&app, &u, |r| {
        r.backend_id = backend_id;
        Ok(())
    })
}

async fn set_limits(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let limits = object_field(&body_json(&body)?, "limits")?;
    if let Some((k, _)) = limits.iter().find(|(_, v)| !v.is_number()) {
        return Err(ApiError::bad_request(format!(
            "limit '{k}' must be a number"
        )));
    }
    update(&app, &u, |r| {
        r.limits = limits;
        Ok(())
    })
}

async fn set_backend_metadata(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let metadata = object_field(&body_json(&body)?, "backend_metadata")?;
    update(&app, &u, |r| {
        r.backend_metadata = metadata;
        Ok(())
    })
}

async fn set_endpoints(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let endpoints = body
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("endpoints must be a list"))?;
    update(&app, &u, |r| {
        r.endpoints = endpoints;
        Ok(())
    })
}

async fn refresh_last_sync(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    update(&app, &u, |r| {
        r.last_sync = Some(now());
        Ok(())
    })
}

async fn set_as_ok(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    update(&app, &u, |r| {
        r.state = "OK".into();
        r.error_message.clear();
        r.error_traceback.clear();
        Ok(())
    })
}

async fn set_as_erred(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let (message, traceback) = super::error_details(&body)?;
    update(&app, &u, |r| {
        r.state = "Erred".into();
        r.error_message = message;
        r.error_traceback = traceback;
        Ok(())
    })
}

/// Stores the statuses and answers `MemberSyncStatusReportResult`.
async fn set_membership_sync_statuses(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(&body)?;
    let statuses = body
        .get("statuses")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("statuses must be a list"))?;
    let stored = statuses.len();
    let id = path_id(&u)?;
    let mut st = app.store();
    let r = st.resources.get_mut(&id).ok_or_else(ApiError::not_found)?;
    r.membership_sync_statuses.push(Value::Array(statuses));
    ok(json!({"stored": stored, "skipped": 0}))
}
