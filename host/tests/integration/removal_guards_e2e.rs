//! The guards against mass removal (`max_user_removals_per_cycle`,
//! `max_terminations_per_cycle`): a cycle over the bound stops before its first write, and
//! `--force` lets one run past it.

use serde_json::json;
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::runtime::Mode;

use super::common::site::{text, Site};
use super::common::*;

/// Two accounts with alice on both, then alice leaves the project.
fn alice_left(offering_lines: &str) -> Harness {
    let mut h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.account_users("alloc-a"), ["alice1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1"]);
    h.sim.with_store_mut(|store| store.team.clear());
    h.restart_agent(Options {
        offering: offering_lines,
        ..Options::default()
    });
    h
}

fn failure(h: &Harness, mode: Mode) -> String {
    let report = h.cycle(mode);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Failed(e) => e.to_string(),
        other => panic!("the guard did not stop the cycle: {other:?}"),
    }
}

#[test]
fn a_membership_cycle_removing_more_than_the_bound_stops_before_writing() {
    let mut h = alice_left("    max_user_removals_per_cycle: 1");
    h.sim.reset_log();
    let why = failure(&h, Mode::MembershipSync);
    assert!(
        why.contains(
            "would remove 2 user association(s), more than max_user_removals_per_cycle: 1"
        ),
        "{why}"
    );
    assert_eq!(
        h.account_users("alloc-a"),
        ["alice1"],
        "nothing was removed"
    );
    assert_eq!(h.account_users("alloc-b"), ["alice1"]);
    let writes = h.sim.requests().into_iter().filter(|r| r.method != "GET");
    assert!(
        writes
            .map(|r| r.path)
            .all(|p| p.contains("marketplace-site-agent")),
        "only the agent's registration was written"
    );

    // At the bound it runs; forced it runs past it.
    h.restart_agent(Options {
        offering: "    max_user_removals_per_cycle: 2",
        ..Options::default()
    });
    let report = h.cycle(Mode::MembershipSync);
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(h.account_users("alloc-a").is_empty());

    let mut h = alice_left("    max_user_removals_per_cycle: 0");
    h.restart_agent(Options {
        offering: "    max_user_removals_per_cycle: 0",
        force: true,
        ..Options::default()
    });
    let report = h.cycle(Mode::MembershipSync);
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(h.account_users("alloc-a").is_empty() && h.account_users("alloc-b").is_empty());
}

#[test]
fn without_the_key_membership_removes_as_the_reference_does() {
    let h = alice_left("");
    let report = h.cycle(Mode::MembershipSync);
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(h.account_users("alloc-a").is_empty());
}

#[test]
fn an_order_cycle_with_more_terminations_than_the_bound_processes_none() {
    let mut h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    h.add_order(
        "77777777777777777777777777777711",
        "Terminate",
        "executing",
        RES_A,
        json!({}),
    );
    h.add_order(
        "77777777777777777777777777777712",
        "Terminate",
        "executing",
        RES_B,
        json!({}),
    );
    h.restart_agent(Options {
        offering: "    max_terminations_per_cycle: 1",
        ..Options::default()
    });
    let why = failure(&h, Mode::OrderProcess);
    assert!(
        why.contains(
            "would carry out 2 Terminate order(s), more than max_terminations_per_cycle: 1"
        ),
        "{why}"
    );
    assert!(h.account("alloc-a").is_some() && h.account("alloc-b").is_some());
    assert_eq!(
        h.order_state("77777777777777777777777777777711").0,
        "executing"
    );

    h.restart_agent(Options {
        offering: "    max_terminations_per_cycle: 1",
        force: true,
        ..Options::default()
    });
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(report.failures(), 0, "{report:?}");
    assert!(h.account("alloc-a").is_none() && h.account("alloc-b").is_none());
    assert_eq!(h.order_state("77777777777777777777777777777712").0, "done");
}

#[test]
fn run_once_names_the_guard_and_force_passes_it() {
    let site = Site::with_offering(
        super::common::site::creates(2),
        "",
        "",
        "",
        "    max_terminations_per_cycle: 0",
    );
    assert!(site.run(&["run", "--once"]).status.success());
    site.sim.with_store_mut(|store| {
        let orders: Vec<_> = store.orders.values().cloned().collect();
        for mut order in orders {
            order.uuid = format!("66{}", &order.uuid[2..]);
            order.type_ = "Terminate".into();
            order.state = "executing".into();
            store.orders.insert(order.uuid.clone(), order);
        }
    });
    let output = site.run(&["run", "--once"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("more than max_terminations_per_cycle: 0 allows"),
        "{}",
        text(&output)
    );
    assert_eq!(site.allocations().len(), 2, "nothing was terminated");
    let output = site.run(&["run", "--once", "--force"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(site.allocations().is_empty(), "{:?}", site.allocations());
}
