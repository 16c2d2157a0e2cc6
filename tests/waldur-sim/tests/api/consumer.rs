//! The consumer-side API a federation's target Waldur answers: projects and their members,
//! roles and users, consumer orders and their completion, usage by billing period, the
//! identity bridge.

use crate::common::*;
use serde_json::{json, Value};
use waldur_sim::scenario::ConsumerOrdersSpec;

/// A queue observing `object_type` of the offering, so its events are recorded.
fn observe(c: &Client, offering: &str, object_type: &str) {
    c.sim.with_store_mut(|st| {
        st.event_queues.insert(
            "q".into(),
            waldur_sim::store::EventQueue {
                uuid: "q".into(),
                subscription_uuid: "s".into(),
                offering_uuid: offering.into(),
                object_type: object_type.into(),
                queue_name: format!("test_{object_type}"),
                vhost: "v".into(),
                created: waldur_sim::store::now(),
            },
        );
    });
}

fn order_body(c: &Client, ids: &Ids, limits: Value) -> Value {
    json!({
        "offering": c.url(&format!("marketplace-public-offerings/{}/", dashed(&ids.offering))),
        "project": c.url(&format!("projects/{}/", ids.project)),
        "plan": c.url(&format!("marketplace-public-offerings/{}/plans/{}/", ids.offering, ids.plan)),
        "limits": limits, "attributes": {"name": "fed-res", "source": "x"}, "type": "Create",
    })
}

#[tokio::test]
async fn consumer_create_order_then_finish_makes_the_resource_ok() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    observe(&c, &ids.offering, "order");
    let r = c
        .post(
            "marketplace-orders/",
            order_body(&c, &ids, json!({"cpu": 3})),
        )
        .await;
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_fields(
        &order,
        &[
            "uuid",
            "type",
            "state",
            "resource_uuid",
            "marketplace_resource_uuid",
            "project_uuid",
            "offering_uuid",
            "limits",
            "attributes",
            "error_message",
            "created",
            "modified",
        ],
    );
    assert_eq!(order["state"], "pending-provider");
    let res_id = order["marketplace_resource_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let res = c
        .get_json(&format!("marketplace-resources/{res_id}/"))
        .await;
    assert_eq!(
        (res["state"].as_str(), res["name"].as_str()),
        (Some("Creating"), Some("fed-res"))
    );
    assert_eq!(res["limits"], json!({"cpu": 3}));
    assert_eq!(res["plan_uuid"], ids.plan.as_str());
    let oid = order["uuid"].as_str().unwrap();
    let listed = c
        .get_json(&format!("marketplace-orders/?resource_uuid={res_id}&type=Create&type=Update&state=pending-provider"))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    let r = c
        .post(
            &format!("/__sim/orders/{oid}/finish"),
            json!({"state": "done"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(c.sim.resource(&res_id).unwrap().state, "OK");
    let states: Vec<Value> = c
        .sim
        .published()
        .iter()
        .map(|p| p.body["order_state"].clone())
        .collect();
    assert_eq!(states, vec![json!("pending-provider"), json!("done")]);
    assert_eq!(c.sim.published()[1].body["order_type"], "Create");
    // Finished is final.
    assert!(c.sim.finish_order(oid, "erred", "late").is_err());

    // Refusals name the field.
    let mut bad = order_body(&c, &ids, json!({"gpu": 1}));
    let r = c.post("marketplace-orders/", bad.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"limits": ["Unknown component gpu."]})
    );
    bad["limits"] = json!({});
    bad["project"] = json!(c.url(&format!("projects/{}/", "ab".repeat(16))));
    let r = c.post("marketplace-orders/", bad).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["project"].is_array());
    assert_eq!(
        c.get(&format!("marketplace-resources/{}/", "ab".repeat(16)))
            .await
            .status(),
        404
    );
}

