//! `backend_components` of an offering: each component's accounting type, unit factor and
//! limit, as the config gives them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JsonMap;

/// How Waldur accounts a component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountingType {
    /// Billed by reported usage.
    #[default]
    Usage,
    /// Billed by the limit the user chose.
    Limit,
    /// A one-time charge.
    One,
}

/// One `backend_components.<type>` entry of the agent configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendComponent {
    pub measured_unit: String,
    pub accounting_type: AccountingType,
    pub label: String,
    /// Backend units per Waldur unit; absent in the config means 1.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_factor_reporting: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// Optional Waldur component fields and plugin-specific keys (`target_components`, ...).
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl BackendComponent {
    /// The configured factor, or the reference's default of 1.0.
    pub fn unit_factor(&self) -> f64 {
        self.unit_factor.unwrap_or(1.0)
    }
}

/// The optional Waldur component fields (`OfferingComponentRequest`, reference §8.4) a
/// `backend_components.<type>` entry may carry in [`BackendComponent::extra`]: the agent's
/// `load-components` sends them to Waldur, and no plugin setting may take their names.
pub const WALDUR_COMPONENT_FIELDS: &[&str] = &[
    "description",
    "article_code",
    "min_value",
    "max_value",
    "max_available_limit",
    "default_limit",
    "limit_period",
    "is_boolean",
    "is_prepaid",
    "min_prepaid_duration",
    "max_prepaid_duration",
    "prepaid_duration_step",
    "min_renewal_duration",
    "max_renewal_duration",
    "renewal_duration_step",
];

/// All components of an offering, keyed by component type.
pub type BackendComponents = BTreeMap<String, BackendComponent>;
