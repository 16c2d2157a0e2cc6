//! Users: associations (with the default-account policy, partitions and QoS grants), job
//! cancellation before an association or an account goes, and the home directories of
//! added and existing users.

use std::collections::BTreeSet;

use serde_json::Value;
use waldur_plugin_abi::wire::{BackendResourceInfo, UserContext, UserOptions, WaldurResource};
use waldur_plugin_abi::{Error, ErrorKind, Result};

use crate::settings::AccountPolicy;
use crate::slurm::Slurm;

/// The reference's `except BackendError`: backend errors (and their kinds) are caught and
/// logged; anything else propagates.
fn is_backend_error(error: &Error) -> bool {
    matches!(
        error.kind,
        ErrorKind::BACKEND | ErrorKind::DUPLICATE_RESOURCE | ErrorKind::BACKEND_NOT_READY
    )
}

/// The QoS and partition chosen in the order form (`attributes.qos`, `attributes.partition`).
fn selected_qos(resource: &WaldurResource) -> (Option<String>, Option<String>) {
    let text = |key: &str| match resource.attributes.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    (text("qos"), text("partition"))
}

impl Slurm {
    /// `DefaultAccount=` of a new association under `account`.
    fn default_account_for(&self, account: &str) -> Option<String> {
        match self.settings.default_account_policy {
            AccountPolicy::Common => Some(self.settings.default_account.clone()),
            AccountPolicy::Individual => Some(account.to_string()),
            AccountPolicy::None => None,
        }
    }

