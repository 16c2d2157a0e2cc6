//! The reference agent's generic BaseBackend algorithms (`backend/backends.py`), run when the
//! plugin answers NOT_IMPLEMENTED.
//!
//! Each default calls the plugin only through the public methods of [`Backend`], so a plugin
//! overriding one step (say `add_user`) keeps that override inside another default (say
//! `add_users_to_resource`). Where the reference catches `BackendError`, these catch errors
//! of the backend kinds (see [`is_backend_error`]); anything else propagates, as there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use waldur_plugin_abi::sdk::settings::truthy;
use waldur_plugin_abi::wire::{
    BackendLimits, BackendResourceInfo, ComponentUsage, Limits, ResourceUsage, UserContext,
    UserOptions, WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::Error as AbiError;

use super::{Backend, NeededBy};
use crate::PluginError;

/// What the reference's `except BackendError` catches: `BackendError` and its subclass
/// `DuplicateResourceError`, plus not-ready (the same set the agent shows to Waldur users).
fn is_backend_error(error: &PluginError) -> bool {
    error.is_backend_error()
}

/// Python's `int(value * unit_factor)`: truncation toward zero. (`as` also saturates instead
/// of raising on overflow, and maps NaN to 0.)
fn to_backend_units(value: f64, unit_factor: f64) -> i64 {
    (value * unit_factor) as i64
}

impl Backend {
    /// A string setting, `""` when absent (the reference's `backend_settings.get(key, "")`).
    /// Null counts as absent; other non-strings are used in their JSON spelling.
    pub(super) fn setting_text(&self, key: &str) -> String {
        match self.settings.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    pub(super) fn default_run_preflight(&self) -> Result<(), PluginError> {
        if self.ping(false).needed_by("run_preflight")? {
            return Ok(());
        }
        Err(self.error(
            "run_preflight",
            AbiError::not_ready(format!("Backend {} is not ready (ping failed)", self.entry)),
        ))
    }

    /// Only the allocation id is lower-cased: the reference's `_get_resource_backend_id` calls
    /// `.lower()` while the project and customer variants do not. Existing accounts on sites
    /// depend on exactly this spelling.
    pub(super) fn default_resource_backend_id(&self, slug: &str) -> String {
        format!("{}{slug}", self.setting_text("allocation_prefix")).to_lowercase()
    }

    pub(super) fn default_create_resource(
        &self,
        waldur_resource: &WaldurResource,
        user_context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo, PluginError> {
        let resource_backend_id = self.get_resource_backend_id(&waldur_resource.slug)?;
        self.create_resource_with_id(waldur_resource, &resource_backend_id, user_context)
    }

    pub(super) fn default_create_resource_with_id(
        &self,
        waldur_resource: &WaldurResource,
        resource_backend_id: &str,
        user_context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo, PluginError> {
        tracing::info!(
            plugin = %self.entry,
            "Creating resource in the backend with ID: {resource_backend_id}"
        );
        self.pre_create_resource(waldur_resource, user_context)?;

        // The project account is both the organization and the parent of the new account.
        let project_backend_id = self.get_project_backend_id(&waldur_resource.project_slug)?;
        let created = self.create_backend_resource(
            resource_backend_id,
            &waldur_resource.name,
            &project_backend_id,
            Some(&project_backend_id),
        )?;
        if !created {
            // The order processor reacts to this kind by retrying with another id.
            return Err(self.error(
                "create_resource_with_id",
                AbiError::duplicate_resource(resource_backend_id),
            ));
        }

        let limits = self.setup_resource_limits(resource_backend_id, waldur_resource)?;
        let info = BackendResourceInfo {
            backend_id: resource_backend_id.to_string(),
            limits,
            ..BackendResourceInfo::default()
        };
        self.post_create_resource(info, waldur_resource, user_context)
    }

    pub(super) fn default_create_backend_resource(
        &self,
        resource_backend_id: &str,
        name: &str,
        organization: &str,
        parent: Option<&str>,
    ) -> Result<bool, PluginError> {
        tracing::info!(
            plugin = %self.entry,
            "Creating resource {name} in {} backend (backend ID = {resource_backend_id})",
            self.entry
        );
        let existing = self
            .client_get_resource(resource_backend_id)
            .needed_by("create_backend_resource")?;
        if existing.is_some() {
            tracing::info!(
                plugin = %self.entry,
                "The resource with ID {resource_backend_id} already exists in the cluster"
            );
            return Ok(false);
        }
        // The reference passes the backend id as the account NAME and the Waldur resource
        // name as its description.
        self.client_create_resource(resource_backend_id, name, organization, parent)
            .needed_by("create_backend_resource")?;
        Ok(true)
    }

    pub(super) fn default_setup_resource_limits(
        &self,
        resource_backend_id: &str,
        waldur_resource: &WaldurResource,
    ) -> Result<Limits, PluginError> {
        let collected = self
            .collect_resource_limits(waldur_resource)
            .needed_by("setup_resource_limits")?;
        if collected.backend_limits.is_empty() {
            tracing::info!(plugin = %self.entry, "Skipping setting of limits");
            // Even if the plugin collected Waldur-unit limits: the reference answers {} here.
            return Ok(Limits::new());
        }
        tracing::info!(
            plugin = %self.entry,
            "Setting resource backend limits of {resource_backend_id} to: {:?}",
            collected.backend_limits
        );
        self.client_set_resource_limits(resource_backend_id, &collected.backend_limits)
            .needed_by("setup_resource_limits")?;
        Ok(collected.waldur_limits)
    }

    pub(super) fn default_delete_resource(
        &self,
        waldur_resource: &WaldurResource,
        project_slug: Option<&str>,
    ) -> Result<Option<String>, PluginError> {
        let resource_backend_id = waldur_resource.backend_id.as_str();
        if resource_backend_id.trim().is_empty() {
            tracing::warn!(plugin = %self.entry, "Empty backend_id for resource, skipping deletion");
            return Ok(None);
        }
        let existing = self
            .client_get_resource(resource_backend_id)
            .needed_by("delete_resource")?;
        if existing.is_none() {
            tracing::warn!(
                plugin = %self.entry,
                "No resource with ID {resource_backend_id} is in {}",
                self.entry
            );
            return Ok(None);
        }

        self.pre_delete_resource(waldur_resource)?;
        if truthy(self.settings.get("soft_delete")) {
            // Soft delete keeps the account (and its usage history) but zeroes every limit;
            // the project account is left alone too.
            let zero: Limits = self.components.keys().map(|c| (c.clone(), 0.0)).collect();
            tracing::info!(
                plugin = %self.entry,
                "Soft delete: setting all limits of {resource_backend_id} to zero"
            );
            self.set_resource_limits(resource_backend_id, &zero)?;
        } else {
            self.delete_resource_safely(resource_backend_id)?;
            if let Some(project_slug) = project_slug {
                self.delete_project_if_empty(project_slug)?;
            }
        }
        self.post_delete_resource(waldur_resource)?;
        Ok(None)
    }

    /// Deletes the project account once no other account has it as organization (the
    /// project account itself does not count).
    fn delete_project_if_empty(&self, project_slug: &str) -> Result<(), PluginError> {
        let project_backend_id = self.get_project_backend_id(project_slug)?;
        let in_use = self
            .client_list_resources()
            .needed_by("delete_resource")?
            .iter()
            .any(|r| r.organization == project_backend_id && r.name != project_backend_id);
        if in_use {
            return Ok(());
        }
        self.delete_resource_safely(&project_backend_id)
    }

    pub(super) fn default_delete_resource_safely(
        &self,
        resource_backend_id: &str,
    ) -> Result<(), PluginError> {
        let existing = self
            .client_get_resource(resource_backend_id)
            .needed_by("delete_resource_safely")?;
        if existing.is_none() {
            tracing::warn!(
                plugin = %self.entry,
                "No resource with ID {resource_backend_id} is in {}",
                self.entry
            );
            return Ok(());
        }
        tracing::info!(
            plugin = %self.entry,
            "Deleting the resource with ID {resource_backend_id} from {}",
            self.entry
        );
        self.client_delete_resource(resource_backend_id)
            .needed_by("delete_resource_safely")
    }

    /// The reference takes a `set`: a username listed twice is handled once.
    pub(super) fn default_add_users_to_resource(
        &self,
        waldur_resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>, PluginError> {
        if usernames.is_empty() {
            tracing::info!(plugin = %self.entry, "No new users to add");
            return Ok(Vec::new());
        }
        let resource_backend_id = &waldur_resource.backend_id;
        tracing::info!(
            plugin = %self.entry,
            "Adding {} users to resource {resource_backend_id} on backend: {}",
            usernames.len(),
            usernames.join(", ")
        );
        // The options reach a plugin's own `add_user`; the reference's loop drops them.
        self.each_user(usernames, "add", resource_backend_id, |username| {
            self.add_user(waldur_resource, username, options)
        })
    }

    /// The reference's per-user loop: every distinct username once; a backend error for one
    /// user is logged and that user left out; any other error stops the loop.
    fn each_user(
        &self,
        usernames: &[String],
        verb: &str,
        resource_backend_id: &str,
        mut apply: impl FnMut(&str) -> Result<bool, PluginError>,
    ) -> Result<Vec<String>, PluginError> {
        let mut seen = BTreeSet::new();
        let mut done = Vec::new();
        for username in usernames.iter().filter(|u| seen.insert(u.as_str())) {
            match apply(username) {
                Ok(true) => done.push(username.clone()),
                Ok(false) => {}
                Err(e) if is_backend_error(&e) => tracing::error!(
                    plugin = %self.entry,
                    "Unable to {verb} user {username} (resource {resource_backend_id}), details: {e}"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    pub(super) fn default_add_user(
        &self,
        waldur_resource: &WaldurResource,
        username: &str,
    ) -> Result<bool, PluginError> {
        let resource_backend_id = waldur_resource.backend_id.as_str();
        if resource_backend_id.trim().is_empty() {
            return Err(self.error(
                "add_user",
                AbiError::backend("Empty backend ID for resource"),
            ));
        }
        tracing::info!(plugin = %self.entry, "Adding user {username} to resource {resource_backend_id}");
        if username.is_empty() {
            tracing::warn!(plugin = %self.entry, "Username is blank, skipping creation of association");
            return Ok(false);
        }

        let association = self
            .client_get_association(username, resource_backend_id)
            .needed_by("add_user")?;
        if association.is_some() {
            tracing::info!(plugin = %self.entry, "Association already exists, skipping creation");
            return Ok(true);
        }
        // `backend_settings.get("default_account") or "root"`: an empty value means root too.
        let default_account = match self.setting_text("default_account") {
            account if account.is_empty() => "root".to_string(),
            account => account,
        };
        tracing::info!(
            plugin = %self.entry,
            "Creating association between {username} and {resource_backend_id}"
        );
        match self
            .client_create_association(username, resource_backend_id, Some(&default_account))
            .needed_by("add_user")
        {
            Ok(()) => Ok(true),
            Err(e) if is_backend_error(&e) => {
                tracing::error!(plugin = %self.entry, "Unable to create association on backend: {e}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn default_remove_users_from_resource(
        &self,
        waldur_resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>, PluginError> {
        if usernames.is_empty() {
            tracing::info!(plugin = %self.entry, "No users to remove");
            return Ok(Vec::new());
        }
        let resource_backend_id = &waldur_resource.backend_id;
        tracing::info!(
            plugin = %self.entry,
            "Removing {} users from resource {resource_backend_id} on backend: {}",
            usernames.len(),
            usernames.join(", ")
        );
        self.each_user(usernames, "remove", resource_backend_id, |username| {
            self.remove_user(waldur_resource, username, options)
        })
    }

    pub(super) fn default_remove_user(
        &self,
        waldur_resource: &WaldurResource,
        username: &str,
    ) -> Result<bool, PluginError> {
        let resource_backend_id = waldur_resource.backend_id.as_str();
        if resource_backend_id.trim().is_empty() {
            return Err(self.error(
                "remove_user",
                AbiError::backend("Empty resource backend ID"),
            ));
        }
        tracing::info!(plugin = %self.entry, "Removing user {username} from resource {resource_backend_id}");
        let association = self
            .client_get_association(username, resource_backend_id)
            .needed_by("remove_user")?;
        if association.is_none() {
            // Nothing to remove counts as success in the reference.
            return Ok(true);
        }
        tracing::info!(
            plugin = %self.entry,
            "Deleting association between {username} and {resource_backend_id}"
        );
        // The hook runs inside the reference's `try`: its backend error also answers false.
        let outcome = self
            .pre_delete_user_actions(resource_backend_id, username)
            .and_then(|()| {
                self.client_delete_association(username, resource_backend_id)
                    .needed_by("remove_user")
            });
        match outcome {
            Ok(()) => Ok(true),
            Err(e) if is_backend_error(&e) => {
                tracing::error!(plugin = %self.entry, "Unable to delete association in the backend: {e}");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn default_set_resource_limits(
        &self,
        resource_backend_id: &str,
        limits: &Limits,
    ) -> Result<Option<String>, PluginError> {
        let converted: BackendLimits = limits
            .iter()
            .map(|(component, value)| {
                // `backend_components.get(k, {}).get("unit_factor", 1)`: unknown components
                // and components without a factor pass through unscaled.
                let factor = self
                    .components
                    .get(component)
                    .map_or(1.0, |c| c.unit_factor());
                (component.clone(), to_backend_units(*value, factor))
            })
            .collect();
        self.client_set_resource_limits(resource_backend_id, &converted)
            .needed_by("set_resource_limits")?;
        // The reference drops the client's answer: only a plugin's own implementation can
        // hand an async order id back.
        Ok(None)
    }

    pub(super) fn default_list_resources(&self) -> Result<Vec<BackendResourceInfo>, PluginError> {
        let accounts = self.client_list_resources().needed_by("list_resources")?;
        Ok(accounts
            .into_iter()
            .map(|account| BackendResourceInfo {
                backend_id: account.name,
                parent_id: account.organization,
                ..BackendResourceInfo::default()
            })
            .collect())
    }

    pub(super) fn default_pull_resources(
        &self,
        waldur_resources: &[WaldurResource],
    ) -> BTreeMap<String, BackendResourceInfo> {
        let mut report = BTreeMap::new();
        for waldur_resource in waldur_resources {
            let backend_id = &waldur_resource.backend_id;
            match self.pull_resource(waldur_resource) {
                Ok(Some(info)) => {
                    report.insert(backend_id.clone(), info);
                }
                Ok(None) => {}
                Err(e) => tracing::error!(
                    plugin = %self.entry,
                    "Error while pulling resource [{backend_id}]: {e}"
                ),
            }
        }
        report
    }

    pub(super) fn default_pull_resource(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Option<BackendResourceInfo> {
        let backend_id = &waldur_resource.backend_id;
        if backend_id.is_empty() {
            tracing::warn!(
                plugin = %self.entry,
                "Backend ID is missing for resource {}",
                waldur_resource.name
            );
            return None;
        }
        match self.pull_backend_resource(backend_id) {
            Ok(info) => info,
            Err(e) => {
                tracing::error!(
                    plugin = %self.entry,
                    "Error while pulling resource [{backend_id}]: {e}"
                );
                None
            }
        }
    }

    pub(super) fn default_pull_backend_resource(
        &self,
        resource_backend_id: &str,
    ) -> Result<Option<BackendResourceInfo>, PluginError> {
        tracing::info!(plugin = %self.entry, "Pulling resource {resource_backend_id}");
        let existing = self
            .client_get_resource(resource_backend_id)
            .needed_by("pull_backend_resource")?;
        if existing.is_none() {
            tracing::warn!(
                plugin = %self.entry,
                "There is no resource with ID {resource_backend_id} in the backend"
            );
            return Ok(None);
        }
        let users = self
            .client_list_resource_users(resource_backend_id)
            .needed_by("pull_backend_resource")?;
        let mut report = self
            .get_usage_report(&[resource_backend_id.to_string()])
            .needed_by("pull_backend_resource")?;
        // No usage records yet is not an error: zero of every configured component, so the
        // report mode still sends the period.
        let usage = report
            .remove(resource_backend_id)
            .unwrap_or_else(|| self.zero_usage());
        Ok(Some(BackendResourceInfo {
            users,
            usage,
            ..BackendResourceInfo::default()
        }))
    }

    /// `{"TOTAL_ACCOUNT_USAGE": {c: 0 for c in backend_components}}`.
    fn zero_usage(&self) -> ResourceUsage {
        let zero: ComponentUsage = self.components.keys().map(|c| (c.clone(), 0.0)).collect();
        ResourceUsage::from([(TOTAL_ACCOUNT_USAGE.to_string(), zero)])
    }

    pub(super) fn default_recreate_missing_resource(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<bool, PluginError> {
        let backend_id = &waldur_resource.backend_id;
        if backend_id.is_empty() {
            return Ok(false);
        }
        let existing = self
            .client_get_resource(backend_id)
            .needed_by("recreate_missing_resource")?;
        if existing.is_some() {
            return Ok(false);
        }
        tracing::info!(
            plugin = %self.entry,
            "Resource {backend_id} is missing in the backend, creating it again"
        );
        // No user context: the reference recreates without team data or plan quotas.
        self.create_resource_with_id(waldur_resource, backend_id, None)?;
        Ok(true)
    }

    pub(super) fn default_create_user_homedirs(
        &self,
        usernames: &[String],
        umask: &str,
    ) -> Result<(), PluginError> {
        tracing::info!(plugin = %self.entry, "Creating homedirs for users");
        if truthy(self.settings.get("homedir_quota")) {
            tracing::warn!(
                plugin = %self.entry,
                "homedir_quota is configured, but the agent's default create_user_homedirs \
                 does not apply quotas; implement create_user_homedirs in the plugin for that"
            );
        }
        let base_path = self.setting_text("homedir_base_path");
        for username in usernames {
            if !base_path.is_empty() && Path::new(&base_path).join(username).is_dir() {
                tracing::debug!(plugin = %self.entry, "Homedir for user {username} exists");
                continue;
            }
            match self.client_create_linux_user_homedir(username, umask) {
                Ok(()) => {
                    tracing::info!(plugin = %self.entry, "Homedir for user {username} has been created")
                }
                // One user's failure must not keep the others without a home directory.
                Err(e) => tracing::error!(
                    plugin = %self.entry,
                    "Unable to create user homedir for {username}, reason: {e}"
                ),
            }
        }
        Ok(())
    }
}
