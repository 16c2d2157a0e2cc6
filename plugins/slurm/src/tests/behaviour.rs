//! Behaviour beyond the golden traces: policies, partitions, QoS models, hierarchy variants,
//! home directories, periodic settings, diagnostics, construction, timeouts.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde_json::json;
use waldur_plugin_abi::wire::{
    BackendLimits, Limits, OfferingUser, RuntimeContext, UserContext, UserOptions,
};
use waldur_plugin_abi::{Backend, Client, ErrorKind};

use super::*;

fn with_backend_id(id: &str) -> WaldurResource {
    WaldurResource {
        backend_id: id.into(),
        ..golden_resource()
    }
}

fn add_user_call(settings: Value, context: RuntimeContext, attributes: Value) -> String {
    let (runner, slurm) = setup(settings, golden_components());
    slurm.set_runtime_context(context).unwrap();
    let mut resource = with_backend_id("acc");
    resource.attributes = map(attributes);
    assert!(slurm
        .add_user(resource, "u".into(), UserOptions::default())
        .unwrap());
    let calls = runner.take_calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    calls[1].strip_prefix(S).unwrap().trim().to_string()
}

#[test]
fn default_account_policies() {
    let ctx = RuntimeContext::default;
    let none = json!({});
    assert_eq!(
        add_user_call(json!({"default_account": "dflt"}), ctx(), none.clone()),
        "add user u account=acc DefaultAccount=dflt Share=parent"
    );
    assert_eq!(
        add_user_call(
            json!({"default_account_policy": "individual"}),
            ctx(),
            none.clone()
        ),
        "add user u account=acc DefaultAccount=acc Share=parent"
    );
    assert_eq!(
        add_user_call(json!({"default_account_policy": "none"}), ctx(), none),
        "add user u account=acc Share=parent"
    );
}

#[test]
fn association_partitions() {
    let parts = || RuntimeContext {
        offering_partitions: vec!["gpu".into(), "cpu".into()],
        ..Default::default()
    };
    let none = json!({});
    // Offering partitions are informational unless enforced.
    assert_eq!(
        add_user_call(json!({}), parts(), none.clone()),
        "add user u account=acc DefaultAccount=root Share=parent"
    );
    assert_eq!(
        add_user_call(
            json!({"enforce_offering_partitions": true}),
            parts(),
            none.clone()
        ),
        "add user u account=acc DefaultAccount=root Partitions=cpu,gpu Share=parent"
    );
    assert_eq!(
        add_user_call(json!({"default_partition": "debug"}), parts(), none.clone()),
        "add user u account=acc DefaultAccount=root Partition=debug"
    );
    // An order QoS is ignored without enforcement.
    assert_eq!(
        add_user_call(
            json!({"default_partition": "debug"}),
            parts(),
            json!({"qos": "boost"})
        ),
        "add user u account=acc DefaultAccount=root Partition=debug"
    );
}

#[test]
fn qos_grants_when_enforced() {
    let enforced = json!({"qos_enforcement_enabled": true, "enforce_offering_qos": true, "default_partition": "debug"});
    let ctx = RuntimeContext::default;
    assert_eq!(
        add_user_call(enforced.clone(), ctx(), json!({"qos": "boost"})),
        "add user u account=acc DefaultAccount=root Partitions=debug QosLevel=boost DefaultQOS=boost Share=parent"
    );
    assert_eq!(
        add_user_call(enforced.clone(), ctx(), json!({"qos": "boost", "partition": "gpu"})),
        "add user u account=acc DefaultAccount=root Partitions=gpu QosLevel=boost DefaultQOS=boost Share=parent"
    );
    // No order QoS: the partition rules.
    assert_eq!(
        add_user_call(enforced, ctx(), json!({})),
        "add user u account=acc DefaultAccount=root Partition=debug"
    );
    // The offering's flag decides when the site does not force it; off without opt-in.
    let offering = |enforce| RuntimeContext {
        offering_enforce_qos: Some(enforce),
        ..Default::default()
    };
    assert!(add_user_call(
        json!({"qos_enforcement_enabled": true}),
        offering(true),
        json!({"qos": "q"})
    )
    .contains("QosLevel=q"));
    assert!(!add_user_call(
        json!({"qos_enforcement_enabled": true}),
        offering(false),
        json!({"qos": "q"})
    )
    .contains("QosLevel"));
    assert!(!add_user_call(json!({}), offering(true), json!({"qos": "q"})).contains("QosLevel"));
    assert!(!add_user_call(
        json!({"qos_enforcement_enabled": true, "enforce_offering_qos": false}),
        offering(true),
        json!({"qos": "q"})
    )
    .contains("QosLevel"));
}

