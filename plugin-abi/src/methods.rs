//! The 1.x method catalogue: the single list the vtables, the SDK traits, the plugin-side shims
//! and the host-side typed calls are generated from, so they cannot drift apart.
//!
//! Every slot has the same C signature, `(this, args_json) -> RResult<RString, RawError>`: the
//! arguments travel as one JSON object whose keys are the parameter names below, the result as
//! JSON. That keeps the frozen layout independent of the data: a 1.x minor release can add an
//! optional argument (a `serde(default)` field) without touching a checked layout.
//!
//! ORDER AND NAMES ARE FROZEN FOR 1.x. New methods go through `invoke` until 2.0.

/// Calls `$gen!` with every BaseBackend method, in vtable order.
#[doc(hidden)]
#[macro_export]
macro_rules! with_backend_methods {
    ($gen:ident!($($header:tt)*)) => {
        $gen! {
            $($header)*;
            /// The BaseBackend class attributes (capability flags, handled resource states).
            /// Defaults to the `CAPABILITIES` constant; override when they depend on settings.
            fn capabilities() -> CapabilitySet = { Ok((&Self::CAPABILITIES).into()) };
            /// Facts the agent learned about the offering after construction (timezone,
            /// service provider, partitions, QoS enforcement).
            fn set_runtime_context(context: RuntimeContext) -> ();
            /// Is the backend reachable? With `raise_exception`, answer an error instead of false.
            fn ping(raise_exception: bool) -> bool;
            /// Once per order-processing cycle when `supports_cycle_preflight`; an error of kind
            /// BACKEND_NOT_READY skips the cycle. Agent default: `ping()`.
            fn run_preflight() -> ();
            /// Log a health report through the host logger; true when healthy.
            fn diagnostics() -> bool;
            /// Component types the backend knows.
            fn list_components() -> Vec<String>;
            /// Current-period usage in Waldur units (the reference's `_get_usage_report`).
            fn get_usage_report(resource_backend_ids: Vec<String>) -> UsageReport;
            /// Usage of a past billing month. Agent default: empty (past periods not reported).
            fn get_usage_report_for_period(
                resource_backend_ids: Vec<String>,
                year: i32,
                month: u32,
                waldur_resource: Option<WaldurResource>
            ) -> UsageReport;
            fn downscale_resource(resource_backend_id: String) -> bool;
            fn pause_resource(resource_backend_id: String) -> bool;
            fn restore_resource(resource_backend_id: String) -> bool;
            /// Metadata POSTed to Waldur's `set_backend_metadata` after every status sync.
            fn get_resource_metadata(resource_backend_id: String) -> JsonMap;
            /// The resource's limits in backend and in Waldur units.
            fn collect_resource_limits(waldur_resource: WaldurResource) -> CollectedLimits;
            /// Hook before an account is created (e.g. customer and project accounts).
            fn pre_create_resource(
                waldur_resource: WaldurResource,
                user_context: Option<UserContext>
            ) -> ();
            /// Agent default: `create_resource_with_id` with `get_resource_backend_id(slug)`.
            fn create_resource(
                waldur_resource: WaldurResource,
                user_context: Option<UserContext>
            ) -> BackendResourceInfo;
            /// Agent default: pre-create hook, account through the client (DUPLICATE_RESOURCE if
            /// it exists), limits, post-create hook.
            fn create_resource_with_id(
                waldur_resource: WaldurResource,
                resource_backend_id: String,
                user_context: Option<UserContext>
            ) -> BackendResourceInfo;
            /// False when the account already exists.
            fn create_backend_resource(
                resource_backend_id: String,
                name: String,
                organization: String,
                parent: Option<String>
            ) -> bool;
            /// Applies `collect_resource_limits`; answers the Waldur-unit limits.
            fn setup_resource_limits(
                resource_backend_id: String,
                waldur_resource: WaldurResource
            ) -> Limits;
            /// May fill `backend_metadata`, `endpoints`, `pending_order_id` or `backend_id`.
            fn post_create_resource(
                resource_info: BackendResourceInfo,
                waldur_resource: WaldurResource,
                user_context: Option<UserContext>
            ) -> BackendResourceInfo;
            /// Agent default: `allocation_prefix + slug`, lower-cased.
            fn get_resource_backend_id(slug: String) -> String;
            /// Agent default: `project_prefix + slug`.
            fn get_project_backend_id(slug: String) -> String;
            /// Agent default: `customer_prefix + slug`.
            fn get_customer_backend_id(slug: String) -> String;
            /// Answers the uuid of a backend order for async backends, otherwise null.
            fn delete_resource(
                waldur_resource: WaldurResource,
                project_slug: Option<String>
            ) -> Option<String>;
            fn pre_delete_resource(waldur_resource: WaldurResource) -> ();
            fn post_delete_resource(waldur_resource: WaldurResource) -> ();
            fn delete_resource_safely(resource_backend_id: String) -> ();
            /// Hook before a user's association is removed (e.g. cancel their jobs).
            fn pre_delete_user_actions(resource_backend_id: String, username: String) -> ();
            /// Answers the usernames that were added.
            fn add_users_to_resource(
                waldur_resource: WaldurResource,
                usernames: Vec<String>,
                options: UserOptions
            ) -> Vec<String>;
            fn add_user(waldur_resource: WaldurResource, username: String, options: UserOptions)
                -> bool;
            /// Answers the usernames that were removed.
            fn remove_users_from_resource(
                waldur_resource: WaldurResource,
                usernames: Vec<String>,
                options: UserOptions
            ) -> Vec<String>;
            fn remove_user(
                waldur_resource: WaldurResource,
                username: String,
                options: UserOptions
            ) -> bool;
            /// Every membership cycle, with all usernames of the offering's resources.
            fn process_existing_users(usernames: Vec<String>) -> ();
            fn reconcile_existing_user_roles(
                waldur_resource: WaldurResource,
                existing_usernames: Vec<String>,
                user_roles: std::collections::BTreeMap<String, String>,
                user_cuids: std::collections::BTreeMap<String, String>
            ) -> ();
            fn update_user_attributes(username: String, attributes: JsonMap) -> ();
            /// Uses the host's Waldur request callback; true when something changed.
            fn sync_offering_user_usernames(offering_uuid: String) -> bool;
            fn sync_resource_project(
                waldur_resource: WaldurResource,
                source_project: Option<serde_json::Value>
            ) -> ();
            fn sync_project_end_date(
                waldur_resource: WaldurResource,
                source_project: Option<serde_json::Value>
            ) -> ();
            fn sync_resource_end_date(waldur_resource: WaldurResource) -> ();
            fn sync_resource_effective_id(waldur_resource: WaldurResource) -> ();
            /// Agent default: backend limits are the source of truth and are pushed to Waldur.
            fn sync_resource_limits(waldur_resource: WaldurResource) -> ();
            /// Waldur-unit limits. Agent default: `× unit_factor`, truncated, through the client.
            fn set_resource_limits(resource_backend_id: String, limits: Limits) -> Option<String>;
            /// Limits of the account in WALDUR units, as integers (the reference truncates).
            /// Agent default: the client's limits unconverted, as the reference does.
            fn get_resource_limits(resource_backend_id: String) -> BackendLimits;
            /// Per-user limits (username -> component -> value), as `get_resource_limits`.
            fn get_resource_user_limits(resource_backend_id: String)
                -> std::collections::BTreeMap<String, BackendLimits>;
            fn set_resource_user_limits(
                resource_backend_id: String,
                username: String,
                limits: BackendLimits
            ) -> ();
            fn list_resources() -> Vec<BackendResourceInfo>;
            /// Answers backend id -> info for every resource the backend has.
            fn pull_resources(waldur_resources: Vec<WaldurResource>)
                -> std::collections::BTreeMap<String, BackendResourceInfo>;
            fn pull_resource(waldur_resource: WaldurResource) -> Option<BackendResourceInfo>;
            fn pull_backend_resource(resource_backend_id: String) -> Option<BackendResourceInfo>;
            /// True when the resource was missing and has been created again.
            fn recreate_missing_resource(waldur_resource: WaldurResource) -> bool;
            fn create_user_homedirs(usernames: Vec<String>, umask: String) -> ();
            fn apply_periodic_settings(
                resource_backend_id: String,
                settings: serde_json::Value,
                config: Option<serde_json::Value>
            ) -> PeriodicSettingsResult;
            /// Async orders: true = done, false = still pending, error = erred.
            fn check_pending_order(order_backend_id: String) -> bool;
            fn evaluate_pending_order(order: Order) -> PendingOrderDecision;
            fn setup_target_event_subscriptions(
                source_offering: serde_json::Value,
                user_agent: String,
                global_proxy: String
            ) -> Vec<serde_json::Value>;
            fn get_membership_sync_report(waldur_resource: WaldurResource)
                -> Option<Vec<serde_json::Value>>;
            fn has_prepaid_components() -> bool;
            fn prune_unknown_resource_keys(resource_backend_id: String, keep: Vec<String>) -> ();
            fn generate_resource_keys(resource_backend_id: String, count: u32) -> Vec<ResourceKey>;
            /// Answers the new key, as a string or a `{client_id, api_key}` object.
            fn rotate_resource_key(
                client_id: String,
                resource_backend_id: String,
                known_client_ids: Option<Vec<String>>
            ) -> serde_json::Value;
        }
    };
}

