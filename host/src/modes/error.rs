//! Errors of a mode's work on one offering, and how they are shown to Waldur users.

use waldur_plugin_abi::ErrorKind;

use crate::plugins::{PluginError, RegistryError};
use crate::waldur::WaldurError;

/// Why one offering's (or one object's) work failed. One line each.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("Waldur: {0}")]
    Waldur(#[from] WaldurError),
    #[error("{0}")]
    Plugin(#[from] PluginError),
    #[error("{0}")]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    NotConfigured(String),
    #[error("{0}")]
    Offering(String),
    /// A backend-level failure the agent detected itself (shown to users like a backend error).
    #[error("{0}")]
    Backend(String),
    /// A guard against mass removal stopped the cycle (see [`super::guards`]).
    #[error("{0}")]
    Guard(String),
}

impl ModeError {
    /// Worth retrying soon: Waldur was unreachable or overloaded.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Waldur(e) if e.is_transient())
    }

    /// The backend asked to skip this cycle.
    pub fn is_not_ready(&self) -> bool {
        matches!(self, Self::Plugin(e) if e.kind() == ErrorKind::BACKEND_NOT_READY)
    }

    /// `(error_message, error_traceback)` for Waldur (reference `format_waldur_error_details`):
    /// with `expose`, everything; without, backend errors only, anything else generic.
    pub fn details_for_waldur(&self, expose: bool) -> (String, String) {
        let message = match self {
            Self::Plugin(e) => e.message().to_string(),
            other => other.to_string(),
        };
        if expose {
            return (message, self.to_string());
        }
        let user_facing = match self {
            Self::Plugin(e) => e.is_backend_error(),
            Self::Backend(_) => true,
            _ => false,
        };
        if user_facing {
            (message, String::new())
        } else {
            (
                "Internal backend error. Please contact the service provider.".to_string(),
                String::new(),
            )
        }
    }
}
