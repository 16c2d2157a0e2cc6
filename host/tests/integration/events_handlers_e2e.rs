//! Event handlers end to end, without a broker: events (as Mastermind publishes them) are
//! parsed and handled on the offering's long-lived sessions against the simulator and the
//! demo plugin through the real loader, in the order the event schedule gives them.

use crate::common::*;
use serde_json::json;
use waldur_agent::events::handlers::OfferingSessions;
use waldur_agent::events::message::{parse, ObjectType};
use waldur_agent::events::schedule::drive;
use waldur_agent::modes::runtime::{Mode, Session};

fn sessions(h: &Harness) -> OfferingSessions<'_> {
    let offering = &h.agent.config.offerings[0];
    h.runtime.block_on(async {
        OfferingSessions {
            orders: Some(
                Session::open(&h.agent, offering, Mode::OrderProcess)
                    .await
                    .unwrap(),
            ),
            membership: Some(
                Session::open(&h.agent, offering, Mode::MembershipSync)
                    .await
                    .unwrap(),
            ),
            order_retry: fast().order_retry,
        }
    })
}

/// Parses and handles one message body of `object_type`.
fn handle(
    h: &Harness,
    sessions: &OfferingSessions<'_>,
    object_type: ObjectType,
    body: serde_json::Value,
) -> String {
    let parsed = parse(object_type, body.to_string().as_bytes()).expect("well-formed");
    let event = parsed.event.expect("needs work");
    h.runtime
        .block_on(sessions.handle(&event))
        .unwrap_or_else(|e| panic!("{object_type:?}: {e}"))
        .0
}

#[test]
fn order_events_are_done_once_even_when_delivered_twice() {
    let h = harness(scenario(&two_create_orders()), "", "");
    let s = sessions(&h);
    let body = json!({"order_uuid": CREATE_B, "order_state": "executing"});
    let line = handle(&h, &s, ObjectType::Order, body.clone());
    assert!(line.contains("1 done"), "{line}");
    assert_eq!(h.order_state(CREATE_B).0, "done");
    assert_eq!(h.resource(RES_B).backend_id, "alloc-b");
    let accounts = h.backend_state()["accounts"].as_object().unwrap().len();
    // Redelivered (the agent died before acknowledging): nothing happens twice.
    let line = handle(&h, &s, ObjectType::Order, body);
    assert!(line.contains("1 done"), "{line}");
    assert_eq!(
        h.backend_state()["accounts"].as_object().unwrap().len(),
        accounts
    );
    // An event of a finished order needs no work at all.
    let done = parse(
        ObjectType::Order,
        json!({"order_uuid": CREATE_B, "order_state": "done"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(done.event, None);
}

#[test]
fn role_and_resource_events_make_the_backend_follow_the_team() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    assert_eq!(h.account_users("alloc-a"), ["alice1"]);

    h.bob_joins_the_team();
    let line = handle(
        &h,
        &s,
        ObjectType::UserRole,
        json!({"user_uuid": BOB, "user_username": "bob@idp", "project_uuid": PROJECT,
               "project_name": "Project", "role_name": "PROJECT.MEMBER", "granted": true}),
    );
    assert!(line.contains("2 user(s) added"), "{line}");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "bob1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1", "bob1"]);

    // Alice's role is revoked; the event for one resource syncs that resource only.
    h.sim
        .with_store_mut(|store| store.team.retain(|m| m.user_uuid != ALICE));
    let line = handle(
        &h,
        &s,
        ObjectType::UserRole,
        json!({"project_uuid": PROJECT, "resource_uuid": RES_A}),
    );
    assert!(
        line.contains("1 resource(s)") && line.contains("1 removed"),
        "{line}"
    );
    assert_eq!(h.account_users("alloc-a"), ["bob1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1", "bob1"]);

    // A resource event syncs that resource.
    let line = handle(
        &h,
        &s,
        ObjectType::Resource,
        json!({"resource_uuid": RES_B}),
    );
    assert!(line.contains("1 removed"), "{line}");
    assert_eq!(h.account_users("alloc-b"), ["bob1"]);
}

