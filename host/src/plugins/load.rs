//! Loads a plugin library into this process and checks it is the plugin its manifest says.
//!
//! Each file is loaded with `lib_header_from_path(..).init_root_module()`, never with
//! `RootModule::load_from_file`, which caches one module per root type and would silently hand
//! out the first plugin for every later path. Libraries are never unloaded.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::sabi_types::VersionNumber;
use abi_stable::std_types::RStr;
use waldur_plugin_abi::ffi::{EntryKind, PluginRoot_Ref, ABI_VERSION};
use waldur_plugin_abi::manifest::Manifest;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, OfferingInfo};
use waldur_plugin_abi::Error as AbiError;

use super::abi_errors::summarize_layout_error;
use super::elf::read_manifest;
use super::{Backend, HostBinding, PluginError, Refusal, UsernameBackend};

/// A plugin library loaded into the agent.
#[derive(Clone)]
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    root: PluginRoot_Ref,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("path", &self.path)
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .finish()
    }
}

/// Checks what can be checked without running any plugin code: manifest, panic strategy and
/// ABI major version.
pub fn precheck(path: &Path) -> Result<Manifest, Refusal> {
    let manifest = read_manifest(path)?;
    check_manifest(&manifest)?;
    Ok(manifest)
}

/// The checks of [`precheck`] on a manifest already read.
pub fn check_manifest(manifest: &Manifest) -> Result<(), Refusal> {
    if !manifest.panic_unwind {
        return Err(Refusal::PanicAbort);
    }
    let ours = major(ABI_VERSION);
    if major(&manifest.abi_version) != ours {
        return Err(Refusal::AbiMismatch {
            plugin: manifest.abi_version.clone(),
            agent: format!("{ours}.x"),
        });
    }
    Ok(())
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// Loads `path` into this process.
pub fn load_library(path: &Path) -> Result<LoadedPlugin, Refusal> {
    let manifest = precheck(path)?;
    let header = lib_header_from_path(path).map_err(|e| describe(&e))?;
    let root = header
        .init_root_module::<PluginRoot_Ref>()
        .map_err(|e| describe(&e))?;
    cross_check(&manifest, root)?;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        manifest,
        root,
    })
}

/// The manifest is read without loading; the root module is what really runs. A plugin whose
/// two descriptions disagree was tampered with or mis-built.
fn cross_check(manifest: &Manifest, root: PluginRoot_Ref) -> Result<(), Refusal> {
    let mismatch = |what: &str, section: &str, root: &str| {
        Err(Refusal::ManifestMismatch {
            what: what.to_string(),
            section: section.to_string(),
            root: root.to_string(),
        })
    };
    if root.name().as_str() != manifest.name {
        return mismatch("the name", &manifest.name, root.name().as_str());
    }
    if root.version().as_str() != manifest.version {
        return mismatch("the version", &manifest.version, root.version().as_str());
    }
    if root.abi_version().as_str() != manifest.abi_version {
        return mismatch(
            "the ABI version",
            &manifest.abi_version,
            root.abi_version().as_str(),
        );
    }
    if !root.panic_unwind() {
        // The manifest said unwind (or `precheck` had refused it).
        return mismatch("the panic strategy", "unwind", "abort");
    }
    let root_manifest = Manifest::parse(root.manifest_json().as_str().as_bytes())
        .map_err(|detail| Refusal::RootManifestInvalid { detail })?;
    if &root_manifest != manifest {
        return Err(Refusal::RootManifestDiffers);
    }
    let entries = root.entries();
    if entries.len() != manifest.entries.len()
        || entries
            .iter()
            .zip(&manifest.entries)
            .any(|(e, m)| e.name.as_str() != m.name || e.kind.name() != m.kind)
    {
        return Err(Refusal::EntriesDiffer);
    }
    Ok(())
}