/// Calls `$gen!` with every BaseClient method, in vtable order. The `client_` prefix keeps
/// them apart from the BaseBackend methods of the same name on the vendor's type.
#[doc(hidden)]
#[macro_export]
macro_rules! with_client_methods {
    ($gen:ident!($($header:tt)*)) => {
        $gen! {
            $($header)*;
            /// every account of the backend.
            fn client_list_resources() -> Vec<ClientResource>;
            /// null when the account does not exist.
            fn client_get_resource(resource_id: String) -> Option<ClientResource>;
            fn client_create_resource(
                name: String,
                description: String,
                organization: String,
                parent_name: Option<String>
            ) -> String;
            fn client_delete_resource(name: String) -> ();
            /// limits in backend units.
            fn client_set_resource_limits(resource_id: String, limits: BackendLimits)
                -> Option<String>;
            fn client_get_resource_limits(resource_id: String) -> BackendLimits;
            fn client_get_resource_user_limits(resource_id: String)
                -> std::collections::BTreeMap<String, BackendLimits>;
            fn client_set_resource_user_limits(
                resource_id: String,
                username: String,
                limits: BackendLimits
            ) -> ();
            fn client_get_association(user: String, resource_id: String) -> Option<Association>;
            fn client_create_association(
                username: String,
                resource_id: String,
                default_account: Option<String>
            ) -> ();
            fn client_delete_association(username: String, resource_id: String) -> ();
            /// raw, plugin-specific usage records.
            fn client_get_usage_report(resource_ids: Vec<String>, timezone: Option<String>)
                -> Vec<serde_json::Value>;
            fn client_list_resource_users(resource_id: String) -> Vec<String>;
            /// run a command (no shell), stdout and stderr merged.
            fn client_execute_command(command: Vec<String>, silent: bool) -> String;
            fn client_create_linux_user_homedir(username: String, umask: String) -> ();
        }
    };
}

