//! A Waldur marketplace order as the agent hands it to a plugin, and the plugin's answer to
//! a pending one (accept, reject, wait).

use serde::{Deserialize, Serialize};

use super::{JsonMap, Limits};

/// A marketplace order (`marketplace-orders`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Order {
    pub uuid: String,
    /// `Create`, `Update`, `Terminate` or `Restore`.
    #[serde(rename = "type")]
    pub order_type: String,
    pub state: String,
    pub marketplace_resource_uuid: String,
    pub resource_name: String,
    pub offering_uuid: String,
    pub project_uuid: String,
    pub project_slug: String,
    pub project_name: String,
    pub customer_uuid: String,
    pub customer_slug: String,
    pub limits: Limits,
    pub attributes: JsonMap,
    pub plan_uuid: Option<String>,
    /// For async backends: the id of the order in the backend system.
    pub backend_id: String,
    pub error_message: String,
    #[serde(flatten)]
    pub extra: JsonMap,
}

/// What `evaluate_pending_order` decides for an order waiting for the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PendingOrderDecision {
    /// Approve the order and process it.
    #[default]
    Accept,
    /// Reject the order.
    Reject,
    /// Leave the order for the next cycle.
    Pending,
}
