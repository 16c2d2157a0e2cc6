//! The agent's signals end to end (issue 10): `log_level` from the config, colour only on a
//! terminal, JSON lines with the reference's fields, log shipping to Waldur (A9) and Sentry,
//! against the simulator with the demo plugin through the real loader.

use crate::common::site::*;
use serde_json::Value;
use waldur_sim::{Fault, Matcher};

const LOGS: &str = "/api/marketplace-site-agent-logs/";

fn once(site: &Site, extra_env: &[(&str, &str)], args: &[&str]) -> (String, String) {
    let mut command = site.agent(&["run", "-m", "order_process", "--once"]);
    command.args(args).env_remove("RUST_LOG");
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn log_level_from_the_config_and_rust_log_wins() {
    let site = Site::new(creates(1), "", "log_level: WARNING");
    let (_, stderr) = once(&site, &[], &[]);
    assert!(!stderr.contains("cycle finished"), "{stderr}");
    let (_, stderr) = once(&site, &[("RUST_LOG", "info")], &[]);
    assert!(stderr.contains("cycle finished"), "{stderr}");
}

#[test]
fn redirected_text_logs_have_no_colour_codes() {
    let site = Site::new(creates(1), "", "");
    let (_, stderr) = once(&site, &[], &[]);
    assert!(stderr.contains("cycle finished"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in a pipe: {stderr:?}"
    );
}

#[test]
fn json_lines_carry_the_reference_fields_and_the_offering() {
    let site = Site::new(creates(1), "", "log_format: text");
    let (stdout, _) = once(&site, &[], &["--log-format", "json"]);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!lines.is_empty(), "no JSON lines on stdout");
    for line in &lines {
        for key in ["timestamp", "level", "logger", "event"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
        assert!(
            line["timestamp"].as_str().unwrap().ends_with("+00:00"),
            "{line}"
        );
    }
    let summary = lines
        .iter()
        .find(|l| l["event"].as_str().unwrap().starts_with("orders: 1 done"))
        .unwrap_or_else(|| panic!("no order summary in {stdout}"));
    assert_eq!(summary["offering"], "Demo Offering", "{summary}");
    assert_eq!(summary["mode"], "order_process", "{summary}");
    assert_eq!(summary["level"], "info");
    assert_eq!(summary["logger"], "waldur_agent::modes::cycle");
}

#[test]
fn elastic_apm_gets_one_warning_line() {
    let site = Site::new(
        creates(1),
        "",
        "elastic_apm_server_url: http://apm.example:8200",
    );
    let (_, stderr) = once(&site, &[], &[]);
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("does not support Elastic APM"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
}

fn shipped(site: &Site) -> Vec<Value> {
    site.sim.with_store(|s| s.agent_logs.clone())
}

#[test]
fn log_records_are_shipped_to_the_offerings_identity_at_exit() {
    let site = Site::new(
        creates(1),
        "",
        "log_shipping: {enabled: true, log_level: INFO, ship_interval_seconds: 60}",
    );
    once(&site, &[], &[]);
    let records = shipped(&site);
    let identity = site
        .sim
        .with_store(|s| s.identities.keys().next().cloned().unwrap());
    let summary = records
        .iter()
        .find(|r| r["message"].as_str().unwrap().starts_with("orders: 1 done"))
        .unwrap_or_else(|| panic!("no order summary shipped: {records:?}"));
    assert_eq!(summary["level"], "INFO");
    assert_eq!(summary["module"], "waldur_agent::modes::cycle");
    assert_eq!(summary["agent_identity_uuid"].as_str().unwrap(), identity);
    // No transport noise, nothing about the shipper itself.
    assert!(
        records
            .iter()
            .all(|r| !r["module"].as_str().unwrap().starts_with("reqwest")),
        "{records:?}"
    );
    // WARNING (the default shipping level) keeps INFO lines home.
    let quiet = Site::new(creates(1), "", "log_shipping: {enabled: true}");
    once(&quiet, &[], &[]);
    assert!(
        shipped(&quiet).iter().all(|r| r["level"] != "INFO"),
        "{:?}",
        shipped(&quiet)
    );
}

#[test]
fn a_404_from_the_log_endpoint_drops_the_batch_and_the_agent_goes_on() {
    let site = Site::new(
        creates(1),
        "",
        "log_shipping: {enabled: true, log_level: INFO}",
    );
    site.sim
        .inject(Fault::status(Matcher::endpoint("POST", LOGS), 404, 100));
    let (_, stderr) = once(&site, &[("RUST_LOG", "info")], &[]);
    assert!(stderr.contains("orders: 1 done"), "{stderr}");
    assert!(shipped(&site).is_empty());
    assert_eq!(site.orders().0, 1, "the order was still done");
}

#[test]
fn errors_reach_sentry_with_the_environment_and_without_the_token() {
    let site = Site::new(creates(1), "", "");
    let origin = site.sim.origin();
    let dsn = format!(
        "http://publickey@{}/__sim/sentry/7",
        origin.trim_start_matches("http://")
    );
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, format!("sentry_dsn: {dsn}\n{config}")).unwrap();
    // Waldur refuses the offering: the cycle logs an error.
    let offering = "/api/marketplace-provider-offerings/{uuid}/";
    site.sim
        .inject(Fault::status(Matcher::endpoint("GET", offering), 403, 1000));
    let output = site
        .agent(&["run", "-m", "order_process", "--once"])
        .env("SENTRY_ENVIRONMENT", "staging")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let envelopes = site.sim.with_store(|s| s.sentry_envelopes.clone());
    assert!(!envelopes.is_empty(), "nothing reached Sentry: {stderr}");
    let all = envelopes.join("\n");
    assert!(all.contains("\"environment\":\"staging\""), "{all}");
    assert!(all.contains("unexpected HTTP status 403"), "{all}");
    assert!(all.contains("\"offering\":\"Demo Offering\""), "{all}");
    assert!(!all.contains(TOKEN), "the token reached Sentry: {all}");
}
