//! The agent's side of the plugin contract, for tests that drive whole flows in-process.
//!
//! A method the plugin answers NOT_IMPLEMENTED for is run by the agent as the reference's
//! generic BaseBackend algorithm (`host/src/plugins/backend/defaults.rs`) through the
//! plugin's `client_*` methods and hooks. This is a compact replica of exactly those
//! compositions (create, delete, remove users, pull), so the plugin's tests see the same
//! command sequences the agent produces. Keep it in step with `defaults.rs`.

#![allow(dead_code)]

use waldur_plugin_abi::wire::{
    BackendResourceInfo, ComponentUsage, Limits, ResourceUsage, UserContext, UserOptions,
    WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Backend, Error, ErrorKind, Result};

/// The plugin's answer, or the agent's default when the plugin leaves the method to it.
fn or_default<T>(answer: Result<T>, default: impl FnOnce() -> Result<T>) -> Result<T> {
    match answer {
        Err(e) if e.is_not_implemented() => default(),
        other => other,
    }
}

fn is_backend_error(error: &Error) -> bool {
    matches!(
        error.kind,
        ErrorKind::BACKEND | ErrorKind::DUPLICATE_RESOURCE | ErrorKind::BACKEND_NOT_READY
    )
}

/// Runs agent-side flows on a plugin backend `B`.
pub struct Agent<'a, B: Backend> {
    pub backend: &'a B,
    /// `backend_settings.soft_delete`.
    pub soft_delete: bool,
    pub project_prefix: String,
    /// The offering's component types (zero usage, soft delete).
    pub components: Vec<String>,
}

impl<'a, B: Backend> Agent<'a, B> {
    fn project_backend_id(&self, slug: &str) -> Result<String> {
        or_default(
            self.backend.get_project_backend_id(slug.to_string()),
            || Ok(format!("{}{slug}", self.project_prefix)),
        )
    }

    pub fn create_backend_resource(
        &self,
        id: &str,
        name: &str,
        organization: &str,
        parent: Option<&str>,
    ) -> Result<bool> {
        let answer = self.backend.create_backend_resource(
            id.to_string(),
            name.to_string(),
            organization.to_string(),
            parent.map(str::to_string),
        );
        or_default(answer, || {
            if self.backend.client_get_resource(id.to_string())?.is_some() {
                return Ok(false);
            }
            self.backend.client_create_resource(
                id.to_string(),
                name.to_string(),
                organization.to_string(),
                parent.map(str::to_string),
            )?;
            Ok(true)
        })
    }

    pub fn setup_resource_limits(&self, id: &str, resource: &WaldurResource) -> Result<Limits> {
        let answer = self
            .backend
            .setup_resource_limits(id.to_string(), resource.clone());
        or_default(answer, || {
            let collected = self.backend.collect_resource_limits(resource.clone())?;
            if collected.backend_limits.is_empty() {
                return Ok(Limits::new());
            }
            self.backend
                .client_set_resource_limits(id.to_string(), collected.backend_limits)?;
            Ok(collected.waldur_limits)
        })
    }

