//! `run -m event_process` (and the event half of `-m all`): every offering with
//! `stomp_enabled` processed on its own ([`super::offering`]), side by side, plus the
//! liveness heartbeat.

use std::time::Duration;

use super::offering::{self, EventSettings};
use crate::config::Offering;
use crate::modes::runtime::Agent;

/// How often the liveness heartbeat is touched (the reference's main-loop tick).
const HEARTBEAT_PERIOD: Duration = Duration::from_secs(60);

/// The offerings event processing serves.
pub fn event_offerings(agent: &Agent) -> impl Iterator<Item = &Offering> {
    agent.config.offerings.iter().filter(|o| o.stomp_enabled)
}

/// Runs until the agent is asked to stop. With `once`, only the start-up pass of each
/// offering runs (no subscriptions); answers what failed, one line each.
pub async fn run_event_process(agent: &Agent, settings: EventSettings, once: bool) -> Vec<String> {
    if once {
        let passes =
            event_offerings(agent).map(|o| offering::startup_pass_once(agent, o, settings));
        return futures_util::future::join_all(passes)
            .await
            .into_iter()
            .flatten()
            .collect();
    }
    let offerings = event_offerings(agent).map(|o| offering::run(agent, o, settings));
    let heartbeat = async {
        loop {
            crate::modes::tools::heartbeat::beat();
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT_PERIOD) => {}
                () = agent.shutdown.wait() => return,
            }
        }
    };
    tokio::join!(futures_util::future::join_all(offerings), heartbeat);
    Vec::new()
}
