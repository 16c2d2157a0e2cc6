//! The C ABI between waldur-agent and its plugins. FROZEN FOR 1.x.
//!
//! abi_stable's load-time check rejects a plugin built against an OLDER interface as soon as a
//! prefix type reachable from the root grew (verified; upstream issue #118). A new agent must
//! load every 1.x plugin, so nothing here may change within 1.x: no field appended, renamed,
//! reordered or retyped. Additions go through the JSON arguments of existing slots or through
//! `invoke`; anything else is 2.0. `tests/fixtures/external/frozen-abi-1.0.0` is a plugin built
//! against the released 1.0.0 layout, and the agent's tests fail the day this file drifts.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    marker_type::ErasedObject,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RString},
    StableAbi,
};

/// What went wrong in a plugin call. Not an enum, so that new codes stay ABI-compatible.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// Any failure that is not a backend error (the reference's "internal backend error").
    pub const INTERNAL: Self = Self(0);
    /// The backend refused or failed (the reference's `BackendError`; shown to Waldur users).
    pub const BACKEND: Self = Self(1);
    /// The account to create already exists (`DuplicateResourceError`).
    pub const DUPLICATE_RESOURCE: Self = Self(2);
    /// The backend is not ready; skip this cycle (`BackendNotReadyError`).
    pub const BACKEND_NOT_READY: Self = Self(3);
    /// The user must link an account first; details carry `comment_url`.
    pub const ACCOUNT_LINKING_REQUIRED: Self = Self(4);
    /// The user must pass additional validation; details carry `comment_url`.
    pub const ADDITIONAL_VALIDATION_REQUIRED: Self = Self(5);
    /// The plugin does not implement the method: the agent runs its default.
    pub const NOT_IMPLEMENTED: Self = Self(6);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const PANICKED: Self = Self(7);
    /// The settings or components given to a constructor are invalid.
    pub const INVALID_SETTINGS: Self = Self(8);
    /// The arguments of a call could not be decoded, or the answer could not be.
    pub const INVALID_INPUT: Self = Self(9);

    /// A short lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::INTERNAL => "internal error",
            Self::BACKEND => "backend error",
            Self::DUPLICATE_RESOURCE => "duplicate resource",
            Self::BACKEND_NOT_READY => "backend not ready",
            Self::ACCOUNT_LINKING_REQUIRED => "account linking required",
            Self::ADDITIONAL_VALIDATION_REQUIRED => "additional validation required",
            Self::NOT_IMPLEMENTED => "not implemented",
            Self::PANICKED => "panicked",
            Self::INVALID_SETTINGS => "invalid settings",
            Self::INVALID_INPUT => "invalid input",
            _ => "unknown error kind",
        }
    }
}

/// An error as it crosses the boundary. `details_json` is `""` or a JSON object.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct RawError {
    pub kind: ErrorKind,
    pub message: RString,
    pub details_json: RString,
}

/// The result of every fallible call across the boundary.
pub type PResult<T> = RResult<T, RawError>;

/// Log levels of the host log callback (the `log` crate's order).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogLevel(pub u8);

impl LogLevel {
    pub const OFF: Self = Self(0);
    pub const ERROR: Self = Self(1);
    pub const WARN: Self = Self(2);
    pub const INFO: Self = Self(3);
    pub const DEBUG: Self = Self(4);
    pub const TRACE: Self = Self(5);
}

/// Callbacks the agent offers to plugins. Passed to every constructor.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = HostApi_Ref)))]
pub struct HostApi {
    /// The agent's version, for plugins that log or report it.
    pub agent_version: RStr<'static>,
    /// The most verbose level the agent will record; plugins drop finer records early.
    /// `ctx` may be null.
    pub max_log_level: unsafe extern "C" fn(ctx: *const ErasedObject) -> LogLevel,
    /// Forwards one log record into the agent's log. `ctx` is null for records a plugin logs
    /// outside any call (e.g. from its own threads).
    pub log: unsafe extern "C" fn(
        ctx: *const ErasedObject,
        level: LogLevel,
        target: RStr<'_>,
        message: RStr<'_>,
    ),
    /// One Waldur REST call with the offering's credentials: `query_json` is an object of
    /// query parameters, `body_json` is `""` or the JSON body; answers the JSON response.
    #[sabi(last_prefix_field)]
    pub waldur_request: unsafe extern "C" fn(
        ctx: *const ErasedObject,
        method: RStr<'_>,
        path: RStr<'_>,
        query_json: RStr<'_>,
        body_json: RStr<'_>,
    ) -> PResult<RString>,
}

/// The host callbacks plus the host's context for one plugin instance.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostHandle {
    pub api: HostApi_Ref,
    /// Owned by the agent and valid until the instance built with it is dropped.
    pub ctx: *const ErasedObject,
}

