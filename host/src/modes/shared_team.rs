//! The team a membership pass works from (reference `_get_waldur_resource_team`). Plugins of
//! `shared_project_membership` collapse many resources onto one backend project (Waldur to
//! Waldur federation): there a user stays while they consented to ANY offering with a
//! resource in the project, so the team is the union of the consented teams of all the
//! project's resources, not this resource's alone (which would revoke a user who consented
//! to a sibling offering only).

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{CapabilitySet, ProjectUser, WaldurResource};

use super::error::ModeError;
use super::runtime::Session;
use crate::waldur::{normalize_uuid, ResourceFilter};

/// The fields the sibling listing asks for (reference: `field=uuid&field=project_uuid`).
const SIBLING_FIELDS: &[&str] = &["uuid", "project_uuid"];

/// Merges teams by user (uuid, else username); a member seen twice is kept once.
fn union(teams: Vec<Vec<ProjectUser>>) -> Vec<ProjectUser> {
    let mut merged: BTreeMap<String, ProjectUser> = BTreeMap::new();
    for member in teams.into_iter().flatten() {
        let key = if member.uuid.is_empty() {
            member.username.clone()
        } else {
            normalize_uuid(&member.uuid)
        };
        if !key.is_empty() {
            merged.insert(key, member);
        }
    }
    merged.into_values().collect()
}

impl Session<'_> {
    /// The team of the resource's project for membership sync: R3 of the resource (consented
    /// members only when the plugin says so) or, for shared-project plugins that want
    /// consented members, the union over the project's resources of every offering.
    pub(crate) async fn membership_team(
        &self,
        resource: &WaldurResource,
        caps: &CapabilitySet,
    ) -> Result<Vec<ProjectUser>, ModeError> {
        if !(caps.fetch_consented_users_only && caps.shared_project_membership) {
            return Ok(self
                .client
                .resource_team(&resource.uuid, caps.fetch_consented_users_only)
                .await?);
        }
        let filter = ResourceFilter {
            project_uuid: Some(resource.project_uuid.clone()),
            states: caps.handled_resource_states.clone(),
            ..ResourceFilter::default()
        }
        .with_fields(SIBLING_FIELDS);
        let mut resources: BTreeSet<String> = match self
            .client
            .list_provider_resources(&filter)
            .await
        {
            Ok(siblings) => siblings.iter().map(|r| normalize_uuid(&r.uuid)).collect(),
            Err(e) => {
                tracing::warn!(project = %resource.project_uuid, "resources of the project unavailable, using this resource's consented team: {e}");
                BTreeSet::new()
            }
        };
        let own = normalize_uuid(&resource.uuid);
        resources.remove(&own);
        let mut teams = vec![self.client.resource_team(&own, true).await?];
        for sibling in resources {
            match self.client.resource_team(&sibling, true).await {
                Ok(team) => teams.push(team),
                Err(e) => {
                    tracing::warn!(resource = %sibling, "consented team of a resource of the project unavailable: {e}")
                }
            }
        }
        let own_team: BTreeSet<String> = teams[0].iter().map(|m| normalize_uuid(&m.uuid)).collect();
        let team = union(teams);
        let via_siblings: Vec<&str> = team
            .iter()
            .filter(|m| !own_team.contains(&normalize_uuid(&m.uuid)))
            .map(|m| m.username.as_str())
            .collect();
        if !via_siblings.is_empty() {
            // They reach this offering's resource without its consent: worth seeing.
            tracing::info!(resource = %resource.uuid, project = %resource.project_uuid, "kept through another offering's consent: {}", via_siblings.join(", "));
        }
        Ok(team)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(uuid: &str, username: &str) -> ProjectUser {
        ProjectUser {
            uuid: uuid.into(),
            username: username.into(),
            ..Default::default()
        }
    }

    #[test]
    fn teams_merge_by_user() {
        let merged = union(vec![
            vec![member("AA", "alice"), member("", "carol")],
            vec![member("aa", "alice"), member("bb", "bob")],
        ]);
        let mut names: Vec<&str> = merged.iter().map(|m| m.username.as_str()).collect();
        names.sort();
        assert_eq!(names, ["alice", "bob", "carol"]);
    }
}
