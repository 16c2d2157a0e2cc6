//! What every mode does before its real work, per offering (reference §3.1): register the
//! agent with Waldur, read the offering's context, and get the plugin backend ready.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::tz::TimeZone;
use waldur_plugin_abi::ffi::EntryKind;
use waldur_plugin_abi::wire::{
    BackendComponents, BackendResourceInfo, RuntimeContext, WaldurResource,
};
use waldur_plugin_host::CallObserver;

use super::error::ModeError;
use super::gateway::ClientGateway;
use crate::config::{Config, Offering};
use crate::metrics::Metrics;
use crate::plugins::{Backend, HostContext, Registry};
use crate::waldur::{
    AgentDependency, AgentIdentityRequest, OfferingComponent, ProviderOffering, WaldurClient,
};

/// The agent's modes (the reference's `--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    OrderProcess,
    Report,
    MembershipSync,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::OrderProcess => "order_process",
            Self::Report => "report",
            Self::MembershipSync => "membership_sync",
        }
    }

    /// The processor name registered with Waldur (the reference's class names).
    fn processor(self) -> &'static str {
        match self {
            Self::OrderProcess => "OfferingOrderProcessor",
            Self::Report => "OfferingReportProcessor",
            Self::MembershipSync => "OfferingMembershipProcessor",
        }
    }

    /// The plugin entry this mode uses for an offering ("" = none configured).
    pub fn backend_entry(self, offering: &Offering) -> &str {
        match self {
            Self::OrderProcess => &offering.order_processing_backend,
            Self::Report => &offering.reporting_backend,
            Self::MembershipSync => &offering.membership_sync_backend,
        }
    }
}

/// See [`Agent::username_backends`].
pub(crate) type UsernameBackends =
    Mutex<BTreeMap<(String, String, String), Arc<crate::plugins::UsernameBackend>>>;

/// State shared by every cycle of every mode in this process.
pub struct Agent {
    pub config: Config,
    pub registry: Registry,
    /// When this process started, sent with the agent identity.
    started: String,
    /// One backend per (offering, entry), kept across cycles: plugins keep their state and
    /// connections, and construction (settings validation, plugin start-up) happens once.
    backends: Mutex<BTreeMap<(String, String), Arc<Backend>>>,
    /// One username backend per (offering, entry, offering's `plugin_options`), kept across
    /// cycles for the same reasons: a backend that remembers the previous pass (the
    /// identity bridge's departures) must see the next one. New `plugin_options` in Waldur
    /// make a new instance, so they are followed without a restart.
    pub(crate) username_backends: UsernameBackends,
    /// Per-attempt Waldur request timeout replacing the default 600 s (tests).
    waldur_timeout: Option<Duration>,
    /// Backend ids being created and not yet recorded in Waldur (see [`super::claims`]).
    pub(crate) backend_id_claims: super::claims::Claims,
    /// One event-driven change of a resource at a time (orders of one resource in order).
    pub(crate) resource_turns: super::claims::Claims,
    /// Asked to stop: no new offering, order or resource is started.
    pub shutdown: Arc<super::shutdown::Shutdown>,
    /// The Prometheus series, when `run` serves them; nothing is recorded without.
    pub metrics: Option<Arc<Metrics>>,
    /// A dry run (`run --dry-run`): nothing is written to Waldur or a backend; the writes
    /// the agent would make are recorded here instead.
    pub dry_run: Option<Arc<crate::dry_run::Plan>>,
    /// In a dry run, whether Waldur writes are held back too (`run --dry-run`), or only the
    /// plugins' (`test-order --dry-run`, whose Waldur is a simulator).
    withhold_waldur_writes: bool,
    /// `run --force`: the guards against mass removal (`max_user_removals_per_cycle`,
    /// `max_terminations_per_cycle`) do not stop a cycle.
    pub force: bool,
    /// Every plugin call in full, when a tool prints them (`test-order`).
    call_trace: Option<Arc<super::call_trace::CallTrace>>,
}

