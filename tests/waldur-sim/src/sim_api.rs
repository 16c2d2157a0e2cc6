//! The `/__sim/` inspection and control API (no auth, never faulted, never counted): tests in
//! other languages (the Python conformance script) use it the way Rust tests use
//! [`crate::Simulator`]'s methods.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::App;
use crate::faults::Fault;
use crate::scenario::Scenario;

pub fn router() -> Router<App> {
    Router::new()
        .route("/__sim/health", get(health))
        .route("/__sim/state", get(state))
        .route("/__sim/log", get(log))
        .route("/__sim/counters", get(counters))
        .route("/__sim/reset", post(reset))
        .route(
            "/__sim/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/__sim/scenario", post(load_scenario))
        .route("/__sim/broker", post(attach_broker))
        .route("/__sim/events", get(published).post(publish))
        .route("/__sim/changes", post(apply_change))
        .route("/__sim/agent-logs", get(agent_logs))
        // A Sentry intake: a DSN `http://key@HOST/__sim/sentry/1` sends its envelopes here.
        .route("/__sim/sentry", get(sentry_envelopes))
        .route(
            "/__sim/sentry/api/{project}/envelope/",
            post(sentry_envelope),
        )
        .route(
            "/__sim/backend-resource-requests",
            post(create_backend_resource_request),
        )
        .route("/__sim/resource-api-keys", post(add_resource_api_key))
        .route("/__sim/orders/{uuid}/finish", post(finish_order))
        .route("/__sim/component-usages", post(add_usage))
        .route("/__sim/consumer-orders", post(set_consumer_orders))
        .route("/__sim/identity-bridge", get(identity_bridge_log))
        .route(
            "/__sim/resource-api-keys/{uuid}/rotate",
            post(request_key_rotation),
        )
}

/// `{offering_uuid, uuid?}`: a user asks for importable resources (publishes the event).
async fn create_backend_resource_request(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Request {
        offering_uuid: String,
        uuid: Option<String>,
    }
    match serde_json::from_slice::<Request>(&body) {
        Ok(r) => {
            match crate::routes::imports::create_request(&app, &r.offering_uuid, r.uuid.as_deref())
            {
                Ok(uuid) => (StatusCode::CREATED, Json(json!({"uuid": uuid}))).into_response(),
                Err(e) => bad(e),
            }
        }
        Err(e) => bad(format!("backend resource request: {e}")),
    }
}

/// `{resource_uuid, uuid?, client_id?, api_key?, state?, pending_action?, modified?}`.
async fn add_resource_api_key(State(app): State<App>, body: Bytes) -> Response {
    match serde_json::from_slice::<crate::routes::api_keys::KeySpec>(&body) {
        Ok(spec) => match crate::routes::api_keys::add_key(&app, spec) {
            Ok(uuid) => (StatusCode::CREATED, Json(json!({"uuid": uuid}))).into_response(),
            Err(e) => bad(e),
        },
        Err(e) => bad(format!("resource API key: {e}")),
    }
}

/// A user asks for a new key (publishes the rotation event); answers the event body.
async fn request_key_rotation(
    State(app): State<App>,
    axum::extract::Path(uuid): axum::extract::Path<String>,
) -> Response {
    match crate::routes::api_keys::request_rotation(&app, &uuid) {
        Ok(event) => Json(event).into_response(),
        Err(e) => bad(e),
    }
}

/// `{management_url, admin_user, admin_password}`: the broker subscriptions and events go to.
async fn attach_broker(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Config {
        management_url: String,
        admin_user: String,
        admin_password: String,
    }
    match serde_json::from_slice::<Config>(&body) {
        Ok(c) => {
            app.set_broker(Some(crate::broker::BrokerAdmin::new(
                crate::broker::BrokerConfig {
                    management_url: c.management_url,
                    admin_user: c.admin_user,
                    admin_password: c.admin_password,
                },
            )));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad(format!("broker config: {e}")),
    }
}

/// `{offering_uuid, object_type, body}`: publishes an event as Mastermind would.
async fn publish(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Publish {
        offering_uuid: String,
        object_type: String,
        body: Value,
    }
    match serde_json::from_slice::<Publish>(&body) {
        Ok(p) => {
            let offering = crate::ids::normalize(&p.offering_uuid).unwrap_or(p.offering_uuid);
            let queues = app.publish_event(&offering, &p.object_type, p.body);
            Json(json!({"queues": queues})).into_response()
        }
        Err(e) => bad(format!("event: {e}")),
    }
}

/// A [`crate::Change`] (`{"kind": "role_granted", ...}`) or a list of them (a burst, in
/// one request): applied in order, and their messages published. A change that fails stops
/// the list there (the ones before it stay applied).
async fn apply_change(State(app): State<App>, body: Bytes) -> Response {
    let changes = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items.into_iter().map(serde_json::from_value).collect(),
        Ok(one) => serde_json::from_value(one).map(|c| vec![c]),
        Err(e) => return bad(format!("change: {e}")),
    };
    let changes: Vec<crate::Change> = match changes {
        Ok(changes) => changes,
        Err(e) => return bad(format!("change: {e}")),
    };
    let mut queues = 0;
    for (i, change) in changes.into_iter().enumerate() {
        match crate::changes::apply(&app, change) {
            Ok(n) => queues += n,
            Err(e) => return bad(format!("change {i}: {e}")),
        }
    }
    Json(json!({"queues": queues})).into_response()
}

