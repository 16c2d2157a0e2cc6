//! Orders (O1–O7) and the Mastermind-side effects of each transition on the order's resource.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::{
    body_json, ok, paginate, parse_timestamp, path_id, status_ok, ApiError, ApiResult, Params,
};
use crate::app::App;
use crate::render;
use crate::store::{now, Order, Store};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/marketplace-orders/", get(list))
        .route("/api/marketplace-orders/{uuid}/", get(retrieve))
        .route(
            "/api/marketplace-orders/{uuid}/approve_by_provider/",
            post(approve),
        )
        .route(
            "/api/marketplace-orders/{uuid}/reject_by_provider/",
            post(reject),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_state_done/",
            post(set_done),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_state_erred/",
            post(set_erred),
        )
        .route(
            "/api/marketplace-orders/{uuid}/set_backend_id/",
            post(set_backend_id),
        )
}

async fn list(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let offering = params.uuid("offering_uuid")?;
    let resource = params.uuid("resource_uuid")?;
    let project = params.uuid("project_uuid")?;
    let states = params.set("state");
    let types = params.set("type");
    let modified_before = params.timestamp("modified_before")?;
    let st = app.store();
    let items: Vec<&Order> = st
        .orders
        .values()
        .filter(|o| offering.as_ref().is_none_or(|x| *x == o.offering_uuid))
        .filter(|o| resource.as_ref().is_none_or(|x| *x == o.resource_uuid))
        .filter(|o| project.as_ref().is_none_or(|x| *x == o.project_uuid))
        .filter(|o| {
            states
                .as_ref()
                .is_none_or(|s| s.contains(&o.state.as_str()))
        })
        .filter(|o| types.as_ref().is_none_or(|t| t.contains(&o.type_.as_str())))
        .filter(|o| {
            modified_before.is_none_or(|b| parse_timestamp(&o.modified).is_some_and(|m| m < b))
        })
        .collect();
    paginate(&app, uri.path(), &params, items, |o| {
        render::order(&st, &app.base, o)
    })
}

async fn retrieve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let o = st.orders.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::order(&st, &app.base, o))
}

/// Runs `f` on the order and its resource under one lock.
fn with_order<R>(
    app: &App,
    raw: &str,
    f: impl FnOnce(&mut Store, &str) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let id = path_id(raw)?;
    let mut st = app.store();
    if !st.orders.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    f(&mut st, &id)
}

fn touch(o: &mut Order, state: &str) {
    o.state = state.to_string();
    o.modified = now();
}

/// pending-provider -> executing; answers `OrderInfoResponse` (`{"detail"}`), which the agent
/// requires. Any other state is a 409 (accepted by client 8.1.3).
async fn approve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    with_order(&app, &u, |st, id| {
        let o = st.orders.get_mut(id).expect("checked");
        if o.state != "pending-provider" {
            return Err(ApiError::conflict(format!(
                "Order is in state {}.",
                o.state
            )));
        }
        touch(o, "executing");
        Ok(())
    })?;
    // Mastermind tells the agent an approved order is ready to carry out.
    let order = app.store().orders.get(&path_id(&u)?).cloned();
    if let Some(order) = order {
        app.publish_event(
            &order.offering_uuid,
            "order",
            json!({"order_uuid": order.uuid, "order_state": "executing"}),
        );
    }
    ok(json!({"detail": "Order has been approved."}))
}

/// -> rejected; the resource of a Create order never comes to be (Terminated).
async fn reject(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    with_order(&app, &u, |st, id| {
        let o = st.orders.get_mut(id).expect("checked");
        if !matches!(
            o.state.as_str(),
            "pending-provider" | "pending-consumer" | "executing"
        ) {
            return Err(ApiError::conflict(format!(
                "Order is in state {}.",
                o.state
            )));
        }
        touch(o, "rejected");
        let (type_, resource) = (o.type_.clone(), o.resource_uuid.clone());
        if let Some(r) = st.resources.get_mut(&resource) {
            if matches!(type_.as_str(), "Create" | "Restore") {
                r.state = "Terminated".into();
            } else if matches!(r.state.as_str(), "Updating" | "Terminating") {
                // A rejected change leaves the resource as it was.
                r.state = "OK".into();
            }
            r.modified = now();
        }
        Ok(())
    })?;
    ok(json!({"detail": "Order has been rejected."}))
}

/// executing -> done, completing the resource side of the order.
async fn set_done(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    with_order(&app, &u, |st, id| {
        let o = st.orders.get_mut(id).expect("checked");
        if o.state != "executing" {
            return Err(ApiError::bad_request(format!(
                "Order state must be executing, not {}.",
                o.state
            )));
        }
        touch(o, "done");
        let (type_, resource, limits) =
            (o.type_.clone(), o.resource_uuid.clone(), o.limits.clone());
        if let Some(r) = st.resources.get_mut(&resource) {
            match type_.as_str() {
                "Create" | "Restore" => r.state = "OK".into(),
                "Update" => {
                    r.state = "OK".into();
                    if !limits.is_empty() {
                        r.limits = limits;
                    }
                }
                "Terminate" => r.state = "Terminated".into(),
                _ => {}
            }
            r.modified = now();
        }
        Ok(())
    })?;
    status_ok()
}

/// -> erred with the agent's error details; the resource goes Erred.
async fn set_erred(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let (message, traceback) = super::error_details(&body)?;
    with_order(&app, &u, |st, id| {
        let o = st.orders.get_mut(id).expect("checked");
        if matches!(o.state.as_str(), "done" | "rejected" | "canceled") {
            return Err(ApiError::bad_request(format!(
                "Order is in state {}.",
                o.state
            )));
        }
        touch(o, "erred");
        o.error_message = message.clone();
        o.error_traceback = traceback.clone();
        let resource = o.resource_uuid.clone();
        if let Some(r) = st.resources.get_mut(&resource) {
            r.state = "Erred".into();
            r.error_message = message;
            r.error_traceback = traceback;
            r.modified = now();
        }
        Ok(())
    })?;
    status_ok()
}

async fn set_backend_id(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let backend_id = body
        .get("backend_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("backend_id is required"))?
        .to_string();
    with_order(&app, &u, |st, id| {
        let o = st.orders.get_mut(id).expect("checked");
        o.backend_id = backend_id;
        o.modified = now();
        Ok(())
    })?;
    status_ok()
}
