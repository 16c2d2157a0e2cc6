//! The `waldur-agent` command line.

mod plugins;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Waldur site agent: connects a site's backends to Waldur Mastermind through plugins.
#[derive(Debug, Parser)]
#[command(name = "waldur-agent", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the agent: polls Waldur and drives the backend plugins.
    Run(run::RunArgs),
    /// Installed plugins: list, inspect, check.
    #[command(subcommand)]
    Plugins(PluginsCommand),
}

/// Where to look for plugins; shared by every command that loads them.
#[derive(Debug, Clone, Args)]
pub struct PluginSource {
    /// An extra plugin directory, searched after the standard ones (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Accept plugin files and directories that other users can write (development only).
    #[arg(long)]
    pub allow_insecure_plugin_permissions: bool,
    /// The agent configuration; its `plugin_dirs` are searched too.
    #[arg(
        short = 'c',
        long = "config-file",
        alias = "config",
        value_name = "CONFIG"
    )]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin file found, with its entries and whether this agent can use it.
    List {
        #[command(flatten)]
        source: PluginSource,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One plugin in detail: entries, capabilities, implemented methods, settings.
    Inspect {
        /// A plugin name or one of its entry names.
        name: String,
        #[command(flatten)]
        source: PluginSource,
        #[arg(long)]
        json: bool,
    },
    /// Runs the plugin checklist against a live instance built from a configuration.
    Check {
        /// A backend entry name (as in `backend_type`).
        name: String,
        #[command(flatten)]
        source: PluginSource,
        /// Only the offering with this name (default: every offering using the entry).
        #[arg(long)]
        offering: Option<String>,
    },
    /// Internal: loads the files named on stdin and reports on stdout (the crash-safe prober).
    #[command(hide = true)]
    Probe,
}

/// Runs the command line; the exit code says whether it succeeded.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Plugins(command) => plugins::run(command),
    }
}

/// Logs to stderr; `RUST_LOG` overrides the level.
pub fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
