//! The agent's modes end to end: the real mode code, the Waldur simulator over HTTP, and real
//! plugin libraries (the demo backend, the panicking fixture) through the real loader.

use std::time::Duration;

use serde_json::{json, Value};
use waldur_agent::modes::cycle::{run_cycle, CycleReport, OfferingOutcome, RunSettings};
use waldur_agent::modes::order_process::OrderRetry;
use waldur_agent::modes::runtime::{Agent, Mode};
use waldur_agent::plugins::{Catalog, Registry, SearchPath, TrustPolicy};
use waldur_sim::{Fault, Matcher, Scenario, Simulator};
use waldur_test_support::{workspace_plugin, PluginDir};

const TOKEN: &str = "e2e-token";
const OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
const OTHER_OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f02";

/// One customer and project, alice (offering user `alice1`, OK) on the team, two offerings
/// with a limit-billed `cpu` and a usage-billed `mem`.
fn scenario(resources_and_orders: &str) -> Scenario {
    let yaml = format!(
        r#"
tokens: ["{TOKEN}"]
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer, slug: cust,
     service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: 99999999999999999999999999999999, name: Project, slug: proj, customer: cust}}
users:
  - {{uuid: 44444444444444444444444444444401, username: alice@idp, full_name: Alice Smith, email: alice@example.org}}
  - {{uuid: 44444444444444444444444444444402, username: bob@idp, full_name: Bob Jones, email: bob@example.org}}
team:
  - {{project: proj, user: alice@idp, role: PROJECT.ADMIN}}
offerings:
  - uuid: {OFFERING}
    name: Demo Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
      - {{type: mem, name: RAM, measured_unit: GB-Hours, billing_type: usage, unit_factor: 1}}
  - uuid: {OTHER_OFFERING}
    name: Other Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
offering_users:
  - {{offering: Demo Offering, user: alice@idp, username: alice1, state: OK}}
  - {{offering: Demo Offering, user: bob@idp, username: bob1, state: OK}}
{resources_and_orders}
"#
    );
    Scenario::from_yaml_str(&yaml).expect("valid scenario")
}

struct Harness {
    sim: Simulator,
    _plugins: PluginDir,
    state: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    agent: Agent,
}

/// `offering_settings` are extra `backend_settings` lines (8-space indented) for the demo
/// offering; `other` is an optional second offering (YAML list item) appended to the config.
fn harness(scenario: Scenario, offering_settings: &str, other: &str) -> Harness {
    let sim = Simulator::start(scenario).expect("start the simulator");
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    plugins.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    plugins.add(
        &workspace_plugin("waldur-plugin-basic-username"),
        "usernames.so",
    );
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
timezone: UTC
expose_backend_error_details: false
offerings:
  - name: Demo Offering
    waldur_api_url: {url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    backend_type: demo
    order_processing_backend: demo
    reporting_backend: demo
    membership_sync_backend: demo
    backend_settings:
        state_dir: {state}
{offering_settings}
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU, unit_factor: 60}}
      mem: {{measured_unit: GB-Hours, accounting_type: usage, label: RAM}}
{other}
"#,
        url = sim.url(),
        state = state.path().display(),
        other = other.replace("SIMURL", &sim.url()),
    );
    let loaded = waldur_agent::config::parse(&config, "e2e.yaml").expect("valid config");
    let registry = Registry::new(Catalog::scan(
        &SearchPath::only([plugins.path().to_path_buf()]),
        TrustPolicy::Strict,
        None,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Harness {
        sim,
        _plugins: plugins,
        state,
        runtime,
        agent: Agent::new(loaded.config, registry),
    }
}

fn fast() -> RunSettings {
    RunSettings {
        order_retry: OrderRetry {
            attempts: 3,
            delay: Duration::from_millis(20),
        },
    }
}

impl Harness {
    fn cycle(&self, mode: Mode) -> CycleReport {
        self.runtime.block_on(run_cycle(&self.agent, mode, fast()))
    }

    fn order_state(&self, uuid: &str) -> (String, String) {
        let order = self.sim.order(uuid).expect("order exists");
        (order.state, order.error_message)
    }

    fn resource(&self, uuid: &str) -> waldur_sim::store::Resource {
        self.sim.resource(uuid).expect("resource exists")
    }

    /// The demo backend's state file.
    fn backend_state(&self) -> Value {
        let text = std::fs::read_to_string(self.state.path().join("state.json"))
            .unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    }

    fn account(&self, name: &str) -> Option<Value> {
        self.backend_state()["accounts"].get(name).cloned()
    }

    /// Adds an order for an existing resource, as Waldur would when a user asks for it.
    fn add_order(&self, uuid: &str, kind: &str, state: &str, resource: &str, limits: Value) {
        self.sim.with_store_mut(|store| {
            let template = store
                .orders
                .values()
                .next()
                .expect("an order to copy")
                .clone();
            let mut order = template;
            order.uuid = uuid.to_string();
            order.type_ = kind.to_string();
            order.state = state.to_string();
            order.resource_uuid = resource.to_string();
            order.limits = limits.as_object().cloned().unwrap_or_default();
            order.backend_id = String::new();
            order.error_message = String::new();
            store.orders.insert(uuid.to_string(), order);
        });
    }
}

fn outcome<'a>(report: &'a CycleReport, offering: &str) -> &'a OfferingOutcome {
    &report
        .offerings
        .iter()
        .find(|(name, _)| name == offering)
        .unwrap_or_else(|| panic!("{offering} not in {report:?}"))
        .1
}