impl Agent {
    /// The runtime directory of this config (see [`crate::config::runtime_dir`]), which
    /// plugins learn through their runtime context.
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        crate::config::runtime_dir(self.config.runtime_dir.as_deref())
    }

    pub fn new(config: Config, registry: Registry) -> Self {
        Self {
            config,
            registry,
            started: jiff::Timestamp::now().to_string(),
            backends: Mutex::new(BTreeMap::new()),
            username_backends: UsernameBackends::default(),
            waldur_timeout: None,
            backend_id_claims: super::claims::Claims::default(),
            resource_turns: super::claims::Claims::default(),
            shutdown: Arc::default(),
            metrics: None,
            dry_run: None,
            withhold_waldur_writes: false,
            force: false,
            call_trace: None,
        }
    }

    /// Makes this agent a dry run recording into `plan` (see [`crate::dry_run`]).
    pub fn with_dry_run(mut self, plan: Arc<crate::dry_run::Plan>) -> Self {
        self.dry_run = Some(plan);
        self.withhold_waldur_writes = true;
        self
    }

    /// A dry run of the plugins only: their writing methods are recorded into `plan` and not
    /// called, while Waldur requests are sent (to a simulator, in `test-order`).
    pub fn with_plugin_dry_run(mut self, plan: Arc<crate::dry_run::Plan>) -> Self {
        self.dry_run = Some(plan);
        self.withhold_waldur_writes = false;
        self
    }

    /// The plan Waldur writes are recorded into instead of being sent, in a dry run.
    fn withheld_waldur_writes(&self) -> Option<&Arc<crate::dry_run::Plan>> {
        self.dry_run
            .as_ref()
            .filter(|_| self.withhold_waldur_writes)
    }

    /// What a plugin backend of `offering` built from `entry` records its withheld writes
    /// into, in a dry run: the plan, and the call trace when a tool prints the calls.
    pub(crate) fn withheld_plugin_writes(
        &self,
        offering: &str,
        entry: &str,
    ) -> Option<Arc<dyn waldur_plugin_host::WriteRecorder>> {
        let recorder = self.dry_run.as_ref()?.backend(offering, entry);
        Some(match &self.call_trace {
            Some(trace) => trace.withheld(entry, recorder),
            None => recorder,
        })
    }

    /// Lets cycles past the guards against mass removal (`run --force`).
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }

    /// Records this agent's work into `metrics` (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Records every call into the plugins, in full, into `trace` (instead of the metrics'
    /// latency: a tool that prints the calls serves no metrics).
    pub fn with_call_trace(mut self, trace: Arc<super::call_trace::CallTrace>) -> Self {
        self.call_trace = Some(trace);
        self
    }

    /// The observer of the calls into one plugin entry's instances: the call trace, else the
    /// metrics' latency recorder. `None` without either: nothing is timed then.
    pub(crate) fn plugin_calls(&self, entry: &str) -> Option<Arc<dyn CallObserver>> {
        if let Some(trace) = &self.call_trace {
            return Some(trace.observer(entry));
        }
        self.metrics
            .as_ref()
            .map(|m| Arc::new(m.plugin_calls(entry)) as Arc<dyn CallObserver>)
    }

    /// Replaces the per-attempt Waldur request timeout (default 600 s, as the reference) for
    /// every client this agent opens. Not configurable in YAML: tests use it to exercise
    /// timeouts without waiting ten minutes.
    pub fn with_waldur_timeout(mut self, timeout: Duration) -> Self {
        self.waldur_timeout = Some(timeout);
        self
    }
}

/// One offering, ready for one mode's cycle: the reference's processor after `__init__`.
pub struct Session<'a> {
    pub agent: &'a Agent,
    pub offering: &'a Offering,
    pub mode: Mode,
    pub client: WaldurClient,
    pub waldur_offering: ProviderOffering,
    pub backend: Arc<Backend>,
    pub service_provider_uuid: String,
    pub timezone: TimeZone,
    /// The offering's offering users, read once per cycle (the reference caches them per
    /// processor too); dropped when the agent changes one.
    pub(crate) offering_users_cache:
        tokio::sync::Mutex<Option<Arc<Vec<waldur_plugin_abi::wire::OfferingUser>>>>,
    /// The username-management backend, built on first use.
    pub(crate) usernames: tokio::sync::OnceCell<Arc<crate::plugins::UsernameBackend>>,
    /// One username state-machine run at a time: concurrent orders share team members.
    pub(crate) username_turn: tokio::sync::Mutex<()>,
    /// Items of this session's cycle, for the progress lines of long cycles.
    pub(crate) progress: super::progress::Progress,
}

impl<'a> Session<'a> {
    /// Registers the agent, reads the offering and prepares the backend.
    pub async fn open(
        agent: &'a Agent,
        offering: &'a Offering,
        mode: Mode,
    ) -> Result<Self, ModeError> {
        Self::open_as(agent, offering, mode, mode.name(), mode.name()).await
    }

