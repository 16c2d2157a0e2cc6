//! The real demo plugin (`plugins/demo`, built as a `.so`) through the real loader: every
//! vtable slot answers, and the agent-level lifecycle runs on the `Backend` wrapper with the
//! agent's defaults filling what the demo leaves out.
//!
//! Each test stages its own copy of the library in a private plugin directory and keeps its
//! backend state in its own temporary directory; both are removed when the test ends.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde_json::{json, Value};
use waldur_agent::plugins::{Backend, Catalog, HostContext, Registry, SearchPath, TrustPolicy};
use waldur_plugin_abi::ffi::EntryKind;
use waldur_plugin_abi::wire::{
    BackendComponents, BackendLimits, CapabilitySet, ClientResource, ComponentUsage, JsonMap,
    Limits, Order, PendingOrderDecision, ResourceUsage, RuntimeContext, UserOptions,
    WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::ErrorKind;
use waldur_plugin_host::handle::{BACKEND_METHODS, CLIENT_METHODS};
use waldur_test_support::{workspace_plugin, workspace_root, PluginDir};

// ---------------------------------------------------------------------------------------------
// Loading

/// A demo backend instance loaded through the real loader, with everything it needs kept
/// alive; dropping it removes the staged library copy and the state directory.
struct LoadedDemo {
    backend: Backend,
    /// The `implemented` list of the `demo` entry of the plugin's manifest.
    implemented: BTreeSet<String>,
    state: tempfile::TempDir,
    _plugins: PluginDir,
}

impl LoadedDemo {
    fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Drops a usage file `<state_dir>/usage/<period>/<account>.json`.
    fn write_usage(&self, period: &str, account: &str, usage: Value) {
        let dir = self.state_dir().join("usage").join(period);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{account}.json")), usage.to_string()).unwrap();
    }

    /// `state.json` as the README documents it.
    fn state_json(&self) -> Value {
        let text = fs::read(self.state_dir().join("state.json")).expect("state.json exists");
        serde_json::from_slice(&text).unwrap()
    }
}

/// Two components with `unit_factor` 60: `cpu` billed by usage with a configured limit of 10,
/// `gpu` billed by the limit the user chose.
fn components() -> BackendComponents {
    serde_json::from_value(json!({
        "cpu": {"measured_unit": "Hours", "accounting_type": "usage", "unit_factor": 60, "limit": 10},
        "gpu": {"measured_unit": "GPU-hours", "accounting_type": "limit", "unit_factor": 60},
    }))
    .unwrap()
}

/// Loads the demo `.so` through `Catalog::scan` and `Registry::backend` with the standard
/// test settings (prefixes `c_`, `p_`, `a_`; `max_limits: {gpu: 8}`) plus `extra`.
fn load_demo(extra: Value) -> LoadedDemo {
    let plugins = PluginDir::new();
    plugins.add(
        &workspace_plugin("waldur-plugin-demo"),
        "libwaldur_plugin_demo.so",
    );
    let catalog = Catalog::scan(
        &SearchPath::only([plugins.path().to_path_buf()]),
        TrustPolicy::Strict,
        None,
    );
    let record = catalog
        .entry(EntryKind::BACKEND, "demo")
        .unwrap_or_else(|| panic!("the demo entry is not usable: {:?}", catalog.records));
    assert!(record.is_ok(), "{:?}", record.status);

    let state = tempfile::tempdir().unwrap();
    let mut settings: JsonMap = json!({
        "state_dir": state.path(),
        "customer_prefix": "c_",
        "project_prefix": "p_",
        "allocation_prefix": "a_",
        "max_limits": {"gpu": 8},
    })
    .as_object()
    .cloned()
    .unwrap();
    settings.extend(
        extra
            .as_object()
            .expect("extra settings are an object")
            .clone(),
    );

    let registry = Registry::new(catalog);
    let plugin = registry.plugin(EntryKind::BACKEND, "demo").unwrap();
    let entry = plugin
        .manifest()
        .entries
        .iter()
        .find(|e| e.name == "demo" && e.kind == EntryKind::BACKEND.name())
        .expect("the manifest lists the demo backend entry");
    let implemented: BTreeSet<String> = entry.implemented.iter().cloned().collect();
    // The same manifest the catalogue read from the file without loading it.
    assert_eq!(
        registry.catalog().find("demo").unwrap().manifest.as_ref(),
        Some(plugin.manifest())
    );

    let backend = registry
        .backend(
            "demo",
            &settings,
            &components(),
            HostContext::new("demo", "test offering"),
        )
        .unwrap_or_else(|e| panic!("cannot build the demo backend: {e}"));
    LoadedDemo {
        backend,
        implemented,
        state,
        _plugins: plugins,
    }
}

fn resource(slug: &str, backend_id: &str, limits: Value) -> WaldurResource {
    serde_json::from_value(json!({
        "uuid": format!("uuid-{slug}"),
        "name": format!("Allocation {slug}"),
        "slug": slug,
        "backend_id": backend_id,
        "customer_slug": "cust-1",
        "customer_name": "Customer One",
        "project_slug": "proj-1",
        "project_name": "Project One",
        "limits": limits,
    }))
    .unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// The method catalogue, parsed from its single source

/// Method name -> parameter names, read from `plugin-abi/src/methods.rs` (the macro source
/// the vtables, traits and argument structs are all generated from).
fn catalogue_parameters() -> BTreeMap<String, Vec<String>> {
    let path = workspace_root().join("plugin-abi/src/methods.rs");
    let text = fs::read_to_string(&path).unwrap();
    let mut methods = BTreeMap::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("fn ") {
        rest = &rest[at + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `fn $name:ident (...)` inside the generator macros has no plain name.
        if name.is_empty() || !rest[name.len()..].starts_with('(') {
            continue;
        }
        let params = &rest[name.len() + 1..];
        let (mut depth, mut end) = (0i32, None);
        for (i, c) in params.char_indices() {
            match c {
                '(' | '<' => depth += 1,
                '>' => depth -= 1,
                ')' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let params = &params[..end.expect("balanced parameter list")];
        let mut names = Vec::new();
        let (mut depth, mut start) = (0i32, 0);
        for (i, c) in params.char_indices().chain([(params.len(), ',')]) {
            match c {
                '(' | '<' => depth += 1,
                ')' | '>' => depth -= 1,
                ',' if depth == 0 => {
                    let param = params[start..i].trim();
                    if let Some((arg, _)) = param.split_once(':') {
                        names.push(arg.trim().to_string());
                    }
                    start = i + 1;
                }
                _ => {}
            }
        }
        methods.insert(name, names);
    }
    methods
}

// ---------------------------------------------------------------------------------------------
// Test 1: every slot through the raw handle

const ALLOC: &str = "a_alloc-1";
const PROJECT: &str = "p_proj-1";
const CUSTOMER: &str = "c_cust-1";

/// Every BaseBackend and BaseClient slot, in an order where each implemented method finds
/// what it needs (the hierarchy before the allocation, the allocation before its limits and
/// users, users removed before the allocation is deleted). Methods the demo leaves to the
/// agent answer NOT_IMPLEMENTED without touching the state, wherever they are.
const CALL_ORDER: &[&str] = &[
    "capabilities",
    "set_runtime_context",
    "ping",
    "run_preflight",
    "diagnostics",
    "list_components",
    "has_prepaid_components",
    "get_resource_backend_id",
    "get_project_backend_id",
    "get_customer_backend_id",
    "collect_resource_limits",
    "pre_create_resource",
    "client_get_resource",
    "create_resource",
    "create_resource_with_id",
    "create_backend_resource",
    "client_create_resource",
    "client_list_resources",
    "setup_resource_limits",
    "client_set_resource_limits",
    "client_get_resource_limits",
    "get_resource_limits",
    "set_resource_limits",
    "post_create_resource",
    "add_users_to_resource",
    "add_user",
    "client_create_association",
    "client_get_association",
    "client_list_resource_users",
    "client_set_resource_user_limits",
    "client_get_resource_user_limits",
    "get_resource_user_limits",
    "set_resource_user_limits",
    "process_existing_users",
    "reconcile_existing_user_roles",
    "update_user_attributes",
    "sync_offering_user_usernames",
    "create_user_homedirs",
    "client_create_linux_user_homedir",
    "client_execute_command",
    "get_usage_report",
    "get_usage_report_for_period",
    "client_get_usage_report",
    "pause_resource",
    "downscale_resource",
    "restore_resource",
    "get_resource_metadata",
    "list_resources",
    "pull_resources",
    "pull_resource",
    "pull_backend_resource",
    "recreate_missing_resource",
    "sync_resource_project",
    "sync_project_end_date",
    "sync_resource_end_date",
    "sync_resource_effective_id",
    "sync_resource_limits",
    "apply_periodic_settings",
    "check_pending_order",
    "evaluate_pending_order",
    "setup_target_event_subscriptions",
    "get_membership_sync_report",
    "prune_unknown_resource_keys",
    "generate_resource_keys",
    "rotate_resource_key",
    "pre_delete_user_actions",
    "remove_users_from_resource",
    "remove_user",
    "client_delete_association",
    "pre_delete_resource",
    "delete_resource",
    "delete_resource_safely",
    "post_delete_resource",
    "client_delete_resource",
];

/// The Waldur resource of test 1 (its account is `a_alloc-1`).
fn sample_resource() -> Value {
    serde_json::to_value(resource("alloc-1", ALLOC, json!({"gpu": 5.5}))).unwrap()
}

/// The JSON arguments object for `method`. Every catalogue method needs an arm: a method
/// added to the catalogue fails the test here until it gets one.
fn sample_args(method: &str) -> Value {
    let res = sample_resource();
    let options = json!({"homedir_umask": "0077", "user_roles": {"alice": "PROJECT.MEMBER"}});
    match method {
        // BaseBackend
        "capabilities"
        | "run_preflight"
        | "diagnostics"
        | "list_components"
        | "list_resources"
        | "has_prepaid_components" => json!({}),
        "set_runtime_context" => json!({"context": {
            "offering_uuid": "offering-1",
            "offering_name": "test offering",
            "timezone": "UTC",
        }}),
        "ping" => json!({"raise_exception": true}),
        "get_usage_report" => json!({"resource_backend_ids": [ALLOC]}),
        "get_usage_report_for_period" => json!({
            "resource_backend_ids": [ALLOC],
            "year": 2024,
            "month": 1,
            "waldur_resource": res,
        }),
        "downscale_resource"
        | "pause_resource"
        | "restore_resource"
        | "get_resource_metadata"
        | "delete_resource_safely"
        | "get_resource_limits"
        | "get_resource_user_limits"
        | "pull_backend_resource" => json!({"resource_backend_id": ALLOC}),
        "collect_resource_limits"
        | "pre_delete_resource"
        | "post_delete_resource"
        | "sync_resource_end_date"
        | "sync_resource_effective_id"
        | "sync_resource_limits"
        | "pull_resource"
        | "recreate_missing_resource"
        | "get_membership_sync_report" => json!({"waldur_resource": res}),
        "pre_create_resource" | "create_resource" => {
            json!({"waldur_resource": res, "user_context": null})
        }
        "create_resource_with_id" => json!({
            "waldur_resource": res,
            "resource_backend_id": ALLOC,
            "user_context": {"team": [], "plan_quotas": {"gpu": 5.5}},
        }),
        "create_backend_resource" => json!({
            "resource_backend_id": ALLOC,
            "name": "Allocation alloc-1",
            "organization": PROJECT,
            "parent": PROJECT,
        }),
        "setup_resource_limits" => json!({"resource_backend_id": ALLOC, "waldur_resource": res}),
        "post_create_resource" => json!({
            "resource_info": {"backend_id": ALLOC, "limits": {"gpu": 5.0}},
            "waldur_resource": res,
            "user_context": null,
        }),
        "get_resource_backend_id" => json!({"slug": "alloc-1"}),
        "get_project_backend_id" => json!({"slug": "proj-1"}),
        "get_customer_backend_id" => json!({"slug": "cust-1"}),
        "delete_resource" => json!({"waldur_resource": res, "project_slug": "proj-1"}),
        "pre_delete_user_actions" => json!({"resource_backend_id": ALLOC, "username": "alice"}),
        "add_users_to_resource" | "remove_users_from_resource" => {
            json!({"waldur_resource": res, "usernames": ["alice"], "options": options})
        }
        "add_user" | "remove_user" => {
            json!({"waldur_resource": res, "username": "alice", "options": options})
        }
        "process_existing_users" => json!({"usernames": ["alice"]}),
        "reconcile_existing_user_roles" => json!({
            "waldur_resource": res,
            "existing_usernames": ["alice"],
            "user_roles": {"alice": "PROJECT.MEMBER"},
            "user_cuids": {"alice": "cuid-alice"},
        }),
        "update_user_attributes" => {
            json!({"username": "alice", "attributes": {"email": "alice@example.org"}})
        }
        "sync_offering_user_usernames" => json!({"offering_uuid": "offering-1"}),
        "sync_resource_project" | "sync_project_end_date" => json!({
            "waldur_resource": res,
            "source_project": {"uuid": "project-1", "end_date": null},
        }),
        "set_resource_limits" => json!({"resource_backend_id": ALLOC, "limits": {"gpu": 6}}),
        "set_resource_user_limits" => json!({
            "resource_backend_id": ALLOC,
            "username": "alice",
            "limits": {"gpu": 120},
        }),
        "pull_resources" => json!({"waldur_resources": [res]}),
        "create_user_homedirs" => json!({"usernames": ["alice"], "umask": "0077"}),
        "apply_periodic_settings" => json!({
            "resource_backend_id": ALLOC,
            "settings": {"fairshare": 10},
            "config": null,
        }),
        "check_pending_order" => json!({"order_backend_id": "backend-order-1"}),
        "evaluate_pending_order" => json!({"order": {
            "uuid": "order-1",
            "type": "Create",
            "state": "pending-provider",
            "limits": {"gpu": 4},
        }}),
        "setup_target_event_subscriptions" => json!({
            "source_offering": {"uuid": "offering-1"},
            "user_agent": "waldur-agent-test",
            "global_proxy": "",
        }),
        // The demo names its keys `<account>-key-<n>`.
        "prune_unknown_resource_keys" => {
            json!({"resource_backend_id": ALLOC, "keep": ["a_alloc-1-key-1"]})
        }
        "generate_resource_keys" => json!({"resource_backend_id": ALLOC, "count": 2}),
        "rotate_resource_key" => json!({
            "client_id": "a_alloc-1-key-1",
            "resource_backend_id": ALLOC,
            "known_client_ids": ["a_alloc-1-key-1"],
        }),
        // BaseClient
        "client_list_resources" => json!({}),
        "client_get_resource"
        | "client_get_resource_limits"
        | "client_get_resource_user_limits"
        | "client_list_resource_users" => json!({"resource_id": ALLOC}),
        "client_create_resource" => json!({
            "name": ALLOC,
            "description": "Allocation alloc-1",
            "organization": PROJECT,
            "parent_name": PROJECT,
        }),
        "client_delete_resource" => json!({"name": ALLOC}),
        "client_set_resource_limits" => {
            json!({"resource_id": ALLOC, "limits": {"cpu": 600, "gpu": 330}})
        }
        "client_set_resource_user_limits" => json!({
            "resource_id": ALLOC,
            "username": "alice",
            "limits": {"gpu": 60},
        }),
        "client_get_association" => json!({"user": "alice", "resource_id": ALLOC}),
        "client_create_association" => json!({
            "username": "alice",
            "resource_id": ALLOC,
            "default_account": null,
        }),
        "client_delete_association" => json!({"username": "alice", "resource_id": ALLOC}),
        "client_get_usage_report" => json!({"resource_ids": [ALLOC], "timezone": "UTC"}),
        "client_execute_command" => json!({"command": ["true"], "silent": true}),
        "client_create_linux_user_homedir" => json!({"username": "alice", "umask": "0077"}),
        other => {
            panic!("sample_args has no arm for {other:?}: add one (and a place in CALL_ORDER)")
        }
    }
}

/// What an implemented method must answer at its place in [`CALL_ORDER`], where the answer
/// is a specific value; `None` accepts any `Ok`.
fn expected_answer(method: &str) -> Option<Value> {
    let zero = json!({"cpu": 0.0, "gpu": 0.0});
    Some(match method {
        "capabilities" => serde_json::to_value(CapabilitySet {
            supports_user_homedirs: true,
            supports_decreasing_usage: false,
            ..CapabilitySet::default()
        })
        .unwrap(),
        "ping" | "diagnostics" => json!(true),
        "list_components" => json!(["cpu", "gpu"]),
        // gpu 5.5 × 60 = 330; cpu from the configured usage limit, 10 × 60. The Waldur side
        // keeps the order's fraction.
        "collect_resource_limits" => json!({
            "backend_limits": {"cpu": 600, "gpu": 330},
            "waldur_limits": {"cpu": 10.0, "gpu": 5.5},
        }),
        // Before client_create_resource: the allocation does not exist yet.
        "client_get_resource" => Value::Null,
        "client_create_resource" => json!(ALLOC),
        "client_list_resources" => json!([
            {"name": ALLOC, "description": "Allocation alloc-1", "organization": PROJECT, "backend_id": ALLOC},
            {"name": CUSTOMER, "description": "Customer One", "organization": CUSTOMER, "backend_id": CUSTOMER},
            {"name": PROJECT, "description": "Project One", "organization": PROJECT, "backend_id": PROJECT},
        ]),
        "client_get_resource_limits" => json!({"cpu": 600, "gpu": 330}),
        // Waldur units: 330 / 60 = 5.5, truncated.
        "get_resource_limits" => json!({"cpu": 10, "gpu": 5}),
        // Deterministic values (`plugins/demo/src/keys.rs`).
        "generate_resource_keys" => json!([
            {"client_id": "a_alloc-1-key-1", "api_key": "dk_ae67b4fde8ca2aff"},
            {"client_id": "a_alloc-1-key-2", "api_key": "dk_b7116ffdedb2966a"},
        ]),
        // Rotated once; the second key, unknown to "Waldur", is dropped.
        "rotate_resource_key" => json!("dk_ae67b3fde8ca294c"),
        "client_get_association" => json!({"account": ALLOC, "user": "alice", "value": 0}),
        "client_list_resource_users" => json!(["alice"]),
        "client_get_resource_user_limits" => json!({"alice": {"gpu": 60}}),
        "get_usage_report" => json!({ALLOC: {TOTAL_ACCOUNT_USAGE: zero}}),
        // Batched: the same users and usage as `client_list_resource_users` and
        // `get_usage_report` answer for the account.
        "pull_resources" => json!({ALLOC: {
            "backend_id": ALLOC, "parent_id": "", "effective_id": "", "users": ["alice"],
            "usage": {TOTAL_ACCOUNT_USAGE: zero}, "limits": {}, "pending_order_id": "",
            "backend_metadata": {}, "endpoints": [],
        }}),
        // The usage file of 2024-01 (see the test): the README's example, divided by 60 and
        // rounded to 2 decimals per user; the total is the sum of the rounded values.
        "get_usage_report_for_period" => json!({ALLOC: {
            "alice": {"cpu": 1.5, "gpu": 0.02},
            "bob": {"cpu": 0.01, "gpu": 0.0},
            TOTAL_ACCOUNT_USAGE: {"cpu": 1.51, "gpu": 0.02},
        }}),
        // The current month has no usage file.
        "client_get_usage_report" => json!([]),
        // normal -> paused -> downscaled -> normal: each one a change.
        "pause_resource" | "downscale_resource" | "restore_resource" => json!(true),
        "get_resource_metadata" => json!({"qos": "normal", "users": 1}),
        // gpu 4 is within max_limits {gpu: 8}.
        "evaluate_pending_order" => json!("accept"),
        "set_runtime_context"
        | "pre_create_resource"
        | "client_set_resource_limits"
        | "client_create_association"
        | "client_set_resource_user_limits"
        | "client_create_linux_user_homedir"
        | "client_delete_association"
        | "client_delete_resource" => Value::Null,
        _ => return None,
    })
}

/// Methods whose SDK trait has a default body: they answer `Ok` even when the plugin does
/// not write them out (only `capabilities`, from the `CAPABILITIES` constant).
const SDK_DEFAULTED: &[&str] = &["capabilities"];

#[test]
fn every_vtable_entry_answers_through_the_loader() {
    let demo = load_demo(json!({}));
    let handle = demo.backend.handle();

    // The list covers the whole catalogue, once each, so a new method forces an update here.
    let catalogue: BTreeSet<&str> = BACKEND_METHODS
        .iter()
        .chain(CLIENT_METHODS)
        .copied()
        .collect();
    assert_eq!(
        catalogue.len(),
        BACKEND_METHODS.len() + CLIENT_METHODS.len(),
        "a method name is both a backend and a client slot"
    );
    let covered: BTreeSet<&str> = CALL_ORDER.iter().copied().collect();
    assert_eq!(
        covered.len(),
        CALL_ORDER.len(),
        "CALL_ORDER lists a method twice"
    );
    assert_eq!(
        covered, catalogue,
        "CALL_ORDER != BACKEND_METHODS ∪ CLIENT_METHODS"
    );

    // Every sample has exactly the catalogue's parameter names (a misspelled key would be
    // silently defaulted by the plugin's `serde(default)` argument structs).
    let parameters = catalogue_parameters();
    for method in &catalogue {
        let args = sample_args(method);
        let keys: BTreeSet<&str> = args
            .as_object()
            .unwrap_or_else(|| panic!("{method}: arguments must be a JSON object"))
            .keys()
            .map(String::as_str)
            .collect();
        let params = parameters
            .get(*method)
            .unwrap_or_else(|| panic!("{method} is not declared in methods.rs"));
        let wanted: BTreeSet<&str> = params.iter().map(String::as_str).collect();
        assert_eq!(
            keys, wanted,
            "{method}: sample arguments vs catalogue parameters"
        );
    }

    // The manifest lists only real slots, and the demo's documented ones.
    for name in &demo.implemented {
        assert!(
            catalogue.contains(name.as_str()),
            "the manifest lists {name:?}, which is no vtable slot"
        );
    }
    assert!(demo.implemented.contains("ping"));
    assert!(demo.implemented.contains("client_create_resource"));
    assert!(!demo.implemented.contains("client_execute_command"));
    assert!(!demo.implemented.contains("create_resource_with_id"));

    // Usage of a past month for get_usage_report_for_period (the README's example).
    demo.write_usage(
        "2024-01",
        ALLOC,
        json!({"alice": {"cpu": 90, "gpu": 1, "storage": 7}, "bob": {"cpu": 0.4}}),
    );

    let mut answered_ok = Vec::new();
    for method in CALL_ORDER {
        let args = sample_args(method);
        let answer = handle.call_json(method, &args);
        let implemented = demo.implemented.contains(*method);
        if implemented || SDK_DEFAULTED.contains(method) {
            let value = answer.unwrap_or_else(|e| {
                panic!(
                    "{method} is implemented, but answered {:?}: {}",
                    e.kind, e.message
                )
            });
            if let Some(expected) = expected_answer(method) {
                assert_eq!(value, expected, "{method}({args})");
            }
            answered_ok.push(*method);
        } else {
            let error = answer
                .err()
                .unwrap_or_else(|| panic!("{method} is not in the manifest, but answered Ok"));
            assert_eq!(
                error.kind,
                ErrorKind::NOT_IMPLEMENTED,
                "{method}: {}",
                error.message
            );
        }
    }
    // The manifest's list and the plugin's answers agree.
    let implemented: BTreeSet<&str> = demo.implemented.iter().map(String::as_str).collect();
    assert_eq!(
        answered_ok.iter().copied().collect::<BTreeSet<_>>(),
        implemented
    );

    // What the calls left behind: the allocation is gone, the hierarchy and the home
    // directory stay.
    let state = demo.state_json();
    let accounts: Vec<&String> = state["accounts"].as_object().unwrap().keys().collect();
    assert_eq!(accounts, [CUSTOMER, PROJECT]);
    assert_eq!(state["accounts"][PROJECT]["parent"], CUSTOMER);
    assert_eq!(state["accounts"][CUSTOMER]["parent"], "root");
    assert_eq!(state["homedirs"], json!({"alice": {"umask": "0077"}}));

    // Names outside the catalogue go to `invoke`; the demo has no extra methods.
    for name in ["no_such_method", "client_no_such_method"] {
        let error = handle.invoke(name, &json!({"x": 1})).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NOT_IMPLEMENTED, "{}", error.message);
        let error = handle.call_json(name, &json!({})).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NOT_IMPLEMENTED, "{}", error.message);
    }

    demo.backend.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Test 2: the agent-level lifecycle on the wrapper

/// The billing month (`YYYY-MM`) `months_back` months before the current one in `zone`.
fn billing_month(zone: &str, months_back: i32) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap();
    let date = jiff::Timestamp::now().to_zoned(tz).date().first_of_month();
    let date = date
        .checked_sub(jiff::Span::new().months(months_back))
        .unwrap();
    format!("{:04}-{:02}", date.year(), date.month())
}

fn usage(values: &[(&str, f64)]) -> ComponentUsage {
    values.iter().map(|(c, v)| (c.to_string(), *v)).collect()
}

#[test]
fn demo_backend_lifecycle_through_the_wrapper() {
    let demo = load_demo(json!({}));
    let backend = &demo.backend;
    assert!(backend.capabilities().supports_user_homedirs);

    backend
        .set_runtime_context(&RuntimeContext {
            offering_uuid: "offering-1".into(),
            offering_name: "test offering".into(),
            timezone: "Europe/Tallinn".into(),
            ..RuntimeContext::default()
        })
        .unwrap();
    assert!(backend.ping(true).unwrap());
    backend.run_preflight().unwrap();

    // --- creation: hierarchy, allocation, limits -------------------------------------------
    // The allocation id is lower-cased by the agent's default; the tiers are not.
    let mut res = resource("Alloc-1", "", json!({"gpu": 5.5}));
    let id = backend.get_resource_backend_id(&res.slug).unwrap();
    assert_eq!(id, ALLOC);
    assert_eq!(backend.get_project_backend_id("proj-1").unwrap(), PROJECT);
    assert_eq!(backend.get_customer_backend_id("cust-1").unwrap(), CUSTOMER);

    let info = backend.create_resource_with_id(&res, &id, None).unwrap();
    assert_eq!(info.backend_id, ALLOC);
    assert_eq!(
        info.limits,
        Limits::from([("cpu".into(), 10.0), ("gpu".into(), 5.5)])
    );
    res.backend_id = info.backend_id.clone();

    let account = |name: &str| backend.client_get_resource(name).unwrap();
    assert_eq!(
        account(ALLOC),
        Some(ClientResource {
            name: ALLOC.into(),
            description: "Allocation Alloc-1".into(),
            organization: PROJECT.into(),
            backend_id: ALLOC.into(),
        })
    );
    assert_eq!(account(PROJECT).unwrap().organization, PROJECT);
    assert_eq!(account(PROJECT).unwrap().description, "Project One");
    assert_eq!(account(CUSTOMER).unwrap().organization, CUSTOMER);
    let state = demo.state_json();
    assert_eq!(state["accounts"][ALLOC]["parent"], PROJECT);
    assert_eq!(state["accounts"][PROJECT]["parent"], CUSTOMER);
    assert_eq!(state["accounts"][CUSTOMER]["parent"], "root");
    // Backend units: gpu 5.5 × 60, cpu from the configured limit 10 × 60.
    assert_eq!(
        backend.client_get_resource_limits(ALLOC).unwrap(),
        BackendLimits::from([("cpu".into(), 600), ("gpu".into(), 330)])
    );
    // The demo's own get_resource_limits answers Waldur units.
    assert_eq!(
        backend.get_resource_limits(ALLOC).unwrap(),
        BackendLimits::from([("cpu".into(), 10), ("gpu".into(), 5)])
    );

    // Creating it again is the duplicate the order processor retries with another id.
    let error = backend
        .create_resource_with_id(&res, &id, None)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DUPLICATE_RESOURCE, "{error}");
    assert_eq!(error.method, "create_resource_with_id");
    assert!(error.message().contains(ALLOC), "{error}");
    assert_eq!(
        backend.client_list_resources().unwrap().len(),
        3,
        "the duplicate created nothing"
    );

    // --- users ---------------------------------------------------------------------------------
    let options = UserOptions::default();
    let added = backend
        .add_users_to_resource(&res, &strings(&["alice", "bob", "alice", ""]), &options)
        .unwrap();
    assert_eq!(added, strings(&["alice", "bob"]));
    assert_eq!(
        backend.client_list_resource_users(ALLOC).unwrap(),
        strings(&["alice", "bob"])
    );
    assert!(backend
        .client_get_association("alice", ALLOC)
        .unwrap()
        .is_some());
    // No default_account setting: the agent's default records "root".
    assert_eq!(
        demo.state_json()["accounts"][ALLOC]["users"]["alice"]["default_account"],
        "root"
    );
    // Adding an existing member is a success that changes nothing.
    assert!(backend.add_user(&res, "alice", &options).unwrap());

    assert!(backend.remove_user(&res, "bob", &options).unwrap());
    assert!(backend
        .client_get_association("bob", ALLOC)
        .unwrap()
        .is_none());
    // Removing a non-member counts as success, as in the reference.
    assert!(backend.remove_user(&res, "nobody", &options).unwrap());
    assert_eq!(
        backend.client_list_resource_users(ALLOC).unwrap(),
        strings(&["alice"])
    );

    // --- limits in Waldur units, converted by the agent's default ------------------------------
    let answer = backend
        .set_resource_limits(
            ALLOC,
            &Limits::from([("gpu".into(), 2.05), ("cpu".into(), 20.0)]),
        )
        .unwrap();
    assert_eq!(answer, None);
    // 2.05 × 60 is 122.99999999999999 in binary: truncated to 122, as Python's int().
    assert_eq!(
        backend.client_get_resource_limits(ALLOC).unwrap(),
        BackendLimits::from([("cpu".into(), 1200), ("gpu".into(), 122)])
    );
    assert_eq!(
        backend.get_resource_limits(ALLOC).unwrap(),
        BackendLimits::from([("cpu".into(), 20), ("gpu".into(), 2)])
    );
    // A partial update keeps the other component.
    backend
        .set_resource_limits(ALLOC, &Limits::from([("gpu".into(), 3.0)]))
        .unwrap();
    assert_eq!(
        backend.client_get_resource_limits(ALLOC).unwrap(),
        BackendLimits::from([("cpu".into(), 1200), ("gpu".into(), 180)])
    );
    // Per-user limits through the agent's defaults.
    let alice_limits = BackendLimits::from([("gpu".into(), 60)]);
    backend
        .set_resource_user_limits(ALLOC, "alice", &alice_limits)
        .unwrap();
    assert_eq!(
        backend.get_resource_user_limits(ALLOC).unwrap(),
        BTreeMap::from([("alice".to_string(), alice_limits)])
    );

    // --- usage of the current month in Europe/Tallinn ------------------------------------------
    // Backend units, divided by unit_factor 60 and rounded to 2 decimals per user. The three
    // 0.48s are 0.008 each: 0.01 rounded, so the total is 1.5 + 3 × 0.01 = 1.53, where
    // rounding the raw sum (91.44 / 60 = 1.524) would give 1.52. `storage` is not configured.
    let current_usage = json!({
        "alice": {"cpu": 90, "gpu": 1, "storage": 7},
        "bob": {"cpu": 0.48},
        "carol": {"cpu": 0.48},
        "dave": {"cpu": 0.48, "storage": 1000},
    });
    let expected_current = ResourceUsage::from([
        ("alice".into(), usage(&[("cpu", 1.5), ("gpu", 0.02)])),
        ("bob".into(), usage(&[("cpu", 0.01), ("gpu", 0.0)])),
        ("carol".into(), usage(&[("cpu", 0.01), ("gpu", 0.0)])),
        ("dave".into(), usage(&[("cpu", 0.01), ("gpu", 0.0)])),
        (
            TOTAL_ACCOUNT_USAGE.into(),
            usage(&[("cpu", 1.53), ("gpu", 0.02)]),
        ),
    ]);
    let ids = strings(&[ALLOC, "a_no-usage"]);
    let report = loop {
        // Retried if the month changed in Tallinn while the report was being made.
        let month = billing_month("Europe/Tallinn", 0);
        demo.write_usage(&month, ALLOC, current_usage.clone());
        let report = backend.get_usage_report(&ids).unwrap();
        if billing_month("Europe/Tallinn", 0) == month {
            break report;
        }
    };
    assert_eq!(report.len(), 2, "{report:?}");
    assert_eq!(report[ALLOC], expected_current);
    assert_eq!(
        report["a_no-usage"],
        ResourceUsage::from([(
            TOTAL_ACCOUNT_USAGE.into(),
            usage(&[("cpu", 0.0), ("gpu", 0.0)])
        )])
    );

    // --- usage of last month --------------------------------------------------------------------
    let last_month = billing_month("Europe/Tallinn", 1);
    demo.write_usage(
        &last_month,
        ALLOC,
        json!({"alice": {"cpu": 600, "gpu": 30}}),
    );
    let (year, month) = last_month.split_once('-').unwrap();
    let report = backend
        .get_usage_report_for_period(
            &[ALLOC.to_string()],
            year.parse().unwrap(),
            month.parse().unwrap(),
            Some(&res),
        )
        .unwrap();
    let alice = usage(&[("cpu", 10.0), ("gpu", 0.5)]);
    assert_eq!(
        report,
        BTreeMap::from([(
            ALLOC.to_string(),
            ResourceUsage::from([
                ("alice".into(), alice.clone()),
                (TOTAL_ACCOUNT_USAGE.into(), alice),
            ])
        )])
    );

    // --- QoS and metadata ----------------------------------------------------------------------
    let metadata = |qos: &str| {
        let mut expected = JsonMap::new();
        expected.insert("qos".into(), qos.into());
        expected.insert("users".into(), 1.into());
        assert_eq!(backend.get_resource_metadata(ALLOC).unwrap(), expected);
    };
    metadata("normal");
    assert!(backend.pause_resource(ALLOC).unwrap());
    assert!(!backend.pause_resource(ALLOC).unwrap(), "already paused");
    metadata("paused");
    assert!(backend.downscale_resource(ALLOC).unwrap());
    metadata("downscaled");
    assert!(backend.restore_resource(ALLOC).unwrap());
    assert!(!backend.restore_resource(ALLOC).unwrap(), "already normal");
    metadata("normal");
    let error = backend.pause_resource("a_missing").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BACKEND, "{error}");

    // --- pull ------------------------------------------------------------------------------------
    let pulled = backend
        .pull_resource(&res)
        .unwrap()
        .expect("the allocation exists");
    assert_eq!(pulled.users, strings(&["alice"]));
    assert_eq!(pulled.usage, expected_current);
    assert_eq!(
        backend
            .pull_resource(&resource("gone", "a_gone", json!({})))
            .unwrap(),
        None
    );
    assert_eq!(
        backend
            .pull_resource(&resource("new", "", json!({})))
            .unwrap(),
        None
    );
    let all = backend.list_resources().unwrap();
    let listed: Vec<(&str, &str)> = all
        .iter()
        .map(|r| (r.backend_id.as_str(), r.parent_id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [(ALLOC, PROJECT), (CUSTOMER, CUSTOMER), (PROJECT, PROJECT)]
    );

    // --- pending orders against max_limits {gpu: 8} ---------------------------------------------
    let order = |limits: Value| -> Order {
        serde_json::from_value(json!({
            "uuid": "order-1",
            "type": "Create",
            "state": "pending-provider",
            "project_slug": "proj-1",
            "customer_slug": "cust-1",
            "limits": limits,
        }))
        .unwrap()
    };
    let decide = |limits: Value| backend.evaluate_pending_order(&order(limits)).unwrap();
    assert_eq!(decide(json!({"gpu": 8})), PendingOrderDecision::Accept);
    assert_eq!(decide(json!({"gpu": 8.5})), PendingOrderDecision::Reject);
    assert_eq!(
        decide(json!({"cpu": 1000000, "gpu": 1})),
        PendingOrderDecision::Accept,
        "cpu has no maximum"
    );

    // --- deletion with project cleanup ----------------------------------------------------------
    // A second allocation in the same project keeps the project account alive.
    let mut second = resource("alloc-2", "", json!({"gpu": 1}));
    let second_id = backend.get_resource_backend_id(&second.slug).unwrap();
    second.backend_id = backend.create_resource(&second, None).unwrap().backend_id;
    assert_eq!(second.backend_id, second_id);

    assert_eq!(backend.delete_resource(&res, Some("proj-1")).unwrap(), None);
    assert_eq!(account(ALLOC), None);
    assert!(account(PROJECT).is_some(), "alloc-2 still uses the project");
    // Deleting it again finds nothing to do.
    assert_eq!(backend.delete_resource(&res, Some("proj-1")).unwrap(), None);

    assert_eq!(
        backend.delete_resource(&second, Some("proj-1")).unwrap(),
        None
    );
    assert_eq!(account(&second_id), None);
    assert_eq!(
        account(PROJECT),
        None,
        "the empty project account is deleted"
    );
    // The agent's default never deletes customer accounts.
    assert!(account(CUSTOMER).is_some());
    let names: Vec<String> = backend
        .client_list_resources()
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, [CUSTOMER]);

    let LoadedDemo { backend, .. } = demo;
    backend.close().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Test 3: failure injection

#[test]
fn injected_backend_failure_names_the_method() {
    let demo = load_demo(json!({"fail_methods": ["client_create_resource"]}));
    let backend = &demo.backend;
    let res = resource("alloc-1", "", json!({"gpu": 1}));

    let error = backend
        .create_resource_with_id(&res, ALLOC, None)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BACKEND, "{error}");
    assert_eq!(error.method, "client_create_resource", "{error}");
    let line = error.to_string();
    assert!(!line.contains('\n'), "{line:?}");
    assert!(line.contains("client_create_resource"), "{line}");
    assert!(line.contains("injected failure"), "{line}");
    assert_eq!(
        error.message(),
        "demo: injected failure in client_create_resource"
    );
    // Nothing was created under the allocation's name.
    assert_eq!(backend.client_get_resource(ALLOC).unwrap(), None);

    // The same instance keeps working.
    assert!(backend.ping(false).unwrap());
    assert!(backend.ping(true).unwrap());

    let LoadedDemo { backend, .. } = demo;
    backend.close().unwrap();
}
