//! Usage of a billing month, read from the target's component usages and per-user usages of
//! that month (the billing-period filter is mandatory: without it the target answers the
//! lifetime total), mapped back through the component factors and rounded as the reference.

use std::collections::BTreeMap;

use serde_json::Value;
use waldur_plugin_abi::sdk::billing::{round2, Period};
use waldur_plugin_abi::wire::{ResourceUsage, UsageReport, TOTAL_ACCOUNT_USAGE};
use waldur_plugin_abi::Result;

use crate::federation::Federation;
use crate::target::{checked_uuid, field};

/// A decimal usage as Waldur writes it (`"12.50"`) or as a number.
fn amount(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

impl Federation {
    /// The current billing month in the agent's timezone.
    pub(crate) fn current_period(&self) -> Result<Period> {
        let timezone = self.remembered().runtime.timezone.clone();
        let zone = if timezone.is_empty() {
            jiff::tz::TimeZone::system()
        } else {
            jiff::tz::TimeZone::get(&timezone).unwrap_or_else(|e| {
                log::warn!("timezone {timezone:?} is unknown ({e}); using the system's");
                jiff::tz::TimeZone::system()
            })
        };
        let now = jiff::Timestamp::now().to_zoned(zone);
        Period::new(i32::from(now.year()), now.month() as u32)
    }

    /// Usage of `resource_backend_ids` in `period`. A resource whose usage cannot be read
    /// fails the call (the agent retries it) rather than being reported as zero.
    pub(crate) fn usage_report(
        &self,
        resource_backend_ids: &[String],
        period: Period,
    ) -> Result<UsageReport> {
        resource_backend_ids
            .iter()
            .map(|id| Ok((id.clone(), self.resource_usage(id, period)?)))
            .collect()
    }

    fn resource_usage(&self, backend_id: &str, period: Period) -> Result<ResourceUsage> {
        let resource = checked_uuid(backend_id, "resource backend id")?;
        let billing_period = format!("{period}-01");
        let totals = self.target.list(
            "marketplace-component-usages/",
            &[
                ("resource_uuid", resource.clone()),
                ("billing_period", billing_period.clone()),
            ],
        )?;
        let mut target_total: BTreeMap<String, f64> = BTreeMap::new();
        for usage in &totals {
            let component = field(usage, "type");
            if !component.is_empty() {
                *target_total.entry(component.to_string()).or_default() +=
                    amount(usage.get("usage"));
            }
        }
        let mut total = self.mapper.usage_from_target(&target_total);
        for component in self.components.keys() {
            total.entry(component.clone()).or_insert(0.0);
        }
        let mut report = ResourceUsage::new();
        report.insert(TOTAL_ACCOUNT_USAGE.to_string(), total);

        let per_user = self.target.list(
            "marketplace-component-user-usages/",
            &[
                ("resource_uuid", resource),
                ("component_usage__billing_period", billing_period),
            ],
        )?;
        let mut target_users: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        for usage in &per_user {
            let (username, component) = (field(usage, "username"), field(usage, "component_type"));
            if !username.is_empty() && !component.is_empty() {
                *target_users
                    .entry(username.to_string())
                    .or_default()
                    .entry(component.to_string())
                    .or_default() += amount(usage.get("usage"));
            }
        }
        for (username, usage) in target_users {
            report.insert(username, self.mapper.usage_from_target(&usage));
        }
        for usage in report.values_mut() {
            for value in usage.values_mut() {
                *value = round2(*value);
            }
        }
        Ok(report)
    }
}
