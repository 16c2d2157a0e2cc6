//! `log_shipping`: the agent's own log records sent to Waldur (reference §9.5, A9).
//!
//! As the reference: records at or above `log_shipping.log_level` (and `log_level`) go into
//! one byte-bounded ring buffer (oldest dropped first); every `ship_interval_seconds` the
//! buffer is drained and POSTed to `marketplace-site-agent-logs/` in batches of 100, with
//! three retries 5, 10 and 20 s apart, a 404 dropping the batch (the endpoint is not
//! deployed); what is left is flushed at shutdown.
//!
//! Unlike the reference, whose shippers (one per agent identity) race for a shared buffer, a
//! record about one offering (its `offering` field, or the span it was logged in) goes to
//! that offering's agent identity, and a record about the agent as a whole goes to every
//! identity; records logged before any identity is registered wait in the buffer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::fields::in_context;
use crate::waldur::{AgentLogRecord, WaldurClient};

/// Records per POST (the reference's batch size).
pub const BATCH_SIZE: usize = 100;

/// Never shipped besides the transport crates ([`super::QUIET_CRATES`]; the reference drops
/// httpx/httpcore): the shipper itself, so a failing shipment does not feed itself.
const SHIPPER_TARGET: &str = "waldur_agent::logging";

/// One captured record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub timestamp: f64,
    /// Python's level name: DEBUG, INFO, WARNING, ERROR.
    pub level: &'static str,
    pub message: String,
    /// The logger: the event's target (`waldur_agent::modes::cycle`).
    pub module: String,
    /// The offering the record is about, by name.
    pub offering: Option<String>,
}

impl LogEntry {
    fn size(&self) -> usize {
        self.message.len() + self.module.len()
    }
}

/// The ring buffer: at most `max_bytes` of messages and modules.
#[derive(Debug)]
pub struct LogBuffer {
    entries: VecDeque<LogEntry>,
    bytes: usize,
    max_bytes: usize,
    /// Records dropped since the last drain because the buffer was full.
    pub dropped: u64,
}

impl LogBuffer {
    pub fn new(max_bytes: usize) -> LogBuffer {
        LogBuffer {
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
        }
    }

    pub fn push(&mut self, entry: LogEntry) {
        self.bytes += entry.size();
        self.entries.push_back(entry);
        while self.bytes > self.max_bytes {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.size();
            self.dropped += 1;
        }
    }

    /// Everything buffered, oldest first, and how many were dropped before.
    pub fn drain(&mut self) -> (Vec<LogEntry>, u64) {
        self.bytes = 0;
        let dropped = std::mem::take(&mut self.dropped);
        (self.entries.drain(..).collect(), dropped)
    }

