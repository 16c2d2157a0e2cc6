//! A test harness for plugin authors: a plugin's backend as the agent runs it, in-process.
//!
//! [`Harness::backend`] builds the plugin type's instance through the SDK's own constructor
//! shim and vtable (the code its `.so` exports), without dlopen, and wraps it in the agent's
//! [`Backend`]: the manifest's list of implemented methods is trusted as the loader trusts it,
//! and every method the plugin leaves out runs the agent's real default algorithm. A test
//! drives it with the typed calls the agent's modes make and sees exactly what a site would.
//! [`FakeWaldur`] answers the plugin's Waldur requests from a table and records them.
//!
//! ```
//! use waldur_plugin_abi::wire::WaldurResource;
//! use waldur_plugin_abi::{backend_impl, Backend, BackendContext, Client, Result};
//! use waldur_plugin_host::testing::Harness;
//!
//! struct Tiny;
//!
//! #[backend_impl]
//! impl Client for Tiny {}
//!
//! #[backend_impl]
//! impl Backend for Tiny {
//!     fn new(_context: BackendContext) -> Result<Self> {
//!         Ok(Tiny)
//!     }
//!
//!     fn ping(&self, _raise_exception: bool) -> Result<bool> {
//!         Ok(true)
//!     }
//! }
//!
//! # fn main() -> std::result::Result<(), waldur_plugin_host::PluginError> {
//! let backend = Harness::new("tiny").backend::<Tiny>()?;
//! assert!(backend.ping(false)?);
//! // Tiny leaves the hook out: the agent's default runs, without a call into Tiny.
//! backend.pre_delete_resource(&WaldurResource::default())?;
//! // The two calls that crossed: `capabilities` (read at construction) and `ping`.
//! assert_eq!(backend.handle().crossings(), 2);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Once};

use abi_stable::std_types::{RStr, RString};
use serde_json::Value;
use waldur_plugin_abi::ffi::RawBackend;
use waldur_plugin_abi::sdk::shims;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, OfferingInfo};
use waldur_plugin_abi::{Error as AbiError, ErrorKind};

use crate::handle::{BackendHandle, UsernameHandle};
use crate::{Backend, HostBinding, HostContext, PluginError, UsernameBackend, WaldurGateway};

/// Builds plugin instances for one offering, as the agent would for its config.
#[derive(Clone)]
pub struct Harness {
    entry: String,
    offering: String,
    settings: JsonMap,
    components: BackendComponents,
    waldur: Option<Arc<dyn WaldurGateway>>,
}

impl Harness {
    /// An offering served by the plugin entry `entry`, with no settings and no components.
    pub fn new(entry: &str) -> Self {
        Self {
            entry: entry.to_string(),
            offering: "test offering".to_string(),
            settings: JsonMap::new(),
            components: BackendComponents::new(),
            waldur: None,
        }
    }

    /// The offering's name (log lines are attributed to it).
    pub fn offering(mut self, name: &str) -> Self {
        self.offering = name.to_string();
        self
    }

    /// The offering's `backend_settings`, a JSON object.
    ///
    /// # Panics
    /// When `settings` is not a JSON object: that is a mistake in the test.
    pub fn settings(mut self, settings: Value) -> Self {
        self.settings = serde_json::from_value(settings).expect("backend_settings: a JSON object");
        self
    }

    /// The offering's `backend_components`, as in the agent's YAML config.
    ///
    /// # Panics
    /// When `components` is not a valid `backend_components` map.
    pub fn components(mut self, components: Value) -> Self {
        self.components =
            serde_json::from_value(components).expect("backend_components: a valid map");
        self
    }

    /// Where the plugin's Waldur requests go (none: they fail as in `plugins check`).
    pub fn waldur(mut self, waldur: Arc<dyn WaldurGateway>) -> Self {
        self.waldur = Some(waldur);
        self
    }

    /// The warnings the agent prints for these settings and components (`config check`), or
    /// the error that keeps the offering from starting.
    pub fn validate<T: waldur_plugin_abi::Backend>(&self) -> Result<Vec<String>, PluginError> {
        let settings = to_json(&self.settings);
        let components = to_json(&self.components);
        let mut warnings = self.warnings(
            "validate_settings",
            shims::validate_backend_settings::<T>(RStr::from_str(&settings)).into_result(),
        )?;
        warnings.extend(self.warnings(
            "validate_components",
            shims::validate_backend_components::<T>(RStr::from_str(&components)).into_result(),
        )?);
        Ok(warnings)
    }

    /// `T`'s backend wrapped in the agent's defaults, as the loader builds it from the `.so`.
    pub fn backend<T: waldur_plugin_abi::Backend>(&self) -> Result<Backend, PluginError> {
        install_sdk_logging_once();
        let binding = HostBinding::new(self.context());
        let (settings, components) = (to_json(&self.settings), to_json(&self.components));
        let raw = shims::new_backend::<T>(
            RStr::from_str(&self.entry),
            RStr::from_str(&settings),
            RStr::from_str(&components),
            binding.handle(),
        )
        .into_result()
        .map_err(|e| PluginError::new(&self.entry, "new_backend", AbiError::from_raw(e)))?;
        Ok(self.wrap::<T>(raw, binding))
    }

