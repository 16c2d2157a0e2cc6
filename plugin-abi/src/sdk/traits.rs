//! The traits vendors implement, generated from the method catalogue in `methods.rs`.
//!
//! A backend type implements [`Backend`] (the reference's BaseBackend) and [`Client`] (its
//! BaseClient); a plugin whose backend needs no client writes an empty `impl Client`. Put
//! `#[waldur_plugin_abi::backend_impl]` on every such `impl` block: it fills in `IMPLEMENTED`.

use crate::error::{Error, Result};
use crate::manifest::{Capabilities, SettingSpec};
use crate::sdk::{validate, BackendContext, UsernameContext};
#[allow(unused_imports)]
use crate::wire::*;

/// Generates one trait: the header items, then one defaulted method per catalogue entry.
macro_rules! gen_trait {
    (
        $(#[$meta:meta])* trait $trait:ident : ($($bounds:tt)*) { $($head:tt)* };
        $(
            $(#[doc = $doc:literal])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
        )*
    ) => {
        $(#[$meta])*
        pub trait $trait: $($bounds)* {
            /// The methods this implementation writes out (set by `#[backend_impl]`).
            const IMPLEMENTED: &'static [&'static str];

            $($head)*

            $(
                $(#[doc = $doc])*
                #[allow(unused_variables)]
                fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    default_body!($name, $($default)?)
                }
            )*
        }
    };
}

with_client_methods!(gen_trait!(
    /// The reference's BaseClient: raw operations on backend accounts. The agent's generic
    /// BaseBackend algorithms (create, delete, add and remove users, limits) run on these.
    trait Client: (Send + Sync + 'static) {}
));

with_backend_methods!(gen_trait!(
    /// A backend: the reference's BaseBackend.
    trait Backend: (Client + Sized) {
        /// One line for `waldur-agent plugins inspect`.
        const DESCRIPTION: &'static str = "";
        const CAPABILITIES: Capabilities = Capabilities::DEFAULT;
        /// The `backend_settings` keys the backend reads.
        const SETTINGS: &'static [SettingSpec] = &[];
        /// Plugin-specific keys of `backend_components.<type>` (beyond the core ones).
        const COMPONENT_SETTINGS: &'static [SettingSpec] = &[];

        /// Builds the backend for one offering; settings passed `validate_settings` already.
        fn new(context: BackendContext) -> Result<Self>;

        /// Checks `backend_settings`: warnings, or an error for unusable settings.
        fn validate_settings(settings: &JsonMap) -> Result<Vec<String>> {
            validate::validate_settings(Self::SETTINGS, settings)
        }

        /// Checks `backend_components`: warnings, or an error.
        fn validate_components(components: &BackendComponents) -> Result<Vec<String>> {
            validate::validate_component_extras(Self::COMPONENT_SETTINGS, components)
        }

        /// Methods added to the agent after ABI 1.0, by name.
        #[allow(unused_variables)]
        fn invoke(&self, method: &str, args: serde_json::Value) -> Result<serde_json::Value> {
            Err(Error::not_implemented(method))
        }
    }
));

with_username_methods!(gen_trait!(
    /// A username-management backend (the reference's AbstractUsernameManagementBackend).
    trait UsernameBackend: (Sized + Send + Sync + 'static) {
        const DESCRIPTION: &'static str = "";
        const SETTINGS: &'static [SettingSpec] = &[];

        fn new(context: UsernameContext) -> Result<Self>;

        fn validate_settings(settings: &JsonMap) -> Result<Vec<String>> {
            validate::validate_settings(Self::SETTINGS, settings)
        }

        #[allow(unused_variables)]
        fn invoke(&self, method: &str, args: serde_json::Value) -> Result<serde_json::Value> {
            Err(Error::not_implemented(method))
        }
    }
));
