//! The SLURM client: one method per command of the reference's `SlurmClient` (§2.3 of the
//! reference notes), each building its argv through [`CommandBuilder`], running it through a
//! [`Runner`] and parsing the answer. No policy lives here.
//!
//! This is where names become arguments, so every account, user, QoS, partition and TRES
//! name is checked here ([`crate::names`]) before its command is built: a refused name
//! runs no command and is a one-line backend error naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use waldur_plugin_abi::wire::{Association, BackendLimits, ClientResource};
use waldur_plugin_abi::{Error, Result};

use crate::command::{argv, quoted, CommandBuilder};
use crate::names::{self, NameKind};
use crate::parser::{self, ReportLine};
use crate::runner::{RunError, Runner};
use crate::usage::Period;

/// The settings of a per-account QoS (`qos_management`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QosSpec {
    pub flags: Option<String>,
    pub grp_tres: Option<String>,
    pub max_jobs: Option<i64>,
    pub max_submit: Option<i64>,
    pub max_wall: Option<String>,
    pub min_tres_per_job: Option<String>,
}

/// `{GrpTRES, GrpTRESMins, MaxTRES, MaxTRESMins} -> tres -> value` of an account.
pub type AccountLimits = BTreeMap<String, BTreeMap<String, String>>;

/// The limit types an account's association has, in the column order the limit reads use.
pub const LIMIT_TYPES: [&str; 4] = ["GrpTRES", "GrpTRESMins", "MaxTRES", "MaxTRESMins"];

/// One association line of an account ([`SlurmClient::account_association_details`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssociationDetails {
    /// Empty on the account's own association.
    pub user: String,
    pub partition: String,
    pub parent: String,
    pub qos: String,
    pub grp_submit_jobs: String,
    /// The limit types that have values.
    pub limits: AccountLimits,
}

/// Runs SLURM commands. Cheap to clone; [`SlurmClient::recording`] makes a copy that also
/// keeps the list of commands it ran (what periodic settings report to Waldur).
#[derive(Clone)]
pub struct SlurmClient {
    commands: CommandBuilder,
    runner: Arc<dyn Runner>,
    /// Component types: the TRES whose limits are read back.
    configured: Arc<BTreeSet<String>>,
    /// Component types plus mapping targets: the TRES whose usage is read.
    reported: Arc<BTreeSet<String>>,
    log: Option<Arc<Mutex<Vec<String>>>>,
    /// Where the cross-process write lock lives: the agent's runtime directory once the host
    /// says it (see [`Self::use_runtime_dir`]), else the temp directory.
    write_lock_dir: Arc<std::sync::RwLock<Option<PathBuf>>>,
}

fn to_error(e: RunError) -> Error {
    e.to_error()
}

/// The lock file around writing sacctmgr commands, in the agent's runtime directory (the temp
/// directory under a host that does not pass one); the real-SLURM test helpers
/// (`waldur_test_support::slurm::SACCTMGR_WRITE_LOCK`) take the same one.
pub const WRITE_LOCK_FILE: &str = "waldur-agent-sacctmgr.lock";

/// sacctmgr commands that write to the accounting database.
const WRITE_VERBS: [&str; 6] = ["add", "create", "modify", "update", "remove", "delete"];

/// Serializes sacctmgr writes: within the process (a mutex) and between the agent's processes
/// on this machine (an flock on a file in the runtime directory, which every agent process
/// of the site shares and, unlike `/tmp` under systemd's `PrivateTmp=`, nobody else can
/// write to). slurmdbd 22.05 exits (fatal)
/// when MariaDB reports a deadlock between concurrent association writes ten times in a row,
/// which concurrent writers do trigger; the reference agent never writes concurrently (one
/// thread per process), this agent may (orders of different resources run in parallel).
struct WriteLock {
    _file: Option<std::fs::File>,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl WriteLock {
    fn acquire(dir: &Path) -> Self {
        static WRITES: Mutex<()> = Mutex::new(());
        let guard = WRITES.lock().unwrap_or_else(|e| e.into_inner());
        let path = dir.join(WRITE_LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|file| file.lock().map(|()| file));
        let file = match file {
            Ok(file) => Some(file),
            Err(e) => {
                // Writes still serialize within this process; say once why not between them.
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    log::warn!(
                        "no cross-process sacctmgr write lock ({}): {e}; concurrent agent \
                         processes may write to SLURM accounting at the same time",
                        path.display()
                    )
                });
                None
            }
        };
        Self {
            _file: file,
            _guard: guard,
        }
    }
}

