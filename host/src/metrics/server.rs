//! The HTTP endpoint Prometheus scrapes: `GET /metrics`.
//!
//! The socket is bound before the agent starts any work, so a taken or invalid address is a
//! one-line start error rather than a background failure nobody sees.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

use super::Metrics;

/// What the OpenMetrics text format is served as.
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A bound, not yet served, metrics socket.
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
    /// The address bound (port 0 resolved to the real port).
    pub address: SocketAddr,
}

/// Binds `address`; the error is one line naming it.
pub fn bind(address: SocketAddr) -> Result<Endpoint, String> {
    let fail = |e: std::io::Error| format!("cannot serve metrics on {address}: {e}");
    let listener = std::net::TcpListener::bind(address).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let address = listener.local_addr().map_err(fail)?;
    Ok(Endpoint { listener, address })
}

/// Serves `/metrics` until the process ends. Must run inside the agent's runtime.
pub async fn serve(endpoint: Endpoint, metrics: Arc<Metrics>) {
    let listener = match tokio::net::TcpListener::from_std(endpoint.listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("metrics endpoint {}: {e}", endpoint.address);
            return;
        }
    };
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move { ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], metrics.encode()) }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics endpoint {}: {e}", endpoint.address);
    }
}
