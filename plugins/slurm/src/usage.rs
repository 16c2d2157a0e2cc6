//! Usage reports: sacct allocation lines (ReqTRES × Elapsed) summed per account and user for
//! a billing month, converted to Waldur units.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use waldur_plugin_abi::wire::{
    BackendComponents, ComponentUsage, ResourceUsage, UsageReport, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Error, Result};

use crate::limits::ComponentMapper;
use crate::parser::ReportLine;

/// A billing month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn new(year: i32, month: u32) -> Result<Self> {
        if !(1..=12).contains(&month) || !(1..=9999).contains(&year) {
            return Err(Error::invalid_input(format!(
                "there is no billing month {year}-{month}"
            )));
        }
        Ok(Self { year, month })
    }

    /// The month `now` falls in, in `tz`.
    pub fn containing(now: Timestamp, tz: &TimeZone) -> Self {
        let date = now.to_zoned(tz.clone()).date();
        Self {
            year: i32::from(date.year()),
            month: date.month() as u32,
        }
    }

    fn last_day(self) -> i8 {
        // `new` checked the ranges, so the date exists.
        jiff::civil::Date::new(self.year as i16, self.month as i8, 1)
            .map(|d| d.days_in_month())
            .unwrap_or(28)
    }

    /// `YYYY-MM-01T00:00:00` (naive local time, as sacct reads it).
    pub fn start(self) -> String {
        format!("{:04}-{:02}-01T00:00:00", self.year, self.month)
    }

    /// `YYYY-MM-<last day>T23:59:59`.
    pub fn end(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T23:59:59",
            self.year,
            self.month,
            self.last_day()
        )
    }
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

/// Python's `round(x, 2)`: to the nearest hundredth of the exact binary value, ties to even
/// (formatting rounds exactly that way; `(x * 100).round() / 100` does not).
pub fn round2(value: f64) -> f64 {
    let rounded: f64 = format!("{value:.2}").parse().unwrap_or(value);
    rounded + 0.0
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
    fn periods() {
        let p = Period::new(2026, 11).unwrap();
        assert_eq!(
            (p.start().as_str(), p.end().as_str()),
            ("2026-11-01T00:00:00", "2026-11-30T23:59:59")
        );
        assert_eq!(Period::new(2024, 2).unwrap().end(), "2024-02-29T23:59:59");
        assert_eq!(Period::new(2026, 12).unwrap().end(), "2026-12-31T23:59:59");
        assert!(Period::new(2026, 0).is_err());
        assert!(Period::new(2026, 13).is_err());
        let now: Timestamp = "2026-11-30T22:30:00Z".parse().unwrap();
        assert_eq!(
            Period::containing(now, &TimeZone::UTC),
            Period::new(2026, 11).unwrap()
        );
        let tallinn = parse_timezone("Europe/Tallinn");
        assert_eq!(
            Period::containing(now, &tallinn),
            Period::new(2026, 12).unwrap()
        );
    }

    #[test]
    fn round2_is_pythons_round() {
        for (x, want) in [
            (0.125, 0.12),
            (0.375, 0.38),
            (2.675, 2.67),
            (1.005, 1.0),
            (-0.001, 0.0),
            (0.64, 0.64),
        ] {
            assert_eq!(round2(x), want, "{x}");
        }
        assert!(round2(-0.001).is_sign_positive());
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
