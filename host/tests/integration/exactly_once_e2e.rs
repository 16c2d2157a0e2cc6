//! Exactly-once orders, one agent per offering and mode, exit codes and stopping: the agent
//! binary (`waldur-agent run`) against the Waldur simulator with the demo plugin, with faults
//! injected per endpoint, `kill -9` mid-cycle and two agents on one config.
//!
//! `WALDUR_AGENT_BIN` runs another agent binary against the same tests (how the before/after
//! figures in the notes were measured); every test prints its figures.

use std::time::{Duration, Instant};

use crate::common::site::*;
use waldur_sim::{Fault, Matcher};

// ------------------------------------------------------------------------------------------
// 1. kill -9 between creating an account and recording it

fn killed_mid_cycle(settings: &str, label: &str) {
    const N: usize = 200;
    let site = Site::new(creates(N), settings, "");
    // Slow recording keeps up to eight orders between "account created" and "id recorded"
    // at any moment, so the kill lands in that window.
    site.sim.inject(Fault::latency(
        Matcher::endpoint("POST", SET_BACKEND_ID),
        Duration::from_millis(150),
    ));
    let mut agent = site.spawn(&["run", "-m", "order_process", "--once"]);
    wait_until("a third of the orders", Duration::from_secs(120), || {
        assert!(!agent.exited(), "the agent exited early");
        site.orders().0 >= N / 3
    });
    // From here on recording hangs, so accounts pile up unrecorded and the kill surely lands
    // in the window (a busy machine once let it land between recording and done).
    site.sim.clear_faults();
    site.sim.inject(Fault::latency(
        Matcher::endpoint("POST", SET_BACKEND_ID),
        Duration::from_secs(120),
    ));
    let recorded = || {
        site.sim.with_store(|s| {
            s.resources
                .values()
                .filter(|r| !r.backend_id.is_empty())
                .count()
        })
    };
    wait_until(
        "an account not yet recorded",
        Duration::from_secs(60),
        || site.allocations().len() > recorded(),
    );
    agent.signal(libc::SIGKILL);
    agent.finish();
    let orphans = site.allocations().len() - recorded();
    eprintln!(
        "{label}: after kill -9: {} done, {} accounts, {orphans} not recorded in Waldur",
        site.orders().0,
        site.allocations().len()
    );
    site.sim.clear_faults();
    let output = once(&site);
    let (done, erred, other) = site.orders();
    eprintln!(
        "{label}: after the rerun: {done} done, {erred} erred, {other} other; {} accounts for {N} resources",
        site.allocations().len()
    );
    assert!(
        orphans >= 1,
        "the kill landed outside the window: {orphans}"
    );
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!((done, erred, other), (N, 0, 0), "{}", text(&output));
    site.assert_exactly_once(N, label);
}

#[test]
fn a_kill_between_creating_and_recording_leaves_no_orphan_and_no_error() {
    killed_mid_cycle("", "kill -9, 200 Creates");
}

#[test]
fn a_kill_with_the_uniqueness_check_creates_no_second_account() {
    killed_mid_cycle(
        "        check_backend_id_uniqueness: true\n",
        "kill -9, 200 Creates, uniqueness check",
    );
}

// ------------------------------------------------------------------------------------------
// 1-3. Faults between the steps of one Create

fn one_create_with(fault: Fault, settings: &str) -> Site {
    one_create_on(Site::new(creates(1), settings, ""), fault)
}

fn one_create_on(site: Site, fault: Fault) -> Site {
    site.sim.inject(fault);
    let output = once(&site);
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(site.orders(), (1, 0, 0), "{}", text(&output));
    site.assert_exactly_once(1, "one create");
    site
}

#[test]
fn set_backend_id_failing_until_the_retries_run_out_adopts_the_account_next_time() {
    for settings in ["", "        check_backend_id_uniqueness: true\n"] {
        let site = one_create_with(
            Fault::status(Matcher::endpoint("POST", SET_BACKEND_ID), 500, 3),
            settings,
        );
        assert_eq!(site.allocations(), vec!["alloc-0000"], "{settings}");
    }
}

