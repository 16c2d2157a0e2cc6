//! `waldur-agent demo`: the agent's main job end to end with no external server. The bundled
//! Waldur simulator starts in-process with a small scenario; the demo and basic-username
//! plugins are loaded from the build directory through the real loader; every polling mode
//! runs once; the outcome is printed as tables.

use std::path::{Path, PathBuf};

use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::{json, Value};
use waldur_sim::{Scenario, Simulator};

use crate::modes::cycle::{run_cycle, CycleReport, OfferingOutcome, RunSettings};
use crate::modes::runtime::{Agent, Mode};
use crate::plugins::discover::{SearchPath, PLUGIN_PATH_ENV};
use crate::plugins::{Catalog, Prober, Registry, TrustPolicy};

const SCENARIO: &str = include_str!("scenario.yaml");
const OFFERING: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e01";

/// Where the demo looks for plugins besides the standard path.
pub struct DemoOptions {
    pub plugin_dirs: Vec<PathBuf>,
    /// Keep the demo backend's state here instead of a temporary directory.
    pub state_dir: Option<PathBuf>,
}

/// Runs the demo and prints what happened; `Ok(false)` when something did not go as planned.
pub fn run(options: DemoOptions) -> Result<bool, String> {
    let scenario = Scenario::from_yaml_str(SCENARIO).map_err(|e| format!("demo scenario: {e}"))?;
    let sim = Simulator::start(scenario).map_err(|e| format!("cannot start the simulator: {e}"))?;
    let temp;
    let state_dir = match options.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            dir
        }
        None => {
            temp =
                tempfile::tempdir().map_err(|e| format!("cannot create a state directory: {e}"))?;
            temp.path().to_path_buf()
        }
    };
    println!("Waldur simulator: {}", sim.url());
    println!("Demo backend state: {}", state_dir.display());

    let agent = Agent::new(config(&sim, &state_dir)?, registry(&options.plugin_dirs)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut reports = Vec::new();
    reports.push(runtime.block_on(run_cycle(
        &agent,
        Mode::OrderProcess,
        RunSettings::default(),
    )));
    drop_usage(&sim, &state_dir)?;
    reports.push(runtime.block_on(run_cycle(
        &agent,
        Mode::MembershipSync,
        RunSettings::default(),
    )));
    reports.push(runtime.block_on(run_cycle(&agent, Mode::Report, RunSettings::default())));

    print_cycles(&reports);
    print_waldur(&sim);
    print_backend(&state_dir);
    let ok = reports.iter().all(|r| r.failures() == 0);
    println!(
        "{}",
        if ok {
            "Demo finished: every mode ran."
        } else {
            "Demo finished with failures (see above)."
        }
    );
    Ok(ok)
}

fn config(sim: &Simulator, state_dir: &Path) -> Result<crate::config::Config, String> {
    let text = format!(
        r#"
timezone: UTC
offerings:
  - name: Demo HPC
    waldur_api_url: {url}
    waldur_api_token: demo-token
    waldur_offering_uuid: {OFFERING}
    backend_type: demo
    order_processing_backend: demo
    membership_sync_backend: demo
    reporting_backend: demo
    username_management_backend: template
    backend_settings:
      state_dir: {state}
      customer_prefix: "c_"
      project_prefix: "p_"
      max_limits: {{cpu: 10000}}
      username_template: "{{first_initial}}{{last_name}}"
    backend_components:
      cpu: {{measured_unit: core-hours, accounting_type: limit, label: CPU, unit_factor: 60}}
      mem: {{measured_unit: GB-hours, accounting_type: usage, label: Memory}}
"#,
        url = sim.url(),
        state = state_dir.display(),
    );
    crate::config::parse(&text, "demo configuration")
        .map(|loaded| loaded.config)
        .map_err(|e| e.to_string())
}

/// The standard path, the given directories, and the directory of this executable (where
/// `cargo build` puts the bundled plugins).
fn registry(extra: &[PathBuf]) -> Result<Registry, String> {
    let mut dirs = extra.to_vec();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    let env = std::env::var(PLUGIN_PATH_ENV).ok();
    let search = SearchPath::standard(env.as_deref(), &[], &dirs);
    let prober = Prober::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let catalog = Catalog::scan(&search, TrustPolicy::Strict, Some(&prober));
    for entry in ["demo", "template"] {
        let found = catalog.records.iter().filter(|r| r.is_ok()).any(|r| {
            r.manifest
                .as_ref()
                .is_some_and(|m| m.entries.iter().any(|e| e.name == entry))
        });
        if !found {
            return Err(format!(
                "plugin entry '{entry}' not found; build the plugins first (cargo build --release) \
                 or pass --plugin-dir"
            ));
        }
    }
    Ok(Registry::new(catalog))
}

