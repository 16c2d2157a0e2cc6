//! `waldur-agent load-historical-usage` (reference `waldur_site_load_historical_usage`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use indicatif::{ProgressBar, ProgressStyle};

use super::{setup_failed, with_agent};
use crate::cli::PluginSource;
use crate::config::Secret;
use crate::modes::tools::historical_usage::{
    load_historical_usage, DateRange, HistoricalOptions, HistoricalSummary, MonthSummary,
};

pub const AFTER_HELP: &str = "Exit codes: 0 = every month loaded; 1 = at least one month \
(or a resource in it) failed, the others were still loaded; 2 = nothing was loaded: bad \
arguments, the configuration, the plugins, the offering or the token's staff check.

Example:
  waldur-agent load-historical-usage -c /etc/waldur/waldur-site-agent-config.yaml \\
    -o 12345678-1234-1234-1234-123456789abc -t STAFF_TOKEN \\
    -s 2024-01-01 -e 2024-12-31 --dry-run";

/// The reference's flags (`--config` is required here, as there), plus the plugin search
/// flags every command has and `--json`.
#[derive(Debug, Args)]
#[command(mut_arg("config", |a| a.required(true)))]
pub struct HistoricalArgs {
    #[command(flatten)]
    pub source: PluginSource,
    /// UUID of the Waldur offering to load (a configured `waldur_offering_uuid`).
    #[arg(short = 'o', long = "offering-uuid", value_name = "UUID")]
    pub offering_uuid: String,
    /// A staff user's Waldur API token, used instead of the offering's for every call.
    #[arg(short = 't', long = "user-token", value_name = "TOKEN", value_parser = secret)]
    pub user_token: Secret,
    /// First day to load, YYYY-MM-DD (its whole month is loaded).
    #[arg(short = 's', long = "start-date", value_name = "DATE")]
    pub start_date: String,
    /// Last day to load, YYYY-MM-DD (its whole month is loaded); at most 5 years after the start.
    #[arg(short = 'e', long = "end-date", value_name = "DATE")]
    pub end_date: String,
    /// Load resource totals only, no per-user usage.
    #[arg(long)]
    pub skip_user_usage: bool,
    /// Do not require the token's user to be staff (a service provider's token; Waldur
    /// enforces its own permissions).
    #[arg(long)]
    pub no_staff_check: bool,
    /// Read everything, send nothing: print what would be sent.
    #[arg(long)]
    pub dry_run: bool,
    /// Set to 0 the totals and user usages Waldur holds as non-zero that the backend no
    /// longer reports (e.g. usage first booked into the wrong month).
    #[arg(long)]
    pub reconcile_stale: bool,
    /// Only the resource with this backend id (repeatable).
    #[arg(long = "resource-backend-id", value_name = "ID")]
    pub resource_backend_ids: Vec<String>,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The token as a [`Secret`]: it never shows in a debug print of the command line.
fn secret(token: &str) -> Result<Secret, String> {
    Ok(Secret::new(token))
}

pub fn run(args: HistoricalArgs) -> ExitCode {
    let range = match DateRange::parse(&args.start_date, &args.end_date) {
        Ok(range) => range,
        Err(e) => return setup_failed(&e),
    };
    let options = HistoricalOptions {
        offering_uuid: args.offering_uuid,
        user_token: args.user_token,
        range,
        staff_check: !args.no_staff_check,
        skip_user_usage: args.skip_user_usage,
        dry_run: args.dry_run,
        reconcile_stale: args.reconcile_stale,
        resource_backend_ids: args.resource_backend_ids,
    };
    let progress = MonthProgress::new(range.months().len() as u64);
    let loaded = with_agent(args.source, async |agent| {
        load_historical_usage(agent, &options, |month| progress.month_done(month)).await
    });
    progress.finish();
    let summary = match loaded {
        Ok(Ok(summary)) => summary,
        Ok(Err(e)) => return setup_failed(&e.to_string()),
        Err(e) => return setup_failed(&e),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("a summary serialises")
        );
    } else {
        print_summary(&summary);
    }
    if summary.failed_months() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A bar on stderr when it is a terminal, else one line per month (logs and pipes stay
/// readable).
struct MonthProgress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::sync::atomic::AtomicU64,
}

impl MonthProgress {
    fn new(total: u64) -> MonthProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} months {msg} ({eta} left)")
                    .expect("a valid template"),
            );
            bar
        });
        MonthProgress {
            bar,
            total,
            done: Default::default(),
        }
    }

    fn month_done(&self, month: &MonthSummary) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let state = if month.failed.is_some() {
            "FAILED"
        } else {
            "done"
        };
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} {state}", month.month));
                bar.inc(1);
            }
            None => eprintln!("month {done}/{}: {} {state}", self.total, month.month),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn print_summary(summary: &HistoricalSummary) {
    for line in summary.months.iter().flat_map(|m| &m.plan) {
        println!("would send: {line}");
    }
    let sent = if summary.dry_run { "TO SEND" } else { "SENT" };
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header([
        "MONTH".to_string(),
        "RESOURCES".to_string(),
        "NO DATA".to_string(),
        format!("TOTALS {sent}"),
        "TOTALS UNCHANGED".to_string(),
        format!("USER USAGES {sent}"),
        "USER USAGES UNCHANGED".to_string(),
        "ZEROED".to_string(),
        "FAILED".to_string(),
    ]);
    for month in &summary.months {
        let c = &month.counts;
        table.add_row([
            month.month.clone(),
            c.resources.to_string(),
            c.no_data.to_string(),
            c.totals_sent.to_string(),
            c.totals_unchanged.to_string(),
            c.user_usages_sent.to_string(),
            c.user_usages_unchanged.to_string(),
            c.zeroed.to_string(),
            month.failed.clone().unwrap_or_default(),
        ]);
    }
    println!(
        "offering '{}'{}",
        summary.offering,
        if summary.dry_run {
            " (dry run: nothing sent)"
        } else {
            ""
        }
    );
    println!("{table}");
    println!(
        "{} month(s), {} failed",
        summary.months.len(),
        summary.failed_months()
    );
}