#[test]
fn add_user_edge_cases() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    let err = slurm
        .add_user(with_backend_id(" "), "u".into(), UserOptions::default())
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(!slurm
        .add_user(with_backend_id("a"), String::new(), UserOptions::default())
        .unwrap());
    runner.reply("show association where user=u", "c|a|u||parent\n");
    assert!(slurm
        .add_user(with_backend_id("a"), "u".into(), UserOptions::default())
        .unwrap());
    assert_calls(&runner, &["{S} show association where user=u account=a"]);
    // A failing association is false, and add_users_to_resource leaves the user out.
    runner.fail("add user v", 1, " Error: user v is unknown");
    let added = slurm
        .add_users_to_resource(
            with_backend_id("a"),
            vec!["v".into(), "w".into(), "w".into()],
            UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["w"]);
}

#[test]
fn homedirs_of_added_existing_and_order_users() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("has-home")).unwrap();
    let settings = json!({"homedir_base_path": base.path(), "default_homedir_umask": "0027"});
    let (runner, slurm) = setup(settings, golden_components());
    let options = UserOptions {
        homedir_umask: Some("0022".into()),
        ..Default::default()
    };
    slurm
        .add_users_to_resource(
            with_backend_id("a"),
            vec!["alice".into(), "has-home".into()],
            options,
        )
        .unwrap();
    let calls = runner.take_calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("/sbin/mkhomedir_helper"))
            .collect::<Vec<_>>(),
        vec!["/sbin/mkhomedir_helper alice 0022"]
    );
    slurm
        .process_existing_users(vec!["bob".into(), "has-home".into(), "bob".into()])
        .unwrap();
    assert_calls(&runner, &["/sbin/mkhomedir_helper bob 0027"]);
    let context = UserContext {
        offering_users: vec![
            OfferingUser {
                user_uuid: "1".into(),
                username: Some("carol".into()),
                ..Default::default()
            },
            OfferingUser {
                user_uuid: "2".into(),
                username: None,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let mut context = context;
    context.rebuild_mappings();
    slurm
        .post_create_resource(
            waldur_plugin_abi::wire::BackendResourceInfo::default(),
            golden_resource(),
            Some(context),
        )
        .unwrap();
    assert_calls(&runner, &["/sbin/mkhomedir_helper carol 0027"]);
    // A failure is logged, the next user still gets a home.
    runner.fail("mkhomedir_helper x", 1, "no");
    slurm
        .create_user_homedirs(vec!["x".into(), "y".into()], "0077".into())
        .unwrap();
    assert_eq!(runner.take_calls().len(), 2);

    let (runner, slurm) = setup(
        json!({"enable_user_homedir_account_creation": false}),
        golden_components(),
    );
    slurm.process_existing_users(vec!["bob".into()]).unwrap();
    assert!(runner.calls().is_empty());
}

#[test]
fn homedir_quotas() {
    let base = tempfile::tempdir().unwrap();
    let settings = json!({
        "homedir_base_path": base.path(),
        "homedir_quota": {"provider": "xfs", "mount_point": "/home", "block_hardlimit": "10g", "inode_softlimit": 100}
    });
    let (runner, slurm) = setup(settings, golden_components());
    slurm
        .create_user_homedirs(vec!["alice".into()], "0077".into())
        .unwrap();
    assert_calls(
        &runner,
        &[
            "/sbin/mkhomedir_helper alice 0077",
            "xfs_quota -x -c limit -u bhard=10g isoft=100 alice /home",
            "xfs_quota -x -c quota -u -N -b -h alice /home",
        ],
    );
    let settings = json!({
        "homedir_base_path": base.path(),
        "homedir_quota": {"provider": "ceph_xattr", "max_bytes": "1099511627776"}
    });
    let (runner, slurm) = setup(settings, golden_components());
    runner.reply("getfattr", "1099511627776");
    slurm
        .create_user_homedirs(vec!["bob".into()], "0077".into())
        .unwrap();
    let home = format!("{}/bob", base.path().display());
    assert_eq!(
        runner.take_calls(),
        vec![
            "/sbin/mkhomedir_helper bob 0077".to_string(),
            format!("setfattr -n ceph.quota.max_bytes -v 1099511627776 {home}"),
            format!("getfattr --only-values -n ceph.quota.max_bytes {home}"),
        ]
    );
    let settings = json!({
        "homedir_quota": {"provider": "lustre", "mount_point": "/lu", "block_softlimit": 5, "inode_hardlimit": 9}
    });
    let (runner, slurm) = setup(settings, golden_components());
    slurm
        .create_user_homedirs(vec!["root".into()], "0077".into())
        .unwrap();
    assert_calls(
        &runner,
        &[
            "/sbin/mkhomedir_helper root 0077",
            "lfs setquota -u root -b 5 -I 9 /lu",
            "lfs quota -u root /lu",
        ],
    );
}

#[test]
fn pause_without_a_configured_qos_is_false_and_unknown_qos_is_restored() {
    let (runner, slurm) = setup(json!({}), golden_components());
    assert!(!slurm.pause_resource("a".into()).unwrap());
    assert!(!slurm.downscale_resource("a".into()).unwrap());
    assert!(runner.take_calls().is_empty());
    // An account whose QoS cannot be read is written anyway (no stuck pause).
    assert!(slurm.restore_resource("a".into()).unwrap());
    assert_calls(
        &runner,
        &[
            "{S} list associations format=account,qos where account=a",
            "{S} modify account a set qos=normal",
        ],
    );
    // Already paused: nothing set, still true, and remembered.
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("format=account,qos", "a|paused\nb|normal\n");
    assert!(slurm.pause_resource("a".into()).unwrap());
    assert_calls(
        &runner,
        &["{S} list associations format=account,qos where account=a"],
    );
    // The remembered QoS belongs to its account only.
    assert_eq!(
        slurm.get_resource_metadata("b".into()).unwrap()["qos"],
        "normal"
    );
    assert_eq!(
        slurm.get_resource_metadata("a".into()).unwrap()["qos"],
        "paused"
    );
}

#[test]
fn flat_hierarchy_and_missing_slugs() {
    let (runner, slurm) = setup(
        json!({"parent_account": "eurohpc", "project_prefix": "p_"}),
        golden_components(),
    );
    slurm.pre_create_resource(golden_resource(), None).unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show account p_proj-1",
            "{S} add account p_proj-1 description=\"Project One\" organization=\"p_proj-1\" parent=\"eurohpc\"",
        ],
    );
    // Flat mode never re-parents.
    slurm
        .sync_resource_project(with_backend_id("a"), None)
        .unwrap();
    assert!(runner.take_calls().is_empty());
    let mut resource = golden_resource();
    resource.customer_slug.clear();
    let err = slurm.pre_create_resource(resource, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(err.message.contains("missing slug"), "{}", err.message);
    // root_account is the parent of customers.
    let (runner, slurm) = setup(
        json!({"default_account": "dflt", "root_account": "top"}),
        golden_components(),
    );
    slurm.pre_create_resource(golden_resource(), None).unwrap();
    assert!(runner.take_calls()[1].ends_with("parent=\"top\""));
}

#[test]
fn a_moved_project_is_reparented() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("show account", "x|x|x\n");
    runner.reply(
        "show assoc account=hpc_alloc-1",
        "hpc_alloc-1|hpc_proj-1|\n",
    );
    // Rules match newest first: the first read sees the old parent, the check the new one.
    runner.reply_once("show assoc account=hpc_proj-1", "hpc_proj-1|hpc_cust-1|\n");
    runner.reply_once("show assoc account=hpc_proj-1", "hpc_proj-1|hpc_old|\n");
    slurm
        .sync_resource_project(with_backend_id("hpc_alloc-1"), None)
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show assoc account=hpc_proj-1 format=Account,ParentName,User -n -P",
            "{S} show account hpc_cust-1",
            "{S} show account hpc_proj-1",
            "{S} modify account where name=hpc_proj-1 set parent=hpc_cust-1",
            "{S} show assoc account=hpc_proj-1 format=Account,ParentName,User -n -P",
            "{S} show assoc account=hpc_alloc-1 format=Account,ParentName,User -n -P",
        ],
    );
    // A stale allocation parent is fixed too; a failing re-parent is logged, not an error.
    runner.reply("show assoc account=hpc_proj-1", "hpc_proj-1|hpc_old|\n");
    runner.reply("show assoc account=hpc_alloc-1", "hpc_alloc-1|elsewhere|\n");
    slurm
        .sync_resource_project(with_backend_id("hpc_alloc-1"), None)
        .unwrap();
    let calls = runner.take_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with("modify account where name=hpc_alloc-1 set parent=hpc_proj-1")),
        "{calls:#?}"
    );
    runner.fail("set parent", 1, "error");
    slurm
        .sync_resource_project(with_backend_id("hpc_alloc-1"), None)
        .unwrap();
}

