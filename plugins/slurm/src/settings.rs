//! The `backend_settings` of the SLURM backend: declared once as [`SETTINGS`] (validation and
//! `waldur-agent plugins inspect`) and parsed into [`SlurmSettings`] at construction. Defaults
//! are the reference's. A value the plugin cannot work with is INVALID_SETTINGS with a one-line
//! message naming the key; so is configuration for what this plugin deliberately does not do
//! (the REST execution mode, LDAP, the periodic-limits emulator).

use std::time::Duration;

use serde_json::Value;
use waldur_plugin_abi::sdk::settings::string_list;
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::{Error, Result, SettingKind, SettingSpec};

use crate::client::QosSpec;

/// The default of the new `command_timeout` setting.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Every setting the SLURM backend reads.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec::optional(
        "default_account",
        SettingKind::String,
        "DefaultAccount= of new user associations (policy common); also checked by diagnostics",
    )
    .default_json("\"root\""),
    SettingSpec::optional(
        "default_account_policy",
        SettingKind::String,
        "DefaultAccount= of new associations: common (default_account), individual (the \
         resource's account) or none (omitted)",
    )
    .default_json("\"common\""),
    SettingSpec::optional(
        "root_account",
        SettingKind::String,
        "Parent of customer accounts; defaults to default_account, then root",
    ),
    SettingSpec::optional(
        "customer_prefix",
        SettingKind::String,
        "Prefix of customer account names",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "project_prefix",
        SettingKind::String,
        "Prefix of project account names",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "allocation_prefix",
        SettingKind::String,
        "Prefix of allocation account names (prefix + slug, lower-cased)",
    )
    .default_json("\"\""),
    SettingSpec::optional(
        "parent_account",
        SettingKind::String,
        "Flat hierarchy: project accounts directly under this account, no customer accounts",
    ),
    SettingSpec::optional(
        "cluster_name",
        SettingKind::String,
        "Scope sacctmgr, sacct and scancel to this cluster (cluster=/--cluster=)",
    ),
    SettingSpec::optional(
        "slurm_bin_path",
        SettingKind::String,
        "Directory of sacctmgr, sacct, scancel and sinfo",
    )
    .default_json("\"/usr/bin\""),
    SettingSpec::optional(
        "execution_mode",
        SettingKind::String,
        "Only cli (the SLURM commands); rest (slurmrestd) is refused",
    )
    .default_json("\"cli\""),
    SettingSpec::optional(
        "rest_api",
        SettingKind::Object,
        "slurmrestd settings of the rest mode; ignored (rest is not supported)",
    ),
    SettingSpec::optional(
        "command_timeout",
        SettingKind::Number,
        "Seconds a SLURM, id or mkhomedir_helper command may run before it is killed",
    )
    .default_json("120"),
    SettingSpec::optional(
        "qos_default",
        SettingKind::String,
        "QoS restore_resource sets",
    )
    .default_json("\"normal\""),
    SettingSpec::optional(
        "qos_downscaled",
        SettingKind::String,
        "QoS downscale_resource sets (unset: downscaling fails)",
    ),
    SettingSpec::optional(
        "qos_paused",
        SettingKind::String,
        "QoS pause_resource sets (unset: pausing fails)",
    ),
    SettingSpec::optional(
        "qos_enforcement_enabled",
        SettingKind::Boolean,
        "Opt-in to QoS enforcement: order QoS granted on associations, pause by GrpSubmitJobs=0",
    )
    .default_json("false"),
    SettingSpec::optional(
        "enforce_offering_qos",
        SettingKind::Boolean,
        "With qos_enforcement_enabled: force enforcement on (true) or off (false); unset \
         follows the offering's plugin_options.enforce_qos",
    ),
    SettingSpec::optional(
        "default_partition",
        SettingKind::String,
        "Partition= of new associations when no offering partition applies",
    ),
    SettingSpec::optional(
        "enforce_offering_partitions",
        SettingKind::Boolean,
        "Restrict new associations to the Waldur offering's partitions",
    )
    .default_json("false"),
    SettingSpec::optional(
        "qos_management",
        SettingKind::Object,
        "Per-account QoS: {enabled, flags, grp_tres, max_jobs, max_submit, max_wall, \
         min_tres_per_job, additional_qos}",
    ),
    SettingSpec::optional(
        "project_directory",
        SettingKind::Object,
        "Per-allocation directory: {enabled, base_path, owner, group_owner_source, \
         group_name, permissions, set_gid, set_acl}",
    ),
    SettingSpec::optional(
        "ldap",
        SettingKind::Any,
        "Refused: this plugin has no LDAP client",
    ),
    SettingSpec::optional(
        "periodic_limits",
        SettingKind::Object,
        "{enabled, limit_type}: apply periodic usage-policy settings (emulator_mode refused)",
    ),
    SettingSpec::optional(
        "enable_user_homedir_account_creation",
        SettingKind::Boolean,
        "Create home directories (mkhomedir_helper) of added and existing users",
    )
    .default_json("true"),
    SettingSpec::optional(
        "default_homedir_umask",
        SettingKind::String,
        "Umask passed to mkhomedir_helper (octal, at most 0777)",
    )
    .default_json("\"0077\""),
    SettingSpec::optional(
        "homedir_base_path",
        SettingKind::String,
        "Home directories are <base>/<user>: existing ones are skipped, quotas apply there",
    ),
    SettingSpec::optional(
        "homedir_quota",
        SettingKind::Object,
        "Home directory quota: {provider: ceph_xattr|xfs|lustre, max_bytes, max_files, \
         mount_point, block_softlimit, block_hardlimit, inode_softlimit, inode_hardlimit}",
    ),
    SettingSpec::optional(
        "soft_delete",
        SettingKind::Boolean,
        "Terminate by zeroing the account's limits instead of removing it (agent default)",
    )
    .default_json("false"),
];

