//! `diagnose-slurm-account` (reference `waldur_site_diagnose_slurm_account`): one backend
//! account next to the Waldur resource with that backend id. The backend's facts, and what
//! the plugin would set on the account for the resource (its unit conversion, its QoS model),
//! come from the plugin's `invoke("diagnose_account")`; here the Waldur side is gathered
//! (R1 by backend id, the team and offering users, C6 per-user limits) and compared
//! ([`super::account_comparison`]). Nothing is changed anywhere.

use serde::Serialize;
use waldur_plugin_abi::wire::{
    AccountDiagnosis, DiagnoseAccountArgs, Limits, ProjectUser, WaldurResource,
};

use super::account_comparison::{compare, Comparison, WaldurFacts};
use super::{client, configured_mode, one_line};
use crate::config::Offering;
use crate::modes::runtime::{blocking, Agent, Mode, Session};
use crate::waldur::{normalize_uuid, ResourceFilter, WaldurClient};

/// The plugin entry whose offerings the tool picks from without `--offering-uuid`.
pub const SLURM_ENTRY: &str = "slurm";

/// The backends a diagnosis may use, in order of preference: membership sync keeps users,
/// limits and QoS in line, so its backend is the one whose view matters.
const MODES: [Mode; 3] = [Mode::MembershipSync, Mode::OrderProcess, Mode::Report];

/// What Waldur has for the backend id.
#[derive(Debug, Clone, Serialize)]
pub struct WaldurSide {
    pub uuid: String,
    pub name: String,
    pub state: String,
    pub project_name: String,
    pub customer_name: String,
    pub limits: Limits,
    pub paused: bool,
    pub downscaled: bool,
    pub restrict_member_access: bool,
    pub team: Vec<TeamMember>,
}

/// A team member of the resource and their account name on the offering, if any.
#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    /// The Waldur username.
    pub username: String,
    pub offering_user_username: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct AccountReport {
    pub account: String,
    pub offering: String,
    pub plugin_entry: String,
    pub backend: AccountDiagnosis,
    /// The first resource with the backend id (`None`: Waldur has none).
    pub waldur: Option<WaldurSide>,
    pub comparisons: Vec<Comparison>,
    pub differences: usize,
}

/// Diagnoses `backend_id` in the offering `offering_uuid` (or the one SLURM offering of the
/// configuration). `Err` is a setup error: no such offering, Waldur or the plugin failing,
/// or a plugin without account diagnostics.
pub async fn diagnose_account(
    agent: &Agent,
    backend_id: &str,
    offering_uuid: Option<&str>,
) -> Result<AccountReport, String> {
    let offering = pick_offering(agent, backend_id, offering_uuid).await?;
    let mode = configured_mode(offering, &MODES)
        .ok_or_else(|| format!("offering '{}' configures no backend", offering.name))?;
    let entry = mode.backend_entry(offering).to_string();
    let waldur = client(agent, offering, "diagnose_slurm_account").map_err(|e| one_line(&e))?;
    let session = Session::prepare(agent, offering, mode, waldur)
        .await
        .map_err(|e| one_line(&e))?;
    let resources = resources_with(&session.client, offering, backend_id).await?;
    let resource = resources.first().cloned();
    let (team, offering_users, user_limits) = match &resource {
        Some(r) => {
            let context = session
                .user_context(&r.uuid)
                .await
                .map_err(|e| one_line(&e))?;
            let limits = session
                .waldur_user_limits(&r.uuid)
                .await
                .map_err(|e| one_line(&e))?;
            (context.team, context.offering_users, limits)
        }
        None => Default::default(),
    };
    let args = DiagnoseAccountArgs {
        backend_id: backend_id.to_string(),
        waldur_resource: resource.clone(),
        user_limits,
    };
    let backend = blocking(&session.backend, move |b| b.diagnose_account(&args))
        .await
        .map_err(|e| one_line(&e))?
        .ok_or_else(|| no_diagnostics(agent, &entry))?;
    let facts = WaldurFacts {
        resources: resources.len(),
        team: &team,
        offering_users: &offering_users,
        capabilities: session.backend.capabilities().clone(),
        restrict_member_access: resource.as_ref().is_some_and(|r| r.restrict_member_access),
    };
    let comparisons = compare(&backend, &facts);
    Ok(AccountReport {
        account: backend_id.to_string(),
        offering: offering.name.clone(),
        plugin_entry: entry,
        differences: comparisons.iter().filter(|c| !c.ok).count(),
        waldur: resource.map(|r| waldur_side(r, &team)),
        backend,
        comparisons,
    })
}

