//! `waldur-agent run -m MODE -c CONFIG [--once | --dry-run]`: the agent's main job.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::plugins::scan;
use super::PluginSource;
use crate::config::{AgentEnv, LogFormat};
use crate::logging::shipping;
use std::sync::Arc;
use std::time::Duration;

use crate::events::mode::run_event_process;
use crate::events::offering::EventSettings;
use crate::events::subscriptions::EVENT_MODE;
use crate::modes::cycle::{run_loop, skip_reason, RunSettings};
use crate::modes::instance_lock;
use crate::modes::runtime::{plugin_entries, Agent, Mode};
use crate::modes::shutdown::Shutdown;
use crate::plugins::Registry;

/// Modes this agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RunMode {
    OrderProcess,
    Report,
    MembershipSync,
    /// Event processing over STOMP for every offering with `stomp_enabled`.
    EventProcess,
    /// The three polling modes together in one process, each on its own period, and event
    /// processing for the offerings with `stomp_enabled`.
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
    /// Run one cycle of each mode and exit (exit code 1 if an offering, order, usage report or
    /// membership sync failed). For event processing: its start-up pass alone, without
    /// subscribing.
    #[arg(long)]
    pub once: bool,
    /// How log lines are written: text on stderr, or JSON lines on stdout (the reference's
    /// fields). Default: the config's `log_format`, else text.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serve Prometheus metrics at http://IP:PORT/metrics (port 0 picks a free port; the
    /// address is logged). Default: the config's `metrics_address`, else no endpoint.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_address: Option<std::net::SocketAddr>,
    /// One cycle of the mode(s) against the real Waldur and backends that reads everything
    /// and writes nothing, then prints the plan: each Waldur request and plugin call that
    /// writes, with its arguments. Takes no instance lock and touches no heartbeat, so it can
    /// run beside the live agent. For event processing: its start-up pass.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON instead of a table.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Let this run past the guards against mass removal (max_user_removals_per_cycle,
    /// max_terminations_per_cycle).
    #[arg(long)]
    pub force: bool,
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

