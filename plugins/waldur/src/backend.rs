//! BaseBackend and BaseClient of the federation: thin entries onto `orders`, `usage`,
//! `members`, `sync` and `events`. The agent's generic create, delete and membership
//! algorithms are not used: a target Waldur has no accounts to create, only orders to submit.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use waldur_plugin_abi::sdk::components::ComponentMapper;
use waldur_plugin_abi::wire::{
    BackendComponents, BackendLimits, BackendResourceInfo, CapabilitySet, ClientResource,
    CollectedLimits, JsonMap, Limits, RuntimeContext, UsageReport, UserContext, UserOptions,
    WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{
    backend_impl, Backend, BackendContext, Capabilities, Client, Error, Result, SettingKind,
    SettingSpec,
};

use crate::federation::Federation;
use crate::settings::{self, FederationSettings};
use crate::target::{checked_uuid, field, uuid_field};

/// The method the agent's target subscriptions hand messages to (through `invoke`).
const TARGET_EVENT_METHOD: &str = "handle_target_event";

const COMPONENT_SETTINGS: &[SettingSpec] = &[SettingSpec::optional(
    "target_components",
    SettingKind::Object,
    "Map this component onto components of the target offering: {<target>: {factor: <number>}} \
     (absent: the same name, factor 1)",
)];

/// The reference's class attributes; `fetch_consented_users_only` and the resolve method
/// follow the settings (see `capabilities`).
const CAPABILITIES: Capabilities = Capabilities {
    supports_async_orders: true,
    supports_cycle_preflight: true,
    requires_source_project: true,
    shared_project_membership: true,
    handled_resource_states: &["OK", "Erred", "Creating"],
    user_resolve_method: "identity_bridge",
    ..Capabilities::DEFAULT
};

#[backend_impl]
impl Backend for Federation {
    const DESCRIPTION: &'static str =
        "Waldur federation: source orders become orders on a target Waldur, usage and members follow";
    const CAPABILITIES: Capabilities = CAPABILITIES;
    const SETTINGS: &'static [SettingSpec] = settings::SETTINGS;
    const COMPONENT_SETTINGS: &'static [SettingSpec] = COMPONENT_SETTINGS;

    fn new(context: BackendContext) -> Result<Self> {
        Federation::open(&context.settings, context.components, context.host)
    }

    fn validate_settings(settings: &JsonMap) -> Result<Vec<String>> {
        let mut warnings = waldur_plugin_abi::sdk::validate_settings(Self::SETTINGS, settings)?;
        FederationSettings::parse(settings)?;
        warnings.extend(FederationSettings::warnings(settings));
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

    fn capabilities(&self) -> Result<CapabilitySet> {
        let mut capabilities: CapabilitySet = (&CAPABILITIES).into();
        capabilities.fetch_consented_users_only = self.settings.fetch_consented_users_only;
        // `identity_bridge` whatever the resolve method: it tells the agent to name members by
        // their source Waldur username (CUID), and so does this plugin when it lists a target
        // team (`team_usernames`). A federation has no accounts of its own to name them by.
        Ok(capabilities)
    }

    fn set_runtime_context(&self, context: RuntimeContext) -> Result<()> {
        self.remembered().runtime = context;
        Ok(())
    }

    fn ping(&self, raise_exception: bool) -> Result<bool> {
        match self.target_reachable() {
            Ok(()) => Ok(true),
            Err(e) if raise_exception => Err(Error::backend(format!(
                "target Waldur {} is not reachable: {}",
                self.target.origin(),
                e.message
            ))),
            Err(e) => {
                log::error!(
                    "target Waldur {} is not reachable: {}",
                    self.target.origin(),
                    e.message
                );
                Ok(false)
            }
        }
    }

    /// A cycle waits while the target is unreachable (BACKEND_NOT_READY skips it).
    fn run_preflight(&self) -> Result<()> {
        self.target_reachable().map_err(|e| {
            Error::not_ready(format!(
                "target Waldur {} is not reachable: {}",
                self.target.origin(),
                e.message
            ))
        })
    }

    fn diagnostics(&self) -> Result<bool> {
        let s = &self.settings;
        log::info!("Waldur federation: target {}", self.target.origin());
        log::info!(
            "  target offering {}, customer {}",
            s.offering_uuid,
            s.customer_uuid
        );
        log::info!(
            "  users by {:?} ({}), unknown users: {}",
            s.resolve_method,
            s.match_field.name(),
            if s.fail_on_unknown_user {
                "fail"
            } else {
                "warn"
            }
        );
        if !s.role_mapping.is_empty() {
            log::info!("  role mapping: {:?}", s.role_mapping);
        }
        log::info!(
            "  component mapping: {}",
            if self.mapper.is_passthrough() {
                "same names"
            } else {
                "target_components"
            }
        );
        self.ping(false)
    }

    fn list_components(&self) -> Result<Vec<String>> {
        Ok(self.components.keys().cloned().collect())
    }

    fn get_usage_report(&self, resource_backend_ids: Vec<String>) -> Result<UsageReport> {
        self.usage_report(&resource_backend_ids, self.current_period()?)
    }

    fn get_usage_report_for_period(
        &self,
        resource_backend_ids: Vec<String>,
        year: i32,
        month: u32,
        _waldur_resource: Option<WaldurResource>,
    ) -> Result<UsageReport> {
        let period = waldur_plugin_abi::sdk::billing::Period::new(year, month)?;
        self.usage_report(&resource_backend_ids, period)
    }

    /// Pausing, downscaling and restoring are the target's own decisions: the reference
    /// passes none of them on, and neither does this plugin (said in the log).
    fn downscale_resource(&self, resource_backend_id: String) -> Result<bool> {
        log::warn!("downscaling is not passed to the target Waldur ({resource_backend_id})");
        Ok(true)
    }

    fn pause_resource(&self, resource_backend_id: String) -> Result<bool> {
        log::warn!("pausing is not passed to the target Waldur ({resource_backend_id})");
        Ok(true)
    }

    fn restore_resource(&self, resource_backend_id: String) -> Result<bool> {
        log::warn!("restoring is not passed to the target Waldur ({resource_backend_id})");
        Ok(true)
    }

    fn get_resource_metadata(&self, resource_backend_id: String) -> Result<JsonMap> {
        let mut metadata = JsonMap::new();
        metadata.insert("waldur_b_resource_uuid".into(), json!(resource_backend_id));
        Ok(metadata)
    }

    fn collect_resource_limits(&self, waldur_resource: WaldurResource) -> Result<CollectedLimits> {
        let waldur_limits = self.waldur_limits(&waldur_resource);
        Ok(CollectedLimits {
            backend_limits: waldur_limits
                .iter()
                .map(|(k, v)| (k.clone(), *v as i64))
                .collect(),
            waldur_limits,
        })
    }

    /// The id the agent proposes is not used: the target names its resources itself.
    fn create_resource_with_id(
        &self,
        waldur_resource: WaldurResource,
        _resource_backend_id: String,
        _user_context: Option<UserContext>,
    ) -> Result<BackendResourceInfo> {
        self.submit_create(&waldur_resource)
    }

    fn delete_resource(
        &self,
        waldur_resource: WaldurResource,
        _project_slug: Option<String>,
    ) -> Result<Option<String>> {
        self.submit_terminate(&waldur_resource)
    }

    fn add_users_to_resource(
        &self,
        waldur_resource: WaldurResource,
        usernames: Vec<String>,
        options: UserOptions,
    ) -> Result<Vec<String>> {
        self.add_members(&waldur_resource, &usernames, &options)
    }

    fn add_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        options: UserOptions,
    ) -> Result<bool> {
        let added =
            self.add_members(&waldur_resource, std::slice::from_ref(&username), &options)?;
        Ok(!added.is_empty())
    }

    fn remove_users_from_resource(
        &self,
        waldur_resource: WaldurResource,
        usernames: Vec<String>,
        options: UserOptions,
    ) -> Result<Vec<String>> {
        self.remove_members(&waldur_resource, &usernames, &options)
    }

    fn remove_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        options: UserOptions,
    ) -> Result<bool> {
        let removed =
            self.remove_members(&waldur_resource, std::slice::from_ref(&username), &options)?;
        Ok(!removed.is_empty())
    }

    fn reconcile_existing_user_roles(
        &self,
        waldur_resource: WaldurResource,
        existing_usernames: Vec<String>,
        user_roles: BTreeMap<String, String>,
        user_cuids: BTreeMap<String, String>,
    ) -> Result<()> {
        self.reconcile_roles(
            &waldur_resource,
            &existing_usernames,
            &user_roles,
            &user_cuids,
        )
    }

    fn sync_offering_user_usernames(&self, offering_uuid: String) -> Result<bool> {
        self.sync_usernames(&offering_uuid)
    }

    fn sync_resource_project(
        &self,
        waldur_resource: WaldurResource,
        source_project: Option<Value>,
    ) -> Result<()> {
        self.sync_project_metadata(&waldur_resource, source_project.as_ref())
    }

    fn sync_project_end_date(
        &self,
        waldur_resource: WaldurResource,
        source_project: Option<Value>,
    ) -> Result<()> {
        Federation::sync_project_end_date(self, &waldur_resource, source_project.as_ref())
    }

    fn sync_resource_end_date(&self, waldur_resource: WaldurResource) -> Result<()> {
        self.sync_end_date(&waldur_resource)
    }

    fn sync_resource_effective_id(&self, waldur_resource: WaldurResource) -> Result<()> {
        self.sync_effective_id(&waldur_resource)
    }

    /// `b_to_a`: the agent's default (the target's limits, through `get_resource_limits`,
    /// pushed to the source); `disabled`: limits change through orders only.
    fn sync_resource_limits(&self, waldur_resource: WaldurResource) -> Result<()> {
        if self.settings.limits_from_target {
            return Err(Error::not_implemented("sync_resource_limits"));
        }
        log::debug!(
            "limit sync disabled; {} keeps its limits",
            waldur_resource.uuid
        );
        Ok(())
    }

    fn set_resource_limits(
        &self,
        resource_backend_id: String,
        limits: Limits,
    ) -> Result<Option<String>> {
        self.submit_limits(&resource_backend_id, &limits)
    }

    fn get_resource_limits(&self, resource_backend_id: String) -> Result<BackendLimits> {
        self.source_limits_of_target(&resource_backend_id)
    }

    fn pull_resource(
        &self,
        waldur_resource: WaldurResource,
    ) -> Result<Option<BackendResourceInfo>> {
        self.pull_backend_resource(waldur_resource.backend_id)
    }

    /// The target resource: its effective id, team and the current month's usage.
    fn pull_backend_resource(
        &self,
        resource_backend_id: String,
    ) -> Result<Option<BackendResourceInfo>> {
        let Some(target) = self.target_resource(&resource_backend_id)? else {
            log::warn!("resource {resource_backend_id} is not on the target Waldur");
            return Ok(None);
        };
        let mut report = self.usage_report(
            std::slice::from_ref(&resource_backend_id),
            self.current_period()?,
        )?;
        let usage = report.remove(&resource_backend_id).unwrap_or_else(|| {
            let zero = self.components.keys().map(|c| (c.clone(), 0.0)).collect();
            [(TOTAL_ACCOUNT_USAGE.to_string(), zero)].into()
        });
        Ok(Some(BackendResourceInfo {
            backend_id: resource_backend_id.clone(),
            effective_id: field(&target, "backend_id").to_string(),
            users: self.team_usernames(&resource_backend_id)?,
            usage,
            ..Default::default()
        }))
    }

    /// A resource missing on the target is not ordered again behind the site's back: an order
    /// there is a purchase; the log says so and the site decides.
    fn recreate_missing_resource(&self, waldur_resource: WaldurResource) -> Result<bool> {
        log::warn!(
            "resource {} ({}) is missing on the target Waldur; not ordered again automatically",
            waldur_resource.uuid,
            waldur_resource.backend_id
        );
        Ok(false)
    }

    fn check_pending_order(&self, order_backend_id: String) -> Result<bool> {
        self.target_order_done(&order_backend_id)
    }

    fn setup_target_event_subscriptions(
        &self,
        source_offering: Value,
        user_agent: String,
        _global_proxy: String,
    ) -> Result<Vec<Value>> {
        self.target_subscriptions(&source_offering, &user_agent)
    }

    fn invoke(&self, method: &str, args: Value) -> Result<Value> {
        match method {
            TARGET_EVENT_METHOD => self.target_event(&args),
            other => Err(Error::not_implemented(other)),
        }
    }
}

