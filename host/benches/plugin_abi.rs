//! Costs of the plugin boundary, as figures with ratios against baselines from the same run:
//!
//! 1. one empty call (`ping`) directly on a Rust type, through the vtable in-process, and
//!    through the vtable of a real dlopened plugin;
//! 2. a `user_context` with 1,000 team members: a serde round trip alone, and a call that
//!    carries it across the boundary;
//! 3. `waldur-agent plugins list` over a directory of 20 plugins, against starting the agent
//!    (`--version`) and listing one plugin;
//! 4. the metrics endpoint's cost: the agent's `ping` on a dlopened plugin with and without
//!    the latency recording;
//! 5. whole operations on the dlopened demo plugin (one create order, one terminate order, a
//!    membership cycle of 100 resources): boundary crossings and time with the manifest's
//!    list of implemented methods trusted, against every method crossing as before.
//!
//! Run with `cargo bench -p waldur-agent --bench plugin_abi` (or scripts/bench-plugins.sh);
//! `-- calls`, `-- user_context`, `-- list`, `-- metrics` or `-- workflows` runs one section.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use abi_stable::std_types::RStr;
use waldur_agent::plugins::{Catalog, HostContext, Registry, SearchPath, TrustPolicy};
use waldur_plugin_abi::sdk::shims;
use waldur_plugin_abi::wire::{
    BackendComponents, JsonMap, OfferingUser, ProjectUser, UserContext, UserOptions, WaldurResource,
};
use waldur_plugin_abi::{backend_impl, Backend, BackendContext, Client, Host, Result};
use waldur_plugin_host::handle::BackendHandle;
use waldur_test_support::{agent_binary, workspace_plugin_built, PluginDir, Profile};

/// The same trivial backend, called directly and through the vtable.
struct Trivial;

#[backend_impl]
impl Client for Trivial {}

#[backend_impl]
impl Backend for Trivial {
    fn new(_context: BackendContext) -> Result<Self> {
        Ok(Trivial)
    }

    fn ping(&self, _raise_exception: bool) -> Result<bool> {
        Ok(true)
    }

    fn pre_create_resource(
        &self,
        _waldur_resource: WaldurResource,
        user_context: Option<UserContext>,
    ) -> Result<()> {
        black_box(user_context);
        Ok(())
    }
}

