//! The reference's remaining polling-mode behaviours, end to end (the simulator, the demo
//! plugin through the real loader): project accounts and user attributes after a create,
//! the source project, membership sync statuses, shared-project teams, user profiles before
//! membership, report retries within a cycle, and what the agent registers.

use crate::common::*;
use serde_json::{json, Value};
use waldur_agent::modes::cycle::OfferingOutcome;
use waldur_agent::modes::runtime::Mode;
use waldur_sim::{Fault, Matcher};

const SERVICE_ACCOUNTS: &str =
    "/api/marketplace-provider-offerings/{uuid}/list_project_service_accounts/";
const SOURCE_PROJECTS: &str = "/api/marketplace-service-providers/{uuid}/projects/";
const SET_USAGE: &str = "/api/marketplace-component-usages/set_usage/";
const SET_USER_USAGES: &str = "/api/marketplace-component-usages/{uuid}/set_user_usages/";

fn account(uuid: &str, username: &str, state: &str) -> Value {
    json!({"uuid": uuid, "username": username, "project_uuid": PROJECT, "state": state})
}

fn set_account_state(h: &Harness, username: &str, state: &str) {
    h.sim.with_store_mut(|st| {
        for a in st.service_accounts.iter_mut() {
            if a["username"] == username {
                a["state"] = state.into();
            }
        }
    });
}

fn orders_done(h: &Harness) -> usize {
    match outcome(&h.cycle(Mode::OrderProcess), "Demo Offering") {
        OfferingOutcome::Orders(s) => {
            assert_eq!(s.erred, 0, "{s:?}");
            s.done
        }
        other => panic!("{other:?}"),
    }
}

