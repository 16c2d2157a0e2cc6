//! Every event type of the reference (§3.6) carried by a REAL RabbitMQ to the agent binary
//! (`run -m event_process`, single queue), against the simulator and the demo plugin through
//! the real loader. For each type: what changed in Waldur and on the backend after its
//! message, and that the same message delivered again changes nothing twice.
//!
//! The handlers' finer cases (without a broker) are in events_handlers_e2e.rs and
//! import_and_keys_e2e.rs; the transport's (flows, reconnects, kill -9) in event_process_e2e.rs.

use crate::common::events::*;
use crate::common::site::{wait_until, Running, Site};
use crate::common::{
    scenario, two_create_orders, ALICE, BOB, CREATE_A, CREATE_B, PROJECT, RES_A, RES_B,
};
use serde_json::{json, Value};
use waldur_sim::Change;
use waldur_test_support::rabbitmq::require_real_rabbitmq;

const OFFERING: &str = crate::common::OFFERING;
const SET_BACKEND_ID: &str = "/api/marketplace-provider-resources/{uuid}/set_backend_id/";
const SET_KEY: &str = "/api/marketplace-resource-api-keys/{uuid}/set_key/";
const OFFER_IMPORT: &str = "/api/backend-resources/";

/// alloc-a done by the start-up pass, alloc-b's Create held for its event; resource import,
/// periodic limits and resource API keys on, so every type has a queue binding.
fn broker_site() -> Site {
    let mut scenario = scenario(&two_create_orders());
    scenario.tokens.push(crate::common::site::TOKEN.into());
    let site = stomp_site(
        scenario,
        "single_queue",
        "        project_prefix: hpc_\n        resource_api_keys: true\n        \
         periodic_limits: {enabled: true}",
        "    resource_import_enabled: true",
    );
    hold(&site, CREATE_B);
    site
}

fn state_file(site: &Site) -> std::path::PathBuf {
    site.work.path().join("state").join("state.json")
}

fn backend(site: &Site) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state_file(site)).unwrap()).unwrap()
}

fn edit_backend(site: &Site, change: impl FnOnce(&mut Value)) {
    let mut state = backend(site);
    change(&mut state);
    std::fs::write(state_file(site), state.to_string()).unwrap();
}

