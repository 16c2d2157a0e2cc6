use std::time::Duration;

use super::*;
use waldur_plugin_host::CallObserver;

fn labels() -> ModeLabels {
    ModeLabels {
        mode: "order_process",
        offering: "Demo Offering".into(),
    }
}

#[test]
fn a_cycle_is_encoded_with_its_labels_and_values() {
    let metrics = Metrics::new();
    let counts = CycleCounts {
        completed: true,
        orders: OrderCounts {
            done: 3,
            erred: 1,
            ..Default::default()
        },
        failures: 1,
        ..Default::default()
    };
    metrics.record_cycle(labels(), Duration::from_millis(250), &counts);
    metrics.record_cycle(labels(), Duration::from_millis(150), &counts);
    let text = metrics.encode();
    let l = r#"mode="order_process",offering="Demo Offering""#;
    for line in [
        format!(r#"waldur_agent_orders_total{{{l},outcome="done"}} 6"#),
        format!(r#"waldur_agent_orders_total{{{l},outcome="erred"}} 2"#),
        format!(r#"waldur_agent_failures_total{{{l}}} 2"#),
        format!(r#"waldur_agent_users_added_total{{{l}}} 0"#),
        format!(r#"waldur_agent_cycle_duration_seconds_count{{{l}}} 2"#),
        format!(r#"waldur_agent_cycle_duration_seconds_sum{{{l}}} 0.4"#),
        format!(r#"waldur_agent_cycle_duration_seconds_bucket{{le="0.2",{l}}} 1"#),
    ] {
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    // Outcomes that did not happen have no series.
    assert!(!text.contains(r#"outcome="rejected""#), "{text}");
    let stamp = text
        .lines()
        .find_map(|l| l.strip_prefix("waldur_agent_last_successful_cycle_timestamp_seconds{"))
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|n| n.parse::<i64>().ok())
        .expect("a timestamp series");
    assert!(
        (stamp - jiff::Timestamp::now().as_second()).abs() < 60,
        "{stamp}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn a_failed_cycle_leaves_the_last_success_alone() {
    let metrics = Metrics::new();
    let failed = CycleCounts {
        failures: 1,
        ..Default::default()
    };
    metrics.record_cycle(labels(), Duration::from_secs(1), &failed);
    let text = metrics.encode();
    assert!(
        !text.contains("last_successful_cycle_timestamp_seconds{"),
        "{text}"
    );
    assert!(text.contains("waldur_agent_failures_total{"), "{text}");
}

#[test]
fn plugin_calls_entries_and_events_are_encoded() {
    let metrics = Metrics::new();
    let calls = metrics.plugin_calls("demo");
    calls.observe("ping", 0.001);
    calls.observe("ping", 0.002);
    metrics.record_plugin_entries(&[EntryState {
        plugin: "waldur-plugin-demo".into(),
        kind: "backend".into(),
        entry: "demo".into(),
        compatible: true,
        loaded: false,
    }]);
    metrics.record_event("Demo Offering", "order", EventOutcome::Handled);
    let text = metrics.encode();
    for line in [
        r#"waldur_agent_plugin_call_duration_seconds_count{plugin="demo",method="ping"} 2"#,
        r#"waldur_agent_plugin_entry{plugin="waldur-plugin-demo",kind="backend",entry="demo",state="compatible"} 1"#,
        r#"waldur_agent_plugin_entry{plugin="waldur-plugin-demo",kind="backend",entry="demo",state="loaded"} 0"#,
        r#"waldur_agent_events_total{offering="Demo Offering",object_type="order",outcome="handled"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
}
