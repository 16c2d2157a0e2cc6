//! The CLI tools end to end: the real tool code (library functions and the real binary), the
//! Waldur simulator over HTTP, and the real demo and basic-username plugins.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use waldur_agent::modes::cycle::{run_cycle, RunSettings};
use waldur_agent::modes::runtime::{Agent, Mode};
use waldur_agent::modes::tools::{self, ToolOutcome};
use waldur_agent::plugins::{Catalog, Registry, SearchPath, TrustPolicy};
use waldur_sim::{Scenario, Simulator};
use waldur_test_support::{workspace_plugin, PluginDir};

const TOKEN: &str = "tools-token";
const OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
const RES: &str = "88888888888888888888888888888801";
const ORDER: &str = "77777777777777777777777777777701";
const BOB_OU: &str = "33333333333333333333333333333302";

fn scenario() -> Scenario {
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
    plugin_options: {{username_generation_policy: service_provider,
                      service_provider_can_create_offering_user: true}}
    components:
      - {{type: cpu, name: Old CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1,
          limit_period: month}}
offering_users:
  - {{offering: Demo Offering, user: alice@idp, username: alice1, state: OK}}
  - {{uuid: {BOB_OU}, offering: Demo Offering, user: bob@idp, state: Requested}}
resources:
  - {{uuid: {RES}, name: alloc-a, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: 10}}}}
orders:
  - {{uuid: {ORDER}, type: Create, state: pending-provider, resource: {RES}, limits: {{cpu: 10}}}}
"#
    );
    Scenario::from_yaml_str(&yaml).expect("valid scenario")
}

struct Harness {
    sim: Simulator,
    plugins: PluginDir,
    state: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

fn harness() -> Harness {
    let sim = Simulator::start(scenario()).expect("start the simulator");
    sim.set_request_log(true, true);
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    plugins.add(
        &workspace_plugin("waldur-plugin-basic-username"),
        "usernames.so",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Harness {
        sim,
        plugins,
        state: tempfile::tempdir().unwrap(),
        runtime,
    }
}

impl Harness {
    fn config(&self, token: &str) -> String {
        format!(
            r#"
timezone: UTC
offerings:
  - name: Demo Offering
    waldur_api_url: {url}
    waldur_api_token: {token}
    waldur_offering_uuid: {OFFERING}
    backend_type: demo
    order_processing_backend: demo
    reporting_backend: demo
    membership_sync_backend: demo
    username_management_backend: template
    backend_settings:
        state_dir: {state}
        default_homedir_umask: "0022"
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU, limit: 100,
             description: Cores, unit_factor: 60}}
      mem: {{measured_unit: GB-Hours, accounting_type: usage, label: RAM}}
"#,
            url = self.sim.url(),
            state = self.state.path().display(),
        )
    }

    fn agent(&self, token: &str) -> Agent {
        let loaded =
            waldur_agent::config::parse(&self.config(token), "tools.yaml").expect("valid config");
        let registry = Registry::new(Catalog::scan(
            &SearchPath::only([self.plugins.path().to_path_buf()]),
            TrustPolicy::Strict,
            None,
        ));
        Agent::new(loaded.config, registry)
    }

    fn backend_state(&self) -> Value {
        let text = std::fs::read_to_string(self.state.path().join("state.json"))
            .unwrap_or_else(|_| "{}".into());
        serde_json::from_str(&text).unwrap()
    }

    /// Runs the real binary with a config file written for `token`.
    fn binary(&self, token: &str, args: &[&str]) -> (i32, String) {
        self.binary_with(&self.config(token), args)
    }

