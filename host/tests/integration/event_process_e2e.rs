//! `waldur-agent run -m event_process` end to end: the agent binary against the Waldur
//! simulator, the demo plugin through the real loader and a REAL RabbitMQ (Web-STOMP,
//! started by scripts/rabbitmq-setup.sh). The simulator creates the broker accounts and
//! queues when the agent subscribes and publishes events as Mastermind does.
//!
//! Both subscription flows, the start-up pass, malformed messages, a broker restart, `kill -9`
//! in the middle of a burst of events, `--once`, and the refusals at start.

use std::time::Duration;

use crate::common::events::*;
use crate::common::site::*;
use serde_json::json;
use waldur_sim::{Fault, Matcher, Scenario};
use waldur_test_support::rabbitmq::{require_real_rabbitmq, require_real_rabbitmq_exclusive};

const REGISTER_QUEUE: &str = "/api/marketplace-site-agent-identities/{uuid}/register_queue/";

/// A site whose offering takes its events over STOMP with `flow`; orders `held..` wait in
/// `pending-consumer` (the start-up pass leaves them alone) until a test releases them.
fn event_site(scenario: Scenario, flow: &str, held: std::ops::Range<usize>) -> Site {
    event_site_with(scenario, flow, held, "")
}

fn event_site_with(
    scenario: Scenario,
    flow: &str,
    held: std::ops::Range<usize>,
    settings: &str,
) -> Site {
    let site = stomp_site(scenario, flow, settings, "");
    for i in held {
        hold(&site, &order_uuid(i));
    }
    site
}

/// Releases a held order (Waldur's consumer approved it) and publishes its event.
fn release(site: &Site, i: usize) {
    site.sim.with_store_mut(|store| {
        store.orders.get_mut(&order_uuid(i)).unwrap().state = "executing".into();
    });
    site.sim.publish_event(
        OFFERING,
        "order",
        json!({"order_uuid": order_uuid(i), "order_state": "executing"}),
    );
}

fn order_done(site: &Site, i: usize) -> bool {
    site.sim.order(&order_uuid(i)).unwrap().state == "done"
}

fn log_of(running: &Running) -> String {
    running.log_text()
}

/// The agent still handles an event (of the membership backend, demo), then stops cleanly.
fn serves_a_resource_event_then_stops(site: &Site, agent: Running) {
    site.sim.publish_event(
        OFFERING,
        "resource",
        json!({"resource_uuid": resource_uuid(0)}),
    );
    wait_until("the next event", WAIT, || {
        log_of(&agent).contains("resource event")
    });
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn single_queue_start_up_pass_then_order_and_resource_events() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(4), "single_queue", 2..4);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);

    // The start-up pass does what was pending before the agent started.
    wait_until("the start-up pass", WAIT, || {
        order_done(&site, 0) && order_done(&site, 1)
    });
    wait_subscribed(&site, &mut agent, 1);
    let queue = site
        .sim
        .with_store(|s| s.consumer_queues.values().next().cloned().unwrap());
    assert!(queue.queue_name.starts_with("consumer_"), "{queue:?}");
    assert_eq!(
        queue.object_types,
        [
            "order",
            "resource_api_key_rotation",
            "user_role",
            "resource",
            "service_account",
            "course_account",
            "offering_user",
            "offering_resources_sync"
        ]
    );

    // Events: each released order is carried out once it is announced.
    release(&site, 2);
    wait_until("order 2 by its event", WAIT, || order_done(&site, 2));
    release(&site, 3);
    wait_until("order 3 by its event", WAIT, || order_done(&site, 3));
    site.sim.publish_event(
        OFFERING,
        "resource",
        json!({"resource_uuid": resource_uuid(0)}),
    );
    wait_until("the resource event", WAIT, || {
        log_of(&agent).contains("resource event")
    });
    site.assert_exactly_once(4, "single queue");

    // Services as the reference registers them.
    let services: Vec<(String, String)> = site.sim.with_store(|s| {
        s.services
            .values()
            .map(|s| (s.name.clone(), s.mode.clone()))
            .collect()
    });
    for name in [
        "initial-offering-process",
        "event_process-order",
        "event_process-user_role",
    ] {
        assert!(
            services.contains(&(name.to_string(), "event_process".to_string())),
            "{name}: {services:?}"
        );
    }

    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("event processing stopped"), "{log}");
    // Every delivery was acknowledged.
    queue_drained(&rabbit, &site);
}

