//! The catalogue of installed plugins and the registry from entry names to loaded plugins.
//!
//! Scanning never runs plugin code in this process: files are checked for trust, their ELF
//! manifest is read, and (when a prober is given) they are loaded in a child process first.
//! Only plugins an offering needs are then loaded into the agent, once each.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use waldur_plugin_abi::ffi::EntryKind;
use waldur_plugin_abi::manifest::Manifest;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, OfferingInfo};

use super::discover::{check_regular_file, SearchPath};
use super::elf::read_manifest;
use super::load::{check_manifest, load_library, LoadedPlugin};
use super::permissions::{check_trusted, TrustPolicy};
use super::probe::{Probed, Prober};
use super::{Backend, HostBinding, HostContext, PluginError, Refusal, UsernameBackend};

/// One file found on the search path.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRecord {
    pub path: PathBuf,
    /// The manifest, when the file has a readable one (even if it was refused later).
    pub manifest: Option<Manifest>,
    /// `Err` is why the plugin is refused.
    pub status: Result<(), Refusal>,
    /// The refusal was remembered from an earlier probe of the same file, not found now.
    pub cached: bool,
}

impl PluginRecord {
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }

    /// The one line the operator sees for a refused plugin: its reason, and whether an
    /// earlier probe found it.
    pub fn refusal_text(&self) -> Option<String> {
        let refusal = self.status.as_ref().err()?;
        Some(if self.cached {
            format!("{refusal} (cached)")
        } else {
            refusal.to_string()
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.manifest.as_ref().map(|m| m.name.as_str())
    }
}

/// Two usable plugins register the same entry: the first in search order wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Clash {
    pub entry: String,
    pub kind: String,
    pub winner: PathBuf,
    pub shadowed: PathBuf,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entry '{}' of {} is shadowed by {} (first in search order wins)",
            self.kind,
            self.entry,
            self.shadowed.display(),
            self.winner.display()
        )
    }
}

/// Every plugin file on a search path, with its status.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub records: Vec<PluginRecord>,
    pub clashes: Vec<Clash>,
    /// (kind, entry) -> index into `records` of the plugin that serves it.
    active: HashMap<(String, String), usize>,
}

impl Catalog {
    /// Scans `search`. Without a prober, files are only checked statically (trust, manifest,
    /// panic strategy, ABI major): nothing is loaded.
    pub fn scan(search: &SearchPath, policy: TrustPolicy, prober: Option<&Prober>) -> Self {
        let mut records: Vec<PluginRecord> = search
            .candidates()
            .into_iter()
            .map(|path| static_check(path, policy))
            .collect();
        if let Some(prober) = prober {
            let to_probe: Vec<PathBuf> = records
                .iter()
                .filter(|r| r.is_ok())
                .map(|r| r.path.clone())
                .collect();
            let mut verdicts = prober.probe(&to_probe).into_iter();
            for record in records.iter_mut().filter(|r| r.is_ok()) {
                if let Some(Probed {
                    result: Err(refusal),
                    cached,
                    ..
                }) = verdicts.next()
                {
                    record.status = Err(refusal);
                    record.cached = cached;
                }
            }
        }
        Self::from_records(records)
    }

    /// Builds the entry index; the first usable plugin registering an entry wins.
    pub fn from_records(records: Vec<PluginRecord>) -> Self {
        let mut active: HashMap<(String, String), usize> = HashMap::new();
        let mut clashes = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let (Ok(()), Some(manifest)) = (&record.status, &record.manifest) else {
                continue;
            };
            for entry in &manifest.entries {
                let key = (entry.kind.clone(), entry.name.clone());
                match active.get(&key) {
                    Some(&winner) => clashes.push(Clash {
                        entry: entry.name.clone(),
                        kind: entry.kind.clone(),
                        winner: records[winner].path.clone(),
                        shadowed: record.path.clone(),
                    }),
                    None => {
                        active.insert(key, index);
                    }
                }
            }
        }
        Self {
            records,
            clashes,
            active,
        }
    }

    /// The plugin serving `entry` of `kind`.
    pub fn entry(&self, kind: EntryKind, entry: &str) -> Option<&PluginRecord> {
        self.active
            .get(&(kind.name().to_string(), entry.to_string()))
            .map(|&i| &self.records[i])
    }

    /// Does the record at `path` serve `entry` (false when another plugin shadows it)?
    pub fn serves(&self, path: &Path, kind: &str, entry: &str) -> bool {
        self.active
            .get(&(kind.to_string(), entry.to_string()))
            .is_some_and(|&i| self.records[i].path == path)
    }

    /// A plugin by plugin name or by one of its entry names (first match in search order).
    pub fn find(&self, name: &str) -> Option<&PluginRecord> {
        let by_name = |r: &&PluginRecord| r.name() == Some(name);
        let by_entry = |r: &&PluginRecord| {
            r.manifest
                .as_ref()
                .is_some_and(|m| m.entries.iter().any(|e| e.name == name))
        };
        let usable_first = |pred: &dyn Fn(&&PluginRecord) -> bool| {
            self.records
                .iter()
                .filter(|r| r.is_ok())
                .find(|r| pred(r))
                .or_else(|| self.records.iter().find(|r| pred(r)))
        };
        usable_first(&by_name).or_else(|| usable_first(&by_entry))
    }

    /// Names of the usable entries of `kind`, for "did you mean" messages.
    pub fn entry_names(&self, kind: EntryKind) -> Vec<String> {
        let mut names: Vec<String> = self
            .active
            .keys()
            .filter(|(k, _)| k == kind.name())
            .map(|(_, name)| name.clone())
            .collect();
        names.sort();
        names
    }
}

