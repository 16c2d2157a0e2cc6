//! Pause, downscale and restore.
//!
//! Classic model: the account's QoS is swapped (`qos_paused`, `qos_downscaled`,
//! `qos_default`). Enforcement model (`qos_enforcement_enabled` and the offering's or the
//! site's `enforce_qos`): the QoS is a per-association grant that must not be clobbered, so
//! pause and downscale set `GrpSubmitJobs=0` and restore clears it (`-1`).
//!
//! Also the per-account QoS of `qos_management`.

use serde_json::Value;
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::Result;

use crate::settings::QosManagement;
use crate::slurm::Slurm;

impl Slurm {
    /// Pause (`target` = `qos_paused`) or downscale (`qos_downscaled`). False when the target
    /// QoS is not configured.
    pub(crate) fn swap_qos(&self, account: &str, what: &str, target: Option<&str>) -> Result<bool> {
        if self.qos_enforced() {
            log::info!("{what} account {account} via GrpSubmitJobs=0 (QoS enforcement mode)");
            self.client.set_account_grp_submit_jobs(account, 0)?;
            return Ok(true);
        }
        let Some(target) = target else {
            log::error!("The QoS for {what} is not configured, skipping operation");
            return Ok(false);
        };
        let current = self.client.get_current_account_qos(account)?;
        log::info!("Current QoS: {current}");
        if current == target {
            log::info!("The account {account} already has QoS {target}");
        } else {
            log::info!("Setting {target} QoS for the SLURM account {account}");
            self.client.set_account_qos(account, target)?;
        }
        self.remember_qos(account, target);
        Ok(true)
    }

    /// Back to `qos_default`: false when the account already has it (nothing done). An
    /// empty current QoS (unknown) is written anyway, so a pause cannot get stuck.
    pub(crate) fn restore_qos(&self, account: &str) -> Result<bool> {
        if self.qos_enforced() {
            log::info!("Restoring account {account} via GrpSubmitJobs=-1 (QoS enforcement mode)");
            self.client.set_account_grp_submit_jobs(account, -1)?;
            return Ok(true);
        }
        let current = self.client.get_current_account_qos(account)?;
        let default = &self.settings.qos_default;
        log::info!(
            "The current QoS is {}",
            if current.is_empty() {
                "(unknown)"
            } else {
                &current
            }
        );
        if !current.is_empty() && &current == default {
            log::info!("The account already has the default QoS ({default})");
            self.remember_qos(account, &current);
            return Ok(false);
        }
        log::info!("Setting {default} QoS");
        self.client.set_account_qos(account, default)?;
        self.remember_qos(account, default);
        Ok(true)
    }

    /// `{"qos": ...}`: what the last pause/downscale/restore of this account set (consumed),
    /// else the account's current QoS.
    pub(crate) fn qos_metadata(&self, account: &str) -> Result<JsonMap> {
        let qos = match self.take_remembered_qos(account) {
            Some(qos) => qos,
            None => self.client.get_current_account_qos(account)?,
        };
        let mut metadata = JsonMap::new();
        metadata.insert("qos".into(), Value::String(qos));
        Ok(metadata)
    }

    /// The per-account QoS of `qos_management`, attached to the EXISTING account `account`
    /// (its real backend id). The QoS is created when missing; the attachments are idempotent
    /// and always made, so an account re-created under an existing QoS gets it back.
    ///
    /// The reference runs this before the account exists and with the slug-derived id, so
    /// sacctmgr answers "Nothing modified" and the attach is silently lost.
    pub(crate) fn setup_account_qos(&self, config: &QosManagement, account: &str) -> Result<()> {
        if self.client.qos_exists(account)? {
            log::info!("QoS {account} already exists, skipping creation");
        } else {
            self.client.create_qos(account, &config.spec)?;
        }
        self.client.add_account_qos(account, account)?;
        self.client.set_account_default_qos(account, account)?;
        for qos in &config.additional_qos {
            self.client.add_account_qos(account, qos)?;
        }
        Ok(())
    }
}
