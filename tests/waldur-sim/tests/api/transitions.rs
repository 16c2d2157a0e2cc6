//! Mastermind-side effects of every call the agent makes: orders, resources, offering users,
//! usage reporting and agent registration.

use crate::common::*;
use serde_json::{json, Value};

const ORDERS: &str = "marketplace-orders";
const RES: &str = "marketplace-provider-resources";
const OU: &str = "marketplace-offering-users";

#[tokio::test]
async fn create_order_approve_provision_done() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let o = &ids.order_create;
    let r = c
        .post(&format!("{ORDERS}/{o}/approve_by_provider/"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    assert_eq!(c.sim.order(o).unwrap().state, "executing");
    // A second approval is a conflict (accepted by client 8.1.3), state untouched.
    assert_eq!(
        c.post(&format!("{ORDERS}/{o}/approve_by_provider/"), json!({}))
            .await
            .status(),
        409
    );

    let res = &ids.res_creating;
    for (action, body) in [
        ("set_backend_id", json!({"backend_id": "alloc_new"})),
        ("set_limits", json!({"limits": {"cpu": 5}})),
        (
            "set_backend_metadata",
            json!({"backend_metadata": {"qos": "normal"}}),
        ),
        (
            "set_endpoints",
            json!({"endpoints": [{"name": "ssh", "url": "ssh://login"}]}),
        ),
    ] {
        let r = c.post(&format!("{RES}/{res}/{action}/"), body).await;
        assert_eq!(r.status(), 200, "{action}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"status": "OK"}),
            "{action}"
        );
    }
    let r = c.post_empty(&format!("{ORDERS}/{o}/set_state_done/")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.sim.order(o).unwrap().state, "done");
    let resource = c.sim.resource(res).unwrap();
    assert_eq!(resource.state, "OK");
    assert_eq!(resource.backend_id, "alloc_new");
    assert_eq!(resource.limits, limits(&[("cpu", 5)]));
    assert_eq!(resource.backend_metadata["qos"], "normal");
    assert_eq!(resource.endpoints.len(), 1);
    // Done is final.
    assert_eq!(
        c.post_empty(&format!("{ORDERS}/{o}/set_state_done/"))
            .await
            .status(),
        400
    );
    // Listing for the agent no longer returns it.
    let open = c
        .get_json(&format!(
            "{ORDERS}/?offering_uuid={}&state=pending-provider",
            ids.offering
        ))
        .await;
    assert_eq!(open, json!([]));
}

#[tokio::test]
async fn update_done_applies_order_limits_and_terminate_done_terminates() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    assert_eq!(c.sim.resource(&ids.res_ok).unwrap().state, "Updating");
    assert_eq!(
        c.post_empty(&format!("{ORDERS}/{}/set_state_done/", ids.order_update))
            .await
            .status(),
        200
    );
    let r = c.sim.resource(&ids.res_ok).unwrap();
    assert_eq!(
        (r.state.as_str(), r.limits.clone()),
        ("OK", limits(&[("cpu", 42)]))
    );

    assert_eq!(
        c.sim.resource(&ids.res_terminate).unwrap().state,
        "Terminating"
    );
    assert_eq!(
        c.post_empty(&format!("{ORDERS}/{}/set_state_done/", ids.order_terminate))
            .await
            .status(),
        200
    );
    assert_eq!(
        c.sim.resource(&ids.res_terminate).unwrap().state,
        "Terminated"
    );
}

#[tokio::test]
async fn reject_terminates_create_resource() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let r = c
        .post(
            &format!("{ORDERS}/{}/reject_by_provider/", ids.order_create),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.sim.order(&ids.order_create).unwrap().state, "rejected");
    assert_eq!(
        c.sim.resource(&ids.res_creating).unwrap().state,
        "Terminated"
    );
}

