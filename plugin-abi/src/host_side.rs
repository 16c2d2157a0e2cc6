//! The agent's side of the vtables: owning, thread-safe handles with one typed method per slot.
//!
//! Arguments are encoded from borrowed values (`ArgsRef`), answers decoded into the wire types.
//! Every method answers `Err` with kind NOT_IMPLEMENTED when the plugin leaves it to the
//! agent's default; the agent's generic BaseBackend logic builds on that.

use std::mem::ManuallyDrop;

use abi_stable::std_types::{RStr, RString};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ffi::{ErrorKind, PResult, RawBackend, RawUsernameBackend};
#[allow(unused_imports)]
use crate::wire::*;
use abi_stable::marker_type::ErasedObject;

type Slot = unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> PResult<RString>;

/// Encodes `args`, calls `slot`, decodes the answer.
///
/// # Safety
/// `this` and `slot` must belong to the same live plugin instance.
unsafe fn call<A: Serialize, R: DeserializeOwned>(
    this: *const ErasedObject,
    method: &str,
    slot: Slot,
    args: &A,
) -> Result<R> {
    let json = serde_json::to_string(args)
        .map_err(|e| Error::invalid_input(format!("{method}: cannot encode arguments: {e}")))?;
    let answer = unsafe { slot(this, RStr::from_str(&json)) }
        .into_result()
        .map_err(Error::from_raw)?;
    decode_answer(method, &answer)
}

fn decode_answer<R: DeserializeOwned>(method: &str, answer: &RString) -> Result<R> {
    serde_json::from_str(answer.as_str()).map_err(|e| {
        Error::new(
            ErrorKind::INVALID_INPUT,
            format!("{method}: the plugin answered something that is not a valid result: {e}"),
        )
    })
}

/// Generates the typed methods of one catalogue on a handle, a by-name slot lookup, and the
/// list of method names.
macro_rules! gen_calls {
    (
        $handle:ident . $vtable:ident, $argmod:ident, $names:ident, $lookup:ident;
        $(
            $(#[doc = $doc:literal])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
        )*
    ) => {
        /// Every method of this vtable, in slot order (without `invoke`).
        pub const $names: &[&str] = &[$(stringify!($name)),*];

        impl $handle {
            fn $lookup(&self, method: &str) -> Option<Slot> {
                Some(match method {
                    $( stringify!($name) => self.raw.$vtable.$name(), )*
                    _ => return None,
                })
            }

            $(
                $(#[doc = $doc])*
                pub fn $name(&self, $($arg: &$ty),*) -> Result<$ret> {
                    let args = crate::args::$argmod::$name::ArgsRef {
                        $($arg,)*
                        _borrow: std::marker::PhantomData,
                    };
                    unsafe { call(self.raw.this, stringify!($name), self.raw.$vtable.$name(), &args) }
                }
            )*
        }
    };
}

/// The owning part shared by both handle types.
macro_rules! gen_handle {
    ($(#[$meta:meta])* $handle:ident($raw:ident), [$($lookup:ident),*]) => {
        $(#[$meta])*
        pub struct $handle {
            raw: $raw,
        }

        // SAFETY: the SDK only builds instances of `T: Send + Sync`, and the vtable functions
        // are plain functions.
        unsafe impl Send for $handle {}
        unsafe impl Sync for $handle {}

        impl $handle {
            /// # Safety
            /// `raw` must come from a constructor of a loaded plugin, the library must stay
            /// loaded (the agent never unloads) and the host context given to it alive.
            pub unsafe fn from_raw(raw: $raw) -> Self {
                Self { raw }
            }

            /// Drops the plugin state and answers whether its `Drop` panicked.
            pub fn close(self) -> Result<()> {
                let this = ManuallyDrop::new(self);
                unsafe { (this.raw.vtable.drop())(this.raw.this) }
                    .into_result()
                    .map_err(Error::from_raw)
            }

            /// A method added after ABI 1.0, by name, with a JSON object of arguments.
            pub fn invoke(&self, method: &str, args: &Value) -> Result<Value> {
                let json = args.to_string();
                let answer = unsafe {
                    (self.raw.vtable.invoke())(
                        self.raw.this,
                        RStr::from_str(method),
                        RStr::from_str(&json),
                    )
                }
                .into_result()
                .map_err(Error::from_raw)?;
                decode_answer(method, &answer)
            }

            /// Any slot by name with JSON arguments; unknown names go to `invoke`.
            pub fn call_json(&self, method: &str, args: &Value) -> Result<Value> {
                $(
                    if let Some(slot) = self.$lookup(method) {
                        return unsafe { call(self.raw.this, method, slot, args) };
                    }
                )*
                self.invoke(method, args)
            }
        }

        impl Drop for $handle {
            fn drop(&mut self) {
                if let Err(error) = unsafe { (self.raw.vtable.drop())(self.raw.this) }.into_result() {
                    tracing::error!("dropping a plugin instance failed: {}", Error::from_raw(error));
                }
            }
        }
    };
}

gen_handle!(
    /// An owned backend instance (BaseBackend and BaseClient). Calls may come from any thread
    /// at the same time.
    BackendHandle(RawBackend), [backend_slot, client_slot]
);
with_backend_methods!(gen_calls!(
    BackendHandle.vtable,
    backend,
    BACKEND_METHODS,
    backend_slot
));
with_client_methods!(gen_calls!(
    BackendHandle.client,
    client,
    CLIENT_METHODS,
    client_slot
));

gen_handle!(
    /// An owned username-management backend instance.
    UsernameHandle(RawUsernameBackend), [username_slot]
);
with_username_methods!(gen_calls!(
    UsernameHandle.vtable,
    username,
    USERNAME_METHODS,
    username_slot
));
