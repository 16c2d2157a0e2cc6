//! Limits between Waldur units and backend units (`backend = waldur × unit_factor`), and the
//! `max_limits` order policy.

use std::collections::BTreeMap;

use waldur_plugin_abi::wire::{
    AccountingType, BackendComponents, BackendLimits, CollectedLimits, Limits, WaldurResource,
};

/// Python's `int()` of a float: truncation toward zero. (`as` saturates instead of raising on
/// infinities, and maps NaN to 0.)
fn int(value: f64) -> i64 {
    value.trunc() as i64
}

/// One Waldur-unit value in backend units.
pub fn to_backend(value: f64, unit_factor: f64) -> i64 {
    int(value * unit_factor)
}

/// The reference's `_collect_resource_limits`, without prepaid months or component mapping
/// (the demo declares neither):
/// - a `usage` component with a configured `limit` gets `limit × unit_factor`;
/// - a `limit` or `one` component gets the resource's limit `× unit_factor`, when it has one;
/// - the Waldur limits are the resource's limits plus the configured usage limits, so the
///   `set_limits` the agent POSTs afterwards drops none of the order's values.
///
/// Backend units are truncated like the reference's `int()`; the Waldur limits keep their
/// fractions (an order for 2.5 hours stays 2.5 in Waldur), as the reference's SLURM plugin
/// does.
pub fn collect(resource: &WaldurResource, components: &BackendComponents) -> CollectedLimits {
    let mut backend = BackendLimits::new();
    let mut waldur: Limits = resource.limits.clone();
    for (name, component) in components {
        let factor = component.unit_factor();
        match component.accounting_type {
            AccountingType::Usage => {
                if let Some(limit) = component.limit {
                    backend.insert(name.clone(), to_backend(limit, factor));
                    waldur.insert(name.clone(), limit);
                }
            }
            AccountingType::Limit | AccountingType::One => {
                if let Some(limit) = resource.limits.get(name) {
                    backend.insert(name.clone(), to_backend(*limit, factor));
                }
            }
        }
    }
    CollectedLimits {
        backend_limits: backend,
        waldur_limits: waldur,
    }
}

/// Backend-unit limits back in Waldur units (`int(value / unit_factor)`), for configured
/// components only: an unconfigured one has no factor to convert with, and Waldur would drop
/// it anyway.
pub fn to_waldur(backend: &BackendLimits, components: &BackendComponents) -> BackendLimits {
    backend
        .iter()
        .filter_map(|(name, value)| {
            let component = components.get(name)?;
            Some((name.clone(), int(*value as f64 / component.unit_factor())))
        })
        .collect()
}

/// The first order limit above its `max_limits` entry (Waldur units), as a reason to reject.
pub fn exceeded(order_limits: &Limits, max_limits: &BTreeMap<String, f64>) -> Option<String> {
    order_limits.iter().find_map(|(name, value)| {
        let max = max_limits.get(name)?;
        (value > max).then(|| format!("{name} limit {value} exceeds the maximum {max}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::wire::BackendComponent;

    fn component(
        accounting_type: AccountingType,
        factor: f64,
        limit: Option<f64>,
    ) -> BackendComponent {
        BackendComponent {
            accounting_type,
            unit_factor: Some(factor),
            limit,
            ..Default::default()
        }
    }

    fn components() -> BackendComponents {
        BackendComponents::from([
            (
                "cpu".into(),
                component(AccountingType::Usage, 60.0, Some(10.0)),
            ),
            ("mem".into(), component(AccountingType::Usage, 60.0, None)),
            ("gpu".into(), component(AccountingType::Limit, 60.0, None)),
            ("licence".into(), component(AccountingType::One, 60.0, None)),
        ])
    }

    #[test]
    fn collect_with_unit_factor_60() {
        let resource = WaldurResource {
            limits: Limits::from([
                ("gpu".into(), 5.5),
                ("licence".into(), 2.0),
                ("other".into(), 3.9),
            ]),
            ..Default::default()
        };
        let collected = collect(&resource, &components());
        assert_eq!(
            collected.backend_limits,
            BackendLimits::from([
                ("cpu".into(), 600),
                ("gpu".into(), 330),
                ("licence".into(), 120),
            ])
        );
        assert_eq!(
            collected.waldur_limits,
            Limits::from([
                ("cpu".into(), 10.0),
                ("gpu".into(), 5.5),
                ("licence".into(), 2.0),
                ("other".into(), 3.9),
            ])
        );
    }

    #[test]
    fn truncates_like_python_int() {
        // 2.05 * 60 is 122.99999999999999 in binary: the reference's int() gives 122, and so
        // must the demo, or the two agents would set different limits.
        assert_eq!(to_backend(2.05, 60.0), 122);
        assert_eq!(to_backend(1.15, 60.0), 69);
        assert_eq!(to_backend(-1.5, 60.0), -90);
        // 4199 / 60 is 69.98...
        let back = to_waldur(&BackendLimits::from([("gpu".into(), 4199)]), &components());
        assert_eq!(back, BackendLimits::from([("gpu".into(), 69)]));
    }

    #[test]
    fn round_trip_with_unit_factor_60() {
        let components = components();
        let resource = WaldurResource {
            limits: Limits::from([("gpu".into(), 7.0)]),
            ..Default::default()
        };
        let backend = collect(&resource, &components).backend_limits;
        assert_eq!(backend["gpu"], 420);
        let mut with_unknown = backend.clone();
        with_unknown.insert("unknown".into(), 5);
        assert_eq!(
            to_waldur(&with_unknown, &components),
            BackendLimits::from([("cpu".into(), 10), ("gpu".into(), 7)])
        );
    }

    #[test]
    fn missing_unit_factor_is_one() {
        let components = BackendComponents::from([(
            "gpu".into(),
            BackendComponent {
                accounting_type: AccountingType::Limit,
                ..Default::default()
            },
        )]);
        let resource = WaldurResource {
            limits: Limits::from([("gpu".into(), 3.0)]),
            ..Default::default()
        };
        assert_eq!(collect(&resource, &components).backend_limits["gpu"], 3);
    }

    #[test]
    fn max_limits_policy() {
        let max = BTreeMap::from([("cpu".to_string(), 100.0)]);
        assert_eq!(exceeded(&Limits::from([("cpu".into(), 100.0)]), &max), None);
        assert_eq!(exceeded(&Limits::from([("gpu".into(), 1e9)]), &max), None);
        let reason = exceeded(&Limits::from([("cpu".into(), 100.5)]), &max).unwrap();
        assert_eq!(reason, "cpu limit 100.5 exceeds the maximum 100");
    }
}
