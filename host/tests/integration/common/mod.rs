//! The harness shared by the end-to-end mode tests: the Waldur simulator seeded from a YAML
//! scenario, real plugin libraries (demo, panicky, async-remote, basic-username) in a private plugin
//! directory, the agent built from a YAML config, and helpers to look at both sides.
//!
//! Each test file uses a different subset.
#![allow(dead_code)]

pub mod events;
pub mod site;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use waldur_agent::modes::cycle::{run_cycle, CycleReport, OfferingOutcome, RunSettings};
use waldur_agent::modes::order_process::OrderRetry;
use waldur_agent::modes::runtime::{Agent, Mode};
use waldur_agent::plugins::{Catalog, Registry, SearchPath, TrustPolicy};
use waldur_sim::{Scenario, Simulator};
use waldur_test_support::{workspace_plugin, PluginDir};

pub const TOKEN: &str = "e2e-token";
pub const OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
pub const OTHER_OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f02";
pub const PROJECT: &str = "99999999999999999999999999999999";
pub const ALICE: &str = "44444444444444444444444444444401";
pub const BOB: &str = "44444444444444444444444444444402";

/// The offering users of [`scenario`]: alice (`alice1`) and bob (`bob1`), both OK.
pub const DEFAULT_OFFERING_USERS: &str = r#"offering_users:
  - {offering: Demo Offering, user: alice@idp, username: alice1, state: OK}
  - {offering: Demo Offering, user: bob@idp, username: bob1, state: OK}
"#;

/// One customer and project, alice (offering user `alice1`, OK) on the team, two offerings
/// with a limit-billed `cpu` and a usage-billed `mem`.
pub fn scenario(resources_and_orders: &str) -> Scenario {
    scenario_with("{}", DEFAULT_OFFERING_USERS, resources_and_orders)
}

/// [`scenario`] with the demo offering's `plugin_options` (a YAML flow mapping) and the
/// `offering_users:` section (or any other top-level sections) given by the caller.
pub fn scenario_with(plugin_options: &str, offering_users: &str, rest: &str) -> Scenario {
    let yaml = format!(
        r#"
tokens: ["{TOKEN}"]
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer, slug: cust,
     service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: {PROJECT}, name: Project, slug: proj, customer: cust}}
users:
  - {{uuid: {ALICE}, username: alice@idp, full_name: Alice Smith, email: alice@example.org}}
  - {{uuid: {BOB}, username: bob@idp, full_name: Bob Jones, email: bob@example.org}}
team:
  - {{project: proj, user: alice@idp, role: PROJECT.ADMIN}}
offerings:
  - uuid: {OFFERING}
    name: Demo Offering
    customer: cust
    plugin_options: {plugin_options}
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
      - {{type: mem, name: RAM, measured_unit: GB-Hours, billing_type: usage, unit_factor: 1}}
  - uuid: {OTHER_OFFERING}
    name: Other Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
{offering_users}
{rest}
"#
    );
    Scenario::from_yaml_str(&yaml).expect("valid scenario")
}

pub struct Harness {
    pub sim: Simulator,
    plugins: PluginDir,
    pub state: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
    pub agent: Agent,
}

/// What a test changes in the agent's configuration and set-up.
#[derive(Default)]
pub struct Options<'a> {
    /// Top-level config lines (no indentation), e.g. `reporting_periods: 1`.
    pub global: &'a str,
    /// Lines of the demo offering itself (4-space indented), e.g.
    /// `    username_management_backend: template`.
    pub offering: &'a str,
    /// Extra `backend_settings` lines (8-space indented) of the demo offering.
    pub settings: &'a str,
    /// An optional second offering (YAML list item); `SIMURL` is replaced by the API URL.
    pub other: &'a str,
    /// Per-attempt Waldur request timeout instead of the default 600 s.
    pub waldur_timeout: Option<Duration>,
    /// A dry run recording into this plan.
    pub dry_run: Option<std::sync::Arc<waldur_agent::dry_run::Plan>>,
    /// Past the guards against mass removal (`run --force`).
    pub force: bool,
}