#[test]
fn soft_delete_zeroes_the_limits() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("show account hpc_alloc-1", "hpc_alloc-1|a|hpc_proj-1\n");
    agent_with(&slurm, json!({"soft_delete": true}))
        .delete_resource(&with_backend_id("hpc_alloc-1"), Some("proj-1"))
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show account hpc_alloc-1",
            "{S} show association where account=hpc_alloc-1",
            "{S} modify account hpc_alloc-1 set GrpTRESMins=cpu=0,gres/gpu=0,mem=0",
        ],
    );
}

#[test]
fn prepaid_limits_follow_the_end_date() {
    let comps = components(json!({"cpu": {"accounting_type": "one", "unit_factor": 60}}));
    let (runner, slurm) = setup(json!({}), comps);
    assert!(slurm.has_prepaid_components().unwrap());
    let mut resource = with_backend_id("a");
    resource.limits = Limits::from([("cpu".into(), 10.0)]);
    resource
        .extra
        .insert("created".into(), json!("2026-01-10T00:00:00Z"));
    resource.end_date = Some("2026-04-10".into());
    slurm.sync_resource_end_date(resource).unwrap();
    assert_calls(
        &runner,
        &[
            "{S} list tres",
            "{S} modify account a set GrpTRESMins=cpu=1800",
        ],
    );
    let (runner, slurm) = setup(json!({}), golden_components());
    assert!(!slurm.has_prepaid_components().unwrap());
    slurm.sync_resource_end_date(with_backend_id("a")).unwrap();
    assert!(runner.calls().is_empty());
}

