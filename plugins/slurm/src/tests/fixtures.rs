//! Every parser on output recorded from real SLURM 22.05 (tests/fixtures/slurm-22.05).

use std::collections::BTreeMap;

use serde_json::json;
use waldur_plugin_abi::wire::{BackendLimits, ClientResource, TOTAL_ACCOUNT_USAGE};
use waldur_plugin_abi::{Backend, ErrorKind};

use super::*;
use crate::parser;

fn fx_components() -> BackendComponents {
    components(json!({
        "cpu": {"accounting_type": "usage", "unit_factor": 1},
        "mem": {"accounting_type": "usage", "unit_factor": 1},
        "gres/gpu": {"accounting_type": "limit", "unit_factor": 60},
    }))
}

fn account(name: &str, description: &str, organization: &str) -> ClientResource {
    ClientResource {
        name: name.into(),
        description: description.into(),
        organization: organization.into(),
        backend_id: String::new(),
    }
}

#[test]
fn accounts() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("list account", &fixture("list_account.txt"));
    runner.reply("show account fx_alloc", &fixture("show_account.txt"));
    runner.reply(
        "show account fx_missing",
        &fixture("show_account_missing.txt"),
    );
    runner.reply(
        "list account where",
        &fixture("list_account_where_names.txt"),
    );
    let all = slurm.client.list_resources().unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], account("fx_alloc", "my alloc", "fx_proj"));
    assert_eq!(all[4], account("root", "default root account", "root"));
    assert_eq!(
        slurm.client.get_resource("fx_alloc").unwrap(),
        Some(account("fx_alloc", "my alloc", "fx_proj"))
    );
    assert_eq!(slurm.client.get_resource("fx_missing").unwrap(), None);
    let some = slurm
        .client
        .list_accounts(&["fx_alloc".into(), "fx_alloc2".into(), "fx_missing".into()])
        .unwrap();
    assert_eq!(
        some.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        vec!["fx_alloc", "fx_alloc2"]
    );
}

#[test]
fn tres_clusters_and_versions() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("list tres", &fixture("list_tres.txt"));
    runner.reply("list cluster", &fixture("list_cluster.txt"));
    runner.reply("sinfo -V", &fixture("sinfo_version.txt"));
    runner.reply("sacctmgr --version", &fixture("sacctmgr_version.txt"));
    assert_eq!(
        slurm.list_components().unwrap(),
        vec!["cpu", "mem", "energy", "node", "billing", "fs/disk", "vmem", "pages", "gres/gpu"]
    );
    assert_eq!(slurm.client.list_clusters().unwrap(), vec!["waldurtest"]);
    assert_eq!(slurm.client.get_version().unwrap(), "slurm-wlm 22.05.8");
    assert!(slurm.client.validate_slurm_binary());
}

#[test]
fn parents() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("account=fx_proj", &fixture("show_assoc_parent.txt"));
    runner.reply("account=FX_ALLOC", &fixture("show_assoc_parent_alloc.txt"));
    runner.reply("account=fx_none", "");
    assert_eq!(
        slurm
            .client
            .get_account_parent("fx_proj")
            .unwrap()
            .as_deref(),
        Some("fx_cust")
    );
    // SLURM answers in lower case; the account's own row (empty user) is the one read.
    assert_eq!(
        slurm
            .client
            .get_account_parent("FX_ALLOC")
            .unwrap()
            .as_deref(),
        Some("fx_proj")
    );
    assert_eq!(slurm.client.get_account_parent("fx_none").unwrap(), None);
}

#[test]
fn associations() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply(
        "show association where account=fx_alloc",
        &fixture("show_association_account.txt"),
    );
    runner.reply(
        "show association where account=fx_proj",
        &fixture("show_association_account_no_users.txt"),
    );
    runner.reply(
        "user=wa-alice account=fx_alloc",
        &fixture("show_association_user.txt"),
    );
    runner.reply(
        "user=wa-carol account=fx_alloc",
        &fixture("show_association_user_missing.txt"),
    );
    assert!(slurm.client.account_has_users("fx_alloc").unwrap());
    assert!(!slurm.client.account_has_users("fx_proj").unwrap());
    let association = slurm
        .client
        .get_association("wa-alice", "fx_alloc")
        .unwrap()
        .unwrap();
    assert_eq!(
        (association.account.as_str(), association.user.as_str()),
        ("fx_alloc", "wa-alice")
    );
    assert_eq!(association.value, 0, "field 9 is GrpWall, empty");
    assert_eq!(
        slurm
            .client
            .get_association("wa-carol", "fx_alloc")
            .unwrap(),
        None
    );
}