/// `offering_settings` are extra `backend_settings` lines (8-space indented) for the demo
/// offering; `other` is an optional second offering (YAML list item) appended to the config.
pub fn harness(scenario: Scenario, offering_settings: &str, other: &str) -> Harness {
    harness_with(
        scenario,
        Options {
            settings: offering_settings,
            other,
            ..Options::default()
        },
    )
}

pub fn harness_with(scenario: Scenario, options: Options<'_>) -> Harness {
    harness_configured(scenario, &[], |sim, plugins, state| {
        agent_for(sim, plugins, state, &options)
    })
}

/// A harness with the standard test plugins plus `extra` (`(package, file name)`), whose
/// agent `agent` makes from the simulator, the plugin directory and the state directory.
pub fn harness_configured(
    scenario: Scenario,
    extra: &[(&str, &str)],
    agent: impl FnOnce(&Simulator, &PluginDir, &Path) -> Agent,
) -> Harness {
    let sim = Simulator::start(scenario).expect("start the simulator");
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    plugins.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    plugins.add(
        &workspace_plugin("waldur-plugin-async-remote"),
        "async-remote.so",
    );
    plugins.add(
        &workspace_plugin("waldur-plugin-basic-username"),
        "usernames.so",
    );
    for (package, file) in extra {
        plugins.add(&workspace_plugin(package), file);
    }
    let state = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = agent(&sim, &plugins, state.path());
    Harness {
        sim,
        plugins,
        state,
        runtime,
        agent,
    }
}

/// An agent for the simulator and the demo state directory, configured by `options`.
fn agent_for(sim: &Simulator, plugins: &PluginDir, state: &Path, options: &Options<'_>) -> Agent {
    let config = format!(
        r#"
timezone: UTC
expose_backend_error_details: false
{global}
offerings:
  - name: Demo Offering
    waldur_api_url: {url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    backend_type: demo
    order_processing_backend: demo
    reporting_backend: demo
    membership_sync_backend: demo
{offering}
    backend_settings:
        state_dir: {state}
{settings}
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU, unit_factor: 60}}
      mem: {{measured_unit: GB-Hours, accounting_type: usage, label: RAM}}
{other}
"#,
        global = options.global,
        offering = options.offering,
        settings = options.settings,
        url = sim.url(),
        state = state.display(),
        other = options.other.replace("SIMURL", &sim.url()),
    );
    let mut agent = agent_with_config(&config, plugins);
    if let Some(timeout) = options.waldur_timeout {
        agent = agent.with_waldur_timeout(timeout);
    }
    if let Some(plan) = &options.dry_run {
        agent = agent.with_dry_run(std::sync::Arc::clone(plan));
    }
    if options.force {
        agent = agent.forced();
    }
    agent
}

/// An in-process agent with this configuration (YAML) and the plugins of `plugins`.
pub fn agent_with_config(config: &str, plugins: &PluginDir) -> Agent {
    let loaded = waldur_agent::config::parse(config, "e2e.yaml").expect("valid config");
    let registry = Registry::new(Catalog::scan(
        &SearchPath::only([plugins.path().to_path_buf()]),
        TrustPolicy::Strict,
        None,
    ));
    Agent::new(loaded.config, registry)
}

impl Harness {
    /// A new agent process on the same Waldur and backend state, e.g. after the operator
    /// changed the configuration.
    pub fn restart_agent(&mut self, options: Options<'_>) {
        self.agent = agent_for(&self.sim, &self.plugins, self.state.path(), &options);
    }
}

pub fn fast() -> RunSettings {
    RunSettings {
        order_retry: OrderRetry {
            attempts: 3,
            delay: Duration::from_millis(20),
        },
    }
}

impl Harness {
    pub fn cycle(&self, mode: Mode) -> CycleReport {
        self.cycle_with(mode, fast())
    }