    /// An instance the test built itself (say, with a command runner that records what it
    /// runs), wrapped as [`Harness::backend`] wraps a constructed one. The settings and
    /// components given to the harness are what the agent's defaults read (`soft_delete`,
    /// the project prefix, the component types).
    pub fn backend_of<T: waldur_plugin_abi::Backend>(&self, value: T) -> Backend {
        install_sdk_logging_once();
        let binding = HostBinding::new(self.context());
        let raw = shims::wrap_backend(value, binding.handle());
        self.wrap::<T>(raw, binding)
    }

    /// The agent's `Backend` over a raw instance of `T` bound to `binding`, with the manifest's
    /// list trusted as the loader trusts it.
    fn wrap<T: waldur_plugin_abi::Backend>(
        &self,
        raw: RawBackend,
        binding: HostBinding,
    ) -> Backend {
        // SAFETY: `raw` was built by the SDK in this process for `binding`, which `Backend`
        // keeps alive for as long as the instance.
        let mut handle = unsafe { BackendHandle::from_raw(raw) };
        handle.leave_to_agent(&implemented::<T>());
        Backend::new(
            handle,
            binding,
            self.entry.clone(),
            self.settings.clone(),
            self.components.clone(),
        )
    }

    /// `T`'s username-management backend, as the loader builds it.
    pub fn username_backend<T: waldur_plugin_abi::UsernameBackend>(
        &self,
        offering: &OfferingInfo,
    ) -> Result<UsernameBackend, PluginError> {
        install_sdk_logging_once();
        let binding = HostBinding::new(self.context());
        let (settings, offering) = (to_json(&self.settings), to_json(offering));
        let raw = shims::new_username_backend::<T>(
            RStr::from_str(&self.entry),
            RStr::from_str(&settings),
            RStr::from_str(&offering),
            binding.handle(),
        )
        .into_result()
        .map_err(|e| {
            PluginError::new(&self.entry, "new_username_backend", AbiError::from_raw(e))
        })?;
        // SAFETY: as in `backend`.
        let mut handle = unsafe { UsernameHandle::from_raw(raw) };
        let listed: Vec<String> = T::IMPLEMENTED.iter().map(|m| m.to_string()).collect();
        handle.leave_to_agent(&listed);
        Ok(UsernameBackend::new(handle, binding, self.entry.clone()))
    }

    fn context(&self) -> HostContext {
        let context = HostContext::new(&self.entry, &self.offering);
        match &self.waldur {
            Some(waldur) => context.with_waldur(Arc::clone(waldur)),
            None => context,
        }
    }

    fn warnings(
        &self,
        method: &'static str,
        answer: Result<RString, waldur_plugin_abi::ffi::RawError>,
    ) -> Result<Vec<String>, PluginError> {
        let fail = |e| PluginError::new(&self.entry, method, e);
        let answer = answer.map_err(|e| fail(AbiError::from_raw(e)))?;
        serde_json::from_str(answer.as_str()).map_err(|e| {
            fail(AbiError::invalid_input(format!(
                "the plugin answered invalid warnings: {e}"
            )))
        })
    }
}

/// What the manifest of a plugin exporting `T` lists (the export macro's union of both).
fn implemented<T: waldur_plugin_abi::Backend>() -> Vec<String> {
    <T as waldur_plugin_abi::Backend>::IMPLEMENTED
        .iter()
        .chain(<T as waldur_plugin_abi::Client>::IMPLEMENTED)
        .map(|m| m.to_string())
        .collect()
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("wire types serialize")
}

/// Routes the plugin's `log` records and panic messages to this process's `tracing`, once,
/// and leaves the test runner's panic hook in place.
fn install_sdk_logging_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The SDK keeps the handle for records from the plugin's own threads.
        let binding: &'static HostBinding = Box::leak(Box::new(HostBinding::new(
            HostContext::new("plugin", "tests"),
        )));
        let runner_hook = std::panic::take_hook();
        waldur_plugin_abi::sdk::logging::install(binding.handle());
        drop(std::panic::take_hook());
        std::panic::set_hook(runner_hook);
    });
}

/// One request a plugin made to Waldur.
#[derive(Debug, Clone, PartialEq)]
pub struct WaldurRequest {
    pub method: String,
    pub path: String,
    pub query: Value,
    pub body: Option<Value>,
}

/// A Waldur that answers each `(method, path)` from a table and records every request.
/// A request with no answer fails as a 404 from Waldur would.
#[derive(Default)]
pub struct FakeWaldur {
    answers: Mutex<BTreeMap<(String, String), Value>>,
    requests: Mutex<Vec<WaldurRequest>>,
}

impl FakeWaldur {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Answers `method path` (e.g. `GET`, `marketplace-provider-resources/`) with `body`.
    pub fn answer(&self, method: &str, path: &str, body: Value) {
        lock(&self.answers).insert((method.to_uppercase(), path.to_string()), body);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<WaldurRequest> {
        lock(&self.requests).clone()
    }
}

impl WaldurGateway for FakeWaldur {
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
    ) -> Result<Value, AbiError> {
        lock(&self.requests).push(WaldurRequest {
            method: method.to_uppercase(),
            path: path.to_string(),
            query: query.clone(),
            body: body.cloned(),
        });
        lock(&self.answers)
            .get(&(method.to_uppercase(), path.to_string()))
            .cloned()
            .ok_or_else(|| {
                AbiError::new(
                    ErrorKind::BACKEND,
                    format!("Waldur answered 404 to {} {path}", method.to_uppercase()),
                )
            })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
