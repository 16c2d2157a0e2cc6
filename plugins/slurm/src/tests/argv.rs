//! The argv of every client method, without and with `cluster_name` (§2.3).

use std::sync::Arc;

use serde_json::json;
use waldur_plugin_abi::wire::BackendLimits;

use super::*;
use crate::client::{QosSpec, SlurmClient};
use crate::usage::Period;

type Call = fn(&SlurmClient);

/// Runs a call for its command only.
fn ignore<T>(_answer: T) {}

/// (what, call, argv without cluster, argv with cluster `c1`).
fn catalogue() -> Vec<(&'static str, Call, &'static str, &'static str)> {
    vec![
        ("list_resources", |c| ignore(c.list_resources()), "{S} list account", "{S} list account cluster=c1"),
        ("list_accounts", |c| ignore(c.list_accounts(&["a".into(), "b".into()])),
            "{S} list account where name=a,b", "{S} list account where name=a,b cluster=c1"),
        ("get_resource", |c| ignore(c.get_resource("a")), "{S} show account a", "{S} show account a cluster=c1"),
        ("create_resource", |c| ignore(c.create_resource("a", "Desc \"x\"\nnext", "org", Some("p"))),
            "{S} add account a description=\"Desc x next\" organization=\"org\" parent=\"p\"",
            "{S} add account a description=\"Desc x next\" organization=\"org\" parent=\"p\" cluster=c1"),
        ("create_resource without parent", |c| ignore(c.create_resource("a", "d", "o", None)),
            "{S} add account a description=\"d\" organization=\"o\"",
            "{S} add account a description=\"d\" organization=\"o\" cluster=c1"),
        ("delete_resource", |c| ignore(c.delete_resource("a")),
            "{S} remove account where name=a", "{S} remove account where name=a cluster=c1"),
        ("get_account_parent", |c| ignore(c.get_account_parent("p")),
            "{S} show assoc account=p format=Account,ParentName,User -n -P",
            "{S} show assoc account=p format=Account,ParentName,User -n -P cluster=c1"),
        ("set_account_parent", |c| ignore(c.set_account_parent("p", "c")),
            "{S} modify account where name=p set parent=c",
            "{S} modify account where name=p cluster=c1 set parent=c"),
        ("account_has_users", |c| ignore(c.account_has_users("a")),
            "{S} show association where account=a", "{S} show association where account=a cluster=c1"),
        ("delete_all_users_from_account", |c| ignore(c.delete_all_users_from_account("a")),
            "{S} remove user where account=a", "{S} remove user where account=a cluster=c1"),
        ("set_resource_limits", |c| ignore(c.set_resource_limits("a", &BackendLimits::from([("mem".into(), 2), ("cpu".into(), 1)]))),
            "{S} modify account a set GrpTRESMins=cpu=1,mem=2",
            "{S} modify account a cluster=c1 set GrpTRESMins=cpu=1,mem=2"),
        ("get_resource_limits", |c| ignore(c.get_resource_limits("a")),
            "/usr/bin/sacctmgr --parsable2 --noheader show association format=account,GrpTRESMins where accounts=a",
            "/usr/bin/sacctmgr --parsable2 --noheader show association format=account,GrpTRESMins where accounts=a cluster=c1"),
        ("get_resource_user_limits", |c| ignore(c.get_resource_user_limits("a")),
            "/usr/bin/sacctmgr --parsable2 --noheader show association where accounts=a format=Account,MaxTRESMins,User",
            "/usr/bin/sacctmgr --parsable2 --noheader show association where accounts=a format=Account,MaxTRESMins,User cluster=c1"),
        ("get_association", |c| ignore(c.get_association("u", "a")),
            "{S} show association where user=u account=a", "{S} show association where user=u account=a cluster=c1"),
        ("create_association", |c| ignore(c.create_association(&["u"], "a", Some("d"))),
            "{S} add user u account=a DefaultAccount=d Share=parent",
            "{S} add user u account=a DefaultAccount=d Share=parent cluster=c1"),
        ("create_association without default", |c| ignore(c.create_association(&["u"], "a", None)),
            "{S} add user u account=a Share=parent", "{S} add user u account=a Share=parent cluster=c1"),
        ("create_association_with_partition", |c| ignore(c.create_association_with_partition(&["u"], "a", "gpu", Some("d"))),
            "{S} add user u account=a DefaultAccount=d Partition=gpu",
            "{S} add user u account=a DefaultAccount=d Partition=gpu cluster=c1"),
        ("create_association_with_partitions", |c| ignore(c.create_association_with_partitions(&["u"], "a", &["gpu".into(), "cpu".into()], None)),
            "{S} add user u account=a Partitions=cpu,gpu Share=parent",
            "{S} add user u account=a Partitions=cpu,gpu Share=parent cluster=c1"),
        ("create_association_with_qos", |c| ignore(c.create_association_with_qos(&["u"], "a", &["q1".into(), "q2".into()], Some("q1"), Some(&["p2".into(), "p1".into()]), Some("a"))),
            "{S} add user u account=a DefaultAccount=a Partitions=p1,p2 QosLevel=q1,q2 DefaultQOS=q1 Share=parent",
            "{S} add user u account=a DefaultAccount=a Partitions=p1,p2 QosLevel=q1,q2 DefaultQOS=q1 Share=parent cluster=c1"),
        ("create_association_with_qos minimal", |c| ignore(c.create_association_with_qos(&["u"], "a", &["q".into()], None, None, None)),
            "{S} add user u account=a QosLevel=q Share=parent",
            "{S} add user u account=a QosLevel=q Share=parent cluster=c1"),
        ("delete_association", |c| ignore(c.delete_association(&["u"], "a")),
            "{S} remove user where name=u and account=a", "{S} remove user where name=u and account=a cluster=c1"),
        ("list_resource_users", |c| ignore(c.list_resource_users("a")),
            "{S} list associations format=account,user where account=a",
            "{S} list associations format=account,user where account=a cluster=c1"),
        ("list_users_of_accounts", |c| ignore(c.list_users_of_accounts(&["a".into(), "b".into()])),
            "{S} list associations format=account,user where account=a,b",
            "{S} list associations format=account,user where account=a,b cluster=c1"),
        ("get_current_account_qos", |c| ignore(c.get_current_account_qos("a")),
            "{S} list associations format=account,qos where account=a",
            "{S} list associations format=account,qos where account=a cluster=c1"),
        ("set_account_qos", |c| ignore(c.set_account_qos("a", "paused")),
            "{S} modify account a set qos=paused", "{S} modify account a cluster=c1 set qos=paused"),
        ("set_account_qos_list", |c| ignore(c.set_account_qos_list("a", &["x".into(), "y".into()])),
            "{S} modify account a set qos=x,y", "{S} modify account a cluster=c1 set qos=x,y"),
        ("set_account_grp_submit_jobs", |c| ignore(c.set_account_grp_submit_jobs("a", 0)),
            "{S} modify account a set GrpSubmitJobs=0", "{S} modify account a cluster=c1 set GrpSubmitJobs=0"),
        ("qos_exists", |c| ignore(c.qos_exists("q")), "{S} show qos q", "{S} show qos q"),
        ("delete_qos", |c| ignore(c.delete_qos("q")), "{S} remove qos where name=q", "{S} remove qos where name=q"),
        ("add_account_qos", |c| ignore(c.add_account_qos("a", "q")),
            "{S} modify account set qos+=q where account=a",
            "{S} modify account cluster=c1 set qos+=q where account=a"),
        ("set_account_default_qos", |c| ignore(c.set_account_default_qos("a", "q")),
            "{S} modify account set defaultqos=q where account=a",
            "{S} modify account cluster=c1 set defaultqos=q where account=a"),
        ("list_tres", |c| ignore(c.list_tres()), "{S} list tres", "{S} list tres"),
        ("list_clusters", |c| ignore(c.list_clusters()), "{S} list cluster format=cluster", "{S} list cluster format=cluster"),
        ("get_version", |c| ignore(c.get_version()), "/usr/bin/sinfo -V", "/usr/bin/sinfo -V"),
        ("validate_slurm_binary", |c| ignore(c.validate_slurm_binary()), "/usr/bin/sacctmgr --version", "/usr/bin/sacctmgr --version"),
        ("set_account_fairshare", |c| ignore(c.set_account_fairshare("a", "5")),
            "{S} modify account a set fairshare=5", "{S} modify account a cluster=c1 set fairshare=5"),
        ("get_account_fairshare", |c| ignore(c.get_account_fairshare("a")),
            "{S} list account withassoc format=account,user,fairshare where account=a",
            "{S} list account withassoc format=account,user,fairshare where account=a cluster=c1"),
        ("get_account_limits", |c| ignore(c.get_account_limits("a")),
            "{S} list account withassoc format=account,user,grptres,grptresmin,maxtres,maxtresmin where account=a",
            "{S} list account withassoc format=account,user,grptres,grptresmin,maxtres,maxtresmin where account=a cluster=c1"),
        ("reset_raw_usage", |c| ignore(c.reset_raw_usage("a")),
            "{S} modify account a set RawUsage=0", "{S} modify account a cluster=c1 set RawUsage=0"),
        ("usage_lines", |c| ignore(c.usage_lines(&["a".into(), "b".into()], Period::new(2026, 2).unwrap())),
            "/usr/bin/sacct --parsable2 --noheader --noconvert --truncate --allocations --allusers --starttime=2026-02-01T00:00:00 --endtime=2026-02-28T23:59:59 --accounts=a,b --format=Account,ReqTRES,Elapsed,User",
            "/usr/bin/sacct --parsable2 --noheader --cluster=c1 --noconvert --truncate --allocations --allusers --starttime=2026-02-01T00:00:00 --endtime=2026-02-28T23:59:59 --accounts=a,b --format=Account,ReqTRES,Elapsed,User"),
        ("list_active_user_jobs", |c| ignore(c.list_active_user_jobs("a", "u")),
            "/usr/bin/sacct --parsable2 --noheader -a --account=a --user=u --format=JobID,JobName,Partition,Account,User,State,Elapsed,Timelimit,NodeList",
            "/usr/bin/sacct --parsable2 --noheader --cluster=c1 -a --account=a --user=u --format=JobID,JobName,Partition,Account,User,State,Elapsed,Timelimit,NodeList"),
        ("cancel_active_user_jobs", |c| ignore(c.cancel_active_user_jobs("a", Some("u"))),
            "/usr/bin/scancel -u u -A a -f", "/usr/bin/scancel --cluster=c1 -u u -A a -f"),
        ("cancel all jobs", |c| ignore(c.cancel_active_user_jobs("a", None)),
            "/usr/bin/scancel -A a -f", "/usr/bin/scancel --cluster=c1 -A a -f"),
        ("check_user_exists", |c| ignore(c.check_user_exists("u")), "id -u u", "id -u u"),
        ("create_linux_user_homedir", |c| ignore(c.create_linux_user_homedir("u", "0077")),
            "/sbin/mkhomedir_helper u 0077", "/sbin/mkhomedir_helper u 0077"),
    ]
}

