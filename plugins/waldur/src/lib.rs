//! `waldur-plugin-waldur`: the Waldur federation backend of waldur-agent. Orders of the source
//! Waldur (the one the agent serves) become marketplace orders on a target Waldur, where the
//! plugin acts as a consumer: a project per source project, orders that complete without
//! blocking the agent (`supports_async_orders`), usage read back per billing month through the
//! component factors, project members resolved and given mapped roles. See README.md.
//!
//! One job per module:
//! - [`settings`]: the declared `backend_settings`, parsed and checked once;
//! - [`target`]: the HTTP client of the target Waldur (errors, pagination, uuids);
//! - `bridge`: the target's identity bridge (allowed fields), shared by both entries;
//! - `projects`: the target project of a source project, and its metadata;
//! - `orders`: Create, Update and Terminate as target orders, and following them;
//! - `usage`: billing-month usage read from the target;
//! - `members`: users resolved on the target, roles added, removed and reconciled;
//! - `sync`: end dates, effective ids, limits and usernames between the two Waldurs;
//! - `events`: the target's STOMP subscriptions and what their messages do;
//! - `federation`, `backend`: the plugin type and its thin SDK trait impls;
//! - `identity_bridge`: the `waldur-identity-bridge` username backend.
// Plugin code needs no unsafe: the SDK holds the FFI, so the compiler keeps it out.
#![forbid(unsafe_code)]

mod backend;
mod bridge;
mod events;
mod federation;
mod identity_bridge;
mod members;
mod orders;
mod projects;
pub mod settings;
mod sync;
pub mod target;
mod usage;

#[cfg(test)]
mod tests;

pub use federation::Federation;
pub use identity_bridge::IdentityBridgeUsernames;

waldur_plugin_abi::export_plugin! {
    description: "Waldur federation: orders, usage and members of one Waldur served by another",
    backends: ["waldur" => Federation],
    username_backends: ["waldur-identity-bridge" => IdentityBridgeUsernames],
}
