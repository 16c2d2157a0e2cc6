//! Host-side models of the Waldur objects the agent reads or sends that are not shared with
//! plugins. Resources, orders, offering users and team members are the plugin-abi wire types
//! ([`WaldurResource`](waldur_plugin_abi::wire::WaldurResource), [`Order`](waldur_plugin_abi::wire::Order),
//! [`OfferingUser`](waldur_plugin_abi::wire::OfferingUser),
//! [`ProjectUser`](waldur_plugin_abi::wire::ProjectUser)).
//!
//! Every response model tolerates unknown fields (kept in `extra` where they may matter) and
//! defaults missing ones; which fields must be present is decided per endpoint (see
//! `decode.rs` and the `REQUIRED` lists in `endpoints/`). Amounts that Waldur sends as numbers
//! or decimal strings (`"12.34"`) are read as `f64`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use waldur_plugin_abi::wire::JsonMap;

/// A registered agent (A1-A3).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AgentIdentity {
    pub uuid: String,
    pub url: String,
    pub name: String,
    pub offering: String,
    pub created_by: Option<String>,
    pub created: String,
    pub modified: String,
    pub services: Vec<JsonMap>,
    pub compatibility: Option<JsonMap>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The body of A2/A3 (`AgentIdentityRequest`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AgentIdentityRequest {
    /// The offering UUID.
    pub offering: String,
    /// `agent-<offering uuid>`.
    pub name: String,
    /// The agent's version.
    pub version: String,
    /// When the agent (re)started, ISO 8601 UTC.
    pub last_restarted: String,
    pub dependencies: Vec<AgentDependency>,
    pub config_file_path: String,
    pub config_file_content: String,
}

/// One entry of [`AgentIdentityRequest::dependencies`]: an installed plugin and its version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AgentDependency {
    pub package: String,
    pub version: String,
}

