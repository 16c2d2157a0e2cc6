//! `waldur-plugin-demo`: a complete backend for waldur-agent that keeps accounts, hierarchy,
//! limits, associations and usage in a JSON state directory, so every agent mode can be run
//! and tested without SLURM. See README.md for the settings and the file formats.
//!
//! One job per module:
//! - [`settings`]: the declared `backend_settings` and their parsing;
//! - [`state`]: the data model and its operations (pure);
//! - [`store`]: `state.json` on disk, locked and written atomically;
//! - [`hierarchy`]: customer and project accounts for the pre-create hook;
//! - [`limits`]: Waldur units <-> backend units and the `max_limits` order policy;
//! - [`usage`]: usage files -> usage reports;
//! - [`keys`]: resource API keys (mint, rotate, prune);
//! - [`usernames`]: the `demo-profiles` username entry (user profiles);
//! - `demo`, `client`, `backend`: the plugin type and its thin trait implementations.
// Plugin code needs no unsafe: the SDK holds the FFI, so the compiler keeps it out.
#![forbid(unsafe_code)]

mod backend;
mod client;
mod demo;
pub mod hierarchy;
pub mod keys;
pub mod limits;
pub mod settings;
pub mod state;
pub mod store;
pub mod usage;
pub mod usernames;

#[cfg(test)]
mod tests;

pub use demo::Demo;

waldur_plugin_abi::export_plugin! {
    description: "Demo backend keeping its accounts in a JSON state directory (no SLURM needed)",
    backends: ["demo" => Demo],
    username_backends: ["demo-profiles" => usernames::DemoUsernames],
}
