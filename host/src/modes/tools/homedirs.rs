//! `create-homedirs` (reference `waldur_site_create_homedirs`): home directories for the
//! offering's OK offering users, through the backend's `create_user_homedirs`, for offerings
//! whose backend `supports_user_homedirs` and whose `enable_user_homedir_account_creation`
//! (backend setting, default true) is on. The umask is `default_homedir_umask` (default
//! `0077`).

use waldur_plugin_abi::wire::JsonMap;

use super::{client, configured_mode, each_offering, ToolOutcome, ToolReport};
use crate::modes::error::ModeError;
use crate::modes::runtime::{blocking, Agent, Mode, Session};
use crate::waldur::OfferingUserFilter;

/// What one offering's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomedirsSummary {
    /// The usernames handed to the backend.
    pub usernames: Vec<String>,
    pub umask: String,
}

/// `enable_user_homedir_account_creation`: absent means true, as in the reference.
fn enabled(settings: &JsonMap) -> bool {
    match settings.get("enable_user_homedir_account_creation") {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => !matches!(
            s.to_ascii_lowercase().as_str(),
            "false" | "no" | "0" | "off"
        ),
        Some(other) => other.as_f64() != Some(0.0),
    }
}

pub async fn create_homedirs(agent: &Agent) -> ToolReport<HomedirsSummary> {
    each_offering(agent, |offering| async move {
        if !enabled(&offering.backend_settings) {
            return ToolOutcome::Skipped("enable_user_homedir_account_creation is off".into());
        }
        let Some(mode) = configured_mode(offering, &[Mode::MembershipSync, Mode::OrderProcess])
        else {
            return ToolOutcome::Skipped("no membership_sync or order_processing backend".into());
        };
        let result = async {
            let client = client(agent, offering, "create_homedirs")?;
            let session = Session::prepare(agent, offering, mode, client).await?;
            if !session.backend.capabilities().supports_user_homedirs {
                return Ok(None);
            }
            let filter = OfferingUserFilter {
                states: vec!["OK".into()],
                fields: vec!["username".into()],
                ..OfferingUserFilter::offering(&offering.waldur_offering_uuid)
            };
            let mut usernames: Vec<String> = session
                .client
                .list_offering_users(&filter)
                .await?
                .into_iter()
                .filter_map(|u| u.username)
                .filter(|u| !u.is_empty())
                .collect();
            usernames.sort();
            usernames.dedup();
            let umask = offering.homedir_umask.clone();
            let (names, mask) = (usernames.clone(), umask.clone());
            blocking(&session.backend, move |b| {
                b.create_user_homedirs(&names, &mask)
            })
            .await?;
            Ok::<_, ModeError>(Some(HomedirsSummary { usernames, umask }))
        }
        .await;
        match result {
            Ok(Some(summary)) => ToolOutcome::Done(summary),
            Ok(None) => ToolOutcome::Skipped("the backend does not support user homedirs".into()),
            Err(e) => ToolOutcome::Failed(e),
        }
    })
    .await
}
