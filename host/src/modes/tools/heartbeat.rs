//! The heartbeat file (reference §9.1): `run` rewrites it at the start and end of every cycle
//! (content: seconds since the epoch); `healthz` calls the agent alive while it is fresh.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The reference's heartbeat file.
pub const DEFAULT_HEARTBEAT_FILE: &str = "/tmp/waldur-site-agent-heartbeat";

/// Environment variable naming another heartbeat file (for `run` and `healthz`).
pub const HEARTBEAT_FILE_ENV: &str = "WALDUR_AGENT_HEARTBEAT_FILE";

/// `$WALDUR_AGENT_HEARTBEAT_FILE`, or the reference's path.
pub fn heartbeat_path() -> PathBuf {
    std::env::var_os(HEARTBEAT_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HEARTBEAT_FILE))
}

/// Writes the current time into `path` (which updates its modification time).
pub fn touch(path: &Path) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    std::fs::write(path, format!("{:.6}", now.as_secs_f64()))
}

/// Touches [`heartbeat_path`]; a failure is logged (the agent keeps working).
pub fn beat() {
    let path = heartbeat_path();
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