#[test]
fn events_of_one_resource_keep_their_order_while_others_run_beside_them() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    h.bob_joins_the_team();
    let bodies = [
        (ObjectType::Resource, json!({"resource_uuid": RES_A})),
        (ObjectType::Resource, json!({"resource_uuid": RES_B})),
        (
            ObjectType::UserRole,
            json!({"project_uuid": PROJECT, "resource_uuid": RES_A}),
        ),
        (ObjectType::Resource, json!({"resource_uuid": RES_A})),
    ];
    let lines = std::sync::Mutex::new(Vec::new());
    h.runtime.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for (object_type, body) in bodies {
            let event = parse(object_type, body.to_string().as_bytes())
                .unwrap()
                .event
                .unwrap();
            tx.send((event.ordering_key(), event)).await.unwrap();
        }
        drop(tx);
        drive(rx, 8, |event| {
            let (s, lines) = (&s, &lines);
            async move {
                let line = s.handle(&event).await.unwrap().0;
                lines.lock().unwrap().push((event.ordering_key(), line));
            }
        })
        .await;
    });
    let lines = lines.into_inner().unwrap();
    assert_eq!(lines.len(), 4);
    // The first event of each resource added bob; the later ones of RES_A found nothing to do.
    let of_a: Vec<&String> = lines
        .iter()
        .filter(|(key, _)| key.ends_with(RES_A))
        .map(|(_, line)| line)
        .collect();
    assert!(of_a[0].contains("1 user(s) added"), "{of_a:?}");
    assert!(
        of_a[1..].iter().all(|l| l.contains("0 user(s) added")),
        "{of_a:?}"
    );
    assert_eq!(h.account_users("alloc-a"), ["alice1", "bob1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1", "bob1"]);
}

#[test]
fn periodic_limits_events_report_their_outcome_to_the_policy() {
    const POLICY: &str = "12121212121212121212121212121212";
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    // The demo backend has no periodic settings: the agent's default answer is reported.
    let line = handle(
        &h,
        &s,
        ObjectType::ResourcePeriodicLimits,
        json!({"resource_uuid": RES_B, "backend_id": "alloc-b", "offering_uuid": OFFERING,
               "policy_uuid": POLICY, "action": "apply_periodic_settings",
               "settings": {"fairshare": 100}, "timestamp": "2026-12-01T00:00:00Z"}),
    );
    assert!(
        line.contains("does not support periodic settings"),
        "{line}"
    );
    // A request the agent cannot carry out is a reported failure too; one without a policy
    // is not reported.
    handle(
        &h,
        &s,
        ObjectType::ResourcePeriodicLimits,
        json!({"resource_uuid": RES_B, "backend_id": "", "policy_uuid": POLICY,
               "action": "apply_periodic_settings"}),
    );
    handle(
        &h,
        &s,
        ObjectType::ResourcePeriodicLimits,
        json!({"resource_uuid": RES_B, "backend_id": "alloc-b", "action": "apply_periodic_settings"}),
    );
    let reports = h.sim.with_store(|st| st.periodic_reports.clone());
    assert_eq!(reports.len(), 2, "{reports:?}");
    for report in &reports {
        assert_eq!(report["policy_uuid"], POLICY);
        assert_eq!(report["resource_uuid"], RES_B);
        assert_eq!(report["success"], false);
        assert_eq!(report["mode"], "production");
    }
    assert!(reports[0]["error_message"]
        .as_str()
        .unwrap()
        .contains("does not support periodic settings"));
    assert_eq!(reports[1]["error_message"], "the request has no backend_id");
}

#[test]
fn a_username_set_event_adds_the_user_where_the_event_says() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    // Bob is on the team, but his offering user has no username yet.
    h.join_team(BOB, "PROJECT.MEMBER");
    h.sim.with_store_mut(|store| {
        for user in store.offering_users.values_mut() {
            if user.user_uuid == BOB {
                user.username = None;
                user.state = "Requested".into();
            }
        }
    });
    h.cycle(Mode::MembershipSync);
    assert_eq!(h.account_users("alloc-a"), ["alice1"]);
    let s = sessions(&h);
    h.sim.with_store_mut(|store| {
        for user in store.offering_users.values_mut() {
            if user.user_uuid == BOB {
                user.username = Some("bob1".into());
                user.state = "OK".into();
            }
        }
    });
    let line = handle(
        &h,
        &s,
        ObjectType::OfferingUser,
        json!({"offering_user_uuid": BOB, "user_uuid": BOB, "username": "bob1",
               "action": "username_set", "offering_uuid": OFFERING, "attributes": {},
               "changed_attributes": [], "resource_backend_ids": ["alloc-a"]}),
    );
    assert!(line.contains("1 user(s) added"), "{line}");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "bob1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1"]);
    // Attributes go to the plugin (the demo keeps none: the agent's default accepts them).
    let line = handle(
        &h,
        &s,
        ObjectType::OfferingUser,
        json!({"user_uuid": BOB, "username": "bob1", "action": "attribute_update",
               "attributes": {"email": "bob@example.org"}}),
    );
    assert!(line.contains("1 attribute(s)"), "{line}");
    let line = handle(
        &h,
        &s,
        ObjectType::OfferingUser,
        json!({"user_uuid": BOB, "username": "bob1", "action": "delete"}),
    );
    assert!(line.contains("nothing to do"), "{line}");
}

