//! The order under test: a JSON object checked to be a Waldur order the processor can run,
//! with its ids normalised and the ones it leaves out generated.

use serde_json::{Map, Value};
use waldur_plugin_abi::wire::Order;
use waldur_sim::ids;

/// The kinds of order the processor carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    Create,
    Update,
    Terminate,
    Restore,
}

impl OrderKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Terminate => "Terminate",
            Self::Restore => "Restore",
        }
    }

    /// Whether the resource must exist (created by an earlier order) before this one runs.
    pub fn needs_existing_resource(self) -> bool {
        matches!(self, Self::Update | Self::Terminate)
    }
}

/// An order ready to be seeded into the simulator.
#[derive(Debug, Clone)]
pub struct TestOrder {
    pub kind: OrderKind,
    /// Normalised (32 hex digits), as every id below.
    pub uuid: String,
    /// `executing` or `pending-provider`.
    pub state: String,
    /// Empty when the order does not name one.
    pub offering_uuid: String,
    pub resource_uuid: String,
    pub resource_name: String,
    pub project_uuid: String,
    pub project_slug: String,
    pub customer_uuid: String,
    pub customer_slug: String,
    pub limits: Map<String, Value>,
    pub attributes: Map<String, Value>,
    /// The order as given (rendered template or file).
    pub json: Value,
}

/// Checks that `json` is an order; the error names what is wrong.
pub fn parse(json: Value) -> Result<TestOrder, String> {
    if !json.is_object() {
        return Err("the order is not a JSON object".into());
    }
    // The processor's own view of an order: every field of the right type.
    let order: Order = serde_path_to_error::deserialize(&json)
        .map_err(|e| format!("the order's {} is invalid: {}", e.path(), e.inner()))?;
    let kind = match order.order_type.as_str() {
        "Create" => OrderKind::Create,
        "Update" => OrderKind::Update,
        "Terminate" => OrderKind::Terminate,
        "Restore" => OrderKind::Restore,
        "" => return Err("the order has no type (Create, Update, Terminate or Restore)".into()),
        other => {
            return Err(format!(
                "order type '{other}' is not Create, Update, Terminate or Restore"
            ))
        }
    };
    let state = match order.state.as_str() {
        "" => "executing".to_string(),
        "executing" | "pending-provider" => order.state.clone(),
        other => {
            return Err(format!(
            "order state '{other}' is not one the processor takes (executing or pending-provider)"
        ))
        }
    };
    let id = |field: &str, raw: &str| -> Result<String, String> {
        if raw.is_empty() {
            return Ok(ids::generate());
        }
        ids::normalize(raw).ok_or_else(|| format!("the order's {field} '{raw}' is not a UUID"))
    };
    let offering_uuid = match order.offering_uuid.as_str() {
        "" => String::new(),
        raw => id("offering_uuid", raw)?,
    };
    let resource_name = if order.resource_name.is_empty() {
        if kind == OrderKind::Create {
            return Err("the Create order has no resource_name".into());
        }
        "test-allocation".to_string()
    } else {
        order.resource_name.clone()
    };
    let limits = json
        .get("limits")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(TestOrder {
        kind,
        uuid: id("uuid", &order.uuid)?,
        state,
        offering_uuid,
        resource_uuid: id(
            "marketplace_resource_uuid",
            &order.marketplace_resource_uuid,
        )?,
        resource_name,
        project_uuid: id("project_uuid", &order.project_uuid)?,
        project_slug: non_empty(&order.project_slug, "test-project"),
        customer_uuid: id("customer_uuid", &order.customer_uuid)?,
        customer_slug: non_empty(&order.customer_slug, "test-customer"),
        limits,
        attributes: order.attributes.clone(),
        json,
    })
}

fn non_empty(value: &str, default: &str) -> String {
    if value.is_empty() { default } else { value }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_order_gets_normalised_ids_and_defaults() {
        let order = parse(json!({
            "type": "Update",
            "uuid": "0F0F0F0F-0F0F-0F0F-0F0F-0F0F0F0F0F0F",
            "limits": {"cpu": 5},
        }))
        .unwrap();
        assert_eq!(order.kind, OrderKind::Update);
        assert_eq!(order.uuid, "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f");
        assert_eq!(order.state, "executing");
        assert_eq!(order.resource_uuid.len(), 32);
        assert_eq!(order.limits["cpu"], json!(5));
        assert!(order.offering_uuid.is_empty());
    }

    #[test]
    fn what_is_not_an_order_is_named() {
        let error = |v: Value| parse(v).unwrap_err();
        assert_eq!(error(json!([1])), "the order is not a JSON object");
        assert_eq!(
            error(json!({"type": "Delete"})),
            "order type 'Delete' is not Create, Update, Terminate or Restore"
        );
        assert!(error(json!({})).starts_with("the order has no type"));
        assert_eq!(
            error(json!({"type": "Create", "resource_name": "r", "uuid": "nope"})),
            "the order's uuid 'nope' is not a UUID"
        );
        assert_eq!(
            error(json!({"type": "Create", "resource_name": "r", "limits": {"cpu": "many"}})),
            "the order's limits.cpu is invalid: invalid type: string \"many\", expected f64"
        );
        assert!(
            error(json!({"type": "Create", "state": "done", "resource_name": "r"}))
                .starts_with("order state 'done'")
        );
        assert_eq!(
            error(json!({"type": "Create"})),
            "the Create order has no resource_name"
        );
    }
}
