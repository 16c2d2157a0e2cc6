//! The source project (reference `_fetch_source_project`, B12): plugins that mirror a
//! project's metadata (`requires_source_project`) get the Waldur project with their
//! `sync_resource_project` and `sync_project_end_date` calls, so they never ask Waldur
//! themselves. Read once per project per membership pass.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::OnceCell;
use waldur_plugin_abi::wire::WaldurResource;

use super::error::ModeError;
use super::runtime::Session;
use crate::waldur::WaldurError;

/// The source projects of one membership pass, by project uuid. `None` is a project Waldur
/// did not give (not found, ambiguous, refused): it is not asked again in the same pass.
#[derive(Default)]
pub(crate) struct SourceProjects {
    by_project: Mutex<BTreeMap<String, Arc<OnceCell<Option<Value>>>>>,
}

impl SourceProjects {
    /// The cell of one project; resources of the same project share it, so concurrent
    /// resources wait for one read instead of each making their own.
    fn cell(&self, project_uuid: &str) -> Arc<OnceCell<Option<Value>>> {
        let key = crate::waldur::normalize_uuid(project_uuid);
        let mut cells = self.by_project.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(cells.entry(key).or_default())
    }
}

impl Session<'_> {
    /// The resource's source project for the plugin, or `None` when the plugin does not ask
    /// for one or Waldur has no single match. An HTTP status Waldur answered (the reference's
    /// `UnexpectedStatus`) means `None`; an unreachable Waldur fails the resource, as there.
    pub(crate) async fn source_project(
        &self,
        resource: &WaldurResource,
        projects: &SourceProjects,
    ) -> Result<Option<Value>, ModeError> {
        if !self.backend.capabilities().requires_source_project {
            return Ok(None);
        }
        let project = &resource.project_uuid;
        let cell = projects.cell(project);
        let found = cell
            .get_or_try_init(|| async {
                match self
                    .client
                    .service_provider_projects(&self.service_provider_uuid, project)
                    .await
                {
                    Ok(mut matches) if matches.len() == 1 => Ok(matches.pop()),
                    Ok(matches) if matches.is_empty() => {
                        tracing::warn!(project = %project, "source project not found");
                        Ok(None)
                    }
                    Ok(matches) => {
                        tracing::warn!(project = %project, "source project query matched {} projects; none is used", matches.len());
                        Ok(None)
                    }
                    Err(e @ WaldurError::Status { .. }) => {
                        tracing::warn!(project = %project, "source project unavailable: {e}");
                        Ok(None)
                    }
                    Err(e) => Err(ModeError::from(e)),
                }
            })
            .await?;
        Ok(found.clone())
    }
}