fn client(cluster: Option<&str>) -> (Arc<RecordingRunner>, Slurm) {
    let mut settings = json!({});
    if let Some(cluster) = cluster {
        settings["cluster_name"] = json!(cluster);
    }
    setup(settings, golden_components())
}

#[test]
fn every_client_method_without_a_cluster() {
    let (runner, slurm) = client(None);
    for (what, call, plain, _) in catalogue() {
        call(&slurm.client);
        let calls = runner.take_calls();
        assert_eq!(calls, expand(&[plain]), "{what}");
    }
}

#[test]
fn every_client_method_with_a_cluster() {
    let (runner, slurm) = client(Some("c1"));
    for (what, call, _, clustered) in catalogue() {
        call(&slurm.client);
        let calls = runner.take_calls();
        assert_eq!(calls, expand(&[clustered]), "{what}");
    }
}

#[test]
fn set_resource_user_limits_lists_tres_first() {
    let (runner, slurm) = client(Some("c1"));
    runner.reply("list tres", "cpu||1\ngres|gpu|1001\n");
    slurm
        .client
        .set_resource_user_limits("a", "u", &BackendLimits::from([("gres/gpu".into(), 5)]))
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} list tres",
            "{S} modify user u where account=a cluster=c1 set MaxTRESMins=cpu=-1,gres/gpu=5",
        ],
    );
}

