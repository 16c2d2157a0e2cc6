//! Usage reports: sacct allocation lines (ReqTRES × Elapsed) summed per account and user for
//! a billing month, converted to Waldur units.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use waldur_plugin_abi::wire::{
    BackendComponents, ComponentUsage, ResourceUsage, UsageReport, TOTAL_ACCOUNT_USAGE,
};

use crate::limits::ComponentMapper;
use crate::parser::ReportLine;

pub use waldur_plugin_abi::sdk::billing::{round2, Period};

/// The billing month `now` falls in, in `tz`.
pub fn month_containing(now: Timestamp, tz: &TimeZone) -> Period {
    let date = now.to_zoned(tz.clone()).date();
    let (year, month) = (i32::from(date.year()), date.month() as u32);
    Period { year, month }
}

/// Parses the agent's `timezone`. Like the reference, an empty or unknown zone means the
/// system's local time (an unknown one is also logged).
pub fn parse_timezone(name: &str) -> TimeZone {
    let name = name.trim();
    if name.is_empty() {
        return TimeZone::system();
    }
    TimeZone::get(name).unwrap_or_else(|e| {
        log::warn!("unknown timezone {name:?} ({e}); billing months follow the system time zone");
        TimeZone::system()
    })
}

/// Raw usage in SLURM units: account -> user -> TRES -> TRES·minutes, summed line by line.
pub type RawUsage = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

/// Sums the lines per account and user (only the TRES in `line.tres_usage`'s filter).
pub fn sum_lines(lines: &[ReportLine], reported: &std::collections::BTreeSet<String>) -> RawUsage {
    let mut raw = RawUsage::new();
    for line in lines {
        let user = raw
            .entry(line.account.clone())
            .or_default()
            .entry(line.user.clone())
            .or_default();
        for (tres, value) in line.tres_usage(reported) {
            *user.entry(tres).or_insert(0.0) += value;
        }
    }
    raw
}

/// One user's (or the total's) SLURM usage in Waldur units: `round(v / unit_factor, 2)`, or
/// with a component mapping the reverse conversion rounded to an integer.
fn convert(
    usage: &BTreeMap<String, f64>,
    components: &BackendComponents,
    mapper: &ComponentMapper,
) -> ComponentUsage {
    if mapper.is_passthrough() {
        return usage
            .iter()
            .map(|(tres, value)| {
                let factor = components.get(tres).map_or(1.0, |c| c.unit_factor());
                (tres.clone(), round2(value / factor))
            })
            .collect();
    }
    mapper
        .usage_from_target(usage)
        .into_iter()
        .map(|(component, value)| (component, value.round_ties_even() + 0.0))
        .collect()
}

/// The usage report: per account, every user's usage in Waldur units and
/// `TOTAL_ACCOUNT_USAGE`, the sum of those ROUNDED per-user values (the reference rounds the
/// raw total instead, which can differ from what Waldur receives per user by 0.01). Accounts
/// without lines are absent.
pub fn to_report(
    raw: &RawUsage,
    components: &BackendComponents,
    mapper: &ComponentMapper,
) -> UsageReport {
    raw.iter()
        .map(|(account, users)| {
            let mut usage = ResourceUsage::new();
            let mut total = ComponentUsage::new();
            for (user, values) in users {
                let converted = convert(values, components, mapper);
                for (component, value) in &converted {
                    *total.entry(component.clone()).or_insert(0.0) += value;
                }
                usage.insert(user.clone(), converted);
            }
            // Each addend has at most two decimals; rounding drops float noise (0.1 + 0.2).
            total.values_mut().for_each(|v| *v = round2(*v));
            usage.insert(TOTAL_ACCOUNT_USAGE.to_string(), total);
            (account.clone(), usage)
        })
        .collect()
}

