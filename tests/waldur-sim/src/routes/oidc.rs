//! A minimal OIDC token endpoint (client-credentials grant) so the agent's OIDC code path can
//! be exercised: tokens it issues are accepted as `Authorization: Bearer …`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;

#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
}

pub async fn token(State(app): State<App>, Form(req): Form<TokenRequest>) -> Response {
    if req.grant_type != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    match app.auth().issue(&req.client_id, &req.client_secret) {
        Some((token, ttl)) => Json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": ttl,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response(),
    }
}
