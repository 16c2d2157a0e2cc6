//! The people of a resource: the team and offering users the plugin gets as `user_context`,
//! and the offering-user username state machine driven through the username backend.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use waldur_plugin_abi::ffi::EntryKind;
use waldur_plugin_abi::wire::{OfferingInfo, OfferingUser, UserContext};

use super::error::ModeError;
use super::offering_users::{entry_steps, steps_after, Step};
use super::runtime::Session;
use crate::plugins::HostContext;
use crate::waldur::OfferingUserFilter;

impl Session<'_> {
    /// The resource's team and their offering users (reference
    /// `_fetch_user_context_for_resource`); an empty team gives an empty context.
    pub async fn user_context(&self, resource_uuid: &str) -> Result<UserContext, ModeError> {
        let caps = self.backend.capabilities();
        let attempts = caps.team_fetch_attempts.max(1);
        let mut team = Vec::new();
        for attempt in 1..=attempts {
            team = self
                .client
                .resource_team(resource_uuid, caps.fetch_consented_users_only)
                .await?;
            if !team.is_empty() || attempt == attempts {
                break;
            }
            tokio::time::sleep(Duration::from_millis(u64::from(caps.team_fetch_delay_ms))).await;
        }
        if team.is_empty() {
            return Ok(UserContext::default());
        }
        let members: BTreeSet<&str> = team.iter().map(|m| m.uuid.as_str()).collect();
        let offering_users: Vec<OfferingUser> = self
            .offering_users()
            .await?
            .iter()
            .filter(|u| members.contains(u.user_uuid.as_str()))
            .cloned()
            .collect();
        let mut context = UserContext {
            team,
            offering_users,
            ..Default::default()
        };
        context.rebuild_mappings();
        Ok(context)
    }

    /// The offering's unrestricted offering users, read once per cycle. Shared, not copied:
    /// an offering has thousands and every order and resource looks a few of them up.
    pub async fn offering_users(&self) -> Result<Arc<Vec<OfferingUser>>, ModeError> {
        let mut cache = self.offering_users_cache.lock().await;
        if let Some(users) = cache.as_ref() {
            return Ok(Arc::clone(users));
        }
        let users = Arc::new(
            self.client
                .list_offering_users(&OfferingUserFilter::offering(
                    &self.offering.waldur_offering_uuid,
                ))
                .await?,
        );
        *cache = Some(Arc::clone(&users));
        Ok(users)
    }

    /// Forgets the cached offering users (after the agent changed one, or before an event:
    /// a long-lived session must not work from an old list).
    pub(crate) async fn invalidate_offering_users(&self) {
        *self.offering_users_cache.lock().await = None;
    }

    /// The offering's username-management backend: the agent's (see
    /// `Agent::username_backends`), looked up once per session.
    async fn username_backend(&self) -> Result<Arc<crate::plugins::UsernameBackend>, ModeError> {
        self.usernames
            .get_or_try_init(|| async {
                let entry = self.offering.username_management_backend.clone();
                let key = (
                    self.offering.name.clone(),
                    entry.clone(),
                    serde_json::to_string(&self.waldur_offering.plugin_options).unwrap_or_default(),
                );
                let kept = self
                    .agent
                    .username_backends
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .cloned();
                if let Some(backend) = kept {
                    return Ok(backend);
                }
                let offering = OfferingInfo {
                    name: self.offering.name.clone(),
                    uuid: self.offering.waldur_offering_uuid.clone(),
                    api_url: self.offering.waldur_api_url.clone(),
                    backend_type: self.offering.backend_type.clone(),
                    plugin_options: self.waldur_offering.plugin_options.clone(),
                    ..Default::default()
                };
                let context = HostContext::new(&entry, &self.offering.name).with_waldur(Arc::new(
                    super::gateway::ClientGateway::new(self.client.clone()),
                ));
                let settings = self.offering.backend_settings.clone();
                let mut backend = tokio::task::block_in_place(|| {
                    self.agent
                        .registry
                        .username_backend(&entry, &settings, &offering, context)
                })?;
                if let Some(calls) = self.agent.plugin_calls(&entry) {
                    backend.record_calls_shared(calls);
                }
                if let Some(recorder) = self
                    .agent
                    .withheld_plugin_writes(&self.offering.name, &entry)
                {
                    backend.withhold_writes(recorder);
                }
                let backend = Arc::new(backend);
                self.agent
                    .username_backends
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, Arc::clone(&backend));
                Ok::<_, ModeError>(backend)
            })
            .await
            .cloned()
    }

    /// Hands the offering users to the username-management backend before membership runs
    /// (reference `_sync_user_profiles_to_backend`): a plugin that keeps user profiles on its
    /// own systems (a directory, another Waldur) brings them up to date, and deactivates the
    /// users that left if it wants to (the agent never calls `deactivate_users` itself, as
    /// the reference's core does not). Without an installed entry of that name there is
    /// nothing to tell (the reference's unknown backend); any failure is logged: profiles
    /// never stop membership sync.
    pub(crate) async fn sync_user_profiles(&self, users: &[OfferingUser]) {
        let entry = &self.offering.username_management_backend;
        let catalog = self.agent.registry.catalog();
        if entry.is_empty() || catalog.entry(EntryKind::USERNAME, entry).is_none() {
            return;
        }
        let backend = match self.username_backend().await {
            Ok(backend) => backend,
            Err(e) => {
                tracing::warn!(offering = %self.offering.name, "user profiles not synced: {e}");
                return;
            }
        };
        let users = users.to_vec();
        let synced = tokio::task::spawn_blocking(move || backend.sync_user_profiles(&users))
            .await
            .expect("plugin calls catch panics");
        if let Err(e) = synced {
            tracing::warn!(offering = %self.offering.name, "syncing user profiles failed: {e}");
        }
    }

    /// Does this offering let the agent choose usernames (reference `_can_generate_usernames`)?
    fn generates_usernames(&self) -> bool {
        let options = &self.waldur_offering.plugin_options;
        options
            .get("username_generation_policy")
            .and_then(|v| v.as_str())
            == Some("service_provider")
            && options
                .get("service_provider_can_create_offering_user")
                .and_then(|v| v.as_bool())
                == Some(true)
    }

    /// Moves offering users through the username state machine (reference §4.3). Answers
    /// whether any username was set (callers then re-read the users). One user's failure is
    /// logged and does not stop the others.
    pub async fn update_offering_users(&self, users: &[OfferingUser]) -> Result<bool, ModeError> {
        if !self.generates_usernames() {
            return Ok(false);
        }
        // Concurrent orders share team members: one run at a time, on the current states.
        let _turn = self.username_turn.lock().await;
        let usernames = self.username_backend().await?;
        let wanted: BTreeSet<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
        let current: Vec<OfferingUser> = self
            .offering_users()
            .await?
            .iter()
            .filter(|u| wanted.contains(u.uuid.as_str()))
            .cloned()
            .collect();
        let (mut changed, mut touched) = (false, false);
        for user in &current {
            let Some(first) = entry_steps(&user.state) else {
                continue;
            };
            touched = true;
            match self.offering_user_steps(&usernames, user, first).await {
                Ok(set) => changed |= set,
                Err(e) => tracing::error!(
                    offering = %self.offering.name,
                    "offering user {} ({}): {e}",
                    user.uuid,
                    user.user_username
                ),
            }
        }
        // Any call may have moved a user's state, not only a new username.
        if touched {
            self.invalidate_offering_users().await;
        }
        Ok(changed)
    }

    async fn offering_user_steps(
        &self,
        usernames: &Arc<crate::plugins::UsernameBackend>,
        user: &OfferingUser,
        first: Vec<Step>,
    ) -> Result<bool, ModeError> {
        for step in &first {
            self.apply_step(user, step).await?;
        }
        let backend = Arc::clone(usernames);
        let asked = user.clone();
        let outcome = tokio::task::spawn_blocking(move || backend.get_or_create_username(&asked))
            .await
            .expect("plugin calls catch panics");
        let outcome = outcome.map_err(|e| e.error);
        let mut set = false;
        for step in steps_after(&user.state, outcome) {
            set |= matches!(step, Step::SetUsername(_));
            self.apply_step(user, &step).await?;
        }
        Ok(set)
    }

    async fn apply_step(&self, user: &OfferingUser, step: &Step) -> Result<(), ModeError> {
        let c = &self.client;
        let uuid = user.uuid.as_str();
        match step {
            Step::BeginCreating => c.begin_creating_offering_user(uuid).await?,
            Step::SetValidationComplete => c.set_offering_user_validation_complete(uuid).await?,
            Step::SetUsername(name) => {
                c.set_offering_user_username(uuid, name).await?;
            }
            Step::SetPendingAccountLinking {
                comment,
                comment_url,
            } => {
                c.set_offering_user_pending_account_linking(uuid, comment, comment_url.as_deref())
                    .await?
            }
            Step::SetPendingAdditionalValidation {
                comment,
                comment_url,
            } => {
                c.set_offering_user_pending_additional_validation(
                    uuid,
                    comment,
                    comment_url.as_deref(),
                )
                .await?
            }
            Step::SetErrorCreating => c.set_offering_user_error_creating(uuid).await?,
        }
        Ok(())
    }
}