#[test]
fn per_object_type_flow_opens_a_queue_per_type() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(2), "per_object_type", 1..2);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 8);
    let types: std::collections::BTreeSet<String> = site.sim.with_store(|s| {
        s.event_queues
            .values()
            .map(|q| q.object_type.clone())
            .collect()
    });
    assert_eq!(types.len(), 8, "{types:?}");
    assert!(site.sim.with_store(|s| s.consumer_queues.is_empty()));
    wait_until("the start-up pass", WAIT, || order_done(&site, 0));
    release(&site, 1);
    wait_until("order 1 by its event", WAIT, || order_done(&site, 1));
    site.assert_exactly_once(2, "per object type");
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    queue_drained(&rabbit, &site);
}

#[test]
fn auto_flow_falls_back_to_per_type_queues_when_waldur_lacks_register_queue() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "auto", 0..1);
    let _cleanup = BrokerCleanup(&site);
    site.sim.inject(Fault::status(
        Matcher::endpoint("POST", REGISTER_QUEUE),
        404,
        u32::MAX,
    ));
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 8);
    release(&site, 0);
    wait_until("order 0 by its event", WAIT, || order_done(&site, 0));
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("does not know register_queue"), "{log}");
}

#[test]
fn malformed_messages_are_refused_in_one_line_acknowledged_and_the_rest_served() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "single_queue", 0..1);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    let (vhost, queue) = site.sim.with_store(|s| {
        let q = s.consumer_queues.values().next().unwrap();
        (q.vhost.clone(), q.queue_name.clone())
    });
    let garbage = [
        "not json at all",
        "[1, 2]",
        r#"{"object_type": "order"}"#,
        r#"{"object_type": "floor_wax", "x": 1}"#,
        r#"{"order_uuid": "77777777777777777777777777000000"}"#,
        r#"{"object_type": "order", "order_uuid": "../../etc", "order_state": "executing"}"#,
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for body in garbage {
        runtime.block_on(rabbit.publish(&vhost, &queue, body));
    }
    release(&site, 0);
    wait_until("the good order after the garbage", WAIT, || {
        order_done(&site, 0)
    });
    wait_until("every refusal logged", WAIT, || {
        log_of(&agent).matches("refused and acknowledged").count() >= garbage.len()
    });
    queue_drained(&rabbit, &site);
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    for line in log
        .lines()
        .filter(|l| l.contains("refused and acknowledged"))
    {
        assert!(line.contains(&queue), "the line names the queue: {line}");
        assert!(
            !line.contains("floor_wax\", \"x\""),
            "no body in the log: {line}"
        );
    }
    site.assert_exactly_once(1, "after garbage");
}

#[test]
fn a_broker_restart_is_caught_up_exactly_once() {
    let Some(rabbit) = require_real_rabbitmq_exclusive() else {
        return;
    };
    let site = event_site(creates(6), "single_queue", 2..6);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    release(&site, 2);
    wait_until("order 2 by its event", WAIT, || order_done(&site, 2));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(rabbit.stop_broker());
    // Orders approved while the broker is down: their events never reach a queue.
    site.sim.with_store_mut(|store| {
        for i in 3..6 {
            store.orders.get_mut(&order_uuid(i)).unwrap().state = "executing".into();
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!agent.exited(), "the agent survives the broker's absence");
    runtime.block_on(rabbit.start_broker());
    wait_until("the catch-up after the reconnect", WAIT, || {
        (3..6).all(|i| order_done(&site, i))
    });
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("catch-up (reconnected)"), "{log}");
    site.assert_exactly_once(6, "broker restart");
}

#[test]
fn kill_9_in_a_burst_of_events_then_a_restart_does_every_order_exactly_once() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    const N: usize = 40;
    let site = event_site(creates(N), "single_queue", 0..N);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    // Slow recording keeps several orders between "account created" and "id recorded".
    site.sim.inject(Fault::latency(
        Matcher::endpoint("POST", SET_BACKEND_ID),
        Duration::from_millis(200),
    ));
    for i in 0..N {
        release(&site, i);
    }
    wait_until("a quarter of the burst", WAIT, || site.orders().0 >= N / 4);
    agent.signal(libc::SIGKILL);
    agent.finish();
    let done_at_kill = site.orders().0;
    site.sim.clear_faults();
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_until(
        "every order after the restart",
        Duration::from_secs(120),
        || {
            assert!(!agent.exited(), "the agent exited");
            site.orders().0 == N
        },
    );
    queue_drained(&rabbit, &site);
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    eprintln!("kill -9 after {done_at_kill} of {N} orders; all {N} done after the restart");
    site.assert_exactly_once(N, "kill -9 in a burst");
}

