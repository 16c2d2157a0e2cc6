//! BaseBackend: the methods the reference's `SlurmBackend` overrides, plus `pull_resources`
//! (batched), and the naming entries (to check slugs). Everything else (create and delete
//! flows, `pull_resource`, per-user limit reads) is the agent's generic algorithm running on `base_client.rs`
//! and on the hooks below; its commands are the reference's command for command.

use std::collections::BTreeMap;

use serde_json::Value;
use waldur_plugin_abi::wire::{
    AccountingType, BackendComponents, BackendLimits, BackendResourceInfo, CollectedLimits,
    DiagnoseAccountArgs, JsonMap, Limits, PeriodicSettingsResult, RuntimeContext, UsageReport,
    UserContext, UserOptions, WaldurResource, DIAGNOSE_ACCOUNT_METHOD,
};
use waldur_plugin_abi::{
    backend_impl, Backend, BackendContext, Capabilities, Error, Result, SettingKind, SettingSpec,
};

use crate::limits::{self, ComponentMapper};
use crate::settings::{self, SlurmSettings};
use crate::slurm::Slurm;
use crate::usage::Period;

const COMPONENT_SETTINGS: &[SettingSpec] = &[SettingSpec::optional(
    "target_components",
    SettingKind::Object,
    "Map this Waldur component onto SLURM TRES: {<tres>: {factor: <number>}}",
)];

#[backend_impl]
impl Backend for Slurm {
    const DESCRIPTION: &'static str =
        "SLURM accounts, limits, associations, QoS and usage through sacctmgr, sacct and scancel";
    const CAPABILITIES: Capabilities = Capabilities {
        supports_user_homedirs: true,
        supports_periodic_settings: true,
        ..Capabilities::DEFAULT
    };
    const SETTINGS: &'static [SettingSpec] = settings::SETTINGS;
    const COMPONENT_SETTINGS: &'static [SettingSpec] = COMPONENT_SETTINGS;

    fn new(context: BackendContext) -> Result<Self> {
        Slurm::open(&context.settings, context.components)
    }

    /// The declared types, then everything construction checks, so `validate` reports the
    /// same errors `new` would.
    fn validate_settings(settings: &JsonMap) -> Result<Vec<String>> {
        let mut warnings = waldur_plugin_abi::sdk::validate_settings(Self::SETTINGS, settings)?;
        SlurmSettings::parse(settings)?;
        warnings.extend(SlurmSettings::warnings(settings));
        Ok(warnings)
    }

    fn validate_components(components: &BackendComponents) -> Result<Vec<String>> {
        let warnings = waldur_plugin_abi::sdk::validate_component_extras(
            Self::COMPONENT_SETTINGS,
            components,
        )?;
        ComponentMapper::new(components)?;
        Ok(warnings)
    }

    fn set_runtime_context(&self, context: RuntimeContext) -> Result<()> {
        self.apply_runtime_context(&context);
        Ok(())
    }

    /// The agent's naming (`allocation_prefix + slug`, lower-cased), with the slug checked:
    /// a Create order with a hostile slug errs here, before any command.
    fn get_resource_backend_id(&self, slug: String) -> Result<String> {
        Slurm::checked_backend_id("resource", &slug, self.resource_backend_id(&slug))
    }

    /// `project_prefix + slug` (not lower-cased), checked.
    fn get_project_backend_id(&self, slug: String) -> Result<String> {
        Slurm::checked_backend_id("project", &slug, self.project_backend_id(&slug))
    }

    /// `customer_prefix + slug` (not lower-cased), checked.
    fn get_customer_backend_id(&self, slug: String) -> Result<String> {
        Slurm::checked_backend_id("customer", &slug, self.customer_backend_id(&slug))
    }

    fn ping(&self, raise_exception: bool) -> Result<bool> {
        self.ping_cluster(raise_exception)
    }

    fn diagnostics(&self) -> Result<bool> {
        Ok(self.run_diagnostics())
    }

    /// The cluster's TRES (`list tres`).
    fn list_components(&self) -> Result<Vec<String>> {
        self.client.list_tres()
    }

    fn get_usage_report(&self, resource_backend_ids: Vec<String>) -> Result<UsageReport> {
        self.usage_report(&resource_backend_ids, self.current_period())
    }

    fn get_usage_report_for_period(
        &self,
        resource_backend_ids: Vec<String>,
        year: i32,
        month: u32,
        _waldur_resource: Option<WaldurResource>,
    ) -> Result<UsageReport> {
        self.usage_report(&resource_backend_ids, Period::new(year, month)?)
    }

    fn downscale_resource(&self, resource_backend_id: String) -> Result<bool> {
        let target = self.settings.qos_downscaled.clone();
        self.swap_qos(&resource_backend_id, "downscaling", target.as_deref())
    }

    fn pause_resource(&self, resource_backend_id: String) -> Result<bool> {
        let target = self.settings.qos_paused.clone();
        self.swap_qos(&resource_backend_id, "pausing", target.as_deref())
    }

    fn restore_resource(&self, resource_backend_id: String) -> Result<bool> {
        self.restore_qos(&resource_backend_id)
    }

    fn get_resource_metadata(&self, resource_backend_id: String) -> Result<JsonMap> {
        self.qos_metadata(&resource_backend_id)
    }

    fn collect_resource_limits(&self, waldur_resource: WaldurResource) -> Result<CollectedLimits> {
        // Unknown TRES are filtered only when the cluster answers (as the reference).
        let known = self.client.list_tres().unwrap_or_else(|e| {
            log::warn!(
                "Cannot list the cluster's TRES, limits are not filtered: {}",
                e.message
            );
            Vec::new()
        });
        Ok(limits::collect(
            &waldur_resource,
            &self.components,
            &self.mapper,
            &known,
        ))
    }

