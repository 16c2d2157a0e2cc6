//! `waldur-agent healthz` (reference `waldur_site_healthz`): liveness is a fresh heartbeat
//! file (written by `run` at the start and end of every cycle); readiness is Waldur answering
//! `GET /api/users/me/?field=uuid` for at least one offering.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;

use crate::modes::tools::heartbeat::{check_liveness, liveness_path};
use crate::modes::tools::one_line;
use crate::waldur::{RetryPolicy, WaldurClient};

/// Shown after `healthz --help`.
pub const AFTER_HELP: &str = "The heartbeat file is written by `waldur-agent run` every \
heartbeat_interval_seconds (60) and around every cycle: <runtime dir>/heartbeat (the config's \
runtime_dir, $WALDUR_AGENT_RUNTIME_DIR, $RUNTIME_DIRECTORY, /run/waldur-agent for root), or the \
path in the WALDUR_AGENT_HEARTBEAT_FILE environment variable (for both `run` and `healthz`); \
when that file does not exist, the reference's /tmp/waldur-site-agent-heartbeat is read. \
Without --liveness-only, the agent is also ready only if Waldur answers \
GET /api/users/me/?field=uuid for at least one offering of the configuration. \
Exit codes: 0 = healthy; 1 = unhealthy (one line on stdout says why).";

#[derive(Debug, Args)]
pub struct HealthzArgs {
    /// The agent configuration (readiness check only).
    #[arg(short = 'c', long = "config-file", alias = "config", value_name = "CONFIG", default_value = crate::config::DEFAULT_CONFIG_FILE)]
    pub config: PathBuf,
    /// Seconds after which the heartbeat file counts as stale.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub max_age: u64,
    /// Check only the heartbeat file (no configuration, no Waldur call).
    #[arg(long)]
    pub liveness_only: bool,
    /// The heartbeat file (default: $WALDUR_AGENT_HEARTBEAT_FILE, else <runtime dir>/heartbeat,
    /// else /tmp/waldur-site-agent-heartbeat).
    #[arg(long, value_name = "PATH")]
    pub heartbeat_file: Option<PathBuf>,
}

pub fn run(args: HealthzArgs) -> ExitCode {
    match check(&args) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("unhealthy: {}", one_line(&reason));
            ExitCode::from(1)
        }
    }
}

fn check(args: &HealthzArgs) -> Result<String, String> {
    // Read once, and only when needed: for the heartbeat's runtime directory and for readiness.
    let loaded = (args.heartbeat_file.is_none() || !args.liveness_only)
        .then(|| crate::config::load(&args.config));
    let path = match &args.heartbeat_file {
        Some(path) => path.clone(),
        // The runtime directory `run` uses with this config: its `runtime_dir` when the file
        // loads, else the default (a liveness probe needs no readable config).
        None => {
            let configured = loaded
                .as_ref()
                .and_then(|l| l.as_ref().ok())
                .and_then(|l| l.config.runtime_dir.as_deref());
            liveness_path(&crate::config::runtime_dir(configured))
        }
    };
    let age = check_liveness(&path, Duration::from_secs(args.max_age), SystemTime::now())?;
    let alive = format!("alive: heartbeat {}s old", age.as_secs());
    let Some(loaded) = loaded.filter(|_| !args.liveness_only) else {
        return Ok(alive);
    };
    let loaded = loaded.map_err(|e| one_line(&e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut errors = Vec::new();
    for offering in &loaded.config.offerings {
        let mut options = WaldurClient::offering_options(offering, &loaded.config, "healthz");
        options.timeout = Duration::from_secs(10);
        options.retry = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        let answer = WaldurClient::new(&offering.waldur_api_url, &offering.auth, options)
            .map_err(|e| one_line(&e));
        let answer = match answer {
            Ok(client) => runtime
                .block_on(client.users_me(&["uuid"]))
                .map_err(|e| one_line(&e)),
            Err(e) => Err(e),
        };
        match answer {
            Ok(_) => {
                return Ok(format!(
                    "{alive}; ready: Waldur answers for '{}'",
                    offering.name
                ))
            }
            Err(e) => errors.push(format!("'{}': {e}", offering.name)),
        }
    }
    if errors.is_empty() {
        return Err("not ready: no offering configured".into());
    }
    Err(format!("not ready: {}", errors.join("; ")))
}
