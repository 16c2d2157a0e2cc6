//! Resource import (I1-I6; its project lookup, B14, is in `projects`): a user's backend resource
//! request (published as an `importable_resources` event), its state machine, and the backend
//! resources the agent offers for import.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{
    body_json, created, ok, paginate, path_id, required_text, status_ok, ApiError, ApiResult,
    Params,
};
use crate::app::App;
use crate::render;
use crate::store::{now, BackendResource, BackendResourceRequest};

const R: &str = "/api/backend-resource-requests";

pub fn router() -> Router<App> {
    Router::new()
        .route(&format!("{R}/{{uuid}}/"), get(retrieve))
        .route(
            &format!("{R}/{{uuid}}/start_processing/"),
            post(start_processing),
        )
        .route(&format!("{R}/{{uuid}}/set_done/"), post(set_done))
        .route(&format!("{R}/{{uuid}}/set_erred/"), post(set_erred))
        .route(
            "/api/backend-resources/",
            get(list_backend_resources).post(create_backend_resource),
        )
}

async fn retrieve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let r = st
        .backend_resource_requests
        .get(&id)
        .ok_or_else(ApiError::not_found)?;
    ok(render::backend_resource_request(&st, &app.base, r))
}

/// Moves the request from one of `from` to `to`; any other state is a 409, as Mastermind's
/// state machine refuses the transition.
fn transition(
    app: &App,
    raw: &str,
    from: &[&str],
    to: &str,
    f: impl FnOnce(&mut BackendResourceRequest),
) -> ApiResult {
    let id = path_id(raw)?;
    let mut st = app.store();
    let r = st
        .backend_resource_requests
        .get_mut(&id)
        .ok_or_else(ApiError::not_found)?;
    if !from.contains(&r.state.as_str()) {
        return Err(ApiError::conflict(format!(
            "cannot move a backend resource request from {} to {to}",
            r.state
        )));
    }
    r.state = to.to_string();
    r.modified = now();
    f(r);
    status_ok()
}

async fn start_processing(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    transition(&app, &u, &["Sent"], "Processing", |r| {
        r.started = Some(now())
    })
}

async fn set_done(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    transition(&app, &u, &["Processing"], "Done", |r| {
        r.finished = Some(now())
    })
}

async fn set_erred(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let (message, traceback) = super::error_details(&body)?;
    transition(&app, &u, &["Sent", "Processing"], "Erred", |r| {
        r.finished = Some(now());
        r.error_message = message;
        r.error_traceback = traceback;
    })
}

async fn list_backend_resources(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let backend_id = params.get("backend_id").map(str::to_string);
    let project = params.uuid("project_uuid")?;
    let offering = params.uuid("offering_uuid")?;
    let st = app.store();
    let items: Vec<&BackendResource> = st
        .backend_resources
        .values()
        .filter(|r| backend_id.as_ref().is_none_or(|b| *b == r.backend_id))
        .filter(|r| project.as_ref().is_none_or(|p| *p == r.project_uuid))
        .filter(|r| offering.as_ref().is_none_or(|o| *o == r.offering_uuid))
        .collect();
    paginate(&app, uri.path(), &params, items, |r| {
        render::backend_resource(&st, &app.base, r)
    })
}

/// A new backend resource every time (Mastermind has no uniqueness rule here), so a double
/// import is visible in the store.
async fn create_backend_resource(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let reference = |k: &str| -> Result<String, ApiError> {
        crate::ids::normalize(&required_text(&body, k)?)
            .ok_or_else(|| ApiError::bad_request(format!("{k}: invalid UUID")))
    };
    let name = required_text(&body, "name")?;
    let backend_id = required_text(&body, "backend_id")?;
    let (project, offering) = (reference("project")?, reference("offering")?);
    let backend_metadata = match body.get("backend_metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::bad_request("backend_metadata must be an object")),
    };
    let mut st = app.store();
    if !st.projects.contains_key(&project) {
        return Err(ApiError::bad_request("project: object does not exist"));
    }
    if !st.offerings.contains_key(&offering) {
        return Err(ApiError::bad_request("offering: object does not exist"));
    }
    let ts = now();
    let resource = BackendResource {
        uuid: crate::ids::generate(),
        name,
        backend_id,
        project_uuid: project,
        offering_uuid: offering,
        backend_metadata,
        created: ts.clone(),
        modified: ts,
    };
    let rendered = render::backend_resource(&st, &app.base, &resource);
    st.backend_resources.insert(resource.uuid.clone(), resource);
    created(rendered)
}

/// A user asks which backend accounts could be imported: a new request in state Sent, and the
/// `importable_resources` event for the offering. Answers the request id.
pub fn create_request(
    app: &App,
    offering_uuid: &str,
    uuid: Option<&str>,
) -> Result<String, String> {
    let offering = crate::ids::parse(offering_uuid, "offering")?;
    let uuid = crate::ids::given_or_new(uuid)?;
    {
        let mut st = app.store();
        if !st.offerings.contains_key(&offering) {
            return Err(format!("no offering {offering}"));
        }
        let ts = now();
        st.backend_resource_requests.insert(
            uuid.clone(),
            BackendResourceRequest {
                uuid: uuid.clone(),
                offering_uuid: offering.clone(),
                state: "Sent".into(),
                started: None,
                finished: None,
                error_message: String::new(),
                error_traceback: String::new(),
                created: ts.clone(),
                modified: ts,
            },
        );
    }
    app.publish_event(
        &offering,
        "importable_resources",
        json!({"backend_resource_request_uuid": uuid}),
    );
    Ok(uuid)
}