async fn published(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(&app.store().published).unwrap_or_default())
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"detail": msg}))).into_response()
}

async fn health(State(app): State<App>) -> Json<Value> {
    Json(json!({"status": "ok", "url": app.base}))
}

async fn state(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(&*app.store()).unwrap_or_default())
}

async fn log(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(app.inspect().log()).unwrap_or_default())
}

async fn counters(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(app.inspect().counters()).unwrap_or_default())
}

/// Clears the request log and counters (state and faults stay).
async fn reset(State(app): State<App>) -> StatusCode {
    app.inspect().reset();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(app): State<App>) -> Json<Value> {
    Json(serde_json::to_value(app.faults().list()).unwrap_or_default())
}

/// Body: one fault object or a list of them, e.g.
/// `{"kind":"status","status":500,"method":"POST","path_template":"/api/…/","count":2}`.
async fn add_faults(State(app): State<App>, body: Bytes) -> Response {
    let faults: Vec<Fault> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => match items.into_iter().map(serde_json::from_value).collect() {
            Ok(v) => v,
            Err(e) => return bad(format!("invalid fault: {e}")),
        },
        Ok(one) => match serde_json::from_value(one) {
            Ok(f) => vec![f],
            Err(e) => return bad(format!("invalid fault: {e}")),
        },
        Err(e) => return bad(format!("invalid JSON: {e}")),
    };
    let mut active = app.faults();
    for f in faults {
        active.add(f);
    }
    (
        StatusCode::CREATED,
        Json(serde_json::to_value(active.list()).unwrap_or_default()),
    )
        .into_response()
}

async fn clear_faults(State(app): State<App>) -> StatusCode {
    app.faults().clear();
    StatusCode::NO_CONTENT
}

/// Replaces the whole state with a scenario given as YAML (or JSON) in the body.
async fn load_scenario(State(app): State<App>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let scenario = match Scenario::from_yaml_str(&text) {
        Ok(s) => s,
        Err(e) => return bad(e.to_string()),
    };
    match app.load(&scenario) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(e.to_string()),
    }
}

async fn agent_logs(State(app): State<App>) -> Json<Value> {
    Json(Value::Array(app.store().agent_logs.clone()))
}

async fn sentry_envelopes(State(app): State<App>) -> Json<Value> {
    Json(json!(app.store().sentry_envelopes))
}

async fn sentry_envelope(State(app): State<App>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    app.store().sentry_envelopes.push(text);
    (StatusCode::OK, Json(json!({"id": null}))).into_response()
}

/// `{state, error_message?}`: the order finishes as the target's own agent would finish it.
async fn finish_order(
    State(app): State<App>,
    axum::extract::Path(uuid): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Finish {
        state: String,
        #[serde(default)]
        error_message: String,
    }
    match serde_json::from_slice::<Finish>(&body) {
        Ok(f) => match crate::lifecycle::finish(&app, &uuid, &f.state, &f.error_message) {
            Ok(order) => Json(json!({"uuid": order.uuid, "state": order.state})).into_response(),
            Err(e) => bad(e),
        },
        Err(e) => bad(format!("finish: {e}")),
    }
}

/// A [`crate::routes::usages::UsageSeed`] -> 201 `{uuid}`.
async fn add_usage(State(app): State<App>, body: Bytes) -> Response {
    match serde_json::from_slice::<crate::routes::usages::UsageSeed>(&body) {
        Ok(seed) => match crate::routes::usages::add_usage(&mut app.store(), &seed) {
            Ok(uuid) => (StatusCode::CREATED, Json(json!({"uuid": uuid}))).into_response(),
            Err(e) => bad(e),
        },
        Err(e) => bad(format!("usage: {e}")),
    }
}

/// The scenario's `consumer_orders` body, from now on.
async fn set_consumer_orders(State(app): State<App>, body: Bytes) -> Response {
    match serde_json::from_slice::<crate::scenario::ConsumerOrdersSpec>(&body) {
        Ok(spec) => match spec.validate() {
            Ok(()) => {
                app.store().consumer_orders = spec;
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => bad(e.to_string()),
        },
        Err(e) => bad(format!("consumer orders: {e}")),
    }
}

async fn identity_bridge_log(State(app): State<App>) -> Json<Value> {
    Json(Value::Array(app.store().identity_bridge_log.clone()))
}
