//! Project members on the target: each source user resolved to a target user by the configured
//! method, then given (or stripped of) the mapped role in the target project of the resource.
//! Adding a role the user has, or removing one they lack, is success: a repeated cycle or a
//! retry after a lost answer changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use waldur_plugin_abi::wire::{JsonMap, UserOptions, WaldurResource};
use waldur_plugin_abi::{Error, Result};

use crate::federation::Federation;
use crate::settings::{MatchField, ResolveMethod};
use crate::target::{checked_uuid, field, uuid_field};

/// The role of a member whose source role is unknown (the reference's default).
pub const DEFAULT_ROLE: &str = "PROJECT.MEMBER";

/// What Mastermind answers to an add of a role the user has, and a removal of one they lack.
const ALREADY_HAS_ROLE: &str = "already has role";
const DOES_NOT_HAVE_ROLE: &str = "does not have";

impl Federation {
    /// The target user of a source identity (cuid, email or username as configured), or
    /// `None` when the target cannot resolve them and `user_not_found_action` is `warn`.
    pub(crate) fn resolve_user(
        &self,
        identity: &str,
        attributes: Option<&JsonMap>,
    ) -> Result<Option<String>> {
        match self.find_user(identity, attributes)? {
            Some(uuid) => Ok(Some(uuid)),
            None if self.settings.fail_on_unknown_user => Err(Error::backend(format!(
                "user {identity} is not found on the target Waldur (user_match_field: {})",
                self.settings.match_field.name()
            ))),
            None => {
                log::warn!(
                    "user {identity} is not found on the target Waldur (user_match_field: {}); skipped",
                    self.settings.match_field.name()
                );
                Ok(None)
            }
        }
    }

    /// The target user of a source identity by the configured method, remembered once found;
    /// `None` when the target has no such user.
    fn find_user(&self, identity: &str, attributes: Option<&JsonMap>) -> Result<Option<String>> {
        if let Some(known) = self.remembered().users.get(identity) {
            return Ok(Some(known.clone()));
        }
        let found = match self.settings.resolve_method {
            ResolveMethod::IdentityBridge => {
                self.resolve_by_identity_bridge(identity, attributes)?
            }
            ResolveMethod::UserField => {
                let field = match self.settings.match_field {
                    MatchField::Email => "email",
                    _ => "username",
                };
                self.resolve_by_field(field, identity)?
            }
            ResolveMethod::RemoteEduteams => match self.settings.match_field {
                MatchField::Cuid => self.resolve_by_cuid(identity)?,
                other => self.resolve_by_field(other.name(), identity)?,
            },
        };
        if let Some(uuid) = &found {
            self.remembered()
                .users
                .insert(identity.to_string(), uuid.clone());
        }
        Ok(found)
    }

