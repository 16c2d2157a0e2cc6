//! The membership diff of one resource (reference §4.5): who must be added to the backend
//! account, who removed, and what the plugin is told about each user.

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{CapabilitySet, JsonMap, OfferingUser, ProjectUser, UserOptions};

/// What to do for one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MembershipPlan {
    /// In the team and on the backend.
    pub existing: BTreeSet<String>,
    /// In the team, not yet on the backend.
    pub to_add: BTreeSet<String>,
    /// On the backend, no longer in the team (or everyone, for a restricted resource).
    pub to_remove: BTreeSet<String>,
    /// What the plugin's add/remove calls receive.
    pub options: UserOptions,
}

/// Which team field names a user on the backend.
fn member_key<'a>(member: &'a ProjectUser, capabilities: &CapabilitySet) -> Option<&'a str> {
    let key = if capabilities.user_resolve_method == "identity_bridge" {
        Some(member.username.as_str())
    } else {
        member.offering_user_username.as_deref()
    };
    key.filter(|k| !k.is_empty())
}

/// The exposed attributes of an offering user (`user_*` fields but the username itself),
/// keyed without the `user_` prefix, as the reference's `_build_user_attributes_mapping`.
pub(crate) fn user_attributes(user: &OfferingUser) -> JsonMap {
    let mut attributes = JsonMap::new();
    for (key, value) in [
        ("full_name", &user.user_full_name),
        ("first_name", &user.user_first_name),
        ("last_name", &user.user_last_name),
        ("email", &user.user_email),
    ] {
        if !value.is_empty() {
            attributes.insert(key.to_string(), value.clone().into());
        }
    }
    for (key, value) in &user.extra {
        if let Some(name) = key.strip_prefix("user_") {
            if name != "username" && name != "uuid" && !value.is_null() {
                attributes.insert(name.to_string(), value.clone());
            }
        }
    }
    attributes
}

/// Plans the sync of `backend_users` with the resource's `team`.
pub fn plan(
    team: &[ProjectUser],
    backend_users: &[String],
    offering_users: &[OfferingUser],
    capabilities: &CapabilitySet,
    restrict_member_access: bool,
    homedir_umask: Option<&str>,
) -> MembershipPlan {
    let backend: BTreeSet<String> = backend_users.iter().cloned().collect();
    if capabilities.skip_resource_team_diff {
        return MembershipPlan {
            existing: backend,
            ..Default::default()
        };
    }
    let identity = capabilities.user_resolve_method == "identity_bridge";
    let mut options = UserOptions {
        homedir_umask: homedir_umask.map(str::to_string),
        ..Default::default()
    };
    let mut team_keys = BTreeSet::new();
    for member in team {
        let Some(key) = member_key(member, capabilities) else {
            continue; // no account on this offering yet: nothing to add
        };
        team_keys.insert(key.to_string());
        options
            .user_roles
            .insert(key.to_string(), member.role.clone());
        options
            .user_cuids
            .insert(key.to_string(), member.username.clone());
    }
    for user in offering_users {
        let key = if identity {
            Some(user.user_username.as_str())
        } else {
            user.username.as_deref()
        };
        // Only the users this resource's calls can name: its team and the backend's users.
        // Every other offering user of the offering would cost a copy per resource.
        let Some(key) = key.filter(|k| team_keys.contains(*k) || backend.contains(*k)) else {
            continue;
        };
        if !user.user_email.is_empty() {
            options
                .user_emails
                .insert(key.to_string(), user.user_email.clone());
        }
        options
            .offering_user_states
            .insert(key.to_string(), user.state.clone());
        options
            .user_attributes
            .insert(key.to_string(), user_attributes(user));
    }
    let existing: BTreeSet<String> = team_keys.intersection(&backend).cloned().collect();
    if restrict_member_access {
        // Nobody may use a restricted resource: everyone the backend has goes.
        return MembershipPlan {
            to_remove: existing.clone(),
            existing: BTreeSet::new(),
            to_add: BTreeSet::new(),
            options,
        };
    }
    MembershipPlan {
        to_add: team_keys.difference(&backend).cloned().collect(),
        to_remove: backend.difference(&team_keys).cloned().collect(),
        existing,
        options,
    }
}

