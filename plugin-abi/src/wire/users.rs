use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JsonMap;

/// A member of a project team (`marketplace-provider-resources/{uuid}/team/`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectUser {
    pub uuid: String,
    pub url: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    /// `PROJECT.ADMIN`, `PROJECT.MANAGER` or `PROJECT.MEMBER`.
    pub role: String,
    pub expiration_time: Option<String>,
    pub offering_user_username: Option<String>,
    pub offering_user_state: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// An offering user (`marketplace-offering-users`): a Waldur user's account on one offering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfferingUser {
    pub uuid: String,
    pub url: String,
    pub user_uuid: String,
    /// The username on the backend; `None` until one is assigned.
    pub username: Option<String>,
    pub state: String,
    pub offering_uuid: String,
    pub user_username: String,
    pub user_email: String,
    pub user_full_name: String,
    pub user_first_name: String,
    pub user_last_name: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// What the order processor knows about the people of a project when it creates a resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserContext {
    pub team: Vec<ProjectUser>,
    pub offering_users: Vec<OfferingUser>,
    /// Team members by user uuid.
    pub user_mappings: BTreeMap<String, ProjectUser>,
    /// Offering users by user uuid.
    pub offering_user_mappings: BTreeMap<String, OfferingUser>,
    /// Plan quotas by component type (fresh creates only).
    pub plan_quotas: BTreeMap<String, f64>,
    /// Public SSH keys by key uuid (fresh creates only).
    pub ssh_keys: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The keyword arguments the reference agent passes to `add_user(s)` / `remove_user(s)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserOptions {
    pub homedir_umask: Option<String>,
    /// Waldur user identifiers (CUIDs) by username.
    pub user_cuids: BTreeMap<String, String>,
    /// Project roles by username.
    pub user_roles: BTreeMap<String, String>,
    /// Exposed user attributes by username.
    pub user_attributes: BTreeMap<String, JsonMap>,
    pub user_emails: BTreeMap<String, String>,
    /// Offering-user states by username.
    pub offering_user_states: BTreeMap<String, String>,
    /// A single user's CUID (STOMP `username_set` events).
    pub user_cuid: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The offering a username-management backend works for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OfferingInfo {
    pub name: String,
    pub uuid: String,
    pub api_url: String,
    pub backend_type: String,
    pub plugin_options: JsonMap,
    #[serde(flatten)]
    pub extra: JsonMap,
}
