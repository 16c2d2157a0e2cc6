//! Hostile names from Waldur (issue 8, item 7): slugs, backend ids, usernames, QoS and
//! partition names, periodic-settings values and directory names that would change what a
//! sacctmgr argument means or leave a base directory. Each is refused before any command
//! carries it, with a one-line backend error naming the value and the rule; in batches only
//! the bad item is refused.

use std::sync::Mutex;

use serde_json::json;
use waldur_plugin_abi::wire::{
    BackendLimits, BackendResourceInfo, Limits, OfferingUser, RuntimeContext, UserContext,
    UserOptions,
};
use waldur_plugin_abi::{Backend, Client, Error, ErrorKind};

use super::*;
use crate::runner::RunError;

/// Values that must never reach a command as a name.
fn hostile() -> Vec<String> {
    [
        "../",
        "..",
        "a/../../tmp/x",
        ",root",
        "x,root",
        "a=b",
        "a\nb",
        "a\tb",
        "a\0b",
        "ünïcode",
        "a\u{202e}b\u{200f}",
        "",
        "-rf",
        "a b",
        "a\"b",
        "a|b",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([format!("x,root{}", "a".repeat(10 * 1024))])
    .collect()
}

/// How the message shows `value` (escaped; cut after 64 characters).
fn shown(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}...", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// A one-line backend error naming `value`.
#[track_caller]
fn assert_refused(err: &Error, value: &str) {
    assert_eq!(err.kind, ErrorKind::BACKEND, "{}", err.message);
    assert!(
        !err.message.contains(['\n', '\r', '\0', '\t']),
        "not one line: {:?}",
        err.message
    );
    assert!(err.message.len() < 400, "too long: {}", err.message);
    assert!(
        err.message.contains(&shown(value)),
        "{value:?} not named in: {}",
        err.message
    );
}

/// No command ran at all.
#[track_caller]
fn assert_nothing_ran(runner: &RecordingRunner, what: &str, value: &str) {
    let calls = runner.take_calls();
    assert!(
        calls.is_empty(),
        "{what} with {value:?} ran commands:\n{}",
        calls.join("\n")
    );
}

/// No command carries `value` (for values that cannot occur by chance).
#[track_caller]
fn assert_absent(calls: &[String], value: &str) {
    if value.len() < 2 {
        return;
    }
    for call in calls {
        assert!(!call.contains(value), "{value:?} reached: {call}");
    }
}

fn with_backend_id(id: &str) -> WaldurResource {
    WaldurResource {
        backend_id: id.into(),
        ..golden_resource()
    }
}

fn limits() -> BackendLimits {
    BackendLimits::from([("cpu".into(), 1)])
}

#[test]
fn hostile_backend_ids_are_refused_before_any_command() {
    let (runner, slurm) = setup(periodic(), golden_components());
    for bad in hostile() {
        let b = || bad.clone();
        let res = || with_backend_id(&bad);
        let options = UserOptions::default;
        type Call<'a> = Box<dyn Fn() -> Result<(), Error> + 'a>;
        let calls: Vec<(&str, Call)> = vec![
            (
                "client_get_resource",
                Box::new(|| slurm.client_get_resource(b()).map(drop)),
            ),
            (
                "client_create_resource",
                Box::new(|| {
                    slurm
                        .client_create_resource(b(), "d".into(), "o".into(), Some("p".into()))
                        .map(drop)
                }),
            ),
            (
                "client_create_resource parent",
                Box::new(|| {
                    slurm
                        .client_create_resource("a".into(), "d".into(), "o".into(), Some(b()))
                        .map(drop)
                }),
            ),
            (
                "client_delete_resource",
                Box::new(|| slurm.client_delete_resource(b())),
            ),
            (
                "client_set_resource_limits",
                Box::new(|| slurm.client_set_resource_limits(b(), limits()).map(drop)),
            ),
            (
                "client_get_resource_limits",
                Box::new(|| slurm.client_get_resource_limits(b()).map(drop)),
            ),
            (
                "client_get_resource_user_limits",
                Box::new(|| slurm.client_get_resource_user_limits(b()).map(drop)),
            ),
            (
                "client_list_resource_users",
                Box::new(|| slurm.client_list_resource_users(b()).map(drop)),
            ),
            (
                "client_get_association",
                Box::new(|| slurm.client_get_association("u".into(), b()).map(drop)),
            ),
            (
                "client_create_association",
                Box::new(|| slurm.client_create_association("u".into(), b(), None)),
            ),
            (
                "client_create_association default account",
                Box::new(|| slurm.client_create_association("u".into(), "a".into(), Some(b()))),
            ),
            (
                "client_delete_association",
                Box::new(|| slurm.client_delete_association("u".into(), b())),
            ),
            (
                "client_set_resource_user_limits",
                Box::new(|| slurm.client_set_resource_user_limits(b(), "u".into(), limits())),
            ),
            (
                "client_get_usage_report",
                Box::new(|| slurm.client_get_usage_report(vec![b()], None).map(drop)),
            ),
            (
                "pause_resource",
                Box::new(|| slurm.pause_resource(b()).map(drop)),
            ),
            (
                "downscale_resource",
                Box::new(|| slurm.downscale_resource(b()).map(drop)),
            ),
            (
                "restore_resource",
                Box::new(|| slurm.restore_resource(b()).map(drop)),
            ),
            (
                "get_resource_metadata",
                Box::new(|| slurm.get_resource_metadata(b()).map(drop)),
            ),
            (
                "set_resource_limits",
                Box::new(|| {
                    slurm
                        .set_resource_limits(b(), Limits::from([("cpu".into(), 1.0)]))
                        .map(drop)
                }),
            ),
            (
                "get_resource_limits",
                Box::new(|| slurm.get_resource_limits(b()).map(drop)),
            ),
            (
                "set_resource_user_limits",
                Box::new(|| slurm.set_resource_user_limits(b(), "u".into(), limits())),
            ),
            (
                "pre_delete_resource",
                Box::new(|| slurm.pre_delete_resource(res())),
            ),
            (
                "pre_delete_user_actions",
                Box::new(|| slurm.pre_delete_user_actions(b(), "u".into())),
            ),
            (
                "add_user",
                Box::new(|| slurm.add_user(res(), "u".into(), options()).map(drop)),
            ),
            (
                "remove_user",
                Box::new(|| slurm.remove_user(res(), "u".into(), options()).map(drop)),
            ),
            (
                "add_users_to_resource",
                Box::new(|| {
                    slurm
                        .add_users_to_resource(res(), vec!["u".into(), "v".into()], options())
                        .map(drop)
                }),
            ),
            (
                "remove_users_from_resource",
                Box::new(|| {
                    slurm
                        .remove_users_from_resource(res(), vec!["u".into(), "v".into()], options())
                        .map(drop)
                }),
            ),
        ];
        for (what, call) in calls {
            let answer = call();
            if bad.is_empty() && what == "client_create_resource parent" {
                // An empty parent is no parent.
                assert!(answer.is_ok());
                runner.take_calls();
                continue;
            }
            if bad.is_empty() && (what.starts_with("add_user") || what.starts_with("remove_user")) {
                // A blank backend id keeps the reference's own handling.
                drop(answer);
                assert_nothing_ran(&runner, what, &bad);
                continue;
            }
            let err = answer.expect_err(what);
            assert_refused(&err, &bad);
            assert_nothing_ran(&runner, what, &bad);
        }
        // Periodic settings answer a failed result instead of an error.
        let result = slurm
            .apply_periodic_settings(b(), json!({"fairshare": 5}), None)
            .unwrap();
        assert!(!result.success);
        assert_nothing_ran(&runner, "apply_periodic_settings", &bad);
    }
}

#[test]
fn a_hostile_tres_name_in_limits_is_refused() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    for bad in ["cpu=1,mem", "cpu,root", "gres/gpu name", ""] {
        let limits = BackendLimits::from([("mem".into(), 2), (bad.to_string(), 1)]);
        let err = slurm
            .client_set_resource_limits("hpc_a".into(), limits)
            .unwrap_err();
        assert_refused(&err, bad);
        assert_nothing_ran(&runner, "client_set_resource_limits", bad);
    }
}

