//! Fault injection of each kind (Rust API and `/__sim/` HTTP API), counters, the request log
//! and the state dump.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};
use waldur_sim::{Fault, Matcher};

const DONE_T: &str = "/api/marketplace-orders/{uuid}/set_state_done/";

#[tokio::test]
async fn status_faults_fire_n_times_without_touching_state() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    c.sim
        .inject(Fault::status(Matcher::endpoint("POST", DONE_T), 500, 2));
    let path = format!("marketplace-orders/{}/set_state_done/", ids.order_update);
    assert_eq!(c.post_empty(&path).await.status(), 500);
    assert_eq!(c.sim.order(&ids.order_update).unwrap().state, "executing");
    assert_eq!(c.post_empty(&path).await.status(), 500);
    assert_eq!(c.post_empty(&path).await.status(), 200);
    assert_eq!(c.sim.order(&ids.order_update).unwrap().state, "done");
    assert_eq!(c.sim.count("POST", DONE_T), 3);
    assert!(c.sim.faults().is_empty());

    // 429 by path prefix, any method, with Retry-After.
    c.sim.inject(Fault::status(
        Matcher::prefix(None, "/api/marketplace-provider-resources/"),
        429,
        1,
    ));
    let r = c.get("marketplace-provider-resources/").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(c.get("marketplace-provider-resources/").await.status(), 200);
    // Other endpoints are unaffected.
    c.sim.inject(Fault::status(
        Matcher::endpoint("GET", "/api/version/"),
        500,
        1,
    ));
    assert_eq!(c.get("users/me/").await.status(), 200);
    assert_eq!(c.get("version/").await.status(), 500);
}

#[tokio::test]
async fn latency_applies_globally_and_per_endpoint() {
    let (s, _) = fixture();
    let c = Client::start(s);
    c.sim.inject(Fault::latency(
        Matcher::endpoint("GET", "/api/version/"),
        Duration::from_millis(300),
    ));
    let t = Instant::now();
    assert_eq!(c.get("version/").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Other endpoints are not delayed (checked in the log, not by timing, to stay robust
    // on a loaded machine).
    c.get("users/me/").await;
    assert_eq!(c.sim.requests().last().unwrap().fault, None);
    c.sim.clear_faults();
    c.sim
        .inject(Fault::latency(Matcher::any(), Duration::from_millis(150)));
    let t = Instant::now();
    c.get("users/me/").await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        c.sim.requests().last().unwrap().fault.as_deref(),
        Some("latency")
    );
}

#[tokio::test]
async fn malformed_body_runs_the_handler_but_garbles_the_answer() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    c.sim.inject(Fault::malformed(
        Matcher::endpoint(
            "POST",
            "/api/marketplace-orders/{uuid}/approve_by_provider/",
        ),
        1,
    ));
    let r = c
        .post(
            &format!(
                "marketplace-orders/{}/approve_by_provider/",
                ids.order_create
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
    assert_eq!(c.sim.order(&ids.order_create).unwrap().state, "executing");
}

#[tokio::test]
async fn dropped_connection_gets_no_response_and_server_keeps_serving() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    c.sim
        .inject(Fault::drop_connection(Matcher::endpoint("POST", DONE_T), 1));
    let err = c
        .http
        .post(c.url(&format!(
            "marketplace-orders/{}/set_state_done/",
            ids.order_update
        )))
        .header("Authorization", &c.auth)
        .send()
        .await
        .expect_err("connection dropped");
    assert!(!err.is_status());
    assert_eq!(
        c.sim.order(&ids.order_update).unwrap().state,
        "executing",
        "handler did not run"
    );
    let entry = c
        .sim
        .requests()
        .into_iter()
        .find(|e| e.template == DONE_T)
        .unwrap();
    assert_eq!((entry.status, entry.fault.as_deref()), (0, Some("drop")));
    assert_eq!(
        c.post_empty(&format!(
            "marketplace-orders/{}/set_state_done/",
            ids.order_update
        ))
        .await
        .status(),
        200
    );
}

#[tokio::test]
async fn faults_via_http_control_api() {
    let (s, _) = fixture();
    let c = Client::start(s);
    let faults = json!([
        {"kind": "status", "status": 503, "method": "GET", "path_template": "/api/users/me/", "count": 1},
        {"kind": "latency", "ms": 10}
    ]);
    let r = c
        .http
        .post(c.url("/__sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        c.get_json("/__sim/faults").await.as_array().unwrap().len(),
        2
    );
    assert_eq!(c.get("users/me/").await.status(), 503);
    assert_eq!(c.get("users/me/").await.status(), 200);
    let r = c.http.delete(c.url("/__sim/faults")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(c.sim.faults().is_empty());
    let bad = c
        .http
        .post(c.url("/__sim/faults"))
        .json(&json!({"kind": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn counters_log_reset_and_state_dump() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    c.get(&format!("marketplace-orders/{}/", ids.order_create))
        .await;
    c.get(&format!(
        "marketplace-orders/{}/",
        dashed(&ids.order_update)
    ))
    .await;
    c.post(
        &format!("marketplace-orders/{}/set_backend_id/", ids.order_update),
        json!({"backend_id": "b"}),
    )
    .await;
    c.http.get(c.url("users/me/")).send().await.unwrap(); // 401, still counted
    let counters = c.get_json("/__sim/counters").await;
    assert_eq!(counters["GET /api/marketplace-orders/{uuid}/"], 2);
    assert_eq!(
        counters["POST /api/marketplace-orders/{uuid}/set_backend_id/"],
        1
    );
    assert_eq!(counters["GET /api/users/me/"], 1);
    assert_eq!(c.sim.count("GET", "/api/marketplace-orders/{uuid}/"), 2);

    let log = c.get_json("/__sim/log").await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4, "inspection calls are not logged");
    let post = &log[2];
    assert_eq!(post["method"], "POST");
    assert_eq!(post["status"], 200);
    assert_eq!(
        serde_json::from_str::<Value>(post["request_body"].as_str().unwrap()).unwrap(),
        json!({"backend_id": "b"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(post["response_body"].as_str().unwrap()).unwrap(),
        json!({"status": "OK"})
    );
    assert_eq!(log[3]["status"], 401);
    let q = c
        .get("marketplace-orders/?state=executing&state=done")
        .await;
    assert_eq!(q.status(), 200);
    assert_eq!(
        c.sim.requests().last().unwrap().query,
        "state=executing&state=done"
    );

    let r = c.http.post(c.url("/__sim/reset")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(c.sim.requests().is_empty());
    assert!(c.sim.counters().is_empty());

    let state = c.get_json("/__sim/state").await;
    assert_eq!(state["orders"][&ids.order_update]["backend_id"], "b");
    assert_eq!(state["resources"][&ids.res_ok]["state"], "Updating");
    assert_eq!(state, c.sim.state());
}

#[tokio::test]
async fn scenario_can_be_replaced_over_http() {
    let (s, _) = fixture();
    let c = Client::start(s);
    let yaml = "tokens: [other]\ncustomers: [{name: X}]\n";
    let r = c
        .http
        .post(c.url("/__sim/scenario"))
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.get("users/me/").await.status(), 401, "old token gone");
    let r = c
        .http
        .get(c.url("marketplace-service-providers/"))
        .header("Authorization", "Token other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 1);
}
