//! The error of a call into a plugin instance, with the context an operator needs.

use std::fmt;

use waldur_plugin_abi::{Error as AbiError, ErrorKind};

/// A plugin call failed. Displays as one line: `plugin demo (entry demo): add_user: backend
/// error: <message>`.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError {
    /// The plugin entry the call went to (`slurm`, `demo`, ...).
    pub entry: String,
    /// The method, as named in the plugin ABI.
    pub method: &'static str,
    pub error: AbiError,
}

impl PluginError {
    pub fn new(entry: &str, method: &'static str, error: AbiError) -> Self {
        Self {
            entry: entry.to_string(),
            method,
            error,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.error.kind
    }

    pub fn message(&self) -> &str {
        &self.error.message
    }

    pub fn is_not_implemented(&self) -> bool {
        self.error.is_not_implemented()
    }

    /// Backend errors carry messages meant for Waldur users; others only with
    /// `expose_backend_error_details`.
    pub fn is_backend_error(&self) -> bool {
        matches!(
            self.error.kind,
            ErrorKind::BACKEND | ErrorKind::DUPLICATE_RESOURCE | ErrorKind::BACKEND_NOT_READY
        )
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it to one line whatever the plugin put in its message.
        let message = self.error.message.replace(['\n', '\r'], " ");
        write!(
            f,
            "plugin entry '{}': {}: {}: {}",
            self.entry,
            self.method,
            self.error.kind.name(),
            message.trim()
        )
    }
}

impl std::error::Error for PluginError {}