fn users_of(site: &Site, account: &str) -> Vec<String> {
    let mut names: Vec<String> = backend(site)["accounts"][account]["users"]
        .as_object()
        .map(|u| u.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// How many `object_type` messages the agent has handled: it logs one line per message
/// (`<type> event <message id>: ...`), after the handler and before the ack.
fn handled(agent: &Running, object_type: &str) -> usize {
    log_count(agent, &format!("{object_type} event "))
}

fn wait_handled(agent: &mut Running, object_type: &str, count: usize) {
    wait_until(
        &format!("{count} {object_type} message(s) handled"),
        WAIT,
        || {
            assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
            handled(agent, object_type) >= count
        },
    );
}

fn log_count(agent: &Running, what: &str) -> usize {
    agent.log_text().matches(what).count()
}

/// Makes `change` on Mastermind's side, which publishes its message, then hands the same
/// message over again (a redelivery: the broker does so when the agent died before its ack),
/// and waits until the agent handled both (and `extra` more of the type, which the change
/// causes in turn).
fn change_twice(site: &Site, agent: &mut Running, object_type: &str, change: Change, extra: usize) {
    let before = handled(agent, object_type);
    assert_eq!(
        site.sim.apply_change(change).unwrap(),
        1,
        "{object_type}: routed to the agent's queue"
    );
    let message = site.sim.published().pop().unwrap();
    assert_eq!(message.object_type, object_type);
    site.sim.publish_event(OFFERING, object_type, message.body);
    wait_handled(agent, object_type, before + 2 + extra);
}

/// Publishes `body` as Mastermind does, twice, as [`change_twice`] for messages of no change
/// of the simulator's.
fn publish_twice(site: &Site, agent: &mut Running, object_type: &str, body: Value) {
    let before = handled(agent, object_type);
    for _ in 0..2 {
        assert_eq!(
            site.sim.publish_event(OFFERING, object_type, body.clone()),
            1
        );
    }
    wait_handled(agent, object_type, before + 2);
}

#[test]
fn every_event_type_is_served_over_the_broker_and_a_redelivery_changes_nothing() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = broker_site();
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    let queue = site
        .sim
        .with_store(|s| s.consumer_queues.values().next().cloned().unwrap());
    assert_eq!(queue.object_types.len(), 10, "{:?}", queue.object_types);
    assert_eq!(site.sim.order(CREATE_A).unwrap().state, "done");
    assert_eq!(users_of(&site, "alloc-a"), ["alice1"]);
    // The start-up pass approved alloc-a's order, and Waldur announced that: handled first,
    // so the counts below are the test's own messages.
    wait_handled(&mut agent, "order", 1);

    // order: the consumer approves the held Create; the agent approves it as provider (a
    // third message: Waldur announces that) and carries it out once.
    change_twice(
        &site,
        &mut agent,
        "order",
        Change::ConsumerApproved {
            order_uuid: CREATE_B.into(),
        },
        1,
    );
    assert_eq!(site.sim.order(CREATE_B).unwrap().state, "done");
    assert_eq!(
        site.sim
            .resource(RES_B)
            .map(|r| r.backend_id)
            .unwrap_or_default(),
        "alloc-b"
    );
    assert_eq!(site.sim.count("POST", SET_BACKEND_ID), 2);
    assert_eq!(users_of(&site, "alloc-b"), ["alice1"]);

    // user_role: bob joins the project; only bob is added, drift of alice is left alone.
    edit_backend(&site, |s| {
        s["accounts"]["alloc-a"]["users"]
            .as_object_mut()
            .unwrap()
            .remove("alice1");
    });
    change_twice(
        &site,
        &mut agent,
        "user_role",
        Change::RoleGranted {
            project_uuid: PROJECT.into(),
            user_uuid: BOB.into(),
            role: "PROJECT.MEMBER".into(),
        },
        0,
    );
    assert_eq!(users_of(&site, "alloc-a"), ["bob1"], "{}", agent.log_text());
    assert_eq!(
        users_of(&site, "alloc-b"),
        ["alice1", "bob1"],
        "{}",
        agent.log_text()
    );

    // resource: one resource follows its team again.
    change_twice(
        &site,
        &mut agent,
        "resource",
        Change::ResourceChanged {
            resource_uuid: RES_A.into(),
            restrict_member_access: None,
        },
        0,
    );
    assert_eq!(users_of(&site, "alloc-a"), ["alice1", "bob1"]);

    // offering_user: an attribute update reaches the plugin (the demo accepts and keeps none).
    let bob_offering_user = site.sim.with_store(|s| {
        s.offering_users
            .values()
            .find(|u| u.user_uuid == BOB && u.offering_uuid == OFFERING)
            .map(|u| u.uuid.clone())
            .unwrap()
    });
    let mut attributes = serde_json::Map::new();
    attributes.insert("email".into(), json!("bob@example.org"));
    change_twice(
        &site,
        &mut agent,
        "offering_user",
        Change::UserAttributesChanged {
            offering_user_uuid: bob_offering_user,
            attributes,
        },
        0,
    );
    assert_eq!(
        log_count(&agent, "1 attribute(s)"),
        2,
        "{}",
        agent.log_text()
    );

    // offering_resources_sync: the backend lost alloc-a; it is recreated once, with its team.
    edit_backend(&site, |s| {
        s["accounts"].as_object_mut().unwrap().remove("alloc-a");
    });
    change_twice(
        &site,
        &mut agent,
        "offering_resources_sync",
        Change::OfferingSyncRequested {
            offering_uuid: OFFERING.into(),
            requested_by_user_uuid: ALICE.into(),
        },
        0,
    );
    assert_eq!(users_of(&site, "alloc-a"), ["alice1", "bob1"]);
    let syncs = agent.log_text();
    let syncs: Vec<&str> = syncs
        .lines()
        .filter(|l| l.contains("offering_resources_sync event "))
        .collect();
    assert!(syncs[0].contains(", 1 recreated"), "{syncs:?}");
    assert!(syncs[1].contains(", 0 recreated"), "{syncs:?}");

    // service_account and course_account: added to the project's resources, then removed.
    let (service, course) = ("ab".repeat(16), "cd".repeat(16));
    for (course, uuid, username) in [(false, &service, "svc-proj"), (true, &course, "course-1")] {
        change_twice(
            &site,
            &mut agent,
            if course {
                "course_account"
            } else {
                "service_account"
            },
            Change::AccountCreated {
                course,
                project_uuid: PROJECT.into(),
                uuid: uuid.clone(),
                username: username.into(),
            },
            0,
        );
    }
    for alloc in ["alloc-a", "alloc-b"] {
        assert_eq!(
            users_of(&site, alloc),
            ["alice1", "bob1", "course-1", "svc-proj"]
        );
    }
    change_twice(
        &site,
        &mut agent,
        "service_account",
        Change::AccountDeleted {
            course: false,
            uuid: service,
        },
        0,
    );
    assert_eq!(users_of(&site, "alloc-b"), ["alice1", "bob1", "course-1"]);

    // importable_resources: an account only the backend has is offered once.
    edit_backend(&site, |s| {
        s["accounts"]["legacy-1"] = json!({"name": "legacy-1", "description": "legacy-1",
            "organization": "hpc_proj", "parent": "hpc_proj", "limits": {"cpu": 600}});
    });
    let before = handled(&agent, "importable_resources");
    let request = site.sim.create_backend_resource_request(OFFERING).unwrap();
    wait_handled(&mut agent, "importable_resources", before + 1);
    site.sim.publish_event(
        OFFERING,
        "importable_resources",
        json!({"backend_resource_request_uuid": request}),
    );
    wait_handled(&mut agent, "importable_resources", before + 2);
    let (request_state, offered): (String, Vec<String>) = site.sim.with_store(|s| {
        (
            s.backend_resource_requests[&request].state.clone(),
            s.backend_resources
                .values()
                .map(|r| r.backend_id.clone())
                .collect(),
        )
    });
    assert_eq!(request_state, "Done", "{}", agent.log_text());
    assert_eq!(offered, ["legacy-1"]);
    assert_eq!(site.sim.count("POST", OFFER_IMPORT), 1);

    // resource_periodic_limits: the outcome goes to the policy (the demo has no periodic
    // settings, so the agent's answer is a reported failure), once per delivery.
    let policy = "12121212121212121212121212121212";
    publish_twice(
        &site,
        &mut agent,
        "resource_periodic_limits",
        json!({"resource_uuid": RES_B, "backend_id": "alloc-b", "offering_uuid": OFFERING,
               "policy_uuid": policy, "action": "apply_periodic_settings",
               "settings": {"fairshare": 100}, "timestamp": "2026-12-01T00:00:00Z"}),
    );
    let reports = site.sim.with_store(|s| s.periodic_reports.clone());
    assert!(!reports.is_empty(), "{}", agent.log_text());
    assert!(reports
        .iter()
        .all(|r| r["policy_uuid"] == policy && r["success"] == false));

    // resource_api_key_rotation: the key is rotated once; the redelivery finds it answered.
    let key = site.sim.with_store(|s| {
        s.resource_api_keys
            .values()
            .find(|k| k.client_id.as_deref() == Some("alloc-b-key-1"))
            .map(|k| k.uuid.clone())
            .expect("alloc-b got keys at creation")
    });
    let before = backend(&site)["accounts"]["alloc-b"]["api_keys"].clone();
    let rotations = handled(&agent, "resource_api_key_rotation");
    let event = site.sim.request_key_rotation(&key).unwrap();
    wait_handled(&mut agent, "resource_api_key_rotation", rotations + 1);
    site.sim
        .publish_event(OFFERING, "resource_api_key_rotation", event);
    wait_handled(&mut agent, "resource_api_key_rotation", rotations + 2);
    let after = backend(&site)["accounts"]["alloc-b"]["api_keys"].clone();
    assert_ne!(after["alloc-b-key-1"], before["alloc-b-key-1"]);
    assert_eq!(
        site.sim
            .with_store(|s| s.resource_api_keys[&key].state.clone()),
        "OK"
    );
    assert_eq!(site.sim.count("POST", SET_KEY), 1);
    assert_eq!(backend(&site)["accounts"]["alloc-b"]["api_keys"], after);

    // Nothing failed, and the agent stops cleanly with every delivery acknowledged.
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");
    // The approval event of alloc-a's order came while the start-up pass still worked on
    // it: the event waited for the pass and then found the order done.
    assert!(!log.contains("not marked done"), "{log}");
    queue_drained(&rabbit, &site);
}

/// The order session lives as long as event processing: a Create announced after the
/// start-up pass adds the team as Waldur has it then, with a member whose offering user was
/// made after the agent started (no event of theirs reached the agent).
#[test]
fn a_create_by_event_adds_offering_users_made_after_the_start_up_pass() {
    if require_real_rabbitmq().is_none() {
        return;
    }
    let site = broker_site();
    // Bob joins later: no offering user, no team membership yet.
    let bob = site.sim.with_store_mut(|s| {
        let uuid = s
            .offering_users
            .iter()
            .find(|(_, u)| u.user_uuid == BOB && u.offering_uuid == OFFERING)
            .map(|(k, _)| k.clone())
            .unwrap();
        s.offering_users.remove(&uuid).unwrap()
    });
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    // The start-up pass created alloc-a with alice (and read the offering users then).
    assert_eq!(users_of(&site, "alloc-a"), ["alice1"]);

    site.sim.with_store_mut(|s| {
        s.team.push(waldur_sim::store::TeamMember {
            project_uuid: PROJECT.into(),
            user_uuid: BOB.into(),
            role: "PROJECT.MEMBER".into(),
        });
        s.offering_users.insert(bob.uuid.clone(), bob);
    });
    site.sim
        .apply_change(Change::ConsumerApproved {
            order_uuid: CREATE_B.into(),
        })
        .unwrap();
    // The team is added after the order is marked done: wait for that step's log line.
    let added = format!("added 2 user(s) order={CREATE_B}");
    let added_one = format!("added 1 user(s) order={CREATE_B}");
    wait_until("alloc-b created by its event, its team added", WAIT, || {
        let log = agent.log_text();
        log.contains(&added) || log.contains(&added_one)
    });
    assert_eq!(
        users_of(&site, "alloc-b"),
        ["alice1", "bob1"],
        "{}",
        agent.log_text()
    );
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
}