#[test]
fn user_limits_are_read_in_backend_units_by_the_agent_default() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("MaxTRESMins,User", "a||\na|gres/gpu=60|alice\n");
    assert!(slurm
        .get_resource_user_limits("a".into())
        .unwrap_err()
        .is_not_implemented());
    let limits = agent(&slurm).get_resource_user_limits("a").unwrap();
    assert_eq!(
        limits["alice"],
        BackendLimits::from([("gres/gpu".into(), 60)])
    );
}

#[test]
fn periodic_settings() {
    let (runner, slurm) = setup(json!({}), golden_components());
    let result = slurm
        .apply_periodic_settings("a".into(), json!({"fairshare": 5}), None)
        .unwrap();
    assert!(!result.success);
    assert_eq!(result.extra["reason"], "periodic_limits_not_enabled");
    assert!(runner.calls().is_empty());

    let (runner, slurm) = setup(
        json!({"periodic_limits": {"enabled": true}}),
        golden_components(),
    );
    runner.reply(
        "format=account,user,fairshare",
        &fixture("account_fairshare.txt").replace("fx_alloc", "a"),
    );
    runner.reply(
        "grptres,grptresmin",
        &fixture("account_limits.txt").replace("fx_alloc", "a"),
    );
    let settings = json!({
        "fairshare": 5, "grp_tres_mins": {"cpu": 1000, "gres/gpu": 60}, "reset_raw_usage": true,
        "carryover": {"ignored": true}
    });
    let result = slurm
        .apply_periodic_settings("a".into(), settings.clone(), None)
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(result.extra["mode"], "production");
    assert_eq!(
        result.commands_executed,
        expand(&[
            "{S} list account withassoc format=account,user,fairshare where account=a",
            "{S} modify account a set fairshare=5",
            "{S} list account withassoc format=account,user,grptres,grptresmin,maxtres,maxtresmin where account=a",
            "{S} modify account a set GrpTRESMins=cpu=1000",
            "{S} modify account a set GrpTRESMins=gres/gpu=60",
            "{S} modify account a set RawUsage=0",
        ])
    );
    // Values SLURM already has are skipped (the account's own row; a user's row is not the
    // account's); MaxTRESMins from the message.
    runner.reply("format=account,user,fairshare", "a|alice|9\na||5\n");
    runner.reply("grptres,grptresmin", "a|alice|||mem=1|\na||||cpu=10|\n");
    let result = slurm
        .apply_periodic_settings(
            "a".into(),
            json!({"fairshare": 5, "max_tres_mins": {"cpu": 10, "mem": 7}, "limit_type": "MaxTRES"}),
            None,
        )
        .unwrap();
    assert_eq!(
        result.commands_executed,
        expand(&[
            "{S} list account withassoc format=account,user,fairshare where account=a",
            "{S} list account withassoc format=account,user,grptres,grptresmin,maxtres,maxtresmin where account=a",
            "{S} modify account a set MaxTRES=mem=7",
        ])
    );
    // A failure is reported with the commands run so far.
    runner.fail("set fairshare", 1, "sacctmgr: error: no");
    let result = slurm
        .apply_periodic_settings("a".into(), json!({"fairshare": 9}), None)
        .unwrap();
    assert!(!result.success);
    let error = result.error.unwrap();
    assert!(
        error.starts_with("Failed to set fairshare for account a:"),
        "{error}"
    );
    assert_eq!(result.commands_executed.len(), 2);
}

