//! What the backend answers about its own objects (resource info, associations, client
//! resources, collected limits, periodic-settings results, resource keys) and the runtime
//! context the agent hands a plugin once (time zone, partitions, runtime directory).

use serde::{Deserialize, Serialize};

use super::{JsonMap, ResourceUsage};

/// A named URL shown to users in Waldur (`set_endpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
}

/// What a backend knows about one resource (the reference's `BackendResourceInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BackendResourceInfo {
    pub backend_id: String,
    pub parent_id: String,
    pub effective_id: String,
    pub users: Vec<String>,
    pub usage: ResourceUsage,
    pub limits: super::Limits,
    /// For async backends: the backend order still running for this resource.
    pub pending_order_id: String,
    pub backend_metadata: JsonMap,
    pub endpoints: Vec<Endpoint>,
}

/// A raw backend account as the plugin's client sees it (the reference's `ClientResource`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientResource {
    pub name: String,
    pub description: String,
    pub organization: String,
    pub backend_id: String,
}

/// A user's membership in a backend account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Association {
    pub account: String,
    pub user: String,
    pub value: i64,
}

/// Result of `collect_resource_limits`: the same limits in both unit systems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectedLimits {
    pub backend_limits: super::BackendLimits,
    pub waldur_limits: super::Limits,
}

/// Result of `apply_periodic_settings`, POSTed back to Waldur as the plugin returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeriodicSettingsResult {
    pub success: bool,
    pub error: Option<String>,
    pub commands_executed: Vec<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// An API key of a resource (`generate_resource_keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceKey {
    pub client_id: String,
    pub api_key: String,
}

/// Facts the agent learns after constructing a backend (set as attributes by the reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeContext {
    pub offering_uuid: String,
    pub offering_name: String,
    /// IANA timezone for billing periods (the `timezone` config key).
    pub timezone: String,
    pub service_provider_uuid: String,
    /// Sorted partition names of the Waldur offering.
    pub offering_partitions: Vec<String>,
    pub partition_enforcement_enabled: bool,
    /// `plugin_options.enforce_qos` of the offering, when Waldur sets it.
    pub offering_enforce_qos: Option<bool>,
    /// The agent's runtime directory (an agent extension): where a plugin keeps state every
    /// agent process on the machine must share, such as a lock around backend writes. Absent
    /// from hosts that predate it; a plugin then picks its own place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_dir: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}
