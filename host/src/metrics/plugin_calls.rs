//! Plugin call latency: the recorder every call into a plugin instance goes through.
//!
//! It is on the hot path of every plugin call, so it costs a read-locked map lookup (the
//! backend reads the clock on each side); building the lookup key copies an `Arc`, never a
//! string.

use std::sync::Arc;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use waldur_plugin_host::CallObserver;

use super::PluginCallLabels;

/// Records the latency of one plugin entry's calls into the metrics endpoint's histogram.
/// The backend calls it only for calls that cross into the plugin.
#[derive(Clone)]
pub struct PluginCalls {
    family: Family<PluginCallLabels, Histogram>,
    plugin: Arc<str>,
}

impl std::fmt::Debug for PluginCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PluginCalls").field(&self.plugin).finish()
    }
}

impl PluginCalls {
    pub(super) fn recording(family: Family<PluginCallLabels, Histogram>, plugin: &str) -> Self {
        Self {
            family,
            plugin: Arc::from(plugin),
        }
    }
}

impl CallObserver for PluginCalls {
    #[inline]
    fn observe(&self, method: &'static str, seconds: f64) {
        let labels = PluginCallLabels {
            plugin: Arc::clone(&self.plugin),
            method,
        };
        self.family.get_or_create(&labels).observe(seconds);
    }
}
