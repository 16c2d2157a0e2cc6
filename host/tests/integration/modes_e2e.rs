//! The agent's modes end to end: the real mode code, the Waldur simulator over HTTP, and real
//! plugin libraries (the demo backend, the panicking fixture) through the real loader.

use crate::common::*;
use serde_json::json;
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::runtime::Mode;
use waldur_sim::{Fault, Matcher};

#[test]
fn create_update_and_terminate_orders_are_carried_out() {
    let h = harness(
        scenario(&two_create_orders()),
        "        customer_prefix: c_\n        project_prefix: p_\n",
        "",
    );
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Orders(summary) => {
            assert_eq!((summary.done, summary.erred), (2, 0), "{summary:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.order_state(CREATE_B).0, "done");
    let a = h.resource(RES_A);
    assert_eq!((a.state.as_str(), a.backend_id.as_str()), ("OK", "alloc-a"));
    // Hierarchy, limits (Waldur 10 x unit_factor 60) and the team member with an OK account.
    let account = h
        .account("alloc-a")
        .expect("account created on the backend");
    assert_eq!(account["parent"], "p_proj", "{account}");
    assert_eq!(account["limits"]["cpu"], 600, "{account}");
    assert!(account["users"].to_string().contains("alice1"), "{account}");
    assert!(h.account("p_proj").is_some() && h.account("c_cust").is_some());
    assert_eq!(
        h.sim.count(
            "POST",
            "/api/marketplace-orders/{uuid}/approve_by_provider/"
        ),
        1
    );
    assert_eq!(
        h.sim.count(
            "POST",
            "/api/marketplace-provider-resources/{uuid}/set_backend_id/"
        ),
        2
    );

    // Next cycle: an Update of a, a Terminate of b.
    h.add_order(
        "77777777777777777777777777777703",
        "Update",
        "executing",
        RES_A,
        json!({"cpu": 20}),
    );
    h.add_order(
        "77777777777777777777777777777704",
        "Terminate",
        "pending-provider",
        RES_B,
        json!({}),
    );
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state("77777777777777777777777777777703").0, "done");
    assert_eq!(h.account("alloc-a").unwrap()["limits"]["cpu"], 1200);
    assert_eq!(h.order_state("77777777777777777777777777777704").0, "done");
    assert!(h.account("alloc-b").is_none(), "terminated on the backend");
    assert_eq!(h.resource(RES_B).state, "Terminated");

    // Nothing left: a further cycle changes nothing and sends no state transitions.
    let before = h
        .sim
        .count("POST", "/api/marketplace-orders/{uuid}/set_state_done/");
    h.cycle(Mode::OrderProcess);
    assert_eq!(
        h.sim
            .count("POST", "/api/marketplace-orders/{uuid}/set_state_done/"),
        before
    );
}

#[test]
fn orders_over_the_limit_are_rejected_and_failures_err_the_order_only() {
    let orders = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: too-big, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 1000}}}}
  - {{uuid: {RES_B}, name: fine, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 1}}}}
  - {{uuid: 88888888888888888888888888888809, name: other, project: proj, offering: Other Offering, state: Creating, limits: {{cpu: 1}}}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: pending-provider, resource: {RES_A}, limits: {{cpu: 1000}}}}
  - {{uuid: {CREATE_B}, type: Create, state: pending-provider, resource: {RES_B}, limits: {{cpu: 1}}}}
  - {{uuid: 77777777777777777777777777777709, type: Create, state: pending-provider, resource: 88888888888888888888888888888809, limits: {{cpu: 1}}}}
"#
    );
    // The second offering's plugin panics while creating; the demo offering must not care.
    let other = format!(
        r#"  - name: Other Offering
    waldur_api_url: SIMURL
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OTHER_OFFERING}
    backend_type: panicky
    order_processing_backend: panicky
    backend_settings: {{panic_in: create}}
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU}}
"#
    );
    let h = harness(
        scenario(&orders),
        "        max_limits: {cpu: 100}\n        fail_methods: [client_set_resource_limits]\n",
        &other,
    );
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Orders(s) => assert_eq!((s.rejected, s.erred, s.done), (1, 1, 0), "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.order_state(CREATE_A).0, "rejected");
    // A backend error is shown to users even without expose_backend_error_details.
    let (state, message) = h.order_state(CREATE_B);
    assert_eq!(state, "erred");
    assert!(
        message.contains("demo: injected failure in client_set_resource_limits"),
        "{message}"
    );
    // The panicking plugin errs its own order with the generic message, nothing more.
    let (state, message) = h.order_state("77777777777777777777777777777709");
    assert_eq!(state, "erred");
    assert_eq!(
        message,
        "Internal backend error. Please contact the service provider."
    );
    match outcome(&report, "Other Offering") {
        OfferingOutcome::Orders(s) => assert_eq!(s.erred, 1, "{s:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn waldur_failures_are_retried_and_nothing_is_done_twice() {
    let h = harness(scenario(&two_create_orders()), "", "");
    // set_state_done fails more often than the client retries: the order-level retry re-reads
    // the order, finds the resource already created, and only then marks it done.
    h.sim.inject(Fault::status(
        Matcher::endpoint("POST", "/api/marketplace-orders/{uuid}/set_state_done/"),
        500,
        4,
    ));
    h.sim.inject(Fault::drop_connection(
        Matcher::endpoint(
            "POST",
            "/api/marketplace-provider-resources/{uuid}/set_backend_id/",
        ),
        1,
    ));
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.order_state(CREATE_B).0, "done");
    let state = h.backend_state();
    let allocations: Vec<&String> = state["accounts"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.starts_with("alloc-"))
        .collect();
    assert_eq!(
        allocations,
        ["alloc-a", "alloc-b"],
        "one account per resource: {state}"
    );
    assert_eq!(h.resource(RES_A).backend_id, "alloc-a");

    // Waldur down for a whole cycle: the cycle reports the failure, nothing changes.
    h.add_order(
        "77777777777777777777777777777705",
        "Update",
        "executing",
        RES_A,
        json!({"cpu": 30}),
    );
    h.sim
        .inject(Fault::status(Matcher::prefix(None, "/api/"), 500, 1000));
    let report = h.cycle(Mode::OrderProcess);
    assert!(
        matches!(
            outcome(&report, "Demo Offering"),
            OfferingOutcome::Failed(_)
        ),
        "{report:?}"
    );
    assert_eq!(
        h.order_state("77777777777777777777777777777705").0,
        "executing"
    );
    h.sim.clear_faults();
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state("77777777777777777777777777777705").0, "done");
    assert_eq!(h.account("alloc-a").unwrap()["limits"]["cpu"], 1800);
}

