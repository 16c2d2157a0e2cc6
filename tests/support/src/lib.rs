//! Builds the real plugin libraries (`.so`) the agent's tests load through the real loader,
//! and stages them in private plugin directories.
//!
//! Three kinds of plugins:
//! - workspace plugins (`plugins/*`, `tests/fixtures/plugins/*`), built with `cargo build -p`;
//! - external fixtures (`tests/fixtures/external/*`, `examples/plugin-template`), separate
//!   workspaces built against other copies of `waldur-plugin-abi`;
//! - generated variants: a copy of the current `plugin-abi` altered on purpose (another major
//!   version, another layout) with a small plugin built against it.
//!
//! Real components: [`slurm`] and [`rabbitmq`] gate tests on the daemons scripts/test.sh
//! starts, and help tests use them.
//!
//! Builds go through cargo, once per process per plugin; `.ci/run` builds the workspace first,
//! so inside CI these are up-to-date checks.

mod generated;
pub mod opens;
pub mod rabbitmq;
pub mod slurm;
mod standalone;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub use generated::AbiVariant;

/// The agent's repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support is two levels below the root")
        .to_path_buf()
}

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The target directory shared by every build outside the workspace, so that abi_stable and
/// friends compile once for all of them.
pub fn external_target_dir() -> PathBuf {
    target_dir().join("external")
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Tests may run under `cargo test`; a nested build must not inherit its per-crate flags.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_build(mut cmd: Command, what: &str) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo for {what}: {e}"));
    assert!(
        output.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Remembers what this process built already.
fn once(key: &str, build: impl FnOnce() -> PathBuf) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(key) {
        return path.clone();
    }
    let path = build();
    built.insert(key.to_string(), path.clone());
    path
}

fn library_file_name(package: &str) -> String {
    format!("lib{}.so", package.replace('-', "_"))
}

/// Debug builds for tests, release builds for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Debug => &[],
            Self::Release => &["--release"],
        }
    }
}

/// Builds a workspace plugin package (debug) and answers its `.so`.
pub fn workspace_plugin(package: &str) -> PathBuf {
    workspace_plugin_built(package, Profile::Debug)
}

/// Builds a workspace plugin package with `profile` and answers its `.so`.
pub fn workspace_plugin_built(package: &str, profile: Profile) -> PathBuf {
    once(&format!("ws:{package}:{profile:?}"), || {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root())
            .args(["build", "-q", "-p", package])
            .args(profile.args());
        run_build(cmd, package);
        let path = target_dir()
            .join(profile.dir())
            .join(library_file_name(package));
        assert!(path.is_file(), "{} was not produced", path.display());
        path
    })
}

/// Builds the agent binary with `profile` and answers its path.
pub fn agent_binary(profile: Profile) -> PathBuf {
    once(&format!("bin:waldur-agent:{profile:?}"), || {
        let mut cmd = cargo();
        cmd.current_dir(workspace_root())
            .args(["build", "-q", "-p", "waldur-agent", "--bin", "waldur-agent"])
            .args(profile.args());
        run_build(cmd, "waldur-agent");
        target_dir().join(profile.dir()).join("waldur-agent")
    })
}

/// Builds a crate that lives outside the workspace (`dir` relative to the repository root,
/// with its own `[workspace]`) and answers its `.so`.
pub fn external_plugin(dir: &str, package: &str) -> PathBuf {
    let dir = workspace_root().join(dir);
    build_outside(&dir, package)
}

fn build_outside(dir: &Path, package: &str) -> PathBuf {
    once(&format!("ext:{}", dir.display()), || {
        // Same dependency versions as the workspace: reuse its lock file.
        let lock = dir.join("Cargo.lock");
        if !lock.exists() {
            std::fs::copy(workspace_root().join("Cargo.lock"), &lock).expect("copy Cargo.lock");
        }
        let mut cmd = cargo();
        cmd.current_dir(dir)
            .env("CARGO_TARGET_DIR", external_target_dir())
            .args(["build", "-q"]);
        run_build(cmd, &dir.display().to_string());
        let path = external_target_dir()
            .join("debug")
            .join(library_file_name(package));
        assert!(path.is_file(), "{} was not produced", path.display());
        path
    })
}

/// Builds a plugin against an altered copy of the current `plugin-abi`.
pub fn generated_plugin(variant: AbiVariant) -> PathBuf {
    let dir = generated::prepare(variant);
    build_outside(&dir, &variant.package())
}

/// A private plugin directory (mode 0755) with copies of plugin files; removed on drop.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("waldur-plugins-")
            .tempdir()
            .expect("create a temporary plugin directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies `library` in as `file_name` (a new inode: never a link to the built file).
    pub fn add(&self, library: &Path, file_name: &str) -> PathBuf {
        let dest = self.dir.path().join(file_name);
        std::fs::copy(library, &dest)
            .unwrap_or_else(|e| panic!("copy {} -> {}: {e}", library.display(), dest.display()));
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
        dest
    }

    /// Writes a file with the given bytes (for corrupt and foreign files).
    pub fn write(&self, file_name: &str, bytes: &[u8]) -> PathBuf {
        let dest = self.dir.path().join(file_name);
        std::fs::write(&dest, bytes).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
        dest
    }
}

impl Default for PluginDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A shared library of the system that is certainly not a plugin.
pub fn system_library() -> PathBuf {
    [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("a system shared library (libz or libc) exists")
}
