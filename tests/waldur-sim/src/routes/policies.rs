//! Usage policies (P1): what the agent reports after applying a policy's periodic settings.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::{body_json, ok, path_id, ApiResult};
use crate::app::App;

pub fn router() -> Router<App> {
    Router::new().route(
        "/api/marketplace-slurm-periodic-usage-policies/{uuid}/report-command-result/",
        post(report_command_result),
    )
}

/// Recorded as sent, with the policy id, for tests to look at.
async fn report_command_result(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let policy = path_id(&u)?;
    let mut report = body_json(&body)?;
    if let Some(fields) = report.as_object_mut() {
        fields.insert("policy_uuid".into(), json!(policy));
    }
    app.store().periodic_reports.push(report);
    ok(json!({"status": "OK"}))
}
