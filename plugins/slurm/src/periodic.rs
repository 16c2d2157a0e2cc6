//! Periodic usage-policy settings (`apply_periodic_settings`), production mode: fairshare,
//! one limit type's TRES limits, and a raw-usage reset, each applied only when it differs
//! from what SLURM reports (the reset is never diffed). The result lists every command run.
//!
//! The current values are the account's own association's (`list account withassoc`), so a
//! setting SLURM already has costs a read, not a write; the reference reads them without
//! WithAssoc, always blank, and writes every time.

use serde_json::{Map, Value};
use waldur_plugin_abi::wire::{JsonMap, PeriodicSettingsResult};
use waldur_plugin_abi::Result;

use crate::client::SlurmClient;
use crate::names;
use crate::settings::truthy;
use crate::slurm::Slurm;

/// Python's `str()` of a JSON value.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `int()` of a JSON value, `None` where it would raise.
fn py_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A limit type and its `(tres, value)` targets.
type LimitTargets = (String, Vec<(String, String)>);

fn result(success: bool, error: Option<String>, commands: Vec<String>) -> PeriodicSettingsResult {
    let mut extra = JsonMap::new();
    extra.insert("mode".into(), Value::String("production".into()));
    PeriodicSettingsResult {
        success,
        error,
        commands_executed: commands,
        extra,
    }
}

impl Slurm {
    pub(crate) fn apply_periodic(&self, account: &str, settings: &Value) -> PeriodicSettingsResult {
        log::info!("Applying periodic settings for resource {account}");
        log::debug!("Settings: {settings}");
        if !self.settings.periodic_limits.enabled {
            log::warn!("Periodic limits not enabled, skipping apply_periodic_settings");
            let mut extra = JsonMap::new();
            extra.insert(
                "reason".into(),
                Value::String("periodic_limits_not_enabled".into()),
            );
            return PeriodicSettingsResult {
                success: false,
                extra,
                ..Default::default()
            };
        }
        let client = self.client.recording();
        let empty = Map::new();
        let settings = settings.as_object().unwrap_or(&empty);
        match self.apply_production(&client, account, settings) {
            Ok(()) => {
                log::info!("Successfully applied settings to production SLURM");
                result(true, None, client.executed_commands())
            }
            Err(e) => {
                log::error!(
                    "Failed to apply settings to production SLURM: {}",
                    e.message
                );
                result(false, Some(e.message), client.executed_commands())
            }
        }
    }

    /// The limit type and `(tres, value)` targets of a message, every one checked, or
    /// `None` when it sets no limits.
    fn limit_targets(&self, settings: &JsonMap) -> Result<Option<LimitTargets>> {
        let limits = [settings.get("grp_tres_mins"), settings.get("max_tres_mins")]
            .into_iter()
            .find(|v| truthy(*v))
            .flatten();
        let Some(limits) = limits else {
            return Ok(None);
        };
        let limit_type = match settings.get("limit_type") {
            None | Some(Value::Null) => self.settings.periodic_limits.limit_type.clone(),
            Some(value) => py_str(value),
        };
        names::tres_limit_type(&limit_type)?;
        let target: Vec<(String, String)> = match limits {
            Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), py_str(v))).collect(),
            other => {
                return Err(waldur_plugin_abi::Error::backend(format!(
                    "{limit_type} limits must be an object of TRES values, got {other}"
                )))
            }
        };
        for (tres, value) in &target {
            names::tres(tres)?;
            names::integer("TRES limit", value)?;
        }
        Ok(Some((limit_type, target)))
    }

    fn apply_production(
        &self,
        client: &SlurmClient,
        account: &str,
        settings: &JsonMap,
    ) -> Result<()> {
        // The account and every value of the message (from Waldur) are checked before the
        // first command, so a refused one applies nothing.
        names::account(account)?;
        let fairshare = match truthy(settings.get("fairshare")) {
            true => Some(&settings["fairshare"]),
            false => None,
        };
        if let Some(target) = fairshare {
            names::fairshare(&py_str(target))?;
        }
        let limits = self.limit_targets(settings)?;

        if let Some(target) = fairshare {
            // A failed or unreadable current value never suppresses the change.
            let current = client.get_account_fairshare(account).ok().flatten();
            if current.is_some() && current == py_int(target) {
                log::debug!("Fairshare for account {account} already {target}; skipping");
            } else {
                client.set_account_fairshare(account, &py_str(target))?;
            }
        }

        if let Some((limit_type, target)) = limits {
            let changed: Vec<(String, String)> = match client.get_account_limits(account) {
                Ok(current) => {
                    let current = current.get(&limit_type).cloned().unwrap_or_default();
                    target
                        .into_iter()
                        .filter(|(tres, value)| {
                            current.get(tres).map_or("None", String::as_str) != value
                        })
                        .collect()
                }
                Err(e) => {
                    log::debug!(
                        "Could not read current limits for account {account} ({}); applying",
                        e.message
                    );
                    target
                }
            };
            if changed.is_empty() {
                log::debug!("{limit_type} for account {account} already matches; skipping");
            } else {
                client.set_account_limits(account, &limit_type, &changed)?;
            }
        }

        if truthy(settings.get("reset_raw_usage")) {
            log::debug!("Resetting raw usage for account {account}");
            client.reset_raw_usage(account)?;
        }
        Ok(())
    }
}