    pub fn cycle_with(&self, mode: Mode, settings: RunSettings) -> CycleReport {
        self.runtime
            .block_on(run_cycle(&self.agent, mode, settings))
    }

    pub fn order_state(&self, uuid: &str) -> (String, String) {
        let order = self.sim.order(uuid).expect("order exists");
        (order.state, order.error_message)
    }

    pub fn resource(&self, uuid: &str) -> waldur_sim::store::Resource {
        self.sim.resource(uuid).expect("resource exists")
    }

    /// The demo backend's state file.
    pub fn backend_state(&self) -> Value {
        let text = std::fs::read_to_string(self.state.path().join("state.json"))
            .unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    }

    pub fn account(&self, name: &str) -> Option<Value> {
        self.backend_state()["accounts"].get(name).cloned()
    }

    /// The sorted user names of a demo account.
    pub fn account_users(&self, name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .account(name)
            .and_then(|a| a["users"].as_object().map(|u| u.keys().cloned().collect()))
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `user_uuid` joins the project [`PROJECT`] with `role`.
    pub fn join_team(&self, user_uuid: &str, role: &str) {
        self.sim.with_store_mut(|store| {
            store.team.push(waldur_sim::store::TeamMember {
                project_uuid: PROJECT.into(),
                user_uuid: user_uuid.into(),
                role: role.into(),
            })
        });
    }

    /// Adds an order for an existing resource, as Waldur would when a user asks for it.
    pub fn add_order(&self, uuid: &str, kind: &str, state: &str, resource: &str, limits: Value) {
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

    /// Bob gets a role in the project, in Waldur.
    pub fn bob_joins_the_team(&self) {
        self.sim.with_store_mut(|store| {
            store.team.push(waldur_sim::store::TeamMember {
                project_uuid: PROJECT.into(),
                user_uuid: BOB.into(),
                role: "PROJECT.MEMBER".into(),
            });
        });
    }

    /// Drops a usage file for the demo backend (backend units: cpu in minutes).
    pub fn usage_file(&self, month: &str, account: &str, usage: Value) {
        let dir = self.state.path().join("usage").join(month);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{account}.json")), usage.to_string()).unwrap();
    }

    /// `(billing_period, type) -> usage` of a resource in the simulator.
    pub fn reported(&self, resource: &str) -> Vec<(String, String, String)> {
        reported_totals(&self.sim, resource)
    }

    /// `(username, usage)` of the user usages under the resource's component usages of a type.
    pub fn reported_users(
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

/// `(billing_period, type, usage)` of a resource's totals in the simulator, sorted.
pub fn reported_totals(sim: &Simulator, resource: &str) -> Vec<(String, String, String)> {
    sim.with_store(|store| {
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

pub fn outcome<'a>(report: &'a CycleReport, offering: &str) -> &'a OfferingOutcome {
    &report
        .offerings
        .iter()
        .find(|(name, _)| name == offering)
        .unwrap_or_else(|| panic!("{offering} not in {report:?}"))
        .1
}

/// `(resources, missing, failed, totals_sent)` of an offering's report cycle.
pub fn report_counts(report: &CycleReport, offering: &str) -> (usize, usize, usize, usize) {
    match outcome(report, offering) {
        OfferingOutcome::Usage(s) => (s.resources, s.missing, s.failed, s.totals_sent),
        other => panic!("not a report outcome: {other:?}"),
    }
}

pub const CREATE_A: &str = "77777777777777777777777777777701";
pub const CREATE_B: &str = "77777777777777777777777777777702";
pub const RES_A: &str = "88888888888888888888888888888801";
pub const RES_B: &str = "88888888888888888888888888888802";

pub fn two_create_orders() -> String {
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

/// `YYYY-MM` of this month and the one before, in UTC (the configured timezone).
pub fn months() -> (String, String) {
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
    let this = now.date().first_of_month();
    let previous = this.checked_sub(jiff::ToSpan::months(1)).unwrap();
    (
        this.strftime("%Y-%m").to_string(),
        previous.strftime("%Y-%m").to_string(),
    )
}
