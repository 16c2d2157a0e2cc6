//! A waldur-agent backend plugin to copy and adapt. The `template` backend keeps accounts in
//! memory, so it runs anywhere; to start a real plugin, rename the crate and the entry and
//! replace the map with calls to your system (CLI, REST API, ...). See README.md.
//!
//! What the agent needs from a backend:
//! - `Client` methods: raw account operations (the reference's BaseClient). The agent's generic
//!   algorithms run on them: create and delete a resource, add and remove users, set limits,
//!   pull a resource for reporting and membership sync.
//! - the `Backend` methods with no generic version: health, components, usage, pause,
//!   downscale and restore, metadata, limit conversion and the pre-create hook.
//!
//! A method left out answers "not implemented" and the agent runs its default instead:
//! `create_resource_with_id`, `delete_resource`, `add_user(s)`, `remove_user(s)`,
//! `set_resource_limits` (Waldur limit x unit_factor), `get_resource_limits`, `pull_resource`,
//! `list_resources`, the other hooks (no-ops). Override one only when your backend needs to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::json;
use waldur_plugin_abi::wire::{
    AccountingType, Association, BackendComponents, BackendLimits, ClientResource, CollectedLimits,
    ComponentUsage, JsonMap, UsageReport, UserContext, WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{
    Backend, BackendContext, Client, Error, Host, Result, SettingKind, SettingSpec,
};

/// One backend account (in a real plugin: whatever your system calls a project or allocation).
#[derive(Default)]
struct Account {
    description: String,
    organization: String,
    parent: Option<String>,
    /// In backend units: Waldur limit x unit_factor.
    limits: BackendLimits,
    users: BTreeSet<String>,
    /// "normal", "downscaled" or "paused".
    status: &'static str,
}

/// One instance per offering that names `backend_type: template`. The agent calls it from
/// several threads, so state lives behind a lock (`Client` requires `Send + Sync`). The map
/// lives only as long as the instance; a real backend's state lives in the backend.
pub struct TemplateBackend {
    cluster_name: String,
    components: BackendComponents,
    /// The agent's callbacks: `host.waldur_request(...)` reaches the Waldur API with the
    /// offering's credentials (for hooks such as `evaluate_pending_order`).
    host: Host,
    accounts: Mutex<BTreeMap<String, Account>>,
}

impl TemplateBackend {
    fn accounts(&self) -> MutexGuard<'_, BTreeMap<String, Account>> {
        // A panic while the lock was held poisons it; this map stays consistent, so go on.
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on an existing account; an absent one is a backend error.
    fn with_account<T>(&self, id: &str, f: impl FnOnce(&mut Account) -> T) -> Result<T> {
        let mut accounts = self.accounts();
        let account = accounts.get_mut(id).ok_or_else(|| missing(id))?;
        Ok(f(account))
    }

    fn set_status(&self, id: &str, status: &'static str) -> Result<bool> {
        let changed =
            self.with_account(id, |a| std::mem::replace(&mut a.status, status) != status)?;
        if changed {
            log::info!("account {id} is now {status}");
        }
        Ok(changed)
    }
}

fn client_resource(name: &str, account: &Account) -> ClientResource {
    ClientResource {
        name: name.to_string(),
        description: account.description.clone(),
        organization: account.organization.clone(),
        backend_id: name.to_string(),
    }
}

/// `Error::backend` messages are shown to Waldur users: make them say what to fix.
fn missing(id: &str) -> Error {
    Error::backend(format!("account {id} does not exist"))
}

// The BaseClient side. `#[backend_impl]` records which methods are written out, for the
// manifest and `waldur-agent plugins inspect`; put it on both impl blocks.
#[waldur_plugin_abi::backend_impl]
impl Client for TemplateBackend {
    fn client_list_resources(&self) -> Result<Vec<ClientResource>> {
        let accounts = self.accounts();
        Ok(accounts
            .iter()
            .map(|(n, a)| client_resource(n, a))
            .collect())
    }

    /// `None` (not an error) for an absent account: the agent relies on it to tell
    /// "create" from "already exists".
    fn client_get_resource(&self, resource_id: String) -> Result<Option<ClientResource>> {
        let accounts = self.accounts();
        Ok(accounts
            .get(&resource_id)
            .map(|a| client_resource(&resource_id, a)))
    }

    fn client_create_resource(
        &self,
        name: String,
        description: String,
        organization: String,
        parent_name: Option<String>,
    ) -> Result<String> {
        let mut accounts = self.accounts();
        if accounts.contains_key(&name) {
            return Err(Error::duplicate_resource(&name));
        }
        log::info!("creating account {name} in {organization}");
        let account = Account {
            description,
            organization,
            parent: parent_name,
            status: "normal",
            ..Account::default()
        };
        accounts.insert(name.clone(), account);
        Ok(name)
    }

    /// Deleting an absent account succeeds: the agent may retry a terminate order.
    fn client_delete_resource(&self, name: String) -> Result<()> {
        if self.accounts().remove(&name).is_some() {
            log::info!("deleted account {name}");
        }
        Ok(())
    }

    /// `limits` are in backend units; keys not given keep their value.
    fn client_set_resource_limits(
        &self,
        resource_id: String,
        limits: BackendLimits,
    ) -> Result<Option<String>> {
        self.with_account(&resource_id, |a| a.limits.extend(limits))?;
        Ok(None)
    }

    fn client_get_resource_limits(&self, resource_id: String) -> Result<BackendLimits> {
        self.with_account(&resource_id, |a| a.limits.clone())
    }

    fn client_get_association(
        &self,
        user: String,
        resource_id: String,
    ) -> Result<Option<Association>> {
        let member = self
            .accounts()
            .get(&resource_id)
            .is_some_and(|a| a.users.contains(&user));
        Ok(member.then_some(Association {
            account: resource_id,
            user,
            value: 0,
        }))
    }

    fn client_create_association(
        &self,
        username: String,
        resource_id: String,
        _default_account: Option<String>,
    ) -> Result<()> {
        self.with_account(&resource_id, |a| a.users.insert(username))?;
        Ok(())
    }

    fn client_delete_association(&self, username: String, resource_id: String) -> Result<()> {
        if let Some(account) = self.accounts().get_mut(&resource_id) {
            account.users.remove(&username);
        }
        Ok(())
    }

    fn client_list_resource_users(&self, resource_id: String) -> Result<Vec<String>> {
        self.with_account(&resource_id, |a| a.users.iter().cloned().collect())
    }
}

// The BaseBackend side.
#[waldur_plugin_abi::backend_impl]
impl Backend for TemplateBackend {
    /// Shown by `waldur-agent plugins inspect`.
    const DESCRIPTION: &'static str = "Template backend: accounts kept in memory";

    /// The `backend_settings` keys this backend reads. The agent checks types and required
    /// keys before `new` runs (an error refuses the offering) and warns about unknown keys.
    const SETTINGS: &'static [SettingSpec] = &[SettingSpec::optional(
        "cluster_name",
        SettingKind::String,
        "Name of the cluster, reported in the resource metadata",
    )
    .default_json("\"template\"")];

    // CAPABILITIES (the reference's class flags) keep their defaults here; to change one:
    // const CAPABILITIES: Capabilities =
    //     Capabilities { supports_decreasing_usage: true, ..Capabilities::DEFAULT };

    fn new(context: BackendContext) -> Result<Self> {
        let cluster_name = context
            .settings
            .get("cluster_name")
            .and_then(|v| v.as_str())
            .unwrap_or("template")
            .to_string();
        Ok(Self {
            cluster_name,
            components: context.components,
            host: context.host,
            accounts: Mutex::default(),
        })
    }

    /// A real backend checks it can reach its system. When it cannot: `Ok(false)`, or with
    /// `raise_exception` an error saying why (`Error::not_ready` skips the cycle).
    fn ping(&self, _raise_exception: bool) -> Result<bool> {
        Ok(true)
    }

    /// `waldur-agent plugins check` calls this: log what an administrator needs to see.
    fn diagnostics(&self) -> Result<bool> {
        log::info!(
            "cluster {}: {} account(s), components {:?}, agent {}",
            self.cluster_name,
            self.accounts().len(),
            self.components.keys().collect::<Vec<_>>(),
            self.host.agent_version()
        );
        self.ping(false)
    }

    fn list_components(&self) -> Result<Vec<String>> {
        Ok(self.components.keys().cloned().collect())
    }

    /// Current-period usage in WALDUR units (backend value / unit_factor), keyed by account:
    /// `TOTAL_ACCOUNT_USAGE` (without it the period is skipped) plus one entry per user whose
    /// values add up to the total. Accounts the backend does not know are left out.
    fn get_usage_report(&self, resource_backend_ids: Vec<String>) -> Result<UsageReport> {
        let zero: ComponentUsage = self.components.keys().map(|c| (c.clone(), 0.0)).collect();
        let accounts = self.accounts();
        let mut report = UsageReport::new();
        for id in resource_backend_ids {
            let Some(account) = accounts.get(&id) else {
                continue;
            };
            let mut usage = BTreeMap::from([(TOTAL_ACCOUNT_USAGE.to_string(), zero.clone())]);
            usage.extend(account.users.iter().map(|u| (u.clone(), zero.clone())));
            report.insert(id, usage);
        }
        Ok(report)
    }

    // Called every membership cycle from the resource's `paused` / `downscaled` flags; the
    // answer says whether anything changed.
    fn downscale_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_status(&resource_backend_id, "downscaled")
    }

    fn pause_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_status(&resource_backend_id, "paused")
    }

    fn restore_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.set_status(&resource_backend_id, "normal")
    }

    /// Sent to Waldur as the resource's backend metadata after every status sync.
    fn get_resource_metadata(&self, resource_backend_id: String) -> Result<JsonMap> {
        let (status, parent) =
            self.with_account(&resource_backend_id, |a| (a.status, a.parent.clone()))?;
        let metadata = json!({ "cluster": self.cluster_name, "status": status, "parent": parent });
        Ok(metadata.as_object().cloned().unwrap_or_default())
    }

    /// The limits of a new resource, in backend units (x unit_factor, truncated) and in
    /// Waldur units. `limit`/`one` components take the order's limits; a `usage` component
    /// takes its configured `limit`, if any. (Prepaid durations are not handled here.)
    fn collect_resource_limits(&self, waldur_resource: WaldurResource) -> Result<CollectedLimits> {
        // Every limit of the order goes back to Waldur, truncated like the backend values.
        let mut collected = CollectedLimits {
            waldur_limits: waldur_resource
                .limits
                .iter()
                .map(|(k, v)| (k.clone(), v.trunc()))
                .collect(),
            ..CollectedLimits::default()
        };
        for (name, component) in &self.components {
            let limit = match component.accounting_type {
                AccountingType::Usage => component.limit,
                AccountingType::Limit | AccountingType::One => {
                    waldur_resource.limits.get(name).copied()
                }
            };
            if let Some(limit) = limit {
                let backend = (limit * component.unit_factor()).trunc() as i64;
                collected.backend_limits.insert(name.clone(), backend);
                collected.waldur_limits.insert(name.clone(), limit.trunc());
            }
        }
        Ok(collected)
    }

    /// Runs before the account is created: create parent (customer, project) accounts here
    /// if your backend has a hierarchy. Nothing to do in memory.
    fn pre_create_resource(
        &self,
        _waldur_resource: WaldurResource,
        _user_context: Option<UserContext>,
    ) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

// Registers the plugin: its description and the entry names `backend_type` can use. One
// library may register several backends and username-management backends.
waldur_plugin_abi::export_plugin! {
    description: "Template plugin: an in-memory backend to start a new plugin from",
    backends: ["template" => TemplateBackend],
    username_backends: [],
}
