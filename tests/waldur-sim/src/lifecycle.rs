//! Order state changes and what each does to the order's resource, in one place: the
//! provider's actions (`approve_by_provider`, `set_state_done`, ...), the simulator's
//! `finish` control and the auto-completion of consumer orders all go through
//! [`transition`], and every change is announced with the same `order` event.

use std::time::Duration;

use serde_json::{json, Value};

use crate::app::App;
use crate::scenario::ConsumerOrdersSpec;
use crate::store::{now, Order, Store};

/// States an order never leaves.
pub const FINAL_STATES: &[&str] = &["done", "erred", "rejected", "canceled"];

/// States [`finish`] may move an open order to.
pub const FINISH_STATES: &[&str] = &["done", "erred", "rejected", "canceled", "executing"];

/// The `order` event Mastermind publishes when an order changes state.
pub struct OrderEvent {
    pub offering_uuid: String,
    pub body: Value,
}

impl OrderEvent {
    pub fn of(o: &Order) -> OrderEvent {
        OrderEvent {
            offering_uuid: o.offering_uuid.clone(),
            body: json!({
                "order_uuid": o.uuid, "order_state": o.state, "order_type": o.type_,
                "resource_uuid": o.resource_uuid, "project_uuid": o.project_uuid,
            }),
        }
    }

    /// Publishes to the queues observing `order` for the order's offering (takes the store
    /// lock: call it after releasing yours).
    pub fn publish(self, app: &App) -> usize {
        app.publish_event(&self.offering_uuid, "order", self.body)
    }
}

/// `(error_message, error_traceback)` recorded with an erred order.
pub type ErrorDetails = (String, String);

/// Moves order `id` (known to exist) to `state` and applies the effect on its resource:
/// Create done -> OK, erred -> Erred, rejected/canceled -> Terminated; Update done -> OK
/// with the order's limits; Terminate done -> Terminated; an Update or Terminate that
/// fails in any way leaves its resource OK again. Callers check the state may be left.
pub fn transition(st: &mut Store, id: &str, state: &str, error: ErrorDetails) -> OrderEvent {
    let ts = now();
    let o = st.orders.get_mut(id).expect("caller checked the order");
    o.state = state.to_string();
    o.modified = ts.clone();
    // A rejection or cancellation may carry its reason too.
    if state == "erred" || (matches!(state, "rejected" | "canceled") && !error.0.is_empty()) {
        o.error_message = error.0.clone();
        o.error_traceback = error.1.clone();
    }
    let event = OrderEvent::of(o);
    let (type_, limits, resource) = (o.type_.clone(), o.limits.clone(), o.resource_uuid.clone());
    let Some(r) = st.resources.get_mut(&resource) else {
        return event;
    };
    let creates = matches!(type_.as_str(), "Create" | "Restore");
    let in_change = matches!(r.state.as_str(), "Updating" | "Terminating");
    match state {
        "done" if creates => r.state = "OK".into(),
        "done" if type_ == "Update" => {
            r.state = "OK".into();
            if !limits.is_empty() {
                r.limits = limits;
            }
        }
        "done" if type_ == "Terminate" => r.state = "Terminated".into(),
        "erred" if creates => {
            r.state = "Erred".into();
            (r.error_message, r.error_traceback) = error;
        }
        "rejected" | "canceled" if creates => r.state = "Terminated".into(),
        // A change that did not happen leaves the resource as it was.
        "erred" | "rejected" | "canceled" if in_change => r.state = "OK".into(),
        _ => return event,
    }
    r.modified = ts;
    event
}

/// Moves an open order to `state` (one of [`FINISH_STATES`]) as the target's own site agent
/// would, and publishes the change; answers the order as it is now.
pub fn finish(
    app: &App,
    order_uuid: &str,
    state: &str,
    error_message: &str,
) -> Result<Order, String> {
    if !FINISH_STATES.contains(&state) {
        return Err(format!(
            "state '{state}' is not one of {}",
            FINISH_STATES.join(", ")
        ));
    }
    let id = crate::ids::parse(order_uuid, "order")?;
    let (event, order) = {
        let mut st = app.store();
        let current = st.orders.get(&id).ok_or_else(|| format!("no order {id}"))?;
        if FINAL_STATES.contains(&current.state.as_str()) {
            return Err(format!("order {id} is already {}", current.state));
        }
        let event = transition(
            &mut st,
            &id,
            state,
            (error_message.to_string(), String::new()),
        );
        (event, st.orders[&id].clone())
    };
    event.publish(app);
    Ok(order)
}

/// Finishes a consumer-created order by itself after `consumer_orders.complete_after_ms`,
/// when set (a tokio task: call from within the server's runtime; `spec` is the store's,
/// passed in because the caller holds the store lock).
pub fn schedule_completion(app: &App, spec: &ConsumerOrdersSpec, order_uuid: &str) {
    let Some(ms) = spec.complete_after_ms else {
        return;
    };
    let state = spec.final_state.clone().unwrap_or_else(|| "done".into());
    let (app, id) = (app.clone(), order_uuid.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        // An order someone finished meanwhile stays as they left it.
        let _ = finish(&app, &id, &state, "");
    });
}