/// `{"TOTAL_ACCOUNT_USAGE": {<every component>: 0}}`: an account without usage lines.
pub fn zero_usage(components: &BackendComponents) -> ResourceUsage {
    let zero: ComponentUsage = components.keys().map(|c| (c.clone(), 0.0)).collect();
    ResourceUsage::from([(TOTAL_ACCOUNT_USAGE.to_string(), zero)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::report_lines;
    use std::collections::BTreeSet;

    fn components(json: serde_json::Value) -> BackendComponents {
        serde_json::from_value(json).unwrap()
    }

    fn golden() -> BackendComponents {
        components(serde_json::json!({
            "cpu": {"accounting_type": "usage", "limit": 10, "unit_factor": 60000},
            "mem": {"accounting_type": "usage", "limit": 10, "unit_factor": 61440},
            "gres/gpu": {"accounting_type": "limit", "unit_factor": 60},
        }))
    }

    fn report(output: &str, comps: &BackendComponents) -> UsageReport {
        let mapper = ComponentMapper::new(comps).unwrap();
        let mut reported: BTreeSet<String> = comps.keys().cloned().collect();
        reported.extend(mapper.target_names().iter().cloned());
        to_report(&sum_lines(&report_lines(output), &reported), comps, &mapper)
    }

    #[test]
    fn the_month_follows_the_timezone() {
        let now: Timestamp = "2026-11-30T22:30:00Z".parse().unwrap();
        assert_eq!(
            month_containing(now, &TimeZone::UTC),
            Period::new(2026, 11).unwrap()
        );
        let tallinn = parse_timezone("Europe/Tallinn");
        assert_eq!(
            month_containing(now, &tallinn),
            Period::new(2026, 12).unwrap()
        );
    }

    #[test]
    fn the_worked_example_of_the_reference() {
        let report = report(
            "hpc_alloc-1|billing=64,cpu=64,gres/gpu=4,mem=524288M,node=1|10:00:00|alice\n",
            &golden(),
        );
        let alice = &report["hpc_alloc-1"]["alice"];
        assert_eq!(alice["cpu"], 0.64);
        assert_eq!(alice["gres/gpu"], 40.0);
        assert_eq!(alice["mem"], 5120.0);
        assert_eq!(&report["hpc_alloc-1"][TOTAL_ACCOUNT_USAGE], alice);
    }

    #[test]
    fn lines_are_summed_per_account_and_user() {
        let output = "a|cpu=1|01:00:00|alice\na|cpu=2|00:30:00|alice\na|cpu=4,gres/gpu=1|00:15:00|bob\nb|cpu=1|00:01:00|alice\n";
        let comps = components(
            serde_json::json!({"cpu": {"unit_factor": 60}, "gres/gpu": {"unit_factor": 60}}),
        );
        let report = report(output, &comps);
        assert_eq!(
            report["a"]["alice"],
            ComponentUsage::from([("cpu".into(), 2.0)])
        );
        assert_eq!(
            report["a"]["bob"],
            ComponentUsage::from([("cpu".into(), 1.0), ("gres/gpu".into(), 0.25)])
        );
        assert_eq!(
            report["a"][TOTAL_ACCOUNT_USAGE],
            ComponentUsage::from([("cpu".into(), 3.0), ("gres/gpu".into(), 0.25)])
        );
        assert_eq!(report["b"]["alice"]["cpu"], round2(1.0 / 60.0));
        assert_eq!(report.len(), 2);
    }

    #[test]
    fn bug8_total_account_usage_is_the_sum_of_rounded_user_values() {
        // Three users with 0.5 cpu-minutes each (30 s at 1 cpu), unit_factor 100:
        // 0.005 per user rounds to 0.01 (0.005 is 0.005000000000000000104 in binary), so
        // the users sum to 0.03 where the reference's rounded raw total is 0.01 (0.015 is
        // below the tie in binary).
        let output = "a|cpu=1|00:00:30|u1\na|cpu=1|00:00:30|u2\na|cpu=1|00:00:30|u3\n";
        let comps = components(serde_json::json!({"cpu": {"unit_factor": 100}}));
        let report = report(output, &comps);
        let users: f64 = ["u1", "u2", "u3"]
            .iter()
            .map(|u| report["a"][*u]["cpu"])
            .sum();
        assert_eq!(report["a"]["u1"]["cpu"], 0.01);
        assert_eq!(report["a"][TOTAL_ACCOUNT_USAGE]["cpu"], round2(users));
        assert_eq!(report["a"][TOTAL_ACCOUNT_USAGE]["cpu"], 0.03);
        // What the reference sends as the total instead:
        assert_eq!(round2(1.5 / 100.0), 0.01);
    }

    #[test]
    fn mapped_usage_is_rounded_to_integers() {
        let comps = components(serde_json::json!({
            "node_hours": {"accounting_type": "limit",
                           "target_components": {"cpu": {"factor": 64}}}
        }));
        let report = report("a|cpu=64|02:30:00|alice\na|cpu=32|01:00:00|bob\n", &comps);
        assert_eq!(report["a"]["alice"]["node_hours"], 150.0);
        assert_eq!(report["a"]["bob"]["node_hours"], 30.0);
        assert_eq!(report["a"][TOTAL_ACCOUNT_USAGE]["node_hours"], 180.0);
    }

    #[test]
    fn zero_usage_names_every_component() {
        let usage = zero_usage(&golden());
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[TOTAL_ACCOUNT_USAGE].len(), 3);
        assert!(usage[TOTAL_ACCOUNT_USAGE].values().all(|v| *v == 0.0));
    }
}
