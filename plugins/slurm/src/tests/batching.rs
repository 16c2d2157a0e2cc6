//! `pull_resources` and `get_usage_report` batch their queries: a constant number of
//! commands per chunk of 200 accounts, with the same result as one pull per resource.

use std::sync::{Arc, Mutex};

use waldur_plugin_abi::wire::WaldurResource;
use waldur_plugin_abi::Backend;

use super::*;
use crate::runner::{RunError, Runner};

/// A fake SLURM that answers the pull queries from one data set, filtering by the accounts
/// named in each command, as sacctmgr and sacct do.
#[derive(Default)]
struct FakeCluster {
    /// `name|description|organization`.
    accounts: Vec<String>,
    /// (account, user).
    associations: Vec<(String, String)>,
    /// sacct allocation lines.
    jobs: Vec<String>,
    /// Commands that fail when they contain this text.
    fail_when: Option<String>,
    calls: Mutex<Vec<String>>,
}

fn list_after<'a>(command: &'a str, key: &str) -> Vec<&'a str> {
    command
        .split(' ')
        .find_map(|arg| arg.strip_prefix(key))
        .map(|list| list.split(',').collect())
        .unwrap_or_default()
}

impl Runner for FakeCluster {
    fn run(&self, argv: &[String]) -> Result<String, RunError> {
        let command = argv.join(" ");
        self.calls.lock().unwrap().push(command.clone());
        if self.fail_when.as_ref().is_some_and(|f| command.contains(f)) {
            return Err(RunError::Failed {
                command,
                status: "exit code 1".into(),
                output: "sacctmgr: error: Problem talking to the database".into(),
            });
        }
        let name_of = |line: &String| line.split('|').next().unwrap_or("").to_string();
        let mut out = String::new();
        if let Some(name) = command.strip_prefix(&format!("{S} show account ")) {
            for line in self
                .accounts
                .iter()
                .filter(|l| name_of(l).eq_ignore_ascii_case(name))
            {
                out.push_str(&format!("{line}\n"));
            }
        } else if command.contains("list account where") {
            let names = list_after(&command, "name=");
            for line in &self.accounts {
                if names.iter().any(|n| n.eq_ignore_ascii_case(&name_of(line))) {
                    out.push_str(&format!("{line}\n"));
                }
            }
        } else if command.contains("format=account,user") {
            let names = list_after(&command, "account=");
            for line in &self.accounts {
                let account = name_of(line);
                if !names.iter().any(|n| n.eq_ignore_ascii_case(&account)) {
                    continue;
                }
                out.push_str(&format!("{account}|\n"));
                for (_, user) in self.associations.iter().filter(|(a, _)| *a == account) {
                    out.push_str(&format!("{account}|{user}\n"));
                }
            }
        } else if command.contains("/usr/bin/sacct ") {
            let names = list_after(&command, "--accounts=");
            for line in &self.jobs {
                if names.iter().any(|n| n.eq_ignore_ascii_case(&name_of(line))) {
                    out.push_str(&format!("{line}\n"));
                }
            }
        }
        Ok(out)
    }
}

