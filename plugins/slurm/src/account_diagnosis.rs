//! `invoke("diagnose_account")` (`waldur-agent diagnose-slurm-account`): the account as
//! SLURM has it (`show account`, then one `show association` query), and what this plugin
//! would set on it for Waldur's resource, computed by the code that sets it: GrpTRESMins from
//! `collect_resource_limits`, the parent from the project's slug, the QoS of the classic
//! pause model (or GrpSubmitJobs under QoS enforcement) for Waldur's paused/downscaled flags,
//! and each user's MaxTRESMins from Waldur's per-user limits.

use std::collections::BTreeMap;

use waldur_plugin_abi::wire::{
    AccountDiagnosis, AccountFact, AccountUser, AccountingType, BackendLimits, DiagnoseAccountArgs,
    ExpectedAccount, KindLimits, WaldurResource,
};
use waldur_plugin_abi::{Backend, Result};

use crate::limits;
use crate::names;
use crate::slurm::Slurm;

/// The limit type the plugin sets on accounts.
const ACCOUNT_LIMIT: &str = "GrpTRESMins";
/// The limit type the plugin sets on user associations.
const USER_LIMIT: &str = "MaxTRESMins";

impl Slurm {
    pub(crate) fn diagnose_account(&self, args: &DiagnoseAccountArgs) -> Result<AccountDiagnosis> {
        let account = names::account(&args.backend_id)?;
        let mut diagnosis = AccountDiagnosis {
            account: account.to_string(),
            ..Default::default()
        };
        if let Some(resource) = &args.waldur_resource {
            diagnosis.expected = self.expected_account(resource, &args.user_limits)?;
        }
        let Some(found) = self.client.get_resource(account)? else {
            return Ok(diagnosis);
        };
        diagnosis.exists = true;
        diagnosis.facts = vec![
            fact("description", &found.description),
            fact("organization", &found.organization),
        ];
        let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in self.client.account_association_details(account)? {
            if row.user.is_empty() {
                diagnosis.settings.insert("parent".into(), row.parent);
                diagnosis.settings.insert("qos".into(), row.qos);
                diagnosis
                    .settings
                    .insert("GrpSubmitJobs".into(), row.grp_submit_jobs);
                diagnosis.limits = row.limits;
                continue;
            }
            if !row.partition.is_empty() {
                partitions
                    .entry(row.user.clone())
                    .or_default()
                    .push(row.partition);
            }
            // A user has one association per partition; the limits are set on all alike.
            if !diagnosis.associations.iter().any(|a| a.user == row.user) {
                diagnosis.associations.push(AccountUser {
                    user: row.user,
                    limits: row.limits,
                });
            }
        }
        for (user, partitions) in partitions {
            diagnosis.facts.push(fact(
                &format!("partitions of {user}"),
                &partitions.join(","),
            ));
        }
        if args.waldur_resource.is_some() {
            // Users Waldur gives no limits have theirs cleared by the membership sync.
            for association in &diagnosis.associations {
                diagnosis
                    .expected
                    .user_limits
                    .entry(association.user.clone())
                    .or_insert_with(|| KindLimits::from([(USER_LIMIT.into(), BTreeMap::new())]));
            }
        }
        Ok(diagnosis)
    }

    /// What create, update, pause/downscale/restore and the per-user limit sync would set.
    fn expected_account(
        &self,
        resource: &WaldurResource,
        user_limits: &BTreeMap<String, BackendLimits>,
    ) -> Result<ExpectedAccount> {
        let mut expected = ExpectedAccount::default();
        let collected = self.collect_resource_limits(resource.clone())?;
        for tres in collected.backend_limits.keys() {
            expected.reasons.insert(
                format!("{ACCOUNT_LIMIT}[{tres}]"),
                self.limit_reason(resource, tres),
            );
        }
        expected
            .limits
            .insert(ACCOUNT_LIMIT.into(), text_values(&collected.backend_limits));
        if !resource.project_slug.is_empty() {
            let project = self.project_backend_id(&resource.project_slug);
            expected
                .reasons
                .insert("parent".into(), "the account of the project".into());
            expected.settings.insert("parent".into(), project);
        }
        self.expected_status(resource, &mut expected);
        for (user, limits) in user_limits {
            let converted = limits::user_limits_to_backend(limits, &self.components);
            expected.user_limits.insert(
                user.clone(),
                KindLimits::from([(USER_LIMIT.into(), text_values(&converted))]),
            );
        }
        Ok(expected)
    }

    /// The QoS of the classic model, or GrpSubmitJobs under QoS enforcement (see `qos.rs`).
    fn expected_status(&self, resource: &WaldurResource, expected: &mut ExpectedAccount) {
        let state = if resource.paused {
            "paused"
        } else if resource.downscaled {
            "downscaled"
        } else {
            "neither paused nor downscaled"
        };
        if self.qos_enforced() {
            let blocked = resource.paused || resource.downscaled;
            let value = if blocked { "0" } else { "" };
            expected
                .settings
                .insert("GrpSubmitJobs".into(), value.into());
            expected.reasons.insert(
                "GrpSubmitJobs".into(),
                format!("Waldur: {state} (QoS enforcement: 0 blocks, unset restores)"),
            );
            return;
        }
        let s = &self.settings;
        let (qos, setting) = if resource.paused {
            (s.qos_paused.as_deref(), "qos_paused")
        } else if resource.downscaled {
            (s.qos_downscaled.as_deref(), "qos_downscaled")
        } else {
            (Some(s.qos_default.as_str()), "qos_default")
        };
        // Without the target QoS configured the agent changes nothing: no expectation.
        if let Some(qos) = qos {
            expected.settings.insert("qos".into(), qos.into());
            expected
                .reasons
                .insert("qos".into(), format!("Waldur: {state}, so {setting}"));
        }
    }

    /// How `collect_resource_limits` arrives at the limit of `tres`.
    fn limit_reason(&self, resource: &WaldurResource, tres: &str) -> String {
        let Some(component) = self.components.get(tres) else {
            let sources: Vec<&String> = self
                .components
                .iter()
                .filter(|(_, c)| {
                    c.extra
                        .get("target_components")
                        .and_then(|t| t.get(tres))
                        .is_some()
                })
                .map(|(name, _)| name)
                .collect();
            return format!("mapped from the Waldur limits of {sources:?} (target_components)");
        };
        let factor = component.unit_factor();
        match (component.accounting_type, component.limit) {
            (AccountingType::Usage, Some(limit)) => {
                format!("backend_components.{tres}.limit {limit} x unit_factor {factor}")
            }
            (AccountingType::One, _) => format!(
                "Waldur limit {} x unit_factor {factor} x {} prepaid month(s)",
                resource.limits.get(tres).copied().unwrap_or_default(),
                limits::prepaid_months(resource).unwrap_or(1)
            ),
            _ => format!(
                "Waldur limit {} x unit_factor {factor}",
                resource.limits.get(tres).copied().unwrap_or_default()
            ),
        }
    }
}

fn fact(label: &str, value: &str) -> AccountFact {
    AccountFact {
        label: label.into(),
        value: value.into(),
    }
}

fn text_values(limits: &BackendLimits) -> BTreeMap<String, String> {
    limits
        .iter()
        .map(|(tres, value)| (tres.clone(), value.to_string()))
        .collect()
}
