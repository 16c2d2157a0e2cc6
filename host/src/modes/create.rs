//! Create and Restore orders, done exactly once whatever fails between their steps.
//!
//! A Create is three writes in two systems: the account on the backend, then its id and its
//! limits in Waldur. Any of them can fail, or the agent can die between them, and the next
//! attempt starts from what it reads:
//!
//! - Waldur has the backend id and the backend has the account: only the Waldur steps are
//!   repeated (the limits), never the account.
//! - Waldur has no backend id but the backend has an account with the id this resource would
//!   get: if that account is this resource's own orphan (same project account, same
//!   description, and no other Waldur resource holds the id), it is adopted and the creation
//!   finished on it; only an account that belongs to something else is a conflict, which
//!   moves on to the next candidate id or errs the order as the reference does.
//!
//! The decision uses only the plugin's client methods (`client_get_resource`,
//! `get_project_backend_id`) and its limit hooks, so it works for every plugin that keeps the
//! reference's account fields, without a rebuild.

use std::sync::Arc;

use waldur_plugin_abi::wire::{
    BackendResourceInfo, ClientResource, Order, UserContext, WaldurResource,
};
use waldur_plugin_abi::ErrorKind;

use super::claims::Claim;
use super::error::ModeError;
use super::order_process::{call, RESTORE};
use super::runtime::Session;