#[test]
fn usage_is_reported_once_per_period_and_never_decreases() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let (this, previous) = months();
    h.usage_file(
        &this,
        "alloc-a",
        json!({"alice1": {"cpu": 600, "mem": 3, "gpu": 9}, "bob1": {"cpu": 121}}),
    );
    h.usage_file(&previous, "alloc-a", json!({"alice1": {"cpu": 60}}));

    let report = h.cycle(Mode::Report);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Usage(s) => {
            assert_eq!((s.resources, s.failed, s.anomalies), (2, 0, 0), "{s:?}")
        }
        other => panic!("{other:?}"),
    }
    let rows = h.reported(RES_A);
    // cpu: (600 + 121) minutes / unit_factor 60, each user rounded, total = sum of rounded;
    // the unconfigured gpu is not reported.
    assert!(
        rows.contains(&(format!("{previous}-01"), "cpu".into(), "1.00".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&(format!("{this}-01"), "cpu".into(), "12.02".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&(format!("{this}-01"), "mem".into(), "3.00".into())),
        "{rows:?}"
    );
    assert!(rows.iter().all(|(_, kind, _)| kind != "gpu"), "{rows:?}");
    assert_eq!(
        h.reported_users(RES_A, "cpu", &this),
        [
            ("alice1".into(), "10.00".into()),
            ("bob1".into(), "2.02".into())
        ]
    );
    // alloc-b has no usage file: zero usage is reported for it.
    assert!(h
        .reported(RES_B)
        .iter()
        .all(|(_, _, usage)| usage == "0.00"));

    // Unchanged usage: nothing is sent again.
    let set_usage = "/api/marketplace-component-usages/set_usage/";
    let user_usages = "/api/marketplace-component-usages/{uuid}/set_user_usages/";
    let (totals, users) = (
        h.sim.count("POST", set_usage),
        h.sim.count("POST", user_usages),
    );
    let report = h.cycle(Mode::Report);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Usage(s) => assert_eq!(s.totals_sent, 0, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.sim.count("POST", set_usage), totals);
    assert_eq!(h.sim.count("POST", user_usages), users);

    // Less than before: refused, Waldur keeps what it had.
    h.usage_file(&this, "alloc-a", json!({"alice1": {"cpu": 60, "mem": 3}}));
    let report = h.cycle(Mode::Report);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Usage(s) => assert_eq!(s.anomalies, 1, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert!(h
        .reported(RES_A)
        .contains(&(format!("{this}-01"), "cpu".into(), "12.02".into())));
    assert_eq!(h.sim.count("POST", set_usage), totals);
}

#[test]
fn membership_follows_the_team_and_the_resource_flags() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.cycle(Mode::OrderProcess);
    let users = |account: &str| -> Vec<String> {
        let mut names: Vec<String> = h.account(account).unwrap()["users"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    };
    assert_eq!(users("alloc-a"), ["alice1"]);

    // Bob joins the project, alice leaves; resource a is paused.
    h.sim.with_store_mut(|store| {
        store
            .team
            .retain(|m| m.user_uuid != "44444444444444444444444444444401");
        store.team.push(waldur_sim::store::TeamMember {
            project_uuid: "99999999999999999999999999999999".into(),
            user_uuid: "44444444444444444444444444444402".into(),
            role: "PROJECT.MEMBER".into(),
        });
        store.resources.get_mut(RES_A).unwrap().paused = true;
    });
    let report = h.cycle(Mode::MembershipSync);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Membership(s) => {
            assert_eq!(
                (s.resources, s.users_added, s.users_removed, s.failed),
                (2, 2, 2, 0),
                "{s:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(users("alloc-a"), ["bob1"]);
    assert_eq!(users("alloc-b"), ["bob1"]);
    assert_eq!(h.account("alloc-a").unwrap()["qos"], "paused");
    assert_eq!(h.resource(RES_A).backend_metadata["qos"], "paused");
    assert!(h.resource(RES_A).last_sync.is_some());

    // Unpaused and restricted: the backend follows, and nobody keeps access to b.
    h.sim.with_store_mut(|store| {
        store.resources.get_mut(RES_A).unwrap().paused = false;
        store
            .resources
            .get_mut(RES_B)
            .unwrap()
            .restrict_member_access = true;
    });
    h.cycle(Mode::MembershipSync);
    assert_eq!(h.account("alloc-a").unwrap()["qos"], "normal");
    assert!(users("alloc-b").is_empty());
    assert_eq!(users("alloc-a"), ["bob1"]);
}
