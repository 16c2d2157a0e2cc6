//! `waldur-agent test-order` end to end: the real binary, the real demo and basic-username
//! plugins through the real loader, and the simulator the command embeds; real SLURM
//! accounting for `create/slurm-full` (skipped without it, except under `CI=true`).

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use waldur_sim::Scenario;

use crate::common::site::Site;

const TEMPLATES: [&str; 6] = [
    "create/basic",
    "create/slurm-full",
    "create/with-limits",
    "terminate/basic",
    "update/attributes-and-limits",
    "update/limits-only",
];

fn site(settings: &str) -> Site {
    Site::new(Scenario::default(), settings, "")
}

fn test_order(site: &Site, args: &[&str]) -> Output {
    let mut all = vec!["test-order"];
    all.extend_from_slice(args);
    site.run(&all)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn show(output: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output))
}

/// The step lines (numbered) of the text report, each cut to what it did.
fn steps(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.len() > 3 && words[0].parse::<usize>().is_ok()
        })
        .map(|line| {
            line.split_whitespace()
                .skip(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Index of the first step containing each needle, which must come in this order.
fn in_order(steps: &[String], needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let Some(at) = steps[from..].iter().position(|s| s.contains(needle)) else {
            panic!(
                "no step '{needle}' after step {from}:\n{}",
                steps.join("\n")
            );
        };
        from += at + 1;
    }
}

fn account(site: &Site, name: &str) -> Option<Value> {
    site.state()["accounts"].get(name).cloned()
}

#[test]
fn every_built_in_template_runs_through_the_processor_and_the_demo_plugin() {
    let site = site("");
    for template in TEMPLATES {
        let name = format!("to-{}", template.replace('/', "-"));
        let var = format!("resource_name={name}");
        let output = test_order(&site, &["--template", template, "--var", &var]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{template}: {}",
            show(&output)
        );
        let text = stdout(&output);
        assert!(text.contains("\nResult: done\n"), "{template}: {text}");
        let steps = steps(&text);
        // The processor's prologue, as in `run -m order_process`.
        in_order(
            &steps,
            &[
                "waldur POST /api/marketplace-site-agent-identities/",
                "plugin demo.set_runtime_context(",
                "waldur GET /api/marketplace-orders/?offering_uuid=0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01&state=pending-provider&state=executing",
            ],
        );
        match template.split('/').next().unwrap() {
            "create" => {
                in_order(
                    &steps,
                    &[
                        "plugin demo.pre_create_resource(",
                        &format!("plugin demo.client_create_resource(description=\"{name}\""),
                        "/set_backend_id/ -> 200",
                        "/set_state_done/ -> 200",
                        // After a create the team's offering users are added.
                        "plugin demo.add_user(",
                    ],
                );
                let created = account(&site, &name).expect(&text);
                let project = if template == "create/slurm-full" {
                    "hpc-project"
                } else {
                    "test-project"
                };
                assert_eq!(created["parent"], project, "{created}");
                assert!(created["users"].get("test-user").is_some(), "{created}");
            }
            "update" => {
                assert!(
                    text.contains("Setup: Create order ")
                        && text.contains("made the resource: done"),
                    "{text}"
                );
                // Only the update's steps are listed: the create was the setup's.
                assert!(
                    !steps.iter().any(|s| s.contains("client_create_resource")),
                    "{text}"
                );
                in_order(
                    &steps,
                    &[
                        "plugin demo.client_set_resource_limits(limits={\"cpu\":120000",
                        "/set_state_done/ -> 200",
                    ],
                );
                let updated = account(&site, &name).expect(&text);
                assert_eq!(updated["limits"]["cpu"], 120000, "{updated}");
            }
            "terminate" => {
                in_order(
                    &steps,
                    &[
                        &format!("plugin demo.client_delete_resource(name=\"{name}\")"),
                        "/set_state_done/ -> 200",
                    ],
                );
                assert_eq!(account(&site, &name), None, "{text}");
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn json_output_has_every_step_and_the_ending() {
    let site = site("");
    let output = test_order(
        &site,
        &[
            "--template",
            "update/limits-only",
            "--json-output",
            "--var",
            "new_cpu_limit=3",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report: Value =
        serde_json::from_str(&stdout(&output)).unwrap_or_else(|_| panic!("{}", show(&output)));
    assert_eq!(report["success"], true);
    assert_eq!(report["run"]["ending"]["outcome"], "done");
    assert_eq!(report["setup"]["ending"]["outcome"], "done");
    assert_eq!(report["setup"]["order_type"], "Create");
    assert_eq!(report["entry"], "demo");
    assert_eq!(report["order"]["limits"]["cpu"], 3);
    let steps = report["run"]["steps"].as_array().unwrap();
    let call = steps
        .iter()
        .find(|s| s["kind"] == "plugin" && s["method"] == "client_set_resource_limits")
        .expect("the limits call");
    assert_eq!(call["arguments"]["limits"]["cpu"], 180);
    assert_eq!(call["outcome"]["status"], "ok");
    assert!(call["seconds"].as_f64().unwrap() >= 0.0);
    let done = steps
        .iter()
        .position(|s| {
            s["kind"] == "waldur"
                && s["template"] == "/api/marketplace-orders/{uuid}/set_state_done/"
        })
        .expect("set_state_done");
    let limits = steps
        .iter()
        .position(|s| s["method"] == "client_set_resource_limits")
        .unwrap();
    assert!(limits < done);
}

#[test]
fn verbose_lists_the_setup_and_the_bodies() {
    let site = site("");
    let quiet = stdout(&test_order(
        &site,
        &["--template", "terminate/basic", "--var", "resource_name=v0"],
    ));
    let output = test_order(
        &site,
        &[
            "--template",
            "terminate/basic",
            "--verbose",
            "--var",
            "resource_name=v1",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let text = stdout(&output);
    // The setup's create is listed before the terminate's steps.
    in_order(
        &steps(&text),
        &[
            "plugin demo.client_create_resource(description=\"v1\"",
            "plugin demo.client_delete_resource(name=\"v1\")",
        ],
    );
    assert!(
        !steps(&quiet)
            .iter()
            .any(|s| s.contains("client_create_resource")),
        "{quiet}"
    );
    // Bodies of what the processor sent Waldur.
    assert!(text.contains("sent: {\"backend_id\":\"v1\"}"), "{text}");
}

#[test]
fn the_reference_name_runs_it_with_the_reference_flags() {
    let site = site("");
    let link = site.work.path().join("waldur_site_test_order");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_waldur-agent"), &link).unwrap();
    let output = std::process::Command::new(&link)
        .env("WALDUR_AGENT_PLUGIN_PATH", "")
        .env("WALDUR_AGENT_RUNTIME_DIR", site.runtime_dir())
        .args(["--config", site.config.to_str().unwrap()])
        .args(["--plugin-dir", site.plugins.path().to_str().unwrap()])
        .args([
            "--template",
            "create/basic.json",
            "--use-real-backend",
            "--json-output",
        ])
        .args(["--var", "resource_name=by-name"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report: Value =
        serde_json::from_str(&stdout(&output)).unwrap_or_else(|_| panic!("{}", show(&output)));
    assert_eq!(report["success"], true);
    assert!(account(&site, "by-name").is_some());
}

#[test]
fn list_templates_lists_all_six() {
    let site = site("");
    let output = test_order(&site, &["--list-templates"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), TEMPLATES);
    let output = test_order(&site, &["--list-templates", "--json-output"]);
    let names: Vec<String> = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(names, TEMPLATES);
}

#[test]
fn generate_only_prints_the_rendered_order_with_the_vars() {
    let site = site("");
    let output = test_order(
        &site,
        &[
            "--template",
            "create/with-limits.json",
            "--generate-only",
            "--var",
            "cpu_limit=7",
            "--var",
            "resource_name=gen-1",
            "--var",
            r#"attributes_unused={"a": [1]}"#,
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let order: Value =
        serde_json::from_str(&stdout(&output)).unwrap_or_else(|_| panic!("{}", show(&output)));
    assert_eq!(order["type"], "Create");
    assert_eq!(order["resource_name"], "gen-1");
    assert_eq!(order["limits"]["cpu"], 7);
    assert_eq!(order["limits"]["mem"], 2048);
    // The config's offering fills `offering_uuid`.
    assert_eq!(order["offering_uuid"], "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01");
    // Nothing ran.
    assert_eq!(site.state(), Value::Null);
    // -o writes the same to a file.
    let file = site.work.path().join("order.json");
    let output = test_order(
        &site,
        &[
            "--template",
            "terminate/basic",
            "--generate-only",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(stdout(&output).contains("Generated order saved to: "));
    let order: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(order["type"], "Terminate");
}

#[test]
fn validate_only_checks_the_order_and_its_offering_without_running_it() {
    let site = site("");
    let output = test_order(&site, &["--template", "create/basic", "--validate-only"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        stdout(&output).starts_with("Valid Create order ")
            && stdout(&output).contains(
                "for resource 'test-allocation' on offering 'Demo Offering' (plugin entry 'demo')"
            ),
        "{}",
        show(&output)
    );
    assert_eq!(site.state(), Value::Null);
    // An order file that is not an order, one for another offering.
    for (order, problem) in [
        (r#"{"type": "Delete"}"#, "order type 'Delete' is not Create, Update, Terminate or Restore"),
        (r#"[1, 2]"#, "the order is not a JSON object"),
        (
            r#"{"type": "Create", "resource_name": "r", "offering_uuid": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f99"}"#,
            "no offering with waldur_offering_uuid 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f99 in the configuration",
        ),
        ("{not json", "is not JSON"),
    ] {
        let file = site.work.path().join("order.json");
        std::fs::write(&file, order).unwrap();
        let output = test_order(&site, &["--order-file", file.to_str().unwrap(), "--validate-only"]);
        assert_eq!(output.status.code(), Some(2), "{order}: {}", show(&output));
        let error = stderr(&output);
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(error.starts_with("error: ") && error.contains(problem), "{order}: {error}");
    }
}

#[test]
fn vars_override_the_templates_defaults_in_a_run() {
    let site = site("");
    let output = test_order(
        &site,
        &[
            "--template",
            "create/with-limits",
            "--var",
            "resource_name=mine-1",
            "--var",
            "project_slug=lab",
            "--var",
            "cpu_limit=3",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let created = account(&site, "mine-1").unwrap_or_else(|| panic!("{}", show(&output)));
    assert_eq!(created["parent"], "lab");
    assert_eq!(created["limits"]["cpu"], 180, "{created}");
}

#[test]
fn an_erring_plugin_gives_exit_1_and_the_error_waldur_got() {
    let site = site("        fail_methods: [client_create_resource]");
    let output = test_order(&site, &["--template", "create/basic"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let text = stdout(&output);
    assert!(
        text.contains("\nResult: erred: demo: injected failure in client_create_resource\n"),
        "{text}"
    );
    let steps = steps(&text);
    in_order(
        &steps,
        &[
            "-> FAILED (backend error): demo: injected failure in client_create_resource",
            "/set_state_erred/ -> 200",
        ],
    );
    // An Update whose resource cannot be made does not run.
    let output = test_order(&site, &["--template", "update/limits-only"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(stdout(&output).contains("made the resource: erred: demo: injected failure"));
    assert!(stdout(&output).contains("Result: not done (not run)"));
}

#[test]
fn a_bad_template_var_or_source_is_a_one_line_error_with_exit_2() {
    let site = site("");
    let dir = site.work.path().join("templates");
    std::fs::create_dir_all(dir.join("create")).unwrap();
    std::fs::write(dir.join("create/broken.json"), "{\"type\": {{ oops").unwrap();
    std::fs::write(dir.join("create/strict.json"), "{\"type\": \"{{ kind }}\"}").unwrap();
    std::fs::write(dir.join("create/text.json"), "not json {{ 1 }}").unwrap();
    let dir = dir.to_str().unwrap();
    for (args, problem) in [
        (
            vec!["--template", "nope"],
            "no built-in template 'nope' (see --list-templates)",
        ),
        (
            vec!["--template-dir", dir, "--template", "create/broken"],
            "template 'create/broken': syntax error",
        ),
        (
            vec!["--template-dir", dir, "--template", "create/strict"],
            "template 'create/strict': undefined value",
        ),
        (
            vec!["--template-dir", dir, "--template", "create/text"],
            "template 'create/text' did not render valid JSON",
        ),
        (
            vec!["--template", "create/basic", "--var", "nothing"],
            "--var 'nothing' is not KEY=VALUE",
        ),
        (
            vec!["--template", "create/basic", "--var", "limits={cpu: 1}"],
            "--var limits: the value is not valid JSON",
        ),
        (vec![], "give --template NAME or --order-file PATH"),
    ] {
        let output = test_order(&site, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        let error = stderr(&output);
        assert_eq!(error.lines().count(), 1, "{args:?}: {error}");
        assert!(
            error.starts_with("error: ") && error.contains(problem),
            "{args:?}: {error}"
        );
    }
    // A template directory lists its own templates.
    let output = test_order(&site, &["--template-dir", dir, "--list-templates"]);
    assert_eq!(
        stdout(&output).lines().collect::<Vec<_>>(),
        ["create/broken", "create/strict", "create/text"]
    );
}

/// The SLURM plugin creates the account of `create/slurm-full` in real SLURM accounting.
#[test]
fn create_slurm_full_creates_the_account_in_real_slurm() {
    use waldur_test_support::slurm::{require_real_slurm, sacctmgr_rows, AccountGuard};
    use waldur_test_support::{workspace_plugin, PluginDir};
    let Some(_slurm) = require_real_slurm() else {
        return;
    };
    let prefix = format!("to{}_", std::process::id());
    let guard = AccountGuard::new(&prefix);
    guard.clean();
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-slurm"), "slurm.so");
    plugins.add(
        &workspace_plugin("waldur-plugin-basic-username"),
        "usernames.so",
    );
    let work = tempfile::tempdir().unwrap();
    let config = slurm_config(work.path(), &prefix);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .env("WALDUR_AGENT_PLUGIN_PATH", "")
        .env("RUST_LOG", "info")
        .args(["test-order", "--template", "create/slurm-full", "-c"])
        .arg(&config)
        .arg("--plugin-dir")
        .arg(plugins.path())
        .args([
            "--var",
            "resource_name=full1",
            "--var",
            "qos=normal",
            "--var",
            "partition=",
        ])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    in_order(
        &steps(&text),
        &[
            "plugin slurm.client_create_resource(",
            "/set_backend_id/ -> 200",
            "/set_state_done/ -> 200",
        ],
    );
    let account = format!("{prefix}full1");
    let rows = sacctmgr_rows(&["show", "account", &account, "format=account"]);
    assert!(
        rows.iter().any(|r| r.first() == Some(&account)),
        "{account} not in SLURM: {rows:?}\n{text}"
    );
    drop(guard);
}

fn slurm_config(dir: &Path, prefix: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
timezone: UTC
runtime_dir: {runtime_dir}
offerings:
  - name: SLURM Offering
    waldur_api_url: http://127.0.0.1:9/api/
    waldur_api_token: unused
    waldur_offering_uuid: 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01
    username_management_backend: base
    order_processing_backend: slurm
    membership_sync_backend: slurm
    reporting_backend: slurm
    backend_type: slurm
    backend_settings:
      default_account: root
      customer_prefix: "{prefix}"
      project_prefix: "{prefix}"
      allocation_prefix: "{prefix}"
      qos_default: normal
      enable_user_homedir_account_creation: false
    backend_components:
      cpu: {{limit: 10, measured_unit: CPU-minutes, unit_factor: 1, accounting_type: usage, label: CPU}}
      mem: {{measured_unit: MB-minutes, unit_factor: 1, accounting_type: usage, label: RAM}}
"#,
        runtime_dir = waldur_test_support::slurm::runtime_dir().display(),
    );
    let path = dir.join("agent.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn dry_run_shows_the_plugins_writes_without_calling_them() {
    let site = site("");
    let output = test_order(
        &site,
        &[
            "--template",
            "create/basic",
            "--var",
            "resource_name=dry-one",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let text = stdout(&output);
    let planned = steps(&text);
    in_order(
        &planned,
        &[
            "plugin demo.pre_create_resource(",
            "NOT CALLED (dry run: it writes)",
            "/set_backend_id/ -> 200",
            "/set_state_done/ -> 200",
        ],
    );
    let create = planned
        .iter()
        .find(|s| s.contains("client_create_resource("))
        .expect(&text);
    assert!(create.contains("NOT CALLED"), "{create}");
    // Reads still reach the plugin.
    assert!(
        planned
            .iter()
            .any(|s| s.contains("client_get_resource(") && s.contains("-> ok")),
        "{text}"
    );
    assert!(
        account(&site, "dry-one").is_none(),
        "the backend was written"
    );

    // An Update's setup Create still runs, so the plugin has what the dry run plans on.
    let output = test_order(
        &site,
        &[
            "--template",
            "update/limits-only",
            "--var",
            "resource_name=dry-two",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let text = stdout(&output);
    assert!(
        steps(&text)
            .iter()
            .any(|s| s.contains("client_set_resource_limits(") && s.contains("NOT CALLED")),
        "{text}"
    );
    // The same order for real changes the limits the dry run left alone.
    let output = test_order(
        &site,
        &[
            "--template",
            "update/limits-only",
            "--var",
            "resource_name=real-two",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let limits = |name: &str| account(&site, name).expect(name)["limits"].clone();
    assert_ne!(
        limits("dry-two"),
        limits("real-two"),
        "the dry run's Update wrote"
    );
}