#[test]
fn create_qos_runs_one_modify_per_limit() {
    let (runner, slurm) = client(Some("c1"));
    let spec = QosSpec {
        flags: Some("DenyOnLimit".into()),
        grp_tres: Some("cpu=4".into()),
        max_jobs: Some(2),
        max_submit: Some(3),
        max_wall: Some("1-00:00:00".into()),
        min_tres_per_job: Some("gres/gpu=1".into()),
    };
    slurm.client.create_qos("q", &spec).unwrap();
    assert_calls(
        &runner,
        &[
            "{S} add qos q set flags=DenyOnLimit",
            "{S} modify qos q set GrpTRES=cpu=4",
            "{S} modify qos q set MaxJobs=2",
            "{S} modify qos q set MaxSubmit=3",
            "{S} modify qos q set MaxWall=1-00:00:00",
            "{S} modify qos q set MinTRESPerJob=gres/gpu=1",
        ],
    );
    slurm.client.create_qos("q", &QosSpec::default()).unwrap();
    assert_calls(&runner, &["{S} add qos q"]);
}

#[test]
fn set_account_limits_runs_one_modify_per_tres() {
    let (runner, slurm) = client(None);
    slurm
        .client
        .set_account_limits(
            "a",
            "GrpTRESMins",
            &[("cpu".into(), "10".into()), ("gres/gpu".into(), "2".into())],
        )
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} modify account a set GrpTRESMins=cpu=10",
            "{S} modify account a set GrpTRESMins=gres/gpu=2",
        ],
    );
}

