//! The reference bugs this plugin fixes on purpose (§2.16 of the reference notes). Bug 4
//! (`parse_duration`, `parse_int`) is tested in `parser.rs`, bug 8 (the total) in `usage.rs`
//! and again here through the backend.

use serde_json::json;
use waldur_plugin_abi::wire::{WaldurResource, TOTAL_ACCOUNT_USAGE};
use waldur_plugin_abi::{Backend, ErrorKind};

use super::*;
use waldur_plugin_abi::wire::UserOptions;

/// Bug 1: the reference attaches the per-account QoS in the pre-create hook, before the
/// allocation account exists (sacctmgr: "Nothing modified", swallowed, attach lost) and under
/// the slug-derived id even when the agent created the account under another (retried) id.
#[test]
fn bug1_account_qos_is_attached_after_the_account_exists_with_the_actual_backend_id() {
    let settings = json!({
        "allocation_prefix": "a_", "project_prefix": "p_", "customer_prefix": "c_",
        "qos_management": {"enabled": true, "additional_qos": ["extra"]},
        "enable_user_homedir_account_creation": false,
    });
    let (runner, slurm) = setup(settings, golden_components());
    let resource = WaldurResource {
        name: "X".into(),
        slug: "alloc-x".into(),
        customer_slug: "cust".into(),
        project_slug: "proj".into(),
        ..Default::default()
    };
    // The slug-derived id `a_alloc-x` was taken: the order processor retries with another.
    agent(&slurm)
        .create_resource_with_id(&resource, "proj-1", None)
        .unwrap();
    let calls = runner.take_calls();
    let position = |needle: &str| {
        calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {calls:#?}"))
    };
    let created = position("add account proj-1 ");
    for attach in [
        "show qos proj-1",
        "add qos proj-1 set flags=DenyOnLimit,NoDecay",
        "modify account set qos+=proj-1 where account=proj-1",
        "modify account set defaultqos=proj-1 where account=proj-1",
        "modify account set qos+=extra where account=proj-1",
    ] {
        assert!(
            position(attach) > created,
            "{attach} ran before the account existed"
        );
    }
    assert!(
        !calls.iter().any(|c| c.contains("a_alloc-x")),
        "the slug-derived id was used: {calls:#?}"
    );

    // An existing QoS is not created again, but still attached (a re-created account).
    runner.reply(
        "show qos proj-1",
        "proj-1|0|00:00:00|||cluster|DenyOnLimit,NoDecay||1.0\n",
    );
    slurm
        .after_create(
            &waldur_plugin_abi::wire::BackendResourceInfo {
                backend_id: "proj-1".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show qos proj-1",
            "{S} modify account set qos+=proj-1 where account=proj-1",
            "{S} modify account set defaultqos=proj-1 where account=proj-1",
            "{S} modify account set qos+=extra where account=proj-1",
        ],
    );
}

/// With the QoS really attached (as its DefaultQOS), sacctmgr refuses to remove it while the
/// account exists: it goes after the account (the post-delete hook), and stays with a
/// soft-deleted account.
#[test]
fn bug1_related_the_account_qos_is_removed_after_the_account() {
    let settings =
        json!({"qos_management": {"enabled": true}, "enable_user_homedir_account_creation": false});
    let (runner, slurm) = setup(settings, golden_components());
    runner.reply("show account a1", "a1|a1|p\n");
    runner.reply("show qos a1", "a1|0|00:00:00\n");
    let resource = WaldurResource {
        backend_id: "a1".into(),
        ..Default::default()
    };
    agent(&slurm).delete_resource(&resource, None).unwrap();
    assert_calls(
        &runner,
        &[
            "{S} show account a1",
            "{S} show association where account=a1",
            "{S} show account a1",
            "{S} remove account where name=a1",
            "{S} show qos a1",
            "{S} remove qos where name=a1",
        ],
    );
    let settings = json!({"qos_management": {"enabled": true}, "soft_delete": true});
    let (runner, slurm) = setup(settings, golden_components());
    slurm.post_delete_resource(resource).unwrap();
    assert!(runner.calls().is_empty());
}

/// Bug 3: the reference's user-existence check crashes (UnboundLocalError) on any `id`
/// failure other than "no such user".
#[test]
fn bug3_user_existence_check_answers_false_or_a_backend_error_never_a_crash() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.fail(
        "id -u ghost",
        1,
        &fixture("id_no_such_user.txt").replace("fx-no-such-user", "ghost"),
    );
    assert!(!slurm.client.check_user_exists("ghost").unwrap());

    runner.fail(
        "id -u broken",
        1,
        "id: cannot find name for group ID 5: NSS failure\n",
    );
    let err = slurm.client.check_user_exists("broken").unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(err.message.contains("NSS failure"), "{}", err.message);
    assert!(err.message.contains("broken"), "{}", err.message);

    runner.answer("id -u gone", crate::runner::Reply::NotFound);
    let err = slurm.client.check_user_exists("gone").unwrap_err();
    assert_eq!(err.kind, ErrorKind::BACKEND);
    assert!(err.message.contains("id: not found"), "{}", err.message);

    // Through the agent's remove flow: the hook's error answers false, the association stays.
    runner.reply(
        "show association where user=broken",
        "c|a1|broken||parent\n",
    );
    let resource = WaldurResource {
        backend_id: "a1".into(),
        ..Default::default()
    };
    runner.take_calls();
    assert!(!agent(&slurm)
        .remove_user(&resource, "broken", &UserOptions::default())
        .unwrap());
    let calls = runner.take_calls();
    assert!(
        !calls.iter().any(|c| c.contains("remove user")),
        "{calls:#?}"
    );
}

/// Bug 4 through the usage path: elapsed times the reference cannot parse.
#[test]
fn bug4_usage_with_zero_day_and_long_elapsed_times() {
    let comps = components(json!({"cpu": {"unit_factor": 1}}));
    let (runner, slurm) = setup(json!({}), comps);
    runner.reply(
        "--accounts=a",
        "a|cpu=1|0-00:01:00|alice\na|cpu=1|40-00:00:00|bob\na|cpu=1|02:30|carol\n",
    );
    let report = slurm.get_usage_report(vec!["a".into()]).unwrap();
    assert_eq!(report["a"]["alice"]["cpu"], 1.0);
    assert_eq!(report["a"]["bob"]["cpu"], 40.0 * 1440.0);
    assert_eq!(report["a"]["carol"]["cpu"], 2.5);
}

/// Bug 8 through the backend: the total is what Waldur receives per user, summed.
#[test]
fn bug8_total_account_usage_equals_the_sum_of_the_reported_user_values() {
    let comps = components(json!({"cpu": {"unit_factor": 100}}));
    let (runner, slurm) = setup(json!({}), comps);
    runner.reply(
        "--accounts=a",
        "a|cpu=1|00:00:30|u1\na|cpu=1|00:00:30|u2\na|cpu=1|00:00:30|u3\n",
    );
    let report = slurm.get_usage_report(vec!["a".into()]).unwrap();
    let users: f64 = ["u1", "u2", "u3"]
        .iter()
        .map(|u| report["a"][*u]["cpu"])
        .sum();
    assert_eq!(
        report["a"][TOTAL_ACCOUNT_USAGE]["cpu"],
        crate::usage::round2(users)
    );
    assert_eq!(report["a"][TOTAL_ACCOUNT_USAGE]["cpu"], 0.03);
}
