//! waldur-agent: the Waldur site agent as a host for backend plugins.
//!
//! Data flows one way: [`config`] -> [`plugins`] -> (Waldur client, modes) -> [`events`] ->
//! [`cli`].

pub mod allocator;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dry_run;
pub mod events;
pub mod logging;
pub mod metrics;
pub mod modes;
pub mod plugins;
#[cfg(feature = "simulator")]
pub mod test_order;
pub mod waldur;

/// The agent's version, as plugins and Waldur see it.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
