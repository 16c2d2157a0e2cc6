//! `waldur-agent config check [-c CONFIG] [--json]`: everything `run` would refuse or warn
//! about in a config file, found before a deployment instead of at its first start. It never
//! contacts Waldur or a backend: it validates the file, says which plugin serves each entry of
//! each offering and builds every entry from the offering's settings, as `run` does first.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use waldur_plugin_abi::wire::OfferingInfo;

use super::plugins::scan;
use super::PluginSource;
use crate::config::{Config, Offering};
use crate::modes::runtime::{plugin_entries, settings_warnings, Agent};
use crate::modes::tools::one_line;
use crate::plugins::{HostContext, Registry};
use waldur_plugin_abi::ffi::EntryKind;

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub source: PluginSource,
    /// Print one JSON document instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// What the check found; printed as lines or as JSON.
#[derive(Debug, Default, Serialize)]
struct Findings {
    config: PathBuf,
    /// No error anywhere: `run` would start with this file.
    ok: bool,
    /// Why the file does not load (then nothing else is checked).
    error: Option<String>,
    warnings: Vec<String>,
    offerings: Vec<OfferingFindings>,
}

impl Findings {
    /// Entries that do not resolve, load or build.
    fn entry_errors(&self) -> usize {
        self.offerings
            .iter()
            .flat_map(|o| &o.entries)
            .filter(|e| e.error.is_some())
            .count()
    }
}

#[derive(Debug, Serialize)]
struct OfferingFindings {
    name: String,
    entries: Vec<EntryFindings>,
}

/// One config key of an offering that names a plugin entry.
#[derive(Debug, Serialize)]
struct EntryFindings {
    key: &'static str,
    kind: &'static str,
    entry: String,
    /// The file that serves the entry, when one does.
    plugin: Option<PathBuf>,
    plugin_name: Option<String>,
    plugin_version: Option<String>,
    /// `None`: the entry resolves, loads and builds from the offering's settings.
    error: Option<String>,
}

pub fn run(args: ConfigCheckArgs) -> ExitCode {
    let path = args.source.config_file();
    let findings = match check(&path, &args.source) {
        Ok(findings) => findings,
        Err(message) => {
            eprintln!("error: {}", one_line(&message));
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).expect("findings serialize")
        );
    } else {
        print_lines(&findings);
    }
    if findings.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `Err` only when the check itself cannot run (the plugin prober cannot start).
fn check(path: &Path, source: &PluginSource) -> Result<Findings, String> {
    let mut findings = Findings {
        config: path.to_path_buf(),
        ..Default::default()
    };
    let loaded = match crate::config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            findings.error = Some(one_line(&e));
            return Ok(findings);
        }
    };
    findings.warnings = loaded.warnings;
    findings
        .warnings
        .extend(exposed_secrets_warning(path, &loaded.config));
    let registry = Registry::new(scan(source, Some(&loaded.config))?);
    findings.warnings.extend(
        registry
            .catalog()
            .clashes
            .iter()
            .map(|clash| clash.to_string()),
    );
    let agent = Agent::new(loaded.config, registry);
    for offering in &agent.config.offerings {
        // One instance per entry: the reference's keys usually all name the same one.
        let mut built = std::collections::HashMap::new();
        let entries = plugin_entries(offering)
            .into_iter()
            .map(|(key, kind, entry)| {
                let error = built
                    .entry((kind, entry))
                    .or_insert_with(|| build(&agent, offering, kind, entry).err())
                    .clone();
                found_entry(&agent, key, kind, entry, error)
            })
            .collect();
        findings.offerings.push(OfferingFindings {
            name: offering.name.clone(),
            entries,
        });
        findings.warnings.extend(
            settings_warnings(&agent, offering)
                .into_iter()
                .map(|w| format!("offering '{}': {w}", offering.name)),
        );
    }
    findings.ok = findings.entry_errors() == 0;
    Ok(findings)
}

/// Which plugin serves `entry`, and what building it answered.
fn found_entry(
    agent: &Agent,
    key: &'static str,
    kind: EntryKind,
    entry: &str,
    error: Option<String>,
) -> EntryFindings {
    let record = agent.registry.catalog().entry(kind, entry);
    let manifest = record.and_then(|r| r.manifest.as_ref());
    EntryFindings {
        key,
        kind: kind.name(),
        entry: entry.to_string(),
        plugin: record.map(|r| r.path.clone()),
        plugin_name: manifest.map(|m| m.name.clone()),
        plugin_version: manifest.map(|m| m.version.clone()),
        error,
    }
}

/// Resolves `entry`, loads its library and builds an instance from the offering's settings
/// (then drops it), as the first cycle of `run` would.
fn build(agent: &Agent, offering: &Offering, kind: EntryKind, entry: &str) -> Result<(), String> {
    let context = HostContext::new(entry, &offering.name);
    let settings = &offering.backend_settings;
    let closed = if kind == EntryKind::USERNAME {
        let info = OfferingInfo {
            name: offering.name.clone(),
            uuid: offering.waldur_offering_uuid.clone(),
            api_url: offering.waldur_api_url.clone(),
            backend_type: offering.backend_type.clone(),
            ..Default::default()
        };
        agent
            .registry
            .username_backend(entry, settings, &info, context)
            .map_err(|e| e.to_string())?
            .close()
    } else {
        agent
            .registry
            .backend(entry, settings, &offering.backend_components, context)
            .map_err(|e| e.to_string())?
            .close()
    };
    closed.map_err(|e| format!("the instance failed to close: {e}"))
}

/// A file other users can read gives its Waldur credentials to every one of them.
fn exposed_secrets_warning(path: &Path, config: &Config) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    let holds_secrets = !config.offerings.is_empty() || config.sentry_dsn.is_some();
    (mode & 0o077 != 0 && holds_secrets).then(|| {
        format!(
            "{}: readable by {} (mode {mode:04o}) and holds Waldur credentials; \
             restrict it: chmod 600 {0}",
            path.display(),
            if mode & 0o007 != 0 {
                "other users"
            } else {
                "its group"
            },
        )
    })
}

fn print_lines(findings: &Findings) {
    let config = findings.config.display();
    if let Some(error) = &findings.error {
        println!("error: {error}");
        println!("{config}: invalid");
        return;
    }
    for warning in &findings.warnings {
        println!("warning: {warning}");
    }
    for offering in &findings.offerings {
        println!("offering '{}':", offering.name);
        for e in &offering.entries {
            let served_by = match (&e.plugin, &e.plugin_name, &e.plugin_version) {
                (Some(path), Some(name), Some(version)) => {
                    format!("{name} {version} ({})", path.display())
                }
                (Some(path), _, _) => path.display().to_string(),
                _ => "no plugin".to_string(),
            };
            match &e.error {
                None => println!("  {} '{}': {served_by}: ok", e.key, e.entry),
                Some(error) => println!("  {} '{}': {served_by}: error: {error}", e.key, e.entry),
            }
        }
    }
    println!(
        "{config}: {}, {} offering(s), {} warning(s), {} error(s)",
        if findings.ok { "ok" } else { "NOT ok" },
        findings.offerings.len(),
        findings.warnings.len(),
        findings.entry_errors(),
    );
}
