//! Orders (reference §2.3).

use reqwest::Method;
use waldur_plugin_abi::wire::Order;

use super::as_strs;
use crate::dry_run::Assumed;
use crate::waldur::call::{Call, Query, PLANNED_STATUS};
use crate::waldur::decode::required_within;
use crate::waldur::models::{Detail, Status};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// Dereferenced by the order processor (§0.6); an order without `type` would silently never
/// be processed by the reference.
const ORDER_REQUIRED: &[&str] = &["uuid", "type", "state", "marketplace_resource_uuid"];

/// Which orders O1 lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// `offering_uuid=`.
    pub offering_uuid: String,
    /// `state=` (repeated).
    pub states: Vec<String>,
    /// `modified_before=` (ISO 8601), for the event-mode reconciliation of stuck orders.
    pub modified_before: Option<String>,
    /// `field=` (repeated); empty for full objects.
    pub fields: Vec<String>,
}

impl OrderFilter {
    /// The order processor's listing: `state=pending-provider&state=executing`.
    pub fn pending(offering_uuid: &str) -> OrderFilter {
        OrderFilter {
            offering_uuid: offering_uuid.to_owned(),
            states: vec!["pending-provider".into(), "executing".into()],
            ..OrderFilter::default()
        }
    }
}

impl WaldurClient {
    /// O1 `GET /api/marketplace-orders/?offering_uuid=&state=...&page_size=100` -> 200, all
    /// pages.
    pub async fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<Order>, WaldurError> {
        let query = Query::new()
            .uuid("offering_uuid", &filter.offering_uuid)
            .each("state", &filter.states);
        let query = match &filter.modified_before {
            Some(before) => query.add("modified_before", before.as_str()),
            None => query,
        };
        let url = self.http.url(
            &["marketplace-orders"],
            query.fields(&filter.fields).add("page_size", "100"),
        );
        let call = Call::get("O1 marketplace_orders_list", url);
        let required = required_within(ORDER_REQUIRED, &as_strs(&filter.fields));
        self.http.json_pages(call, &required).await
    }

    /// O1b `GET /api/marketplace-orders/?offering_uuid=` without `page_size`: the event-mode
    /// health check (the agent shows Waldur it is alive; the orders are not used).
    pub async fn orders_health_check(&self, offering_uuid: &str) -> Result<(), WaldurError> {
        let url = self.http.url(
            &["marketplace-orders"],
            Query::new().uuid("offering_uuid", offering_uuid),
        );
        let call = Call::get("O1b marketplace_orders_list", url);
        self.http.send(&call).await.map(|_| ())
    }

    /// O2 `GET /api/marketplace-orders/{uuid}/` -> 200, the full order.
    pub async fn order(&self, order_uuid: &str) -> Result<Order, WaldurError> {
        let url = self.http.url(
            &["marketplace-orders", &normalize_uuid(order_uuid)],
            Query::new(),
        );
        let call = Call::get("O2 marketplace_orders_retrieve", url);
        let order = self.http.json(&call, ORDER_REQUIRED).await?;
        Ok(self.with_assumed_state(order))
    }

    /// In a dry run, the state a withheld transition of the order would have set.
    fn with_assumed_state(&self, mut order: Order) -> Order {
        if let Some(state) = self.assumed(Assumed::OrderState, &order.uuid) {
            order.state = state;
        }
        order
    }

    /// O2 `GET /api/marketplace-orders/{uuid}/?field=uuid&field=state` -> 200: the check
    /// before `set_state_done`. Only `uuid` and `state` are filled.
    pub async fn order_state(&self, order_uuid: &str) -> Result<Order, WaldurError> {
        let url = self.http.url(
            &["marketplace-orders", &normalize_uuid(order_uuid)],
            Query::new().fields(&["uuid", "state"]),
        );
        let call = Call::get("O2 marketplace_orders_retrieve", url);
        let order = self.http.json(&call, &["uuid", "state"]).await?;
        Ok(self.with_assumed_state(order))
    }

    /// O3 `POST /api/marketplace-orders/{uuid}/approve_by_provider/` `{}` -> 200 `{detail}`
    /// (required, as the reference's client parses it) or 409 -> `None` (the order was already
    /// decided; client 8.1.3 accepts 409 too).
    pub async fn approve_order(&self, order_uuid: &str) -> Result<Option<String>, WaldurError> {
        let call = Call::with_json(
            "O3 marketplace_orders_approve_by_provider",
            Method::POST,
            self.order_action(order_uuid, "approve_by_provider"),
            &serde_json::json!({}),
        )
        .accept(&[200, 409])
        .planned_reply(r#"{"detail": "not sent (dry run)"}"#);
        let reply = self.http.execute(&call).await?;
        if reply.status == 409 {
            return Ok(None);
        }
        let info: Detail = crate::waldur::decode::decode_one(&call, &reply.body, &["detail"])?;
        self.assume(Assumed::OrderState, order_uuid, "executing");
        Ok(Some(info.detail))
    }

    /// O4 `POST /api/marketplace-orders/{uuid}/reject_by_provider/` `{}` -> 200 (body not
    /// read) or 409 (already decided, treated as done like client 8.1.3).
    pub async fn reject_order(&self, order_uuid: &str) -> Result<(), WaldurError> {
        let call = Call::with_json(
            "O4 marketplace_orders_reject_by_provider",
            Method::POST,
            self.order_action(order_uuid, "reject_by_provider"),
            &serde_json::json!({}),
        )
        .accept(&[200, 409]);
        self.http.send(&call).await?;
        self.assume(Assumed::OrderState, order_uuid, "rejected");
        Ok(())
    }

    /// O5 `POST /api/marketplace-orders/{uuid}/set_state_done/` without a body -> 200.
    pub async fn set_order_done(&self, order_uuid: &str) -> Result<(), WaldurError> {
        let call = Call::post_empty(
            "O5 marketplace_orders_set_state_done",
            self.order_action(order_uuid, "set_state_done"),
        );
        self.http.send(&call).await?;
        self.assume(Assumed::OrderState, order_uuid, "done");
        Ok(())
    }

    /// O6 `POST /api/marketplace-orders/{uuid}/set_state_erred/`
    /// `{error_message, error_traceback}` -> 200.
    pub async fn set_order_erred(
        &self,
        order_uuid: &str,
        error_message: &str,
        error_traceback: &str,
    ) -> Result<(), WaldurError> {
        let body = super::error_details(error_message, error_traceback);
        let call = Call::with_json(
            "O6 marketplace_orders_set_state_erred",
            Method::POST,
            self.order_action(order_uuid, "set_state_erred"),
            &body,
        );
        self.http.send(&call).await?;
        self.assume(Assumed::OrderState, order_uuid, "erred");
        Ok(())
    }

    /// O7 `POST /api/marketplace-orders/{uuid}/set_backend_id/` `{backend_id}` -> 200
    /// `{status}` (async backends).
    pub async fn set_order_backend_id(
        &self,
        order_uuid: &str,
        backend_id: &str,
    ) -> Result<Status, WaldurError> {
        let call = Call::with_json(
            "O7 marketplace_orders_set_backend_id",
            Method::POST,
            self.order_action(order_uuid, "set_backend_id"),
            &serde_json::json!({ "backend_id": backend_id }),
        )
        .planned_reply(PLANNED_STATUS);
        self.http.json(&call, &["status"]).await
    }

    fn order_action(&self, order_uuid: &str, action: &str) -> reqwest::Url {
        self.http.url(
            &["marketplace-orders", &normalize_uuid(order_uuid), action],
            Query::new(),
        )
    }
}
