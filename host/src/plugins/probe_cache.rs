//! Remembers the files the prober refused, so that a plugin whose initializer hangs costs the
//! probe timeout once, not at every agent start (each `--once` run included).
//!
//! A verdict is keyed by the file's identity (canonical path, size, modification and change
//! times in nanoseconds, inode, device) and by the agent that judged it (its version and its
//! executable), so any change to either probes the file again. Only refusals are kept: the
//! cache can make the agent skip probing a file, never accept one, so a tampered cache can at
//! worst refuse a plugin. It lives in the runtime directory, which only the agent writes.
//!
//! The file is JSON, written to a temporary file and renamed over the old one, so a reader
//! never sees half of it. A corrupt or unreadable cache is ignored (and rewritten); one that
//! cannot be written costs the next start a probe, nothing else.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::probe::wire_path;
use super::Refusal;

/// The cache's file name in the runtime directory.
pub const CACHE_FILE_NAME: &str = "plugin-probe-cache.json";

/// Bumped when the layout changes; a cache of another format is ignored and rewritten.
/// 2: the refusal is stored typed (its `kind` and fields), not as its text.
const FORMAT: u32 = 2;

/// What a file is, as far as its verdict goes: a file with another identity is probed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// Canonical: the same file reached through another directory or link is the same file.
    #[serde(with = "wire_path")]
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    /// An in-place copy that restores the old mtime (`cp -p`) still changes this.
    pub ctime_ns: i64,
    pub inode: u64,
    pub device: u64,
}

impl FileIdentity {
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let path = path.canonicalize()?;
        let meta = std::fs::metadata(&path)?;
        let nanos = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
        Ok(Self {
            size: meta.len(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
            path,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    file: FileIdentity,
    /// The agent that judged (see `Prober::identity`).
    agent: String,
    refusal: Refusal,
    /// For a hang, the timeout it was found with: a longer timeout might see the load finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    entries: Vec<Entry>,
}

/// The verdicts of one agent, loaded from and saved to one file.
#[derive(Debug)]
pub struct ProbeCache {
    file: PathBuf,
    agent: String,
    /// By canonical path.
    entries: BTreeMap<PathBuf, Entry>,
    /// The file differs from `entries` and is to be written.
    dirty: bool,
}

impl ProbeCache {
    /// Loads `file` for `agent`. Entries of other agents, and of files that changed or are
    /// gone, are dropped: they could never match again.
    pub fn load(file: &Path, agent: &str) -> Self {
        let mut cache = Self {
            file: file.to_path_buf(),
            agent: agent.to_string(),
            entries: BTreeMap::new(),
            dirty: false,
        };
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return cache,
            Err(e) => {
                tracing::debug!("ignoring the plugin probe cache {}: {e}", file.display());
                cache.dirty = true;
                return cache;
            }
        };
        let stored: CacheFile = match serde_json::from_slice(&bytes) {
            Ok(stored @ CacheFile { format: FORMAT, .. }) => stored,
            Ok(other) => {
                tracing::debug!(
                    "ignoring the plugin probe cache {}: format {} (this agent writes {FORMAT})",
                    file.display(),
                    other.format
                );
                cache.dirty = true;
                return cache;
            }
            Err(e) => {
                tracing::debug!(
                    "ignoring the corrupt plugin probe cache {}: {e}",
                    file.display()
                );
                cache.dirty = true;
                return cache;
            }
        };
        for entry in stored.entries {
            let current = entry.agent == agent
                && FileIdentity::of(&entry.file.path).is_ok_and(|now| now == entry.file);
            if current {
                cache.entries.insert(entry.file.path.clone(), entry);
            } else {
                cache.dirty = true;
            }
        }
        cache
    }

    /// The remembered refusal of `file`, if it still holds with `timeout`.
    pub fn lookup(&self, file: &FileIdentity, timeout: Duration) -> Option<Refusal> {
        let entry = self.entries.get(&file.path)?;
        let holds = entry.file == *file
            && entry.agent == self.agent
            && (!is_hang(&entry.refusal)
                || entry.timeout_ms.is_some_and(|ms| ms >= millis(timeout)));
        holds.then(|| entry.refusal.clone())
    }

    /// Records that `file` was refused; `timeout` is the one the prober used.
    pub fn remember(&mut self, file: FileIdentity, refusal: &Refusal, timeout: Duration) {
        let entry = Entry {
            agent: self.agent.clone(),
            refusal: refusal.clone(),
            timeout_ms: is_hang(refusal).then(|| millis(timeout)),
            file,
        };
        if self.entries.get(&entry.file.path) != Some(&entry) {
            self.entries.insert(entry.file.path.clone(), entry);
            self.dirty = true;
        }
    }

    /// Drops what is known about the file at canonical `path` (it loaded now).
    pub fn forget(&mut self, path: &Path) {
        if self.entries.remove(path).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the cache if it changed. A failure is logged: it must not fail the command
    /// that scanned, it only costs the next start a probe.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        match self.write() {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(
                "cannot write the plugin probe cache {}: {e}; refused plugins will be probed again at the next start",
                self.file.display()
            ),
        }
    }

