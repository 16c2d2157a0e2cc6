//! One file per group of the reference's endpoint catalogue (reference §2). Every method says
//! which reference call it is, and why it may or may not be retried.
//!
//! Retry policy per endpoint (see [`RetryMode`](super::retry::RetryMode)): GET, PUT and PATCH
//! are idempotent. Waldur's action POSTs are idempotent by nature as well: they set a value
//! (`set_backend_id`, `set_limits`, `set_usage` for a period, ...) or move a state machine to a
//! target state (`approve_by_provider`, `set_state_done`, `begin_creating`, ...), so sending
//! one twice leaves Waldur as sending it once (a repeated state transition can answer 4xx,
//! which surfaces as an error, never as a double effect). The two POSTs that create something
//! new each time, A2 (agent identity) and A9 (log lines), are retried only when they provably
//! did not reach Waldur; so are A6, B9, I6 and K2, which create an event subscription, a
//! component, a backend resource and a key record.

mod api_keys;
mod events;
mod imports;
mod offering_users;
mod offerings;
mod orders;
mod plugin;
mod policies;
mod projects;
mod registry;
mod resources;
mod usage;

pub use api_keys::{ApiKeyFilter, NewKeyValue};
pub use offering_users::OfferingUserFilter;
pub use orders::OrderFilter;
pub use resources::{
    ResourceFilter, HISTORICAL_RESOURCE_FIELDS, MEMBERSHIP_RESOURCE_FIELDS, REPORT_RESOURCE_FIELDS,
};

/// The body of the `set_state_erred` / `set_as_erred` actions (O6, R10).
fn error_details(error_message: &str, error_traceback: &str) -> serde_json::Value {
    serde_json::json!({
        "error_message": error_message,
        "error_traceback": error_traceback,
    })
}

/// Owned `field=` selections as the `&[&str]` the decoders take.
fn as_strs(fields: &[String]) -> Vec<&str> {
    fields.iter().map(String::as_str).collect()
}
