//! The reference's lifecycle traces (§2.6 of the reference notes, captured from the Python
//! agent): the same argv, command for command, for the methods the plugin implements and for
//! the agent's default flows composed on them.

use serde_json::json;
use waldur_plugin_abi::wire::{
    BackendLimits, Limits, RuntimeContext, UserOptions, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Backend, Client};

use super::*;

/// `list tres` of slurm-emulator 0.9.10, which the golden traces were captured with.
const EMULATOR_TRES: &str =
    "cpu||1\nmem||2\nenergy||3\nnode||4\nbilling||5\nfs|disk|6\nvmem||7\npages||8\ngres|gpu|1001\ngres|gpumem|1002\ngres|gpuutil|1003\n";

#[test]
fn golden_create_resource_with_id() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("list tres", &fixture("list_tres.txt"));
    let info = agent(&slurm)
        .create_resource_with_id(&golden_resource(), "hpc_alloc-1", None)
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show account hpc_cust-1",
            "{S} add account hpc_cust-1 description=\"Customer One\" organization=\"hpc_cust-1\" parent=\"root\"",
            "{S} show account hpc_proj-1",
            "{S} add account hpc_proj-1 description=\"Project One\" organization=\"hpc_proj-1\" parent=\"hpc_cust-1\"",
            "{S} show account hpc_alloc-1",
            "{S} add account hpc_alloc-1 description=\"My Alloc\" organization=\"hpc_proj-1\" parent=\"hpc_proj-1\"",
            "{S} list tres",
            "{S} modify account hpc_alloc-1 set GrpTRESMins=cpu=600000,gres/gpu=300,mem=614400",
        ],
    );
    assert_eq!(info.backend_id, "hpc_alloc-1");
    assert_eq!(
        info.limits,
        Limits::from([
            ("gres/gpu".into(), 5.0),
            ("cpu".into(), 10.0),
            ("mem".into(), 10.0)
        ])
    );
}

#[test]
fn golden_create_of_an_existing_account_is_a_duplicate() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("show account", "x|y|z\n");
    let err = agent(&slurm)
        .create_resource_with_id(&golden_resource(), "hpc_alloc-1", None)
        .unwrap_err();
    assert_eq!(err.kind(), waldur_plugin_abi::ErrorKind::DUPLICATE_RESOURCE);
    assert_calls(
        &runner,
        &[
            "{S} show account hpc_cust-1",
            "{S} show account hpc_proj-1",
            "{S} show account hpc_alloc-1",
        ],
    );
}

#[test]
fn golden_add_users_to_resource() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    let resource = WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    };
    // The reference's trace, user by user, is this plugin's for one user; two or more are
    // batched (tests/batching.rs).
    let added = agent(&slurm)
        .add_users_to_resource(&resource, &names(&["alice"]), &UserOptions::default())
        .unwrap();
    assert_eq!(added, vec!["alice"]);
    assert_calls(
        &runner,
        &[
            "{S} show association where user=alice account=hpc_alloc-1",
            "{S} add user alice account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
}

#[test]
fn golden_pull_resource() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show account hpc_alloc-1",
        "hpc_alloc-1|my alloc|hpc_proj-1\n",
    );
    runner.reply(
        "list associations format=account,user",
        "hpc_alloc-1|\nhpc_alloc-1|alice\nhpc_alloc-1|bob\n",
    );
    runner.reply(
        "--accounts=hpc_alloc-1",
        "hpc_alloc-1|billing=64,cpu=64,gres/gpu=4,mem=524288M,node=1|10:00:00|alice\n",
    );
    let resource = WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    };
    let info = agent(&slurm).pull_resource(&resource).unwrap().unwrap();
    let (start, end) = month_window();
    assert_calls(
        &runner,
        &[
            "{S} show account hpc_alloc-1",
            "{S} list associations format=account,user where account=hpc_alloc-1",
            &format!(
                "/usr/bin/sacct --parsable2 --noheader --noconvert --truncate --allocations --allusers \
                 --starttime={start} --endtime={end} --accounts=hpc_alloc-1 --format=Account,ReqTRES,Elapsed,User"
            ),
        ],
    );
    assert_eq!(info.users, vec!["alice", "bob"]);
    assert_eq!(info.usage["alice"]["cpu"], 0.64);
    assert_eq!(info.usage["alice"]["gres/gpu"], 40.0);
    assert_eq!(info.usage["alice"]["mem"], 5120.0);
    assert_eq!(info.usage[TOTAL_ACCOUNT_USAGE], info.usage["alice"]);
    assert_eq!(info.backend_id, "", "not filled in, as in the reference");
}

