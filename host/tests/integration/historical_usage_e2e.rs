//! `load-historical-usage` end to end: the agent binary, the demo plugin's `.so` through the
//! real loader reading two years of usage files, and the Waldur simulator. The simulator
//! accepts only the staff token, never the offering's, so every call must use `--user-token`.

use std::process::Output;

use serde_json::{json, Value};
use waldur_sim::{Fault, Matcher, Scenario};

use crate::common::reported_totals;
use crate::common::site::{text, Site, OFFERING};

const STAFF_TOKEN: &str = "staff-token";
const RES_A: &str = "88888888888888888888888888888801";
const RES_B: &str = "88888888888888888888888888888802";
const RES_C: &str = "88888888888888888888888888888803";
const SET_USAGE: &str = "/api/marketplace-component-usages/set_usage/";
const SET_USER_USAGE: &str = "/api/marketplace-component-usages/{uuid}/set_user_usage/";

/// Three resources: `acc-a` and `acc-b` have usage files for every month of 2024 and 2025,
/// `acc-c` has none; alice1 and bob1 are OK offering users. `rest` adds scenario sections.
fn site(is_staff: bool, rest: &str) -> Site {
    let yaml = format!(
        r#"
tokens: ["{STAFF_TOKEN}"]
agent_user: {{username: admin, full_name: Admin, is_staff: {is_staff}}}
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer, slug: cust,
     service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: 99999999999999999999999999999999, name: Project, slug: proj, customer: cust}}
users:
  - {{uuid: 44444444444444444444444444444401, username: alice@idp, full_name: Alice, email: a@example.org}}
  - {{uuid: 44444444444444444444444444444402, username: bob@idp, full_name: Bob, email: b@example.org}}
offerings:
  - uuid: {OFFERING}
    name: Demo Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: usage, unit_factor: 1}}
      - {{type: mem, name: RAM, measured_unit: GB-Hours, billing_type: usage, unit_factor: 1}}
offering_users:
  - {{offering: Demo Offering, user: alice@idp, username: alice1, state: OK}}
  - {{offering: Demo Offering, user: bob@idp, username: bob1, state: OK}}
resources:
  - {{uuid: {RES_A}, name: alloc-a, project: proj, offering: Demo Offering, state: OK, backend_id: acc-a}}
  - {{uuid: {RES_B}, name: alloc-b, project: proj, offering: Demo Offering, state: Erred, backend_id: acc-b}}
  - {{uuid: {RES_C}, name: alloc-c, project: proj, offering: Demo Offering, state: OK, backend_id: acc-c}}
  - {{name: no-id, project: proj, offering: Demo Offering, state: OK}}
{rest}
"#
    );
    let site = Site::with_components(
        Scenario::from_yaml_str(&yaml).expect("valid scenario"),
        "",
        "timezone: UTC",
        "      mem: {measured_unit: GB-Hours, accounting_type: usage, label: RAM}",
    );
    for (i, month) in months().iter().enumerate() {
        let n = i as f64 + 1.0;
        // Backend units: cpu in minutes (unit_factor 60), mem as is.
        usage_file(
            &site,
            month,
            "acc-a",
            json!({"alice1": {"cpu": 60.0 * n, "mem": n}, "bob1": {"cpu": 30}}),
        );
        usage_file(&site, month, "acc-b", json!({"alice1": {"cpu": 120}}));
    }
    site
}

/// `2024-01` .. `2025-12`.
fn months() -> Vec<String> {
    (2024..=2025)
        .flat_map(|y| (1..=12).map(move |m| format!("{y}-{m:02}")))
        .collect()
}

fn usage_file(site: &Site, month: &str, account: &str, usage: Value) {
    let dir = site.work.path().join("state/usage").join(month);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{account}.json")), usage.to_string()).unwrap();
}

/// Runs the tool for `offering` (the config's `-c` and `--plugin-dir` are added by the site).
fn run_tool(site: &Site, offering: &str, start: &str, end: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "load-historical-usage",
        "-o",
        offering,
        "-t",
        STAFF_TOKEN,
        "-s",
        start,
        "-e",
        end,
    ];
    args.extend_from_slice(extra);
    site.run(&args)
}