    fn pre_create_resource(
        &self,
        waldur_resource: WaldurResource,
        _user_context: Option<UserContext>,
    ) -> Result<()> {
        self.create_parent_accounts(&waldur_resource)
    }

    fn post_create_resource(
        &self,
        resource_info: BackendResourceInfo,
        _waldur_resource: WaldurResource,
        user_context: Option<UserContext>,
    ) -> Result<BackendResourceInfo> {
        self.after_create(&resource_info, user_context.as_ref())?;
        Ok(resource_info)
    }

    fn pre_delete_resource(&self, waldur_resource: WaldurResource) -> Result<()> {
        self.clear_account(&waldur_resource)
    }

    fn post_delete_resource(&self, waldur_resource: WaldurResource) -> Result<()> {
        self.remove_account_qos(&waldur_resource)
    }

    fn pre_delete_user_actions(&self, resource_backend_id: String, username: String) -> Result<()> {
        self.cancel_user_jobs(&resource_backend_id, &username)
    }

    fn add_users_to_resource(
        &self,
        waldur_resource: WaldurResource,
        usernames: Vec<String>,
        options: UserOptions,
    ) -> Result<Vec<String>> {
        self.add_users(&waldur_resource, &usernames, &options)
    }

    fn add_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        _options: UserOptions,
    ) -> Result<bool> {
        self.add_user_to(&waldur_resource, &username)
    }

    fn remove_users_from_resource(
        &self,
        waldur_resource: WaldurResource,
        usernames: Vec<String>,
        _options: UserOptions,
    ) -> Result<Vec<String>> {
        self.remove_users(&waldur_resource, &usernames)
    }

    fn remove_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        _options: UserOptions,
    ) -> Result<bool> {
        self.remove_user_from(&waldur_resource.backend_id, &username)
    }

    fn process_existing_users(&self, usernames: Vec<String>) -> Result<()> {
        self.ensure_homedirs(&usernames);
        Ok(())
    }

    fn sync_resource_project(
        &self,
        waldur_resource: WaldurResource,
        _source_project: Option<Value>,
    ) -> Result<()> {
        self.sync_project_parent(&waldur_resource)
    }

    /// Prepaid offerings: the budget follows the end date (renewals), so the limits are
    /// recomputed and set every time.
    fn sync_resource_end_date(&self, waldur_resource: WaldurResource) -> Result<()> {
        if !self.has_prepaid() || waldur_resource.backend_id.is_empty() {
            return Ok(());
        }
        let collected = self.collect_resource_limits(waldur_resource.clone())?;
        if !collected.backend_limits.is_empty() {
            log::info!(
                "Syncing prepaid limits for {}: {:?}",
                waldur_resource.backend_id,
                collected.backend_limits
            );
            self.client
                .set_resource_limits(&waldur_resource.backend_id, &collected.backend_limits)?;
        }
        Ok(())
    }

    fn set_resource_limits(
        &self,
        resource_backend_id: String,
        limits: Limits,
    ) -> Result<Option<String>> {
        let converted = limits::to_backend(&limits, &self.components, &self.mapper);
        self.client
            .set_resource_limits(&resource_backend_id, &converted)?;
        Ok(None)
    }

    /// Waldur units: `int(GrpTRESMins / unit_factor)` of the configured components.
    fn get_resource_limits(&self, resource_backend_id: String) -> Result<BackendLimits> {
        let raw = self.client.get_resource_limits(&resource_backend_id)?;
        Ok(limits::to_waldur(&raw, &self.components))
    }

    /// Waldur units `× unit_factor` as `MaxTRESMins` (every cluster TRES; -1 where unset).
    fn set_resource_user_limits(
        &self,
        resource_backend_id: String,
        username: String,
        limits: BackendLimits,
    ) -> Result<()> {
        let converted = limits::user_limits_to_backend(&limits, &self.components);
        log::info!(
            "Setting user {username} limits to {converted:?} for resource {resource_backend_id}"
        );
        self.client
            .set_resource_user_limits(&resource_backend_id, &username, &converted)?;
        Ok(())
    }

    /// Batched: a constant number of commands per 200 resources (see `pull.rs`).
    fn pull_resources(
        &self,
        waldur_resources: Vec<WaldurResource>,
    ) -> Result<BTreeMap<String, BackendResourceInfo>> {
        Ok(self.pull_many(&waldur_resources))
    }

    fn create_user_homedirs(&self, usernames: Vec<String>, umask: String) -> Result<()> {
        self.create_homedirs(&usernames, &umask);
        Ok(())
    }

    fn apply_periodic_settings(
        &self,
        resource_backend_id: String,
        settings: Value,
        _config: Option<Value>,
    ) -> Result<PeriodicSettingsResult> {
        Ok(self.apply_periodic(&resource_backend_id, &settings))
    }

    fn has_prepaid_components(&self) -> Result<bool> {
        Ok(self.has_prepaid())
    }

    /// `diagnose_account` (see `account_diagnosis.rs`); nothing else.
    fn invoke(&self, method: &str, args: Value) -> Result<Value> {
        if method != DIAGNOSE_ACCOUNT_METHOD {
            return Err(Error::not_implemented(method));
        }
        let args: DiagnoseAccountArgs = serde_json::from_value(args).map_err(|e| {
            Error::invalid_input(format!("{method}: the arguments are not valid: {e}"))
        })?;
        let diagnosis = self.diagnose_account(&args)?;
        serde_json::to_value(diagnosis)
            .map_err(|e| Error::internal(format!("{method}: cannot encode the answer: {e}")))
    }
}

impl Slurm {
    fn has_prepaid(&self) -> bool {
        self.components
            .values()
            .any(|c| c.accounting_type == AccountingType::One)
    }
}