/// `default_account_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountPolicy {
    /// `DefaultAccount=<default_account>`.
    Common,
    /// `DefaultAccount=<the resource's account>`.
    Individual,
    /// No `DefaultAccount=`.
    None,
}

/// `qos_management` when enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QosManagement {
    pub spec: QosSpec,
    pub additional_qos: Vec<String>,
}

/// `project_directory` when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDirectory {
    pub base_path: String,
    /// `project_id` (the group is the allocation account) or anything else (`group_name`).
    pub group_owner_source: String,
    pub group_name: Option<String>,
    pub owner: String,
    pub permissions: String,
    pub set_gid: bool,
    pub set_acl: bool,
}

/// The limit types periodic settings may set.
pub const PERIODIC_LIMIT_TYPES: [&str; 3] = ["GrpTRESMins", "MaxTRESMins", "GrpTRES"];

/// `periodic_limits`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicLimits {
    pub enabled: bool,
    /// Used when a message has no `limit_type`.
    pub limit_type: String,
}

/// The parsed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSettings {
    pub default_account: String,
    pub default_account_policy: AccountPolicy,
    pub root_account: String,
    pub customer_prefix: String,
    pub project_prefix: String,
    pub allocation_prefix: String,
    pub parent_account: Option<String>,
    pub cluster_name: Option<String>,
    pub slurm_bin_path: String,
    pub command_timeout: Duration,
    pub qos_default: String,
    pub qos_downscaled: Option<String>,
    pub qos_paused: Option<String>,
    pub qos_enforcement_enabled: bool,
    pub enforce_offering_qos: Option<bool>,
    pub default_partition: Option<String>,
    pub enforce_offering_partitions: bool,
    pub qos_management: Option<QosManagement>,
    pub project_directory: Option<ProjectDirectory>,
    pub periodic_limits: PeriodicLimits,
    pub enable_user_homedir_account_creation: bool,
    pub default_homedir_umask: String,
    pub homedir_base_path: Option<String>,
    pub homedir_quota: Option<HomedirQuota>,
    /// Read by the agent's delete; the plugin keeps the account's QoS then.
    pub soft_delete: bool,
}

pub(crate) fn invalid(message: impl std::fmt::Display) -> Error {
    Error::invalid_settings(message.to_string())
}

/// A string setting: `None` when absent, null or empty (Python falsiness).
pub(crate) fn opt_string(map: &JsonMap, key: &str, context: &str) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "{context}.{key} must be a string, got {other}"
        ))),
    }
}

fn string(map: &JsonMap, key: &str, default: &str) -> Result<String> {
    Ok(opt_string(map, key, "backend_settings")?.unwrap_or_else(|| default.to_string()))
}

pub(crate) fn opt_bool(map: &JsonMap, key: &str, context: &str) -> Result<Option<bool>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(format!(
            "{context}.{key} must be a boolean, got {other}"
        ))),
    }
}

