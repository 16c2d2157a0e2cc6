//! Event processing of one offering, from start-up to shutdown (reference §3.5).
//!
//! 1. Sessions and queues: the order and membership sessions (A1-A5 with the service
//!    `initial-offering-process`), then the identity's `event_process-<type>` services and
//!    its queues ([`super::subscriptions`]). Waldur failures are retried with backoff for as
//!    long as it takes; the other offerings never wait for this one.
//! 2. STOMP connections, one per queue, in the background: a broker that is down delays
//!    nothing but the events themselves (they wait in their queues).
//! 3. The start-up pass (orders, then membership unless `stomp_membership_sync_enabled:
//!    false`) runs as the first job, after the queues exist: what changed before they existed
//!    is caught by the pass, what changes after is in the queues. Both are idempotent, so an
//!    overlap costs nothing.
//! 4. Deliveries are parsed and worked in [`super::schedule`] order: the events of one object
//!    one after another, different objects concurrently. A delivery is acknowledged once its
//!    handler finished, so a crash or a stop redelivers what was not done.
//! 5. Catch-up passes make up for what may have been missed: at once after a reconnect, and
//!    shortly after a handler failed (several failures, one pass). Reconciliation and health
//!    checks run on their own periods.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{interval_at, sleep, sleep_until, Instant};

use super::handlers::{Handled, OfferingSessions};
use super::message::{parse, parse_tagged, Event, ObjectType};
use super::stomp::{Backoff, Delivery, StompClient, StompEvent};
use super::subscriptions::{observed_types, subscribe, Subscription, EVENT_MODE};
use crate::config::Offering;
use crate::metrics::EventOutcome;
use crate::modes::error::ModeError;
use crate::modes::order_process::OrderRetry;
use crate::modes::reconcile::reconcile;
use crate::modes::runtime::{Agent, Mode, Session};

/// The service name of the start-up pass (reference `initial-offering-process`).
const STARTUP_SERVICE: &str = "initial-offering-process";

/// Tunables of event processing.
#[derive(Debug, Clone, Copy)]
pub struct EventSettings {
    pub order_retry: OrderRetry,
    /// `WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES`.
    pub reconciliation_period: Duration,
    /// The reference's `HEALTH_CHECK_INTERVAL`.
    pub health_check_period: Duration,
    /// From a failed event to the catch-up pass: failures within it share one pass.
    pub catch_up_delay: Duration,
    /// Events handled at once per offering.
    pub concurrency: usize,
    /// Retrying sessions and subscriptions while Waldur cannot be reached.
    pub startup_backoff: Backoff,
}

impl EventSettings {
    pub fn new(reconciliation_period: Duration) -> EventSettings {
        EventSettings {
            order_retry: OrderRetry::default(),
            reconciliation_period,
            health_check_period: Duration::from_secs(30 * 60),
            catch_up_delay: Duration::from_secs(10),
            concurrency: crate::waldur::DEFAULT_CONCURRENCY,
            startup_backoff: Backoff {
                initial: Duration::from_secs(2),
                max: Duration::from_secs(300),
            },
        }
    }
}

/// One unit of work of an offering's schedule.
enum Job {
    /// Boxed: the other jobs are small, and many events may wait.
    Event(Box<EventJob>),
    /// Orders and membership in full (what a lost event would have done).
    CatchUp {
        why: &'static str,
    },
    Reconcile,
    HealthCheck,
}

struct EventJob {
    object_type: ObjectType,
    event: Event,
    delivery: Delivery,
}

/// The sessions event processing works on: the start-up pass registers them as
/// `initial-offering-process`.
async fn open_sessions<'a>(
    agent: &'a Agent,
    offering: &'a Offering,
    order_retry: OrderRetry,
) -> Result<OfferingSessions<'a>, ModeError> {
    let open = |mode| Session::open_as(agent, offering, mode, STARTUP_SERVICE, EVENT_MODE);
    let orders = if offering.order_processing_backend.is_empty() {
        None
    } else {
        Some(open(Mode::OrderProcess).await?)
    };
    let membership =
        if offering.membership_sync_backend.is_empty() || !offering.stomp_membership_sync() {
            None
        } else {
            Some(open(Mode::MembershipSync).await?)
        };
    Ok(OfferingSessions {
        orders,
        membership,
        order_retry,
    })
}