/// Median time per iteration over `rounds` rounds of `iterations`.
fn per_iteration(rounds: usize, iterations: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed() / iterations
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn team(members: usize) -> UserContext {
    let team: Vec<ProjectUser> = (0..members)
        .map(|i| ProjectUser {
            uuid: format!("{i:032x}"),
            url: format!("https://waldur.example.org/api/users/{i:032x}/"),
            username: format!("user{i}@idp.example.org"),
            full_name: format!("User Number {i}"),
            email: format!("user{i}@example.org"),
            role: "PROJECT.MEMBER".into(),
            offering_user_username: Some(format!("u{i}")),
            offering_user_state: Some("OK".into()),
            ..Default::default()
        })
        .collect();
    let offering_users: Vec<OfferingUser> = team
        .iter()
        .enumerate()
        .map(|(i, m)| OfferingUser {
            uuid: format!("{:032x}", i + 1_000_000),
            user_uuid: m.uuid.clone(),
            username: Some(format!("u{i}")),
            state: "OK".into(),
            user_username: m.username.clone(),
            user_email: m.email.clone(),
            user_full_name: m.full_name.clone(),
            ..Default::default()
        })
        .collect();
    UserContext {
        user_mappings: team.iter().map(|m| (m.uuid.clone(), m.clone())).collect(),
        offering_user_mappings: offering_users
            .iter()
            .map(|u| (u.user_uuid.clone(), u.clone()))
            .collect(),
        team,
        offering_users,
        ..Default::default()
    }
}

fn in_process_handle() -> BackendHandle {
    let raw = shims::new_backend::<Trivial>(
        RStr::from_str("trivial"),
        RStr::from_str("{}"),
        RStr::from_str("{}"),
        Host::detached().raw_handle(),
    )
    .into_result()
    .expect("construct in-process");
    // SAFETY: built by the SDK in this process; the detached host needs no context.
    unsafe { BackendHandle::from_raw(raw) }
}

fn call_costs() {
    println!("== 1. one empty call (ping)");
    // Through a function pointer the optimizer cannot see through, as a call into code
    // compiled elsewhere would be.
    let direct = Trivial;
    let ping: fn(&Trivial, bool) -> Result<bool> = <Trivial as Backend>::ping;
    let d = per_iteration(7, 2_000_000, || {
        black_box(black_box(ping)(black_box(&direct), black_box(false)).unwrap());
    });
    let handle = in_process_handle();
    let v = per_iteration(7, 200_000, || {
        black_box(handle.ping(black_box(false)).unwrap());
    });
    let (_plugins, registry) = panicky_registry();
    let backend = panicky_backend(&registry);
    let p = per_iteration(7, 200_000, || {
        black_box(backend.handle().ping(black_box(false)).unwrap());
    });
    let w = per_iteration(7, 200_000, || {
        black_box(backend.ping(black_box(false)).unwrap());
    });
    println!("direct Rust trait call (baseline)      {:>9.1} ns", ns(d));
    println!(
        "vtable, same process                   {:>9.1} ns  ({:.0}x baseline)",
        ns(v),
        ns(v) / ns(d)
    );
    println!(
        "vtable, dlopened plugin                {:>9.1} ns  ({:.0}x baseline)",
        ns(p),
        ns(p) / ns(d)
    );
    println!(
        "agent Backend wrapper, dlopened        {:>9.1} ns  ({:.0}x baseline)",
        ns(w),
        ns(w) / ns(d)
    );
}

/// The release build of the panicky fixture (its `ping` answers at once) in a registry.
fn panicky_registry() -> (PluginDir, Registry) {
    let plugins = PluginDir::new();
    plugins.add(
        &workspace_plugin_built("waldur-plugin-panicky", Profile::Release),
        "panicky.so",
    );
    let registry = Registry::new(Catalog::scan(
        &SearchPath::only([plugins.path().to_path_buf()]),
        TrustPolicy::Strict,
        None,
    ));
    (plugins, registry)
}

fn panicky_backend(registry: &Registry) -> waldur_agent::plugins::Backend {
    registry
        .backend(
            "panicky",
            &JsonMap::new(),
            &Default::default(),
            HostContext::new("panicky", "bench"),
        )
        .expect("load the panicky plugin")
}

fn metrics_costs() {
    println!("== 4. plugin call latency recording (run --metrics-address)");
    let (_plugins, registry) = panicky_registry();
    let plain = panicky_backend(&registry);
    let metrics = waldur_agent::metrics::Metrics::new();
    let mut recorded = panicky_backend(&registry);
    recorded.record_calls(metrics.plugin_calls("panicky"));
    // Interleaved rounds, so a change of machine load hits both alike.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        without.push(per_iteration(1, 200_000, || {
            black_box(plain.ping(black_box(false)).unwrap());
        }));
        with.push(per_iteration(1, 200_000, || {
            black_box(recorded.ping(black_box(false)).unwrap());
        }));
    }
    without.sort();
    with.sort();
    let (without, with) = (without[3], with[3]);
    assert!(metrics
        .encode()
        .contains(r#"plugin_call_duration_seconds_count{plugin="panicky",method="ping"}"#));
    println!(
        "agent ping, no metrics (baseline)      {:>9.1} ns",
        ns(without)
    );
    println!(
        "agent ping, latency recorded           {:>9.1} ns  ({:.2}x baseline, +{:.1} ns per call)",
        ns(with),
        ns(with) / ns(without),
        ns(with) - ns(without)
    );
}

fn user_context_costs() {
    println!("== 2. user_context with 1,000 team members");
    let context = team(1000);
    let json = serde_json::to_string(&context).unwrap();
    let serde = per_iteration(7, 50, || {
        let text = serde_json::to_string(black_box(&context)).unwrap();
        black_box(serde_json::from_str::<UserContext>(&text).unwrap());
    });
    let handle = in_process_handle();
    let resource = WaldurResource::default();
    let across = per_iteration(7, 50, || {
        handle
            .pre_create_resource(black_box(&resource), black_box(Some(&context)))
            .unwrap();
    });
    // How the agent called before arguments were borrowed: a copy of the context per call.
    let cloned = per_iteration(7, 50, || {
        let copy = Some(black_box(&context).clone());
        handle
            .pre_create_resource(black_box(&resource), copy.as_ref())
            .unwrap();
    });
    println!(
        "JSON size                              {:>9} bytes",
        json.len()
    );
    println!(
        "serde round trip (baseline)            {:>9.1} us",
        ns(serde) / 1e3
    );
    println!(
        "one call carrying it across the ABI    {:>9.1} us  ({:.2}x baseline)",
        ns(across) / 1e3,
        ns(across) / ns(serde)
    );
    println!(
        "the same call copying it first (before) {:>8.1} us  ({:.2}x baseline; borrowed/copied {:.2})",
        ns(cloned) / 1e3,
        ns(cloned) / ns(serde),
        ns(across) / ns(cloned)
    );
}

fn list_costs() {
    println!("== 3. waldur-agent plugins list");
    let agent = agent_binary(Profile::Release);
    let demo = workspace_plugin_built("waldur-plugin-demo", Profile::Release);
    let twenty = PluginDir::new();
    for i in 0..20 {
        twenty.add(&demo, &format!("demo{i:02}.so"));
    }
    let one = PluginDir::new();
    one.add(&demo, "demo.so");
    let time = |args: &[&str]| {
        let mut samples: Vec<Duration> = (0..7)
            .map(|_| {
                let start = Instant::now();
                let status = Command::new(&agent)
                    .args(args)
                    .env("WALDUR_AGENT_PLUGIN_PATH", "")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run the agent");
                assert!(status.success());
                start.elapsed()
            })
            .collect();
        samples.sort();
        samples[3]
    };
    let start = time(&["--version"]);
    let single = time(&[
        "plugins",
        "list",
        "--plugin-dir",
        one.path().to_str().unwrap(),
    ]);
    let many = time(&[
        "plugins",
        "list",
        "--plugin-dir",
        twenty.path().to_str().unwrap(),
    ]);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "agent start, --version (baseline)      {:>9.1} ms",
        ms(start)
    );
    println!(
        "plugins list, 1 plugin                 {:>9.1} ms  ({:.1}x baseline)",
        ms(single),
        ms(single) / ms(start)
    );
    println!(
        "plugins list, 20 plugins               {:>9.1} ms  ({:.1}x baseline, {:.1} ms per plugin)",
        ms(many),
        ms(many) / ms(start),
        (ms(many) - ms(start)) / 20.0
    );
}

