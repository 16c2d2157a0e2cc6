//! The heartbeat file (reference §9.1; content: seconds since the epoch): `run` rewrites it
//! every `heartbeat_interval_seconds` (60, the reference's tick) whether a cycle runs or the
//! agent waits for the next one, and at the start and end of every cycle; `healthz` calls
//! the agent alive while it is fresh.
//!
//! It lives in the runtime directory (`<runtime_dir>/heartbeat`), which a systemd unit's
//! `PrivateTmp=` or a second pod does not hide and which other users cannot write; the
//! reference's `/tmp/waldur-site-agent-heartbeat` is still read by `healthz` when the agent's
//! own file does not exist (a probe pointed at a reference agent keeps working).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The reference's heartbeat file.
pub const REFERENCE_HEARTBEAT_FILE: &str = "/tmp/waldur-site-agent-heartbeat";

/// The heartbeat's name in the runtime directory.
pub const HEARTBEAT_FILE_NAME: &str = "heartbeat";

/// Environment variable naming another heartbeat file (for `run` and `healthz`).
pub const HEARTBEAT_FILE_ENV: &str = "WALDUR_AGENT_HEARTBEAT_FILE";

/// Where `beat` writes, set once by `run`.
static TARGET: OnceLock<PathBuf> = OnceLock::new();

fn override_path() -> Option<PathBuf> {
    std::env::var_os(HEARTBEAT_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `$WALDUR_AGENT_HEARTBEAT_FILE`, or `<runtime_dir>/heartbeat`.
pub fn heartbeat_path(runtime_dir: &Path) -> PathBuf {
    override_path().unwrap_or_else(|| runtime_dir.join(HEARTBEAT_FILE_NAME))
}

/// What `healthz` reads: [`heartbeat_path`], or the reference's file when that does not exist
/// and the reference's does.
pub fn liveness_path(runtime_dir: &Path) -> PathBuf {
    let ours = heartbeat_path(runtime_dir);
    let reference = PathBuf::from(REFERENCE_HEARTBEAT_FILE);
    if override_path().is_none() && !ours.exists() && reference.exists() {
        reference
    } else {
        ours
    }
}

/// Makes [`beat`] write into `runtime_dir` (the first call wins).
pub fn init(runtime_dir: &Path) {
    let _ = TARGET.set(heartbeat_path(runtime_dir));
}

/// Touches the heartbeat every `interval` until `stopped` resolves.
pub async fn keep_beating(interval: Duration, stopped: impl std::future::Future<Output = ()>) {
    tokio::pin!(stopped);
    loop {
        beat();
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stopped => return,
        }
    }
}

/// Writes the current time into `path` (which updates its modification time).
pub fn touch(path: &Path) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    std::fs::write(path, format!("{:.6}", now.as_secs_f64()))
}

/// Touches the heartbeat ([`init`]'s path; before it, `$WALDUR_AGENT_HEARTBEAT_FILE` or
/// nothing); a failure is logged (the agent keeps working).
pub fn beat() {
    let Some(path) = TARGET.get().cloned().or_else(override_path) else {
        return;
    };
    if let Err(e) = touch(&path) {
        tracing::warn!("cannot write the heartbeat file {}: {e}", path.display());
    }
}

/// Ok(age) when `path` was modified less than `max_age` before `now`; otherwise the reason.
pub fn check_liveness(path: &Path, max_age: Duration, now: SystemTime) -> Result<Duration, String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("heartbeat file {}: {e}", path.display()))?;
    let age = now.duration_since(modified).unwrap_or_default();
    if age < max_age {
        Ok(age)
    } else {
        Err(format!(
            "heartbeat file {} is {}s old (max {}s)",
            path.display(),
            age.as_secs(),
            max_age.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stale_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb");
        let missing = check_liveness(&path, Duration::from_secs(300), SystemTime::now());
        assert!(missing.unwrap_err().contains("heartbeat file"));
        touch(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.parse::<f64>().unwrap() > 1.0e9, "{text}");
        assert!(check_liveness(&path, Duration::from_secs(300), SystemTime::now()).is_ok());
        let later = SystemTime::now() + Duration::from_secs(301);
        let stale = check_liveness(&path, Duration::from_secs(300), later).unwrap_err();
        assert!(stale.contains("old (max 300s)"), "{stale}");
    }
}