#[test]
fn golden_limits_read_and_set() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "GrpTRESMins where",
        "hpc_alloc-1|cpu=600000,gres/gpu=300,mem=600G\n",
    );
    let limits = slurm.get_resource_limits("hpc_alloc-1".into()).unwrap();
    assert_eq!(
        limits,
        BackendLimits::from([
            ("cpu".into(), 10),
            ("gres/gpu".into(), 5),
            ("mem".into(), 10)
        ])
    );
    slurm
        .set_resource_limits(
            "hpc_alloc-1".into(),
            Limits::from([("gres/gpu".into(), 7.0)]),
        )
        .unwrap();
    assert_calls(
        &runner,
        &[
            "/usr/bin/sacctmgr --parsable2 --noheader show association format=account,GrpTRESMins where accounts=hpc_alloc-1",
            "{S} modify account hpc_alloc-1 set GrpTRESMins=gres/gpu=420",
        ],
    );
}

#[test]
fn golden_pause_downscale_restore_and_metadata() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    let id = || "hpc_alloc-1".to_string();
    runner.reply("format=account,qos", "hpc_alloc-1|normal\n");
    assert!(slurm.pause_resource(id()).unwrap());
    assert_calls(
        &runner,
        &[
            "{S} list associations format=account,qos where account=hpc_alloc-1",
            "{S} modify account hpc_alloc-1 set qos=paused",
        ],
    );
    assert_eq!(slurm.get_resource_metadata(id()).unwrap()["qos"], "paused");
    assert_calls(&runner, &[]);

    assert!(slurm.downscale_resource(id()).unwrap());
    assert_calls(
        &runner,
        &[
            "{S} list associations format=account,qos where account=hpc_alloc-1",
            "{S} modify account hpc_alloc-1 set qos=limited",
        ],
    );
    runner.reply("format=account,qos", "hpc_alloc-1|limited\n");
    assert!(slurm.restore_resource(id()).unwrap());
    assert_calls(
        &runner,
        &[
            "{S} list associations format=account,qos where account=hpc_alloc-1",
            "{S} modify account hpc_alloc-1 set qos=normal",
        ],
    );
    runner.reply("format=account,qos", "hpc_alloc-1|normal\n");
    assert!(!slurm.restore_resource(id()).unwrap());
    assert_calls(
        &runner,
        &["{S} list associations format=account,qos where account=hpc_alloc-1"],
    );
    // The cache holds the last value and is consumed; then the QoS is queried.
    assert_eq!(slurm.get_resource_metadata(id()).unwrap()["qos"], "normal");
    assert_calls(&runner, &[]);
    assert_eq!(slurm.get_resource_metadata(id()).unwrap()["qos"], "normal");
    assert_calls(
        &runner,
        &["{S} list associations format=account,qos where account=hpc_alloc-1"],
    );
}

#[test]
fn golden_sync_resource_project_when_the_parent_is_right() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("show assoc account=hpc_proj-1", "hpc_proj-1|hpc_cust-1|\n");
    let resource = WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    };
    slurm.sync_resource_project(resource, None).unwrap();
    assert_calls(
        &runner,
        &["{S} show assoc account=hpc_proj-1 format=Account,ParentName,User -n -P"],
    );
}

#[test]
fn golden_set_resource_user_limits() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("list tres", EMULATOR_TRES);
    slurm
        .set_resource_user_limits(
            "hpc_alloc-1".into(),
            "alice".into(),
            BackendLimits::from([("gres/gpu".into(), 1)]),
        )
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} list tres",
            "{S} modify user alice where account=hpc_alloc-1 set MaxTRESMins=cpu=-1,mem=-1,energy=-1,node=-1,billing=-1,fs/disk=-1,vmem=-1,pages=-1,gres/gpu=60,gres/gpumem=-1,gres/gpuutil=-1",
        ],
    );
}