#[test]
fn a_failing_backend_errs_its_order_and_the_agent_keeps_serving() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site_with(
        creates(1),
        "single_queue",
        0..1,
        "        fail_methods: [pre_create_resource]",
    );
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    release(&site, 0);
    wait_until("the order erred", WAIT, || {
        site.sim.order(&order_uuid(0)).unwrap().state == "erred"
    });
    assert!(!agent.exited());
    // The next event is still served.
    serves_a_resource_event_then_stops(&site, agent);
}

#[test]
fn once_runs_the_start_up_pass_without_subscribing() {
    // No broker needed: --once never connects.
    let site = event_site(creates(2), "single_queue", 1..2);
    let output = site.run(&["run", "-m", "event_process", "--once"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(order_done(&site, 0));
    assert!(!order_done(&site, 1), "held orders wait for their event");
    assert!(site
        .sim
        .with_store(|s| s.consumer_queues.is_empty() && s.event_queues.is_empty()));
}

#[test]
fn event_process_without_stomp_offerings_is_refused_in_one_line() {
    let site = Site::new(creates(1), "", "");
    let output = site.run(&["run", "-m", "event_process"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no offering has stomp_enabled"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn a_second_event_agent_for_the_offering_is_refused() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "single_queue", 0..1);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    let second = site.run(&["run", "-m", "event_process"]);
    assert_eq!(second.status.code(), Some(2), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another agent"),
        "{}",
        text(&second)
    );
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn an_order_whose_event_was_lost_is_done_by_reconciliation() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(2), "single_queue", 0..2);
    let _cleanup = BrokerCleanup(&site);
    // Every 1.2 s instead of every hour.
    let mut agent = site.spawn_with_env(
        &["run", "-m", "event_process"],
        &[("WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES", "0.02")],
    );
    wait_subscribed(&site, &mut agent, 1);
    // Approved an hour ago, its event never arrived; order 1 was approved just now (it is
    // not stuck yet, so reconciliation leaves it to its event).
    site.sim.with_store_mut(|store| {
        let stuck = store.orders.get_mut(&order_uuid(0)).unwrap();
        stuck.state = "executing".into();
        stuck.modified = "2020-01-01T00:00:00Z".into();
        store.orders.get_mut(&order_uuid(1)).unwrap().state = "executing".into();
    });
    wait_until("the stuck order by reconciliation", WAIT, || {
        order_done(&site, 0)
    });
    wait_until("a reconciliation line", WAIT, || {
        log_of(&agent).contains("stuck orders: 1 done")
    });
    assert!(!order_done(&site, 1), "a recent order waits for its event");
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    site.assert_exactly_once(1, "reconciliation");
}

#[test]
fn a_failed_event_is_followed_by_a_catch_up_pass() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "single_queue", 0..1);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    // The event's read of its order fails for good; the order listing still works.
    site.sim.inject(Fault::status(
        Matcher::endpoint("GET", "/api/marketplace-orders/{uuid}/"),
        400,
        1,
    ));
    release(&site, 0);
    wait_until("the order by the catch-up pass", WAIT, || {
        order_done(&site, 0)
    });
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("order event") && log.contains("a catch-up pass follows"),
        "{log}"
    );
    assert!(log.contains("catch-up (after a failed event)"), "{log}");
    site.assert_exactly_once(1, "catch-up");
}

