//! Service and course accounts (reference B7/B8): project-level accounts Waldur keeps besides
//! the team. An account in state OK belongs on the project's resources, a Closed one does
//! not. Built once here for membership sync, order post-processing and account events.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::OnceCell;
use waldur_plugin_abi::wire::{UserOptions, WaldurResource};

use super::error::ModeError;
use super::runtime::{blocking, Session};
use crate::waldur::{normalize_uuid, ProjectAccount};

/// Account states (reference `ServiceAccountState`; course accounts share them).
const OK: &str = "OK";
const CLOSED: &str = "Closed";

/// Which kind of project account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Service,
    Course,
}

impl AccountKind {
    const ALL: [AccountKind; 2] = [AccountKind::Service, AccountKind::Course];

    fn name(self) -> &'static str {
        match self {
            AccountKind::Service => "service account",
            AccountKind::Course => "course account",
        }
    }
}

/// The offering's accounts as one pass (a membership cycle, an order's post-processing)
/// read them: each list at most once, a failed read included (reference: cached per
/// processor), so a hundred resources cost two reads and a failing Waldur is asked once.
#[derive(Default)]
pub(crate) struct ProjectAccounts {
    service: OnceCell<Result<Arc<Vec<ProjectAccount>>, String>>,
    course: OnceCell<Result<Arc<Vec<ProjectAccount>>, String>>,
}

impl ProjectAccounts {
    fn cell(&self, kind: AccountKind) -> &OnceCell<Result<Arc<Vec<ProjectAccount>>, String>> {
        match kind {
            AccountKind::Service => &self.service,
            AccountKind::Course => &self.course,
        }
    }
}

/// The usernames of a project's accounts in one state.
fn usernames_in(accounts: &[ProjectAccount], project_uuid: &str, state: &str) -> Vec<String> {
    let project = normalize_uuid(project_uuid);
    let names: BTreeSet<String> = accounts
        .iter()
        .filter(|a| a.state == state && normalize_uuid(&a.project_uuid) == project)
        .filter_map(|a| a.username.clone().filter(|n| !n.is_empty()))
        .collect();
    names.into_iter().collect()
}

/// What an account event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Create,
    Delete,
}

impl Session<'_> {
    /// The offering's accounts of one kind (B7 or B8).
    pub async fn project_accounts(
        &self,
        kind: AccountKind,
    ) -> Result<Vec<ProjectAccount>, ModeError> {
        let offering = &self.offering.waldur_offering_uuid;
        Ok(match kind {
            AccountKind::Service => self.client.list_project_service_accounts(offering).await?,
            AccountKind::Course => self.client.list_course_accounts(offering).await?,
        })
    }

    /// The accounts of one kind as this pass read them (see [`ProjectAccounts`]).
    async fn pass_accounts(
        &self,
        kind: AccountKind,
        pass: &ProjectAccounts,
    ) -> Result<Arc<Vec<ProjectAccount>>, String> {
        pass.cell(kind)
            .get_or_init(|| async {
                self.project_accounts(kind)
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .await
            .clone()
    }

    /// The usernames of the OK accounts of the resource's project: they belong on the
    /// resource although they are not in its team. A failed read means none.
    pub(crate) async fn active_account_usernames(
        &self,
        resource: &WaldurResource,
        pass: &ProjectAccounts,
    ) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for kind in AccountKind::ALL {
            if let Ok(accounts) = self.pass_accounts(kind, pass).await {
                names.extend(usernames_in(&accounts, &resource.project_uuid, OK));
            }
        }
        names
    }

    /// The project's service and course accounts on one resource (reference
    /// `_sync_resource_service_accounts` and `_sync_resource_course_accounts`): OK accounts
    /// are added, Closed ones removed. Best effort, as there: every failure is logged and
    /// none reaches the caller, so accounts never err an order or a resource.
    pub(crate) async fn sync_project_accounts(
        &self,
        resource: &WaldurResource,
        pass: &ProjectAccounts,
    ) {
        for kind in AccountKind::ALL {
            let accounts = match self.pass_accounts(kind, pass).await {
                Ok(accounts) => accounts,
                Err(e) => {
                    tracing::warn!(resource = %resource.uuid, "{}s unavailable: {e}", kind.name());
                    continue;
                }
            };
            for (state, add) in [(OK, true), (CLOSED, false)] {
                let users = usernames_in(&accounts, &resource.project_uuid, state);
                if users.is_empty() {
                    continue;
                }
                let (r, list, options) = (resource.clone(), users.clone(), UserOptions::default());
                let done = blocking(&self.backend, move |b| {
                    if add {
                        b.add_users_to_resource(&r, &list, &options)
                    } else {
                        b.remove_users_from_resource(&r, &list, &options)
                    }
                })
                .await;
                let verb = if add { "adding" } else { "removing" };
                match done {
                    Ok(changed) if !changed.is_empty() => {
                        tracing::info!(resource = %resource.uuid, "{} {}(s): {}", if add { "added" } else { "removed" }, kind.name(), changed.join(", "));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(resource = %resource.uuid, "{verb} {}s {} failed: {e}", kind.name(), users.join(", "));
                    }
                }
            }
        }
    }

    /// An account created or deleted in a project (reference `process_account_creation` and
    /// `process_account_deletion`): its username is added to, or removed from, every resource
    /// of the project. A created account must be known to Waldur under that username; a
    /// deleted one is removed by name. Answers the resources that changed.
    pub async fn apply_account_change(
        &self,
        kind: AccountKind,
        action: AccountAction,
        username: &str,
        project_uuid: &str,
    ) -> Result<usize, ModeError> {
        let project = crate::waldur::normalize_uuid(project_uuid);
        if action == AccountAction::Create {
            let known = self.project_accounts(kind).await?.into_iter().any(|a| {
                a.username.as_deref() == Some(username)
                    && crate::waldur::normalize_uuid(&a.project_uuid) == project
            });
            if !known {
                return Err(ModeError::Offering(format!(
                    "no {} {username:?} in project {project} is known to Waldur",
                    kind.name()
                )));
            }
        }
        let resources = self.project_backend_resources(&project, Vec::new()).await?;
        let mut changed = 0;
        for resource in resources {
            let users = vec![username.to_string()];
            let options = UserOptions::default();
            let done = blocking(&self.backend, move |b| match action {
                AccountAction::Create => b.add_users_to_resource(&resource, &users, &options),
                AccountAction::Delete => b.remove_users_from_resource(&resource, &users, &options),
            })
            .await?;
            changed += usize::from(!done.is_empty());
        }
        Ok(changed)
    }
}
