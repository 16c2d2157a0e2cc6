//! A site for tests of the agent binary: the Waldur simulator, the demo plugin in a private
//! plugin directory, a backend state directory, a config and a runtime directory shared by
//! every agent started from it. `WALDUR_AGENT_BIN` picks another agent binary (to measure
//! an older build the same way).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use waldur_sim::{Scenario, Simulator};
use waldur_test_support::{workspace_plugin, PluginDir};

pub const TOKEN: &str = "once-token";
pub const OFFERING: &str = "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01";
pub const SET_BACKEND_ID: &str = "/api/marketplace-provider-resources/{uuid}/set_backend_id/";
pub const SET_LIMITS: &str = "/api/marketplace-provider-resources/{uuid}/set_limits/";
pub const SET_DONE: &str = "/api/marketplace-orders/{uuid}/set_state_done/";
pub const RETRIEVE: &str = "/api/marketplace-provider-resources/{uuid}/";
pub const SET_USAGE: &str = "/api/marketplace-component-usages/set_usage/";

pub fn resource_uuid(i: usize) -> String {
    format!("88888888888888888888888888{i:06}")
}

pub fn order_uuid(i: usize) -> String {
    format!("77777777777777777777777777{i:06}")
}

/// `n` resources `alloc-0000`... in project `proj`, each with an executing Create order.
pub fn creates(n: usize) -> Scenario {
    let mut yaml = format!(
        r#"
tokens: ["{TOKEN}"]
customers:
  - {{uuid: 55555555555555555555555555555555, name: Customer, slug: cust, service_provider_uuid: 66666666666666666666666666666666}}
projects:
  - {{uuid: 99999999999999999999999999999999, name: Project, slug: proj, customer: cust}}
offerings:
  - uuid: {OFFERING}
    name: Demo Offering
    customer: cust
    components:
      - {{type: cpu, name: CPU, measured_unit: Hours, billing_type: limit, unit_factor: 1}}
resources:
"#
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{uuid: {}, name: alloc-{i:04}, slug: alloc-{i:04}, project: proj, offering: Demo Offering, state: Creating, limits: {{cpu: {}}}}}\n",
            resource_uuid(i),
            i + 1
        ));
    }
    yaml.push_str("orders:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - {{uuid: {}, type: Create, state: executing, resource: {}, limits: {{cpu: {}}}}}\n",
            order_uuid(i),
            resource_uuid(i),
            i + 1
        ));
    }
    Scenario::from_yaml_str(&yaml).expect("valid scenario")
}

/// The simulator, the demo plugin, a backend state directory, a config and a runtime
/// directory shared by every agent started from it.
pub struct Site {
    pub sim: Simulator,
    pub plugins: PluginDir,
    pub work: tempfile::TempDir,
    pub config: PathBuf,
}

impl Site {
    /// `settings`: extra `backend_settings` lines (8 spaces); `global`: top-level lines.
    pub fn new(scenario: Scenario, settings: &str, global: &str) -> Site {
        Site::with_components(scenario, settings, global, "")
    }

    /// [`Site::new`] with extra `backend_components` lines (6 spaces).
    pub fn with_components(
        scenario: Scenario,
        settings: &str,
        global: &str,
        components: &str,
    ) -> Site {
        Site::with_offering(scenario, settings, global, components, "")
    }

