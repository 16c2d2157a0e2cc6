//! The runtime directory: the one place for state that must be shared by every agent process
//! on the machine and by nothing else (instance locks, backend write locks, the heartbeat, the
//! plugin probe cache).
//!
//! It must not be `/tmp`: under systemd's `PrivateTmp=` two units would each see their own
//! `/tmp`, so locks there lock nothing, and any local user can create files in it.

use std::io;
use std::path::{Path, PathBuf};

/// Overrides the default when the config has no `runtime_dir`.
pub const RUNTIME_DIR_VAR: &str = "WALDUR_AGENT_RUNTIME_DIR";

/// The default for an agent running as root (the packaged units).
const SYSTEM_RUNTIME_DIR: &str = "/run/waldur-agent";

/// The runtime directory, first of:
/// 1. `configured` (the config's `runtime_dir`);
/// 2. `$WALDUR_AGENT_RUNTIME_DIR`;
/// 3. `$RUNTIME_DIRECTORY`, which systemd sets for a unit with `RuntimeDirectory=` (its first
///    entry);
/// 4. `/run/waldur-agent` when running as root;
/// 5. `$XDG_RUNTIME_DIR/waldur-agent` (a user's login session);
/// 6. `<temp dir>/waldur-agent-<uid>` (a developer's shell without a session directory).
pub fn runtime_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = env(RUNTIME_DIR_VAR) {
        return PathBuf::from(dir);
    }
    if let Some(dirs) = env("RUNTIME_DIRECTORY") {
        if let Some(first) = std::env::split_paths(&dirs).find(|p| !p.as_os_str().is_empty()) {
            return first;
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from(SYSTEM_RUNTIME_DIR);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("waldur-agent");
    }
    std::env::temp_dir().join(format!("waldur-agent-{uid}"))
}

/// Creates `dir` (and its parents) if missing. A directory the agent creates is
/// `rwxr-xr-x`: other users may read the PIDs in the locks, never create files there.
pub fn ensure_runtime_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot create the runtime directory {}: {e}", dir.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_directory_wins() {
        assert_eq!(
            runtime_dir(Some(Path::new("/srv/agent"))),
            PathBuf::from("/srv/agent")
        );
    }

    #[test]
    fn ensure_creates_missing_parents() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("a/b");
        ensure_runtime_dir(&dir).unwrap();
        assert!(dir.is_dir());
        ensure_runtime_dir(&dir).unwrap();
    }
}
