//! The offering-user state machine (reference §4.3): given a user's state and what the
//! username-management backend answered, the Waldur calls to make.

use waldur_plugin_abi::{Error as AbiError, ErrorKind};

pub const REQUESTED: &str = "Requested";
pub const CREATING: &str = "Creating";
pub const ERROR_CREATING: &str = "Error creating";
pub const PENDING_ACCOUNT_LINKING: &str = "Pending account linking";
pub const PENDING_ADDITIONAL_VALIDATION: &str = "Pending additional validation";
pub const OK: &str = "OK";

/// One Waldur call for an offering user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    BeginCreating,
    SetValidationComplete,
    SetUsername(String),
    SetPendingAccountLinking {
        comment: String,
        comment_url: Option<String>,
    },
    SetPendingAdditionalValidation {
        comment: String,
        comment_url: Option<String>,
    },
    SetErrorCreating,
}

/// Whether the agent works on a user in this state, and whether it must first move the user
/// to `Creating` (before asking the backend).
pub fn entry_steps(state: &str) -> Option<Vec<Step>> {
    match state {
        REQUESTED | ERROR_CREATING => Some(vec![Step::BeginCreating]),
        CREATING | PENDING_ACCOUNT_LINKING | PENDING_ADDITIONAL_VALIDATION => Some(Vec::new()),
        _ => None,
    }
}

/// The calls after the backend answered `outcome` for a user in `state` (the state before
/// any `begin_creating`).
pub fn steps_after(state: &str, outcome: Result<String, AbiError>) -> Vec<Step> {
    let pending = matches!(
        state,
        PENDING_ACCOUNT_LINKING | PENDING_ADDITIONAL_VALIDATION
    );
    match outcome {
        // The base backend answers "": the user stays where it is.
        Ok(username) if username.is_empty() => Vec::new(),
        Ok(username) if pending => vec![Step::SetValidationComplete, Step::SetUsername(username)],
        Ok(username) => vec![Step::SetUsername(username)],
        Err(e) if e.kind == ErrorKind::ACCOUNT_LINKING_REQUIRED => {
            if state == PENDING_ACCOUNT_LINKING {
                Vec::new()
            } else {
                vec![Step::SetPendingAccountLinking {
                    comment_url: e.comment_url().map(str::to_string),
                    comment: e.message,
                }]
            }
        }
        Err(e) if e.kind == ErrorKind::ADDITIONAL_VALIDATION_REQUIRED => {
            if state == PENDING_ADDITIONAL_VALIDATION {
                Vec::new()
            } else {
                vec![Step::SetPendingAdditionalValidation {
                    comment_url: e.comment_url().map(str::to_string),
                    comment: e.message,
                }]
            }
        }
        // A pending user stays pending; the error is only logged.
        Err(_) if pending => Vec::new(),
        // The reference marks BackendError only and lets anything else escape the whole
        // update; a panicking or broken plugin is marked too, so the user is not silently
        // stuck and the error is visible in Waldur.
        Err(_) => vec![Step::SetErrorCreating],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_users_begin_creating_then_get_their_name() {
        assert_eq!(entry_steps(REQUESTED), Some(vec![Step::BeginCreating]));
        assert_eq!(
            steps_after(REQUESTED, Ok("alice".into())),
            [Step::SetUsername("alice".into())]
        );
        assert!(steps_after(REQUESTED, Ok(String::new())).is_empty());
        assert_eq!(entry_steps(OK), None);
    }

    #[test]
    fn pending_users_are_validated_before_the_name_is_set() {
        assert_eq!(entry_steps(PENDING_ACCOUNT_LINKING), Some(vec![]));
        assert_eq!(
            steps_after(PENDING_ACCOUNT_LINKING, Ok("bob".into())),
            [Step::SetValidationComplete, Step::SetUsername("bob".into())]
        );
    }

    #[test]
    fn linking_and_validation_errors_move_the_user_once() {
        let linking =
            AbiError::account_linking_required("link your account", Some("https://x/link"));
        assert_eq!(
            steps_after(CREATING, Err(linking.clone())),
            [Step::SetPendingAccountLinking {
                comment: "link your account".into(),
                comment_url: Some("https://x/link".into())
            }]
        );
        assert!(steps_after(PENDING_ACCOUNT_LINKING, Err(linking)).is_empty());
        let validation = AbiError::additional_validation_required("need more", None);
        assert_eq!(
            steps_after(PENDING_ACCOUNT_LINKING, Err(validation)),
            [Step::SetPendingAdditionalValidation {
                comment: "need more".into(),
                comment_url: None
            }]
        );
    }

    #[test]
    fn backend_errors_mark_error_creating_unless_pending() {
        assert_eq!(
            steps_after(CREATING, Err(AbiError::backend("ldap down"))),
            [Step::SetErrorCreating]
        );
        assert!(steps_after(
            PENDING_ADDITIONAL_VALIDATION,
            Err(AbiError::backend("ldap down"))
        )
        .is_empty());
        let panic = AbiError::new(ErrorKind::PANICKED, "boom");
        assert_eq!(steps_after(REQUESTED, Err(panic)), [Step::SetErrorCreating]);
    }
}