#[tokio::test]
async fn erred_stores_details_and_errs_resource_and_order_backend_id() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let o = dashed(&ids.order_update);
    let r = c
        .post(
            &format!("{ORDERS}/{o}/set_backend_id/"),
            json!({"backend_id": "job-1"}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "OK"}));
    assert_eq!(c.sim.order(&o).unwrap().backend_id, "job-1");
    let body = json!({"error_message": "boom", "error_traceback": "Traceback ..."});
    assert_eq!(
        c.post(&format!("{ORDERS}/{o}/set_state_erred/"), body)
            .await
            .status(),
        200
    );
    let order = c.sim.order(&o).unwrap();
    assert_eq!(
        (
            order.state.as_str(),
            order.error_message.as_str(),
            order.error_traceback.as_str()
        ),
        ("erred", "boom", "Traceback ...")
    );
    // An Update that failed leaves its resource as it was (OK); the error is the order's.
    let res = c.sim.resource(&ids.res_ok).unwrap();
    assert_eq!(res.state.as_str(), "OK");
    let listed = c.get_json(&format!("{ORDERS}/{o}/")).await;
    assert_eq!(listed["error_message"], "boom");
}

#[tokio::test]
async fn membership_resource_actions() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let r = &ids.res_ok;
    assert_eq!(
        c.post_empty(&format!("{RES}/{r}/refresh_last_sync/"))
            .await
            .status(),
        200
    );
    assert!(c.sim.resource(r).unwrap().last_sync.is_some());
    let body = json!({"error_message": "sync failed", "error_traceback": ""});
    assert_eq!(
        c.post(&format!("{RES}/{r}/set_as_erred/"), body)
            .await
            .status(),
        200
    );
    assert_eq!(c.sim.resource(r).unwrap().state, "Erred");
    let erred = c.get_json(&format!("{RES}/?state=Erred")).await;
    assert_eq!(erred.as_array().unwrap().len(), 1);
    assert_eq!(
        c.post_empty(&format!("{RES}/{r}/set_as_ok/"))
            .await
            .status(),
        200
    );
    assert_eq!(c.sim.resource(r).unwrap().state, "OK");
    let statuses = json!({"statuses": [{"username": "alice1", "scope_type": "resource", "role_name": "member", "state": "ok", "message": ""}]});
    let resp = c
        .post(
            &format!("{RES}/{}/set_membership_sync_statuses/", dashed(r)),
            statuses,
        )
        .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"stored": 1, "skipped": 0})
    );
    // Bad bodies are 400, unknown resources 404.
    assert_eq!(
        c.post(&format!("{RES}/{r}/set_limits/"), json!({"limits": 3}))
            .await
            .status(),
        400
    );
    assert_eq!(
        c.post_empty(&format!("{RES}/{}/set_as_ok/", "1".repeat(32)))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn offering_user_state_machine() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let ou = dashed(&ids.ou_requested);
    let state = |c: &Client| {
        c.sim
            .with_store(|st| st.offering_users[&ids.ou_requested].state.clone())
    };
    // Only Requested / Error creating may begin creating.
    assert_eq!(
        c.post_empty(&format!("{OU}/{ou}/set_validation_complete/"))
            .await
            .status(),
        400
    );
    assert_eq!(
        c.post_empty(&format!("{OU}/{ou}/begin_creating/"))
            .await
            .status(),
        200
    );
    assert_eq!(state(&c), "Creating");
    let link = json!({"comment": "link your account", "comment_url": "https://idp/link"});
    assert_eq!(
        c.post(&format!("{OU}/{ou}/set_pending_account_linking/"), link)
            .await
            .status(),
        200
    );
    assert_eq!(state(&c), "Pending account linking");
    let v = c.get_json(&format!("{OU}/{ou}/")).await;
    assert_eq!(v["service_provider_comment_url"], "https://idp/link");
    let extra = json!({"comment": "more", "comment_url": null});
    assert_eq!(
        c.post(
            &format!("{OU}/{ou}/set_pending_additional_validation/"),
            extra
        )
        .await
        .status(),
        200
    );
    assert_eq!(state(&c), "Pending additional validation");
    assert_eq!(
        c.post_empty(&format!("{OU}/{ou}/set_validation_complete/"))
            .await
            .status(),
        200
    );
    assert_eq!(state(&c), "OK");

    // Error creating -> begin_creating -> PATCH username completes it.
    c.sim.with_store_mut(|st| {
        st.offering_users.get_mut(&ids.ou_requested).unwrap().state = "Creating".into()
    });
    assert_eq!(
        c.post_empty(&format!("{OU}/{ou}/set_error_creating/"))
            .await
            .status(),
        200
    );
    assert_eq!(state(&c), "Error creating");
    assert_eq!(
        c.post_empty(&format!("{OU}/{ou}/begin_creating/"))
            .await
            .status(),
        200
    );
    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("{OU}/{ou}/"),
            Some(json!({"username": "bob7"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["username"].as_str(), v["state"].as_str()),
        (Some("bob7"), Some("OK"))
    );
    // Filters the agent uses.
    let q = format!(
        "{OU}/?offering_uuid={}&state=OK&is_restricted=false",
        ids.offering
    );
    assert_eq!(c.get_json(&q).await.as_array().unwrap().len(), 2);
    let q = format!(
        "{OU}/?user_uuid={}&offering_uuid={}",
        dashed(&ids.user),
        ids.offering
    );
    assert_eq!(c.get_json(&q).await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn usage_reporting_is_an_upsert_per_period() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let r = &ids.res_ok;
    let report = |amount: &str, date: &str, resource: String| json!({"usages": [{"type": "cpu", "amount": amount, "recurring": false}], "resource": resource, "date": date});
    let resp = c
        .post(
            "marketplace-component-usages/set_usage/",
            report("12.35", "2026-11-01T00:00:00+00:00", r.clone()),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let q = format!("marketplace-component-usages/?resource_uuid={r}&billing_period=2026-11-01&field=uuid&field=type&field=usage");
    let first = c.get_json(&q).await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["usage"], "12.35");
    assert_eq!(first[0]["type"], "cpu");
    let cu = first[0]["uuid"].as_str().unwrap().to_string();

    // Same report again (dashed resource id): same row, same amount: idempotent.
    assert_eq!(
        c.post(
            "marketplace-component-usages/set_usage/",
            report("12.35", "2026-11-20T10:00:00+00:00", dashed(r))
        )
        .await
        .status(),
        201
    );
    let again = c.get_json(&q).await;
    assert_eq!(again.as_array().unwrap().len(), 1);
    assert_eq!(again[0]["uuid"], cu.as_str());
    // Higher amount updates the same row; another month is a new row.
    c.post(
        "marketplace-component-usages/set_usage/",
        report("20.00", "2026-11-21T00:00:00Z", r.clone()),
    )
    .await;
    assert_eq!(c.get_json(&q).await[0]["usage"], "20.00");
    c.post(
        "marketplace-component-usages/set_usage/",
        report("1.00", "2026-10-01T00:00:00Z", r.clone()),
    )
    .await;
    assert_eq!(c.sim.with_store(|st| st.component_usages.len()), 2);
    // Unknown component type or resource: 400, nothing stored.
    let bad = json!({"usages": [{"type": "gpu", "amount": "1"}], "resource": r, "date": "2026-11-01T00:00:00Z"});
    assert_eq!(
        c.post("marketplace-component-usages/set_usage/", bad)
            .await
            .status(),
        400
    );
    let bad = report("1", "2026-11-01", "2".repeat(32));
    assert_eq!(
        c.post("marketplace-component-usages/set_usage/", bad)
            .await
            .status(),
        400
    );

    // Per-user usages: create then update, addressed by the dashed component-usage id.
    let user_url = format!("{}marketplace-offering-users/{}/", c.sim.url(), ids.ou_ok);
    let body = |u: &str| json!({"usages": [{"username": "alice1", "usage": u, "date": "2026-11-01T00:00:00+00:00", "user": user_url}]});
    let path = format!(
        "marketplace-component-usages/{}/set_user_usages/",
        dashed(&cu)
    );
    assert_eq!(c.post(&path, body("3.00")).await.status(), 201);
    assert_eq!(c.post(&path, body("4.00")).await.status(), 201);
    let q = format!("marketplace-component-user-usages/?resource_uuid={r}&component_usage__billing_period=2026-11-01&field=component_usage");
    let uu = c.get_json(&q).await;
    assert_eq!(uu.as_array().unwrap().len(), 1);
    assert_eq!(uu[0]["usage"], "4.00");
    assert!(uu[0]["component_usage"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/{cu}/")));
    let other_month = q.replace("2026-11-01", "2026-10-01");
    assert_eq!(c.get_json(&other_month).await, json!([]));
    // Single set_user_usage (historical loader).
    let single = json!({"username": "bob7", "usage": "1.5", "date": "2026-11-01T00:00:00"});
    assert_eq!(
        c.post(
            &format!("marketplace-component-usages/{cu}/set_user_usage/"),
            single
        )
        .await
        .status(),
        201
    );
    assert_eq!(c.get_json(&q).await.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn agent_registry_create_or_update_by_name() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let name = format!("agent-{}", dashed(&ids.offering));
    assert_eq!(
        c.get_json(&format!("marketplace-site-agent-identities/?name={name}"))
            .await,
        json!([])
    );
    let body = json!({"offering": dashed(&ids.offering), "name": name, "version": "1.0.7",
        "last_restarted": "2026-11-22T10:00:00+00:00", "dependencies": [], "config_file_path": "", "config_file_content": ""});
    let r = c
        .post("marketplace-site-agent-identities/", body.clone())
        .await;
    assert_eq!(r.status(), 201);
    let ident: Value = r.json().await.unwrap();
    assert_fields(
        &ident,
        &[
            "uuid",
            "url",
            "offering",
            "created_by",
            "name",
            "created",
            "modified",
            "services",
            "compatibility",
        ],
    );
    let id = ident["uuid"].as_str().unwrap().to_string();
    let listed = c
        .get_json(&format!("marketplace-site-agent-identities/?name={name}"))
        .await;
    assert_eq!(listed[0]["uuid"], id.as_str());
    let put = c
        .send(
            reqwest::Method::PUT,
            &format!("marketplace-site-agent-identities/{id}/"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(put.status(), 200);
    // POST with an existing name refreshes the same identity.
    let again: Value = c
        .post("marketplace-site-agent-identities/", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["uuid"], id.as_str());

    let svc_path = format!("marketplace-site-agent-identities/{id}/register_service/");
    let r = c
        .post(
            &svc_path,
            json!({"name": "order_process", "mode": "order_process"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let svc: Value = r.json().await.unwrap();
    assert_fields(
        &svc,
        &[
            "uuid",
            "url",
            "identity",
            "identity_name",
            "name",
            "state",
            "created",
            "modified",
            "processors",
        ],
    );
    assert_eq!(svc["state"], "Active");
    assert_eq!(
        c.post(
            &svc_path,
            json!({"name": "order_process", "mode": "order_process"})
        )
        .await
        .status(),
        200
    );
    let sid = svc["uuid"].as_str().unwrap();
    let proc_path = format!("marketplace-site-agent-services/{sid}/register_processor/");
    let body = json!({"name": "OfferingOrderProcessor", "backend_type": "x.Backend", "backend_version": "1.0"});
    let r = c.post(&proc_path, body.clone()).await;
    assert_eq!(r.status(), 201);
    assert_fields(
        &r.json::<Value>().await.unwrap(),
        &[
            "uuid",
            "url",
            "service",
            "service_name",
            "name",
            "backend_type",
            "created",
            "modified",
        ],
    );
    assert_eq!(c.post(&proc_path, body).await.status(), 200);
    c.sim.with_store(|st| {
        assert_eq!(
            (st.identities.len(), st.services.len(), st.processors.len()),
            (1, 1, 1)
        );
    });
    let ident = c
        .get_json(&format!("marketplace-site-agent-identities/{id}/"))
        .await;
    assert_eq!(ident["services"].as_array().unwrap().len(), 1);
}
