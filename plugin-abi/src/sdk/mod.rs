//! The plugin SDK: safe traits a vendor implements and the glue that exposes them through the
//! C ABI. Vendors write no `unsafe` and see no abi_stable types.
//!
//! A method left at its default answers NOT_IMPLEMENTED, which tells the agent to run the
//! reference agent's generic algorithm (through the plugin's `client_*` methods and hooks).

pub mod billing;
pub mod components;
mod context;
#[doc(hidden)]
pub mod export;
#[doc(hidden)]
pub mod logging;
pub mod settings;
#[doc(hidden)]
pub mod shims;
mod traits;
mod validate;

pub use context::{BackendContext, Host, UsernameContext};
pub use traits::{Backend, Client, UsernameBackend};
pub use validate::{validate_component_extras, validate_settings};