/// The demo plugin's backend through the real loader, on a fresh state directory.
fn demo_backend(plugins: &PluginDir, state: &std::path::Path) -> waldur_agent::plugins::Backend {
    let registry = Registry::new(Catalog::scan(
        &SearchPath::only([plugins.path().to_path_buf()]),
        TrustPolicy::Strict,
        None,
    ));
    let mut settings = JsonMap::new();
    settings.insert("state_dir".into(), state.to_str().unwrap().into());
    settings.insert("create_state_dir".into(), true.into());
    let components: BackendComponents = serde_json::from_value(serde_json::json!({
        "cpu": {"measured_unit": "k-Hours", "accounting_type": "limit", "label": "CPU"}
    }))
    .unwrap();
    registry
        .backend(
            "demo",
            &settings,
            &components,
            HostContext::new("demo", "bench"),
        )
        .expect("load the demo plugin")
}

fn demo_resource(i: usize) -> WaldurResource {
    serde_json::from_value(serde_json::json!({
        "uuid": format!("{i:032x}"),
        "name": format!("Allocation {i}"),
        "slug": format!("alloc-{i}"),
        "project_slug": format!("project-{i}"),
        "customer_slug": "customer",
        "limits": {"cpu": 10},
        "state": "OK",
    }))
    .unwrap()
}

/// The plugin calls of one create order, as `modes/create.rs` and `order_process.rs` make
/// them: the backend id, the account with its limits and hooks, the team added.
fn create_order(backend: &waldur_agent::plugins::Backend, i: usize, context: &UserContext) {
    let mut resource = demo_resource(i);
    let id = backend.get_resource_backend_id(&resource.slug).unwrap();
    backend
        .create_resource_with_id(&resource, &id, Some(context))
        .unwrap();
    resource.backend_id = id;
    let team: Vec<String> = context.team.iter().map(|m| m.username.clone()).collect();
    backend
        .add_users_to_resource(&resource, &team, &UserOptions::default())
        .unwrap();
}

/// The plugin calls of one terminate order (`order_process.rs`: `delete_resource`).
fn terminate_order(backend: &waldur_agent::plugins::Backend, i: usize) {
    let mut resource = demo_resource(i);
    resource.backend_id = backend.get_resource_backend_id(&resource.slug).unwrap();
    backend
        .delete_resource(&resource, Some(&resource.project_slug))
        .unwrap();
}

