//! The plugin through its trait methods, and through the agent's real default algorithms
//! (create, add and remove users, delete) with the test harness of `waldur-plugin-host`.

use std::collections::BTreeMap;
use std::fs;

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{
    AccountingType, BackendComponent, BackendComponents, Limits, Order, PendingOrderDecision,
    RuntimeContext, UserOptions, WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Backend, Client, ErrorKind, Result};
use waldur_plugin_host::testing::Harness;
use waldur_plugin_host::{Backend as Agent, PluginError};

use crate::Demo;

fn components() -> BackendComponents {
    let component = |accounting_type, limit| BackendComponent {
        accounting_type,
        unit_factor: Some(60.0),
        limit,
        ..Default::default()
    };
    BackendComponents::from([
        ("cpu".into(), component(AccountingType::Usage, Some(10.0))),
        ("gpu".into(), component(AccountingType::Limit, None)),
    ])
}

fn settings(dir: &tempfile::TempDir, extra: Value) -> Value {
    let mut settings = json!({
        "state_dir": dir.path(),
        "customer_prefix": "c_",
        "project_prefix": "p_",
        "allocation_prefix": "a_",
    });
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    settings
}

fn demo_with(dir: &tempfile::TempDir, extra: Value) -> Result<Demo> {
    Demo::open(settings(dir, extra).as_object().unwrap(), components())
}

/// The plugin as the agent runs it: the agent's defaults over a `Demo` on `dir`'s state.
fn agent_with(dir: &tempfile::TempDir, extra: Value) -> Agent {
    Harness::new("demo")
        .settings(settings(dir, extra))
        .components(serde_json::to_value(components()).unwrap())
        .backend::<Demo>()
        .unwrap()
}

fn demo(dir: &tempfile::TempDir) -> Demo {
    demo_with(dir, json!({})).unwrap()
}

fn resource() -> WaldurResource {
    WaldurResource {
        uuid: "r1".into(),
        name: "My Alloc".into(),
        slug: "alloc-1".into(),
        customer_slug: "cust-1".into(),
        customer_name: "Customer One".into(),
        project_slug: "proj-1".into(),
        project_name: "Project One".into(),
        limits: Limits::from([("gpu".into(), 5.0)]),
        ..Default::default()
    }
}

/// The agent's create order: its default `create_resource_with_id` (pre-create hook, the
/// account unless it exists, limits), answering the Waldur limits.
fn create(
    agent: &Agent,
    res: &WaldurResource,
    id: &str,
) -> std::result::Result<Limits, PluginError> {
    Ok(agent.create_resource_with_id(res, id, None)?.limits)
}

fn with_id(res: WaldurResource, id: &str) -> WaldurResource {
    WaldurResource {
        backend_id: id.into(),
        ..res
    }
}