    /// [`Session::open`] registering the service (A4) under another name and mode: event
    /// processing registers `initial-offering-process` and `event_process-<object type>` in
    /// mode `event_process` while it works with the order and membership backends.
    pub async fn open_as(
        agent: &'a Agent,
        offering: &'a Offering,
        mode: Mode,
        service_name: &str,
        service_mode: &str,
    ) -> Result<Self, ModeError> {
        let entry = mode.backend_entry(offering);
        if entry.is_empty() {
            return Err(ModeError::NotConfigured(format!(
                "offering '{}' has no {}_backend",
                offering.name,
                match mode {
                    Mode::OrderProcess => "order_processing",
                    Mode::Report => "reporting",
                    Mode::MembershipSync => "membership_sync",
                }
            )));
        }
        let mut options = WaldurClient::offering_options(offering, &agent.config, mode.name());
        if let Some(timeout) = agent.waldur_timeout {
            options.timeout = timeout;
        }
        if let Some(plan) = agent.withheld_waldur_writes() {
            options.dry_run = Some(plan.waldur(&offering.name));
        }
        let client = WaldurClient::new(&offering.waldur_api_url, &offering.auth, options)?;
        if agent.withheld_waldur_writes().is_some() {
            // The agent's identity, service and processor records are writes too.
            return Self::prepare(agent, offering, mode, client).await;
        }
        let identity = client
            .register_agent_identity(&identity_request(agent, offering))
            .await?;
        crate::logging::shipping::register_identity(&offering.name, &client, &identity.uuid);
        let service = client
            .register_service(&identity.uuid, service_name, service_mode)
            .await?;
        let session = Self::prepare(agent, offering, mode, client).await?;
        let plugin = agent
            .registry
            .plugin(EntryKind::BACKEND, entry)
            .map(|p| (p.manifest().name.clone(), p.manifest().version.clone()))
            .unwrap_or_default();
        session
            .client
            .register_processor(
                &service.uuid,
                mode.processor(),
                &format!("{}.{entry}", plugin.0),
                &plugin.1,
            )
            .await?;
        Ok(session)
    }

    /// The offering's context and backend without registering anything with Waldur (the
    /// reference's CLI tools do not register): B3 (processor fields), B4, the backend with the
    /// runtime context. `mode` picks the backend entry, which must be configured.
    pub async fn prepare(
        agent: &'a Agent,
        offering: &'a Offering,
        mode: Mode,
        client: WaldurClient,
    ) -> Result<Self, ModeError> {
        let entry = mode.backend_entry(offering);
        if entry.is_empty() {
            return Err(ModeError::NotConfigured(format!(
                "offering '{}' has no {} backend",
                offering.name,
                mode.name()
            )));
        }
        let waldur_offering = client
            .provider_offering(
                &offering.waldur_offering_uuid,
                WaldurClient::PROCESSOR_OFFERING_FIELDS,
            )
            .await?;
        let components = backend_components(
            &offering.name,
            &offering.backend_components,
            &waldur_offering.components,
        );
        let service_provider = client
            .service_provider_for_customer(&waldur_offering.customer_uuid)
            .await?;
        let backend = backend_for(agent, offering, entry, components, &client).await?;
        let timezone = agent.config.timezone.clone();
        let mut partitions: Vec<String> = waldur_offering
            .partitions
            .iter()
            .map(|p| p.partition_name.clone())
            .collect();
        partitions.sort();
        let runtime = RuntimeContext {
            offering_uuid: offering.waldur_offering_uuid.clone(),
            offering_name: offering.name.clone(),
            timezone: timezone.iana_name().unwrap_or("UTC").to_string(),
            service_provider_uuid: service_provider.uuid.clone(),
            offering_partitions: partitions,
            offering_enforce_qos: waldur_offering
                .plugin_options
                .get("enforce_qos")
                .map(|v| v.as_bool().unwrap_or(false)),
            runtime_dir: Some(agent.runtime_dir().display().to_string()),
            ..Default::default()
        };
        let for_context = Arc::clone(&backend);
        match blocking(&backend, move |_| for_context.set_runtime_context(&runtime)).await {
            Err(e) if !e.is_not_implemented() => return Err(e.into()),
            _ => {}
        }
        Ok(Self {
            agent,
            offering,
            mode,
            client,
            waldur_offering,
            backend,
            service_provider_uuid: service_provider.uuid,
            timezone,
            offering_users_cache: Default::default(),
            usernames: Default::default(),
            username_turn: Default::default(),
            progress: Default::default(),
        })
    }
}

