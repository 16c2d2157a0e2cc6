//! More of the agent's modes end to end (see `modes_e2e` for the basics): the offering-user
//! username state machine, duplicate backend ids, orders the agent must leave alone, Waldur
//! timeouts and malformed answers, per-user and backend-truth limits in membership sync, and
//! a single reporting period.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::runtime::Mode;
use waldur_sim::{Fault, Matcher};

const CAROL: &str = "44444444444444444444444444444403";
const ORDERS_LIST: &str = "/api/marketplace-orders/";
const SET_DONE: &str = "/api/marketplace-orders/{uuid}/set_state_done/";
const OU_PATCH: &str = "/api/marketplace-offering-users/{uuid}/";
const OU_BEGIN: &str = "/api/marketplace-offering-users/{uuid}/begin_creating/";
const OU_VALIDATION: &str =
    "/api/marketplace-offering-users/{uuid}/set_pending_additional_validation/";
const SET_LIMITS: &str = "/api/marketplace-provider-resources/{uuid}/set_limits/";

fn orders_summary(report: &waldur_agent::modes::cycle::CycleReport) -> (usize, usize, usize) {
    match outcome(report, "Demo Offering") {
        OfferingOutcome::Orders(s) => (s.done, s.erred, s.waiting),
        other => panic!("{other:?}"),
    }
}

/// One Create order for `RES_A` (`alloc-a`) in `state`.
fn one_create_order(state: &str) -> String {
    format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: {state}, resource: {RES_A}, limits: {{cpu: 10}}}}
"#
    )
}

// ------------------------------------------------------------------------------------------
// 1. Usernames

/// Alice (a usable name) and Carol (a single name: no last name for the default template)
/// are on the team with offering users in `Requested` and no username; the offering lets the
/// service provider create offering users.
fn username_scenario() -> waldur_sim::Scenario {
    let users = r#"offering_users:
  - {offering: Demo Offering, user: alice@idp, state: Requested}
  - {offering: Demo Offering, user: carol@idp, state: Requested}
  - {offering: Demo Offering, user: bob@idp, username: bob1, state: OK}
"#;
    let mut scenario = scenario_with(
        "{username_generation_policy: service_provider, service_provider_can_create_offering_user: true}",
        users,
        &one_create_order("pending-provider"),
    );
    scenario.users.push(waldur_sim::scenario::UserSpec {
        uuid: Some(CAROL.into()),
        username: "carol@idp".into(),
        full_name: "Cher".into(),
        email: "cher@example.org".into(),
    });
    scenario.team.push(waldur_sim::scenario::TeamMemberSpec {
        project: "proj".into(),
        user: "carol@idp".into(),
        role: Some("PROJECT.MEMBER".into()),
    });
    scenario
}

fn offering_user(h: &Harness, user: &str) -> waldur_sim::store::OfferingUser {
    h.sim.with_store(|store| {
        store
            .offering_users
            .values()
            .find(|ou| ou.offering_uuid == OFFERING && ou.user_uuid == user)
            .cloned()
            .expect("offering user exists")
    })
}

#[test]
fn order_post_processing_generates_usernames_and_adds_the_new_users() {
    let h = harness_with(
        username_scenario(),
        Options {
            offering: "    username_management_backend: template",
            ..Options::default()
        },
    );
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (1, 0, 0), "{report:?}");
    assert_eq!(h.order_state(CREATE_A).0, "done");

    // Alice: begin_creating, then the PATCH of the generated name moved her to OK.
    let alice = offering_user(&h, ALICE);
    assert_eq!(
        (alice.state.as_str(), alice.username.as_deref()),
        ("OK", Some("asmith"))
    );
    // Carol: begin_creating, then no username can be generated: she waits for validation,
    // with the username backend's explanation stored in Waldur.
    let carol = offering_user(&h, CAROL);
    assert_eq!(carol.state, "Pending additional validation");
    assert_eq!(carol.username, None);
    assert!(
        carol.comment.contains("cannot be generated automatically"),
        "{}",
        carol.comment
    );
    assert_eq!(h.sim.count("POST", OU_BEGIN), 2);
    assert_eq!(h.sim.count("PATCH", OU_PATCH), 1);
    assert_eq!(h.sim.count("POST", OU_VALIDATION), 1);
    // Only the user who got a name is on the new account (bob is not on the team).
    assert_eq!(h.account_users("alloc-a"), ["asmith"]);

    // Membership later: nothing moves again, nobody is added twice.
    let report = h.cycle(Mode::MembershipSync);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Membership(s) => assert_eq!(s.failed, 0, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.sim.count("POST", OU_BEGIN), 2);
    assert_eq!(h.sim.count("PATCH", OU_PATCH), 1);
    assert_eq!(h.sim.count("POST", OU_VALIDATION), 1);
    assert_eq!(
        offering_user(&h, CAROL).state,
        "Pending additional validation"
    );

    // Carol fixes her profile: the next cycle completes the validation and sets the name.
    h.sim.with_store_mut(|store| {
        store.users.get_mut(CAROL).unwrap().full_name = "Carol Cher".into();
    });
    h.cycle(Mode::MembershipSync);
    let carol = offering_user(&h, CAROL);
    assert_eq!(
        (carol.state.as_str(), carol.username.as_deref()),
        ("OK", Some("ccher"))
    );
    assert_eq!(h.account_users("alloc-a"), ["asmith", "ccher"]);
}

