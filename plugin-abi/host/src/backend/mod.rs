//! The agent's backend object: one plugin backend instance serving one offering.
//!
//! Every agent mode talks to a backend through [`Backend`]. Each public BaseBackend method
//! first asks the plugin. If the plugin answers NOT_IMPLEMENTED, the method runs the
//! reference agent's generic algorithm instead (ARCHITECTURE.md, ABI decision 7), written once
//! here (`defaults.rs`, `commands.rs`) so fixing it never requires rebuilding a vendor plugin.
//!
//! A default reaches the plugin again only through the public methods of this type: its
//! `client_*` entries and its hooks, each with its own fallback. That mirrors Python's dynamic
//! dispatch, where the reference's `delete_resource` calling `self._pre_delete_resource`
//! reaches the plugin's override when there is one.
//!
//! Errors name the plugin method whose call failed: inside a default algorithm that is the
//! innermost call (`client_create_resource`, not `create_resource_with_id`). A
//! NOT_IMPLEMENTED error coming out of this type always means "this very method has neither a
//! plugin implementation nor an agent default" (abstract methods such as `ping`, and
//! `generate_resource_keys`, `rotate_resource_key`, `sync_resource_limits`). When a default
//! needs a plugin method the plugin lacks, the error is INTERNAL and says so.

mod commands;
mod defaults;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::handle::BackendHandle;
use serde_json::Value;
use waldur_plugin_abi::wire::{
    AccountDiagnosis, Association, BackendComponents, BackendLimits, BackendResourceInfo,
    CapabilitySet, ClientResource, CollectedLimits, DiagnoseAccountArgs, JsonMap, Limits, Order,
    PendingOrderDecision, PeriodicSettingsResult, ResourceKey, RuntimeContext, UsageReport,
    UserContext, UserOptions, WaldurResource, DIAGNOSE_ACCOUNT_METHOD,
};
use waldur_plugin_abi::Error as AbiError;

use crate::calls::{CallObserver, Observed};
use crate::{HostBinding, PluginError};

/// The `invoke` method that receives the messages of a plugin's target subscriptions.
pub const TARGET_EVENT_METHOD: &str = "handle_target_event";

pub use commands::{COMMAND_TIMEOUT_SETTING, DEFAULT_COMMAND_TIMEOUT};

/// Per-user limits in backend units, keyed by username.
pub type UserLimits = BTreeMap<String, BackendLimits>;

/// A plugin backend instance for one offering, with the agent's default BaseBackend logic.
///
/// `Send + Sync`: modes may call it from several threads at once (plugin calls block; async
/// code goes through `spawn_blocking`).
pub struct Backend {
    // Field order is drop order: the plugin instance points into `binding`, so `handle` must
    // be dropped first.
    handle: BackendHandle,
    binding: HostBinding,
    entry: String,
    settings: JsonMap,
    components: BackendComponents,
    capabilities: CapabilitySet,
    /// Bound on every command run by the host's `client_execute_command` default.
    command_timeout: Duration,
    /// Every call into the plugin goes through this (latency per method, when metrics are on).
    calls: Observed,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("entry", &self.entry)
            .field("offering", &self.binding.context().offering)
            .field("components", &self.components.keys().collect::<Vec<_>>())
            .field("capabilities", &self.capabilities)
            .field("command_timeout", &self.command_timeout)
            .finish_non_exhaustive()
    }
}

/// Turns "the plugin lacks a method a default algorithm needs" into an error that says so.
trait NeededBy<T> {
    fn needed_by(self, default: &'static str) -> Result<T, PluginError>;
}

impl<T> NeededBy<T> for Result<T, PluginError> {
    fn needed_by(self, default: &'static str) -> Result<T, PluginError> {
        self.map_err(|e| {
            if !e.is_not_implemented() {
                return e;
            }
            PluginError {
                error: AbiError::internal(format!(
                    "not implemented by the plugin, but the agent's default {default} needs it"
                )),
                ..e
            }
        })
    }
}

impl Backend {
    /// Wraps a freshly built plugin instance. `binding` must be the one whose handle was given
    /// to the plugin's constructor. Reads the capability flags once, here.
    pub fn new(
        handle: BackendHandle,
        binding: HostBinding,
        entry: String,
        settings: JsonMap,
        components: BackendComponents,
    ) -> Self {
        let capabilities = match handle.capabilities() {
            Ok(capabilities) => capabilities,
            Err(error) => {
                tracing::warn!(
                    plugin = %entry,
                    "cannot read the backend's capabilities, using the reference defaults: {error}"
                );
                CapabilitySet::default()
            }
        };
        let command_timeout = commands::timeout_from_settings(&entry, &settings);
        Self {
            handle,
            binding,
            entry,
            settings,
            components,
            capabilities,
            command_timeout,
            calls: Observed::default(),
        }
    }

    /// Records the latency of every later call into the plugin (`run --metrics-address`).
    ///
    /// An observer that [`CallObserver::wants_calls`] also sees each crossing in full.
    pub fn record_calls(&mut self, observer: impl CallObserver + 'static) {
        self.record_calls_shared(Arc::new(observer));
    }

    /// [`Self::record_calls`] with an observer shared with other backends.
    pub fn record_calls_shared(&mut self, observer: Arc<dyn CallObserver>) {
        if observer.wants_calls() {
            self.handle.watch_calls(Arc::clone(&observer));
        }
        self.calls = Observed::new(observer);
    }