#[test]
fn all_mode_runs_event_processing_beside_the_polling_modes() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "single_queue", 0..1);
    let _cleanup = BrokerCleanup(&site);
    let mut agent = site.spawn(&["run", "-m", "all"]);
    wait_subscribed(&site, &mut agent, 1);
    release(&site, 0);
    wait_until("order 0 by its event", WAIT, || order_done(&site, 0));
    wait_until("a report cycle", WAIT, || {
        log_of(&agent).contains("report") && log_of(&agent).contains("cycle finished")
    });
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    // Order processing by polling leaves the STOMP offering to its events.
    assert!(
        log.contains("event processing (STOMP) handles its orders"),
        "{log}"
    );
    site.assert_exactly_once(1, "-m all");
}

#[test]
fn a_plugins_own_subscriptions_are_served_and_each_message_handed_to_it() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site(creates(1), "single_queue", 0..1);
    let _cleanup = BrokerCleanup(&site);
    site.plugins.add(
        &waldur_test_support::workspace_plugin("waldur-plugin-async-remote"),
        "async-remote.so",
    );
    // The "remote system": a queue of its own on the broker, which the plugin asks the agent
    // to read (async-remote answers what target-subscriptions.json says).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let remote = runtime.block_on(rabbit.account("target"));
    runtime.block_on(rabbit.declare_queue(&remote.vhost, "remote-events"));
    let state = site.work.path().join("state");
    std::fs::write(
        state.join("target-subscriptions.json"),
        json!([
            {"url": waldur_test_support::rabbitmq::WS_URL, "vhost": remote.vhost,
             "login": remote.user, "passcode": remote.password,
             "destination": "/amq/queue/remote-events", "label": "remote orders"},
            {"url": "http://not-a-websocket", "login": "x", "passcode": "hidden-secret",
             "destination": "/amq/queue/x"}
        ])
        .to_string(),
    )
    .unwrap();
    let config = std::fs::read_to_string(&site.config).unwrap().replace(
        "order_processing_backend: demo",
        "order_processing_backend: async-remote",
    );
    std::fs::write(&site.config, config).unwrap();

    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    wait_until("the target subscription", WAIT, || {
        log_of(&agent).contains("subscribed to /amq/queue/remote-events")
    });
    std::fs::create_dir_all(state.join("remote")).unwrap();
    std::fs::write(state.join("remote/create-x"), "pending").unwrap();
    runtime.block_on(rabbit.publish(&remote.vhost, "remote-events", r#""fail""#));
    runtime.block_on(rabbit.publish(
        &remote.vhost,
        "remote-events",
        r#"{"remote_order": "create-x"}"#,
    ));
    wait_until("the plugin applied the remote event", WAIT, || {
        std::fs::read_to_string(state.join("remote/create-x")).unwrap_or_default() == "done"
    });
    runtime.block_on(rabbit.wait_for_counts(&remote.vhost, "remote-events", 0, 0, WAIT));
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
    let calls = std::fs::read_to_string(state.join("calls.log")).unwrap();
    assert!(
        calls.contains("setup_target_event_subscriptions"),
        "{calls}"
    );
    assert!(calls.contains(r#"handle_target_event "fail""#), "{calls}");
    assert!(
        log.contains("failed in the backend and was acknowledged"),
        "{log}"
    );
    assert!(
        log.contains("target subscription 1: url must start with ws://"),
        "{log}"
    );
    assert!(!log.contains("hidden-secret"), "{log}");
}

#[test]
fn a_plugin_that_panics_in_an_event_errs_that_order_and_the_agent_keeps_consuming() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = event_site_with(creates(1), "single_queue", 0..1, "        panic_in: create");
    let _cleanup = BrokerCleanup(&site);
    site.plugins.add(
        &waldur_test_support::workspace_plugin("waldur-plugin-panicky"),
        "panicky.so",
    );
    let config = std::fs::read_to_string(&site.config).unwrap().replace(
        "order_processing_backend: demo",
        "order_processing_backend: panicky",
    );
    std::fs::write(&site.config, config).unwrap();
    let mut agent = site.spawn(&["run", "-m", "event_process"]);
    wait_subscribed(&site, &mut agent, 1);
    release(&site, 0);
    wait_until("the order erred by the panic", WAIT, || {
        site.sim.order(&order_uuid(0)).unwrap().state == "erred"
    });
    assert!(
        site.sim
            .order(&order_uuid(0))
            .unwrap()
            .error_message
            .contains("panic"),
        "the order says why"
    );
    // The membership backend (demo) still serves the next event.
    serves_a_resource_event_then_stops(&site, agent);
}
