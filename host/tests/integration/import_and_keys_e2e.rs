//! Resource import (I1-I6) and resource API keys (K1-K4) end to end: events (as Mastermind
//! publishes them) handled on the offering's order-processing session, against the simulator
//! and the demo plugin through the real loader; key provisioning after a Create order; the
//! sweep of stuck rotations the event-mode timer runs.

use crate::common::*;
use serde_json::{json, Value};
use waldur_agent::events::handlers::{Handled, OfferingSessions};
use waldur_agent::events::message::{parse, ObjectType};
use waldur_agent::modes::error::ModeError;
use waldur_agent::modes::runtime::{Mode, Session};
use waldur_sim::{Fault, Matcher};

const IMPORT_SETTINGS: &str = "        project_prefix: hpc_";
const IMPORT_ENABLED: &str = "    resource_import_enabled: true";
const I6: &str = "/api/backend-resources/";

/// The offering's order-processing session, the only one these events use.
fn sessions(h: &Harness) -> OfferingSessions<'_> {
    let offering = &h.agent.config.offerings[0];
    let orders = h
        .runtime
        .block_on(Session::open(&h.agent, offering, Mode::OrderProcess))
        .unwrap();
    OfferingSessions {
        orders: Some(orders),
        membership: None,
        order_retry: fast().order_retry,
    }
}

/// Parses and handles one message body of `object_type`.
fn handle(
    h: &Harness,
    sessions: &OfferingSessions<'_>,
    object_type: ObjectType,
    body: Value,
) -> Result<Handled, ModeError> {
    let parsed = parse(object_type, body.to_string().as_bytes()).expect("well-formed");
    h.runtime
        .block_on(sessions.handle(&parsed.event.expect("needs work")))
}

/// An account made on the backend behind Waldur's back (by an operator, or before the site
/// used Waldur): written into the demo's state file.
fn add_backend_account(h: &Harness, name: &str, organization: &str, cpu_minutes: i64) {
    let path = h.state.path().join("state.json");
    let mut state = h.backend_state();
    if state.get("version").is_none() {
        state = json!({"version": 1, "accounts": {}});
    }
    state["accounts"][name] = json!({
        "name": name, "description": name, "organization": organization,
        "parent": organization, "limits": {"cpu": cpu_minutes},
    });
    std::fs::write(path, state.to_string()).unwrap();
}

/// A site whose Waldur knows alloc-a and alloc-b (created by a cycle) and whose backend also
/// has: two allocations of project `proj` Waldur does not know, one of a project outside the
/// offering's prefix, one of a project Waldur does not have, and one with a hostile name.
fn import_site(settings: &str) -> Harness {
    let settings = format!("{IMPORT_SETTINGS}\n{settings}");
    let h = harness_with(
        scenario(&two_create_orders()),
        Options {
            offering: IMPORT_ENABLED,
            settings: &settings,
            ..Options::default()
        },
    );
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.resource(RES_A).backend_id, "alloc-a");
    add_backend_account(&h, "legacy-1", "hpc_proj", 600);
    add_backend_account(&h, "legacy-2", "hpc_proj", 120);
    add_backend_account(&h, "foreign-1", "other_proj", 60);
    add_backend_account(&h, "orphan-1", "hpc_nosuch", 60);
    add_backend_account(&h, "evil\n\u{1b}[31m", "hpc_proj", 60);
    h
}

fn request_event(h: &Harness) -> (String, Value) {
    let uuid = h.sim.create_backend_resource_request(OFFERING).unwrap();
    let body = json!({"backend_resource_request_uuid": uuid});
    (uuid, body)
}

/// A user asks for importable resources and the agent handles the event: the request id and
/// the handler's line.
fn import_requested(h: &Harness, s: &OfferingSessions<'_>) -> (String, String) {
    let (uuid, body) = request_event(h);
    let line = handle(h, s, ObjectType::ImportableResources, body)
        .unwrap()
        .0;
    (uuid, line)
}

fn request_in_waldur(h: &Harness, uuid: &str) -> waldur_sim::store::BackendResourceRequest {
    h.sim
        .with_store(|st| st.backend_resource_requests[uuid].clone())
}

