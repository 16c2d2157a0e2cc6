//! The running server: router assembly, the observe (log + counters + faults) and auth
//! middlewares, and [`Simulator`], which owns a private tokio runtime on its own thread so it
//! works the same from sync tests, async tests of any runtime flavour, and the binary, and is
//! torn down completely (listener, connections, runtime) when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use tower::ServiceExt;

use crate::app::{App, Shared};
use crate::faults::{Action, Fault};
use crate::inspect::LogEntry;
use crate::scenario::{Scenario, ScenarioError};
use crate::store::{Order, Resource, Store};
use crate::{routes, sim_api};

/// Bodies above this size are not buffered for the log (and requests above it are refused).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Per-connection handle a "drop" fault uses to make the accept loop close the socket without
/// writing a response.
#[derive(Clone)]
struct ConnKiller(Arc<Notify>);

pub fn router(app: App) -> Router {
    let api = routes::api_router()
        .route_layer(middleware::from_fn_with_state(app.clone(), auth))
        // The token endpoint is how a client gets credentials, so it sits outside auth.
        .route("/oidc/token", post(routes::oidc::token))
        .fallback(|| async { routes::ApiError::not_found() })
        .layer(middleware::from_fn_with_state(app.clone(), observe));
    // Added after `.layer`, so the inspection API is neither counted nor faulted.
    api.merge(sim_api::router()).with_state(app)
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let detail = match header {
        None => "Authentication credentials were not provided.",
        Some(h) if app.auth().accepts(&h) => return next.run(req).await,
        Some(_) => "Invalid token.",
    };
    let mut resp = (StatusCode::UNAUTHORIZED, Json(json!({"detail": detail}))).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    resp
}

fn text(bytes: &[u8], keep: bool) -> Option<String> {
    keep.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Outermost layer of the Waldur API: applies injected faults, then records the exchange in
/// the log and counters (faulted and unauthorised requests included).
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let received_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let killer = req.extensions().get::<ConnKiller>().cloned();
    let (log_on, bodies) = app.log_flags();

    let (parts, body) = req.into_parts();
    let req_bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let decision = app.faults().decide(
        &method,
        &template,
        &path,
        &String::from_utf8_lossy(&req_bytes),
    );
    let mut fault = (!decision.delay.is_zero()).then(|| "latency".to_string());
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let entry = |status: u16, fault: Option<String>, resp_body: Option<String>| LogEntry {
        seq: 0,
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        template: template.clone(),
        status,
        request_body: text(&req_bytes, bodies),
        response_body: resp_body,
        fault,
        received_unix_us,
        duration_ms: started.elapsed().as_millis() as u64,
        at_ms: crate::store::epoch_ms(),
    };

    let response = match decision.action {
        Some(Action::Drop) => {
            app.inspect()
                .record(entry(0, Some("drop".into()), None), log_on);
            if let Some(k) = killer {
                k.0.notify_one();
                // Never answer: the connection task drops the socket on the notification.
                std::future::pending::<()>().await;
            }
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Action::Status(code)) => {
            fault = Some(format!("status {code}"));
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (status, Json(json!({"detail": "Injected fault."}))).into_response();
            if code == 429 {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            resp
        }
        Some(Action::AppliedStatus(code)) => {
            fault = Some(format!("applied, then status {code}"));
            let _ = next
                .run(Request::from_parts(parts, Body::from(req_bytes.clone())))
                .await;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                Json(json!({"detail": "Injected fault after the change."})),
            )
                .into_response()
        }
        Some(Action::Malformed) => {
            fault = Some("malformed".into());
            // The handler runs (state changes stick), only the answer is garbled.
            let _ = next
                .run(Request::from_parts(parts, Body::from(req_bytes.clone())))
                .await;
            let mut resp = (StatusCode::OK, "{\"detail\": <<not json").into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(req_bytes.clone())))
                .await
        }
    };

    let (rparts, rbody) = response.into_parts();
    let resp_bytes = to_bytes(rbody, MAX_BODY).await.unwrap_or_default();
    app.inspect().record(
        entry(rparts.status.as_u16(), fault, text(&resp_bytes, bodies)),
        log_on,
    );
    Response::from_parts(rparts, Body::from(resp_bytes))
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the simulator runtime: {0}")]
    Runtime(std::io::Error),
}

