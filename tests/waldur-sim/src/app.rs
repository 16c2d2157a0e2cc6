//! State shared by every request handler: the store, credentials, faults and the inspection
//! record, each behind its own short-lived lock so a slow (latency-injected) request never
//! blocks others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::broker::BrokerAdmin;
use crate::faults::Faults;
use crate::inspect::Inspect;
use crate::scenario::{OidcClient, Scenario, ScenarioError, Settings};
use crate::store::Store;

/// Static tokens, OIDC clients and the bearer tokens issued to them.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: HashSet<String>,
    clients: Vec<OidcClient>,
    issued: HashMap<String, Instant>,
    next: u64,
}

impl Auth {
    pub fn from_scenario(s: &Scenario) -> Self {
        Auth {
            tokens: s.effective_tokens().into_iter().collect(),
            clients: s.oidc_clients.clone(),
            issued: HashMap::new(),
            next: 0,
        }
    }

    /// Checks an `Authorization` header value.
    pub fn accepts(&self, header: &str) -> bool {
        if let Some(t) = header.strip_prefix("Token ") {
            return self.tokens.contains(t.trim());
        }
        if let Some(t) = header.strip_prefix("Bearer ") {
            return self
                .issued
                .get(t.trim())
                .is_some_and(|exp| Instant::now() < *exp);
        }
        false
    }

    /// Client-credentials grant: returns `(access_token, expires_in)` for a known client.
    pub fn issue(&mut self, client_id: &str, client_secret: &str) -> Option<(String, u64)> {
        let client = self
            .clients
            .iter()
            .find(|c| c.client_id == client_id && c.client_secret == client_secret)?;
        let ttl = if client.expires_in == 0 {
            300
        } else {
            client.expires_in
        };
        self.next += 1;
        let token = format!("sim-oidc-{}-{}", self.next, crate::ids::generate());
        self.issued
            .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
        Some((token, ttl))
    }

    /// Makes a previously issued bearer token invalid (to test token refresh).
    pub fn revoke_bearer_tokens(&mut self) {
        self.issued.clear();
    }

    pub fn issued_count(&self) -> usize {
        self.issued.len()
    }
}

pub struct Shared {
    /// API root handed to clients, e.g. `http://127.0.0.1:8080/api/`.
    pub base: String,
    /// Scheme, host and port, for absolute `Link` URLs.
    pub origin: String,
    store: Mutex<Store>,
    auth: Mutex<Auth>,
    faults: Mutex<Faults>,
    inspect: Mutex<Inspect>,
    /// Copies of the settings read on every request, kept outside the store lock so list
    /// handlers (which hold the store) and the observe layer never lock it twice.
    default_page_size: AtomicUsize,
    max_page_size: AtomicUsize,
    request_log: AtomicBool,
    log_bodies: AtomicBool,
    /// The real broker Mastermind's side of event processing talks to, once attached.
    broker: Mutex<Option<BrokerAdmin>>,
    /// Indexes into `Store::published`, delivered to the broker in order by one task.
    outbox: mpsc::UnboundedSender<usize>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<usize>>>,
}

pub type App = Arc<Shared>;

