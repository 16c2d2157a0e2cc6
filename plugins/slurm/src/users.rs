//! Users: associations (with the default-account policy, partitions and QoS grants), job
//! cancellation before an association or an account goes, and the home directories of
//! added and existing users.

use std::collections::BTreeSet;

use serde_json::Value;
use waldur_plugin_abi::wire::{BackendResourceInfo, UserContext, UserOptions, WaldurResource};
use waldur_plugin_abi::{Error, ErrorKind, Result};

use crate::names;
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

/// Every username once, in the given order.
fn distinct(usernames: &[String]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    usernames
        .iter()
        .map(String::as_str)
        .filter(|u| seen.insert(*u))
        .collect()
}

/// The reference's per-user loop: the users `apply` answered true for; a backend error for
/// one user is logged and that user left out; any other error stops the loop.
fn one_by_one(
    usernames: &[&str],
    verb: &str,
    account: &str,
    mut apply: impl FnMut(&str) -> Result<bool>,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for &username in usernames {
        match apply(username) {
            Ok(true) => done.push(username.to_string()),
            Ok(false) => {}
            Err(e) if is_backend_error(&e) => log::error!(
                "Unable to {verb} user {username} (resource {account}), details: {}",
                e.message
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The users of `usernames` that are in `done`, in the given order.
fn in_given_order(usernames: &[&str], done: &BTreeSet<&str>) -> Vec<String> {
    usernames
        .iter()
        .filter(|u| done.contains(*u))
        .map(|u| u.to_string())
        .collect()
}

/// The usernames that may reach a command, in the given order. A blank one is skipped with
/// the reference's warning; any other refused name ([`names::user`]) is logged with why and
/// left out, so it costs only itself: the others still go, in one batch when they can.
/// What is left can share a comma list (`name=u1,u2`): no name can add another.
fn acceptable<'a>(usernames: &[&'a str], verb: &str, account: &str) -> Vec<&'a str> {
    usernames
        .iter()
        .copied()
        .filter(|username| {
            if username.is_empty() {
                log::warn!("Username is blank, skipping it");
                return false;
            }
            match names::user(username) {
                Ok(_) => true,
                Err(e) => {
                    log::error!(
                        "Unable to {verb} user (resource {account}), details: {}",
                        e.message
                    );
                    false
                }
            }
        })
        .collect()
}

/// A non-blank account must be a valid name; a refused one refuses the whole call (the
/// blank one keeps the reference's per-path handling).
fn check_account(account: &str) -> Result<()> {
    if !account.trim().is_empty() {
        names::account(account)?;
    }
    Ok(())
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
        names::account(account)?;
        if username.is_empty() {
            log::warn!("Username is blank, skipping creation of association");
            return Ok(false);
        }
        names::user(username)?;
        log::info!("Adding user {username} to resource {account}");
        if self.client.get_association(username, account)?.is_some() {
            log::info!("Association already exists, skipping creation");
            return Ok(true);
        }
        self.create_logged(resource, &[username])
    }

    /// Creates the associations of `users` with one command; false when that failed
    /// (logged).
    fn create_logged(&self, resource: &WaldurResource, users: &[&str]) -> Result<bool> {
        let account = resource.backend_id.as_str();
        let list = users.join(",");
        log::info!("Creating association between {list} and {account}");
        match self.create_association(resource, users) {
            Ok(()) => {
                log::info!("Created association between {list} and {account}");
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
    /// `default_partition`, or plain. `users` share one command.
    fn create_association(&self, resource: &WaldurResource, users: &[&str]) -> Result<()> {
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
                    users,
                    account,
                    std::slice::from_ref(&qos),
                    Some(&qos),
                    partitions.as_deref(),
                    default_account,
                )?;
            }
            _ if use_offering_partitions => {
                self.client.create_association_with_partitions(
                    users,
                    account,
                    &offering_partitions,
                    default_account,
                )?;
            }
            _ => match &self.settings.default_partition {
                Some(partition) => {
                    self.client.create_association_with_partition(
                        users,
                        account,
                        partition,
                        default_account,
                    )?;
                }
                None => {
                    self.client
                        .create_association(users, account, default_account)?;
                }
            },
        }
        Ok(())
    }

    /// Adds every distinct username (a backend error for one user is logged), then creates
    /// the home directories of those added. Answers the users now associated, in the given
    /// order.
    ///
    /// The reference checks and creates association by association. This lists the
    /// account's associations once and creates all missing ones in one `add user
    /// u1,u2,...`; should that fail, it creates them one by one, so one bad user costs only
    /// that user. The associations left behind are the same. A name that is no valid user
    /// name is refused alone, before any command ([`acceptable`]).
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
        check_account(&resource.backend_id)?;
        let distinct = acceptable(&distinct(usernames), "add", &resource.backend_id);
        log::info!(
            "Adding {} users to resource {} on backend: {}",
            distinct.len(),
            resource.backend_id,
            distinct.join(", ")
        );
        let added = match self.add_users_in_bulk(resource, &distinct)? {
            Some(added) => added,
            None => self.add_users_one_by_one(resource, &distinct)?,
        };
        if self.settings.enable_user_homedir_account_creation {
            let umask = options.homedir_umask.as_deref().unwrap_or("0077");
            self.create_homedirs(&added, umask);
        }
        Ok(added)
    }

    fn add_users_one_by_one(
        &self,
        resource: &WaldurResource,
        usernames: &[&str],
    ) -> Result<Vec<String>> {
        one_by_one(usernames, "add", &resource.backend_id, |username| {
            self.add_user_to(resource, username)
        })
    }

    /// `None` when the users must go one by one: fewer than two, a blank account, or the
    /// account's associations could not be listed.
    fn add_users_in_bulk(
        &self,
        resource: &WaldurResource,
        usernames: &[&str],
    ) -> Result<Option<Vec<String>>> {
        let account = resource.backend_id.as_str();
        let Some(existing) = self.bulk_associations(account, usernames)? else {
            return Ok(None);
        };
        let mut added = BTreeSet::new();
        let mut missing = Vec::new();
        for &username in usernames {
            log::info!("Adding user {username} to resource {account}");
            if existing.contains(&username.to_lowercase()) {
                log::info!("Association already exists, skipping creation");
                added.insert(username);
            } else {
                missing.push(username);
            }
        }
        if missing.is_empty() || self.create_logged(resource, &missing)? {
            added.extend(missing);
        } else if missing.len() > 1 {
            log::warn!(
                "Creating {} associations in one command failed; creating them one by one",
                missing.len()
            );
            for username in missing {
                if self.create_logged(resource, &[username])? {
                    added.insert(username);
                }
            }
        }
        Ok(Some(in_given_order(usernames, &added)))
    }

    /// The users associated with `account` (lower-cased), for the bulk paths; `None` when
    /// the users must go one by one (see [`Self::add_users_in_bulk`]).
    fn bulk_associations(
        &self,
        account: &str,
        usernames: &[&str],
    ) -> Result<Option<BTreeSet<String>>> {
        if usernames.len() < 2 || account.trim().is_empty() {
            return Ok(None);
        }
        match self.client.association_users(account) {
            Ok(users) => Ok(Some(users)),
            Err(e) if is_backend_error(&e) => {
                log::warn!(
                    "Listing the associations of {account} failed ({}); going user by user",
                    e.message
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes every distinct username's association (after cancelling their jobs); a
    /// backend error for one user is logged. Answers the users no longer associated (those
    /// who never were included), in the given order.
    ///
    /// As for [`Self::add_users`]: one listing and one `remove user where name=u1,u2,...`
    /// where the reference checks and removes user by user; one by one when that fails.
    pub(crate) fn remove_users(
        &self,
        resource: &WaldurResource,
        usernames: &[String],
    ) -> Result<Vec<String>> {
        if usernames.is_empty() {
            log::info!("No users to remove");
            return Ok(Vec::new());
        }
        let account = resource.backend_id.as_str();
        check_account(account)?;
        let distinct = acceptable(&distinct(usernames), "remove", account);
        log::info!(
            "Removing {} users from resource {account} on backend: {}",
            distinct.len(),
            distinct.join(", ")
        );
        match self.remove_users_in_bulk(account, &distinct)? {
            Some(removed) => Ok(removed),
            None => self.remove_users_one_by_one(account, &distinct),
        }
    }

    fn remove_users_one_by_one(&self, account: &str, usernames: &[&str]) -> Result<Vec<String>> {
        one_by_one(usernames, "remove", account, |username| {
            self.remove_user_from(account, username)
        })
    }

    /// Removes the user's association after cancelling their jobs in the account; true also
    /// when there was none. False when that failed (logged); a blank account is a backend
    /// error.
    pub(crate) fn remove_user_from(&self, account: &str, username: &str) -> Result<bool> {
        if account.trim().is_empty() {
            return Err(Error::backend("Empty resource backend ID"));
        }
        names::account(account)?;
        names::user(username)?;
        log::info!("Removing user {username} from resource {account}");
        if self.client.get_association(username, account)?.is_none() {
            return Ok(true);
        }
        self.delete_logged(account, &[username])
    }

    /// Cancels the jobs of each of `users`, then removes their associations with one
    /// command; false when that failed (logged).
    fn delete_logged(&self, account: &str, users: &[&str]) -> Result<bool> {
        let list = users.join(",");
        log::info!("Deleting association between {list} and {account}");
        let outcome = users
            .iter()
            .try_for_each(|user| self.cancel_user_jobs(account, user))
            .and_then(|()| self.client.delete_association(users, account).map(drop));
        match outcome {
            Ok(()) => Ok(true),
            Err(e) if is_backend_error(&e) => {
                log::error!("Unable to delete association in the backend: {}", e.message);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn remove_users_in_bulk(
        &self,
        account: &str,
        usernames: &[&str],
    ) -> Result<Option<Vec<String>>> {
        let Some(existing) = self.bulk_associations(account, usernames)? else {
            return Ok(None);
        };
        let (present, absent): (Vec<&str>, Vec<&str>) = usernames
            .iter()
            .partition(|u| existing.contains(&u.to_lowercase()));
        for username in &absent {
            log::info!("Removing user {username} from resource {account}: no association");
        }
        let mut removed: BTreeSet<&str> = absent.into_iter().collect();
        if present.is_empty() || self.delete_logged(account, &present)? {
            removed.extend(present);
        } else if present.len() > 1 {
            log::warn!(
                "Removing {} associations in one command failed; removing them one by one",
                present.len()
            );
            let done = self.remove_users_one_by_one(account, &present)?;
            removed.extend(present.iter().filter(|u| done.iter().any(|d| d == *u)));
        }
        Ok(Some(in_given_order(usernames, &removed)))
    }

    /// Before an association goes: cancel the user's jobs in the account, if the user
    /// exists on this machine and has jobs there.
    pub(crate) fn cancel_user_jobs(&self, account: &str, username: &str) -> Result<()> {
        // Both checked before `id -u`: a refused name runs no command at all.
        names::account(account)?;
        names::user(username)?;
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
