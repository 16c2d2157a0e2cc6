//! Cycles: one pass of a mode over every offering, and the loop that repeats it.
//!
//! Offerings are worked on concurrently with a bound; one failing offering never stops the
//! others. Like the reference, the first cycle starts at once and the period is measured from
//! the end of the previous cycle, so cycles never overlap.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::error::ModeError;
use super::membership_sync::MembershipSummary;
use super::order_process::{OrderRetry, OrderSummary};
use super::progress;
use super::report::ReportSummary;
use super::runtime::{Agent, Mode, Session};
use crate::config::Offering;
use crate::metrics::{CycleCounts, ModeLabels, OrderCounts};
use crate::waldur::map_concurrent;

/// How many offerings are worked on at once.
pub const OFFERING_CONCURRENCY: usize = 4;

/// The outcome of one mode on one offering.
#[derive(Debug)]
pub enum OfferingOutcome {
    Skipped(String),
    Orders(OrderSummary),
    Usage(ReportSummary),
    Membership(MembershipSummary),
    Failed(ModeError),
}

/// What one cycle did.
#[derive(Debug)]
pub struct CycleReport {
    pub mode: Mode,
    pub offerings: Vec<(String, OfferingOutcome)>,
}

impl CycleReport {
    /// Offerings whose whole cycle failed.
    pub fn failures(&self) -> usize {
        self.offerings
            .iter()
            .filter(|(_, o)| matches!(o, OfferingOutcome::Failed(_)))
            .count()
    }

    /// What failed in this cycle, item by item; empty when nothing did (the rule is
    /// [`OfferingOutcome::failures`]; the exit code of `run --once` follows it).
    pub fn failed_items(&self) -> Vec<String> {
        let mut totals = [0; FAILURE_KINDS.len()];
        for (_, outcome) in &self.offerings {
            for (total, n) in totals.iter_mut().zip(outcome.failures()) {
                *total += n;
            }
        }
        totals
            .into_iter()
            .zip(FAILURE_KINDS)
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect()
    }
}

/// What [`OfferingOutcome::failures`] counts, in its order.
const FAILURE_KINDS: [&str; 5] = [
    "offering(s) failed",
    "order(s) erred",
    "order(s) not processed (Waldur kept failing)",
    "usage report(s) failed",
    "membership sync(s) of a resource failed",
];

impl OfferingOutcome {
    /// What of this outcome failed, counted per [`FAILURE_KINDS`]. The rule: a failure is
    /// work the agent owed and could not do — an offering that could not be processed, an
    /// order that erred or that Waldur kept failing, a usage report or a membership sync of a
    /// resource that failed. Outcomes that were decided on purpose are not failures: an order
    /// rejected by the backend's evaluation, one waiting for a decision or for an async
    /// backend, a usage decrease refused, a resource the backend does not have.
    pub fn failures(&self) -> [usize; FAILURE_KINDS.len()] {
        match self {
            OfferingOutcome::Failed(_) => [1, 0, 0, 0, 0],
            OfferingOutcome::Orders(s) => [0, s.erred, s.failed, 0, 0],
            OfferingOutcome::Usage(s) => [0, 0, 0, s.failed, 0],
            OfferingOutcome::Membership(s) => [0, 0, 0, 0, s.failed],
            OfferingOutcome::Skipped(_) => [0; FAILURE_KINDS.len()],
        }
    }
}

/// Tunables of a run (tests shorten the retry delays).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunSettings {
    pub order_retry: OrderRetry,
}

/// Why the reference would not run this mode for this offering.
pub(crate) fn skip_reason(mode: Mode, offering: &Offering) -> Option<String> {
    match mode {
        Mode::OrderProcess if offering.stomp_enabled => {
            Some("event processing (STOMP) handles its orders".into())
        }
        Mode::OrderProcess if offering.order_processing_backend.is_empty() => {
            Some("no order_processing_backend".into())
        }
        Mode::MembershipSync if offering.stomp_membership_sync() => {
            Some("event processing (STOMP) handles its membership".into())
        }
        _ => None,
    }
}

async fn run_offering(
    agent: &Agent,
    offering: &Offering,
    mode: Mode,
    settings: RunSettings,
) -> OfferingOutcome {
    if let Some(reason) = skip_reason(mode, offering) {
        return OfferingOutcome::Skipped(reason);
    }
    let session = match Session::open(agent, offering, mode).await {
        Ok(session) => session,
        Err(e) => return OfferingOutcome::Failed(e),
    };
    let work = async {
        match mode {
            Mode::OrderProcess => session
                .process_orders(settings.order_retry)
                .await
                .map(OfferingOutcome::Orders),
            Mode::Report => session.report_usage().await.map(OfferingOutcome::Usage),
            Mode::MembershipSync => session
                .sync_membership()
                .await
                .map(OfferingOutcome::Membership),
        }
    };
    progress::report_while(&session.progress, progress::interval(), work)
        .await
        .unwrap_or_else(OfferingOutcome::Failed)
}

