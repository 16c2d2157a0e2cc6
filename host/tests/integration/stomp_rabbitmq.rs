//! The STOMP client (`waldur_agent::events::stomp`) against REAL RabbitMQ 3.10 over Web-STOMP
//! (scripts/rabbitmq-setup.sh): subscribe and receive, client-individual acknowledgement and
//! redelivery, prefetch, refused logins and missing queues, a hung broker, a broker restart
//! and a start while the broker is down.
//!
//! Each test has a vhost and user of its own; the test that stops and pauses the broker holds
//! it exclusively (the others wait). Without RabbitMQ these tests skip, except under
//! `CI=true`, where they fail.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;
use waldur_agent::events::stomp::{Backoff, Delivery, StompClient, StompEvent, StompOptions};
use waldur_test_support::rabbitmq::{
    require_real_rabbitmq, require_real_rabbitmq_exclusive, RealRabbit, TestAccount,
};

const WAIT: Duration = Duration::from_secs(20);

/// The client's log lines on stderr when RUST_LOG asks for them (e.g.
/// `RUST_LOG=waldur_agent::events::stomp=trace`). Only then: the process has one global
/// subscriber, and `plugin_safety` captures into its own otherwise.
fn log_to_stderr() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn options(rabbit: &RealRabbit, account: &TestAccount, queue: &str) -> StompOptions {
    StompOptions {
        url: rabbit.ws_url.clone(),
        vhost: account.vhost.clone(),
        login: account.user.clone(),
        passcode: account.password.clone(),
        destination: format!("/amq/queue/{queue}"),
        subscription_id: queue.to_string(),
        heartbeat: Duration::from_secs(10),
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        prefetch: 10,
        label: format!("test {queue}"),
    }
}

/// An account with one declared queue.
async fn account_with_queue(rabbit: &RealRabbit, prefix: &str) -> TestAccount {
    let account = rabbit.account(prefix).await;
    rabbit.declare_queue(&account.vhost, "events").await;
    account
}

async fn next_event(events: &mut Receiver<StompEvent>, within: Duration) -> StompEvent {
    match tokio::time::timeout(within, events.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the client's event channel closed"),
        Err(_) => panic!("no event within {within:?}"),
    }
}

/// Skips Disconnected events (answering their reasons) up to the next Connected.
async fn until_connected(events: &mut Receiver<StompEvent>) -> (bool, Vec<String>) {
    let mut reasons = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match next_event(events, deadline.saturating_duration_since(Instant::now())).await {
            StompEvent::Connected { reconnected } => return (reconnected, reasons),
            StompEvent::Disconnected { reason } => reasons.push(reason),
            StompEvent::Message(m) => panic!("message before Connected: {m:?}"),
        }
    }
}