    /// [`Site::with_components`] with extra offering-level lines (4 spaces).
    pub fn with_offering(
        scenario: Scenario,
        settings: &str,
        global: &str,
        components: &str,
        offering: &str,
    ) -> Site {
        let sim = Simulator::start(scenario).expect("start the simulator");
        let plugins = PluginDir::new();
        plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
        plugins.add(
            &workspace_plugin("waldur-plugin-basic-username"),
            "usernames.so",
        );
        let work = tempfile::tempdir().unwrap();
        let state = work.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let config = work.path().join("agent.yaml");
        std::fs::write(
            &config,
            format!(
                r#"{global}
offerings:
  - name: Demo Offering
    waldur_api_url: {url}
    waldur_api_token: {TOKEN}
    waldur_offering_uuid: {OFFERING}
    backend_type: demo
    order_processing_backend: demo
    reporting_backend: demo
    membership_sync_backend: demo
{offering}
    backend_settings:
        state_dir: {state}
{settings}
    backend_components:
      cpu: {{measured_unit: Hours, accounting_type: limit, label: CPU, unit_factor: 60}}
{components}
"#,
                url = sim.url(),
                state = state.display(),
            ),
        )
        .unwrap();
        Site {
            sim,
            plugins,
            work,
            config,
        }
    }

    pub fn agent(&self, args: &[&str]) -> Command {
        let binary = std::env::var_os("WALDUR_AGENT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_waldur-agent")));
        let mut command = Command::new(binary);
        command
            .args(args)
            .args(["-c", self.config.to_str().unwrap()])
            .args(["--plugin-dir", self.plugins.path().to_str().unwrap()])
            .env("WALDUR_AGENT_PLUGIN_PATH", "")
            .env("WALDUR_AGENT_RUNTIME_DIR", self.runtime_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.work.path().join("run")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.agent(args).output().unwrap()
    }

    /// A running agent whose output goes to a file (a pipe nobody reads would fill up and
    /// stall it).
    pub fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with_env(args, &[])
    }

    /// [`Site::spawn`] with extra environment variables.
    pub fn spawn_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.work.path().join(format!("agent-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .agent(args)
            .envs(env.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Running { child, log }
    }

    pub fn state(&self) -> Value {
        let path = self.work.path().join("state/state.json");
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Allocation accounts on the backend (children of the project account).
    pub fn allocations(&self) -> Vec<String> {
        let state = self.state();
        let mut names: Vec<String> = state["accounts"]
            .as_object()
            .map(|accounts| {
                accounts
                    .iter()
                    .filter(|(_, a)| a["parent"] == "proj")
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// `(done, erred, other)` over the orders.
    pub fn orders(&self) -> (usize, usize, usize) {
        self.sim.with_store(|store| {
            let mut counts = (0, 0, 0);
            for order in store.orders.values() {
                match order.state.as_str() {
                    "done" => counts.0 += 1,
                    "erred" => counts.1 += 1,
                    _ => counts.2 += 1,
                }
            }
            counts
        })
    }

    /// Successful (2xx) requests to a route.
    pub fn succeeded(&self, template: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.template == template && (200..300).contains(&r.status))
            .count()
    }

    /// Every resource is recorded in Waldur under an account of its own that exists on the
    /// backend with the resource's limits, and no account is left over.
    pub fn assert_exactly_once(&self, n: usize, context: &str) {
        let accounts = self.allocations();
        let state = self.state();
        let mut recorded = Vec::new();
        for i in 0..n {
            let resource = self.sim.resource(&resource_uuid(i)).unwrap();
            assert!(
                !resource.backend_id.is_empty(),
                "{context}: resource {i} has no backend id"
            );
            let account = &state["accounts"][&resource.backend_id];
            assert_eq!(
                account["limits"]["cpu"],
                (i as i64 + 1) * 60,
                "{context}: account {} of resource {i}: {account}",
                resource.backend_id
            );
            recorded.push(resource.backend_id);
        }
        recorded.sort();
        assert_eq!(recorded, accounts, "{context}: recorded ids = accounts");
    }
}

pub struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&mut self, signal: i32) {
        // SAFETY: kill(2) on a child we own; it cannot affect this process's memory.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// What it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the exit: `(exit code, everything it printed)`.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        (
            status.code(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

/// A test that fails before it stops its agent must not leave the agent running (it would
/// go on talking to the broker and the simulator's port long after the test).
impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn once(site: &Site) -> Output {
    site.run(&["run", "-m", "order_process", "--once"])
}