impl SlurmClient {
    pub fn new(
        commands: CommandBuilder,
        runner: Arc<dyn Runner>,
        configured: BTreeSet<String>,
        reported: BTreeSet<String>,
    ) -> Self {
        Self {
            commands,
            runner,
            configured: Arc::new(configured),
            reported: Arc::new(reported),
            log: None,
            write_lock_dir: Arc::default(),
        }
    }

    /// Takes the write lock in the agent's runtime directory from now on (the runtime context).
    pub fn use_runtime_dir(&self, dir: Option<&str>) {
        let dir = dir.filter(|d| !d.is_empty()).map(PathBuf::from);
        *self
            .write_lock_dir
            .write()
            .unwrap_or_else(|e| e.into_inner()) = dir;
    }

    /// The directory of the write lock file.
    pub fn write_lock_dir(&self) -> PathBuf {
        self.write_lock_dir
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    pub fn commands(&self) -> &CommandBuilder {
        &self.commands
    }

    /// A copy of this client that records every command it runs.
    pub fn recording(&self) -> Self {
        Self {
            log: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// The commands run by a [`Self::recording`] client, as `argv.join(" ")`.
    pub fn executed_commands(&self) -> Vec<String> {
        self.log
            .as_ref()
            .map(|log| log.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    fn run(&self, argv: &[String], silent: bool) -> std::result::Result<String, RunError> {
        let line = argv.join(" ");
        log::debug!("Executing command: {line}");
        if let Some(log) = &self.log {
            log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
        let answer = self.runner.run(argv);
        if let Err(e) = &answer {
            if !silent {
                log::error!("{e}");
            }
        }
        answer
    }

    /// Runs any command (the BaseClient's `execute_command`).
    pub fn execute(&self, argv: &[String], silent: bool) -> Result<String> {
        self.run(argv, silent).map_err(to_error)
    }

    /// `sacctmgr -P -n -i <args>`; a `modify` that changed nothing ("Nothing modified", exit
    /// 1 in real sacctmgr) is a success with empty output.
    fn sacctmgr(&self, args: &[String]) -> Result<String> {
        let argv = self.commands.sacctmgr(args);
        let _serialized = args
            .first()
            .filter(|verb| WRITE_VERBS.contains(&verb.as_str()))
            .map(|_| WriteLock::acquire(&self.write_lock_dir()));
        match self.run(&argv, true) {
            Ok(output) => Ok(output),
            Err(e)
                if args.first().is_some_and(|a| a == "modify")
                    && e.output().contains("Nothing modified") =>
            {
                log::info!("{}: nothing modified", argv.join(" "));
                Ok(String::new())
            }
            Err(e) => {
                log::error!("{e}");
                Err(e.to_error())
            }
        }
    }

    /// `sacctmgr -P -n <args>` (no --immediate: the limit queries).
    fn sacctmgr_query(&self, args: &[String]) -> Result<String> {
        self.execute(&self.commands.sacctmgr_query(args), false)
    }

    fn sacct(&self, args: &[String]) -> Result<String> {
        self.execute(&self.commands.sacct(args), false)
    }

    // ---------------------------------------------------------------------------------------
    // Accounts

    /// `list account`.
    pub fn list_resources(&self) -> Result<Vec<ClientResource>> {
        Ok(parser::accounts(
            &self.sacctmgr(&argv(&["list", "account"]))?,
        ))
    }

    /// `list account where name=a,b,c`: the accounts among `names` (batched existence).
    pub fn list_accounts(&self, names: &[String]) -> Result<Vec<ClientResource>> {
        let filter = format!("name={}", names::list(NameKind::Account, names)?);
        let output = self.sacctmgr(&argv(&["list", "account", "where", &filter]))?;
        Ok(parser::accounts(&output))
    }

    /// `show account <id>`: the first account line, `None` when there is none.
    pub fn get_resource(&self, resource_id: &str) -> Result<Option<ClientResource>> {
        let output = self.sacctmgr(&argv(&["show", "account", names::account(resource_id)?]))?;
        Ok(parser::accounts(&output).into_iter().next())
    }

    /// `add account <name> description="<d>" organization="<o>" [parent="<p>"]`.
    pub fn create_resource(
        &self,
        name: &str,
        description: &str,
        organization: &str,
        parent_name: Option<&str>,
    ) -> Result<String> {
        let mut args = argv(&["add", "account", names::account(name)?]);
        args.push(quoted("description", description));
        args.push(quoted("organization", organization));
        if let Some(parent) = parent_name.filter(|p| !p.is_empty()) {
            args.push(format!("parent=\"{}\"", names::account(parent)?));
        }
        self.sacctmgr(&args)
    }

    /// `remove account where name=<name>`.
    pub fn delete_resource(&self, name: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "remove",
            "account",
            "where",
            &format!("name={}", names::account(name)?),
        ]))
    }

    /// `show assoc account=<a> format=Account,ParentName,User -n -P`: the parent on the
    /// account's own association (empty user), matched case-insensitively.
    pub fn get_account_parent(&self, account: &str) -> Result<Option<String>> {
        let output = self.sacctmgr(&argv(&[
            "show",
            "assoc",
            &format!("account={}", names::account(account)?),
            "format=Account,ParentName,User",
            "-n",
            "-P",
        ]))?;
        for line in output.lines() {
            let parts: Vec<&str> = line.trim().split('|').collect();
            if parts.len() > 2
                && parts[0].trim().to_lowercase() == account.to_lowercase()
                && parts[2].trim().is_empty()
            {
                let parent = parts[1].trim();
                return Ok((!parent.is_empty()).then(|| parent.to_string()));
            }
        }
        Ok(None)
    }

    /// `modify account where name=<a> set parent=<p>`.
    pub fn set_account_parent(&self, account: &str, parent: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            "where",
            &format!("name={}", names::account(account)?),
            "set",
            &format!("parent={}", names::account(parent)?),
        ]))
    }

