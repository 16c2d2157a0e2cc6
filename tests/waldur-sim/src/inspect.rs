//! What tests observe: the request log and per-endpoint counters. Counters are keyed by
//! "METHOD template" (e.g. `POST /api/marketplace-orders/{uuid}/set_state_done/`) so a test can
//! assert "exactly one set_usage per resource" without caring about UUID forms.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Route template, or the literal path for unmatched requests.
    pub template: String,
    /// 0 when the connection was dropped by a fault.
    pub status: u16,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// The injected fault, if any (`latency`, `status`, `malformed`, `drop`).
    pub fault: Option<String>,
    /// When the request arrived (microseconds since the Unix epoch): scripts measure an
    /// agent's start-up to its first request against their own clock.
    pub received_unix_us: u64,
    pub duration_ms: u64,
    /// When the answer was recorded, ms since the epoch (see [`crate::store::epoch_ms`]).
    pub at_ms: u64,
}

#[derive(Debug, Default)]
pub struct Inspect {
    next_seq: u64,
    log: Vec<LogEntry>,
    counters: BTreeMap<String, u64>,
}

/// Counter key of one request.
pub fn counter_key(method: &str, template: &str) -> String {
    format!("{method} {template}")
}

impl Inspect {
    /// Counts the request; `keep` says whether to store the entry in the log.
    pub fn record(&mut self, mut entry: LogEntry, keep: bool) {
        *self
            .counters
            .entry(counter_key(&entry.method, &entry.template))
            .or_default() += 1;
        self.next_seq += 1;
        if keep {
            entry.seq = self.next_seq;
            self.log.push(entry);
        }
    }

    pub fn log(&self) -> Vec<LogEntry> {
        self.log.clone()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.clone()
    }

    pub fn count(&self, method: &str, template: &str) -> u64 {
        self.counters
            .get(&counter_key(method, template))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counters.values().sum()
    }

    pub fn reset(&mut self) {
        self.log.clear();
        self.counters.clear();
    }
}
