//! `sync-offering-users` (reference `waldur_sync_offering_users`): the offering-user username
//! state machine (reference §4.3), once, for every offering.

use std::collections::BTreeMap;

use super::{client, configured_mode, each_offering, ToolOutcome, ToolReport};
use crate::modes::runtime::{Agent, Mode, Session};

/// What one offering's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfferingUsersSummary {
    /// Unrestricted offering users listed (U1).
    pub users: usize,
    /// Users whose state or username changed.
    pub changed: usize,
    /// State -> number of users, after the pass.
    pub states: BTreeMap<String, usize>,
}

pub async fn sync_offering_users(agent: &Agent) -> ToolReport<OfferingUsersSummary> {
    each_offering(agent, |offering| async move {
        let Some(mode) = configured_mode(
            offering,
            &[Mode::MembershipSync, Mode::OrderProcess, Mode::Report],
        ) else {
            return ToolOutcome::Skipped("no backend configured".into());
        };
        let result = async {
            let client = client(agent, offering, "sync_offering_users")?;
            let session = Session::prepare(agent, offering, mode, client).await?;
            let before = session.offering_users().await?;
            session.update_offering_users(&before).await?;
            let after = session.offering_users().await?;
            let was: BTreeMap<&str, (&str, Option<&str>)> = before
                .iter()
                .map(|u| (u.uuid.as_str(), (u.state.as_str(), u.username.as_deref())))
                .collect();
            let mut summary = OfferingUsersSummary {
                users: after.len(),
                ..Default::default()
            };
            for user in after.iter() {
                *summary.states.entry(user.state.clone()).or_default() += 1;
                if was.get(user.uuid.as_str())
                    != Some(&(user.state.as_str(), user.username.as_deref()))
                {
                    summary.changed += 1;
                }
            }
            Ok::<_, crate::modes::error::ModeError>(summary)
        }
        .await;
        match result {
            Ok(summary) => ToolOutcome::Done(summary),
            Err(e) => ToolOutcome::Failed(e),
        }
    })
    .await
}