#[test]
fn golden_remove_users_from_resource() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show association where user=bob",
        "waldurtest|hpc_alloc-1|bob|debug|parent|||||||||||||normal||\n",
    );
    runner.reply("id -u bob", "1002\n");
    runner.reply(
        "--user=bob",
        "7|wrap|debug|hpc_alloc-1|bob|RUNNING|00:00:02|UNLIMITED|vm\n",
    );
    let resource = WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    };
    assert_eq!(
        agent(&slurm)
            .remove_users_from_resource(&resource, &names(&["bob"]), &UserOptions::default())
            .unwrap(),
        vec!["bob"]
    );
    assert_calls(
        &runner,
        &[
            "{S} show association where user=bob account=hpc_alloc-1",
            "id -u bob",
            "/usr/bin/sacct --parsable2 --noheader -a --account=hpc_alloc-1 --user=bob --format=JobID,JobName,Partition,Account,User,State,Elapsed,Timelimit,NodeList",
            "/usr/bin/scancel -u bob -A hpc_alloc-1 -f",
            "{S} remove user where name=bob and account=hpc_alloc-1",
        ],
    );
    // Without jobs, nothing is cancelled; an unknown Linux user skips the job check.
    runner.reply("--user=bob", "");
    agent(&slurm)
        .remove_users_from_resource(&resource, &names(&["bob"]), &UserOptions::default())
        .unwrap();
    let calls = runner.take_calls();
    assert!(!calls.iter().any(|c| c.contains("scancel")), "{calls:?}");
    runner.fail("id -u bob", 1, "id: 'bob': no such user\n");
    agent(&slurm)
        .remove_users_from_resource(&resource, &names(&["bob"]), &UserOptions::default())
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show association where user=bob account=hpc_alloc-1",
            "id -u bob",
            "{S} remove user where name=bob and account=hpc_alloc-1",
        ],
    );
}

#[test]
fn golden_delete_resource_with_project_cleanup() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show account hpc_alloc-1",
        "hpc_alloc-1|my alloc|hpc_proj-1\n",
    );
    runner.reply(
        "show account hpc_proj-1",
        "hpc_proj-1|project one|hpc_proj-1\n",
    );
    runner.reply(
        "show association where account=hpc_alloc-1",
        "waldurtest|hpc_alloc-1|||1|||||||||||||normal||\nwaldurtest|hpc_alloc-1|alice||parent|||||||||||||normal||\n",
    );
    // After the removal only the project's own account names it as organization.
    runner.reply(
        "list account",
        "hpc_cust-1|customer one|hpc_cust-1\nhpc_proj-1|project one|hpc_proj-1\nroot|default root account|root\n",
    );
    let resource = WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    };
    assert_eq!(
        agent(&slurm)
            .delete_resource(&resource, Some("proj-1"))
            .unwrap(),
        None
    );
    assert_calls(
        &runner,
        &[
            "{S} show account hpc_alloc-1",
            "{S} show association where account=hpc_alloc-1",
            "/usr/bin/scancel -A hpc_alloc-1 -f",
            "{S} remove user where account=hpc_alloc-1",
            "{S} show account hpc_alloc-1",
            "{S} remove account where name=hpc_alloc-1",
            "{S} list account",
            "{S} show account hpc_proj-1",
            "{S} remove account where name=hpc_proj-1",
        ],
    );
}

#[test]
fn golden_diagnostics() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("-V", &fixture("sinfo_version.txt"));
    runner.reply("--version", &fixture("sacctmgr_version.txt"));
    runner.reply("list account", &fixture("list_account.txt"));
    runner.reply("list cluster", &fixture("list_cluster.txt"));
    runner.reply("list tres", &fixture("list_tres.txt"));
    runner.reply("show account root", "root|default root account|root\n");
    assert!(slurm.diagnostics().unwrap());
    assert_calls(
        &runner,
        &[
            "/usr/bin/sinfo -V",
            "/usr/bin/sacctmgr --version",
            "{S} list account",
            "{S} list cluster format=cluster",
            "{S} list tres",
            "{S} show account root",
            "{S} show account root",
        ],
    );
}

