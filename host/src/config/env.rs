//! The reference agent's environment variables (its `common/__init__.py`): the period of each
//! polling mode.
//!
//! `WALDUR_VERIFY_SSL` is read by the reference but never used (per-offering `verify_ssl` is what
//! counts), so it is not read here either. Unlike the reference, which crashes at import on a
//! value it cannot parse, a bad value is a one-line error naming the variable, and a period must
//! be positive.

use std::time::Duration;

use super::error::{ConfigError, ConfigErrorKind};

pub const ORDER_PROCESS_PERIOD_VAR: &str = "WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES";
pub const REPORT_PERIOD_VAR: &str = "WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES";
pub const MEMBERSHIP_SYNC_PERIOD_VAR: &str = "WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES";
pub const RECONCILIATION_PERIOD_VAR: &str = "WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES";

/// Polling periods, from the environment with the reference's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentEnv {
    /// `WALDUR_SITE_AGENT_ORDER_PROCESS_PERIOD_MINUTES`: minutes, fractions allowed; default 5.
    pub order_process_period: Duration,
    /// `WALDUR_SITE_AGENT_REPORT_PERIOD_MINUTES`: whole minutes; default 30.
    pub report_period: Duration,
    /// `WALDUR_SITE_AGENT_MEMBERSHIP_SYNC_PERIOD_MINUTES`: whole minutes; default 5.
    pub membership_sync_period: Duration,
    /// `WALDUR_SITE_AGENT_RECONCILIATION_PERIOD_MINUTES` (event_process): minutes,
    /// fractions allowed; default 60.
    pub reconciliation_period: Duration,
}

impl Default for AgentEnv {
    fn default() -> Self {
        AgentEnv {
            order_process_period: minutes(5.0),
            report_period: minutes(30.0),
            membership_sync_period: minutes(5.0),
            reconciliation_period: minutes(60.0),
        }
    }
}

fn minutes(m: f64) -> Duration {
    Duration::from_secs_f64(m * 60.0)
}

impl AgentEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<AgentEnv, ConfigError> {
        AgentEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (for tests and for callers with their own environment).
    /// An unset or empty variable means the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AgentEnv, ConfigError> {
        let defaults = AgentEnv::default();
        let read =
            |name: &str, fractional: bool, default: Duration| -> Result<Duration, ConfigError> {
                let Some(text) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                    return Ok(default);
                };
                let value = if fractional {
                    text.trim().parse::<f64>().ok()
                } else {
                    text.trim().parse::<u64>().ok().map(|n| n as f64)
                };
                match value {
                    Some(m) if m.is_finite() && m > 0.0 && m <= 525_600.0 => Ok(minutes(m)),
                    _ => Err(ConfigError::new(
                        ConfigErrorKind::Invalid,
                        "environment",
                        Some(name.to_owned()),
                        None,
                        format!(
                            "must be a positive {} of minutes (at most a year), got {text:?}",
                            if fractional { "number" } else { "whole number" }
                        ),
                    )),
                }
            };
        Ok(AgentEnv {
            order_process_period: read(
                ORDER_PROCESS_PERIOD_VAR,
                true,
                defaults.order_process_period,
            )?,
            report_period: read(REPORT_PERIOD_VAR, false, defaults.report_period)?,
            membership_sync_period: read(
                MEMBERSHIP_SYNC_PERIOD_VAR,
                false,
                defaults.membership_sync_period,
            )?,
            // Fractions are an extension (the reference takes whole minutes): a site, or a test,
            // may reconcile more often than once a minute.
            reconciliation_period: read(
                RECONCILIATION_PERIOD_VAR,
                true,
                defaults.reconciliation_period,
            )?,
        })
    }
}
