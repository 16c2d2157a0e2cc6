//! Who learns about the calls into a plugin: the agent's metrics endpoint (latency per method)
//! and `waldur-agent test-order` (every call in full).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use abi_stable::std_types::RString;

use waldur_plugin_abi::Error;

/// Observes the calls that cross into a plugin instance. [`CallObserver::observe`] is on the
/// hot path of every call, so an implementation should be cheap (no allocation).
pub trait CallObserver: Send + Sync {
    fn observe(&self, method: &'static str, seconds: f64);

    /// Whether this observer also wants every crossing in full ([`CallObserver::observe_call`]).
    /// The metrics do not; a tool that prints what the plugin was asked does.
    fn wants_calls(&self) -> bool {
        false
    }

    /// One call that crossed into the plugin, with its arguments and answer; called only
    /// when [`CallObserver::wants_calls`] said so.
    fn observe_call(&self, _call: &CrossedCall<'_>) {}
}

/// One call that crossed into a plugin, as the handle sent and received it.
#[derive(Debug)]
pub struct CrossedCall<'a> {
    /// The slot's name (`create_resource`, `client_create_resource`) or the `invoke` method.
    pub method: &'a str,
    /// The arguments as sent (JSON).
    pub arguments: &'a str,
    /// The answer as received (JSON), or the plugin's error (also one decoding its answer).
    pub outcome: Result<&'a str, &'a Error>,
    /// When the call started.
    pub started: SystemTime,
    pub seconds: f64,
}

/// The observer of one backend: none by default.
#[derive(Clone, Default)]
pub(crate) struct Observed(Option<Arc<dyn CallObserver>>);

impl Observed {
    pub(crate) fn new(observer: Arc<dyn CallObserver>) -> Self {
        Self(Some(observer))
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

/// Runs one crossing of `method` with `arguments` (`cross`, which answers the raw JSON) and
/// `decode`s its answer; shows the call in full to `watcher`, if there is one (see
/// [`CallObserver::wants_calls`]).
#[inline]
pub(crate) fn watched<R>(
    watcher: Option<&dyn CallObserver>,
    method: &str,
    arguments: &str,
    cross: impl FnOnce() -> waldur_plugin_abi::Result<RString>,
    decode: impl FnOnce(&str) -> waldur_plugin_abi::Result<R>,
) -> waldur_plugin_abi::Result<R> {
    let Some(watcher) = watcher else {
        return cross().and_then(|answer| decode(answer.as_str()));
    };
    let started = SystemTime::now();
    let start = Instant::now();
    let answer = cross();
    let seconds = start.elapsed().as_secs_f64();
    let report = |outcome| {
        watcher.observe_call(&CrossedCall {
            method,
            arguments,
            outcome,
            started,
            seconds,
        })
    };
    match answer {
        Err(error) => {
            report(Err(&error));
            Err(error)
        }
        Ok(raw) => {
            let decoded = decode(raw.as_str());
            report(decoded.as_ref().map(|_| raw.as_str()));
            decoded
        }
    }
}
