//! Unit tests of the whole backend through a fake runner (no SLURM needed): the reference's
//! golden traces, argv of every client method, parsers on recorded real output, the fixed
//! reference bugs, batching, timeouts.

mod account_diagnosis;
mod argv;
mod batching;
mod behaviour;
mod bugs;
mod fixtures;
mod golden;
mod hostile;
mod user_batching;
mod write_lock;

use std::sync::Arc;

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{BackendComponents, JsonMap, RuntimeContext, WaldurResource};
use waldur_plugin_abi::Backend;

use crate::runner::{RecordingRunner, Runner};
use crate::Slurm;
use waldur_plugin_host::testing::Harness;

/// The plugin as the agent runs it: the agent's real default algorithms around it (the
/// plugin test harness of `waldur-plugin-host`).
pub(crate) type Agent = waldur_plugin_host::Backend;

/// `sacctmgr` with the flags of every non-limit command, from the default bin path.
pub(crate) const S: &str = "/usr/bin/sacctmgr --parsable2 --noheader --immediate";

/// A recorded output of real SLURM 22.05.
pub(crate) fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/slurm-22.05/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn map(value: Value) -> JsonMap {
    value.as_object().cloned().expect("an object")
}

pub(crate) fn components(value: Value) -> BackendComponents {
    serde_json::from_value(value).expect("components")
}

/// The settings of the reference's golden traces.
pub(crate) fn golden_settings() -> Value {
    json!({
        "default_account": "root",
        "customer_prefix": "hpc_",
        "project_prefix": "hpc_",
        "allocation_prefix": "hpc_",
        "qos_default": "normal",
        "qos_paused": "paused",
        "qos_downscaled": "limited",
        "enable_user_homedir_account_creation": false,
    })
}

/// The components of the golden traces.
pub(crate) fn golden_components() -> BackendComponents {
    components(json!({
        "cpu": {"accounting_type": "usage", "limit": 10, "unit_factor": 60000, "measured_unit": "k-Hours"},
        "mem": {"accounting_type": "usage", "limit": 10, "unit_factor": 61440, "measured_unit": "gb-Hours"},
        "gres/gpu": {"accounting_type": "limit", "unit_factor": 60, "measured_unit": "GPU-hours"},
    }))
}

/// The golden traces' resource: slug alloc-1 of project proj-1 of customer cust-1.
pub(crate) fn golden_resource() -> WaldurResource {
    WaldurResource {
        uuid: "res-uuid".into(),
        name: "My Alloc".into(),
        slug: "alloc-1".into(),
        customer_slug: "cust-1".into(),
        customer_name: "Customer One".into(),
        project_slug: "proj-1".into(),
        project_name: "Project One".into(),
        limits: [("gres/gpu".to_string(), 5.0)].into(),
        ..Default::default()
    }
}

/// The backend on a recording runner, with the offering's time zone set to UTC.
pub(crate) fn setup(
    settings: Value,
    components: BackendComponents,
) -> (Arc<RecordingRunner>, Slurm) {
    let runner = RecordingRunner::new();
    let slurm = slurm_on(settings, components, runner.clone());
    (runner, slurm)
}

pub(crate) fn slurm_on(
    settings: Value,
    components: BackendComponents,
    runner: Arc<dyn Runner>,
) -> Slurm {
    let slurm = Slurm::with_runner(&map(settings), components, runner).expect("valid settings");
    slurm
        .set_runtime_context(RuntimeContext {
            timezone: "UTC".into(),
            ..Default::default()
        })
        .unwrap();
    slurm
}

/// `slurm` as the agent runs it: a twin instance (same settings, runner and runtime context)
/// inside the agent's defaults, with the backend settings those defaults read.
pub(crate) fn agent(slurm: &Slurm) -> Agent {
    agent_with(slurm, json!({}))
}

/// [`agent`] with more backend settings for the agent's defaults (`soft_delete`, ...).
pub(crate) fn agent_with(slurm: &Slurm, extra: Value) -> Agent {
    let s = slurm.settings();
    let mut settings = json!({
        "customer_prefix": s.customer_prefix,
        "project_prefix": s.project_prefix,
        "allocation_prefix": s.allocation_prefix,
        "default_account": s.default_account,
    });
    settings.as_object_mut().unwrap().extend(map(extra));
    Harness::new("slurm")
        .settings(settings)
        .components(serde_json::to_value(&slurm.components).unwrap())
        .backend_of(slurm.twin())
}

/// Usernames as the agent passes them.
pub(crate) fn names(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| u.to_string()).collect()
}

/// The current month's sacct window, as the plugin computes it (UTC).
pub(crate) fn month_window() -> (String, String) {
    let period = crate::usage::month_containing(jiff::Timestamp::now(), &jiff::tz::TimeZone::UTC);
    (period.start(), period.end())
}

/// `lines` with `{S}` replaced by the sacctmgr prefix.
pub(crate) fn expand(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.replace("{S}", S)).collect()
}

/// Asserts the runner's commands since the last call, line by line.
#[track_caller]
pub(crate) fn assert_calls(runner: &RecordingRunner, expected: &[&str]) {
    let calls = runner.take_calls();
    let expected = expand(expected);
    for (i, (got, want)) in calls.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "command {i} differs\nall commands:\n{}",
            calls.join("\n")
        );
    }
    assert_eq!(
        calls.len(),
        expected.len(),
        "command count differs\nall commands:\n{}",
        calls.join("\n")
    );
}