/// [`run_tool`] for the configured offering: `(exit code, stdout, everything)`.
fn load(site: &Site, start: &str, end: &str, extra: &[&str]) -> (i32, String, String) {
    let output = run_tool(site, OFFERING, start, end, extra);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        text(&output),
    )
}

/// [`load`] with `--json`: the summary.
fn load_json(site: &Site, start: &str, end: &str, extra: &[&str]) -> (i32, Value, String) {
    let mut extra = extra.to_vec();
    extra.push("--json");
    let (code, stdout, all) = load(site, start, end, &extra);
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {all}"));
    (code, summary, all)
}

/// POST requests the simulator answered so far.
fn posts(site: &Site) -> u64 {
    site.sim
        .counters()
        .iter()
        .filter(|(key, _)| key.starts_with("POST "))
        .map(|(_, n)| n)
        .sum()
}

fn totals(site: &Site, resource: &str) -> Vec<(String, String, String)> {
    reported_totals(&site.sim, resource)
}

/// `(billing_period, type, username, usage, linked)` of a resource's user usages.
fn user_usages(site: &Site, resource: &str) -> Vec<(String, String, String, String, bool)> {
    site.sim.with_store(|st| {
        let mut rows: Vec<_> = st
            .user_usages
            .values()
            .filter_map(|uu| {
                let parent = st.component_usages.get(&uu.component_usage_uuid)?;
                (parent.resource_uuid == resource).then(|| {
                    (
                        parent.billing_period.clone(),
                        parent.type_.clone(),
                        uu.username.clone(),
                        uu.usage.clone(),
                        uu.user.is_some(),
                    )
                })
            })
            .collect();
        rows.sort();
        rows
    })
}

