//! Refuses plugin files that someone other than root or the agent's own user could have
//! replaced, like sshd's StrictModes: a writable plugin is a way to run code as the agent.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Refusal;

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

/// Checks the file and every directory above it.
pub fn check_trusted(path: &Path, policy: TrustPolicy) -> Result<(), Refusal> {
    if policy == TrustPolicy::AllowInsecure {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let agent_uid = unsafe { libc::geteuid() };
    let path = path.canonicalize().map_err(|e| unknown(path, &e))?;
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
fn check_one(path: &Path, agent_uid: u32, ancestor_sticky_ok: bool) -> Result<(), Refusal> {
    let meta = std::fs::metadata(path).map_err(|e| unknown(path, &e))?;
    let mode = meta.mode();
    let what = if meta.is_dir() { "directory" } else { "file" }.to_string();
    if meta.uid() != 0 && meta.uid() != agent_uid {
        return Err(Refusal::ForeignOwner {
            what,
            path: path.to_path_buf(),
            owner: meta.uid(),
            agent_uid,
        });
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
        return Err(Refusal::Writable {
            what,
            path: path.to_path_buf(),
            who: who.to_string(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

fn unknown(path: &Path, error: &std::io::Error) -> Refusal {
    Refusal::PermissionsUnknown {
        path: path.to_path_buf(),
        error: error.to_string(),
    }
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
        assert!(
            matches!(&err, Refusal::Writable { who, mode: 0o1777, .. } if who == "world"),
            "{err:?}"
        );
        assert_eq!(check_trusted(&file, TrustPolicy::AllowInsecure), Ok(()));
    }

    #[test]
    fn group_writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.so");
        std::fs::write(&file, b"x").unwrap();
        chmod(&file, 0o775);
        let err = check_trusted(&file, TrustPolicy::Strict).unwrap_err();
        assert!(
            matches!(&err, Refusal::Writable { who, mode: 0o775, .. } if who == "group"),
            "{err:?}"
        );
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
