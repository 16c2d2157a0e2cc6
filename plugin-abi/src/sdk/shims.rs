//! The `extern "C"` side of the vtables: decode arguments, call the vendor's trait method inside
//! `catch_unwind`, encode the answer. Generated once here, so no vendor can forget a guard.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    marker_type::ErasedObject,
    prefix_type::WithMetadata,
    staticref,
    std_types::{RErr, ROk, RStr, RString},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::ffi::{
    BackendVT, BackendVT_Ref, ClientVT, ClientVT_Ref, HostHandle, PResult, RawBackend,
    RawUsernameBackend, UsernameVT, UsernameVT_Ref,
};
use crate::sdk::{logging, Backend, BackendContext, Host, UsernameBackend, UsernameContext};
use crate::wire::{BackendComponents, JsonMap, OfferingInfo};

/// Runs vendor code; a panic becomes a PANICKED error instead of unwinding into the agent.
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> PResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(error)) => RErr(error.into_raw()),
        Err(payload) => {
            let message = logging::panic_message(&*payload);
            // Dropping a payload runs its Drop, which could itself panic; leak it instead.
            std::mem::forget(payload);
            RErr(Error::new(crate::ErrorKind::PANICKED, message).into_raw())
        }
    }
}

/// The plugin state behind the erased `this` pointer.
struct Instance<T> {
    value: T,
    host: HostHandle,
}

fn decode<A: DeserializeOwned>(what: &str, json: RStr<'_>) -> Result<A> {
    let text = if json.is_empty() { "{}" } else { json.as_str() };
    serde_json::from_str(text)
        .map_err(|e| Error::invalid_input(format!("{what}: cannot decode arguments: {e}")))
}

fn encode<R: Serialize>(what: &str, value: &R) -> Result<RString> {
    serde_json::to_string(value)
        .map(RString::from)
        .map_err(|e| Error::internal(format!("{what}: cannot encode the answer: {e}")))
}

/// Shared body of every slot.
///
/// # Safety
/// `this` must point to a live `Instance<T>` made by this module.
unsafe fn call_slot<T, A: DeserializeOwned, R: Serialize>(
    this: *const ErasedObject,
    method: &'static str,
    args_json: RStr<'_>,
    f: impl FnOnce(&T, A) -> Result<R>,
) -> PResult<RString> {
    let instance = unsafe { &*(this as *const Instance<T>) };
    let _scope = logging::enter(instance.host);
    guard(|| {
        let args = decode(method, args_json)?;
        encode(method, &f(&instance.value, args)?)
    })
}

/// # Safety
/// `this` must be a pointer from `Box::into_raw` of an `Instance<T>`, used once.
unsafe fn drop_instance<T>(this: *mut ErasedObject) -> PResult<()> {
    let instance = unsafe { Box::from_raw(this as *mut Instance<T>) };
    let _scope = logging::enter(instance.host);
    guard(move || {
        drop(instance);
        Ok(())
    })
}