/// `(backend_id, project, cpu limit)` of every backend resource offered, sorted.
fn offered(h: &Harness) -> Vec<(String, String, Value)> {
    let mut rows: Vec<_> = h.sim.with_store(|st| {
        st.backend_resources
            .values()
            .map(|r| {
                assert_eq!(r.name, r.backend_id);
                assert_eq!(r.offering_uuid, OFFERING);
                (
                    r.backend_id.clone(),
                    r.project_uuid.clone(),
                    r.backend_metadata["limits"]["cpu"].clone(),
                )
            })
            .collect()
    });
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn legacy_offered() -> Vec<(String, String, Value)> {
    vec![
        ("legacy-1".into(), PROJECT.into(), json!(10)),
        ("legacy-2".into(), PROJECT.into(), json!(2)),
    ]
}

#[test]
fn accounts_only_on_the_backend_are_offered_for_import_with_their_limits() {
    let h = import_site("");
    let s = sessions(&h);
    let (uuid, line) = import_requested(&h, &s);
    assert!(
        line.contains("done; 2 imported, 0 already offered, 3 skipped, 0 failed"),
        "{line}"
    );
    let request = request_in_waldur(&h, &uuid);
    assert_eq!(request.state, "Done");
    assert!(request.started.is_some() && request.finished.is_some());
    // Limits in Waldur units (600 backend minutes / unit_factor 60); the accounts Waldur
    // knows, the hierarchy accounts, the foreign-prefix, project-less and hostile ones are
    // not offered.
    assert_eq!(offered(&h), legacy_offered());
}

#[test]
fn a_redelivered_or_repeated_request_offers_nothing_twice() {
    let h = import_site("");
    let s = sessions(&h);
    let (uuid, body) = request_event(&h);
    handle(&h, &s, ObjectType::ImportableResources, body.clone()).unwrap();
    h.sim.reset_log();
    // The agent died before acknowledging: the same event again.
    let line = handle(&h, &s, ObjectType::ImportableResources, body)
        .unwrap()
        .0;
    assert!(line.contains("already Done, nothing to do"), "{line}");
    assert_eq!(h.sim.count("POST", I6), 0);
    assert_eq!(
        h.sim.count(
            "POST",
            "/api/backend-resource-requests/{uuid}/start_processing/"
        ),
        0
    );
    assert_eq!(request_in_waldur(&h, &uuid).state, "Done");
    // A new request finds everything offered already.
    let (second, line) = import_requested(&h, &s);
    assert!(line.contains("0 imported, 2 already offered"), "{line}");
    assert_eq!(request_in_waldur(&h, &second).state, "Done");
    assert_eq!(offered(&h), legacy_offered());
}

#[test]
fn an_offer_answered_500_is_retried_and_made_once() {
    let not_applied = Fault::status(Matcher::endpoint("POST", I6), 500, 1);
    let applied = Fault::applied_status(Matcher::endpoint("POST", I6), 502, 1);
    // Not applied: the retry makes the offer (3 offers sent). Applied, but answered 502: the
    // retry finds the offer and does not repeat it (2 sent).
    for (fault, sent) in [(not_applied, 3), (applied, 2)] {
        let h = import_site("");
        let s = sessions(&h);
        h.sim.inject(fault);
        let (uuid, line) = import_requested(&h, &s);
        assert!(line.contains("done; 2 imported"), "{line}");
        assert_eq!(h.sim.count("POST", I6), sent);
        assert_eq!(offered(&h), legacy_offered());
        assert_eq!(request_in_waldur(&h, &uuid).state, "Done");
    }
}

#[test]
fn a_request_left_processing_by_a_crash_is_finished_without_double_offers() {
    let h = import_site("");
    let s = sessions(&h);
    let (uuid, body) = request_event(&h);
    // The earlier attempt started the request and offered legacy-1, then died.
    h.sim.with_store_mut(|st| {
        st.backend_resource_requests.get_mut(&uuid).unwrap().state = "Processing".into();
        st.backend_resources.insert(
            "ab".repeat(16),
            waldur_sim::store::BackendResource {
                uuid: "ab".repeat(16),
                name: "legacy-1".into(),
                backend_id: "legacy-1".into(),
                project_uuid: PROJECT.into(),
                offering_uuid: OFFERING.into(),
                backend_metadata: json!({"limits": {"cpu": 10}}).as_object().cloned().unwrap(),
                created: String::new(),
                modified: String::new(),
            },
        );
    });
    let line = handle(&h, &s, ObjectType::ImportableResources, body)
        .unwrap()
        .0;
    assert!(line.contains("1 imported, 1 already offered"), "{line}");
    assert_eq!(offered(&h), legacy_offered());
    assert_eq!(request_in_waldur(&h, &uuid).state, "Done");
}

#[test]
fn a_failing_backend_errs_the_request_with_one_line() {
    let h = import_site("        fail_methods: [client_list_resources]");
    let s = sessions(&h);
    let (uuid, line) = import_requested(&h, &s);
    assert!(line.contains("erred"), "{line}");
    let request = request_in_waldur(&h, &uuid);
    assert_eq!(request.state, "Erred");
    assert_eq!(
        request.error_message,
        "demo: injected failure in client_list_resources"
    );
    assert!(offered(&h).is_empty());

    // The limits of each account cannot be read: nothing is offered, and the request says so.
    let h = import_site("        fail_methods: [get_resource_limits]");
    let s = sessions(&h);
    let (uuid, _) = import_requested(&h, &s);
    let request = request_in_waldur(&h, &uuid);
    assert_eq!(request.state, "Erred");
    assert!(!request.error_message.contains('\n'));
    assert!(
        request.error_message.starts_with(
            "2 of the backend's account(s) could not be offered for import; \"legacy-1\": \
             demo: injected failure in get_resource_limits"
        ),
        "{}",
        request.error_message
    );
    assert!(offered(&h).is_empty());
}

#[test]
fn an_offering_without_resource_import_leaves_the_request_alone() {
    let h = harness(scenario(&two_create_orders()), IMPORT_SETTINGS, "");
    let s = sessions(&h);
    let (uuid, body) = request_event(&h);
    let error = handle(&h, &s, ObjectType::ImportableResources, body).unwrap_err();
    assert!(
        error.to_string().contains("resource_import_enabled: false"),
        "{error}"
    );
    assert_eq!(request_in_waldur(&h, &uuid).state, "Sent");
}

const KEYS_SETTING: &str = "        resource_api_keys: true";
const K2: &str = "/api/marketplace-resource-api-keys/report_created/";
const K3: &str = "/api/marketplace-resource-api-keys/{uuid}/set_key/";
const K4: &str = "/api/marketplace-resource-api-keys/{uuid}/set_erred/";

/// The two Create orders of [`two_create_orders`] carried out by one cycle.
fn created_site(settings: &str) -> Harness {
    let h = harness(scenario(&two_create_orders()), settings, "");
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.order_state(CREATE_B).0, "done");
    h
}

