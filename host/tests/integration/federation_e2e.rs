//! The Waldur federation plugin (`plugins/waldur`) end to end: the agent serves a SOURCE
//! simulator's offering with the real plugin loaded through the real loader, and the plugin
//! orders on a TARGET simulator as a consumer. Orders flow source -> target -> source, usage
//! target -> source through the component factors, members source -> target with mapped roles.

use serde_json::{json, Value};
use waldur_agent::modes::runtime::Mode;
use waldur_sim::faults::{Fault, FaultKind, Matcher};
use waldur_sim::{Scenario, Simulator};

use crate::common::*;

pub const TARGET_TOKEN: &str = "target-token";
pub const TARGET_OFFERING: &str = "0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e01";
pub const TARGET_CUSTOMER: &str = "b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5";
const TARGET_PLAN: &str = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
const ORDERS: &str = "/api/marketplace-orders/";

/// The target Waldur: a customer, an offering with `node_hours` (limit) and `mem` (usage), a
/// plan, and alice and bob as users (matched by email with `user_field`).
pub fn target_scenario() -> Scenario {
    Scenario::from_yaml_str(&format!(
        r#"
tokens: ["{TARGET_TOKEN}"]
customers:
  - {{uuid: {TARGET_CUSTOMER}, name: Site B, slug: site-b}}
users:
  - {{uuid: c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1, username: alice-b, full_name: Alice Smith, email: alice@example.org}}
offerings:
  - uuid: {TARGET_OFFERING}
    name: HPC
    customer: site-b
    components:
      - {{type: node_hours, name: Node hours, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
      - {{type: mem, name: RAM, measured_unit: GB-Hours, billing_type: usage, unit_factor: 1}}
plans:
  - {{uuid: {TARGET_PLAN}, name: Default, offering: HPC}}
"#
    ))
    .expect("valid target scenario")
}

/// The source offering's config: the federation plugin in every mode; `settings` are extra
/// `backend_settings` lines (8 spaces), `global` top-level lines, `offering` offering lines
/// (4 spaces).
pub fn federation_config(
    source: &Simulator,
    target: &Simulator,
    settings: &str,
    global: &str,
    offering: &str,
) -> String {
    format!(
        r#"
timezone: UTC
{global}
offerings:
  - name: Demo Offering
    waldur_api_url: {source}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    backend_type: waldur
    order_processing_backend: waldur
    reporting_backend: waldur
    membership_sync_backend: waldur
{offering}
    backend_settings:
        target_api_url: {target}
        target_api_token: {TARGET_TOKEN}
        target_offering_uuid: {TARGET_OFFERING}
        target_customer_uuid: {TARGET_CUSTOMER}
        identity_bridge_source: isd:site-a
        role_mapping: {{PROJECT.ADMIN: PROJECT.MANAGER}}
{settings}
    backend_components:
      cpu:
        measured_unit: Hours
        accounting_type: limit
        label: CPU
        target_components: {{node_hours: {{factor: 2}}}}
      mem: {{measured_unit: GB-Hours, accounting_type: usage, label: RAM}}
"#,
        source = source.url(),
        target = target.url(),
    )
}

/// The source (a [`Harness`] running the federation plugin) and the target simulator.
pub struct Federated {
    pub source: Harness,
    pub target: Simulator,
}

impl Federated {
    pub fn new(source: Scenario, settings: &str) -> Self {
        Self::with_global(source, settings, "")
    }

    pub fn with_global(source: Scenario, settings: &str, global: &str) -> Self {
        Self::configured(source, target_scenario(), settings, global, "")
    }

    /// Every part chosen: the two scenarios and the config's extra lines (as
    /// [`federation_config`] takes them).
    pub fn configured(
        source: Scenario,
        target: Scenario,
        settings: &str,
        global: &str,
        offering: &str,
    ) -> Self {
        let target = Simulator::start(target).expect("start the target simulator");
        let source = harness_configured(
            source,
            &[("waldur-plugin-waldur", "waldur.so")],
            |sim, plugins, _| {
                agent_with_config(
                    &federation_config(sim, &target, settings, global, offering),
                    plugins,
                )
            },
        );
        Self { source, target }
    }

    fn cycle(&self, mode: Mode) -> waldur_agent::modes::cycle::CycleReport {
        self.source.cycle(mode)
    }

    /// The target's orders of a type, oldest first.
    pub fn target_orders(&self, kind: &str) -> Vec<waldur_sim::store::Order> {
        let mut orders: Vec<_> = self.target.with_store(|s| {
            s.orders
                .values()
                .filter(|o| o.type_ == kind)
                .cloned()
                .collect()
        });
        orders.sort_by(|a, b| a.created.cmp(&b.created));
        orders
    }

    /// The only order of a type on the target.
    pub fn target_order(&self, kind: &str) -> waldur_sim::store::Order {
        let orders = self.target_orders(kind);
        assert_eq!(orders.len(), 1, "{kind} orders on the target: {orders:?}");
        orders.into_iter().next().unwrap()
    }

    /// What the target's own site would do: the order ends in `state`.
    pub fn finish(&self, order: &str, state: &str, error: &str) {
        self.target.finish_order(order, state, error).unwrap();
    }

    /// A usage on the target (`username` set: a per-user usage).
    pub fn target_usage(
        &self,
        resource: &str,
        component: &str,
        usage: f64,
        period: &str,
        username: Option<&str>,
    ) {
        let seed = waldur_sim::routes::usages::UsageSeed {
            resource_uuid: resource.into(),
            type_: component.into(),
            usage: json!(usage),
            billing_period: format!("{period}-01"),
            username: username.map(str::to_string),
        };
        self.target.add_usage(&seed).unwrap();
    }

    /// The source Create order through to done; answers the target resource uuid (hex).
    pub fn created(&self, order: &str) -> String {
        self.cycle(Mode::OrderProcess);
        let target_order = self.target_order("Create");
        self.finish(&target_order.uuid, "done", "");
        self.cycle(Mode::OrderProcess);
        assert_eq!(self.source.order_state(order).0, "done");
        target_order.resource_uuid
    }
}

/// One Create order for `alloc-a` (cpu 10) in the source, executing.
fn one_create() -> Scenario {
    scenario(&format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: executing, resource: {RES_A}, limits: {{cpu: 10}}}}
"#
    ))
}