/// [`plan`] narrowed to one user (a role event): the team and the backend's users are cut
/// down to that user, so the plan adds or removes only them, by the same rules.
pub fn plan_for_user(
    user_uuid: &str,
    team: &[ProjectUser],
    backend_users: &[String],
    offering_user: &OfferingUser,
    capabilities: &CapabilitySet,
    restrict_member_access: bool,
    homedir_umask: Option<&str>,
) -> MembershipPlan {
    let key = if capabilities.user_resolve_method == "identity_bridge" {
        offering_user.user_username.as_str()
    } else {
        offering_user.username.as_deref().unwrap_or_default()
    };
    let member: Vec<ProjectUser> = team
        .iter()
        .filter(|m| {
            crate::waldur::normalize_uuid(&m.uuid) == crate::waldur::normalize_uuid(user_uuid)
        })
        .cloned()
        .collect();
    let backend: Vec<String> = backend_users
        .iter()
        .filter(|u| !key.is_empty() && u.as_str() == key)
        .cloned()
        .collect();
    plan(
        &member,
        &backend,
        std::slice::from_ref(offering_user),
        capabilities,
        restrict_member_access,
        homedir_umask,
    )
}

/// The limits to tell Waldur after reading the backend's (reference `_sync_resource_limits`:
/// the backend is the truth), or `None` when Waldur already agrees.
///
/// Plugins answer whole numbers in Waldur units (`BackendLimits`, converted with
/// `int(value / unit_factor)`), so an order for 2.5 comes back as 2. A Waldur value whose
/// truncation is the backend's number only differs by that rounding: it is kept, fraction
/// and all, and never pushed back (the reference pushes the 2). Any other difference, and a
/// component only the backend limits, is the backend's value.
pub fn limits_to_push(
    waldur: &BTreeMap<String, f64>,
    backend: &BTreeMap<String, i64>,
) -> Option<BTreeMap<String, f64>> {
    let mut changed = false;
    let pushed: BTreeMap<String, f64> = backend
        .iter()
        .map(|(component, &value)| {
            let held = waldur.get(component).copied();
            match held {
                Some(held) if held.trunc() == value as f64 => (component.clone(), held),
                _ => {
                    changed = true;
                    (component.clone(), value as f64)
                }
            }
        })
        .collect();
    // A component Waldur limits and the backend no longer does is a difference too.
    changed |= waldur.keys().any(|k| !backend.contains_key(k));
    changed.then_some(pushed)
}