/// The refusal for each abi_stable loading error, its texts made one line.
fn describe(error: &LibraryError) -> Refusal {
    match error {
        LibraryError::OpenError { err, .. } => Refusal::DlopenFailed {
            error: one_line(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => Refusal::MissingRootSymbol,
        LibraryError::InvalidAbiHeader(header) => Refusal::AbiStableMismatch {
            major: header.abi_major,
            minor: header.abi_minor,
        },
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => Refusal::AbiMismatch {
            plugin: actual_version.to_string(),
            agent: expected_version.to_string(),
        },
        LibraryError::AbiInstability(_) => {
            let text = error.to_string();
            Refusal::LayoutMismatch {
                first: summarize_layout_error(&text)
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| one_line(&text)),
            }
        }
        LibraryError::RootModule { err, .. } => Refusal::RootModuleFailed {
            error: one_line(&err.to_string()),
        },
        other => Refusal::LoadFailed {
            error: one_line(&other.to_string()),
        },
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The agent's ABI version, as abi_stable parses it.
pub fn host_abi_version() -> VersionNumber {
    VersionNumber::new(<PluginRoot_Ref as RootModule>::VERSION_STRINGS)
        .expect("the crate version is a valid version number")
}

impl LoadedPlugin {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The methods the manifest says `entry` implements (empty when it does not say).
    fn implemented(&self, kind: EntryKind, entry: &str) -> &[String] {
        self.manifest
            .entries
            .iter()
            .find(|e| e.name == entry && e.kind == kind.name())
            .map_or(&[], |e| e.implemented.as_slice())
    }

    fn has_entry(&self, kind: EntryKind, entry: &str) -> bool {
        self.manifest
            .entries
            .iter()
            .any(|e| e.name == entry && e.kind == kind.name())
    }

    /// Validates an offering's settings and components for `entry`; answers the warnings.
    pub fn validate(
        &self,
        entry: &str,
        settings: &JsonMap,
        components: &BackendComponents,
    ) -> Result<Vec<String>, PluginError> {
        let settings_json = serde_json::to_string(settings).expect("a JSON map serializes");
        let components_json = serde_json::to_string(components).expect("components serialize");
        let fail = |method, e| PluginError::new(entry, method, AbiError::from_raw(e));
        let mut warnings: Vec<String> = decode_warnings(
            entry,
            "validate_settings",
            (self.root.validate_settings())(RStr::from_str(entry), RStr::from_str(&settings_json))
                .into_result()
                .map_err(|e| fail("validate_settings", e))?,
        )?;
        if self.has_entry(EntryKind::BACKEND, entry) {
            warnings.extend(decode_warnings(
                entry,
                "validate_components",
                (self.root.validate_components())(
                    RStr::from_str(entry),
                    RStr::from_str(&components_json),
                )
                .into_result()
                .map_err(|e| fail("validate_components", e))?,
            )?);
        }
        Ok(warnings)
    }

    /// Builds a backend instance of `entry` for one offering.
    pub fn new_backend(
        &self,
        entry: &str,
        settings: &JsonMap,
        components: &BackendComponents,
        binding: HostBinding,
    ) -> Result<Backend, PluginError> {
        if !self.has_entry(EntryKind::BACKEND, entry) {
            return Err(no_such_entry(entry, "backend", &self.manifest.name));
        }
        let settings_json = serde_json::to_string(settings).expect("a JSON map serializes");
        let components_json = serde_json::to_string(components).expect("components serialize");
        let raw = (self.root.new_backend())(
            RStr::from_str(entry),
            RStr::from_str(&settings_json),
            RStr::from_str(&components_json),
            binding.handle(),
        )
        .into_result()
        .map_err(|e| PluginError::new(entry, "new_backend", AbiError::from_raw(e)))?;
        // SAFETY: `raw` comes from this loaded plugin's constructor; the library is never
        // unloaded, and `Backend` keeps the binding alive for as long as the instance.
        let mut handle = unsafe { waldur_plugin_host::handle::BackendHandle::from_raw(raw) };
        handle.leave_to_agent(self.implemented(EntryKind::BACKEND, entry));
        Ok(Backend::new(
            handle,
            binding,
            entry.to_string(),
            settings.clone(),
            components.clone(),
        ))
    }

    /// Builds a username-management backend of `entry` for one offering.
    pub fn new_username_backend(
        &self,
        entry: &str,
        settings: &JsonMap,
        offering: &OfferingInfo,
        binding: HostBinding,
    ) -> Result<UsernameBackend, PluginError> {
        if !self.has_entry(EntryKind::USERNAME, entry) {
            return Err(no_such_entry(
                entry,
                "username-management",
                &self.manifest.name,
            ));
        }
        let settings_json = serde_json::to_string(settings).expect("a JSON map serializes");
        let offering_json = serde_json::to_string(offering).expect("offering info serializes");
        let raw = (self.root.new_username_backend())(
            RStr::from_str(entry),
            RStr::from_str(&settings_json),
            RStr::from_str(&offering_json),
            binding.handle(),
        )
        .into_result()
        .map_err(|e| PluginError::new(entry, "new_username_backend", AbiError::from_raw(e)))?;
        // SAFETY: as in `new_backend`.
        let mut handle = unsafe { waldur_plugin_host::handle::UsernameHandle::from_raw(raw) };
        handle.leave_to_agent(self.implemented(EntryKind::USERNAME, entry));
        Ok(UsernameBackend::new(handle, binding, entry.to_string()))
    }
}

fn decode_warnings(
    entry: &str,
    method: &'static str,
    answer: abi_stable::std_types::RString,
) -> Result<Vec<String>, PluginError> {
    serde_json::from_str(answer.as_str()).map_err(|e| {
        PluginError::new(
            entry,
            method,
            AbiError::invalid_input(format!("the plugin answered invalid warnings: {e}")),
        )
    })
}

fn no_such_entry(entry: &str, kind: &str, plugin: &str) -> PluginError {
    PluginError::new(
        entry,
        "new_backend",
        AbiError::invalid_input(format!(
            "plugin {plugin} has no {kind} entry named '{entry}'"
        )),
    )
}
