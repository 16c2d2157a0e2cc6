//! Limits between Waldur units and SLURM's `GrpTRESMins` (`backend = waldur × unit_factor`),
//! prepaid months, and the optional component mapping (`target_components`).

use std::collections::BTreeMap;

pub use waldur_plugin_abi::sdk::components::ComponentMapper;
use waldur_plugin_abi::wire::{
    AccountingType, BackendComponents, BackendLimits, CollectedLimits, Limits, WaldurResource,
};

/// Python's `int()` of a float: truncation toward zero (saturating, NaN -> 0).
pub fn int(value: f64) -> i64 {
    value.trunc() as i64
}

/// `YYYY-MM-DD` at the start of a date or an ISO date-time (the date as written, like
/// Python's `datetime.date()`).
fn civil_date(text: &str) -> Option<jiff::civil::Date> {
    text.get(..10)?.parse().ok()
}

/// Whole months from `created` to `end_date`, as Waldur counts them (at least 1).
pub fn duration_months(created: jiff::civil::Date, end: jiff::civil::Date) -> i64 {
    let months = (i64::from(end.year()) - i64::from(created.year())) * 12
        + (i64::from(end.month()) - i64::from(created.month()))
        + i64::from(end.day() > created.day());
    months.max(1)
}

/// The resource's prepaid duration, when it has both a creation time and an end date.
pub fn prepaid_months(resource: &WaldurResource) -> Option<i64> {
    let created = resource
        .extra
        .get("created")?
        .as_str()
        .and_then(civil_date)?;
    let end = resource.end_date.as_deref().and_then(civil_date)?;
    Some(duration_months(created, end))
}

/// The reference's `_collect_resource_limits`:
/// 1. every `usage` component with a configured `limit` gets `limit × unit_factor`;
/// 2. `limit`/`one` components get the resource's limit `× unit_factor` (or, with a mapping,
///    the mapped target TRES);
/// 3. prepaid (`one`) components are multiplied by the subscription months;
/// 4. the Waldur limits are the resource's plus the configured usage limits;
/// 5. TRES unknown to the cluster (`known_tres`; empty = unknown, no filter) are dropped;
/// 6. both truncated like `int()`.
pub fn collect(
    resource: &WaldurResource,
    components: &BackendComponents,
    mapper: &ComponentMapper,
    known_tres: &[String],
) -> CollectedLimits {
    let mut backend: BTreeMap<String, f64> = BTreeMap::new();
    let mut waldur: Limits = resource.limits.clone();
    let usage_limits: BTreeMap<String, f64> = components
        .iter()
        .filter(|(_, c)| c.accounting_type == AccountingType::Usage)
        .filter_map(|(name, c)| Some((name.clone(), c.limit? * c.unit_factor())))
        .collect();
    backend.extend(usage_limits.clone());
    let limit_based: Vec<&String> = components
        .iter()
        .filter(|(_, c)| {
            matches!(
                c.accounting_type,
                AccountingType::Limit | AccountingType::One
            )
        })
        .map(|(name, _)| name)
        .collect();
    if mapper.is_passthrough() {
        for name in &limit_based {
            if let Some(value) = resource.limits.get(*name) {
                backend.insert((*name).clone(), value * components[*name].unit_factor());
            }
        }
    } else {
        let values: BTreeMap<String, f64> = resource
            .limits
            .iter()
            .filter(|(name, _)| limit_based.contains(name))
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        for (tres, value) in mapper.limits_to_target(&values) {
            backend.insert(tres, value as f64);
        }
    }

    let prepaid: Vec<&String> = components
        .iter()
        .filter(|(_, c)| c.accounting_type == AccountingType::One)
        .map(|(name, _)| name)
        .collect();
    if !prepaid.is_empty() {
        match prepaid_months(resource) {
            Some(months) => {
                log::info!(
                    "Prepaid resource: duration={months} months (created={:?}, end_date={:?})",
                    resource.extra.get("created"),
                    resource.end_date
                );
                for name in prepaid {
                    if let Some(value) = backend.get_mut(name) {
                        *value *= months as f64;
                    }
                }
            }
            None => log::warn!(
                "Prepaid components configured but resource has no created/end_date, \
                 skipping duration multiplication"
            ),
        }
    }

    for name in usage_limits.keys() {
        if let Some(limit) = components[name].limit {
            waldur.insert(name.clone(), limit);
        }
    }

    if !known_tres.is_empty() {
        let unknown: Vec<&String> = backend
            .keys()
            .filter(|tres| !known_tres.contains(tres))
            .collect();
        if !unknown.is_empty() {
            log::warn!(
                "Dropping unknown TRES keys from allocation limits (not in SLURM config): {unknown:?}"
            );
            backend.retain(|tres, _| known_tres.contains(tres));
        }
    }

    let backend_limits: BackendLimits = backend.into_iter().map(|(k, v)| (k, int(v))).collect();
    let waldur_limits: Limits = waldur
        .into_iter()
        .map(|(k, v)| (k, int(v) as f64))
        .collect();
    log::info!("SLURM allocation limits: {backend_limits:?}");
    log::info!("SLURM Waldur limits: {waldur_limits:?}");
    CollectedLimits {
        backend_limits,
        waldur_limits,
    }
}

