//! The backend's data model (what `state.json` holds) and the operations on it.
//!
//! Everything here is pure: no files, no locks. [`crate::store`] loads a [`State`], lets one
//! operation change it and saves it, so every rule below is testable in memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use waldur_plugin_abi::wire::BackendLimits;
use waldur_plugin_abi::{Error, Result};

/// Format version of `state.json`; a file with another version is refused rather than
/// misread.
pub const STATE_VERSION: u32 = 1;

/// The whole backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Accounts by name (customers, projects and allocations alike, as in SLURM).
    #[serde(default)]
    pub accounts: BTreeMap<String, Account>,
    /// Home directories "created" by `client_create_linux_user_homedir`, by username.
    #[serde(default)]
    pub homedirs: BTreeMap<String, Homedir>,
    /// User profiles the `demo-profiles` username entry keeps (`sync_user_profiles`), by username.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
    /// The attributes the agent last passed with each user it added (`user_attributes` of
    /// the add options), by username: what a backend creating user accounts would use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_attributes: BTreeMap<String, waldur_plugin_abi::wire::JsonMap>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            accounts: BTreeMap::new(),
            homedirs: BTreeMap::new(),
            profiles: BTreeMap::new(),
            user_attributes: BTreeMap::new(),
        }
    }
}

/// One account of the hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    pub name: String,
    pub description: String,
    /// The project account an allocation belongs to; its own name for customers and projects
    /// (the agent's delete logic finds a project's allocations by this field).
    pub organization: String,
    /// `None` only for accounts created without a parent.
    pub parent: Option<String>,
    /// Account limits in backend units.
    pub limits: BackendLimits,
    /// Per-user limits in backend units, by username.
    pub user_limits: BTreeMap<String, BackendLimits>,
    /// Associated users, by username.
    pub users: BTreeMap<String, Membership>,
    pub qos: Qos,
    /// Resource API keys by client id (see [`crate::keys`]); absent from files without any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub api_keys: BTreeMap<String, ApiKey>,
    /// How many keys this account has minted, so client ids are never reused.
    #[serde(skip_serializing_if = "is_zero")]
    pub keys_minted: u32,
    /// The Waldur project the agent last passed to `sync_resource_project`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_project: Option<serde_json::Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A user's profile as the `demo-profiles` username entry last synced it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub full_name: String,
    pub email: String,
    /// The accounts the user was associated with when the profile was synced: membership
    /// sync syncs profiles before it adds anyone, and this shows it.
    pub accounts_at_sync: Vec<String>,
    /// The user left the offering (`deactivate_users`).
    pub deactivated: bool,
}

/// A resource API key: its current value and how often it was rotated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKey {
    pub api_key: String,
    pub rotations: u32,
}

/// A user's association with an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Membership {
    /// The user's default account, as SLURM's `DefaultAccount=`.
    pub default_account: String,
}

/// The account's QoS: what pause, downscale and restore switch between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    #[default]
    Normal,
    Paused,
    Downscaled,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Paused => "paused",
            Self::Downscaled => "downscaled",
        }
    }
}

/// A home directory the backend would have created with `mkhomedir_helper`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Homedir {
    pub umask: String,
}

/// Account names become file names (`usage/<month>/<account>.json`), so anything that could
/// leave that directory or confuse a shell is refused.
pub fn check_account_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::backend(format!(
            "demo: invalid account name {name:?} (must be non-empty, without '/', '\\' or spaces)"
        )));
    }
    Ok(())
}

fn check_username(username: &str) -> Result<()> {
    if username.trim().is_empty() || username.chars().any(char::is_control) {
        return Err(Error::backend(format!(
            "demo: invalid username {username:?}"
        )));
    }
    Ok(())
}

fn missing(name: &str) -> Error {
    Error::backend(format!("demo: account {name} does not exist"))
}

