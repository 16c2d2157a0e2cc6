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
use crate::store::{now, Order, Store};
use crate::{lifecycle, render};

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/api/marketplace-orders/",
            get(list).post(super::consumer::create_order),
        )
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

/// A provider action: `allowed` checks the order's state under the lock, then the order
/// moves to `to` through [`lifecycle::transition`] and the change is published.
fn provider_action(
    app: &App,
    raw: &str,
    to: &str,
    error: lifecycle::ErrorDetails,
    allowed: impl FnOnce(&Order) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let event = with_order(app, raw, |st, id| {
        allowed(&st.orders[id])?;
        Ok(lifecycle::transition(st, id, to, error))
    })?;
    event.publish(app);
    Ok(())
}

fn in_state(o: &Order) -> String {
    format!("Order is in state {}.", o.state)
}

/// pending-provider -> executing; answers `OrderInfoResponse` (`{"detail"}`), which the agent
/// requires. Any other state is a 409 (accepted by client 8.1.3).
async fn approve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    provider_action(&app, &u, "executing", Default::default(), |o| {
        if o.state != "pending-provider" {
            return Err(ApiError::conflict(in_state(o)));
        }
        Ok(())
    })?;
    ok(json!({"detail": "Order has been approved."}))
}

/// -> rejected; the resource of a Create order never comes to be (Terminated).
async fn reject(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    provider_action(&app, &u, "rejected", Default::default(), |o| {
        if !matches!(
            o.state.as_str(),
            "pending-provider" | "pending-consumer" | "executing"
        ) {
            return Err(ApiError::conflict(in_state(o)));
        }
        Ok(())
    })?;
    ok(json!({"detail": "Order has been rejected."}))
}

/// executing -> done, completing the resource side of the order.
async fn set_done(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    provider_action(&app, &u, "done", Default::default(), |o| {
        if o.state != "executing" {
            return Err(ApiError::bad_request(format!(
                "Order state must be executing, not {}.",
                o.state
            )));
        }
        Ok(())
    })?;
    status_ok()
}

/// -> erred with the agent's error details (a Create's resource goes Erred with them).
async fn set_erred(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let details = super::error_details(&body)?;
    provider_action(&app, &u, "erred", details, |o| {
        if lifecycle::FINAL_STATES.contains(&o.state.as_str()) && o.state != "erred" {
            return Err(ApiError::bad_request(in_state(o)));
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