/// POSTs a resource action; answers the status and the body.
async fn act(c: &Client, resource: &str, action: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(&format!("marketplace-resources/{resource}/{action}/"), body)
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The order an accepted action placed.
fn placed(answer: (u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{answer:?}");
    answer.1["order_uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn update_limits_and_terminate_follow_the_resource_state() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let r = &ids.res_ok;
    let new_limits = || json!({"limits": {"cpu": 9}});
    // res_ok has an executing Update order in the fixture: it is Updating.
    assert_eq!(
        act(&c, r, "update_limits", new_limits()).await,
        (409, json!({"detail": "Resource is not in OK state."}))
    );
    c.sim
        .finish_order(&ids.order_update, "erred", "no")
        .unwrap();
    assert_eq!(c.sim.resource(r).unwrap().state, "OK");

    let order = placed(act(&c, r, "update_limits", new_limits()).await);
    assert_eq!(c.sim.resource(r).unwrap().state, "Updating");
    assert_eq!(act(&c, r, "terminate", json!({})).await.0, 409);
    c.sim.finish_order(&order, "done", "").unwrap();
    let res = c.sim.resource(r).unwrap();
    assert_eq!(
        (res.state.as_str(), res.limits.clone()),
        ("OK", limits(&[("cpu", 9)]))
    );

    let order = placed(act(&c, r, "terminate", json!({})).await);
    assert_eq!(c.sim.resource(r).unwrap().state, "Terminating");
    c.sim.finish_order(&order, "rejected", "").unwrap();
    assert_eq!(c.sim.resource(r).unwrap().state, "OK");
    let order = placed(act(&c, r, "terminate", json!({})).await);
    c.sim.finish_order(&order, "done", "").unwrap();
    assert_eq!(c.sim.resource(r).unwrap().state, "Terminated");
    assert_eq!(act(&c, r, "terminate", json!({})).await.0, 409);

    // The end date: stamped, and announced to the offering's resource observers.
    observe(&c, &ids.offering, "resource");
    let (status, _) = act(&c, r, "set_end_date", json!({"end_date": "2027-02-01"})).await;
    assert_eq!(status, 200);
    let res = c.sim.resource(r).unwrap();
    assert_eq!(res.end_date.as_deref(), Some("2027-02-01"));
    assert!(res.end_date_updated_at.is_some());
    let event = c.sim.published().last().cloned().unwrap();
    assert_eq!(
        event.body,
        json!({"action": "end_date_updated", "resource_uuid": r, "end_date": "2027-02-01"})
    );
    assert_eq!(
        act(&c, r, "set_end_date", json!({"end_date": "soon"}))
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn consumer_orders_complete_by_themselves() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    observe(&c, &ids.offering, "order");
    c.sim
        .set_consumer_orders(ConsumerOrdersSpec {
            complete_after_ms: Some(100),
            ..Default::default()
        })
        .unwrap();
    let order: Value = c
        .post("marketplace-orders/", order_body(&c, &ids, json!({})))
        .await
        .json()
        .await
        .unwrap();
    let oid = order["uuid"].as_str().unwrap();
    for _ in 0..100 {
        if c.sim.order(oid).unwrap().state == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(c.sim.order(oid).unwrap().state, "done");
    let last = c.sim.published().last().cloned().unwrap();
    assert_eq!(
        (
            last.body["order_uuid"].as_str(),
            last.body["order_state"].as_str()
        ),
        (Some(oid), Some("done"))
    );
    assert!(c
        .sim
        .set_consumer_orders(ConsumerOrdersSpec {
            final_state: Some("nope".into()),
            ..Default::default()
        })
        .is_err());
}

#[tokio::test]
async fn projects_roles_users_and_members() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let customer = c.url(&format!("customers/{}/", ids.customer));
    let r = c.post("projects/", json!({"customer": customer, "name": "Fed P", "backend_id": "src-1", "end_date": "2027-01-31"})).await;
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    assert_fields(
        &p,
        &[
            "uuid",
            "url",
            "name",
            "description",
            "backend_id",
            "customer_uuid",
            "end_date",
            "end_date_updated_at",
            "oecd_fos_2007_code",
            "is_industry",
            "science_sub_domain_code",
        ],
    );
    let pid = p["uuid"].as_str().unwrap().to_string();
    let found = c.get_json("projects/?backend_id=src-1").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let r = c
        .post(
            "projects/",
            json!({"customer": c.url("customers/nope/"), "name": "x"}),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"customer": ["Invalid hyperlink - Object does not exist."]})
    );
    assert_eq!(
        c.post("projects/", json!({"customer": customer}))
            .await
            .status(),
        400
    );
    let r = c
        .send(
            reqwest::Method::PATCH,
            &format!("projects/{pid}/"),
            Some(json!({"end_date": "2027-06-30", "is_industry": true})),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(
        (p["end_date"].as_str(), p["is_industry"].as_bool()),
        (Some("2027-06-30"), Some(true))
    );
    assert!(p["end_date_updated_at"].is_string());

    let roles = c.get_json("roles/?name=PROJECT.MEMBER").await;
    assert_eq!(roles.as_array().unwrap().len(), 1);
    let role = roles[0]["uuid"].as_str().unwrap().to_string();
    let users = c.get_json("users/?username=alice@idp").await;
    assert_eq!(users[0]["uuid"], ids.user.as_str());
    assert_eq!(c.get_json("users/?email=none@x").await, json!([]));

    let grant = json!({"role": role, "user": ids.user});
    let r = c
        .post(&format!("projects/{pid}/add_user/"), grant.clone())
        .await;
    assert_eq!(r.status(), 201);
    let r = c
        .post(&format!("projects/{pid}/add_user/"), grant.clone())
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"non_field_errors": ["User already has role within this scope."]})
    );
    assert_eq!(
        c.post(
            &format!("projects/{pid}/add_user/"),
            json!({"role": role, "user": "ab".repeat(16)})
        )
        .await
        .status(),
        400
    );
    let listed = c.get_json(&format!("projects/{pid}/list_users/")).await;
    assert_eq!(
        (
            listed[0]["user_uuid"].as_str(),
            listed[0]["role_name"].as_str()
        ),
        (Some(ids.user.as_str()), Some("PROJECT.MEMBER"))
    );
    assert_eq!(
        c.sim.project_roles(&pid),
        vec![(ids.user.clone(), "PROJECT.MEMBER".to_string())]
    );
    assert_eq!(
        c.post(&format!("projects/{pid}/delete_user/"), grant.clone())
            .await
            .status(),
        200
    );
    let r = c.post(&format!("projects/{pid}/delete_user/"), grant).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"non_field_errors": ["User does not have this role in the scope."]})
    );
}

