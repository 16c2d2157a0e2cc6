//! Service and course accounts (reference B7/B8): project-level accounts Waldur keeps besides
//! the team. An account in state OK belongs on the project's resources, a Closed one does
//! not. Built once here for membership sync, order post-processing and account events.

use waldur_plugin_abi::wire::UserOptions;

use super::error::ModeError;
use super::runtime::{blocking, Session};
use crate::waldur::ProjectAccount;

/// Which kind of project account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Service,
    Course,
}

impl AccountKind {
    fn name(self) -> &'static str {
        match self {
            AccountKind::Service => "service account",
            AccountKind::Course => "course account",
        }
    }
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