impl State {
    /// Checks what serde cannot: the version and that every account is filed under its name.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.version != STATE_VERSION {
            return Err(format!(
                "unsupported version {} (this plugin reads version {STATE_VERSION})",
                self.version
            ));
        }
        match self.accounts.iter().find(|(key, a)| **key != a.name) {
            Some((key, a)) => Err(format!("account {key:?} is filed with name {:?}", a.name)),
            None => Ok(()),
        }
    }

    pub fn account(&self, name: &str) -> Result<&Account> {
        self.accounts.get(name).ok_or_else(|| missing(name))
    }

    pub fn account_mut(&mut self, name: &str) -> Result<&mut Account> {
        self.accounts.get_mut(name).ok_or_else(|| missing(name))
    }

    /// Creates an account. The parent must exist, except the implicit `root` account (like
    /// SLURM's root, it is always there and never stored).
    pub fn create_account(
        &mut self,
        name: &str,
        description: &str,
        organization: &str,
        parent: Option<&str>,
        root: &str,
    ) -> Result<()> {
        check_account_name(name)?;
        if self.accounts.contains_key(name) {
            return Err(Error::backend(format!(
                "demo: account {name} already exists"
            )));
        }
        if let Some(parent) = parent {
            if parent != root && !self.accounts.contains_key(parent) {
                return Err(Error::backend(format!(
                    "demo: cannot create account {name}: parent account {parent} does not exist"
                )));
            }
        }
        self.accounts.insert(
            name.to_string(),
            Account {
                name: name.to_string(),
                description: description.to_string(),
                organization: organization.to_string(),
                parent: parent.map(str::to_string),
                ..Account::default()
            },
        );
        Ok(())
    }

    /// Deletes an account; false when it did not exist (deleting is idempotent, so a retried
    /// terminate order does not fail). Refused while child accounts remain, because they
    /// would be left pointing at a missing parent.
    pub fn delete_account(&mut self, name: &str) -> Result<bool> {
        if !self.accounts.contains_key(name) {
            return Ok(false);
        }
        let children = self.children(name);
        if !children.is_empty() {
            return Err(Error::backend(format!(
                "demo: cannot delete account {name}: it still has child accounts {}",
                children.join(", ")
            )));
        }
        self.accounts.remove(name);
        Ok(true)
    }

    pub fn children(&self, name: &str) -> Vec<String> {
        self.accounts
            .values()
            .filter(|a| a.parent.as_deref() == Some(name))
            .map(|a| a.name.clone())
            .collect()
    }

    /// Sets the given components and keeps the others, as `sacctmgr modify ... set
    /// GrpTRESMins=` does (the agent sends only the components it wants to change).
    pub fn set_limits(&mut self, name: &str, limits: &BackendLimits) -> Result<()> {
        let account = self.account_mut(name)?;
        account
            .limits
            .extend(limits.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(())
    }

    /// Replaces a user's limits; empty limits clear them (the reference's `{}`). Answers false
    /// when the user is not associated: like SLURM ("Nothing modified") that changes nothing.
    pub fn set_user_limits(
        &mut self,
        name: &str,
        username: &str,
        limits: &BackendLimits,
    ) -> Result<bool> {
        let account = self.account_mut(name)?;
        if !account.users.contains_key(username) {
            return Ok(false);
        }
        if limits.is_empty() {
            account.user_limits.remove(username);
        } else {
            account
                .user_limits
                .insert(username.to_string(), limits.clone());
        }
        Ok(true)
    }

    /// Associates a user; false when the association already existed.
    pub fn associate(&mut self, username: &str, name: &str, default_account: &str) -> Result<bool> {
        check_username(username)?;
        let account = self.account_mut(name)?;
        if account.users.contains_key(username) {
            return Ok(false);
        }
        account.users.insert(
            username.to_string(),
            Membership {
                default_account: default_account.to_string(),
            },
        );
        Ok(true)
    }

    /// Removes a user's association and the user's limits on that account; false when there
    /// was none.
    pub fn dissociate(&mut self, username: &str, name: &str) -> Result<bool> {
        let account = self.account_mut(name)?;
        account.user_limits.remove(username);
        Ok(account.users.remove(username).is_some())
    }

    /// Switches the QoS; false when it already had that value.
    pub fn set_qos(&mut self, name: &str, qos: Qos) -> Result<bool> {
        let account = self.account_mut(name)?;
        let changed = account.qos != qos;
        account.qos = qos;
        Ok(changed)
    }

    /// Records a home directory; false when it existed (`mkhomedir_helper` leaves an existing
    /// one alone, umask included).
    pub fn record_homedir(&mut self, username: &str, umask: &str) -> Result<bool> {
        check_username(username)?;
        check_umask(umask)?;
        if self.homedirs.contains_key(username) {
            return Ok(false);
        }
        self.homedirs.insert(
            username.to_string(),
            Homedir {
                umask: umask.to_string(),
            },
        );
        Ok(true)
    }
}

