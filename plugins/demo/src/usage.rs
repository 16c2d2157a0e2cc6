//! Usage: read from files an operator or a test drops into the state directory, converted to
//! the agent's usage-report contract.
//!
//! `<state_dir>/usage/<YYYY-MM>/<account>.json` holds
//! `{"<username>": {"<component>": <number in backend units>}}` for that billing month.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use waldur_plugin_abi::wire::{
    BackendComponents, ComponentUsage, ResourceUsage, UsageReport, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Error, Result};

use crate::state::check_account_name;

/// One usage file: backend-unit values by username, then by component.
pub type UsageFile = BTreeMap<String, BTreeMap<String, f64>>;

pub use waldur_plugin_abi::sdk::billing::{round2, Period};

/// The billing month `now` falls in, in `tz`: a report run at 00:30 on the 1st in
/// Europe/Tallinn belongs to the new month even though it is still the previous one in UTC.
pub fn month_containing(now: Timestamp, tz: &TimeZone) -> Period {
    let date = now.to_zoned(tz.clone()).date();
    let (year, month) = (i32::from(date.year()), date.month() as u32);
    Period { year, month }
}

/// Parses the agent's `timezone` setting. Empty means UTC.
pub fn parse_timezone(name: &str) -> Result<TimeZone> {
    if name.trim().is_empty() {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name.trim())
        .map_err(|e| Error::invalid_input(format!("demo: unknown timezone {name:?}: {e}")))
}

pub fn usage_path(usage_dir: &Path, period: Period, account: &str) -> Result<PathBuf> {
    check_account_name(account)?;
    Ok(usage_dir
        .join(period.to_string())
        .join(format!("{account}.json")))
}

/// Reads one usage file; `None` when the account has no usage that month.
pub fn read_usage_file(path: &Path) -> Result<Option<UsageFile>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::backend(format!(
                "demo: cannot read usage file {}: {e}",
                path.display()
            )))
        }
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        Error::backend(format!(
            "demo: usage file {} is invalid (expected {{\"<user>\": {{\"<component>\": <number>}}}}): {e}",
            path.display()
        ))
    })
}

/// One account's usage in Waldur units.
///
/// Only configured components are reported (others in the file are ignored) and every
/// configured component is present (0 when the file lacks it). `TOTAL_ACCOUNT_USAGE` is the
/// sum of the ROUNDED per-user values, so it always equals what Waldur receives per user; the
/// reference rounds the raw total instead, which can differ from the users' sum by 0.01.
pub fn to_waldur(file: Option<&UsageFile>, components: &BackendComponents) -> ResourceUsage {
    let mut total: ComponentUsage = components.keys().map(|c| (c.clone(), 0.0)).collect();
    let mut usage = ResourceUsage::new();
    for (user, values) in file.into_iter().flatten() {
        if user == TOTAL_ACCOUNT_USAGE {
            // The total is computed, never taken from the file.
            log::warn!("demo: ignoring a {TOTAL_ACCOUNT_USAGE} entry in a usage file");
            continue;
        }
        let per_user: ComponentUsage = components
            .iter()
            .map(|(name, component)| {
                let raw = values.get(name).copied().unwrap_or(0.0);
                (name.clone(), round2(raw / component.unit_factor()))
            })
            .collect();
        for (name, value) in &per_user {
            *total.entry(name.clone()).or_default() += value;
        }
        usage.insert(user.clone(), per_user);
    }
    // Each addend has 2 decimals; rounding again only removes binary noise (0.1 + 0.2).
    total.values_mut().for_each(|v| *v = round2(*v));
    usage.insert(TOTAL_ACCOUNT_USAGE.to_string(), total);
    usage
}

/// The usage report of `accounts` for `period`. Every requested account gets an entry: one
/// without a usage file has all-zero totals (a deleted account's past months still report).
pub fn report(
    usage_dir: &Path,
    period: Period,
    accounts: &[String],
    components: &BackendComponents,
) -> Result<UsageReport> {
    accounts
        .iter()
        .map(|account| {
            let file = read_usage_file(&usage_path(usage_dir, period, account)?)?;
            Ok((account.clone(), to_waldur(file.as_ref(), components)))
        })
        .collect()
}

