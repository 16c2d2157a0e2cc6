//! The agent's Prometheus series (`run --metrics-address`, config `metrics_address`).
//!
//! This module is the one home of every series name, help text and label set; callers record
//! through the methods of [`Metrics`] and never name a series themselves. Nothing here is
//! global: `run` builds one [`Metrics`] when the endpoint is enabled and hands it to the
//! agent; without it nothing is recorded at all.

mod plugin_calls;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub use plugin_calls::PluginCalls;

/// Every series starts with this (`waldur_agent_orders_total`, ...).
const PREFIX: &str = "waldur_agent";

/// The labels of the per-offering series of a polling mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: &'static str,
    pub offering: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    mode: &'static str,
    offering: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabels {
    mode: &'static str,
    offering: String,
    /// `total` (a component usage of a resource) or `user` (a batch of per-user usages).
    kind: &'static str,
}

/// `plugin` is shared with the backend that records (an `Arc`, so building the labels of a
/// call allocates nothing).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCallLabels {
    plugin: Arc<str>,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryLabels {
    plugin: String,
    kind: String,
    entry: String,
    /// `compatible` (the plugin passed every check) or `loaded` (loaded into this process).
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    offering: String,
    object_type: &'static str,
    outcome: &'static str,
}

/// How the orders of a cycle ended (the order summary's fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderCounts {
    pub done: usize,
    pub erred: usize,
    pub rejected: usize,
    pub waiting: usize,
    pub failed: usize,
}

/// What one offering's cycle of one mode did, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleCounts {
    /// The offering's cycle ran to its end (items in it may still have failed).
    pub completed: bool,
    pub orders: OrderCounts,
    pub usage_totals_sent: usize,
    pub usage_user_batches_sent: usize,
    pub users_added: usize,
    pub users_removed: usize,
    /// Work owed and not done (the rule: `OfferingOutcome::failures`).
    pub failures: usize,
}

/// How an event's handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Handled,
    /// The offering is not set up for this event.
    Ignored,
    Failed,
}

impl EventOutcome {
    fn name(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Ignored => "ignored",
            Self::Failed => "failed",
        }
    }
}

/// One plugin entry of the catalogue, for the registry gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    pub plugin: String,
    pub kind: String,
    pub entry: String,
    pub compatible: bool,
    pub loaded: bool,
}

/// Adds each non-zero count to its series (`labels` makes the series' labels from its name):
/// outcomes that never happened have no series.
fn count_each<L>(
    family: &Family<L, Counter>,
    counts: &[(&'static str, usize)],
    labels: impl Fn(&'static str) -> L,
) where
    L: Clone + std::hash::Hash + Eq,
{
    for &(name, n) in counts.iter().filter(|(_, n)| *n > 0) {
        family.get_or_create(&labels(name)).inc_by(n as u64);
    }
}

/// 0.1 s .. about 14 min: a cycle of a few orders up to a long membership sync.
fn cycle_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 14))
}

/// 25 µs .. about 7 min: an in-process answer up to a slow backend command.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_025, 4.0, 13))
}

