//! The owned error type plugins return and the agent receives.

use std::fmt;

use abi_stable::std_types::RString;
use serde_json::Value;

use crate::ffi::{ErrorKind, RawError};

/// A plugin error: a kind (what the agent should do), a message (what happened) and optional
/// structured details (for example `comment_url` for account linking).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Option<Value>,
}

/// The result of every SDK method.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: None,
        }
    }

    /// A backend failure whose message is shown to Waldur users.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BACKEND, message)
    }

    /// Any other failure (shown to users only with `expose_backend_error_details`).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }

    /// The account to create already exists.
    pub fn duplicate_resource(resource_backend_id: &str) -> Self {
        Self::new(
            ErrorKind::DUPLICATE_RESOURCE,
            format!("The resource with ID {resource_backend_id} already exists in the cluster"),
        )
    }

    /// The backend cannot serve this cycle.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BACKEND_NOT_READY, message)
    }

    /// The offering user must link an account first.
    pub fn account_linking_required(message: impl Into<String>, comment_url: Option<&str>) -> Self {
        Self::new(ErrorKind::ACCOUNT_LINKING_REQUIRED, message)
            .with_details(serde_json::json!({ "comment_url": comment_url }))
    }

    /// The offering user must pass additional validation first.
    pub fn additional_validation_required(
        message: impl Into<String>,
        comment_url: Option<&str>,
    ) -> Self {
        Self::new(ErrorKind::ADDITIONAL_VALIDATION_REQUIRED, message)
            .with_details(serde_json::json!({ "comment_url": comment_url }))
    }

    /// The method is not implemented: the agent runs its default.
    pub fn not_implemented(method: &str) -> Self {
        Self::new(ErrorKind::NOT_IMPLEMENTED, method)
    }

    pub fn invalid_settings(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_SETTINGS, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn is_not_implemented(&self) -> bool {
        self.kind == ErrorKind::NOT_IMPLEMENTED
    }

    /// `comment_url` from the details, for the offering-user errors.
    pub fn comment_url(&self) -> Option<&str> {
        self.details.as_ref()?.get("comment_url")?.as_str()
    }

    pub fn into_raw(self) -> RawError {
        RawError {
            kind: self.kind,
            message: RString::from(self.message),
            details_json: match self.details {
                Some(details) => RString::from(details.to_string()),
                None => RString::new(),
            },
        }
    }

    pub fn from_raw(raw: RawError) -> Self {
        let details = if raw.details_json.is_empty() {
            None
        } else {
            // Details a plugin could not encode are kept as text rather than dropped.
            Some(
                serde_json::from_str(raw.details_json.as_str())
                    .unwrap_or_else(|_| Value::String(raw.details_json.to_string())),
            )
        };
        Self {
            kind: raw.kind,
            message: raw.message.into_string(),
            details,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::invalid_input(e.to_string())
    }
}
