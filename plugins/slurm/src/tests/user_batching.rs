//! Adding and removing several users of one account: one association listing and one
//! sacctmgr write for all of them, where the reference checks and writes user by user; user
//! by user again whenever the batch cannot be used or fails, so the associations left behind
//! are the same.

use waldur_plugin_abi::wire::WaldurResource;

use super::*;
use waldur_plugin_abi::wire::UserOptions;

fn resource() -> WaldurResource {
    WaldurResource {
        backend_id: "hpc_alloc-1".into(),
        ..golden_resource()
    }
}

/// `show association where account=hpc_alloc-1` listing `users` (and the account's own line).
fn associations_of(users: &[&str]) -> String {
    let mut out = "waldurtest|hpc_alloc-1||||||||||||||||normal||\n".to_string();
    for user in users {
        out.push_str(&format!(
            "waldurtest|hpc_alloc-1|{user}|||||||||||||||normal||\n"
        ));
    }
    out
}

const LIST: &str = "{S} show association where account=hpc_alloc-1";

#[test]
fn missing_users_are_created_with_one_command() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show association where account=",
        &associations_of(&["bob"]),
    );
    let added = agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bob", "carol", "alice", ""]),
            &UserOptions::default(),
        )
        .unwrap();
    // bob was there already: associated, as the reference answers.
    assert_eq!(added, vec!["alice", "bob", "carol"]);
    assert_calls(
        &runner,
        &[
            LIST,
            "{S} add user alice,carol account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
}

#[test]
fn one_missing_user_is_created_as_the_reference_does() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show association where account=",
        &associations_of(&["BOB"]),
    );
    let added = agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bob"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(
        added,
        vec!["alice", "bob"],
        "names match case-insensitively"
    );
    assert_calls(
        &runner,
        &[
            LIST,
            "{S} add user alice account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
    runner.reply(
        "show association where account=",
        &associations_of(&["alice", "bob"]),
    );
    agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bob"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_calls(&runner, &[LIST]);
}

#[test]
fn a_failing_batch_add_goes_user_by_user_and_keeps_the_good_users() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply("show association where account=", &associations_of(&[]));
    runner.fail(
        "add user alice,bad,carol",
        1,
        " Error with request: Unknown partition\n",
    );
    runner.fail(
        "add user bad ",
        1,
        " Error with request: Unknown partition\n",
    );
    let added = agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bad", "carol"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["alice", "carol"]);
    assert_calls(
        &runner,
        &[
            LIST,
            "{S} add user alice,bad,carol account=hpc_alloc-1 DefaultAccount=root Share=parent",
            "{S} add user alice account=hpc_alloc-1 DefaultAccount=root Share=parent",
            "{S} add user bad account=hpc_alloc-1 DefaultAccount=root Share=parent",
            "{S} add user carol account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
}

#[test]
fn names_that_would_change_a_name_list_are_refused_and_a_failing_listing_goes_user_by_user() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    // `x,y` would name two users: refused alone (see hostile.rs); alice is one user, as the
    // reference sends it.
    let added = agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "x,y"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["alice"]);
    assert_calls(
        &runner,
        &[
            "{S} show association where user=alice account=hpc_alloc-1",
            "{S} add user alice account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
    runner.fail(
        "show association where account=",
        1,
        "sacctmgr: error: Problem talking to the database\n",
    );
    let added = agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bob"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, vec!["alice", "bob"]);
    assert_calls(
        &runner,
        &[
            LIST,
            "{S} show association where user=alice account=hpc_alloc-1",
            "{S} add user alice account=hpc_alloc-1 DefaultAccount=root Share=parent",
            "{S} show association where user=bob account=hpc_alloc-1",
            "{S} add user bob account=hpc_alloc-1 DefaultAccount=root Share=parent",
        ],
    );
}

#[test]
fn the_batch_keeps_the_association_form_of_the_settings() {
    let mut settings = golden_settings();
    settings["default_partition"] = json!("gpu");
    settings["default_account_policy"] = json!("individual");
    let (runner, slurm) = setup(settings, golden_components());
    agent(&slurm)
        .add_users_to_resource(
            &resource(),
            &names(&["alice", "bob"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_calls(
        &runner,
        &[
            LIST,
            "{S} add user alice,bob account=hpc_alloc-1 DefaultAccount=hpc_alloc-1 Partition=gpu",
        ],
    );
}

#[test]
fn present_users_lose_their_jobs_then_their_associations_in_one_command() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show association where account=",
        &associations_of(&["alice", "bob"]),
    );
    runner.reply("id -u", "1002\n");
    runner.reply(
        "--user=bob",
        "7|wrap|debug|hpc_alloc-1|bob|RUNNING|00:00:02|UNLIMITED|vm\n",
    );
    let removed = agent(&slurm)
        .remove_users_from_resource(
            &resource(),
            &names(&["alice", "bob", "carol"]),
            &UserOptions::default(),
        )
        .unwrap();
    // carol had no association: nothing to remove counts as removed, as in the reference.
    assert_eq!(removed, vec!["alice", "bob", "carol"]);
    let sacct = |user: &str| {
        format!(
            "/usr/bin/sacct --parsable2 --noheader -a --account=hpc_alloc-1 --user={user} --format=JobID,JobName,Partition,Account,User,State,Elapsed,Timelimit,NodeList"
        )
    };
    let (sacct_alice, sacct_bob) = (sacct("alice"), sacct("bob"));
    assert_calls(
        &runner,
        &[
            LIST,
            "id -u alice",
            &sacct_alice,
            "id -u bob",
            &sacct_bob,
            "/usr/bin/scancel -u bob -A hpc_alloc-1 -f",
            "{S} remove user where name=alice,bob and account=hpc_alloc-1",
        ],
    );
}

#[test]
fn a_failing_batch_removal_goes_user_by_user() {
    let (runner, slurm) = setup(golden_settings(), golden_components());
    runner.reply(
        "show association where account=",
        &associations_of(&["alice", "bob"]),
    );
    runner.reply(
        "show association where user=",
        &associations_of(&["someone"]),
    );
    runner.fail("id -u", 1, "id: no such user\n");
    runner.fail(
        "remove user where name=alice,bob",
        1,
        "sacctmgr: error: Problem talking to the database\n",
    );
    runner.fail(
        "remove user where name=bob ",
        1,
        "sacctmgr: error: Problem talking to the database\n",
    );
    let removed = agent(&slurm)
        .remove_users_from_resource(
            &resource(),
            &names(&["alice", "bob"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(removed, vec!["alice"]);
    assert_calls(
        &runner,
        &[
            LIST,
            "id -u alice",
            "id -u bob",
            "{S} remove user where name=alice,bob and account=hpc_alloc-1",
            "{S} show association where user=alice account=hpc_alloc-1",
            "id -u alice",
            "{S} remove user where name=alice and account=hpc_alloc-1",
            "{S} show association where user=bob account=hpc_alloc-1",
            "id -u bob",
            "{S} remove user where name=bob and account=hpc_alloc-1",
        ],
    );
}
