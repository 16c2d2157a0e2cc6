//! The rules of submitting one resource's usage for one period (reference §3.3): what is sent,
//! when nothing needs sending, and when a report must be refused as an anomaly.

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::OfferingUser;

use crate::waldur::{ComponentUsage, ComponentUserUsage, SetUsageRequest, UsageAmount, UserUsage};

/// Python's `round(x, 2)`, as the plugins round (one home: the SDK).
pub use waldur_plugin_abi::sdk::billing::round2;

/// The decimal string Waldur receives (`f"{x:.2f}"`).
pub fn amount(value: f64) -> String {
    format!("{value:.2}")
}

/// The total usage to submit, in Waldur units.
#[derive(Debug, Clone, PartialEq)]
pub struct TotalUsage {
    /// Rounded amounts of the components the Waldur offering has.
    pub amounts: BTreeMap<String, f64>,
    /// Components the plugin reported that the offering does not have (dropped, warned).
    pub unknown: Vec<String>,
}

/// Rounds the plugin's totals and keeps only the offering's components.
pub fn total_usage(
    totals: &BTreeMap<String, f64>,
    offering_components: &BTreeSet<String>,
) -> TotalUsage {
    let (known, unknown): (Vec<_>, Vec<_>) = totals
        .iter()
        .partition(|(component, _)| offering_components.contains(*component));
    TotalUsage {
        amounts: known
            .into_iter()
            .map(|(c, v)| (c.clone(), round2(*v)))
            .collect(),
        unknown: unknown.into_iter().map(|(c, _)| c.clone()).collect(),
    }
}

/// The C3 body setting `amounts` (formatted with [`amount`]) of a resource at `date`.
pub fn set_usage_request(
    resource_uuid: &str,
    amounts: &BTreeMap<String, f64>,
    date: String,
) -> SetUsageRequest {
    SetUsageRequest {
        usages: amounts
            .iter()
            .map(|(c, v)| UsageAmount {
                component_type: c.clone(),
                amount: amount(*v),
            })
            .collect(),
        resource: resource_uuid.to_string(),
        date,
    }
}

/// An existing `ComponentUsage` of the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingUsage {
    pub uuid: String,
    pub component: String,
    pub usage: f64,
}

impl From<&ComponentUsage> for ExistingUsage {
    fn from(usage: &ComponentUsage) -> Self {
        ExistingUsage {
            uuid: usage.uuid.clone(),
            component: usage.component_type.clone(),
            usage: usage.usage,
        }
    }
}

fn is_close(a: f64, b: f64) -> bool {
    // math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    (a - b).abs() <= f64::max(1e-9 * f64::max(a.abs(), b.abs()), 1e-6)
}

/// True when Waldur already has exactly these amounts for the period: nothing to send.
/// The sets of component types must match too, so a component that appeared or vanished
/// is still reported.
pub fn is_unchanged(
    new: &BTreeMap<String, f64>,
    existing: &[ExistingUsage],
    offering_components: &BTreeSet<String>,
) -> bool {
    let relevant: Vec<&ExistingUsage> = existing
        .iter()
        .filter(|e| offering_components.contains(&e.component))
        .collect();
    let existing_types: BTreeSet<&str> = relevant.iter().map(|e| e.component.as_str()).collect();
    let new_types: BTreeSet<&str> = new.keys().map(String::as_str).collect();
    existing_types == new_types
        && new.iter().all(|(component, value)| {
            relevant
                .iter()
                .filter(|e| &e.component == component)
                .all(|e| is_close(e.usage, *value))
        })
}

/// True when Waldur's per-user record already holds what `wanted` would send: the same amount
/// at two decimals and the same offering-user link (a record sent before its offering user
/// existed gets the link once it does).
pub fn user_usage_held(held: Option<&ComponentUserUsage>, wanted: &UserUsage) -> bool {
    held.is_some_and(|held| {
        amount(held.usage) == amount(wanted.usage.parse().unwrap_or(f64::NAN))
            && held.links_as(wanted.user.as_deref())
    })
}

/// Username -> offering-user URL, for linking per-user usages (users without a username
/// cannot have usage reported under them).
pub fn offering_user_urls(users: &[OfferingUser]) -> BTreeMap<String, String> {
    users
        .iter()
        .filter_map(|u| {
            u.username
                .clone()
                .filter(|n| !n.is_empty())
                .map(|n| (n, u.url.clone()))
        })
        .collect()
}

