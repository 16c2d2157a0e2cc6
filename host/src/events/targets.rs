//! A plugin's own event subscriptions (reference `setup_target_event_subscriptions`): a plugin
//! that follows another system, such as a Waldur federation plugin watching the target
//! Waldur's orders, answers the STOMP queues it wants read, as data; the agent connects to
//! each and hands every message to the plugin's `handle_target_event` (through `invoke`, so no
//! ABI change), one at a time per subscription, acknowledging it afterwards.
//!
//! The plugin gets the source offering as `{name, uuid, api_url, backend_type, stomp_ws_url}`.
//! A subscription is a JSON object:
//! `{"url": "wss://host:port/path", "vhost": "...", "login": "...", "passcode": "...",
//!   "destination": "/amq/queue/...", "label": "optional name for the log"}`.
//! What the plugin receives: `{"subscription": <label>, "destination", "message_id",
//! "redelivered": bool, "body": <the body as JSON, or as a string when it is not JSON>}`.

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::stomp::{Backoff, Delivery, StompClient, StompEvent, StompOptions};
use super::subscriptions::EVENT_MODE;
use crate::modes::runtime::{blocking, Session};

/// Heart-beats and prefetch of a target subscription: one message at a time.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);
const PREFETCH: u16 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSubscription {
    url: String,
    #[serde(default)]
    vhost: String,
    login: String,
    passcode: String,
    destination: String,
    #[serde(default)]
    label: String,
}

/// The connection options of the plugin's `index`-th subscription, or one line saying what is
/// wrong with it (never its passcode).
pub fn target_options(value: &Value, index: usize) -> Result<StompOptions, String> {
    let subscription: TargetSubscription = serde_json::from_value(value.clone())
        .map_err(|e| format!("target subscription {index} is not usable: {e}"))?;
    if !(subscription.url.starts_with("ws://") || subscription.url.starts_with("wss://")) {
        return Err(format!(
            "target subscription {index}: url must start with ws:// or wss://"
        ));
    }
    if subscription.destination.is_empty() {
        return Err(format!("target subscription {index}: destination is empty"));
    }
    let label = if subscription.label.is_empty() {
        format!("target subscription {index} ({})", subscription.destination)
    } else {
        format!("target subscription '{}'", subscription.label)
    };
    Ok(StompOptions {
        url: subscription.url,
        vhost: subscription.vhost,
        login: subscription.login,
        passcode: subscription.passcode,
        subscription_id: format!("target-{index}"),
        destination: subscription.destination,
        heartbeat: HEARTBEAT,
        backoff: Backoff::default(),
        prefetch: PREFETCH,
        label,
    })
}

/// Asks the plugin for its subscriptions and serves them until the agent stops.
pub async fn serve(session: &Session<'_>) {
    let offering = session.offering;
    let source = json!({
        "name": offering.name,
        "uuid": offering.waldur_offering_uuid,
        "api_url": offering.waldur_api_url,
        "backend_type": offering.backend_type,
        // Where the source's broker is: a plugin without its own setting uses it (the
        // reference subscribes to the target through the source offering's STOMP settings).
        "stomp_ws_url": offering.stomp_ws_url(),
    });
    let user_agent = crate::waldur::user_agent(EVENT_MODE);
    let answered = blocking(&session.backend, move |b| {
        b.setup_target_event_subscriptions(&source, &user_agent, "")
    })
    .await;
    let subscriptions = match answered {
        Ok(subscriptions) => subscriptions,
        Err(e) => {
            tracing::error!(
                mode = EVENT_MODE,
                offering = %offering.name,
                "the backend's target event subscriptions failed: {e}"
            );
            return;
        }
    };
    let mut served = Vec::new();
    for (index, value) in subscriptions.iter().enumerate() {
        match target_options(value, index) {
            Ok(options) => served.push(options),
            Err(e) => tracing::error!(mode = EVENT_MODE, offering = %offering.name, "{e}"),
        }
    }
    if served.is_empty() {
        return;
    }
    tracing::info!(
        mode = EVENT_MODE,
        offering = %offering.name,
        "serving {} target event subscription(s) of the backend",
        served.len()
    );
    let loops = served.into_iter().map(|options| async move {
        let label = options.label.clone();
        let (client, events) = StompClient::start(options);
        consume(session, &label, events).await;
        client.close().await;
    });
    futures_util::future::join_all(loops).await;
}

async fn consume(session: &Session<'_>, label: &str, mut events: mpsc::Receiver<StompEvent>) {
    let agent = session.agent;
    loop {
        let event = tokio::select! {
            () = agent.shutdown.wait() => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let StompEvent::Message(delivery) = event else {
            continue; // the client logs connections
        };
        let Some(_work) = agent.shutdown.start() else {
            return; // left unacknowledged: redelivered to the next run
        };
        hand_over(session, label, &delivery).await;
        delivery.ack();
    }
}

async fn hand_over(session: &Session<'_>, label: &str, delivery: &Delivery) {
    let body = serde_json::from_slice::<Value>(&delivery.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&delivery.body).into_owned()));
    let event = json!({
        "subscription": label,
        "destination": delivery.destination,
        "message_id": delivery.message_id,
        "redelivered": delivery.redelivered(),
        "body": body,
    });
    let offering = &session.offering.name;
    match blocking(&session.backend, move |b| b.handle_target_event(&event)).await {
        Ok(_) => tracing::info!(
            mode = EVENT_MODE,
            offering = %offering,
            "{label}: message {} handed to the backend",
            delivery.message_id
        ),
        Err(e) => tracing::error!(
            mode = EVENT_MODE,
            offering = %offering,
            "{label}: message {} failed in the backend and was acknowledged: {e}",
            delivery.message_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_checked_and_its_passcode_never_shown() {
        let good = json!({
            "url": "ws://127.0.0.1:15674/ws", "vhost": "v", "login": "l",
            "passcode": "secret", "destination": "/amq/queue/q", "label": "orders"
        });
        let options = target_options(&good, 0).unwrap();
        assert_eq!(options.label, "target subscription 'orders'");
        assert!(!format!("{options:?}").contains("secret"));
        for (bad, expected) in [
            (
                json!({"url": "http://x", "login": "l", "passcode": "secret", "destination": "/q"}),
                "ws://",
            ),
            (
                json!({"url": "ws://x", "login": "l", "passcode": "secret", "destination": ""}),
                "destination",
            ),
            (
                json!({"url": "ws://x", "passcode": "secret", "destination": "/q"}),
                "login",
            ),
            (
                json!({"url": "ws://x", "login": "l", "passcode": "secret", "destination": "/q", "extra": 1}),
                "extra",
            ),
            (json!("not an object"), "not usable"),
        ] {
            let e = target_options(&bad, 3).unwrap_err();
            assert!(
                e.contains(expected) && e.contains("3") && !e.contains("secret"),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