fn object<'a>(map: &'a JsonMap, key: &str) -> Result<Option<&'a JsonMap>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(invalid(format!(
            "backend_settings.{key} must be an object, got {other}"
        ))),
    }
}

pub(crate) use waldur_plugin_abi::sdk::settings::truthy;

/// A string or an integer, as text (`max_wall: 120` and `max_wall: "2:00:00"`).
pub(crate) fn text_or_number(map: &JsonMap, key: &str, context: &str) -> Result<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(other) => Err(invalid(format!(
            "{context}.{key} must be a string or an integer, got {other}"
        ))),
    }
}

pub(crate) fn opt_int(map: &JsonMap, key: &str, context: &str) -> Result<Option<i64>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{context}.{key} must be an integer, got {value}"))),
    }
}

/// `0077`, `077`, `0o077`: octal, at most 0777.
fn check_umask(umask: &str) -> Result<()> {
    crate::names::umask(umask).map(drop).map_err(|_| {
        invalid(format!(
            "backend_settings.default_homedir_umask must be octal permissions of at most 0777 \
             (e.g. \"0077\"), got {umask:?}"
        ))
    })
}

fn command_timeout(settings: &JsonMap) -> Result<Duration> {
    match settings.get("command_timeout") {
        None | Some(Value::Null) => Ok(DEFAULT_COMMAND_TIMEOUT),
        Some(value) => value
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "backend_settings.command_timeout must be a positive number of seconds, got {value}"
                ))
            }),
    }
}

fn qos_management(settings: &JsonMap) -> Result<Option<QosManagement>> {
    let Some(map) = object(settings, "qos_management")? else {
        return Ok(None);
    };
    let context = "backend_settings.qos_management";
    if !opt_bool(map, "enabled", context)?.unwrap_or(false) {
        return Ok(None);
    }
    // `flags` defaults to DenyOnLimit,NoDecay; an explicit null means no flags.
    let flags = match map.get("flags") {
        None => Some("DenyOnLimit,NoDecay".to_string()),
        Some(_) => opt_string(map, "flags", context)?,
    };
    let additional_qos = string_list(
        map.get("additional_qos"),
        &format!("{context}.additional_qos"),
    )
    .map_err(invalid)?
    .into_iter()
    .map(|name| {
        crate::names::qos(&name)
            .map(str::to_string)
            .map_err(|e| invalid(format!("{context}.additional_qos: {}", e.message)))
    })
    .collect::<Result<_>>()?;
    Ok(Some(QosManagement {
        spec: QosSpec {
            flags,
            grp_tres: opt_string(map, "grp_tres", context)?,
            max_jobs: opt_int(map, "max_jobs", context)?,
            max_submit: opt_int(map, "max_submit", context)?,
            max_wall: text_or_number(map, "max_wall", context)?,
            min_tres_per_job: opt_string(map, "min_tres_per_job", context)?,
        },
        additional_qos,
    }))
}

fn project_directory(settings: &JsonMap) -> Result<Option<ProjectDirectory>> {
    let Some(map) = object(settings, "project_directory")? else {
        return Ok(None);
    };
    let context = "backend_settings.project_directory";
    if !opt_bool(map, "enabled", context)?.unwrap_or(false) {
        return Ok(None);
    }
    if truthy(map.get("lustre_quota")) {
        return Err(invalid(format!(
            "{context}.lustre_quota needs the project group's id from LDAP, and this plugin has \
             no LDAP client; remove lustre_quota"
        )));
    }
    let text = |key: &str, default: &str| -> Result<String> {
        Ok(opt_string(map, key, context)?.unwrap_or_else(|| default.to_string()))
    };
    Ok(Some(ProjectDirectory {
        base_path: text("base_path", "/valhalla/projects")?,
        group_owner_source: text("group_owner_source", "project_id")?,
        group_name: opt_string(map, "group_name", context)?,
        owner: text("owner", "nobody")?,
        permissions: text_or_number(map, "permissions", context)?
            .unwrap_or_else(|| "770".to_string()),
        set_gid: opt_bool(map, "set_gid", context)?.unwrap_or(true),
        set_acl: opt_bool(map, "set_acl", context)?.unwrap_or(true),
    }))
}

