//! Mastermind's side of event processing without a broker: the subscriptions of both flows,
//! and what is published (and to which queue) when an event happens.

mod common;

use common::*;
use serde_json::{json, Value};

async fn identity(c: &Client, offering: &str) -> String {
    let body = json!({"offering": dashed(offering), "name": format!("agent-{offering}"),
        "version": "0.1.0", "last_restarted": "2026-12-01T00:00:00+00:00", "dependencies": [],
        "config_file_path": "", "config_file_content": ""});
    let r = c.post("marketplace-site-agent-identities/", body).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn upstream_subscriptions_name_their_queues_and_receive_the_offering_events() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let identity = identity(&c, &ids.offering).await;
    let r = c
        .post(
            &format!("marketplace-site-agent-identities/{identity}/register_event_subscription/"),
            json!({"observable_object_type": "order", "description": "x"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let subscription: Value = r.json().await.unwrap();
    assert_fields(&subscription, &["uuid", "user_uuid", "observable_objects"]);
    let es = subscription["uuid"].as_str().unwrap().to_string();
    let r = c
        .post(
            &format!("event-subscriptions/{es}/create_queue/"),
            json!({"offering_uuid": dashed(&ids.offering), "object_type": "order"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let queue: Value = r.json().await.unwrap();
    let name = format!("subscription_{es}_offering_{}_order", ids.offering);
    assert_eq!(queue["queue_name"], name.as_str());
    assert_eq!(queue["vhost"], subscription["user_uuid"]);

    // Approving an order publishes its event to that queue (no broker: recorded, undelivered).
    let r = c
        .post_empty(&format!(
            "marketplace-orders/{}/approve_by_provider/",
            ids.order_create
        ))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(c.sim.publish_event(&ids.offering, "resource", json!({})), 0);
    assert_eq!(
        c.sim.publish_event(
            &ids.offering,
            "order",
            json!({"order_uuid": "x", "order_state": "executing"})
        ),
        1
    );
    let published = c.sim.published();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(published[0].queue_name, name);
    assert_eq!(published[0].body["order_uuid"], ids.order_create.as_str());
    assert_eq!(published[0].body["order_state"], "executing");
    // Delivery is attempted in the background; without a broker it says so.
    for _ in 0..100 {
        if c.sim.published().iter().all(|p| p.error.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(c.sim.published()[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("no broker")));
}

#[tokio::test]
async fn the_pypi_flow_has_one_consumer_queue_for_every_observed_type() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let identity = identity(&c, &ids.offering).await;
    let r = c
        .post(
            &format!("marketplace-site-agent-identities/{identity}/register_queue/"),
            json!({"object_types": ["order", "user_role"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let queue: Value = r.json().await.unwrap();
    assert_eq!(queue["queue_name"], format!("consumer_{identity}").as_str());
    assert_fields(
        &queue,
        &["rmq_username", "vhost", "observable_object_types"],
    );
    assert_eq!(
        c.sim.publish_event(&ids.offering, "user_role", json!({})),
        1
    );
    assert_eq!(c.sim.publish_event(&ids.offering, "resource", json!({})), 0);
    // The same through the /__sim/ API, for clients in other languages.
    let r = c
        .post(
            "/__sim/events",
            json!({"offering_uuid": dashed(&ids.offering), "object_type": "order", "body": {"a": 1}}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["queues"], 1);
}