const UPDATE: &str = "77777777777777777777777777777721";
const TERMINATE: &str = "77777777777777777777777777777731";

#[test]
fn create_update_and_terminate_flow_to_the_target_and_back() {
    let f = Federated::new(one_create(), "");
    f.cycle(Mode::OrderProcess);

    // Create: a target project for the source project, a Create order with mapped limits.
    let projects = f
        .target
        .with_store(|s| s.projects.values().cloned().collect::<Vec<_>>());
    assert_eq!(projects.len(), 1, "{projects:?}");
    let project = serde_json::to_value(&projects[0]).unwrap();
    assert_eq!(
        project["backend_id"],
        "55555555-5555-5555-5555-555555555555_99999999-9999-9999-9999-999999999999"
    );
    let create = f.target_order("Create");
    assert_eq!(
        create.limits,
        json!({"node_hours": 20}).as_object().cloned().unwrap()
    );
    assert_eq!(create.attributes["name"], "alloc-a");
    assert_eq!(create.plan_uuid.as_deref(), Some(TARGET_PLAN));
    // The source order waits on it, the source resource names the target resource.
    let order = f.source.sim.order(CREATE_A).unwrap();
    assert_eq!(order.state, "executing");
    assert_eq!(order.backend_id.replace('-', ""), create.uuid);
    assert_eq!(
        f.source.resource(RES_A).backend_id.replace('-', ""),
        create.resource_uuid
    );

    // Still pending on the target: nothing changes, nothing is ordered again.
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "executing");
    assert_eq!(f.target_orders("Create").len(), 1);

    f.finish(&create.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "done");
    let target_resource = create.resource_uuid.clone();
    assert_eq!(f.target.resource(&target_resource).unwrap().state, "OK");

    // Update: limits mapped through the factor, followed until the target is done.
    f.source
        .add_order(UPDATE, "Update", "executing", RES_A, json!({"cpu": 15}));
    f.cycle(Mode::OrderProcess);
    let update = f.target_order("Update");
    assert_eq!(
        update.limits,
        json!({"node_hours": 30}).as_object().cloned().unwrap()
    );
    assert_eq!(f.source.order_state(UPDATE).0, "executing");
    f.finish(&update.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(UPDATE).0, "done");
    assert_eq!(
        f.target.resource(&target_resource).unwrap().limits["node_hours"],
        json!(30)
    );

    // Terminate.
    f.source
        .add_order(TERMINATE, "Terminate", "executing", RES_A, json!({}));
    f.cycle(Mode::OrderProcess);
    let terminate = f.target_order("Terminate");
    assert_eq!(f.source.order_state(TERMINATE).0, "executing");
    f.finish(&terminate.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(TERMINATE).0, "done");
    assert_eq!(
        f.target.resource(&target_resource).unwrap().state,
        "Terminated"
    );
    assert_eq!(f.target.with_store(|s| s.orders.len()), 3);
}

