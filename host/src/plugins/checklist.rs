//! The plugin checklist `waldur-agent plugins check` runs against a live instance: the
//! contract points that, when broken, silently corrupt what reaches Waldur.

use std::fmt;

use waldur_plugin_abi::wire::{AccountingType, WaldurResource, TOTAL_ACCOUNT_USAGE};

use super::Backend;

/// How far a total may be from the sum of per-user values (both are 2-decimal numbers).
const SUM_TOLERANCE: f64 = 0.005;

/// At most this many existing accounts are used for the usage check.
const USAGE_SAMPLE: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Skip,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "SKIP",
        };
        write!(f, "{tag}  {}", self.check)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

fn outcome(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Outcome {
    Outcome {
        check,
        verdict,
        detail: detail.into(),
    }
}

/// Runs every check; none of them changes the backend.
pub fn run(backend: &Backend) -> Vec<Outcome> {
    vec![
        check_ping(backend),
        check_diagnostics(backend),
        check_absent_resource(backend),
        check_usage_report(backend),
        check_limit_conversion(backend),
    ]
}

fn check_ping(backend: &Backend) -> Outcome {
    const CHECK: &str = "ping answers true";
    match backend.ping(false) {
        Ok(true) => outcome(CHECK, Verdict::Pass, ""),
        Ok(false) => outcome(CHECK, Verdict::Fail, "the backend answered false"),
        Err(e) => outcome(CHECK, Verdict::Fail, e.to_string()),
    }
}

fn check_diagnostics(backend: &Backend) -> Outcome {
    const CHECK: &str = "diagnostics answer";
    match backend.diagnostics() {
        Ok(true) => outcome(CHECK, Verdict::Pass, ""),
        Ok(false) => outcome(CHECK, Verdict::Fail, "the backend reports itself unhealthy"),
        Err(e) => outcome(CHECK, Verdict::Fail, e.to_string()),
    }
}

fn check_absent_resource(backend: &Backend) -> Outcome {
    const CHECK: &str = "get_resource of an absent id is None";
    let absent = format!("waldur-agent-check-absent-{}", std::process::id());
    match backend.client_get_resource(&absent) {
        Ok(None) => outcome(CHECK, Verdict::Pass, ""),
        Ok(Some(found)) => outcome(
            CHECK,
            Verdict::Fail,
            format!(
                "asked for '{absent}', got an account named '{}'",
                found.name
            ),
        ),
        Err(e) if e.is_not_implemented() => outcome(
            CHECK,
            Verdict::Skip,
            "the plugin has no client_get_resource (it overrides the generic algorithms)",
        ),
        Err(e) => outcome(CHECK, Verdict::Fail, e.to_string()),
    }
}

fn check_usage_report(backend: &Backend) -> Outcome {
    const CHECK: &str = "usage report: totals equal the per-user sums, only configured components";
    let ids: Vec<String> = match backend.list_resources() {
        Ok(list) => list
            .into_iter()
            .map(|r| r.backend_id)
            .filter(|id| !id.is_empty())
            .take(USAGE_SAMPLE)
            .collect(),
        Err(e) if e.is_not_implemented() => Vec::new(),
        Err(e) => return outcome(CHECK, Verdict::Fail, format!("listing accounts: {e}")),
    };
    let report = match backend.get_usage_report(&ids) {
        Ok(report) => report,
        Err(e) => return outcome(CHECK, Verdict::Fail, e.to_string()),
    };
    let components = backend.components();
    let mut problems = Vec::new();
    for (id, usage) in &report {
        let Some(total) = usage.get(TOTAL_ACCOUNT_USAGE) else {
            problems.push(format!("{id}: no {TOTAL_ACCOUNT_USAGE}"));
            continue;
        };
        for (who, values) in usage {
            for key in values.keys().filter(|k| !components.contains_key(*k)) {
                problems.push(format!(
                    "{id}: {who} reports component '{key}', which is not configured"
                ));
            }
        }
        let users: Vec<_> = usage
            .iter()
            .filter(|(k, _)| *k != TOTAL_ACCOUNT_USAGE)
            .collect();
        if users.is_empty() {
            continue;
        }
        for (component, total_value) in total {
            let sum: f64 = users.iter().filter_map(|(_, v)| v.get(component)).sum();
            if (sum - total_value).abs() > SUM_TOLERANCE {
                problems.push(format!(
                    "{id}: {component} total {total_value} but the users sum to {sum:.2}"
                ));
            }
        }
    }
    match (problems.is_empty(), ids.len()) {
        (true, 0) => outcome(
            CHECK,
            Verdict::Pass,
            "no accounts yet; the empty report is well-formed",
        ),
        (true, n) => outcome(CHECK, Verdict::Pass, format!("{n} account(s) checked")),
        (false, _) => outcome(CHECK, Verdict::Fail, problems.join("; ")),
    }
}

fn check_limit_conversion(backend: &Backend) -> Outcome {
    const CHECK: &str = "limits convert with unit_factor (Waldur x factor = backend)";
    const LIMIT: f64 = 10.0;
    let limited: Vec<(&String, f64)> = backend
        .components()
        .iter()
        .filter(|(_, c)| c.accounting_type == AccountingType::Limit)
        .map(|(name, c)| (name, c.unit_factor()))
        .collect();
    if limited.is_empty() {
        return outcome(
            CHECK,
            Verdict::Skip,
            "no component has accounting_type: limit",
        );
    }
    let resource = WaldurResource {
        uuid: "00000000000000000000000000000000".to_string(),
        name: "waldur-agent-check".to_string(),
        slug: "waldur-agent-check".to_string(),
        limits: limited
            .iter()
            .map(|(name, _)| ((*name).clone(), LIMIT))
            .collect(),
        ..Default::default()
    };
    let collected = match backend.collect_resource_limits(&resource) {
        Ok(collected) => collected,
        Err(e) => return outcome(CHECK, Verdict::Fail, e.to_string()),
    };
    let mut problems = Vec::new();
    for (name, factor) in &limited {
        let expected = (LIMIT * factor).trunc() as i64;
        match collected.backend_limits.get(*name) {
            Some(&value) if value == expected => {}
            Some(&value) => problems.push(format!(
                "{name}: Waldur limit {LIMIT} with unit_factor {factor} gave backend limit {value}, expected {expected}"
            )),
            None => problems.push(format!("{name}: missing from the backend limits")),
        }
        match collected.waldur_limits.get(*name) {
            Some(&value) if (value - LIMIT).abs() < 1e-9 => {}
            Some(&value) => problems.push(format!(
                "{name}: Waldur limit came back as {value}, expected {LIMIT}"
            )),
            None => problems.push(format!("{name}: missing from the Waldur limits")),
        }
    }
    if problems.is_empty() {
        outcome(
            CHECK,
            Verdict::Pass,
            format!("{} component(s)", limited.len()),
        )
    } else {
        outcome(CHECK, Verdict::Fail, problems.join("; "))
    }
}