/// Backend limits (configured components, `mem` already in MB) in Waldur units:
/// `int(value / unit_factor)`.
pub fn to_waldur(backend: &BackendLimits, components: &BackendComponents) -> BackendLimits {
    backend
        .iter()
        .map(|(name, value)| {
            let factor = components.get(name).map_or(1.0, |c| c.unit_factor());
            (name.clone(), int(*value as f64 / factor))
        })
        .collect()
}

/// Waldur-unit limits in backend units: `int(value × unit_factor)` for every given key
/// (factor 1 for unknown components), or the mapped target TRES of the limit-based
/// components when a mapping is configured.
pub fn to_backend(
    limits: &Limits,
    components: &BackendComponents,
    mapper: &ComponentMapper,
) -> BackendLimits {
    if mapper.is_passthrough() {
        return limits
            .iter()
            .map(|(name, value)| {
                let factor = components.get(name).map_or(1.0, |c| c.unit_factor());
                (name.clone(), int(value * factor))
            })
            .collect();
    }
    let values: BTreeMap<String, f64> = limits
        .iter()
        .filter(|(name, _)| {
            components.get(*name).is_some_and(|c| {
                matches!(
                    c.accounting_type,
                    AccountingType::Limit | AccountingType::One
                )
            })
        })
        .map(|(name, value)| (name.clone(), *value))
        .collect();
    mapper.limits_to_target(&values)
}