fn membership(h: &Harness) -> (usize, usize, usize) {
    match outcome(&h.cycle(Mode::MembershipSync), "Demo Offering") {
        OfferingOutcome::Membership(s) => (s.users_added, s.users_removed, s.failed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_create_adds_user_attributes_and_the_projects_accounts() {
    let h = harness(scenario(&two_create_orders()), "", "");
    h.sim.with_store_mut(|st| {
        st.service_accounts.push(account("a1", "svc1", "OK"));
        st.service_accounts.push(account("a2", "svc-old", "OK"));
        st.course_accounts.push(account("a3", "course1", "OK"));
    });
    assert_eq!(orders_done(&h), 2);
    assert_eq!(
        h.account_users("alloc-a"),
        ["alice1", "course1", "svc-old", "svc1"]
    );
    // What the plugin was told about alice with the addition.
    let attributes = &h.backend_state()["user_attributes"]["alice1"];
    assert_eq!(attributes["email"], "alice@example.org", "{attributes}");
    assert_eq!(attributes["full_name"], "Alice Smith", "{attributes}");
    // One B7 read per order's post-processing, none of B12 (the demo needs no project).
    assert_eq!(h.sim.count("GET", SERVICE_ACCOUNTS), 2);
    assert_eq!(h.sim.count("GET", SOURCE_PROJECTS), 0);

    // A Restore of an existing resource is post-processed too: the Closed account goes.
    set_account_state(&h, "svc-old", "Closed");
    let restore = "77777777777777777777777777777703";
    h.add_order(restore, "Restore", "executing", RES_A, json!({}));
    assert_eq!(orders_done(&h), 1);
    assert_eq!(h.account_users("alloc-a"), ["alice1", "course1", "svc1"]);

    // Waldur failing to list service accounts costs the accounts, never the order.
    set_account_state(&h, "svc-old", "OK");
    h.sim.inject(Fault::status(
        Matcher::endpoint("GET", SERVICE_ACCOUNTS),
        400,
        10,
    ));
    let again = "77777777777777777777777777777704";
    h.add_order(again, "Restore", "executing", RES_A, json!({}));
    assert_eq!(orders_done(&h), 1);
    assert_eq!(h.order_state(again).0, "done");
    assert_eq!(h.account_users("alloc-a"), ["alice1", "course1", "svc1"]);
}

#[test]
fn membership_keeps_ok_accounts_and_removes_closed_ones_once() {
    let h = harness(scenario(&two_create_orders()), "", "");
    assert_eq!(orders_done(&h), 2);
    h.sim.with_store_mut(|st| {
        st.service_accounts.push(account("a1", "svc1", "OK"));
        st.service_accounts.push(account("a2", "svc-old", "OK"));
    });
    membership(&h);
    assert_eq!(h.account_users("alloc-a"), ["alice1", "svc-old", "svc1"]);
    // The accounts are not in the team, yet a further cycle neither removes nor re-adds them.
    let before = h.sim.count("GET", SERVICE_ACCOUNTS);
    assert_eq!(membership(&h), (0, 0, 0));
    assert_eq!(h.account_users("alloc-a"), ["alice1", "svc-old", "svc1"]);
    // One read per cycle for both resources.
    assert_eq!(h.sim.count("GET", SERVICE_ACCOUNTS), before + 1);
    set_account_state(&h, "svc-old", "Closed");
    membership(&h);
    assert_eq!(h.account_users("alloc-a"), ["alice1", "svc1"]);
    assert_eq!(h.account_users("alloc-b"), ["alice1", "svc1"]);
}

#[test]
fn membership_passes_the_source_project_and_reports_statuses() {
    let h = harness(
        scenario_with(
            "{enable_membership_sync_status: true}",
            DEFAULT_OFFERING_USERS,
            &two_create_orders(),
        ),
        "        requires_source_project: true\n        membership_sync_report: true\n",
        "",
    );
    h.sim.with_store_mut(|st| {
        let project = st.projects.get_mut(PROJECT).expect("the project");
        project.details = json!({"oecd_fos_2007_code": "1.1", "is_industry": false})
            .as_object()
            .cloned()
            .unwrap();
    });
    assert_eq!(orders_done(&h), 2);
    assert_eq!(membership(&h).2, 0);
    for name in ["alloc-a", "alloc-b"] {
        let project = &h.account(name).unwrap()["source_project"];
        assert_eq!(project["oecd_fos_2007_code"], "1.1", "{name}: {project}");
    }
    // Both resources are in one project: one B12 read.
    assert_eq!(h.sim.count("GET", SOURCE_PROJECTS), 1);
    let statuses = h.resource(RES_A).membership_sync_statuses;
    let last = statuses.last().expect("statuses sent");
    assert_eq!(
        last,
        &json!([{"username": "alice1", "scope_type": "resource", "role_name": "member",
                 "state": "synced", "message": ""}])
    );

    // Waldur refusing the project read leaves the plugin without one; the sync goes on.
    h.sim.inject(Fault::status(
        Matcher::endpoint("GET", SOURCE_PROJECTS),
        403,
        1,
    ));
    assert_eq!(membership(&h).2, 0);
    assert_eq!(h.sim.count("GET", SOURCE_PROJECTS), 2);
}

#[test]
fn membership_sync_statuses_need_the_offerings_opt_in() {
    let h = harness(
        scenario(&two_create_orders()),
        "        membership_sync_report: true\n",
        "",
    );
    assert_eq!(orders_done(&h), 2);
    assert_eq!(membership(&h).2, 0);
    assert!(h.resource(RES_A).membership_sync_statuses.is_empty());
}

#[test]
fn shared_project_teams_keep_users_consented_to_a_sibling_offering() {
    let resources = format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
  - {{uuid: 88888888888888888888888888888809, name: other, project: proj, offering: Other Offering, state: OK, backend_id: other-1}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: executing, resource: {RES_A}, limits: {{cpu: 10}}}}
"#
    );
    let consented_only = "        consented_users_only: true\n";
    // Bob's account on the other offering is what its team shows for him (federation
    // plugins key members by their Waldur username instead; the demo keys them by this).
    let users = format!(
        "{DEFAULT_OFFERING_USERS}  - {{offering: Other Offering, user: bob@idp, username: bob1, state: OK}}\n"
    );
    let mut h = harness(scenario_with("{}", &users, &resources), consented_only, "");
    h.bob_joins_the_team();
    h.sim.with_store_mut(|st| {
        st.consents
            .insert(OFFERING.into(), [ALICE.to_string()].into_iter().collect());
        st.consents.insert(
            OTHER_OFFERING.into(),
            [BOB.to_string()].into_iter().collect(),
        );
    });
    assert_eq!(orders_done(&h), 1);
    membership(&h);
    assert_eq!(
        h.account_users("alloc-a"),
        ["alice1"],
        "bob did not consent here"
    );

    let shared = "        consented_users_only: true\n        shared_project_membership: true\n";
    h.restart_agent(Options {
        settings: shared,
        ..Options::default()
    });
    assert_eq!(membership(&h), (1, 0, 0));
    assert_eq!(
        h.account_users("alloc-a"),
        ["alice1", "bob1"],
        "bob consented to the other offering of the project"
    );
}

#[test]
fn user_profiles_are_synced_before_members_are_added() {
    let h = harness_with(
        scenario(&two_create_orders()),
        Options {
            offering: "    username_management_backend: demo-profiles",
            ..Options::default()
        },
    );
    assert_eq!(orders_done(&h), 2);
    h.bob_joins_the_team();
    assert_eq!(membership(&h), (2, 0, 0));
    assert_eq!(h.account_users("alloc-a"), ["alice1", "bob1"]);
    let profiles = h.backend_state()["profiles"].clone();
    assert_eq!(profiles["bob1"]["email"], "bob@example.org", "{profiles}");
    // Synced before bob was added anywhere; alice was on both accounts already.
    assert_eq!(
        profiles["bob1"]["accounts_at_sync"],
        json!([]),
        "{profiles}"
    );
    assert_eq!(
        profiles["alice1"]["accounts_at_sync"],
        json!(["alloc-a", "alloc-b"])
    );

    // Bob leaves the offering: the plugin deactivates his profile at the next sync.
    h.sim.with_store_mut(|st| {
        for user in st.offering_users.values_mut() {
            if user.user_uuid == BOB {
                user.state = "Deleted".into();
            }
        }
    });
    membership(&h);
    let profiles = h.backend_state()["profiles"].clone();
    assert_eq!(profiles["bob1"]["deactivated"], true, "{profiles}");
    assert_eq!(profiles["alice1"]["deactivated"], false, "{profiles}");
}

/// Successful `set_usage` calls of one resource, with when they arrived.
fn usage_posts(h: &Harness, resource: &str) -> Vec<(u16, u64)> {
    h.sim
        .requests()
        .into_iter()
        .filter(|e| e.method == "POST" && e.template == SET_USAGE)
        .filter(|e| {
            e.request_body
                .as_deref()
                .is_some_and(|b| b.contains(resource))
        })
        .map(|e| (e.status, e.at_ms))
        .collect()
}

#[test]
fn a_failing_resource_is_retried_in_the_cycle_without_holding_up_the_others() {
    // Short pauses between retry rounds (the default is 1 s, doubling).
    std::env::set_var(waldur_agent::modes::retry_rounds::FIRST_DELAY_VAR, "100");
    let h = harness(scenario(&two_create_orders()), "", "");
    assert_eq!(orders_done(&h), 2);
    let (this, _) = months();
    h.usage_file(&this, "alloc-a", json!({"alice1": {"cpu": 120}}));
    h.usage_file(&this, "alloc-b", json!({"bob1": {"cpu": 60}}));
    // alloc-a's total is refused twice; alloc-b's user usages once, after its total went in.
    h.sim.inject(Fault::status(
        Matcher::endpoint("POST", SET_USAGE).with_body(RES_A),
        400,
        2,
    ));
    h.sim.inject(Fault::status(
        Matcher::endpoint("POST", SET_USER_USAGES).with_body("bob1"),
        400,
        1,
    ));
    let report = h.cycle(Mode::Report);
    match outcome(&report, "Demo Offering") {
        OfferingOutcome::Usage(s) => assert_eq!((s.resources, s.failed), (2, 0), "{s:?}"),
        other => panic!("{other:?}"),
    }
    let month = format!("{this}-01");
    assert!(h
        .reported(RES_A)
        .contains(&(month.clone(), "cpu".into(), "2.00".into())));
    assert_eq!(
        h.reported_users(RES_A, "cpu", &this),
        [("alice1".into(), "2.00".into())]
    );
    assert_eq!(
        h.reported_users(RES_B, "cpu", &this),
        [("bob1".into(), "1.00".into())]
    );
    // alloc-b's retry found its total in Waldur and did not send it again.
    let b = usage_posts(&h, RES_B);
    assert_eq!(b.iter().filter(|(s, _)| *s == 201).count(), 1, "{b:?}");
    // alloc-a: two refusals, then one success; alloc-b's total went in before alloc-a's
    // first retry, i.e. alloc-b did not wait for alloc-a.
    let a = usage_posts(&h, RES_A);
    let statuses: Vec<u16> = a.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [400, 400, 201], "{a:?}");
    assert!(b[0].1 <= a[1].1, "alloc-b {b:?} waited for alloc-a {a:?}");
}

#[test]
fn registration_sends_the_agent_version_and_its_plugins() {
    let h = harness(scenario(""), "", "");
    h.cycle(Mode::MembershipSync);
    let body = h.sim.with_store(|st| {
        st.identities
            .values()
            .next()
            .expect("an agent identity")
            .body
            .clone()
    });
    assert_eq!(body["version"], waldur_agent::AGENT_VERSION, "{body}");
    let dependencies = body["dependencies"].as_array().expect("a list");
    assert!(
        dependencies
            .iter()
            .any(|d| d["package"] == "waldur-plugin-demo"),
        "{body}"
    );
    // Mastermind refuses a dependency with a blank package or version (the simulator too).
    for d in dependencies {
        for key in ["package", "version"] {
            assert!(d[key].as_str().is_some_and(|v| !v.trim().is_empty()), "{d}");
        }
    }
}
