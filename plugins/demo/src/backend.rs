//! BaseBackend: the hooks and queries the agent cannot derive from the client, and a batched
//! `pull_resources`. Everything not written here (create, delete, users, set limits, single
//! pulls) is the agent's generic algorithm running on `client.rs`.

use std::collections::BTreeMap;

use waldur_plugin_abi::wire::{
    BackendLimits, BackendResourceInfo, CapabilitySet, CollectedLimits, JsonMap, Order,
    PendingOrderDecision, ResourceKey, RuntimeContext, UsageReport, UserContext, UserOptions,
    WaldurResource,
};
use waldur_plugin_abi::{
    backend_impl, Backend, BackendContext, Capabilities, Client, Error, Result, SettingSpec,
};

use crate::demo::Demo;
use crate::state::Qos;
use crate::usage::{parse_timezone, Period};
use crate::{hierarchy, keys, limits, settings};

impl Demo {
    fn set_qos(&self, method: &str, resource_id: &str, qos: Qos) -> Result<bool> {
        self.fail_point(method)?;
        let changed = self.store.update(|s| s.set_qos(resource_id, qos))?;
        if changed {
            log::info!("demo: account {resource_id} qos set to {}", qos.as_str());
        }
        Ok(changed)
    }

    /// The health report `diagnostics` logs; an error when the state cannot be read.
    fn health_report(&self) -> Result<Vec<String>> {
        let (accounts, associations, homedirs) = self.store.read(|s| {
            let associations = s.accounts.values().map(|a| a.users.len()).sum::<usize>();
            Ok((s.accounts.len(), associations, s.homedirs.len()))
        })?;
        let months = std::fs::read_dir(self.store.usage_dir())
            .map(|dir| {
                let mut months: Vec<String> = dir
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                months.sort();
                months
            })
            .unwrap_or_default();
        let s = &self.settings;
        Ok(vec![
            format!("state_dir: {}", self.store.dir().display()),
            format!("accounts: {accounts}, associations: {associations}, home directories: {homedirs}"),
            format!(
                "prefixes: customer {:?}, project {:?}, allocation {:?}; root {:?}, default account {:?}",
                s.customer_prefix, s.project_prefix, s.allocation_prefix, s.root_account, s.default_account
            ),
            format!(
                "components: {:?}",
                self.components.keys().collect::<Vec<_>>()
            ),
            format!(
                "usage months: {months:?}; current period {} ({})",
                self.current_period().to_string(),
                self.timezone().iana_name().unwrap_or("UTC")
            ),
            format!("max_limits: {:?}; fail_methods: {:?}", s.max_limits, s.fail_methods),
        ])
    }
}

#[backend_impl]
impl Backend for Demo {
    const DESCRIPTION: &'static str =
        "Demo backend: accounts, limits, associations and usage in a JSON state directory";
    const CAPABILITIES: Capabilities = Capabilities {
        // Home directories are recorded in the state, so the homedir CLI works too.
        supports_user_homedirs: true,
        ..Capabilities::DEFAULT
    };
    const SETTINGS: &'static [SettingSpec] = settings::SETTINGS;

    fn new(context: BackendContext) -> Result<Self> {
        Demo::open(&context.settings, context.components)
    }

    /// The constant, except the flags the settings choose (`decreasing_usage_allowed`,
    /// `resource_api_keys`, `requires_source_project`, `consented_users_only`,
    /// `shared_project_membership`).
    fn capabilities(&self) -> Result<CapabilitySet> {
        self.fail_point("capabilities")?;
        let s = &self.settings;
        let mut capabilities = CapabilitySet::from(&Self::CAPABILITIES);
        capabilities.supports_decreasing_usage = s.decreasing_usage_allowed;
        capabilities.supports_resource_api_keys = s.resource_api_keys;
        capabilities.requires_source_project = s.requires_source_project;
        capabilities.fetch_consented_users_only = s.consented_users_only;
        capabilities.shared_project_membership = s.shared_project_membership;
        Ok(capabilities)
    }

    /// Records the Waldur project the agent passed (`requires_source_project`) on the
    /// account, as a backend mirroring project metadata would store it.
    fn sync_resource_project(
        &self,
        waldur_resource: WaldurResource,
        source_project: Option<serde_json::Value>,
    ) -> Result<()> {
        self.fail_point("sync_resource_project")?;
        let Some(project) = source_project else {
            return Ok(());
        };
        self.store.update(|s| {
            s.account_mut(&waldur_resource.backend_id)?.source_project = Some(project);
            Ok(())
        })
    }

