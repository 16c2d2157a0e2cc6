//! `export_plugin!`: builds the root module, the library header abi_stable looks up, and the
//! manifest section, from a list of entries.

use super::{Backend, UsernameBackend};
use crate::ffi::EntryKind;
use crate::manifest::EntrySpec;

/// Exports the plugin. Use once per plugin crate (a `cdylib`):
///
/// ```ignore
/// waldur_plugin_abi::export_plugin! {
///     description: "Accounts on the Example cluster",
///     backends: ["example" => ExampleBackend],
///     username_backends: [],
/// }
/// ```
///
/// The plugin's name and version are the crate's `CARGO_PKG_NAME` / `CARGO_PKG_VERSION`.
#[macro_export]
macro_rules! export_plugin {
    (
        description: $description:expr,
        backends: [ $( $bname:literal => $bty:ty ),* $(,)? ],
        username_backends: [ $( $uname:literal => $uty:ty ),* $(,)? ] $(,)?
    ) => {
        const _: () = {
            use $crate::__private::abi_stable::std_types::{RSlice, RStr, RString};
            use $crate::__private::abi_stable::prefix_type::PrefixTypeTrait;
            use $crate::ffi::{
                EntryDescriptor, EntryKind, HostHandle, PResult, PluginRoot, PluginRoot_Ref,
                RawBackend, RawUsernameBackend,
            };
            use $crate::sdk::shims;

            const SPEC: $crate::manifest::PluginSpec = $crate::manifest::PluginSpec {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                description: $description,
                abi_version: $crate::ffi::ABI_VERSION,
                panic_unwind: cfg!(panic = "unwind"),
                entries: &[
                    $( $crate::manifest::EntrySpec::backend::<$bty>($bname), )*
                    $( $crate::manifest::EntrySpec::username::<$uty>($uname), )*
                ],
            };
            const MANIFEST_LEN: usize = $crate::manifest::render::<0>(&SPEC).len();

            #[used]
            #[link_section = ".waldur_plugin_manifest"]
            static MANIFEST: [u8; MANIFEST_LEN] =
                $crate::manifest::render::<MANIFEST_LEN>(&SPEC).into_bytes();

            const ENTRIES: &[EntryDescriptor] = &[
                $( EntryDescriptor { kind: EntryKind::BACKEND, name: RStr::from_str($bname) }, )*
                $( EntryDescriptor { kind: EntryKind::USERNAME, name: RStr::from_str($uname) }, )*
            ];

            extern "C" fn new_backend(
                entry: RStr<'_>,
                settings_json: RStr<'_>,
                components_json: RStr<'_>,
                host: HostHandle,
            ) -> PResult<RawBackend> {
                match entry.as_str() {
                    $( $bname => shims::new_backend::<$bty>(entry, settings_json, components_json, host), )*
                    _ => shims::unknown_entry("backend", entry),
                }
            }

            extern "C" fn new_username_backend(
                entry: RStr<'_>,
                settings_json: RStr<'_>,
                offering_json: RStr<'_>,
                host: HostHandle,
            ) -> PResult<RawUsernameBackend> {
                match entry.as_str() {
                    $( $uname => shims::new_username_backend::<$uty>(entry, settings_json, offering_json, host), )*
                    _ => shims::unknown_entry("username-management", entry),
                }
            }

            extern "C" fn validate_settings(entry: RStr<'_>, settings_json: RStr<'_>) -> PResult<RString> {
                match entry.as_str() {
                    $( $bname => shims::validate_backend_settings::<$bty>(settings_json), )*
                    $( $uname => shims::validate_username_settings::<$uty>(settings_json), )*
                    _ => shims::unknown_entry("", entry),
                }
            }

            extern "C" fn validate_components(entry: RStr<'_>, components_json: RStr<'_>) -> PResult<RString> {
                match entry.as_str() {
                    $( $bname => shims::validate_backend_components::<$bty>(components_json), )*
                    $( $uname => { let _ = components_json; shims::no_components() } )*
                    _ => shims::unknown_entry("", entry),
                }
            }

            // Keep this trivial: it is the only plugin code that runs when the agent loads the
            // library, before any instance (and so before any guard) exists.
            fn root_module() -> PluginRoot_Ref {
                let manifest: &'static [u8] = &MANIFEST;
                PluginRoot {
                    name: RStr::from_str(SPEC.name),
                    version: RStr::from_str(SPEC.version),
                    description: RStr::from_str(SPEC.description),
                    abi_version: RStr::from_str(SPEC.abi_version),
                    panic_unwind: SPEC.panic_unwind,
                    entries: RSlice::from_slice(ENTRIES),
                    manifest_json: RStr::from_str(
                        ::core::str::from_utf8(manifest).unwrap_or(""),
                    ),
                    new_backend,
                    new_username_backend,
                    validate_settings,
                    validate_components,
                }
                .leak_into_prefix()
            }

            $crate::__export_library_header!(root_module);
        };
    };
}

/// The library header abi_stable's loader looks up: what `#[abi_stable::export_root_module]`
/// expands to, written with paths through this crate so vendors need no abi_stable dependency.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_library_header {
    ($root:ident) => {
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module(
            ) -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader($root)
            }
            // SAFETY: the constructor returns the root module type the header is declared for.
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::ffi::PluginRoot_Ref,
                >(
                    erased_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

// The manifest's entries from a plugin's types: here, so the manifest does not depend on the
// SDK's traits (the SDK depends on the manifest's declarations).
impl EntrySpec {
    /// A backend entry named `name`, as `T` declares it.
    pub const fn backend<T: Backend>(name: &'static str) -> Self {
        Self {
            kind: EntryKind::BACKEND,
            name,
            description: T::DESCRIPTION,
            capabilities: Some(T::CAPABILITIES),
            settings: T::SETTINGS,
            component_settings: T::COMPONENT_SETTINGS,
            implemented: <T as Backend>::IMPLEMENTED,
            implemented_client: <T as super::Client>::IMPLEMENTED,
        }
    }

    /// A username-management entry named `name`, as `T` declares it.
    pub const fn username<T: UsernameBackend>(name: &'static str) -> Self {
        Self {
            kind: EntryKind::USERNAME,
            name,
            description: T::DESCRIPTION,
            capabilities: None,
            settings: T::SETTINGS,
            component_settings: &[],
            implemented: T::IMPLEMENTED,
            implemented_client: &[],
        }
    }
}
