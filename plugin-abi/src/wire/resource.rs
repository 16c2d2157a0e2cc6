//! A Waldur marketplace resource (the provider view) as the agent hands it to a plugin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JsonMap;

/// Limits in Waldur units, keyed by component type (`{"cpu": 100}`).
pub type Limits = BTreeMap<String, f64>;

/// Limits in backend units (after `unit_factor`), keyed by component type.
pub type BackendLimits = BTreeMap<String, i64>;

/// A marketplace resource as Waldur returns it (`marketplace-provider-resources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WaldurResource {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    /// `""` while Waldur has no backend id for the resource.
    pub backend_id: String,
    pub state: String,
    pub limits: Limits,
    pub attributes: JsonMap,
    pub offering_uuid: String,
    pub offering_backend_id: String,
    pub offering_plugin_options: JsonMap,
    pub project_uuid: String,
    pub project_slug: String,
    pub project_name: String,
    pub project_description: String,
    pub customer_uuid: String,
    pub customer_slug: String,
    pub customer_name: String,
    pub restrict_member_access: bool,
    pub paused: bool,
    pub downscaled: bool,
    pub backend_metadata: JsonMap,
    pub plan_uuid: Option<String>,
    pub end_date: Option<String>,
    pub end_date_updated_at: Option<String>,
    pub project_end_date: Option<String>,
    pub effective_id: String,
    /// Every other field Waldur sent, untouched.
    #[serde(flatten)]
    pub extra: JsonMap,
}