#[test]
fn diagnostics_fail_on_a_wrong_cluster_or_missing_accounts() {
    let (runner, slurm) = setup(json!({"cluster_name": "other"}), golden_components());
    runner.reply("-V", "slurm-wlm 22.05.8\n");
    runner.reply("list cluster", "waldurtest\n");
    assert!(!slurm.diagnostics().unwrap());
    let (runner, slurm) = setup(json!({"cluster_name": "waldurtest"}), golden_components());
    runner.reply("-V", "slurm-wlm 22.05.8\n");
    runner.reply("list cluster", "waldurtest\n");
    assert!(!slurm.diagnostics().unwrap(), "root does not exist");
    runner.reply("show account root", "root|r|root\n");
    assert!(slurm.diagnostics().unwrap());
    let (runner, slurm) = setup(json!({}), golden_components());
    runner.fail(
        "sinfo",
        1,
        "sinfo: error: Could not establish a configuration source",
    );
    assert!(!slurm.diagnostics().unwrap());
}

#[test]
fn ping() {
    let (runner, slurm) = setup(json!({}), golden_components());
    assert!(slurm.ping(false).unwrap());
    runner.fail(
        "list account",
        1,
        "sacctmgr: error: Problem talking to the database",
    );
    assert!(!slurm.ping(false).unwrap());
    let err = slurm.ping(true).unwrap_err();
    assert!(
        err.message.contains("Problem talking to the database"),
        "{}",
        err.message
    );
}

#[test]
fn construction_checks_the_settings_and_components() {
    for (settings, needle) in [
        (
            json!({"execution_mode": "rest"}),
            "execution_mode 'rest' is not supported by this plugin; use 'cli'",
        ),
        (json!({"ldap": {"uri": "ldap://x"}}), "ldap"),
        (
            json!({"periodic_limits": {"enabled": true, "emulator_mode": true}}),
            "emulator_mode",
        ),
        (
            json!({"homedir_quota": {"provider": "nfs"}}),
            "homedir_quota.provider",
        ),
        (
            json!({"homedir_quota": {"provider": "xfs", "block_softlimit": "1g"}}),
            "mount_point",
        ),
        (json!({"command_timeout": -1}), "command_timeout"),
    ] {
        let err = Slurm::open(&map(settings.clone()), golden_components())
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS, "{settings}");
        assert!(err.message.contains(needle), "{settings}: {}", err.message);
        assert!(!err.message.contains('\n'));
        // The agent's validation entry reports the same.
        assert!(<Slurm as Backend>::validate_settings(&map(settings)).is_err());
    }
    let warnings =
        <Slurm as Backend>::validate_settings(&map(json!({"customer_prefix": "c_"}))).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let bad = components(json!({"x": {"target_components": {"cpu": {"factor": -1}}}}));
    assert!(Slurm::open(&map(json!({})), bad.clone()).is_err());
    assert!(<Slurm as Backend>::validate_components(&bad).is_err());
}