    /// Creates the user's association unless it exists. False for a blank username or when
    /// creating the association failed (logged); a blank account is a backend error.
    pub(crate) fn add_user_to(&self, resource: &WaldurResource, username: &str) -> Result<bool> {
        let account = resource.backend_id.as_str();
        if account.trim().is_empty() {
            return Err(Error::backend("Empty backend ID for resource"));
        }
        log::info!("Adding user {username} to resource {account}");
        if username.is_empty() {
            log::warn!("Username is blank, skipping creation of association");
            return Ok(false);
        }
        if self.client.get_association(username, account)?.is_some() {
            log::info!("Association already exists, skipping creation");
            return Ok(true);
        }
        log::info!("Creating association between {username} and {account}");
        match self.create_association(resource, username) {
            Ok(()) => {
                log::info!("Created association between {username} and {account}");
                Ok(true)
            }
            Err(e) if is_backend_error(&e) => {
                log::error!("Unable to create association on backend: {}", e.message);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The association itself: with the order's QoS when enforced (on the order's
    /// partition, else the enforced offering partitions, else `default_partition`);
    /// otherwise restricted to the offering partitions (`enforce_offering_partitions`), or
    /// `default_partition`, or plain.
    fn create_association(&self, resource: &WaldurResource, username: &str) -> Result<()> {
        let account = resource.backend_id.as_str();
        let default_account = self.default_account_for(account);
        let default_account = default_account.as_deref();
        let offering_partitions = self.offering_partitions();
        let use_offering_partitions =
            !offering_partitions.is_empty() && self.settings.enforce_offering_partitions;
        let (qos, partition) = selected_qos(resource);
        match qos {
            Some(qos) if self.qos_enforced() => {
                let partitions = match (partition, &self.settings.default_partition) {
                    (Some(partition), _) => Some(vec![partition]),
                    (None, _) if use_offering_partitions => Some(offering_partitions),
                    (None, Some(default)) => Some(vec![default.clone()]),
                    (None, None) => None,
                };
                self.client.create_association_with_qos(
                    username,
                    account,
                    std::slice::from_ref(&qos),
                    Some(&qos),
                    partitions.as_deref(),
                    default_account,
                )?;
            }
            _ if use_offering_partitions => {
                self.client.create_association_with_partitions(
                    username,
                    account,
                    &offering_partitions,
                    default_account,
                )?;
            }
            _ => match &self.settings.default_partition {
                Some(partition) => {
                    self.client.create_association_with_partition(
                        username,
                        account,
                        partition,
                        default_account,
                    )?;
                }
                None => {
                    self.client
                        .create_association(username, account, default_account)?;
                }
            },
        }
        Ok(())
    }

    /// `add_user` for every distinct username (a backend error for one user is logged), then
    /// the home directories of those added.
    pub(crate) fn add_users(
        &self,
        resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>> {
        if usernames.is_empty() {
            log::info!("No new users to add");
            return Ok(Vec::new());
        }
        log::info!(
            "Adding {} users to resource {} on backend: {}",
            usernames.len(),
            resource.backend_id,
            usernames.join(", ")
        );
        let mut seen = BTreeSet::new();
        let mut added = Vec::new();
        for username in usernames.iter().filter(|u| seen.insert(u.as_str())) {
            match self.add_user_to(resource, username) {
                Ok(true) => added.push(username.clone()),
                Ok(false) => {}
                Err(e) if is_backend_error(&e) => log::error!(
                    "Unable to add user {username} to resource {}, details: {}",
                    resource.backend_id,
                    e.message
                ),
                Err(e) => return Err(e),
            }
        }
        if self.settings.enable_user_homedir_account_creation {
            let umask = options.homedir_umask.as_deref().unwrap_or("0077");
            self.create_homedirs(&added, umask);
        }
        Ok(added)
    }

    /// Before an association goes: cancel the user's jobs in the account, if the user
    /// exists on this machine and has jobs there.
    pub(crate) fn cancel_user_jobs(&self, account: &str, username: &str) -> Result<()> {
        if !self.client.check_user_exists(username)? {
            log::info!(
                "The user \"{username}\" does not exist in the cluster, skipping job cancellation"
            );
            return Ok(());
        }
        log::info!("Listing jobs for account {account} and user {username}");
        let jobs = self.client.list_active_user_jobs(account, username)?;
        if !jobs.is_empty() {
            log::info!(
                "The active jobs for account {account} and user {username}: {}",
                jobs.join(", ")
            );
            log::info!("Cancelling jobs for the account {account} and user {username}");
            self.client
                .cancel_active_user_jobs(account, Some(username))?;
        }
        Ok(())
    }

    /// Before an account goes: cancel all its jobs and remove all its users (when it has
    /// any).
    pub(crate) fn clear_account(&self, resource: &WaldurResource) -> Result<()> {
        let account = resource.backend_id.as_str();
        if self.client.account_has_users(account)? {
            log::info!("Cancelling all active jobs for account {account}");
            self.client.cancel_active_user_jobs(account, None)?;
            log::info!("Removing all users from account {account}");
            self.client.delete_all_users_from_account(account)?;
        }
        Ok(())
    }

    /// After an account went: its `qos_management` QoS. (The reference deletes it before
    /// the account, which real sacctmgr refuses while the QoS is the account's DefaultQOS;
    /// that only went unnoticed because the reference never attached it, bug 1.) A soft
    /// delete keeps the account, so it keeps its QoS too. Failures are logged.
    pub(crate) fn remove_account_qos(&self, resource: &WaldurResource) -> Result<()> {
        let account = resource.backend_id.as_str();
        if self.settings.qos_management.is_none() || self.settings.soft_delete || account.is_empty()
        {
            return Ok(());
        }
        if self.client.qos_exists(account)? {
            match self.client.delete_qos(account) {
                Ok(_) => log::info!("Deleted QoS {account}"),
                Err(e) => log::error!("Failed to delete QoS {account}: {}", e.message),
            }
        }
        Ok(())
    }

    /// After the allocation account and its limits exist: the per-account QoS and the
    /// project directory (both under the account's real id), then the home directories of
    /// the offering users of the creating order.
    pub(crate) fn after_create(
        &self,
        info: &BackendResourceInfo,
        user_context: Option<&UserContext>,
    ) -> Result<()> {
        let account = info.backend_id.as_str();
        if let Some(config) = &self.settings.qos_management {
            self.setup_account_qos(config, account)?;
        }
        if let Some(config) = &self.settings.project_directory {
            self.setup_project_directory(config, account);
        }
        let Some(context) = user_context else {
            return Ok(());
        };
        if !self.settings.enable_user_homedir_account_creation {
            return Ok(());
        }
        let usernames: BTreeSet<String> = context
            .offering_user_mappings
            .values()
            .filter_map(|user| user.username.clone())
            .filter(|name| !name.is_empty())
            .collect();
        if !usernames.is_empty() {
            let usernames: Vec<String> = usernames.into_iter().collect();
            log::info!(
                "Creating home directories during resource creation for users: {}",
                usernames.join(", ")
            );
            self.create_homedirs(&usernames, &self.settings.default_homedir_umask);
        }
        Ok(())
    }

    /// Every membership cycle: make sure every user's home directory exists.
    pub(crate) fn ensure_homedirs(&self, usernames: &[String]) {
        log::info!(
            "Processing existing users on the backend to ensure home directories exist: {}",
            usernames.join(", ")
        );
        if self.settings.enable_user_homedir_account_creation {
            self.create_homedirs(usernames, &self.settings.default_homedir_umask);
        }
    }
}