#[test]
fn the_base_username_backend_never_sets_a_username() {
    // `base` is the default username_management_backend.
    let h = harness(username_scenario(), "", "");
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (1, 0, 0), "{report:?}");
    for user in [ALICE, CAROL] {
        let ou = offering_user(&h, user);
        assert_eq!((ou.state.as_str(), ou.username), ("Creating", None));
    }
    assert_eq!(h.sim.count("POST", OU_BEGIN), 2);
    assert_eq!(h.sim.count("PATCH", OU_PATCH), 0);
    assert_eq!(h.sim.count("POST", OU_VALIDATION), 0);
    assert!(h.account_users("alloc-a").is_empty());

    // A later cycle leaves users in Creating alone.
    h.cycle(Mode::MembershipSync);
    assert_eq!(h.sim.count("POST", OU_BEGIN), 2);
    assert_eq!(offering_user(&h, ALICE).state, "Creating");
}

// ------------------------------------------------------------------------------------------
// 2. Duplicate backend ids

const RES_C: &str = "88888888888888888888888888888803";
const CREATE_C: &str = "77777777777777777777777777777703";

/// Three resources all with the slug `shared`: a and c in `proj`, b in `proj2`.
fn same_slug_orders() -> waldur_sim::Scenario {
    let rest = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: shared, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 1}}}}
  - {{uuid: {RES_B}, name: shared, project: proj2, offering: Demo Offering, state: Creating, limits: {{cpu: 2}}}}
  - {{uuid: {RES_C}, name: shared, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 3}}}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: executing, resource: {RES_A}, limits: {{cpu: 1}}}}
  - {{uuid: {CREATE_B}, type: Create, state: executing, resource: {RES_B}, limits: {{cpu: 2}}}}
  - {{uuid: {CREATE_C}, type: Create, state: executing, resource: {RES_C}, limits: {{cpu: 3}}}}
"#
    );
    let mut scenario = scenario_with("{}", DEFAULT_OFFERING_USERS, &rest);
    scenario.projects.push(waldur_sim::scenario::ProjectSpec {
        uuid: Some("99999999999999999999999999999998".into()),
        name: "Project 2".into(),
        slug: Some("proj2".into()),
        customer: "cust".into(),
        ..Default::default()
    });
    scenario
}

#[test]
fn duplicate_backend_ids_get_the_project_suffix_when_uniqueness_is_checked() {
    let h = harness(
        same_slug_orders(),
        "        check_backend_id_uniqueness: true\n",
        "",
    );
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (3, 0, 0), "{report:?}");
    // Orders of different resources run concurrently, so which one gets the bare `shared`
    // depends on timing; the contract is that every id is unique and a taken id is retried as
    // `<its own project slug>-<n>`.
    let mut ids = Vec::new();
    for (resource, project) in [(RES_A, "proj"), (RES_B, "proj2"), (RES_C, "proj")] {
        let r = h.resource(resource);
        assert_eq!(r.state, "OK");
        assert!(
            r.backend_id == "shared" || r.backend_id.starts_with(&format!("{project}-")),
            "{resource}: {}",
            r.backend_id
        );
        let account = h.account(&r.backend_id).expect("account on the backend");
        assert_eq!(account["parent"], project, "{account}");
        // Each account got its own resource's limits (cpu x 60).
        let cpu = r.limits["cpu"].as_f64().unwrap() as i64 * 60;
        assert_eq!(account["limits"]["cpu"], cpu, "{account}");
        ids.push(r.backend_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "unique backend ids: {ids:?}");
    assert!(ids.contains(&"shared".to_string()), "{ids:?}");
}