/// Per-user limits to apply (reference `_sync_resource_user_limits`): Waldur's limits for each
/// user of the resource, and `{}` (unset) for users the backend limits but Waldur no longer does.
pub fn user_limits_to_apply(
    usernames: &BTreeSet<String>,
    waldur: &BTreeMap<String, BTreeMap<String, i64>>,
    backend: &BTreeMap<String, BTreeMap<String, i64>>,
) -> Vec<(String, BTreeMap<String, i64>)> {
    usernames
        .iter()
        .filter_map(|user| match (waldur.get(user), backend.get(user)) {
            (Some(limits), current) if current != Some(limits) => {
                Some((user.clone(), limits.clone()))
            }
            (None, Some(current)) if !current.is_empty() => Some((user.clone(), BTreeMap::new())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(cuid: &str, username: Option<&str>, role: &str) -> ProjectUser {
        ProjectUser {
            username: cuid.into(),
            offering_user_username: username.map(str::to_string),
            role: role.into(),
            ..Default::default()
        }
    }

    fn account(username: &str, email: &str, state: &str) -> OfferingUser {
        OfferingUser {
            username: Some(username.into()),
            user_username: format!("{username}@idp"),
            user_email: email.into(),
            user_full_name: format!("Full {username}"),
            state: state.into(),
            ..Default::default()
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diff_adds_team_members_and_removes_leavers() {
        let team = [
            member("alice@idp", Some("alice"), "PROJECT.ADMIN"),
            member("bob@idp", Some("bob"), "PROJECT.MEMBER"),
            member("carol@idp", None, "PROJECT.MEMBER"),
        ];
        let backend = ["alice".to_string(), "dave".to_string()];
        let users = [
            account("alice", "a@x", "OK"),
            account("bob", "b@x", "Creating"),
        ];
        let plan = plan(
            &team,
            &backend,
            &users,
            &CapabilitySet::default(),
            false,
            Some("0077"),
        );
        assert_eq!(plan.existing, names(&["alice"]));
        assert_eq!(plan.to_add, names(&["bob"]));
        assert_eq!(plan.to_remove, names(&["dave"]));
        assert_eq!(plan.options.user_roles["alice"], "PROJECT.ADMIN");
        assert_eq!(plan.options.user_cuids["bob"], "bob@idp");
        assert_eq!(plan.options.user_emails["bob"], "b@x");
        assert_eq!(plan.options.offering_user_states["bob"], "Creating");
        assert_eq!(
            plan.options.user_attributes["alice"]["full_name"],
            "Full alice"
        );
        assert_eq!(plan.options.homedir_umask.as_deref(), Some("0077"));
    }

    #[test]
    fn restricted_resources_lose_every_member() {
        let team = [member("alice@idp", Some("alice"), "PROJECT.ADMIN")];
        let plan = plan(
            &team,
            &["alice".into(), "eve".into()],
            &[],
            &CapabilitySet::default(),
            true,
            None,
        );
        assert!(plan.to_add.is_empty());
        assert_eq!(plan.to_remove, names(&["alice"]));
    }

    #[test]
    fn identity_bridge_keys_by_waldur_username_and_skip_diff_keeps_backend() {
        let caps = CapabilitySet {
            user_resolve_method: "identity_bridge".into(),
            ..Default::default()
        };
        let team = [member("alice@idp", None, "PROJECT.ADMIN")];
        let plan = plan(&team, &[], &[], &caps, false, None);
        assert_eq!(plan.to_add, names(&["alice@idp"]));

        let skip = CapabilitySet {
            skip_resource_team_diff: true,
            ..Default::default()
        };
        let plan = super::plan(&team, &["x".into()], &[], &skip, false, None);
        assert_eq!(plan.existing, names(&["x"]));
        assert!(plan.to_add.is_empty() && plan.to_remove.is_empty());
    }

    #[test]
    fn limits_differing_only_by_rounding_are_not_pushed() {
        let waldur = BTreeMap::from([("cpu".to_string(), 2.5), ("mem".to_string(), 4.0)]);
        let same = BTreeMap::from([("cpu".to_string(), 2), ("mem".to_string(), 4)]);
        assert_eq!(limits_to_push(&waldur, &same), None);
        // A real change keeps the other component's fraction.
        let changed = BTreeMap::from([("cpu".to_string(), 2), ("mem".to_string(), 8)]);
        assert_eq!(
            limits_to_push(&waldur, &changed),
            Some(BTreeMap::from([
                ("cpu".to_string(), 2.5),
                ("mem".to_string(), 8.0)
            ]))
        );
        let lower = BTreeMap::from([("cpu".to_string(), 1), ("mem".to_string(), 4)]);
        assert_eq!(
            limits_to_push(&waldur, &lower).unwrap()["cpu"],
            1.0,
            "more than rounding"
        );
        let only_cpu = BTreeMap::from([("cpu".to_string(), 2)]);
        assert!(limits_to_push(&waldur, &only_cpu).is_some());
        assert_eq!(limits_to_push(&BTreeMap::new(), &BTreeMap::new()), None);
    }

    #[test]
    fn user_limits_set_changed_and_unset_dropped() {
        let users = names(&["a", "b", "c", "d"]);
        let waldur = BTreeMap::from([
            ("a".to_string(), BTreeMap::from([("cpu".to_string(), 10)])),
            ("b".to_string(), BTreeMap::from([("cpu".to_string(), 5)])),
        ]);
        let backend = BTreeMap::from([
            ("b".to_string(), BTreeMap::from([("cpu".to_string(), 5)])),
            ("c".to_string(), BTreeMap::from([("cpu".to_string(), 1)])),
        ]);
        assert_eq!(
            user_limits_to_apply(&users, &waldur, &backend),
            [
                ("a".to_string(), BTreeMap::from([("cpu".to_string(), 10)])),
                ("c".to_string(), BTreeMap::new()),
            ]
        );
    }
}