/// The raw records behind a report, in backend units and unfiltered (the client's
/// `get_usage_report`): one `{account, user, period, usage}` object per user.
pub fn raw_records(
    usage_dir: &Path,
    period: Period,
    accounts: &[String],
) -> Result<Vec<serde_json::Value>> {
    let mut records = Vec::new();
    for account in accounts {
        let path = usage_path(usage_dir, period, account)?;
        for (user, usage) in read_usage_file(&path)?.unwrap_or_default() {
            records.push(serde_json::json!({
                "account": account,
                "user": user,
                "period": period.to_string(),
                "usage": usage,
            }));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::wire::BackendComponent;

    fn components(factors: &[(&str, f64)]) -> BackendComponents {
        factors
            .iter()
            .map(|(name, factor)| {
                (
                    name.to_string(),
                    BackendComponent {
                        unit_factor: Some(*factor),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    fn file(json: serde_json::Value) -> UsageFile {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn round2_matches_python() {
        for (x, want) in [
            (0.125, 0.12),
            (0.375, 0.38),
            (2.675, 2.67),
            (1.005, 1.0),
            (12.345, 12.35),
            (-0.001, 0.0),
            (40.0, 40.0),
        ] {
            assert_eq!(round2(x), want, "round2({x})");
        }
        assert!(round2(-0.001).is_sign_positive());
    }

    #[test]
    fn converts_rounds_and_totals_the_rounded_values() {
        let comps = components(&[("cpu", 60.0), ("gpu", 1.0)]);
        let usage = to_waldur(
            Some(&file(serde_json::json!({
                "alice": {"cpu": 90, "gpu": 1.234},
                "bob": {"cpu": 6000, "gpu": 2.001},
            }))),
            &comps,
        );
        assert_eq!(usage["alice"]["cpu"], 1.5);
        assert_eq!(usage["bob"]["cpu"], 100.0);
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE]["cpu"], 101.5);
        assert_eq!(usage["alice"]["gpu"], 1.23);
        assert_eq!(usage["bob"]["gpu"], 2.0);
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE]["gpu"], 3.23);
    }

    #[test]
    fn total_is_the_sum_of_rounded_users_where_the_reference_is_not() {
        let comps = components(&[("cpu", 1.0)]);
        // Raw total 0.008 + 0.008 + 0.008 = 0.024 -> 0.02; rounded users 0.01 x 3 = 0.03.
        let usage = to_waldur(
            Some(&file(serde_json::json!({
                "a": {"cpu": 0.008}, "b": {"cpu": 0.008}, "c": {"cpu": 0.008},
            }))),
            &comps,
        );
        assert_eq!(usage["a"]["cpu"], 0.01);
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE]["cpu"], 0.03);
        // Float noise of the sum is rounded away: 0.1 + 0.2 is 0.30000000000000004.
        let usage = to_waldur(
            Some(&file(
                serde_json::json!({"a": {"cpu": 0.1}, "b": {"cpu": 0.2}}),
            )),
            &comps,
        );
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE]["cpu"], 0.3);
    }

    #[test]
    fn unknown_components_are_ignored_and_missing_ones_are_zero() {
        let comps = components(&[("cpu", 60.0), ("mem", 1024.0)]);
        let usage = to_waldur(
            Some(&file(serde_json::json!({
                "alice": {"cpu": 600, "storage": 5},
                TOTAL_ACCOUNT_USAGE: {"cpu": 1e9},
            }))),
            &comps,
        );
        assert_eq!(usage.len(), 2, "{usage:?}");
        assert_eq!(
            usage["alice"],
            ComponentUsage::from([("cpu".into(), 10.0), ("mem".into(), 0.0)])
        );
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE], usage["alice"]);
    }

    #[test]
    fn accounts_without_a_file_report_zero_totals() {
        let dir = tempfile::tempdir().unwrap();
        let comps = components(&[("cpu", 60.0)]);
        let period = Period::new(2026, 11).unwrap();
        let month = dir.path().join("2026-11");
        fs::create_dir_all(&month).unwrap();
        fs::write(month.join("a.json"), r#"{"alice": {"cpu": 6000}}"#).unwrap();
        let report = report(dir.path(), period, &["a".into(), "b".into()], &comps).unwrap();
        assert_eq!(report["a"]["alice"]["cpu"], 100.0);
        assert_eq!(report["a"][TOTAL_ACCOUNT_USAGE]["cpu"], 100.0);
        assert_eq!(
            report["b"],
            ResourceUsage::from([(
                TOTAL_ACCOUNT_USAGE.to_string(),
                ComponentUsage::from([("cpu".into(), 0.0)])
            )])
        );
        let raw = raw_records(dir.path(), period, &["a".into(), "b".into()]).unwrap();
        assert_eq!(
            raw,
            vec![serde_json::json!({
                "account": "a", "user": "alice", "period": "2026-11", "usage": {"cpu": 6000.0}
            })]
        );
    }

    #[test]
    fn invalid_files_and_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let period = Period::new(2026, 1).unwrap();
        let month = dir.path().join("2026-01");
        fs::create_dir_all(&month).unwrap();
        fs::write(month.join("a.json"), r#"{"alice": {"cpu": "lots"}}"#).unwrap();
        let err = report(dir.path(), period, &["a".into()], &components(&[])).unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::BACKEND);
        assert!(err.message.contains("a.json is invalid"), "{}", err.message);
        assert!(report(dir.path(), period, &["../x".into()], &components(&[])).is_err());
        assert!(Period::new(2026, 13).is_err());
    }

    #[test]
    fn the_month_follows_the_timezone() {
        // 2026-11-30T22:30Z is already December 1st in Tallinn (UTC+2).
        let now: Timestamp = "2026-11-30T22:30:00Z".parse().unwrap();
        assert_eq!(
            month_containing(now, &TimeZone::UTC),
            Period::new(2026, 11).unwrap()
        );
        let tallinn = parse_timezone("Europe/Tallinn").unwrap();
        assert_eq!(
            month_containing(now, &tallinn),
            Period::new(2026, 12).unwrap()
        );
        assert_eq!(parse_timezone("").unwrap(), TimeZone::UTC);
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
