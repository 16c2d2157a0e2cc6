//! The people side: project team members, offering users, the `user_context` the agent
//! builds for membership calls, per-call user options and the offering's own details.

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
///
/// `user_mappings` and `offering_user_mappings` are indexes of `team` and `offering_users` by
/// user uuid. They do not travel: the receiving side rebuilds them, which halves what a large
/// team costs to send (see the plugin_abi benchmark).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, from = "UserContextWire")]
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
    pub extra: JsonMap,
}

impl UserContext {
    /// Fills the two indexes from `team` and `offering_users`.
    pub fn rebuild_mappings(&mut self) {
        self.user_mappings = self
            .team
            .iter()
            .map(|u| (u.uuid.clone(), u.clone()))
            .collect();
        self.offering_user_mappings = self
            .offering_users
            .iter()
            .map(|u| (u.user_uuid.clone(), u.clone()))
            .collect();
    }
}

/// The form a [`UserContext`] travels in. Mappings sent by another sender are accepted.
#[derive(Default, Deserialize)]
#[serde(default)]
struct UserContextWire {
    team: Vec<ProjectUser>,
    offering_users: Vec<OfferingUser>,
    user_mappings: Option<BTreeMap<String, ProjectUser>>,
    offering_user_mappings: Option<BTreeMap<String, OfferingUser>>,
    plan_quotas: BTreeMap<String, f64>,
    ssh_keys: BTreeMap<String, String>,
    #[serde(flatten)]
    extra: JsonMap,
}

impl From<UserContextWire> for UserContext {
    fn from(wire: UserContextWire) -> Self {
        let mut context = Self {
            team: wire.team,
            offering_users: wire.offering_users,
            plan_quotas: wire.plan_quotas,
            ssh_keys: wire.ssh_keys,
            extra: wire.extra,
            ..Default::default()
        };
        match (wire.user_mappings, wire.offering_user_mappings) {
            (Some(users), Some(offering_users)) => {
                context.user_mappings = users;
                context.offering_user_mappings = offering_users;
            }
            _ => context.rebuild_mappings(),
        }
        context
    }
}

impl Serialize for UserContext {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            team: &'a [ProjectUser],
            offering_users: &'a [OfferingUser],
            plan_quotas: &'a BTreeMap<String, f64>,
            ssh_keys: &'a BTreeMap<String, String>,
            #[serde(flatten)]
            extra: &'a JsonMap,
        }
        Borrowed {
            team: &self.team,
            offering_users: &self.offering_users,
            plan_quotas: &self.plan_quotas,
            ssh_keys: &self.ssh_keys,
            extra: &self.extra,
        }
        .serialize(serializer)
    }
}

/// The keyword arguments the reference agent passes to `add_user(s)` / `remove_user(s)`.
/// The maps hold the users the call concerns (the resource's team and the users its backend
/// has), not every offering user of the offering as the reference's do: a plugin looks up
/// only users it was asked to add or remove, and a large offering would copy thousands of
/// entries for each resource.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_context_mappings_are_rebuilt_not_sent() {
        let member = ProjectUser {
            uuid: "u1".into(),
            username: "alice".into(),
            ..Default::default()
        };
        let account = OfferingUser {
            user_uuid: "u1".into(),
            username: Some("alice1".into()),
            ..Default::default()
        };
        let mut context = UserContext {
            team: vec![member.clone()],
            offering_users: vec![account.clone()],
            ..Default::default()
        };
        context.rebuild_mappings();
        let json = serde_json::to_value(&context).unwrap();
        assert!(json.get("user_mappings").is_none());
        let back: UserContext = serde_json::from_value(json).unwrap();
        assert_eq!(back, context);
        assert_eq!(back.user_mappings["u1"], member);
        assert_eq!(back.offering_user_mappings["u1"], account);
    }

    #[test]
    fn mappings_sent_by_another_sender_are_kept() {
        let json = serde_json::json!({
            "team": [],
            "user_mappings": {"x": {"username": "bob"}},
            "offering_user_mappings": {},
            "unknown_key": 1
        });
        let context: UserContext = serde_json::from_value(json).unwrap();
        assert_eq!(context.user_mappings["x"].username, "bob");
        assert_eq!(context.extra["unknown_key"], 1);
    }
}