/// Generates the shim functions and the static vtable of one catalogue for a vendor type.
macro_rules! gen_shims {
    (
        $shims:ident<T: $trait:ident>, $vt:ident, $argmod:ident, [$($head:tt)*];
        $(
            $(#[doc = $doc:literal])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
        )*
    ) => {
        pub struct $shims<T>(PhantomData<T>);

        #[allow(unused_variables, dead_code)]
        impl<T: $trait> $shims<T> {
            unsafe extern "C" fn drop_(this: *mut ErasedObject) -> PResult<()> {
                unsafe { drop_instance::<T>(this) }
            }

            $(
                unsafe extern "C" fn $name(
                    this: *const ErasedObject,
                    args_json: RStr<'_>,
                ) -> PResult<RString> {
                    unsafe {
                        call_slot(
                            this,
                            stringify!($name),
                            args_json,
                            |value: &T, args: crate::args::$argmod::$name::Args| {
                                value.$name($(args.$arg),*)
                            },
                        )
                    }
                }
            )*

            staticref! {
                const VT: WithMetadata<$vt> = WithMetadata::new($vt {
                    $($head)*
                    $( $name: Self::$name, )*
                    invoke: Self::invoke_,
                })
            }
        }
    };
}

with_backend_methods!(
    gen_shims!(BackendShims<T: Backend>, BackendVT, backend, [drop: Self::drop_,])
);
with_client_methods!(gen_shims!(ClientShims<T: Backend>, ClientVT, client, []));
with_username_methods!(
    gen_shims!(UsernameShims<T: UsernameBackend>, UsernameVT, username, [drop: Self::drop_,])
);

impl<T: Backend> BackendShims<T> {
    unsafe extern "C" fn invoke_(
        this: *const ErasedObject,
        method: RStr<'_>,
        args_json: RStr<'_>,
    ) -> PResult<RString> {
        unsafe {
            call_slot(this, "invoke", args_json, |value: &T, args| {
                value.invoke(method.as_str(), args)
            })
        }
    }
}

impl<T: Backend> ClientShims<T> {
    /// Client additions after 1.0 reach the same `Backend::invoke`, prefixed `client_`.
    unsafe extern "C" fn invoke_(
        this: *const ErasedObject,
        method: RStr<'_>,
        args_json: RStr<'_>,
    ) -> PResult<RString> {
        let name = format!("client_{}", method.as_str());
        unsafe {
            call_slot(this, "invoke", args_json, |value: &T, args| {
                value.invoke(&name, args)
            })
        }
    }
}

impl<T: UsernameBackend> UsernameShims<T> {
    unsafe extern "C" fn invoke_(
        this: *const ErasedObject,
        method: RStr<'_>,
        args_json: RStr<'_>,
    ) -> PResult<RString> {
        unsafe {
            call_slot(this, "invoke", args_json, |value: &T, args| {
                value.invoke(method.as_str(), args)
            })
        }
    }
}

/// Builds a `T` for the agent (called by the export macro's constructor).
pub fn new_backend<T: Backend>(
    entry: RStr<'_>,
    settings_json: RStr<'_>,
    components_json: RStr<'_>,
    host: HostHandle,
) -> PResult<RawBackend> {
    logging::install(host);
    let _scope = logging::enter(host);
    guard(|| {
        let settings: JsonMap = decode("backend_settings", settings_json)?;
        let components: BackendComponents = decode("backend_components", components_json)?;
        // Errors stop construction; warnings are the agent's to report (it validates once
        // per offering, knowing every entry that shares these settings).
        T::validate_settings(&settings)?;
        T::validate_components(&components)?;
        let value = T::new(BackendContext {
            entry: entry.to_string(),
            settings,
            components,
            host: Host::new(host),
        })?;
        Ok(wrap_backend(value, host))
    })
}

/// The vtables over an instance built already: what [`new_backend`] answers, and what a test
/// harness uses for an instance the test built itself (with a recording command runner, say).
pub fn wrap_backend<T: Backend>(value: T, host: HostHandle) -> RawBackend {
    let instance = Box::new(Instance { value, host });
    RawBackend {
        this: Box::into_raw(instance) as *mut ErasedObject,
        vtable: BackendVT_Ref(BackendShims::<T>::VT.as_prefix()),
        client: ClientVT_Ref(ClientShims::<T>::VT.as_prefix()),
    }
}

/// Builds a username backend `T` for the agent.
pub fn new_username_backend<T: UsernameBackend>(
    entry: RStr<'_>,
    settings_json: RStr<'_>,
    offering_json: RStr<'_>,
    host: HostHandle,
) -> PResult<RawUsernameBackend> {
    logging::install(host);
    let _scope = logging::enter(host);
    guard(|| {
        let settings: JsonMap = decode("backend_settings", settings_json)?;
        let offering: OfferingInfo = decode("offering", offering_json)?;
        T::validate_settings(&settings)?;
        let value = T::new(UsernameContext {
            entry: entry.to_string(),
            settings,
            offering,
            host: Host::new(host),
        })?;
        let instance = Box::new(Instance { value, host });
        Ok(RawUsernameBackend {
            this: Box::into_raw(instance) as *mut ErasedObject,
            vtable: UsernameVT_Ref(UsernameShims::<T>::VT.as_prefix()),
        })
    })
}

/// Validation entry points of the root module.
pub fn validate_backend_settings<T: Backend>(settings_json: RStr<'_>) -> PResult<RString> {
    guard(|| {
        let settings: JsonMap = decode("backend_settings", settings_json)?;
        encode("validate_settings", &T::validate_settings(&settings)?)
    })
}

pub fn validate_backend_components<T: Backend>(components_json: RStr<'_>) -> PResult<RString> {
    guard(|| {
        let components: BackendComponents = decode("backend_components", components_json)?;
        encode("validate_components", &T::validate_components(&components)?)
    })
}

pub fn validate_username_settings<T: UsernameBackend>(settings_json: RStr<'_>) -> PResult<RString> {
    guard(|| {
        let settings: JsonMap = decode("backend_settings", settings_json)?;
        encode("validate_settings", &T::validate_settings(&settings)?)
    })
}

/// A username entry has no components; any are accepted.
pub fn no_components() -> PResult<RString> {
    ROk(RString::from("[]"))
}

/// The answer for an entry name the plugin does not register.
pub fn unknown_entry<T>(kind: &str, entry: RStr<'_>) -> PResult<T> {
    RErr(
        Error::invalid_input(format!("this plugin has no {kind} entry named '{entry}'")).into_raw(),
    )
}