/// What the backend has of a cycle's resources (see [`Session::pull_resources`]).
pub(crate) struct Pulled {
    /// Backend id -> what the backend has; absent ids are not on the backend.
    pub resources: BTreeMap<String, BackendResourceInfo>,
    /// True when the plugin pulled them all in one call: it batches.
    pub batched: bool,
}

impl Session<'_> {
    /// What the backend has of `resources`: one plugin call when the plugin batches
    /// (`pull_resources`), otherwise, or when that call fails, one `pull_resource` per
    /// resource, concurrently, where a failure is logged and the resource left out (as the
    /// reference's default does).
    pub(crate) async fn pull_resources(&self, resources: &[WaldurResource]) -> Pulled {
        let listed = resources.to_vec();
        match blocking(&self.backend, move |b| b.plugin_pull_resources(&listed)).await {
            Ok(Some(resources)) => {
                return Pulled {
                    resources,
                    batched: true,
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                offering = %self.offering.name,
                "batched pull failed, pulling resource by resource: {e}"
            ),
        }
        let pulled = crate::waldur::map_concurrent(
            crate::waldur::DEFAULT_CONCURRENCY,
            resources.to_vec(),
            |resource| async move {
                let id = resource.backend_id.clone();
                match blocking(&self.backend, move |b| b.pull_resource(&resource)).await {
                    Ok(info) => info.map(|info| (id, info)),
                    Err(e) => {
                        tracing::error!(backend_id = %id, "pulling the resource failed: {e}");
                        None
                    }
                }
            },
        )
        .await;
        Pulled {
            resources: pulled.into_iter().flatten().collect(),
            batched: false,
        }
    }
}

/// Runs a plugin call on a blocking thread: plugin calls block, and the plugin's own callbacks
/// into Waldur block on this runtime, which must not happen on an async worker.
pub async fn blocking<T: Send + 'static>(
    backend: &Arc<Backend>,
    call: impl FnOnce(&Backend) -> T + Send + 'static,
) -> T {
    let backend = Arc::clone(backend);
    tokio::task::spawn_blocking(move || call(&backend))
        .await
        .expect("plugin calls catch panics; the blocking task cannot panic")
}

/// The offering's backend, built on first use and reused afterwards.
pub(crate) async fn backend_for(
    agent: &Agent,
    offering: &Offering,
    entry: &str,
    components: BackendComponents,
    client: &WaldurClient,
) -> Result<Arc<Backend>, ModeError> {
    let key = (offering.name.clone(), entry.to_string());
    if let Some(backend) = agent
        .backends
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(Arc::clone(backend));
    }
    let context = HostContext::new(entry, &offering.name)
        .with_waldur(Arc::new(ClientGateway::new(client.clone())));
    let settings = offering.backend_settings.clone();
    // Loading a library and constructing an instance run plugin code: keep it off the
    // async workers.
    let registry_entry = entry.to_string();
    let mut backend = tokio::task::block_in_place(|| {
        agent
            .registry
            .backend(&registry_entry, &settings, &components, context)
    })?;
    if let Some(calls) = agent.plugin_calls(entry) {
        backend.record_calls_shared(calls);
    }
    if let Some(recorder) = agent.withheld_plugin_writes(&offering.name, entry) {
        backend.withhold_writes(recorder);
    }
    for warning in settings_warnings(agent, offering) {
        tracing::warn!(offering = %offering.name, "{warning}");
    }
    let backend = Arc::new(backend);
    agent
        .backends
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, Arc::clone(&backend));
    Ok(backend)
}

/// Every plugin entry an offering names: `(config key, entry kind, entry name)`.
pub fn plugin_entries(offering: &Offering) -> Vec<(&'static str, EntryKind, &str)> {
    offering
        .plugin_entries()
        .into_iter()
        .map(|(key, entry)| {
            let kind = if key == "username_management_backend" {
                EntryKind::USERNAME
            } else {
                EntryKind::BACKEND
            };
            (key, kind, entry)
        })
        .collect()
}

