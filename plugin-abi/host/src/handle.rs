//! The agent's side of the vtables: owning, thread-safe handles with one typed method per slot.
//!
//! Arguments are encoded from borrowed values (`ArgsRef`, [`waldur_plugin_abi::borrowed`]), answers
//! decoded into the wire types. Every method answers `Err` with kind NOT_IMPLEMENTED when the
//! plugin leaves it to the agent's default; the agent's generic BaseBackend logic builds on
//! that. Given the manifest's list of implemented methods (`leave_to_agent`), a handle answers
//! that without crossing into the plugin for every method the list does not name.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::withheld::WriteRecorder;

use abi_stable::std_types::{RStr, RString};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use abi_stable::marker_type::ErasedObject;
use waldur_plugin_abi::ffi::{ErrorKind, PResult, RawBackend, RawUsernameBackend};
#[allow(unused_imports)]
use waldur_plugin_abi::wire::*;
use waldur_plugin_abi::{Error, Result};

use crate::calls::{watched, CallObserver};

type Slot = unsafe extern "C" fn(*const ErasedObject, RStr<'_>) -> PResult<RString>;

/// Encodes `args`, calls `slot`, decodes the answer; `watcher` sees the call in full.
///
/// # Safety
/// `this` and `slot` must belong to the same live plugin instance.
unsafe fn call<A: Serialize, R: DeserializeOwned>(
    this: *const ErasedObject,
    method: &str,
    slot: Slot,
    args: &A,
    watcher: Option<&dyn CallObserver>,
) -> Result<R> {
    let json = serde_json::to_string(args)
        .map_err(|e| Error::invalid_input(format!("{method}: cannot encode arguments: {e}")))?;
    watched(
        watcher,
        method,
        &json,
        || {
            unsafe { slot(this, RStr::from_str(&json)) }
                .into_result()
                .map_err(Error::from_raw)
        },
        |answer| decode_answer(method, answer),
    )
}

fn decode_answer<R: DeserializeOwned>(method: &str, answer: &str) -> Result<R> {
    serde_json::from_str(answer).map_err(|e| {
        Error::new(
            ErrorKind::INVALID_INPUT,
            format!("{method}: the plugin answered something that is not a valid result: {e}"),
        )
    })
}

/// `true` for a catalogue entry whose SDK trait method has a body of its own (`= { ... }` in
/// `methods.rs`): such a method answers even when the plugin does not write it out.
macro_rules! has_sdk_body {
    () => {
        false
    };
    ($body:block) => {
        true
    };
}

/// Generates the typed methods of one catalogue on a handle, a by-name slot lookup, and the
/// list of method names.
macro_rules! gen_calls {
    (
        $handle:ident . $vtable:ident [$index:literal], $argmod:ident, $names:ident, $bodies:ident,
        $lookup:ident;
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
                // `'a` is unused by methods whose arguments all travel by value.
                #[allow(clippy::extra_unused_lifetimes)]
                pub fn $name<'a>(
                    &self,
                    $($arg: <$ty as waldur_plugin_abi::borrowed::Borrowed<'a>>::Ref),*
                ) -> Result<$ret> {
                    const SLOT: usize = position($names, stringify!($name));
                    if self.left_to_agent[$index] & (1 << SLOT) != 0 {
                        return Err(Error::not_implemented(stringify!($name)));
                    }
                    let args = waldur_plugin_abi::args::$argmod::$name::ArgsRef {
                        $($arg,)*
                        _borrow: std::marker::PhantomData,
                    };
                    if let Some(recorder) = self.withheld.as_deref() {
                        if let Some(planned) = crate::withheld::intercept(recorder, stringify!($name), &args) {
                            return planned;
                        }
                    }
                    self.crossed();
                    unsafe {
                        call(
                            self.raw.this,
                            stringify!($name),
                            self.raw.$vtable.$name(),
                            &args,
                            self.watcher.as_deref(),
                        )
                    }
                }
            )*
        }

        /// Per slot of this vtable: whether the SDK trait gives the method a body of its
        /// own, so that it answers even when the plugin does not write it out.
        pub const $bodies: &[bool] = &[$(has_sdk_body!($($default)?)),*];
    };
}

/// The index of `name` in `names`, at compile time.
const fn position(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        if eq(names[i].as_bytes(), name.as_bytes()) {
            return i;
        }
        i += 1;
    }
    panic!("not a catalogue method")
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The slots of one vtable the plugin leaves to the agent, one bit per slot: the manifest
/// lists the methods the plugin writes out, so the others answer NOT_IMPLEMENTED without a
/// call. A vtable none of whose methods the manifest lists (a plugin built without
/// `#[backend_impl]` on that `impl`, or a manifest without the list) is called slot by slot.
fn left_to_agent(implemented: &[String], names: &[&str], sdk_bodies: &[bool]) -> u128 {
    let listed = |name: &str| implemented.iter().any(|m| m == name);
    if !names.iter().any(|name| listed(name)) {
        return 0;
    }
    names
        .iter()
        .zip(sdk_bodies)
        .enumerate()
        .filter(|(_, (name, has_body))| !listed(name) && !**has_body)
        .fold(0, |mask, (slot, _)| mask | 1 << slot)
}

