//! Tests against REAL SLURM accounting (started by `scripts/slurm-setup.sh`).
//!
//! - [`require_real_slurm`] gates a test: `None` (the test returns) when SLURM is not
//!   reachable, except under `CI=true`, where that is a failure.
//! - [`AccountGuard`] removes, when dropped (so also when the test fails), every account
//!   whose name starts with the test's own prefix, their associations and jobs, and every
//!   QoS with that prefix. Tests running in parallel use distinct prefixes.
//! - [`sacctmgr_rows`] runs one `sacctmgr --parsable2 --noheader` query, [`sacctmgr_write`]
//!   one change.
//!
//! Writes to the accounting database never run concurrently: the SLURM plugin takes the
//! [`SACCTMGR_WRITE_LOCK`] flock around every writing sacctmgr command, and so does the guard.
//! slurmdbd 22.05 exits (fatal) when MariaDB reports a deadlock between concurrent association
//! writes ten times in a row, which concurrent writers on this machine did trigger. Reads run
//! in parallel.

use std::fs::OpenOptions;
use std::process::{Command, Output};

/// The SLURM a test runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealSlurm {
    /// The first cluster `sacctmgr list cluster` names.
    pub cluster: String,
}

fn run(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program).args(args).output().ok()
}

/// The lock file the SLURM plugin takes around every writing sacctmgr command, in the agent's
/// runtime directory, so writers on this machine never run concurrently.
pub const SACCTMGR_WRITE_LOCK: &str = "waldur-agent-sacctmgr.lock";

/// The runtime directory every real-SLURM test gives the agent (`runtime_dir`) and the plugin
/// (its runtime context), so the agents, the plugin and [`AccountGuard`] take one write lock.
pub fn runtime_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("waldur-agent-slurm-tests");
    std::fs::create_dir_all(&dir).expect("the real-SLURM tests' runtime directory");
    dir
}

/// Runs a writing sacctmgr command under [`SACCTMGR_WRITE_LOCK`].
fn write(program: &str, args: &[&str]) -> Option<Output> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(runtime_dir().join(SACCTMGR_WRITE_LOCK))
        .and_then(|file| file.lock().map(|()| file));
    let output = run(program, args);
    drop(lock);
    output
}

fn probe() -> Result<String, String> {
    let clusters = run(
        "sacctmgr",
        &[
            "--parsable2",
            "--noheader",
            "list",
            "cluster",
            "format=cluster",
        ],
    )
    .ok_or("sacctmgr cannot be run")?;
    let text = String::from_utf8_lossy(&clusters.stdout);
    let cluster = text.lines().map(str::trim).find(|l| !l.is_empty());
    let cluster = match (clusters.status.success(), cluster) {
        (true, Some(cluster)) => cluster.to_string(),
        _ => {
            return Err(format!(
                "sacctmgr list cluster failed: {}{}",
                text.trim(),
                String::from_utf8_lossy(&clusters.stderr).trim()
            ))
        }
    };
    let sinfo = run("sinfo", &[]).ok_or("sinfo cannot be run")?;
    if !sinfo.status.success() {
        return Err(format!(
            "sinfo failed: {}",
            String::from_utf8_lossy(&sinfo.stderr).trim()
        ));
    }
    Ok(cluster)
}

/// `Some` when real SLURM answers (`sacctmgr list cluster` and `sinfo`). Otherwise prints a
/// skip line and answers `None`, or PANICS when `CI=true`.
pub fn require_real_slurm() -> Option<RealSlurm> {
    match probe() {
        Ok(cluster) => Some(RealSlurm { cluster }),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("real SLURM is not running: start it with scripts/slurm-setup.sh ({reason})")
        }
        Err(reason) => {
            eprintln!(
                "SKIPPED: real SLURM is not running ({reason}); start it with scripts/slurm-setup.sh"
            );
            None
        }
    }
}

