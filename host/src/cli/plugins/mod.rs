//! `waldur-agent plugins ...`: what is installed, what a plugin offers, whether it works.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde_json::json;
use waldur_plugin_abi::manifest::{Manifest, ManifestEntry};
use waldur_plugin_host::handle::{BACKEND_METHODS, CLIENT_METHODS, USERNAME_METHODS};

use super::{PluginSource, PluginsCommand};
use crate::config::{runtime_dir, Config, DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS};
use crate::plugins::discover::{SearchPath, PLUGIN_PATH_ENV};
use crate::plugins::probe::{serve_probe_requests, Prober};
use crate::plugins::probe_cache::CACHE_FILE_NAME;
use crate::plugins::{Catalog, PluginRecord, TrustPolicy};

mod check;

pub fn run(command: PluginsCommand) -> ExitCode {
    let result = match command {
        PluginsCommand::List { source, json } => list(&source, json),
        PluginsCommand::Inspect { name, source, json } => inspect(&name, &source, json),
        PluginsCommand::Check {
            name,
            source,
            offering,
        } => check::run(&name, &source, offering.as_deref()),
        PluginsCommand::Probe => serve_probe_requests()
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| format!("plugin prober: {e}")),
    };
    result.unwrap_or_else(|message| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    })
}

/// What a plugin scan needs, from the standard places, the config and the flags.
pub(super) struct ScanSetup {
    pub search: SearchPath,
    pub policy: TrustPolicy,
    /// How long one file may take to load in the prober child.
    pub probe_timeout: Duration,
    /// Where the probe cache lives.
    pub runtime_dir: PathBuf,
}

/// The search path, trust policy and probe timeout from the standard places, the config the
/// command already loaded (if any) and the flags (a flag wins over the config).
pub(super) fn search_setup(source: &PluginSource, config: Option<&Config>) -> ScanSetup {
    let config_dirs: &[PathBuf] = config.map_or(&[], |c| &c.plugin_dirs);
    let allow_insecure = source.allow_insecure_plugin_permissions
        || config.is_some_and(|c| c.allow_insecure_plugin_permissions);
    let probe_timeout_seconds = config.map_or(DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS, |c| {
        c.plugin_probe_timeout_seconds
    });
    let configured_runtime_dir = config.and_then(|c| c.runtime_dir.as_deref());
    let env = std::env::var(PLUGIN_PATH_ENV).ok();
    let search = SearchPath::standard(env.as_deref(), config_dirs, &source.plugin_dirs);
    // The packaged directory may legitimately be absent; a directory someone named may not.
    for dir in search.dirs().iter().skip(1) {
        if !dir.is_dir() {
            eprintln!("warning: plugin directory {} does not exist", dir.display());
        }
    }
    let policy = if allow_insecure {
        TrustPolicy::AllowInsecure
    } else {
        TrustPolicy::Strict
    };
    ScanSetup {
        search,
        policy,
        probe_timeout: Duration::from_secs(source.probe_timeout.unwrap_or(probe_timeout_seconds)),
        runtime_dir: runtime_dir(configured_runtime_dir),
    }
}

/// Scans with a child-process prober, so a crashing plugin cannot take this command down,
/// remembering its refusals in the runtime directory so a hanging one costs the timeout once.
/// `config` is the configuration the command loaded: it is read once per command and passed
/// down, never read again here.
pub(super) fn scan(source: &PluginSource, config: Option<&Config>) -> Result<Catalog, String> {
    let setup = search_setup(source, config);
    let prober = Prober::current_exe()
        .map_err(|e| format!("cannot find this executable: {e}"))?
        .with_timeout(setup.probe_timeout)
        .with_cache(
            setup.runtime_dir.join(CACHE_FILE_NAME),
            source.no_probe_cache,
        );
    Ok(Catalog::scan(&setup.search, setup.policy, Some(&prober)))
}

