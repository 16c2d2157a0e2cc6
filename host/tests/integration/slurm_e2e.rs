//! The whole agent with the SLURM plugin: `waldur-agent run --once` in every polling mode, from
//! a config in the reference's YAML format, against the Waldur simulator and REAL SLURM
//! accounting (scripts/slurm-setup.sh). Jobs are submitted with `sbatch` as real Linux users
//! and their usage reaches Waldur through `sacct`.
//!
//! Without SLURM these tests skip, except under `CI=true`, where they fail.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use waldur_sim::{Scenario, Simulator};
use waldur_test_support::slurm::{daemon_logs, require_real_slurm, sacctmgr_rows, AccountGuard};
use waldur_test_support::{workspace_plugin, PluginDir};

const TOKEN: &str = "slurm-e2e-token";
pub(crate) const OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
const BROKEN_OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f02";
const PROJECT: &str = "99999999999999999999999999999999";
const ALICE: &str = "44444444444444444444444444444401";
const BOB: &str = "44444444444444444444444444444402";
pub(crate) const RES: &str = "88888888888888888888888888888801";
pub(crate) const BROKEN_RES: &str = "88888888888888888888888888888802";
pub(crate) const CREATE: &str = "77777777777777777777777777777701";
const BROKEN_CREATE: &str = "77777777777777777777777777777702";

/// Real Linux users created by scripts/slurm-setup.sh, so `sbatch` can run their jobs.
pub(crate) const USER_A: &str = "wa-alice";
pub(crate) const USER_B: &str = "wa-bob";

fn scenario() -> Scenario {
    let yaml = format!(
        r#"
tokens: ["{TOKEN}"]
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer One, slug: cust,
     service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: {PROJECT}, name: Project One, slug: proj, customer: cust}}
users:
  - {{uuid: {ALICE}, username: alice@idp, full_name: Alice Smith, email: alice@example.org}}
  - {{uuid: {BOB}, username: bob@idp, full_name: Bob Jones, email: bob@example.org}}
team:
  - {{project: proj, user: alice@idp, role: PROJECT.ADMIN}}
  - {{project: proj, user: bob@idp, role: PROJECT.MEMBER}}
offerings:
  - uuid: {OFFERING}
    name: SLURM Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: CPU-minutes, billing_type: usage, unit_factor: 1}}
      - {{type: mem, name: RAM, measured_unit: MB-minutes, billing_type: usage, unit_factor: 1}}
      - {{type: gres/gpu, name: GPU, measured_unit: GPU-hours, billing_type: limit, unit_factor: 60}}
  - uuid: {BROKEN_OFFERING}
    name: Broken Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: CPU-minutes, billing_type: usage, unit_factor: 1}}
offering_users:
  - {{offering: SLURM Offering, user: alice@idp, username: {USER_A}, state: OK}}
  - {{offering: SLURM Offering, user: bob@idp, username: {USER_B}, state: OK}}
resources:
  - {{uuid: {RES}, name: alloc1, project: proj, offering: SLURM Offering, state: Creating, limits: {{gres/gpu: 5}}}}
  - {{uuid: {BROKEN_RES}, name: broken1, project: proj, offering: Broken Offering, state: Creating}}
orders:
  - {{uuid: {CREATE}, type: Create, state: executing, resource: {RES}, limits: {{gres/gpu: 5}}}}
  - {{uuid: {BROKEN_CREATE}, type: Create, state: executing, resource: {BROKEN_RES}}}
"#
    );
    Scenario::from_yaml_str(&yaml).expect("valid scenario")
}