/// The variant trace: cluster_name, policy individual, offering partitions, QoS enforcement
/// and qos_management. Differs from the reference only where bug 1 is fixed: the per-account
/// QoS is created and attached after the allocation account exists (see `bugs.rs`).
#[test]
fn golden_variant_with_cluster_policy_partitions_and_enforcement() {
    let settings = json!({
        "customer_prefix": "c_",
        "project_prefix": "p_",
        "allocation_prefix": "a_",
        "default_account": "root",
        "cluster_name": "mycluster",
        "default_account_policy": "individual",
        "enforce_offering_partitions": true,
        "qos_enforcement_enabled": true,
        "qos_management": {
            "enabled": true, "grp_tres": "cpu=112,gres/gpu=8", "max_jobs": 4, "max_wall": 120
        },
        "enable_user_homedir_account_creation": false,
    });
    let comps = components(json!({"cpu": {"accounting_type": "one", "unit_factor": 1}}));
    let (runner, slurm) = setup(settings, comps);
    slurm
        .set_runtime_context(RuntimeContext {
            timezone: "UTC".into(),
            offering_partitions: vec!["gpu".into(), "cpu".into()],
            offering_enforce_qos: Some(true),
            ..Default::default()
        })
        .unwrap();
    runner.reply("list tres", &fixture("list_tres.txt"));
    let mut resource = WaldurResource {
        name: "X".into(),
        slug: "alloc-x".into(),
        customer_slug: "cust".into(),
        customer_name: "C".into(),
        project_slug: "proj".into(),
        project_name: "P".into(),
        limits: [("cpu".to_string(), 4.0)].into(),
        end_date: Some("2026-08-01".into()),
        ..Default::default()
    };
    resource
        .extra
        .insert("created".into(), json!("2026-01-01T12:00:00Z"));
    agent(&slurm)
        .create_resource_with_id(&resource, "a_alloc-x", None)
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show account c_cust cluster=mycluster",
            "{S} add account c_cust description=\"C\" organization=\"c_cust\" parent=\"root\" cluster=mycluster",
            "{S} show account p_proj cluster=mycluster",
            "{S} add account p_proj description=\"P\" organization=\"p_proj\" parent=\"c_cust\" cluster=mycluster",
            "{S} show account a_alloc-x cluster=mycluster",
            "{S} add account a_alloc-x description=\"X\" organization=\"p_proj\" parent=\"p_proj\" cluster=mycluster",
            "{S} list tres",
            "{S} modify account a_alloc-x cluster=mycluster set GrpTRESMins=cpu=28",
            "{S} show qos a_alloc-x",
            "{S} add qos a_alloc-x set flags=DenyOnLimit,NoDecay",
            "{S} modify qos a_alloc-x set GrpTRES=cpu=112,gres/gpu=8",
            "{S} modify qos a_alloc-x set MaxJobs=4",
            "{S} modify qos a_alloc-x set MaxWall=120",
            "{S} modify account cluster=mycluster set qos+=a_alloc-x where account=a_alloc-x",
            "{S} modify account cluster=mycluster set defaultqos=a_alloc-x where account=a_alloc-x",
        ],
    );

    resource.backend_id = "a_alloc-x".into();
    slurm
        .add_user(resource.clone(), "alice".into(), UserOptions::default())
        .unwrap();
    let mut with_qos = resource.clone();
    with_qos.attributes = crate::tests::map(json!({"qos": "boost", "partition": "gpu"}));
    slurm
        .add_user(with_qos, "bob".into(), UserOptions::default())
        .unwrap();
    assert!(slurm.pause_resource("a_alloc-x".into()).unwrap());
    assert!(slurm.downscale_resource("a_alloc-x".into()).unwrap());
    assert!(slurm.restore_resource("a_alloc-x".into()).unwrap());
    slurm
        .client_get_usage_report(vec!["a_alloc-x".into()], None)
        .unwrap();
    slurm
        .client
        .cancel_active_user_jobs("a_alloc-x", None)
        .unwrap();
    let (start, end) = month_window();
    assert_calls(
        &runner,
        &[
            "{S} show association where user=alice account=a_alloc-x cluster=mycluster",
            "{S} add user alice account=a_alloc-x DefaultAccount=a_alloc-x Partitions=cpu,gpu Share=parent cluster=mycluster",
            "{S} show association where user=bob account=a_alloc-x cluster=mycluster",
            "{S} add user bob account=a_alloc-x DefaultAccount=a_alloc-x Partitions=gpu QosLevel=boost DefaultQOS=boost Share=parent cluster=mycluster",
            "{S} modify account a_alloc-x cluster=mycluster set GrpSubmitJobs=0",
            "{S} modify account a_alloc-x cluster=mycluster set GrpSubmitJobs=0",
            "{S} modify account a_alloc-x cluster=mycluster set GrpSubmitJobs=-1",
            &format!(
                "/usr/bin/sacct --parsable2 --noheader --cluster=mycluster --noconvert --truncate --allocations --allusers \
                 --starttime={start} --endtime={end} --accounts=a_alloc-x --format=Account,ReqTRES,Elapsed,User"
            ),
            "/usr/bin/scancel --cluster=mycluster -A a_alloc-x -f",
        ],
    );
}