fn periodic() -> Value {
    let mut settings = golden_settings();
    settings["periodic_limits"] = json!({"enabled": true});
    settings
}

#[test]
fn hostile_periodic_settings_values_are_refused() {
    let (runner, slurm) = setup(periodic(), golden_components());
    for (settings, value) in [
        (json!({"fairshare": "5,parent=root"}), "5,parent=root"),
        (json!({"fairshare": "5 where"}), "5 where"),
        (json!({"grp_tres_mins": {"cpu=1,mem": 5}}), "cpu=1,mem"),
        (json!({"grp_tres_mins": {"cpu": "1,mem=2"}}), "1,mem=2"),
        (
            json!({"limit_type": "Parent", "grp_tres_mins": {"root": 1}}),
            "Parent",
        ),
    ] {
        let result = slurm
            .apply_periodic_settings("hpc_a".into(), settings.clone(), None)
            .unwrap();
        assert!(!result.success, "{settings}");
        let error = result.error.unwrap_or_default();
        assert!(error.contains(&format!("{value:?}")), "{settings}: {error}");
        let calls = runner.take_calls();
        assert!(
            calls.iter().all(|c| !c.contains(" modify ")),
            "{settings}: {calls:#?}"
        );
    }
    // Good values still apply.
    let result = slurm
        .apply_periodic_settings(
            "hpc_a".into(),
            json!({"fairshare": 5, "grp_tres_mins": {"cpu": 10, "gres/gpu": 2}}),
            None,
        )
        .unwrap();
    assert!(result.success, "{:?}", result.error);
    let calls = runner.take_calls();
    assert!(calls
        .iter()
        .any(|c| c.ends_with("modify account hpc_a set fairshare=5")));
    assert!(calls
        .iter()
        .any(|c| c.ends_with("modify account hpc_a set GrpTRESMins=gres/gpu=2")));
}