#[test]
fn a_lost_answer_of_the_target_never_orders_twice() {
    let f = Federated::new(one_create(), "");
    // The target takes the order but its answer is lost.
    f.target.inject(Fault {
        matcher: Matcher::endpoint("POST", ORDERS),
        kind: FaultKind::AppliedStatus { status: 502 },
        count: Some(1),
    });
    f.cycle(Mode::OrderProcess);
    assert_eq!(
        f.source.order_state(CREATE_A).0,
        "executing",
        "waits, never errs"
    );
    assert_eq!(f.target_orders("Create").len(), 1);
    // The next attempt adopts that order.
    f.cycle(Mode::OrderProcess);
    let create = f.target_order("Create");
    let order = f.source.sim.order(CREATE_A).unwrap();
    assert_eq!(order.backend_id.replace('-', ""), create.uuid);
    f.finish(&create.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "done");
    assert_eq!(f.target_orders("Create").len(), 1, "ordered exactly once");
}

#[test]
fn updates_and_terminations_are_ordered_once_and_a_termination_waits_for_an_update() {
    const SAME: &str = "77777777777777777777777777777722";
    let f = Federated::new(one_create(), "");
    let target = f.created(CREATE_A);
    let lose_answer = |path: &str| {
        f.target.inject(Fault {
            matcher: Matcher::endpoint("POST", path),
            kind: FaultKind::AppliedStatus { status: 502 },
            count: Some(1),
        })
    };

    // The target has these limits already: nothing is ordered.
    f.source
        .add_order(SAME, "Update", "executing", RES_A, json!({"cpu": 10}));
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(SAME).0, "done");
    assert!(f.target_orders("Update").is_empty());

    // The target takes the update but its answer is lost: the next cycle adopts that order.
    lose_answer("/api/marketplace-resources/{uuid}/update_limits/");
    f.source
        .add_order(UPDATE, "Update", "executing", RES_A, json!({"cpu": 15}));
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(UPDATE).0, "executing");
    f.cycle(Mode::OrderProcess);
    let update = f.target_order("Update");
    assert_eq!(
        f.source
            .sim
            .order(UPDATE)
            .unwrap()
            .backend_id
            .replace('-', ""),
        update.uuid
    );

    // A termination waits while the target resource is updating.
    f.source
        .add_order(TERMINATE, "Terminate", "executing", RES_A, json!({}));
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.target.resource(&target).unwrap().state, "Updating");
    assert!(f.target_orders("Terminate").is_empty());
    assert_eq!(f.source.order_state(TERMINATE).0, "executing");

    // The update finishes; the termination goes out, its answer is lost, and it is adopted.
    f.finish(&update.uuid, "done", "");
    lose_answer("/api/marketplace-resources/{uuid}/terminate/");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(UPDATE).0, "done");
    f.cycle(Mode::OrderProcess);
    let terminate = f.target_order("Terminate");
    f.finish(&terminate.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(TERMINATE).0, "done");
    assert_eq!(f.target.resource(&target).unwrap().state, "Terminated");
    assert_eq!(f.target_orders("Update").len(), 1, "updated once");
    assert_eq!(f.target_orders("Terminate").len(), 1, "terminated once");
}

#[test]
fn garbled_target_answers_never_err_an_order_nor_order_twice() {
    let f = Federated::new(one_create(), "");
    // The target takes the order and answers garbage.
    f.target.inject(Fault {
        matcher: Matcher::endpoint("POST", ORDERS),
        kind: FaultKind::Malformed,
        count: Some(1),
    });
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "executing");
    f.cycle(Mode::OrderProcess);
    let create = f.target_order("Create");
    // Every status read garbled (a read is retried, so one garbled answer alone is absorbed).
    f.target.inject(Fault {
        matcher: Matcher::endpoint("GET", "/api/marketplace-orders/{uuid}/"),
        kind: FaultKind::Malformed,
        count: None,
    });
    f.finish(&create.uuid, "done", "");
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "executing", "waits");
    f.target.clear_faults();
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "done");
    assert_eq!(f.target_orders("Create").len(), 1, "ordered exactly once");
}

