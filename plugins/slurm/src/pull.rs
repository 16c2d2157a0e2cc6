//! Reading resources back: usage reports and the batched `pull_resources`.
//!
//! The reference pulls resource by resource: `show account <id>`, `list associations ...
//! where account=<id>` and one `sacct --accounts=<id>` each, so a membership cycle over N
//! resources costs 3N commands. Here a cycle costs three commands per chunk of
//! [`CHUNK`] accounts: `list account where name=a,b,...`, `list associations format=account,
//! user where account=a,b,...` and `sacct ... --accounts=a,b,...`. The answers are split per
//! account exactly as the single-account queries would have answered them.

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{BackendResourceInfo, UsageReport, WaldurResource};
use waldur_plugin_abi::Result;

use crate::names;
use crate::slurm::Slurm;
use crate::usage::{self, Period};

/// Accounts per command: comma lists of 200 account names stay far below ARG_MAX.
pub const CHUNK: usize = 200;

impl Slurm {
    /// The usage report of `accounts` for `period`, one sacct per [`CHUNK`] accounts.
    /// Accounts without usage lines, and ids that are no valid account names, are absent.
    pub(crate) fn usage_report(&self, accounts: &[String], period: Period) -> Result<UsageReport> {
        let mut report = UsageReport::new();
        for chunk in valid_accounts(&distinct(accounts)).chunks(CHUNK) {
            let lines = self.client.usage_lines(chunk, period)?;
            let raw = usage::sum_lines(&lines, self.client.reported_tres());
            report.extend(usage::to_report(&raw, &self.components, &self.mapper));
        }
        Ok(report)
    }

    /// One account as the agent's default `pull_backend_resource` reads it: `None` when the
    /// account does not exist; else its users and its usage (zeros without usage lines).
    pub fn pull_one(&self, account: &str) -> Result<Option<BackendResourceInfo>> {
        log::info!("Pulling resource {account}");
        if self.client.get_resource(account)?.is_none() {
            log::warn!("There is no resource with ID {account} in the backend");
            return Ok(None);
        }
        let users = self.client.list_resource_users(account)?;
        let mut report = self.usage_report(&[account.to_string()], self.current_period())?;
        let usage = report
            .remove(account)
            .unwrap_or_else(|| usage::zero_usage(&self.components));
        Ok(Some(BackendResourceInfo {
            users,
            usage,
            ..Default::default()
        }))
    }

    /// Every resource with a backend id that exists in SLURM, keyed by backend id, with the
    /// same content as one `pull_resource` each. Resources without a backend id, or whose id
    /// is no valid account name, are skipped (logged); when a batched command fails, its chunk is pulled account by account, so one failing
    /// account cannot hide the others (failures are logged and the account left out).
    pub(crate) fn pull_many(
        &self,
        resources: &[WaldurResource],
    ) -> BTreeMap<String, BackendResourceInfo> {
        let mut ids = Vec::new();
        for resource in resources {
            if resource.backend_id.is_empty() {
                log::warn!("Backend ID is missing for resource {}", resource.name);
            } else {
                ids.push(resource.backend_id.clone());
            }
        }
        let period = self.current_period();
        let mut pulled = BTreeMap::new();
        for chunk in valid_accounts(&distinct(&ids)).chunks(CHUNK) {
            match self.pull_chunk(chunk, period) {
                Ok(infos) => pulled.extend(infos),
                Err(e) => {
                    log::error!(
                        "Batched pull of {} accounts failed ({}); pulling them one by one",
                        chunk.len(),
                        e.message
                    );
                    for account in chunk {
                        match self.pull_one(account) {
                            Ok(Some(info)) => {
                                pulled.insert(account.clone(), info);
                            }
                            Ok(None) => {}
                            Err(e) => log::error!(
                                "Error while pulling resource [{account}]: {}",
                                e.message
                            ),
                        }
                    }
                }
            }
        }
        pulled
    }

    fn pull_chunk(
        &self,
        accounts: &[String],
        period: Period,
    ) -> Result<BTreeMap<String, BackendResourceInfo>> {
        // `show account <id>` matches names case-insensitively (SLURM stores them lower-case).
        let found: BTreeSet<String> = self
            .client
            .list_accounts(accounts)?
            .into_iter()
            .map(|account| account.name.to_lowercase())
            .collect();
        let existing: Vec<String> = accounts
            .iter()
            .filter(|account| {
                let known = found.contains(&account.to_lowercase());
                if !known {
                    log::warn!("There is no resource with ID {account} in the backend");
                }
                known
            })
            .cloned()
            .collect();
        if existing.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut users = self.client.list_users_of_accounts(&existing)?;
        let lines = self.client.usage_lines(&existing, period)?;
        let raw = usage::sum_lines(&lines, self.client.reported_tres());
        let mut report = usage::to_report(&raw, &self.components, &self.mapper);
        Ok(existing
            .into_iter()
            .map(|account| {
                let info = BackendResourceInfo {
                    users: users.remove(&account).unwrap_or_default(),
                    usage: report
                        .remove(&account)
                        .unwrap_or_else(|| usage::zero_usage(&self.components)),
                    ..Default::default()
                };
                (account, info)
            })
            .collect())
    }
}

/// The ids in their first order, each once.
fn distinct(ids: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    ids.iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// The ids that are valid account names; each refused one is logged with why and left out,
/// so it cannot fail (or widen) the batched command of the others.
fn valid_accounts(ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| match names::account(id) {
            Ok(_) => true,
            Err(e) => {
                log::error!("Skipping resource: {}", e.message);
                false
            }
        })
        .cloned()
        .collect()
}
