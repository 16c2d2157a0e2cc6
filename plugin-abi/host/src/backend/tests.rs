//! The default algorithms against a real `BackendHandle` built in-process by the test harness
//! ([`crate::testing`], no dlopen): `Memory` is an in-memory BaseClient that records every call. Its
//! BaseBackend-level methods answer NOT_IMPLEMENTED unless a test lists them in the
//! `implements` setting, which is exactly what an SDK plugin leaving them out answers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waldur_plugin_abi as abi;
use waldur_plugin_abi::wire::{
    Association, BackendComponents, BackendLimits, BackendResourceInfo, CapabilitySet,
    ClientResource, CollectedLimits, JsonMap, Limits, Order, PendingOrderDecision, UsageReport,
    UserContext, UserOptions, WaldurResource, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Capabilities, ErrorKind};

use super::{Backend, DEFAULT_COMMAND_TIMEOUT};
use crate::PluginError;

// ---------------------------------------------------------------------------------------------
// The test plugin

#[derive(Default)]
struct State {
    accounts: BTreeMap<String, ClientResource>,
    /// (user, account)
    associations: BTreeSet<(String, String)>,
    limits: BTreeMap<String, BackendLimits>,
    user_limits: BTreeMap<String, BTreeMap<String, BackendLimits>>,
    calls: Vec<String>,
}

struct Memory {
    state: Mutex<State>,
    /// BaseBackend-level methods (and the two concrete client ones) this plugin "writes out".
    implements: BTreeSet<String>,
    /// Methods that fail on every call, with the error kind.
    fail: BTreeMap<String, ErrorKind>,
    /// Users whose association, homedir or pre-delete actions fail with a backend error.
    failing_users: BTreeSet<String>,
    usage: UsageReport,
    ping: bool,
    components: BackendComponents,
}

fn setting<T: serde::de::DeserializeOwned + Default>(settings: &JsonMap, key: &str) -> T {
    settings
        .get(key)
        .map(|v| serde_json::from_value(v.clone()).expect("test setting"))
        .unwrap_or_default()
}

fn kind(name: &str) -> ErrorKind {
    match name {
        "backend" => ErrorKind::BACKEND,
        "not_implemented" => ErrorKind::NOT_IMPLEMENTED,
        "panicked" => ErrorKind::PANICKED,
        _ => ErrorKind::INTERNAL,
    }
}

fn show_limits(limits: &BackendLimits) -> String {
    let parts: Vec<String> = limits.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(" ")
}

impl Memory {
    /// Records the call; fails if the test said so.
    fn call(&self, method: &str, args: &[&dyn Display]) -> abi::Result<MutexGuard<'_, State>> {
        let mut state = self.state.lock().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        state.calls.push(format!("{method}({})", args.join(", ")));
        match self.fail.get(method) {
            Some(kind) => Err(abi::Error::new(
                *kind,
                format!("{method} failed on purpose"),
            )),
            None => Ok(state),
        }
    }

    /// Records the call without touching the state.
    fn note(&self, method: &str, args: &[&dyn Display]) -> abi::Result<()> {
        self.call(method, args).map(drop)
    }

    /// A method the plugin only has when the test lists it in `implements`.
    fn optional(&self, method: &str, args: &[&dyn Display]) -> abi::Result<()> {
        self.note(method, args)?;
        if self.implements.contains(method) {
            Ok(())
        } else {
            Err(abi::Error::not_implemented(method))
        }
    }

    fn user_check(&self, username: &str) -> abi::Result<()> {
        if self.failing_users.contains(username) {
            return Err(abi::Error::backend(format!("backend refuses {username}")));
        }
        Ok(())
    }
}

#[waldur_plugin_abi::backend_impl]
impl abi::Client for Memory {
    fn client_list_resources(&self) -> abi::Result<Vec<ClientResource>> {
        Ok(self
            .call("client_list_resources", &[])?
            .accounts
            .values()
            .cloned()
            .collect())
    }

    fn client_get_resource(&self, resource_id: String) -> abi::Result<Option<ClientResource>> {
        let state = self.call("client_get_resource", &[&resource_id])?;
        Ok(state.accounts.get(&resource_id).cloned())
    }

    fn client_create_resource(
        &self,
        name: String,
        description: String,
        organization: String,
        parent_name: Option<String>,
    ) -> abi::Result<String> {
        let parent = parent_name.unwrap_or_else(|| "-".to_string());
        let mut state = self.call(
            "client_create_resource",
            &[&name, &description, &organization, &parent],
        )?;
        let account = ClientResource {
            name: name.clone(),
            description,
            organization,
            backend_id: name.clone(),
        };
        state.accounts.insert(name.clone(), account);
        Ok(name)
    }

    fn client_delete_resource(&self, name: String) -> abi::Result<()> {
        self.call("client_delete_resource", &[&name])?
            .accounts
            .remove(&name);
        Ok(())
    }

    fn client_set_resource_limits(
        &self,
        resource_id: String,
        limits: BackendLimits,
    ) -> abi::Result<Option<String>> {
        let shown = show_limits(&limits);
        let mut state = self.call("client_set_resource_limits", &[&resource_id, &shown])?;
        state.limits.insert(resource_id, limits);
        // The reference's default set_resource_limits drops this answer.
        Ok(Some("client-answer".to_string()))
    }

    fn client_get_resource_limits(&self, resource_id: String) -> abi::Result<BackendLimits> {
        let state = self.call("client_get_resource_limits", &[&resource_id])?;
        Ok(state.limits.get(&resource_id).cloned().unwrap_or_default())
    }

    fn client_get_resource_user_limits(
        &self,
        resource_id: String,
    ) -> abi::Result<BTreeMap<String, BackendLimits>> {
        let state = self.call("client_get_resource_user_limits", &[&resource_id])?;
        Ok(state
            .user_limits
            .get(&resource_id)
            .cloned()
            .unwrap_or_default())
    }