/// Usage an operator would drop for the demo backend: this month's minutes and GB-hours.
fn drop_usage(sim: &Simulator, state_dir: &Path) -> Result<(), String> {
    let month = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    let dir = state_dir.join("usage").join(month);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let usernames: Vec<String> = sim.with_store(|store| {
        store
            .offering_users
            .values()
            .filter_map(|u| u.username.clone())
            .collect()
    });
    let accounts: Vec<String> = sim.with_store(|store| {
        store
            .resources
            .values()
            .filter(|r| !r.backend_id.is_empty())
            .map(|r| r.backend_id.clone())
            .collect()
    });
    for (n, account) in accounts.iter().enumerate() {
        let usage: serde_json::Map<String, Value> = usernames
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let minutes = 600 * (n + 1) + 125 * i;
                (
                    user.clone(),
                    json!({"cpu": minutes, "mem": 12.5 * (i + 1) as f64}),
                )
            })
            .collect();
        let path = dir.join(format!("{account}.json"));
        std::fs::write(&path, Value::Object(usage).to_string())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header(header);
    table
}

fn print_cycles(reports: &[CycleReport]) {
    let mut t = table(&["MODE", "OFFERING", "OUTCOME"]);
    for report in reports {
        for (offering, outcome) in &report.offerings {
            let text = match outcome {
                OfferingOutcome::Skipped(why) => format!("skipped: {why}"),
                OfferingOutcome::Orders(s) => format!(
                    "{} done, {} rejected, {} erred, {} waiting",
                    s.done, s.rejected, s.erred, s.waiting
                ),
                OfferingOutcome::Usage(s) => format!(
                    "{} resource(s): {} period total(s) sent, {} per-user batch(es)",
                    s.resources, s.totals_sent, s.user_usages_sent
                ),
                OfferingOutcome::Membership(s) => format!(
                    "{} resource(s): {} user(s) added, {} removed",
                    s.resources, s.users_added, s.users_removed
                ),
                OfferingOutcome::Failed(e) => format!("FAILED: {e}"),
            };
            t.add_row([report.mode.name().to_string(), offering.clone(), text]);
        }
    }
    println!("\nCycles\n{t}");
}

fn print_waldur(sim: &Simulator) {
    sim.with_store(|store| {
        let mut orders = table(&["ORDER", "RESOURCE", "TYPE", "STATE", "MESSAGE"]);
        for order in store.orders.values() {
            let resource = store
                .resources
                .get(&order.resource_uuid)
                .map(|r| r.name.as_str())
                .unwrap_or("");
            orders.add_row([
                &order.uuid[..8],
                resource,
                &order.type_,
                &order.state,
                &order.error_message,
            ]);
        }
        println!("\nWaldur orders\n{orders}");
        let mut resources = table(&["RESOURCE", "STATE", "BACKEND ID", "LIMITS"]);
        for r in store.resources.values() {
            resources.add_row([
                r.name.clone(),
                r.state.clone(),
                r.backend_id.clone(),
                Value::Object(r.limits.clone()).to_string(),
            ]);
        }
        println!("\nWaldur resources\n{resources}");
        let mut users = table(&["USER", "OFFERING USERNAME", "STATE"]);
        for u in store.offering_users.values() {
            let name = store
                .users
                .get(&u.user_uuid)
                .map(|x| x.username.as_str())
                .unwrap_or("");
            users.add_row([name, u.username.as_deref().unwrap_or("-"), &u.state]);
        }
        println!("\nWaldur offering users\n{users}");
        let mut usage = table(&["RESOURCE", "PERIOD", "COMPONENT", "USAGE", "PER USER"]);
        for cu in store.component_usages.values() {
            let resource = store
                .resources
                .get(&cu.resource_uuid)
                .map(|r| r.name.as_str())
                .unwrap_or("");
            let per_user: Vec<String> = store
                .user_usages
                .values()
                .filter(|u| u.component_usage_uuid == cu.uuid)
                .map(|u| format!("{}={}", u.username, u.usage))
                .collect();
            usage.add_row([
                resource,
                &cu.billing_period,
                &cu.type_,
                &cu.usage,
                &per_user.join(" "),
            ]);
        }
        println!("\nUsage reported to Waldur\n{usage}");
    });
}

fn print_backend(state_dir: &Path) {
    let state: Value = std::fs::read_to_string(state_dir.join("state.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut accounts = table(&[
        "ACCOUNT",
        "PARENT",
        "USERS",
        "LIMITS (backend units)",
        "QOS",
    ]);
    if let Some(map) = state["accounts"].as_object() {
        for (name, a) in map {
            let users: Vec<&String> = a["users"]
                .as_object()
                .map(|u| u.keys().collect())
                .unwrap_or_default();
            accounts.add_row([
                name.clone(),
                a["parent"].as_str().unwrap_or("").to_string(),
                users
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                a["limits"].to_string(),
                a["qos"].as_str().unwrap_or("").to_string(),
            ]);
        }
    }
    println!("\nAccounts on the demo backend\n{accounts}");
}