/// One mode of an agent (A4).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AgentService {
    pub uuid: String,
    pub url: String,
    pub identity: String,
    pub identity_name: String,
    pub name: String,
    pub mode: String,
    /// `Active`, `Idle` or `Error`.
    pub state: String,
    pub created: String,
    pub modified: String,
    pub processors: Vec<JsonMap>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One processor (backend) of an agent service (A5).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AgentProcessor {
    pub uuid: String,
    pub url: String,
    pub service: String,
    pub service_name: String,
    pub name: String,
    pub backend_type: String,
    pub backend_version: String,
    pub created: String,
    pub modified: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One log line shipped to Waldur (A9).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AgentLogRecord {
    pub agent_identity_uuid: String,
    /// Seconds since the epoch.
    pub timestamp: f64,
    pub level: String,
    pub message: String,
    pub module: String,
}

/// `GET /api/version/` (B1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Version {
    pub version: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `GET /api/users/me/` (B2): only logged, and `is_staff` gates the historical loader.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct UserMe {
    pub uuid: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub is_staff: bool,
    pub is_support: bool,
    pub permissions: Vec<UserPermission>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One role of [`UserMe::permissions`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct UserPermission {
    pub role_name: String,
    pub scope_type: String,
    pub scope_name: String,
    pub scope_uuid: String,
    pub expiration_time: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `GET /api/marketplace-provider-offerings/{uuid}/` (B3, `ProviderOfferingDetails`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ProviderOffering {
    pub uuid: String,
    pub name: String,
    pub customer_uuid: String,
    pub customer_name: String,
    pub state: String,
    pub backend_id: String,
    pub components: Vec<OfferingComponent>,
    pub partitions: Vec<OfferingPartition>,
    /// `MergedPluginOptions`: `username_generation_policy`,
    /// `service_provider_can_create_offering_user`, `enforce_qos`, ...
    pub plugin_options: JsonMap,
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ProviderOffering {
    /// A string plugin option, `""` when absent or not a string.
    pub fn plugin_option_str(&self, key: &str) -> &str {
        self.plugin_options
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// A boolean plugin option, false when absent or not a boolean.
    pub fn plugin_option_bool(&self, key: &str) -> bool {
        self.plugin_options
            .get(key)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// One component of a provider offering.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OfferingComponent {
    pub uuid: String,
    #[serde(rename = "type")]
    pub component_type: String,
    pub name: String,
    pub description: String,
    pub measured_unit: String,
    /// `fixed`, `usage`, `limit`, `one` or `few`.
    pub billing_type: String,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub limit_amount: Option<f64>,
    /// `annual`, `month`, `quarterly` or `total`.
    pub limit_period: Option<String>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub unit_factor: Option<f64>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One partition of a provider offering.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OfferingPartition {
    pub partition_name: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// An item of `GET /api/marketplace-service-providers/` (B4).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ServiceProvider {
    pub uuid: String,
    pub customer_uuid: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `GET .../user-attribute-config/` (B5): which `user_*` attributes the offering exposes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct OfferingUserAttributeConfig {
    pub uuid: String,
    pub exposed_fields: Vec<String>,
    pub is_default: bool,
    pub offering_uuid: String,
    pub offering_name: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The answer of B6 `check_unique_backend_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct CheckUniqueBackendIdResponse {
    pub is_unique: bool,
}

/// A project's service account (B7) or course account (B8): the fields the agent reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ProjectAccount {
    pub uuid: String,
    /// `None` while Waldur has not named it yet (course accounts).
    pub username: Option<String>,
    pub project_uuid: String,
    pub state: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A service provider's public SSH key (B11).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SshKey {
    pub uuid: String,
    pub name: String,
    pub public_key: String,
    pub fingerprint_md5: String,
    pub fingerprint_sha256: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `GET /api/marketplace-plans/{uuid}/` (B13, `ProviderPlanDetails`); the agent reads `quotas`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Plan {
    pub uuid: String,
    pub url: String,
    pub name: String,
    /// Component type -> quota.
    #[serde(deserialize_with = "lenient::map_f64")]
    pub quotas: BTreeMap<String, f64>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// `{"status": "..."}`, the answer of the `set_*` actions (R4-R7, O7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Status {
    pub status: String,
}

/// `{"detail": "..."}` (O3's `OrderInfoResponse`, R11's 409 answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Detail {
    pub detail: String,
}

/// A per-user membership state reported by R11 `set_membership_sync_statuses`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct MembershipSyncStatus {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_uuid: Option<String>,
    pub scope_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resource_project_uuid: Option<String>,
    pub role_name: String,
    pub state: String,
    /// Optional in a plugin's report (reference `message?`); always sent.
    #[serde(default)]
    pub message: String,
}

/// What R11 answered.
#[derive(Debug, Clone, PartialEq)]
pub enum MembershipSyncOutcome {
    /// 200 `{stored, skipped}`.
    Stored { stored: u64, skipped: u64 },
    /// 409 `{detail}`: Waldur does not take membership statuses for this resource.
    Conflict { detail: String },
}

/// A component usage of one resource in one billing period (C1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ComponentUsage {
    pub uuid: String,
    #[serde(rename = "type")]
    pub component_type: String,
    #[serde(deserialize_with = "lenient::f64")]
    pub usage: f64,
    pub billing_period: Option<String>,
    pub date: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A per-user part of a component usage (C2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ComponentUserUsage {
    pub uuid: String,
    pub username: String,
    pub component_type: String,
    #[serde(deserialize_with = "lenient::f64")]
    pub usage: f64,
    /// URL of the parent component usage, `.../marketplace-component-usages/<uuid>/`.
    pub component_usage: String,
    /// URL of the offering user the usage is linked to; `None` when it has no link.
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ComponentUserUsage {
    /// Whether this record is linked as `wanted` asks: the same offering user (compared by
    /// the UUID at the end of the URL, so `http`/`https` or a missing slash do not matter),
    /// or any link when the agent has none to give.
    pub fn links_as(&self, wanted: Option<&str>) -> bool {
        let Some(wanted) = wanted else {
            return true;
        };
        let id = |url: &str| {
            url.split(['?', '#'])
                .next()
                .unwrap_or("")
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .replace('-', "")
                .to_ascii_lowercase()
        };
        self.user
            .as_deref()
            .is_some_and(|held| id(held) == id(wanted))
    }

    /// The parent component usage's UUID: the last path segment of `component_usage`.
    pub fn component_usage_uuid(&self) -> Option<&str> {
        self.component_usage
            .split(['?', '#'])
            .next()?
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
    }
}

/// A per-user limit of a component (C6).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ComponentUserUsageLimit {
    pub uuid: String,
    pub url: String,
    pub resource: String,
    pub component: String,
    pub component_type: String,
    /// The offering user's username (not a URL).
    pub user: String,
    #[serde(deserialize_with = "lenient::f64")]
    pub limit: f64,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// One item of C3 `set_usage`: the total of one component, formatted by the caller
/// (`format!("{x:.2}")` in reporting, as the reference).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UsageAmount {
    #[serde(rename = "type")]
    pub component_type: String,
    pub amount: String,
}

/// The body of C3 `set_usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SetUsageRequest {
    pub usages: Vec<UsageAmount>,
    /// The resource UUID (normalised by the client).
    pub resource: String,
    /// ISO 8601 date-time inside the billing period, e.g. `2026-07-01T00:00:00+00:00`.
    pub date: String,
}

/// One item of C4 `set_user_usages` (and the body of C5 `set_user_usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserUsage {
    pub username: String,
    pub usage: String,
    pub date: String,
    /// The offering user's URL, when known.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
}

/// A Waldur project as B14 lists it (`?field=uuid`: only `uuid` is read).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Project {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A resource API key as Waldur reports it (K1-K4, `ResourceApiKeyStatus`). The key itself
/// never comes back: Waldur keeps it encrypted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResourceApiKey {
    pub uuid: String,
    pub resource_uuid: String,
    pub resource_backend_id: String,
    /// `None` (or empty) while the backend has not reported the key's public id yet.
    pub client_id: Option<String>,
    /// `Creating`, `OK`, `Updating`, `Deleting`, `Deleted`, `Erred` or `Paused`.
    pub state: String,
    /// `create`, `delete`, `pause`, `resume`, `rotate`, `update` or `""`.
    pub pending_action: Option<String>,
    pub modified: String,
    pub error_message: Option<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}

impl ResourceApiKey {
    /// The key's public id, when Waldur has one.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref().filter(|id| !id.is_empty())
    }
}

/// A request to list what the backend has and Waldur does not (I1, `BackendResourceReq`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendResourceRequest {
    pub uuid: String,
    pub url: String,
    /// `Sent`, `Processing`, `Done` or `Erred`.
    pub state: String,
    /// The offering UUID.
    pub offering: String,
    pub offering_name: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub error_message: Option<String>,
    pub error_traceback: Option<String>,
    pub created: String,
    pub modified: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// A backend account offered to Waldur users for import (I5, I6).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendResource {
    pub uuid: String,
    pub url: String,
    pub name: String,
    pub backend_id: String,
    /// The project UUID.
    pub project: String,
    pub project_name: String,
    /// The offering UUID.
    pub offering: String,
    pub offering_name: String,
    pub backend_metadata: JsonMap,
    pub created: String,
    pub modified: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The body of I6 `backend_resources_create` (`BackendResourceRequest` in the client).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct NewBackendResource {
    /// The backend id, as the reference names it.
    pub name: String,
    /// The project UUID.
    pub project: String,
    /// The offering UUID.
    pub offering: String,
    pub backend_id: String,
    /// `{limits: {component: amount}}` in Waldur units.
    pub backend_metadata: JsonMap,
}

/// Numbers that may arrive as JSON numbers or decimal strings.
mod lenient {
    use std::collections::BTreeMap;

    use serde::de::{Deserializer, Error};
    use serde::Deserialize;
    use serde_json::Value;

    fn number(value: &Value) -> Option<f64> {
        match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(super) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let value = Value::deserialize(d)?;
        number(&value).ok_or_else(|| D::Error::custom(format!("expected a number, got {value}")))
    }

    pub(super) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            value => number(&value)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected a number, got {value}"))),
        }
    }

    pub(super) fn map_f64<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, f64>, D::Error> {
        let map = BTreeMap::<String, Value>::deserialize(d)?;
        map.into_iter()
            .map(|(key, value)| match number(&value) {
                Some(n) => Ok((key, n)),
                None => Err(D::Error::custom(format!(
                    "{key}: expected a number, got {value}"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_numbers_or_strings() {
        let usage: ComponentUsage =
            serde_json::from_str(r#"{"uuid":"a","type":"cpu","usage":"12.34","x":1}"#).unwrap();
        assert_eq!(usage.usage, 12.34);
        assert_eq!(usage.extra["x"], 1);
        let plan: Plan = serde_json::from_str(r#"{"quotas":{"cpu":"10","mem":5}}"#).unwrap();
        assert_eq!(plan.quotas["cpu"], 10.0);
        assert_eq!(plan.quotas["mem"], 5.0);
        assert!(serde_json::from_str::<ComponentUsage>(r#"{"usage":"lots"}"#).is_err());
    }

    #[test]
    fn component_usage_uuid_is_the_last_segment() {
        let usage = ComponentUserUsage {
            component_usage: "http://h/api/marketplace-component-usages/abc123/".into(),
            ..Default::default()
        };
        assert_eq!(usage.component_usage_uuid(), Some("abc123"));
        assert_eq!(ComponentUserUsage::default().component_usage_uuid(), None);
    }

    #[test]
    fn optional_body_keys_are_omitted() {
        let item = UserUsage {
            username: "ab1".into(),
            usage: "1.00".into(),
            date: "2026-07-01T00:00:00+00:00".into(),
            user: None,
        };
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            serde_json::json!({"username":"ab1","usage":"1.00","date":"2026-07-01T00:00:00+00:00"})
        );
    }
}

/// An event subscription of an agent identity (A6): its `uuid` is the broker login and its
/// `user_uuid` the broker vhost.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct EventSubscription {
    pub uuid: String,
    pub user_uuid: String,
    pub user_username: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The queue Waldur declared for one (subscription, offering, object type) (A7).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct EventSubscriptionQueue {
    pub uuid: String,
    pub queue_name: String,
    pub vhost: String,
    pub object_type: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// The one queue of an agent identity for every object type it observes (1.0.7's
/// `register_queue`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ConsumerQueue {
    pub rmq_username: String,
    pub queue_name: String,
    pub vhost: String,
    pub observable_object_types: Vec<String>,
    #[serde(flatten)]
    pub extra: JsonMap,
}