#[test]
fn duplicate_backend_ids_err_the_order_without_the_uniqueness_check() {
    let h = harness(same_slug_orders(), "", "");
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (1, 2, 0), "{report:?}");
    let created: Vec<_> = [RES_A, RES_B, RES_C]
        .into_iter()
        .filter(|r| h.resource(r).backend_id == "shared")
        .collect();
    assert_eq!(created.len(), 1, "exactly one resource owns `shared`");
    let owner = h.resource(created[0]);
    let cpu = owner.limits["cpu"].as_f64().unwrap() as i64 * 60;
    // The existing account is untouched by the failed creations.
    assert_eq!(h.account("shared").unwrap()["limits"]["cpu"], cpu);
    for (order, resource) in [(CREATE_A, RES_A), (CREATE_B, RES_B), (CREATE_C, RES_C)] {
        if resource == created[0] {
            continue;
        }
        let (state, message) = h.order_state(order);
        assert_eq!(state, "erred");
        // A backend-level message users may see, naming the duplicate.
        assert!(
            message.contains("shared") && message.contains("exists"),
            "{message}"
        );
        assert_eq!(h.resource(resource).backend_id, "");
    }
    assert!(h.account("proj-1").is_none() && h.account("proj2-1").is_none());
}

// ------------------------------------------------------------------------------------------
// 3. Orders the agent must leave alone, and failing evaluations

#[test]
fn finished_orders_are_left_alone_and_failed_evaluations_stay_pending() {
    let rest = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 1}}}}
  - {{uuid: {RES_B}, name: alloc-b, project: proj, offering: Demo Offering, state: Erred, limits: {{cpu: 1}}}}
  - {{uuid: {RES_C}, name: alloc-c, project: proj, offering: Demo Offering, state: OK, limits: {{cpu: 1}}, backend_id: alloc-c}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: pending-provider, resource: {RES_A}, limits: {{cpu: 1}}}}
  - {{uuid: {CREATE_B}, type: Create, state: erred, resource: {RES_B}, limits: {{cpu: 1}}}}
  - {{uuid: {CREATE_C}, type: Create, state: done, resource: {RES_C}, limits: {{cpu: 1}}}}
"#
    );
    let failing = "        fail_methods: [evaluate_pending_order]\n";
    let mut h = harness(
        scenario_with("{}", DEFAULT_OFFERING_USERS, &rest),
        failing,
        "",
    );
    h.sim.with_store_mut(|store| {
        store.orders.get_mut(CREATE_B).unwrap().error_message = "earlier failure".into();
    });
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (0, 0, 1), "{report:?}");
    // Never erred before provisioning started: still pending, nothing approved.
    assert_eq!(
        h.order_state(CREATE_A),
        ("pending-provider".into(), "".into())
    );
    assert_eq!(
        h.order_state(CREATE_B),
        ("erred".into(), "earlier failure".into())
    );
    assert_eq!(h.order_state(CREATE_C).0, "done");
    for action in [
        "approve_by_provider",
        "reject_by_provider",
        "set_state_done",
        "set_state_erred",
    ] {
        let template = format!("/api/marketplace-orders/{{uuid}}/{action}/");
        assert_eq!(h.sim.count("POST", &template), 0, "{action}");
    }
    assert!(h.backend_state()["accounts"]
        .as_object()
        .is_none_or(|a| a.is_empty()));
    assert_eq!(h.resource(RES_B).state, "Erred");

    // The same again: a failing evaluation is retried every cycle, never erred.
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.order_state(CREATE_A).0, "pending-provider");

    // The operator removes the failure and restarts the agent: the order goes through.
    h.restart_agent(Options::default());
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (1, 0, 0), "{report:?}");
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.resource(RES_A).backend_id, "alloc-a");
    assert_eq!(
        h.order_state(CREATE_B),
        ("erred".into(), "earlier failure".into())
    );
    assert!(h.account("alloc-b").is_none() && h.account("alloc-c").is_none());
    assert_eq!(
        h.sim.count(
            "POST",
            "/api/marketplace-orders/{uuid}/approve_by_provider/"
        ),
        1
    );
}

// ------------------------------------------------------------------------------------------
// 4. Waldur timeouts