/// The raw view the agent's tools use: target resources of the offering as accounts.
#[backend_impl]
impl Client for Federation {
    fn client_list_resources(&self) -> Result<Vec<ClientResource>> {
        let resources = self.target.list(
            "marketplace-resources/",
            &[("offering_uuid", self.settings.offering_uuid.clone())],
        )?;
        Ok(resources.iter().map(client_resource).collect())
    }

    fn client_get_resource(&self, resource_id: String) -> Result<Option<ClientResource>> {
        if checked_uuid(&resource_id, "resource id").is_err() {
            return Ok(None); // not a target resource id: no such account
        }
        Ok(self
            .target_resource(&resource_id)?
            .as_ref()
            .map(client_resource))
    }

    fn client_get_resource_limits(&self, resource_id: String) -> Result<BackendLimits> {
        Ok(self
            .target_resource(&resource_id)?
            .map(|r| crate::orders::target_limits_of(&r))
            .unwrap_or_default())
    }

    /// A target Waldur has no per-user limits (the reference answers none as well).
    fn client_get_resource_user_limits(
        &self,
        _resource_id: String,
    ) -> Result<BTreeMap<String, BackendLimits>> {
        Ok(BTreeMap::new())
    }

    fn client_list_resource_users(&self, resource_id: String) -> Result<Vec<String>> {
        self.team_usernames(&resource_id)
    }
}

fn client_resource(resource: &Value) -> ClientResource {
    ClientResource {
        name: uuid_field(resource, "uuid"),
        description: field(resource, "name").to_string(),
        organization: uuid_field(resource, "project_uuid"),
        backend_id: field(resource, "backend_id").to_string(),
    }
}