/// An empty umask means "the helper's default"; anything else must be octal <= 0777, as the
/// reference's `default_homedir_umask` schema requires.
fn check_umask(umask: &str) -> Result<()> {
    if umask.is_empty() {
        return Ok(());
    }
    match u32::from_str_radix(umask, 8) {
        Ok(value) if value <= 0o777 => Ok(()),
        _ => Err(Error::backend(format!(
            "demo: invalid umask {umask:?} (expected octal, at most 0777)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(names: &[(&str, Option<&str>)]) -> State {
        let mut state = State::default();
        for (name, parent) in names {
            state
                .create_account(name, name, name, *parent, "root")
                .unwrap();
        }
        state
    }

    #[test]
    fn accounts_need_an_existing_parent_except_root() {
        let mut state = state_with(&[("c", Some("root"))]);
        let err = state
            .create_account("a", "A", "p", Some("p"), "root")
            .unwrap_err();
        assert!(err.message.contains("parent account p does not exist"));
        state
            .create_account("p", "P", "p", Some("c"), "root")
            .unwrap();
        state
            .create_account("a", "A", "p", Some("p"), "root")
            .unwrap();
        let err = state
            .create_account("a", "A", "p", Some("p"), "root")
            .unwrap_err();
        assert_eq!(err.message, "demo: account a already exists");
    }

    #[test]
    fn bad_account_names_are_refused() {
        let mut state = State::default();
        for name in ["", "..", "a/b", "a b", "x\\y"] {
            assert!(
                state.create_account(name, "", "", None, "root").is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn delete_refuses_parents_and_is_idempotent() {
        let mut state = state_with(&[("c", Some("root")), ("p", Some("c"))]);
        assert!(state.delete_account("c").unwrap_err().message.contains("p"));
        assert!(state.delete_account("p").unwrap());
        assert!(!state.delete_account("p").unwrap());
    }

    #[test]
    fn limits_merge_and_user_limits_replace() {
        let mut state = state_with(&[("a", None)]);
        state
            .set_limits(
                "a",
                &BTreeMap::from([("cpu".into(), 10), ("mem".into(), 5)]),
            )
            .unwrap();
        state
            .set_limits("a", &BTreeMap::from([("cpu".into(), 0)]))
            .unwrap();
        assert_eq!(
            state.account("a").unwrap().limits,
            BTreeMap::from([("cpu".into(), 0), ("mem".into(), 5)])
        );
        let one = BTreeMap::from([("cpu".into(), 1)]);
        assert!(!state.set_user_limits("a", "alice", &one).unwrap());
        assert!(state.associate("alice", "a", "root").unwrap());
        assert!(!state.associate("alice", "a", "root").unwrap());
        assert!(state.set_user_limits("a", "alice", &one).unwrap());
        assert_eq!(state.account("a").unwrap().user_limits["alice"], one);
        state
            .set_user_limits("a", "alice", &BTreeMap::new())
            .unwrap();
        assert!(state.account("a").unwrap().user_limits.is_empty());
        state.set_user_limits("a", "alice", &one).unwrap();
        assert!(state.dissociate("alice", "a").unwrap());
        assert!(state.account("a").unwrap().user_limits.is_empty());
        assert!(!state.dissociate("alice", "a").unwrap());
    }

    #[test]
    fn qos_reports_changes_only() {
        let mut state = state_with(&[("a", None)]);
        assert!(!state.set_qos("a", Qos::Normal).unwrap());
        assert!(state.set_qos("a", Qos::Paused).unwrap());
        assert!(!state.set_qos("a", Qos::Paused).unwrap());
        assert!(state.set_qos("x", Qos::Paused).is_err());
    }

    #[test]
    fn homedirs_keep_the_first_umask() {
        let mut state = State::default();
        assert!(state.record_homedir("alice", "0077").unwrap());
        assert!(!state.record_homedir("alice", "0022").unwrap());
        assert_eq!(state.homedirs["alice"].umask, "0077");
        assert!(state.record_homedir("bob", "999").is_err());
        assert!(state.record_homedir("", "0077").is_err());
    }

    #[test]
    fn check_catches_version_and_misfiled_accounts() {
        let mut state = state_with(&[("a", None)]);
        assert!(state.check().is_ok());
        state.accounts.get_mut("a").unwrap().name = "b".into();
        assert!(state.check().is_err());
        let state = State {
            version: 2,
            ..State::default()
        };
        assert!(state.check().unwrap_err().contains("version 2"));
    }
}
