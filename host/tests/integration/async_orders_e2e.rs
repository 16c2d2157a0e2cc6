//! End to end: the order paths that need a backend with asynchronous orders and a cycle
//! preflight (fixture plugin `async-remote`), pending-provider decisions, and Restore orders
//! (demo plugin), against the simulator through the real loader.

use std::path::PathBuf;

use crate::common::*;
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::order_process::OrderSummary;
use waldur_agent::modes::runtime::Mode;

const REMOTE_RES: &str = "88888888888888888888888888888811";
const REMOTE_ORDER: &str = "77777777777777777777777777777711";

/// The harness with a second offering run by `async-remote`, keeping its files in a
/// directory of its own.
struct Remote {
    h: Harness,
    dir: tempfile::TempDir,
}

impl Remote {
    fn new(resources_and_orders: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let other = format!(
            r#"  - name: Other Offering
    waldur_api_url: SIMURL
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OTHER_OFFERING}
    backend_type: async-remote
    order_processing_backend: async-remote
    backend_settings: {{state_dir: {}}}
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU}}
"#,
            dir.path().display()
        );
        let offering_users = format!(
            "{DEFAULT_OFFERING_USERS}  - {{offering: Other Offering, user: alice@idp, username: alice1, state: OK}}\n"
        );
        let scenario = scenario_with("{}", &offering_users, resources_and_orders);
        let h = harness(scenario, "", &other);
        Remote { h, dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn finish_remote_order(&self, id: &str, state: &str) {
        let path = self.path(&format!("remote/{id}"));
        assert!(path.is_file(), "no remote order {id}");
        std::fs::write(path, state).unwrap();
    }

    /// How often the plugin saw `<method> <argument>` (argument prefix match).
    fn calls(&self, method: &str, argument: &str) -> usize {
        let log = std::fs::read_to_string(self.path("calls.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.split_once(' ')
                    .is_some_and(|(m, a)| m == method && a.starts_with(argument))
            })
            .count()
    }

    fn orders_cycle(&self) -> OrderSummary {
        let report = self.h.cycle(Mode::OrderProcess);
        match outcome(&report, "Other Offering") {
            OfferingOutcome::Orders(s) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn order_backend_id(&self, uuid: &str) -> String {
        self.h.sim.order(uuid).unwrap().backend_id
    }
}

fn remote_create() -> String {
    format!(
        r#"
resources:
  - {{uuid: {REMOTE_RES}, name: remote-a, project: proj, offering: Other Offering, state: Creating, limits: {{cpu: 4}}}}
orders:
  - {{uuid: {REMOTE_ORDER}, type: Create, state: executing, resource: {REMOTE_RES}, limits: {{cpu: 4}}}}
"#
    )
}

/// An existing resource of the remote offering with one order of `kind`.
fn remote_existing(kind: &str) -> String {
    format!(
        r#"
resources:
  - {{uuid: {REMOTE_RES}, name: remote-x, project: proj, offering: Other Offering, state: OK, backend_id: remote-x, limits: {{cpu: 4}}}}
orders:
  - {{uuid: {REMOTE_ORDER}, type: {kind}, state: executing, resource: {REMOTE_RES}, limits: {{cpu: 9}}}}
"#
    )
}

#[test]
fn an_async_create_waits_for_the_backend_order_and_is_done_once_it_finished() {
    let r = Remote::new(&remote_create());

    let first = r.orders_cycle();
    assert_eq!(
        (first.waiting, first.done, first.erred),
        (1, 0, 0),
        "{first:?}"
    );
    let backend_id = r.h.resource(REMOTE_RES).backend_id;
    assert_eq!(backend_id, "remote-a");
    assert_eq!(r.h.order_state(REMOTE_ORDER).0, "executing");
    // The backend's own order id is kept on the Waldur order, as the reference does.
    let remote_order = r.order_backend_id(REMOTE_ORDER);
    assert_eq!(remote_order, "create-remote-a");

    // Still running remotely: polled, not created a second time.
    let second = r.orders_cycle();
    assert_eq!(second.waiting, 1, "{second:?}");
    assert_eq!(r.calls("check_pending_order", &remote_order), 1);
    assert_eq!(r.calls("create_resource_with_id", ""), 1);
    assert_eq!(r.h.order_state(REMOTE_ORDER).0, "executing");

    r.finish_remote_order(&remote_order, "done");
    let third = r.orders_cycle();
    assert_eq!((third.done, third.waiting), (1, 0), "{third:?}");
    assert_eq!(r.h.order_state(REMOTE_ORDER).0, "done");
    assert_eq!(r.h.resource(REMOTE_RES).state, "OK");
    assert_eq!(r.calls("sync_resource_effective_id", "remote-a"), 1);
    assert_eq!(r.calls("create_resource_with_id", ""), 1);
    // The team's users are added once the resource exists.
    assert_eq!(r.calls("client_create_association", "alice1 remote-a"), 1);

    // Done orders are no longer listed: nothing more happens.
    let fourth = r.orders_cycle();
    assert_eq!(fourth, OrderSummary::default());
    assert_eq!(r.calls("check_pending_order", ""), 2);
}

#[test]
fn async_update_and_terminate_finish_later_and_a_failed_backend_order_errs_the_order() {
    let r = Remote::new(&remote_existing("Update"));
    std::fs::create_dir_all(r.path("accounts")).unwrap();
    std::fs::write(r.path("accounts/remote-x"), "").unwrap();

    assert_eq!(r.orders_cycle().waiting, 1);
    assert_eq!(r.order_backend_id(REMOTE_ORDER), "update-remote-x");
    let limits = std::fs::read_to_string(r.path("limits/remote-x")).unwrap();
    assert_eq!(limits, r#"{"cpu":9.0}"#);
    r.finish_remote_order("update-remote-x", "done");
    assert_eq!(r.orders_cycle().done, 1);
    assert_eq!(r.h.order_state(REMOTE_ORDER).0, "done");
    assert_eq!(r.calls("set_resource_limits", ""), 1);

    // A Terminate whose backend order fails: the Waldur order errs with the backend's reason.
    let terminate = "77777777777777777777777777777712";
    r.h.add_order(
        terminate,
        "Terminate",
        "executing",
        REMOTE_RES,
        serde_json::json!({}),
    );
    assert_eq!(r.orders_cycle().waiting, 1);
    assert!(!r.path("accounts/remote-x").exists());
    assert_eq!(r.order_backend_id(terminate), "terminate-remote-x");
    r.finish_remote_order("terminate-remote-x", "failed: the volume is busy");
    let summary = r.orders_cycle();
    assert_eq!((summary.erred, summary.done), (1, 0), "{summary:?}");
    let (state, message) = r.h.order_state(terminate);
    assert_eq!(state, "erred");
    assert!(
        message.contains("remote order terminate-remote-x failed: the volume is busy"),
        "{message}"
    );
    assert_eq!(r.calls("delete_resource", "remote-x"), 1);
}

#[test]
fn a_backend_that_is_not_ready_skips_the_cycle_and_loses_nothing() {
    let r = Remote::new(&remote_create());
    std::fs::write(r.path("not-ready"), "").unwrap();

    for _ in 0..2 {
        assert_eq!(r.orders_cycle(), OrderSummary::default());
    }
    assert_eq!(r.calls("run_preflight", ""), 2, "once per cycle");
    assert_eq!(r.calls("create_resource_with_id", ""), 0);
    assert_eq!(r.h.order_state(REMOTE_ORDER).0, "executing");
    assert_eq!(r.h.resource(REMOTE_RES).backend_id, "");

    std::fs::remove_file(r.path("not-ready")).unwrap();
    assert_eq!(r.orders_cycle().waiting, 1, "processed once ready");
    assert_eq!(r.calls("create_resource_with_id", "remote-a"), 1);
    assert_eq!(r.calls("run_preflight", ""), 3);
}

#[test]
fn pending_provider_orders_are_accepted_rejected_or_kept_as_the_backend_decides() {
    let (keep, reject, accept) = (
        "77777777777777777777777777777721",
        "77777777777777777777777777777722",
        "77777777777777777777777777777723",
    );
    let orders = format!(
        r#"
resources:
  - {{uuid: 88888888888888888888888888888821, name: r-keep, project: proj, offering: Other Offering, state: Creating}}
  - {{uuid: 88888888888888888888888888888822, name: r-reject, project: proj, offering: Other Offering, state: Creating}}
  - {{uuid: 88888888888888888888888888888823, name: r-accept, project: proj, offering: Other Offering, state: Creating}}
orders:
  - {{uuid: {keep}, type: Create, state: pending-provider, resource: 88888888888888888888888888888821, attributes: {{decision: pending}}}}
  - {{uuid: {reject}, type: Create, state: pending-provider, resource: 88888888888888888888888888888822, attributes: {{decision: reject}}}}
  - {{uuid: {accept}, type: Create, state: pending-provider, resource: 88888888888888888888888888888823, attributes: {{decision: accept}}}}
"#
    );
    let r = Remote::new(&orders);
    let summary = r.orders_cycle();
    // The accepted one is approved and created, then waits for its backend order.
    assert_eq!(
        (
            summary.rejected,
            summary.waiting,
            summary.done,
            summary.erred
        ),
        (1, 2, 0, 0),
        "{summary:?}"
    );
    assert_eq!(r.h.order_state(keep).0, "pending-provider");
    assert_eq!(r.h.order_state(reject).0, "rejected");
    assert_eq!(
        r.h.resource("88888888888888888888888888888822").state,
        "Terminated"
    );
    assert_eq!(r.h.order_state(accept).0, "executing");
    assert_eq!(r.calls("create_resource_with_id", "r-accept"), 1);
    assert_eq!(r.calls("create_resource_with_id", "r-keep"), 0);

    // The kept order is asked again next cycle and still not touched.
    r.orders_cycle();
    assert_eq!(r.calls("evaluate_pending_order", keep), 2);
    assert_eq!(r.calls("evaluate_pending_order", reject), 1);
    assert_eq!(r.h.order_state(keep).0, "pending-provider");
    assert_eq!(
        r.h.sim.count(
            "POST",
            "/api/marketplace-orders/{uuid}/approve_by_provider/"
        ),
        1
    );
}

#[test]
fn restore_orders_recreate_a_missing_account_under_its_old_id_and_leave_an_existing_one() {
    let orders = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Terminated, backend_id: alloc-a, limits: {{cpu: 3}}}}
orders:
  - {{uuid: {CREATE_A}, type: Restore, state: executing, resource: {RES_A}, limits: {{cpu: 3}}}}
"#
    );
    let h = harness(scenario(&orders), "", "");
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Orders(s) => assert_eq!(s.done, 1, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.resource(RES_A).state, "OK");
    // Recreated under the id Waldur knows, with its limits (cpu x unit_factor 60) and team.
    let account = h.account("alloc-a").expect("account recreated");
    assert_eq!(account["limits"]["cpu"], 180);
    assert_eq!(h.account_users("alloc-a"), vec!["alice1"]);
    let set_backend_id = "/api/marketplace-provider-resources/{uuid}/set_backend_id/";
    let ids_set = h.sim.count("POST", set_backend_id);

    // A second Restore finds the account and changes nothing on the backend.
    h.add_order(
        CREATE_B,
        "Restore",
        "executing",
        RES_A,
        serde_json::json!({}),
    );
    let before = h.backend_state()["accounts"]["alloc-a"].clone();
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state(CREATE_B).0, "done");
    assert_eq!(h.backend_state()["accounts"]["alloc-a"], before);
    assert_eq!(h.sim.count("POST", set_backend_id), ids_set);
}