/// The registry and every series of this process.
pub struct Metrics {
    registry: Registry,
    last_success: Family<ModeLabels, Gauge>,
    cycle_duration: Family<ModeLabels, Histogram>,
    orders: Family<OutcomeLabels, Counter>,
    usage_sent: Family<UsageLabels, Counter>,
    users_added: Family<ModeLabels, Counter>,
    users_removed: Family<ModeLabels, Counter>,
    failures: Family<ModeLabels, Counter>,
    plugin_calls: Family<PluginCallLabels, Histogram>,
    plugin_entries: Family<EntryLabels, Gauge>,
    events: Family<EventLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let last_success = Family::default();
        registry.register(
            "last_successful_cycle_timestamp_seconds",
            "When the last cycle of this mode for this offering ran to its end (unix time)",
            last_success.clone(),
        );
        let cycle_duration = Family::new_with_constructor(cycle_buckets as fn() -> Histogram);
        registry.register(
            "cycle_duration_seconds",
            "How long one offering's cycle of this mode took",
            cycle_duration.clone(),
        );
        let orders = Family::default();
        registry.register(
            "orders",
            "Orders processed, by outcome (done, erred, rejected, waiting, failed)",
            orders.clone(),
        );
        let usage_sent = Family::default();
        registry.register(
            "usage_records_sent",
            "Usage records sent to Waldur: component totals (kind=total) and per-user batches \
             (kind=user)",
            usage_sent.clone(),
        );
        let users_added = Family::default();
        registry.register(
            "users_added",
            "Users added to backend resources by membership sync",
            users_added.clone(),
        );
        let users_removed = Family::default();
        registry.register(
            "users_removed",
            "Users removed from backend resources by membership sync",
            users_removed.clone(),
        );
        let failures = Family::default();
        registry.register(
            "failures",
            "Work the agent owed and could not do: failed offerings, erred or unprocessed \
             orders, failed usage reports and membership syncs",
            failures.clone(),
        );
        let plugin_calls = Family::new_with_constructor(call_buckets as fn() -> Histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Calls into plugins, by plugin entry and method (an answer of NOT_IMPLEMENTED \
             counts too; the agent's default that follows does not)",
            plugin_calls.clone(),
        );
        let plugin_entries = Family::default();
        registry.register(
            "plugin_entry",
            "Plugin entries found on the search path: state=compatible is 1 when the plugin \
             passed every check, state=loaded is 1 once it is loaded into this process",
            plugin_entries.clone(),
        );
        let events = Family::default();
        registry.register(
            "events",
            "Events handled by event processing, by object type and outcome",
            events.clone(),
        );
        Self {
            registry,
            last_success,
            cycle_duration,
            orders,
            usage_sent,
            users_added,
            users_removed,
            failures,
            plugin_calls,
            plugin_entries,
            events,
        }
    }

    /// Records one offering's cycle of one mode.
    pub fn record_cycle(&self, labels: ModeLabels, elapsed: Duration, counts: &CycleCounts) {
        self.cycle_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if counts.completed {
            let now = jiff::Timestamp::now().as_second();
            self.last_success.get_or_create(&labels).set(now);
        }
        let o = &counts.orders;
        let orders = [
            ("done", o.done),
            ("erred", o.erred),
            ("rejected", o.rejected),
            ("waiting", o.waiting),
            ("failed", o.failed),
        ];
        count_each(&self.orders, &orders, |outcome| OutcomeLabels {
            mode: labels.mode,
            offering: labels.offering.clone(),
            outcome,
        });
        let usage = [
            ("total", counts.usage_totals_sent),
            ("user", counts.usage_user_batches_sent),
        ];
        count_each(&self.usage_sent, &usage, |kind| UsageLabels {
            mode: labels.mode,
            offering: labels.offering.clone(),
            kind,
        });
        for (family, n) in [
            (&self.users_added, counts.users_added),
            (&self.users_removed, counts.users_removed),
            (&self.failures, counts.failures),
        ] {
            // Created even at 0, so a dashboard sees the series before the first change.
            family.get_or_create(&labels).inc_by(n as u64);
        }
    }

    /// Records one event of event processing.
    pub fn record_event(&self, offering: &str, object_type: &'static str, outcome: EventOutcome) {
        let labels = EventLabels {
            offering: offering.to_string(),
            object_type,
            outcome: outcome.name(),
        };
        self.events.get_or_create(&labels).inc();
    }

    /// Sets the registry gauge: one series per plugin entry and state.
    pub fn record_plugin_entries(&self, entries: &[EntryState]) {
        for e in entries {
            for (state, on) in [("compatible", e.compatible), ("loaded", e.loaded)] {
                let labels = EntryLabels {
                    plugin: e.plugin.clone(),
                    kind: e.kind.clone(),
                    entry: e.entry.clone(),
                    state,
                };
                self.plugin_entries
                    .get_or_create(&labels)
                    .set(i64::from(on));
            }
        }
    }

    /// The recorder of one backend's plugin calls.
    pub fn plugin_calls(&self, plugin: &str) -> PluginCalls {
        PluginCalls::recording(self.plugin_calls.clone(), plugin)
    }

    /// Every series in the OpenMetrics text format (what Prometheus scrapes).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests;