fn periodic_limits(settings: &JsonMap) -> Result<PeriodicLimits> {
    let context = "backend_settings.periodic_limits";
    let Some(map) = object(settings, "periodic_limits")? else {
        return Ok(PeriodicLimits {
            enabled: false,
            limit_type: "GrpTRESMins".into(),
        });
    };
    let enabled = opt_bool(map, "enabled", context)?.unwrap_or(false);
    if enabled && opt_bool(map, "emulator_mode", context)?.unwrap_or(false) {
        return Err(invalid(format!(
            "{context}.emulator_mode posts to the SLURM emulator's HTTP API, and this plugin has \
             no HTTP client; remove emulator_mode (production mode runs sacctmgr)"
        )));
    }
    let limit_type =
        opt_string(map, "limit_type", context)?.unwrap_or_else(|| "GrpTRESMins".into());
    if !PERIODIC_LIMIT_TYPES.contains(&limit_type.as_str()) {
        return Err(invalid(format!(
            "{context}.limit_type must be one of {}, got {limit_type:?}",
            PERIODIC_LIMIT_TYPES.join(", ")
        )));
    }
    Ok(PeriodicLimits {
        enabled,
        limit_type,
    })
}

impl SlurmSettings {
    /// Parses and checks `backend_settings`.
    pub fn parse(settings: &JsonMap) -> Result<Self> {
        match opt_string(settings, "execution_mode", "backend_settings")?.as_deref() {
            None | Some("cli") => {}
            Some("rest") => {
                return Err(invalid(
                    "execution_mode 'rest' is not supported by this plugin; use 'cli'",
                ))
            }
            Some(other) => {
                return Err(invalid(format!(
                    "backend_settings.execution_mode must be 'cli', got {other:?}"
                )))
            }
        }
        if truthy(settings.get("ldap")) {
            return Err(invalid(
                "backend_settings.ldap is configured, but this plugin has no LDAP client (project \
                 groups and their Lustre quotas are not supported); remove the ldap section",
            ));
        }
        let policy =
            match opt_string(settings, "default_account_policy", "backend_settings")?.as_deref() {
                None | Some("common") => AccountPolicy::Common,
                Some("individual") => AccountPolicy::Individual,
                Some("none") => AccountPolicy::None,
                Some(other) => {
                    return Err(invalid(format!(
                    "backend_settings.default_account_policy must be one of common, individual, \
                     none; got {other:?}"
                )))
                }
            };
        let default_account = string(settings, "default_account", "root")?;
        let root_account = opt_string(settings, "root_account", "backend_settings")?
            .unwrap_or_else(|| default_account.clone());
        let umask = string(settings, "default_homedir_umask", "0077")?;
        check_umask(&umask)?;

        let parsed = Self {
            default_account_policy: policy,
            root_account,
            customer_prefix: string(settings, "customer_prefix", "")?,
            project_prefix: string(settings, "project_prefix", "")?,
            allocation_prefix: string(settings, "allocation_prefix", "")?,
            parent_account: opt_string(settings, "parent_account", "backend_settings")?,
            cluster_name: opt_string(settings, "cluster_name", "backend_settings")?,
            slurm_bin_path: match settings.get("slurm_bin_path") {
                None => "/usr/bin".to_string(),
                // An explicit empty (or null) path means "find the commands on PATH".
                Some(Value::Null) => String::new(),
                Some(Value::String(path)) => path.clone(),
                Some(other) => {
                    return Err(invalid(format!(
                        "backend_settings.slurm_bin_path must be a string, got {other}"
                    )))
                }
            },
            command_timeout: command_timeout(settings)?,
            qos_default: string(settings, "qos_default", "normal")?,
            qos_downscaled: opt_string(settings, "qos_downscaled", "backend_settings")?,
            qos_paused: opt_string(settings, "qos_paused", "backend_settings")?,
            qos_enforcement_enabled: opt_bool(
                settings,
                "qos_enforcement_enabled",
                "backend_settings",
            )?
            .unwrap_or(false),
            enforce_offering_qos: opt_bool(settings, "enforce_offering_qos", "backend_settings")?,
            default_partition: opt_string(settings, "default_partition", "backend_settings")?,
            enforce_offering_partitions: opt_bool(
                settings,
                "enforce_offering_partitions",
                "backend_settings",
            )?
            .unwrap_or(false),
            qos_management: qos_management(settings)?,
            project_directory: project_directory(settings)?,
            periodic_limits: periodic_limits(settings)?,
            enable_user_homedir_account_creation: opt_bool(
                settings,
                "enable_user_homedir_account_creation",
                "backend_settings",
            )?
            .unwrap_or(true),
            default_homedir_umask: umask,
            homedir_base_path: opt_string(settings, "homedir_base_path", "backend_settings")?,
            homedir_quota: HomedirQuota::parse(settings.get("homedir_quota"))?,
            soft_delete: opt_bool(settings, "soft_delete", "backend_settings")?.unwrap_or(false),
            default_account,
        };
        parsed.check_names()?;
        let forced = parsed.qos_enforcement_enabled && parsed.enforce_offering_qos == Some(true);
        if forced && (parsed.qos_paused.is_some() || parsed.qos_downscaled.is_some()) {
            return Err(invalid(
                "qos_enforcement_enabled and enforce_offering_qos are both true, so pausing uses \
                 GrpSubmitJobs and never a QoS swap; remove qos_paused/qos_downscaled or unset \
                 enforce_offering_qos",
            ));
        }
        Ok(parsed)
    }

