//! `waldur-agent diagnose-slurm-account` end to end: the agent binary, the Waldur simulator,
//! the real SLURM plugin and REAL SLURM accounting (scripts/slurm-setup.sh). A resource is
//! created through the agent, then SLURM is changed behind its back and the tool must report
//! exactly that. Also, without SLURM: the setup errors (exit 2).
//!
//! Without SLURM the real-SLURM test skips, except under `CI=true`, where it fails.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use waldur_test_support::slurm::{require_real_slurm, sacctmgr_write};
use waldur_test_support::PluginDir;

use crate::common::site::{creates, text, Site, OFFERING as DEMO_OFFERING};
use crate::slurm_e2e::{
    assert_order_done, users_of, SlurmSite, BROKEN_RES, CREATE, OFFERING, RES, USER_A, USER_B,
};

/// The tool on `account` (with `extra` arguments), as JSON: exit code and report.
fn diagnose(config: &Path, plugins: &PluginDir, account: &str, extra: &[&str]) -> (i32, Value) {
    let output = tool(config, plugins, account, &[&["--json"], extra].concat());
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{}", text(&output)));
    (output.status.code().unwrap_or(-1), report)
}

fn tool(config: &Path, plugins: &PluginDir, account: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .env("WALDUR_AGENT_PLUGIN_PATH", "")
        .args(["diagnose-slurm-account", account, "-c"])
        .arg(config)
        .arg("--plugin-dir")
        .arg(plugins.path())
        .args(extra)
        .output()
        .unwrap()
}

/// `(item, backend, expected)` of every difference.
fn differences(report: &Value) -> Vec<(String, Value, Value)> {
    report["comparisons"]
        .as_array()
        .expect("comparisons")
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            (
                c["item"].as_str().unwrap().to_string(),
                c["backend"].clone(),
                c["expected"].clone(),
            )
        })
        .collect()
}

fn diff(item: &str, backend: Option<&str>, expected: Option<&str>) -> (String, Value, Value) {
    (item.to_string(), backend.into(), expected.into())
}

