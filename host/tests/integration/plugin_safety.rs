//! Real plugin libraries loaded into this process through the real loader: panics stay
//! contained, released plugins keep working, instances are thread-safe, logs reach the agent.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use waldur_agent::plugins::{Catalog, HostContext, Prober, Registry, SearchPath, TrustPolicy};
use waldur_plugin_abi::wire::{
    BackendComponent, BackendComponents, JsonMap, UserOptions, WaldurResource,
};
use waldur_plugin_abi::ErrorKind;
use waldur_test_support::{external_plugin, workspace_plugin, PluginDir};

fn registry(dir: &Path) -> Registry {
    Registry::new(Catalog::scan(
        &SearchPath::only([dir.to_path_buf()]),
        TrustPolicy::Strict,
        None,
    ))
}

fn settings(value: serde_json::Value) -> JsonMap {
    value.as_object().cloned().unwrap()
}

fn components() -> BackendComponents {
    let cpu: BackendComponent = serde_json::from_value(json!({
        "measured_unit": "Hours", "accounting_type": "limit", "label": "CPU", "unit_factor": 60
    }))
    .unwrap();
    BackendComponents::from([("cpu".to_string(), cpu)])
}

fn context() -> HostContext {
    HostContext::new("test", "test offering")
}

/// Records what the agent's log receives (the plugins' forwarded records included).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture_logs() -> LogBuffer {
    static BUFFER: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let writer = buffer.clone();
            // The test binary's one global subscriber (see `stomp_rabbitmq::log_to_stderr`).
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init()
                .expect("no other module installs a global subscriber without RUST_LOG");
            buffer
        })
        .clone()
}

#[test]
fn panics_in_a_method_the_constructor_and_drop_become_errors() {
    let logs = capture_logs();
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    let registry = registry(dir.path());

    // In a method: PANICKED, and the same instance goes on serving.
    let backend = registry
        .backend(
            "panicky",
            &settings(json!({"panic_in": "ping"})),
            &components(),
            context(),
        )
        .unwrap();
    let error = backend.ping(false).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PANICKED);
    assert!(error.to_string().contains("panicky: ping panic"), "{error}");
    let after = backend.diagnostics().unwrap_err();
    assert_eq!(after.kind(), ErrorKind::BACKEND, "{after}");
    backend.close().unwrap();

    // In the constructor: no instance, a PANICKED error.
    let constructed = registry.backend(
        "panicky",
        &settings(json!({"panic_in": "new"})),
        &components(),
        context(),
    );
    let Err(error) = constructed else {
        panic!("the constructor panicked, yet an instance came back");
    };
    assert!(
        error
            .to_string()
            .contains("panicked: panicky: constructor panic"),
        "{error}"
    );

    // In drop: reported by close().
    let backend = registry
        .backend(
            "panicky",
            &settings(json!({"panic_in": "drop"})),
            &components(),
            context(),
        )
        .unwrap();
    let error = backend.close().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PANICKED);
    assert!(error.to_string().contains("panicky: drop panic"), "{error}");

    // The plugin's panic messages and log records reach the agent's log, attributed.
    let text = logs.text();
    assert!(
        text.contains("plugin panicked at") && text.contains("panicky: ping panic"),
        "{text}"
    );
    assert!(
        text.contains("panicky diagnostics: panic_in=ping"),
        "{text}"
    );
    assert!(
        text.contains("panicky tracing event"),
        "tracing output is forwarded too: {text}"
    );
    assert!(text.contains("offering=test offering"), "{text}");

    // And the agent keeps working with other plugins afterwards.
    let healthy = registry
        .backend("panicky", &settings(json!({})), &components(), context())
        .unwrap();
    assert!(healthy.ping(false).unwrap());
}

#[test]
fn methods_the_manifest_leaves_out_are_never_called() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    let registry = registry(dir.path());
    let backend = registry
        .backend("panicky", &settings(json!({})), &components(), context())
        .unwrap();
    let before = backend.handle().crossings();
    // Written out by the plugin (it would panic) but not in its manifest's list.
    let error = backend.downscale_resource("acc-1").unwrap_err();
    assert!(error.is_not_implemented(), "{error}");
    // A method with an agent default goes straight to the default.
    backend.pre_delete_resource(&resource("gone")).unwrap();
    assert_eq!(
        backend.handle().crossings(),
        before,
        "no call crossed into the plugin"
    );
    // Listed methods still cross, once each.
    assert!(backend.ping(false).unwrap());
    assert_eq!(backend.handle().crossings(), before + 1);
}

fn resource(slug: &str) -> WaldurResource {
    WaldurResource {
        uuid: format!("{slug}-uuid"),
        name: slug.to_string(),
        slug: slug.to_string(),
        project_slug: "proj".to_string(),
        customer_slug: "cust".to_string(),
        limits: [("cpu".to_string(), 10.0)].into(),
        ..Default::default()
    }
}