#[test]
fn lifecycle_through_the_agent_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with(&dir, json!({}));
    let demo = demo(&dir);
    let waldur_limits = create(&agent, &resource(), "a_alloc-1").unwrap();
    assert_eq!(
        waldur_limits,
        Limits::from([("cpu".into(), 10.0), ("gpu".into(), 5.0)])
    );

    // Hierarchy: root -> c_cust-1 -> p_proj-1 -> a_alloc-1.
    let accounts = demo.client_list_resources().unwrap();
    let names: Vec<_> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a_alloc-1", "c_cust-1", "p_proj-1"]);
    let alloc = demo
        .client_get_resource("a_alloc-1".into())
        .unwrap()
        .unwrap();
    assert_eq!(alloc.organization, "p_proj-1");
    assert_eq!(alloc.description, "My Alloc");

    // Limits both ways with unit_factor 60.
    assert_eq!(
        demo.client_get_resource_limits("a_alloc-1".into()).unwrap(),
        BTreeMap::from([("cpu".into(), 600), ("gpu".into(), 300)])
    );
    assert_eq!(
        demo.get_resource_limits("a_alloc-1".into()).unwrap(),
        BTreeMap::from([("cpu".into(), 10), ("gpu".into(), 5)])
    );

    // Users, through the agent's default add_user (association check, then create).
    let allocation = with_id(resource(), "a_alloc-1");
    let added = agent
        .add_users_to_resource(
            &allocation,
            &["alice".into(), "bob".into()],
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, ["alice", "bob"]);
    // Adding again finds the associations and creates nothing.
    agent
        .add_users_to_resource(&allocation, &["alice".into()], &UserOptions::default())
        .unwrap();
    let association = demo
        .client_get_association("alice".into(), "a_alloc-1".into())
        .unwrap()
        .unwrap();
    assert_eq!(
        (association.account.as_str(), association.user.as_str()),
        ("a_alloc-1", "alice")
    );
    assert_eq!(
        demo.client_list_resource_users("a_alloc-1".into()).unwrap(),
        ["alice", "bob"]
    );
    demo.client_set_resource_user_limits(
        "a_alloc-1".into(),
        "alice".into(),
        BTreeMap::from([("gpu".into(), 60)]),
    )
    .unwrap();
    assert_eq!(
        demo.client_get_resource_user_limits("a_alloc-1".into())
            .unwrap()["alice"]["gpu"],
        60
    );
    agent
        .remove_users_from_resource(&allocation, &["bob".into()], &UserOptions::default())
        .unwrap();
    demo.client_delete_association("bob".into(), "missing".into())
        .unwrap();

    // QoS and metadata.
    assert!(demo.pause_resource("a_alloc-1".into()).unwrap());
    assert!(!demo.pause_resource("a_alloc-1".into()).unwrap());
    assert_eq!(
        Value::Object(demo.get_resource_metadata("a_alloc-1".into()).unwrap()),
        json!({"qos": "paused", "users": 1})
    );
    assert!(demo.downscale_resource("a_alloc-1".into()).unwrap());
    assert!(demo.restore_resource("a_alloc-1".into()).unwrap());
    assert!(!demo.restore_resource("a_alloc-1".into()).unwrap());
    assert!(demo.pause_resource("nope".into()).is_err());

    // Home directories are recorded, not made.
    demo.client_create_linux_user_homedir("alice".into(), "0077".into())
        .unwrap();

    // A second instance (another agent mode) sees all of it.
    let other = super::Demo::open(
        json!({"state_dir": dir.path()}).as_object().unwrap(),
        components(),
    )
    .unwrap();
    assert_eq!(
        other
            .client_list_resource_users("a_alloc-1".into())
            .unwrap(),
        ["alice"]
    );

    // A project with an allocation in it cannot go.
    assert!(demo.client_delete_resource("p_proj-1".into()).is_err());
    // The agent's delete: the allocation, then the project without allocations left.
    agent.delete_resource(&allocation, Some("proj-1")).unwrap();
    let names: Vec<_> = demo
        .client_list_resources()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["c_cust-1"]);
    // Deleting what is gone is a no-op.
    agent.delete_resource(&allocation, Some("proj-1")).unwrap();
    demo.client_delete_resource("p_proj-1".into()).unwrap();
}

#[test]
fn usage_reports_for_the_current_and_past_months() {
    let dir = tempfile::tempdir().unwrap();
    let demo = demo(&dir);
    demo.set_runtime_context(RuntimeContext {
        timezone: "Europe/Tallinn".into(),
        ..Default::default()
    })
    .unwrap();
    let current = demo.current_period().to_string();
    let write = |month: &str, account: &str, body: Value| {
        let path = dir.path().join("usage").join(month);
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join(format!("{account}.json")), body.to_string()).unwrap();
    };
    write(
        &current,
        "a_x",
        json!({"alice": {"cpu": 90, "gpu": 1, "storage": 7}, "bob": {"cpu": 0.4}}),
    );
    write("2020-02", "a_x", json!({"alice": {"gpu": 6000}}));

    let report = demo
        .get_usage_report(vec!["a_x".into(), "a_y".into()])
        .unwrap();
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({
            "a_x": {
                "alice": {"cpu": 1.5, "gpu": 0.02},
                "bob": {"cpu": 0.01, "gpu": 0.0},
                TOTAL_ACCOUNT_USAGE: {"cpu": 1.51, "gpu": 0.02},
            },
            "a_y": {TOTAL_ACCOUNT_USAGE: {"cpu": 0.0, "gpu": 0.0}},
        })
    );
    let past = demo
        .get_usage_report_for_period(vec!["a_x".into()], 2020, 2, None)
        .unwrap();
    assert_eq!(past["a_x"][TOTAL_ACCOUNT_USAGE]["gpu"], 100.0);
    assert_eq!(past["a_x"][TOTAL_ACCOUNT_USAGE]["cpu"], 0.0);
    let err = demo
        .get_usage_report_for_period(vec!["a_x".into()], 2020, 0, None)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);

    let raw = demo
        .client_get_usage_report(vec!["a_x".into()], Some("Europe/Tallinn".into()))
        .unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0]["usage"]["storage"], 7.0);
}

#[test]
fn orders_above_max_limits_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let order = |gpu: f64| Order {
        uuid: "o1".into(),
        limits: Limits::from([("gpu".into(), gpu)]),
        ..Default::default()
    };
    let open = demo(&dir);
    assert_eq!(
        open.evaluate_pending_order(order(1e6)).unwrap(),
        PendingOrderDecision::Accept
    );
    let strict = demo_with(&dir, json!({"max_limits": {"gpu": 8}})).unwrap();
    assert_eq!(
        strict.evaluate_pending_order(order(8.0)).unwrap(),
        PendingOrderDecision::Accept
    );
    assert_eq!(
        strict.evaluate_pending_order(order(9.0)).unwrap(),
        PendingOrderDecision::Reject
    );
}