#[test]
fn capabilities_and_implemented_methods() {
    let (_, slurm) = setup(json!({}), golden_components());
    let capabilities = slurm.capabilities().unwrap();
    assert!(capabilities.supports_user_homedirs);
    assert!(capabilities.supports_periodic_settings);
    assert!(!capabilities.supports_async_orders);
    let implemented = <Slurm as Backend>::IMPLEMENTED;
    for method in [
        "pull_resources",
        "pre_create_resource",
        "post_create_resource",
        "add_user",
        "add_users_to_resource",
        "remove_user",
        "remove_users_from_resource",
        "get_usage_report",
        // To check the slugs.
        "get_resource_backend_id",
        "get_project_backend_id",
        "get_customer_backend_id",
    ] {
        assert!(implemented.contains(&method), "{method}");
    }
    for method in [
        "create_resource_with_id",
        "delete_resource",
        "pull_resource",
    ] {
        assert!(!implemented.contains(&method), "{method} is the agent's");
    }
    assert_eq!(
        <Slurm as Client>::IMPLEMENTED.len(),
        15,
        "every client method"
    );
}

/// A directory with an executable `sacctmgr` running `body`.
fn fake_bin(body: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sacctmgr");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn a_hanging_command_is_killed_after_command_timeout() {
    let bin = fake_bin("sleep 30");
    let settings = map(json!({"slurm_bin_path": bin.path(), "command_timeout": 1}));
    let slurm = Slurm::open(&settings, golden_components()).unwrap();
    let started = Instant::now();
    let err = slurm.ping(true).unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(err.kind, ErrorKind::BACKEND);
    let sacctmgr = bin.path().join("sacctmgr").display().to_string();
    assert_eq!(
        err.message,
        format!(
            "{sacctmgr} --parsable2 --noheader --immediate list account did not finish within 1s (command_timeout) and was killed"
        )
    );
}

#[test]
fn a_missing_binary_is_a_backend_error_naming_its_path() {
    let settings = map(json!({"slurm_bin_path": "/x"}));
    let slurm = Slurm::open(&settings, golden_components()).unwrap();
    let err = slurm.ping(true).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert_eq!(err.message, "/x/sacctmgr: not found");
    let err = slurm
        .client_execute_command(vec!["/x/y".into()], false)
        .unwrap_err();
    assert_eq!(err.message, "/x/y: not found");
}

#[test]
fn a_failing_command_reports_the_command_and_its_output_on_one_line() {
    let bin = fake_bin(
        "echo 'sacctmgr: error: Problem talking to the database'; echo ' second line' >&2; exit 1",
    );
    let settings = map(json!({"slurm_bin_path": bin.path()}));
    let slurm = Slurm::open(&settings, golden_components()).unwrap();
    let err = slurm.client_get_resource("acc".into()).unwrap_err();
    let sacctmgr = bin.path().join("sacctmgr").display().to_string();
    assert_eq!(
        err.message,
        format!(
            "{sacctmgr} --parsable2 --noheader --immediate show account acc failed (exit code 1): \
             sacctmgr: error: Problem talking to the database; second line"
        )
    );
    // A modify that changed nothing is not a failure.
    let bin = fake_bin(
        "case \"$*\" in *modify*) echo ' Nothing modified'; exit 1;; *) echo 'acc|paused';; esac",
    );
    let settings = map(json!({"slurm_bin_path": bin.path()}));
    let slurm = Slurm::open(&settings, golden_components()).unwrap();
    assert!(slurm.restore_resource("acc".into()).unwrap());
}

/// A runner that measures how many commands run at once.
#[derive(Default)]
struct Overlap {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
}

impl crate::runner::Runner for Overlap {
    fn run(&self, _argv: &[String]) -> Result<String, crate::runner::RunError> {
        use std::sync::atomic::Ordering::SeqCst;
        let running = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(running, SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        self.now.fetch_sub(1, SeqCst);
        Ok(String::new())
    }
}

fn max_overlap(write: bool) -> usize {
    let runner = std::sync::Arc::new(Overlap::default());
    let slurm = slurm_on(json!({}), golden_components(), runner.clone());
    std::thread::scope(|scope| {
        for i in 0..4 {
            let slurm = &slurm;
            scope.spawn(move || {
                for _ in 0..3 {
                    if write {
                        slurm
                            .client
                            .set_account_qos(&format!("a{i}"), "normal")
                            .unwrap();
                    } else {
                        slurm.client.get_resource(&format!("a{i}")).unwrap();
                    }
                }
            });
        }
    });
    runner.max.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn sacctmgr_writes_never_run_concurrently_reads_may() {
    assert_eq!(max_overlap(true), 1);
    assert!(max_overlap(false) > 1);
}