/// The agent config, in the reference's format: a SLURM offering with account names under
/// `prefix`, and one whose `sacctmgr` always fails.
fn write_config(
    dir: &Path,
    sim: &Simulator,
    prefix: &str,
    broken_bin: &Path,
) -> std::path::PathBuf {
    let config = format!(
        r#"
timezone: UTC
reporting_periods: 1
runtime_dir: {runtime_dir}
offerings:
  - name: SLURM Offering
    waldur_api_url: {url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    username_management_backend: base
    order_processing_backend: slurm
    membership_sync_backend: slurm
    reporting_backend: slurm
    backend_type: slurm
    backend_settings:
      default_account: root
      customer_prefix: "{prefix}"
      project_prefix: "{prefix}"
      allocation_prefix: "{prefix}"
      qos_default: normal
      qos_paused: paused
      qos_downscaled: limited
      enable_user_homedir_account_creation: false
    backend_components:
      cpu: {{limit: 10, measured_unit: CPU-minutes, unit_factor: 1, accounting_type: usage, label: CPU}}
      mem: {{measured_unit: MB-minutes, unit_factor: 1, accounting_type: usage, label: RAM}}
      gres/gpu: {{measured_unit: GPU-hours, unit_factor: 60, accounting_type: limit, label: GPU}}
  - name: Broken Offering
    waldur_api_url: {url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {BROKEN_OFFERING}
    order_processing_backend: slurm
    membership_sync_backend: slurm
    reporting_backend: slurm
    backend_type: slurm
    backend_settings:
      default_account: root
      customer_prefix: "{prefix}b_"
      project_prefix: "{prefix}b_"
      allocation_prefix: "{prefix}b_"
      slurm_bin_path: {broken}
    backend_components:
      cpu: {{measured_unit: CPU-minutes, unit_factor: 1, accounting_type: usage, label: CPU}}
"#,
        url = sim.url(),
        broken = broken_bin.display(),
        runtime_dir = waldur_test_support::slurm::runtime_dir().display(),
    );
    let path = dir.join("agent.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A `slurm_bin_path` whose `sacctmgr` fails like one that cannot reach slurmdbd.
fn broken_slurm_bin(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("broken-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["sacctmgr", "sacct", "scancel", "sinfo"] {
        let script = bin.join(name);
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'sacctmgr: error: Problem talking to the database: Connection refused'\nexit 1\n",
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).unwrap();
    }
    bin
}

pub(crate) struct Run<'a> {
    config: &'a Path,
    plugins: &'a PluginDir,
}

impl Run<'_> {
    fn once(&self, mode: &str) -> String {
        self.once_exiting(mode, 0)
    }

    /// A single run that must exit with `code` (1: some order erred).
    pub(crate) fn once_exiting(&self, mode: &str, code: i32) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
            .env("WALDUR_AGENT_PLUGIN_PATH", "")
            .env("RUST_LOG", "info")
            .args(["run", "-m", mode, "--once", "-c"])
            .arg(self.config)
            .arg("--plugin-dir")
            .arg(self.plugins.path())
            .output()
            .unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(code), "{mode}:\n{log}");
        log
    }
}

/// One test's site: SLURM accounts under a prefix of its own (removed when it ends), the
/// simulator, the SLURM and username plugins, and the config.
pub(crate) struct SlurmSite {
    pub(crate) prefix: String,
    pub(crate) sim: Simulator,
    pub(crate) plugins: PluginDir,
    pub(crate) config: std::path::PathBuf,
    _work: tempfile::TempDir,
    _cleanup: AccountGuard,
}

impl SlurmSite {
    pub(crate) fn new(tag: &str) -> SlurmSite {
        let prefix = format!("{tag}{}_", std::process::id() % 100_000);
        let cleanup = AccountGuard::new(&prefix);
        let work = tempfile::tempdir().unwrap();
        let sim = Simulator::start(scenario()).unwrap();
        let plugins = PluginDir::new();
        plugins.add(&workspace_plugin("waldur-plugin-slurm"), "slurm.so");
        plugins.add(
            &workspace_plugin("waldur-plugin-basic-username"),
            "usernames.so",
        );
        let broken = broken_slurm_bin(work.path());
        let config = write_config(work.path(), &sim, &prefix, &broken);
        SlurmSite {
            prefix,
            sim,
            plugins,
            config,
            _work: work,
            _cleanup: cleanup,
        }
    }

    pub(crate) fn run(&self) -> Run<'_> {
        Run {
            config: &self.config,
            plugins: &self.plugins,
        }
    }
}

/// Fails with the order's error, the agent's log and the SLURM daemons' logs unless the
/// order is done.
pub(crate) fn assert_order_done(sim: &Simulator, order: &str, log: &str) {
    let order = sim.order(order).unwrap();
    assert_eq!(
        order.state,
        "done",
        "order {}: {}\nagent log:\n{log}\n{}",
        order.uuid,
        order.error_message,
        daemon_logs(30)
    );
}

