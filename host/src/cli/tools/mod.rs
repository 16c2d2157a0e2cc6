//! The reference's CLI tools as subcommands (reference §3.7). Each loads the configuration
//! (`-c`, default [`crate::config::DEFAULT_CONFIG_FILE`]) and the plugins like `run`, works on every
//! offering, prints one line per offering, and exits 0 when no offering failed, 1 when one
//! did, 2 when the configuration or the plugins could not be loaded.

pub mod account_diagnosis;
pub mod components;
pub mod diagnostics;
pub mod healthz;
pub mod historical_usage;
pub mod homedirs;
pub mod limits;
pub mod offering_users;

use std::process::ExitCode;

use clap::Args;

use super::plugins::scan;
use super::PluginSource;
use crate::modes::runtime::Agent;
use crate::modes::tools::{one_line, ToolOutcome, ToolReport};
use crate::plugins::Registry;

/// Shown after the tools' `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 = every offering succeeded or was skipped; \
1 = at least one offering failed (the others were still processed); \
2 = the configuration or the plugins could not be loaded.";

/// The arguments every tool takes: the configuration and where the plugins are.
#[derive(Debug, Args)]
pub struct ToolArgs {
    #[command(flatten)]
    pub source: PluginSource,
    /// Accepted because the reference's tools share `waldur_site_agent`'s parser
    /// (`waldur_site_diagnostics -m report -c FILE`); a tool does the same in every mode.
    #[arg(short = 'm', long = "mode", value_enum, value_name = "MODE")]
    pub mode: Option<super::run::RunMode>,
}

/// Loads the configuration and the plugins and runs `work` on a multi-thread runtime
/// (plugin calls run on its blocking threads). `Err` is a one-line setup error.
fn with_agent<T>(source: PluginSource, work: impl AsyncFnOnce(&Agent) -> T) -> Result<T, String> {
    let loaded = crate::config::load(&source.config_file()).map_err(|e| one_line(&e))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let registry = Registry::new(scan(&source, Some(&loaded.config))?);
    for clash in &registry.catalog().clashes {
        tracing::warn!("{clash}");
    }
    let agent = Agent::new(loaded.config, registry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok(runtime.block_on(work(&agent)))
}

/// Prints a setup error and answers exit code 2.
fn setup_failed(message: &str) -> ExitCode {
    eprintln!("error: {}", one_line(&message));
    ExitCode::from(2)
}

/// Prints one line per offering; exit code 1 when one failed.
fn print_report<T>(report: &ToolReport<T>, describe: impl Fn(&T) -> String) -> ExitCode {
    for (name, outcome) in &report.offerings {
        match outcome {
            ToolOutcome::Done(summary) => println!("offering '{name}': {}", describe(summary)),
            ToolOutcome::Skipped(why) => println!("offering '{name}': skipped: {why}"),
            ToolOutcome::Failed(e) => println!("offering '{name}': FAILED: {}", one_line(e)),
        }
    }
    if report.failures() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `a, b` or `none`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