    fn resolve_by_identity_bridge(
        &self,
        username: &str,
        attributes: Option<&JsonMap>,
    ) -> Result<Option<String>> {
        let empty = JsonMap::new();
        match self.bridge.push(username, attributes.unwrap_or(&empty)) {
            Ok(answer) => Ok(Some(uuid_field(&answer, "uuid")).filter(|u| !u.is_empty())),
            Err(e) if !e.is_transient() => {
                log::warn!("the identity bridge did not resolve {username}: {e}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn resolve_by_field(&self, field_name: &str, value: &str) -> Result<Option<String>> {
        let users = self
            .target
            .get("users/", &[(field_name, value.to_string())])?;
        Ok(users
            .as_array()
            .and_then(|u| u.first())
            .map(|u| uuid_field(u, "uuid"))
            .filter(|u| !u.is_empty()))
    }

    fn resolve_by_cuid(&self, cuid: &str) -> Result<Option<String>> {
        match self
            .target
            .post("remote-eduteams/", &json!({ "cuid": cuid }))
        {
            Ok(answer) => Ok(Some(uuid_field(&answer, "uuid")).filter(|u| !u.is_empty())),
            Err(e) if !e.is_transient() => {
                log::warn!("eduTEAMS did not resolve {cuid}: {e}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The target role uuid of a role name, read once.
    fn role_uuid(&self, name: &str) -> Result<String> {
        if let Some(uuid) = self.remembered().roles.get(name) {
            return Ok(uuid.clone());
        }
        let roles = self.target.get("roles/", &[("name", name.to_string())])?;
        let uuid = roles
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| field(r, "name") == name)
            .map(|r| uuid_field(r, "uuid"))
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::backend(format!("role {name} is not on the target Waldur")))?;
        self.remembered()
            .roles
            .insert(name.to_string(), uuid.clone());
        Ok(uuid)
    }

    /// The target project of a resource, read from the target resource.
    pub(crate) fn resource_project(&self, resource: &WaldurResource) -> Result<String> {
        let backend_id = &resource.backend_id;
        let target = self.target_resource(backend_id)?.ok_or_else(|| {
            Error::backend(format!(
                "resource {backend_id} does not exist on the target Waldur"
            ))
        })?;
        let project = uuid_field(&target, "project_uuid");
        if project.is_empty() {
            return Err(Error::backend(format!(
                "target resource {backend_id} has no project"
            )));
        }
        Ok(project)
    }

    /// Target user uuid -> the role names they hold in the project.
    fn project_roles(&self, project: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let grants = self
            .target
            .list(&format!("projects/{project}/list_users/"), &[])?;
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for grant in &grants {
            let user = uuid_field(grant, "user_uuid");
            let role = field(grant, "role_name");
            if !user.is_empty() && !role.is_empty() {
                roles.entry(user).or_default().push(role.to_string());
            }
        }
        Ok(roles)
    }

    fn grant(&self, project: &str, user: &str, role: &str) -> Result<()> {
        self.change_role(project, user, role, "add_user", ALREADY_HAS_ROLE)
    }

    fn revoke(&self, project: &str, user: &str, role: &str) -> Result<()> {
        self.change_role(project, user, role, "delete_user", DOES_NOT_HAVE_ROLE)
    }

    /// `POST projects/<uuid>/<action>/`; a 400 saying the change is already so is success.
    fn change_role(
        &self,
        project: &str,
        user: &str,
        role: &str,
        action: &str,
        already: &str,
    ) -> Result<()> {
        let body = json!({ "role": self.role_uuid(role)?, "user": user });
        match self
            .target
            .post(&format!("projects/{project}/{action}/"), &body)
        {
            Ok(_) => Ok(()),
            Err(e) if e.status == Some(400) && e.detail.to_lowercase().contains(already) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether members are found on the target by email. Every other way finds them by
    /// their source Waldur username (CUID), which the target then knows them by: the identity
    /// bridge creates them with it, eduTEAMS names its users by it, and `user_field` with
    /// `username` matches on it.
    fn matched_by_email(&self) -> bool {
        self.settings.resolve_method != ResolveMethod::IdentityBridge
            && self.settings.match_field == MatchField::Email
    }

    /// What identifies a member on the target: their email when matched by email, otherwise
    /// their CUID, as the agent passes them; the name the agent used when neither is known
    /// (it names members by CUID, see `capabilities`).
    fn identity<'a>(&self, options: &'a UserOptions, username: &'a str) -> &'a str {
        let known = |value: Option<&'a String>| value.map(String::as_str).filter(|v| !v.is_empty());
        if self.matched_by_email() {
            known(options.user_emails.get(username))
        } else {
            known(options.user_cuids.get(username)).or(known(options.user_cuid.as_ref()))
        }
        .unwrap_or(username)
    }

    /// Runs `change` for each user (true: changed; false: not on the target, skipped) and
    /// answers those changed. One user's failure does not stop the others; the call fails
    /// after them, naming every failed user, so the cycle reports it.
    fn each_member(
        usernames: &[String],
        what: &str,
        mut change: impl FnMut(&str) -> Result<bool>,
    ) -> Result<Vec<String>> {
        let mut changed = Vec::new();
        let mut failed = Vec::new();
        for username in usernames {
            match change(username) {
                Ok(true) => changed.push(username.clone()),
                Ok(false) => {}
                Err(e) => {
                    log::error!("{username}: {what} failed: {}", e.message);
                    failed.push(format!("{username} ({})", e.message));
                }
            }
        }
        if !failed.is_empty() {
            return Err(Error::backend(format!(
                "{} of {} user(s) not {what}: {}",
                failed.len(),
                usernames.len(),
                failed.join("; ")
            )));
        }
        Ok(changed)
    }

    /// Adds every user it can; answers those added. Users the target cannot resolve are
    /// skipped (`warn`) or, with `user_not_found_action: fail`, fail the call after the
    /// others were added.
    pub(crate) fn add_members(
        &self,
        resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let project = self.resource_project(resource)?;
        Self::each_member(usernames, "added to the target project", |username| {
            let identity = self.identity(options, username);
            let attributes = options.user_attributes.get(username);
            let Some(user) = self.resolve_user(identity, attributes)? else {
                return Ok(false);
            };
            let source_role = options
                .user_roles
                .get(username)
                .map(String::as_str)
                .unwrap_or(DEFAULT_ROLE);
            let role = self.settings.target_role(source_role);
            self.grant(&project, &user, role)?;
            log::info!("{username} has {role} in target project {project}");
            Ok(true)
        })
    }

    /// Removes every role each user holds in the target project (a role known from the
    /// source is mapped; otherwise what the target shows is removed). Answers those removed.
    pub(crate) fn remove_members(
        &self,
        resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let project = self.resource_project(resource)?;
        let held = self.project_roles(&project)?;
        Self::each_member(usernames, "removed from the target project", |username| {
            let identity = self.identity(options, username);
            let Some(user) = self.resolve_user(identity, None)? else {
                return Ok(false);
            };
            let roles: Vec<String> = match options.user_roles.get(username) {
                Some(source) => vec![self.settings.target_role(source).to_string()],
                None => held.get(&user).cloned().unwrap_or_default(),
            };
            if roles.is_empty() {
                log::info!("{username} holds no role in target project {project}");
            }
            for role in &roles {
                self.revoke(&project, &user, role)?;
                log::info!("{username} lost {role} in target project {project}");
            }
            Ok(true)
        })
    }

    /// Members whose target role differs from their mapped source role get the new role
    /// first and lose the old one after, so they never stand without access in between.
    pub(crate) fn reconcile_roles(
        &self,
        resource: &WaldurResource,
        existing: &[String],
        user_roles: &BTreeMap<String, String>,
        user_cuids: &BTreeMap<String, String>,
    ) -> Result<()> {
        if user_roles.is_empty() || existing.is_empty() {
            return Ok(());
        }
        let project = self.resource_project(resource)?;
        let held = self.project_roles(&project)?;
        for username in existing {
            let Some(source_role) = user_roles.get(username) else {
                continue;
            };
            let expected = self.settings.target_role(source_role);
            let identity = user_cuids
                .get(username)
                .map(String::as_str)
                .unwrap_or(username);
            let Some(user) = self.resolve_user(identity, None)? else {
                continue;
            };
            let Some(current) = held.get(&user) else {
                continue;
            };
            if current.iter().all(|r| r == expected) {
                continue;
            }
            log::info!(
                "{username}: role in target project {project} {} -> {expected}",
                current.join(", ")
            );
            self.grant(&project, &user, expected)?;
            for stale in current.iter().filter(|r| *r != expected) {
                self.revoke(&project, &user, stale)?;
            }
        }
        Ok(())
    }

    /// The target resource's team, named as the agent names members: by source Waldur
    /// username (reference `list_resource_users`, which answers the target's usernames and
    /// so, matched by email, names nobody the agent knows: it then adds everyone again and
    /// never removes anyone).
    pub(crate) fn team_usernames(&self, backend_id: &str) -> Result<Vec<String>> {
        let uuid = checked_uuid(backend_id, "resource backend id")?;
        let team = self
            .target
            .get(&format!("marketplace-resources/{uuid}/team/"), &[])?;
        let team: Vec<&serde_json::Value> = team.as_array().into_iter().flatten().collect();
        if self.matched_by_email() {
            return self.source_names_of(&team);
        }
        Ok(team
            .iter()
            .map(|m| field(m, "username").to_string())
            .filter(|u| !u.is_empty())
            .collect())
    }

    /// Matched by email, the target's usernames are its own: each team member is named by
    /// the source offering user whose email resolves to them. Members no source offering user
    /// resolves to are not the federation's; they are left out, so never removed. Resolutions
    /// are remembered, so a steady team costs the one list of source offering users.
    fn source_names_of(&self, team: &[&serde_json::Value]) -> Result<Vec<String>> {
        let members: Vec<String> = team
            .iter()
            .map(|m| uuid_field(m, "uuid"))
            .filter(|u| !u.is_empty())
            .collect();
        let users = self.source_list(
            "marketplace-offering-users/",
            &json!({"offering_uuid": self.source_offering_uuid()?, "is_restricted": false}),
        )?;
        let mut candidates: Vec<(&str, &str)> = users
            .iter()
            .map(|u| (field(u, "user_username"), field(u, "user_email")))
            .filter(|(name, email)| !name.is_empty() && !email.is_empty())
            .collect();
        // The remembered first (free), then the others until every member has a name.
        candidates.sort_by_key(|(_, email)| !self.remembered().users.contains_key(*email));
        let mut unnamed: BTreeSet<&str> = members.iter().map(String::as_str).collect();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for (source, email) in candidates {
            if unnamed.is_empty() {
                break;
            }
            if let Some(target) = self.find_user(email, None)? {
                if unnamed.remove(target.as_str()) {
                    names.insert(target, source.to_string());
                }
            }
        }
        Ok(members
            .iter()
            .filter_map(|m| names.get(m).cloned())
            .collect())
    }
}