/// `(account, user, parent, GrpTRESMins, QOS)` of every association under `prefix`.
fn associations(prefix: &str) -> Vec<[String; 5]> {
    let mut rows: Vec<[String; 5]> = sacctmgr_rows(&[
        "show",
        "assoc",
        "format=Account,User,ParentName,GrpTRESMins,QOS",
    ])
    .into_iter()
    .filter(|r| r[0].starts_with(prefix))
    .map(|r| [0, 1, 2, 3, 4].map(|i| r.get(i).cloned().unwrap_or_default()))
    .collect();
    rows.sort();
    rows
}

fn account_row(prefix: &str, account: &str) -> Option<[String; 5]> {
    associations(prefix)
        .into_iter()
        .find(|r| r[0] == account && r[1].is_empty())
}

pub(crate) fn users_of(prefix: &str, account: &str) -> Vec<String> {
    associations(prefix)
        .into_iter()
        .filter(|r| r[0] == account && !r[1].is_empty())
        .map(|r| r[1].clone())
        .collect()
}

/// Runs a job as `user` under `account` and waits until `sacct` shows it completed.
fn run_job(user: &str, account: &str) {
    let output = Command::new("runuser")
        .args(["-u", user, "--", "sbatch", "--parsable", "-A", account])
        // No output file: job ids restart after a wipe of the SLURM state, and a stale
        // /tmp/slurm-<id>.out of another user would fail the job at once.
        .args(["-n1", "--mem=100", "--chdir=/tmp", "--output=/dev/null"])
        .args(["--wrap", "sleep 3"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let job = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The account narrows the query to this run's job: after a wipe of slurmctld's state
        // job ids restart while slurmdbd still holds finished jobs under the same ids, and a
        // stale COMPLETED one would let the report run before this job has any usage.
        let state = Command::new("sacct")
            .args(["-n", "-X", "-P", "-j", &job, "-A", account, "-o", "State"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&state.stdout).trim() == "COMPLETED" {
            break;
        }
        assert!(Instant::now() < deadline, "job {job} did not complete");
        std::thread::sleep(Duration::from_millis(500));
    }
    // slurmdbd can answer a query by job id a moment before the month-window query the report
    // makes lists the job (seen in CI: a report of zeros right after COMPLETED).
    let month_start = Command::new("date")
        .arg("+%Y-%m-01T00:00:00")
        .output()
        .unwrap();
    let month_start = String::from_utf8_lossy(&month_start.stdout)
        .trim()
        .to_string();
    loop {
        let window = Command::new("sacct")
            .args(["-n", "-P", "--allocations", "--allusers", "-A", account])
            .args([&format!("--starttime={month_start}"), "--endtime=now"])
            .args(["-o", "JobID"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&window.stdout)
            .lines()
            .any(|id| id.trim() == job)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {job} is COMPLETED but the month window does not list it"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn every_mode_runs_against_real_slurm_and_a_broken_sacctmgr_errs_only_its_order() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let site = SlurmSite::new("e2e");
    let (prefix, sim, run) = (&site.prefix, &site.sim, site.run());
    let (cust, proj, alloc) = (
        format!("{prefix}cust"),
        format!("{prefix}proj"),
        format!("{prefix}alloc1"),
    );

    // order_process: the hierarchy, the limits and the team's associations in SLURM. The
    // broken offering's order errs, so the run says so in its exit code.
    let log = run.once_exiting("order_process", 1);
    assert_order_done(sim, CREATE, &log);
    assert_eq!(sim.resource(RES).unwrap().backend_id, alloc);
    assert_eq!(account_row(prefix, &cust).unwrap()[2], "root");
    assert_eq!(account_row(prefix, &proj).unwrap()[2], cust);
    let row = account_row(prefix, &alloc).expect("allocation account");
    assert_eq!(row[2], proj);
    // cpu: config limit 10 x unit_factor 1; gres/gpu: order limit 5 x unit_factor 60.
    assert_eq!(row[3], "cpu=10,gres/gpu=300");
    assert_eq!(users_of(prefix, &alloc), vec![USER_A, USER_B]);
    // The broken offering errs its own order with sacctmgr's reason; nothing else suffers.
    let broken_order = sim.order(BROKEN_CREATE).unwrap();
    assert_eq!(broken_order.state, "erred");
    assert!(
        broken_order
            .error_message
            .contains("Problem talking to the database"),
        "{}",
        broken_order.error_message
    );

    // report: a real job's usage, read back through sacct, in Waldur.
    run_job(USER_A, &alloc);
    run.once("report");
    let usages = sim.with_store(|s| {
        s.component_usages
            .values()
            .filter(|u| u.resource_uuid == RES)
            .map(|u| (u.type_.clone(), u.usage.parse::<f64>().unwrap()))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    // 1 CPU and 100 MB for >= 3 s: >= 0.05 CPU-minutes and >= 5 MB-minutes (SLURM floors
    // MB-minutes).
    assert!(usages["cpu"] >= 0.05, "{usages:?}");
    assert!(usages["mem"] >= 5.0, "{usages:?}");
    let alice_usage = sim.with_store(|s| {
        s.user_usages
            .values()
            .filter(|u| u.username == USER_A)
            .count()
    });
    assert!(alice_usage >= 1, "alice's own usage reported");
    // Reporting again sends nothing new.
    let set_usage = "/api/marketplace-component-usages/set_usage/";
    let sent = sim.count("POST", set_usage);
    run.once("report");
    assert_eq!(sim.count("POST", set_usage), sent);

    // membership_sync: bob leaves, the resource is paused, then downscaled, then restored.
    sim.with_store_mut(|s| {
        s.team.retain(|m| m.user_uuid != BOB);
        s.resources.get_mut(RES).unwrap().paused = true;
    });
    run.once("membership_sync");
    assert_eq!(users_of(prefix, &alloc), vec![USER_A]);
    assert_eq!(account_row(prefix, &alloc).unwrap()[4], "paused");
    sim.with_store_mut(|s| {
        let r = s.resources.get_mut(RES).unwrap();
        r.paused = false;
        r.downscaled = true;
    });
    run.once("membership_sync");
    assert_eq!(account_row(prefix, &alloc).unwrap()[4], "limited");
    sim.with_store_mut(|s| s.resources.get_mut(RES).unwrap().downscaled = false);
    run.once("membership_sync");
    assert_eq!(account_row(prefix, &alloc).unwrap()[4], "normal");
    assert!(sim.resource(RES).unwrap().last_sync.is_some());

    // An Update order changes GrpTRESMins; a Terminate removes the allocation and the
    // project account (no other allocation left) but keeps the customer account.
    add_order(
        sim,
        "77777777777777777777777777777703",
        "Update",
        serde_json::json!({"gres/gpu": 7}),
    );
    let log = run.once("order_process");
    assert_order_done(sim, "77777777777777777777777777777703", &log);
    assert_eq!(
        account_row(prefix, &alloc).unwrap()[3],
        "cpu=10,gres/gpu=420"
    );
    add_order(
        sim,
        "77777777777777777777777777777704",
        "Terminate",
        serde_json::json!({}),
    );
    let log = run.once("order_process");
    assert_order_done(sim, "77777777777777777777777777777704", &log);
    assert!(account_row(prefix, &alloc).is_none(), "allocation removed");
    assert!(
        account_row(prefix, &proj).is_none(),
        "empty project account removed"
    );
    assert!(
        account_row(prefix, &cust).is_some(),
        "customer account kept"
    );
}

fn add_order(sim: &Simulator, uuid: &str, kind: &str, limits: serde_json::Value) {
    sim.with_store_mut(|store| {
        let mut order = store.orders[CREATE].clone();
        order.uuid = uuid.to_string();
        order.type_ = kind.to_string();
        order.state = "executing".to_string();
        order.limits = limits.as_object().cloned().unwrap_or_default();
        order.backend_id = String::new();
        store.orders.insert(uuid.to_string(), order);
    });
}

const HOSTILE_RES: &str = "88888888888888888888888888888803";
const HOSTILE_CREATE: &str = "77777777777777777777777777777705";

/// `root` as `show account` and `show assoc` print it: the account, its own association and
/// the `root` user's. (Other users come and go: `DefaultAccount=root` of the common policy
/// gives every added user an association in root, in this test and in parallel ones.)
fn root_state() -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let associations = sacctmgr_rows(&[
        "show",
        "assoc",
        "where",
        "account=root",
        "format=Account,User,ParentName,Share,GrpTRESMins,QOS",
    ])
    .into_iter()
    .filter(|r| r[1].is_empty() || r[1] == "root")
    .collect();
    (
        sacctmgr_rows(&["show", "account", "root", "format=Account,Descr,Org"]),
        associations,
    )
}

#[test]
fn a_create_order_with_a_hostile_slug_errs_alone_and_the_ordinary_one_is_done() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let site = SlurmSite::new("e2h");
    let (prefix, sim, run) = (&site.prefix, &site.sim, site.run());
    // A second resource of the SLURM offering, in the same project, whose slug would make
    // `remove account where name=<prefix>x,root` name `root` too.
    sim.with_store_mut(|s| {
        let mut resource = s.resources[RES].clone();
        resource.uuid = HOSTILE_RES.to_string();
        resource.name = "hostile".to_string();
        resource.slug = "x,root".to_string();
        s.resources.insert(HOSTILE_RES.to_string(), resource);
        let mut order = s.orders[CREATE].clone();
        order.uuid = HOSTILE_CREATE.to_string();
        order.resource_uuid = HOSTILE_RES.to_string();
        order.resource_name = "hostile".to_string();
        s.orders.insert(HOSTILE_CREATE.to_string(), order);
    });
    let root_before = root_state();

    let log = run.once_exiting("order_process", 1);
    // The hostile order errs with the one-line reason, naming the value and the rule.
    let hostile = sim.order(HOSTILE_CREATE).unwrap();
    assert_eq!(hostile.state, "erred", "agent log:\n{log}");
    assert_eq!(
        hostile.error_message,
        format!(
            "invalid SLURM account name \"{prefix}x,root\": it contains ',' (the list \
             separator of sacctmgr); allowed are letters A-Z a-z, digits, '.', '_' and '-'"
        )
    );
    assert!(sim.resource(HOSTILE_RES).unwrap().backend_id.is_empty());
    // The ordinary order of the same cycle is done, its accounts and users in SLURM.
    assert_order_done(sim, CREATE, &log);
    let alloc = format!("{prefix}alloc1");
    assert_eq!(sim.resource(RES).unwrap().backend_id, alloc);
    assert_eq!(users_of(prefix, &alloc), vec![USER_A, USER_B]);
    let mut accounts: Vec<String> = associations(prefix)
        .into_iter()
        .filter(|r| r[1].is_empty())
        .map(|r| r[0].clone())
        .collect();
    accounts.sort();
    assert_eq!(
        accounts,
        vec![alloc, format!("{prefix}cust"), format!("{prefix}proj")],
        "nothing named after the hostile slug"
    );
    assert_eq!(root_state(), root_before, "root untouched");
}

#[test]
fn a_dry_run_against_real_slurm_plans_every_mode_and_changes_neither_slurm_nor_waldur() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let site = SlurmSite::new("e2d");
    let (prefix, sim, run) = (&site.prefix, &site.sim, site.run());
    let log = run.once_exiting("order_process", 1);
    assert_order_done(sim, CREATE, &log);
    let alloc = format!("{prefix}alloc1");
    // What the next real cycles would change: bob leaves, the resource is paused, its limits
    // grow.
    sim.with_store_mut(|s| {
        s.team.retain(|m| m.user_uuid != BOB);
        s.resources.get_mut(RES).unwrap().paused = true;
    });
    add_order(
        sim,
        "77777777777777777777777777777705",
        "Update",
        serde_json::json!({"gres/gpu": 7}),
    );
    let (waldur_before, slurm_before) = (sim.state(), associations(prefix));

    let output = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .env("WALDUR_AGENT_PLUGIN_PATH", "")
        .env("RUST_LOG", "warn")
        .args(["run", "-m", "all", "--dry-run", "--json", "-c"])
        .arg(&site.config)
        .arg("--plugin-dir")
        .arg(site.plugins.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(sim.state(), waldur_before, "the dry run wrote to Waldur");
    assert_eq!(
        associations(prefix),
        slurm_before,
        "the dry run changed SLURM"
    );

    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON plan");
    let writes: Vec<&serde_json::Value> = plan["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["offering"] == "SLURM Offering" && w["system"] == "backend")
        .collect();
    let planned = |what: &str, mentions: &str| {
        writes.iter().any(|w| {
            w["action"].as_str().unwrap().contains(what)
                && w["arguments"].to_string().contains(mentions)
        })
    };
    assert!(planned("set_resource_limits", &alloc), "{writes:#?}");
    assert!(planned("remove_user", USER_B), "{writes:#?}");
    assert!(planned("pause_resource", &alloc), "{writes:#?}");
    assert!(
        plan["writes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["system"] == "waldur"
                && w["action"]
                    .as_str()
                    .unwrap()
                    .ends_with("77777777777777777777777777777705/set_state_done/")),
        "the Update order would be done"
    );
    assert_eq!(plan["failed"], serde_json::json!([]));
}
