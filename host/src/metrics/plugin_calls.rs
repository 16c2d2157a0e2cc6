//! Plugin call latency: the recorder every call into a plugin instance goes through.
//!
//! It is on the hot path of every plugin call, so it costs one clock read on each side and a
//! read-locked map lookup; building the lookup key copies an `Arc`, never a string.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::PluginCallLabels;

/// Records the latency of one backend's plugin calls; [`PluginCalls::default`] records
/// nothing (no metrics endpoint, or a tool outside `run`).
#[derive(Clone, Default)]
pub struct PluginCalls(Option<Recorder>);

#[derive(Clone)]
struct Recorder {
    family: Family<PluginCallLabels, Histogram>,
    plugin: Arc<str>,
}

impl std::fmt::Debug for PluginCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PluginCalls")
            .field(&self.0.as_ref().map(|r| &r.plugin))
            .finish()
    }
}

impl PluginCalls {
    pub(super) fn recording(family: Family<PluginCallLabels, Histogram>, plugin: &str) -> Self {
        Self(Some(Recorder {
            family,
            plugin: Arc::from(plugin),
        }))
    }

    /// Runs `call` (one call into the plugin's `method`) and records how long it took.
    #[inline]
    pub fn time<T>(&self, method: &'static str, call: impl FnOnce() -> T) -> T {
        let Some(recorder) = &self.0 else {
            return call();
        };
        let start = Instant::now();
        let answer = call();
        let seconds = start.elapsed().as_secs_f64();
        let labels = PluginCallLabels {
            plugin: Arc::clone(&recorder.plugin),
            method,
        };
        recorder.family.get_or_create(&labels).observe(seconds);
        answer
    }
}
