//! One role granted or revoked (reference §3.6 `user_role` with a `user_uuid`,
//! `process_user_role_changed`): only that user is added to or removed from the project's
//! resources of the offering; nothing else of those resources is synced.
//!
//! Deliberate difference: the reference adds on `granted: true` and removes on `false`,
//! trusting the message. Here the user follows the project team as read when the event is
//! handled (one team read per project), so a redelivered or out-of-date event cannot undo a
//! later change, and a user who still holds another role in the project is not removed.

use std::collections::BTreeMap;

use waldur_plugin_abi::wire::{OfferingUser, ProjectUser};

use super::error::ModeError;
use super::membership::plan_for_user;
use super::membership_sync::MembershipSummary;
use super::runtime::Session;
use crate::waldur::OfferingUserFilter;

impl Session<'_> {
    /// Adds or removes one user on the project's resources, as the team now says.
    pub async fn apply_role_change(
        &self,
        user_uuid: &str,
        project_uuid: &str,
    ) -> Result<MembershipSummary, ModeError> {
        let Some(offering_user) = self.offering_user_of(user_uuid).await? else {
            tracing::info!(user = %user_uuid, "no offering user on this offering; nothing to do");
            return Ok(MembershipSummary::default());
        };
        let caps = self.backend.capabilities().clone();
        let resources = self
            .project_backend_resources(project_uuid, caps.handled_resource_states.clone())
            .await?;
        let pulled = self.pull_resources(&resources).await.resources;
        let umask = self.offering.homedir_umask.clone();
        let mut teams: BTreeMap<String, Vec<ProjectUser>> = BTreeMap::new();
        let mut summary = MembershipSummary::default();
        for resource in resources {
            let Some(info) = pulled.get(&resource.backend_id) else {
                summary.missing += 1;
                continue;
            };
            if !teams.contains_key(&resource.project_uuid) {
                let team = self
                    .client
                    .resource_team(&resource.uuid, caps.fetch_consented_users_only)
                    .await?;
                teams.insert(resource.project_uuid.clone(), team);
            }
            let diff = plan_for_user(
                user_uuid,
                &teams[&resource.project_uuid],
                &info.users,
                &offering_user,
                &caps,
                resource.restrict_member_access,
                Some(&umask),
            );
            summary.resources += 1;
            let outcome = self.apply_user_changes(&resource, &diff).await;
            match outcome {
                Ok((added, removed)) => {
                    summary.users_added += added.len();
                    summary.users_removed += removed.len();
                }
                // As the reference: one resource's failure is logged, the others go on.
                Err(e) => {
                    tracing::error!(resource = %resource.uuid, user = %user_uuid, "role change failed: {e}");
                    summary.failed += 1;
                }
            }
        }
        Ok(summary)
    }

    /// The user's offering user here (U1 by user), after the username state machine ran;
    /// `None` when there is none or it has no username yet.
    async fn offering_user_of(&self, user_uuid: &str) -> Result<Option<OfferingUser>, ModeError> {
        let filter = OfferingUserFilter {
            user_uuid: Some(user_uuid.to_string()),
            ..OfferingUserFilter::offering(&self.offering.waldur_offering_uuid)
        };
        let mut users = self.client.list_offering_users(&filter).await?;
        if users.is_empty() {
            return Ok(None);
        }
        if self.update_offering_users(&users).await? {
            self.invalidate_offering_users().await;
            users = self.client.list_offering_users(&filter).await?;
        }
        let identity = self.backend.capabilities().user_resolve_method == "identity_bridge";
        Ok(users
            .into_iter()
            .next()
            .filter(|u| identity || u.username.as_deref().is_some_and(|n| !n.is_empty())))
    }
}
