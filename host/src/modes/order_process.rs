//! order_process (reference §3.2 and §4.1): pending-provider orders are evaluated, approved or
//! rejected; executing orders are carried out through the plugin; Waldur learns the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use waldur_plugin_abi::wire::{Order, PendingOrderDecision};
use waldur_plugin_abi::ErrorKind;

use super::error::ModeError;
use super::runtime::{blocking, Session};
use crate::plugins::Backend;

/// How transient Waldur failures of one order are retried (reference: 10 × 5 s).
#[derive(Debug, Clone, Copy)]
pub struct OrderRetry {
    pub attempts: u32,
    pub delay: Duration,
}

impl Default for OrderRetry {
    fn default() -> Self {
        Self {
            attempts: 10,
            delay: Duration::from_secs(5),
        }
    }
}

/// What one cycle did, for the log and the summary table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSummary {
    pub done: usize,
    pub erred: usize,
    pub rejected: usize,
    /// Left for a later cycle (pending decision, async backend order, backend not ready).
    pub waiting: usize,
    /// Could not be handled because Waldur kept failing; untouched, retried next cycle.
    pub failed: usize,
}

enum Outcome {
    Done,
    Erred,
    Rejected,
    Waiting,
}

pub(super) const CREATE: &str = "Create";
pub(super) const RESTORE: &str = "Restore";
const UPDATE: &str = "Update";
const TERMINATE: &str = "Terminate";