/// The owning part shared by both handle types.
macro_rules! gen_handle {
    (
        $(#[$meta:meta])* $handle:ident($raw:ident),
        [$($lookup:ident),*], [$(($names:ident, $bodies:ident)),*]
    ) => {
        $(#[$meta])*
        pub struct $handle {
            raw: $raw,
            /// Per vtable (in the order of the catalogues above), the slots not to call.
            left_to_agent: [u128; 2],
            /// Calls that crossed into the plugin.
            crossings: AtomicU64,
            /// In a dry run: who learns of the writing calls this handle does not make.
            withheld: Option<Arc<dyn WriteRecorder>>,
            /// Sees every crossing in full (`test-order`); none by default.
            watcher: Option<Arc<dyn CallObserver>>,
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
                Self {
                    raw,
                    left_to_agent: [0; 2],
                    crossings: AtomicU64::new(0),
                    withheld: None,
                    watcher: None,
                }
            }

            /// A dry run: from here on, methods that write (see [`crate::withheld`]) are not
            /// called; `recorder` learns of each and the call answers its planned result.
            pub fn withhold_writes(&mut self, recorder: Arc<dyn WriteRecorder>) {
                self.withheld = Some(recorder);
            }

            /// Shows every later crossing in full to `watcher` (its arguments and answer).
            pub fn watch_calls(&mut self, watcher: Arc<dyn CallObserver>) {
                self.watcher = Some(watcher);
            }

            /// Trusts the plugin's manifest: methods it does not list as implemented answer
            /// NOT_IMPLEMENTED from here on without crossing into the plugin (the SDK's
            /// answer for them would be the same). `implemented` is the manifest entry's list.
            pub fn leave_to_agent(&mut self, implemented: &[String]) {
                let catalogues: &[(&[&str], &[bool])] = &[$(($names, $bodies)),*];
                for (mask, (names, bodies)) in self.left_to_agent.iter_mut().zip(catalogues) {
                    *mask = left_to_agent(implemented, names, bodies);
                }
            }

            /// Whether a call of `method` crosses into the plugin (false for a method the
            /// manifest leaves to the agent). Unknown names go to `invoke`, which crosses.
            pub fn crosses(&self, method: &str) -> bool {
                let catalogues: &[&[&str]] = &[$($names),*];
                catalogues
                    .iter()
                    .zip(self.left_to_agent)
                    .find_map(|(names, mask)| {
                        let slot = names.iter().position(|name| *name == method)?;
                        Some(mask & (1 << slot) == 0)
                    })
                    .unwrap_or(true)
            }

            /// How many calls have crossed into the plugin so far.
            pub fn crossings(&self) -> u64 {
                self.crossings.load(Ordering::Relaxed)
            }

            fn crossed(&self) {
                self.crossings.fetch_add(1, Ordering::Relaxed);
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
                self.crossed();
                watched(
                    self.watcher.as_deref(),
                    method,
                    &json,
                    || {
                        unsafe {
                            (self.raw.vtable.invoke())(
                                self.raw.this,
                                RStr::from_str(method),
                                RStr::from_str(&json),
                            )
                        }
                        .into_result()
                        .map_err(Error::from_raw)
                    },
                    |answer| decode_answer(method, answer),
                )
            }

            /// Any slot by name with JSON arguments; unknown names go to `invoke`.
            pub fn call_json(&self, method: &str, args: &Value) -> Result<Value> {
                $(
                    if let Some(slot) = self.$lookup(method) {
                        self.crossed();
                        return unsafe {
                            call(self.raw.this, method, slot, args, self.watcher.as_deref())
                        };
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
    BackendHandle(RawBackend), [backend_slot, client_slot],
    [(BACKEND_METHODS, BACKEND_SDK_BODIES), (CLIENT_METHODS, CLIENT_SDK_BODIES)]
);
waldur_plugin_abi::with_backend_methods!(gen_calls!(
    BackendHandle.vtable[0],
    backend,
    BACKEND_METHODS,
    BACKEND_SDK_BODIES,
    backend_slot
));
waldur_plugin_abi::with_client_methods!(gen_calls!(
    BackendHandle.client[1],
    client,
    CLIENT_METHODS,
    CLIENT_SDK_BODIES,
    client_slot
));

gen_handle!(
    /// An owned username-management backend instance.
    UsernameHandle(RawUsernameBackend), [username_slot],
    [(USERNAME_METHODS, USERNAME_SDK_BODIES)]
);
waldur_plugin_abi::with_username_methods!(gen_calls!(
    UsernameHandle.vtable[0],
    username,
    USERNAME_METHODS,
    USERNAME_SDK_BODIES,
    username_slot
));