#[test]
fn a_rejected_target_order_errs_the_source_order_with_its_reason() {
    let f = Federated::new(one_create(), "");
    f.cycle(Mode::OrderProcess);
    let create = f.target_order("Create");
    f.finish(&create.uuid, "rejected", "no budget left at site B");
    f.cycle(Mode::OrderProcess);
    let (state, message) = f.source.order_state(CREATE_A);
    assert_eq!(state, "erred");
    assert!(
        message.contains("rejected") && message.contains("no budget left at site B"),
        "{message}"
    );
}

#[test]
fn a_target_answering_5xx_keeps_the_order_waiting() {
    let f = Federated::new(one_create(), "");
    f.cycle(Mode::OrderProcess);
    let create = f.target_order("Create");
    f.finish(&create.uuid, "done", "");
    f.target.inject(Fault {
        matcher: Matcher {
            method: Some("GET".into()),
            path_prefix: Some(ORDERS.into()),
            ..Matcher::any()
        },
        kind: FaultKind::Status { status: 503 },
        count: None,
    });
    for _ in 0..2 {
        f.cycle(Mode::OrderProcess);
        let (state, message) = f.source.order_state(CREATE_A);
        assert_eq!((state.as_str(), message.as_str()), ("executing", ""));
    }
    f.target.clear_faults();
    f.cycle(Mode::OrderProcess);
    assert_eq!(f.source.order_state(CREATE_A).0, "done");
}

#[test]
fn usage_of_two_months_is_reported_through_the_factors() {
    let f = Federated::with_global(one_create(), "", "reporting_periods: 2");
    let target = f.created(CREATE_A);
    let (this, previous) = months();
    f.target_usage(&target, "node_hours", 40.0, &this, None);
    f.target_usage(&target, "mem", 5.5, &this, None);
    f.target_usage(&target, "node_hours", 8.0, &this, Some("alice1"));
    f.target_usage(&target, "node_hours", 10.0, &previous, None);
    f.cycle(Mode::Report);
    let reported = f.source.reported(RES_A);
    for expected in [
        (format!("{this}-01"), "cpu", "20"),
        (format!("{this}-01"), "mem", "5.5"),
        (format!("{previous}-01"), "cpu", "5"),
    ] {
        assert!(
            reported.iter().any(|(p, t, u)| p.starts_with(&expected.0)
                && t == expected.1
                && u.parse::<f64>().ok() == expected.2.parse::<f64>().ok()),
            "{expected:?} not in {reported:?}"
        );
    }
    let users = f.source.reported_users(RES_A, "cpu", &this);
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].0, "alice1");
    assert_eq!(users[0].1.parse::<f64>().unwrap(), 4.0);
}

#[test]
fn a_target_without_usage_reports_zero() {
    let f = Federated::new(one_create(), "");
    f.created(CREATE_A);
    f.cycle(Mode::Report);
    let (this, _) = months();
    let reported = f.source.reported(RES_A);
    for component in ["cpu", "mem"] {
        assert!(
            reported.iter().any(|(p, t, u)| p.starts_with(&this)
                && t == component
                && u.parse::<f64>().ok() == Some(0.0)),
            "{component}: {reported:?}"
        );
    }
}

/// Roles the target project grants, as `(username, role)`, sorted.
fn target_grants(target: &Simulator) -> Vec<(String, String)> {
    let project =
        target.with_store(|s| s.projects.keys().next().cloned().expect("a target project"));
    let mut grants: Vec<(String, String)> = target
        .project_roles(&project)
        .into_iter()
        .map(|(user, role)| {
            let username = target.with_store(|s| s.users.get(&user).map(|u| u.username.clone()));
            (username.unwrap_or(user), role)
        })
        .collect();
    grants.sort();
    grants
}

/// alloc-a created and one membership pass run: the identity bridge made alice on the
/// target, where her source admin role is mapped to manager.
fn alice_on_the_target() -> Federated {
    let f = Federated::new(one_create(), "");
    f.created(CREATE_A);
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        target_grants(&f.target),
        [("alice@idp".to_string(), "PROJECT.MANAGER".to_string())]
    );
    f
}

#[test]
fn team_changes_reach_the_target_project_with_mapped_roles() {
    let f = alice_on_the_target();

    f.source.bob_joins_the_team();
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        target_grants(&f.target),
        [
            ("alice@idp".to_string(), "PROJECT.MANAGER".to_string()),
            ("bob@idp".to_string(), "PROJECT.MEMBER".to_string())
        ]
    );
    // A second pass changes nothing.
    let adds = f.target.count("POST", "/api/projects/{uuid}/add_user/");
    f.cycle(Mode::MembershipSync);
    assert_eq!(target_grants(&f.target).len(), 2);
    assert_eq!(
        f.target.count("POST", "/api/projects/{uuid}/add_user/"),
        adds
    );

    f.source
        .sim
        .with_store_mut(|s| s.team.retain(|m| m.user_uuid != BOB));
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        target_grants(&f.target),
        [("alice@idp".to_string(), "PROJECT.MANAGER".to_string())]
    );
}

