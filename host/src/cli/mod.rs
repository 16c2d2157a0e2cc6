//! The `waldur-agent` command line.

mod config_check;
mod package_assets;
mod plan;
mod plugins;
mod program_names;
mod run;
#[cfg(feature = "simulator")]
mod test_order;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use program_names::{parse, program_name, ProgramName, PROGRAM_NAMES};

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
    /// The main job end to end on the bundled Waldur simulator and the demo plugins.
    #[cfg(feature = "demo")]
    Demo {
        /// An extra directory to look for the demo plugins in (repeatable).
        #[arg(long = "plugin-dir", value_name = "DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// Keep the demo backend's state in DIR instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Installed plugins: list, inspect, check.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// The configuration file: check it before a deployment.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Checks Waldur access, pending orders and every backend plugin, per offering.
    #[command(after_help = tools::EXIT_CODES)]
    Diagnostics(tools::ToolArgs),
    /// Creates or updates the offerings' Waldur components from `backend_components`.
    #[command(after_help = tools::EXIT_CODES)]
    LoadComponents(tools::ToolArgs),
    /// Runs the offering-user username state machine once for every offering.
    #[command(after_help = tools::EXIT_CODES)]
    SyncOfferingUsers(tools::ToolArgs),
    /// Pushes the backends' resource limits to Waldur where they differ.
    #[command(after_help = tools::EXIT_CODES)]
    SyncResourceLimits(tools::ToolArgs),
    /// Creates home directories for the OK offering users (backends that support it).
    #[command(after_help = tools::EXIT_CODES)]
    CreateHomedirs(tools::ToolArgs),
    /// Loads past months' usage from the reporting backend into Waldur with a staff token.
    #[command(after_help = tools::historical_usage::AFTER_HELP)]
    LoadHistoricalUsage(tools::historical_usage::HistoricalArgs),
    /// Runs one order for real through the order processor and the configured plugin,
    /// against an embedded Waldur simulator, and prints every plugin call and Waldur request.
    #[cfg(feature = "simulator")]
    #[command(after_help = test_order::AFTER_HELP)]
    TestOrder(Box<test_order::TestOrderArgs>),
    /// One SLURM account next to the Waldur resource with that backend id: limits, users,
    /// QoS, with every difference marked (changes nothing).
    #[command(after_help = tools::account_diagnosis::AFTER_HELP)]
    DiagnoseSlurmAccount(tools::account_diagnosis::DiagnoseAccountArgs),
    /// Liveness (heartbeat file) and readiness (Waldur answers) check.
    #[command(after_help = tools::healthz::AFTER_HELP)]
    Healthz(tools::healthz::HealthzArgs),
    /// Internal: writes the package's shell completions, man pages and reference-name links
    /// into DIR (scripts/package.sh).
    #[command(hide = true)]
    PackageAssets {
        /// Output directory.
        dir: PathBuf,
    },
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
    /// Seconds one plugin file may take to load in the prober child before it is refused as
    /// hung (default: the config's plugin_probe_timeout_seconds, else 20).
    #[arg(
        long = "probe-timeout",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(crate::config::PLUGIN_PROBE_TIMEOUT_SECONDS)
    )]
    pub probe_timeout: Option<u64>,
    /// Probe every plugin file again instead of trusting the refusals remembered in the
    /// runtime directory's plugin-probe-cache.json (which is then rewritten).
    #[arg(long = "no-probe-cache", alias = "no-cache")]
    pub no_probe_cache: bool,
}

impl PluginSource {
    /// The config file this command reads: `-c`, else [`crate::config::DEFAULT_CONFIG_FILE`].
    pub fn config_file(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE))
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validates the file, prints every warning, and says which plugin serves each entry of
    /// each offering and whether it loads and builds from the offering's settings. Nothing is
    /// sent to Waldur or a backend.
    #[command(
        after_help = "Exit codes: 0 = the agent would start with this file (warnings may be \
printed); 1 = the file is invalid or an entry has no usable plugin; 2 = the check could not run."
    )]
    Check(config_check::ConfigCheckArgs),
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
    // `run` sets its logging up from its config.
    if !matches!(cli.command, Command::Run(_)) {
        crate::logging::init_for_tools();
        end_quietly_when_the_reader_goes();
    }
    match cli.command {
        Command::Run(args) => run::run(args),
        #[cfg(feature = "demo")]
        Command::Demo {
            plugin_dirs,
            state_dir,
        } => match crate::demo::run(crate::demo::DemoOptions {
            plugin_dirs,
            state_dir,
        }) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        },
        Command::Plugins(command) => plugins::run(command),
        Command::Config(ConfigCommand::Check(args)) => config_check::run(args),
        Command::Diagnostics(args) => tools::diagnostics::run(args),
        Command::LoadComponents(args) => tools::components::run(args),
        Command::SyncOfferingUsers(args) => tools::offering_users::run(args),
        Command::SyncResourceLimits(args) => tools::limits::run(args),
        Command::CreateHomedirs(args) => tools::homedirs::run(args),
        Command::LoadHistoricalUsage(args) => tools::historical_usage::run(args),
        Command::DiagnoseSlurmAccount(args) => tools::account_diagnosis::run(args),
        Command::Healthz(args) => tools::healthz::run(args),
        #[cfg(feature = "simulator")]
        Command::TestOrder(args) => test_order::run(*args),
        Command::PackageAssets { dir } => package_assets::run(&dir),
    }
}

/// A one-shot command whose reader stops reading (`... | head -1`, `grep -q`) ends as every Unix
/// tool does, killed by SIGPIPE, instead of panicking with "failed printing to stdout". The Rust
/// runtime ignores SIGPIPE; only the long-running `run` keeps that, so a journald restart or a
/// backend command closing its pipe early is an error it reports, never the agent's death.
fn end_quietly_when_the_reader_goes() {
    // SAFETY: called on the main thread before any other thread exists; restoring a signal's
    // default disposition has no other effect on the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
