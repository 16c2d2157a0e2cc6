//! One month of the loader: list the resources (R1) and offering users (U1), ask the plugin
//! once for every resource's usage, then per resource set what differs from what Waldur holds:
//! the totals (C1 read, C3 set) and the per-user usages (C2 read, C5 set).

use std::collections::{BTreeMap, BTreeSet};

use waldur_plugin_abi::wire::{ResourceUsage, UsageReport, WaldurResource, TOTAL_ACCOUNT_USAGE};

use super::plan::{stale_user_usages, wanted_totals, wanted_user_usages};
use super::{Counts, HistoricalOptions, MonthSummary};
use crate::modes::error::ModeError;
use crate::modes::periods::Period;
use crate::modes::runtime::{blocking, Session};
use crate::modes::tools::one_line;
use crate::modes::usage::{
    amount, is_unchanged, offering_user_urls, set_usage_request, user_usage_held, ExistingUsage,
};
use crate::waldur::{
    map_concurrent, normalize_uuid, ComponentUsage, OfferingUserFilter, ResourceFilter, UserUsage,
    DEFAULT_CONCURRENCY, HISTORICAL_RESOURCE_FIELDS,
};

/// The C1 fields: the reference reads `uuid, type`; `usage` is compared for idempotency.
const USAGE_FIELDS: &[&str] = &["uuid", "type", "usage"];
/// The C2 fields: the reference's reconciliation set, and `user` to compare the link.
const USER_USAGE_FIELDS: &[&str] = &[
    "username",
    "component_type",
    "usage",
    "component_usage",
    "user",
];

/// What every resource of a month shares.
struct MonthContext<'a> {
    period: &'a Period,
    components: &'a BTreeSet<String>,
    options: &'a HistoricalOptions,
    /// Username -> offering-user URL (empty with `--skip-user-usage`).
    user_urls: BTreeMap<String, String>,
}

/// One resource in one month.
struct ResourceMonth<'a> {
    resource: &'a WaldurResource,
    context: &'a MonthContext<'a>,
    /// The month's first day: C1 `billing_period`, C2 `component_usage__billing_period`.
    billing_period: jiff::civil::Date,
    /// The `date` of every write.
    date: String,
    /// `YYYY-MM <backend id>`, the start of the plan's lines.
    label: String,
}

/// What [`Session::set_totals`] did, for the user usages after it.
struct TotalsSet {
    /// set_usage was sent (in a dry run: would be).
    sent: bool,
    /// The components whose totals are (or would be) set.
    setting: BTreeSet<String>,
    /// Waldur's totals before.
    existing: Vec<ComponentUsage>,
}

/// What one resource's month did.
#[derive(Default)]
struct ResourceDone {
    counts: Counts,
    plan: Vec<String>,
}