#[test]
fn a_changed_source_role_is_granted_on_the_target_before_the_old_one_goes() {
    let f = alice_on_the_target();
    // Alice is a member now, no longer an admin, on the source.
    f.source.sim.with_store_mut(|s| {
        for m in s.team.iter_mut().filter(|m| m.user_uuid == ALICE) {
            m.role = "PROJECT.MEMBER".into();
        }
    });
    f.target.reset_log();
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        target_grants(&f.target),
        [("alice@idp".to_string(), "PROJECT.MEMBER".to_string())]
    );
    // Never without access in between: the grant went out before the revocation.
    let changes: Vec<String> = f
        .target
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.contains("/api/projects/"))
        .map(|r| r.path.rsplit('/').nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(changes, ["add_user", "delete_user"], "{changes:?}");
}

#[test]
fn a_user_the_target_cannot_resolve_is_skipped_or_fails_the_resource() {
    for (action, fails) in [("warn", false), ("fail", true)] {
        let settings = format!(
            "        user_resolve_method: user_field\n        user_match_field: email\n        \
             user_not_found_action: {action}\n"
        );
        let f = Federated::new(one_create(), &settings);
        f.created(CREATE_A);
        // Alice is on the target (by email), bob is not.
        f.source.bob_joins_the_team();
        let report = f.cycle(Mode::MembershipSync);
        assert_eq!(
            target_grants(&f.target),
            [("alice-b".to_string(), "PROJECT.MANAGER".to_string())],
            "{action}"
        );
        let waldur_agent::modes::cycle::OfferingOutcome::Membership(summary) =
            outcome(&report, "Demo Offering")
        else {
            panic!("{action}: {report:?}");
        };
        assert_eq!(summary.failed > 0, fails, "{action}: {summary:?}");
    }
}

#[test]
fn members_matched_by_email_are_added_as_the_resource_is_created() {
    let f = Federated::new(
        one_create(),
        "        user_resolve_method: user_field\n        user_match_field: email\n",
    );
    f.created(CREATE_A);
    // No membership pass yet: the order's own add found alice by her email.
    let alice = ("alice-b".to_string(), "PROJECT.MANAGER".to_string());
    assert_eq!(target_grants(&f.target), std::slice::from_ref(&alice));

    // Site B adds a member of its own; the federation names its team by the source's users.
    let project = f
        .target
        .with_store(|s| s.projects.keys().next().cloned().unwrap());
    f.target.with_store_mut(|s| {
        let uuid = "c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4".to_string();
        let carol = waldur_sim::store::User::new(
            uuid.clone(),
            "carol-b".into(),
            "Carol Local".into(),
            "carol@site-b.example".into(),
        );
        s.users.insert(uuid.clone(), carol);
        s.team.push(waldur_sim::store::TeamMember {
            project_uuid: project,
            user_uuid: uuid,
            role: "PROJECT.MEMBER".into(),
        });
    });
    let carol = ("carol-b".to_string(), "PROJECT.MEMBER".to_string());
    for _ in 0..2 {
        f.cycle(Mode::MembershipSync);
        // Alice stays (she is the source's alice); carol is not the federation's to remove.
        assert_eq!(target_grants(&f.target), [alice.clone(), carol.clone()]);
    }
    assert_eq!(
        f.target.count("POST", "/api/projects/{uuid}/delete_user/"),
        0
    );
}

#[test]
fn remote_eduteams_resolves_members_by_their_cuid() {
    // eduTEAMS brought alice to the target, named by her CUID; bob is unknown there.
    let f = Federated::configured(
        one_create(),
        target_naming_alice(),
        "        user_resolve_method: remote_eduteams\n",
        "",
        "",
    );
    f.source.bob_joins_the_team();
    f.created(CREATE_A);
    f.cycle(Mode::MembershipSync);
    let alice = [("alice@idp".to_string(), "PROJECT.MANAGER".to_string())];
    assert_eq!(target_grants(&f.target), alice);
    // The target's team names alice as the source does: a second pass keeps her, and
    // changes nothing.
    let changes = || {
        f.target.count("POST", "/api/projects/{uuid}/add_user/")
            + f.target.count("POST", "/api/projects/{uuid}/delete_user/")
    };
    let before = changes();
    f.cycle(Mode::MembershipSync);
    assert_eq!(target_grants(&f.target), alice);
    assert_eq!(changes(), before);
}