#[test]
fn invalid_partition_and_qos_names_run_nothing() {
    let (runner, slurm) = client(None);
    let c = &slurm.client;
    assert!(c
        .create_association_with_partition(&["u"], "a", "gpu,all", None)
        .is_err());
    assert!(c
        .create_association_with_partitions(&["u"], "a", &[], None)
        .is_err());
    assert!(c
        .create_association_with_partitions(&["u"], "a", &["ok".into(), "no pe".into()], None)
        .is_err());
    assert!(c
        .create_association_with_qos(&["u"], "a", &[], None, None, None)
        .is_err());
    assert!(c
        .create_association_with_qos(&["u"], "a", &["q x".into()], None, None, None)
        .is_err());
    assert!(c
        .create_association_with_qos(&["u"], "a", &["q".into()], Some("d;"), None, None)
        .is_err());
    assert!(c
        .create_association_with_qos(
            &["u"],
            "a",
            &["q".into()],
            None,
            Some(&["p=1".into()]),
            None
        )
        .is_err());
    assert!(runner.calls().is_empty(), "{:?}", runner.calls());
}

#[test]
fn a_custom_bin_path_and_no_bin_path() {
    let (runner, slurm) = setup(
        json!({"slurm_bin_path": "/opt/slurm/bin/"}),
        golden_components(),
    );
    slurm.client.list_tres().unwrap();
    slurm.client.get_version().unwrap();
    slurm.client.cancel_active_user_jobs("a", None).unwrap();
    assert_calls(
        &runner,
        &[
            "/opt/slurm/bin/sacctmgr --parsable2 --noheader --immediate list tres",
            "/opt/slurm/bin/sinfo -V",
            "/opt/slurm/bin/scancel -A a -f",
        ],
    );
    let (runner, slurm) = setup(json!({"slurm_bin_path": ""}), golden_components());
    slurm.client.list_tres().unwrap();
    assert_calls(
        &runner,
        &["sacctmgr --parsable2 --noheader --immediate list tres"],
    );
}