    fn client_set_resource_user_limits(
        &self,
        resource_id: String,
        username: String,
        limits: BackendLimits,
    ) -> abi::Result<()> {
        let shown = show_limits(&limits);
        let mut state = self.call(
            "client_set_resource_user_limits",
            &[&resource_id, &username, &shown],
        )?;
        state
            .user_limits
            .entry(resource_id)
            .or_default()
            .insert(username, limits);
        Ok(())
    }

    fn client_get_association(
        &self,
        user: String,
        resource_id: String,
    ) -> abi::Result<Option<Association>> {
        let state = self.call("client_get_association", &[&user, &resource_id])?;
        let key = (user.clone(), resource_id.clone());
        let found = state.associations.contains(&key);
        Ok(found.then_some(Association {
            account: resource_id,
            user,
            value: 0,
        }))
    }

    fn client_create_association(
        &self,
        username: String,
        resource_id: String,
        default_account: Option<String>,
    ) -> abi::Result<()> {
        let account = default_account.unwrap_or_else(|| "-".to_string());
        let mut state = self.call(
            "client_create_association",
            &[&username, &resource_id, &account],
        )?;
        self.user_check(&username)?;
        state.associations.insert((username, resource_id));
        Ok(())
    }

    fn client_delete_association(&self, username: String, resource_id: String) -> abi::Result<()> {
        let mut state = self.call("client_delete_association", &[&username, &resource_id])?;
        self.user_check(&username)?;
        state.associations.remove(&(username, resource_id));
        Ok(())
    }

    fn client_list_resource_users(&self, resource_id: String) -> abi::Result<Vec<String>> {
        let state = self.call("client_list_resource_users", &[&resource_id])?;
        Ok(state
            .associations
            .iter()
            .filter(|(_, account)| *account == resource_id)
            .map(|(user, _)| user.clone())
            .collect())
    }

    fn client_execute_command(&self, command: Vec<String>, _silent: bool) -> abi::Result<String> {
        let shown = command.join(" ");
        self.optional("client_execute_command", &[&shown])?;
        Ok("plugin ran it".to_string())
    }

    fn client_create_linux_user_homedir(&self, username: String, umask: String) -> abi::Result<()> {
        self.optional("client_create_linux_user_homedir", &[&username, &umask])?;
        self.user_check(&username)
    }
}

#[waldur_plugin_abi::backend_impl]
impl abi::Backend for Memory {
    const CAPABILITIES: Capabilities = Capabilities {
        supports_user_homedirs: true,
        ..Capabilities::DEFAULT
    };

    fn new(context: abi::BackendContext) -> abi::Result<Self> {
        let settings = &context.settings;
        let mut state = State::default();
        for (name, organization) in setting::<Vec<(String, String)>>(settings, "accounts") {
            let account = ClientResource {
                name: name.clone(),
                organization,
                ..ClientResource::default()
            };
            state.accounts.insert(name, account);
        }
        state.associations = setting(settings, "associations");
        let fail: BTreeMap<String, String> = setting(settings, "fail");
        Ok(Self {
            state: Mutex::new(state),
            implements: setting(settings, "implements"),
            fail: fail.iter().map(|(m, k)| (m.clone(), kind(k))).collect(),
            failing_users: setting(settings, "failing_users"),
            usage: setting(settings, "usage"),
            ping: settings
                .get("ping")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            components: context.components,
        })
    }

    fn capabilities(&self) -> abi::Result<CapabilitySet> {
        if self.implements.contains("broken_capabilities") {
            return Err(abi::Error::internal("no capabilities today"));
        }
        Ok((&Self::CAPABILITIES).into())
    }

    fn ping(&self, _raise_exception: bool) -> abi::Result<bool> {
        self.note("ping", &[])?;
        Ok(self.ping)
    }

    fn get_usage_report(&self, resource_backend_ids: Vec<String>) -> abi::Result<UsageReport> {
        self.note("get_usage_report", &[&resource_backend_ids.join(" ")])?;
        Ok(self
            .usage
            .iter()
            .filter(|(id, _)| resource_backend_ids.contains(id))
            .map(|(id, usage)| (id.clone(), usage.clone()))
            .collect())
    }

    /// Backend units are Waldur units times the component's unit factor.
    fn collect_resource_limits(
        &self,
        waldur_resource: WaldurResource,
    ) -> abi::Result<CollectedLimits> {
        self.note("collect_resource_limits", &[&waldur_resource.slug])?;
        let mut collected = CollectedLimits::default();
        for (component, value) in &waldur_resource.limits {
            if let Some(config) = self.components.get(component) {
                let backend = (value * config.unit_factor()) as i64;
                collected.backend_limits.insert(component.clone(), backend);
                collected.waldur_limits.insert(component.clone(), *value);
            }
        }
        Ok(collected)
    }

    fn pre_create_resource(
        &self,
        waldur_resource: WaldurResource,
        _user_context: Option<UserContext>,
    ) -> abi::Result<()> {
        self.optional("pre_create_resource", &[&waldur_resource.slug])?;
        Ok(())
    }

    fn post_create_resource(
        &self,
        mut resource_info: BackendResourceInfo,
        _waldur_resource: WaldurResource,
        _user_context: Option<UserContext>,
    ) -> abi::Result<BackendResourceInfo> {
        self.optional("post_create_resource", &[&resource_info.backend_id])?;
        resource_info
            .backend_metadata
            .insert("created_by".to_string(), json!("plugin"));
        Ok(resource_info)
    }

    fn get_resource_backend_id(&self, slug: String) -> abi::Result<String> {
        self.optional("get_resource_backend_id", &[&slug])?;
        Ok(format!("custom-{slug}"))
    }

    fn add_user(
        &self,
        waldur_resource: WaldurResource,
        username: String,
        _options: UserOptions,
    ) -> abi::Result<bool> {
        self.optional("add_user", &[&waldur_resource.backend_id, &username])?;
        Ok(username != "nobody")
    }

