//! `run -m event_process` (and the event half of `-m all`): every offering with
//! `stomp_enabled` processed on its own ([`super::offering`]), side by side. (`run` keeps the
//! liveness heartbeat for every mode.)

use tracing::Instrument;

use super::offering::{self, EventSettings};
use super::subscriptions::EVENT_MODE;
use crate::config::Offering;
use crate::modes::runtime::Agent;

/// The offerings event processing serves.
pub fn event_offerings(agent: &Agent) -> impl Iterator<Item = &Offering> {
    agent.config.offerings.iter().filter(|o| o.stomp_enabled)
}

/// Runs until the agent is asked to stop. With `once`, only the start-up pass of each
/// offering runs (no subscriptions); answers what failed, one line each.
/// Every log line of an offering's event processing carries its name and the mode.
fn span(offering: &Offering) -> tracing::Span {
    tracing::info_span!("offering", offering = %offering.name, mode = EVENT_MODE)
}

pub async fn run_event_process(agent: &Agent, settings: EventSettings, once: bool) -> Vec<String> {
    if once {
        let passes = event_offerings(agent)
            .map(|o| offering::startup_pass_once(agent, o, settings).instrument(span(o)));
        return futures_util::future::join_all(passes)
            .await
            .into_iter()
            .flatten()
            .collect();
    }
    let offerings =
        event_offerings(agent).map(|o| offering::run(agent, o, settings).instrument(span(o)));
    futures_util::future::join_all(offerings).await;
    Vec::new()
}