#[test]
fn a_garbled_answer_to_an_applied_set_backend_id_is_read_back() {
    let site = one_create_with(
        Fault::malformed(Matcher::endpoint("POST", SET_BACKEND_ID), 1),
        "",
    );
    // Applied once, confirmed by reading back: not sent again.
    assert_eq!(site.sim.count("POST", SET_BACKEND_ID), 1);
}

#[test]
fn server_errors_after_applied_writes_are_read_back() {
    // Three times: every attempt of the client ends in a 502. Once: the client's retry meets
    // the applied change (Waldur answers 400 to `set_state_done` on a done order).
    for count in [3, 1] {
        for endpoint in [SET_BACKEND_ID, SET_LIMITS, SET_DONE] {
            let site = one_create_with(
                Fault::applied_status(Matcher::endpoint("POST", endpoint), 502, count),
                "",
            );
            assert_eq!(
                site.allocations(),
                vec!["alloc-0000"],
                "{endpoint} x{count}"
            );
        }
    }
}

#[test]
fn set_limits_lost_to_a_transient_failure_is_sent_before_the_order_is_done() {
    // A usage component with a configured limit: the create owes Waldur `mem: 100`, which
    // the resource does not have yet.
    let site = Site::with_components(
        creates(1),
        "",
        "",
        "      mem: {measured_unit: GB, accounting_type: usage, label: RAM, limit: 100}",
    );
    let site = one_create_on(
        site,
        Fault::status(Matcher::endpoint("POST", SET_LIMITS), 500, 3),
    );
    assert_eq!(site.succeeded(SET_LIMITS), 1, "the limits reached Waldur");
    let limits = site.sim.resource(&resource_uuid(0)).unwrap().limits;
    assert_eq!(limits["mem"], 100, "{limits:?}");
    assert_eq!(limits["cpu"], 1, "{limits:?}");
}

// ------------------------------------------------------------------------------------------
// 4. Two agents on one config

#[test]
fn a_second_agent_for_the_same_offering_and_mode_refuses_to_start() {
    const N: usize = 100;
    let site = Site::new(
        creates(N),
        "        check_backend_id_uniqueness: true\n",
        "",
    );
    site.sim.inject(Fault::latency(
        Matcher::endpoint("POST", SET_BACKEND_ID),
        Duration::from_millis(20),
    ));
    // Started together, as a unit and a cron job would.
    let first = site.spawn(&["run", "-m", "order_process", "--once"]);
    let second = site.spawn(&["run", "-m", "all", "--once"]);
    let (first_pid, second_pid) = (first.id(), second.id());
    let first = first.finish();
    let second = second.finish();
    let (done, erred, _) = site.orders();
    eprintln!(
        "two agents, {N} Creates: {done} done, {erred} erred, {} accounts",
        site.allocations().len()
    );
    let (refused, refused_by, ran) = if first.0 == Some(2) {
        (&first, second_pid, &second)
    } else {
        (&second, first_pid, &first)
    };
    let line = refused
        .1
        .lines()
        .find(|l| l.contains("another agent"))
        .unwrap_or_else(|| panic!("no refusal: {first:?}\n{second:?}"));
    assert!(
        line.contains(&format!("(PID {refused_by})"))
            && line.contains("order_process for offering 'Demo Offering'"),
        "{line}"
    );
    assert_eq!(refused.0, Some(2), "{}", refused.1);
    assert_eq!(ran.0, Some(0), "{}", ran.1);
    assert_eq!((done, erred), (N, 0));
    site.assert_exactly_once(N, "two agents");
}

#[test]
fn the_same_offering_listed_twice_is_a_config_error() {
    let site = Site::new(creates(1), "", "");
    let config = std::fs::read_to_string(&site.config).unwrap();
    let (head, offering) = config.split_once("offerings:\n").unwrap();
    // The same offering again, under another name.
    let twice = format!(
        "{head}offerings:\n{offering}{}",
        offering.replacen("name: Demo Offering", "name: Demo Offering again", 1)
    );
    std::fs::write(&site.config, twice).unwrap();
    let output = once(&site);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("offerings[1].waldur_offering_uuid")
            && stderr.contains("list each offering once"),
        "{stderr}"
    );
    assert_eq!(site.orders(), (0, 0, 1), "nothing was processed");
}

