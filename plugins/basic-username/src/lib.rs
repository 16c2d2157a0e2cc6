//! `waldur-plugin-basic-username`: username-management backends for waldur-agent.
//!
//! - `base`: the reference's `BaseUsernameManagementBackend` (never sets a username); it is
//!   the default `username_management_backend`, so it must exist.
//! - `template`: usernames from a configurable template, normalised for POSIX systems and
//!   unique among the offering's usernames.
//!
//! One job per module:
//! - [`normalize`]: text -> `[a-z0-9_-]` (transliteration, separators);
//! - [`profile`]: the placeholder values of an offering user;
//! - [`template`]: parsing and rendering `username_template`;
//! - [`unique`]: numeric suffixes that still fit `max_length`;
//! - [`existing`]: the offering's existing usernames (Waldur, or a list in tests);
//! - [`settings`]: the declared settings and their parsing;
//! - [`generator`]: the `template` logic tying them together;
//! - `base`, `template_entry`: the two entries, thin trait implementations.
// Plugin code needs no unsafe: the SDK holds the FFI, so the compiler keeps it out.
#![forbid(unsafe_code)]

mod base;
pub mod existing;
pub mod generator;
pub mod normalize;
pub mod profile;
pub mod settings;
pub mod template;
mod template_entry;
pub mod unique;

#[cfg(test)]
mod tests;

pub use base::BaseUsernames;
pub use template_entry::TemplateUsernames;

waldur_plugin_abi::export_plugin! {
    description: "Username management: `base` (never sets usernames) and `template` (usernames from a template)",
    backends: [],
    username_backends: ["base" => BaseUsernames, "template" => TemplateUsernames],
}