const TARGET_ALICE: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
const TARGET_ALICE_ACCOUNT: &str = "c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5";

/// The target with alice under her CUID and an account of the target offering that site B
/// named `b_alice`.
fn target_naming_alice() -> Scenario {
    let mut target = target_scenario();
    target.users.push(waldur_sim::scenario::UserSpec {
        uuid: Some(TARGET_ALICE.into()),
        username: "alice@idp".into(),
        full_name: "Alice Smith".into(),
        email: "alice@example.org".into(),
    });
    target
        .offering_users
        .push(waldur_sim::scenario::OfferingUserSpec {
            uuid: Some(TARGET_ALICE_ACCOUNT.into()),
            offering: "HPC".into(),
            user: "alice@idp".into(),
            username: Some("b_alice".into()),
            ..Default::default()
        });
    target
}

#[test]
fn usernames_the_target_assigns_reach_the_source_offering_users() {
    let target = target_naming_alice();
    let f = Federated::configured(
        one_create(),
        target,
        "",
        "",
        "    username_reconciliation_enabled: true",
    );
    f.created(CREATE_A);
    f.cycle(Mode::MembershipSync);
    let username_of = |user: &str| {
        f.source.sim.with_store(|s| {
            s.offering_users
                .values()
                .find(|u| u.user_uuid == user)
                .and_then(|u| u.username.clone())
        })
    };
    // Site B named alice's account; bob has none there, so his source username stays.
    assert_eq!(username_of(ALICE).as_deref(), Some("b_alice"));
    assert_eq!(username_of(BOB).as_deref(), Some("bob1"));
    let patches = f
        .source
        .sim
        .count("PATCH", "/api/marketplace-offering-users/{uuid}/");
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        f.source
            .sim
            .count("PATCH", "/api/marketplace-offering-users/{uuid}/"),
        patches,
        "a second pass has nothing to change"
    );
}

#[test]
fn the_identity_bridge_username_entry_keeps_the_target_bridge_in_step() {
    // Members are matched by email, so every bridge call below is the username entry's.
    let f = Federated::configured(
        one_create(),
        target_scenario(),
        "        user_resolve_method: user_field\n        user_match_field: email\n",
        "",
        "    username_management_backend: waldur-identity-bridge",
    );
    f.created(CREATE_A);
    f.cycle(Mode::MembershipSync);
    let log = f.target.identity_bridge_log();
    let pushed = |username: &str| {
        log.iter().any(|e| {
            e["action"] == "push" && e["username"] == username && e["source"] == "isd:site-a"
        })
    };
    assert!(pushed("alice@idp") && pushed("bob@idp"), "{log:#?}");
    let alice = log
        .iter()
        .find(|e| e["action"] == "push" && e["username"] == "alice@idp")
        .unwrap();
    assert_eq!(alice["fields"]["email"], "alice@example.org", "{alice:#}");

    // Bob leaves the offering: the next pass deactivates him on the target.
    f.source
        .sim
        .with_store_mut(|s| s.offering_users.retain(|_, u| u.user_uuid != BOB));
    f.cycle(Mode::MembershipSync);
    let log = f.target.identity_bridge_log();
    let removed: Vec<_> = log.iter().filter(|e| e["action"] == "remove").collect();
    assert_eq!(removed.len(), 1, "{log:#?}");
    assert_eq!(removed[0]["username"], "bob@idp");
}

#[test]
fn end_dates_follow_the_configured_direction() {
    // a_to_b: the source's end date reaches the target resource.
    let f = Federated::new(one_create(), "        end_date_sync_direction: a_to_b\n");
    let target = f.created(CREATE_A);
    f.source.sim.with_store_mut(|s| {
        s.resources.get_mut(RES_A).unwrap().end_date = Some("2027-01-31".into())
    });
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        f.target.resource(&target).unwrap().end_date.as_deref(),
        Some("2027-01-31")
    );

    // b_to_a: the target's end date reaches the source resource.
    let f = Federated::new(one_create(), "        end_date_sync_direction: b_to_a\n");
    let target = f.created(CREATE_A);
    f.target.with_store_mut(|s| {
        s.resources.get_mut(&target).unwrap().end_date = Some("2027-06-30".into())
    });
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        f.source.resource(RES_A).end_date.as_deref(),
        Some("2027-06-30")
    );

    // disabled: neither moves.
    let f = Federated::new(one_create(), "        end_date_sync_direction: disabled\n");
    let target = f.created(CREATE_A);
    f.target.with_store_mut(|s| {
        s.resources.get_mut(&target).unwrap().end_date = Some("2027-06-30".into())
    });
    f.cycle(Mode::MembershipSync);
    assert_eq!(f.source.resource(RES_A).end_date, None);
}