    /// The names the settings put into commands pass the same rules as names from Waldur
    /// ([`crate::names`]), so a typo fails at load time with the key instead of every order.
    fn check_names(&self) -> Result<()> {
        let named = |key: &str, checked: Result<&str>| {
            checked
                .map(drop)
                .map_err(|e| invalid(format!("backend_settings.{key}: {}", e.message)))
        };
        named(
            "default_account",
            crate::names::account(&self.default_account),
        )?;
        named("root_account", crate::names::account(&self.root_account))?;
        if let Some(parent) = &self.parent_account {
            named("parent_account", crate::names::account(parent))?;
        }
        // A prefix may be empty; otherwise it must itself be a valid account name, so that
        // prefix + slug can be.
        for (key, prefix) in [
            ("customer_prefix", &self.customer_prefix),
            ("project_prefix", &self.project_prefix),
            ("allocation_prefix", &self.allocation_prefix),
        ] {
            if !prefix.is_empty() {
                named(key, crate::names::account(prefix))?;
            }
        }
        named("qos_default", crate::names::qos(&self.qos_default))?;
        for (key, qos) in [
            ("qos_paused", &self.qos_paused),
            ("qos_downscaled", &self.qos_downscaled),
        ] {
            if let Some(qos) = qos {
                named(key, crate::names::qos(qos))?;
            }
        }
        if let Some(partition) = &self.default_partition {
            named("default_partition", crate::names::partition(partition))?;
        }
        Ok(())
    }

    /// Warnings about settings that work but may not be what the site wants.
    pub fn warnings(settings: &JsonMap) -> Vec<String> {
        let mut warnings = Vec::new();
        if opt_string(settings, "default_account", "backend_settings")
            .ok()
            .flatten()
            .is_none()
        {
            warnings.push(
                "backend_settings.default_account is not set; \"root\" is used (the reference \
                 requires it)"
                    .to_string(),
            );
        }
        if truthy(settings.get("rest_api")) {
            warnings.push(
                "backend_settings.rest_api is ignored: this plugin runs the SLURM commands (cli)"
                    .to_string(),
            );
        }
        warnings
    }
}

/// Where a quota is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaProvider {
    /// `setfattr -n ceph.quota.max_{bytes,files}` on the home directory.
    CephXattr,
    /// `xfs_quota -x -c "limit -u ..."` on the mount point.
    Xfs,
    /// `lfs setquota -u ...` on the mount point.
    Lustre,
}

/// `homedir_quota`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomedirQuota {
    pub provider: QuotaProvider,
    pub max_bytes: Option<String>,
    pub max_files: Option<i64>,
    pub mount_point: Option<String>,
    pub block_softlimit: Option<String>,
    pub block_hardlimit: Option<String>,
    pub inode_softlimit: Option<i64>,
    pub inode_hardlimit: Option<i64>,
}

const QUOTA_KEYS: [&str; 8] = [
    "provider",
    "max_bytes",
    "max_files",
    "mount_point",
    "block_softlimit",
    "block_hardlimit",
    "inode_softlimit",
    "inode_hardlimit",
];