#[test]
fn hostile_slugs_refuse_the_create_before_any_command() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    // The prefix `hpc_` makes `-rf` a valid account name (`hpc_-rf`).
    for bad in hostile().into_iter().filter(|b| b != "-rf") {
        for field in ["slug", "customer_slug", "project_slug"] {
            let mut resource = golden_resource();
            match field {
                "slug" => resource.slug = bad.clone(),
                "customer_slug" => resource.customer_slug = bad.clone(),
                _ => resource.project_slug = bad.clone(),
            }
            // The agent's create: the id from the slug, then create_resource_with_id.
            let agent = agent(&slurm);
            let answer = agent
                .get_resource_backend_id(&resource.slug)
                .and_then(|id| agent.create_resource_with_id(&resource, &id, None))
                .map_err(|e| e.error);
            let err = answer.expect_err(field);
            if bad.is_empty() {
                // Blank slugs keep the reference's refusal (and message).
                assert_eq!(err.kind, ErrorKind::BACKEND);
            } else {
                // `hpc_` + slug, lower-cased for the allocation.
                let name = match field {
                    "slug" => format!("hpc_{bad}").to_lowercase(),
                    _ => format!("hpc_{bad}"),
                };
                assert_refused(&err, &name);
            }
            assert_nothing_ran(&runner, field, &bad);
        }
        // Membership sync re-parents project accounts from the slugs too.
        for field in ["customer_slug", "project_slug"] {
            let mut resource = with_backend_id("hpc_alloc-1");
            match field {
                "customer_slug" => resource.customer_slug = bad.clone(),
                _ => resource.project_slug = bad.clone(),
            }
            let answer = slurm.sync_resource_project(resource, None);
            if !bad.is_empty() {
                assert_refused(&answer.expect_err(field), &format!("hpc_{bad}"));
            }
            assert_nothing_ran(&runner, field, &bad);
        }
    }
}