fn static_check(path: PathBuf, policy: TrustPolicy) -> PluginRecord {
    // First, before anything opens the file: a FIFO would block the scan.
    if let Err(refusal) = check_regular_file(&path) {
        return PluginRecord {
            path,
            manifest: None,
            status: Err(refusal),
            cached: false,
        };
    }
    let manifest = read_manifest(&path);
    let status = check_trusted(&path, policy).and_then(|()| match &manifest {
        Ok(manifest) => check_manifest(manifest),
        Err(refusal) => Err(refusal.clone()),
    });
    PluginRecord {
        path,
        manifest: manifest.ok(),
        status,
        cached: false,
    }
}

/// Why the agent cannot get a plugin instance. One line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("no installed plugin provides the {kind} entry '{entry}' (available: {available})")]
    UnknownEntry {
        kind: &'static str,
        entry: String,
        available: String,
    },
    #[error("plugin {} for entry '{entry}' is refused: {refusal}", path.display())]
    Refused {
        entry: String,
        path: PathBuf,
        /// Boxed: a refusal's details are larger than the errors around it.
        refusal: Box<Refusal>,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// Entry names to loaded plugins, for the running agent.
pub struct Registry {
    catalog: Catalog,
    loaded: Mutex<HashMap<PathBuf, Result<LoadedPlugin, Refusal>>>,
}

impl Registry {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The loaded plugin serving `entry` (loading it on first use).
    pub fn plugin(&self, kind: EntryKind, entry: &str) -> Result<LoadedPlugin, RegistryError> {
        let record = self.catalog.entry(kind, entry).ok_or_else(|| {
            let names = self.catalog.entry_names(kind);
            RegistryError::UnknownEntry {
                kind: kind.name(),
                entry: entry.to_string(),
                available: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            }
        })?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let result = loaded
            .entry(record.path.clone())
            .or_insert_with(|| load_library(&record.path));
        result.clone().map_err(|refusal| RegistryError::Refused {
            entry: entry.to_string(),
            path: record.path.clone(),
            refusal: Box::new(refusal),
        })
    }

    /// Every entry of the catalogue with whether its plugin is compatible and loaded into this
    /// process (for the metrics' registry gauge).
    pub fn entry_states(&self) -> Vec<crate::metrics::EntryState> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut states = Vec::new();
        for record in &self.catalog.records {
            let Some(manifest) = &record.manifest else {
                continue;
            };
            let is_loaded = matches!(loaded.get(&record.path), Some(Ok(_)));
            states.extend(manifest.entries.iter().map(|e| crate::metrics::EntryState {
                plugin: manifest.name.clone(),
                kind: e.kind.clone(),
                entry: e.name.clone(),
                compatible: record.is_ok(),
                loaded: is_loaded,
            }));
        }
        states
    }

    /// A backend instance of `entry` for one offering.
    pub fn backend(
        &self,
        entry: &str,
        settings: &JsonMap,
        components: &BackendComponents,
        context: HostContext,
    ) -> Result<Backend, RegistryError> {
        let plugin = self.plugin(EntryKind::BACKEND, entry)?;
        Ok(plugin.new_backend(entry, settings, components, HostBinding::new(context))?)
    }

    /// A username-management backend instance of `entry` for one offering.
    pub fn username_backend(
        &self,
        entry: &str,
        settings: &JsonMap,
        offering: &OfferingInfo,
        context: HostContext,
    ) -> Result<UsernameBackend, RegistryError> {
        let plugin = self.plugin(EntryKind::USERNAME, entry)?;
        Ok(plugin.new_username_backend(entry, settings, offering, HostBinding::new(context))?)
    }
}
