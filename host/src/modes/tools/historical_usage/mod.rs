//! `load-historical-usage` (reference `waldur_site_load_historical_usage`): past months' usage
//! from the reporting backend into Waldur, month by month, with a staff user's token.
//!
//! Unlike the reference it is idempotent: what Waldur already holds is read first and only
//! differences are sent, so a second identical run sends nothing.

mod dates;
mod month;
mod plan;

pub use dates::{DateRange, MAX_RANGE_DAYS};

use serde::Serialize;

use crate::config::{Config, Offering, Secret, WaldurAuth};
use crate::modes::error::ModeError;
use crate::modes::runtime::{Agent, Mode, Session};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// The User-Agent comment of every request (the reference's `historical-usage-loader`).
const USER_AGENT_MODE: &str = "historical-usage-loader";

/// What to load, from the command line.
#[derive(Debug, Clone)]
pub struct HistoricalOptions {
    /// `waldur_offering_uuid` of the configured offering, dashed or not.
    pub offering_uuid: String,
    /// Used instead of the offering's credentials for every Waldur call.
    pub user_token: Secret,
    pub range: DateRange,
    /// Refuse a token whose user is not staff (B2 `is_staff`).
    pub staff_check: bool,
    /// Totals only.
    pub skip_user_usage: bool,
    /// Read everything, send nothing: the summary's `plan` says what would be sent.
    pub dry_run: bool,
    /// Set to 0 what Waldur holds as non-zero and the backend no longer reports.
    pub reconcile_stale: bool,
    /// Only the resources with these backend ids (all when empty).
    pub resource_backend_ids: Vec<String>,
}

/// Why loading could not start (nothing was sent).
#[derive(Debug, thiserror::Error)]
pub enum HistoricalError {
    #[error("no offering in the configuration has waldur_offering_uuid {0}")]
    UnknownOffering(String),
    #[error(
        "the --user-token belongs to '{0}', who is not staff: loading historical usage needs a \
         staff user's token (or --no-staff-check with a service provider's token)"
    )]
    NotStaff(String),
    #[error("checking the --user-token with GET /api/users/me/: {0}")]
    StaffCheck(Box<WaldurError>),
    #[error("offering '{offering}': {error}")]
    Offering {
        offering: String,
        error: Box<ModeError>,
    },
}

/// Counts of one month, or of one resource's month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Resources with a backend id (after `--resource-backend-id`).
    pub resources: usize,
    /// Resources the backend had no usage for.
    pub no_data: usize,
    /// Resources whose totals were set (in a dry run: would be).
    pub totals_sent: usize,
    /// Resources whose totals Waldur already held.
    pub totals_unchanged: usize,
    pub user_usages_sent: usize,
    pub user_usages_unchanged: usize,
    /// Stale totals (components) and user usages set to 0 (`--reconcile-stale`).
    pub zeroed: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.resources += other.resources;
        self.no_data += other.no_data;
        self.totals_sent += other.totals_sent;
        self.totals_unchanged += other.totals_unchanged;
        self.user_usages_sent += other.user_usages_sent;
        self.user_usages_unchanged += other.user_usages_unchanged;
        self.zeroed += other.zeroed;
    }
}

/// One billing month of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MonthSummary {
    /// `YYYY-MM`.
    pub month: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Why the month, or some of its resources, failed (one line); `None` when all landed.
    pub failed: Option<String>,
    /// Dry run: each write that would be sent, one line each.
    pub plan: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoricalSummary {
    pub offering: String,
    pub dry_run: bool,
    pub months: Vec<MonthSummary>,
}

impl HistoricalSummary {
    pub fn failed_months(&self) -> usize {
        self.months.iter().filter(|m| m.failed.is_some()).count()
    }
}

/// Loads every month of `options.range` into Waldur; `on_month` is called as each month ends
/// (for progress). A failing month is recorded and the next one goes on.
pub async fn load_historical_usage(
    agent: &Agent,
    options: &HistoricalOptions,
    on_month: impl Fn(&MonthSummary),
) -> Result<HistoricalSummary, HistoricalError> {
    let offering = reporting_offering(&agent.config, &options.offering_uuid)?;
    let failed = |error: ModeError| HistoricalError::Offering {
        offering: offering.name.clone(),
        error: Box::new(error),
    };
    let mut client_options =
        WaldurClient::offering_options(&offering, &agent.config, USER_AGENT_MODE);
    if options.dry_run {
        // Whatever the loader decides to send, the client holds back: a dry run cannot write.
        client_options.dry_run = Some(crate::dry_run::Plan::new().waldur(&offering.name));
    }
    let client = WaldurClient::new(
        &offering.waldur_api_url,
        &WaldurAuth::Token(options.user_token.clone()),
        client_options,
    )
    .map_err(|e| failed(e.into()))?;
    if options.staff_check {
        let me = client
            .users_me(&[])
            .await
            .map_err(|e| HistoricalError::StaffCheck(Box::new(e)))?;
        if !me.is_staff {
            return Err(HistoricalError::NotStaff(me.username));
        }
        tracing::info!("staff user '{}' confirmed", me.username);
    }
    let session = Session::prepare(agent, &offering, Mode::Report, client)
        .await
        .map_err(failed)?;
    let components = session.reported_components();
    let mut months = Vec::new();
    for period in options.range.months() {
        let summary = session
            .historical_month(&period, &components, options)
            .await;
        on_month(&summary);
        months.push(summary);
    }
    Ok(HistoricalSummary {
        offering: offering.name.clone(),
        dry_run: options.dry_run,
        months,
    })
}

/// The configured offering with this Waldur UUID (compared normalised), with its reporting
/// entry: `reporting_backend`, else `backend_type`.
fn reporting_offering(config: &Config, uuid: &str) -> Result<Offering, HistoricalError> {
    let wanted = normalize_uuid(uuid);
    let mut offering = config
        .offerings
        .iter()
        .find(|o| normalize_uuid(&o.waldur_offering_uuid) == wanted)
        .cloned()
        .ok_or_else(|| HistoricalError::UnknownOffering(uuid.to_string()))?;
    if offering.reporting_backend.is_empty() {
        offering.reporting_backend = offering.backend_type.clone();
    }
    Ok(offering)
}
