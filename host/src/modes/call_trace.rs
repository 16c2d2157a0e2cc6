//! Every call an agent makes into its plugins, in full and in order: what `test-order` prints.
//! An agent built [`super::runtime::Agent::with_call_trace`] hands every backend it builds an
//! observer of its entry that records into one shared trace.

use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use serde_json::Value;
use waldur_plugin_host::{CallObserver, CrossedCall, WriteRecorder};

/// The calls recorded so far, across every plugin entry of the agent.
#[derive(Debug, Default)]
pub struct CallTrace {
    calls: Mutex<Vec<PluginCall>>,
}

/// One call that crossed into a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginCall {
    /// The plugin entry (`demo`, `slurm`, `template`).
    pub entry: String,
    pub method: String,
    /// The arguments as sent (JSON; a string when they were not JSON).
    pub arguments: Value,
    pub outcome: CallOutcome,
    /// When the call started, microseconds since the Unix epoch (to order it among the
    /// Waldur requests).
    pub started_unix_us: u64,
    pub seconds: f64,
}

/// What the plugin answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallOutcome {
    Ok {
        answer: Value,
    },
    /// The plugin left the method to the agent's default (its SDK answered NOT_IMPLEMENTED).
    NotImplemented,
    /// A dry run did not call this writing method (`arguments` are what it would have got).
    Withheld,
    Failed {
        kind: String,
        message: String,
    },
}

impl CallTrace {
    /// The observer for the backends of one plugin entry.
    pub fn observer(self: &Arc<Self>, entry: &str) -> Arc<dyn CallObserver> {
        Arc::new(EntryCalls {
            entry: entry.to_string(),
            trace: Arc::clone(self),
        })
    }

    /// In a dry run: each write the backends of `entry` withhold is recorded as a call that
    /// was not made, and then told to `inner`.
    pub fn withheld(
        self: &Arc<Self>,
        entry: &str,
        inner: Arc<dyn WriteRecorder>,
    ) -> Arc<dyn WriteRecorder> {
        Arc::new(WithheldCalls {
            entry: entry.to_string(),
            trace: Arc::clone(self),
            inner,
        })
    }

    /// The calls recorded since the last `take`, oldest first.
    pub fn take(&self) -> Vec<PluginCall> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct EntryCalls {
    entry: String,
    trace: Arc<CallTrace>,
}

impl CallObserver for EntryCalls {
    /// The latency comes with each call in full.
    fn observe(&self, _method: &'static str, _seconds: f64) {}

    fn wants_calls(&self) -> bool {
        true
    }

    fn observe_call(&self, call: &CrossedCall<'_>) {
        let json = |text: &str| {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        };
        let outcome = match call.outcome {
            Ok(answer) => CallOutcome::Ok {
                answer: json(answer),
            },
            Err(e) if e.is_not_implemented() => CallOutcome::NotImplemented,
            Err(e) => CallOutcome::Failed {
                kind: e.kind.name().to_string(),
                message: e.message.clone(),
            },
        };
        let started_unix_us = call
            .started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let recorded = PluginCall {
            entry: self.entry.clone(),
            method: call.method.to_string(),
            arguments: json(call.arguments),
            outcome,
            started_unix_us,
            seconds: call.seconds,
        };
        self.trace
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(recorded);
    }
}

/// The withheld writes of one entry's backends, into the trace and on to the plan.
struct WithheldCalls {
    entry: String,
    trace: Arc<CallTrace>,
    inner: Arc<dyn WriteRecorder>,
}

impl WriteRecorder for WithheldCalls {
    fn record(&self, method: &'static str, arguments: Value) {
        let started_unix_us = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        self.trace
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PluginCall {
                entry: self.entry.clone(),
                method: method.to_string(),
                arguments: arguments.clone(),
                outcome: CallOutcome::Withheld,
                started_unix_us,
                seconds: 0.0,
            });
        self.inner.record(method, arguments);
    }
}