#[test]
fn users_of_accounts() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply(
        "format=account,user",
        &fixture("list_associations_users.txt"),
    );
    assert_eq!(
        slurm.client.list_resource_users("fx_alloc").unwrap(),
        vec!["wa-alice", "wa-bob"]
    );
    assert_eq!(
        slurm
            .client
            .list_users_of_accounts(&["fx_alloc".into(), "fx_alloc2".into()])
            .unwrap(),
        BTreeMap::from([
            (
                "fx_alloc".to_string(),
                vec!["wa-alice".to_string(), "wa-bob".to_string()]
            ),
            ("fx_alloc2".to_string(), vec!["wa-carol".to_string()]),
        ])
    );
    // Exact account match, as the reference: another spelling has no users.
    assert!(slurm
        .client
        .list_resource_users("FX_ALLOC")
        .unwrap()
        .is_empty());
}

#[test]
fn qos() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply(
        "where account=fx_alloc",
        &fixture("list_associations_qos.txt"),
    );
    runner.reply(
        "where account=fx_alloc2",
        &fixture("list_associations_qos_list.txt"),
    );
    runner.reply("show qos fx_qos", &fixture("show_qos.txt"));
    runner.reply("show qos fx_missing", &fixture("show_qos_missing.txt"));
    assert_eq!(
        slurm.client.get_current_account_qos("fx_alloc").unwrap(),
        "paused"
    );
    assert_eq!(
        slurm.client.get_current_account_qos("fx_alloc2").unwrap(),
        "fx_qos,normal"
    );
    assert_eq!(slurm.client.get_current_account_qos("other").unwrap(), "");
    assert!(slurm.client.qos_exists("fx_qos").unwrap());
    assert!(!slurm.client.qos_exists("fx_missing").unwrap());
}

#[test]
fn a_qos_swap_sacctmgr_refuses_is_an_error() {
    let (runner, slurm) = setup(json!({"qos_paused": "paused"}), fx_components());
    runner.reply("format=account,qos", "fx_alloc2|fx_qos,normal\n");
    runner.reply("set qos=paused", &fixture("modify_qos_without_default.txt"));
    assert_eq!(
        fixture("modify_qos_without_default.rc").trim(),
        "0",
        "sacctmgr exits 0"
    );
    let err = slurm.pause_resource("fx_alloc2".into()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(
        err.message.starts_with("sacctmgr did not set QoS paused on account fx_alloc2: These associations don't have access to their default qos."),
        "{}",
        err.message
    );
    assert!(!err.message.contains('\n'));
}

#[test]
fn limits() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("GrpTRESMins where", &fixture("grptresmins.txt"));
    runner.reply("MaxTRESMins,User", &fixture("maxtresmins.txt"));
    assert_eq!(
        slurm.client.get_resource_limits("fx_alloc").unwrap(),
        BackendLimits::from([
            ("cpu".into(), 600_000),
            ("gres/gpu".into(), 300),
            ("mem".into(), 614_400)
        ])
    );
    // In Waldur units: gres/gpu / 60.
    assert_eq!(
        slurm.get_resource_limits("fx_alloc".into()).unwrap()["gres/gpu"],
        5
    );
    assert_eq!(
        slurm.client.get_resource_user_limits("fx_alloc").unwrap(),
        BTreeMap::from([
            (
                "wa-alice".to_string(),
                BackendLimits::from([("gres/gpu".into(), 60)])
            ),
            ("wa-bob".to_string(), BackendLimits::new()),
        ])
    );
}

