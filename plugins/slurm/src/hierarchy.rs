//! The account tree: `root_account -> customer -> project -> allocation`, or in flat mode
//! (`parent_account`) `parent_account -> project -> allocation`. Customer and project
//! accounts are their own organization; the agent creates allocations with the project as
//! organization and parent. Customer accounts are never deleted.

use waldur_plugin_abi::wire::WaldurResource;
use waldur_plugin_abi::{Error, Result};

use crate::names;
use crate::slurm::Slurm;

impl Slurm {
    /// The pre-create hook: the customer and project accounts (or the project under
    /// `parent_account`), created when missing. Blank slugs and names that are no valid
    /// account names are a backend error.
    pub(crate) fn create_parent_accounts(&self, resource: &WaldurResource) -> Result<()> {
        if resource.customer_slug.is_empty() || resource.project_slug.is_empty() {
            log::warn!(
                "Resource {} has unset or missing slug fields. customer_slug: {:?}, project_slug: {:?}",
                resource.uuid,
                resource.customer_slug,
                resource.project_slug
            );
            return Err(Error::backend(format!(
                "Resource {} has unset or missing slug fields. customer_slug: {:?}, \
                 project_slug: {:?}. Cannot create backend resources with invalid slug values.",
                resource.uuid, resource.customer_slug, resource.project_slug
            )));
        }
        // Both names checked before the first command: a hostile slug creates nothing.
        let project = self.project_backend_id(&resource.project_slug);
        names::account(&project)?;
        if let Some(parent) = &self.settings.parent_account {
            self.create_account_if_missing(
                &project,
                &resource.project_name,
                &project,
                Some(parent),
            )?;
            return Ok(());
        }
        let customer = self.customer_backend_id(&resource.customer_slug);
        names::account(&customer)?;
        self.create_account_if_missing(
            &customer,
            &resource.customer_name,
            &customer,
            Some(&self.settings.root_account),
        )?;
        self.create_account_if_missing(
            &project,
            &resource.project_name,
            &project,
            Some(&customer),
        )?;
        Ok(())
    }

    /// Re-parents the project account when the Waldur project moved to another customer
    /// (default hierarchy only). A failure to create or re-parent is logged and retried on
    /// the next cycle; only the first read of the parent can fail the call.
    pub(crate) fn sync_project_parent(&self, resource: &WaldurResource) -> Result<()> {
        if self.settings.parent_account.is_some() {
            log::debug!(
                "sync_resource_project: skipping {}: flat hierarchy (parent_account is set)",
                resource.backend_id
            );
            return Ok(());
        }
        if resource.customer_slug.is_empty() || resource.project_slug.is_empty() {
            log::warn!(
                "sync_resource_project: skipping {}: missing slug (customer_slug={:?}, project_slug={:?})",
                resource.backend_id,
                resource.customer_slug,
                resource.project_slug
            );
            return Ok(());
        }
        let project = self.project_backend_id(&resource.project_slug);
        let customer = self.customer_backend_id(&resource.customer_slug);
        // Every name checked before the first command; a refused one errs this resource.
        names::account(&project)?;
        names::account(&customer)?;
        if !resource.backend_id.is_empty() {
            names::account(&resource.backend_id)?;
        }
        if project == customer {
            log::warn!(
                "sync_resource_project: skipping {}: project and customer backend IDs are \
                 identical ({project}); check customer_prefix/project_prefix settings",
                resource.backend_id
            );
            return Ok(());
        }
        let current = self.client.get_account_parent(&project)?;
        if current.as_deref() == Some(customer.as_str()) {
            log::debug!("sync_resource_project: {project} parent already correct ({customer})");
            return Ok(());
        }
        match &current {
            None => log::warn!(
                "sync_resource_project: project account {project} not found in SLURM: creating \
                 customer and project accounts"
            ),
            Some(parent) => log::info!(
                "sync_resource_project: project account {project} has parent {parent:?} but \
                 Waldur expects {customer}: reparenting"
            ),
        }
        // Names fall back to the ids when Waldur sent none.
        let customer_name = match resource.customer_name.as_str() {
            "" => customer.as_str(),
            name => name,
        };
        let project_name = match resource.project_name.as_str() {
            "" => project.as_str(),
            name => name,
        };
        let reparented = self
            .create_account_if_missing(
                &customer,
                customer_name,
                &customer,
                Some(&self.settings.root_account),
            )
            .and_then(|_| {
                self.create_account_if_missing(&project, project_name, &project, Some(&customer))
            })
            .and_then(|_| self.client.set_account_parent(&project, &customer));
        if let Err(e) = reparented {
            log::error!(
                "sync_resource_project: failed to create/reparent project account {project} \
                 under {customer}: {}",
                e.message
            );
            return Ok(());
        }
        // A no-op re-parent only prints "Nothing modified": verify by reading back.
        match self.client.get_account_parent(&project) {
            Err(_) => {
                log::warn!(
                    "sync_resource_project: could not verify parent of {project} after reparent attempt"
                );
                return Ok(());
            }
            Ok(actual) if actual.as_deref() != Some(customer.as_str()) => log::warn!(
                "sync_resource_project: parent of {project} is {actual:?} after reparent attempt \
                 (expected {customer}): reparent may have silently failed"
            ),
            Ok(_) => log::info!("sync_resource_project: set parent of {project} to {customer}"),
        }
        self.reparent_allocation_if_stale(&resource.backend_id, &project);
        Ok(())
    }

    /// The allocation normally moves with its project account; re-parent it only when its
    /// own parent is wrong (a no-op `set parent=` is an error in sacctmgr).
    fn reparent_allocation_if_stale(&self, account: &str, project: &str) {
        let parent = match self.client.get_account_parent(account) {
            Ok(parent) => parent,
            Err(_) => {
                log::warn!(
                    "sync_resource_project: could not read parent of resource account {account}"
                );
                return;
            }
        };
        if parent.as_deref() == Some(project) {
            log::debug!("sync_resource_project: resource account {account} parent already correct ({project})");
            return;
        }
        log::info!(
            "sync_resource_project: resource account {account} has parent {parent:?} but expects \
             {project}: reparenting"
        );
        if let Err(e) = self.client.set_account_parent(account, project) {
            log::error!(
                "sync_resource_project: failed to reparent resource account {account} under {project}: {}",
                e.message
            );
            return;
        }
        match self.client.get_account_parent(account) {
            Err(_) => log::warn!(
                "sync_resource_project: could not verify parent of resource account {account} \
                 after reparent attempt"
            ),
            Ok(actual) if actual.as_deref() != Some(project) => log::warn!(
                "sync_resource_project: parent of resource account {account} is {actual:?} after \
                 reparent attempt (expected {project})"
            ),
            Ok(_) => log::info!(
                "sync_resource_project: set parent of resource account {account} to {project}"
            ),
        }
    }
}