/// The guard for every 1.x release: a plugin built against the released 1.0.0 sources keeps
/// loading and working. If this fails, a frozen layout changed: that belongs in ABI 2.0.
#[test]
fn frozen_abi_1_0_0_plugin_loads_and_works() {
    let dir = PluginDir::new();
    dir.add(
        &external_plugin(
            "tests/fixtures/external/frozen-abi-1.0.0/plugin",
            "waldur-plugin-frozen-v1",
        ),
        "frozen.so",
    );
    let registry = registry(dir.path());
    let backend = registry
        .backend("frozen-v1", &JsonMap::new(), &components(), context())
        .expect("a plugin built against ABI 1.0.0 loads");

    assert!(backend.ping(false).unwrap());
    // The agent's generic algorithms drive the old plugin's client methods.
    let info = backend
        .create_resource_with_id(&resource("alloc"), "alloc", None)
        .unwrap();
    assert_eq!(info.backend_id, "alloc");
    // This fixture passes Waldur limits through unconverted (its collect_resource_limits).
    assert_eq!(
        backend.client_get_resource_limits("alloc").unwrap()["cpu"],
        10
    );
    assert!(backend
        .add_user(
            &resource("alloc").with_backend_id("alloc"),
            "alice",
            &UserOptions::default()
        )
        .unwrap());
    assert_eq!(
        backend.client_list_resource_users("alloc").unwrap(),
        ["alice"]
    );
    let report = backend.get_usage_report(&["alloc".to_string()]).unwrap();
    assert_eq!(report["alloc"]["TOTAL_ACCOUNT_USAGE"]["cpu"], 0.0);
    backend.close().unwrap();
}

trait WithBackendId {
    fn with_backend_id(self, id: &str) -> Self;
}

impl WithBackendId for WaldurResource {
    fn with_backend_id(mut self, id: &str) -> Self {
        self.backend_id = id.to_string();
        self
    }
}

#[test]
fn eight_threads_call_one_plugin_instance_concurrently() {
    const THREADS: usize = 8;
    const CALLS: usize = 50;
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    let state = tempfile::tempdir().unwrap();
    let registry = registry(dir.path());
    let backend = Arc::new(
        registry
            .backend(
                "demo",
                &settings(json!({"state_dir": state.path()})),
                &components(),
                context(),
            )
            .unwrap(),
    );
    backend
        .create_resource_with_id(&resource("shared"), "shared", None)
        .unwrap();
    let shared = resource("shared").with_backend_id("shared");

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let backend = Arc::clone(&backend);
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 0..CALLS {
                    assert!(backend.ping(false).unwrap());
                    let user = format!("user-{t}-{i}");
                    assert!(backend
                        .add_user(&shared, &user, &UserOptions::default())
                        .unwrap());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
    let users = backend.client_list_resource_users("shared").unwrap();
    assert_eq!(
        users.len(),
        THREADS * CALLS,
        "every concurrent add_user landed exactly once"
    );
    Arc::into_inner(backend).unwrap().close().unwrap();
}

#[test]
fn the_template_plugin_built_outside_the_workspace_loads() {
    let dir = PluginDir::new();
    dir.add(
        &external_plugin("examples/plugin-template", "waldur-plugin-template"),
        "template.so",
    );
    let registry = registry(dir.path());
    let backend = registry
        .backend("template", &JsonMap::new(), &components(), context())
        .unwrap();
    assert!(backend.ping(false).unwrap());
    backend
        .create_resource_with_id(&resource("tpl"), "tpl", None)
        .unwrap();
    assert!(backend.client_get_resource("tpl").unwrap().is_some());
    backend.close().unwrap();
}

#[test]
fn username_backend_entries_work_through_the_loader() {
    use waldur_plugin_abi::wire::{OfferingInfo, OfferingUser};
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    let registry = registry(dir.path());
    let usernames = registry
        .username_backend(
            "panicky-usernames",
            &JsonMap::new(),
            &OfferingInfo::default(),
            context(),
        )
        .unwrap();
    let user = |name: &str| OfferingUser {
        user_username: name.to_string(),
        ..Default::default()
    };
    assert_eq!(
        usernames.generate_username(&user("alice")).unwrap(),
        "u-alice"
    );
    // get_username is not implemented: the agent's get_or_create default generates one.
    assert_eq!(
        usernames
            .handle()
            .get_username(&user("alice"))
            .unwrap_err()
            .kind,
        ErrorKind::NOT_IMPLEMENTED
    );
    assert_eq!(
        usernames.get_or_create_username(&user("bob")).unwrap(),
        "u-bob"
    );
    usernames.sync_user_profiles(&[user("alice")]).unwrap();
    usernames
        .deactivate_users(&["u-alice".to_string()])
        .unwrap();
    let panic = usernames.generate_username(&user("panic")).unwrap_err();
    assert_eq!(panic.kind(), ErrorKind::PANICKED);
    assert_eq!(
        usernames.get_or_create_username(&user("carol")).unwrap(),
        "u-carol"
    );
    usernames.close().unwrap();

    // A backend entry is not a username entry, and the reverse.
    assert!(registry
        .username_backend(
            "panicky",
            &JsonMap::new(),
            &OfferingInfo::default(),
            context()
        )
        .is_err());
}

/// Records the Waldur requests plugins make through the agent.
struct FakeWaldur(Mutex<Vec<String>>);

impl waldur_agent::plugins::WaldurGateway for FakeWaldur {
    fn request(
        &self,
        method: &str,
        path: &str,
        query: &serde_json::Value,
        body: Option<&serde_json::Value>,
    ) -> std::result::Result<serde_json::Value, waldur_plugin_abi::Error> {
        self.0
            .lock()
            .unwrap()
            .push(format!("{method} {path} {query} {body:?}"));
        if path.starts_with("missing") {
            return Err(waldur_plugin_abi::Error::backend("404 Not Found"));
        }
        Ok(json!({"uuid": "abc", "path": path}))
    }
}

#[test]
fn plugins_reach_waldur_through_the_agent_callback() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    let registry = registry(dir.path());
    let waldur = Arc::new(FakeWaldur(Mutex::new(Vec::new())));
    let backend = registry
        .backend(
            "panicky",
            &JsonMap::new(),
            &components(),
            context().with_waldur(waldur.clone()),
        )
        .unwrap();
    let answer = backend
        .handle()
        .invoke(
            "waldur_get",
            &json!({"path": "marketplace-provider-offerings/abc/"}),
        )
        .unwrap();
    assert_eq!(answer["uuid"], "abc");
    let error = backend
        .handle()
        .invoke("waldur_get", &json!({"path": "missing/"}))
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::BACKEND);
    assert_eq!(
        *waldur.0.lock().unwrap(),
        [
            "GET marketplace-provider-offerings/abc/ {\"page_size\":1} None",
            "GET missing/ {\"page_size\":1} None"
        ]
    );

    // Without a Waldur connection (e.g. `plugins check`) the callback answers an error.
    let offline = registry
        .backend("panicky", &JsonMap::new(), &components(), context())
        .unwrap();
    let error = offline
        .handle()
        .invoke("waldur_get", &json!({"path": "x/"}))
        .unwrap_err();
    assert!(error.message.contains("no Waldur connection"), "{error}");
}