/// Per-user limits (Waldur units) as `MaxTRESMins` values: `× unit_factor`, truncated
/// (factor 1 for a component that is not configured; the reference raises KeyError).
pub fn user_limits_to_backend(
    limits: &BackendLimits,
    components: &BackendComponents,
) -> BackendLimits {
    limits
        .iter()
        .map(|(name, value)| {
            let factor = components.get(name).map_or(1.0, |c| c.unit_factor());
            (name.clone(), int(*value as f64 * factor))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn components(json: Value) -> BackendComponents {
        serde_json::from_value(json).unwrap()
    }

    /// The components of the golden traces (§2.6).
    fn golden() -> BackendComponents {
        components(json!({
            "cpu": {"accounting_type": "usage", "limit": 10, "unit_factor": 60000},
            "mem": {"accounting_type": "usage", "limit": 10, "unit_factor": 61440},
            "gres/gpu": {"accounting_type": "limit", "unit_factor": 60},
        }))
    }

    fn tres() -> Vec<String> {
        [
            "cpu", "mem", "energy", "node", "billing", "fs/disk", "vmem", "pages", "gres/gpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn resource(limits: &[(&str, f64)]) -> WaldurResource {
        WaldurResource {
            limits: limits.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn golden_create_limits() {
        let comps = golden();
        let mapper = ComponentMapper::new(&comps).unwrap();
        let collected = collect(&resource(&[("gres/gpu", 5.0)]), &comps, &mapper, &tres());
        assert_eq!(
            collected.backend_limits,
            BackendLimits::from([
                ("cpu".into(), 600_000),
                ("gres/gpu".into(), 300),
                ("mem".into(), 614_400)
            ])
        );
        assert_eq!(
            collected.waldur_limits,
            Limits::from([
                ("cpu".into(), 10.0),
                ("gres/gpu".into(), 5.0),
                ("mem".into(), 10.0)
            ])
        );
    }

    #[test]
    fn unknown_tres_are_dropped_only_when_the_cluster_answered() {
        let comps = components(json!({
            "cpu": {"accounting_type": "usage", "limit": 2, "unit_factor": 60},
            "storage": {"accounting_type": "limit", "unit_factor": 1},
        }));
        let mapper = ComponentMapper::new(&comps).unwrap();
        let res = resource(&[("storage", 7.0)]);
        let collected = collect(&res, &comps, &mapper, &tres());
        assert_eq!(
            collected.backend_limits,
            BackendLimits::from([("cpu".into(), 120)])
        );
        assert_eq!(collected.waldur_limits["storage"], 7.0);
        let collected = collect(&res, &comps, &mapper, &[]);
        assert_eq!(collected.backend_limits.len(), 2);
    }

    #[test]
    fn prepaid_limits_are_multiplied_by_the_months() {
        let comps = components(json!({"cpu": {"accounting_type": "one", "unit_factor": 1}}));
        let mapper = ComponentMapper::new(&comps).unwrap();
        let mut res = resource(&[("cpu", 4.0)]);
        res.extra
            .insert("created".into(), json!("2026-01-15T10:00:00.123456+02:00"));
        res.end_date = Some("2026-08-20".into());
        // 7 months (Jan->Aug) + 1 because the 20th is after the 15th.
        assert_eq!(prepaid_months(&res), Some(8));
        let collected = collect(&res, &comps, &mapper, &tres());
        assert_eq!(collected.backend_limits["cpu"], 32);
        assert_eq!(collected.waldur_limits["cpu"], 4.0);
        res.end_date = None;
        assert_eq!(
            collect(&res, &comps, &mapper, &tres()).backend_limits["cpu"],
            4
        );
    }

    #[test]
    fn duration_months_is_at_least_one() {
        let d = |s: &str| -> jiff::civil::Date { s.parse().unwrap() };
        assert_eq!(duration_months(d("2026-01-31"), d("2026-02-01")), 1);
        assert_eq!(duration_months(d("2026-01-15"), d("2026-01-10")), 1);
        assert_eq!(duration_months(d("2025-11-15"), d("2026-06-15")), 7);
        assert_eq!(duration_months(d("2025-11-15"), d("2026-06-16")), 8);
    }

    #[test]
    fn mapped_components_convert_limits_and_usage() {
        let comps = components(json!({
            "node_hours": {
                "accounting_type": "limit",
                "target_components": {"cpu": {"factor": 64}, "gres/gpu": {"factor": 4}}
            },
            "storage": {"accounting_type": "usage", "limit": 5},
        }));
        let mapper = ComponentMapper::new(&comps).unwrap();
        assert!(!mapper.is_passthrough());
        let collected = collect(&resource(&[("node_hours", 10.0)]), &comps, &mapper, &[]);
        assert_eq!(
            collected.backend_limits,
            BackendLimits::from([
                ("cpu".into(), 640),
                ("gres/gpu".into(), 40),
                ("storage".into(), 5)
            ])
        );
        let usage = mapper.usage_from_target(&BTreeMap::from([
            ("cpu".into(), 128.0),
            ("gres/gpu".into(), 8.0),
            ("mem".into(), 99.0),
        ]));
        assert_eq!(usage, BTreeMap::from([("node_hours".into(), 4.0)]));
        let limits = Limits::from([("node_hours".into(), 2.0), ("storage".into(), 3.0)]);
        assert_eq!(
            to_backend(&limits, &comps, &mapper),
            BackendLimits::from([("cpu".into(), 128), ("gres/gpu".into(), 8)])
        );
    }

    #[test]
    fn bad_target_components_are_invalid_settings() {
        for bad in [
            json!({"c": {"target_components": {"cpu": {"factor": 0}}}}),
            json!({"c": {"target_components": {"cpu": {"factor": "x"}}}}),
            json!({"c": {"target_components": {"cpu": {"factr": 2}}}}),
            json!({"c": {"target_components": ["cpu"]}}),
        ] {
            let err = ComponentMapper::new(&components(bad.clone())).unwrap_err();
            assert_eq!(
                err.kind,
                waldur_plugin_abi::ErrorKind::INVALID_SETTINGS,
                "{bad}"
            );
            assert!(err.message.contains("target_components"), "{}", err.message);
        }
    }

    #[test]
    fn conversions_truncate() {
        let comps = golden();
        let mapper = ComponentMapper::new(&comps).unwrap();
        let raw = BackendLimits::from([
            ("cpu".into(), 659_999),
            ("gres/gpu".into(), 300),
            ("mem".into(), 614_400),
        ]);
        assert_eq!(
            to_waldur(&raw, &comps),
            BackendLimits::from([
                ("cpu".into(), 10),
                ("gres/gpu".into(), 5),
                ("mem".into(), 10)
            ])
        );
        let limits = Limits::from([("gres/gpu".into(), 7.0), ("other".into(), 2.5)]);
        assert_eq!(
            to_backend(&limits, &comps, &mapper),
            BackendLimits::from([("gres/gpu".into(), 420), ("other".into(), 2)])
        );
        assert_eq!(
            user_limits_to_backend(&BackendLimits::from([("gres/gpu".into(), 1)]), &comps),
            BackendLimits::from([("gres/gpu".into(), 60)])
        );
    }
}