#[test]
fn periodic_reads_take_the_accounts_own_association() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply(
        "format=account,user,fairshare",
        &fixture("account_fairshare.txt"),
    );
    runner.reply("grptres,grptresmin", &fixture("account_limits.txt"));
    assert_eq!(
        slurm.client.get_account_fairshare("fx_alloc").unwrap(),
        Some(1)
    );
    let limits = slurm.client.get_account_limits("fx_alloc").unwrap();
    assert_eq!(limits.len(), 4);
    assert_eq!(limits["GrpTRESMins"]["cpu"], "600000");
    assert_eq!(limits["GrpTRESMins"]["gres/gpu"], "300");
    assert_eq!(limits["GrpTRESMins"]["mem"], "600G");
    // wa-alice's MaxTRESMins is her association's, not the account's.
    assert!(limits["MaxTRESMins"].is_empty(), "{limits:?}");
    assert!(limits["GrpTRES"].is_empty() && limits["MaxTRES"].is_empty());

    // An account sacctmgr does not list: nothing known, so nothing is skipped.
    runner.reply("format=account,user,fairshare", "");
    runner.reply("grptres,grptresmin", "");
    assert_eq!(
        slurm.client.get_account_fairshare("fx_alloc").unwrap(),
        None
    );
    let limits = slurm.client.get_account_limits("fx_alloc").unwrap();
    assert!(limits.values().all(|l| l.is_empty()), "{limits:?}");
}

#[test]
fn usage() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("--accounts=fx_alloc,fx_alloc2", &fixture("sacct_usage.txt"));
    let lines = parser::report_lines(&fixture("sacct_usage.txt"));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0].account, "fx_alloc");
    assert_eq!(lines[0].user, "wa-alice");
    assert_eq!(lines[0].minutes(), 2.0 / 60.0);
    let report = slurm
        .get_usage_report(vec!["fx_alloc".into(), "fx_alloc2".into()])
        .unwrap();
    // alice: 1 cpu × 2 s + 2 cpu × 3 s = 8 cpu-seconds; mem floors per line to 0 and 5 MB-min.
    let alice = &report["fx_alloc"]["wa-alice"];
    assert_eq!(alice["cpu"], crate::usage::round2(2.0 / 60.0 + 6.0 / 60.0));
    assert_eq!(alice["mem"], 5.0);
    assert!(!alice.contains_key("gres/gpu"), "no job asked for a GPU");
    let bob = &report["fx_alloc"]["wa-bob"];
    assert_eq!(bob["cpu"], crate::usage::round2(1.0 / 60.0));
    assert_eq!(bob["mem"], 17.0, "1024 MB for 1 s: 17.07 MB-min, floored");
    let total = &report["fx_alloc"][TOTAL_ACCOUNT_USAGE];
    assert_eq!(
        total["cpu"],
        crate::usage::round2(alice["cpu"] + bob["cpu"])
    );
    assert_eq!(total["mem"], 22.0);
    assert_eq!(report["fx_alloc2"]["wa-carol"]["cpu"], 0.02);
}

#[test]
fn user_jobs_and_ids() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.reply("--user=wa-alice", &fixture("sacct_user_jobs.txt"));
    runner.reply("id -u wa-alice", &fixture("id_user.txt"));
    runner.fail("id -u fx-no-such-user", 1, &fixture("id_no_such_user.txt"));
    assert_eq!(
        slurm
            .client
            .list_active_user_jobs("fx_alloc", "wa-alice")
            .unwrap(),
        vec!["4", "4.batch", "5", "5.batch"]
    );
    assert!(slurm.client.check_user_exists("wa-alice").unwrap());
    assert!(!slurm.client.check_user_exists("fx-no-such-user").unwrap());
}

#[test]
fn sacctmgr_failures() {
    let (runner, slurm) = setup(json!({}), fx_components());
    runner.fail("add account", 1, &fixture("add_account_exists.txt"));
    runner.fail("qos+=", 1, &fixture("modify_nothing.txt"));
    runner.fail("remove account", 1, &fixture("remove_nothing.txt"));
    // "Nothing modified" on a modify is success.
    assert_eq!(
        slurm
            .client
            .add_account_qos("fx_missing", "fx_qos")
            .unwrap(),
        ""
    );
    let err = slurm
        .client
        .create_resource("fx_alloc", "x", "fx_proj", None)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(
        err.message
            .ends_with("failed (exit code 1): Nothing new added."),
        "{}",
        err.message
    );
    let err = slurm.client.delete_resource("fx_missing").unwrap_err();
    assert!(err.message.contains("Nothing deleted"), "{}", err.message);
    // "Nothing modified" outside a modify stays an error.
    runner.fail("show account", 1, " Nothing modified");
    assert!(slurm.client.get_resource("x").is_err());
}