/// Reasons to refuse a report for backends that cannot decrease usage: a component with more
/// than one record, or a new amount below what Waldur has for the period.
pub fn anomalies(new: &BTreeMap<String, f64>, existing: &[ExistingUsage]) -> Vec<String> {
    let mut found = Vec::new();
    for (component, value) in new {
        let records: Vec<&ExistingUsage> = existing
            .iter()
            .filter(|e| &e.component == component)
            .collect();
        match records.as_slice() {
            [] => {}
            [one] if *value + 1e-9 < one.usage => found.push(format!(
                "{component}: new usage {} is below the reported {}",
                amount(*value),
                amount(one.usage)
            )),
            [_] => {}
            many => found.push(format!(
                "{component}: {} usage records for one period",
                many.len()
            )),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn existing(component: &str, usage: f64) -> ExistingUsage {
        ExistingUsage {
            uuid: format!("{component}-uuid"),
            component: component.into(),
            usage,
        }
    }

    #[test]
    fn rounding_matches_python() {
        assert_eq!(amount(2.675), "2.67"); // 2.675 is 2.67499999... in binary, as in Python
        assert_eq!(amount(0.125), "0.12"); // exact tie: to even
        assert_eq!(amount(1.0), "1.00");
        assert_eq!(round2(12.3456), 12.35);
    }

    #[test]
    fn totals_keep_only_offering_components_rounded() {
        let totals = BTreeMap::from([("cpu".to_string(), 1.005), ("disk".to_string(), 3.0)]);
        let total = total_usage(&totals, &components(&["cpu", "mem"]));
        assert_eq!(total.amounts, BTreeMap::from([("cpu".to_string(), 1.0)]));
        assert_eq!(total.unknown, ["disk"]);
    }

    #[test]
    fn unchanged_needs_equal_types_and_close_amounts() {
        let offering = components(&["cpu", "mem"]);
        let new = BTreeMap::from([("cpu".to_string(), 10.0), ("mem".to_string(), 5.0)]);
        assert!(is_unchanged(
            &new,
            &[existing("cpu", 10.0000001), existing("mem", 5.0)],
            &offering
        ));
        assert!(!is_unchanged(
            &new,
            &[existing("cpu", 10.01), existing("mem", 5.0)],
            &offering
        ));
        assert!(!is_unchanged(&new, &[existing("cpu", 10.0)], &offering));
        assert!(!is_unchanged(&new, &[], &offering));
        // Records of components outside the offering do not count.
        assert!(is_unchanged(
            &new,
            &[
                existing("cpu", 10.0),
                existing("mem", 5.0),
                existing("gpu", 1.0)
            ],
            &offering
        ));
    }

    #[test]
    fn a_user_usage_is_held_with_the_same_amount_and_link() {
        let held = ComponentUserUsage {
            username: "alice".into(),
            usage: 1.5,
            user: Some("https://w/api/marketplace-offering-users/AB-CD/".into()),
            ..Default::default()
        };
        let wanted = |usage: &str, user: Option<&str>| UserUsage {
            username: "alice".into(),
            usage: usage.into(),
            date: "2025-01-01T00:00:00".into(),
            user: user.map(str::to_string),
        };
        assert!(user_usage_held(Some(&held), &wanted("1.50", None)));
        assert!(user_usage_held(
            Some(&held),
            &wanted("1.5", Some("http://w/api/marketplace-offering-users/abcd"))
        ));
        assert!(!user_usage_held(Some(&held), &wanted("1.51", None)));
        assert!(!user_usage_held(
            Some(&held),
            &wanted("1.50", Some("https://w/api/marketplace-offering-users/ef/"))
        ));
        assert!(!user_usage_held(None, &wanted("1.50", None)));
    }

    #[test]
    fn decreases_and_duplicates_are_anomalies() {
        let new = BTreeMap::from([("cpu".to_string(), 9.0), ("mem".to_string(), 5.0)]);
        assert_eq!(
            anomalies(&new, &[existing("cpu", 10.0)]),
            ["cpu: new usage 9.00 is below the reported 10.00"]
        );
        assert!(anomalies(&new, &[existing("cpu", 9.0), existing("mem", 1.0)]).is_empty());
        assert_eq!(
            anomalies(&new, &[existing("mem", 1.0), existing("mem", 2.0)]),
            ["mem: 2 usage records for one period"]
        );
    }
}
