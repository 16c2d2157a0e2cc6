//! Plugins: discovery, loading, the registry, and the safe handles the agent calls.

pub mod abi_errors;
pub mod checklist;
pub mod discover;
pub mod elf;
pub mod load;
pub mod permissions;
pub mod probe;
pub mod probe_cache;
pub mod refusal;
pub mod registry;

pub use discover::SearchPath;
// The agent's half of the plugin contract lives in its own crate (plugin-abi/host), where
// plugin authors' tests reach it too.
pub use load::LoadedPlugin;
pub use permissions::TrustPolicy;
pub use probe::{Probed, Prober};
pub use refusal::Refusal;
pub use registry::{Catalog, PluginRecord, Registry, RegistryError};
pub use waldur_plugin_host::{
    backend, host_api, Backend, HostBinding, HostContext, PluginError, UsernameBackend,
    WaldurGateway,
};