fn entries_cell(catalog: &Catalog, record: &PluginRecord) -> String {
    let Some(manifest) = &record.manifest else {
        return String::new();
    };
    manifest
        .entries
        .iter()
        .map(|e| {
            let shadowed = record.is_ok() && !catalog.serves(&record.path, &e.kind, &e.name);
            let kind = if e.kind == "backend" {
                "backend"
            } else {
                "username"
            };
            format!(
                "{} ({kind}){}",
                e.name,
                if shadowed { " [shadowed]" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn status_text(record: &PluginRecord) -> String {
    match record.refusal_text() {
        None => "ok".to_string(),
        Some(reason) => format!("refused: {reason}"),
    }
}

/// For the commands whose `-c` is optional: the configuration when one was named.
fn scan_with_named_config(source: &PluginSource) -> Result<Catalog, String> {
    let loaded = match &source.config {
        Some(path) => Some(crate::config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    scan(source, loaded.as_ref().map(|l| &l.config))
}

fn list(source: &PluginSource, as_json: bool) -> Result<ExitCode, String> {
    let catalog = scan_with_named_config(source)?;
    if as_json {
        let plugins: Vec<_> = catalog
            .records
            .iter()
            .map(|r| {
                let m = r.manifest.as_ref();
                json!({
                    // Lossy: JSON text cannot hold a name that is not UTF-8.
                    "path": r.path.to_string_lossy(),
                    "name": m.map(|m| &m.name),
                    "version": m.map(|m| &m.version),
                    "abi_version": m.map(|m| &m.abi_version),
                    "entries": m.map(|m| m.entries.iter().map(|e| json!({
                        "kind": e.kind,
                        "name": e.name,
                        "active": r.is_ok() && catalog.serves(&r.path, &e.kind, &e.name),
                    })).collect::<Vec<_>>()).unwrap_or_default(),
                    "status": if r.is_ok() { "ok" } else { "refused" },
                    "reason": r.refusal_text(),
                    // The reason typed: a stable `kind` and its details, for scripts.
                    "refusal": r.status.as_ref().err(),
                    // The refusal was remembered from an earlier probe, not found now.
                    "cached": r.cached,
                })
            })
            .collect();
        let clashes: Vec<String> = catalog.clashes.iter().map(|c| c.to_string()).collect();
        let out = json!({ "plugins": plugins, "clashes": clashes });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON serializes")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if catalog.records.is_empty() {
        println!("No plugins found.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["NAME", "VERSION", "ABI", "ENTRIES", "STATUS", "PATH"]);
    for record in &catalog.records {
        let m = record.manifest.as_ref();
        table.add_row([
            m.map_or("-".to_string(), |m| m.name.clone()),
            m.map_or(String::new(), |m| m.version.clone()),
            m.map_or(String::new(), |m| m.abi_version.clone()),
            entries_cell(&catalog, record),
            status_text(record),
            record.path.display().to_string(),
        ]);
    }
    println!("{table}");
    for clash in &catalog.clashes {
        println!("note: {clash}");
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(name: &str, source: &PluginSource, as_json: bool) -> Result<ExitCode, String> {
    let catalog = scan_with_named_config(source)?;
    let record = catalog
        .find(name)
        .ok_or_else(|| format!("no plugin or entry named '{name}' on the plugin search path"))?;
    let Some(manifest) = &record.manifest else {
        return Err(format!(
            "{} is not a usable plugin: {}",
            record.path.display(),
            status_text(record)
        ));
    };
    if as_json {
        let out = json!({
            "path": record.path.to_string_lossy(),
            "status": if record.is_ok() { "ok" } else { "refused" },
            "reason": record.refusal_text(),
            "refusal": record.status.as_ref().err(),
            "cached": record.cached,
            "manifest": manifest,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON serializes")
        );
        return Ok(ExitCode::SUCCESS);
    }
    print_plugin(record, manifest);
    Ok(ExitCode::SUCCESS)
}

fn print_plugin(record: &PluginRecord, manifest: &Manifest) {
    println!("Plugin:      {} {}", manifest.name, manifest.version);
    println!("Description: {}", manifest.description);
    println!("ABI version: {}", manifest.abi_version);
    println!("Path:        {}", record.path.display());
    println!("Status:      {}", status_text(record));
    for entry in &manifest.entries {
        println!();
        print_entry(entry);
    }
}

fn print_entry(entry: &ManifestEntry) {
    println!("Entry '{}' ({})", entry.name, entry.kind);
    if !entry.description.is_empty() {
        println!("  {}", entry.description);
    }
    if let Some(caps) = &entry.capabilities {
        let value = serde_json::to_value(caps).expect("capabilities serialize");
        let flags: Vec<String> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.clone())
            .collect();
        println!(
            "  Capabilities: {}",
            if flags.is_empty() {
                "none (reference defaults)".to_string()
            } else {
                flags.join(", ")
            }
        );
        println!(
            "  Handled resource states: {}; team fetch: {} attempt(s), {} ms apart",
            caps.handled_resource_states.join(", "),
            caps.team_fetch_attempts,
            caps.team_fetch_delay_ms
        );
        if !caps.user_resolve_method.is_empty() {
            println!("  User resolve method: {}", caps.user_resolve_method);
        }
    }
    let all: Vec<&str> = if entry.kind == "backend" {
        BACKEND_METHODS
            .iter()
            .chain(CLIENT_METHODS)
            .copied()
            .collect()
    } else {
        USERNAME_METHODS.to_vec()
    };
    let implemented: Vec<&str> = all
        .iter()
        .copied()
        .filter(|m| entry.implemented.iter().any(|i| i == m))
        .collect();
    let defaults: Vec<&str> = all
        .iter()
        .copied()
        .filter(|m| !implemented.contains(m))
        .collect();
    println!(
        "  Implements ({}): {}",
        implemented.len(),
        implemented.join(", ")
    );
    println!(
        "  Agent defaults ({}): {}",
        defaults.len(),
        defaults.join(", ")
    );
    for (title, settings) in [
        ("Settings (backend_settings)", &entry.settings),
        (
            "Component settings (backend_components.<type>)",
            &entry.component_settings,
        ),
    ] {
        if settings.is_empty() {
            continue;
        }
        println!("  {title}:");
        let mut table = Table::new();
        table.load_preset(UTF8_BORDERS_ONLY);
        table.set_header(["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"]);
        for s in settings {
            table.add_row([
                s.name.clone(),
                s.kind.clone(),
                if s.required {
                    "yes".into()
                } else {
                    "no".into()
                },
                s.default_json.clone().unwrap_or_default(),
                s.description.clone(),
            ]);
        }
        println!("{table}");
    }
}
