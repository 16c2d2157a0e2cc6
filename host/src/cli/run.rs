//! `waldur-agent run -m MODE -c CONFIG [--once]`: the agent's main job.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::plugins::{scan, search_setup};
use super::PluginSource;
use crate::config::AgentEnv;
use crate::modes::cycle::{run_loop, RunSettings};
use crate::modes::runtime::{Agent, Mode};
use crate::plugins::Registry;

/// The reference's default config file name.
const DEFAULT_CONFIG: &str = "waldur-site-agent-config.yaml";

/// Modes this agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RunMode {
    OrderProcess,
    Report,
    MembershipSync,
    /// The three polling modes together in one process, each on its own period.
    All,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The mode (the reference's --mode).
    #[arg(
        short = 'm',
        long = "mode",
        value_enum,
        default_value = "order_process"
    )]
    pub mode: RunMode,
    #[command(flatten)]
    pub source: PluginSource,
    /// Run one cycle and exit (exit code 1 if an offering failed).
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: RunArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(mut args: RunArgs) -> Result<ExitCode, String> {
    let config_path = args
        .source
        .config
        .get_or_insert_with(|| PathBuf::from(DEFAULT_CONFIG))
        .clone();
    let loaded = crate::config::load(&config_path).map_err(|e| e.to_string())?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let env = AgentEnv::from_env().map_err(|e| e.to_string())?;
    let modes: Vec<(Mode, std::time::Duration)> = match args.mode {
        RunMode::OrderProcess => vec![(Mode::OrderProcess, env.order_process_period)],
        RunMode::Report => vec![(Mode::Report, env.report_period)],
        RunMode::MembershipSync => vec![(Mode::MembershipSync, env.membership_sync_period)],
        RunMode::All => vec![
            (Mode::OrderProcess, env.order_process_period),
            (Mode::MembershipSync, env.membership_sync_period),
            (Mode::Report, env.report_period),
        ],
    };
    search_setup(&args.source)?;
    let registry = Registry::new(scan(&args.source)?);
    for clash in &registry.catalog().clashes {
        tracing::warn!("{clash}");
    }
    let agent = Agent::new(loaded.config, registry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let reports = runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            // SIGTERM is how systemd stops a unit; Ctrl-C for interactive runs.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("install a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping after the current cycle");
            let _ = stop_tx.send(true);
        });
        if args.once {
            // One pass: in dependency order, so what order processing creates is synced
            // and reported in the same run.
            let mut reports = Vec::new();
            for &(mode, period) in &modes {
                reports.push(
                    run_loop(
                        &agent,
                        mode,
                        period,
                        true,
                        RunSettings::default(),
                        stop_rx.clone(),
                    )
                    .await,
                );
            }
            return reports;
        }
        // Each mode loops on its own period; they share the agent (and so the plugin
        // instances) and stop together.
        let loops = modes.iter().map(|&(mode, period)| {
            run_loop(
                &agent,
                mode,
                period,
                false,
                RunSettings::default(),
                stop_rx.clone(),
            )
        });
        futures_util::future::join_all(loops).await
    });
    let failed: usize = reports
        .iter()
        .filter_map(|mode_reports| mode_reports.last())
        .map(|r| r.failures())
        .sum();
    Ok(if args.once && failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