/// What the metrics count of one offering's outcome.
fn cycle_counts(outcome: &OfferingOutcome) -> CycleCounts {
    let mut counts = CycleCounts {
        completed: !matches!(outcome, OfferingOutcome::Failed(_)),
        failures: outcome.failures().iter().sum(),
        ..Default::default()
    };
    match outcome {
        OfferingOutcome::Skipped(_) | OfferingOutcome::Failed(_) => {}
        OfferingOutcome::Orders(s) => {
            counts.orders = OrderCounts {
                done: s.done,
                erred: s.erred,
                rejected: s.rejected,
                waiting: s.waiting,
                failed: s.failed,
            };
        }
        OfferingOutcome::Usage(s) => {
            counts.usage_totals_sent = s.totals_sent;
            counts.usage_user_batches_sent = s.user_usages_sent;
        }
        OfferingOutcome::Membership(s) => {
            counts.users_added = s.users_added;
            counts.users_removed = s.users_removed;
        }
    }
    counts
}

/// One pass of `mode` over every offering.
pub async fn run_cycle(agent: &Agent, mode: Mode, settings: RunSettings) -> CycleReport {
    let offerings = map_concurrent(
        OFFERING_CONCURRENCY,
        agent.config.offerings.iter(),
        |offering| {
            async move {
                let started = Instant::now();
                let outcome = match agent.shutdown.start() {
                    Some(_work) => run_offering(agent, offering, mode, settings).await,
                    None => OfferingOutcome::Skipped("the agent is stopping".into()),
                };
                let elapsed = started.elapsed();
                let took = elapsed.as_secs_f64();
                let ran = !matches!(outcome, OfferingOutcome::Skipped(_));
                if let Some(metrics) = agent.metrics.as_ref().filter(|_| ran) {
                    let labels = ModeLabels {
                        mode: mode.name(),
                        offering: offering.name.clone(),
                    };
                    metrics.record_cycle(labels, elapsed, &cycle_counts(&outcome));
                }
                match &outcome {
                    OfferingOutcome::Skipped(why) => {
                        tracing::info!("skipped: {why}")
                    }
                    OfferingOutcome::Orders(s) => tracing::info!(
                        "orders: {} done, {} erred, {} rejected, {} waiting, {} failed in {took:.1} s",
                        s.done,
                        s.erred,
                        s.rejected,
                        s.waiting,
                        s.failed
                    ),
                    OfferingOutcome::Usage(s) => tracing::info!(
                    "usage: {} resource(s), {} total(s) sent, {} unchanged, {} user batch(es), \
                     {} anomalies, {} missing, {} failed in {took:.1} s",
                    s.resources, s.totals_sent, s.totals_unchanged, s.user_usages_sent,
                    s.anomalies, s.missing, s.failed
                ),
                    OfferingOutcome::Membership(s) => tracing::info!(
                "membership: {} resource(s), {} user(s) added, {} removed, {} missing, {} failed \
                 in {took:.1} s",
                s.resources, s.users_added, s.users_removed, s.missing, s.failed
            ),
                    OfferingOutcome::Failed(e) => {
                        tracing::error!("{e} (after {took:.1} s)")
                    }
                }
                (offering.name.clone(), outcome)
            }
            .instrument(tracing::info_span!(
                "offering",
                offering = %offering.name,
                mode = mode.name()
            ))
        },
    )
    .await;
    CycleReport { mode, offerings }
}

/// Runs cycles of `mode` every `period` until the agent is asked to stop (the cycle under way
/// starts no new item and ends) or, with `once`, after the first. Answers the last cycle's
/// report (`None` when stopped before the first); earlier ones are not kept, so a
/// long-running agent's memory does not grow with its cycles.
pub async fn run_loop(
    agent: &Agent,
    mode: Mode,
    period: Duration,
    once: bool,
    settings: RunSettings,
) -> Option<CycleReport> {
    let mut last = None;
    loop {
        if agent.shutdown.requested() {
            return last;
        }
        // The liveness probe (`healthz`) watches this file.
        super::tools::heartbeat::beat();
        let started = Instant::now();
        let report = run_cycle(agent, mode, settings).await;
        super::tools::heartbeat::beat();
        let failed = report.failed_items();
        tracing::info!(
            mode = mode.name(),
            "cycle finished: {} offering(s) in {:.1} s; {}",
            report.offerings.len(),
            started.elapsed().as_secs_f64(),
            if failed.is_empty() {
                "nothing failed".to_string()
            } else {
                failed.join(", ")
            }
        );
        last = Some(report);
        if once {
            return last;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = agent.shutdown.wait() => return last,
        }
    }
}