fn run_inner(args: RunArgs) -> Result<ExitCode, String> {
    let config_path = args.source.config_file();
    let loaded = crate::config::load(&config_path).map_err(|e| e.to_string())?;
    let logging = crate::logging::init_for_run(&loaded.config, args.log_format);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let env = AgentEnv::from_env().map_err(|e| e.to_string())?;
    let modes: Vec<(Mode, std::time::Duration)> = match args.mode {
        RunMode::OrderProcess => vec![(Mode::OrderProcess, env.order_process_period)],
        RunMode::Report => vec![(Mode::Report, env.report_period)],
        RunMode::MembershipSync => vec![(Mode::MembershipSync, env.membership_sync_period)],
        RunMode::EventProcess => Vec::new(),
        RunMode::All => vec![
            (Mode::OrderProcess, env.order_process_period),
            (Mode::MembershipSync, env.membership_sync_period),
            (Mode::Report, env.report_period),
        ],
    };
    let events = matches!(args.mode, RunMode::EventProcess | RunMode::All);
    if args.mode == RunMode::EventProcess
        && !loaded.config.offerings.iter().any(|o| o.stomp_enabled)
    {
        return Err(format!(
            "{}: no offering has stomp_enabled: true, so event_process has nothing to do \
             (the polling modes serve the others)",
            config_path.display()
        ));
    }
    let registry = Registry::new(scan(&args.source, Some(&loaded.config))?);
    for clash in &registry.catalog().clashes {
        tracing::warn!("{clash}");
    }
    // The other offerings are still served; a single run reports the gap in its exit code.
    let missing = missing_plugins(&loaded.config, &registry);
    for problem in &missing {
        tracing::error!("{problem}");
    }
    let once = args.once || args.dry_run;
    // Before any work: a second agent for the same offering and mode must not start at all.
    // A dry run writes nothing, so it may run beside the live agent.
    let runtime_dir = crate::config::runtime_dir(loaded.config.runtime_dir.as_deref());
    let locked = modes.iter().flat_map(|&(mode, _)| {
        loaded
            .config
            .offerings
            .iter()
            .filter(move |o| skip_reason(mode, o).is_none() && !mode.backend_entry(o).is_empty())
            .map(move |o| (mode.name(), o))
    });
    let event_locked = loaded
        .config
        .offerings
        .iter()
        .filter(|o| events && o.stomp_enabled)
        .map(|o| (EVENT_MODE, o));
    let locked = locked.chain(event_locked);
    let _locks = if args.dry_run {
        None
    } else {
        Some(instance_lock::acquire(&runtime_dir, locked).map_err(|e| e.to_string())?)
    };
    let grace = loaded.config.shutdown_grace;
    let heartbeat_interval = loaded.config.heartbeat_interval;
    let ship_interval = Duration::from_secs(loaded.config.log_shipping.ship_interval_seconds);
    let event_settings = EventSettings::new(env.reconciliation_period);
    let metrics = match args.metrics_address.or(loaded.config.metrics_address) {
        Some(address) => {
            let endpoint = crate::metrics::server::bind(address)?;
            tracing::info!("metrics: serving http://{}/metrics", endpoint.address);
            let metrics = Arc::new(crate::metrics::Metrics::new());
            metrics.record_plugin_entries(&registry.entry_states());
            Some((endpoint, metrics))
        }
        None => None,
    };
    let mut agent = Agent::new(loaded.config, registry);
    if let Some((_, metrics)) = &metrics {
        agent = agent.with_metrics(Arc::clone(metrics));
    }
    let plan = args.dry_run.then(crate::dry_run::Plan::new);
    if let Some(plan) = &plan {
        agent = agent.with_dry_run(Arc::clone(plan));
    }
    if args.force {
        agent = agent.forced();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let shutdown = Arc::clone(&agent.shutdown);
    if !args.dry_run {
        crate::modes::tools::heartbeat::init(&runtime_dir);
    }
    let outcome = runtime.block_on(async {
        tokio::spawn(stop_on_signals(Arc::clone(&shutdown), grace));
        // Liveness between cycles and during long ones (the reference's 60 s tick).
        let beating = Arc::clone(&shutdown);
        tokio::spawn(async move {
            crate::modes::tools::heartbeat::keep_beating(heartbeat_interval, beating.wait()).await
        });
        // A dry run registers no agent identity, which shipped logs would name.
        if let Some(hub) = logging.shipping.as_ref().filter(|_| !args.dry_run) {
            tokio::spawn(shipping::ship_every(Arc::clone(hub), ship_interval));
        }
        if let Some((endpoint, metrics)) = metrics {
            tokio::spawn(crate::metrics::server::serve(endpoint, metrics));
        }
        let work = async {
            if once {
                // One pass: in dependency order, so what order processing creates is synced
                // and reported in the same run. A stop request starts no further mode.
                let mut reports = Vec::new();
                for &(mode, period) in &modes {
                    reports
                        .push(run_loop(&agent, mode, period, true, RunSettings::default()).await);
                }
                let event_failures = if events {
                    run_event_process(&agent, event_settings, true).await
                } else {
                    Vec::new()
                };
                return (reports, event_failures);
            }
            // Each mode loops on its own period; they share the agent (and so the plugin
            // instances) and stop together.
            let loops = modes.iter().map(|&(mode, period)| {
                run_loop(&agent, mode, period, false, RunSettings::default())
            });
            let event_processing = async {
                if events {
                    run_event_process(&agent, event_settings, false).await
                } else {
                    Vec::new()
                }
            };
            tokio::join!(futures_util::future::join_all(loops), event_processing)
        };
        let deadline = async {
            shutdown.wait().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            reports = work => Some(reports),
            () = deadline => None,
        }
    });
    // What is still buffered for Waldur goes out before the process ends (within 10 s).
    if let Some(hub) = logging.shipping.as_ref().filter(|_| !args.dry_run) {
        runtime.block_on(shipping::flush(hub));
    }
    let Some((reports, event_failures)) = outcome else {
        tracing::error!(
            "the shutdown grace period of {} s is over: cancelled {} item(s) still running \
             (each is repeated safely by the next run); {} item(s) were not started",
            grace.as_secs(),
            shutdown.in_flight(),
            shutdown.not_started()
        );
        // Plugin calls still running on blocking threads are abandoned, not awaited.
        runtime.shutdown_timeout(std::time::Duration::from_millis(100));
        return Ok(ExitCode::from(1));
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    if shutdown.requested() {
        tracing::info!(
            "stopped: {} item(s) were left for the next run",
            shutdown.not_started()
        );
    }
    let failed: Vec<String> = (!missing.is_empty())
        .then(|| {
            format!(
                "{} plugin entr(ies) of the config not installed",
                missing.len()
            )
        })
        .into_iter()
        .chain(reports.iter().flatten().flat_map(|report| {
            report
                .failed_items()
                .into_iter()
                .map(move |item| format!("{}: {item}", report.mode.name()))
        }))
        .chain(
            event_failures
                .into_iter()
                .map(|item| format!("{EVENT_MODE}: {item}")),
        )
        .collect();
    if let Some(plan) = &plan {
        super::plan::print(&plan.writes(), &failed, args.json);
    }
    if once && !failed.is_empty() {
        let flag = if args.dry_run { "--dry-run" } else { "--once" };
        eprintln!("run {flag}: {}", failed.join("; "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The first SIGTERM or Ctrl-C asks the agent to stop (the items in hand finish within the
/// grace period); a second one ends the process at once.
async fn stop_on_signals(shutdown: Arc<Shutdown>, grace: std::time::Duration) {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGTERM is how systemd stops a unit; Ctrl-C (SIGINT) for interactive runs.
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!(
        "stopping: no new work starts, the items in hand may finish within {} s; \
         a second signal stops at once",
        grace.as_secs()
    );
    shutdown.request();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!(
        "second signal: stopping now; {} item(s) in hand are cancelled and repeated safely by the next run",
        shutdown.in_flight()
    );
    std::process::exit(130);
}

/// Offerings whose `backend_type` or mode backends name an entry no installed plugin
/// registers: one line each. The agent still serves the other offerings.
fn missing_plugins(config: &crate::config::Config, registry: &Registry) -> Vec<String> {
    let mut problems = Vec::new();
    for offering in &config.offerings {
        for (key, kind, entry) in plugin_entries(offering) {
            if let Err(e) = registry.plugin(kind, entry) {
                problems.push(format!("offering '{}': {key}: {e}", offering.name));
            }
        }
    }
    problems
}