/// `show association where account=hpc_alloc-1` listing `users`.
fn associations_of(users: &[&str]) -> String {
    let mut out = "waldurtest|hpc_alloc-1||||||||||||||||normal||\n".to_string();
    for user in users {
        out.push_str(&format!(
            "waldurtest|hpc_alloc-1|{user}|||||||||||||||normal||\n"
        ));
    }
    out
}

#[test]
fn one_hostile_username_is_refused_alone_in_a_batch() {
    let mut hostile_users = hostile();
    hostile_users.extend(["0".to_string(), "1000".to_string(), "a".repeat(33)]);
    for bad in hostile_users {
        let (runner, slurm) = setup(golden_settings(), golden_components());
        runner.reply(
            "show association where account=",
            &associations_of(&["carol"]),
        );
        let res = with_backend_id("hpc_alloc-1");
        let users = vec![
            "alice".to_string(),
            bad.clone(),
            "bob".to_string(),
            "carol".to_string(),
        ];
        let added = slurm
            .add_users_to_resource(res.clone(), users.clone(), UserOptions::default())
            .unwrap();
        assert_eq!(added, vec!["alice", "bob", "carol"], "{bad:?}");
        let calls = runner.take_calls();
        assert_eq!(
            calls,
            expand(&[
                "{S} show association where account=hpc_alloc-1",
                "{S} add user alice,bob account=hpc_alloc-1 DefaultAccount=root Share=parent",
            ]),
            "{bad:?}"
        );

        runner.reply(
            "show association where account=",
            &associations_of(&["alice", "bob", "carol"]),
        );
        runner.fail("id -u", 1, "id: no such user\n");
        let removed = slurm
            .remove_users_from_resource(res.clone(), users.clone(), UserOptions::default())
            .unwrap();
        assert_eq!(removed, vec!["alice", "bob", "carol"], "{bad:?}");
        let calls = runner.take_calls();
        assert_eq!(
            calls.last().unwrap(),
            &format!("{S} remove user where name=alice,bob,carol and account=hpc_alloc-1"),
            "{bad:?}"
        );
        assert_absent(&calls, &bad);

        if bad.is_empty() {
            continue; // blank usernames keep the reference's skip
        }
        // Alone: an error naming the user, and nothing run.
        for (what, answer) in [
            (
                "add_user",
                slurm
                    .add_user(res.clone(), bad.clone(), UserOptions::default())
                    .map(drop),
            ),
            (
                "remove_user",
                slurm
                    .remove_user(res.clone(), bad.clone(), UserOptions::default())
                    .map(drop),
            ),
            (
                "pre_delete_user_actions",
                slurm.pre_delete_user_actions("hpc_alloc-1".into(), bad.clone()),
            ),
            (
                "set_resource_user_limits",
                slurm.set_resource_user_limits("hpc_alloc-1".into(), bad.clone(), limits()),
            ),
            (
                "client_get_association",
                slurm
                    .client_get_association(bad.clone(), "hpc_alloc-1".into())
                    .map(drop),
            ),
            (
                "client_create_association",
                slurm.client_create_association(bad.clone(), "hpc_alloc-1".into(), None),
            ),
            (
                "client_delete_association",
                slurm.client_delete_association(bad.clone(), "hpc_alloc-1".into()),
            ),
            (
                "client_create_linux_user_homedir",
                slurm.client_create_linux_user_homedir(bad.clone(), "0077".into()),
            ),
        ] {
            let err = answer.expect_err(what);
            assert_refused(&err, &bad);
            assert_nothing_ran(&runner, what, &bad);
        }
    }
}