    /// A dry run: the plugin's writing methods are not called from here on; `recorder`
    /// learns of each call instead (see [`crate::withheld`]).
    pub fn withhold_writes(&mut self, recorder: std::sync::Arc<dyn crate::WriteRecorder>) {
        self.handle.withhold_writes(recorder);
    }

    /// Drops the plugin instance now and reports a panic in its `Drop`.
    pub fn close(self) -> Result<(), PluginError> {
        let Self {
            handle,
            binding,
            entry,
            ..
        } = self;
        let closed = handle.close();
        // Only now that the instance is gone may its host context go.
        drop(binding);
        closed.map_err(|e| PluginError::new(&entry, "drop", e))
    }

    // ----------------------------------------------------------------------------------------
    // Accessors

    /// The plugin entry this backend was built from (`slurm`, `mup`, ...).
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The offering's `backend_settings`.
    pub fn settings(&self) -> &JsonMap {
        &self.settings
    }

    /// The offering's `backend_components`.
    pub fn components(&self) -> &BackendComponents {
        &self.components
    }

    /// The BaseBackend class attributes, as the plugin answered them at construction.
    pub fn capabilities(&self) -> &CapabilitySet {
        &self.capabilities
    }

    /// The raw handle, for tools that call slots by name (`call_json`, `invoke`).
    pub fn handle(&self) -> &BackendHandle {
        &self.handle
    }

    /// Forgets the manifest's list of implemented methods: every method crosses into the
    /// plugin again and the plugin's SDK answers NOT_IMPLEMENTED for the ones it lacks. For a
    /// plugin whose hand-written `IMPLEMENTED` leaves out a method it writes, and for the
    /// benchmark's baseline.
    pub fn call_every_method(&mut self) {
        self.handle.leave_to_agent(&[]);
    }

    pub fn binding(&self) -> &HostBinding {
        &self.binding
    }

    /// How long the host's `client_execute_command` lets a command run.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Overrides the `command_timeout_seconds` setting.
    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.command_timeout = timeout;
    }

    // ----------------------------------------------------------------------------------------
    // Plumbing

    /// Runs one typed call of the handle, timed for the metrics only when it crosses into the
    /// plugin: a method the manifest leaves to the agent is not a plugin call.
    fn timed<T>(&self, method: &'static str, call: impl FnOnce() -> T) -> T {
        self.calls.time(method, |m| self.handle.crosses(m), call)
    }

    fn wrap<T>(
        &self,
        method: &'static str,
        answer: waldur_plugin_abi::Result<T>,
    ) -> Result<T, PluginError> {
        answer.map_err(|e| PluginError::new(&self.entry, method, e))
    }

    /// The plugin's answer, or `default()` when the plugin leaves the method to the agent.
    fn or_default<T>(
        &self,
        method: &'static str,
        answer: waldur_plugin_abi::Result<T>,
        default: impl FnOnce() -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        match answer {
            Err(e) if e.is_not_implemented() => default(),
            other => self.wrap(method, other),
        }
    }