#[test]
fn the_lock_is_per_mode_so_other_modes_run_beside_it() {
    let site = Site::new(creates(3), "", "");
    site.sim.inject(Fault::latency(
        Matcher::endpoint("GET", RETRIEVE),
        Duration::from_millis(400),
    ));
    let orders = site.spawn(&["run", "-m", "order_process", "--once"]);
    wait_until("the order agent's lock", Duration::from_secs(30), || {
        site.sim.count("GET", RETRIEVE) > 0
    });
    let report = site.run(&["run", "-m", "report", "--once"]);
    assert!(report.status.success(), "{}", text(&report));
    let (code, log) = orders.finish();
    assert_eq!(code, Some(0), "{log}");
}

// ------------------------------------------------------------------------------------------
// 5. Exit codes

#[test]
fn once_exits_1_when_an_order_erred_and_names_what_failed() {
    // Two resources wanting the same id without the uniqueness check: one errs.
    let mut scenario = creates(2);
    for resource in &mut scenario.resources {
        resource.slug = Some("same".into());
    }
    let site = Site::new(scenario, "", "");
    let output = once(&site);
    assert_eq!(site.orders(), (1, 1, 0));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == "run --once: order_process: 1 order(s) erred"),
        "{stderr}"
    );
    // Nothing left to fail: the next run is clean.
    let again = once(&site);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

#[test]
fn once_exits_1_when_a_usage_report_failed() {
    let site = Site::new(creates(2), "", "");
    assert!(once(&site).status.success());
    site.sim.inject(Fault {
        count: None,
        ..Fault::status(Matcher::endpoint("POST", SET_USAGE), 400, 1)
    });
    let output = site.run(&["run", "-m", "report", "--once"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("run --once: report: 2 usage report(s) failed"),
        "{}",
        text(&output)
    );
}

// ------------------------------------------------------------------------------------------
// 6. Stopping

fn stopping_site(grace: &str) -> (Site, Running) {
    let site = Site::new(creates(20), "", grace);
    // One slow request: the agent is mid-cycle, waiting on Waldur.
    site.sim.inject(Fault::latency(
        Matcher::endpoint("GET", RETRIEVE),
        Duration::from_secs(60),
    ));
    let agent = site.spawn(&["run", "-m", "all", "--once"]);
    wait_until("a request in flight", Duration::from_secs(30), || {
        site.sim
            .requests()
            .iter()
            .any(|r| r.template == "/api/marketplace-orders/")
    });
    std::thread::sleep(Duration::from_millis(300));
    (site, agent)
}

#[test]
fn sigterm_cancels_after_the_grace_period_and_starts_no_other_mode() {
    let (site, mut agent) = stopping_site("shutdown_grace_seconds: 2");
    let sent = Instant::now();
    agent.signal(libc::SIGTERM);
    let (code, log) = agent.finish();
    let took = sent.elapsed();
    eprintln!("SIGTERM with a 60 s request in flight, grace 2 s: exited after {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}\n{log}");
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("grace period of 2 s is over"), "{log}");
    // No other mode started after the stop request.
    assert_eq!(site.sim.count("POST", SET_USAGE), 0);
    assert!(!site
        .sim
        .requests()
        .iter()
        .any(|r| r.template.contains("marketplace-offering-users")));
    // What was cut short is finished by the next run, once.
    site.sim.clear_faults();
    assert!(once(&site).status.success());
    assert_eq!(site.orders(), (20, 0, 0));
    site.assert_exactly_once(20, "after a cancelled stop");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (_site, mut agent) = stopping_site("shutdown_grace_seconds: 600");
    agent.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    agent.signal(libc::SIGTERM);
    let (code, log) = agent.finish();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(code, Some(130), "{log}");
    assert!(log.contains("second signal"), "{log}");
}