impl Session<'_> {
    pub(super) async fn historical_month(
        &self,
        period: &Period,
        components: &BTreeSet<String>,
        options: &HistoricalOptions,
    ) -> MonthSummary {
        let mut summary = MonthSummary {
            month: format!("{}-{:02}", period.year, period.month),
            ..MonthSummary::default()
        };
        if let Err(e) = self
            .load_month(period, components, options, &mut summary)
            .await
        {
            tracing::error!(month = %summary.month, "month not loaded: {e}");
            summary.failed = Some(one_line(&e));
        }
        summary
    }

    async fn load_month(
        &self,
        period: &Period,
        components: &BTreeSet<String>,
        options: &HistoricalOptions,
        summary: &mut MonthSummary,
    ) -> Result<(), ModeError> {
        let offering_uuid = &self.offering.waldur_offering_uuid;
        let listed = self
            .client
            .list_provider_resources(
                &ResourceFilter::offering(offering_uuid).with_fields(HISTORICAL_RESOURCE_FIELDS),
            )
            .await?;
        let resources = selected(listed, &options.resource_backend_ids, &summary.month);
        summary.counts.resources = resources.len();
        if resources.is_empty() {
            return Ok(());
        }
        let user_urls = if options.skip_user_usage {
            BTreeMap::new()
        } else {
            let users = self
                .client
                .list_offering_users(&OfferingUserFilter {
                    offering_uuid: Some(offering_uuid.clone()),
                    states: vec!["OK".into()],
                    fields: vec!["username".into(), "url".into()],
                    ..OfferingUserFilter::default()
                })
                .await?;
            offering_user_urls(&users)
        };
        let ids: Vec<String> = resources.iter().map(|r| r.backend_id.clone()).collect();
        let (year, month) = (i32::from(period.year), period.month as u32);
        let report: UsageReport = blocking(&self.backend, move |b| {
            b.get_usage_report_for_period(&ids, year, month, None)
        })
        .await?;
        let context = MonthContext {
            period,
            components,
            options,
            user_urls,
        };
        let outcomes = map_concurrent(DEFAULT_CONCURRENCY, &resources, |resource| {
            let (context, usage) = (&context, report.get(&resource.backend_id));
            async move { self.load_resource_month(resource, usage, context).await }
        })
        .await;
        let mut failures = Vec::new();
        for (resource, outcome) in resources.iter().zip(outcomes) {
            match outcome {
                Ok(done) => {
                    summary.counts += done.counts;
                    summary.plan.extend(done.plan);
                }
                Err(e) => {
                    tracing::error!(month = %summary.month, backend_id = %resource.backend_id, "{e}");
                    failures.push(format!("{}: {}", resource.backend_id, one_line(&e)));
                }
            }
        }
        if !failures.is_empty() {
            summary.failed = Some(failures.join("; "));
        }
        Ok(())
    }

    async fn load_resource_month(
        &self,
        resource: &WaldurResource,
        usage: Option<&ResourceUsage>,
        context: &MonthContext<'_>,
    ) -> Result<ResourceDone, ModeError> {
        let mut done = ResourceDone::default();
        let totals = usage.and_then(|u| u.get(TOTAL_ACCOUNT_USAGE));
        if totals.is_none() {
            done.counts.no_data = 1;
            if !context.options.reconcile_stale {
                tracing::info!(backend_id = %resource.backend_id, "no usage on the backend for {}", context.period.billing_period_start());
                return Ok(done);
            }
        }
        let month = ResourceMonth {
            resource,
            context,
            billing_period: context.period.first_day(),
            date: context.period.naive_report_date(),
            label: format!(
                "{}-{:02} {}",
                context.period.year, context.period.month, resource.backend_id
            ),
        };
        let set = self.set_totals(&month, totals, &mut done).await?;
        if !context.options.skip_user_usage {
            self.set_user_usages(&month, usage, set, &mut done).await?;
        }
        Ok(done)
    }

    /// C1, then C3 when the totals differ from what Waldur holds.
    async fn set_totals(
        &self,
        month: &ResourceMonth<'_>,
        totals: Option<&waldur_plugin_abi::wire::ComponentUsage>,
        done: &mut ResourceDone,
    ) -> Result<TotalsSet, ModeError> {
        let options = month.context.options;
        let existing = self
            .client
            .list_component_usages(&month.resource.uuid, month.billing_period, USAGE_FIELDS)
            .await?;
        let existing_usages: Vec<ExistingUsage> =
            existing.iter().map(ExistingUsage::from).collect();
        let wanted = wanted_totals(
            totals,
            &existing_usages,
            month.context.components,
            options.reconcile_stale,
        );
        if !wanted.unknown.is_empty() {
            tracing::warn!(backend_id = %month.resource.backend_id, "components not in the Waldur offering ignored: {}", wanted.unknown.join(", "));
        }
        let setting: BTreeSet<String> = wanted.amounts.keys().cloned().collect();
        if setting.is_empty() {
            return Ok(TotalsSet {
                sent: false,
                setting,
                existing,
            });
        }
        // Compared over the components being set: the others are left as they are.
        if is_unchanged(&wanted.amounts, &existing_usages, &setting) {
            done.counts.totals_unchanged = 1;
            return Ok(TotalsSet {
                sent: false,
                setting,
                existing,
            });
        }
        done.counts.totals_sent = 1;
        done.counts.zeroed += wanted.zeroed.len();
        let items: Vec<String> = wanted
            .amounts
            .iter()
            .map(|(c, v)| format!("{c}={}", amount(*v)))
            .collect();
        let line = format!("{}: set totals {}", month.label, items.join(" "));
        tracing::info!("{line}");
        if options.dry_run {
            done.plan.push(line);
        }
        // In a dry run the client holds the request back (see `crate::dry_run`).
        self.client
            .set_usage(&set_usage_request(
                &month.resource.uuid,
                &wanted.amounts,
                month.date.clone(),
            ))
            .await?;
        Ok(TotalsSet {
            sent: true,
            setting,
            existing,
        })
    }

    /// C2, then C5 for each per-user usage that differs and, with `--reconcile-stale`, for
    /// each stale one.
    async fn set_user_usages(
        &self,
        month: &ResourceMonth<'_>,
        usage: Option<&ResourceUsage>,
        totals: TotalsSet,
        done: &mut ResourceDone,
    ) -> Result<(), ModeError> {
        let (context, resource) = (month.context, month.resource);
        let options = context.options;
        let users = wanted_user_usages(usage, context.components);
        if users.is_empty() && !options.reconcile_stale {
            return Ok(());
        }
        let held = self
            .client
            .list_component_user_usages(&resource.uuid, month.billing_period, USER_USAGE_FIELDS)
            .await?;
        // The totals the user usages hang under: new ones were just created by set_usage.
        let parents: Vec<ComponentUsage> = if totals.sent && !options.dry_run {
            self.client
                .list_component_usages(&resource.uuid, month.billing_period, USAGE_FIELDS)
                .await?
        } else {
            totals.existing
        };
        for ((username, component), value) in &users {
            let item = UserUsage {
                username: username.clone(),
                usage: amount(*value),
                date: month.date.clone(),
                user: context.user_urls.get(username).cloned(),
            };
            let line = format!(
                "{}: set user usage {username} {component}={}",
                month.label, item.usage
            );
            let Some(parent) = parents.iter().find(|p| &p.component_type == component) else {
                if options.dry_run && totals.sent && totals.setting.contains(component) {
                    // Its total is in the plan; the record it would hang under comes with it.
                    done.counts.user_usages_sent += 1;
                    done.plan.push(line);
                } else {
                    tracing::warn!(backend_id = %resource.backend_id, "no {component} total for {} to put {username}'s usage under", context.period.billing_period_start());
                }
                continue;
            };
            let parent_uuid = normalize_uuid(&parent.uuid);
            let record = held.iter().find(|h| {
                &h.username == username
                    && h.component_usage_uuid().map(normalize_uuid).as_deref() == Some(&parent_uuid)
            });
            if user_usage_held(record, &item) {
                done.counts.user_usages_unchanged += 1;
                continue;
            }
            done.counts.user_usages_sent += 1;
            tracing::info!("{line}");
            if options.dry_run {
                done.plan.push(line);
            }
            self.client.set_user_usage(&parent.uuid, &item).await?;
        }
        if !options.reconcile_stale {
            return Ok(());
        }
        for stale in stale_user_usages(&held, &users, context.components) {
            let Some(parent) = stale.component_usage_uuid() else {
                tracing::warn!(backend_id = %resource.backend_id, "stale usage of {} names no component usage; left", stale.username);
                continue;
            };
            done.counts.zeroed += 1;
            let line = format!(
                "{}: zero stale user usage {} {} (was {})",
                month.label,
                stale.username,
                stale.component_type,
                amount(stale.usage)
            );
            tracing::info!("{line}");
            if options.dry_run {
                done.plan.push(line);
            }
            let item = UserUsage {
                username: stale.username.clone(),
                usage: "0".into(),
                date: month.date.clone(),
                user: context.user_urls.get(&stale.username).cloned(),
            };
            self.client.set_user_usage(parent, &item).await?;
        }
        Ok(())
    }
}

/// The resources with a backend id, only those of `--resource-backend-id` when given (the
/// requested ids that are not there are warned about).
fn selected(resources: Vec<WaldurResource>, wanted: &[String], month: &str) -> Vec<WaldurResource> {
    let with_ids = resources.into_iter().filter(|r| !r.backend_id.is_empty());
    if wanted.is_empty() {
        return with_ids.collect();
    }
    let kept: Vec<WaldurResource> = with_ids
        .filter(|r| wanted.contains(&r.backend_id))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|id| !kept.iter().any(|r| &&r.backend_id == id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            month,
            "no resource of the offering has backend id {}",
            missing.join(", ")
        );
    }
    kept
}
