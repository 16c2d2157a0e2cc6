//! What one resource's month should hold in Waldur, decided from the backend's report and
//! what Waldur already has: the pure half of the loader, so its rules are tested alone.

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{ComponentUsage, ResourceUsage, TOTAL_ACCOUNT_USAGE};

use crate::modes::usage::{round2, total_usage, ExistingUsage};
use crate::waldur::ComponentUserUsage;

/// The totals to set for one resource and month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WantedTotals {
    /// Component -> amount: the backend's non-zero amounts, plus 0 for each stale component.
    pub amounts: BTreeMap<String, f64>,
    /// Components set to 0 because Waldur has a non-zero total the backend no longer reports.
    pub zeroed: Vec<String>,
    /// Components the backend reported that the offering does not have (left out).
    pub unknown: Vec<String>,
}

/// The totals Waldur should hold. Zero amounts are not sent (as the reference: a month
/// without use creates no records); with `reconcile`, a component Waldur holds as non-zero
/// that the backend reports as zero or not at all is set to 0.
pub fn wanted_totals(
    reported: Option<&ComponentUsage>,
    existing: &[ExistingUsage],
    components: &BTreeSet<String>,
    reconcile: bool,
) -> WantedTotals {
    let total = total_usage(&reported.cloned().unwrap_or_default(), components);
    let mut amounts: BTreeMap<String, f64> = total
        .amounts
        .into_iter()
        .filter(|(_, amount)| *amount > 0.0)
        .collect();
    let mut zeroed = Vec::new();
    if reconcile {
        for held in existing {
            let stale = components.contains(&held.component)
                && round2(held.usage) != 0.0
                && !amounts.contains_key(&held.component);
            if stale {
                amounts.insert(held.component.clone(), 0.0);
                zeroed.push(held.component.clone());
            }
        }
    }
    WantedTotals {
        amounts,
        zeroed,
        unknown: total.unknown,
    }
}

/// `(username, component)` -> rounded amount of every non-zero per-user usage the backend
/// reported for the offering's components.
pub fn wanted_user_usages(
    usage: Option<&ResourceUsage>,
    components: &BTreeSet<String>,
) -> BTreeMap<(String, String), f64> {
    usage
        .into_iter()
        .flatten()
        .filter(|(user, _)| user.as_str() != TOTAL_ACCOUNT_USAGE)
        .flat_map(|(user, values)| {
            values
                .iter()
                .filter(|(component, _)| components.contains(*component))
                .map(|(component, value)| ((user.clone(), component.clone()), round2(*value)))
        })
        .filter(|(_, value)| *value > 0.0)
        .collect()
}

/// Waldur's non-zero per-user usages of the offering's components that the backend no longer
/// reports (`--reconcile-stale` sets them to 0), e.g. usage first booked into the wrong month.
pub fn stale_user_usages<'a>(
    held: &'a [ComponentUserUsage],
    wanted: &BTreeMap<(String, String), f64>,
    components: &BTreeSet<String>,
) -> Vec<&'a ComponentUserUsage> {
    held.iter()
        .filter(|h| components.contains(&h.component_type) && round2(h.usage) != 0.0)
        .filter(|h| !wanted.contains_key(&(h.username.clone(), h.component_type.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components() -> BTreeSet<String> {
        ["cpu".to_string(), "mem".to_string()].into()
    }

    fn held(component: &str, usage: f64) -> ExistingUsage {
        ExistingUsage {
            uuid: format!("{component}-1"),
            component: component.into(),
            usage,
        }
    }

    fn usage(pairs: &[(&str, f64)]) -> ComponentUsage {
        pairs.iter().map(|(c, v)| (c.to_string(), *v)).collect()
    }

    #[test]
    fn zero_totals_are_not_sent_and_unknown_components_are_left_out() {
        let reported = usage(&[("cpu", 1.005), ("mem", 0.0), ("gpu", 4.0)]);
        let wanted = wanted_totals(Some(&reported), &[held("mem", 3.0)], &components(), false);
        assert_eq!(wanted.amounts, BTreeMap::from([("cpu".into(), 1.0)]));
        assert!(wanted.zeroed.is_empty());
        assert_eq!(wanted.unknown, ["gpu"]);
        assert!(
            wanted_totals(None, &[held("cpu", 2.0)], &components(), false)
                .amounts
                .is_empty()
        );
    }

    #[test]
    fn reconciling_zeroes_the_totals_the_backend_no_longer_has() {
        let reported = usage(&[("cpu", 2.0), ("mem", 0.0)]);
        let existing = [held("cpu", 5.0), held("mem", 3.0), held("gpu", 1.0)];
        let wanted = wanted_totals(Some(&reported), &existing, &components(), true);
        assert_eq!(
            wanted.amounts,
            BTreeMap::from([("cpu".into(), 2.0), ("mem".into(), 0.0)])
        );
        assert_eq!(wanted.zeroed, ["mem"]);
        // No backend data at all: every non-zero total goes to 0; zero ones are left alone.
        let wanted = wanted_totals(
            None,
            &[held("cpu", 5.0), held("mem", 0.0)],
            &components(),
            true,
        );
        assert_eq!(wanted.amounts, BTreeMap::from([("cpu".into(), 0.0)]));
        assert_eq!(wanted.zeroed, ["cpu"]);
    }

    #[test]
    fn user_usages_are_rounded_non_zero_and_of_known_components() {
        let report = ResourceUsage::from([
            (TOTAL_ACCOUNT_USAGE.to_string(), usage(&[("cpu", 9.0)])),
            (
                "alice".to_string(),
                usage(&[("cpu", 1.234), ("mem", 0.001), ("gpu", 1.0)]),
            ),
            ("bob".to_string(), usage(&[("cpu", 0.0)])),
        ]);
        assert_eq!(
            wanted_user_usages(Some(&report), &components()),
            BTreeMap::from([(("alice".into(), "cpu".into()), 1.23)])
        );
        assert!(wanted_user_usages(None, &components()).is_empty());
    }

    #[test]
    fn stale_user_usages_are_non_zero_and_no_longer_reported() {
        let record = |user: &str, component: &str, usage: f64| ComponentUserUsage {
            username: user.into(),
            component_type: component.into(),
            usage,
            ..Default::default()
        };
        let held = [
            record("alice", "cpu", 1.0),
            record("bob", "cpu", 2.0),
            record("bob", "mem", 0.0),
            record("carol", "gpu", 3.0),
        ];
        let wanted = BTreeMap::from([(("alice".to_string(), "cpu".to_string()), 1.0)]);
        let stale: Vec<&str> = stale_user_usages(&held, &wanted, &components())
            .iter()
            .map(|h| h.username.as_str())
            .collect();
        assert_eq!(stale, ["bob"]);
    }
}