/// A poisoned lock only means a handler panicked mid-request; the data is still usable for a
/// test simulator, so recover instead of cascading panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(origin: &str, scenario: &Scenario) -> Result<App, ScenarioError> {
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            broker: Mutex::new(None),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            base: format!("{origin}/api/"),
            origin: origin.to_string(),
            store: Mutex::new(Store::from_scenario(scenario)?),
            auth: Mutex::new(Auth::from_scenario(scenario)),
            faults: Mutex::new(Faults::default()),
            inspect: Mutex::new(Inspect::default()),
            default_page_size: AtomicUsize::new(0),
            max_page_size: AtomicUsize::new(0),
            request_log: AtomicBool::new(true),
            log_bodies: AtomicBool::new(true),
        };
        shared.apply_settings(&scenario.settings);
        Ok(Arc::new(shared))
    }

    fn apply_settings(&self, s: &Settings) {
        self.default_page_size
            .store(s.default_page_size, Ordering::Relaxed);
        self.max_page_size
            .store(s.max_page_size.max(1), Ordering::Relaxed);
        self.request_log.store(s.request_log, Ordering::Relaxed);
        self.log_bodies.store(s.log_bodies, Ordering::Relaxed);
    }

    /// `(default page size, max page size)`.
    pub fn page_limits(&self) -> (usize, usize) {
        (
            self.default_page_size.load(Ordering::Relaxed),
            self.max_page_size.load(Ordering::Relaxed),
        )
    }

    /// `(keep a request log, keep bodies in it)`.
    pub fn log_flags(&self) -> (bool, bool) {
        (
            self.request_log.load(Ordering::Relaxed),
            self.log_bodies.load(Ordering::Relaxed),
        )
    }

    /// Turns the request log (and its bodies) on or off, e.g. for large benchmarks.
    pub fn set_log_flags(&self, request_log: bool, log_bodies: bool) {
        self.request_log.store(request_log, Ordering::Relaxed);
        self.log_bodies.store(log_bodies, Ordering::Relaxed);
    }

    /// Replaces the whole state (store and credentials) with a new scenario.
    pub fn load(&self, scenario: &Scenario) -> Result<(), ScenarioError> {
        let store = Store::from_scenario(scenario)?;
        *lock(&self.store) = store;
        *lock(&self.auth) = Auth::from_scenario(scenario);
        self.apply_settings(&scenario.settings);
        Ok(())
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn auth(&self) -> MutexGuard<'_, Auth> {
        lock(&self.auth)
    }

    pub fn broker(&self) -> Option<BrokerAdmin> {
        lock(&self.broker).clone()
    }

    pub fn set_broker(&self, broker: Option<BrokerAdmin>) {
        *lock(&self.broker) = broker;
    }

    /// Publishes `body` to every queue that observes `object_type` for the offering: A7
    /// queues and 1.0.7 consumer queues. Answers how many queues it went to.
    pub fn publish_event(
        &self,
        offering_uuid: &str,
        object_type: &str,
        body: serde_json::Value,
    ) -> usize {
        let mut st = self.store();
        let mut targets: Vec<(String, String, serde_json::Value)> = st
            .event_queues
            .values()
            .filter(|q| q.offering_uuid == offering_uuid && q.object_type == object_type)
            .map(|q| (q.vhost.clone(), q.queue_name.clone(), body.clone()))
            .collect();
        // A consumer queue carries every type: each message names its own.
        let mut tagged = body.clone();
        if let Some(fields) = tagged.as_object_mut() {
            fields
                .entry("object_type")
                .or_insert_with(|| object_type.into());
        }
        targets.extend(
            st.consumer_queues
                .values()
                .filter(|q| {
                    q.offering_uuid == offering_uuid
                        && q.object_types.iter().any(|t| t == object_type)
                })
                .map(|q| (q.vhost.clone(), q.queue_name.clone(), tagged.clone())),
        );
        for (vhost, queue_name, body) in &targets {
            let seq = st.published.len();
            st.published.push(crate::store::PublishedEvent {
                seq,
                offering_uuid: offering_uuid.to_string(),
                object_type: object_type.to_string(),
                vhost: vhost.clone(),
                queue_name: queue_name.clone(),
                body: body.clone(),
                routed: None,
                error: None,
                published_ms: None,
            });
            // The receiver lives as long as the server; a closed one means it is stopping.
            let _ = self.outbox.send(seq);
        }
        targets.len()
    }

    /// The delivery side of [`Shared::publish_event`], taken once by the server.
    pub fn take_outbox(&self) -> Option<mpsc::UnboundedReceiver<usize>> {
        lock(&self.outbox_rx).take()
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub fn inspect(&self) -> MutexGuard<'_, Inspect> {
        lock(&self.inspect)
    }
}
