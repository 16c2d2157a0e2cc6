//! The capability flags a plugin declares (the reference BaseBackend's class attributes):
//! what the agent may ask of it and which of its own algorithms it runs around the plugin.

use serde::{Deserialize, Serialize};

/// The reference BaseBackend's class-level flags, as data.
///
/// Vendors declare them as a `const` [`crate::Capabilities`]; this is the owned form that
/// travels in the manifest and through the `capabilities` vtable slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CapabilitySet {
    pub supports_decreasing_usage: bool,
    pub supports_async_orders: bool,
    pub supports_resource_api_keys: bool,
    pub supports_cycle_preflight: bool,
    pub supports_user_homedirs: bool,
    pub supports_periodic_settings: bool,
    pub requires_source_project: bool,
    pub shared_project_membership: bool,
    pub skip_resource_team_diff: bool,
    pub fetch_consented_users_only: bool,
    pub team_fetch_attempts: u32,
    pub team_fetch_delay_ms: u32,
    /// Resource states the membership sync handles (`OK`, `Erred` by default).
    pub handled_resource_states: Vec<String>,
    /// `""` or `identity_bridge`.
    pub user_resolve_method: String,
}

impl Default for CapabilitySet {
    fn default() -> Self {
        (&crate::Capabilities::DEFAULT).into()
    }
}

impl From<&crate::Capabilities> for CapabilitySet {
    fn from(c: &crate::Capabilities) -> Self {
        Self {
            supports_decreasing_usage: c.supports_decreasing_usage,
            supports_async_orders: c.supports_async_orders,
            supports_resource_api_keys: c.supports_resource_api_keys,
            supports_cycle_preflight: c.supports_cycle_preflight,
            supports_user_homedirs: c.supports_user_homedirs,
            supports_periodic_settings: c.supports_periodic_settings,
            requires_source_project: c.requires_source_project,
            shared_project_membership: c.shared_project_membership,
            skip_resource_team_diff: c.skip_resource_team_diff,
            fetch_consented_users_only: c.fetch_consented_users_only,
            team_fetch_attempts: c.team_fetch_attempts,
            team_fetch_delay_ms: c.team_fetch_delay_ms,
            handled_resource_states: c
                .handled_resource_states
                .iter()
                .map(|s| s.to_string())
                .collect(),
            user_resolve_method: c.user_resolve_method.to_string(),
        }
    }
}