/// `(client_id, api_key, state)` of a resource's keys in Waldur, sorted by client id.
fn waldur_keys(h: &Harness, resource: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = h.sim.with_store(|st| {
        st.resource_api_keys
            .values()
            .filter(|k| k.resource_uuid == resource)
            .map(|k| {
                (
                    k.client_id.clone().unwrap_or_default(),
                    k.api_key.clone().unwrap_or_default(),
                    k.state.clone(),
                )
            })
            .collect()
    });
    rows.sort();
    rows
}

/// `(client_id, api_key)` of an account's keys on the backend, sorted.
fn backend_keys(h: &Harness, account: &str) -> Vec<(String, String)> {
    h.account(account)
        .and_then(|a| a["api_keys"].as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(id, key)| (id, key["api_key"].as_str().unwrap().to_string()))
        .collect()
}

/// The id of a resource's key row with this client id.
fn key_uuid(h: &Harness, client_id: &str) -> String {
    h.sim.with_store(|st| {
        st.resource_api_keys
            .values()
            .find(|k| k.client_id.as_deref() == Some(client_id))
            .map(|k| k.uuid.clone())
            .unwrap_or_else(|| panic!("no key {client_id}"))
    })
}

fn key_row(h: &Harness, uuid: &str) -> waldur_sim::store::ResourceApiKey {
    h.sim.with_store(|st| st.resource_api_keys[uuid].clone())
}

fn ok_keys(h: &Harness, account: &str) -> Vec<(String, String, String)> {
    backend_keys(h, account)
        .into_iter()
        .map(|(id, key)| (id, key, "OK".to_string()))
        .collect()
}