#[tokio::test]
async fn usages_filter_by_billing_period() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let r = &ids.res_ok;
    for body in [
        json!({"resource_uuid": r, "type": "cpu", "usage": 5, "billing_period": "2026-03-01"}),
        json!({"resource_uuid": r, "type": "cpu", "usage": "2.5", "billing_period": "2026-03-01", "username": "alice1"}),
        json!({"resource_uuid": r, "type": "cpu", "usage": 7, "billing_period": "2026-04-01"}),
    ] {
        assert_eq!(c.post("/__sim/component-usages", body).await.status(), 201);
    }
    let march = c
        .get_json(&format!(
            "marketplace-component-usages/?resource_uuid={r}&billing_period=2026-03-01"
        ))
        .await;
    assert_eq!(march.as_array().unwrap().len(), 1);
    assert_eq!(march[0]["usage"], "5");
    let users = c.get_json(&format!("marketplace-component-user-usages/?resource_uuid={r}&component_usage_billing_period=2026-03-01")).await;
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(
        (users[0]["username"].as_str(), users[0]["usage"].as_str()),
        (Some("alice1"), Some("2.5"))
    );
    assert_eq!(c.get_json(&format!("marketplace-component-user-usages/?resource_uuid={r}&component_usage_billing_period=2026-04-01")).await, json!([]));
    assert_eq!(
        c.get_json(&format!(
            "marketplace-component-usages/?resource_uuid={r}&billing_period=2025-01-01"
        ))
        .await,
        json!([])
    );
}

#[tokio::test]
async fn identity_bridge_creates_finds_refuses_and_removes() {
    let (mut s, _ids) = fixture();
    s.identity_bridge.refused_usernames = vec!["ghost".into()];
    let c = Client::start(s);
    let push = |body: Value| c.post("identity-bridge/", body);
    let r = push(
        json!({"username": "dave@idp", "source": "src", "first_name": "Dave", "email": "d@x"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["created"], true);
    let r: Value = push(json!({"username": "dave@idp", "source": "src", "last_name": "Jones"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["created"].as_bool(), r["uuid"].clone()),
        (Some(false), made["uuid"].clone())
    );
    assert_eq!(
        c.get_json("users/?username=dave@idp").await[0]["full_name"],
        "Dave Jones"
    );
    let r = push(json!({"username": "dave@idp", "source": "src", "shoe_size": 9})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Fields not allowed by Identity Bridge configuration: shoe_size"})
    );
    let r = push(json!({"username": "ghost", "source": "src"})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "User cannot be resolved."})
    );
    assert_eq!(
        c.get_json("identity-bridge/allowed_fields/").await["allowed_fields"][0],
        "first_name"
    );
    let r = c
        .post(
            "identity-bridge/remove/",
            json!({"username": "dave@idp", "source": "src"}),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"deactivated": true})
    );
    assert_eq!(
        c.post(
            "identity-bridge/remove/",
            json!({"username": "nobody", "source": "src"})
        )
        .await
        .status(),
        404
    );
    let log: Vec<String> = c
        .sim
        .identity_bridge_log()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(log, ["push", "push", "remove"]);
    let r: Value = c
        .post("remote-eduteams/", json!({"cuid": "dave@idp"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["uuid"], made["uuid"]);
}

#[tokio::test]
async fn a_project_names_its_science_sub_domain_by_uuid_and_shows_its_code() {
    let (mut s, ids) = fixture();
    s.science_sub_domains
        .push(waldur_sim::scenario::ScienceSubDomainSpec {
            uuid: Some("d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1".into()),
            code: "1.1.2".into(),
            name: "Algebra".into(),
        });
    let c = Client::start(s);
    let domains = c.get_json("science-sub-domains/").await;
    assert_eq!(domains[0]["code"], "1.1.2");
    assert_fields(&domains[0], &["uuid", "url", "code", "name"]);
    let project = format!("projects/{}/", ids.project);
    let patch = |body: Value| c.send(reqwest::Method::PATCH, &project, Some(body));
    let r = patch(json!({"science_sub_domain": "d1d1d1d1-d1d1-d1d1-d1d1-d1d1d1d1d1d1"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["science_sub_domain_code"],
        "1.1.2"
    );
    let r = patch(json!({"science_sub_domain": "e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"science_sub_domain": ["Invalid pk - object does not exist."]})
    );
    let r = patch(json!({"science_sub_domain": null})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["science_sub_domain_code"],
        Value::Null
    );
}
