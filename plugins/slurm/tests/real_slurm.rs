//! The plugin against REAL SLURM 22.05 accounting (scripts/slurm-setup.sh), in-process: every
//! client method and every flow, read back with sacctmgr and sacct.
//!
//! Without SLURM these tests skip, except under `CI=true`, where they fail. Each test works
//! under its own account-name prefix and removes everything under it when it ends, failed
//! or not, so the tests run in parallel.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{
    BackendComponents, BackendLimits, BackendResourceInfo, JsonMap, Limits, RuntimeContext,
    UserOptions, WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Backend, Client, ErrorKind};
use waldur_plugin_host::testing::Harness;
use waldur_plugin_host::Backend as Agent;
use waldur_plugin_slurm::runner::{ProcessRunner, RunError, Runner};
use waldur_plugin_slurm::Slurm;
use waldur_test_support::slurm::{require_real_slurm, sacctmgr_rows, AccountGuard};

/// A prefix no other test (or concurrent run) uses.
fn prefix(tag: &str) -> String {
    format!("wrs{tag}{}_", std::process::id() % 100_000)
}

fn settings(prefix: &str, extra: Value) -> JsonMap {
    let mut settings = json!({
        "customer_prefix": prefix,
        "project_prefix": prefix,
        "allocation_prefix": prefix,
        "default_account": "root",
        // Individual: no user gets an association outside the test's own accounts.
        "default_account_policy": "individual",
        "qos_default": "normal",
        "qos_paused": "paused",
        "qos_downscaled": "limited",
        "enable_user_homedir_account_creation": false,
        "command_timeout": 60,
    });
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        settings[key] = value;
    }
    settings.as_object().cloned().unwrap()
}

fn components() -> BackendComponents {
    serde_json::from_value(json!({
        "cpu": {"accounting_type": "usage", "limit": 10, "unit_factor": 1, "measured_unit": "CPU-minutes"},
        "mem": {"accounting_type": "usage", "unit_factor": 1, "measured_unit": "MB-minutes"},
        "gres/gpu": {"accounting_type": "limit", "unit_factor": 60, "measured_unit": "GPU-hours"},
    }))
    .unwrap()
}

/// Real commands, also recorded (to count them).
#[derive(Default)]
struct Counting {
    calls: Mutex<Vec<String>>,
}

impl Runner for Counting {
    fn run(&self, argv: &[String]) -> Result<String, RunError> {
        self.calls.lock().unwrap().push(argv.join(" "));
        ProcessRunner::new(Duration::from_secs(60)).run(argv)
    }
}

impl Counting {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// The plugin on `settings` with real, recorded commands: one instance to call directly,
/// and a second one on the same settings and runner as the agent runs it, inside the agent's
/// real default algorithms (`waldur_plugin_host::testing`). SLURM holds the state, so both
/// see the same accounts.
fn backend(settings: JsonMap) -> (Arc<Counting>, Slurm, Agent) {
    let runner = Arc::new(Counting::default());
    let instance = |runner: Arc<Counting>| {
        let slurm = Slurm::with_runner(&settings, components(), runner).unwrap();
        slurm
            .set_runtime_context(RuntimeContext {
                timezone: "UTC".into(),
                runtime_dir: Some(
                    waldur_test_support::slurm::runtime_dir()
                        .display()
                        .to_string(),
                ),
                ..Default::default()
            })
            .unwrap();
        slurm
    };
    let agent = Harness::new("slurm")
        .settings(Value::Object(settings.clone()))
        .components(serde_json::to_value(components()).unwrap())
        .backend_of(instance(runner.clone()));
    (runner.clone(), instance(runner), agent)
}

/// Usernames as the agent passes them.
fn names(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| u.to_string()).collect()
}

fn resource(slug: &str, customer: &str, project: &str) -> WaldurResource {
    WaldurResource {
        uuid: format!("uuid-{slug}"),
        name: format!("Allocation {slug}"),
        slug: slug.into(),
        customer_slug: customer.into(),
        customer_name: format!("Customer {customer}"),
        project_slug: project.into(),
        project_name: format!("Project {project}"),
        limits: Limits::from([("gres/gpu".into(), 5.0)]),
        ..Default::default()
    }
}

/// `[account, user, parent, GrpTRESMins, QOS, partition, GrpSubmitJobs, DefaultQOS]` of the
/// associations of `account`.
fn associations(account: &str) -> Vec<Vec<String>> {
    sacctmgr_rows(&[
        "show",
        "assoc",
        "format=Account,User,ParentName,GrpTRESMins,QOS,Partition,GrpSubmitJobs,DefaultQOS",
        "where",
        &format!("account={account}"),
    ])
}

