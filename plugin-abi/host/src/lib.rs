//! `waldur-plugin-host`: the agent's half of the plugin contract.
//!
//! - [`handle`]: owning, typed handles on plugin instances, one method per vtable slot.
//! - [`Backend`] and [`UsernameBackend`]: what the agent's modes call. A method the plugin
//!   leaves out runs the reference agent's generic algorithm ([`backend`]'s defaults and
//!   command runner) through the plugin's own client methods and hooks.
//! - [`host_api`]: the callbacks every instance gets (logging into the agent's log, Waldur
//!   requests through a [`WaldurGateway`]).
//! - [`withheld`]: which plugin methods write, and what a dry run answers for them.
//! - [`testing`]: the same, in-process and without dlopen, for plugin authors' tests.
//!
//! Plugins link only `waldur-plugin-abi` at run time; this crate is built into the agent, so
//! fixing a default algorithm never requires rebuilding a vendor's plugin.

pub mod backend;
pub mod calls;
pub mod error;
pub mod handle;
pub mod host_api;
pub mod testing;
pub mod username;
pub mod withheld;

pub use backend::Backend;
pub use calls::{CallObserver, CrossedCall};
pub use error::PluginError;
pub use host_api::{HostBinding, HostContext, WaldurGateway};
pub use username::UsernameBackend;
pub use withheld::WriteRecorder;

/// The agent's version, as plugins read it from the host API (the agent and this crate share
/// their version through the workspace).
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
