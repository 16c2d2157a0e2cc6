//! `run --dry-run`: a whole cycle against the simulator and the real demo plugin that reads
//! everything and writes nothing, and whose plan is what a real run then writes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use waldur_agent::dry_run::{Plan, PlannedWrite, System};
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::runtime::Mode;

use super::common::site::{creates, text, Site};
use super::common::*;

/// Every file under `dir`, by path: the demo backend's whole state (lock files aside).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                // The demo's empty lock file, which a read takes too: no state.
                assert!(std::fs::read(&path).unwrap().is_empty(), "{path:?}");
            } else {
                found.insert(path.display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// Waldur's and the backend's whole state.
fn snapshot(h: &Harness) -> (Value, BTreeMap<String, Vec<u8>>) {
    (h.sim.state(), files(h.state.path()))
}

fn dry_run(h: &mut Harness) -> Arc<Plan> {
    let plan = Plan::new();
    h.restart_agent(Options {
        dry_run: Some(Arc::clone(&plan)),
        ..Options::default()
    });
    plan
}

/// `METHOD path` of the planned Waldur writes, sorted (orders of different resources run
/// concurrently, so only the multiset is fixed).
fn planned_waldur(writes: &[PlannedWrite]) -> Vec<String> {
    let mut requests: Vec<String> = writes
        .iter()
        .filter(|w| w.system == System::Waldur)
        .map(|w| w.action.clone())
        .collect();
    requests.sort();
    requests
}

fn backend_calls<'a>(writes: &'a [PlannedWrite], method: &str) -> Vec<&'a Value> {
    writes
        .iter()
        .filter(|w| w.system == System::Backend && w.action == method)
        .map(|w| &w.arguments)
        .collect()
}

#[test]
fn a_dry_run_writes_nothing_and_plans_exactly_what_the_real_run_then_writes() {
    let mut h = harness(scenario(&two_create_orders()), "", "");
    let before = snapshot(&h);
    let plan = dry_run(&mut h);

    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Orders(s) => assert_eq!((s.done, s.erred, s.failed), (2, 0, 0), "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        snapshot(&h),
        before,
        "a dry run changed Waldur or the backend"
    );

    let writes = plan.writes();
    // Each account's creation and its first user, as the real run makes them.
    let created = backend_calls(&writes, "client_create_resource");
    assert_eq!(created.len(), 2, "{writes:#?}");
    let associations = backend_calls(&writes, "add_user");
    assert_eq!(associations.len(), 2, "{writes:#?}");
    assert!(associations.iter().all(|a| a["username"] == "alice1"));
    let planned = planned_waldur(&writes);
    assert!(
        planned
            .iter()
            .any(|r| r.starts_with("POST")
                && r.ends_with(&format!("{CREATE_A}/approve_by_provider/")))
    );

    // The real run: what the plan said, request for request (the agent's own registration,
    // which a dry run leaves out, aside).
    h.restart_agent(Options::default());
    h.sim.set_request_log(true, true);
    h.sim.reset_log();
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Orders(s) => assert_eq!(s.done, 2, "{s:?}"),
        other => panic!("{other:?}"),
    }
    let mut real: Vec<String> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET" && !r.path.contains("marketplace-site-agent"))
        .map(|r| {
            if r.query.is_empty() {
                format!("{} {}", r.method, r.path)
            } else {
                format!("{} {}?{}", r.method, r.path, r.query)
            }
        })
        .collect();
    real.sort();
    assert_eq!(planned, real, "the plan is not what the real run wrote");
    // The demo's own pre-create hook makes the customer and project accounts: one planned
    // call each, as the plugin writes it, not the client calls inside it.
    assert_eq!(backend_calls(&writes, "pre_create_resource").len(), 2);
    let mut accounts: Vec<String> = h.backend_state()["accounts"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| !["cust", "proj"].contains(&name.as_str()))
        .cloned()
        .collect();
    accounts.sort();
    let mut planned_accounts: Vec<String> = created
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    planned_accounts.sort();
    assert_eq!(accounts, planned_accounts);
}

#[test]
fn a_dry_run_of_membership_and_report_plans_the_new_member_and_the_usage() {
    let mut h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    // Bob joins the project, and the backend has usage to report.
    h.join_team(BOB, "PROJECT.MEMBER");
    let account = h.resource(RES_A).backend_id;
    let (this_month, _) = months();
    h.usage_file(&this_month, &account, json!({"alice1": {"cpu": 600}}));
    let before = snapshot(&h);
    let plan = dry_run(&mut h);

    for mode in [Mode::MembershipSync, Mode::Report] {
        let report = h.cycle(mode);
        assert_eq!(report.failures(), 0, "{report:?}");
    }
    assert_eq!(
        snapshot(&h),
        before,
        "a dry run changed Waldur or the backend"
    );

    let writes = plan.writes();
    let added: Vec<&Value> = backend_calls(&writes, "add_user");
    assert_eq!(added.len(), 2, "bob on both accounts: {writes:#?}");
    assert!(added.iter().all(|a| a["username"] == "bob1"));
    let usage: Vec<&PlannedWrite> = writes
        .iter()
        .filter(|w| {
            w.action
                .ends_with("/marketplace-component-usages/set_usage/")
        })
        .collect();
    assert!(
        usage
            .iter()
            .any(|w| w.arguments["usages"][0]["amount"] == "10.00"),
        "{usage:#?}"
    );
}

#[test]
fn run_dry_run_prints_the_plan_and_leaves_no_trace() {
    let site = Site::new(creates(1), "", "");
    let before = site.sim.state();

    let output = site.run(&["run", "-m", "all", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{}", text(&output));
    for expected in [
        "client_create_resource",
        "/set_backend_id/",
        "/set_state_done/",
        "dry run: ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert_eq!(site.sim.state(), before, "the dry run wrote to Waldur");
    assert_eq!(
        site.state(),
        Value::Null,
        "the dry run created backend state"
    );
    assert!(
        !site.runtime_dir().join("heartbeat").exists(),
        "a dry run must not fake liveness"
    );

    let output = site.run(&["run", "-m", "order_process", "--dry-run", "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).expect("the plan is JSON");
    assert_eq!(plan["dry_run"], true);
    let writes = plan["writes"].as_array().unwrap();
    assert!(writes
        .iter()
        .any(|w| w["system"] == "backend" && w["action"] == "client_create_resource"));
    assert!(writes
        .iter()
        .any(|w| w["system"] == "waldur" && w["via"] == "O5 marketplace_orders_set_state_done"));
    assert_eq!(site.sim.state(), before);

    // --json without --dry-run is refused by the argument parser.
    let output = site.run(&["run", "--json"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}