fn month_counts(summary: &Value, key: &str) -> u64 {
    summary["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[key].as_u64().unwrap())
        .sum()
}

#[test]
fn two_years_land_and_a_second_run_sends_nothing() {
    let site = site(true, "");
    let (code, summary, all) = load_json(&site, "2024-01-01", "2025-12-31", &[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(summary["months"].as_array().unwrap().len(), 24, "{all}");
    // acc-a and acc-b per month: one set_usage each; acc-c has no data.
    assert_eq!(month_counts(&summary, "resources"), 72);
    assert_eq!(month_counts(&summary, "no_data"), 24);
    assert_eq!(month_counts(&summary, "totals_sent"), 48);
    // alice1 cpu + mem and bob1 cpu on acc-a, alice1 cpu on acc-b.
    assert_eq!(month_counts(&summary, "user_usages_sent"), 24 * 4);
    assert_eq!(site.succeeded(SET_USAGE), 48);
    assert_eq!(site.succeeded(SET_USER_USAGE), 24 * 4);

    let a = totals(&site, RES_A);
    assert_eq!(a.len(), 48, "{a:?}");
    assert!(a.contains(&("2024-01-01".into(), "cpu".into(), "1.50".into())));
    assert!(a.contains(&("2025-12-01".into(), "cpu".into(), "24.50".into())));
    assert!(a.contains(&("2025-12-01".into(), "mem".into(), "24.00".into())));
    // acc-b used no mem: no zero record is created.
    let b = totals(&site, RES_B);
    assert_eq!(b.len(), 24);
    assert!(b.iter().all(|(_, t, u)| t == "cpu" && u == "2.00"), "{b:?}");
    assert!(totals(&site, RES_C).is_empty());
    let users = user_usages(&site, RES_A);
    assert_eq!(users.len(), 72);
    assert!(users.contains(&(
        "2024-07-01".into(),
        "cpu".into(),
        "alice1".into(),
        "7.00".into(),
        true
    )));
    assert!(users.contains(&(
        "2024-07-01".into(),
        "cpu".into(),
        "bob1".into(),
        "0.50".into(),
        true
    )));
    let dates: Vec<String> = site.sim.with_store(|st| {
        st.component_usages
            .values()
            .map(|u| u.date.clone())
            .collect()
    });
    assert!(
        dates.iter().all(|d| d.ends_with("-01T00:00:00")),
        "{dates:?}"
    );

    let before = posts(&site);
    let (code, summary, all) = load_json(&site, "2024-01-01", "2025-12-31", &[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(posts(&site), before, "a second run sent something: {all}");
    assert_eq!(month_counts(&summary, "totals_sent"), 0);
    assert_eq!(month_counts(&summary, "totals_unchanged"), 48);
    assert_eq!(month_counts(&summary, "user_usages_unchanged"), 24 * 4);
}

#[test]
fn a_dry_run_sends_nothing_and_prints_its_plan() {
    let site = site(true, "");
    let (code, stdout, all) = load(&site, "2024-01-01", "2024-02-29", &["--dry-run"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(posts(&site), 0, "{all}");
    for line in [
        "would send: 2024-01 acc-a: set totals cpu=1.50 mem=1.00",
        "would send: 2024-01 acc-a: set user usage alice1 cpu=1.00",
        "would send: 2024-02 acc-b: set totals cpu=2.00",
        "would send: 2024-02 acc-b: set user usage alice1 cpu=2.00",
    ] {
        assert!(stdout.contains(line), "{line} missing: {all}");
    }
    assert!(stdout.contains("TOTALS TO SEND"), "{all}");
    // Progress goes to stderr, one line per month when it is not a terminal.
    assert!(all.contains("month 2/2: 2024-02 done"), "{all}");
    assert!(totals(&site, RES_A).is_empty());
}

#[test]
fn a_failing_month_is_reported_and_the_others_land() {
    let site = site(true, "");
    // The plugin's one call for 2024-02 fails: the file of one account is not usage.
    usage_file(
        &site,
        "2024-02",
        "acc-b",
        json!({"alice1": {"cpu": "lots"}}),
    );
    let (code, summary, all) = load_json(&site, "2024-01-01", "2024-03-31", &[]);
    assert_eq!(code, 1, "{all}");
    let months = summary["months"].as_array().unwrap();
    assert!(
        months[0]["failed"].is_null() && months[2]["failed"].is_null(),
        "{all}"
    );
    let reason = months[1]["failed"].as_str().unwrap();
    assert!(reason.contains("acc-b.json is invalid"), "{reason}");
    let periods: Vec<String> = totals(&site, RES_A).into_iter().map(|r| r.0).collect();
    assert_eq!(
        periods,
        ["2024-01-01", "2024-01-01", "2024-03-01", "2024-03-01"]
    );
}

#[test]
fn a_waldur_error_after_retries_fails_its_month_only() {
    let site = site(true, "");
    // Every attempt of the first set_usage (the client tries three times) answers 503.
    site.sim
        .inject(Fault::status(Matcher::endpoint("POST", SET_USAGE), 503, 3));
    let run = || {
        load_json(
            &site,
            "2024-01-01",
            "2024-02-29",
            &["--resource-backend-id", "acc-a"],
        )
    };
    let (code, summary, all) = run();
    assert_eq!(code, 1, "{all}");
    let reason = summary["months"][0]["failed"].as_str().unwrap();
    assert!(
        reason.starts_with("acc-a: Waldur:") && reason.contains("503"),
        "{reason}"
    );
    assert!(summary["months"][1]["failed"].is_null(), "{all}");
    let periods: Vec<String> = totals(&site, RES_A).into_iter().map(|r| r.0).collect();
    assert_eq!(periods, ["2024-02-01", "2024-02-01"]);
    // Run again: the failed month lands, the other is left as it is.
    let (code, summary, all) = run();
    assert_eq!(code, 0, "{all}");
    assert_eq!(summary["months"][0]["totals_sent"], 1);
    assert_eq!(summary["months"][1]["totals_unchanged"], 1);
}

#[test]
fn reconcile_stale_zeroes_what_the_backend_no_longer_reports() {
    // Waldur holds March 2024 usage the backend does not have: carol on acc-a, and a mem
    // total on acc-c (which has no usage at all).
    let site = site(
        true,
        r#"component_usages:
  - {uuid: 12121212121212121212121212121201, resource: alloc-a, type: cpu, usage: "9.00", billing_period: "2024-03-01"}
  - {uuid: 12121212121212121212121212121202, resource: alloc-c, type: mem, usage: "7.00", billing_period: "2024-03-01"}
user_usages:
  - {component_usage: 12121212121212121212121212121201, username: carol1, usage: "5.00"}
"#,
    );
    let carol = |site: &Site| {
        user_usages(site, RES_A)
            .into_iter()
            .find(|u| u.2 == "carol1")
            .map(|u| u.3)
    };
    let (code, _, all) = load_json(&site, "2024-03-01", "2024-03-31", &[]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(
        carol(&site).as_deref(),
        Some("5.00"),
        "left without --reconcile-stale"
    );

    let (code, stdout, all) = load(
        &site,
        "2024-03-01",
        "2024-03-31",
        &["--reconcile-stale", "--dry-run"],
    );
    assert_eq!(code, 0, "{all}");
    assert!(
        stdout.contains("would send: 2024-03 acc-a: zero stale user usage carol1 cpu (was 5.00)"),
        "{all}"
    );
    assert!(
        stdout.contains("would send: 2024-03 acc-c: set totals mem=0.00"),
        "{all}"
    );

    let before = posts(&site);
    let (code, summary, all) = load_json(&site, "2024-03-01", "2024-03-31", &["--reconcile-stale"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(posts(&site) - before, 2, "{all}");
    assert_eq!(summary["months"][0]["zeroed"], 2, "{all}");
    assert_eq!(carol(&site).as_deref(), Some("0"));
    assert_eq!(
        totals(&site, RES_C),
        [(
            "2024-03-01".to_string(),
            "mem".to_string(),
            "0.00".to_string()
        )]
    );
    // Reconciled once is reconciled.
    let before = posts(&site);
    let (code, _, all) = load_json(&site, "2024-03-01", "2024-03-31", &["--reconcile-stale"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(posts(&site), before, "{all}");
}

#[test]
fn resource_backend_ids_restrict_the_load() {
    let site = site(true, "");
    let (code, summary, all) = load_json(
        &site,
        "2024-01-01",
        "2024-12-31",
        &[
            "--resource-backend-id",
            "acc-b",
            "--resource-backend-id",
            "nope",
            "--skip-user-usage",
        ],
    );
    assert_eq!(code, 0, "{all}");
    assert_eq!(month_counts(&summary, "resources"), 12);
    assert!(totals(&site, RES_A).is_empty());
    assert_eq!(totals(&site, RES_B).len(), 12);
    assert!(user_usages(&site, RES_B).is_empty(), "--skip-user-usage");
    assert!(
        all.contains("no resource of the offering has backend id nope"),
        "{all}"
    );
}

#[test]
fn the_staff_check_refuses_a_token_of_a_non_staff_user() {
    let site = site(false, "");
    let (code, stdout, all) = load(&site, "2024-01-01", "2024-01-31", &[]);
    assert_eq!(code, 2, "{all}");
    assert!(stdout.is_empty(), "{all}");
    let errors: Vec<&str> = all.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{all}");
    assert!(
        errors[0].contains("belongs to 'admin', who is not staff"),
        "{all}"
    );
    assert_eq!(posts(&site), 0);
    // A service provider's token with --no-staff-check is not refused.
    let (code, _, all) = load(&site, "2024-01-01", "2024-01-31", &["--no-staff-check"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(totals(&site, RES_A).len(), 2);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let site = site(true, "");
    let cases = [
        ("2024-13-01", "2024-03-31", OFFERING, "--start-date \"2024-13-01\" is not a valid date"),
        ("2024-01-01", "03/31/2024", OFFERING, "--end-date \"03/31/2024\" is not a date in YYYY-MM-DD form"),
        ("2024-03-31", "2024-01-01", OFFERING, "--end-date 2024-01-01 is before --start-date 2024-03-31"),
        ("2019-01-01", "2024-12-31", OFFERING, "at most 1825 (5 years)"),
        (
            "2024-01-01",
            "2024-01-31",
            "0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f09",
            "no offering in the configuration has waldur_offering_uuid 0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f09",
        ),
    ];
    for (start, end, offering, message) in cases {
        let output = run_tool(&site, offering, start, end, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{all}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
        assert_eq!(errors.len(), 1, "{all}");
        assert!(
            errors[0].starts_with("error: ") && errors[0].contains(message),
            "{all}"
        );
    }
    // The offering UUID may be written dashed: the configured one is found.
    let dashed = "0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f01";
    let output = run_tool(&site, dashed, "2024-01-01", "2024-01-31", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // acc-a: a total and three user usages; acc-b: a total and one user usage.
    assert_eq!(posts(&site), 4 + 2, "{}", text(&output));
}
