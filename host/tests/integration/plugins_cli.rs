//! `waldur-agent plugins list / inspect / check` with the real binary over real plugin files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use waldur_agent::plugins::Refusal;
use waldur_test_support::{
    external_plugin, generated_plugin, system_library, workspace_plugin, AbiVariant, PluginDir,
};

/// A run that takes longer has hung (on a FIFO, say): it is killed and the test fails.
const DEADLINE: Duration = Duration::from_secs(120);

/// The agent's probe cache file in its runtime directory.
const PROBE_CACHE: &str = "plugin-probe-cache.json";

fn agent(args: &[&str]) -> Output {
    // A runtime directory of its own: the probe cache of one run never leaks into another.
    let runtime = tempfile::tempdir().unwrap();
    agent_in(runtime.path(), args)
}

/// Runs the agent with `runtime` as its runtime directory (where the probe cache lives).
fn agent_in(runtime: &Path, args: &[&str]) -> Output {
    let (output, _) = agent_measured(runtime, args);
    output
}

/// Runs the agent and also answers its peak resident set size in KiB (of the agent and the
/// prober children it waited for), from `wait4`.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which std's Child cannot do"
)]
fn agent_measured(runtime: &Path, args: &[&str]) -> (Output, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_waldur-agent"))
        .args(args)
        // Only the test's directories: never whatever is installed on the machine.
        .env("WALDUR_AGENT_PLUGIN_PATH", "")
        .env("WALDUR_AGENT_RUNTIME_DIR", runtime)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run waldur-agent");
    let pid = child.id() as libc::pid_t;
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, reaped only here; both pointers are valid.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
        let _ = tx.send((status, usage.ru_maxrss as u64));
    });
    let (status, max_rss_kib) = match rx.recv_timeout(DEADLINE) {
        Ok(answer) => answer,
        Err(_) => {
            // SAFETY: kill has no memory preconditions; `pid` is the child started above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("waldur-agent {args:?} did not finish within {DEADLINE:?}");
        }
    };
    let output = Output {
        status: ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, max_rss_kib)
}

fn list_json(dirs: &[&Path], extra: &[&str]) -> Value {
    let runtime = tempfile::tempdir().unwrap();
    list_json_in(runtime.path(), dirs, extra)
}