    /// The order processor's create: pre-create hook, the account (DUPLICATE_RESOURCE when
    /// it exists), limits, post-create hook.
    pub fn create_resource_with_id(
        &self,
        resource: &WaldurResource,
        id: &str,
        context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo> {
        let answer = self.backend.create_resource_with_id(
            resource.clone(),
            id.to_string(),
            context.cloned(),
        );
        or_default(answer, || {
            or_default(
                self.backend
                    .pre_create_resource(resource.clone(), context.cloned()),
                || Ok(()),
            )?;
            let project = self.project_backend_id(&resource.project_slug)?;
            if !self.create_backend_resource(id, &resource.name, &project, Some(&project))? {
                return Err(Error::duplicate_resource(id));
            }
            let limits = self.setup_resource_limits(id, resource)?;
            let info = BackendResourceInfo {
                backend_id: id.to_string(),
                limits,
                ..Default::default()
            };
            or_default(
                self.backend
                    .post_create_resource(info.clone(), resource.clone(), context.cloned()),
                || Ok(info),
            )
        })
    }

    pub fn delete_resource_safely(&self, id: &str) -> Result<()> {
        or_default(self.backend.delete_resource_safely(id.to_string()), || {
            if self.backend.client_get_resource(id.to_string())?.is_none() {
                return Ok(());
            }
            self.backend.client_delete_resource(id.to_string())
        })
    }

    /// The order processor's terminate.
    pub fn delete_resource(
        &self,
        resource: &WaldurResource,
        project_slug: Option<&str>,
    ) -> Result<Option<String>> {
        let answer = self
            .backend
            .delete_resource(resource.clone(), project_slug.map(str::to_string));
        or_default(answer, || {
            let id = resource.backend_id.as_str();
            if id.trim().is_empty() || self.backend.client_get_resource(id.to_string())?.is_none() {
                return Ok(None);
            }
            or_default(
                self.backend.pre_delete_resource(resource.clone()),
                || Ok(()),
            )?;
            if self.soft_delete {
                let zero: Limits = self.components.iter().map(|c| (c.clone(), 0.0)).collect();
                self.set_resource_limits(id, zero)?;
            } else {
                self.delete_resource_safely(id)?;
                if let Some(slug) = project_slug {
                    let project = self.project_backend_id(slug)?;
                    let in_use = self
                        .backend
                        .client_list_resources()?
                        .iter()
                        .any(|r| r.organization == project && r.name != project);
                    if !in_use {
                        self.delete_resource_safely(&project)?;
                    }
                }
            }
            or_default(self.backend.post_delete_resource(resource.clone()), || {
                Ok(())
            })?;
            Ok(None)
        })
    }

    pub fn set_resource_limits(&self, id: &str, limits: Limits) -> Result<Option<String>> {
        self.backend.set_resource_limits(id.to_string(), limits)
    }

    pub fn add_users(&self, resource: &WaldurResource, users: &[&str]) -> Result<Vec<String>> {
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        self.backend
            .add_users_to_resource(resource.clone(), users, UserOptions::default())
    }

    pub fn remove_user(&self, resource: &WaldurResource, username: &str) -> Result<bool> {
        let answer = self.backend.remove_user(
            resource.clone(),
            username.to_string(),
            UserOptions::default(),
        );
        or_default(answer, || {
            let id = resource.backend_id.clone();
            if id.trim().is_empty() {
                return Err(Error::backend("Empty resource backend ID"));
            }
            if self
                .backend
                .client_get_association(username.to_string(), id.clone())?
                .is_none()
            {
                return Ok(true);
            }
            let outcome = or_default(
                self.backend
                    .pre_delete_user_actions(id.clone(), username.to_string()),
                || Ok(()),
            )
            .and_then(|()| {
                self.backend
                    .client_delete_association(username.to_string(), id.clone())
            });
            match outcome {
                Ok(()) => Ok(true),
                Err(e) if is_backend_error(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    pub fn remove_users(&self, resource: &WaldurResource, users: &[&str]) -> Result<Vec<String>> {
        let users_owned: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let answer = self.backend.remove_users_from_resource(
            resource.clone(),
            users_owned,
            UserOptions::default(),
        );
        or_default(answer, || {
            let mut removed = Vec::new();
            for user in users {
                match self.remove_user(resource, user) {
                    Ok(true) => removed.push(user.to_string()),
                    Ok(false) => {}
                    Err(e) if is_backend_error(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(removed)
        })
    }

    fn zero_usage(&self) -> ResourceUsage {
        let zero: ComponentUsage = self.components.iter().map(|c| (c.clone(), 0.0)).collect();
        ResourceUsage::from([(TOTAL_ACCOUNT_USAGE.to_string(), zero)])
    }

    pub fn pull_backend_resource(&self, id: &str) -> Result<Option<BackendResourceInfo>> {
        or_default(self.backend.pull_backend_resource(id.to_string()), || {
            if self.backend.client_get_resource(id.to_string())?.is_none() {
                return Ok(None);
            }
            let users = self.backend.client_list_resource_users(id.to_string())?;
            let mut report = self.backend.get_usage_report(vec![id.to_string()])?;
            let usage = report.remove(id).unwrap_or_else(|| self.zero_usage());
            Ok(Some(BackendResourceInfo {
                users,
                usage,
                ..Default::default()
            }))
        })
    }

    /// One resource, as the report mode pulls it (errors become `None`).
    pub fn pull_resource(&self, resource: &WaldurResource) -> Result<Option<BackendResourceInfo>> {
        or_default(self.backend.pull_resource(resource.clone()), || {
            if resource.backend_id.is_empty() {
                return Ok(None);
            }
            Ok(self
                .pull_backend_resource(&resource.backend_id)
                .unwrap_or(None))
        })
    }

    pub fn get_resource_user_limits(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, waldur_plugin_abi::wire::BackendLimits>> {
        or_default(
            self.backend.get_resource_user_limits(id.to_string()),
            || self.backend.client_get_resource_user_limits(id.to_string()),
        )
    }
}