    fn delete_resource(
        &self,
        waldur_resource: WaldurResource,
        _project_slug: Option<String>,
    ) -> abi::Result<Option<String>> {
        self.optional("delete_resource", &[&waldur_resource.backend_id])?;
        Ok(Some("target-order-1".to_string()))
    }

    fn pre_delete_resource(&self, waldur_resource: WaldurResource) -> abi::Result<()> {
        self.optional("pre_delete_resource", &[&waldur_resource.backend_id])?;
        Ok(())
    }

    fn post_delete_resource(&self, waldur_resource: WaldurResource) -> abi::Result<()> {
        self.optional("post_delete_resource", &[&waldur_resource.backend_id])?;
        Ok(())
    }

    fn pre_delete_user_actions(
        &self,
        resource_backend_id: String,
        username: String,
    ) -> abi::Result<()> {
        self.optional(
            "pre_delete_user_actions",
            &[&resource_backend_id, &username],
        )?;
        if username == "busy" {
            return Err(abi::Error::backend("cannot cancel the jobs of busy"));
        }
        Ok(())
    }

    fn invoke(&self, method: &str, _args: Value) -> abi::Result<Value> {
        match method {
            "take_calls" => Ok(json!(std::mem::take(&mut self.state.lock().unwrap().calls))),
            _ => Err(abi::Error::not_implemented(method)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The SDK installs its `log` forwarder and panic hook on the first constructor call, and
/// keeps that call's host handle forever as the fallback log target. In-process, the SDK's
/// copy of `log` and of the panic hook are the test binary's own: give it a binding that
/// lives forever, and put the harness's panic hook back so failing tests keep their messages.
fn components() -> Value {
    json!({
        "cpu": {"measured_unit": "k-Hours", "accounting_type": "limit", "label": "CPU", "unit_factor": 60},
        "mem": {"measured_unit": "GB", "accounting_type": "limit", "label": "RAM"},
    })
}

fn build_with(settings: Value, components: Value) -> Backend {
    crate::testing::Harness::new("memory")
        .offering("test-offering")
        .settings(settings)
        .components(components)
        .backend::<Memory>()
        .expect("the test plugin builds")
}

fn build(settings: Value) -> Backend {
    build_with(settings, components())
}

/// The calls the plugin saw since the last look.
fn take_calls(backend: &Backend) -> Vec<String> {
    let calls = backend.handle().invoke("take_calls", &json!({})).unwrap();
    serde_json::from_value(calls).unwrap()
}

fn resource(slug: &str, backend_id: &str) -> WaldurResource {
    WaldurResource {
        uuid: format!("uuid-{slug}"),
        name: format!("Resource {slug}"),
        slug: slug.to_string(),
        backend_id: backend_id.to_string(),
        project_slug: "Proj-1".to_string(),
        limits: Limits::from([("cpu".to_string(), 10.0), ("mem".to_string(), 2.0)]),
        ..WaldurResource::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn assert_error(error: &PluginError, method: &str, kind: ErrorKind) {
    assert_eq!(error.method, method, "{error}");
    assert_eq!(error.kind(), kind, "{error}");
    assert_eq!(error.entry, "memory");
}

// ---------------------------------------------------------------------------------------------
// Construction

#[test]
fn capabilities_are_read_once_at_construction() {
    let backend = build(json!({}));
    assert!(backend.capabilities().supports_user_homedirs);
    assert_eq!(backend.entry(), "memory");
    assert_eq!(backend.components().len(), 2);
    assert_eq!(backend.command_timeout(), DEFAULT_COMMAND_TIMEOUT);
    backend.close().unwrap();

    let broken = build(json!({"implements": ["broken_capabilities"]}));
    assert_eq!(broken.capabilities(), &CapabilitySet::default());
}

#[test]
fn backend_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Backend>();
}

// ---------------------------------------------------------------------------------------------
// Creation

#[test]
fn create_resource_runs_the_reference_algorithm() {
    let settings = json!({"allocation_prefix": "HPC_", "project_prefix": "Proj_"});
    let backend = build(settings);
    let res = resource("Res-A", "");

    let info = backend.create_resource(&res, None).unwrap();

    // Only the allocation id is lower-cased; the project id keeps its case.
    assert_eq!(info.backend_id, "hpc_res-a");
    assert_eq!(info.limits, res.limits);
    assert!(
        info.backend_metadata.is_empty(),
        "post_create_resource NOT_IMPLEMENTED = unchanged"
    );
    assert_eq!(
        take_calls(&backend),
        strings(&[
            "get_resource_backend_id(Res-A)",
            "pre_create_resource(Res-A)",
            "client_get_resource(hpc_res-a)",
            "client_create_resource(hpc_res-a, Resource Res-A, Proj_Proj-1, Proj_Proj-1)",
            "collect_resource_limits(Res-A)",
            "client_set_resource_limits(hpc_res-a, cpu=600 mem=2)",
            "post_create_resource(hpc_res-a)",
        ])
    );
}

#[test]
fn create_resource_with_id_refuses_an_existing_account() {
    let backend = build(json!({"accounts": [["taken", "p"]]}));
    let error = backend
        .create_resource_with_id(&resource("r", ""), "taken", None)
        .unwrap_err();
    assert_error(
        &error,
        "create_resource_with_id",
        ErrorKind::DUPLICATE_RESOURCE,
    );
    assert_eq!(
        error.message(),
        "The resource with ID taken already exists in the cluster"
    );
    let calls = take_calls(&backend);
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("client_create_resource")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("collect_resource_limits")),
        "{calls:?}"
    );
}

#[test]
fn create_errors_name_the_client_method_that_failed() {
    let backend = build(json!({"fail": {"client_create_resource": "backend"}}));
    let error = backend
        .create_resource_with_id(&resource("r", ""), "acc", None)
        .unwrap_err();
    assert_error(&error, "client_create_resource", ErrorKind::BACKEND);
    assert_eq!(error.message(), "client_create_resource failed on purpose");
}

#[test]
fn a_missing_method_a_default_needs_is_an_internal_error_naming_it() {
    let backend = build(json!({"fail": {"collect_resource_limits": "not_implemented"}}));
    let error = backend
        .create_resource_with_id(&resource("r", ""), "acc", None)
        .unwrap_err();
    assert_error(&error, "collect_resource_limits", ErrorKind::INTERNAL);
    assert!(error.message().contains("setup_resource_limits"), "{error}");

    let backend = build(json!({"fail": {"client_get_resource": "not_implemented"}}));
    let error = backend
        .delete_resource(&resource("r", "acc"), None)
        .unwrap_err();
    assert_error(&error, "client_get_resource", ErrorKind::INTERNAL);
    assert!(error.message().contains("delete_resource"), "{error}");
}

#[test]
fn create_without_backend_limits_sets_none_and_answers_empty_limits() {
    let backend = build(json!({}));
    let mut res = resource("r", "");
    res.limits = Limits::from([("gpu".to_string(), 4.0)]); // not a configured component
    let info = backend.create_resource_with_id(&res, "acc", None).unwrap();
    assert!(info.limits.is_empty());
    let calls = take_calls(&backend);
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("client_set_resource_limits")),
        "{calls:?}"
    );
}

#[test]
fn plugin_hooks_run_inside_the_default_create() {
    let backend = build(json!({"implements": ["post_create_resource", "pre_create_resource"]}));
    let info = backend
        .create_resource_with_id(&resource("r", ""), "acc", Some(&UserContext::default()))
        .unwrap();
    assert_eq!(
        info.backend_metadata.get("created_by"),
        Some(&json!("plugin"))
    );
    assert_eq!(info.backend_id, "acc");
}

#[test]
fn plugin_implementations_are_not_overridden_by_defaults() {
    let backend = build(json!({
        "implements": ["get_resource_backend_id", "delete_resource", "add_user"],
        "accounts": [["acc", "p"]],
    }));
    // The plugin's id reaches the default create.
    let info = backend
        .create_resource(&resource("Slug", ""), None)
        .unwrap();
    assert_eq!(info.backend_id, "custom-Slug");

    // The plugin's delete answers an async order id and no client call happens.
    take_calls(&backend);
    let order = backend
        .delete_resource(&resource("r", "acc"), Some("p"))
        .unwrap();
    assert_eq!(order.as_deref(), Some("target-order-1"));
    assert_eq!(take_calls(&backend), strings(&["delete_resource(acc)"]));

    // The default add_users_to_resource goes through the plugin's add_user.
    let added = backend
        .add_users_to_resource(
            &resource("r", "acc"),
            &strings(&["alice", "nobody"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert_eq!(added, strings(&["alice"]));
    assert_eq!(
        take_calls(&backend),
        strings(&["add_user(acc, alice)", "add_user(acc, nobody)"])
    );
}

// ---------------------------------------------------------------------------------------------
// Deletion

#[test]
fn delete_removes_the_account_and_the_emptied_project_account() {
    let backend = build(json!({
        "project_prefix": "hpc_",
        "accounts": [["hpc_p", "hpc_c"], ["res1", "hpc_p"]],
        "implements": ["pre_delete_resource", "post_delete_resource"],
    }));
    let answer = backend
        .delete_resource(&resource("r", "res1"), Some("p"))
        .unwrap();
    assert_eq!(answer, None);
    assert_eq!(
        take_calls(&backend),
        strings(&[
            // The plugin is asked first; its NOT_IMPLEMENTED selects the default.
            "delete_resource(res1)",
            "client_get_resource(res1)",
            "pre_delete_resource(res1)",
            "client_get_resource(res1)",
            "client_delete_resource(res1)",
            "client_list_resources()",
            "client_get_resource(hpc_p)",
            "client_delete_resource(hpc_p)",
            "post_delete_resource(res1)",
        ])
    );
}

#[test]
fn delete_keeps_a_project_account_still_in_use() {
    let backend = build(json!({
        "project_prefix": "hpc_",
        "accounts": [["hpc_p", "hpc_c"], ["res1", "hpc_p"], ["res2", "hpc_p"]],
    }));
    backend
        .delete_resource(&resource("r", "res1"), Some("p"))
        .unwrap();
    let accounts: Vec<String> = backend
        .client_list_resources()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(accounts, strings(&["hpc_p", "res2"]));

    // Without a project slug, the project account is not considered at all.
    take_calls(&backend);
    backend
        .delete_resource(&resource("r", "res2"), None)
        .unwrap();
    let calls = take_calls(&backend);
    assert!(
        !calls.iter().any(|c| c.starts_with("client_list_resources")),
        "{calls:?}"
    );
}

#[test]
fn soft_delete_zeroes_every_component_limit() {
    let backend = build(json!({"soft_delete": true, "accounts": [["res1", "p"]]}));
    backend
        .delete_resource(&resource("r", "res1"), Some("p"))
        .unwrap();
    let calls = take_calls(&backend);
    assert!(
        calls.contains(&"client_set_resource_limits(res1, cpu=0 mem=0)".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("client_delete_resource")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("client_list_resources")),
        "{calls:?}"
    );
    assert!(backend.client_get_resource("res1").unwrap().is_some());
}

#[test]
fn delete_of_a_blank_or_unknown_resource_does_nothing() {
    let backend = build(json!({"implements": ["pre_delete_resource"]}));
    assert_eq!(
        backend
            .delete_resource(&resource("r", "  "), Some("p"))
            .unwrap(),
        None
    );
    // Only the plugin's own delete_resource was asked (and declined).
    assert_eq!(take_calls(&backend), strings(&["delete_resource(  )"]));

    assert_eq!(
        backend
            .delete_resource(&resource("r", "ghost"), Some("p"))
            .unwrap(),
        None
    );
    assert_eq!(
        take_calls(&backend),
        strings(&["delete_resource(ghost)", "client_get_resource(ghost)"])
    );

    backend.delete_resource_safely("ghost").unwrap();
    assert_eq!(
        take_calls(&backend),
        strings(&["client_get_resource(ghost)"])
    );
}

// ---------------------------------------------------------------------------------------------
// Users

#[test]
fn add_users_uses_root_as_default_account_and_skips_failures() {
    let backend = build(json!({
        "associations": [["alice", "acc"]],
        "failing_users": ["bob"],
    }));
    let res = resource("r", "acc");
    let added = backend
        .add_users_to_resource(
            &res,
            &strings(&["alice", "bob", "carol", "carol", ""]),
            &UserOptions::default(),
        )
        .unwrap();
    // alice already had an association (success without a call); bob's backend error is
    // logged and skipped; a blank username is refused; carol is handled once.
    assert_eq!(added, strings(&["alice", "carol"]));
    let creates: Vec<String> = take_calls(&backend)
        .into_iter()
        .filter(|c| c.starts_with("client_create_association"))
        .collect();
    assert_eq!(
        creates,
        strings(&[
            "client_create_association(bob, acc, root)",
            "client_create_association(carol, acc, root)",
        ])
    );
    assert!(backend
        .add_users_to_resource(&res, &[], &UserOptions::default())
        .unwrap()
        .is_empty());
}

#[test]
fn add_user_uses_the_default_account_setting() {
    let backend = build(json!({"default_account": "common"}));
    assert!(backend
        .add_user(&resource("r", "acc"), "dave", &UserOptions::default())
        .unwrap());
    assert!(
        take_calls(&backend).contains(&"client_create_association(dave, acc, common)".to_string())
    );

    // An empty value means root, as `default_account or "root"`.
    let backend = build(json!({"default_account": ""}));
    backend
        .add_user(&resource("r", "acc"), "dave", &UserOptions::default())
        .unwrap();
    assert!(
        take_calls(&backend).contains(&"client_create_association(dave, acc, root)".to_string())
    );
}

#[test]
fn add_user_refuses_a_blank_backend_id_and_other_errors_propagate() {
    let backend = build(json!({}));
    let error = backend
        .add_user(&resource("r", " "), "dave", &UserOptions::default())
        .unwrap_err();
    assert_error(&error, "add_user", ErrorKind::BACKEND);
    // A backend error per user is swallowed by the batch method...
    let added = backend
        .add_users_to_resource(
            &resource("r", ""),
            &strings(&["dave"]),
            &UserOptions::default(),
        )
        .unwrap();
    assert!(added.is_empty());

    // ...but not other kinds of errors.
    let backend = build(json!({"fail": {"client_get_association": "internal"}}));
    let error = backend
        .add_users_to_resource(
            &resource("r", "acc"),
            &strings(&["dave"]),
            &UserOptions::default(),
        )
        .unwrap_err();
    assert_error(&error, "client_get_association", ErrorKind::INTERNAL);
}

#[test]
fn remove_users_runs_the_pre_delete_hook_and_skips_failures() {
    let backend = build(json!({
        "associations": [["alice", "acc"], ["bob", "acc"], ["busy", "acc"]],
        "failing_users": ["bob"],
        "implements": ["pre_delete_user_actions"],
    }));
    let removed = backend
        .remove_users_from_resource(
            &resource("r", "acc"),
            &strings(&["alice", "bob", "busy", "zed"]),
            &UserOptions::default(),
        )
        .unwrap();
    // zed had no association: nothing to do counts as removed, as in the reference.
    assert_eq!(removed, strings(&["alice", "zed"]));
    assert_eq!(
        take_calls(&backend),
        strings(&[
            "client_get_association(alice, acc)",
            "pre_delete_user_actions(acc, alice)",
            "client_delete_association(alice, acc)",
            "client_get_association(bob, acc)",
            "pre_delete_user_actions(acc, bob)",
            "client_delete_association(bob, acc)",
            "client_get_association(busy, acc)",
            "pre_delete_user_actions(acc, busy)",
            "client_get_association(zed, acc)",
        ])
    );
    let error = backend
        .remove_user(&resource("r", ""), "alice", &UserOptions::default())
        .unwrap_err();
    assert_error(&error, "remove_user", ErrorKind::BACKEND);
}

#[test]
fn remove_user_treats_a_missing_pre_delete_hook_as_a_no_op() {
    let backend = build(json!({"associations": [["alice", "acc"]]}));
    assert!(backend
        .remove_user(&resource("r", "acc"), "alice", &UserOptions::default())
        .unwrap());
    assert!(backend
        .client_get_association("alice", "acc")
        .unwrap()
        .is_none());
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn set_resource_limits_scales_by_unit_factor_and_truncates() {
    let backend = build(json!({}));
    let limits = Limits::from([
        ("cpu".to_string(), 10.99), // 659.4 -> 659
        ("mem".to_string(), 2.7),   // no unit_factor configured: factor 1 -> 2
        ("gpu".to_string(), 3.9),   // unknown component: factor 1 -> 3
        ("neg".to_string(), -1.5),  // int() truncates toward zero -> -1
    ]);
    // The client's own answer is dropped, as in the reference.
    assert_eq!(backend.set_resource_limits("acc", &limits).unwrap(), None);
    assert_eq!(
        backend.client_get_resource_limits("acc").unwrap(),
        BackendLimits::from([
            ("cpu".to_string(), 659),
            ("gpu".to_string(), 3),
            ("mem".to_string(), 2),
            ("neg".to_string(), -1),
        ])
    );
}

#[test]
fn limit_getters_and_user_limits_delegate_to_the_client() {
    let backend = build(json!({}));
    backend
        .set_resource_limits("acc", &Limits::from([("cpu".to_string(), 1.0)]))
        .unwrap();
    // No conversion back: backend units.
    assert_eq!(
        backend.get_resource_limits("acc").unwrap(),
        BackendLimits::from([("cpu".to_string(), 60)])
    );
    let user = BackendLimits::from([("cpu".to_string(), 5)]);
    backend
        .set_resource_user_limits("acc", "alice", &user)
        .unwrap();
    assert_eq!(
        backend.get_resource_user_limits("acc").unwrap(),
        BTreeMap::from([("alice".to_string(), user)])
    );
}

// ---------------------------------------------------------------------------------------------
// Reading resources back

#[test]
fn list_resources_maps_client_accounts() {
    let backend = build(json!({"accounts": [["res1", "proj"]]}));
    let listed = backend.list_resources().unwrap();
    assert_eq!(
        listed,
        vec![BackendResourceInfo {
            backend_id: "res1".to_string(),
            parent_id: "proj".to_string(),
            ..BackendResourceInfo::default()
        }]
    );
}

#[test]
fn pull_answers_users_and_usage_with_a_zero_usage_fallback() {
    let backend = build(json!({
        "accounts": [["res1", "p"], ["res2", "p"]],
        "associations": [["alice", "res1"]],
        "usage": {"res1": {"TOTAL_ACCOUNT_USAGE": {"cpu": 1.5}, "alice": {"cpu": 1.5}}},
    }));
    let pulled = backend.pull_backend_resource("res1").unwrap().unwrap();
    assert_eq!(pulled.users, strings(&["alice"]));
    assert_eq!(pulled.usage[TOTAL_ACCOUNT_USAGE]["cpu"], 1.5);
    assert_eq!(pulled.usage["alice"]["cpu"], 1.5);
    assert_eq!(
        pulled.backend_id, "",
        "the reference does not fill backend_id"
    );

    let empty = backend.pull_backend_resource("res2").unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&empty.usage).unwrap(),
        json!({"TOTAL_ACCOUNT_USAGE": {"cpu": 0.0, "mem": 0.0}})
    );
    assert_eq!(backend.pull_backend_resource("ghost").unwrap(), None);
}

#[test]
fn pull_resource_swallows_errors_and_pull_resources_keys_by_backend_id() {
    let backend = build(json!({"accounts": [["res1", "p"]]}));
    assert_eq!(backend.pull_resource(&resource("r", "")).unwrap(), None);
    let pulled = backend
        .pull_resources(&[
            resource("a", "res1"),
            resource("b", "ghost"),
            resource("c", ""),
        ])
        .unwrap();
    assert_eq!(pulled.keys().collect::<Vec<_>>(), vec!["res1"]);

    let failing = build(json!({
        "accounts": [["res1", "p"]],
        "fail": {"client_list_resource_users": "backend"},
    }));
    assert_eq!(failing.pull_resource(&resource("a", "res1")).unwrap(), None);
    assert!(failing
        .pull_resources(&[resource("a", "res1")])
        .unwrap()
        .is_empty());
    // The building block itself reports the failing client call.
    let error = failing.pull_backend_resource("res1").unwrap_err();
    assert_error(&error, "client_list_resource_users", ErrorKind::BACKEND);
}

#[test]
fn recreate_missing_resource_creates_only_missing_accounts() {
    let backend = build(json!({"accounts": [["present", "p"]], "project_prefix": "x_"}));
    assert!(!backend
        .recreate_missing_resource(&resource("r", ""))
        .unwrap());
    assert!(!backend
        .recreate_missing_resource(&resource("r", "present"))
        .unwrap());
    take_calls(&backend);

    assert!(backend
        .recreate_missing_resource(&resource("r", "gone"))
        .unwrap());
    let calls = take_calls(&backend);
    assert!(
        calls.contains(&"client_create_resource(gone, Resource r, x_Proj-1, x_Proj-1)".to_string()),
        "{calls:?}"
    );
    assert!(backend.client_get_resource("gone").unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// Constant defaults and methods without a default

#[test]
fn run_preflight_turns_a_failed_ping_into_not_ready() {
    assert!(build(json!({})).run_preflight().is_ok());
    let error = build(json!({"ping": false})).run_preflight().unwrap_err();
    assert_error(&error, "run_preflight", ErrorKind::BACKEND_NOT_READY);
    let error = build(json!({"fail": {"ping": "backend"}}))
        .run_preflight()
        .unwrap_err();
    assert_error(&error, "ping", ErrorKind::BACKEND);
}

#[test]
fn constant_defaults_match_the_reference() {
    let backend = build(json!({}));
    let res = resource("r", "acc");
    let ids = strings(&["acc"]);
    assert!(backend
        .get_usage_report_for_period(&ids, 2024, 1, Some(&res))
        .unwrap()
        .is_empty());
    assert!(backend.check_pending_order("o").unwrap());
    assert_eq!(
        backend.evaluate_pending_order(&Order::default()).unwrap(),
        PendingOrderDecision::Accept
    );
    let periodic = backend
        .apply_periodic_settings("acc", &json!({}), None)
        .unwrap();
    assert_eq!(
        serde_json::to_value(&periodic).unwrap(),
        json!({
            "success": false,
            "error": "Backend memory does not support periodic settings",
            "commands_executed": [],
        })
    );
    assert!(backend
        .setup_target_event_subscriptions(&json!({}), "ua", "")
        .unwrap()
        .is_empty());
    assert_eq!(backend.get_membership_sync_report(&res).unwrap(), None);
    assert!(!backend.has_prepaid_components().unwrap());
    assert!(!backend.sync_offering_user_usernames("uuid").unwrap());
    assert_eq!(backend.get_project_backend_id("P").unwrap(), "P");
    assert_eq!(backend.get_customer_backend_id("C").unwrap(), "C");

    backend.set_runtime_context(&Default::default()).unwrap();
    backend.pre_create_resource(&res, None).unwrap();
    backend.pre_delete_resource(&res).unwrap();
    backend.post_delete_resource(&res).unwrap();
    backend.pre_delete_user_actions("acc", "u").unwrap();
    backend.process_existing_users(&ids).unwrap();
    backend
        .reconcile_existing_user_roles(&res, &ids, &BTreeMap::new(), &BTreeMap::new())
        .unwrap();
    backend
        .update_user_attributes("u", &JsonMap::new())
        .unwrap();
    backend.sync_resource_project(&res, None).unwrap();
    backend
        .sync_project_end_date(&res, Some(&json!({})))
        .unwrap();
    backend.sync_resource_end_date(&res).unwrap();
    backend.sync_resource_effective_id(&res).unwrap();
    backend.prune_unknown_resource_keys("acc", &ids).unwrap();
    let info = BackendResourceInfo {
        backend_id: "acc".to_string(),
        ..Default::default()
    };
    assert_eq!(
        backend
            .post_create_resource(info.clone(), &res, None)
            .unwrap(),
        info
    );
}

#[test]
fn methods_without_a_default_answer_not_implemented() {
    let backend = build(json!({}));
    let res = resource("r", "acc");
    let error = backend.sync_resource_limits(&res).unwrap_err();
    assert_error(&error, "sync_resource_limits", ErrorKind::NOT_IMPLEMENTED);
    let error = backend.generate_resource_keys("acc", 2).unwrap_err();
    assert_error(&error, "generate_resource_keys", ErrorKind::NOT_IMPLEMENTED);
    let error = backend.rotate_resource_key("c", "acc", None).unwrap_err();
    assert_error(&error, "rotate_resource_key", ErrorKind::NOT_IMPLEMENTED);
    let error = backend.diagnostics().unwrap_err();
    assert_error(&error, "diagnostics", ErrorKind::NOT_IMPLEMENTED);
    let error = backend.client_get_usage_report(&[], None).unwrap_err();
    assert_error(
        &error,
        "client_get_usage_report",
        ErrorKind::NOT_IMPLEMENTED,
    );
}

// ---------------------------------------------------------------------------------------------
// Home directories

#[test]
fn create_user_homedirs_skips_existing_dirs_and_failing_users() {
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir(base.path().join("alice")).unwrap();
    let backend = build(json!({
        "homedir_base_path": base.path(),
        "implements": ["client_create_linux_user_homedir"],
        "failing_users": ["carol"],
    }));
    backend
        .create_user_homedirs(&strings(&["alice", "bob", "carol", "dave"]), "0022")
        .unwrap();
    assert_eq!(
        take_calls(&backend),
        strings(&[
            "client_create_linux_user_homedir(bob, 0022)",
            "client_create_linux_user_homedir(carol, 0022)",
            "client_create_linux_user_homedir(dave, 0022)",
        ])
    );
}

#[test]
fn default_homedir_creation_runs_mkhomedir_helper_through_execute_command() {
    // The plugin's execute_command stands in for the real one: nothing runs here.
    let backend = build(json!({"implements": ["client_execute_command"]}));
    backend
        .client_create_linux_user_homedir("alice", "0077")
        .unwrap();
    assert_eq!(
        take_calls(&backend),
        strings(&[
            "client_create_linux_user_homedir(alice, 0077)",
            "client_execute_command(/sbin/mkhomedir_helper alice 0077)",
        ])
    );
    assert_eq!(
        backend
            .client_execute_command(&strings(&["true"]), false)
            .unwrap(),
        "plugin ran it"
    );
}

// ---------------------------------------------------------------------------------------------
// Commands (the host's client_execute_command)

#[test]
fn execute_command_merges_stdout_and_stderr_in_order() {
    let backend = build(json!({}));
    let argv = strings(&["sh", "-c", "echo out; echo err >&2; echo out2"]);
    assert_eq!(
        backend.client_execute_command(&argv, false).unwrap(),
        "out\nerr\nout2\n"
    );
}

#[test]
fn execute_command_uses_no_shell() {
    let backend = build(json!({}));
    let argv = strings(&["echo", "$HOME", "a;b", "|", "*"]);
    assert_eq!(
        backend.client_execute_command(&argv, false).unwrap(),
        "$HOME a;b | *\n"
    );
}

#[test]
fn execute_command_non_zero_exit_is_a_backend_error_with_the_output() {
    let backend = build(json!({}));
    let argv = strings(&["sh", "-c", "echo first; echo second >&2; exit 3"]);
    let error = backend.client_execute_command(&argv, true).unwrap_err();
    assert_error(&error, "client_execute_command", ErrorKind::BACKEND);
    assert_eq!(error.message(), "first\nsecond");
    assert_eq!(error.error.details, Some(json!({"exit_code": 3})));
}

#[test]
fn execute_command_reports_a_missing_program() {
    let backend = build(json!({}));
    let error = backend
        .client_execute_command(&strings(&["waldur-agent-test-no-such-program", "x"]), false)
        .unwrap_err();
    assert_error(&error, "client_execute_command", ErrorKind::BACKEND);
    assert_eq!(
        error.message(),
        "Command not found: waldur-agent-test-no-such-program"
    );

    let error = backend.client_execute_command(&[], false).unwrap_err();
    assert_error(&error, "client_execute_command", ErrorKind::INVALID_INPUT);
}

#[test]
fn execute_command_kills_a_command_that_times_out() {
    let backend = build(json!({"command_timeout_seconds": 0.3}));
    assert_eq!(backend.command_timeout(), Duration::from_millis(300));
    for argv in [
        strings(&["sleep", "10"]),
        // A shell waiting for a child that holds the output pipe: the whole group must die.
        strings(&["sh", "-c", "sleep 10; echo never"]),
    ] {
        let started = Instant::now();
        let error = backend.client_execute_command(&argv, true).unwrap_err();
        let elapsed = started.elapsed();
        assert_error(&error, "client_execute_command", ErrorKind::BACKEND);
        assert!(error.message().contains("timed out"), "{error}");
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

#[test]
fn command_timeout_setting_is_validated() {
    assert_eq!(
        build(json!({"command_timeout_seconds": 12})).command_timeout(),
        Duration::from_secs(12)
    );
    for bad in [json!(0), json!(-3), json!("soon")] {
        let backend = build(json!({ "command_timeout_seconds": bad }));
        assert_eq!(backend.command_timeout(), DEFAULT_COMMAND_TIMEOUT);
    }
    let mut backend = build(json!({}));
    backend.set_command_timeout(Duration::from_secs(1));
    assert_eq!(backend.command_timeout(), Duration::from_secs(1));
}

// ---------------------------------------------------------------------------------------------
// Dry runs

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, Value)>>);

impl crate::WriteRecorder for Recorded {
    fn record(&self, method: &'static str, arguments: Value) {
        self.0.lock().unwrap().push((method.to_string(), arguments));
    }
}

#[test]
fn withheld_writes_never_reach_the_plugin_and_answer_as_if_done() {
    let mut backend = build(json!({"accounts": [["alloc_a", "p"]]}));
    let recorded = std::sync::Arc::new(Recorded::default());
    backend.withhold_writes(recorded.clone());
    let res = resource("a", "alloc_a");

    let info = backend
        .create_resource_with_id(&res, "alloc_b", None)
        .unwrap();
    assert_eq!(info.backend_id, "alloc_b");
    let users = strings(&["alice", "bob"]);
    let options = UserOptions::default();
    assert_eq!(
        backend
            .add_users_to_resource(&res, &users, &options)
            .unwrap(),
        users
    );
    assert_eq!(
        backend
            .remove_users_from_resource(&res, &users, &options)
            .unwrap(),
        users
    );
    assert_eq!(backend.delete_resource(&res, Some("proj")).unwrap(), None);
    let limits = Limits::from([("cpu".to_string(), 3.0)]);
    assert_eq!(
        backend.set_resource_limits("alloc_a", &limits).unwrap(),
        None
    );
    // A read still crosses.
    assert!(backend.client_get_resource("alloc_a").unwrap().is_some());

    // The defaults ran: their reads crossed into the plugin, their writes did not.
    let crossed = take_calls(&backend);
    assert!(
        crossed.contains(&"client_get_resource(alloc_b)".to_string()),
        "{crossed:?}"
    );
    for call in &crossed {
        let method = call.split('(').next().unwrap();
        assert!(
            crate::withheld::READING_METHODS.contains(&method),
            "{method} crossed"
        );
    }
    let recorded = recorded.0.lock().unwrap();
    let methods: Vec<&str> = recorded.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        methods.iter().all(|m| crate::withheld::is_write(m)),
        "{methods:?}"
    );
    let created = recorded
        .iter()
        .find(|(m, _)| m == "client_create_resource")
        .expect("the account's creation is planned");
    assert_eq!(created.1["name"], "alloc_b");
    let planned_limits: Vec<&Value> = recorded
        .iter()
        .filter(|(m, _)| m == "client_set_resource_limits")
        .map(|(_, args)| args)
        .collect();
    assert!(
        planned_limits
            .iter()
            .any(|a| a["resource_id"] == "alloc_a" && a["limits"]["cpu"] == 180),
        "3 x unit factor 60: {planned_limits:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Observers

/// One call an observer was shown: method, arguments, answer or error message.
type Shown = (String, Value, Result<Value, String>);

/// Records what an observer is shown.
#[derive(Default)]
struct Watcher {
    wants_calls: bool,
    latencies: Mutex<Vec<&'static str>>,
    calls: Mutex<Vec<Shown>>,
}

impl crate::CallObserver for Watcher {
    fn observe(&self, method: &'static str, _seconds: f64) {
        self.latencies.lock().unwrap().push(method);
    }

    fn wants_calls(&self) -> bool {
        self.wants_calls
    }

    fn observe_call(&self, call: &crate::CrossedCall<'_>) {
        assert!(call.seconds >= 0.0);
        let outcome = call
            .outcome
            .map(|answer| serde_json::from_str(answer).unwrap())
            .map_err(|e| e.to_string());
        let arguments = serde_json::from_str(call.arguments).unwrap();
        self.calls
            .lock()
            .unwrap()
            .push((call.method.to_string(), arguments, outcome));
    }
}

#[test]
fn an_observer_that_wants_calls_sees_each_crossing_with_its_arguments_and_answer() {
    let watcher = std::sync::Arc::new(Watcher {
        wants_calls: true,
        ..Default::default()
    });
    let mut backend = build(json!({
        "accounts": [["acc1", "org"]],
        "fail": {"client_delete_resource": "backend"},
    }));
    backend.record_calls_shared(watcher.clone());
    assert!(backend.client_get_resource("acc1").unwrap().is_some());
    assert!(backend.client_delete_resource("acc1").is_err());
    backend
        .handle()
        .invoke("take_calls", &json!({"unused": 1}))
        .unwrap();
    let calls = watcher.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0].0, "client_get_resource");
    assert_eq!(calls[0].1, json!({"resource_id": "acc1"}));
    assert_eq!(calls[0].2.as_ref().unwrap()["name"], "acc1");
    assert_eq!(calls[1].0, "client_delete_resource");
    assert_eq!(
        calls[1].2,
        Err("backend error: client_delete_resource failed on purpose".to_string())
    );
    assert_eq!(calls[2].0, "take_calls");
    assert_eq!(calls[2].1, json!({"unused": 1}));
    // The latency path still sees the typed calls.
    assert_eq!(
        *watcher.latencies.lock().unwrap(),
        ["client_get_resource", "client_delete_resource"]
    );
}

#[test]
fn an_observer_of_latency_only_is_not_shown_the_calls() {
    let watcher = std::sync::Arc::new(Watcher::default());
    let mut backend = build(json!({"accounts": [["acc1", "org"]]}));
    backend.record_calls_shared(watcher.clone());
    backend.client_get_resource("acc1").unwrap();
    assert!(watcher.calls.lock().unwrap().is_empty());
    assert_eq!(*watcher.latencies.lock().unwrap(), ["client_get_resource"]);
}
