//! The `base` entry: the reference's `BaseUsernameManagementBackend`.
//!
//! `base` is the default value of an offering's `username_management_backend`, so the agent
//! must always find an entry of that name. Like the reference, it never produces a username:
//! `generate_username` answers "" and `get_username` answers none, so with a
//! `service_provider` username policy the agent moves REQUESTED offering users to CREATING
//! and then changes nothing (usernames are set elsewhere, e.g. by hand or by another
//! system). Everything else is the agent's no-op default.

use waldur_plugin_abi::wire::OfferingUser;
use waldur_plugin_abi::{backend_impl, Result, UsernameBackend, UsernameContext};

/// Never produces a username.
pub struct BaseUsernames;

#[backend_impl]
impl UsernameBackend for BaseUsernames {
    const DESCRIPTION: &'static str =
        "Never sets usernames (the default username_management_backend, as in the reference)";

    fn new(_context: UsernameContext) -> Result<Self> {
        Ok(Self)
    }

    /// "" means "no username": the agent makes no change.
    fn generate_username(&self, _offering_user: OfferingUser) -> Result<String> {
        Ok(String::new())
    }

    fn get_username(&self, _offering_user: OfferingUser) -> Result<Option<String>> {
        Ok(None)
    }
}
