//! Usage reports: per-resource component totals and per-user usage, keyed the way the
//! reference's `_get_usage_report` returns them.

use std::collections::BTreeMap;

/// The key of the whole-account usage inside a [`ResourceUsage`].
pub const TOTAL_ACCOUNT_USAGE: &str = "TOTAL_ACCOUNT_USAGE";

/// Usage per component type, in Waldur units.
pub type ComponentUsage = BTreeMap<String, f64>;

/// One resource's usage: [`TOTAL_ACCOUNT_USAGE`] plus one entry per username.
pub type ResourceUsage = BTreeMap<String, ComponentUsage>;

/// Usage of many resources, keyed by resource backend id.
pub type UsageReport = BTreeMap<String, ResourceUsage>;