/// `run -m event_process --once`: the start-up pass alone (no subscriptions). Answers what
/// failed, one line each.
pub async fn startup_pass_once(
    agent: &Agent,
    offering: &Offering,
    settings: EventSettings,
) -> Vec<String> {
    let sessions = match open_sessions(agent, offering, settings.order_retry).await {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::error!("{e}");
            return vec![format!("offering '{}': {e}", offering.name)];
        }
    };
    match sessions.sync_offering(false).await {
        Ok(Handled(line)) => {
            tracing::info!("start-up pass: {line}");
            Vec::new()
        }
        Err(e) => {
            tracing::error!("start-up pass: {e}");
            vec![format!("offering '{}': start-up pass: {e}", offering.name)]
        }
    }
}

/// Event processing of `offering` until the agent stops.
pub async fn run(agent: &Agent, offering: &Offering, settings: EventSettings) {
    let types = observed_types(offering);
    if types.is_empty() {
        tracing::warn!(
            "no order_processing_backend, membership_sync_backend, resource import or \
             periodic limits: no events to observe"
        );
        return;
    }
    let Some((sessions, subscriptions)) = start(agent, offering, &types, settings).await else {
        return; // stopped while starting
    };
    let mut clients = Vec::new();
    let (merged_tx, merged) = mpsc::channel(usize::from(super::subscriptions::PREFETCH) + 8);
    for (index, subscription) in subscriptions.iter().enumerate() {
        let (client, mut events) = StompClient::start(subscription.options.clone());
        clients.push(client);
        let merged_tx = merged_tx.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if merged_tx.send((index, event)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(merged_tx);
    // The plugin's own subscriptions (if any) run beside the offering's.
    let targets = async {
        if let Some(orders) = &sessions.orders {
            super::targets::serve(orders).await;
        }
    };
    tokio::join!(
        consume(agent, offering, &sessions, &subscriptions, merged, settings),
        targets
    );
    for client in clients {
        client.close().await;
    }
    tracing::info!("event processing stopped");
}

/// Sessions and subscriptions, retried with backoff until they succeed or the agent stops.
async fn start<'a>(
    agent: &'a Agent,
    offering: &'a Offering,
    types: &[ObjectType],
    settings: EventSettings,
) -> Option<(OfferingSessions<'a>, Vec<Subscription>)> {
    let mut attempt = 0;
    loop {
        if agent.shutdown.requested() {
            return None;
        }
        let started = async {
            let sessions = open_sessions(agent, offering, settings.order_retry).await?;
            let client = sessions
                .orders
                .as_ref()
                .or(sessions.membership.as_ref())
                .map(|s| s.client.clone());
            let client = match client {
                Some(client) => client,
                // Resource import or periodic limits alone still need an order backend
                // (their handlers run on it).
                None => {
                    return Err(ModeError::NotConfigured(
                        "events need an order_processing_backend or a membership_sync_backend"
                            .into(),
                    ))
                }
            };
            let (flow, subscriptions) = subscribe(agent, offering, &client, types).await?;
            Ok::<_, ModeError>((sessions, flow, subscriptions))
        }
        .await;
        match started {
            Ok((sessions, flow, subscriptions)) => {
                tracing::info!(
                    "subscribing to {} queue(s) ({}) for {}",
                    subscriptions.len(),
                    match flow {
                        crate::config::SubscriptionFlow::SingleQueue => "single queue",
                        _ => "one queue per object type",
                    },
                    types
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Some((sessions, subscriptions));
            }
            Err(e) => {
                let wait = settings.startup_backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tracing::error!(
                    attempt,
                    "cannot start event processing: {e}; retrying in {} s",
                    wait.as_secs()
                );
                tokio::select! {
                    () = sleep(wait) => {}
                    () = agent.shutdown.wait() => return None,
                }
            }
        }
    }
}

/// Reads deliveries and timers into the schedule and works it until the agent stops.
async fn consume(
    agent: &Agent,
    offering: &Offering,
    sessions: &OfferingSessions<'_>,
    subscriptions: &[Subscription],
    mut merged: mpsc::Receiver<(usize, StompEvent)>,
    settings: EventSettings,
) {
    let capacity = usize::from(super::subscriptions::PREFETCH) * subscriptions.len().max(1) + 16;
    let (jobs, jobs_rx) = mpsc::channel::<(String, Job)>(capacity);
    let (failed_tx, mut failed) = mpsc::channel::<()>(1);
    // One catch-up pass queued at a time: more would repeat the same work.
    let catch_up_queued = AtomicBool::new(false);
    let offering_key = format!("offering/{}", offering.waldur_offering_uuid);
    let queue_catch_up = |why: &'static str| {
        (!catch_up_queued.swap(true, Ordering::SeqCst))
            .then(|| (offering_key.clone(), Job::CatchUp { why }))
    };

    let dispatch = async {
        if let Some(job) = queue_catch_up("start-up pass") {
            let _ = jobs.send(job).await;
        }
        let now = Instant::now();
        let mut reconciliation = interval_at(
            now + settings.reconciliation_period,
            settings.reconciliation_period,
        );
        let mut health = interval_at(
            now + settings.health_check_period,
            settings.health_check_period,
        );
        let mut catch_up_at: Option<Instant> = None;
        loop {
            let job = tokio::select! {
                () = agent.shutdown.wait() => break,
                received = merged.recv() => match received {
                    None => break,
                    Some((index, event)) => match event {
                        // The client logs it.
                        StompEvent::Connected { reconnected: false } => None,
                        // Events may have been published while the connection was down and
                        // the queue was not there (a broker restart without durable queues).
                        StompEvent::Connected { reconnected: true } => {
                            queue_catch_up("reconnected")
                        }
                        StompEvent::Disconnected { .. } => None, // the client logs it
                        StompEvent::Message(delivery) => {
                            admit(offering, &subscriptions[index], delivery)
                        }
                    },
                },
                Some(()) = failed.recv() => {
                    catch_up_at.get_or_insert(Instant::now() + settings.catch_up_delay);
                    None
                }
                () = async { sleep_until(catch_up_at.unwrap_or_else(Instant::now)).await },
                    if catch_up_at.is_some() =>
                {
                    catch_up_at = None;
                    queue_catch_up("after a failed event")
                }
                _ = reconciliation.tick() => Some((offering_key.clone(), Job::Reconcile)),
                _ = health.tick() => Some((offering_key.clone(), Job::HealthCheck)),
            };
            if let Some(job) = job {
                if jobs.send(job).await.is_err() {
                    break;
                }
            }
        }
        // No more work starts; what is queued and not started is left unacknowledged and
        // redelivered to the next run.
        drop(jobs);
    };

    let work = super::schedule::drive(jobs_rx, settings.concurrency, |job| {
        let failed_tx = failed_tx.clone();
        let catch_up_queued = &catch_up_queued;
        async move {
            let Some(_work) = agent.shutdown.start() else {
                return;
            };
            match job {
                Job::Event(job) => {
                    let EventJob {
                        object_type,
                        event,
                        delivery,
                    } = *job;
                    handle_event(sessions, object_type, &event, &delivery, &failed_tx).await;
                    delivery.ack();
                }
                Job::CatchUp { why } => {
                    catch_up_queued.store(false, Ordering::SeqCst);
                    match sessions.sync_offering(false).await {
                        Ok(Handled(line)) => tracing::info!("catch-up ({why}): {line}"),
                        Err(e) => tracing::error!(
                            "catch-up ({why}) failed: {e}; the next reconciliation repeats it"
                        ),
                    }
                }
                Job::Reconcile => {
                    let done = reconcile(
                        sessions.orders.as_ref(),
                        sessions.membership.as_ref(),
                        sessions.order_retry,
                    )
                    .await;
                    tracing::info!("reconciliation: {}", done.summary());
                }
                Job::HealthCheck => health_check(offering, sessions).await,
            }
        }
    });
    tokio::join!(dispatch, work);
}

/// Parses a delivery into a job; a malformed message or one that needs no work is
/// acknowledged here, with one line for the former.
fn admit(
    offering: &Offering,
    subscription: &Subscription,
    delivery: Delivery,
) -> Option<(String, Job)> {
    let parsed = match subscription.object_type {
        Some(object_type) => parse(object_type, &delivery.body).map(|p| (object_type, p)),
        None => parse_tagged(&delivery.body),
    };
    let (object_type, parsed) = match parsed {
        Ok(parsed) => parsed,
        Err(malformed) => {
            tracing::error!(
                "STOMP {}: message {} refused and acknowledged: {malformed}",
                subscription.options.label,
                delivery.message_id
            );
            delivery.ack();
            return None;
        }
    };
    if !parsed.unknown_fields.is_empty() {
        tracing::debug!(
            offering = %offering.name,
            "{} message {}: fields this agent does not know: {}",
            object_type.name(),
            delivery.message_id,
            parsed.unknown_fields.join(", ")
        );
    }
    let Some(event) = parsed.event else {
        tracing::debug!(
            offering = %offering.name,
            "{} message {}: nothing to do",
            object_type.name(),
            delivery.message_id
        );
        delivery.ack();
        return None;
    };
    Some((
        event.ordering_key(),
        Job::Event(Box::new(EventJob {
            object_type,
            event,
            delivery,
        })),
    ))
}

async fn handle_event(
    sessions: &OfferingSessions<'_>,
    object_type: ObjectType,
    event: &Event,
    delivery: &Delivery,
    failed: &mpsc::Sender<()>,
) {
    let what = format!("{} event {}", object_type.name(), delivery.message_id);
    let outcome = match sessions.handle(event).await {
        Ok(Handled(line)) => {
            tracing::info!("{what}: {line}");
            EventOutcome::Handled
        }
        // Nothing a catch-up pass could do better: the offering is not set up for it.
        Err(ModeError::NotConfigured(why)) => {
            tracing::warn!("{what} ignored: {why}");
            EventOutcome::Ignored
        }
        Err(e) => {
            tracing::error!("{what} failed: {e}; a catch-up pass follows");
            // Full means a pass is already due.
            let _ = failed.try_send(());
            EventOutcome::Failed
        }
    };
    let session = sessions.orders.as_ref().or(sessions.membership.as_ref());
    if let Some(session) = session {
        if let Some(metrics) = &session.agent.metrics {
            metrics.record_event(&session.offering.name, object_type.name(), outcome);
        }
    }
}

/// Reference `send_agent_health_checks`: the offering and its orders are read, so Waldur sees
/// the agent alive.
async fn health_check(offering: &Offering, sessions: &OfferingSessions<'_>) {
    let Some(session) = sessions.orders.as_ref().or(sessions.membership.as_ref()) else {
        return;
    };
    let checked = async {
        session
            .client
            .provider_offering(
                &offering.waldur_offering_uuid,
                crate::waldur::WaldurClient::PROCESSOR_OFFERING_FIELDS,
            )
            .await?;
        session
            .client
            .orders_health_check(&offering.waldur_offering_uuid)
            .await
    }
    .await;
    match checked {
        Ok(()) => tracing::debug!(offering = %offering.name, "health check sent"),
        Err(e) => tracing::warn!(offering = %offering.name, "health check failed: {e}"),
    }
}
