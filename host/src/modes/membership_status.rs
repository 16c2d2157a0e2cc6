//! Membership sync statuses (reference `_report_membership_sync_statuses`, R11): after a
//! resource's users were synced, a plugin that tracks per-grant outcomes reports them, and
//! Waldur shows them. Only for offerings that opted in (`plugin_options`
//! `enable_membership_sync_status`), and best effort: nothing here fails the resource.

use serde_json::Value;
use waldur_plugin_abi::wire::WaldurResource;

use super::runtime::{blocking, Session};
use crate::waldur::{MembershipSyncOutcome, MembershipSyncStatus};

/// The offering's opt-in, as the reference reads it from the resource's plugin options.
const ENABLE_OPTION: &str = "enable_membership_sync_status";

/// Does the resource's offering want membership statuses? Python truthiness of the option.
fn enabled(resource: &WaldurResource) -> bool {
    waldur_plugin_abi::sdk::settings::truthy(resource.offering_plugin_options.get(ENABLE_OPTION))
}

/// The plugin's report as R11 statuses; an entry that is not a status is left out, named in
/// the log, so one bad entry does not cost the others.
fn statuses(resource: &WaldurResource, report: Vec<Value>) -> Vec<MembershipSyncStatus> {
    report
        .into_iter()
        .enumerate()
        .filter_map(
            |(i, entry)| match serde_json::from_value::<MembershipSyncStatus>(entry) {
                Ok(status) => Some(status),
                Err(e) => {
                    tracing::warn!(resource = %resource.uuid, "membership sync report entry {i} left out: {e}");
                    None
                }
            },
        )
        .collect()
}

impl Session<'_> {
    /// Sends the plugin's membership sync report of the resource, when the offering opted in
    /// and the plugin has one (`get_membership_sync_report`; the default has none).
    pub(crate) async fn report_membership_statuses(&self, resource: &WaldurResource) {
        if !enabled(resource) {
            return;
        }
        let r = resource.clone();
        let report = match blocking(&self.backend, move |b| b.get_membership_sync_report(&r)).await
        {
            Ok(Some(report)) => report,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(resource = %resource.uuid, "membership sync report unavailable: {e}");
                return;
            }
        };
        let statuses = statuses(resource, report);
        match self
            .client
            .set_membership_sync_statuses(&resource.uuid, &statuses)
            .await
        {
            Ok(MembershipSyncOutcome::Stored { stored, skipped }) => {
                tracing::info!(resource = %resource.uuid, "membership sync statuses: {stored} stored, {skipped} skipped");
            }
            Ok(MembershipSyncOutcome::Conflict { detail }) => {
                tracing::warn!(resource = %resource.uuid, "membership sync statuses refused: {detail}");
            }
            Err(e) => {
                tracing::warn!(resource = %resource.uuid, "reporting membership sync statuses failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(options: Value) -> WaldurResource {
        WaldurResource {
            uuid: "r1".into(),
            offering_plugin_options: options.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }

    #[test]
    fn only_offerings_that_opted_in_report() {
        assert!(enabled(&resource(
            json!({"enable_membership_sync_status": true})
        )));
        assert!(enabled(&resource(
            json!({"enable_membership_sync_status": "yes"})
        )));
        assert!(!enabled(&resource(
            json!({"enable_membership_sync_status": false})
        )));
        assert!(!enabled(&resource(
            json!({"enable_membership_sync_status": ""})
        )));
        assert!(!enabled(&resource(json!({}))));
    }

    #[test]
    fn entries_that_are_not_statuses_are_left_out() {
        let kept = statuses(
            &resource(json!({})),
            vec![
                json!({"username": "alice1", "scope_type": "resource", "role_name": "member",
                       "state": "synced", "message": ""}),
                json!({"username": "bob1"}),
            ],
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].username.as_deref(), Some("alice1"));
    }
}