const CREATE_A: &str = "77777777777777777777777777777701";
const CREATE_B: &str = "77777777777777777777777777777702";
const RES_A: &str = "88888888888888888888888888888801";
const RES_B: &str = "88888888888888888888888888888802";

fn two_create_orders() -> String {
    format!(
        r#"
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
  - {{uuid: {RES_B}, name: alloc-b, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 5}}}}
orders:
  - {{uuid: {CREATE_A}, type: Create, state: pending-provider, resource: {RES_A}, limits: {{cpu: 10}}}}
  - {{uuid: {CREATE_B}, type: Create, state: executing, resource: {RES_B}, limits: {{cpu: 5}}}}
"#
    )
}

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

/// `YYYY-MM` of this month and the one before, in UTC (the configured timezone).
fn months() -> (String, String) {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let this = now.date().first_of_month();
    let previous = this.checked_sub(jiff::ToSpan::months(1)).unwrap();
    (
        this.strftime("%Y-%m").to_string(),
        previous.strftime("%Y-%m").to_string(),
    )
}

impl Harness {
    /// Drops a usage file for the demo backend (backend units: cpu in minutes).
    fn usage_file(&self, month: &str, account: &str, usage: Value) {
        let dir = self.state.path().join("usage").join(month);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{account}.json")), usage.to_string()).unwrap();
    }

    /// `(billing_period, type) -> usage` of a resource in the simulator.
    fn reported(&self, resource: &str) -> Vec<(String, String, String)> {
        self.sim.with_store(|store| {
            let mut rows: Vec<_> = store
                .component_usages
                .values()
                .filter(|u| u.resource_uuid == resource)
                .map(|u| (u.billing_period.clone(), u.type_.clone(), u.usage.clone()))
                .collect();
            rows.sort();
            rows
        })
    }

    /// `(username, usage)` of the user usages under the resource's component usages of a type.
    fn reported_users(
        &self,
        resource: &str,
        component: &str,
        period: &str,
    ) -> Vec<(String, String)> {
        self.sim.with_store(|store| {
            let parents: Vec<&String> = store
                .component_usages
                .values()
                .filter(|u| {
                    u.resource_uuid == resource
                        && u.type_ == component
                        && u.billing_period.starts_with(period)
                })
                .map(|u| &u.uuid)
                .collect();
            let mut rows: Vec<_> = store
                .user_usages
                .values()
                .filter(|u| parents.contains(&&u.component_usage_uuid))
                .map(|u| (u.username.clone(), u.usage.clone()))
                .collect();
            rows.sort();
            rows
        })
    }
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