/// The account's own association.
fn account_row(account: &str) -> Option<Vec<String>> {
    associations(account)
        .into_iter()
        .find(|row| row[0] == account && row[1].is_empty())
}

/// The own associations of several accounts at once (one query), by account.
fn account_rows(accounts: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    associations(&accounts.join(","))
        .into_iter()
        .filter(|row| row[1].is_empty())
        .map(|row| (row[0].clone(), row))
        .collect()
}

/// The association of `user` in `account`.
fn user_row(account: &str, user: &str) -> Option<Vec<String>> {
    associations(account)
        .into_iter()
        .find(|row| row[0] == account && row[1] == user)
}

fn users_of(account: &str) -> Vec<String> {
    let mut users: Vec<String> = associations(account)
        .into_iter()
        .filter(|row| row[0] == account && !row[1].is_empty())
        .map(|row| row[1].clone())
        .collect();
    users.sort();
    users
}

fn accounts(prefix: &str) -> Vec<String> {
    sacctmgr_rows(&["list", "account", "format=account"])
        .into_iter()
        .map(|row| row[0].clone())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Runs a short job as `user` in `account` and waits until sacct shows it completed.
fn run_job(user: &str, account: &str, cpus: u32, seconds: u32) -> String {
    let output = Command::new("runuser")
        .args(["-u", user, "--", "sbatch", "--parsable", "-A", account])
        .arg(format!("-n{cpus}"))
        // No output file: a stale /tmp/slurm-<id>.out of another user (job ids restart after a
        // wipe) makes the job fail at once.
        .args(["--mem=10", "--chdir=/tmp", "--output=/dev/null", "--wrap"])
        .arg(format!("sleep {seconds}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sbatch: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn wait_for_jobs(jobs: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for job in jobs {
        loop {
            let state = Command::new("sacct")
                .args(["-n", "-X", "-P", "-j", job, "-o", "State"])
                .output()
                .unwrap();
            match String::from_utf8_lossy(&state.stdout).trim() {
                "COMPLETED" => break,
                "" | "PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING" => {}
                other => panic!("job {job} ended {other}"),
            }
            assert!(Instant::now() < deadline, "job {job} did not complete");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The month-window query (what reports read) answers with one row per job. slurmdbd can list a
/// job by id as COMPLETED a moment before a time-window query finds it (one CI run saw 0 of 3
/// rows), so the rows are awaited; when they never come the jobs' accounting times are shown.
fn wait_for_window_rows<T>(jobs: &[String], query: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = query();
        if rows.len() == jobs.len() {
            return rows;
        }
        if Instant::now() >= deadline {
            let shown = Command::new("sacct")
                .args(["-a", "-X", "-P", "-j", &jobs.join(",")])
                .args([
                    "-o",
                    "JobID,Account,User,State,Eligible,Start,End,Elapsed,ReqTRES",
                ])
                .output()
                .unwrap();
            panic!(
                "the month window lists {} of {} jobs after 30 s; sacct -j says:\n{}",
                rows.len(),
                jobs.len(),
                String::from_utf8_lossy(&shown.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn hierarchy_limits_reparenting_and_delete() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let p = prefix("h");
    let _cleanup = AccountGuard::new(&p);
    let (_, slurm, agent) = backend(settings(&p, json!({})));
    let (cust, proj, alloc1, alloc2) = (
        format!("{p}cust"),
        format!("{p}proj"),
        format!("{p}alloc1"),
        format!("{p}alloc2"),
    );

    let r1 = resource("alloc1", "cust", "proj");
    let info = agent.create_resource_with_id(&r1, &alloc1, None).unwrap();
    assert_eq!(info.backend_id, alloc1);
    assert_eq!(
        info.limits,
        Limits::from([("cpu".into(), 10.0), ("gres/gpu".into(), 5.0)])
    );
    let rows = account_rows(&[&cust, &proj, &alloc1]);
    assert_eq!(rows[&cust][2], "root");
    assert_eq!(rows[&proj][2], cust);
    assert_eq!(rows[&alloc1][2], proj);
    assert_eq!(rows[&alloc1][3], "cpu=10,gres/gpu=300");
    let listed = slurm.client_get_resource(alloc1.clone()).unwrap().unwrap();
    assert_eq!(
        (listed.description.as_str(), listed.organization.as_str()),
        ("allocation alloc1", proj.as_str()),
        "sacctmgr lower-cases descriptions"
    );

    // Again: the account exists.
    let err = agent
        .create_resource_with_id(&r1, &alloc1, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DUPLICATE_RESOURCE);

    // Limits: read back in Waldur units; set in Waldur units.
    assert_eq!(
        slurm.get_resource_limits(alloc1.clone()).unwrap(),
        BackendLimits::from([("cpu".into(), 10), ("gres/gpu".into(), 5)])
    );
    slurm
        .set_resource_limits(alloc1.clone(), Limits::from([("gres/gpu".into(), 7.0)]))
        .unwrap();
    assert_eq!(account_row(&alloc1).unwrap()[3], "cpu=10,gres/gpu=420");
    assert_eq!(
        slurm.client_get_resource_limits(alloc1.clone()).unwrap(),
        BackendLimits::from([("cpu".into(), 10), ("gres/gpu".into(), 420)])
    );

    // The project moves to another customer: re-parented, the allocation moves along.
    let mut moved = r1.clone();
    moved.backend_id = alloc1.clone();
    moved.customer_slug = "cust2".into();
    slurm.sync_resource_project(moved, None).unwrap();
    let cust2 = format!("{p}cust2");
    let rows = account_rows(&[&proj, &cust2, &alloc1]);
    assert_eq!(rows[&proj][2], cust2);
    assert_eq!(rows[&cust2][2], "root");
    assert_eq!(rows[&alloc1][2], proj);

    // A second allocation in the project; soft delete keeps it with zero limits.
    let r2 = resource("alloc2", "cust2", "proj");
    agent.create_resource_with_id(&r2, &alloc2, None).unwrap();
    let r2 = WaldurResource {
        backend_id: alloc2.clone(),
        ..r2
    };
    let (_, _, soft) = backend(settings(&p, json!({"soft_delete": true})));
    soft.delete_resource(&r2, Some("proj")).unwrap();
    assert_eq!(account_row(&alloc2).unwrap()[3], "cpu=0,gres/gpu=0,mem=0");

    // Deleting alloc1 keeps the project (alloc2 is in it); deleting alloc2 removes it too.
    let r1 = WaldurResource {
        backend_id: alloc1.clone(),
        ..r1
    };
    agent.delete_resource(&r1, Some("proj")).unwrap();
    let rows = account_rows(&[&alloc1, &proj]);
    assert!(!rows.contains_key(&alloc1));
    assert!(rows.contains_key(&proj));
    agent.delete_resource(&r2, Some("proj")).unwrap();
    let rows = account_rows(&[&alloc2, &proj, &cust]);
    assert!(!rows.contains_key(&alloc2));
    assert!(!rows.contains_key(&proj), "empty project account removed");
    assert!(rows.contains_key(&cust), "customer accounts are kept");
    // Deleting what is gone is a no-op.
    assert_eq!(agent.delete_resource(&r1, Some("proj")).unwrap(), None);
}

#[test]
fn associations_policies_partitions_and_user_limits() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let p = prefix("u");
    let _cleanup = AccountGuard::new(&p);
    let default = format!("{p}def");
    let (commands, common, agent) = backend(settings(
        &p,
        json!({"default_account_policy": "common", "default_account": default, "root_account": "root"}),
    ));
    common
        .client_create_resource(
            default.clone(),
            "default".into(),
            default.clone(),
            Some("root".into()),
        )
        .unwrap();
    // Plain accounts (the create flow has its own test): one sacctmgr call each.
    let a1 = format!("{p}a1");
    common
        .client_create_resource(a1.clone(), "a1".into(), a1.clone(), Some("root".into()))
        .unwrap();
    let r1 = WaldurResource {
        backend_id: a1.clone(),
        ..resource("a1", "c", "pr")
    };

    // Policy common: DefaultAccount is default_account (which gets the user too).
    let added = common
        .add_users_to_resource(
            r1.clone(),
            vec!["wa-alice".into(), "wa-bob".into(), "wa-alice".into()],
            UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["wa-alice", "wa-bob"]);
    assert_eq!(users_of(&a1), vec!["wa-alice", "wa-bob"]);
    assert_eq!(users_of(&default), vec!["wa-alice", "wa-bob"]);
    assert_eq!(
        common.client_list_resource_users(a1.clone()).unwrap(),
        vec!["wa-alice", "wa-bob"]
    );
    assert!(common
        .client_get_association("wa-alice".into(), a1.clone())
        .unwrap()
        .is_some());
    // Adding again changes nothing.
    assert!(common
        .add_user(r1.clone(), "wa-alice".into(), UserOptions::default())
        .unwrap());

    // Per-user MaxTRESMins over every cluster TRES; read back raw (the agent's default).
    common
        .set_resource_user_limits(
            a1.clone(),
            "wa-alice".into(),
            BackendLimits::from([("gres/gpu".into(), 1)]),
        )
        .unwrap();
    let limits = agent.get_resource_user_limits(&a1).unwrap();
    assert_eq!(
        limits["wa-alice"],
        BackendLimits::from([("gres/gpu".into(), 60)])
    );
    assert_eq!(limits["wa-bob"], BackendLimits::new());
    common
        .set_resource_user_limits(a1.clone(), "wa-alice".into(), BackendLimits::new())
        .unwrap();
    assert!(agent.get_resource_user_limits(&a1).unwrap()["wa-alice"].is_empty());

    // Removing a user: the job check runs (id, sacct), then the association goes.
    assert_eq!(
        agent
            .remove_users_from_resource(
                &r1,
                &names(&["wa-bob", "nobody-here"]),
                &UserOptions::default()
            )
            .unwrap(),
        vec!["wa-bob", "nobody-here"]
    );
    assert_eq!(users_of(&a1), vec!["wa-alice"]);

    // Several users at once: one association listing and one sacctmgr write for all of them
    // (SLURM users without a Linux account: their job check stops at `id`).
    let (x1, x2) = (format!("{p}x1"), format!("{p}x2"));
    commands.take();
    let added = common
        .add_users_to_resource(
            r1.clone(),
            vec![x1.clone(), "wa-alice".into(), x2.clone()],
            UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec![x1.clone(), "wa-alice".into(), x2.clone()]);
    assert_eq!(
        users_of(&a1),
        vec!["wa-alice".into(), x1.clone(), x2.clone()]
    );
    let sacctmgr_calls =
        |calls: Vec<String>| calls.into_iter().filter(|c| c.contains("sacctmgr")).count();
    assert_eq!(sacctmgr_calls(commands.take()), 2, "one listing, one add");
    assert_eq!(
        agent
            .remove_users_from_resource(&r1, &names(&[&x1, &x2]), &UserOptions::default())
            .unwrap(),
        vec![x1.clone(), x2.clone()]
    );
    assert_eq!(
        sacctmgr_calls(commands.take()),
        2,
        "one listing, one remove"
    );
    assert_eq!(users_of(&a1), vec!["wa-alice"]);

    // Policy individual, default partition, enforced offering partitions, QoS grants.
    let a2 = format!("{p}a2");
    let (_, individual, _) = backend(settings(&p, json!({"default_partition": "debug"})));
    let r2 = WaldurResource {
        backend_id: a2.clone(),
        ..resource("a2", "c", "pr")
    };
    common
        .client_create_resource(a2.clone(), "a2".into(), a2.clone(), Some("root".into()))
        .unwrap();
    individual
        .add_user(r2.clone(), "wa-carol".into(), UserOptions::default())
        .unwrap();
    let row = user_row(&a2, "wa-carol").unwrap();
    assert_eq!(row[5], "debug", "Partition=debug");
    let users = sacctmgr_rows(&["list", "user", "wa-carol", "format=user,defaultaccount"]);
    assert_eq!(users[0][1], a2, "DefaultAccount is the allocation's own");

    let (_, enforced, _) = backend(settings(
        &p,
        json!({"enforce_offering_partitions": true, "qos_enforcement_enabled": true}),
    ));
    enforced
        .set_runtime_context(RuntimeContext {
            timezone: "UTC".into(),
            offering_partitions: vec!["debug".into()],
            offering_enforce_qos: Some(true),
            runtime_dir: Some(
                waldur_test_support::slurm::runtime_dir()
                    .display()
                    .to_string(),
            ),
            ..Default::default()
        })
        .unwrap();
    let mut with_qos = r2.clone();
    with_qos.attributes = json!({"qos": "limited"}).as_object().cloned().unwrap();
    enforced
        .add_user(with_qos, "wa-bob".into(), UserOptions::default())
        .unwrap();
    let row = user_row(&a2, "wa-bob").unwrap();
    assert_eq!(
        (row[4].as_str(), row[5].as_str(), row[7].as_str()),
        ("limited", "debug", "limited")
    );

    // Deleting the account cancels jobs and removes every association first.
    agent.delete_resource(&r2, None).unwrap();
    assert!(users_of(&a2).is_empty());
    assert!(account_row(&a2).is_none());
}

#[test]
fn qos_swap_enforcement_and_per_account_qos() {
    let Some(real) = require_real_slurm() else {
        return;
    };
    let p = prefix("q");
    let _cleanup = AccountGuard::new(&p);
    // With cluster_name: every sacctmgr and sacct call carries the cluster filter.
    let (runner, slurm, agent) = backend(settings(
        &p,
        json!({
            "cluster_name": real.cluster,
            "qos_management": {"enabled": true, "max_jobs": 4, "max_wall": 120, "additional_qos": ["limited"]},
        }),
    ));
    // The account exists, then the agent's post-create hook attaches its QoS (bug 1 fixed).
    let a = format!("{p}a");
    slurm
        .client_create_resource(a.clone(), "a".into(), a.clone(), Some("root".into()))
        .unwrap();
    let created = BackendResourceInfo {
        backend_id: a.clone(),
        ..Default::default()
    };
    slurm
        .post_create_resource(created, resource("a", "c", "pr"), None)
        .unwrap();
    let calls = runner.take();
    assert!(calls
        .iter()
        .any(|c| c.contains(&format!("cluster={}", real.cluster))));
    // Bug 1 fixed: the account's own QoS exists and IS attached (and the default).
    let qos = sacctmgr_rows(&["show", "qos", &a, "format=name,maxjobs,maxwall"]);
    assert_eq!(
        qos,
        vec![vec![a.clone(), "4".to_string(), "02:00:00".to_string()]]
    );
    let row = account_row(&a).unwrap();
    let mut granted: Vec<&str> = row[4].split(',').collect();
    granted.sort();
    let mut want = vec![a.as_str(), "limited", "normal"];
    want.sort();
    assert_eq!(granted, want);
    assert_eq!(row[7], a, "DefaultQOS");

    let r = WaldurResource {
        backend_id: a.clone(),
        ..resource("a", "c", "pr")
    };
    slurm
        .add_user(r.clone(), "wa-alice".into(), UserOptions::default())
        .unwrap();
    let qos_of = |account: &str, user: &str| user_row(account, user).unwrap()[4].clone();
    // SLURM refuses a QoS swap that drops the account's DefaultQOS (exit code 0): an error.
    let err = slurm.pause_resource(a.clone()).unwrap_err();
    assert!(err.message.contains("default qos"), "{}", err.message);
    assert!(qos_of(&a, "").contains(&a));

    // The enforcement model pauses by GrpSubmitJobs and leaves the QoS alone.
    let (_, enforced, _) = backend(settings(
        &p,
        json!({"cluster_name": real.cluster, "qos_enforcement_enabled": true,
               "enforce_offering_qos": true, "qos_paused": null, "qos_downscaled": null}),
    ));
    assert!(enforced.pause_resource(a.clone()).unwrap());
    assert_eq!(account_row(&a).unwrap()[6], "0");
    assert!(enforced.downscale_resource(a.clone()).unwrap());
    assert!(enforced.restore_resource(a.clone()).unwrap());
    assert_eq!(account_row(&a).unwrap()[6], "");
    assert!(qos_of(&a, "wa-alice").contains(&a));

    // The classic QoS swap, on an account without a per-account QoS: account and users.
    let (_, classic, _) = backend(settings(&p, json!({"cluster_name": real.cluster})));
    let b = format!("{p}b");
    classic
        .client_create_resource(b.clone(), "b".into(), b.clone(), Some("root".into()))
        .unwrap();
    let rb = WaldurResource {
        backend_id: b.clone(),
        ..resource("b", "c", "pr")
    };
    classic
        .add_user(rb.clone(), "wa-alice".into(), UserOptions::default())
        .unwrap();
    assert!(classic.pause_resource(b.clone()).unwrap());
    assert_eq!(
        (qos_of(&b, ""), qos_of(&b, "wa-alice")),
        ("paused".into(), "paused".into())
    );
    assert_eq!(
        classic.get_resource_metadata(b.clone()).unwrap()["qos"],
        "paused"
    );
    assert!(classic.downscale_resource(b.clone()).unwrap());
    assert_eq!(qos_of(&b, ""), "limited");
    assert!(classic.restore_resource(b.clone()).unwrap());
    assert_eq!(qos_of(&b, "wa-alice"), "normal");
    assert!(
        !classic.restore_resource(b.clone()).unwrap(),
        "already on the default"
    );
    assert_eq!(
        classic.get_resource_metadata(b.clone()).unwrap()["qos"],
        "normal"
    );
    assert_eq!(
        classic.get_resource_metadata(b.clone()).unwrap()["qos"],
        "normal"
    );

    // Terminate removes the account's QoS too.
    agent.delete_resource(&r, Some("pr")).unwrap();
    assert!(sacctmgr_rows(&["show", "qos", &a, "format=name"]).is_empty());
    assert!(account_row(&a).is_none());
}

#[test]
fn usage_of_real_jobs_batched_equals_single() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let p = prefix("j");
    let _cleanup = AccountGuard::new(&p);
    let (runner, slurm, agent) = backend(settings(&p, json!({})));
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| format!("{p}{s}")).collect();
    // Plain accounts (the create flow has its own test): one sacctmgr call each.
    for id in &ids {
        slurm
            .client_create_resource(id.clone(), "x".into(), "x".into(), Some("root".into()))
            .unwrap();
    }
    let r = |id: &str| WaldurResource {
        backend_id: id.to_string(),
        name: id.to_string(),
        ..Default::default()
    };
    slurm
        .add_users_to_resource(
            r(&ids[0]),
            vec!["wa-alice".into(), "wa-bob".into()],
            UserOptions::default(),
        )
        .unwrap();
    slurm
        .add_users_to_resource(r(&ids[1]), vec!["wa-bob".into()], UserOptions::default())
        .unwrap();
    let jobs = vec![
        run_job("wa-alice", &ids[0], 2, 2),
        run_job("wa-bob", &ids[0], 1, 1),
        run_job("wa-bob", &ids[1], 1, 1),
    ];
    wait_for_jobs(&jobs);

    // Comma lists give the same rows as one query per account.
    let period = waldur_plugin_slurm::usage::month_containing(
        jiff::Timestamp::now(),
        &jiff::tz::TimeZone::UTC,
    );
    let client = slurm.client();
    let mut together = wait_for_window_rows(&jobs, || client.usage_lines(&ids, period).unwrap());
    let mut apart: Vec<_> = ids
        .iter()
        .flat_map(|id| {
            client
                .usage_lines(std::slice::from_ref(id), period)
                .unwrap()
        })
        .collect();
    let key = |l: &waldur_plugin_slurm::parser::ReportLine| format!("{l:?}");
    together.sort_by_key(key);
    apart.sort_by_key(key);
    assert_eq!(together, apart);
    assert_eq!(together.len(), 3);
    let users = client.list_users_of_accounts(&ids).unwrap();
    for id in &ids {
        assert_eq!(
            users.get(id).cloned().unwrap_or_default(),
            client.list_resource_users(id).unwrap()
        );
    }
    let listed = client
        .list_accounts(&[ids.clone(), vec![format!("{p}missing")]].concat())
        .unwrap();
    assert_eq!(listed.len(), 3);

    // The batched pull: three commands, the same result as the reference's single pulls.
    runner.take();
    let resources: Vec<WaldurResource> = ids
        .iter()
        .map(|id| r(id))
        .chain([r(&format!("{p}missing"))])
        .collect();
    let batched = slurm.pull_resources(resources.clone()).unwrap();
    assert_eq!(runner.take().len(), 3);
    let mut single = std::collections::BTreeMap::new();
    for resource in &resources {
        if let Some(info) = agent.pull_resource(resource).unwrap() {
            single.insert(resource.backend_id.clone(), info);
        }
    }
    assert_eq!(runner.take().len(), 3 * 3 + 1);
    assert_eq!(batched, single);
    assert_eq!(batched.len(), 3);
    let a = &batched[&ids[0]];
    assert_eq!(a.users, vec!["wa-alice", "wa-bob"]);
    // alice: 2 CPUs for >= 2 s = >= 4 CPU-seconds, in CPU-minutes.
    let alice = a.usage["wa-alice"]["cpu"];
    assert!(alice > 0.0, "{:?}", a.usage);
    let total = a.usage[TOTAL_ACCOUNT_USAGE]["cpu"];
    let sum = a.usage["wa-alice"]["cpu"] + a.usage["wa-bob"]["cpu"];
    assert_eq!(
        total,
        waldur_plugin_slurm::usage::round2(sum),
        "bug 8: the total is the users' sum"
    );
    assert!(batched[&ids[1]].usage["wa-bob"]["cpu"] > 0.0);
    assert_eq!(
        batched[&ids[2]].usage,
        waldur_plugin_slurm::usage::zero_usage(&components())
    );

    // The report and the historical report of this month agree.
    let report = slurm.get_usage_report(ids.clone()).unwrap();
    let historical = slurm
        .get_usage_report_for_period(ids.clone(), period.year, period.month, None)
        .unwrap();
    assert_eq!(report, historical);
    assert_eq!(report[&ids[0]], a.usage);
    let raw = slurm
        .client_get_usage_report(vec![ids[1].clone()], None)
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0]["user"], "wa-bob");

    // Removing a user with finished jobs: sacct lists them, scancel has nothing to do.
    let ra = r(&ids[0]);
    assert!(agent
        .remove_user(&ra, "wa-bob", &UserOptions::default())
        .unwrap());
    assert_eq!(users_of(&ids[0]), vec!["wa-alice"]);
}

#[test]
fn diagnostics_ping_and_periodic_settings() {
    let Some(real) = require_real_slurm() else {
        return;
    };
    let p = prefix("d");
    let _cleanup = AccountGuard::new(&p);
    let (_, slurm, _) = backend(settings(&p, json!({"cluster_name": real.cluster})));
    assert!(slurm.ping(true).unwrap());
    assert!(slurm.diagnostics().unwrap());
    let components = slurm.list_components().unwrap();
    assert!(components.contains(&"cpu".to_string()), "{components:?}");

    // Periodic settings, production mode.
    let (_, periodic, _) = backend(settings(&p, json!({"periodic_limits": {"enabled": true}})));
    let a = format!("{p}a");
    periodic
        .client_create_resource(a.clone(), "a".into(), a.clone(), Some("root".into()))
        .unwrap();
    let message = json!({"fairshare": 7, "grp_tres_mins": {"cpu": 1000}, "reset_raw_usage": true});
    let result = periodic
        .apply_periodic_settings(a.clone(), message.clone(), None)
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(
        result.commands_executed.len(),
        5,
        "{:#?}",
        result.commands_executed
    );
    let row = sacctmgr_rows(&[
        "list",
        "account",
        "withassoc",
        "format=account,user,fairshare,grptresmin",
        "where",
        &format!("account={a}"),
    ]);
    assert_eq!(row[0][2..], ["7".to_string(), "cpu=1000".to_string()]);
    // What SLURM has already is not written again: the two reads and the raw-usage reset.
    let again = periodic.apply_periodic_settings(a, message, None).unwrap();
    assert!(again.success);
    assert_eq!(
        again.commands_executed.len(),
        3,
        "{:#?}",
        again.commands_executed
    );
    assert!(
        again
            .commands_executed
            .iter()
            .all(|c| !c.contains("fairshare=") && !c.contains("GrpTRESMins=")),
        "{:#?}",
        again.commands_executed
    );
}

#[test]
fn a_broken_sacctmgr_fails_with_its_message() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let (_, slurm, _) = backend(settings(
        "wrsbroken_",
        json!({"slurm_bin_path": "/nonexistent"}),
    ));
    let err = slurm.ping(true).unwrap_err();
    assert_eq!(err.message, "/nonexistent/sacctmgr: not found");
    assert!(!slurm.diagnostics().unwrap());
    // Real sacctmgr: adding an existing account is an error naming sacctmgr's reason.
    let (_, slurm, _) = backend(settings("wrsbroken_", json!({})));
    let err = slurm
        .client_create_resource("root".into(), "x".into(), "root".into(), None)
        .unwrap_err();
    assert!(
        err.message
            .ends_with("failed (exit code 1): Nothing new added."),
        "{}",
        err.message
    );
    assert!(accounts("wrsbroken_").is_empty());
}

/// `[name, description, organization]` of an account, and its associations.
fn account_state(account: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let listed = sacctmgr_rows(&["show", "account", account, "format=account,descr,org"]);
    (listed, associations(account))
}

#[test]
fn hostile_names_touch_nothing_and_good_names_in_the_same_batch_land() {
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let p = prefix("x");
    let _cleanup = AccountGuard::new(&p);
    let (runner, slurm, agent) = backend(settings(&p, json!({})));
    let (proj, alloc, victim) = (
        format!("{p}proj"),
        format!("{p}alloc"),
        format!("{p}victim"),
    );
    agent
        .create_resource_with_id(&resource("alloc", "cust", "proj"), &alloc, None)
        .unwrap();
    agent
        .create_resource_with_id(&resource("victim", "cust", "proj"), &victim, None)
        .unwrap();
    let with_id = |id: &str| WaldurResource {
        backend_id: id.to_string(),
        ..resource("alloc", "cust", "proj")
    };
    slurm
        .add_users_to_resource(
            with_id(&victim),
            vec!["wa-alice".into()],
            UserOptions::default(),
        )
        .unwrap();
    let root_before = account_state("root");
    let victim_before = account_state(&victim);
    runner.take();

    // Hostile account names and backend ids: refused, nothing runs.
    let hostile_ids = [
        format!("{p}gone,{victim}"),
        "x,root".to_string(),
        ",root".to_string(),
        format!("{victim}\nroot"),
        format!("../../{victim}"),
        format!("{p}ünïcode"),
    ];
    for id in &hostile_ids {
        let shown = format!("{id:?}");
        let refusals = [
            slurm.client_delete_resource(id.clone()).unwrap_err(),
            agent
                .delete_resource(&with_id(id), Some("proj"))
                .unwrap_err()
                .error,
            slurm
                .set_resource_limits(id.clone(), Limits::from([("cpu".into(), 0.0)]))
                .unwrap_err(),
            slurm.pause_resource(id.clone()).unwrap_err(),
            slurm.pre_delete_resource(with_id(id)).unwrap_err(),
            slurm
                .client_create_resource(id.clone(), "d".into(), "o".into(), Some(proj.clone()))
                .unwrap_err(),
        ];
        for err in refusals {
            assert_eq!(err.kind, ErrorKind::BACKEND);
            assert!(err.message.contains(&shown), "{id:?}: {}", err.message);
            assert!(!err.message.contains('\n'), "{:?}", err.message);
        }
        assert_eq!(runner.take(), Vec::<String>::new(), "{id:?} ran commands");
    }
    // A Create whose slug is hostile errs at the id, before any account is made.
    let err = slurm.get_resource_backend_id("x,root".into()).unwrap_err();
    assert!(
        err.message.starts_with(&format!(
            "invalid SLURM account name \"{p}x,root\": it contains ','"
        )),
        "{}",
        err.message
    );
    let mut hostile_project = resource("alloc2", "cust", "p,root");
    hostile_project.backend_id = String::new();
    let err = agent
        .create_resource_with_id(&hostile_project, &format!("{p}alloc2"), None)
        .unwrap_err();
    assert!(
        err.message().contains(&format!("\"{p}p,root\"")),
        "{}",
        err.message()
    );
    assert!(runner.take().is_empty());

    // Hostile usernames in a batch: refused alone; the good ones land in one command.
    let hostile_user = format!("{p}u,root");
    let added = slurm
        .add_users_to_resource(
            with_id(&alloc),
            vec![
                "wa-alice".into(),
                hostile_user.clone(),
                "-rf".into(),
                "../../etc".into(),
                "wa-bob".into(),
            ],
            UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["wa-alice", "wa-bob"]);
    assert_eq!(users_of(&alloc), vec!["wa-alice", "wa-bob"]);
    let calls = runner.take();
    assert_eq!(calls.len(), 2, "one listing, one add: {calls:#?}");
    assert!(calls[1].contains(&format!("add user wa-alice,wa-bob account={alloc} ")));
    // And in a batched removal: wa-bob stays (`wa-bob,root` is no name of his).
    let removed = slurm
        .remove_users_from_resource(
            with_id(&alloc),
            vec!["wa-alice".into(), "wa-bob,root".into()],
            UserOptions::default(),
        )
        .unwrap();
    assert_eq!(removed, vec!["wa-alice"]);
    assert_eq!(users_of(&alloc), vec!["wa-bob"]);
    // A batched pull skips the hostile id and still pulls the good one.
    let pulled = slurm
        .pull_resources(vec![with_id(&format!("{alloc},{victim}")), with_id(&alloc)])
        .unwrap();
    assert_eq!(pulled.keys().collect::<Vec<_>>(), vec![&alloc]);
    assert_eq!(pulled[&alloc].users, vec!["wa-bob"]);

    // Free text is one value: commas and `=` stay in the description, no option is added.
    let free = format!("{p}free");
    slurm
        .client_create_resource(
            free.clone(),
            "A, parent=root organization=x \"q\" a|b".into(),
            "Org,b=c".into(),
            Some(proj.clone()),
        )
        .unwrap();
    let (listed, assocs) = account_state(&free);
    assert_eq!(
        listed,
        vec![vec![
            free.clone(),
            "a, parent=root organization=x q a b".to_string(),
            "org,b=c".to_string()
        ]]
    );
    assert_eq!(assocs[0][2], proj, "parent stays the given one");

    // root and the victim are untouched.
    assert_eq!(account_state("root"), root_before);
    assert_eq!(account_state(&victim), victim_before);
    assert_eq!(users_of(&victim), vec!["wa-alice"]);
    assert_eq!(
        slurm.client_list_resource_users(victim.clone()).unwrap(),
        vec!["wa-alice"]
    );
}
