//! `waldur-agent config check` with the real binary over real plugin files: what it says of a
//! good file, a file with warnings, an entry no plugin serves, settings a plugin refuses, an
//! invalid file, and a file that shows its tokens to other users.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use waldur_test_support::{workspace_plugin, PluginDir};

const OFFERING: &str = r#"
  - name: Demo
    waldur_api_url: http://127.0.0.1:9/api/
    waldur_api_token: 0123456789abcdef
    waldur_offering_uuid: d629d5e45567425da9cdbdc1af67b32c
    backend_type: demo
    order_processing_backend: demo
    reporting_backend: demo
    membership_sync_backend: demo
    username_management_backend: base
    backend_settings:
      state_dir: STATE
    backend_components:
      cpu: {limit: 10, measured_unit: k-Hours, unit_factor: 1, accounting_type: usage, label: CPU}
"#;

struct Site {
    dir: tempfile::TempDir,
    plugins: PluginDir,
}

impl Site {
    fn new() -> Self {
        let plugins = PluginDir::new();
        plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
        plugins.add(
            &workspace_plugin("waldur-plugin-basic-username"),
            "basic-username.so",
        );
        Self {
            dir: tempfile::tempdir().unwrap(),
            plugins,
        }
    }

    /// Writes the config (mode 0600 unless changed later) with `STATE` replaced.
    fn config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("agent.yaml");
        let state = self.dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(&path, text.replace("STATE", &state.display().to_string())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn check(&self, config: &Path, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
            .args(["config", "check", "-c"])
            .arg(config)
            .arg("--plugin-dir")
            .arg(self.plugins.path())
            .args(extra)
            .env("WALDUR_AGENT_PLUGIN_PATH", "")
            .env("WALDUR_AGENT_RUNTIME_DIR", self.dir.path().join("run"))
            .output()
            .unwrap()
    }

    fn json(&self, config: &Path) -> (Option<i32>, Value) {
        let output = self.check(config, &["--json"]);
        let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        (output.status.code(), json)
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_good_file_names_the_plugin_of_every_entry_and_exits_0() {
    let site = Site::new();
    let config = site.config(&format!("timezone: UTC\nofferings:{OFFERING}"));
    let output = site.check(&config, &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(
        log.contains("order_processing_backend 'demo': waldur-plugin-demo "),
        "{log}"
    );
    assert!(
        log.contains("username_management_backend 'base': waldur-plugin-basic-username "),
        "{log}"
    );
    assert!(
        log.contains(": ok, 1 offering(s), 0 warning(s), 0 error(s)"),
        "{log}"
    );

    let (code, json) = site.json(&config);
    assert_eq!(code, Some(0));
    assert_eq!(json["ok"], true);
    let entries = json["offerings"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "{json}");
    for entry in entries {
        assert!(entry["error"].is_null(), "{entry}");
        assert!(entry["plugin"]
            .as_str()
            .unwrap()
            .starts_with(site.plugins.path().to_str().unwrap()));
    }
    assert_eq!(entries[0]["plugin_name"], "waldur-plugin-demo");
}

#[test]
fn an_unknown_key_is_a_warning_with_a_hint_and_still_exits_0() {
    let site = Site::new();
    let config = site.config(&format!("timezon: UTC\nofferings:{OFFERING}"));
    let output = site.check(&config, &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("warning: "), "{log}");
    assert!(log.contains("did you mean `timezone`?"), "{log}");
    let (_, json) = site.json(&config);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");
}

#[test]
fn an_entry_no_plugin_serves_is_an_error_naming_what_is_installed() {
    let site = Site::new();
    let offering = OFFERING.replace("reporting_backend: demo", "reporting_backend: slurmm");
    let config = site.config(&format!("offerings:{offering}"));
    let output = site.check(&config, &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("reporting_backend 'slurmm'"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("no plugin: error: "), "{line}");
    assert!(line.contains("(available: demo)"), "{line}");
    // The other entries are still checked.
    assert!(
        log.contains("order_processing_backend 'demo': waldur-plugin-demo"),
        "{log}"
    );
    let (code, json) = site.json(&config);
    assert_eq!(code, Some(1));
    assert_eq!(json["ok"], false);
}

#[test]
fn settings_the_plugin_refuses_are_an_error_of_that_entry() {
    let site = Site::new();
    let offering = OFFERING.replace("state_dir: STATE", "unknown_demo_setting: 1");
    let config = site.config(&format!("offerings:{offering}"));
    let output = site.check(&config, &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("backend_type 'demo': waldur-plugin-demo")
            && log.contains("state_dir is required"),
        "{log}"
    );
}

#[test]
fn an_invalid_file_is_one_error_line_and_exits_1() {
    let site = Site::new();
    let config = site.config("offerings:\n  - name: [unclosed\n");
    let output = site.check(&config, &[]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains("agent.yaml"), "{log}");
    let (code, json) = site.json(&config);
    assert_eq!(code, Some(1));
    assert_eq!(json["ok"], false);
    assert!(json["error"].as_str().unwrap().contains("agent.yaml"));

    let missing = site.dir.path().join("missing.yaml");
    let output = site.check(&missing, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("missing.yaml"));
}

#[test]
fn a_file_other_users_can_read_gets_a_warning_about_its_tokens() {
    let site = Site::new();
    let config = site.config(&format!("offerings:{OFFERING}"));
    let log = text(&site.check(&config, &[]));
    assert!(!log.contains("chmod 600"), "0600 is fine:\n{log}");

    for (mode, who) in [(0o640, "its group"), (0o644, "other users")] {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        let output = site.check(&config, &[]);
        let log = text(&output);
        assert_eq!(output.status.code(), Some(0), "{log}");
        let line = log
            .lines()
            .find(|l| l.contains("chmod 600"))
            .unwrap_or_else(|| panic!("mode {mode:o}:\n{log}"));
        assert!(
            line.contains(who) && line.contains(&format!("{mode:04o}")),
            "{line}"
        );
        // The warning names the file, never the token.
        assert!(!log.contains("0123456789abcdef"), "{log}");
    }
}