    /// `show association where account=<a>`: every association line of the account.
    fn account_associations(&self, account: &str) -> Result<Vec<Association>> {
        let output = self.sacctmgr(&argv(&[
            "show",
            "association",
            "where",
            &format!("account={}", names::account(account)?),
        ]))?;
        Ok(parser::associations(&output))
    }

    /// `show association where account=<a>`: does any association have a user?
    pub fn account_has_users(&self, account: &str) -> Result<bool> {
        Ok(self
            .account_associations(account)?
            .iter()
            .any(|a| !a.user.is_empty()))
    }

    /// `show association where account=<a>`: the users with an association in the account,
    /// lower-cased. The answer [`Self::get_association`] gives user by user: sacctmgr matches
    /// `where` values case-insensitively.
    pub fn association_users(&self, account: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .account_associations(account)?
            .into_iter()
            .filter(|a| !a.user.is_empty() && a.account.eq_ignore_ascii_case(account))
            .map(|a| a.user.to_lowercase())
            .collect())
    }

    /// `remove user where account=<a>`.
    pub fn delete_all_users_from_account(&self, account: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "remove",
            "user",
            "where",
            &format!("account={}", names::account(account)?),
        ]))
    }

    // ---------------------------------------------------------------------------------------
    // Limits

    /// `modify account <id> set GrpTRESMins=k1=v1,k2=v2` (keys sorted).
    pub fn set_resource_limits(&self, resource_id: &str, limits: &BackendLimits) -> Result<String> {
        let resource_id = names::account(resource_id)?;
        let list = limits
            .iter()
            .map(|(tres, value)| Ok(format!("{}={value}", names::tres(tres)?)))
            .collect::<Result<Vec<_>>>()?
            .join(",");
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            resource_id,
            "set",
            &format!("GrpTRESMins={list}"),
        ]))
    }

    /// `show association format=account,GrpTRESMins where accounts=<id>` (no --immediate):
    /// the first line with limits of configured components (`mem` in MB).
    pub fn get_resource_limits(&self, resource_id: &str) -> Result<BackendLimits> {
        let output = self.sacctmgr_query(&argv(&[
            "show",
            "association",
            "format=account,GrpTRESMins",
            "where",
            &format!("accounts={}", names::account(resource_id)?),
        ]))?;
        Ok(output
            .lines()
            .filter(|line| line.contains('|'))
            .map(|line| parser::limit_line(line, &self.configured).0)
            .find(|limits| !limits.is_empty())
            .unwrap_or_default())
    }

    /// `show association where accounts=<id> format=Account,MaxTRESMins,User` (no
    /// --immediate): per-user limits of configured components.
    pub fn get_resource_user_limits(
        &self,
        resource_id: &str,
    ) -> Result<BTreeMap<String, BackendLimits>> {
        let output = self.sacctmgr_query(&argv(&[
            "show",
            "association",
            "where",
            &format!("accounts={}", names::account(resource_id)?),
            "format=Account,MaxTRESMins,User",
        ]))?;
        Ok(output
            .lines()
            .filter(|line| line.contains('|'))
            .map(|line| parser::limit_line(line, &self.configured))
            .filter(|(_, user)| !user.is_empty())
            .map(|(limits, user)| (user, limits))
            .collect())
    }

    /// `list tres`, then `modify user <u> where account=<id> set MaxTRESMins=<t>=<v>,...`
    /// for every cluster TRES in `list tres` order (-1, i.e. no limit, for those not given).
    pub fn set_resource_user_limits(
        &self,
        resource_id: &str,
        username: &str,
        limits: &BackendLimits,
    ) -> Result<String> {
        // Checked before `list tres`: a refused name runs no command at all.
        let resource_id = names::account(resource_id)?;
        let username = names::user(username)?;
        let list = self
            .list_tres()?
            .iter()
            .map(|tres| format!("{tres}={}", limits.get(tres).copied().unwrap_or(-1)))
            .collect::<Vec<_>>()
            .join(",");
        self.sacctmgr(&argv(&[
            "modify",
            "user",
            username,
            "where",
            &format!("account={resource_id}"),
            "set",
            &format!("MaxTRESMins={list}"),
        ]))
    }

    // ---------------------------------------------------------------------------------------
    // Associations

    /// `show association where user=<u> account=<id>`: the first association line.
    pub fn get_association(&self, user: &str, resource_id: &str) -> Result<Option<Association>> {
        let output = self.sacctmgr(&argv(&[
            "show",
            "association",
            "where",
            &format!("user={}", names::user(user)?),
            &format!("account={}", names::account(resource_id)?),
        ]))?;
        Ok(parser::associations(&output).into_iter().next())
    }

    /// `add user <u1,u2,...> account=<id> [DefaultAccount=<d>]`, every name checked.
    fn add_user_args(
        users: &[&str],
        resource_id: &str,
        default_account: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut args = argv(&[
            "add",
            "user",
            &Self::user_list(users)?,
            &format!("account={}", names::account(resource_id)?),
        ]);
        if let Some(account) = default_account {
            args.push(format!("DefaultAccount={}", names::account(account)?));
        }
        Ok(args)
    }

    /// `u1,u2,...` of checked names (no name can add another to the list).
    fn user_list(users: &[&str]) -> Result<String> {
        if users.is_empty() {
            return Err(Error::backend("no user names given"));
        }
        names::list(NameKind::User, users)
    }

    /// `add user <u1,u2,...> account=<id> [DefaultAccount=<d>] Share=parent`: one
    /// association per user, all or none (sacctmgr commits an `add` as one transaction).
    /// The same for every `create_association*`.
    pub fn create_association(
        &self,
        users: &[&str],
        resource_id: &str,
        default_account: Option<&str>,
    ) -> Result<String> {
        let mut args = Self::add_user_args(users, resource_id, default_account)?;
        args.push("Share=parent".into());
        self.sacctmgr(&args)
    }

    /// `add user <u> account=<id> [DefaultAccount=<d>] Partition=<p>` (no Share=parent, as
    /// the reference).
    pub fn create_association_with_partition(
        &self,
        users: &[&str],
        resource_id: &str,
        partition: &str,
        default_account: Option<&str>,
    ) -> Result<String> {
        let partition = names::partition(partition)?;
        let mut args = Self::add_user_args(users, resource_id, default_account)?;
        args.push(format!("Partition={partition}"));
        self.sacctmgr(&args)
    }

    /// `add user <u> account=<id> [DefaultAccount=<d>] Partitions=<sorted> Share=parent`.
    pub fn create_association_with_partitions(
        &self,
        users: &[&str],
        resource_id: &str,
        partitions: &[String],
        default_account: Option<&str>,
    ) -> Result<String> {
        if partitions.is_empty() {
            return Err(Error::backend("partitions must be non-empty"));
        }
        let mut sorted = partitions.to_vec();
        sorted.sort();
        let partitions = names::list(NameKind::Partition, &sorted)?;
        let mut args = Self::add_user_args(users, resource_id, default_account)?;
        args.push(format!("Partitions={partitions}"));
        args.push("Share=parent".into());
        self.sacctmgr(&args)
    }

    /// `add user <u> account=<id> [DefaultAccount=<d>] [Partitions=<sorted>]
    /// QosLevel=<q1,q2> [DefaultQOS=<d>] Share=parent`.
    pub fn create_association_with_qos(
        &self,
        users: &[&str],
        resource_id: &str,
        qos_list: &[String],
        default_qos: Option<&str>,
        partitions: Option<&[String]>,
        default_account: Option<&str>,
    ) -> Result<String> {
        if qos_list.is_empty() {
            return Err(Error::backend("qos_list must be non-empty"));
        }
        let qos_levels = names::list(NameKind::Qos, qos_list)?;
        let default_qos = default_qos.map(names::qos).transpose()?;
        let mut sorted: Vec<String> = partitions.unwrap_or_default().to_vec();
        sorted.sort();
        let partitions = names::list(NameKind::Partition, &sorted)?;
        let mut args = Self::add_user_args(users, resource_id, default_account)?;
        if !partitions.is_empty() {
            args.push(format!("Partitions={partitions}"));
        }
        args.push(format!("QosLevel={qos_levels}"));
        if let Some(qos) = default_qos {
            args.push(format!("DefaultQOS={qos}"));
        }
        args.push("Share=parent".into());
        self.sacctmgr(&args)
    }

    /// `remove user where name=<u1,u2,...> and account=<id>`.
    pub fn delete_association(&self, users: &[&str], resource_id: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "remove",
            "user",
            "where",
            &format!("name={}", Self::user_list(users)?),
            "and",
            &format!("account={}", names::account(resource_id)?),
        ]))
    }

    /// `list associations format=account,user where account=<id>`: the users of the account
    /// (exact account match; a user appears once per partition association).
    pub fn list_resource_users(&self, resource_id: &str) -> Result<Vec<String>> {
        let mut users = self.list_users_of_accounts(&[resource_id.to_string()])?;
        Ok(users.remove(resource_id).unwrap_or_default())
    }

    /// `list associations format=account,user where account=a,b,c`: the users of each of the
    /// accounts, as [`Self::list_resource_users`] answers them one by one.
    pub fn list_users_of_accounts(
        &self,
        accounts: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let output = self.sacctmgr(&argv(&[
            "list",
            "associations",
            "format=account,user",
            "where",
            &format!("account={}", names::list(NameKind::Account, accounts)?),
        ]))?;
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in output.lines().filter(|line| line.contains('|')) {
            let (account, rest) = line.split_once('|').unwrap_or((line, ""));
            let user = rest.split('|').next().unwrap_or("").trim();
            let account = account.trim();
            if user.is_empty() || !accounts.iter().any(|a| a == account) {
                continue;
            }
            users
                .entry(account.to_string())
                .or_default()
                .push(user.to_string());
        }
        Ok(users)
    }

    // ---------------------------------------------------------------------------------------
    // QoS

    /// `list associations format=account,qos where account=<a>`: the QoS of the first line of
    /// that account, `""` when there is none.
    pub fn get_current_account_qos(&self, account: &str) -> Result<String> {
        let output = self.sacctmgr(&argv(&[
            "list",
            "associations",
            "format=account,qos",
            "where",
            &format!("account={}", names::account(account)?),
        ]))?;
        Ok(output
            .lines()
            .filter(|line| line.contains('|'))
            .map(|line| line.split('|').collect::<Vec<_>>())
            .find(|parts| parts.len() >= 2 && parts[0].trim() == account)
            .map(|parts| parts[1].trim().to_string())
            .unwrap_or_default())
    }

    /// `modify account <a> set qos=<q>` (the account and all its user associations).
    ///
    /// sacctmgr refuses a QoS list without the associations' DefaultQOS (as `qos_management`
    /// sets it) but exits 0; that is an error here (the reference takes it for success).
    pub fn set_account_qos(&self, account: &str, qos: &str) -> Result<String> {
        self.set_account_qos_value(account, names::qos(qos)?)
    }

    /// `modify account <a> set qos=<q1,q2>`.
    pub fn set_account_qos_list(&self, account: &str, qos_list: &[String]) -> Result<String> {
        self.set_account_qos_value(account, &names::list(NameKind::Qos, qos_list)?)
    }

    /// `qos` is one checked name or a list of them.
    fn set_account_qos_value(&self, account: &str, qos: &str) -> Result<String> {
        let output = self.sacctmgr(&argv(&[
            "modify",
            "account",
            names::account(account)?,
            "set",
            &format!("qos={qos}"),
        ]))?;
        if output.contains("access to their default qos") {
            return Err(Error::backend(format!(
                "sacctmgr did not set QoS {qos} on account {account}: {}",
                crate::runner::one_line(&output)
            )));
        }
        Ok(output)
    }

    /// `modify account <a> set GrpSubmitJobs=<v>` (0 blocks submissions, -1 clears).
    pub fn set_account_grp_submit_jobs(&self, account: &str, value: i64) -> Result<String> {
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            names::account(account)?,
            "set",
            &format!("GrpSubmitJobs={value}"),
        ]))
    }

    /// `show qos <q>`: any line at all.
    pub fn qos_exists(&self, qos: &str) -> Result<bool> {
        let output = self.sacctmgr(&argv(&["show", "qos", names::qos(qos)?]))?;
        Ok(output.lines().any(|line| line.contains('|')))
    }

    /// `add qos <name> [set flags=<f>]`, then one `modify qos <name> set <Limit>=<v>` per
    /// configured limit.
    pub fn create_qos(&self, name: &str, spec: &QosSpec) -> Result<()> {
        let name = names::qos(name)?;
        let mut args = argv(&["add", "qos", name]);
        if let Some(flags) = spec.flags.as_deref().filter(|f| !f.is_empty()) {
            args.extend(argv(&["set", &format!("flags={flags}")]));
        }
        self.sacctmgr(&args)?;
        let mut limits = Vec::new();
        if let Some(v) = spec.grp_tres.as_deref().filter(|v| !v.is_empty()) {
            limits.push(format!("GrpTRES={v}"));
        }
        if let Some(v) = spec.max_jobs {
            limits.push(format!("MaxJobs={v}"));
        }
        if let Some(v) = spec.max_submit {
            limits.push(format!("MaxSubmit={v}"));
        }
        if let Some(v) = &spec.max_wall {
            limits.push(format!("MaxWall={v}"));
        }
        if let Some(v) = spec.min_tres_per_job.as_deref().filter(|v| !v.is_empty()) {
            limits.push(format!("MinTRESPerJob={v}"));
        }
        for limit in limits {
            self.sacctmgr(&argv(&["modify", "qos", name, "set", &limit]))?;
        }
        Ok(())
    }

    /// `remove qos where name=<q>`.
    pub fn delete_qos(&self, qos: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "remove",
            "qos",
            "where",
            &format!("name={}", names::qos(qos)?),
        ]))
    }

    /// `modify account set qos+=<q> where account=<a>`.
    pub fn add_account_qos(&self, account: &str, qos: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            "set",
            &format!("qos+={}", names::qos(qos)?),
            "where",
            &format!("account={}", names::account(account)?),
        ]))
    }

    /// `modify account set defaultqos=<q> where account=<a>`.
    pub fn set_account_default_qos(&self, account: &str, qos: &str) -> Result<String> {
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            "set",
            &format!("defaultqos={}", names::qos(qos)?),
            "where",
            &format!("account={}", names::account(account)?),
        ]))
    }

    // ---------------------------------------------------------------------------------------
    // Cluster

    /// `list tres` as `type` or `type/name`.
    pub fn list_tres(&self) -> Result<Vec<String>> {
        Ok(parser::tres_list(&self.sacctmgr(&argv(&["list", "tres"]))?))
    }

    /// `list cluster format=cluster`.
    pub fn list_clusters(&self) -> Result<Vec<String>> {
        let output = self.sacctmgr(&argv(&["list", "cluster", "format=cluster"]))?;
        Ok(parser::clusters(&output))
    }

    /// `sinfo -V`, trimmed.
    pub fn get_version(&self) -> Result<String> {
        let output = self.execute(&self.commands.sinfo(&argv(&["-V"])), false)?;
        Ok(output.trim().to_string())
    }

    /// `sacctmgr --version` mentions "slurm".
    pub fn validate_slurm_binary(&self) -> bool {
        self.execute(&self.commands.sacctmgr_version(), false)
            .is_ok_and(|output| output.to_lowercase().contains("slurm"))
    }

    // ---------------------------------------------------------------------------------------
    // Periodic settings

    /// `modify account <a> set fairshare=<n>`.
    pub fn set_account_fairshare(&self, account: &str, fairshare: &str) -> Result<String> {
        let fairshare = names::fairshare(fairshare)?;
        self.sacctmgr(&argv(&[
            "modify",
            "account",
            names::account(account)?,
            "set",
            &format!("fairshare={fairshare}"),
        ]))
        .map_err(|e| {
            Error::backend(format!(
                "Failed to set fairshare for account {account}: {}",
                e.message
            ))
        })
    }

    /// `list account withassoc format=account,user,fairshare where account=<a>`: the fairshare
    /// of the account's own association (the row without a user); `None` when there is none or
    /// it is not a number. (The reference reads `list account` without WithAssoc, where real
    /// sacctmgr prints 0, so it sets the same fairshare again every time.)
    pub fn get_account_fairshare(&self, account: &str) -> Result<Option<i64>> {
        let output = self
            .own_association_columns(account, "fairshare")
            .map_err(|e| {
                Error::backend(format!(
                    "Failed to get fairshare for account {account}: {}",
                    e.message
                ))
            })?;
        Ok(output.and_then(|columns| columns.first()?.trim().parse().ok()))
    }

    /// `list account withassoc format=account,user,<columns> where account=<a>`: the columns
    /// of the account's own association (its users' rows are skipped).
    fn own_association_columns(&self, account: &str, columns: &str) -> Result<Option<Vec<String>>> {
        let output = self.sacctmgr(&argv(&[
            "list",
            "account",
            "withassoc",
            &format!("format=account,user,{columns}"),
            "where",
            &format!("account={}", names::account(account)?),
        ]))?;
        Ok(output
            .lines()
            .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>())
            .find(|parts| {
                parts.len() > 2 && parts[0].eq_ignore_ascii_case(account) && parts[1].is_empty()
            })
            .map(|parts| parts[2..].iter().map(|p| p.to_string()).collect()))
    }

    /// One `modify account <a> set <type>=<tres>=<v>` per entry.
    pub fn set_account_limits(
        &self,
        account: &str,
        limit_type: &str,
        limits: &[(String, String)],
    ) -> Result<()> {
        // Every value checked before the first command: all or none are written.
        let account = names::account(account)?;
        let limit_type = names::tres_limit_type(limit_type)?;
        for (tres, value) in limits {
            names::tres(tres)?;
            names::integer("TRES limit", value)?;
        }
        for (tres, value) in limits {
            self.sacctmgr(&argv(&[
                "modify",
                "account",
                account,
                "set",
                &format!("{limit_type}={tres}={value}"),
            ]))
            .map_err(|e| {
                Error::backend(format!(
                    "Failed to set {limit_type} limits for account {account}: {}",
                    e.message
                ))
            })?;
        }
        Ok(())
    }

    /// `list account withassoc format=account,user,grptres,grptresmin,maxtres,maxtresmin
    /// where account=<a>`: the limits of the account's own association, every type present
    /// (empty when unset). (The reference reads them without WithAssoc, always blank.)
    pub fn get_account_limits(&self, account: &str) -> Result<AccountLimits> {
        let columns = self
            .own_association_columns(account, "grptres,grptresmin,maxtres,maxtresmin")
            .map_err(|e| {
                Error::backend(format!(
                    "Failed to get limits for account {account}: {}",
                    e.message
                ))
            })?
            .unwrap_or_default();
        Ok(LIMIT_TYPES
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let text = columns.get(i).map(String::as_str).unwrap_or_default();
                let values = if text.is_empty() {
                    BTreeMap::new()
                } else {
                    parser::tres_strings(text)
                };
                (kind.to_string(), values)
            })
            .collect())
    }

    /// `show association where account=<a> format=Account,User,Partition,ParentName,QOS,
    /// GrpSubmit,GrpTRES,GrpTRESMins,MaxTRES,MaxTRESMins`: every association line of the
    /// account (its own, with no user, and one per user and partition), with the limits read
    /// by [`parser::tres_values`]. (`list account` prints no limits without WithAssoc.)
    pub fn account_association_details(&self, account: &str) -> Result<Vec<AssociationDetails>> {
        let output = self.sacctmgr(&argv(&[
            "show",
            "association",
            "where",
            &format!("account={}", names::account(account)?),
            &format!(
                "format=Account,User,Partition,ParentName,QOS,GrpSubmit,{}",
                LIMIT_TYPES.join(",")
            ),
        ]))?;
        Ok(output
            .lines()
            .filter(|line| line.contains('|'))
            .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>())
            .filter(|parts| parts[0].eq_ignore_ascii_case(account))
            .map(|parts| {
                let at = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
                AssociationDetails {
                    user: at(1),
                    partition: at(2),
                    parent: at(3),
                    qos: at(4),
                    grp_submit_jobs: at(5),
                    limits: LIMIT_TYPES
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| (kind.to_string(), parser::tres_values(&at(6 + i))))
                        .filter(|(_, values)| !values.is_empty())
                        .collect(),
                }
            })
            .collect())
    }

    /// `modify account <a> set RawUsage=0`.
    pub fn reset_raw_usage(&self, account: &str) -> Result<String> {
        let account = names::account(account)?;
        self.sacctmgr(&argv(&["modify", "account", account, "set", "RawUsage=0"]))
            .map_err(|e| {
                Error::backend(format!(
                    "Failed to reset raw usage for account {account}: {}",
                    e.message
                ))
            })
    }

    // ---------------------------------------------------------------------------------------
    // Usage and jobs

    /// `sacct ... --starttime=<month start> --endtime=<month end> --accounts=a,b
    /// --format=Account,ReqTRES,Elapsed,User`: the allocation lines of the accounts.
    pub fn usage_lines(&self, accounts: &[String], period: Period) -> Result<Vec<ReportLine>> {
        let output = self.sacct(&[
            "--noconvert".into(),
            "--truncate".into(),
            "--allocations".into(),
            "--allusers".into(),
            format!("--starttime={}", period.start()),
            format!("--endtime={}", period.end()),
            format!("--accounts={}", names::list(NameKind::Account, accounts)?),
            "--format=Account,ReqTRES,Elapsed,User".into(),
        ])?;
        Ok(parser::report_lines(&output))
    }

    /// The TRES whose usage is read (component types and mapping targets).
    pub fn reported_tres(&self) -> &BTreeSet<String> {
        &self.reported
    }

    /// `sacct -a --account=<a> --user=<u> --format=JobID,...`: the job ids (sacct's default
    /// window, so recent finished jobs too).
    pub fn list_active_user_jobs(&self, account: &str, user: &str) -> Result<Vec<String>> {
        let output = self.sacct(&[
            "-a".into(),
            format!("--account={}", names::account(account)?),
            format!("--user={}", names::user(user)?),
            "--format=JobID,JobName,Partition,Account,User,State,Elapsed,Timelimit,NodeList".into(),
        ])?;
        Ok(output
            .lines()
            .filter(|line| line.contains('|'))
            .map(|line| line.split('|').next().unwrap_or("").to_string())
            .collect())
    }

    /// `scancel [-u <u>] -A <a> -f`.
    pub fn cancel_active_user_jobs(&self, account: &str, user: Option<&str>) -> Result<String> {
        let mut args = Vec::new();
        if let Some(user) = user {
            args.extend(argv(&["-u", names::user(user)?]));
        }
        args.extend(argv(&["-A", names::account(account)?, "-f"]));
        self.execute(&self.commands.scancel(&args), false)
    }

    /// `id -u <u>`: true when it prints a number; false when `id` says "no such user"; any
    /// other failure is an error. (The reference crashes with UnboundLocalError there.)
    pub fn check_user_exists(&self, username: &str) -> Result<bool> {
        let username = names::user(username)?;
        match self.run(&argv(&["id", "-u", username]), true) {
            Ok(output) => {
                let output = output.trim();
                Ok(!output.is_empty() && output.bytes().all(|b| b.is_ascii_digit()))
            }
            Err(e) if e.output().contains("no such user") => Ok(false),
            Err(e) => Err(Error::backend(format!(
                "cannot tell whether user {username} exists: {e}"
            ))),
        }
    }

    /// `/sbin/mkhomedir_helper <u> <umask>`.
    pub fn create_linux_user_homedir(&self, username: &str, umask: &str) -> Result<String> {
        let username = names::user(username)?;
        let umask = names::umask(umask)?;
        self.execute(&argv(&["/sbin/mkhomedir_helper", username, umask]), false)
    }
}