    /// Keeps the attributes the agent passed for the user (what a backend creating user
    /// accounts would use), then associates the user with the account. Answers as the
    /// agent's default: false for a blank username, a backend error without a backend id.
    fn add_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        options: UserOptions,
    ) -> Result<bool> {
        self.fail_point("add_user")?;
        if waldur_resource.backend_id.is_empty() {
            return Err(Error::backend(format!(
                "demo: resource {} has no backend id",
                waldur_resource.uuid
            )));
        }
        if username.is_empty() {
            return Ok(false);
        }
        if let Some(attributes) = options.user_attributes.get(&username) {
            self.store.update(|s| {
                s.user_attributes
                    .insert(username.clone(), attributes.clone());
                Ok(())
            })?;
        }
        self.client_create_association(username, waldur_resource.backend_id, None)?;
        Ok(true)
    }

    /// With `membership_sync_report`: every user of the account, as synced.
    fn get_membership_sync_report(
        &self,
        waldur_resource: WaldurResource,
    ) -> Result<Option<Vec<serde_json::Value>>> {
        self.fail_point("get_membership_sync_report")?;
        if !self.settings.membership_sync_report {
            return Ok(None);
        }
        let users = self.store.read(|s| {
            Ok(s.account(&waldur_resource.backend_id)?
                .users
                .keys()
                .cloned()
                .collect::<Vec<_>>())
        })?;
        Ok(Some(
            users
                .into_iter()
                .map(|username| {
                    serde_json::json!({
                        "username": username, "scope_type": "resource",
                        "role_name": "member", "state": "synced", "message": "",
                    })
                })
                .collect(),
        ))
    }

    fn set_runtime_context(&self, context: RuntimeContext) -> Result<()> {
        self.fail_point("set_runtime_context")?;
        // Like the reference, a bad timezone does not stop the agent; it only shifts month
        // boundaries, so it is logged loudly and UTC is used.
        let tz = parse_timezone(&context.timezone).unwrap_or_else(|e| {
            log::warn!("{}; billing periods use UTC", e.message);
            jiff::tz::TimeZone::UTC
        });
        self.set_timezone(tz);
        Ok(())
    }

    /// The backend is "reachable" when its state file can be read.
    fn ping(&self, raise_exception: bool) -> Result<bool> {
        self.fail_point("ping")?;
        match self.store.read(|_| Ok(())) {
            Ok(()) => Ok(true),
            Err(e) if raise_exception => Err(e),
            Err(e) => {
                log::warn!("{}", e.message);
                Ok(false)
            }
        }
    }

    fn diagnostics(&self) -> Result<bool> {
        self.fail_point("diagnostics")?;
        match self.health_report() {
            Ok(lines) => {
                log::info!("demo diagnostics:");
                lines.iter().for_each(|line| log::info!("  {line}"));
                Ok(true)
            }
            Err(e) => {
                log::error!("demo diagnostics: {}", e.message);
                Ok(false)
            }
        }
    }

    fn list_components(&self) -> Result<Vec<String>> {
        self.fail_point("list_components")?;
        Ok(self.components.keys().cloned().collect())
    }

    fn get_usage_report(&self, resource_backend_ids: Vec<String>) -> Result<UsageReport> {
        self.fail_point("get_usage_report")?;
        self.usage_report(&resource_backend_ids, self.current_period())
    }

    fn get_usage_report_for_period(
        &self,
        resource_backend_ids: Vec<String>,
        year: i32,
        month: u32,
        _waldur_resource: Option<WaldurResource>,
    ) -> Result<UsageReport> {
        self.fail_point("get_usage_report_for_period")?;
        let period = Period::new(year, month)?;
        let mut report = self.usage_report(&resource_backend_ids, period)?;
        // A past month without a usage file had no data, not zero use: reporting zeros would
        // create Waldur records for months before the account existed.
        let dir = self.store.usage_dir();
        report.retain(|account, _| {
            crate::usage::usage_path(&dir, period, account).is_ok_and(|path| path.exists())
        });
        Ok(report)
    }

    fn downscale_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_qos("downscale_resource", &resource_backend_id, Qos::Downscaled)
    }

    fn pause_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_qos("pause_resource", &resource_backend_id, Qos::Paused)
    }

    fn restore_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_qos("restore_resource", &resource_backend_id, Qos::Normal)
    }

    /// A whole cycle in one state read and one pass over the usage files, instead of the
    /// agent's default of three calls per account. Same answer as the default: accounts
    /// that do not exist are left out; an account without usage reports zeros.
    fn pull_resources(
        &self,
        waldur_resources: Vec<WaldurResource>,
    ) -> Result<BTreeMap<String, BackendResourceInfo>> {
        self.fail_point("pull_resources")?;
        let users: BTreeMap<String, Vec<String>> = self.store.read(|s| {
            Ok(waldur_resources
                .iter()
                .filter_map(|r| {
                    let account = s.accounts.get(&r.backend_id)?;
                    Some((
                        r.backend_id.clone(),
                        account.users.keys().cloned().collect(),
                    ))
                })
                .collect())
        })?;
        let ids: Vec<String> = users.keys().cloned().collect();
        let mut usage = self.get_usage_report(ids)?;
        Ok(users
            .into_iter()
            .map(|(id, users)| {
                let usage = usage.remove(&id).unwrap_or_else(|| self.zero_usage());
                let info = BackendResourceInfo {
                    backend_id: id.clone(),
                    users,
                    usage,
                    ..BackendResourceInfo::default()
                };
                (id, info)
            })
            .collect())
    }

    fn get_resource_metadata(&self, resource_backend_id: String) -> Result<JsonMap> {
        self.fail_point("get_resource_metadata")?;
        self.store.read(|s| {
            let account = s.account(&resource_backend_id)?;
            let mut metadata = JsonMap::new();
            metadata.insert("qos".into(), account.qos.as_str().into());
            metadata.insert("users".into(), account.users.len().into());
            Ok(metadata)
        })
    }

    fn collect_resource_limits(&self, waldur_resource: WaldurResource) -> Result<CollectedLimits> {
        self.fail_point("collect_resource_limits")?;
        Ok(limits::collect(&waldur_resource, &self.components))
    }

    fn pre_create_resource(
        &self,
        waldur_resource: WaldurResource,
        _user_context: Option<UserContext>,
    ) -> Result<()> {
        self.fail_point("pre_create_resource")?;
        let plan = hierarchy::plan(&waldur_resource, &self.settings)?;
        let created = self
            .store
            .update(|s| hierarchy::ensure(s, &plan, &self.settings.root_account))?;
        for name in created {
            log::info!("demo: created account {name}");
        }
        Ok(())
    }

    fn evaluate_pending_order(&self, order: Order) -> Result<PendingOrderDecision> {
        self.fail_point("evaluate_pending_order")?;
        let Some(max) = &self.settings.max_limits else {
            return Ok(PendingOrderDecision::Accept);
        };
        Ok(match limits::exceeded(&order.limits, max) {
            Some(reason) => {
                log::info!("demo: rejecting order {}: {reason}", order.uuid);
                PendingOrderDecision::Reject
            }
            None => PendingOrderDecision::Accept,
        })
    }

    fn generate_resource_keys(
        &self,
        resource_backend_id: String,
        count: u32,
    ) -> Result<Vec<ResourceKey>> {
        self.fail_point("generate_resource_keys")?;
        let minted = self
            .store
            .update(|s| keys::mint(s, &resource_backend_id, count))?;
        log::info!(
            "demo: minted {} API key(s) for {resource_backend_id}",
            minted.len()
        );
        Ok(minted)
    }

    /// The client id stays; the answer is the new value as a string.
    fn rotate_resource_key(
        &self,
        client_id: String,
        resource_backend_id: String,
        known_client_ids: Option<Vec<String>>,
    ) -> Result<serde_json::Value> {
        self.fail_point("rotate_resource_key")?;
        let value = self.store.update(|s| {
            keys::rotate(
                s,
                &resource_backend_id,
                &client_id,
                known_client_ids.as_deref(),
            )
        })?;
        log::info!("demo: rotated API key {client_id} of {resource_backend_id}");
        Ok(value.into())
    }

    fn prune_unknown_resource_keys(
        &self,
        resource_backend_id: String,
        keep: Vec<String>,
    ) -> Result<()> {
        self.fail_point("prune_unknown_resource_keys")?;
        let dropped = self
            .store
            .update(|s| keys::prune(s, &resource_backend_id, &keep))?;
        if dropped > 0 {
            log::info!(
                "demo: dropped {dropped} API key(s) of {resource_backend_id} unknown to Waldur"
            );
        }
        Ok(())
    }

    /// Waldur units: the stored backend limits divided by `unit_factor`, truncated.
    fn get_resource_limits(&self, resource_backend_id: String) -> Result<BackendLimits> {
        self.fail_point("get_resource_limits")?;
        let stored = self
            .store
            .read(|s| Ok(s.account(&resource_backend_id)?.limits.clone()))?;
        Ok(limits::to_waldur(&stored, &self.components))
    }
}