/// The plugin calls of one membership cycle (`membership_sync.rs`): one pull of every
/// resource, then per resource the project and end-date syncs, the team diff and the
/// existing users' hooks.
fn membership_cycle(backend: &waldur_agent::plugins::Backend, resources: &[WaldurResource]) {
    backend.pull_resources(resources).unwrap();
    let existing = vec!["alice".to_string()];
    let none = BTreeMap::new();
    for resource in resources {
        backend.sync_resource_project(resource, None).unwrap();
        backend.sync_project_end_date(resource, None).unwrap();
        backend
            .add_users_to_resource(resource, &["bob".to_string()], &UserOptions::default())
            .unwrap();
        backend
            .remove_users_from_resource(resource, &["carol".to_string()], &UserOptions::default())
            .unwrap();
        backend.process_existing_users(&existing).unwrap();
        backend
            .reconcile_existing_user_roles(resource, &existing, &none, &none)
            .unwrap();
        backend.sync_resource_end_date(resource).unwrap();
        backend.sync_resource_effective_id(resource).unwrap();
    }
}

fn workflow_costs() {
    println!("== 5. boundary crossings of whole operations (the demo plugin, dlopened)");
    println!("   every method: each call crosses, as before the manifest was trusted");
    let plugins = PluginDir::new();
    plugins.add(
        &workspace_plugin_built("waldur-plugin-demo", Profile::Release),
        "demo.so",
    );
    let context = team(3);
    println!(
        "{:<34} {:>9} {:>9} {:>11} {:>11} {:>7}",
        "operation", "crossings", "(every)", "time, us", "(every)", "ratio"
    );
    type Operation = fn(&waldur_agent::plugins::Backend, &UserContext, usize);
    let nothing: Operation = |_, _, _| {};
    // (name, uncounted set-up of the round, the counted operation)
    let operations: [(&str, Operation, Operation); 3] = [
        ("create order", nothing, |b, ctx, round| {
            create_order(b, round, ctx)
        }),
        // The account to delete is made first.
        (
            "terminate order",
            |b, ctx, round| create_order(b, round, ctx),
            |b, _ctx, round| terminate_order(b, round),
        ),
        (
            "membership cycle, 100 resources",
            nothing,
            |b, _ctx, round| {
                let resources: Vec<WaldurResource> = (0..100)
                    .map(|i| {
                        let mut r = demo_resource(round * 1000 + i);
                        r.backend_id = format!("acc-{i}");
                        r
                    })
                    .collect();
                membership_cycle(b, &resources);
            },
        ),
    ];
    for (name, setup, operation) in operations {
        // Interleaved rounds on two fresh backends, so load changes hit both alike.
        let (trusted_dir, every_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let trusted = demo_backend(&plugins, trusted_dir.path());
        let mut every = demo_backend(&plugins, every_dir.path());
        every.call_every_method();
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        let (mut crossed, mut crossed_every) = (0, 0);
        for round in 0..15 {
            for (backend, times, crossings) in [
                (&trusted, &mut fast, &mut crossed),
                (&every, &mut slow, &mut crossed_every),
            ] {
                setup(backend, &context, round);
                let before = backend.handle().crossings();
                let start = Instant::now();
                operation(backend, &context, round);
                times.push(start.elapsed());
                *crossings = backend.handle().crossings() - before;
            }
        }
        fast.sort();
        slow.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{:<34} {:>9} {:>9} {:>11.1} {:>11.1} {:>6.2}x",
            name,
            crossed,
            crossed_every,
            us(fast[7]),
            us(slow[7]),
            us(fast[7]) / us(slow[7])
        );
    }
}

fn main() {
    // The agent's defaults log each step (through `log` when no subscriber is set, into the
    // SDK's stderr logger here): the figures are of the calls, not of writing log lines.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing special: both run
    // every section. Another argument picks one section.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let sections: [(&str, fn()); 5] = [
        ("calls", call_costs),
        ("user_context", user_context_costs),
        ("list", list_costs),
        ("metrics", metrics_costs),
        ("workflows", workflow_costs),
    ];
    for (name, run) in sections {
        if only.is_empty() || only.iter().any(|o| o == name) {
            run();
        }
    }
}
