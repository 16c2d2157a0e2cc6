//! The plan of a dry run (`waldur-agent run --dry-run`): every write the agent would have made,
//! to Waldur and to the backends, in the order it would have made it.
//!
//! A dry run reads everything for real and writes nothing. Its Waldur clients record each
//! request that is not a GET instead of sending it (see [`crate::waldur`]); its plugin backends
//! record each call of a writing method instead of making it (see
//! [`waldur_plugin_host::withheld`]). Both answer as if the write had succeeded, so the cycle
//! goes on to the writes that would follow. Where a later read would show a withheld write
//! (the backend id of a resource just created, the state of an order just approved), the
//! client answers it as Waldur would have: [`Assumed`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use waldur_plugin_host::WriteRecorder;

/// Where a planned write would have gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Waldur,
    Backend,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Waldur => "waldur",
            System::Backend => "backend",
        }
    }
}

/// One write the dry run did not make.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    /// The offering's name in the configuration.
    pub offering: String,
    pub system: System,
    /// For Waldur, the reference's call (`O3 marketplace_orders_approve_by_provider`); for a
    /// backend, the plugin entry (`slurm`).
    pub via: String,
    /// `POST /api/marketplace-orders/<uuid>/approve_by_provider/`, or the plugin method.
    pub action: String,
    /// The request body (null without one), or the plugin method's arguments.
    pub arguments: Value,
}

/// A field a withheld write would have changed, which later reads of the dry run show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Assumed {
    /// R4 `set_backend_id`, read back by R2.
    ResourceBackendId,
    /// O3 approve, O4 reject, O5 done, O6 erred, read back by O2.
    OrderState,
}

/// The writes of one dry run, shared by every client and backend it opened.
#[derive(Debug, Default)]
pub struct Plan {
    writes: Mutex<Vec<PlannedWrite>>,
    /// `(field, object uuid)` -> the value the withheld write set.
    assumed: Mutex<BTreeMap<(Assumed, String), String>>,
}

impl Plan {
    pub fn new() -> Arc<Plan> {
        Arc::new(Plan::default())
    }

    fn push(&self, write: PlannedWrite) {
        tracing::info!(
            system = write.system.name(),
            via = %write.via,
            "dry run: not done: {}",
            write.action
        );
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(write);
    }

    /// Every planned write so far, in order.
    pub fn writes(&self) -> Vec<PlannedWrite> {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What a Waldur client of `offering` should record into.
    pub fn waldur(self: &Arc<Self>, offering: &str) -> WaldurWrites {
        WaldurWrites {
            plan: Arc::clone(self),
            offering: offering.to_string(),
        }
    }

    /// What a plugin backend of `offering` built from `entry` should record into.
    pub fn backend(self: &Arc<Self>, offering: &str, entry: &str) -> Arc<dyn WriteRecorder> {
        Arc::new(BackendWrites {
            plan: Arc::clone(self),
            offering: offering.to_string(),
            entry: entry.to_string(),
        })
    }
}

/// The Waldur requests of one offering's client that a dry run holds back.
#[derive(Debug, Clone)]
pub struct WaldurWrites {
    plan: Arc<Plan>,
    offering: String,
}

impl WaldurWrites {
    /// `method path?query` with `body` (JSON text, or none) would have been sent.
    pub(crate) fn record(&self, endpoint: &str, request: String, body: Option<&[u8]>) {
        let arguments = body
            .map(|body| serde_json::from_slice(body).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        self.plan.push(PlannedWrite {
            offering: self.offering.clone(),
            system: System::Waldur,
            via: endpoint.to_string(),
            action: request,
            arguments,
        });
    }

    /// A withheld write set `field` of the object `uuid` to `value`.
    pub(crate) fn assume(&self, field: Assumed, uuid: &str, value: &str) {
        self.plan
            .assumed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (field, crate::waldur::normalize_uuid(uuid)),
                value.to_string(),
            );
    }

    /// What a withheld write set `field` of `uuid` to, if one did.
    pub(crate) fn assumed(&self, field: Assumed, uuid: &str) -> Option<String> {
        self.plan
            .assumed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(field, crate::waldur::normalize_uuid(uuid)))
            .cloned()
    }
}

struct BackendWrites {
    plan: Arc<Plan>,
    offering: String,
    entry: String,
}

impl WriteRecorder for BackendWrites {
    fn record(&self, method: &'static str, arguments: Value) {
        self.plan.push(PlannedWrite {
            offering: self.offering.clone(),
            system: System::Backend,
            via: self.entry.clone(),
            action: method.to_string(),
            arguments,
        });
    }
}