fn list_args(dirs: &[&Path], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["plugins", "list", "--json"].map(String::from).to_vec();
    for dir in dirs {
        args.extend(["--plugin-dir".to_string(), dir.display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn parse_list(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("plugins list --json prints JSON")
}

fn list_json_in(runtime: &Path, dirs: &[&Path], extra: &[&str]) -> Value {
    let args = list_args(dirs, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    parse_list(&agent_in(runtime, &args))
}

fn by_file<'a>(list: &'a Value, file: &str) -> &'a Value {
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("{file} is not listed: {list:#}"))
}

/// The typed refusal `plugins list --json` gives for `file`; its `reason` is that
/// refusal's one line.
fn refusal(list: &Value, file: &str) -> Refusal {
    let plugin = by_file(list, file);
    assert_eq!(plugin["status"], "refused", "{file}: {plugin:#}");
    let refusal: Refusal = serde_json::from_value(plugin["refusal"].clone())
        .unwrap_or_else(|e| panic!("{file}: {e}: {plugin:#}"));
    let reason = plugin["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&refusal.to_string()),
        "{file}: reason {reason:?} is not {refusal}"
    );
    assert!(
        !reason.contains('\n'),
        "{file}: reason is not one line: {reason:?}"
    );
    refusal
}

/// Asserts that `file` is refused for the reason `pattern` matches.
macro_rules! assert_refused {
    ($list:expr, $file:expr, $pattern:pat $(if $guard:expr)?) => {{
        let refusal = refusal(&$list, $file);
        assert!(
            matches!(&refusal, $pattern $(if $guard)?),
            "{}: refused with {refusal:?}",
            $file
        );
    }};
}

#[test]
fn bad_files_are_refused_with_one_line_reasons_and_the_rest_still_listed() {
    let dir = PluginDir::new();
    let demo = workspace_plugin("waldur-plugin-demo");
    dir.add(&demo, "demo.so");
    dir.add(&system_library(), "libz.so");
    let bytes = std::fs::read(&demo).unwrap();
    dir.write("truncated.so", &bytes[..bytes.len() / 3]);
    dir.write("notes.so", b"this is a text file, not a library\n");
    dir.add(&generated_plugin(AbiVariant::NextMajor), "abi2.so");
    dir.add(&generated_plugin(AbiVariant::ChangedLayout), "layout.so");
    dir.add(
        &external_plugin(
            "tests/fixtures/external/abort-plugin",
            "waldur-plugin-abort-build",
        ),
        "abort.so",
    );
    dir.add(&workspace_plugin("waldur-plugin-crash-on-load"), "crash.so");
    // The demo plugin as if built for another machine: ELF's e_machine (2 bytes at 18).
    let mut foreign = bytes.clone();
    let other: u16 = if cfg!(target_arch = "aarch64") {
        62
    } else {
        183
    };
    foreign[18..20].copy_from_slice(&other.to_le_bytes());
    dir.write("foreign.so", &foreign);

    let list = list_json(&[dir.path()], &[]);

    assert_eq!(by_file(&list, "demo.so")["status"], "ok", "{list:#}");
    assert_eq!(by_file(&list, "demo.so")["entries"][0]["name"], "demo");
    assert_eq!(by_file(&list, "demo.so")["refusal"], Value::Null);
    assert_refused!(list, "libz.so", Refusal::ForeignLibrary);
    assert_refused!(list, "truncated.so", Refusal::CorruptElf { .. });
    assert_refused!(list, "notes.so", Refusal::NotElf);
    assert_refused!(
        list,
        "abi2.so",
        Refusal::AbiMismatch { plugin, agent } if plugin == "2.0.0" && agent == "1.x"
    );
    // The layout check names the path to the field that differs.
    assert_refused!(
        list,
        "layout.so",
        Refusal::LayoutMismatch { first }
            if first.starts_with("PluginRoot > new_backend") && first.contains("LogLevel")
    );
    assert_refused!(list, "abort.so", Refusal::PanicAbort);
    assert_refused!(list, "crash.so", Refusal::Crashed { signal: 6 });
    assert_refused!(
        list,
        "foreign.so",
        Refusal::ForeignArchitecture { found, expected }
            if found != expected && expected == std::env::consts::ARCH
    );
}

#[test]
fn the_table_lists_the_demo_plugin() {
    let dir = PluginDir::new();
    dir.add(
        &workspace_plugin("waldur-plugin-demo"),
        "libwaldur_plugin_demo.so",
    );
    let dir_arg = dir.path().display().to_string();
    let output = agent(&["plugins", "list", "--plugin-dir", &dir_arg]);
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("waldur-plugin-demo"), "{table}");
    assert!(table.contains("demo (backend)"), "{table}");
    assert!(table.contains("ok"), "{table}");
}

#[test]
fn a_world_writable_plugin_directory_is_refused_unless_allowed() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();

    let strict = list_json(&[dir.path()], &[]);
    assert_refused!(strict, "demo.so", Refusal::Writable { who, .. } if who == "world");

    let relaxed = list_json(&[dir.path()], &["--allow-insecure-plugin-permissions"]);
    assert_eq!(by_file(&relaxed, "demo.so")["status"], "ok");
}

#[test]
fn two_plugins_with_one_entry_name_first_in_search_order_wins() {
    let first = PluginDir::new();
    let second = PluginDir::new();
    let demo = workspace_plugin("waldur-plugin-demo");
    first.add(&demo, "demo-a.so");
    second.add(&demo, "demo-b.so");

    let list = list_json(&[first.path(), second.path()], &[]);
    let winner = by_file(&list, "demo-a.so");
    let shadowed = by_file(&list, "demo-b.so");
    assert_eq!(winner["entries"][0]["active"], true);
    assert_eq!(shadowed["status"], "ok");
    assert_eq!(shadowed["entries"][0]["active"], false);
    // One clash per entry of the demo plugin (`demo` and `demo-profiles`).
    let clashes = list["clashes"].as_array().unwrap();
    assert_eq!(clashes.len(), 2, "{list:#}");
    for clash in clashes {
        let clash = clash.as_str().unwrap();
        assert!(
            clash.contains("demo-b.so")
                && clash.contains("shadowed by")
                && clash.contains("demo-a.so"),
            "{clash}"
        );
    }
}