async fn next_disconnect(events: &mut Receiver<StompEvent>) -> String {
    match next_event(events, WAIT).await {
        StompEvent::Disconnected { reason } => reason,
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

async fn next_message(events: &mut Receiver<StompEvent>) -> Delivery {
    match next_event(events, WAIT).await {
        StompEvent::Message(delivery) => delivery,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn nothing_for(events: &mut Receiver<StompEvent>, quiet: Duration) {
    if let Ok(event) = tokio::time::timeout(quiet, events.recv()).await {
        panic!("expected no event for {quiet:?}, got {event:?}");
    }
}

fn body(delivery: &Delivery) -> String {
    String::from_utf8(delivery.body.clone()).expect("UTF-8 body")
}

/// Starts a client and checks that start() returned at once.
fn start(options: StompOptions) -> (StompClient, Receiver<StompEvent>) {
    log_to_stderr();
    let began = Instant::now();
    let started = StompClient::start(options);
    assert!(
        began.elapsed() < Duration::from_millis(100),
        "start() took {:?}",
        began.elapsed()
    );
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_and_receives_a_published_message() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let account = account_with_queue(&rabbit, "stomp-recv").await;
    let (client, mut events) = start(options(&rabbit, &account, "events"));
    assert_eq!(until_connected(&mut events).await, (false, vec![]));

    let json = r#"{"order_uuid": "abc", "order_state": "executing"}"#;
    rabbit.publish(&account.vhost, "events", json).await;
    let delivery = next_message(&mut events).await;
    assert_eq!(body(&delivery), json);
    // RabbitMQ names where it was published to: the default exchange, routing key `events`.
    assert_eq!(delivery.destination, "/queue/events");
    assert!(!delivery.message_id.is_empty());
    assert_eq!(delivery.header("subscription"), Some("events"));
    assert!(!delivery.redelivered());
    delivery.ack();
    rabbit
        .wait_for_counts(&account.vhost, "events", 0, 0, WAIT)
        .await;

    let closing = Instant::now();
    client.close().await;
    assert!(
        closing.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        closing.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_are_redelivered_acknowledged_ones_are_not() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let account = account_with_queue(&rabbit, "stomp-ack").await;
    let (client, mut events) = start(options(&rabbit, &account, "events"));
    until_connected(&mut events).await;
    rabbit.publish(&account.vhost, "events", "first").await;
    rabbit.publish(&account.vhost, "events", "second").await;
    let first = next_message(&mut events).await;
    let second = next_message(&mut events).await;
    assert_eq!(
        (body(&first), body(&second)),
        ("first".into(), "second".into())
    );
    first.ack();
    rabbit
        .wait_for_counts(&account.vhost, "events", 0, 1, WAIT)
        .await;

    // The client goes away with "second" unacknowledged: the broker takes it back.
    drop(client);
    rabbit
        .wait_for_counts(&account.vhost, "events", 1, 0, WAIT)
        .await;
    // Acknowledging on a connection that is gone does nothing (and does not panic).
    second.ack();

    let (client, mut events) = start(options(&rabbit, &account, "events"));
    assert!(
        !until_connected(&mut events).await.0,
        "a new client starts afresh"
    );
    let again = next_message(&mut events).await;
    assert_eq!(body(&again), "second");
    assert!(again.redelivered());
    // NACK gives it back at once; it comes again on the same connection.
    again.nack();
    let third_time = next_message(&mut events).await;
    assert_eq!(body(&third_time), "second");
    third_time.ack();
    rabbit
        .wait_for_counts(&account.vhost, "events", 0, 0, WAIT)
        .await;
    nothing_for(&mut events, Duration::from_secs(1)).await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_unacknowledged_deliveries() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let account = account_with_queue(&rabbit, "stomp-prefetch").await;
    for n in 0..5 {
        rabbit
            .publish(&account.vhost, "events", &format!("m{n}"))
            .await;
    }
    let mut options = options(&rabbit, &account, "events");
    options.prefetch = 2;
    let (client, mut events) = start(options);
    until_connected(&mut events).await;
    let a = next_message(&mut events).await;
    let b = next_message(&mut events).await;
    assert_eq!((body(&a), body(&b)), ("m0".into(), "m1".into()));
    nothing_for(&mut events, Duration::from_secs(1)).await;
    rabbit
        .wait_for_counts(&account.vhost, "events", 3, 2, WAIT)
        .await;
    a.ack();
    let c = next_message(&mut events).await;
    assert_eq!(body(&c), "m2");
    nothing_for(&mut events, Duration::from_millis(500)).await;
    for delivery in [b, c] {
        delivery.ack();
    }
    for expected in ["m3", "m4"] {
        let delivery = next_message(&mut events).await;
        assert_eq!(body(&delivery), expected);
        delivery.ack();
    }
    rabbit
        .wait_for_counts(&account.vhost, "events", 0, 0, WAIT)
        .await;
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_one_line_and_retried_without_blocking() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let account = account_with_queue(&rabbit, "stomp-login").await;
    let mut options = options(&rabbit, &account, "events");
    options.passcode = "not-the-token".into();
    let (client, mut events) = start(options);
    let first = next_disconnect(&mut events).await;
    assert!(!first.contains('\n'), "one line: {first:?}");
    assert!(
        first.contains("broker ERROR") && first.to_lowercase().contains("refused"),
        "{first}"
    );
    assert!(!first.contains("not-the-token"), "passcode in: {first}");
    // and again after the backoff, by itself
    let second = next_disconnect(&mut events).await;
    assert_eq!(first, second);
    let closing = Instant::now();
    client.close().await;
    assert!(closing.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_is_reported_until_it_exists() {
    let Some(rabbit) = require_real_rabbitmq() else {
        return;
    };
    let account = rabbit.account("stomp-noqueue").await;
    let (client, mut events) = start(options(&rabbit, &account, "later"));
    let reason = next_disconnect(&mut events).await;
    assert!(!reason.contains('\n'), "one line: {reason:?}");
    // The broker's ERROR frame (NOT_FOUND), or the close that may overtake it.
    assert!(
        reason.contains("NOT_FOUND") || reason.contains("SUBSCRIBE /amq/queue/later"),
        "{reason}"
    );
    // Mastermind declares the queue a moment later: the client subscribes by itself.
    rabbit.declare_queue(&account.vhost, "later").await;
    assert!(!until_connected(&mut events).await.0);
    rabbit.publish(&account.vhost, "later", "{}").await;
    next_message(&mut events).await.ack();
    client.close().await;
}

/// One test for everything that disturbs the broker, so it holds the broker once:
/// a hung broker (heart-beats stop) is detected and survived; a restart is followed by a
/// reconnect; a client started while the broker is down connects when it comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_hung_broker_a_restart_and_a_start_while_down() {
    let Some(rabbit) = require_real_rabbitmq_exclusive() else {
        return;
    };
    let first_account = account_with_queue(&rabbit, "stomp-restart-a").await;
    let later_account = account_with_queue(&rabbit, "stomp-restart-b").await;
    let mut first_options = options(&rabbit, &first_account, "events");
    first_options.heartbeat = Duration::from_secs(1);
    let (first, mut first_events) = start(first_options);
    assert!(!until_connected(&mut first_events).await.0);

    // ---- hung broker: nothing arrives any more, the heart-beat watchdog ends the connection
    rabbit.pause_broker();
    let paused = Instant::now();
    let reason = next_disconnect(&mut first_events).await;
    assert!(reason.contains("heart-beat"), "{reason}");
    assert!(
        paused.elapsed() < Duration::from_secs(6),
        "detected after {:?}",
        paused.elapsed()
    );
    rabbit.resume_broker();
    let (reconnected, _) = until_connected(&mut first_events).await;
    assert!(reconnected);

    // ---- restart, and a second client started while the broker is down
    rabbit.stop_broker().await;
    let reason = next_disconnect(&mut first_events).await;
    assert!(!reason.contains('\n'), "{reason:?}");
    let (later, mut later_events) = start(options(&rabbit, &later_account, "events"));
    let refused = next_disconnect(&mut later_events).await;
    assert!(refused.contains("cannot open WebSocket"), "{refused}");
    rabbit.start_broker().await;
    let (reconnected, _) = until_connected(&mut first_events).await;
    assert!(reconnected, "the first client reconnected by itself");
    let (reconnected, _) = until_connected(&mut later_events).await;
    assert!(!reconnected, "the later client's first connection");

    rabbit
        .publish(&first_account.vhost, "events", "after restart")
        .await;
    rabbit
        .publish(&later_account.vhost, "events", "came up")
        .await;
    let delivery = next_message(&mut first_events).await;
    assert_eq!(body(&delivery), "after restart");
    delivery.ack();
    let delivery = next_message(&mut later_events).await;
    assert_eq!(body(&delivery), "came up");
    delivery.ack();
    first.close().await;
    later.close().await;
}