impl Session<'_> {
    /// One order_process cycle for this offering.
    pub async fn process_orders(&self, retry: OrderRetry) -> Result<OrderSummary, ModeError> {
        let filter = crate::waldur::OrderFilter::pending(&self.offering.waldur_offering_uuid);
        self.process_listed_orders(&filter, retry).await
    }

    /// Event mode's reconciliation (reference `run_periodic_order_reconciliation`): the pending
    /// orders last modified more than `older_than` ago, whose event was lost or failed.
    pub async fn process_stuck_orders(
        &self,
        older_than: Duration,
        retry: OrderRetry,
    ) -> Result<OrderSummary, ModeError> {
        let cutoff = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(older_than).unwrap_or_default())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut filter = crate::waldur::OrderFilter::pending(&self.offering.waldur_offering_uuid);
        filter.modified_before = Some(cutoff.to_string());
        self.process_listed_orders(&filter, retry).await
    }

    async fn process_listed_orders(
        &self,
        filter: &crate::waldur::OrderFilter,
        retry: OrderRetry,
    ) -> Result<OrderSummary, ModeError> {
        // Event mode keeps its session for hours: a pass works from offering users read now.
        self.invalidate_offering_users().await;
        let mut summary = OrderSummary::default();
        if self.backend.capabilities().supports_cycle_preflight {
            match blocking(&self.backend, |b| b.run_preflight()).await {
                Err(e) if e.kind() == ErrorKind::BACKEND_NOT_READY => {
                    tracing::warn!(offering = %self.offering.name, "backend not ready, skipping the cycle: {e}");
                    return Ok(summary);
                }
                other => other?,
            }
        }
        let orders = self.client.list_orders(filter).await?;
        tracing::info!(offering = %self.offering.name, "{} order(s) to process", orders.len());
        let terminations = orders.iter().filter(|o| o.order_type == TERMINATE).count();
        super::guards::check(
            super::guards::Removal::Terminations,
            terminations,
            self.offering.max_terminations_per_cycle,
            self.agent.force,
        )?;
        self.progress.add_total(orders.len());
        // Orders of different resources are independent and run concurrently; the orders of
        // one resource keep their order (a Terminate must not overtake its Create).
        let mut groups: Vec<Vec<Order>> = Vec::new();
        let mut group_of: BTreeMap<String, usize> = BTreeMap::new();
        for order in orders {
            let key = order.marketplace_resource_uuid.clone();
            match group_of.get(&key) {
                Some(&index) => groups[index].push(order),
                None => {
                    group_of.insert(key, groups.len());
                    groups.push(vec![order]);
                }
            }
        }
        let outcomes = crate::waldur::map_concurrent(
            crate::waldur::DEFAULT_CONCURRENCY,
            groups,
            |group| async move {
                let mut outcomes = Vec::with_capacity(group.len());
                // In event mode an event of one of these orders may be handled meanwhile:
                // the resource's turn keeps the two apart.
                let resource = group
                    .first()
                    .map(|o| o.marketplace_resource_uuid.clone())
                    .unwrap_or_default();
                let turn = self.agent.resource_turns.claim(resource).await;
                for mut order in group {
                    // Stopping: the orders not begun stay as they are for the next run.
                    let Some(_work) = self.agent.shutdown.start() else {
                        outcomes.push(Ok(Outcome::Waiting));
                        continue;
                    };
                    if turn.waited() {
                        order = self.reread_order(order).await;
                    }
                    outcomes.push(self.process_order_with_retries(order, retry).await);
                    self.progress.item_done();
                }
                drop(turn);
                outcomes
            },
        )
        .await;
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Ok(Outcome::Done) => summary.done += 1,
                Ok(Outcome::Erred) => summary.erred += 1,
                Ok(Outcome::Rejected) => summary.rejected += 1,
                Ok(Outcome::Waiting) => summary.waiting += 1,
                Err(e) => {
                    tracing::error!(offering = %self.offering.name, "{e}");
                    summary.failed += 1;
                }
            }
        }
        Ok(summary)
    }

    /// One order named by an event: read, then carried out like in a cycle. Orders of the same
    /// resource never run at the same time (a Terminate must not overtake its Create).
    pub async fn process_order_by_uuid(
        &self,
        order_uuid: &str,
        retry: OrderRetry,
    ) -> Result<OrderSummary, ModeError> {
        // The session outlives many events: the team a Create adds is the one Waldur has now,
        // offering users made since the last order included.
        self.invalidate_offering_users().await;
        let mut order = self.client.order(order_uuid).await?;
        let turn = self
            .agent
            .resource_turns
            .claim(order.marketplace_resource_uuid.clone())
            .await;
        // Someone (the pass that approved it, say) worked on the resource meanwhile: the
        // order read before the turn may be done by now.
        if turn.waited() {
            order = self.client.order(order_uuid).await?;
        }
        let mut summary = OrderSummary::default();
        match self.process_order_with_retries(order, retry).await? {
            Outcome::Done => summary.done += 1,
            Outcome::Erred => summary.erred += 1,
            Outcome::Rejected => summary.rejected += 1,
            Outcome::Waiting => summary.waiting += 1,
        }
        Ok(summary)
    }

    /// The order as Waldur has it now, after another task of this process worked on its
    /// resource; the listed copy when Waldur cannot answer (processing it is still safe:
    /// every step checks before it writes).
    async fn reread_order(&self, listed: Order) -> Order {
        match self.client.order(&listed.uuid).await {
            Ok(order) => order,
            Err(e) => {
                tracing::warn!(order = %listed.uuid, "re-reading the order failed: {e}");
                listed
            }
        }
    }

    /// Retries on transient Waldur failures; the order is re-read before each retry.
    async fn process_order_with_retries(
        &self,
        order: Order,
        retry: OrderRetry,
    ) -> Result<Outcome, ModeError> {
        let uuid = order.uuid.clone();
        let mut current = order;
        let mut attempt = 1;
        loop {
            match self.process_order(&current).await {
                Err(e) if e.is_transient() && attempt < retry.attempts => {
                    tracing::warn!(order = %uuid, attempt, "transient failure, retrying: {e}");
                    tokio::time::sleep(retry.delay).await;
                    attempt += 1;
                    current = match self.client.order(&uuid).await {
                        Ok(order) => order,
                        Err(e) if e.is_transient() => current,
                        Err(e) => return Err(e.into()),
                    };
                }
                other => return other,
            }
        }
    }

    async fn process_order(&self, order: &Order) -> Result<Outcome, ModeError> {
        let mut order = order.clone();
        match order.state.as_str() {
            "done" => return Ok(Outcome::Done),
            "erred" => return Ok(Outcome::Erred),
            "executing" => {}
            "pending-provider" => {
                let backend = Arc::clone(&self.backend);
                let asked = order.clone();
                let decision = blocking(&backend, move |b| b.evaluate_pending_order(&asked)).await;
                match decision {
                    Ok(PendingOrderDecision::Accept) => {
                        self.client.approve_order(&order.uuid).await?;
                        order = self.client.order(&order.uuid).await?;
                    }
                    Ok(PendingOrderDecision::Reject) => {
                        self.client.reject_order(&order.uuid).await?;
                        tracing::info!(order = %order.uuid, "rejected by the backend");
                        return Ok(Outcome::Rejected);
                    }
                    Ok(PendingOrderDecision::Pending) => return Ok(Outcome::Waiting),
                    // Never erred before provisioning started: it stays pending (reference).
                    Err(e) => {
                        tracing::error!(order = %order.uuid, "evaluating the order failed: {e}");
                        return Ok(Outcome::Waiting);
                    }
                }
            }
            other => {
                tracing::warn!(order = %order.uuid, "order in state {other}, not processed");
                return Ok(Outcome::Waiting);
            }
        }
        let handled = match order.order_type.as_str() {
            CREATE | RESTORE => self.create_order(&order).await,
            UPDATE => self.update_order(&order).await,
            TERMINATE => self.terminate_order(&order).await,
            other => Err(ModeError::Offering(format!("unknown order type '{other}'"))),
        };
        match handled {
            Ok(true) => {
                let state = self.client.order_state(&order.uuid).await?;
                if state.state == "executing" {
                    self.record_order_done(&order.uuid).await?;
                    tracing::info!(order = %order.uuid, kind = %order.order_type, "order done");
                } else {
                    tracing::warn!(order = %order.uuid, "order is {}, not marked done", state.state);
                }
                if matches!(order.order_type.as_str(), CREATE | RESTORE) {
                    self.post_create(&order).await;
                }
                Ok(Outcome::Done)
            }
            Ok(false) => Ok(Outcome::Waiting),
            Err(e) if e.is_transient() => Err(e),
            Err(e) if e.is_not_ready() => {
                tracing::warn!(order = %order.uuid, "backend not ready: {e}");
                Ok(Outcome::Waiting)
            }
            Err(e) => {
                let (message, traceback) =
                    e.details_for_waldur(self.agent.config.expose_backend_error_details);
                tracing::error!(order = %order.uuid, kind = %order.order_type, "order failed: {e}");
                self.client
                    .set_order_erred(&order.uuid, &message, &traceback)
                    .await?;
                Ok(Outcome::Erred)
            }
        }
    }

    /// Async backends: true when the backend's own order finished (reference
    /// `_poll_async_target_order`); `None` when there is nothing to poll.
    pub(super) async fn poll_async_order(&self, order: &Order) -> Result<Option<bool>, ModeError> {
        if !self.backend.capabilities().supports_async_orders || order.backend_id.is_empty() {
            return Ok(None);
        }
        let id = order.backend_id.clone();
        Ok(Some(
            blocking(&self.backend, move |b| b.check_pending_order(&id)).await?,
        ))
    }

    async fn update_order(&self, order: &Order) -> Result<bool, ModeError> {
        if let Some(done) = self.poll_async_order(order).await? {
            return Ok(done);
        }
        let mut resource = self
            .client
            .provider_resource(&order.marketplace_resource_uuid, &[])
            .await?;
        let mut new = order.limits.clone();
        if new.is_empty() {
            new = self.plan_quotas(order.plan_uuid.as_deref()).await;
        }
        if new.is_empty() {
            tracing::warn!(order = %order.uuid, "update order without limits; nothing to do");
            return Ok(true);
        }
        let prepaid = call(&self.backend, |b| b.has_prepaid_components()).await?;
        if new == resource.limits && !prepaid {
            tracing::info!(order = %order.uuid, "limits unchanged");
            return Ok(true);
        }
        let id = resource.backend_id.clone();
        if prepaid {
            resource.limits = new;
            call(&self.backend, move |b| {
                b.setup_resource_limits(&id, &resource)
            })
            .await?;
            return Ok(true);
        }
        let pending = call(&self.backend, move |b| b.set_resource_limits(&id, &new)).await?;
        self.finish_possibly_async(order, pending).await
    }

    async fn terminate_order(&self, order: &Order) -> Result<bool, ModeError> {
        if let Some(done) = self.poll_async_order(order).await? {
            return Ok(done);
        }
        let resource = self
            .client
            .provider_resource(&order.marketplace_resource_uuid, &[])
            .await?;
        let slug = Some(order.project_slug.clone()).filter(|s| !s.is_empty());
        let pending = call(&self.backend, move |b| {
            b.delete_resource(&resource, slug.as_deref())
        })
        .await?;
        self.finish_possibly_async(order, pending).await
    }

    async fn finish_possibly_async(
        &self,
        order: &Order,
        pending: Option<String>,
    ) -> Result<bool, ModeError> {
        match pending.filter(|p| !p.is_empty()) {
            Some(id) if self.backend.capabilities().supports_async_orders => {
                self.client.set_order_backend_id(&order.uuid, &id).await?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// After a create (reference `_post_process_order`): the team's users, then the service
    /// and course accounts of the resource's project. The resource exists and the order is
    /// done: a failure here is logged, and membership sync adds the users later.
    async fn post_create(&self, order: &Order) {
        let resource = match self
            .client
            .provider_resource(&order.marketplace_resource_uuid, &[])
            .await
        {
            Ok(resource) => resource,
            Err(e) => {
                tracing::error!(order = %order.uuid, "reading the created resource failed: {e}");
                return;
            }
        };
        if let Err(e) = self.add_team_after_create(order, &resource).await {
            tracing::error!(order = %order.uuid, "adding users after creation failed: {e}");
        }
        self.sync_project_accounts(&resource, &super::accounts::ProjectAccounts::default())
            .await;
    }

    /// The team's offering users get usernames and the OK ones are added, with what the
    /// plugin is told about each (reference `_add_users_to_resource`).
    async fn add_team_after_create(
        &self,
        order: &Order,
        resource: &waldur_plugin_abi::wire::WaldurResource,
    ) -> Result<(), ModeError> {
        let mut context = self.user_context(&resource.uuid).await?;
        if self.update_offering_users(&context.offering_users).await? {
            context = self.user_context(&resource.uuid).await?;
        }
        let ok: Vec<_> = context
            .offering_users
            .iter()
            .filter(|u| u.state == "OK")
            .filter_map(|u| u.username.clone().filter(|n| !n.is_empty()).map(|n| (n, u)))
            .collect();
        if ok.is_empty() {
            return Ok(());
        }
        let mut options = waldur_plugin_abi::wire::UserOptions {
            homedir_umask: Some(self.offering.homedir_umask.clone()),
            ..Default::default()
        };
        for (name, user) in &ok {
            options
                .user_cuids
                .insert(name.clone(), user.user_username.clone());
        }
        for user in &context.offering_users {
            if let Some(name) = user.username.as_ref().filter(|n| !n.is_empty()) {
                options
                    .user_attributes
                    .insert(name.clone(), super::membership::user_attributes(user));
                // As membership sync tells it: a plugin matching users by email (the
                // federation's `user_match_field: email`) can add them right away. The
                // reference leaves this out here, so such users wait for the next sync.
                if !user.user_email.is_empty() {
                    options
                        .user_emails
                        .insert(name.clone(), user.user_email.clone());
                }
            }
        }
        for member in &context.team {
            if let Some(name) = member.offering_user_username.as_ref() {
                options.user_roles.insert(name.clone(), member.role.clone());
            }
        }
        let usernames: Vec<String> = ok.into_iter().map(|(n, _)| n).collect();
        let resource = resource.clone();
        let added = call(&self.backend, move |b| {
            b.add_users_to_resource(&resource, &usernames, &options)
        })
        .await?;
        tracing::info!(order = %order.uuid, "added {} user(s)", added.len());
        Ok(())
    }

    /// Non-zero plan quotas (reference `_resolve_plan_limits`; failures mean none).
    pub(super) async fn plan_quotas(&self, plan_uuid: Option<&str>) -> BTreeMap<String, f64> {
        let Some(plan) = plan_uuid.filter(|p| !p.is_empty()) else {
            return BTreeMap::new();
        };
        match self.client.plan(plan).await {
            Ok(plan) => plan
                .quotas
                .into_iter()
                .filter(|(_, v)| *v != 0.0)
                .map(|(k, v)| (k, v.trunc()))
                .collect(),
            Err(e) => {
                tracing::warn!("plan {plan} unavailable, no plan limits: {e}");
                BTreeMap::new()
            }
        }
    }

    /// The service provider's public keys by uuid (failures mean none, as the reference).
    pub(super) async fn ssh_keys(&self) -> BTreeMap<String, String> {
        match self
            .client
            .list_service_provider_keys(&self.service_provider_uuid)
            .await
        {
            Ok(keys) => keys.into_iter().map(|k| (k.uuid, k.public_key)).collect(),
            Err(e) => {
                tracing::warn!("service provider keys unavailable: {e}");
                BTreeMap::new()
            }
        }
    }
}

/// A plugin call on a blocking thread, its error as a [`ModeError`].
pub(super) async fn call<T: Send + 'static>(
    backend: &Arc<Backend>,
    f: impl FnOnce(&Backend) -> Result<T, crate::plugins::PluginError> + Send + 'static,
) -> Result<T, ModeError> {
    Ok(blocking(backend, f).await?)
}