#[test]
fn hostile_users_get_no_home_directory_and_a_bad_umask_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let settings = json!({
        "homedir_base_path": base.path(),
        "homedir_quota": {"provider": "ceph_xattr", "max_files": 10},
    });
    let (runner, slurm) = setup(settings, golden_components());
    runner.reply("getfattr", "10");
    let root = std::fs::canonicalize(base.path()).unwrap();
    for bad in hostile() {
        slurm
            .create_user_homedirs(vec![bad.clone(), "alice".into()], "0077".into())
            .unwrap();
        let calls = runner.take_calls();
        let home = root.join("alice").display().to_string();
        assert_eq!(
            calls,
            vec![
                "/sbin/mkhomedir_helper alice 0077".to_string(),
                format!("setfattr -n ceph.quota.max_files -v 10 {home}"),
                format!("getfattr --only-values -n ceph.quota.max_files {home}"),
            ],
            "{bad:?}"
        );
        slurm.process_existing_users(vec![bad.clone()]).unwrap();
        assert_nothing_ran(&runner, "process_existing_users", &bad);
    }
    // A user whose home is a symlink out of the base gets no quota (setfattr would follow it).
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("mallory")).unwrap();
    slurm
        .create_user_homedirs(vec!["mallory".into()], "0077".into())
        .unwrap();
    assert_nothing_ran(&runner, "create_user_homedirs", "mallory");
    // A umask is octal digits, nothing else.
    for umask in ["0077 x", "-x", "0999", "", "0077\n"] {
        let err = slurm
            .client_create_linux_user_homedir("alice".into(), umask.into())
            .unwrap_err();
        assert_refused(&err, umask);
        assert_nothing_ran(&runner, "client_create_linux_user_homedir", umask);
    }
    // Users of the creating order: only the valid ones get a home.
    let mut context = UserContext {
        offering_users: vec![
            OfferingUser {
                user_uuid: "1".into(),
                username: Some("carol".into()),
                ..Default::default()
            },
            OfferingUser {
                user_uuid: "2".into(),
                username: Some("../../etc".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    context.rebuild_mappings();
    slurm
        .post_create_resource(
            BackendResourceInfo::default(),
            golden_resource(),
            Some(context),
        )
        .unwrap();
    let calls = runner.take_calls();
    assert!(
        calls[0].starts_with("/sbin/mkhomedir_helper carol "),
        "{calls:#?}"
    );
    assert_absent(&calls, "../../etc");
}

fn project_directory(base: &std::path::Path) -> Value {
    let mut settings = golden_settings();
    settings["project_directory"] = json!({
        "enabled": true,
        "base_path": base,
        "owner": "nobody",
    });
    settings
}

#[test]
fn project_directories_stay_inside_their_base() {
    let base = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(base.path()).unwrap();
    let (runner, slurm) = setup(project_directory(base.path()), golden_components());
    let create = |id: &str| {
        slurm.post_create_resource(
            BackendResourceInfo {
                backend_id: id.into(),
                ..Default::default()
            },
            golden_resource(),
            None,
        )
    };
    create("hpc_a").unwrap();
    let dir = root.join("hpc_a").display().to_string();
    assert_eq!(
        runner.take_calls(),
        vec![
            format!("mkdir -p {dir}"),
            format!("chmod 770 {dir}"),
            format!("chmod g+s {dir}"),
            format!("chown nobody:hpc_a {dir}"),
            format!("setfacl -R -m group:hpc_a:rwx,d:group:hpc_a:rwx {dir}"),
        ]
    );
    for bad in hostile() {
        // Logged, as every project-directory failure; nothing touched.
        let _ = create(&bad);
        assert_nothing_ran(&runner, "project directory", &bad);
    }
    // A planted symlink out of the base is not followed.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("hpc_evil")).unwrap();
    create("hpc_evil").unwrap();
    assert_nothing_ran(&runner, "project directory", "hpc_evil");
}

#[test]
fn hostile_qos_and_partitions_from_waldur_are_refused() {
    let enforced = json!({"qos_enforcement_enabled": true, "enforce_offering_qos": true});
    for bad in hostile() {
        if bad.is_empty() {
            continue; // an empty attribute means "not chosen"
        }
        for attribute in ["qos", "partition"] {
            let (runner, slurm) = setup(enforced.clone(), golden_components());
            let mut resource = with_backend_id("hpc_alloc-1");
            resource.attributes = map(json!({"qos": "normal", attribute: bad}));
            let added = slurm
                .add_users_to_resource(
                    resource,
                    vec!["alice".into(), "bob".into()],
                    UserOptions::default(),
                )
                .unwrap();
            assert!(added.is_empty(), "{attribute} {bad:?}: {added:?}");
            assert_absent(&runner.take_calls(), &bad);
        }
        // Offering partitions come from Waldur too.
        let (runner, slurm) = setup(
            json!({"enforce_offering_partitions": true}),
            golden_components(),
        );
        slurm
            .set_runtime_context(RuntimeContext {
                offering_partitions: vec!["gpu".into(), bad.clone()],
                ..Default::default()
            })
            .unwrap();
        let err = slurm
            .client_create_association("u".into(), "hpc_alloc-1".into(), None)
            .map(drop);
        assert!(
            err.is_ok(),
            "the plain BaseClient association has no partitions"
        );
        runner.take_calls();
        let added = slurm
            .add_user(
                with_backend_id("hpc_alloc-1"),
                "u".into(),
                UserOptions::default(),
            )
            .unwrap();
        assert!(!added, "{bad:?}");
        assert_absent(&runner.take_calls(), &bad);
    }
}

/// Records argv unjoined, to see argument boundaries.
#[derive(Default)]
struct Argv(Mutex<Vec<Vec<String>>>);

impl Runner for Argv {
    fn run(&self, argv: &[String]) -> Result<String, RunError> {
        self.0.lock().unwrap().push(argv.to_vec());
        Ok(String::new())
    }
}

#[test]
fn free_text_stays_one_quoted_value() {
    let runner = Arc::new(Argv::default());
    let slurm = slurm_on(golden_settings(), golden_components(), runner.clone());
    slurm
        .client_create_resource(
            "hpc_a".into(),
            "Alloc, parent=root \"x\" organization=evil\n|hpc_other\u{1b}[31m".into(),
            "Org,x=y".into(),
            Some("hpc_p".into()),
        )
        .unwrap();
    let argv = runner.0.lock().unwrap().pop().unwrap();
    assert_eq!(
        argv[4..],
        [
            "add",
            "account",
            "hpc_a",
            "description=\"Alloc, parent=root x organization=evil hpc_other[31m\"",
            "organization=\"Org,x=y\"",
            "parent=\"hpc_p\"",
        ]
    );
}

#[test]
fn hostile_ids_in_batched_reads_are_left_out_alone() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("list account where name=", "hpc_good|d|o\n");
    for bad in hostile() {
        let pulled = slurm
            .pull_resources(vec![with_backend_id(&bad), with_backend_id("hpc_good")])
            .unwrap();
        assert_eq!(
            pulled.keys().collect::<Vec<_>>(),
            vec!["hpc_good"],
            "{bad:?}"
        );
        let calls = runner.take_calls();
        assert!(
            calls[0].ends_with("list account where name=hpc_good"),
            "{bad:?}: {calls:#?}"
        );
        assert_absent(&calls, &bad);
        slurm
            .get_usage_report(vec![bad.clone(), "hpc_good".into()])
            .unwrap();
        let calls = runner.take_calls();
        assert_eq!(calls.len(), 1, "{calls:#?}");
        assert!(calls[0].contains("--accounts=hpc_good "), "{calls:#?}");
    }
}
