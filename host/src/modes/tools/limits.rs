//! `sync-resource-limits` (reference `waldur_sync_resource_limits`): for every resource of the
//! offering with a backend id (R12, the consumer listing, OK and Erred), the membership
//! backend's limits are the truth and Waldur is told when they differ.

use super::{client, each_offering, one_line, ToolOutcome, ToolReport};
use crate::modes::error::ModeError;
use crate::modes::runtime::{Agent, Mode, Session};

/// What one offering's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitsSummary {
    /// Resources with a backend id.
    pub resources: usize,
    /// Resources whose Waldur limits were replaced by the backend's.
    pub pushed: usize,
    /// (resource uuid, one-line error).
    pub failed: Vec<(String, String)>,
}

pub async fn sync_resource_limits(agent: &Agent) -> ToolReport<LimitsSummary> {
    each_offering(agent, |offering| async move {
        if offering.membership_sync_backend.is_empty() {
            return ToolOutcome::Skipped("no membership_sync_backend".into());
        }
        let result = async {
            let client = client(agent, offering, "sync_resource_limits")?;
            let session = Session::prepare(agent, offering, Mode::MembershipSync, client).await?;
            let resources = session
                .client
                .list_marketplace_resources(&offering.waldur_offering_uuid, &["OK", "Erred"])
                .await?;
            let mut summary = LimitsSummary::default();
            for resource in resources.iter().filter(|r| !r.backend_id.is_empty()) {
                summary.resources += 1;
                match session.sync_limits(resource).await {
                    Ok(true) => summary.pushed += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(offering = %offering.name, resource = %resource.uuid, "{e}");
                        summary.failed.push((resource.uuid.clone(), one_line(&e)));
                    }
                }
            }
            Ok::<_, ModeError>(summary)
        }
        .await;
        match result {
            Ok(summary) => ToolOutcome::Done(summary),
            Err(e) => ToolOutcome::Failed(e),
        }
    })
    .await
}
