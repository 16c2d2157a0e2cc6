//! Where this agent deliberately differs from the reference agent, through the binary against
//! the simulator with the demo plugin: Waldur components the config does not have, per-user
//! usages whose offering-user link appears later, and limits with a fraction.

use crate::common::site::*;
use waldur_sim::Scenario;

const SET_USER_USAGES: &str = "/api/marketplace-component-usages/{uuid}/set_user_usages/";
const RESOURCE: &str = "88888888888888888888888888000000";
const ALICE: &str = "44444444444444444444444444444401";

/// One project with alice on its team (offering user without a username yet), one resource
/// `alloc-a` with an executing Create order; `components` are the offering's in Waldur.
fn scenario(components: &str, limits: &str, extra: &str) -> Scenario {
    Scenario::from_yaml_str(&format!(
        r#"
tokens: ["{TOKEN}"]
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer, slug: cust, service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: 99999999999999999999999999999999, name: Project, slug: proj, customer: cust}}
users:
  - {{uuid: {ALICE}, username: alice@idp, full_name: Alice Smith, email: alice@example.org}}
team:
  - {{project: proj, user: alice@idp, role: PROJECT.ADMIN}}
offerings:
  - uuid: {OFFERING}
    name: Demo Offering
    customer: cust
    components:
{components}
offering_users:
  - {{offering: Demo Offering, user: alice@idp, state: Requested}}
resources:
  - {{uuid: {RESOURCE}, name: alloc-a, slug: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {limits}}}
orders:
  - {{uuid: 77777777777777777777777777000000, type: Create, state: executing, resource: {RESOURCE}, limits: {limits}}}
{extra}
"#
    ))
    .expect("valid scenario")
}

const CPU: &str =
    "      - {type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}";

fn created(site: &Site) {
    let output = once(site);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(site.orders(), (1, 0, 0));
}

/// A usage file for the demo backend, this month (backend units: cpu in minutes).
fn usage_file(site: &Site, usage: serde_json::Value) {
    let month = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    let dir = site.work.path().join("state/usage").join(month);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("alloc-a.json"), usage.to_string()).unwrap();
}

fn report(site: &Site) {
    let output = site.run(&["run", "-m", "report", "--once"]);
    assert!(output.status.success(), "{}", text(&output));
}

/// `(type, usage)` of the resource's component usages in Waldur.
fn usages(site: &Site) -> Vec<(String, String)> {
    site.sim.with_store(|store| {
        let mut rows: Vec<_> = store
            .component_usages
            .values()
            .filter(|u| u.resource_uuid == RESOURCE)
            .map(|u| (u.type_.clone(), u.usage.clone()))
            .collect();
        rows.sort();
        rows
    })
}

#[test]
fn components_only_waldur_has_are_neither_reported_nor_fatal() {
    let this_month = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-01")
        .to_string();
    let site = Site::with_components(
        scenario(
            &format!(
                "{CPU}
      - {{type: mem, name: RAM, measured_unit: GB, billing_type: usage, unit_factor: 1}}
      - {{type: disk, name: Disk, measured_unit: GB, billing_type: usage, unit_factor: 1}}
      - {{type: license, name: License, measured_unit: seat, billing_type: fixed, unit_factor: 1}}"
            ),
            "{cpu: 10}",
            // Waldur holds disk usage that some other system reported.
            &format!(
                "component_usages:\n  - {{resource: {RESOURCE}, type: disk, usage: 7, billing_period: '{this_month}'}}"
            ),
        ),
        "",
        "",
        "      mem: {measured_unit: GB, accounting_type: usage, label: RAM}",
    );
    // A `fixed` component only Waldur has: the reference fails the offering on it.
    created(&site);
    usage_file(&site, serde_json::json!({"alice1": {"cpu": 120, "mem": 3}}));
    report(&site);
    let sent = site.sim.count("POST", SET_USAGE);
    assert_eq!(
        usages(&site),
        vec![
            ("cpu".to_string(), "2.00".to_string()),
            ("disk".to_string(), "7".to_string()),
            ("mem".to_string(), "3.00".to_string())
        ],
        "disk is left as Waldur had it, and no 0.00 is sent for it"
    );
    // Nothing changed: nothing is sent again (disk does not make it look changed).
    report(&site);
    assert_eq!(site.sim.count("POST", SET_USAGE), sent);
}

#[test]
fn a_user_usage_sent_before_its_offering_user_existed_gets_the_link() {
    let site = Site::new(scenario(CPU, "{cpu: 10}", ""), "", "");
    created(&site);
    usage_file(&site, serde_json::json!({"alice1": {"cpu": 120}}));
    report(&site);
    let linked = |site: &Site| {
        site.sim.with_store(|store| {
            store
                .user_usages
                .values()
                .map(|u| (u.username.clone(), u.user.clone()))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(linked(&site), vec![("alice1".to_string(), None)]);
    let batches = site.sim.count("POST", SET_USER_USAGES);
    // The offering user gets the username later.
    site.sim.with_store_mut(|store| {
        for user in store.offering_users.values_mut() {
            user.username = Some("alice1".into());
            user.state = "OK".into();
        }
    });
    report(&site);
    assert_eq!(site.sim.count("POST", SET_USER_USAGES), batches + 1);
    let rows = linked(&site);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0]
            .1
            .as_deref()
            .is_some_and(|url| url.contains("marketplace-offering-users")),
        "{rows:?}"
    );
    // Linked and unchanged: not sent again.
    report(&site);
    assert_eq!(site.sim.count("POST", SET_USER_USAGES), batches + 1);
}

#[test]
fn a_fractional_limit_is_not_truncated_by_membership_sync() {
    let site = Site::new(scenario(CPU, "{cpu: 2.5}", ""), "", "");
    created(&site);
    // 2.5 hours at unit_factor 60.
    assert_eq!(site.state()["accounts"]["alloc-a"]["limits"]["cpu"], 150);
    let limit_writes = site.sim.count("POST", SET_LIMITS);
    let output = site.run(&["run", "-m", "membership_sync", "--once"]);
    assert!(output.status.success(), "{}", text(&output));
    let limits = site.sim.resource(RESOURCE).unwrap().limits;
    assert_eq!(limits["cpu"], 2.5, "{limits:?}");
    assert_eq!(site.sim.count("POST", SET_LIMITS), limit_writes);

    // A real change on the backend still reaches Waldur.
    let path = site.work.path().join("state/state.json");
    let mut state = site.state();
    state["accounts"]["alloc-a"]["limits"]["cpu"] = serde_json::json!(240);
    std::fs::write(&path, state.to_string()).unwrap();
    let output = site.run(&["run", "-m", "membership_sync", "--once"]);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(site.sim.resource(RESOURCE).unwrap().limits["cpu"], 4);
}