/// The last `lines` lines of each log of the SLURM daemons and their database (from
/// scripts/slurm-setup.sh's state directory), and the database's open queries and
/// transactions, for failure messages: a test that fails on real SLURM shows what the daemons
/// said and whether a write was waiting for a lock.
pub fn daemon_logs(lines: usize) -> String {
    let state = std::env::var("SLURM_STATE").unwrap_or_else(|_| "/tmp/waldur-agent-slurm".into());
    let state = std::path::Path::new(&state);
    let mut out = String::new();
    for name in ["slurmdbd.log", "slurmctld.log", "mariadb.err"] {
        let path = state.join("log").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        push_section(
            &mut out,
            &format!("{} (last {lines} lines)", path.display()),
            tail,
        );
    }
    let activity = database_activity(&state.join("run").join("mysqld.sock"));
    let head: Vec<&str> = activity.lines().take(lines).collect();
    push_section(
        &mut out,
        &format!("MariaDB queries and transactions (first {lines} lines)"),
        &head,
    );
    out
}

/// The database's queries that are not idle and the transactions section of its InnoDB
/// status.
fn database_activity(socket: &std::path::Path) -> String {
    let database = Command::new("mariadb")
        .arg(format!("--socket={}", socket.display()))
        .args(["-e", "SHOW FULL PROCESSLIST; SHOW ENGINE INNODB STATUS\\G"])
        .output();
    let text = match database {
        Ok(output) => {
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr)
        }
        Err(e) => return format!("(mariadb: {e})"),
    };
    let mut relevant = Vec::new();
    let mut in_transactions = false;
    for line in text.lines() {
        match line.trim() {
            "TRANSACTIONS" => in_transactions = true,
            "FILE I/O" => in_transactions = false,
            _ => {}
        }
        let is_query = line.split('\t').count() > 5 && !line.contains("\tSleep\t");
        let idle_transaction = line.contains(", not started") || line.starts_with("0 lock struct");
        if (in_transactions && !idle_transaction) || is_query || line.starts_with("ERROR") {
            relevant.push(line);
        }
    }
    relevant.join("\n")
}

fn push_section(out: &mut String, heading: &str, lines: &[&str]) {
    out.push_str(&format!("--- {heading}\n"));
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
}

/// `sacctmgr --parsable2 --noheader <args>`, one row of `|`-separated fields per line. Panics
/// when sacctmgr fails.
pub fn sacctmgr_rows(args: &[&str]) -> Vec<Vec<String>> {
    let mut full = vec!["--parsable2", "--noheader"];
    full.extend_from_slice(args);
    let output = succeeded(args, run("sacctmgr", &full));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split('|').map(str::to_string).collect())
        .collect()
}

/// `sacctmgr -i <args>` under [`SACCTMGR_WRITE_LOCK`]: a test changing SLURM behind the
/// agent's back. Panics when sacctmgr fails.
pub fn sacctmgr_write(args: &[&str]) {
    let mut full = vec!["-i"];
    full.extend_from_slice(args);
    succeeded(args, write("sacctmgr", &full));
}