#[test]
fn the_target_resources_backend_id_becomes_the_source_effective_id() {
    let f = Federated::new(one_create(), "");
    let target = f.created(CREATE_A);
    // Site B's agent names the allocation on its backend.
    f.target.with_store_mut(|s| {
        s.resources.get_mut(&target).unwrap().backend_id = "hpc_alloc_17".into()
    });
    f.cycle(Mode::MembershipSync);
    assert_eq!(f.source.resource(RES_A).effective_id, "hpc_alloc_17");
    let writes = f.source.sim.count(
        "POST",
        "/api/marketplace-provider-resources/{uuid}/set_effective_id/",
    );
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        f.source.sim.count(
            "POST",
            "/api/marketplace-provider-resources/{uuid}/set_effective_id/"
        ),
        writes,
        "a second pass has nothing to write"
    );
}

#[test]
fn the_source_projects_metadata_reaches_the_target_project() {
    let mut target = target_scenario();
    target
        .science_sub_domains
        .push(waldur_sim::scenario::ScienceSubDomainSpec {
            uuid: Some("d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1".into()),
            code: "1.1.2".into(),
            name: "Algebra".into(),
        });
    let f = Federated::configured(one_create(), target, "", "", "");
    f.created(CREATE_A);
    let set_source = |key: &str, value: Value| {
        f.source.sim.with_store_mut(|s| {
            let project = s.projects.get_mut(PROJECT).unwrap();
            project.description = "Number theory group".into();
            project.details.insert(key.into(), value);
        })
    };
    set_source("oecd_fos_2007_code", json!("1.1"));
    set_source("is_industry", json!(true));
    set_source("science_sub_domain_code", json!("1.1.2"));
    f.cycle(Mode::MembershipSync);
    let target_project = || {
        f.target
            .with_store(|s| s.projects.values().next().cloned().unwrap())
    };
    let project = target_project();
    assert_eq!(project.description, "Number theory group");
    assert_eq!(project.details["oecd_fos_2007_code"], "1.1");
    assert_eq!(project.details["is_industry"], true);
    // Matched by code: the target's sub-domain has its own uuid.
    assert_eq!(project.details["science_sub_domain_code"], "1.1.2");

    let patches = || f.target.count("PATCH", "/api/projects/{uuid}/");
    let before = patches();
    f.cycle(Mode::MembershipSync);
    assert_eq!(patches(), before, "a second pass has nothing to change");

    // Cleared on the source, cleared on the target.
    set_source("science_sub_domain_code", Value::Null);
    f.cycle(Mode::MembershipSync);
    assert_eq!(
        target_project().details["science_sub_domain_code"],
        Value::Null
    );
}

#[test]
fn limits_follow_the_target_unless_disabled() {
    for (direction, expected) in [("b_to_a", json!(30)), ("disabled", json!(10))] {
        let f = Federated::new(
            one_create(),
            &format!("        limit_sync_direction: {direction}\n"),
        );
        let target = f.created(CREATE_A);
        // Site B raised the allocation on its side.
        f.target.with_store_mut(|s| {
            s.resources
                .get_mut(&target)
                .unwrap()
                .limits
                .insert("node_hours".into(), json!(60));
        });
        f.cycle(Mode::MembershipSync);
        let limits = f.source.resource(RES_A).limits;
        assert_eq!(
            limits.get("cpu").and_then(Value::as_f64),
            expected.as_f64(),
            "{direction}: {limits:?}"
        );
    }
}

