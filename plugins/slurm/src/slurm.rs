//! The backend type: its parts, its construction and the state it keeps between calls. The
//! behaviour lives in the topic modules (`hierarchy`, `users`, `qos`, ...), each an
//! `impl Slurm` block; `backend.rs` and `base_client.rs` are the thin SDK trait impls.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, RuntimeContext};
use waldur_plugin_abi::{Error, Result};

use crate::client::SlurmClient;
use crate::command::CommandBuilder;
use crate::limits::ComponentMapper;
use crate::names;
use crate::runner::{ProcessRunner, Runner};
use crate::settings::SlurmSettings;
use crate::usage::{month_containing, parse_timezone, Period};

/// What the agent tells the backend after construction.
#[derive(Debug, Clone)]
struct Runtime {
    timezone: TimeZone,
    offering_partitions: Vec<String>,
    offering_enforce_qos: bool,
}

/// The SLURM backend of one offering.
pub struct Slurm {
    pub(crate) settings: SlurmSettings,
    pub(crate) components: BackendComponents,
    pub(crate) mapper: ComponentMapper,
    pub(crate) client: SlurmClient,
    runtime: RwLock<Runtime>,
    /// The QoS pause/downscale/restore just set, per account, for the next
    /// `get_resource_metadata` of that account (which consumes it).
    last_qos: Mutex<HashMap<String, String>>,
}

impl Slurm {
    /// Builds the backend from `backend_settings` and `backend_components`, running real
    /// commands bounded by `command_timeout`. Everything of `Backend::new` except the host
    /// handle, which the plugin never needs.
    pub fn open(settings: &JsonMap, components: BackendComponents) -> Result<Self> {
        let parsed = SlurmSettings::parse(settings)?;
        let runner = Arc::new(ProcessRunner::new(parsed.command_timeout));
        Self::build(parsed, components, runner)
    }

    /// The same with another [`Runner`] (tests).
    pub fn with_runner(
        settings: &JsonMap,
        components: BackendComponents,
        runner: Arc<dyn Runner>,
    ) -> Result<Self> {
        Self::build(SlurmSettings::parse(settings)?, components, runner)
    }

    fn build(
        settings: SlurmSettings,
        components: BackendComponents,
        runner: Arc<dyn Runner>,
    ) -> Result<Self> {
        let mapper = ComponentMapper::new(&components)?;
        let configured: BTreeSet<String> = components.keys().cloned().collect();
        let mut reported = configured.clone();
        reported.extend(mapper.target_names().iter().cloned());
        let commands =
            CommandBuilder::new(&settings.slurm_bin_path, settings.cluster_name.as_deref());
        let client = SlurmClient::new(commands, runner, configured, reported);
        Ok(Self {
            settings,
            components,
            mapper,
            client,
            runtime: RwLock::new(Runtime {
                timezone: TimeZone::system(),
                offering_partitions: Vec::new(),
                offering_enforce_qos: false,
            }),
            last_qos: Mutex::new(HashMap::new()),
        })
    }

    /// A second instance on the same settings, commands (runner) and runtime context, as a
    /// second agent process has: tests wrap it in the agent's defaults and call this one too.
    #[cfg(test)]
    pub(crate) fn twin(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            components: self.components.clone(),
            mapper: ComponentMapper::new(&self.components).expect("built from these once"),
            client: self.client.clone(),
            runtime: RwLock::new(self.runtime()),
            last_qos: Mutex::new(HashMap::new()),
        }
    }

    /// The parsed settings.
    pub fn settings(&self) -> &SlurmSettings {
        &self.settings
    }

    /// The SLURM client (every command of the reference's client).
    pub fn client(&self) -> &SlurmClient {
        &self.client
    }

    pub(crate) fn apply_runtime_context(&self, context: &RuntimeContext) {
        self.client.use_runtime_dir(context.runtime_dir.as_deref());
        let mut partitions = context.offering_partitions.clone();
        partitions.sort();
        let runtime = Runtime {
            timezone: parse_timezone(&context.timezone),
            offering_partitions: partitions,
            offering_enforce_qos: context.offering_enforce_qos.unwrap_or(false),
        };
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = runtime;
    }

    fn runtime(&self) -> Runtime {
        self.runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn offering_partitions(&self) -> Vec<String> {
        self.runtime().offering_partitions
    }

    /// The current billing month in the offering's time zone.
    pub(crate) fn current_period(&self) -> Period {
        month_containing(Timestamp::now(), &self.runtime().timezone)
    }

    /// QoS enforcement: only when the site opted in (`qos_enforcement_enabled`); then
    /// `enforce_offering_qos` when set, else the offering's `plugin_options.enforce_qos`.
    pub(crate) fn qos_enforced(&self) -> bool {
        if !self.settings.qos_enforcement_enabled {
            return false;
        }
        self.settings
            .enforce_offering_qos
            .unwrap_or_else(|| self.runtime().offering_enforce_qos)
    }

    pub(crate) fn remember_qos(&self, account: &str, qos: &str) {
        self.last_qos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_string(), qos.to_string());
    }

    pub(crate) fn take_remembered_qos(&self, account: &str) -> Option<String> {
        self.last_qos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account)
    }

    // ---------------------------------------------------------------------------------------
    // Naming (the reference BaseBackend's; the agent's defaults answer the same)

    /// `id`, the account named after a `what` slug, when the slug is not blank and the id a
    /// valid account name: the naming entries refuse a hostile slug before the agent uses
    /// the id anywhere.
    pub(crate) fn checked_backend_id(what: &str, slug: &str, id: String) -> Result<String> {
        if slug.is_empty() {
            return Err(Error::backend(format!(
                "The {what} slug is empty: no SLURM account can be named after it"
            )));
        }
        names::account(&id)?;
        Ok(id)
    }

    /// `(allocation_prefix + slug)`, lower-cased.
    pub fn resource_backend_id(&self, slug: &str) -> String {
        format!("{}{slug}", self.settings.allocation_prefix).to_lowercase()
    }

    /// `project_prefix + slug` (not lower-cased).
    pub fn project_backend_id(&self, slug: &str) -> String {
        format!("{}{slug}", self.settings.project_prefix)
    }

    /// `customer_prefix + slug` (not lower-cased).
    pub fn customer_backend_id(&self, slug: &str) -> String {
        format!("{}{slug}", self.settings.customer_prefix)
    }

    /// The reference's `_create_backend_resource`: `show account`, then `add account` unless
    /// it exists; true when it was created.
    pub(crate) fn create_account_if_missing(
        &self,
        account: &str,
        description: &str,
        organization: &str,
        parent: Option<&str>,
    ) -> Result<bool> {
        log::info!("Creating resource {description} in slurm backend (backend ID = {account})");
        if self.client.get_resource(account)?.is_some() {
            log::info!("The resource with ID {account} already exists in the cluster");
            return Ok(false);
        }
        self.client
            .create_resource(account, description, organization, parent)?;
        Ok(true)
    }
}