/// Settings warnings for an offering, from every plugin entry it uses. The entries share
/// `backend_settings` (as in the reference), so a key one entry declares is not "unknown" to
/// another.
pub fn settings_warnings(agent: &Agent, offering: &Offering) -> Vec<String> {
    let mut entries: Vec<(EntryKind, &str)> = plugin_entries(offering)
        .into_iter()
        .map(|(_, kind, entry)| (kind, entry))
        .collect();
    entries.sort_by_key(|(kind, entry)| (kind.0, *entry));
    entries.dedup();
    let mut declared = std::collections::BTreeSet::new();
    let mut warnings = Vec::new();
    for (kind, entry) in entries {
        let Ok(plugin) = agent.registry.plugin(kind, entry) else {
            continue; // reported when the entry is used
        };
        if let Some(manifest_entry) = plugin.manifest().entries.iter().find(|e| e.name == entry) {
            declared.extend(manifest_entry.settings.iter().map(|s| s.name.clone()));
        }
        match plugin.validate(
            entry,
            &offering.backend_settings,
            &offering.backend_components,
        ) {
            Ok(found) => warnings.extend(found.into_iter().map(|w| (entry.to_string(), w))),
            Err(e) => warnings.push((entry.to_string(), e.to_string())),
        }
    }
    warnings
        .into_iter()
        .filter(|(_, w)| {
            let unknown_key = w
                .strip_prefix("backend_settings.")
                .and_then(|rest| rest.split_once(" is not a setting this plugin knows"))
                .map(|(key, _)| key);
            !unknown_key.is_some_and(|key| declared.contains(key))
        })
        .map(|(entry, w)| format!("plugin entry '{entry}': {w}"))
        .collect()
}

/// A1-A3: the agent identity of an offering (`agent-<offering uuid>`, shared by every mode).
pub(crate) fn identity_request(agent: &Agent, offering: &Offering) -> AgentIdentityRequest {
    AgentIdentityRequest {
        offering: offering.waldur_offering_uuid.clone(),
        name: format!("agent-{}", offering.waldur_offering_uuid),
        version: crate::AGENT_VERSION.to_string(),
        last_restarted: agent.started.clone(),
        dependencies: dependencies(agent),
        config_file_path: String::new(),
        config_file_content: String::new(),
    }
}

/// The plugins this agent has loaded, for the agent identity.
fn dependencies(agent: &Agent) -> Vec<AgentDependency> {
    agent
        .registry
        .catalog()
        .records
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(|r| r.manifest.as_ref())
        .map(|m| AgentDependency {
            package: m.name.clone(),
            version: m.version.clone(),
        })
        .collect()
}

/// The components the plugin sees: the configured ones, only.
///
/// The reference extends its configured components with Waldur's other ones, but after its
/// backend was built, so its backend never sees them; handing them to the plugin made it
/// report 0.00 for components nobody configured, and a decrease against usage Waldur has from
/// elsewhere refused the whole report. Waldur's extra components are noted once; one of
/// billing type `fixed` or `few` has no backend meaning and is skipped with a warning (the
/// reference fails the offering on it).
pub fn backend_components(
    offering: &str,
    configured: &BackendComponents,
    remote: &[OfferingComponent],
) -> BackendComponents {
    static NOTED: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    for component in remote {
        let kind = &component.component_type;
        if configured.contains_key(kind) {
            continue;
        }
        let first_time = NOTED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((offering.to_string(), kind.clone()));
        if !first_time {
            continue;
        }
        match component.billing_type.as_str() {
            "fixed" | "few" => tracing::warn!(
                offering,
                "Waldur component '{kind}' has billing type '{}', which has no backend \
                 meaning; skipped",
                component.billing_type
            ),
            _ => tracing::info!(
                offering,
                "Waldur component '{kind}' is not in backend_components; the agent neither \
                 reports nor limits it"
            ),
        }
    }
    configured.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::wire::BackendComponent;

    fn remote(kind: &str, billing: &str) -> OfferingComponent {
        OfferingComponent {
            component_type: kind.into(),
            name: kind.to_uppercase(),
            measured_unit: "h".into(),
            billing_type: billing.into(),
            limit_amount: Some(5.0),
            ..Default::default()
        }
    }

    #[test]
    fn only_configured_components_reach_the_plugin() {
        let mut configured = BackendComponents::new();
        configured.insert(
            "cpu".into(),
            BackendComponent {
                unit_factor: Some(60.0),
                ..Default::default()
            },
        );
        let components = backend_components(
            "o",
            &configured,
            &[
                remote("cpu", "limit"),
                remote("disk", "usage"),
                remote("license", "fixed"),
            ],
        );
        assert_eq!(components, configured);
    }
}