#[test]
fn a_changed_account_shows_exactly_its_differences_and_a_consistent_one_none() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    // Two SLURM offerings: the tool finds the one whose Waldur resources have the account.
    let site = SlurmSite::new("dg");
    let (prefix, sim, config, plugins) = (&site.prefix, &site.sim, &site.config, &site.plugins);
    let log = site.run().once_exiting("order_process", 1);
    assert_order_done(sim, CREATE, &log);
    let alloc = format!("{prefix}alloc1");
    assert_eq!(users_of(prefix, &alloc), vec![USER_A, USER_B]);

    // As the agent left it: no difference, exit 0.
    let (code, report) = diagnose(config, plugins, &alloc, &[]);
    assert_eq!(differences(&report), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["offering"], "SLURM Offering");
    assert_eq!(report["waldur"]["uuid"], RES);
    assert_eq!(report["backend"]["exists"], true);
    // cpu: the configured limit 10 x unit_factor 1; gres/gpu: Waldur's 5 x unit_factor 60.
    assert_eq!(
        report["backend"]["limits"]["GrpTRESMins"],
        serde_json::json!({"cpu": "10", "gres/gpu": "300"})
    );
    let compared: Vec<&str> = report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item"].as_str().unwrap())
        .collect();
    for item in [
        "backend account",
        "parent",
        "qos",
        "GrpTRESMins[cpu]",
        "GrpTRESMins[gres/gpu]",
        "user wa-alice",
        "user wa-bob",
        "user wa-alice MaxTRESMins",
    ] {
        assert!(
            compared.contains(&item),
            "{item} not compared: {compared:?}"
        );
    }
    // The offering is also found by its uuid, and the table says the same.
    let output = tool(config, plugins, &alloc, &["--offering-uuid", OFFERING]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("Result: no difference"), "{table}");

    // Behind the agent's back: another cpu limit, bob's association gone, a user limit.
    sacctmgr_write(&["modify", "account", &alloc, "set", "GrpTRESMins=cpu=20"]);
    sacctmgr_write(&[
        "remove",
        "user",
        "where",
        &format!("name={USER_B}"),
        "and",
        &format!("account={alloc}"),
    ]);
    sacctmgr_write(&[
        "modify",
        "user",
        USER_A,
        "where",
        &format!("account={alloc}"),
        "set",
        "MaxTRESMins=cpu=7",
    ]);
    let (code, report) = diagnose(config, plugins, &alloc, &[]);
    assert_eq!(
        differences(&report),
        vec![
            diff("GrpTRESMins[cpu]", Some("20"), Some("10")),
            diff(&format!("user {USER_B}"), None, Some("present")),
            diff(&format!("user {USER_A} MaxTRESMins[cpu]"), Some("7"), None),
        ],
        "{report:#}"
    );
    assert_eq!(code, 1);
    assert_eq!(report["differences"], 3);
    let output = tool(config, plugins, &alloc, &[]);
    assert_eq!(output.status.code(), Some(1));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("Result: 3 difference(s)"), "{table}");
    let cpu_row = table
        .lines()
        .find(|l| l.contains("GrpTRESMins[cpu]"))
        .unwrap();
    assert!(
        cpu_row.trim_start().starts_with("DIFF") && cpu_row.contains("20"),
        "{cpu_row}"
    );

    // Waldur pauses the resource: SLURM still has the default QoS, which is a difference.
    sim.with_store_mut(|s| s.resources.get_mut(RES).unwrap().paused = true);
    let (_, report) = diagnose(config, plugins, &alloc, &[]);
    assert!(
        differences(&report).contains(&diff("qos", Some("normal"), Some("paused"))),
        "{report:#}"
    );

    // An account neither SLURM nor Waldur knows.
    let (code, report) = diagnose(config, plugins, &format!("{prefix}nothing"), &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        differences(&report),
        vec![
            diff("backend account", None, Some("present")),
            diff(
                "Waldur resources with this backend id",
                Some("0"),
                Some("1")
            ),
        ]
    );
    assert_eq!(report["waldur"], Value::Null);

    // Both SLURM offerings have a resource with the account: the tool cannot choose.
    sim.with_store_mut(|s| {
        let broken = s.resources.get_mut(BROKEN_RES).unwrap();
        broken.backend_id = alloc.clone();
        broken.state = "OK".into();
    });
    let output = tool(config, plugins, &alloc, &[]);
    assert_setup_error(&output, "and 2 of them have a resource with backend_id");

    // A name the plugin refuses is a setup error naming it; nothing is run with it.
    let output = tool(config, plugins, "x,root", &["--offering-uuid", OFFERING]);
    assert_setup_error(&output, "invalid SLURM account name \"x,root\"");
}

/// Exit code 2 and `needle` in the output.
#[track_caller]
fn assert_setup_error(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(2), "{}", text(output));
    assert!(text(output).contains(needle), "{}", text(output));
}

#[test]
fn setup_errors_exit_2_with_one_line() {
    let site = Site::new(creates(1), "", "");
    // No offering uses the slurm backend.
    let output = site.run(&["diagnose-slurm-account", "alloc-0000"]);
    assert_setup_error(
        &output,
        "no offering of the configuration uses the slurm backend",
    );
    // The demo plugin does not answer the method.
    let output = site.run(&[
        "diagnose-slurm-account",
        "alloc-0000",
        "--offering-uuid",
        DEMO_OFFERING,
    ]);
    assert_setup_error(&output, "(entry 'demo') has no account diagnostics");
    // An offering uuid the configuration does not have.
    let output = site.run(&[
        "diagnose-slurm-account",
        "alloc-0000",
        "--offering-uuid",
        "00000000000000000000000000000009",
    ]);
    assert_setup_error(
        &output,
        "no offering with waldur_offering_uuid 00000000000000000000000000000009",
    );
}