/// The output of `sacctmgr <args>`; panics with it when sacctmgr failed or could not run.
fn succeeded(args: &[&str], output: Option<Output>) -> Output {
    let output = output.expect("sacctmgr runs");
    assert!(
        output.status.success(),
        "sacctmgr {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Names in the first column of a sacctmgr query that start with `prefix`.
fn names_with_prefix(args: &[&str], prefix: &str) -> Vec<String> {
    let mut full = vec!["--parsable2", "--noheader"];
    full.extend_from_slice(args);
    let Some(output) = run("sacctmgr", &full) else {
        return Vec::new();
    };
    let prefix = prefix.to_lowercase();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split('|').next())
        .map(str::trim)
        .filter(|name| name.to_lowercase().starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Removes everything a test created under its prefix when dropped.
#[derive(Debug)]
pub struct AccountGuard {
    prefix: String,
}

impl AccountGuard {
    /// A guard for `prefix`, which must be specific to one test run (at least 3 characters;
    /// include the process id). Use [`AccountGuard::clean`] to remove leftovers first.
    pub fn new(prefix: &str) -> Self {
        assert!(
            prefix.len() >= 3,
            "a cleanup prefix must be specific, got {prefix:?}"
        );
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Removes the users named with the prefix, cancels the jobs of the prefix's accounts,
    /// removes their associations (users left without any association go with them), the
    /// accounts, and the prefix's QoS. Retries a
    /// few times (slurmdbd may be busy with another client) and reports what it could not
    /// remove on stderr.
    pub fn clean(&self) {
        for attempt in 1..=3 {
            let problems = self.clean_once();
            if problems.is_empty() {
                return;
            }
            if attempt == 3 {
                eprintln!(
                    "AccountGuard({}): could not remove everything: {}",
                    self.prefix,
                    problems.join("; ")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    fn clean_once(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut sacctmgr = |args: &[&str]| {
            let mut full = vec!["-i"];
            full.extend_from_slice(args);
            match write("sacctmgr", &full) {
                Some(out) if out.status.success() => {}
                Some(out) => {
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    // Removing what another removal already took is fine.
                    if !text.contains("Nothing deleted") {
                        problems.push(format!("sacctmgr {}: {}", args.join(" "), text.trim()));
                    }
                }
                None => problems.push("sacctmgr cannot be run".to_string()),
            }
        };
        // Users the test named with its prefix go completely: sacctmgr refuses to remove the
        // association of a user's default account while the user exists.
        let users = names_with_prefix(&["list", "user", "format=user"], &self.prefix);
        for chunk in users.chunks(100) {
            sacctmgr(&[
                "remove",
                "user",
                "where",
                &format!("name={}", chunk.join(",")),
            ]);
        }
        let accounts = names_with_prefix(&["list", "account", "format=account"], &self.prefix);
        if !accounts.is_empty() {
            if let Some(queue) = run("squeue", &["-h", "-o", "%a"]) {
                let busy: Vec<String> = String::from_utf8_lossy(&queue.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|a| accounts.iter().any(|ours| ours == a))
                    .map(str::to_string)
                    .collect();
                for account in busy {
                    let _ = run("scancel", &["-A", &account, "-f"]);
                }
            }
            for chunk in accounts.chunks(100) {
                let list = chunk.join(",");
                // One request for all: sacctmgr refuses it ("You can not remove the default
                // account of a user") when it takes a user's default account together with
                // another of the user's associations; one account per request it accepts.
                let users = write(
                    "sacctmgr",
                    &["-i", "remove", "user", "where", &format!("account={list}")],
                );
                if !users.is_some_and(|out| out.status.success()) {
                    for account in chunk {
                        sacctmgr(&["remove", "user", "where", &format!("account={account}")]);
                    }
                }
                sacctmgr(&["remove", "account", "where", &format!("name={list}")]);
            }
        }
        let qos = names_with_prefix(&["list", "qos", "format=name"], &self.prefix);
        for chunk in qos.chunks(100) {
            sacctmgr(&[
                "remove",
                "qos",
                "where",
                &format!("name={}", chunk.join(",")),
            ]);
        }
        problems
    }
}

impl Drop for AccountGuard {
    fn drop(&mut self) {
        self.clean();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_logs_show_every_log_and_the_database_queries() {
        let Some(_slurm) = require_real_slurm() else {
            return;
        };
        let logs = daemon_logs(5);
        for part in [
            "slurmdbd.log (last 5 lines)",
            "slurmctld.log (last 5 lines)",
            "mariadb.err (last 5 lines)",
            "MariaDB queries and transactions",
        ] {
            assert!(logs.contains(part), "{part} missing:\n{logs}");
        }
        // The diagnostic query itself is a running query, so the process list is there.
        assert!(logs.contains("SHOW FULL PROCESSLIST"), "{logs}");
        assert!(logs.contains("TRANSACTIONS"), "{logs}");
        assert!(!logs.contains("No such file"), "{logs}");
    }
}