impl HomedirQuota {
    /// Parses `homedir_quota` (absent, null or `{}`: no quota). Unknown keys, an unknown
    /// provider, a missing `mount_point` (xfs, lustre) or no limit at all are INVALID_SETTINGS
    /// (the reference only logs them, and then sets no quota).
    pub fn parse(value: Option<&Value>) -> Result<Option<Self>> {
        let context = "backend_settings.homedir_quota";
        let map: &JsonMap = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) if map.is_empty() => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(invalid(format!("{context} must be an object, got {other}")))
            }
        };
        if let Some(key) = map.keys().find(|k| !QUOTA_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{context}.{key} is not a quota setting (known: {})",
                QUOTA_KEYS.join(", ")
            )));
        }
        let provider = match opt_string(map, "provider", context)?.as_deref() {
            Some("ceph_xattr") => QuotaProvider::CephXattr,
            Some("xfs") => QuotaProvider::Xfs,
            Some("lustre") => QuotaProvider::Lustre,
            Some(other) => {
                return Err(invalid(format!(
                    "{context}.provider must be one of ceph_xattr, xfs, lustre; got {other:?}"
                )))
            }
            None => {
                return Err(invalid(format!(
                    "{context}.provider is required (ceph_xattr, xfs or lustre)"
                )))
            }
        };
        let quota = Self {
            provider,
            max_bytes: text_or_number(map, "max_bytes", context)?,
            max_files: opt_int(map, "max_files", context)?,
            mount_point: opt_string(map, "mount_point", context)?,
            block_softlimit: text_or_number(map, "block_softlimit", context)?,
            block_hardlimit: text_or_number(map, "block_hardlimit", context)?,
            inode_softlimit: opt_int(map, "inode_softlimit", context)?,
            inode_hardlimit: opt_int(map, "inode_hardlimit", context)?,
        };
        let name = match provider {
            QuotaProvider::CephXattr => "ceph_xattr",
            QuotaProvider::Xfs => "xfs",
            QuotaProvider::Lustre => "lustre",
        };
        match provider {
            QuotaProvider::CephXattr => {
                if quota.max_bytes.is_none() && quota.max_files.is_none() {
                    return Err(invalid(format!(
                        "{context}: provider ceph_xattr needs max_bytes or max_files"
                    )));
                }
            }
            QuotaProvider::Xfs | QuotaProvider::Lustre => {
                if quota.mount_point.is_none() {
                    return Err(invalid(format!(
                        "{context}.mount_point is required by provider {name}"
                    )));
                }
                if quota.block_softlimit.is_none()
                    && quota.block_hardlimit.is_none()
                    && quota.inode_softlimit.is_none()
                    && quota.inode_hardlimit.is_none()
                {
                    return Err(invalid(format!(
                        "{context}: provider {name} needs at least one of block_softlimit, \
                         block_hardlimit, inode_softlimit, inode_hardlimit"
                    )));
                }
            }
        }
        Ok(Some(quota))
    }
}

#[cfg(test)]
mod tests {
    fn parse_quota(value: Value) -> Result<Option<HomedirQuota>> {
        HomedirQuota::parse(Some(&value))
    }

    #[test]
    fn no_quota() {
        assert_eq!(HomedirQuota::parse(None).unwrap(), None);
        assert_eq!(parse_quota(json!({})).unwrap(), None);
        assert_eq!(parse_quota(Value::Null).unwrap(), None);
    }

    #[test]
    fn valid_quotas() {
        let q = parse_quota(json!({"provider": "ceph_xattr", "max_bytes": "1T"}))
            .unwrap()
            .unwrap();
        assert_eq!(q.provider, QuotaProvider::CephXattr);
        assert_eq!(q.max_bytes.as_deref(), Some("1T"));
        let q =
            parse_quota(json!({"provider": "xfs", "mount_point": "/home", "block_hardlimit": 900}))
                .unwrap()
                .unwrap();
        assert_eq!(q.block_hardlimit.as_deref(), Some("900"));
        assert!(parse_quota(
            json!({"provider": "lustre", "mount_point": "/lu", "inode_softlimit": 5})
        )
        .is_ok());
    }