/// A user asks for a new key of `client_id`; the agent handles the rotation event.
fn rotation_requested(h: &Harness, s: &OfferingSessions<'_>, client_id: &str) -> String {
    let event = h.sim.request_key_rotation(&key_uuid(h, client_id)).unwrap();
    handle(h, s, ObjectType::ResourceApiKeyRotation, event)
        .unwrap()
        .0
}

#[test]
fn a_created_resource_gets_two_keys_reported_once() {
    let h = created_site(KEYS_SETTING);
    assert_eq!(h.sim.count("POST", K2), 4);
    for (resource, account) in [(RES_A, "alloc-a"), (RES_B, "alloc-b")] {
        let keys = waldur_keys(&h, resource);
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_eq!(keys[0].0, format!("{account}-key-1"));
        // Waldur holds exactly the backend's live keys.
        assert_eq!(keys, ok_keys(&h, account));
    }

    // Provisioning again (a repeated order) tops up rather than adds: nothing new.
    let s = sessions(&h);
    let session = s.orders.as_ref().unwrap();
    let reported = h
        .runtime
        .block_on(session.provision_resource_api_keys(RES_A, "alloc-a"))
        .unwrap();
    assert_eq!(reported, 0);
    assert_eq!(h.sim.count("POST", K2), 4);

    // Waldur lost one key's row (its report never arrived): the backend's copy is dropped and
    // one fresh key is minted and reported, so both sides hold two again.
    h.sim.with_store_mut(|st| {
        st.resource_api_keys
            .retain(|_, k| k.client_id.as_deref() != Some("alloc-a-key-2"))
    });
    let reported = h
        .runtime
        .block_on(session.provision_resource_api_keys(RES_A, "alloc-a"))
        .unwrap();
    assert_eq!(reported, 1);
    let keys = waldur_keys(&h, RES_A);
    let ids: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(ids, ["alloc-a-key-1", "alloc-a-key-3"]);
    assert_eq!(keys, ok_keys(&h, "alloc-a"));
}

#[test]
fn a_backend_without_key_support_gets_no_keys() {
    let h = created_site("");
    assert_eq!(h.sim.count("POST", K2), 0);
    assert_eq!(h.sim.count("GET", "/api/marketplace-resource-api-keys/"), 0);
    assert!(backend_keys(&h, "alloc-a").is_empty());
}