impl Session<'_> {
    /// Create and Restore (reference `_process_create_order`); true when done.
    pub(super) async fn create_order(&self, order: &Order) -> Result<bool, ModeError> {
        if let Some(done) = self.poll_async_order(order).await? {
            if done {
                let resource = self
                    .client
                    .provider_resource(&order.marketplace_resource_uuid, &[])
                    .await?;
                call(&self.backend, move |b| {
                    b.sync_resource_effective_id(&resource)
                })
                .await?;
            }
            return Ok(done);
        }
        let resource = self
            .client
            .provider_resource(&order.marketplace_resource_uuid, &[])
            .await?;
        if !resource.backend_id.is_empty() {
            let pulled = resource.clone();
            let exists = call(&self.backend, move |b| b.pull_resource(&pulled))
                .await?
                .is_some();
            if exists && order.order_type == RESTORE {
                return Ok(true); // nothing to restore
            }
            let info = if exists {
                // An earlier attempt created and recorded the account, then failed before
                // the order was done: what is still owed is on the Waldur side.
                self.owed_limits(&resource).await?
            } else {
                // Recorded but missing (Restore, or removed by hand): recreate it under the
                // id Waldur knows.
                let context = self.user_context(&resource.uuid).await?;
                let (r, id) = (resource.clone(), resource.backend_id.clone());
                call(&self.backend, move |b| {
                    b.create_resource_with_id(&r, &id, Some(&context))
                })
                .await?
            };
            return self.record_created(order, &resource, &info).await;
        }
        let mut context = self.user_context(&resource.uuid).await?;
        context.plan_quotas = self.plan_quotas(resource.plan_uuid.as_deref()).await;
        context.ssh_keys = self.ssh_keys().await;
        let (info, claim) = self.create_with_unique_id(&resource, context).await?;
        let recorded = self.record_created(order, &resource, &info).await;
        // Only now may another task of this process judge the id by what Waldur says.
        drop(claim);
        recorded
    }

    /// The Waldur-unit limits a finished create owes Waldur, without touching the backend.
    async fn owed_limits(
        &self,
        resource: &WaldurResource,
    ) -> Result<BackendResourceInfo, ModeError> {
        let r = resource.clone();
        let collected = call(&self.backend, move |b| b.collect_resource_limits(&r)).await?;
        Ok(BackendResourceInfo {
            backend_id: resource.backend_id.clone(),
            // As the default `setup_resource_limits`: no backend limits, nothing to record.
            limits: if collected.backend_limits.is_empty() {
                Default::default()
            } else {
                collected.waldur_limits
            },
            ..BackendResourceInfo::default()
        })
    }

    /// Tells Waldur what the backend created (each write confirmed by reading back when its
    /// answer is lost); true when the order is done, false while an async backend order runs.
    async fn record_created(
        &self,
        order: &Order,
        resource: &WaldurResource,
        info: &BackendResourceInfo,
    ) -> Result<bool, ModeError> {
        if info.backend_id.is_empty() {
            return Err(ModeError::Backend(
                "the backend created no resource id".into(),
            ));
        }
        let uuid = &resource.uuid;
        if resource.backend_id != info.backend_id {
            self.record_backend_id(uuid, &info.backend_id).await?;
        }
        if !info.limits.is_empty() {
            self.record_limits(uuid, &info.limits).await?;
        }
        if !info.backend_metadata.is_empty() {
            if let Err(e) = self
                .client
                .set_resource_backend_metadata(uuid, &info.backend_metadata)
                .await
            {
                tracing::warn!(resource = %uuid, "setting backend metadata failed: {e}");
            }
        }
        if !info.endpoints.is_empty() {
            if let Err(e) = self
                .client
                .set_resource_endpoints(uuid, &info.endpoints)
                .await
            {
                tracing::warn!(resource = %uuid, "setting endpoints failed: {e}");
            }
        }
        // Keys once Waldur has the id (reference `_provision_resource_api_keys`). Topping up
        // rather than adding makes this safe on every repeat of the order; a failure is
        // logged and never errs the order, as in the reference.
        if let Err(e) = self
            .provision_resource_api_keys(uuid, &info.backend_id)
            .await
        {
            tracing::error!(resource = %uuid, "provisioning resource API keys failed: {e}");
        }
        if !info.pending_order_id.is_empty() && self.backend.capabilities().supports_async_orders {
            self.client
                .set_order_backend_id(&order.uuid, &info.pending_order_id)
                .await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Reference `_create_resource_with_uniqueness_check`: the allocation id from the slug (or
    /// the project slug by policy), retried with `<project_slug>-<n>` on duplicates, and an
    /// earlier attempt's own account adopted. The claim on the chosen id is handed back: it
    /// must be held until Waldur has recorded the id.
    async fn create_with_unique_id(
        &self,
        resource: &WaldurResource,
        context: UserContext,
    ) -> Result<(BackendResourceInfo, Claim), ModeError> {
        let settings = &self.offering.backend_settings;
        let project_slug_policy = resource
            .offering_plugin_options
            .get("account_name_generation_policy")
            .and_then(|v| v.as_str())
            == Some("project_slug");
        let check_unique = settings
            .get("check_backend_id_uniqueness")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let check_all = settings
            .get("check_all_offerings")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let attempts = if project_slug_policy || check_unique {
            settings
                .get("backend_id_max_retries")
                .and_then(|v| v.as_u64())
                .unwrap_or(50)
                .max(1)
        } else {
            1
        };
        let mut base = if project_slug_policy {
            resource.project_slug.clone()
        } else {
            resource.slug.clone()
        };
        let context = Arc::new(context);
        // Why the last candidate was refused, for the error users see when all were.
        let mut refused = String::new();
        for retry in 1..=attempts {
            let slug = base.clone();
            let id = call(&self.backend, move |b| b.get_resource_backend_id(&slug)).await?;
            base = format!("{}-{retry}", resource.project_slug);
            let claim = self
                .agent
                .backend_id_claims
                .claim(format!("{}\n{id}", self.backend.entry()))
                .await;
            if check_unique {
                match self
                    .client
                    .check_unique_backend_id(&self.offering.waldur_offering_uuid, &id, check_all)
                    .await
                {
                    Ok(false) => {
                        tracing::info!(resource = %resource.uuid, "backend id {id} is taken in Waldur");
                        refused = format!("{id} is taken in Waldur");
                        continue;
                    }
                    Ok(true) => {}
                    // The reference treats a failed check as unique.
                    Err(e) => {
                        tracing::warn!("uniqueness check of {id} failed, assuming unique: {e}")
                    }
                }
            }
            let (r, ctx, try_id) = (resource.clone(), Arc::clone(&context), id.clone());
            match call(&self.backend, move |b| {
                b.create_resource_with_id(&r, &try_id, Some(&ctx))
            })
            .await
            {
                Err(ModeError::Plugin(e)) if e.kind() == ErrorKind::DUPLICATE_RESOURCE => {
                    if self.is_own_orphan(resource, &id, check_all).await? {
                        let info = self.adopt(resource, &id, &context).await?;
                        return Ok((info, claim));
                    }
                    tracing::info!(resource = %resource.uuid, "backend id {id} exists on the backend");
                    refused = format!("{id} exists on the backend");
                }
                Ok(info) => return Ok((info, claim)),
                Err(e) => return Err(e),
            }
        }
        // Name the refused id: without it a duplicate (e.g. a second resource with the same
        // slug, no uniqueness check) errs the order with no hint of the cause.
        Err(ModeError::Backend(format!(
            "no unique backend id found for resource {} after {attempts} attempt(s): {refused}",
            resource.name
        )))
    }

    /// Whether the existing account `id` is what an earlier, unrecorded attempt of this very
    /// resource created: the reference's create gives it the project account as organization
    /// and the resource name as description, and no other Waldur resource may hold the id.
    /// A plugin without `client_get_resource` cannot tell, so its duplicates stay conflicts.
    async fn is_own_orphan(
        &self,
        resource: &WaldurResource,
        id: &str,
        check_all: bool,
    ) -> Result<bool, ModeError> {
        let (account_id, project_slug) = (id.to_string(), resource.project_slug.clone());
        let found = crate::modes::runtime::blocking(&self.backend, move |b| {
            let account = b.client_get_resource(&account_id)?;
            let project = b.get_project_backend_id(&project_slug)?;
            Ok::<_, crate::plugins::PluginError>((account, project))
        })
        .await;
        let (account, project) = match found {
            Ok((Some(account), project)) => (account, project),
            Ok((None, _)) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NOT_IMPLEMENTED => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if !created_for(&account, resource, &project) {
            return Ok(false);
        }
        let unclaimed = self
            .client
            .check_unique_backend_id(&self.offering.waldur_offering_uuid, id, check_all)
            .await?;
        Ok(unclaimed)
    }

    /// Finishes a create on an adopted account: the steps of the reference's
    /// `create_resource_with_id` after the account exists (both repeatable).
    async fn adopt(
        &self,
        resource: &WaldurResource,
        id: &str,
        context: &Arc<UserContext>,
    ) -> Result<BackendResourceInfo, ModeError> {
        tracing::warn!(
            resource = %resource.uuid,
            "account {id} exists on the backend from an earlier attempt of this resource that \
             Waldur never recorded; adopting it"
        );
        let (r, account) = (resource.clone(), id.to_string());
        let limits = call(&self.backend, move |b| {
            b.setup_resource_limits(&account, &r)
        })
        .await?;
        let info = BackendResourceInfo {
            backend_id: id.to_string(),
            limits,
            ..BackendResourceInfo::default()
        };
        let (r, ctx) = (resource.clone(), Arc::clone(context));
        call(&self.backend, move |b| {
            b.post_create_resource(info, &r, Some(&ctx))
        })
        .await
    }
}

/// The account carries what the reference's create gives an account for `resource`: the
/// project account as organization and the resource name as description. Backends fold
/// case and whitespace and drop quotes (SLURM stores both lower-cased), so the comparison
/// does too; a backend that keeps no description is judged by the organization alone.
fn created_for(account: &ClientResource, resource: &WaldurResource, project: &str) -> bool {
    let fold = |text: &str| {
        text.replace('"', "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    !account.organization.is_empty()
        && fold(&account.organization) == fold(project)
        && (account.description.is_empty() || fold(&account.description) == fold(&resource.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(description: &str, organization: &str) -> ClientResource {
        ClientResource {
            name: "alloc".into(),
            description: description.into(),
            organization: organization.into(),
            backend_id: String::new(),
        }
    }

    #[test]
    fn an_account_is_judged_by_its_project_and_description() {
        let resource = WaldurResource {
            name: "My  \"Big\" Alloc".into(),
            ..WaldurResource::default()
        };
        assert!(created_for(
            &account("my big alloc", "hpc_proj"),
            &resource,
            "hpc_proj"
        ));
        assert!(created_for(&account("", "HPC_Proj"), &resource, "hpc_proj"));
        assert!(!created_for(
            &account("my big alloc", "other"),
            &resource,
            "hpc_proj"
        ));
        assert!(!created_for(
            &account("another alloc", "hpc_proj"),
            &resource,
            "hpc_proj"
        ));
        assert!(!created_for(
            &account("my big alloc", ""),
            &resource,
            "hpc_proj"
        ));
    }
}