// SAFETY: the agent's context behind `ctx` is immutable and thread-safe for the lifetime of
// the plugin instance, and the callbacks are plain functions.
unsafe impl Send for HostHandle {}
unsafe impl Sync for HostHandle {}

/// Generates a vtable: one slot per catalogue method plus an `invoke` slot for methods added
/// after 1.0 (`method` names one, `args_json` is its arguments object).
macro_rules! gen_vtable {
    (
        $(#[$meta:meta])* $vt:ident, $vt_ref:ident, [$($head:tt)*];
        $(
            $(#[doc = $doc:literal])*
            fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
        )*
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = $vt_ref)))]
        pub struct $vt {
            $($head)*
            $(
                $(#[doc = $doc])*
                pub $name: unsafe extern "C" fn(
                    this: *const ErasedObject,
                    args_json: RStr<'_>,
                ) -> PResult<RString>,
            )*
            #[sabi(last_prefix_field)]
            pub invoke: unsafe extern "C" fn(
                this: *const ErasedObject,
                method: RStr<'_>,
                args_json: RStr<'_>,
            ) -> PResult<RString>,
        }
    };
}

with_backend_methods!(gen_vtable!(
    /// BaseBackend: one slot per method.
    BackendVT, BackendVT_Ref, [
        /// Drops the plugin state; answers PANICKED if its `Drop` panicked.
        pub drop: unsafe extern "C" fn(this: *mut ErasedObject) -> PResult<()>,
    ]
));

with_client_methods!(gen_vtable!(
    /// BaseClient: one slot per method, on the same instance as the BackendVT.
    ClientVT, ClientVT_Ref, []
));

with_username_methods!(gen_vtable!(
    /// The username-management backend.
    UsernameVT, UsernameVT_Ref, [
        pub drop: unsafe extern "C" fn(this: *mut ErasedObject) -> PResult<()>,
    ]
));

/// A backend instance: the plugin's erased state and its vtable.
#[repr(C)]
#[derive(StableAbi)]
pub struct RawBackend {
    pub this: *mut ErasedObject,
    pub vtable: BackendVT_Ref,
    pub client: ClientVT_Ref,
}

/// A username-management backend instance.
#[repr(C)]
#[derive(StableAbi)]
pub struct RawUsernameBackend {
    pub this: *mut ErasedObject,
    pub vtable: UsernameVT_Ref,
}

/// What a plugin entry provides.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryKind(pub u32);

impl EntryKind {
    /// A BaseBackend (`backend_type`, `order_processing_backend`, ...).
    pub const BACKEND: Self = Self(1);
    /// A username-management backend (`username_management_backend`).
    pub const USERNAME: Self = Self(2);

    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "backend",
            2 => "username-management",
            _ => "unknown",
        }
    }
}

/// One name a plugin registers.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct EntryDescriptor {
    pub kind: EntryKind,
    pub name: RStr<'static>,
}

/// The plugin's root module: the only symbol the agent looks up.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRoot_Ref)))]
pub struct PluginRoot {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    pub description: RStr<'static>,
    /// The `waldur-plugin-abi` version the plugin was built against.
    pub abi_version: RStr<'static>,
    /// `cfg!(panic = "unwind")` of the plugin build; the agent refuses `abort` builds.
    pub panic_unwind: bool,
    pub entries: RSlice<'static, EntryDescriptor>,
    /// The same JSON manifest as the `.waldur_plugin_manifest` ELF section.
    pub manifest_json: RStr<'static>,
    pub new_backend: extern "C" fn(
        entry: RStr<'_>,
        settings_json: RStr<'_>,
        components_json: RStr<'_>,
        host: HostHandle,
    ) -> PResult<RawBackend>,
    pub new_username_backend: extern "C" fn(
        entry: RStr<'_>,
        settings_json: RStr<'_>,
        offering_json: RStr<'_>,
        host: HostHandle,
    ) -> PResult<RawUsernameBackend>,
    /// Validates `backend_settings`; answers a JSON list of warnings.
    pub validate_settings:
        extern "C" fn(entry: RStr<'_>, settings_json: RStr<'_>) -> PResult<RString>,
    /// Validates `backend_components`; answers a JSON list of warnings.
    #[sabi(last_prefix_field)]
    pub validate_components:
        extern "C" fn(entry: RStr<'_>, components_json: RStr<'_>) -> PResult<RString>,
}

impl RootModule for PluginRoot_Ref {
    declare_root_module_statics! {PluginRoot_Ref}
    const BASE_NAME: &'static str = "waldur_plugin";
    const NAME: &'static str = "waldur_plugin";
    /// The `waldur-plugin-abi` package version: the ABI version.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The section holding the plugin's JSON manifest, readable without loading the library.
pub const MANIFEST_SECTION: &str = ".waldur_plugin_manifest";

/// The dynamic symbol every abi_stable library exports.
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// The ABI version this copy of the crate speaks.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");
