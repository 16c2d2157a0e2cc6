//! Resource import (I1-I6, B14) and resource API keys (K1-K4): the state machines, the
//! filters the agent uses, the `/__sim/` setters, the events they publish and fault injection
//! on the new routes.

use crate::common::*;
use serde_json::{json, Value};
use waldur_sim::{Fault, Matcher};

/// An A7 queue observing `object_type` for the offering, so published events are recorded.
async fn observe(c: &Client, offering: &str, object_type: &str) {
    let body = json!({"offering": dashed(offering), "name": format!("agent-{offering}"),
        "version": "0.1.0", "last_restarted": "2026-12-01T00:00:00+00:00", "dependencies": [],
        "config_file_path": "", "config_file_content": ""});
    let identity: Value = c
        .post("marketplace-site-agent-identities/", body)
        .await
        .json()
        .await
        .unwrap();
    let identity = identity["uuid"].as_str().unwrap().to_string();
    let subscription: Value = c
        .post(
            &format!("marketplace-site-agent-identities/{identity}/register_event_subscription/"),
            json!({"observable_object_type": object_type, "description": "x"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let es = subscription["uuid"].as_str().unwrap();
    let r = c
        .post(
            &format!("event-subscriptions/{es}/create_queue/"),
            json!({"offering_uuid": offering, "object_type": object_type}),
        )
        .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_backend_resource_request_is_published_and_moves_through_its_states() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    observe(&c, &ids.offering, "importable_resources").await;
    let r = c
        .post(
            "/__sim/backend-resource-requests",
            json!({"offering_uuid": dashed(&ids.offering)}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let request = r.json::<Value>().await.unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let published = c.sim.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].object_type, "importable_resources");
    assert_eq!(
        published[0].body,
        json!({"backend_resource_request_uuid": request})
    );

    let shown = c
        .get_json(&format!("backend-resource-requests/{}/", dashed(&request)))
        .await;
    assert_fields(
        &shown,
        &[
            "url",
            "uuid",
            "created",
            "modified",
            "started",
            "finished",
            "state",
            "offering",
            "offering_name",
            "offering_url",
            "error_message",
            "error_traceback",
        ],
    );
    assert_eq!(shown["state"], "Sent");
    let action = |name: &str| format!("backend-resource-requests/{request}/{name}/");
    // Done only from Processing; Processing only from Sent.
    assert_eq!(c.post_empty(&action("set_done")).await.status(), 409);
    assert_eq!(
        c.post_empty(&action("start_processing")).await.status(),
        200
    );
    assert_eq!(
        c.post_empty(&action("start_processing")).await.status(),
        409
    );
    let r = c.post_empty(&action("set_done")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "OK"}));
    let r = c
        .post(
            &action("set_erred"),
            json!({"error_message": "late", "error_traceback": ""}),
        )
        .await;
    assert_eq!(r.status(), 409, "a finished request stays finished");
    let shown = c
        .get_json(&format!("backend-resource-requests/{request}/"))
        .await;
    assert_eq!(shown["state"], "Done");
    assert!(shown["finished"].is_string());
}

#[tokio::test]
async fn backend_resources_are_created_listed_by_filter_and_projects_found_by_slug() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let projects = c.get_json("projects/?slug=project-one&field=uuid").await;
    assert_eq!(projects.as_array().unwrap().len(), 1);
    assert_eq!(projects[0]["uuid"], ids.project.as_str());
    assert_eq!(c.get_json("projects/?slug=nope").await, json!([]));

    let body = json!({"name": "acc1", "project": dashed(&ids.project),
        "offering": ids.offering, "backend_id": "acc1",
        "backend_metadata": {"limits": {"cpu": 10}}});
    let r = c.post("backend-resources/", body.clone()).await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_fields(
        &made,
        &[
            "url",
            "uuid",
            "name",
            "created",
            "modified",
            "project",
            "project_name",
            "project_url",
            "offering",
            "offering_name",
            "offering_url",
        ],
    );
    let found = c
        .get_json(&format!(
            "backend-resources/?backend_id=acc1&project_uuid={}&offering_uuid={}&page_size=100",
            dashed(&ids.project),
            ids.offering
        ))
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["backend_metadata"], json!({"limits": {"cpu": 10}}));
    let other = c.get_json("backend-resources/?backend_id=acc2").await;
    assert_eq!(other, json!([]));
    let r = c
        .post(
            "backend-resources/",
            json!({"name": "x", "backend_id": "x",
            "project": "00000000000000000000000000000000", "offering": ids.offering}),
        )
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn api_keys_are_reported_rotated_erred_and_listed_by_the_sweeps_filter() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    observe(&c, &ids.offering, "resource_api_key_rotation").await;
    let r = c
        .post(
            "marketplace-resource-api-keys/report_created/",
            json!({"resource": ids.res_ok, "client_id": "c1", "api_key": "secret-1"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    assert_fields(
        &key,
        &[
            "uuid",
            "resource_uuid",
            "resource_backend_id",
            "pending_action",
            "modified",
            "user_uuid",
            "client_id",
        ],
    );
    assert_eq!(key["resource_backend_id"], "alloc_ok");
    assert!(
        key.get("api_key").is_none(),
        "the key value is never rendered"
    );
    let key_uuid = key["uuid"].as_str().unwrap().to_string();
    // The same client id twice is refused.
    let r = c
        .post(
            "marketplace-resource-api-keys/report_created/",
            json!({"resource": ids.res_ok, "client_id": "c1", "api_key": "secret-2"}),
        )
        .await;
    assert_eq!(r.status(), 400);

    // A stuck rotation from long ago, and a fresh one.
    let stuck = c
        .sim
        .add_resource_api_key(waldur_sim::routes::api_keys::KeySpec {
            resource_uuid: ids.res_ok.clone(),
            client_id: Some("c2".into()),
            state: Some("Updating".into()),
            pending_action: "rotate".into(),
            modified: Some("2026-01-01T00:00:00+00:00".into()),
            ..Default::default()
        })
        .unwrap();
    let event = c.sim.request_key_rotation(&key_uuid).unwrap();
    assert_eq!(
        event,
        json!({"action": "rotate", "resource_uuid": ids.res_ok, "resource_backend_id": "alloc_ok",
               "api_key_uuid": key_uuid, "client_id": "c1"})
    );
    let published = c.sim.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].object_type, "resource_api_key_rotation");

    let of_resource = c
        .get_json(&format!(
            "marketplace-resource-api-keys/?resource_uuid={}",
            ids.res_ok
        ))
        .await;
    assert_eq!(of_resource.as_array().unwrap().len(), 2);
    let swept = c
        .get_json(&format!(
            "marketplace-resource-api-keys/?offering_uuid={}&state=Updating&modified_before=2026-06-01T00:00:00%2B00:00",
            ids.offering
        ))
        .await;
    assert_eq!(swept.as_array().unwrap().len(), 1);
    assert_eq!(swept[0]["uuid"], stuck.as_str());

    // set_key: Updating -> OK (repeating the same value is accepted); set_erred not from OK.
    let set_key = format!("marketplace-resource-api-keys/{key_uuid}/set_key/");
    let r = c.post(&set_key, json!({"api_key": "secret-3"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "OK");
    assert_eq!(
        c.post(&set_key, json!({"api_key": "secret-3"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        c.post(&set_key, json!({"api_key": "other"})).await.status(),
        409
    );
    let r = c
        .post(
            &format!("marketplace-resource-api-keys/{key_uuid}/set_erred/"),
            json!({"error_message": "late"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = c
        .post(
            &format!("marketplace-resource-api-keys/{stuck}/set_erred/"),
            json!({"error_message": "backend down"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let keys = c.sim.with_store(|st| st.resource_api_keys.clone());
    assert_eq!(keys[&key_uuid].api_key.as_deref(), Some("secret-3"));
    assert_eq!(keys[&stuck].state, "Erred");
    assert_eq!(keys[&stuck].error_message, "backend down");
}

#[tokio::test]
async fn faults_apply_to_the_new_routes() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    c.sim.inject(Fault::status(
        Matcher::endpoint("POST", "/api/backend-resources/"),
        500,
        1,
    ));
    c.sim.inject(Fault::applied_status(
        Matcher::endpoint("POST", "/api/marketplace-resource-api-keys/report_created/"),
        502,
        1,
    ));
    let body = json!({"name": "acc1", "project": ids.project, "offering": ids.offering,
        "backend_id": "acc1"});
    assert_eq!(
        c.post("backend-resources/", body.clone()).await.status(),
        500
    );
    assert_eq!(c.sim.with_store(|st| st.backend_resources.len()), 0);
    assert_eq!(c.post("backend-resources/", body).await.status(), 201);
    let r = c
        .post(
            "marketplace-resource-api-keys/report_created/",
            json!({"resource": ids.res_ok, "client_id": "c1", "api_key": "k"}),
        )
        .await;
    assert_eq!(r.status(), 502);
    // Applied despite the answer.
    assert_eq!(c.sim.with_store(|st| st.resource_api_keys.len()), 1);
    assert_eq!(c.sim.count("POST", "/api/backend-resources/"), 2);
}