#[test]
fn inspect_shows_entries_settings_and_implemented_methods() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    let dir_arg = dir.path().display().to_string();
    let output = agent(&["plugins", "inspect", "demo", "--plugin-dir", &dir_arg]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "Entry 'demo' (backend)",
        "state_dir",
        "Implements",
        "get_usage_report",
        "Agent defaults",
        "create_resource_with_id",
        "Status:      ok",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    let unknown = agent(&[
        "plugins",
        "inspect",
        "no-such-plugin",
        "--plugin-dir",
        &dir_arg,
    ]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no plugin or entry named 'no-such-plugin'"));
}

fn demo_config(dir: &Path, state_dir: &Path, extra_settings: &str) -> std::path::PathBuf {
    let path = dir.join("agent.yaml");
    std::fs::write(
        &path,
        format!(
            "offerings:\n\
             \x20 - name: Demo offering\n\
             \x20   waldur_api_url: http://127.0.0.1:9/api/\n\
             \x20   waldur_api_token: test-token\n\
             \x20   waldur_offering_uuid: 0123456789abcdef0123456789abcdef\n\
             \x20   backend_type: demo\n\
             \x20   backend_settings:\n\
             \x20     state_dir: {}\n\
             {extra_settings}\
             \x20   backend_components:\n\
             \x20     cpu: {{measured_unit: Hours, accounting_type: usage, label: CPU, unit_factor: 60}}\n\
             \x20     gpu: {{measured_unit: GPU-hours, accounting_type: limit, label: GPU, unit_factor: 60}}\n",
            state_dir.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_passes_on_a_healthy_plugin_and_fails_with_a_reason() {
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let dir_arg = plugins.path().display().to_string();

    let healthy = demo_config(work.path(), &state, "");
    let output = agent(&[
        "plugins",
        "check",
        "demo",
        "-c",
        healthy.to_str().unwrap(),
        "--plugin-dir",
        &dir_arg,
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("PASS  ping answers true"), "{text}");
    assert!(
        text.contains("PASS  limits convert with unit_factor"),
        "{text}"
    );
    assert!(text.contains("all checks passed"), "{text}");

    let broken = demo_config(work.path(), &state, "\x20     fail_methods: [ping]\n");
    let output = agent(&[
        "plugins",
        "check",
        "demo",
        "-c",
        broken.to_str().unwrap(),
        "--plugin-dir",
        &dir_arg,
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  ping answers true: plugin entry 'demo': ping: backend error: demo: injected failure in ping"), "{text}");
}

#[test]
fn a_missing_plugin_directory_is_reported() {
    let output = agent(&["plugins", "list", "--plugin-dir", "/nonexistent/plugins"]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: plugin directory /nonexistent/plugins does not exist"),
        "{stderr}"
    );
}

/// Why `file` is refused, and whether an earlier probe found that (`cached`, and the
/// reason's ` (cached)` suffix kept for older scripts).
fn verdict(list: &Value, file: &str) -> (Refusal, bool) {
    let refused = refusal(list, file);
    let plugin = by_file(list, file);
    let cached = plugin["cached"].as_bool().unwrap();
    let suffix = if cached { " (cached)" } else { "" };
    assert_eq!(plugin["reason"], format!("{refused}{suffix}"), "{plugin:#}");
    (refused, cached)
}

/// Gives `path` a new modification time, as an upgrade in place would.
fn touch(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    file.set_modified(later).unwrap();
}

#[test]
fn a_refused_verdict_is_remembered_until_the_file_changes() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-demo"), "demo.so");
    let crash = dir.add(&workspace_plugin("waldur-plugin-crash-on-load"), "crash.so");
    let runtime = tempfile::tempdir().unwrap();
    let cache = runtime.path().join(PROBE_CACHE);
    let list = |extra: &[&str]| list_json_in(runtime.path(), &[dir.path()], extra);
    const CRASHED: Refusal = Refusal::Crashed { signal: 6 };

    let first = list(&[]);
    assert_eq!(verdict(&first, "crash.so"), (CRASHED, false));
    assert!(cache.is_file(), "no probe cache at {}", cache.display());
    let second = list(&[]);
    assert_eq!(verdict(&second, "crash.so"), (CRASHED, true));
    assert_eq!(by_file(&second, "demo.so")["status"], "ok", "{second:#}");

    // Forcing a re-probe.
    assert_eq!(
        verdict(&list(&["--no-probe-cache"]), "crash.so"),
        (CRASHED, false)
    );
    assert_eq!(
        verdict(&list(&["--no-cache"]), "crash.so"),
        (CRASHED, false)
    );

    // A changed file is probed again, then remembered again.
    touch(&crash);
    assert_eq!(verdict(&list(&[]), "crash.so"), (CRASHED, false));
    assert_eq!(verdict(&list(&[]), "crash.so"), (CRASHED, true));

    // A corrupt cache is ignored and rewritten.
    std::fs::write(&cache, b"{\"format\": 1, \"entries\": [tru").unwrap();
    assert_eq!(verdict(&list(&[]), "crash.so"), (CRASHED, false));
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap())
        .expect("the corrupt cache was rewritten as JSON");
    assert!(rewritten.is_object(), "{rewritten:#}");
    assert_eq!(verdict(&list(&[]), "crash.so"), (CRASHED, true));

    // A cache that cannot be written (the runtime directory cannot be created) fails nothing.
    let blocker = runtime.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = list_json_in(&blocker.join("runtime"), &[dir.path()], &[]);
    assert_eq!(verdict(&unwritable, "crash.so"), (CRASHED, false));
    assert_eq!(by_file(&unwritable, "demo.so")["status"], "ok");
}

#[test]
fn a_hanging_plugin_costs_the_probe_timeout_once() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-hang-on-load"), "hang.so");
    let runtime = tempfile::tempdir().unwrap();
    let timed = |timeout: &str| {
        let started = Instant::now();
        let list = list_json_in(runtime.path(), &[dir.path()], &["--probe-timeout", timeout]);
        (verdict(&list, "hang.so"), started.elapsed())
    };

    let (first, took) = timed("1");
    assert_eq!(first, (Refusal::Hung { seconds: 1 }, false));
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let (second, took) = timed("1");
    assert_eq!(second, (Refusal::Hung { seconds: 1 }, true));
    assert!(
        took < Duration::from_secs(1),
        "the cached run took {took:?}"
    );

    // A hang found with a shorter timeout says nothing about a longer one.
    let (longer, took) = timed("2");
    assert_eq!(longer, (Refusal::Hung { seconds: 2 }, false));
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let (shorter, _) = timed("1");
    assert_eq!(shorter, (Refusal::Hung { seconds: 2 }, true));

    let bad = agent_in(runtime.path(), &["plugins", "list", "--probe-timeout", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--probe-timeout"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn the_config_sets_the_probe_timeout_and_the_runtime_directory() {
    let plugins = PluginDir::new();
    plugins.add(&workspace_plugin("waldur-plugin-hang-on-load"), "hang.so");
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "plugin_dirs: [{}]\nruntime_dir: run\nplugin_probe_timeout_seconds: 1\nofferings: []\n",
            plugins.path().display()
        ),
    )
    .unwrap();
    // The environment's runtime directory loses to the config's.
    let elsewhere = tempfile::tempdir().unwrap();
    let config_arg = config.display().to_string();
    let list = parse_list(&agent_in(
        elsewhere.path(),
        &["plugins", "list", "--json", "-c", &config_arg],
    ));
    assert_eq!(
        verdict(&list, "hang.so"),
        (Refusal::Hung { seconds: 1 }, false)
    );
    assert!(work.path().join("run").join(PROBE_CACHE).is_file());
    assert!(!elsewhere.path().join(PROBE_CACHE).exists());

    std::fs::write(&config, "offerings: []\nplugin_probe_timeout_seconds: 0\n").unwrap();
    let bad = agent_in(elsewhere.path(), &["plugins", "list", "-c", &config_arg]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {config_arg}: plugin_probe_timeout_seconds (line 2): must be between 1 and \
             600 (seconds), got 0"
        )
    );
}

#[test]
fn a_sparse_2_gb_file_costs_a_few_bytes_of_reading() {
    let dir = PluginDir::new();
    let sparse = dir.write("sparse.so", b"");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    // A real plugin followed by 2 GB of holes: still a plugin, and only its headers and
    // manifest are read.
    let padded = dir.add(&workspace_plugin("waldur-plugin-demo"), "padded.so");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&padded)
        .unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len + (2 << 30)).unwrap();

    let runtime = tempfile::tempdir().unwrap();
    let args = list_args(&[dir.path()], &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A child's peak RSS includes its parent's at the fork (Linux carries the high-water mark
    // across exec), and this test binary is large: compare with the agent doing nothing.
    let (_, baseline_kib) = agent_measured(runtime.path(), &["--version"]);
    let (output, max_rss_kib) = agent_measured(runtime.path(), &args);
    let list = parse_list(&output);
    assert_eq!(verdict(&list, "sparse.so"), (Refusal::NotElf, false));
    assert_eq!(by_file(&list, "padded.so")["status"], "ok", "{list:#}");
    assert!(
        max_rss_kib < baseline_kib + 200 * 1024,
        "peak RSS {max_rss_kib} KiB against {baseline_kib} KiB for --version: the files were \
         read whole"
    );
}

#[test]
fn special_files_named_so_are_refused_and_a_fifo_is_never_opened() {
    use std::os::unix::ffi::OsStrExt;
    let dir = PluginDir::new();
    let fifo = dir.path().join("fifo.so");
    let fifo_c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o644) }, 0);
    std::fs::create_dir(dir.path().join("directory.so")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target.so", dir.path().join("dangling.so")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("directory.so"),
        dir.path().join("to-dir.so"),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("socket.so")).unwrap();
    let demo = dir.add(&workspace_plugin("waldur-plugin-demo"), "demo.plugin");
    std::os::unix::fs::symlink(&demo, dir.path().join("linked.so")).unwrap();

    let list = list_json(&[dir.path()], &[]);
    assert_refused!(
        list,
        "fifo.so",
        Refusal::NotRegularFile { what, link_target: None } if what == "a FIFO"
    );
    assert_refused!(
        list,
        "directory.so",
        Refusal::NotRegularFile { what, link_target: None } if what == "a directory"
    );
    assert_refused!(
        list,
        "dangling.so",
        Refusal::DanglingLink { target } if target == "/nonexistent/target.so"
    );
    assert_refused!(
        list,
        "to-dir.so",
        Refusal::NotRegularFile { what, link_target: Some(_) } if what == "a directory"
    );
    assert_refused!(
        list,
        "socket.so",
        Refusal::NotRegularFile { what, link_target: None } if what == "a socket"
    );
    // A symbolic link to a plugin is a plugin.
    assert_eq!(by_file(&list, "linked.so")["status"], "ok", "{list:#}");
}

#[test]
fn a_plugin_whose_file_name_has_a_newline_loads() {
    let dir = PluginDir::new();
    dir.add(&workspace_plugin("waldur-plugin-demo"), "new\nline.so");
    let list = list_json(&[dir.path()], &[]);
    let plugin = by_file(&list, "new\nline.so");
    assert_eq!(plugin["status"], "ok", "{list:#}");
    assert_eq!(plugin["entries"][0]["name"], "demo");
}