#[test]
fn waldur_timeouts_leave_orders_untouched_and_are_retried() {
    let h = harness_with(
        scenario(&two_create_orders()),
        Options {
            waldur_timeout: Some(Duration::from_millis(300)),
            ..Options::default()
        },
    );
    // The order list never answers in time: the offering fails this cycle, one line naming
    // the request, and no order is touched.
    h.sim.inject(Fault::latency(
        Matcher::endpoint("GET", ORDERS_LIST),
        Duration::from_millis(1500),
    ));
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Failed(e) => {
            let message = e.to_string();
            assert!(
                message.contains("GET /api/marketplace-orders/")
                    && message.contains("no complete response within 0.3s")
                    && !message.contains('\n'),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.order_state(CREATE_A).0, "pending-provider");
    assert_eq!(h.order_state(CREATE_B).0, "executing");
    assert!(h.account("alloc-a").is_none() && h.account("alloc-b").is_none());

    // The list answers again; set_state_done times out once, and the client's retry marks it.
    h.sim.clear_faults();
    let mut slow_done = Fault::latency(
        Matcher::endpoint("POST", SET_DONE),
        Duration::from_millis(1000),
    );
    slow_done.count = Some(1);
    h.sim.inject(slow_done);
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (2, 0, 0), "{report:?}");
    for (order, resource, account) in [(CREATE_A, RES_A, "alloc-a"), (CREATE_B, RES_B, "alloc-b")] {
        assert_eq!(h.order_state(order), ("done".into(), "".into()));
        assert_eq!(h.resource(resource).backend_id, account);
        assert!(h.account(account).is_some());
    }
    // Nothing doubled: one backend id per resource, one account each.
    assert_eq!(
        h.sim.count(
            "POST",
            "/api/marketplace-provider-resources/{uuid}/set_backend_id/"
        ),
        2
    );
    let accounts = h.backend_state()["accounts"].as_object().unwrap().len();
    assert_eq!(accounts, 4, "customer, project and two allocations");
}

// ------------------------------------------------------------------------------------------
// 5. Malformed Waldur bodies

#[test]
fn a_malformed_order_list_fails_the_offering_for_one_cycle_only() {
    let h = harness(scenario(&one_create_order("executing")), "", "");
    h.sim
        .inject(Fault::malformed(Matcher::endpoint("GET", ORDERS_LIST), 1));
    let report = h.cycle(Mode::OrderProcess);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Failed(e) => {
            let message = e.to_string();
            assert!(
                message.contains("GET /api/marketplace-orders/") && !message.contains('\n'),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.order_state(CREATE_A).0, "executing");
    assert!(h.account("alloc-a").is_none());

    h.sim.clear_faults();
    let report = h.cycle(Mode::OrderProcess);
    assert_eq!(orders_summary(&report), (1, 0, 0), "{report:?}");
    assert_eq!(h.order_state(CREATE_A).0, "done");
    assert_eq!(h.resource(RES_A).backend_id, "alloc-a");
}

// ------------------------------------------------------------------------------------------
// 6. Membership: per-user limits and backend-truth limits

#[test]
fn membership_applies_per_user_limits_and_reports_backend_limits() {
    let rest = format!(
        r#"{}
component_user_usage_limits:
  - {{resource: {RES_A}, component_type: cpu, user: alice1, limit: 5}}
  - {{resource: {RES_A}, component_type: cpu, user: bob1, limit: 7}}
"#,
        one_create_order("executing")
    );
    let h = harness(scenario_with("{}", DEFAULT_OFFERING_USERS, &rest), "", "");
    h.cycle(Mode::OrderProcess);
    assert_eq!(h.account_users("alloc-a"), ["alice1"]);
    let creation_limits = h.sim.count("POST", SET_LIMITS);

    let report = h.cycle(Mode::MembershipSync);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Membership(s) => assert_eq!((s.resources, s.failed), (1, 0), "{s:?}"),
        other => panic!("{other:?}"),
    }
    // Per-user limits go to the backend as Waldur gives them: the agent passes them through
    // unconverted (reference `set_resource_user_limits` -> client), and the demo's client
    // stores them as given. (Its README calls state.json limits "backend units"; for per-user
    // limits that is not so: 5 here, not 5 x unit_factor 60.) Bob is not a member, so his
    // limit is not applied.
    let account = h.account("alloc-a").unwrap();
    assert_eq!(
        account["user_limits"],
        json!({"alice1": {"cpu": 5}}),
        "{account}"
    );
    // Backend limits (600 minutes = 10 hours) agree with Waldur's: nothing sent.
    assert_eq!(h.sim.count("POST", SET_LIMITS), creation_limits);

    // Stable: another cycle changes nothing.
    h.cycle(Mode::MembershipSync);
    assert_eq!(
        h.account("alloc-a").unwrap()["user_limits"],
        json!({"alice1": {"cpu": 5}})
    );

    // The limit goes away in Waldur, and Waldur's resource limits drift from the backend's.
    h.sim.with_store_mut(|store| {
        store
            .component_user_usage_limits
            .retain(|_, l| l.user != "alice1");
        store
            .resources
            .get_mut(RES_A)
            .unwrap()
            .limits
            .insert("cpu".into(), json!(12));
    });
    h.cycle(Mode::MembershipSync);
    let account = h.account("alloc-a").unwrap();
    assert!(
        account["user_limits"]
            .as_object()
            .is_none_or(|l| l.is_empty()),
        "{account}"
    );
    // The backend is the truth: Waldur is told 10 once, and the backend keeps 600 minutes.
    assert_eq!(h.sim.count("POST", SET_LIMITS), creation_limits + 1);
    assert_eq!(h.resource(RES_A).limits["cpu"].as_f64(), Some(10.0));
    assert_eq!(account["limits"]["cpu"], 600);
    h.cycle(Mode::MembershipSync);
    assert_eq!(h.sim.count("POST", SET_LIMITS), creation_limits + 1);
}

