//! Event subscriptions (A6, A7 and 1.0.7's `register_queue`): Mastermind's side of event
//! processing. With a broker attached, each call creates on it what Mastermind creates: the
//! agent user's vhost, a RabbitMQ user whose password is the agent's API token, the queues.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::{body_json, created, path_id, ApiError, ApiResult};
use crate::app::App;
use crate::ids;
use crate::store::{now, ConsumerQueue, EventQueue, EventSubscription};

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/api/marketplace-site-agent-identities/{uuid}/register_event_subscription/",
            post(register_event_subscription),
        )
        .route(
            "/api/event-subscriptions/{uuid}/create_queue/",
            post(create_queue),
        )
        .route(
            "/api/marketplace-site-agent-identities/{uuid}/register_queue/",
            post(register_queue),
        )
}

/// The static token of the request: the agent's STOMP passcode (the reference always sends
/// `waldur_api_token`).
fn token(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn broker_failure(e: crate::broker::BrokerError) -> ApiError {
    ApiError(
        axum::http::StatusCode::BAD_GATEWAY,
        json!({"detail": e.to_string()}),
    )
}

async fn register_event_subscription(
    State(app): State<App>,
    Path(u): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let identity = path_id(&u)?;
    let body = body_json(&body)?;
    let object_type = body
        .get("observable_object_type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("observable_object_type is required"))?
        .to_string();
    let subscription = {
        let mut st = app.store();
        if !st.identities.contains_key(&identity) {
            return Err(ApiError::not_found());
        }
        let subscription = EventSubscription {
            uuid: ids::generate(),
            identity_uuid: identity,
            user_uuid: st.agent_user.uuid.clone(),
            object_type: object_type.clone(),
            created: now(),
        };
        st.event_subscriptions
            .insert(subscription.uuid.clone(), subscription.clone());
        subscription
    };
    if let Some(broker) = app.broker() {
        broker
            .ensure_account(
                &subscription.user_uuid,
                &subscription.uuid,
                &token(&headers),
            )
            .await
            .map_err(broker_failure)?;
    }
    let username = app.store().agent_user.username.clone();
    created(json!({
        "uuid": subscription.uuid,
        "url": format!("{}event-subscriptions/{}/", app.base, subscription.uuid),
        "user": format!("{}users/{}/", app.base, subscription.user_uuid),
        "user_uuid": subscription.user_uuid,
        "user_username": username,
        "user_full_name": "",
        "created": subscription.created,
        "modified": subscription.created,
        "source_ip": null,
        "observable_objects": [{"object_type": object_type}],
    }))
}

async fn create_queue(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let subscription_uuid = path_id(&u)?;
    let body = body_json(&body)?;
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
    };
    let offering_uuid = ids::normalize(&field("offering_uuid")?)
        .ok_or_else(|| ApiError::bad_request("offering_uuid is not a UUID"))?;
    let object_type = field("object_type")?;
    let queue = {
        let mut st = app.store();
        let subscription = st
            .event_subscriptions
            .get(&subscription_uuid)
            .ok_or_else(ApiError::not_found)?
            .clone();
        if !st.offerings.contains_key(&offering_uuid) {
            return Err(ApiError::bad_request("unknown offering"));
        }
        let queue = EventQueue {
            uuid: ids::generate(),
            subscription_uuid: subscription.uuid.clone(),
            offering_uuid: offering_uuid.clone(),
            object_type: object_type.clone(),
            queue_name: format!(
                "subscription_{}_offering_{offering_uuid}_{object_type}",
                subscription.uuid
            ),
            vhost: subscription.user_uuid.clone(),
            created: now(),
        };
        st.event_queues.insert(queue.uuid.clone(), queue.clone());
        queue
    };
    if let Some(broker) = app.broker() {
        broker
            .declare_queue(&queue.vhost, &queue.queue_name)
            .await
            .map_err(broker_failure)?;
    }
    created(json!({
        "uuid": queue.uuid,
        "url": format!("{}event-subscription-queues/{}/", app.base, queue.uuid),
        "event_subscription": format!("{}event-subscriptions/{}/", app.base, queue.subscription_uuid),
        "event_subscription_uuid": queue.subscription_uuid,
        "offering_uuid": queue.offering_uuid,
        "object_type": queue.object_type,
        "queue_name": queue.queue_name,
        "vhost": queue.vhost,
        "created": queue.created,
    }))
}

/// 1.0.7: `{object_types}` -> `{rmq_username, queue_name: consumer_<id>, vhost,
/// observable_object_types}`; the login is the agent's Waldur username.
async fn register_queue(
    State(app): State<App>,
    Path(u): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let identity = path_id(&u)?;
    let body = body_json(&body)?;
    let object_types: Vec<String> = body
        .get("object_types")
        .and_then(Value::as_array)
        .map(|types| {
            types
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let queue = {
        let mut st = app.store();
        let offering_uuid = st
            .identities
            .get(&identity)
            .ok_or_else(ApiError::not_found)?
            .offering
            .clone();
        let queue = ConsumerQueue {
            identity_uuid: identity.clone(),
            offering_uuid,
            queue_name: format!("consumer_{identity}"),
            vhost: st.agent_user.uuid.clone(),
            rmq_username: st.agent_user.username.clone(),
            object_types,
        };
        st.consumer_queues.insert(identity, queue.clone());
        queue
    };
    if let Some(broker) = app.broker() {
        broker
            .ensure_account(&queue.vhost, &queue.rmq_username, &token(&headers))
            .await
            .map_err(broker_failure)?;
        broker
            .declare_queue(&queue.vhost, &queue.queue_name)
            .await
            .map_err(broker_failure)?;
    }
    created(json!({
        "rmq_username": queue.rmq_username,
        "queue_name": queue.queue_name,
        "vhost": queue.vhost,
        "observable_object_types": queue.object_types,
    }))
}