    /// Puts entries that could not be routed back in front (still bounded).
    fn restore(&mut self, entries: Vec<LogEntry>) {
        let newer: Vec<LogEntry> = self.entries.drain(..).collect();
        self.bytes = 0;
        for entry in entries.into_iter().chain(newer) {
            self.push(entry);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Where one offering's records go.
#[derive(Clone)]
struct Target {
    client: WaldurClient,
    identity_uuid: String,
}

/// The buffer and the registered identities.
pub struct Hub {
    buffer: Mutex<LogBuffer>,
    targets: Mutex<BTreeMap<String, Target>>,
}

impl Hub {
    pub fn new(max_bytes: usize) -> Arc<Hub> {
        Arc::new(Hub {
            buffer: Mutex::new(LogBuffer::new(max_bytes)),
            targets: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn push(&self, entry: LogEntry) {
        lock(&self.buffer).push(entry);
    }

    pub fn buffered(&self) -> usize {
        lock(&self.buffer).len()
    }

    /// The reference's `ensure_log_shipper`: records about `offering` now go to this identity.
    pub fn register(&self, offering: &str, client: &WaldurClient, identity_uuid: &str) {
        lock(&self.targets).insert(
            offering.to_string(),
            Target {
                client: client.clone(),
                identity_uuid: identity_uuid.to_string(),
            },
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The hub of this process, when `log_shipping.enabled`.
static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

pub fn install(hub: Arc<Hub>) {
    let _ = HUB.set(hub);
}

/// Called where an agent identity is registered (every mode); nothing when shipping is off.
pub fn register_identity(offering: &str, client: &WaldurClient, identity_uuid: &str) {
    if let Some(hub) = HUB.get() {
        hub.register(offering, client, identity_uuid);
    }
}

/// The tracing layer filling the hub.
pub struct ShippingLayer(pub Arc<Hub>);

impl<S> Layer<S> for ShippingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let target = metadata.target();
        if std::iter::once(&SHIPPER_TARGET)
            .chain(super::QUIET_CRATES)
            .any(|t| {
                target
                    .strip_prefix(*t)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
        {
            return;
        }
        let fields = in_context(event, &ctx);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        self.0.push(LogEntry {
            timestamp,
            level: python_level(metadata.level()),
            message: fields.message().to_string(),
            module: target.to_string(),
            offering: fields.text("offering").map(str::to_string),
        });
    }
}

fn python_level(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARNING",
        tracing::Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// Delays between the attempts of one batch (the reference: 5, 10, 20 s).
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub first_delay: Duration,
    pub retries: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            first_delay: Duration::from_secs(5),
            retries: 3,
        }
    }
}

/// What one shipment did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub records: usize,
    pub batches: usize,
    /// Batches given up after every retry.
    pub failed: usize,
    /// Batches Waldur answered 404 for (dropped, as the reference).
    pub not_found: usize,
}

/// Drains the buffer and ships it; records nobody can take yet go back.
pub async fn ship_once(hub: &Hub, retries: Retries) -> Shipped {
    let targets: Vec<(String, Target)> = lock(&hub.targets)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (entries, dropped) = lock(&hub.buffer).drain();
    if dropped > 0 {
        tracing::warn!("log buffer overflow: dropped {dropped} oldest record(s) before shipping");
    }
    if targets.is_empty() {
        lock(&hub.buffer).restore(entries);
        return Shipped::default();
    }
    // Identity -> its records, oldest first.
    let mut routed: BTreeMap<String, (WaldurClient, Vec<AgentLogRecord>)> = BTreeMap::new();
    for entry in entries {
        let own = entry
            .offering
            .as_deref()
            .and_then(|o| targets.iter().find(|(name, _)| name == o));
        let chosen: Vec<&Target> = match own {
            Some((_, target)) => vec![target],
            None => targets.iter().map(|(_, t)| t).collect(),
        };
        for target in chosen {
            routed
                .entry(target.identity_uuid.clone())
                .or_insert_with(|| (target.client.clone(), Vec::new()))
                .1
                .push(AgentLogRecord {
                    agent_identity_uuid: target.identity_uuid.clone(),
                    timestamp: entry.timestamp,
                    level: entry.level.to_string(),
                    message: entry.message.clone(),
                    module: entry.module.clone(),
                });
        }
    }
    let mut shipped = Shipped::default();
    for (client, records) in routed.values() {
        for batch in records.chunks(BATCH_SIZE) {
            match ship_batch(client, batch, retries).await {
                BatchOutcome::Sent => {
                    shipped.records += batch.len();
                    shipped.batches += 1;
                }
                BatchOutcome::NotFound => shipped.not_found += 1,
                BatchOutcome::GaveUp => shipped.failed += 1,
            }
        }
    }
    shipped
}

enum BatchOutcome {
    Sent,
    NotFound,
    GaveUp,
}

async fn ship_batch(
    client: &WaldurClient,
    batch: &[AgentLogRecord],
    retries: Retries,
) -> BatchOutcome {
    let mut delay = retries.first_delay;
    for attempt in 0..=retries.retries {
        match client.ship_logs(batch).await {
            Ok(true) => return BatchOutcome::Sent,
            Ok(false) => {
                tracing::debug!("log shipping endpoint not available (404), batch dropped");
                return BatchOutcome::NotFound;
            }
            Err(e) => tracing::warn!(
                "shipping {} log record(s) failed (attempt {}/{}): {e}",
                batch.len(),
                attempt + 1,
                retries.retries + 1
            ),
        }
        if attempt < retries.retries {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(
        "giving up shipping {} log record(s) after {} attempts",
        batch.len(),
        retries.retries + 1
    );
    BatchOutcome::GaveUp
}

/// How long the final shipment at shutdown may take (the reference waits 10 s for its
/// shipper thread).
pub const FINAL_FLUSH: Duration = Duration::from_secs(10);

/// Ships every `interval`, for as long as the agent runs; [`flush`] ships the rest at the end.
pub async fn ship_every(hub: Arc<Hub>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        ship_once(&hub, Retries::default()).await;
    }
}

/// The shutdown shipment: what is buffered, within [`FINAL_FLUSH`].
pub async fn flush(hub: &Hub) {
    if tokio::time::timeout(FINAL_FLUSH, ship_once(hub, Retries::default()))
        .await
        .is_err()
    {
        tracing::warn!(
            "log shipping at shutdown took longer than {}s; the rest is dropped",
            FINAL_FLUSH.as_secs()
        );
    }
}

/// The installed hub, for `run` to drive.
pub fn installed() -> Option<Arc<Hub>> {
    HUB.get().cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: &str) -> LogEntry {
        LogEntry {
            timestamp: 1.0,
            level: "WARNING",
            message: message.into(),
            module: "m".into(),
            offering: None,
        }
    }

    #[test]
    fn the_buffer_drops_the_oldest_past_its_bound() {
        let mut buffer = LogBuffer::new(10);
        for message in ["aaaa", "bbbb", "cccc"] {
            buffer.push(entry(message));
        }
        // Each record is 5 bytes (message + module): two fit.
        let (entries, dropped) = buffer.drain();
        let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["bbbb", "cccc"]);
        assert_eq!(dropped, 1);
        assert!(buffer.is_empty());
        assert_eq!(buffer.drain().1, 0);
    }

    #[test]
    fn restored_records_stay_in_order_and_bounded() {
        let mut buffer = LogBuffer::new(15);
        buffer.push(entry("new1"));
        buffer.restore(vec![entry("old1"), entry("old2")]);
        let (entries, dropped) = buffer.drain();
        let messages: Vec<&str> = entries.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["old1", "old2", "new1"]);
        assert_eq!(dropped, 0);
    }
}