// ------------------------------------------------------------------------------------------
// 7. Report: one period, missing resources

#[test]
fn one_reporting_period_sends_only_the_current_month_and_skips_missing_resources() {
    let rest = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
  - {{uuid: {RES_B}, name: alloc-b, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 5}}}}
  - {{uuid: {RES_C}, name: ghost, project: proj, offering: Demo Offering, state: OK, backend_id: ghost}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: executing, resource: {RES_A}, limits: {{cpu: 10}}}}
  - {{uuid: {CREATE_B}, type: Create, state: executing, resource: {RES_B}, limits: {{cpu: 5}}}}
"#
    );
    let h = harness_with(
        scenario_with("{}", DEFAULT_OFFERING_USERS, &rest),
        Options {
            global: "reporting_periods: 1",
            ..Options::default()
        },
    );
    h.cycle(Mode::OrderProcess);
    let (this, previous) = months();
    h.usage_file(&this, "alloc-a", json!({"alice1": {"cpu": 120, "mem": 2}}));
    h.usage_file(&previous, "alloc-a", json!({"alice1": {"cpu": 60}}));

    let report = h.cycle(Mode::Report);
    assert_eq!(report_counts(&report, "Demo Offering"), (3, 1, 0, 2));
    let rows = h.reported(RES_A);
    assert!(
        rows.iter()
            .all(|(period, _, _)| *period == format!("{this}-01")),
        "{rows:?}"
    );
    assert!(
        rows.contains(&(format!("{this}-01"), "cpu".into(), "2.00".into())),
        "{rows:?}"
    );
    assert!(h
        .reported(RES_B)
        .iter()
        .all(|(p, _, _)| *p == format!("{this}-01")));
    // Nothing at all for the resource the backend does not have.
    assert!(h.reported(RES_C).is_empty());
    let sent_for_ghost = h.sim.requests().iter().any(|r| {
        r.path == "/api/marketplace-component-usages/set_usage/"
            && r.request_body.as_deref().unwrap_or("").contains(RES_C)
    });
    assert!(!sent_for_ghost);
}

#[test]
fn a_failing_batched_pull_falls_back_to_pulling_resource_by_resource() {
    // The demo batches pulls (`pull_resources`); here that call fails, so report and
    // membership_sync must pull each resource on its own and still do all their work,
    // including the previous period's usage, which then is also read per resource.
    let h = harness(
        scenario(&two_create_orders()),
        "        fail_methods: [pull_resources]\n",
        "",
    );
    h.cycle(Mode::OrderProcess);
    let (this, previous) = months();
    h.usage_file(&this, "alloc-a", json!({"alice1": {"cpu": 120, "mem": 2}}));
    h.usage_file(&previous, "alloc-a", json!({"alice1": {"cpu": 60}}));

    let report = h.cycle(Mode::Report);
    assert_eq!(report_counts(&report, "Demo Offering"), (2, 0, 0, 3));
    let rows = h.reported(RES_A);
    assert!(
        rows.contains(&(format!("{this}-01"), "cpu".into(), "2.00".into())),
        "{rows:?}"
    );
    assert!(
        rows.contains(&(format!("{previous}-01"), "cpu".into(), "1.00".into())),
        "{rows:?}"
    );

    let membership = h.cycle(Mode::MembershipSync);
    match outcome(&membership, "Demo Offering") {
        OfferingOutcome::Membership(s) => assert_eq!((s.missing, s.failed), (0, 0), "{s:?}"),
        other => panic!("{other:?}"),
    }
    let refreshed = "/api/marketplace-provider-resources/{uuid}/refresh_last_sync/";
    assert_eq!(h.sim.count("POST", refreshed), 2);
}
