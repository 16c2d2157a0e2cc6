//! membership_sync (reference §3.4): each resource's backend users follow its Waldur team,
//! its status follows Waldur's paused/downscaled flags, and limits and metadata are synced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use waldur_plugin_abi::wire::{
    BackendResourceInfo, CapabilitySet, OfferingUser, ProjectUser, WaldurResource,
};

use super::accounts::ProjectAccounts;
use super::error::ModeError;
use super::membership::{limits_to_push, plan, user_limits_to_apply, MembershipPlan};
use super::offering_users::{
    CREATING, ERROR_CREATING, OK, PENDING_ACCOUNT_LINKING, PENDING_ADDITIONAL_VALIDATION, REQUESTED,
};
use super::runtime::{blocking, Session};
use super::source_project::SourceProjects;
use crate::plugins::{Backend, PluginError};
use crate::waldur::{
    map_concurrent, ResourceFilter, DEFAULT_CONCURRENCY, MEMBERSHIP_RESOURCE_FIELDS,
};

/// What one membership cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipSummary {
    pub resources: usize,
    pub users_added: usize,
    pub users_removed: usize,
    /// Resources the backend does not have.
    pub missing: usize,
    /// Resources the backend had lost and a forced sync created again.
    pub recreated: usize,
    pub failed: usize,
    /// Left for the next run because the agent is stopping.
    pub not_started: usize,
}

/// Whether a membership pass is a cycle the removal guard watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guarded {
    Yes,
    No,
}

/// Offering-user states membership works with.
const ACTIVE_STATES: &[&str] = &[
    OK,
    REQUESTED,
    CREATING,
    ERROR_CREATING,
    PENDING_ACCOUNT_LINKING,
    PENDING_ADDITIONAL_VALIDATION,
];

/// What the resources of one membership pass share, each read at most once for all of them
/// (the reference caches them per processor, i.e. per cycle).
#[derive(Default)]
struct PassReads {
    source_projects: SourceProjects,
    accounts: ProjectAccounts,
}

