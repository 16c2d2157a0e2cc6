//! Refuses plugin files that someone other than root or the agent's own user could have
//! replaced, like sshd's StrictModes: a writable plugin is a way to run code as the agent.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whether insecure permissions are refused (production) or only tolerated (development).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustPolicy {
    #[default]
    Strict,
    /// `--allow-insecure-plugin-permissions` / `allow_insecure_plugin_permissions: true`.
    AllowInsecure,
}

const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Checks the file and every directory above it. `Err` is a one-line reason.
pub fn check_trusted(path: &Path, policy: TrustPolicy) -> Result<(), String> {
    if policy == TrustPolicy::AllowInsecure {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let agent_uid = unsafe { libc::geteuid() };
    let path = path
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    check_one(&path, agent_uid, false)?;
    let mut dir = path.parent();
    let mut is_plugin_dir = true;
    while let Some(d) = dir {
        check_one(d, agent_uid, !is_plugin_dir)?;
        is_plugin_dir = false;
        dir = d.parent();
    }
    Ok(())
}

/// `ancestor_sticky_ok`: a sticky world-writable ancestor such as /tmp is fine, because other
/// users cannot rename or replace what they do not own inside it. The plugin's own directory
/// gets no such exemption: anyone could add a plugin to it.
fn check_one(path: &Path, agent_uid: u32, ancestor_sticky_ok: bool) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    let mode = meta.mode();
    let what = if meta.is_dir() { "directory" } else { "file" };
    if meta.uid() != 0 && meta.uid() != agent_uid {
        return Err(format!(
            "{what} {} is owned by uid {}, not by root or the agent's user (uid {agent_uid})",
            path.display(),
            meta.uid()
        ));
    }
    if mode & (GROUP_WRITE | OTHER_WRITE) != 0 {
        if ancestor_sticky_ok && meta.is_dir() && mode & STICKY != 0 {
            return Ok(());
        }
        let who = if mode & OTHER_WRITE != 0 {
            "world"
        } else {
            "group"
        };
        return Err(format!(
            "{what} {} is {who}-writable (mode {:o}); fix with chmod go-w or allow insecure plugin permissions for development",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn private_file_in_private_dir_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        std::fs::write(&file, b"x").unwrap();
        chmod(&file, 0o755);
        assert_eq!(check_trusted(&file, TrustPolicy::Strict), Ok(()));
    }

    #[test]
    fn world_writable_plugin_dir_is_refused_even_when_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        std::fs::write(&file, b"x").unwrap();
        chmod(dir.path(), 0o1777);
        let err = check_trusted(&file, TrustPolicy::Strict).unwrap_err();
        assert!(err.contains("world-writable"), "{err}");
        assert!(!err.contains('\n'));
        assert_eq!(check_trusted(&file, TrustPolicy::AllowInsecure), Ok(()));
    }

    #[test]
    fn group_writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        std::fs::write(&file, b"x").unwrap();
        chmod(&file, 0o775);
        let err = check_trusted(&file, TrustPolicy::Strict).unwrap_err();
        assert!(err.contains("group-writable"), "{err}");
    }

    #[test]
    fn sticky_world_writable_ancestor_is_fine() {
        let sticky = tempfile::tempdir().unwrap();
        chmod(sticky.path(), 0o1777);
        let plugin_dir = sticky.path().join("plugins");
        std::fs::create_dir(&plugin_dir).unwrap();
        chmod(&plugin_dir, 0o755);
        let file = plugin_dir.join("p.so");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(check_trusted(&file, TrustPolicy::Strict), Ok(()));
    }
}