#[test]
fn a_rotation_reports_the_new_key() {
    let h = created_site(KEYS_SETTING);
    let s = sessions(&h);
    let before = backend_keys(&h, "alloc-b");
    let line = rotation_requested(&h, &s, "alloc-b-key-1");
    assert!(line.ends_with(": rotated"), "{line}");
    let after = backend_keys(&h, "alloc-b");
    assert_ne!(after[0].1, before[0].1, "the backend has a new value");
    assert_eq!(after[1], before[1], "the other key is untouched");
    assert_eq!(waldur_keys(&h, RES_B), ok_keys(&h, "alloc-b"));
    // K3 carries the value only: the demo keeps the client id.
    let set_key: Vec<Value> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.template == K3)
        .map(|r| serde_json::from_str(r.request_body.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(set_key, [json!({"api_key": after[0].1})]);
    assert_eq!(h.sim.count("POST", K4), 0);
}

#[test]
fn a_redelivered_rotation_leaves_the_answered_key_alone() {
    let h = created_site(KEYS_SETTING);
    let s = sessions(&h);
    let event = h
        .sim
        .request_key_rotation(&key_uuid(&h, "alloc-b-key-1"))
        .unwrap();
    let line = handle(&h, &s, ObjectType::ResourceApiKeyRotation, event.clone())
        .unwrap()
        .0;
    assert!(line.ends_with(": rotated"), "{line}");
    let rotated = backend_keys(&h, "alloc-b");
    // The broker delivers the message again (the agent died before its ack): the key Waldur
    // just received must not be replaced by another one.
    let line = handle(&h, &s, ObjectType::ResourceApiKeyRotation, event)
        .unwrap()
        .0;
    assert!(line.contains("already answered (the key is OK)"), "{line}");
    assert_eq!(backend_keys(&h, "alloc-b"), rotated);
    assert_eq!(waldur_keys(&h, RES_B), ok_keys(&h, "alloc-b"));
    assert_eq!(h.sim.count("POST", K3), 1);
}

#[test]
fn a_failed_rotation_errs_the_key() {
    let h = created_site(&format!(
        "{KEYS_SETTING}\n        fail_methods: [rotate_resource_key]"
    ));
    let s = sessions(&h);
    let line = rotation_requested(&h, &s, "alloc-b-key-1");
    assert!(
        line.contains("rotation failed, reported to Waldur"),
        "{line}"
    );
    let row = key_row(&h, &key_uuid(&h, "alloc-b-key-1"));
    assert_eq!(row.state, "Erred");
    assert_eq!(
        row.error_message,
        "demo: injected failure in rotate_resource_key"
    );
    assert_eq!(h.sim.count("POST", K3), 0);

    // A key the backend does not have is a backend error too.
    let h = created_site(KEYS_SETTING);
    let s = sessions(&h);
    let stranger = h
        .sim
        .add_resource_api_key(waldur_sim::routes::api_keys::KeySpec {
            resource_uuid: RES_B.into(),
            client_id: Some("stranger".into()),
            ..Default::default()
        })
        .unwrap();
    let event = h.sim.request_key_rotation(&stranger).unwrap();
    handle(&h, &s, ObjectType::ResourceApiKeyRotation, event).unwrap();
    let row = key_row(&h, &stranger);
    assert_eq!(row.state, "Erred");
    assert_eq!(
        row.error_message,
        "demo: account alloc-b has no API key stranger"
    );
}

#[test]
fn a_rotation_for_a_backend_without_key_support_is_ignored() {
    let h = created_site("");
    let s = sessions(&h);
    h.sim
        .add_resource_api_key(waldur_sim::routes::api_keys::KeySpec {
            resource_uuid: RES_B.into(),
            client_id: Some("c1".into()),
            ..Default::default()
        })
        .unwrap();
    let line = rotation_requested(&h, &s, "c1");
    assert!(
        line.ends_with("ignored, the backend does not manage resource API keys"),
        "{line}"
    );
    let row = key_row(&h, &key_uuid(&h, "c1"));
    assert_eq!(
        row.state, "Updating",
        "left for an agent that can rotate it"
    );
    assert_eq!(h.sim.count("POST", K3) + h.sim.count("POST", K4), 0);
}

#[test]
fn the_sweep_rotates_only_the_stuck_keys() {
    use waldur_agent::modes::api_keys::API_KEY_STUCK_AFTER;
    let h = created_site(KEYS_SETTING);
    let s = sessions(&h);
    let long_ago = "2026-01-01T00:00:00Z";
    let stuck = key_uuid(&h, "alloc-a-key-1");
    let in_flight = key_uuid(&h, "alloc-b-key-1");
    let idle = key_uuid(&h, "alloc-b-key-2");
    let nameless = h
        .sim
        .add_resource_api_key(waldur_sim::routes::api_keys::KeySpec {
            resource_uuid: RES_A.into(),
            state: Some("Updating".into()),
            modified: Some(long_ago.into()),
            ..Default::default()
        })
        .unwrap();
    h.sim.with_store_mut(|st| {
        for (uuid, state, modified) in [
            (&stuck, "Updating", long_ago.to_string()),
            (&in_flight, "Updating", waldur_sim::store::now()),
            (&idle, "OK", long_ago.to_string()),
        ] {
            let key = st.resource_api_keys.get_mut(uuid).unwrap();
            key.state = state.into();
            key.modified = modified;
        }
    });
    let before = backend_keys(&h, "alloc-a");
    let sweep = h
        .runtime
        .block_on(
            s.orders
                .as_ref()
                .unwrap()
                .reconcile_stuck_api_keys(API_KEY_STUCK_AFTER),
        )
        .unwrap();
    assert_eq!((sweep.stuck, sweep.rotated, sweep.skipped), (2, 1, 1));
    assert_eq!((sweep.erred, sweep.failed), (0, 0));
    assert_eq!(h.sim.count("POST", K3), 1);
    let states = h.sim.with_store(|st| {
        [&stuck, &in_flight, &idle, &nameless].map(|u| st.resource_api_keys[u].state.clone())
    });
    assert_eq!(states, ["OK", "Updating", "OK", "Updating"]);
    let after = backend_keys(&h, "alloc-a");
    assert_ne!(after[0].1, before[0].1);
    let row = key_row(&h, &stuck);
    assert_eq!(row.api_key.as_deref(), Some(after[0].1.as_str()));
}