fn cluster() -> FakeCluster {
    FakeCluster {
        accounts: [
            "hpc_a|a|hpc_p",
            "hpc_b|b|hpc_p",
            "hpc_c|c|hpc_p",
            "hpc_p|p|hpc_p",
        ]
        .map(String::from)
        .to_vec(),
        associations: [
            ("hpc_a", "alice"),
            ("hpc_a", "bob"),
            ("hpc_b", "carol"),
            ("hpc_a", "bob"),
        ]
        .map(|(a, u)| (a.to_string(), u.to_string()))
        .to_vec(),
        jobs: [
            "hpc_a|billing=1,cpu=64,mem=1024M,node=1|01:00:00|alice",
            "hpc_a|cpu=2,mem=10M,gres/gpu=1|0-02:30:00|bob",
            "hpc_b|cpu=1,mem=1G|00:10:00|carol",
            "hpc_a|cpu=3|00:00:07|alice",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    }
}

fn resources(ids: &[&str]) -> Vec<WaldurResource> {
    ids.iter()
        .map(|id| WaldurResource {
            name: id.to_string(),
            backend_id: id.to_string(),
            ..Default::default()
        })
        .collect()
}

fn backend(fake: &Arc<FakeCluster>) -> Slurm {
    slurm_on(golden_settings(), golden_components(), fake.clone())
}

#[test]
fn a_pull_of_three_resources_is_three_commands_and_equals_three_single_pulls() {
    let fake = Arc::new(cluster());
    let slurm = backend(&fake);
    let batched = slurm
        .pull_resources(resources(&["hpc_a", "hpc_b", "hpc_c"]))
        .unwrap();
    let calls = std::mem::take(&mut *fake.calls.lock().unwrap());
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(
        calls[0],
        format!("{S} list account where name=hpc_a,hpc_b,hpc_c")
    );
    assert_eq!(
        calls[1],
        format!("{S} list associations format=account,user where account=hpc_a,hpc_b,hpc_c")
    );
    assert!(
        calls[2].contains("--accounts=hpc_a,hpc_b,hpc_c "),
        "{}",
        calls[2]
    );

    // The reference's way, through the agent's default pull on the same data: 9 commands.
    let agent = agent(&slurm);
    let mut single = std::collections::BTreeMap::new();
    for resource in resources(&["hpc_a", "hpc_b", "hpc_c"]) {
        if let Some(info) = agent.pull_resource(&resource).unwrap() {
            single.insert(resource.backend_id.clone(), info);
        }
    }
    assert_eq!(fake.calls.lock().unwrap().len(), 9);
    assert_eq!(batched, single);
    assert_eq!(batched["hpc_a"].users, vec!["alice", "bob", "bob"]);
    assert_eq!(batched["hpc_c"].users, Vec::<String>::new());
    assert_eq!(
        batched["hpc_c"].usage,
        crate::usage::zero_usage(&golden_components())
    );
    assert!(batched["hpc_a"].usage["bob"]["gres/gpu"] > 0.0);
}

#[test]
fn missing_accounts_and_resources_without_id_are_left_out() {
    let fake = Arc::new(cluster());
    let slurm = backend(&fake);
    let mut list = resources(&["hpc_a", "hpc_gone", "hpc_a"]);
    list.push(WaldurResource::default());
    let pulled = slurm.pull_resources(list).unwrap();
    assert_eq!(pulled.keys().collect::<Vec<_>>(), vec!["hpc_a"]);
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(calls[1].ends_with("where account=hpc_a"), "{}", calls[1]);

    // Nothing exists: one command.
    fake.calls.lock().unwrap().clear();
    assert!(slurm
        .pull_resources(resources(&["x", "y"]))
        .unwrap()
        .is_empty());
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
}

#[test]
fn a_failing_batch_falls_back_to_single_pulls_with_the_same_result() {
    let fake = Arc::new(cluster());
    let expected = backend(&fake)
        .pull_resources(resources(&["hpc_a", "hpc_b"]))
        .unwrap();
    let failing = Arc::new(FakeCluster {
        fail_when: Some("where account=hpc_a,hpc_b".into()),
        ..cluster()
    });
    let pulled = backend(&failing)
        .pull_resources(resources(&["hpc_a", "hpc_b"]))
        .unwrap();
    assert_eq!(pulled, expected);
    // 2 batched commands, then 3 per account.
    assert_eq!(failing.calls.lock().unwrap().len(), 2 + 6);
}

#[test]
fn long_lists_are_chunked_by_200() {
    let mut fake = cluster();
    let ids: Vec<String> = (0..450).map(|i| format!("hpc_x{i:03}")).collect();
    for id in &ids {
        fake.accounts.push(format!("{id}|x|hpc_p"));
    }
    let fake = Arc::new(fake);
    let slurm = backend(&fake);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let pulled = slurm.pull_resources(resources(&refs)).unwrap();
    assert_eq!(pulled.len(), 450);
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 9, "3 chunks × 3 commands");
    for call in &calls {
        let names = call.matches("hpc_x").count();
        assert!(names <= 200, "{names} accounts in one command");
    }

    fake.calls.lock().unwrap().clear();
    let report = slurm.get_usage_report(ids.clone()).unwrap();
    assert!(report.is_empty());
    assert_eq!(fake.calls.lock().unwrap().len(), 3, "one sacct per chunk");
}

#[test]
fn a_usage_report_of_many_accounts_is_one_sacct_and_equals_single_reports() {
    let fake = Arc::new(cluster());
    let slurm = backend(&fake);
    let all = slurm
        .get_usage_report(vec!["hpc_a".into(), "hpc_b".into(), "hpc_c".into()])
        .unwrap();
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
    for id in ["hpc_a", "hpc_b"] {
        let single = slurm.get_usage_report(vec![id.into()]).unwrap();
        assert_eq!(single[id], all[id]);
    }
    assert!(
        !all.contains_key("hpc_c"),
        "no lines, no entry (the pull fills zeros)"
    );
    let historical = slurm
        .get_usage_report_for_period(vec!["hpc_a".into()], 2025, 2, None)
        .unwrap();
    assert_eq!(historical["hpc_a"], all["hpc_a"]);
    let last = fake.calls.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.contains("--starttime=2025-02-01T00:00:00 --endtime=2025-02-28T23:59:59"),
        "{last}"
    );
    let err = slurm
        .get_usage_report_for_period(vec!["hpc_a".into()], 2025, 13, None)
        .unwrap_err();
    assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::INVALID_INPUT);
}