    fn error(&self, method: &'static str, error: AbiError) -> PluginError {
        PluginError::new(&self.entry, method, error)
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: health and information

    /// Tells the plugin what the agent learned about the offering after construction. A no-op
    /// for plugins that do not care.
    pub fn set_runtime_context(&self, context: &RuntimeContext) -> Result<(), PluginError> {
        let answer = self.timed("set_runtime_context", || {
            self.handle.set_runtime_context(context)
        });
        self.or_default("set_runtime_context", answer, || Ok(()))
    }

    /// Abstract in the reference: no default.
    pub fn ping(&self, raise_exception: bool) -> Result<bool, PluginError> {
        self.wrap(
            "ping",
            self.timed("ping", || self.handle.ping(raise_exception)),
        )
    }

    /// Default: `ping()` false is a BACKEND_NOT_READY error (the cycle is skipped).
    pub fn run_preflight(&self) -> Result<(), PluginError> {
        let answer = self.timed("run_preflight", || self.handle.run_preflight());
        self.or_default("run_preflight", answer, || self.default_run_preflight())
    }

    /// Abstract in the reference: no default.
    pub fn diagnostics(&self) -> Result<bool, PluginError> {
        self.wrap(
            "diagnostics",
            self.timed("diagnostics", || self.handle.diagnostics()),
        )
    }

    /// Abstract in the reference: no default.
    pub fn list_components(&self) -> Result<Vec<String>, PluginError> {
        self.wrap(
            "list_components",
            self.timed("list_components", || self.handle.list_components()),
        )
    }

    /// Current-period usage in Waldur units (the reference's abstract `_get_usage_report`).
    pub fn get_usage_report(
        &self,
        resource_backend_ids: &[String],
    ) -> Result<UsageReport, PluginError> {
        self.wrap(
            "get_usage_report",
            self.timed("get_usage_report", || {
                self.handle.get_usage_report(resource_backend_ids)
            }),
        )
    }

    /// Default: `{}`, so past periods are never reported for this backend.
    pub fn get_usage_report_for_period(
        &self,
        resource_backend_ids: &[String],
        year: i32,
        month: u32,
        waldur_resource: Option<&WaldurResource>,
    ) -> Result<UsageReport, PluginError> {
        let answer = self.timed("get_usage_report_for_period", || {
            self.handle.get_usage_report_for_period(
                resource_backend_ids,
                year,
                month,
                waldur_resource,
            )
        });
        self.or_default("get_usage_report_for_period", answer, || {
            Ok(UsageReport::new())
        })
    }

    /// Abstract in the reference: no default.
    pub fn downscale_resource(&self, resource_backend_id: &str) -> Result<bool, PluginError> {
        let answer = self.timed("downscale_resource", || {
            self.handle.downscale_resource(resource_backend_id)
        });
        self.wrap("downscale_resource", answer)
    }

    /// Abstract in the reference: no default.
    pub fn pause_resource(&self, resource_backend_id: &str) -> Result<bool, PluginError> {
        let answer = self.timed("pause_resource", || {
            self.handle.pause_resource(resource_backend_id)
        });
        self.wrap("pause_resource", answer)
    }

    /// Abstract in the reference: no default.
    pub fn restore_resource(&self, resource_backend_id: &str) -> Result<bool, PluginError> {
        let answer = self.timed("restore_resource", || {
            self.handle.restore_resource(resource_backend_id)
        });
        self.wrap("restore_resource", answer)
    }

    /// Abstract in the reference: no default.
    pub fn get_resource_metadata(&self, resource_backend_id: &str) -> Result<JsonMap, PluginError> {
        let answer = self.timed("get_resource_metadata", || {
            self.handle.get_resource_metadata(resource_backend_id)
        });
        self.wrap("get_resource_metadata", answer)
    }

    /// Abstract in the reference (`_collect_resource_limits`): no default.
    pub fn collect_resource_limits(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<CollectedLimits, PluginError> {
        let answer = self.timed("collect_resource_limits", || {
            self.handle.collect_resource_limits(waldur_resource)
        });
        self.wrap("collect_resource_limits", answer)
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: creation

    /// Hook before an account is created. Abstract in the reference, but a plugin without one
    /// simply needs no preparation: NOT_IMPLEMENTED is a no-op.
    pub fn pre_create_resource(
        &self,
        waldur_resource: &WaldurResource,
        user_context: Option<&UserContext>,
    ) -> Result<(), PluginError> {
        let answer = self.timed("pre_create_resource", || {
            self.handle
                .pre_create_resource(waldur_resource, user_context)
        });
        self.or_default("pre_create_resource", answer, || Ok(()))
    }

    /// Default: `create_resource_with_id` with `get_resource_backend_id(slug)`. (The order
    /// processor calls `create_resource_with_id` directly.)
    pub fn create_resource(
        &self,
        waldur_resource: &WaldurResource,
        user_context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo, PluginError> {
        let answer = self.timed("create_resource", || {
            self.handle.create_resource(waldur_resource, user_context)
        });
        self.or_default("create_resource", answer, || {
            self.default_create_resource(waldur_resource, user_context)
        })
    }

    /// Default: pre-create hook, the account through the client (DUPLICATE_RESOURCE when it
    /// exists already), limits, post-create hook.
    pub fn create_resource_with_id(
        &self,
        waldur_resource: &WaldurResource,
        resource_backend_id: &str,
        user_context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo, PluginError> {
        let answer = self.timed("create_resource_with_id", || {
            self.handle
                .create_resource_with_id(waldur_resource, resource_backend_id, user_context)
        });
        self.or_default("create_resource_with_id", answer, || {
            self.default_create_resource_with_id(waldur_resource, resource_backend_id, user_context)
        })
    }

    /// Default: creates the account through the client unless it exists; false when it did.
    pub fn create_backend_resource(
        &self,
        resource_backend_id: &str,
        name: &str,
        organization: &str,
        parent: Option<&str>,
    ) -> Result<bool, PluginError> {
        let answer = self.timed("create_backend_resource", || {
            self.handle
                .create_backend_resource(resource_backend_id, name, organization, parent)
        });
        self.or_default("create_backend_resource", answer, || {
            self.default_create_backend_resource(resource_backend_id, name, organization, parent)
        })
    }

    /// Default: applies `collect_resource_limits` through the client; answers the Waldur-unit
    /// limits (`{}` when there are no backend limits).
    pub fn setup_resource_limits(
        &self,
        resource_backend_id: &str,
        waldur_resource: &WaldurResource,
    ) -> Result<Limits, PluginError> {
        let answer = self.timed("setup_resource_limits", || {
            self.handle
                .setup_resource_limits(resource_backend_id, waldur_resource)
        });
        self.or_default("setup_resource_limits", answer, || {
            self.default_setup_resource_limits(resource_backend_id, waldur_resource)
        })
    }

    /// Hook after creation; may fill `backend_metadata`, `endpoints`, `pending_order_id` or
    /// even `backend_id`. Default: `resource_info` unchanged.
    pub fn post_create_resource(
        &self,
        resource_info: BackendResourceInfo,
        waldur_resource: &WaldurResource,
        user_context: Option<&UserContext>,
    ) -> Result<BackendResourceInfo, PluginError> {
        let answer = self.timed("post_create_resource", || {
            self.handle
                .post_create_resource(&resource_info, waldur_resource, user_context)
        });
        self.or_default("post_create_resource", answer, || Ok(resource_info))
    }

    /// Default: `allocation_prefix + slug`, lower-cased.
    pub fn get_resource_backend_id(&self, slug: &str) -> Result<String, PluginError> {
        let answer = self.timed("get_resource_backend_id", || {
            self.handle.get_resource_backend_id(slug)
        });
        self.or_default("get_resource_backend_id", answer, || {
            Ok(self.default_resource_backend_id(slug))
        })
    }

    /// Default: `project_prefix + slug`, NOT lower-cased.
    pub fn get_project_backend_id(&self, slug: &str) -> Result<String, PluginError> {
        let answer = self.timed("get_project_backend_id", || {
            self.handle.get_project_backend_id(slug)
        });
        self.or_default("get_project_backend_id", answer, || {
            Ok(format!("{}{slug}", self.setting_text("project_prefix")))
        })
    }

    /// Default: `customer_prefix + slug`, NOT lower-cased.
    pub fn get_customer_backend_id(&self, slug: &str) -> Result<String, PluginError> {
        let answer = self.timed("get_customer_backend_id", || {
            self.handle.get_customer_backend_id(slug)
        });
        self.or_default("get_customer_backend_id", answer, || {
            Ok(format!("{}{slug}", self.setting_text("customer_prefix")))
        })
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: deletion

    /// Answers the uuid of a backend order for async backends, otherwise `None`.
    ///
    /// Default: nothing to do for a blank or unknown backend id; otherwise the pre-delete
    /// hook, then either zero limits (`soft_delete`) or the account's deletion plus, given a
    /// `project_slug`, the project account's when no other account is left in it; then the
    /// post-delete hook.
    pub fn delete_resource(
        &self,
        waldur_resource: &WaldurResource,
        project_slug: Option<&str>,
    ) -> Result<Option<String>, PluginError> {
        let answer = self.timed("delete_resource", || {
            self.handle.delete_resource(waldur_resource, project_slug)
        });
        self.or_default("delete_resource", answer, || {
            self.default_delete_resource(waldur_resource, project_slug)
        })
    }

    /// Hook before deletion. Default: no-op.
    pub fn pre_delete_resource(&self, waldur_resource: &WaldurResource) -> Result<(), PluginError> {
        let answer = self.timed("pre_delete_resource", || {
            self.handle.pre_delete_resource(waldur_resource)
        });
        self.or_default("pre_delete_resource", answer, || Ok(()))
    }

    /// Hook after deletion. Default: no-op.
    pub fn post_delete_resource(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<(), PluginError> {
        let answer = self.timed("post_delete_resource", || {
            self.handle.post_delete_resource(waldur_resource)
        });
        self.or_default("post_delete_resource", answer, || Ok(()))
    }

    /// Default: deletes the account through the client if it exists, else only warns.
    pub fn delete_resource_safely(&self, resource_backend_id: &str) -> Result<(), PluginError> {
        let answer = self.timed("delete_resource_safely", || {
            self.handle.delete_resource_safely(resource_backend_id)
        });
        self.or_default("delete_resource_safely", answer, || {
            self.default_delete_resource_safely(resource_backend_id)
        })
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: users

    /// Hook before a user's association is removed (e.g. cancel their jobs). Default: no-op.
    pub fn pre_delete_user_actions(
        &self,
        resource_backend_id: &str,
        username: &str,
    ) -> Result<(), PluginError> {
        let answer = self.timed("pre_delete_user_actions", || {
            self.handle
                .pre_delete_user_actions(resource_backend_id, username)
        });
        self.or_default("pre_delete_user_actions", answer, || Ok(()))
    }

    /// Answers the usernames that were added. Default: `add_user` for each (duplicates once);
    /// a user whose addition fails with a backend error is logged and left out.
    pub fn add_users_to_resource(
        &self,
        waldur_resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>, PluginError> {
        let answer = self.timed("add_users_to_resource", || {
            self.handle
                .add_users_to_resource(waldur_resource, usernames, options)
        });
        self.or_default("add_users_to_resource", answer, || {
            self.default_add_users_to_resource(waldur_resource, usernames, options)
        })
    }

    /// Default: creates the association through the client unless it exists, with the
    /// `default_account` setting (or `root`). A blank resource backend id is a backend error;
    /// a blank username or a backend error creating the association answers false.
    pub fn add_user(
        &self,
        waldur_resource: &WaldurResource,
        username: &str,
        options: &UserOptions,
    ) -> Result<bool, PluginError> {
        let answer = self.timed("add_user", || {
            self.handle.add_user(waldur_resource, username, options)
        });
        self.or_default("add_user", answer, || {
            self.default_add_user(waldur_resource, username)
        })
    }

    /// Answers the usernames that were removed. Default: `remove_user` for each; backend
    /// errors are logged and the user left out.
    pub fn remove_users_from_resource(
        &self,
        waldur_resource: &WaldurResource,
        usernames: &[String],
        options: &UserOptions,
    ) -> Result<Vec<String>, PluginError> {
        let answer = self.timed("remove_users_from_resource", || {
            self.handle
                .remove_users_from_resource(waldur_resource, usernames, options)
        });
        self.or_default("remove_users_from_resource", answer, || {
            self.default_remove_users_from_resource(waldur_resource, usernames, options)
        })
    }

    /// Default: if the association exists, the `pre_delete_user_actions` hook and its
    /// deletion through the client (a backend error in either answers false). A blank
    /// resource backend id is a backend error.
    pub fn remove_user(
        &self,
        waldur_resource: &WaldurResource,
        username: &str,
        options: &UserOptions,
    ) -> Result<bool, PluginError> {
        let answer = self.timed("remove_user", || {
            self.handle.remove_user(waldur_resource, username, options)
        });
        self.or_default("remove_user", answer, || {
            self.default_remove_user(waldur_resource, username)
        })
    }

    /// Every membership cycle, with all usernames of the offering's resources. Default: no-op.
    pub fn process_existing_users(&self, usernames: &[String]) -> Result<(), PluginError> {
        let answer = self.timed("process_existing_users", || {
            self.handle.process_existing_users(usernames)
        });
        self.or_default("process_existing_users", answer, || Ok(()))
    }

    /// Default: no-op.
    pub fn reconcile_existing_user_roles(
        &self,
        waldur_resource: &WaldurResource,
        existing_usernames: &[String],
        user_roles: &BTreeMap<String, String>,
        user_cuids: &BTreeMap<String, String>,
    ) -> Result<(), PluginError> {
        let answer = self.timed("reconcile_existing_user_roles", || {
            self.handle.reconcile_existing_user_roles(
                waldur_resource,
                existing_usernames,
                user_roles,
                user_cuids,
            )
        });
        self.or_default("reconcile_existing_user_roles", answer, || Ok(()))
    }

    /// Default: no-op.
    pub fn update_user_attributes(
        &self,
        username: &str,
        attributes: &JsonMap,
    ) -> Result<(), PluginError> {
        let answer = self.timed("update_user_attributes", || {
            self.handle.update_user_attributes(username, attributes)
        });
        self.or_default("update_user_attributes", answer, || Ok(()))
    }

    /// True when usernames changed in Waldur. Default: false.
    pub fn sync_offering_user_usernames(&self, offering_uuid: &str) -> Result<bool, PluginError> {
        let answer = self.timed("sync_offering_user_usernames", || {
            self.handle.sync_offering_user_usernames(offering_uuid)
        });
        self.or_default("sync_offering_user_usernames", answer, || Ok(false))
    }

    /// Default: for each user without a directory `homedir_base_path/<user>`,
    /// `client_create_linux_user_homedir`; a failure is logged and the user skipped.
    pub fn create_user_homedirs(
        &self,
        usernames: &[String],
        umask: &str,
    ) -> Result<(), PluginError> {
        let answer = self.timed("create_user_homedirs", || {
            self.handle.create_user_homedirs(usernames, umask)
        });
        self.or_default("create_user_homedirs", answer, || {
            self.default_create_user_homedirs(usernames, umask)
        })
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: Waldur-side synchronisation hooks (no-ops by default)

    pub fn sync_resource_project(
        &self,
        waldur_resource: &WaldurResource,
        source_project: Option<&Value>,
    ) -> Result<(), PluginError> {
        let answer = self.timed("sync_resource_project", || {
            self.handle
                .sync_resource_project(waldur_resource, source_project)
        });
        self.or_default("sync_resource_project", answer, || Ok(()))
    }

    pub fn sync_project_end_date(
        &self,
        waldur_resource: &WaldurResource,
        source_project: Option<&Value>,
    ) -> Result<(), PluginError> {
        let answer = self.timed("sync_project_end_date", || {
            self.handle
                .sync_project_end_date(waldur_resource, source_project)
        });
        self.or_default("sync_project_end_date", answer, || Ok(()))
    }

    pub fn sync_resource_end_date(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<(), PluginError> {
        let answer = self.timed("sync_resource_end_date", || {
            self.handle.sync_resource_end_date(waldur_resource)
        });
        self.or_default("sync_resource_end_date", answer, || Ok(()))
    }

    pub fn sync_resource_effective_id(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<(), PluginError> {
        let answer = self.timed("sync_resource_effective_id", || {
            self.handle.sync_resource_effective_id(waldur_resource)
        });
        self.or_default("sync_resource_effective_id", answer, || Ok(()))
    }

    /// NOT_IMPLEMENTED propagates: the reference default (`sync_waldur_resource_limits`:
    /// backend limits are the source of truth and are POSTed to Waldur when they differ) needs
    /// the Waldur client, so the membership-sync mode owns that logic and runs it when this
    /// answers NOT_IMPLEMENTED.
    pub fn sync_resource_limits(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<(), PluginError> {
        let answer = self.timed("sync_resource_limits", || {
            self.handle.sync_resource_limits(waldur_resource)
        });
        self.wrap("sync_resource_limits", answer)
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: limits

    /// Limits in Waldur units. Default: `int(value * unit_factor)` per component (factor 1
    /// when unset or unknown), through the client; answers `None`.
    pub fn set_resource_limits(
        &self,
        resource_backend_id: &str,
        limits: &Limits,
    ) -> Result<Option<String>, PluginError> {
        let answer = self.timed("set_resource_limits", || {
            self.handle.set_resource_limits(resource_backend_id, limits)
        });
        self.or_default("set_resource_limits", answer, || {
            self.default_set_resource_limits(resource_backend_id, limits)
        })
    }

    /// Waldur units, as integers. Default: the client's answer unconverted (as the reference
    /// does, so a backend whose units differ must implement this).
    pub fn get_resource_limits(
        &self,
        resource_backend_id: &str,
    ) -> Result<BackendLimits, PluginError> {
        let answer = self.timed("get_resource_limits", || {
            self.handle.get_resource_limits(resource_backend_id)
        });
        self.or_default("get_resource_limits", answer, || {
            self.client_get_resource_limits(resource_backend_id)
                .needed_by("get_resource_limits")
        })
    }

    /// Default: the client's answer.
    pub fn get_resource_user_limits(
        &self,
        resource_backend_id: &str,
    ) -> Result<UserLimits, PluginError> {
        let answer = self.timed("get_resource_user_limits", || {
            self.handle.get_resource_user_limits(resource_backend_id)
        });
        self.or_default("get_resource_user_limits", answer, || {
            self.client_get_resource_user_limits(resource_backend_id)
                .needed_by("get_resource_user_limits")
        })
    }

    /// Default: through the client.
    pub fn set_resource_user_limits(
        &self,
        resource_backend_id: &str,
        username: &str,
        limits: &BackendLimits,
    ) -> Result<(), PluginError> {
        let answer = self.timed("set_resource_user_limits", || {
            self.handle
                .set_resource_user_limits(resource_backend_id, username, limits)
        });
        self.or_default("set_resource_user_limits", answer, || {
            tracing::info!(
                plugin = %self.entry,
                "Setting user {username} limits to {limits:?} for resource {resource_backend_id}"
            );
            self.client_set_resource_user_limits(resource_backend_id, username, limits)
                .needed_by("set_resource_user_limits")
        })
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: reading resources back

    /// Default: every client account as `(backend_id = name, parent_id = organization)`.
    pub fn list_resources(&self) -> Result<Vec<BackendResourceInfo>, PluginError> {
        let answer = self.timed("list_resources", || self.handle.list_resources());
        self.or_default("list_resources", answer, || self.default_list_resources())
    }

    /// Answers Waldur backend id -> info for every resource the backend has. Default:
    /// `pull_resource` for each; failures are logged and the resource left out.
    pub fn pull_resources(
        &self,
        waldur_resources: &[WaldurResource],
    ) -> Result<BTreeMap<String, BackendResourceInfo>, PluginError> {
        let answer = self.timed("pull_resources", || {
            self.handle.pull_resources(waldur_resources)
        });
        self.or_default("pull_resources", answer, || {
            Ok(self.default_pull_resources(waldur_resources))
        })
    }

    /// The plugin's own `pull_resources`, or `None` when it leaves that to the agent. Modes use
    /// this to pull a whole cycle in one call when the plugin can batch (SLURM: a constant
    /// number of commands for all accounts), and otherwise pull resource by resource
    /// concurrently instead of through the sequential default.
    pub fn plugin_pull_resources(
        &self,
        waldur_resources: &[WaldurResource],
    ) -> Result<Option<BTreeMap<String, BackendResourceInfo>>, PluginError> {
        match self.timed("pull_resources", || {
            self.handle.pull_resources(waldur_resources)
        }) {
            Err(e) if e.is_not_implemented() => Ok(None),
            answer => self.wrap("pull_resources", answer).map(Some),
        }
    }

    /// Default: `None` without a backend id; otherwise `pull_backend_resource`, where any
    /// error is logged and becomes `None` (as in the reference, so a failing backend looks
    /// like a missing resource to the caller).
    pub fn pull_resource(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<Option<BackendResourceInfo>, PluginError> {
        let answer = self.timed("pull_resource", || {
            self.handle.pull_resource(waldur_resource)
        });
        self.or_default("pull_resource", answer, || {
            Ok(self.default_pull_resource(waldur_resource))
        })
    }

    /// Default: `None` if the client has no such account; otherwise its users and usage,
    /// zero usage of every component when the report has no entry. `backend_id` is NOT filled
    /// in (as in the reference). Errors propagate.
    pub fn pull_backend_resource(
        &self,
        resource_backend_id: &str,
    ) -> Result<Option<BackendResourceInfo>, PluginError> {
        let answer = self.timed("pull_backend_resource", || {
            self.handle.pull_backend_resource(resource_backend_id)
        });
        self.or_default("pull_backend_resource", answer, || {
            self.default_pull_backend_resource(resource_backend_id)
        })
    }

    /// True when the resource was missing and has been created again. Default: with a
    /// backend id the client does not know, `create_resource_with_id` with that id and no
    /// user context.
    pub fn recreate_missing_resource(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<bool, PluginError> {
        let answer = self.timed("recreate_missing_resource", || {
            self.handle.recreate_missing_resource(waldur_resource)
        });
        self.or_default("recreate_missing_resource", answer, || {
            self.default_recreate_missing_resource(waldur_resource)
        })
    }

    // ----------------------------------------------------------------------------------------
    // BaseBackend: orders, events, reports, keys

    /// Default: the reference's failure answer ("does not support periodic settings").
    pub fn apply_periodic_settings(
        &self,
        resource_backend_id: &str,
        settings: &Value,
        config: Option<&Value>,
    ) -> Result<PeriodicSettingsResult, PluginError> {
        let answer = self.timed("apply_periodic_settings", || {
            self.handle
                .apply_periodic_settings(resource_backend_id, settings, config)
        });
        self.or_default("apply_periodic_settings", answer, || {
            Ok(PeriodicSettingsResult {
                success: false,
                error: Some(format!(
                    "Backend {} does not support periodic settings",
                    self.entry
                )),
                commands_executed: Vec::new(),
                extra: JsonMap::new(),
            })
        })
    }

    /// Async orders: true = done, false = pending, error = erred. Default: true.
    pub fn check_pending_order(&self, order_backend_id: &str) -> Result<bool, PluginError> {
        let answer = self.timed("check_pending_order", || {
            self.handle.check_pending_order(order_backend_id)
        });
        self.or_default("check_pending_order", answer, || Ok(true))
    }

    /// Default: accept.
    pub fn evaluate_pending_order(
        &self,
        order: &Order,
    ) -> Result<PendingOrderDecision, PluginError> {
        let answer = self.timed("evaluate_pending_order", || {
            self.handle.evaluate_pending_order(order)
        });
        self.or_default("evaluate_pending_order", answer, || {
            Ok(PendingOrderDecision::Accept)
        })
    }

    /// Default: no subscriptions.
    pub fn setup_target_event_subscriptions(
        &self,
        source_offering: &Value,
        user_agent: &str,
        global_proxy: &str,
    ) -> Result<Vec<Value>, PluginError> {
        let answer = self.timed("setup_target_event_subscriptions", || {
            self.handle
                .setup_target_event_subscriptions(source_offering, user_agent, global_proxy)
        });
        self.or_default(
            "setup_target_event_subscriptions",
            answer,
            || Ok(Vec::new()),
        )
    }

    /// A message from one of the plugin's own subscriptions (see
    /// `setup_target_event_subscriptions`), through `invoke` (a method added after ABI 1.0).
    pub fn handle_target_event(&self, event: &Value) -> Result<Value, PluginError> {
        self.wrap(
            TARGET_EVENT_METHOD,
            self.timed(TARGET_EVENT_METHOD, || {
                self.handle.invoke(TARGET_EVENT_METHOD, event)
            }),
        )
    }

    /// The account `args.backend_id` next to what the plugin would set for Waldur's
    /// resource, through `invoke` (a method added after ABI 1.0). `None` when the plugin has
    /// no account diagnostics (optional for plugins; the agent has no default).
    pub fn diagnose_account(
        &self,
        args: &DiagnoseAccountArgs,
    ) -> Result<Option<AccountDiagnosis>, PluginError> {
        let encoded = serde_json::to_value(args).map_err(|e| {
            self.error(
                DIAGNOSE_ACCOUNT_METHOD,
                AbiError::invalid_input(format!("cannot encode the arguments: {e}")),
            )
        })?;
        let answer = self.timed(DIAGNOSE_ACCOUNT_METHOD, || {
            self.handle.invoke(DIAGNOSE_ACCOUNT_METHOD, &encoded)
        });
        match answer {
            Err(e) if e.is_not_implemented() => Ok(None),
            Err(e) => Err(self.error(DIAGNOSE_ACCOUNT_METHOD, e)),
            Ok(value) => serde_json::from_value(value).map(Some).map_err(|e| {
                self.error(
                    DIAGNOSE_ACCOUNT_METHOD,
                    AbiError::invalid_input(format!(
                        "the plugin answered something that is not an account diagnosis: {e}"
                    )),
                )
            }),
        }
    }

    /// Default: no report.
    pub fn get_membership_sync_report(
        &self,
        waldur_resource: &WaldurResource,
    ) -> Result<Option<Vec<Value>>, PluginError> {
        let answer = self.timed("get_membership_sync_report", || {
            self.handle.get_membership_sync_report(waldur_resource)
        });
        self.or_default("get_membership_sync_report", answer, || Ok(None))
    }

    /// Default: false.
    pub fn has_prepaid_components(&self) -> Result<bool, PluginError> {
        let answer = self.timed("has_prepaid_components", || {
            self.handle.has_prepaid_components()
        });
        self.or_default("has_prepaid_components", answer, || Ok(false))
    }

    /// Default: no-op.
    pub fn prune_unknown_resource_keys(
        &self,
        resource_backend_id: &str,
        keep: &[String],
    ) -> Result<(), PluginError> {
        let answer = self.timed("prune_unknown_resource_keys", || {
            self.handle
                .prune_unknown_resource_keys(resource_backend_id, keep)
        });
        self.or_default("prune_unknown_resource_keys", answer, || Ok(()))
    }

    /// No default: duck-typed in the reference; `supports_resource_api_keys` gates callers.
    pub fn generate_resource_keys(
        &self,
        resource_backend_id: &str,
        count: u32,
    ) -> Result<Vec<ResourceKey>, PluginError> {
        let answer = self.timed("generate_resource_keys", || {
            self.handle
                .generate_resource_keys(resource_backend_id, count)
        });
        self.wrap("generate_resource_keys", answer)
    }

    /// No default (see `generate_resource_keys`). Answers the new key, as a string or a
    /// `{client_id, api_key}` object.
    pub fn rotate_resource_key(
        &self,
        client_id: &str,
        resource_backend_id: &str,
        known_client_ids: Option<&[String]>,
    ) -> Result<Value, PluginError> {
        let answer = self.timed("rotate_resource_key", || {
            self.handle
                .rotate_resource_key(client_id, resource_backend_id, known_client_ids)
        });
        self.wrap("rotate_resource_key", answer)
    }

    // ----------------------------------------------------------------------------------------
    // BaseClient: pass-through, except the two methods the reference implements concretely

    pub fn client_list_resources(&self) -> Result<Vec<ClientResource>, PluginError> {
        self.wrap(
            "client_list_resources",
            self.timed("client_list_resources", || {
                self.handle.client_list_resources()
            }),
        )
    }

    /// `None` when the account does not exist.
    pub fn client_get_resource(
        &self,
        resource_id: &str,
    ) -> Result<Option<ClientResource>, PluginError> {
        let answer = self.timed("client_get_resource", || {
            self.handle.client_get_resource(resource_id)
        });
        self.wrap("client_get_resource", answer)
    }

    pub fn client_create_resource(
        &self,
        name: &str,
        description: &str,
        organization: &str,
        parent_name: Option<&str>,
    ) -> Result<String, PluginError> {
        let answer = self.timed("client_create_resource", || {
            self.handle
                .client_create_resource(name, description, organization, parent_name)
        });
        self.wrap("client_create_resource", answer)
    }

    pub fn client_delete_resource(&self, name: &str) -> Result<(), PluginError> {
        let answer = self.timed("client_delete_resource", || {
            self.handle.client_delete_resource(name)
        });
        self.wrap("client_delete_resource", answer)
    }

    /// Limits in backend units.
    pub fn client_set_resource_limits(
        &self,
        resource_id: &str,
        limits: &BackendLimits,
    ) -> Result<Option<String>, PluginError> {
        let answer = self.timed("client_set_resource_limits", || {
            self.handle.client_set_resource_limits(resource_id, limits)
        });
        self.wrap("client_set_resource_limits", answer)
    }

    pub fn client_get_resource_limits(
        &self,
        resource_id: &str,
    ) -> Result<BackendLimits, PluginError> {
        let answer = self.timed("client_get_resource_limits", || {
            self.handle.client_get_resource_limits(resource_id)
        });
        self.wrap("client_get_resource_limits", answer)
    }

    pub fn client_get_resource_user_limits(
        &self,
        resource_id: &str,
    ) -> Result<UserLimits, PluginError> {
        let answer = self.timed("client_get_resource_user_limits", || {
            self.handle.client_get_resource_user_limits(resource_id)
        });
        self.wrap("client_get_resource_user_limits", answer)
    }

    pub fn client_set_resource_user_limits(
        &self,
        resource_id: &str,
        username: &str,
        limits: &BackendLimits,
    ) -> Result<(), PluginError> {
        let answer = self.timed("client_set_resource_user_limits", || {
            self.handle
                .client_set_resource_user_limits(resource_id, username, limits)
        });
        self.wrap("client_set_resource_user_limits", answer)
    }

    pub fn client_get_association(
        &self,
        user: &str,
        resource_id: &str,
    ) -> Result<Option<Association>, PluginError> {
        let answer = self.timed("client_get_association", || {
            self.handle.client_get_association(user, resource_id)
        });
        self.wrap("client_get_association", answer)
    }

    pub fn client_create_association(
        &self,
        username: &str,
        resource_id: &str,
        default_account: Option<&str>,
    ) -> Result<(), PluginError> {
        let answer = self.timed("client_create_association", || {
            self.handle
                .client_create_association(username, resource_id, default_account)
        });
        self.wrap("client_create_association", answer)
    }

    pub fn client_delete_association(
        &self,
        username: &str,
        resource_id: &str,
    ) -> Result<(), PluginError> {
        let answer = self.timed("client_delete_association", || {
            self.handle.client_delete_association(username, resource_id)
        });
        self.wrap("client_delete_association", answer)
    }

    /// Raw, plugin-specific usage records.
    pub fn client_get_usage_report(
        &self,
        resource_ids: &[String],
        timezone: Option<&str>,
    ) -> Result<Vec<Value>, PluginError> {
        let answer = self.timed("client_get_usage_report", || {
            self.handle.client_get_usage_report(resource_ids, timezone)
        });
        self.wrap("client_get_usage_report", answer)
    }

    pub fn client_list_resource_users(
        &self,
        resource_id: &str,
    ) -> Result<Vec<String>, PluginError> {
        let answer = self.timed("client_list_resource_users", || {
            self.handle.client_list_resource_users(resource_id)
        });
        self.wrap("client_list_resource_users", answer)
    }

    /// Runs a command and answers its output. Default (the reference's concrete
    /// `execute_command`): no shell, stdout and stderr merged into one stream, a non-zero exit
    /// is a backend error carrying the merged output, a missing program is
    /// `Command not found: <program>`. Unlike the reference, the command is killed (with
    /// everything it started) after [`Self::command_timeout`].
    pub fn client_execute_command(
        &self,
        command: &[String],
        silent: bool,
    ) -> Result<String, PluginError> {
        let answer = self.timed("client_execute_command", || {
            self.handle.client_execute_command(command, silent)
        });
        self.or_default("client_execute_command", answer, || {
            commands::execute(&self.entry, command, self.command_timeout, silent)
                .map_err(|e| self.error("client_execute_command", e))
        })
    }

    /// Default: `/sbin/mkhomedir_helper <username> <umask>` through `client_execute_command`.
    pub fn client_create_linux_user_homedir(
        &self,
        username: &str,
        umask: &str,
    ) -> Result<(), PluginError> {
        let answer = self.timed("client_create_linux_user_homedir", || {
            self.handle
                .client_create_linux_user_homedir(username, umask)
        });
        self.or_default("client_create_linux_user_homedir", answer, || {
            let command = commands::mkhomedir_command(username, umask);
            self.client_execute_command(&command, false).map(drop)
        })
    }
}
