//! Usage policies (reference §2, P1).

use reqwest::Method;
use serde_json::json;

use crate::waldur::call::{Call, Query};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

impl WaldurClient {
    /// P1 `POST /api/marketplace-slurm-periodic-usage-policies/{uuid}/report-command-result/`
    /// `{resource_uuid, success, error_message, mode: "production", commands_executed}` ->
    /// 200 any. Repeating a report records the same outcome again, hence retried.
    pub async fn report_periodic_command_result(
        &self,
        policy_uuid: &str,
        resource_uuid: &str,
        success: bool,
        error_message: &str,
        commands_executed: &[String],
    ) -> Result<(), WaldurError> {
        // The reference dashes this id; like every UUID the agent sends, it goes as hex
        // (Waldur accepts both, see `normalize_uuid`).
        let url = self.http.url(
            &[
                "marketplace-slurm-periodic-usage-policies",
                &normalize_uuid(policy_uuid),
                "report-command-result",
            ],
            Query::new(),
        );
        let body = json!({
            "resource_uuid": normalize_uuid(resource_uuid),
            "success": success,
            "error_message": error_message,
            "mode": "production",
            "commands_executed": commands_executed,
        });
        let call = Call::with_json(
            "P1 marketplace_slurm_periodic_usage_policies_report_command_result",
            Method::POST,
            url,
            &body,
        );
        self.http.send(&call).await.map(drop)
    }
}
