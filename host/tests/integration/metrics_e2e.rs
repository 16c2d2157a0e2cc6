//! The Prometheus endpoint and the progress lines, on the agent binary against the simulator:
//! the bound address is read from the log, `/metrics` is scraped during the run, and a cycle
//! slowed by the simulator's latency fault logs its progress.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::events::*;
use crate::common::site::*;
use serde_json::json;
use waldur_sim::{Fault, Matcher};
use waldur_test_support::rabbitmq::require_real_rabbitmq;

/// The address from the agent's "metrics: serving http://ADDR/metrics" line.
fn metrics_address(agent: &Running) -> String {
    let mut address = None;
    wait_until("the metrics line", Duration::from_secs(30), || {
        address = agent.log_text().lines().find_map(|line| {
            let (_, rest) = line.split_once("metrics: serving http://")?;
            Some(rest.split_once("/metrics")?.0.to_string())
        });
        address.is_some()
    });
    address.unwrap()
}

/// `GET /metrics`: (status line, content type, body).
fn scrape(address: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics endpoint");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.lines().next().unwrap_or_default().to_string();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The value of the series `name{labels}` (labels exactly as encoded).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

const OFFERING_LABELS: &str = r#"mode="order_process",offering="Demo Offering""#;

#[test]
fn the_endpoint_serves_cycle_plugin_and_registry_series_during_a_run() {
    let site = Site::new(creates(3), "", "");
    let mut agent = site.spawn_with_env(
        &[
            "run",
            "-m",
            "order_process",
            "--metrics-address",
            "127.0.0.1:0",
        ],
        // One cycle, then a long wait: the scrape sees a finished cycle of a live agent.
        &[("WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES", "60")],
    );
    let address = metrics_address(&agent);
    assert!(
        address.starts_with("127.0.0.1:") && !address.ends_with(":0"),
        "{address}"
    );
    let done = format!(r#"waldur_agent_orders_total{{{OFFERING_LABELS},outcome="done"}}"#);
    let mut text = String::new();
    wait_until("the cycle in the metrics", Duration::from_secs(60), || {
        let (status, content_type, body) = scrape(&address);
        assert!(status.contains(" 200 "), "{status}");
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        text = body;
        value(&text, &done).is_some()
    });
    assert_eq!(site.orders(), (3, 0, 0));
    assert_eq!(value(&text, &done), Some(3.0), "{text}");
    assert_eq!(
        value(
            &text,
            &format!("waldur_agent_failures_total{{{OFFERING_LABELS}}}")
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!("waldur_agent_cycle_duration_seconds_count{{{OFFERING_LABELS}}}")
        ),
        Some(1.0),
        "{text}"
    );
    let stamp = value(
        &text,
        &format!("waldur_agent_last_successful_cycle_timestamp_seconds{{{OFFERING_LABELS}}}"),
    )
    .expect("a last successful cycle");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - stamp).abs() < 120.0, "{stamp} vs {now}");
    // Each Create order reached the plugin's client_create_resource (through the agent's
    // create default) at least once.
    let creates = value(
        &text,
        r#"waldur_agent_plugin_call_duration_seconds_count{plugin="demo",method="client_create_resource"}"#,
    )
    .expect("plugin latency of client_create_resource");
    assert!(creates >= 3.0, "{text}");
    // A method the demo leaves to the agent is not a plugin call, so it has no series.
    assert_eq!(
        value(
            &text,
            r#"waldur_agent_plugin_call_duration_seconds_count{plugin="demo",method="create_resource_with_id"}"#,
        ),
        None,
        "{text}"
    );
    for state in ["compatible", "loaded"] {
        let series = format!(
            r#"waldur_agent_plugin_entry{{plugin="waldur-plugin-demo",kind="backend",entry="demo",state="{state}"}}"#
        );
        assert_eq!(value(&text, &series), Some(1.0), "{series}\n{text}");
    }
    agent.signal(libc::SIGTERM);
    let (code, log) = agent.finish();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        log.matches("metrics: serving http://").count(),
        1,
        "one line: {log}"
    );
}