/// `plugin X has no account diagnostics`, naming the plugin file's name when known.
fn no_diagnostics(agent: &Agent, entry: &str) -> String {
    let plugin = agent
        .registry
        .plugin(waldur_plugin_abi::ffi::EntryKind::BACKEND, entry)
        .map(|p| p.manifest().name.clone())
        .unwrap_or_else(|_| entry.to_string());
    format!("plugin {plugin} (entry '{entry}') has no account diagnostics")
}

/// The offering with `offering_uuid`; without one, the configuration's only offering using
/// the SLURM plugin, or among several the one whose Waldur resources have `backend_id` (the
/// first when none has; an error asking for `--offering-uuid` when several have).
async fn pick_offering<'a>(
    agent: &'a Agent,
    backend_id: &str,
    offering_uuid: Option<&str>,
) -> Result<&'a Offering, String> {
    let offerings = &agent.config.offerings;
    if let Some(uuid) = offering_uuid {
        let wanted = normalize_uuid(uuid);
        return offerings
            .iter()
            .find(|o| normalize_uuid(&o.waldur_offering_uuid) == wanted)
            .ok_or_else(|| {
                format!("no offering with waldur_offering_uuid {uuid} in the configuration")
            });
    }
    let slurm: Vec<&Offering> = offerings
        .iter()
        .filter(|o| {
            o.backend_type == SLURM_ENTRY || MODES.iter().any(|m| m.backend_entry(o) == SLURM_ENTRY)
        })
        .collect();
    match slurm.as_slice() {
        [] => return Err("no offering of the configuration uses the slurm backend".into()),
        [only] => return Ok(only),
        _ => {}
    }
    let mut holding = Vec::new();
    for offering in &slurm {
        let waldur = client(agent, offering, "diagnose_slurm_account").map_err(|e| one_line(&e))?;
        if !resources_with(&waldur, offering, backend_id)
            .await?
            .is_empty()
        {
            holding.push(*offering);
        }
    }
    match holding.as_slice() {
        [only] => Ok(only),
        // Nobody has it: the reference's choice, the first; the report says it is unknown.
        [] => Ok(slurm[0]),
        _ => Err(format!(
            "{} offerings use the slurm backend ({}) and {} of them have a resource with \
             backend_id {backend_id}: choose one with --offering-uuid",
            slurm.len(),
            slurm
                .iter()
                .map(|o| format!("'{}' {}", o.name, o.waldur_offering_uuid))
                .collect::<Vec<_>>()
                .join(", "),
            holding.len()
        )),
    }
}

/// R1 with `backend_id=` (OK and Erred, as the reference), whole objects: the plugin's limit
/// calculation reads fields a `field=` selection would leave out (`created`, `end_date`).
async fn resources_with(
    waldur: &WaldurClient,
    offering: &Offering,
    backend_id: &str,
) -> Result<Vec<WaldurResource>, String> {
    let filter = ResourceFilter {
        backend_id: Some(backend_id.to_string()),
        ..ResourceFilter::offering(&offering.waldur_offering_uuid)
    };
    waldur
        .list_provider_resources(&filter)
        .await
        .map_err(|e| one_line(&e))
}

fn waldur_side(resource: WaldurResource, team: &[ProjectUser]) -> WaldurSide {
    WaldurSide {
        uuid: resource.uuid,
        name: resource.name,
        state: resource.state,
        project_name: resource.project_name,
        customer_name: resource.customer_name,
        limits: resource.limits,
        paused: resource.paused,
        downscaled: resource.downscaled,
        restrict_member_access: resource.restrict_member_access,
        team: team
            .iter()
            .map(|m| TeamMember {
                username: m.username.clone(),
                offering_user_username: m.offering_user_username.clone(),
            })
            .collect(),
    }
}