#[test]
fn capabilities_follow_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let caps = demo(&dir).capabilities().unwrap();
    assert!(!caps.supports_decreasing_usage);
    assert!(!caps.supports_resource_api_keys);
    assert!(caps.supports_user_homedirs);
    let caps = demo_with(
        &dir,
        json!({"decreasing_usage_allowed": true, "resource_api_keys": true}),
    )
    .unwrap()
    .capabilities()
    .unwrap();
    assert!(caps.supports_decreasing_usage);
    assert!(caps.supports_resource_api_keys);
}

#[test]
fn resource_keys_are_kept_in_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let demo = demo_with(&dir, json!({"resource_api_keys": true})).unwrap();
    create(&agent_with(&dir, json!({})), &resource(), "a_alloc-1").unwrap();
    let keys = demo.generate_resource_keys("a_alloc-1".into(), 2).unwrap();
    assert_eq!(keys.len(), 2);
    let rotated = demo
        .rotate_resource_key(keys[0].client_id.clone(), "a_alloc-1".into(), None)
        .unwrap();
    assert_eq!(
        rotated,
        json!(crate::keys::key_value("a_alloc-1", &keys[0].client_id, 1))
    );
    demo.prune_unknown_resource_keys("a_alloc-1".into(), vec![keys[1].client_id.clone()])
        .unwrap();
    let raw: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    let stored = raw["accounts"]["a_alloc-1"]["api_keys"]
        .as_object()
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[&keys[1].client_id]["api_key"],
        keys[1].api_key.as_str()
    );
    assert_eq!(raw["accounts"]["a_alloc-1"]["keys_minted"], 2);
    // Accounts without keys keep the documented shape.
    assert!(raw["accounts"]["a_proj-1"].get("api_keys").is_none());
}

#[test]
fn health_checks_report_a_corrupt_state() {
    let dir = tempfile::tempdir().unwrap();
    let demo = demo(&dir);
    assert!(demo.ping(false).unwrap());
    assert!(demo.diagnostics().unwrap());
    assert_eq!(demo.list_components().unwrap(), ["cpu", "gpu"]);
    fs::write(dir.path().join("state.json"), "not json").unwrap();
    assert!(!demo.ping(false).unwrap());
    let err = demo.ping(true).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(err.message.contains("is corrupt"), "{}", err.message);
    assert!(!demo.diagnostics().unwrap());
    let err = demo.client_list_resources().unwrap_err();
    assert!(err.message.contains("is corrupt"), "{}", err.message);
}

#[test]
fn construction_errors_are_one_line_invalid_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (settings, needle) in [
        (json!({}), "state_dir is required"),
        (
            json!({"state_dir": dir.path().join("missing")}),
            "does not exist",
        ),
        (
            json!({"state_dir": dir.path(), "fail_methods": ["create_resource"]}),
            "\"create_resource\"",
        ),
    ] {
        let err = Demo::open(settings.as_object().unwrap(), components())
            .err()
            .expect("construction must fail");
        assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS);
        assert!(err.message.contains(needle), "{}", err.message);
        assert!(!err.message.contains('\n'));
    }
}

type Call = Box<dyn Fn(&Demo) -> Result<()>>;

fn call(f: impl Fn(&Demo) -> Result<()> + 'static) -> Call {
    Box::new(f)
}

