//! Periodic limits (reference `resource_periodic_limits` handler, P1): a usage policy in
//! Waldur asks the backend to apply settings (fairshare, limits) to one resource, and the
//! outcome goes back to the policy.

use serde_json::{Map, Value};
use waldur_plugin_abi::wire::PeriodicSettingsResult;

use super::error::ModeError;
use super::runtime::{blocking, Session};

/// One request of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodicLimitsRequest {
    pub resource_uuid: String,
    pub backend_id: String,
    pub policy_uuid: Option<String>,
    pub action: String,
    pub settings: Map<String, Value>,
}

/// The only action the reference knows.
const APPLY: &str = "apply_periodic_settings";

impl Session<'_> {
    /// Applies the request through the plugin and reports the outcome to the policy (when the
    /// request names one). A request the agent cannot carry out (no backend id, another
    /// action) is reported as a failure, as the reference does; so is a plugin error.
    pub async fn apply_periodic_limits(
        &self,
        request: &PeriodicLimitsRequest,
    ) -> Result<PeriodicSettingsResult, ModeError> {
        let result = if request.backend_id.is_empty() {
            failure("the request has no backend_id")
        } else if request.action != APPLY {
            failure(&format!(
                "unknown action {:?} (expected {APPLY})",
                request.action.chars().take(40).collect::<String>()
            ))
        } else {
            let (id, settings) = (
                request.backend_id.clone(),
                Value::Object(request.settings.clone()),
            );
            match blocking(&self.backend, move |b| {
                b.apply_periodic_settings(&id, &settings, None)
            })
            .await
            {
                Ok(result) => result,
                Err(e) => failure(&e.to_string()),
            }
        };
        if !result.success {
            tracing::warn!(
                resource = %request.resource_uuid,
                "periodic settings not applied: {}",
                result.error.as_deref().unwrap_or("")
            );
        }
        match request.policy_uuid.as_deref().filter(|p| !p.is_empty()) {
            Some(policy) => {
                self.client
                    .report_periodic_command_result(
                        policy,
                        &request.resource_uuid,
                        result.success,
                        result.error.as_deref().unwrap_or(""),
                        &result.commands_executed,
                    )
                    .await?
            }
            None => tracing::info!(
                resource = %request.resource_uuid,
                "periodic settings request without a policy: outcome not reported"
            ),
        }
        Ok(result)
    }
}

fn failure(error: &str) -> PeriodicSettingsResult {
    PeriodicSettingsResult {
        success: false,
        error: Some(error.to_string()),
        commands_executed: Vec::new(),
        extra: Default::default(),
    }
}