/// A running simulator. Dropping it stops the server and frees its port.
pub struct Simulator {
    app: App,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut shutdown: oneshot::Receiver<()>,
) {
    // Connection tasks live in this set; dropping it (when this function returns) aborts them.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        while conns.try_join_next().is_some() {}
        let router = router.clone();
        conns.spawn(async move {
            let kill = Arc::new(Notify::new());
            let killer = ConnKiller(kill.clone());
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(killer.clone());
                    router.clone().oneshot(req.map(Body::new))
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                biased;
                _ = kill.notified() => {} // dropping `conn` closes the socket unanswered
                _ = conn => {}
            }
        });
    }
}

impl Simulator {
    /// Starts on `127.0.0.1` with an OS-chosen port.
    pub fn start(scenario: Scenario) -> Result<Simulator, SimError> {
        Self::start_on(scenario, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Starts on the given address (the binary's `--listen`).
    pub fn start_on(scenario: Scenario, addr: SocketAddr) -> Result<Simulator, SimError> {
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
        let addr = std_listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| SimError::Bind { addr, source })?;
        let app = Shared::new(&format!("http://{addr}"), &scenario)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("waldur-sim")
            .enable_all()
            .build()
            .map_err(SimError::Runtime)?;
        let router = router(app.clone());
        let app_for_thread = app.clone();
        let (tx, rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("waldur-sim".into())
            .spawn(move || {
                let outbox = app_for_thread.take_outbox();
                runtime.block_on(async move {
                    if let Some(outbox) = outbox {
                        tokio::spawn(crate::broker::deliver(app_for_thread, outbox));
                    }
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            serve(listener, router, rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                // Dropping the runtime here cancels anything still running (open connections).
                drop(runtime);
            })
            .map_err(SimError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(SimError::Bind { addr, source }),
            Err(_) => {
                return Err(SimError::Runtime(std::io::Error::other(
                    "simulator thread died",
                )))
            }
        }
        Ok(Simulator {
            app,
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The API root to configure agents with: `http://127.0.0.1:PORT/api/`.
    pub fn url(&self) -> String {
        self.app.base.clone()
    }

    /// `http://127.0.0.1:PORT` (for `/__sim/` and `/oidc/token`).
    pub fn origin(&self) -> String {
        self.app.origin.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Attaches the real broker: from now on subscriptions create their vhost, user and
    /// queues on it, and published events are delivered to it.
    pub fn attach_broker(&self, config: crate::broker::BrokerConfig) {
        self.app
            .set_broker(Some(crate::broker::BrokerAdmin::new(config)));
    }

    /// Publishes an event body of `object_type` for the offering, as Mastermind does when its
    /// state changes; answers the number of queues it went to.
    pub fn publish_event(&self, offering_uuid: &str, object_type: &str, body: Value) -> usize {
        self.app.publish_event(offering_uuid, object_type, body)
    }

    /// A change on Mastermind's side (a role granted, a username set, ...), with the messages
    /// Mastermind publishes for it; answers the number of queues they went to.
    pub fn apply_change(&self, change: crate::changes::Change) -> Result<usize, String> {
        crate::changes::apply(&self.app, change)
    }

    /// A user asks which backend accounts could be imported: a new backend resource request
    /// (state Sent) and its `importable_resources` event. Answers the request id.
    pub fn create_backend_resource_request(&self, offering_uuid: &str) -> Result<String, String> {
        crate::routes::imports::create_request(&self.app, offering_uuid, None)
    }

    /// Adds an API key row to a resource; answers its id.
    pub fn add_resource_api_key(
        &self,
        spec: crate::routes::api_keys::KeySpec,
    ) -> Result<String, String> {
        crate::routes::api_keys::add_key(&self.app, spec)
    }

    /// A user asks for a new key: the row goes to Updating and the rotation event is
    /// published. Answers the event body.
    pub fn request_key_rotation(&self, key_uuid: &str) -> Result<Value, String> {
        crate::routes::api_keys::request_rotation(&self.app, key_uuid)
    }

    /// Every event published so far, with its delivery outcome.
    pub fn published(&self) -> Vec<crate::store::PublishedEvent> {
        self.app.store().published.clone()
    }

    /// The OIDC token endpoint URL.
    pub fn oidc_token_url(&self) -> String {
        format!("{}/oidc/token", self.app.origin)
    }

    /// Full state dump, as served at `/__sim/state`.
    pub fn state(&self) -> Value {
        serde_json::to_value(&*self.app.store()).unwrap_or_default()
    }

    /// Reads the store under its lock.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.app.store())
    }

    /// Changes the store under its lock (e.g. to add an order while an agent runs).
    pub fn with_store_mut<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.app.store())
    }

    /// An order by id in any UUID form.
    pub fn order(&self, uuid: &str) -> Option<Order> {
        let id = crate::ids::normalize(uuid)?;
        self.app.store().orders.get(&id).cloned()
    }

    pub fn resource(&self, uuid: &str) -> Option<Resource> {
        let id = crate::ids::normalize(uuid)?;
        self.app.store().resources.get(&id).cloned()
    }

    /// Finishes an open order (`done`, `erred`, `rejected`, `canceled` or `executing`) with
    /// its effect on the resource, publishing the change; answers the order.
    pub fn finish_order(
        &self,
        uuid: &str,
        state: &str,
        error_message: &str,
    ) -> Result<Order, String> {
        crate::lifecycle::finish(&self.app, uuid, state, error_message)
    }

    /// Adds a component usage (or, with `username`, a user usage); answers its id.
    pub fn add_usage(&self, seed: &crate::routes::usages::UsageSeed) -> Result<String, String> {
        crate::routes::usages::add_usage(&mut self.app.store(), seed)
    }

    /// How consumer orders start and finish from now on.
    pub fn set_consumer_orders(
        &self,
        spec: crate::scenario::ConsumerOrdersSpec,
    ) -> Result<(), String> {
        spec.validate().map_err(|e| e.to_string())?;
        self.app.store().consumer_orders = spec;
        Ok(())
    }

    /// Identity-bridge pushes and removals so far, in order.
    pub fn identity_bridge_log(&self) -> Vec<Value> {
        self.app.store().identity_bridge_log.clone()
    }

    pub fn project(&self, uuid: &str) -> Option<crate::store::Project> {
        let id = crate::ids::normalize(uuid)?;
        self.app.store().projects.get(&id).cloned()
    }

    /// The project's team (role grants) as `(user uuid, role name)`.
    pub fn project_roles(&self, project_uuid: &str) -> Vec<(String, String)> {
        let id = crate::ids::normalize(project_uuid).unwrap_or_default();
        self.app
            .store()
            .team
            .iter()
            .filter(|m| m.project_uuid == id)
            .map(|m| (m.user_uuid.clone(), m.role.clone()))
            .collect()
    }

    /// Replaces the whole state with a new scenario (log, counters and faults stay).
    pub fn load_scenario(&self, scenario: &Scenario) -> Result<(), ScenarioError> {
        self.app.load(scenario)
    }

    /// "METHOD template" -> number of requests.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.app.inspect().counters()
    }

    /// Requests seen for one endpoint, e.g. `count("POST", "/api/marketplace-orders/{uuid}/set_state_done/")`.
    pub fn count(&self, method: &str, template: &str) -> u64 {
        self.app.inspect().count(method, template)
    }

    /// All Waldur API requests counted so far.
    pub fn total_requests(&self) -> u64 {
        self.app.inspect().total()
    }

    pub fn requests(&self) -> Vec<LogEntry> {
        self.app.inspect().log()
    }

    /// Clears the request log and counters.
    pub fn reset_log(&self) {
        self.app.inspect().reset();
    }

    pub fn inject(&self, fault: Fault) {
        self.app.faults().add(fault);
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.app.faults().list()
    }

    pub fn clear_faults(&self) {
        self.app.faults().clear();
    }

    /// Turns the request log (and the bodies in it) on or off; counters are always kept.
    pub fn set_request_log(&self, enabled: bool, with_bodies: bool) {
        self.app.set_log_flags(enabled, with_bodies);
    }

    /// Invalidates every issued OIDC bearer token (to test re-authentication).
    pub fn revoke_bearer_tokens(&self) {
        self.app.auth().revoke_bearer_tokens();
    }

    /// Blocks the calling thread until the server stops (used by the binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