#[test]
fn service_and_course_account_events_add_and_remove_the_account_on_the_project() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    h.sim.with_store_mut(|store| {
        store
            .service_accounts
            .push(json!({"uuid": "ab".repeat(16), "username": "svc-proj",
            "project_uuid": PROJECT, "state": "OK"}));
        store
            .course_accounts
            .push(json!({"uuid": "cd".repeat(16), "username": "course-1",
            "project_uuid": PROJECT, "state": "OK"}));
    });
    let event = |action: &str, username: &str| {
        json!({"account_uuid": "ab".repeat(16), "account_username": username,
               "scope_type": "project", "project_uuid": PROJECT, "project_name": "Project",
               "action": action})
    };
    let line = handle(
        &h,
        &s,
        ObjectType::ServiceAccount,
        event("create", "svc-proj"),
    );
    assert!(line.contains("2 resource(s) changed"), "{line}");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "svc-proj"]);
    let line = handle(
        &h,
        &s,
        ObjectType::CourseAccount,
        event("create", "course-1"),
    );
    assert!(line.contains("2 resource(s) changed"), "{line}");
    assert_eq!(
        h.account_users("alloc-b"),
        ["alice1", "course-1", "svc-proj"]
    );
    let line = handle(
        &h,
        &s,
        ObjectType::ServiceAccount,
        event("delete", "svc-proj"),
    );
    assert!(line.contains("2 resource(s) changed"), "{line}");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "course-1"]);
    // A service account Waldur does not know under that name is refused, not added.
    let parsed = parse(
        ObjectType::ServiceAccount,
        event("create", "stranger").to_string().as_bytes(),
    )
    .unwrap();
    let error = h
        .runtime
        .block_on(s.handle(&parsed.event.unwrap()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("no service account \"stranger\""), "{error}");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "course-1"]);
}

/// Takes `user` off the demo account behind the agent's back (an operator's edit, or drift).
fn drop_backend_user(h: &Harness, account: &str, user: &str) {
    let mut state = h.backend_state();
    state["accounts"][account]["users"]
        .as_object_mut()
        .unwrap()
        .remove(user);
    std::fs::write(h.state.path().join("state.json"), state.to_string()).unwrap();
}

fn bob_role(granted: bool) -> serde_json::Value {
    json!({"user_uuid": BOB, "user_username": "bob@idp", "project_uuid": PROJECT,
           "project_name": "Project", "role_name": "PROJECT.MEMBER", "granted": granted})
}

#[test]
fn a_role_event_adds_or_removes_only_its_user_and_follows_the_team() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    // Drift the event must not touch: alice is gone from alloc-a on the backend.
    drop_backend_user(&h, "alloc-a", "alice1");
    h.bob_joins_the_team();
    let granted = bob_role(true);
    let line = handle(&h, &s, ObjectType::UserRole, granted.clone());
    assert!(
        line.contains("2 user(s) added") && line.contains("0 removed"),
        "{line}"
    );
    // Only bob's calls were made: a project resync would have put alice back on alloc-a.
    assert_eq!(h.account_users("alloc-a"), ["bob1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1", "bob1"]);

    // A redelivered grant changes nothing.
    let line = handle(&h, &s, ObjectType::UserRole, granted.clone());
    assert!(line.contains("0 user(s) added"), "{line}");

    // Bob's role is revoked; then the old grant arrives late (a redelivery): bob stays off,
    // because the team is read when an event is handled.
    h.sim
        .with_store_mut(|store| store.team.retain(|m| m.user_uuid != BOB));
    let line = handle(&h, &s, ObjectType::UserRole, bob_role(false));
    assert!(line.contains("2 removed"), "{line}");
    let line = handle(&h, &s, ObjectType::UserRole, granted);
    assert!(
        line.contains("0 user(s) added") && line.contains("0 removed"),
        "{line}"
    );
    assert_eq!(h.account_users("alloc-a"), Vec::<String>::new());
    assert_eq!(h.account_users("alloc-b"), ["alice1"]);
}

#[test]
fn an_offering_resources_sync_recreates_what_the_backend_lost_once() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let s = sessions(&h);
    let accounts = h.backend_state()["accounts"].as_object().unwrap().len();
    // The backend lost alloc-a (restored from an old backup, say).
    let mut state = h.backend_state();
    state["accounts"].as_object_mut().unwrap().remove("alloc-a");
    std::fs::write(h.state.path().join("state.json"), state.to_string()).unwrap();
    assert_eq!(h.account("alloc-a"), None);

    let sync = json!({"offering_uuid": OFFERING, "requested_by_user_uuid": ALICE});
    let line = handle(&h, &s, ObjectType::OfferingResourcesSync, sync.clone());
    assert!(line.contains("1 recreated"), "{line}");
    // Recreated under its backend id, with the team on it again.
    assert_eq!(h.account_users("alloc-a"), ["alice1"]);
    assert_eq!(h.resource(RES_A).backend_id, "alloc-a");
    // Redelivered: nothing is missing any more.
    let line = handle(&h, &s, ObjectType::OfferingResourcesSync, sync);
    assert!(line.contains("0 recreated"), "{line}");
    assert_eq!(
        h.backend_state()["accounts"].as_object().unwrap().len(),
        accounts
    );
}
