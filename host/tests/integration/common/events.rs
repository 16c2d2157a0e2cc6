//! Event processing on a real RabbitMQ for tests of the agent binary: a [`Site`] whose
//! offering takes its events over STOMP, the broker accounts the simulator made removed at
//! the end, and waits on the agent's subscriptions and the queues.

use std::time::Duration;

use waldur_sim::Scenario;
use waldur_test_support::rabbitmq::{broker_config, unique_name, RealRabbit, WS_PORT};

use super::site::{wait_until, Running, Site};

pub const WAIT: Duration = Duration::from_secs(60);

/// A site whose offering takes its events over STOMP with `flow` (`single_queue`,
/// `per_object_type`, `auto`); `settings` are extra `backend_settings` lines (8 spaces),
/// `offering` extra offering lines (4 spaces).
pub fn stomp_site(mut scenario: Scenario, flow: &str, settings: &str, offering: &str) -> Site {
    // Broker users are named after the agent's Waldur user: one per test.
    scenario.agent_user.username = unique_name("agent");
    let offering = format!(
        "    stomp_enabled: true\n    stomp_ws_host: 127.0.0.1\n    stomp_ws_port: {WS_PORT}\n    \
         stomp_ws_path: /ws\n    websocket_use_tls: false\n    stomp_subscription_flow: {flow}\n{offering}"
    );
    let site = Site::with_offering(scenario, settings, "", "", &offering);
    site.sim.attach_broker(broker_config());
    site
}

/// Holds an order in `pending-consumer`, where the start-up pass leaves it alone, until the
/// test releases it.
pub fn hold(site: &Site, order: &str) {
    site.sim.with_store_mut(|store| {
        store.orders.get_mut(order).unwrap().state = "pending-consumer".into();
    });
}

/// Removes what the simulator created on the broker for this site (its vhost and users).
pub struct BrokerCleanup<'a>(pub &'a Site);

impl Drop for BrokerCleanup<'_> {
    fn drop(&mut self) {
        let (vhost, mut users) = self.0.sim.with_store(|s| {
            let users: Vec<String> = s.event_subscriptions.keys().cloned().collect();
            (s.agent_user.uuid.clone(), users)
        });
        users.push(self.0.sim.with_store(|s| s.agent_user.username.clone()));
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let admin = waldur_sim::BrokerAdmin::new(broker_config());
                let _ = admin.delete_vhost(&vhost).await;
                for user in users {
                    let _ = admin.delete_user(&user).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Waits until the agent subscribed every queue it registered (its log says so per queue)
/// and its start-up pass is over (so a test's events are not overtaken by the pass).
pub fn wait_subscribed(site: &Site, agent: &mut Running, queues: usize) {
    wait_until("the queues registered", WAIT, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
        site.sim
            .with_store(|s| s.consumer_queues.len() + s.event_queues.len())
            >= queues
    });
    wait_until("the subscriptions", WAIT, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
        agent
            .log_text()
            .matches(": subscribed to /amq/queue/")
            .count()
            >= queues
    });
    wait_until("the start-up pass", WAIT, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log_text());
        agent.log_text().contains("catch-up (start-up pass)")
    });
}

/// SIGTERM, then the exit code and the log.
pub fn stop(mut agent: Running) -> (Option<i32>, String) {
    agent.signal(libc::SIGTERM);
    agent.finish()
}

/// The vhost and the names of every queue the simulator made for this site.
pub fn site_queues(site: &Site) -> (String, Vec<String>) {
    site.sim.with_store(|s| {
        let mut queues: Vec<String> = s
            .consumer_queues
            .values()
            .map(|q| q.queue_name.clone())
            .collect();
        queues.extend(s.event_queues.values().map(|q| q.queue_name.clone()));
        (s.agent_user.uuid.clone(), queues)
    })
}

/// Waits until every queue of the site is empty and nothing is unacknowledged: as the agent
/// acknowledges after the handler, every message published so far was handled.
pub fn queue_drained(rabbit: &RealRabbit, site: &Site) {
    // The simulator hands its messages to the broker in the background: first every one of
    // them must be in a queue, or an empty queue would say nothing.
    wait_until("the simulator's messages on the broker", WAIT, || {
        site.sim.published().iter().all(|e| e.routed.is_some())
    });
    let (vhost, queues) = site_queues(site);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for queue in queues {
        runtime.block_on(rabbit.wait_for_counts(&vhost, &queue, 0, 0, WAIT));
    }
}