#[test]
fn settings_are_validated_by_the_plugin_declaration() {
    use waldur_plugin_abi::ffi::EntryKind;
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-panicky"), "panicky.so");
    let registry = registry(dir.path());
    let plugin = registry.plugin(EntryKind::BACKEND, "panicky").unwrap();

    let warnings = plugin
        .validate(
            "panicky",
            &settings(json!({"panic_in": "", "colour": "blue"})),
            &components(),
        )
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("backend_settings.colour is not a setting this plugin knows"));

    let error = plugin
        .validate("panicky", &settings(json!({"panic_in": 5})), &components())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::INVALID_SETTINGS);
    assert!(
        error
            .to_string()
            .contains("backend_settings.panic_in must be a string, got 5"),
        "{error}"
    );
    let mut bad_factor = components();
    bad_factor.get_mut("cpu").unwrap().unit_factor = Some(-60.0);
    let error = plugin
        .validate("panicky", &JsonMap::new(), &bad_factor)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("backend_components.cpu.unit_factor must be a positive number"),
        "{error}"
    );
    // The constructor applies the same validation.
    let Err(error) = registry.backend(
        "panicky",
        &settings(json!({"panic_in": 5})),
        &components(),
        context(),
    ) else {
        panic!("invalid settings constructed a backend");
    };
    assert!(error.to_string().contains("invalid settings"), "{error}");
}

/// The prober child is told which files to load over a pipe: any name a directory can hold
/// must get there intact (a newline, bytes that are not UTF-8, quotes).
#[test]
fn the_prober_carries_any_file_name() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = PluginDir::new();
    let demo = workspace_plugin("waldur-plugin-demo");
    let names: [&[u8]; 3] = [
        b"new\nline.so",
        b"caf\xe9-latin1.so",
        b"tab\tand \"quotes\".so",
    ];
    for name in names {
        let dest = dir.path().join(std::ffi::OsStr::from_bytes(name));
        std::fs::copy(&demo, &dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let prober = Prober::new(env!("CARGO_BIN_EXE_waldur-agent").into());
    let catalog = Catalog::scan(
        &SearchPath::only([dir.path().to_path_buf()]),
        TrustPolicy::Strict,
        Some(&prober),
    );
    assert_eq!(catalog.records.len(), names.len(), "{:#?}", catalog.records);
    for record in &catalog.records {
        assert_eq!(record.status, Ok(()), "{}", record.path.display());
        assert_eq!(record.name(), Some("waldur-plugin-demo"));
    }
}
