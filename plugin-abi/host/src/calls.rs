//! Who learns how long each plugin call took (the agent's metrics endpoint).

use std::sync::Arc;
use std::time::Instant;

/// Observes the latency of each call that crosses into a plugin instance. It is on the hot
/// path of every call, so an implementation should be cheap (no allocation).
pub trait CallObserver: Send + Sync {
    fn observe(&self, method: &'static str, seconds: f64);
}

/// The observer of one backend: none by default.
#[derive(Clone, Default)]
pub(crate) struct Observed(Option<Arc<dyn CallObserver>>);

impl Observed {
    pub(crate) fn new(observer: impl CallObserver + 'static) -> Self {
        Self(Some(Arc::new(observer)))
    }

    /// Runs `call` (one typed call of the plugin's `method`) and reports how long it took
    /// if it `crosses` into the plugin: a method the manifest leaves to the agent is not a
    /// plugin call. `crosses` is asked only when someone observes.
    #[inline]
    pub(crate) fn time<T>(
        &self,
        method: &'static str,
        crosses: impl FnOnce(&'static str) -> bool,
        call: impl FnOnce() -> T,
    ) -> T {
        let Some(observer) = self.0.as_ref().filter(|_| crosses(method)) else {
            return call();
        };
        let start = Instant::now();
        let answer = call();
        observer.observe(method, start.elapsed().as_secs_f64());
        answer
    }
}