#[test]
fn event_processing_counts_its_events_by_object_type_and_outcome() {
    let Some(_rabbit) = require_real_rabbitmq() else {
        return;
    };
    let site = stomp_site(creates(2), "single_queue", "", "");
    let _cleanup = BrokerCleanup(&site);
    // Order 1 waits for its event: the start-up pass leaves it alone.
    hold(&site, &order_uuid(1));
    let mut agent = site.spawn(&[
        "run",
        "-m",
        "event_process",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    let address = metrics_address(&agent);
    wait_subscribed(&site, &mut agent, 1);
    site.sim.with_store_mut(|store| {
        store.orders.get_mut(&order_uuid(1)).unwrap().state = "executing".into();
    });
    site.sim.publish_event(
        OFFERING,
        "order",
        json!({"order_uuid": order_uuid(1), "order_state": "executing"}),
    );
    site.sim.publish_event(
        OFFERING,
        "resource",
        json!({"resource_uuid": resource_uuid(0)}),
    );
    let events = |object_type: &str| {
        format!(
            r#"waldur_agent_events_total{{offering="Demo Offering",object_type="{object_type}",outcome="handled"}}"#
        )
    };
    let mut text = String::new();
    wait_until("both events in the metrics", WAIT, || {
        text = scrape(&address).2;
        value(&text, &events("order")).is_some() && value(&text, &events("resource")).is_some()
    });
    assert_eq!(value(&text, &events("order")), Some(1.0), "{text}");
    assert_eq!(value(&text, &events("resource")), Some(1.0), "{text}");
    assert!(!text.contains(r#"outcome="failed""#), "{text}");
    assert_eq!(site.orders(), (2, 0, 0));
    let (code, log) = stop(agent);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn the_config_key_serves_metrics_and_a_taken_address_is_a_start_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let site = Site::new(creates(1), "", &format!("metrics_address: {address}"));
    let output = site.run(&["run", "-m", "order_process", "--once"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", text(&output));
    assert!(
        errors[0].contains(&format!("cannot serve metrics on {address}")),
        "{}",
        text(&output)
    );
    // Nothing was done before the refusal.
    assert_eq!(site.orders(), (0, 0, 1));
    // The flag wins over the key.
    let output = site.run(&[
        "run",
        "-m",
        "order_process",
        "--once",
        "--metrics-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("metrics: serving http://127.0.0.1:"));
}

#[test]
fn config_check_knows_the_key_and_refuses_a_bad_address() {
    let site = Site::new(creates(1), "", "metrics_address: 127.0.0.1:9100");
    let output = site.run(&["config", "check"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        !text(&output).contains("metrics_address"),
        "{}",
        text(&output)
    );
    let site = Site::new(creates(1), "", "metrics_address: localhost");
    let output = site.run(&["config", "check"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        text(&output).contains("metrics_address") && text(&output).contains("IP:PORT"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_slow_cycle_logs_progress_lines_and_every_summary_its_duration() {
    // Each order's completion takes 600 ms at Waldur, and the agent works on 8 orders at a
    // time: two waves, so lines at the 200 ms interval the test sets see none, then half of
    // the orders done.
    let site = Site::new(creates(16), "", "");
    site.sim.inject(Fault::latency(
        Matcher::endpoint("POST", SET_DONE),
        Duration::from_millis(600),
    ));
    let agent = site.spawn_with_env(
        &["run", "-m", "order_process", "--once"],
        &[("WALDUR_AGENT_PROGRESS_INTERVAL_MS", "200")],
    );
    let (code, log) = agent.finish();
    assert_eq!(code, Some(0), "{log}");
    let progress: Vec<&str> = log.lines().filter(|l| l.contains("progress: ")).collect();
    assert!(progress.len() >= 2, "{log}");
    for line in &progress {
        assert!(
            line.contains("offering=Demo Offering") && line.contains("order_process"),
            "the line names its offering and mode: {line}"
        );
    }
    eprintln!("{}", progress.join("\n"));
    assert!(
        progress
            .iter()
            .any(|l| l.contains("progress: 0/16 item(s) done in ")
                && l.contains("time left unknown")),
        "{log}"
    );
    assert!(
        progress
            .iter()
            .any(|l| l.contains("progress: 8/16 item(s) done in ") && l.contains(" s left")),
        "{log}"
    );
    let summary = log
        .lines()
        .find(|l| l.contains("orders: 16 done"))
        .expect("the offering's summary");
    assert!(summary.contains(" s"), "{summary}");
    let cycle = log
        .lines()
        .find(|l| l.contains("cycle finished: 1 offering(s) in "))
        .expect("the cycle summary with its duration");
    let seconds: f64 = cycle
        .split("offering(s) in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a duration");
    assert!(seconds >= 1.2, "{cycle}");
}
