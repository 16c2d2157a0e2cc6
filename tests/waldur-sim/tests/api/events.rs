//! Mastermind's side of event processing without a broker: the subscriptions of both flows,
//! and what is published (and to which queue) when an event happens.

use crate::common::*;
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

/// The 1.0.7 flow's one queue, for orders and roles.
async fn register_queue(c: &Client, identity: &str) -> reqwest::Response {
    let r = c
        .post(
            &format!("marketplace-site-agent-identities/{identity}/register_queue/"),
            json!({"object_types": ["order", "user_role"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r
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
    let r = register_queue(&c, &identity).await;
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

/// Every change Mastermind's users make publishes the reference's message for it, to the
/// offerings concerned; the store changes with it.
#[tokio::test]
async fn changes_on_mastermind_s_side_publish_the_reference_messages() {
    use waldur_sim::Change;
    let (s, ids) = fixture();
    let c = Client::start(s);
    let identity = identity(&c, &ids.offering).await;
    let types = [
        "order",
        "user_role",
        "resource",
        "offering_user",
        "service_account",
        "course_account",
        "offering_resources_sync",
    ];
    let r = c
        .post(
            &format!("marketplace-site-agent-identities/{identity}/register_queue/"),
            json!({"object_types": types}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let carol = c.sim.with_store_mut(|st| {
        let carol = "c0".repeat(16);
        st.users.insert(
            carol.clone(),
            waldur_sim::store::User::new(
                carol.clone(),
                "carol@idp".into(),
                "Carol".into(),
                "carol@example.org".into(),
            ),
        );
        carol
    });
    let apply = |change: Change| c.sim.apply_change(change).unwrap();
    c.sim.with_store_mut(|st| {
        st.orders.get_mut(&ids.order_create).unwrap().state = "pending-consumer".into();
    });
    apply(Change::ConsumerApproved {
        order_uuid: ids.order_create.clone(),
    });
    assert_eq!(
        c.sim.order(&ids.order_create).unwrap().state,
        "pending-provider"
    );
    // Only an order that waits for its consumer can be approved by them.
    assert!(c
        .sim
        .apply_change(Change::ConsumerApproved {
            order_uuid: ids.order_create.clone(),
        })
        .unwrap_err()
        .contains("not pending-consumer"));
    assert_eq!(
        apply(Change::RoleGranted {
            project_uuid: ids.project.clone(),
            user_uuid: dashed(&carol),
            role: "PROJECT.MEMBER".into(),
        }),
        1
    );
    assert!(c.sim.with_store(|st| st
        .team
        .iter()
        .any(|m| m.user_uuid == carol && m.project_uuid == ids.project)));
    apply(Change::RoleRevoked {
        project_uuid: ids.project.clone(),
        user_uuid: carol.clone(),
        role: "PROJECT.MEMBER".into(),
    });
    assert!(!c
        .sim
        .with_store(|st| st.team.iter().any(|m| m.user_uuid == carol)));
    apply(Change::ResourceChanged {
        resource_uuid: ids.res_ok.clone(),
        restrict_member_access: Some(true),
    });
    assert!(c.sim.resource(&ids.res_ok).unwrap().restrict_member_access);
    apply(Change::UsernameSet {
        offering_user_uuid: ids.ou_requested.clone(),
        username: "bob7".into(),
    });
    let mut attributes = serde_json::Map::new();
    attributes.insert("email".into(), json!("alice@example.org"));
    apply(Change::UserAttributesChanged {
        offering_user_uuid: ids.ou_ok.clone(),
        attributes,
    });
    let account = "ac".repeat(16);
    apply(Change::AccountCreated {
        course: true,
        project_uuid: ids.project.clone(),
        uuid: account.clone(),
        username: "course-7".into(),
    });
    assert_eq!(c.sim.with_store(|st| st.course_accounts.len()), 1);
    apply(Change::AccountDeleted {
        course: true,
        uuid: account.clone(),
    });
    assert!(c.sim.with_store(|st| st.course_accounts.is_empty()));
    // Through the /__sim/ API too, for clients in other languages.
    let r = c
        .post(
            "/__sim/changes",
            json!({"kind": "offering_sync_requested", "offering_uuid": dashed(&ids.offering),
                   "requested_by_user_uuid": ids.user}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["queues"], 1);
    let r = c
        .post("/__sim/changes", json!({"kind": "role_granted"}))
        .await;
    assert_eq!(r.status(), 400);

    let published: Vec<(String, Value)> = c
        .sim
        .published()
        .into_iter()
        .map(|p| (p.object_type, p.body))
        .collect();
    let kinds: Vec<&str> = published.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "order",
            "user_role",
            "user_role",
            "resource",
            "offering_user",
            "offering_user",
            "course_account",
            "course_account",
            "offering_resources_sync"
        ]
    );
    assert_eq!(
        published[0].1["order_state"], "pending-provider",
        "{published:?}"
    );
    let published = &published[1..];
    let body = |i: usize| &published[i].1;
    assert_eq!(body(0)["granted"], true);
    assert_eq!(body(0)["user_username"], "carol@idp");
    assert_eq!(body(0)["project_uuid"], ids.project.as_str());
    assert_eq!(body(1)["granted"], false);
    assert_eq!(body(2)["resource_uuid"], ids.res_ok.as_str());
    assert_eq!(body(3)["action"], "username_set");
    assert_eq!(body(3)["username"], "bob7");
    assert_eq!(body(4)["action"], "attribute_update");
    assert_eq!(body(4)["changed_attributes"], json!(["email"]));
    assert_eq!(body(5)["action"], "create");
    assert_eq!(body(5)["account_username"], "course-7");
    assert_eq!(body(6)["action"], "delete");
    assert_eq!(body(7)["requested_by_user_uuid"], ids.user.as_str());
    for (object_type, body) in published {
        assert_eq!(
            body["object_type"],
            object_type.as_str(),
            "single queue tags"
        );
    }
}

/// What scripts/bench-events.sh drives through `POST /__sim/changes`, as one burst: users
/// ordering (an order created `executing` announces itself once; a done one not at all) and
/// team changes (each announced as `user_role`).
#[tokio::test]
async fn a_burst_of_changes_in_one_request_orders_and_roles() {
    let (mut s, ids) = fixture();
    let carol = s.add_user("carol@idp");
    let c = Client::start(s);
    let identity = identity(&c, &ids.offering).await;
    register_queue(&c, &identity).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let first = c.sim.published().len();

    let order = |state: &str, name: &str| {
        json!({"kind": "order_created", "order": {"type": "Create", "state": state,
               "offering": ids.offering, "project": ids.project, "resource_name": name,
               "limits": {"cpu": 3}}})
    };
    let r = c
        .post(
            "/__sim/changes",
            json!([order("executing", "fresh"), order("done", "old"),
                   {"kind": "role_granted", "project_uuid": ids.project, "user_uuid": carol,
                    "role": "PROJECT.MANAGER"}]),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["queues"], 2);
    let published = c.sim.published()[first..].to_vec();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(published[0].object_type, "order");
    assert_eq!(published[0].body["order_state"], "executing");
    let fresh = c
        .sim
        .order(published[0].body["order_uuid"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (fresh.state.as_str(), fresh.resource_name.as_str()),
        ("executing", "fresh")
    );
    let resource = c
        .sim
        .with_store(|st| st.resources[&fresh.resource_uuid].clone());
    assert_eq!(
        (resource.name.as_str(), resource.state.as_str()),
        ("fresh", "Creating")
    );
    assert!(c
        .sim
        .with_store(|st| st.orders.values().any(|o| o.resource_name == "old")));
    assert_eq!(published[1].object_type, "user_role");
    assert_eq!(published[1].body["user_uuid"], carol.as_str());
    assert_eq!(published[1].body["role_name"], "PROJECT.MANAGER");
    // Nothing reached a broker, so nothing has a publication time.
    assert!(published.iter().all(|p| p.published_ms.is_none()));

    // A failing change stops the list where it fails and says which one.
    let r = c
        .post(
            "/__sim/changes",
            json!([order("executing", "second"),
                   {"kind": "order_created", "order": {"type": "Create", "project": "nope"}}]),
        )
        .await;
    assert_eq!(r.status(), 400);
    let detail = r.json::<Value>().await.unwrap()["detail"].to_string();
    assert!(detail.contains("change 1"), "{detail}");
    assert_eq!(
        c.sim.published().len(),
        first + 3,
        "the first one stays applied"
    );

    // Every logged request carries the time it was answered.
    c.get_json("marketplace-orders/").await;
    let last = c.sim.requests().pop().unwrap();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!((before..=after).contains(&last.at_ms), "{last:?}");
}

#[tokio::test]
async fn identities_refuse_what_mastermind_refuses() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let body = |version: &str, dependencies: Value| {
        json!({"offering": ids.offering, "name": "agent-x", "version": version,
               "last_restarted": "2026-12-01T00:00:00+00:00", "dependencies": dependencies})
    };
    let blank = c
        .post(
            "marketplace-site-agent-identities/",
            body(
                "0.1.0",
                json!([{"package": "waldur-plugin-demo", "version": ""}]),
            ),
        )
        .await;
    assert_eq!(blank.status(), 400);
    let v: Value = blank.json().await.unwrap();
    assert_eq!(
        v["dependencies"][0]["version"][0],
        "This field may not be blank."
    );
    let long = c
        .post(
            "marketplace-site-agent-identities/",
            body(&"9".repeat(101), json!([])),
        )
        .await;
    assert_eq!(long.status(), 400);
    // Any other version string is taken: Mastermind only compares it later, for operators.
    let odd = c
        .post(
            "marketplace-site-agent-identities/",
            body("not-pep440", json!([{"package": "p", "version": "1"}])),
        )
        .await;
    assert_eq!(odd.status(), 201);
}
