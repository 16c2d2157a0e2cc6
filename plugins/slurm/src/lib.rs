//! `waldur-plugin-slurm`: the SLURM backend of waldur-agent (entry `slurm`), the reference
//! Python plugin's CLI mode command for command, with its documented bugs fixed, commands
//! bounded by a timeout, and membership cycles batched. See README.md.
//!
//! One job per module:
//! - [`settings`]: the declared `backend_settings` and their parsing and checks;
//! - [`names`]: the rules every name from Waldur passes before it reaches a command or a
//!   path (the client checks them where it builds argv);
//! - [`command`]: argv construction (bin path, flags, cluster filter, value sanitising);
//! - [`runner`]: running commands (real processes with a timeout; a recording fake);
//! - [`parser`]: parsers of sacctmgr and sacct output;
//! - [`client`]: one method per SLURM command of the reference's client;
//! - [`limits`]: Waldur units <-> GrpTRESMins, prepaid months, component mapping;
//! - [`usage`]: billing months and usage reports;
//! - `hierarchy`, `users`, `qos`, `homedirs`, `diagnostics`, `account_diagnosis`,
//!   `periodic`, `pull`: the
//!   behaviour, each an `impl Slurm` block;
//! - `slurm`, `backend`, `base_client`: the plugin type and its thin SDK trait impls.
// Plugin code needs no unsafe: the SDK holds the FFI, so the compiler keeps it out.
#![forbid(unsafe_code)]

mod account_diagnosis;
mod backend;
mod base_client;
pub mod client;
pub mod command;
mod diagnostics;
pub mod hierarchy;
pub mod homedirs;
pub mod limits;
pub mod names;
pub mod parser;
mod periodic;
pub mod pull;
mod qos;
pub mod runner;
pub mod settings;
mod slurm;
pub mod usage;
mod users;

#[cfg(test)]
mod tests;

pub use slurm::Slurm;

waldur_plugin_abi::export_plugin! {
    description: "SLURM accounts, limits, associations, QoS and usage through sacctmgr, sacct and scancel",
    backends: ["slurm" => Slurm],
    username_backends: [],
}
