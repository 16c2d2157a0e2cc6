//! `waldur-plugin-abi`: the only code waldur-agent and its plugins share.
//!
//! - [`ffi`]: the frozen 1.x C ABI (root module, vtables, host callbacks), built on abi_stable.
//! - [`wire`]: the serde types that cross the boundary as JSON.
//! - [`sdk`]: what a plugin vendor uses: [`Backend`], [`UsernameBackend`],
//!   [`backend_impl`] and [`export_plugin!`].
//! - the vtable catalogue macros and [`args`], which the agent's half of the contract
//!   (`waldur-plugin-host`, not linked into plugins) builds its typed handles from.
//!
//! See `examples/plugin-template` in the agent's repository for a complete plugin.
#![allow(non_camel_case_types, non_local_definitions)]

#[macro_use]
mod methods;

pub mod borrowed;
pub mod error;
pub mod ffi;
pub mod manifest;
pub mod sdk;
pub mod wire;

/// Argument structs of every vtable slot, by vtable and method name.
pub mod args {
    /// Backend slots.
    pub mod backend {
        with_backend_methods!(gen_args!());
    }
    /// Client slots.
    pub mod client {
        with_client_methods!(gen_args!());
    }
    /// Username-management slots.
    pub mod username {
        with_username_methods!(gen_args!());
    }
}

pub use error::{Error, Result};
pub use ffi::{ErrorKind, ABI_VERSION};
pub use manifest::{Capabilities, SettingKind, SettingSpec};
pub use sdk::{Backend, BackendContext, Client, Host, UsernameBackend, UsernameContext};
pub use waldur_plugin_abi_macros::backend_impl;

/// Re-exports the export macro needs; not part of the SDK's API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
}