/// With `target_stomp_enabled` in `event_process` mode, on a real RabbitMQ: the plugin
/// subscribes on the target, and a target order finishing completes the source order at
/// once, although the agent's next look at pending orders is an hour away; the target's
/// offering-user and resource events bring usernames and end dates back the same way.
#[test]
fn the_targets_events_complete_orders_and_bring_back_usernames_and_end_dates() {
    use crate::common::events::{stop, BrokerCleanup, WAIT};
    use crate::common::site::{wait_until, Site};
    use waldur_test_support::rabbitmq::{
        broker_config, require_real_rabbitmq, unique_name, WS_PORT,
    };

    if require_real_rabbitmq().is_none() {
        return;
    }
    let mut source_scenario = one_create();
    source_scenario.agent_user.username = unique_name("fed-source");
    // Site B names alice's account; the source learns it from the offering-user event.
    let mut target_scenario = target_naming_alice();
    target_scenario.agent_user.username = unique_name("fed-target");
    target_scenario.agent_user.uuid = Some("a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9".into());
    let source = Simulator::start(source_scenario).unwrap();
    source.attach_broker(broker_config());
    let target = Simulator::start(target_scenario).unwrap();
    target.attach_broker(broker_config());
    let stomp = format!(
        "    stomp_enabled: true\n    stomp_ws_host: 127.0.0.1\n    stomp_ws_port: {WS_PORT}\n    \
         stomp_ws_path: /ws\n    websocket_use_tls: false\n    stomp_subscription_flow: per_object_type"
    );
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("agent.yaml");
    std::fs::write(
        &config,
        federation_config(
            &source,
            &target,
            "        target_stomp_enabled: true\n        end_date_sync_direction: b_to_a\n",
            "",
            &stomp,
        ),
    )
    .unwrap();
    let plugins = waldur_test_support::PluginDir::new();
    plugins.add(
        &waldur_test_support::workspace_plugin("waldur-plugin-waldur"),
        "waldur.so",
    );
    let site = Site {
        sim: source,
        plugins,
        work,
        config,
    };
    let target_site = Site {
        sim: target,
        plugins: waldur_test_support::PluginDir::new(),
        work: tempfile::tempdir().unwrap(),
        config: std::path::PathBuf::new(),
    };
    let _cleanup = (BrokerCleanup(&site), BrokerCleanup(&target_site));
    let mut agent = site.spawn_with_env(
        &["run", "-m", "event_process"],
        &[("WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES", "60")],
    );

    // The start-up pass orders on the target; the plugin subscribes to the target's events.
    wait_until("the target order", WAIT, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
        target_site.sim.with_store(|s| s.orders.len()) == 1
    });
    wait_until("the target subscriptions", WAIT, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
        agent
            .log_text()
            .matches("target subscription 'target ")
            .count()
            >= 3
            && agent
                .log_text()
                .matches(": subscribed to /amq/queue/subscription_")
                .count()
                >= 3
    });
    assert_eq!(target_site.sim.with_store(|s| s.event_queues.len()), 3);
    assert_eq!(site.sim.order(CREATE_A).unwrap().state, "executing");

    let order = target_site
        .sim
        .with_store(|s| s.orders.values().next().cloned().unwrap());
    let finished = std::time::Instant::now();
    target_site
        .sim
        .finish_order(&order.uuid, "done", "")
        .unwrap();
    wait_until("the source order done by the target event", WAIT, || {
        site.sim.order(CREATE_A).unwrap().state == "done"
    });
    let took = finished.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");

    // The target's offering-user event: alice's username there reaches the source.
    let alice_username = || {
        site.sim.with_store(|s| {
            s.offering_users
                .values()
                .find(|u| u.user_uuid == ALICE)
                .and_then(|u| u.username.clone())
        })
    };
    assert_eq!(alice_username().as_deref(), Some("alice1"));
    target_site.sim.publish_event(
        TARGET_OFFERING,
        "offering_user",
        json!({"offering_user_uuid": TARGET_ALICE_ACCOUNT, "user_uuid": TARGET_ALICE,
               "action": "update", "username": "b_alice", "state": "OK"}),
    );
    wait_until("alice's username from the target event", WAIT, || {
        alice_username().as_deref() == Some("b_alice")
    });

    // The target's resource event: site B's new end date reaches the source resource.
    target_site.sim.with_store_mut(|s| {
        s.resources.get_mut(&order.resource_uuid).unwrap().end_date = Some("2027-06-30".into())
    });
    target_site.sim.publish_event(
        TARGET_OFFERING,
        "resource",
        json!({"resource_uuid": order.resource_uuid, "action": "end_date_updated",
               "end_date": "2027-06-30"}),
    );
    wait_until("the end date from the target event", WAIT, || {
        site.sim.resource(RES_A).unwrap().end_date.as_deref() == Some("2027-06-30")
    });

    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("set_state_done (target order"), "{log}");
    assert!(
        log.contains("usernames synced from the target (changed: true)"),
        "{log}"
    );
    assert!(log.contains("end date of source resource"), "{log}");
}