/// Calls `$gen!` with every username-management backend method, in vtable order.
#[doc(hidden)]
#[macro_export]
macro_rules! with_username_methods {
    ($gen:ident!($($header:tt)*)) => {
        $gen! {
            $($header)*;
            /// A new username for an offering user (no lookup).
            fn generate_username(offering_user: OfferingUser) -> String;
            /// The existing username of an offering user, if the backend has one.
            fn get_username(offering_user: OfferingUser) -> Option<String>;
            /// Agent default: `get_username` or else `generate_username`.
            fn get_or_create_username(offering_user: OfferingUser) -> String;
            /// Called before every membership sync.
            fn sync_user_profiles(offering_users: Vec<OfferingUser>) -> ();
            fn deactivate_users(usernames: Vec<String>) -> ();
        }
    };
}

/// Generates `pub mod <method> { Args, ArgsRef }`: the owned form the plugin decodes and the
/// borrowed form the host encodes (no clone of a 1,000-member user context per call).
macro_rules! gen_args {
    (; $(
        $(#[doc = $doc:literal])*
        fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
    )*) => {
        $(
            #[allow(unused_imports)]
            pub mod $name {
                use crate::wire::*;
                use serde::{Deserialize, Serialize};

                /// Arguments as the plugin receives them. Missing ones take their default, so
                /// a 1.x minor release can add an argument and older agents still work.
                #[derive(Debug, Default, Deserialize)]
                #[serde(default)]
                pub struct Args {
                    $( pub $arg: $ty, )*
                }

                /// Arguments as the host sends them: each in its borrowed form
                /// ([`crate::borrowed`]), which encodes to the same JSON as `Args`.
                #[derive(Serialize)]
                pub struct ArgsRef<'a> {
                    $( pub $arg: <$ty as crate::borrowed::Borrowed<'a>>::Ref, )*
                    #[serde(skip)]
                    pub _borrow: std::marker::PhantomData<&'a ()>,
                }

                /// What the method answers.
                pub type Output = $ret;
            }
        )*
    };
}

/// Expands to the given default body, or to the NOT_IMPLEMENTED answer.
macro_rules! default_body {
    ($name:ident, $body:block) => {
        $body
    };
    ($name:ident,) => {
        Err($crate::Error::not_implemented(stringify!($name)))
    };
}