    #[test]
    fn misconfigured_quotas_are_invalid_settings() {
        for (bad, needle) in [
            (json!({"provider": "zfs"}), "provider"),
            (json!({"max_bytes": "1T"}), "provider is required"),
            (
                json!({"provider": "xfs", "block_softlimit": "1g"}),
                "mount_point",
            ),
            (
                json!({"provider": "lustre", "mount_point": "/lu"}),
                "at least one",
            ),
            (json!({"provider": "ceph_xattr"}), "max_bytes or max_files"),
            (
                json!({"provider": "ceph_xattr", "max_bytes": "1T", "maxbytes": 1}),
                "maxbytes",
            ),
            (
                json!({"provider": "ceph_xattr", "max_files": "many"}),
                "max_files",
            ),
            (json!("ceph"), "object"),
        ] {
            let err = parse_quota(bad.clone()).unwrap_err();
            assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::INVALID_SETTINGS);
            assert!(err.message.contains("homedir_quota"), "{}", err.message);
            assert!(err.message.contains(needle), "{bad}: {}", err.message);
        }
    }

    use super::*;
    use serde_json::json;
    use waldur_plugin_abi::ErrorKind;

    fn map(value: Value) -> JsonMap {
        value.as_object().cloned().unwrap()
    }

    fn parse(value: Value) -> Result<SlurmSettings> {
        SlurmSettings::parse(&map(value))
    }

    fn error(value: Value) -> String {
        let err = parse(value).unwrap_err();
        assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS);
        assert!(!err.message.contains('\n'), "{}", err.message);
        err.message
    }

    #[test]
    fn defaults_are_the_references() {
        let s = parse(json!({})).unwrap();
        assert_eq!(s.default_account, "root");
        assert_eq!(s.root_account, "root");
        assert_eq!(s.default_account_policy, AccountPolicy::Common);
        assert_eq!(s.slurm_bin_path, "/usr/bin");
        assert_eq!(s.cluster_name, None);
        assert_eq!(s.qos_default, "normal");
        assert_eq!(
            (s.qos_paused.as_deref(), s.qos_downscaled.as_deref()),
            (None, None)
        );
        assert!(!s.qos_enforcement_enabled);
        assert_eq!(s.enforce_offering_qos, None);
        assert!(!s.enforce_offering_partitions);
        assert!(s.enable_user_homedir_account_creation);
        assert_eq!(s.default_homedir_umask, "0077");
        assert_eq!(s.command_timeout, Duration::from_secs(120));
        assert_eq!(s.qos_management, None);
        assert_eq!(s.project_directory, None);
        assert!(!s.periodic_limits.enabled);
        assert_eq!(s.periodic_limits.limit_type, "GrpTRESMins");
        assert_eq!(s.homedir_quota, None);
    }

    #[test]
    fn root_account_falls_back_to_default_account() {
        let s = parse(json!({"default_account": "acct"})).unwrap();
        assert_eq!(s.root_account, "acct");
        let s = parse(json!({"default_account": "acct", "root_account": "top"})).unwrap();
        assert_eq!(s.root_account, "top");
        let s = parse(json!({"default_account": "", "root_account": ""})).unwrap();
        assert_eq!(s.root_account, "root");
    }

    #[test]
    fn rest_mode_is_refused() {
        assert_eq!(
            error(json!({"execution_mode": "rest", "rest_api": {"url": "http://x"}})),
            "execution_mode 'rest' is not supported by this plugin; use 'cli'"
        );
        assert!(error(json!({"execution_mode": "rset"})).contains("execution_mode"));
        assert!(parse(json!({"execution_mode": "cli"})).is_ok());
    }

    #[test]
    fn ldap_is_refused() {
        let message = error(json!({"ldap": {"uri": "ldap://x"}}));
        assert!(
            message.contains("ldap") && message.contains("no LDAP client"),
            "{message}"
        );
        assert!(parse(json!({"ldap": {}})).is_ok());
        assert!(parse(json!({"ldap": null})).is_ok());
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (settings, key) in [
            (
                json!({"default_account_policy": "personal"}),
                "default_account_policy",
            ),
            (json!({"command_timeout": 0}), "command_timeout"),
            (json!({"command_timeout": "60"}), "command_timeout"),
            (
                json!({"default_homedir_umask": "0999"}),
                "default_homedir_umask",
            ),
            (
                json!({"default_homedir_umask": "1777"}),
                "default_homedir_umask",
            ),
            (json!({"cluster_name": 5}), "cluster_name"),
            (
                json!({"qos_enforcement_enabled": "yes"}),
                "qos_enforcement_enabled",
            ),
            (
                json!({"qos_management": {"enabled": true, "max_jobs": "four"}}),
                "max_jobs",
            ),
            (
                json!({"qos_management": {"enabled": true, "additional_qos": ["a b"]}}),
                "additional_qos",
            ),
            (json!({"qos_management": []}), "qos_management"),
            (
                json!({"periodic_limits": {"enabled": true, "limit_type": "GrpJobs"}}),
                "limit_type",
            ),
            (json!({"default_partition": "a,b"}), "default_partition"),
            // Names the settings put into commands pass the rules of names from Waldur.
            (
                json!({"customer_prefix": "hpc,"}),
                "customer_prefix: invalid",
            ),
            (json!({"project_prefix": "-p"}), "project_prefix: invalid"),
            (
                json!({"allocation_prefix": "a b"}),
                "allocation_prefix: invalid",
            ),
            (
                json!({"default_account": "root,x"}),
                "default_account: invalid",
            ),
            (json!({"root_account": "../r"}), "root_account: invalid"),
            (json!({"parent_account": "a|b"}), "parent_account: invalid"),
            (json!({"qos_default": "nor mal"}), "qos_default: invalid"),
            (json!({"qos_paused": "p=1"}), "qos_paused: invalid"),
            (json!({"qos_downscaled": "ünï"}), "qos_downscaled: invalid"),
            (
                json!({"homedir_quota": {"provider": "zfs"}}),
                "homedir_quota",
            ),
        ] {
            let message = error(settings.clone());
            assert!(message.contains(key), "{settings}: {message}");
        }
    }

    #[test]
    fn fractional_timeouts_are_accepted() {
        let s = parse(json!({"command_timeout": 0.5})).unwrap();
        assert_eq!(s.command_timeout, Duration::from_millis(500));
    }

    #[test]
    fn the_emulator_is_refused_when_periodic_limits_are_enabled() {
        let message = error(json!({"periodic_limits": {"enabled": true, "emulator_mode": true}}));
        assert!(
            message.contains("emulator_mode") && message.contains("HTTP"),
            "{message}"
        );
        let s =
            parse(json!({"periodic_limits": {"enabled": false, "emulator_mode": true}})).unwrap();
        assert!(!s.periodic_limits.enabled);
        let s = parse(json!({"periodic_limits": {"enabled": true, "limit_type": "MaxTRESMins"}}))
            .unwrap();
        assert!(s.periodic_limits.enabled);
        assert_eq!(s.periodic_limits.limit_type, "MaxTRESMins");
    }

    #[test]
    fn forced_enforcement_conflicts_with_the_qos_swap() {
        let message = error(json!({
            "qos_enforcement_enabled": true, "enforce_offering_qos": true, "qos_paused": "paused"
        }));
        assert!(message.contains("qos_paused"), "{message}");
        assert!(parse(json!({
            "qos_enforcement_enabled": true, "qos_paused": "paused"
        }))
        .is_ok());
    }

    #[test]
    fn qos_management_defaults() {
        let s = parse(json!({"qos_management": {"enabled": true, "max_wall": 120, "max_jobs": 4}}))
            .unwrap();
        let q = s.qos_management.unwrap();
        assert_eq!(q.spec.flags.as_deref(), Some("DenyOnLimit,NoDecay"));
        assert_eq!(q.spec.max_wall.as_deref(), Some("120"));
        assert_eq!(q.spec.max_jobs, Some(4));
        assert!(q.additional_qos.is_empty());
        let s = parse(json!({"qos_management": {"enabled": true, "flags": null}})).unwrap();
        assert_eq!(s.qos_management.unwrap().spec.flags, None);
        assert!(
            parse(json!({"qos_management": {"enabled": false, "max_jobs": 4}}))
                .unwrap()
                .qos_management
                .is_none()
        );
    }

    #[test]
    fn project_directory_defaults_and_lustre_refusal() {
        let s = parse(json!({"project_directory": {"enabled": true}})).unwrap();
        let d = s.project_directory.unwrap();
        assert_eq!(d.base_path, "/valhalla/projects");
        assert_eq!(d.owner, "nobody");
        assert_eq!(d.permissions, "770");
        assert!(d.set_gid && d.set_acl);
        let message = error(
            json!({"project_directory": {"enabled": true, "lustre_quota": {"mount_point": "/v"}}}),
        );
        assert!(message.contains("lustre_quota"), "{message}");
    }

    #[test]
    fn warnings_for_a_missing_default_account_and_rest_settings() {
        let warnings = SlurmSettings::warnings(&map(json!({"rest_api": {"url": "x"}})));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(SlurmSettings::warnings(&map(json!({"default_account": "root"}))).is_empty());
    }

    #[test]
    fn declared_settings_validate_through_the_sdk() {
        let warnings = waldur_plugin_abi::sdk::validate_settings(
            SETTINGS,
            &map(
                json!({"default_account": "root", "check_backend_id_uniqueness": true, "bogus": 1}),
            ),
        )
        .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(waldur_plugin_abi::sdk::validate_settings(
            SETTINGS,
            &map(json!({"soft_delete": "x"}))
        )
        .is_err());
    }
}
