//! Serde types that cross the plugin boundary as JSON.
//!
//! Every struct tolerates unknown fields (kept in `extra` where a plugin may want them) and
//! defaults missing ones, so the data can grow within 1.x without touching the frozen vtables.
//! Field names and spellings follow the Waldur REST API and the reference Python agent.

mod backend;
mod capabilities;
mod component;
mod diagnosis;
mod order;
mod resource;
mod usage;
mod users;

pub use backend::*;
pub use capabilities::*;
pub use component::*;
pub use diagnosis::*;
pub use order::*;
pub use resource::*;
pub use usage::*;
pub use users::*;

/// A free-form JSON object, as Waldur sends for attributes, metadata and plugin options.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