/// Every implemented method, called with harmless arguments.
fn every_method() -> Vec<(&'static str, Call)> {
    let id = || "a_alloc-1".to_string();
    vec![
        ("capabilities", call(|d| d.capabilities().map(drop))),
        (
            "set_runtime_context",
            call(|d| d.set_runtime_context(RuntimeContext::default())),
        ),
        ("ping", call(|d| d.ping(false).map(drop))),
        ("diagnostics", call(|d| d.diagnostics().map(drop))),
        ("list_components", call(|d| d.list_components().map(drop))),
        (
            "get_usage_report",
            call(move |d| d.get_usage_report(vec![id()]).map(drop)),
        ),
        (
            "pull_resources",
            call(|d| d.pull_resources(vec![resource()]).map(drop)),
        ),
        (
            "get_usage_report_for_period",
            call(move |d| {
                d.get_usage_report_for_period(vec![id()], 2026, 1, None)
                    .map(drop)
            }),
        ),
        (
            "downscale_resource",
            call(move |d| d.downscale_resource(id()).map(drop)),
        ),
        (
            "pause_resource",
            call(move |d| d.pause_resource(id()).map(drop)),
        ),
        (
            "restore_resource",
            call(move |d| d.restore_resource(id()).map(drop)),
        ),
        (
            "get_resource_metadata",
            call(move |d| d.get_resource_metadata(id()).map(drop)),
        ),
        (
            "collect_resource_limits",
            call(|d| d.collect_resource_limits(resource()).map(drop)),
        ),
        (
            "pre_create_resource",
            call(|d| d.pre_create_resource(resource(), None)),
        ),
        (
            "add_user",
            call(|d| {
                d.add_user(resource(), "u".into(), Default::default())
                    .map(drop)
            }),
        ),
        (
            "sync_resource_project",
            call(|d| d.sync_resource_project(resource(), None)),
        ),
        (
            "get_membership_sync_report",
            call(|d| d.get_membership_sync_report(resource()).map(drop)),
        ),
        (
            "evaluate_pending_order",
            call(|d| d.evaluate_pending_order(Order::default()).map(drop)),
        ),
        (
            "get_resource_limits",
            call(move |d| d.get_resource_limits(id()).map(drop)),
        ),
        (
            "generate_resource_keys",
            call(move |d| d.generate_resource_keys(id(), 2).map(drop)),
        ),
        (
            "rotate_resource_key",
            call(move |d| d.rotate_resource_key("c".into(), id(), None).map(drop)),
        ),
        (
            "prune_unknown_resource_keys",
            call(move |d| d.prune_unknown_resource_keys(id(), Vec::new())),
        ),
        (
            "client_list_resources",
            call(|d| d.client_list_resources().map(drop)),
        ),
        (
            "client_get_resource",
            call(move |d| d.client_get_resource(id()).map(drop)),
        ),
        (
            "client_create_resource",
            call(|d| {
                d.client_create_resource("n".into(), "".into(), "n".into(), None)
                    .map(drop)
            }),
        ),
        (
            "client_delete_resource",
            call(|d| d.client_delete_resource("n".into())),
        ),
        (
            "client_set_resource_limits",
            call(move |d| {
                d.client_set_resource_limits(id(), BTreeMap::new())
                    .map(drop)
            }),
        ),
        (
            "client_get_resource_limits",
            call(move |d| d.client_get_resource_limits(id()).map(drop)),
        ),
        (
            "client_get_resource_user_limits",
            call(move |d| d.client_get_resource_user_limits(id()).map(drop)),
        ),
        (
            "client_set_resource_user_limits",
            call(move |d| d.client_set_resource_user_limits(id(), "u".into(), BTreeMap::new())),
        ),
        (
            "client_get_association",
            call(move |d| d.client_get_association("u".into(), id()).map(drop)),
        ),
        (
            "client_create_association",
            call(move |d| d.client_create_association("u".into(), id(), None)),
        ),
        (
            "client_delete_association",
            call(move |d| d.client_delete_association("u".into(), id())),
        ),
        (
            "client_get_usage_report",
            call(move |d| d.client_get_usage_report(vec![id()], None).map(drop)),
        ),
        (
            "client_list_resource_users",
            call(move |d| d.client_list_resource_users(id()).map(drop)),
        ),
        (
            "client_create_linux_user_homedir",
            call(|d| d.client_create_linux_user_homedir("u".into(), "0077".into())),
        ),
    ]
}

#[test]
fn every_implemented_method_honours_fail_methods() {
    let methods = every_method();
    let mut covered: Vec<&str> = methods.iter().map(|(name, _)| *name).collect();
    let mut implemented: Vec<&str> = <Demo as Backend>::IMPLEMENTED
        .iter()
        .chain(<Demo as Client>::IMPLEMENTED)
        .copied()
        .collect();
    covered.sort();
    implemented.sort();
    assert_eq!(
        covered, implemented,
        "the table must list every implemented method"
    );
    assert_eq!(implemented.len(), 22 + 14, "22 backend + 14 client methods");

    let dir = tempfile::tempdir().unwrap();
    let all: Vec<&str> = implemented.clone();
    let failing = demo_with(&dir, json!({ "fail_methods": all })).unwrap();
    for (name, f) in &methods {
        let err = f(&failing).expect_err(name);
        assert_eq!(err.kind, ErrorKind::BACKEND, "{name}");
        assert_eq!(err.message, format!("demo: injected failure in {name}"));
    }
    // The injection happens before any state is touched.
    assert!(!dir.path().join("state.json").exists());

    // Only the listed method fails.
    let one = demo_with(&dir, json!({"fail_methods": ["client_create_resource"]})).unwrap();
    assert!(one.client_list_resources().is_ok());
    assert!(one.pre_create_resource(resource(), None).is_ok());
    let agent = agent_with(&dir, json!({"fail_methods": ["client_create_resource"]}));
    let err = create(&agent, &resource(), "a_alloc-1").unwrap_err();
    assert_eq!(
        (err.method, err.message()),
        (
            "client_create_resource",
            "demo: injected failure in client_create_resource"
        )
    );
}
