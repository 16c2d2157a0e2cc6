//! Plugins: discovery, loading, the registry, and the safe handles the agent calls.

pub mod abi_errors;
pub mod checklist;
pub mod discover;
pub mod elf;
pub mod error;
pub mod host_api;
pub mod load;
pub mod permissions;
pub mod probe;
pub mod probe_cache;
pub mod registry;
pub mod username;

pub use discover::SearchPath;
pub use error::PluginError;
pub use host_api::{HostBinding, HostContext, WaldurGateway};
pub use load::LoadedPlugin;
pub use permissions::TrustPolicy;
pub use probe::{Probed, Prober, Refusal, RefusalKind};
pub use registry::{Catalog, PluginRecord, Registry, RegistryError};
pub use username::UsernameBackend;

pub mod backend;
pub use backend::Backend;