    fn write(&self) -> std::io::Result<()> {
        let dir = match self.file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        crate::config::ensure_runtime_dir(dir)?;
        let stored = CacheFile {
            format: FORMAT,
            entries: self.entries.values().cloned().collect(),
        };
        // Created 0600 by tempfile: the cache is the agent's own business.
        let mut temp = tempfile::Builder::new()
            .prefix(".plugin-probe-cache.")
            .tempfile_in(dir)?;
        serde_json::to_writer_pretty(&mut temp, &stored)?;
        temp.write_all(b"\n")?;
        // No fsync: a cache a power cut empties or truncates is ignored and rebuilt.
        temp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

fn is_hang(refusal: &Refusal) -> bool {
    matches!(refusal, Refusal::Hung { .. })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "waldur-agent test";
    const TIMEOUT: Duration = Duration::from_secs(20);
    const CRASHED: Refusal = Refusal::Crashed { signal: 6 };

    #[test]
    fn a_refusal_is_remembered_across_loads_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("p.so");
        std::fs::write(&plugin, b"one").unwrap();
        let file = dir.path().join("run").join(CACHE_FILE_NAME);

        let mut cache = ProbeCache::load(&file, AGENT);
        let identity = FileIdentity::of(&plugin).unwrap();
        assert_eq!(cache.lookup(&identity, TIMEOUT), None);
        cache.remember(identity.clone(), &CRASHED, TIMEOUT);
        cache.save();
        assert!(file.is_file(), "the runtime directory is created");

        let cache = ProbeCache::load(&file, AGENT);
        assert_eq!(cache.lookup(&identity, TIMEOUT), Some(CRASHED));
        assert!(!cache.dirty, "an unchanged cache is not rewritten");
        // Another agent judges afresh.
        let other = ProbeCache::load(&file, "waldur-agent other");
        assert_eq!(other.lookup(&identity, TIMEOUT), None);
        assert!(other.dirty);

        // Same size, new content: a new ctime at least.
        std::thread::sleep(Duration::from_millis(10));
        std::fs::write(&plugin, b"two").unwrap();
        let changed = FileIdentity::of(&plugin).unwrap();
        assert_ne!(changed, identity);
        let cache = ProbeCache::load(&file, AGENT);
        assert_eq!(cache.lookup(&changed, TIMEOUT), None);
        assert!(cache.dirty, "the stale entry is dropped");
    }

    #[test]
    fn a_hang_holds_for_its_timeout_and_shorter_ones() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("p.so");
        std::fs::write(&plugin, b"x").unwrap();
        let identity = FileIdentity::of(&plugin).unwrap();
        let mut cache = ProbeCache::load(&dir.path().join(CACHE_FILE_NAME), AGENT);
        cache.remember(
            identity.clone(),
            &Refusal::Hung { seconds: 5 },
            Duration::from_secs(5),
        );
        assert!(cache.lookup(&identity, Duration::from_secs(5)).is_some());
        assert!(cache.lookup(&identity, Duration::from_secs(1)).is_some());
        assert_eq!(cache.lookup(&identity, Duration::from_secs(6)), None);
        cache.forget(&identity.path);
        assert_eq!(cache.lookup(&identity, Duration::from_secs(1)), None);
    }

    #[test]
    fn a_corrupt_or_foreign_cache_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CACHE_FILE_NAME);
        for bytes in [
            &b"{\"format\": 2, \"entr"[..],
            b"[]",
            b"{\"format\": 99, \"entries\": []}",
        ] {
            std::fs::write(&file, bytes).unwrap();
            let mut cache = ProbeCache::load(&file, AGENT);
            assert!(cache.entries.is_empty());
            cache.save();
            let stored: CacheFile = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            assert_eq!(stored.format, FORMAT);
        }
    }

    #[test]
    fn a_cache_that_cannot_be_written_is_only_logged() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let plugin = dir.path().join("p.so");
        std::fs::write(&plugin, b"x").unwrap();
        let mut cache = ProbeCache::load(&blocker.join("run").join(CACHE_FILE_NAME), AGENT);
        cache.remember(
            FileIdentity::of(&plugin).unwrap(),
            &Refusal::NotElf,
            TIMEOUT,
        );
        cache.save();
        assert!(cache.dirty);
    }

    #[test]
    fn paths_that_are_not_utf8_round_trip() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9\nx.so"));
        std::fs::write(&plugin, b"x").unwrap();
        let identity = FileIdentity::of(&plugin).unwrap();
        let file = dir.path().join(CACHE_FILE_NAME);
        let mut cache = ProbeCache::load(&file, AGENT);
        cache.remember(identity.clone(), &CRASHED, TIMEOUT);
        cache.save();
        assert!(ProbeCache::load(&file, AGENT)
            .lookup(&identity, TIMEOUT)
            .is_some());
    }
}
