//! What a plugin receives at construction: its settings and the agent's callbacks.

use abi_stable::std_types::RStr;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ffi::HostHandle;
use crate::wire::{BackendComponents, JsonMap, OfferingInfo};

/// Construction input of a [`crate::Backend`].
#[derive(Clone)]
pub struct BackendContext {
    /// The entry name the agent asked for (one plugin may register several).
    pub entry: String,
    /// The offering's `backend_settings`.
    pub settings: JsonMap,
    /// The offering's `backend_components`.
    pub components: BackendComponents,
    pub host: Host,
}

/// Construction input of a [`crate::UsernameBackend`].
#[derive(Clone)]
pub struct UsernameContext {
    pub entry: String,
    pub settings: JsonMap,
    pub offering: OfferingInfo,
    pub host: Host,
}

/// The agent's callbacks: Waldur API access with the offering's credentials.
/// (Logging needs no handle: use the `log` or `tracing` macros.)
#[derive(Clone, Copy)]
pub struct Host {
    handle: HostHandle,
}

impl Host {
    pub(crate) fn new(handle: HostHandle) -> Self {
        Self { handle }
    }

    /// A host with no agent behind it, for a vendor's unit tests: log records go to stderr
    /// and Waldur requests fail. The agent never hands this to a plugin.
    pub fn detached() -> Self {
        Self {
            handle: detached::handle(),
        }
    }

    /// The raw handle, for code that builds instances through the C ABI in-process.
    #[doc(hidden)]
    pub fn raw_handle(&self) -> HostHandle {
        self.handle
    }

    /// The version of the agent that loaded the plugin.
    pub fn agent_version(&self) -> &'static str {
        self.handle.api.agent_version().as_str()
    }

    /// One Waldur REST call, e.g. `("GET", "marketplace-provider-offerings/<uuid>/", {}, None)`.
    /// Paths are relative to the offering's API URL.
    pub fn waldur_request(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
    ) -> Result<Value> {
        let query = query.to_string();
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = self.handle.api.waldur_request();
        // SAFETY: the agent keeps `ctx` alive while this plugin instance exists.
        let answer = unsafe {
            request(
                self.handle.ctx,
                RStr::from_str(method),
                RStr::from_str(path),
                RStr::from_str(&query),
                RStr::from_str(&body),
            )
        }
        .into_result()
        .map_err(Error::from_raw)?;
        if answer.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(answer.as_str())
            .map_err(|e| Error::internal(format!("Waldur answer to {method} {path}: {e}")))
    }

    pub fn waldur_get(&self, path: &str, query: &Value) -> Result<Value> {
        self.waldur_request("GET", path, query, None)
    }

    pub fn waldur_post(&self, path: &str, body: &Value) -> Result<Value> {
        self.waldur_request("POST", path, &Value::Object(JsonMap::new()), Some(body))
    }
}

/// The callbacks behind [`Host::detached`].
mod detached {
    use abi_stable::{
        marker_type::ErasedObject,
        prefix_type::WithMetadata,
        staticref,
        std_types::{RErr, RStr, RString},
    };

    use crate::error::Error;
    use crate::ffi::{HostApi, HostApi_Ref, HostHandle, LogLevel, PResult};

    unsafe extern "C" fn max_log_level(_ctx: *const ErasedObject) -> LogLevel {
        LogLevel::DEBUG
    }

    unsafe extern "C" fn log(
        _ctx: *const ErasedObject,
        level: LogLevel,
        target: RStr<'_>,
        message: RStr<'_>,
    ) {
        eprintln!("[plugin {:?} {target}] {message}", level.0);
    }

    unsafe extern "C" fn waldur_request(
        _ctx: *const ErasedObject,
        method: RStr<'_>,
        path: RStr<'_>,
        _query_json: RStr<'_>,
        _body_json: RStr<'_>,
    ) -> PResult<RString> {
        RErr(Error::internal(format!("no agent behind this host: {method} {path}")).into_raw())
    }

    struct Detached;

    impl Detached {
        staticref! {
            const API: WithMetadata<HostApi> = WithMetadata::new(HostApi {
                agent_version: RStr::from_str("detached"),
                max_log_level,
                log,
                waldur_request,
            })
        }
    }

    pub(super) fn handle() -> HostHandle {
        HostHandle {
            api: HostApi_Ref(Detached::API.as_prefix()),
            ctx: std::ptr::null(),
        }
    }
}