/// A plugin call; NOT_IMPLEMENTED (a method without an agent default) is `Ok(None)`.
async fn optional<T: Send + 'static>(
    backend: &Arc<Backend>,
    f: impl FnOnce(&Backend) -> Result<T, PluginError> + Send + 'static,
) -> Result<Option<T>, ModeError> {
    match blocking(backend, f).await {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_not_implemented() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Session<'_> {
    /// One membership cycle for this offering.
    pub async fn sync_membership(&self) -> Result<MembershipSummary, ModeError> {
        let resources = self.membership_resources().await?;
        self.sync_membership_bounded(resources, Guarded::Yes).await
    }

    /// A forced cycle (reference `process_offering(recreate_missing_resources=True)`, what
    /// an `offering_resources_sync` event asks for): a resource Waldur has and the backend
    /// lost is created again under its backend id before membership runs, so its users
    /// come back with it. A resource that cannot be recreated is marked erred and the
    /// others go on.
    pub async fn sync_membership_recreating(&self) -> Result<MembershipSummary, ModeError> {
        let resources = self.membership_resources().await?;
        let mut recreated = 0;
        for resource in resources.iter().filter(|r| !r.backend_id.is_empty()) {
            let r = resource.clone();
            match blocking(&self.backend, move |b| b.recreate_missing_resource(&r)).await {
                Ok(true) => recreated += 1,
                Ok(false) => {}
                Err(e) => {
                    let e = ModeError::from(e);
                    tracing::error!(resource = %resource.uuid, backend_id = %resource.backend_id, "recreating it failed: {e}");
                    let (message, traceback) =
                        e.details_for_waldur(self.agent.config.expose_backend_error_details);
                    if let Err(mark) = self
                        .client
                        .set_resource_erred(&resource.uuid, &message, &traceback)
                        .await
                    {
                        tracing::error!(resource = %resource.uuid, "marking it erred failed: {mark}");
                    }
                }
            }
        }
        let mut summary = self
            .sync_membership_bounded(resources, Guarded::Yes)
            .await?;
        summary.recreated = recreated;
        Ok(summary)
    }

    /// The offering's resources in the states the plugin handles, with the membership fields.
    async fn membership_resources(&self) -> Result<Vec<WaldurResource>, ModeError> {
        let mut filter = ResourceFilter::offering(&self.offering.waldur_offering_uuid)
            .with_fields(MEMBERSHIP_RESOURCE_FIELDS);
        filter.states = self.backend.capabilities().handled_resource_states.clone();
        Ok(self.client.list_provider_resources(&filter).await?)
    }

    /// One resource named by an event (reference `process_resource_by_uuid`): read in full,
    /// skipped unless the plugin handles its state, then synced like in a cycle.
    pub async fn sync_resource_by_uuid(
        &self,
        resource_uuid: &str,
    ) -> Result<MembershipSummary, ModeError> {
        let resource = self.client.provider_resource(resource_uuid, &[]).await?;
        let handled = &self.backend.capabilities().handled_resource_states;
        if !handled.is_empty() && !handled.contains(&resource.state) {
            tracing::info!(resource = %resource.uuid, "state {} is not handled; skipped", resource.state);
            return Ok(MembershipSummary::default());
        }
        self.invalidate_offering_users().await;
        self.sync_membership_of(vec![resource]).await
    }

    /// The resources of this offering with these backend ids (an offering user got its
    /// username: it can now be added where the team has it).
    pub async fn sync_resources_with_backend_ids(
        &self,
        backend_ids: &[String],
    ) -> Result<MembershipSummary, ModeError> {
        let resources: Vec<WaldurResource> = self
            .membership_resources()
            .await?
            .into_iter()
            .filter(|r| backend_ids.contains(&r.backend_id))
            .collect();
        self.invalidate_offering_users().await;
        self.sync_membership_of(resources).await
    }

    /// Every resource of one project of this offering (a role granted or revoked there).
    pub async fn sync_project_membership(
        &self,
        project_uuid: &str,
    ) -> Result<MembershipSummary, ModeError> {
        let mut filter = ResourceFilter::offering(&self.offering.waldur_offering_uuid)
            .with_fields(MEMBERSHIP_RESOURCE_FIELDS);
        filter.project_uuid = Some(project_uuid.to_string());
        filter.states = self.backend.capabilities().handled_resource_states.clone();
        let resources = self.client.list_provider_resources(&filter).await?;
        self.invalidate_offering_users().await;
        self.sync_membership_of(resources).await
    }

    /// Membership of these resources only (an event names one resource or one project):
    /// the same work as a cycle, for resources with a backend id.
    pub async fn sync_membership_of(
        &self,
        resources: Vec<WaldurResource>,
    ) -> Result<MembershipSummary, ModeError> {
        self.sync_membership_bounded(resources, Guarded::No).await
    }

    /// A whole cycle counts its removals against `max_user_removals_per_cycle` before it
    /// writes anything; the few resources an event names do not.
    async fn sync_membership_bounded(
        &self,
        resources: Vec<WaldurResource>,
        guarded: Guarded,
    ) -> Result<MembershipSummary, ModeError> {
        let caps = self.backend.capabilities().clone();
        let resources: Vec<WaldurResource> = resources
            .into_iter()
            .filter(|r| !r.backend_id.is_empty())
            .collect();
        let pulled = self.pull_resources(&resources).await.resources;
        let offering_users = self.active_offering_users().await;
        let offering_users = Arc::new(offering_users);

        // One team read per project: resources of a project share it.
        let mut teams: BTreeMap<String, Vec<ProjectUser>> = BTreeMap::new();
        for resource in resources
            .iter()
            .filter(|r| pulled.contains_key(&r.backend_id))
        {
            if !teams.contains_key(&resource.project_uuid) {
                let team = self.membership_team(resource, &caps).await?;
                teams.insert(resource.project_uuid.clone(), team);
            }
        }
        let teams = Arc::new(teams);
        let mut summary = MembershipSummary::default();
        let listed_count = resources.len();
        let work: Vec<(WaldurResource, BackendResourceInfo)> = resources
            .into_iter()
            .filter_map(|r| {
                let info = pulled.get(&r.backend_id).cloned();
                if info.is_none() {
                    tracing::info!(resource = %r.uuid, backend_id = %r.backend_id, "not on the backend");
                }
                info.map(|i| (r, i))
            })
            .collect();
        summary.missing = listed_count - work.len();
        let reads = PassReads::default();
        if guarded == Guarded::Yes {
            let mut removals = 0;
            for (resource, info) in &work {
                let team = teams
                    .get(&resource.project_uuid)
                    .map_or(&[][..], Vec::as_slice);
                removals += self
                    .resource_plan(resource, info, team, &offering_users, &caps, &reads)
                    .await
                    .to_remove
                    .len();
            }
            super::guards::check(
                super::guards::Removal::UserAssociations,
                removals,
                self.offering.max_user_removals_per_cycle,
                self.agent.force,
            )?;
        }
        self.progress.add_total(work.len());
        let outcomes = map_concurrent(DEFAULT_CONCURRENCY, work, |(resource, info)| {
            let (teams, users, caps) = (Arc::clone(&teams), Arc::clone(&offering_users), caps.clone());
            let reads = &reads;
            async move {
                let _work = self.agent.shutdown.start()?;
                let team = teams.get(&resource.project_uuid).cloned().unwrap_or_default();
                let result = self.sync_resource(&resource, &info, &team, &users, &caps, reads).await;
                self.progress.item_done();
                if let Err(e) = &result {
                    tracing::error!(resource = %resource.uuid, backend_id = %resource.backend_id, "membership sync failed: {e}");
                    let (message, traceback) =
                        e.details_for_waldur(self.agent.config.expose_backend_error_details);
                    if let Err(mark) = self.client.set_resource_erred(&resource.uuid, &message, &traceback).await {
                        tracing::error!(resource = %resource.uuid, "marking it erred failed: {mark}");
                    }
                }
                Some(result)
            }
        })
        .await;
        for outcome in outcomes {
            let Some(outcome) = outcome else {
                summary.not_started += 1;
                continue;
            };
            summary.resources += 1;
            match outcome {
                Ok((added, removed)) => {
                    summary.users_added += added;
                    summary.users_removed += removed;
                }
                Err(_) => summary.failed += 1,
            }
        }
        Ok(summary)
    }

    /// Offering users in the states membership works with, after the username state machine
    /// ran (reference `_refresh_local_offering_users`; any failure means none).
    async fn active_offering_users(&self) -> Vec<OfferingUser> {
        let read = || async {
            let users: Vec<OfferingUser> = self
                .offering_users()
                .await?
                .iter()
                .filter(|u| ACTIVE_STATES.contains(&u.state.as_str()))
                .cloned()
                .collect();
            Ok::<_, ModeError>(users)
        };
        let result = async {
            let mut users = read().await?;
            if self.update_offering_users(&users).await? {
                users = read().await?;
            }
            self.sync_user_profiles(&users).await;
            if self.offering.username_reconciliation_enabled {
                let uuid = self.offering.waldur_offering_uuid.clone();
                if optional(&self.backend, move |b| {
                    b.sync_offering_user_usernames(&uuid)
                })
                .await?
                .unwrap_or(false)
                {
                    users = read().await?;
                }
            }
            Ok::<_, ModeError>(users)
        }
        .await;
        result.unwrap_or_else(|e| {
            tracing::warn!(offering = %self.offering.name, "offering users unavailable: {e}");
            Vec::new()
        })
    }

    /// Syncs one resource; answers (users added, users removed).
    async fn sync_resource(
        &self,
        resource: &WaldurResource,
        info: &BackendResourceInfo,
        team: &[ProjectUser],
        offering_users: &[OfferingUser],
        caps: &CapabilitySet,
        reads: &PassReads,
    ) -> Result<(usize, usize), ModeError> {
        let b = &self.backend;
        let project = self
            .source_project(resource, &reads.source_projects)
            .await?;
        let (r, p) = (resource.clone(), project.clone());
        optional(b, move |b| b.sync_resource_project(&r, p.as_ref())).await?;
        let r = resource.clone();
        optional(b, move |b| b.sync_project_end_date(&r, project.as_ref())).await?;

        let diff = self
            .resource_plan(resource, info, team, offering_users, caps, reads)
            .await;
        let (added, removed) = self.apply_user_changes(resource, &diff).await?;
        if !resource.restrict_member_access {
            let existing: Vec<String> = diff.existing.iter().cloned().collect();
            let list = existing.clone();
            blocking(b, move |b| b.process_existing_users(&list)).await?;
            let (r, roles, cuids) = (
                resource.clone(),
                diff.options.user_roles.clone(),
                diff.options.user_cuids.clone(),
            );
            blocking(b, move |b| {
                b.reconcile_existing_user_roles(&r, &existing, &roles, &cuids)
            })
            .await?;
            self.report_membership_statuses(resource).await;
        }
        self.sync_project_accounts(resource, &reads.accounts).await;

        self.sync_status(resource).await?;
        let r = resource.clone();
        optional(b, move |b| b.sync_resource_end_date(&r)).await?;
        let r = resource.clone();
        optional(b, move |b| b.sync_resource_effective_id(&r)).await?;
        self.sync_limits(resource).await?;
        if !resource.restrict_member_access {
            let users: BTreeSet<String> = diff
                .existing
                .iter()
                .cloned()
                .chain(added.iter().cloned())
                .collect();
            self.sync_user_limits(resource, &users).await?;
        }
        self.client
            .refresh_resource_last_sync(&resource.uuid)
            .await?;
        if resource.state == "Erred" {
            self.client.set_resource_ok(&resource.uuid).await?;
        }
        Ok((added.len(), removed.len()))
    }

    /// Who is added to and removed from one resource.
    async fn resource_plan(
        &self,
        resource: &WaldurResource,
        info: &BackendResourceInfo,
        team: &[ProjectUser],
        offering_users: &[OfferingUser],
        caps: &CapabilitySet,
        reads: &PassReads,
    ) -> MembershipPlan {
        let mut diff = plan(
            team,
            &info.users,
            offering_users,
            caps,
            resource.restrict_member_access,
            Some(&self.offering.homedir_umask),
        );
        // The project's OK service and course accounts are not in the team but belong on the
        // resource: they are not removed here to be added back below. Deliberately unlike
        // the reference, which removes and re-adds them every cycle.
        let accounts = self
            .active_account_usernames(resource, &reads.accounts)
            .await;
        diff.to_remove.retain(|user| !accounts.contains(user));
        diff
    }

    /// Carries out a plan's additions and removals on the resource (one plugin call each, none
    /// when there is nothing to do); answers the users the plugin says it added and removed.
    pub(crate) async fn apply_user_changes(
        &self,
        resource: &WaldurResource,
        diff: &MembershipPlan,
    ) -> Result<(Vec<String>, Vec<String>), ModeError> {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        if !diff.to_add.is_empty() {
            let (r, users, options) = (
                resource.clone(),
                diff.to_add.iter().cloned().collect::<Vec<_>>(),
                diff.options.clone(),
            );
            added = blocking(&self.backend, move |b| {
                b.add_users_to_resource(&r, &users, &options)
            })
            .await?;
        }
        if !diff.to_remove.is_empty() {
            let (r, users, options) = (
                resource.clone(),
                diff.to_remove.iter().cloned().collect::<Vec<_>>(),
                diff.options.clone(),
            );
            removed = blocking(&self.backend, move |b| {
                b.remove_users_from_resource(&r, &users, &options)
            })
            .await?;
        }
        Ok((added, removed))
    }

    /// The offering's resources of a project that have a backend id, with the membership
    /// fields; only those in `states` when it is not empty.
    pub(crate) async fn project_backend_resources(
        &self,
        project_uuid: &str,
        states: Vec<String>,
    ) -> Result<Vec<WaldurResource>, ModeError> {
        let mut filter = ResourceFilter::offering(&self.offering.waldur_offering_uuid)
            .with_fields(MEMBERSHIP_RESOURCE_FIELDS);
        filter.project_uuid = Some(project_uuid.to_string());
        filter.states = states;
        Ok(self
            .client
            .list_provider_resources(&filter)
            .await?
            .into_iter()
            .filter(|r| !r.backend_id.is_empty())
            .collect())
    }

    /// Paused, downscaled or normal, as Waldur says; then the metadata, always.
    async fn sync_status(&self, resource: &WaldurResource) -> Result<(), ModeError> {
        let id = resource.backend_id.clone();
        let b = &self.backend;
        let changed = if resource.paused {
            optional(b, move |b| b.pause_resource(&id)).await?
        } else if resource.downscaled {
            optional(b, move |b| b.downscale_resource(&id)).await?
        } else {
            optional(b, move |b| b.restore_resource(&id)).await?
        };
        if changed == Some(true) {
            tracing::info!(resource = %resource.uuid, paused = resource.paused, downscaled = resource.downscaled, "status changed on the backend");
        }
        let id = resource.backend_id.clone();
        if let Some(metadata) = optional(b, move |b| b.get_resource_metadata(&id)).await? {
            self.client
                .set_resource_backend_metadata(&resource.uuid, &metadata)
                .await?;
        }
        Ok(())
    }

    /// The plugin's own `sync_resource_limits`, or the reference default: the backend's limits
    /// are the truth and Waldur is told when they differ. Answers whether Waldur was told.
    pub(crate) async fn sync_limits(&self, resource: &WaldurResource) -> Result<bool, ModeError> {
        let r = resource.clone();
        if optional(&self.backend, move |b| b.sync_resource_limits(&r))
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let id = resource.backend_id.clone();
        let Some(limits) = optional(&self.backend, move |b| b.get_resource_limits(&id)).await?
        else {
            return Ok(false);
        };
        if limits.is_empty() {
            return Ok(false);
        }
        let Some(pushed) = limits_to_push(&resource.limits, &limits) else {
            return Ok(false);
        };
        tracing::info!(resource = %resource.uuid, "limits differ from the backend's; updating Waldur");
        self.record_limits(&resource.uuid, &pushed).await?;
        Ok(true)
    }

    /// Waldur's per-user limits of a resource (C6), whole Waldur units by username and
    /// component, as the plugin's per-user limit calls take them.
    pub(crate) async fn waldur_user_limits(
        &self,
        resource_uuid: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, i64>>, ModeError> {
        let mut waldur: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for limit in self
            .client
            .list_component_user_usage_limits(resource_uuid)
            .await?
        {
            waldur
                .entry(limit.user)
                .or_default()
                .insert(limit.component_type, limit.limit.trunc() as i64);
        }
        Ok(waldur)
    }

    /// Per-user limits from Waldur onto the backend (reference `_sync_resource_user_limits`).
    async fn sync_user_limits(
        &self,
        resource: &WaldurResource,
        users: &BTreeSet<String>,
    ) -> Result<(), ModeError> {
        let id = resource.backend_id.clone();
        let Some(backend) =
            optional(&self.backend, move |b| b.get_resource_user_limits(&id)).await?
        else {
            return Ok(());
        };
        let waldur = self.waldur_user_limits(&resource.uuid).await?;
        for (user, limits) in user_limits_to_apply(users, &waldur, &backend) {
            let (id, name) = (resource.backend_id.clone(), user.clone());
            if let Err(e) = blocking(&self.backend, move |b| {
                b.set_resource_user_limits(&id, &name, &limits)
            })
            .await
            {
                tracing::error!(resource = %resource.uuid, "limits of user {user}: {e}");
            }
        }
        Ok(())
    }
}
