//! The callbacks the agent hands to every plugin instance: logging into the agent's log and
//! Waldur requests with the offering's credentials.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::{
    marker_type::ErasedObject,
    prefix_type::WithMetadata,
    staticref,
    std_types::{RErr, ROk, RStr, RString},
};
use serde_json::Value;
use waldur_plugin_abi::ffi::{HostApi, HostApi_Ref, HostHandle, LogLevel, PResult};
use waldur_plugin_abi::Error as AbiError;

/// Performs Waldur REST calls for plugins (the agent's Waldur client implements it).
pub trait WaldurGateway: Send + Sync {
    /// `path` is relative to the offering's API URL; answers the decoded JSON body.
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &Value,
        body: Option<&Value>,
    ) -> Result<Value, AbiError>;
}

/// What the agent knows about the instance a callback comes from.
pub struct HostContext {
    /// The plugin entry, for log attribution.
    pub entry: String,
    /// The offering the instance serves, for log attribution.
    pub offering: String,
    /// `None` where no Waldur access is configured (e.g. `plugins check`).
    pub waldur: Option<Arc<dyn WaldurGateway>>,
}

impl HostContext {
    pub fn new(entry: &str, offering: &str) -> Self {
        Self {
            entry: entry.to_string(),
            offering: offering.to_string(),
            waldur: None,
        }
    }

    pub fn with_waldur(mut self, waldur: Arc<dyn WaldurGateway>) -> Self {
        self.waldur = Some(waldur);
        self
    }
}

/// Owns the context a plugin instance points at; must outlive the instance.
pub struct HostBinding {
    context: Box<HostContext>,
}

impl HostBinding {
    pub fn new(context: HostContext) -> Self {
        Self {
            context: Box::new(context),
        }
    }

    /// The handle to pass to a plugin constructor. Valid while `self` lives (the box keeps the
    /// context at a stable address even when the binding moves).
    pub fn handle(&self) -> HostHandle {
        HostHandle {
            api: HOST_API,
            ctx: (&*self.context as *const HostContext).cast::<ErasedObject>(),
        }
    }

    pub fn context(&self) -> &HostContext {
        &self.context
    }
}

struct Callbacks;

impl Callbacks {
    staticref! {
        const API: WithMetadata<HostApi> = WithMetadata::new(HostApi {
            agent_version: RStr::from_str(crate::AGENT_VERSION),
            max_log_level,
            log,
            waldur_request,
        })
    }
}

const HOST_API: HostApi_Ref = HostApi_Ref(Callbacks::API.as_prefix());

/// # Safety
/// `ctx` must be null or a pointer made by [`HostBinding::handle`] whose binding is alive.
unsafe fn context<'a>(ctx: *const ErasedObject) -> Option<&'a HostContext> {
    unsafe { ctx.cast::<HostContext>().as_ref() }
}

unsafe extern "C" fn max_log_level(_ctx: *const ErasedObject) -> LogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF => LogLevel::OFF,
        LevelFilter::ERROR => LogLevel::ERROR,
        LevelFilter::WARN => LogLevel::WARN,
        LevelFilter::INFO => LogLevel::INFO,
        LevelFilter::DEBUG => LogLevel::DEBUG,
        _ => LogLevel::TRACE,
    }
}

unsafe extern "C" fn log(
    ctx: *const ErasedObject,
    level: LogLevel,
    target: RStr<'_>,
    message: RStr<'_>,
) {
    // A panic here would unwind into plugin code: contain it.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // Records from a plugin's own threads come without an instance (null context).
        let context = unsafe { context(ctx) };
        let (entry, offering) =
            context.map_or(("?", ""), |c| (c.entry.as_str(), c.offering.as_str()));
        let (target, message) = (target.as_str(), message.as_str());
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "plugin",
                    $level,
                    plugin = %entry,
                    offering = %offering,
                    module = %target,
                    "{message}"
                )
            };
        }
        match level {
            LogLevel::ERROR => emit!(tracing::Level::ERROR),
            LogLevel::WARN => emit!(tracing::Level::WARN),
            LogLevel::INFO => emit!(tracing::Level::INFO),
            LogLevel::DEBUG => emit!(tracing::Level::DEBUG),
            _ => emit!(tracing::Level::TRACE),
        }
    }));
}

unsafe extern "C" fn waldur_request(
    ctx: *const ErasedObject,
    method: RStr<'_>,
    path: RStr<'_>,
    query_json: RStr<'_>,
    body_json: RStr<'_>,
) -> PResult<RString> {
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<RString, AbiError> {
        let context = unsafe { context(ctx) }
            .ok_or_else(|| AbiError::internal("Waldur request without an instance context"))?;
        let waldur = context.waldur.as_ref().ok_or_else(|| {
            AbiError::internal("this agent command has no Waldur connection for plugins")
        })?;
        let query: Value = if query_json.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(query_json.as_str())
                .map_err(|e| AbiError::invalid_input(format!("query is not JSON: {e}")))?
        };
        let body: Option<Value> = if body_json.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str(body_json.as_str())
                    .map_err(|e| AbiError::invalid_input(format!("body is not JSON: {e}")))?,
            )
        };
        let answer = waldur.request(method.as_str(), path.as_str(), &query, body.as_ref())?;
        Ok(RString::from(answer.to_string()))
    }));
    match outcome {
        Ok(Ok(answer)) => ROk(answer),
        Ok(Err(error)) => RErr(error.into_raw()),
        Err(_) => {
            RErr(AbiError::internal("the agent failed while serving a Waldur request").into_raw())
        }
    }
}