    /// Runs the real binary with this config text.
    fn binary_with(&self, config_text: &str, args: &[&str]) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
            .args(args)
            .arg("-c")
            .arg(&config)
            .arg("--plugin-dir")
            .arg(self.plugins.path())
            .env("RUST_LOG", "error")
            .env("WALDUR_AGENT_RUNTIME_DIR", dir.path().join("run"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (
            output.status.code().unwrap_or(-1),
            format!("{stdout}{stderr}"),
        )
    }

    fn components(&self) -> Vec<Value> {
        self.sim.state()["offerings"][OFFERING]["components"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[test]
fn diagnostics_pass_and_report_a_rejected_token() {
    let h = harness();
    let agent = h.agent(TOKEN);
    let reports = h.runtime.block_on(tools::diagnostics::diagnostics(&agent));
    assert_eq!(reports.len(), 1);
    assert!(reports[0].passed(), "{reports:?}");
    let names: Vec<&str> = reports[0].checks.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "Waldur version (B1)",
        "Waldur user (B2)",
        "Waldur offering (B3)",
        "pending orders (O1)",
        "plugin 'demo'",
        "backend 'demo' ping",
        "backend 'demo' diagnostics",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let orders = reports[0]
        .checks
        .iter()
        .find(|c| c.name == "pending orders (O1)")
        .unwrap();
    assert!(orders.detail.starts_with("1 "), "{}", orders.detail);
    let o1 = h
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/marketplace-orders/")
        .expect("O1 sent");
    assert!(o1.query.contains("field=project_name"), "{}", o1.query);

    let (code, output) = h.binary(TOKEN, &["diagnostics"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("offering 'Demo Offering': ok"), "{output}");

    let (code, output) = h.binary("wrong-token", &["diagnostics"]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("FAILED"), "{output}");
    assert!(output.contains("401"), "{output}");
}

#[test]
fn a_backend_type_no_plugin_registers_fails_diagnostics_and_a_single_run() {
    let h = harness();
    let config = h
        .config(TOKEN)
        .replace("backend_type: demo", "backend_type: demoo");
    let (code, output) = h.binary_with(&config, &["diagnostics"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("plugin 'demoo'") && output.contains("no installed plugin"),
        "{output}"
    );
    let (code, output) = h.binary_with(&config, &["run", "-m", "report", "--once"]);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("backend_type: no installed plugin provides the backend entry 'demoo'")
            && output.contains("run --once: 1 plugin entr(ies) of the config not installed"),
        "{output}"
    );
}

#[test]
fn diagnostics_never_print_a_password_in_the_api_url() {
    let h = harness();
    let config = h.config(TOKEN).replace(
        "waldur_api_url: http://",
        "waldur_api_url: http://agent:s3cr3t-pw@",
    );
    let (_, output) = h.binary_with(&config, &["diagnostics"]);
    assert!(!output.contains("s3cr3t-pw"), "{output}");
    assert!(output.contains("agent:***@"), "{output}");
}

#[test]
fn load_components_creates_then_updates() {
    let h = harness();
    let agent = h.agent(TOKEN);
    let report = h
        .runtime
        .block_on(tools::components::load_components(&agent));
    let ToolOutcome::Done(summary) = report.outcome("Demo Offering").unwrap() else {
        panic!("{report:?}");
    };
    assert_eq!(summary.created, ["mem"]);
    assert_eq!(summary.updated, ["cpu"]);
    assert!(summary.failed.is_empty(), "{summary:?}");
    let components = h.components();
    assert_eq!(components.len(), 2, "{components:?}");
    let cpu = components.iter().find(|c| c["type"] == "cpu").unwrap();
    assert_eq!(cpu["name"], "CPU");
    assert_eq!(cpu["limit_amount"], 100.0);
    // Not configured locally: the existing period is kept.
    assert_eq!(cpu["limit_period"], "month");
    let mem = components.iter().find(|c| c["type"] == "mem").unwrap();
    assert_eq!(mem["billing_type"], "usage");
    assert_eq!(mem["name"], "RAM");
    assert_eq!(mem["measured_unit"], "GB-Hours");

    let bodies: Vec<(String, Value)> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("_offering_component/"))
        .map(|r| {
            (
                r.path.clone(),
                serde_json::from_str(r.request_body.as_deref().unwrap_or("{}")).unwrap(),
            )
        })
        .collect();
    assert_eq!(bodies.len(), 2);
    let (_, create) = bodies
        .iter()
        .find(|(p, _)| p.ends_with("/create_offering_component/"))
        .unwrap();
    assert_eq!(
        create,
        &json!({"billing_type": "usage", "type": "mem", "name": "RAM",
                "measured_unit": "GB-Hours", "limit_amount": null})
    );
    let (_, update) = bodies
        .iter()
        .find(|(p, _)| p.ends_with("/update_offering_component/"))
        .unwrap();
    assert_eq!(update["description"], "Cores");
    assert!(update.get("unit_factor").is_none(), "{update}");
    assert!(update["uuid"].is_string(), "{update}");

    // Second run: both exist now.
    let (code, output) = h.binary(TOKEN, &["load-components"]);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("created none; updated cpu, mem; failed none"),
        "{output}"
    );
    assert_eq!(h.components().len(), 2);
}

#[test]
fn sync_offering_users_gives_a_requested_user_a_username() {
    let h = harness();
    let agent = h.agent(TOKEN);
    let report = h
        .runtime
        .block_on(tools::offering_users::sync_offering_users(&agent));
    let ToolOutcome::Done(summary) = report.outcome("Demo Offering").unwrap() else {
        panic!("{report:?}");
    };
    assert_eq!(summary.changed, 1, "{summary:?}");
    assert_eq!(summary.states.get("OK"), Some(&2), "{summary:?}");
    let bob = &h.sim.state()["offering_users"][BOB_OU];
    assert_eq!(bob["state"], "OK", "{bob}");
    assert_eq!(bob["username"], "bjones", "{bob}");
    // No agent registration from a tool.
    assert!(!h
        .sim
        .requests()
        .iter()
        .any(|r| r.path.contains("site-agent")));
}

#[test]
fn sync_resource_limits_pushes_the_backend_limits() {
    let h = harness();
    let agent = h.agent(TOKEN);
    // The order cycle creates the account with cpu 10 on the demo backend.
    let cycle = h.runtime.block_on(run_cycle(
        &agent,
        Mode::OrderProcess,
        RunSettings::default(),
    ));
    assert_eq!(cycle.failures(), 0, "{cycle:?}");
    let resource = h.sim.resource(RES).unwrap();
    assert!(!resource.backend_id.is_empty());
    h.sim.with_store_mut(|s| {
        let r = s.resources.get_mut(RES).unwrap();
        r.state = "OK".into();
        r.limits = json!({"cpu": 3}).as_object().cloned().unwrap();
    });
    let report = h
        .runtime
        .block_on(tools::limits::sync_resource_limits(&agent));
    let ToolOutcome::Done(summary) = report.outcome("Demo Offering").unwrap() else {
        panic!("{report:?}");
    };
    assert_eq!((summary.resources, summary.pushed), (1, 1), "{summary:?}");
    assert_eq!(h.sim.resource(RES).unwrap().limits["cpu"], json!(10));
    assert!(h
        .sim
        .requests()
        .iter()
        .any(|r| r.path == "/api/marketplace-resources/"));

    // In step now: nothing to push.
    let (code, output) = h.binary(TOKEN, &["sync-resource-limits"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("limits pushed for 0"), "{output}");
}

#[test]
fn create_homedirs_records_the_ok_users() {
    let h = harness();
    let (code, output) = h.binary(TOKEN, &["create-homedirs"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("alice1"), "{output}");
    let homedirs = &h.backend_state()["homedirs"];
    assert_eq!(homedirs["alice1"]["umask"], "0022", "{homedirs}");
    // bob is still Requested, without a username.
    assert_eq!(homedirs.as_object().unwrap().len(), 1, "{homedirs}");
}

fn healthz(heartbeat: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .arg("healthz")
        .args(args)
        .env("WALDUR_AGENT_HEARTBEAT_FILE", heartbeat)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn healthz_fresh_stale_missing_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let heartbeat = dir.path().join("heartbeat");
    let (code, output) = healthz(&heartbeat, &["--liveness-only"]);
    assert_eq!(code, 1, "{output}");
    assert_eq!(output.lines().count(), 1, "{output}");

    // `run --once` writes the heartbeat.
    let h = harness();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, h.config(TOKEN)).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .args(["run", "-m", "report", "--once", "-c"])
        .arg(&config)
        .arg("--plugin-dir")
        .arg(h.plugins.path())
        .env("WALDUR_AGENT_HEARTBEAT_FILE", &heartbeat)
        .env("RUST_LOG", "error")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(heartbeat.exists());

    let (code, output) = healthz(&heartbeat, &["--liveness-only", "--max-age", "300"]);
    assert_eq!(code, 0, "{output}");
    std::thread::sleep(Duration::from_millis(1100));
    let (code, output) = healthz(&heartbeat, &["--liveness-only", "--max-age", "1"]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("old (max 1s)"), "{output}");

    // Readiness: Waldur answers users/me for the offering.
    let config_arg = config.to_str().unwrap();
    let (code, output) = healthz(&heartbeat, &["-c", config_arg]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("ready"), "{output}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, h.config("wrong-token")).unwrap();
    let (code, output) = healthz(&heartbeat, &["-c", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("not ready"), "{output}");
}

/// The defect of issue 10: between two report cycles (30 min apart) the heartbeat went stale.
/// `run` now rewrites it every `heartbeat_interval_seconds` while it waits, in the runtime
/// directory, where `healthz -c` finds it.
#[test]
fn heartbeat_stays_fresh_between_cycles() {
    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("run");
    let config = dir.path().join("config.yaml");
    let text = format!(
        "runtime_dir: {}\nheartbeat_interval_seconds: 1\n{}",
        runtime.display(),
        h.config(TOKEN)
    );
    std::fs::write(&config, text).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .args(["run", "-m", "report", "-c"])
        .arg(&config)
        .arg("--plugin-dir")
        .arg(h.plugins.path())
        .env_remove("WALDUR_AGENT_HEARTBEAT_FILE")
        .env("RUST_LOG", "error")
        .spawn()
        .unwrap();
    let heartbeat = runtime.join("heartbeat");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !heartbeat.exists() {
        assert!(std::time::Instant::now() < deadline, "no heartbeat written");
        std::thread::sleep(Duration::from_millis(50));
    }
    let liveness = |max_age: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
            .args(["healthz", "--liveness-only", "--max-age", max_age, "-c"])
            .arg(&config)
            .env_remove("WALDUR_AGENT_HEARTBEAT_FILE")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code().unwrap_or(-1), stdout)
    };
    // The first cycle ended long before the last probe; the next one is 30 minutes away.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(1000));
        let (code, output) = liveness("3");
        assert_eq!(code, 0, "stale between cycles: {output}");
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    // With the agent gone, the same probe fails once the file ages past the bound.
    std::thread::sleep(Duration::from_millis(2100));
    let (code, output) = liveness("2");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("old (max 2s)"), "{output}");
}

/// The reference's command names, as links to the binary (the Debian package installs them in
/// /usr/bin): each is its subcommand with the reference's flags, and its help names the link.
#[test]
fn reference_command_names_are_links_that_take_the_reference_flags() {
    let links = tempfile::tempdir().unwrap();
    let link = |name: &str| links.path().join(name);
    for program in waldur_agent::cli::PROGRAM_NAMES {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_waldur-agent"), link(program.name)).unwrap();
        let output = Command::new(link(program.name))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{}: {help}", program.name);
        assert!(
            help.contains(&format!("Usage: {} [OPTIONS]", program.name)),
            "{}: {help}",
            program.name
        );
    }

    let h = harness();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("waldur-site-agent-config.yaml");
    std::fs::write(&config, h.config(TOKEN)).unwrap();
    let heartbeat = dir.path().join("heartbeat");
    let run = |program: &str, args: &[&str]| {
        let output = Command::new(link(program))
            .args(args)
            .arg("--plugin-dir")
            .arg(h.plugins.path())
            .env("RUST_LOG", "error")
            .env("WALDUR_AGENT_RUNTIME_DIR", dir.path().join("run"))
            .env("WALDUR_AGENT_HEARTBEAT_FILE", &heartbeat)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    };
    // The reference's order_process unit, for one cycle; `-c` as the reference spells it.
    let (code, output) = run(
        "waldur_site_agent",
        &[
            "-m",
            "order_process",
            "-c",
            config.to_str().unwrap(),
            "--once",
        ],
    );
    assert_eq!(code, 0, "{output}");
    assert_eq!(h.sim.order(ORDER).unwrap().state, "done");
    // A tool with the mode flag the reference's tools accept, and the default config file.
    let (code, output) = run("waldur_site_diagnostics", &["-m", "report"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("offering 'Demo Offering': ok"), "{output}");
    // The Helm chart's probes.
    let probe = |args: &[&str]| {
        let output = Command::new(link("waldur_site_healthz"))
            .args(args)
            .env("WALDUR_AGENT_HEARTBEAT_FILE", &heartbeat)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code().unwrap_or(-1), stdout)
    };
    let (code, output) = probe(&["--liveness-only"]);
    assert_eq!(code, 0, "{output}");
    let (code, output) = probe(&["--config-file", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("ready"), "{output}");
}
