//! Offering users (U1–U7): the list with its filter sets, the username PATCH and the state
//! transitions the agent drives (§4.3 of the reference).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use super::{body_json, ok, paginate, path_id, status_ok, ApiError, ApiResult, Params};
use crate::app::App;
use crate::render;
use crate::store::{now, OfferingUser};

const P: &str = "/api/marketplace-offering-users";
const PENDING_LINKING: &str = "Pending account linking";
const PENDING_VALIDATION: &str = "Pending additional validation";

pub fn router() -> Router<App> {
    let action = |name: &str| format!("{P}/{{uuid}}/{name}/");
    Router::new()
        .route(&format!("{P}/"), get(list))
        .route(&format!("{P}/{{uuid}}/"), get(retrieve).patch(patch))
        .route(&action("begin_creating"), post(begin_creating))
        .route(
            &action("set_validation_complete"),
            post(set_validation_complete),
        )
        .route(
            &action("set_pending_account_linking"),
            post(set_pending_account_linking),
        )
        .route(
            &action("set_pending_additional_validation"),
            post(set_pending_additional_validation),
        )
        .route(&action("set_error_creating"), post(set_error_creating))
}

async fn list(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let offering = params.uuid("offering_uuid")?;
    let user = params.uuid("user_uuid")?;
    let states = params.set("state");
    let restricted = params.bool("is_restricted");
    let st = app.store();
    let items: Vec<&OfferingUser> = st
        .offering_users
        .values()
        .filter(|ou| offering.as_ref().is_none_or(|x| *x == ou.offering_uuid))
        .filter(|ou| user.as_ref().is_none_or(|x| *x == ou.user_uuid))
        .filter(|ou| {
            states
                .as_ref()
                .is_none_or(|s| s.contains(&ou.state.as_str()))
        })
        .filter(|ou| restricted.is_none_or(|b| b == ou.is_restricted))
        .collect();
    paginate(&app, uri.path(), &params, items, |ou| {
        render::offering_user(&st, &app.base, ou)
    })
}

async fn retrieve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let ou = st.offering_users.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::offering_user(&st, &app.base, ou))
}

/// PATCH `{username}`: setting a username on a `Creating` offering user completes it (`OK`),
/// as Mastermind's signal handler does.
async fn patch(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let mut st = app.store();
    let ou = st
        .offering_users
        .get_mut(&id)
        .ok_or_else(ApiError::not_found)?;
    if let Some(username) = body.get("username") {
        let username = username.as_str().map(str::to_string);
        let completes = username.as_deref().is_some_and(|u| !u.is_empty());
        ou.username = username;
        if completes && ou.state == "Creating" {
            ou.state = "OK".into();
        }
        ou.modified = now();
    }
    let ou = st.offering_users[&id].clone();
    ok(render::offering_user(&st, &app.base, &ou))
}

/// Moves the offering user to `to` if its state is one of `from`; otherwise 400 like
/// Mastermind's FSM transition guard.
fn transition(
    app: &App,
    raw: &str,
    from: &[&str],
    to: &str,
    comment: Option<(String, Option<String>)>,
) -> ApiResult {
    let id = path_id(raw)?;
    let mut st = app.store();
    let ou = st
        .offering_users
        .get_mut(&id)
        .ok_or_else(ApiError::not_found)?;
    if !from.contains(&ou.state.as_str()) {
        return Err(ApiError::bad_request(format!(
            "Cannot move offering user from '{}' to '{to}'.",
            ou.state
        )));
    }
    ou.state = to.to_string();
    if let Some((text, url)) = comment {
        ou.comment = text;
        ou.comment_url = url;
    }
    ou.modified = now();
    status_ok()
}

fn comment_of(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let body = body_json(body)?;
    Ok((
        body.get("comment")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        body.get("comment_url")
            .and_then(Value::as_str)
            .map(str::to_string),
    ))
}

async fn begin_creating(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    transition(&app, &u, &["Requested", "Error creating"], "Creating", None)
}

async fn set_validation_complete(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    transition(&app, &u, &[PENDING_LINKING, PENDING_VALIDATION], "OK", None)
}

async fn set_pending_account_linking(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let from = [
        "Requested",
        "Creating",
        "Error creating",
        PENDING_VALIDATION,
    ];
    transition(&app, &u, &from, PENDING_LINKING, Some(comment_of(&body)?))
}

async fn set_pending_additional_validation(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let from = ["Requested", "Creating", "Error creating", PENDING_LINKING];
    transition(
        &app,
        &u,
        &from,
        PENDING_VALIDATION,
        Some(comment_of(&body)?),
    )
}

async fn set_error_creating(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let from = ["Requested", "Creating", PENDING_LINKING, PENDING_VALIDATION];
    transition(&app, &u, &from, "Error creating", None)
}
