//! `state.json` on disk: locked, atomically replaced, shared by every agent process.
//!
//! The agent may run each mode in its own process on the same state directory, so every
//! access takes an advisory lock on `state.lock` (shared to read, exclusive to change) for the
//! whole load-change-save sequence. Writes go to a temporary file that is renamed over
//! `state.json`, so a reader (or a crash) never sees half a file.
//!
//! Parsing the file is the expensive part once it holds thousands of accounts, so the parsed
//! state is kept in memory and reused while the file on disk is the one it was read from
//! (same inode, size, mtime and ctime: every writer replaces the file by rename).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use waldur_plugin_abi::{Error, Result};

use crate::state::State;

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "state.lock";
pub const USAGE_DIR: &str = "usage";

/// Handle on one state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    /// Serialises this process's accesses to `dir`. The file lock alone would do on Linux
    /// (flock locks belong to the open file, so two opens in one process exclude each other),
    /// but on platforms where the lock is per process it would let two threads in at once.
    /// It is shared by every store on the same directory: the agent builds one backend
    /// instance per mode, all in one process when modes run together. It also holds the
    /// last state this process read or wrote.
    guard: Arc<Mutex<Option<Cached>>>,
}

/// A parsed `state.json` and the identity of the file it came from.
#[derive(Debug)]
struct Cached {
    stamp: FileStamp,
    state: Arc<State>,
}

/// What changes whenever `state.json` is replaced or edited in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl StateStore {
    /// Opens `dir`, creating it first when `create` is set. A missing or unwritable directory
    /// is an INVALID_SETTINGS error: the backend could not work at all.
    pub fn open(dir: &Path, create: bool) -> Result<Self> {
        let invalid = |what: String| Error::invalid_settings(format!("demo: state_dir {what}"));
        if create {
            fs::create_dir_all(dir)
                .map_err(|e| invalid(format!("{} cannot be created: {e}", dir.display())))?;
        }
        let meta = fs::metadata(dir).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => invalid(format!(
                "{} does not exist (create it or set create_state_dir: true)",
                dir.display()
            )),
            _ => invalid(format!("{} is not accessible: {e}", dir.display())),
        })?;
        if !meta.is_dir() {
            return Err(invalid(format!("{} is not a directory", dir.display())));
        }
        // Writing the lock file is not enough proof (it may already exist): the state file is
        // replaced by rename, which needs a new file in the directory.
        let probe = dir.join(format!(".write-probe.{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| invalid(format!("{} is not writable: {e}", dir.display())))?;
        let dir = fs::canonicalize(dir)
            .map_err(|e| invalid(format!("{} is not accessible: {e}", dir.display())))?;
        let guard = guard_for(&dir);
        let store = Self { dir, guard };
        store
            .lock_file()
            .map_err(|e| invalid(format!("lock file cannot be opened: {e}")))?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn usage_dir(&self) -> PathBuf {
        self.dir.join(USAGE_DIR)
    }

    /// Runs `f` on the current state under a shared lock.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> Result<T>) -> Result<T> {
        let mut cache = self.in_process_guard();
        let lock = self
            .lock_file()
            .map_err(|e| self.io_error("open lock file", e))?;
        lock.lock_shared()
            .map_err(|e| self.io_error("lock (shared)", e))?;
        let state = self.load(&mut cache)?;
        f(&state)
        // `lock` is dropped (closed, hence unlocked) here.
    }

    /// Runs `f` on the current state under an exclusive lock and saves the result when `f`
    /// succeeded and changed something. A failing `f` leaves the file untouched, so an
    /// operation is all or nothing.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut cache = self.in_process_guard();
        let lock = self
            .lock_file()
            .map_err(|e| self.io_error("open lock file", e))?;
        lock.lock().map_err(|e| self.io_error("lock", e))?;
        let before = self.load(&mut cache)?;
        let mut state = State::clone(&before);
        let answer = f(&mut state)?;
        if state != *before {
            self.save(state, &mut cache)?;
        }
        Ok(answer)
    }

    fn in_process_guard(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        // A panic while holding the guard poisons it, but cannot have left a half-written
        // file (writes are atomic), so the guard is still good to use.
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(LOCK_FILE))
    }

    /// The current state: the cached one while the file is unchanged, else parsed afresh.
    fn load(&self, cache: &mut Option<Cached>) -> Result<Arc<State>> {
        let path = self.state_path();
        let mut file = match File::open(&path) {
            Ok(file) => file,
            // No file yet: an empty backend.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                *cache = None;
                return Ok(Arc::default());
            }
            Err(e) => return Err(self.io_error("read state file", e)),
        };
        let stamp = file
            .metadata()
            .map(|meta| FileStamp::of(&meta))
            .map_err(|e| self.io_error("read state file", e))?;
        if let Some(cached) = cache.as_ref().filter(|c| c.stamp == stamp) {
            return Ok(Arc::clone(&cached.state));
        }
        let mut text = Vec::with_capacity(stamp.len as usize);
        io::Read::read_to_end(&mut file, &mut text)
            .map_err(|e| self.io_error("read state file", e))?;
        let corrupt = |why: String| {
            Error::backend(format!(
                "demo: state file {} is corrupt: {why}; fix or remove it",
                path.display()
            ))
        };
        let state: State = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        state.check().map_err(corrupt)?;
        let state = Arc::new(state);
        *cache = Some(Cached {
            stamp,
            state: Arc::clone(&state),
        });
        Ok(state)
    }

    fn save(&self, state: State, cache: &mut Option<Cached>) -> Result<()> {
        // Whatever happens below, the cache must not outlive the file it describes.
        *cache = None;
        let mut text = serde_json::to_vec_pretty(&state)
            .map_err(|e| Error::internal(format!("demo: cannot encode the state: {e}")))?;
        text.push(b'\n');
        let tmp = self
            .dir
            .join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
        let written = File::create(&tmp).and_then(|mut file| {
            file.write_all(&text)?;
            // On disk before the rename, or a crash could leave an empty state.json.
            file.sync_all()?;
            fs::rename(&tmp, self.state_path())?;
            // The renamed file keeps its inode, so this is the stamp of `state.json`.
            file.metadata()
        });
        let stamp = match written {
            Ok(meta) => FileStamp::of(&meta),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(self.io_error("write state file", e));
            }
        };
        *cache = Some(Cached {
            stamp,
            state: Arc::new(state),
        });
        // Makes the rename itself durable; failing here loses nothing already visible.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn io_error(&self, what: &str, e: io::Error) -> Error {
        Error::backend(format!(
            "demo: cannot {what} in {}: {e}",
            self.dir.display()
        ))
    }
}

/// The in-process guard of a directory, shared by every store opened on it.
fn guard_for(dir: &Path) -> Arc<Mutex<Option<Cached>>> {
    type Guards = HashMap<PathBuf, Arc<Mutex<Option<Cached>>>>;
    static GUARDS: OnceLock<Mutex<Guards>> = OnceLock::new();
    let mut guards = GUARDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    guards.entry(dir.to_path_buf()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs::TryLockError;

    use crate::state::Qos;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path(), false).unwrap();
        (dir, store)
    }

    #[test]
    fn round_trip() {
        let (_dir, store) = store();
        store
            .update(|s| {
                s.create_account("c", "Customer", "c", Some("root"), "root")?;
                s.create_account("a", "Alloc", "c", Some("c"), "root")?;
                s.set_limits("a", &BTreeMap::from([("cpu".into(), 600)]))?;
                s.associate("alice", "a", "root")?;
                s.set_qos("a", Qos::Paused)?;
                s.record_homedir("alice", "0077")
            })
            .unwrap();
        let reopened = StateStore::open(store.dir(), false).unwrap();
        let state = reopened.read(|s| Ok(s.clone())).unwrap();
        let a = state.account("a").unwrap();
        assert_eq!(a.parent.as_deref(), Some("c"));
        assert_eq!(a.limits["cpu"], 600);
        assert_eq!(a.qos, Qos::Paused);
        assert!(a.users.contains_key("alice"));
        assert_eq!(state.homedirs["alice"].umask, "0077");
        // The file is what the README documents.
        let raw: serde_json::Value =
            serde_json::from_slice(&fs::read(store.state_path()).unwrap()).unwrap();
        assert_eq!(raw["accounts"]["a"]["qos"], "paused");
        assert_eq!(raw["version"], 1);
    }

    #[test]
    fn missing_file_is_an_empty_backend_and_reads_do_not_create_it() {
        let (_dir, store) = store();
        assert!(store.read(|s| Ok(s.accounts.is_empty())).unwrap());
        assert!(!store.state_path().exists());
    }

    #[test]
    fn failed_operations_change_nothing() {
        let (_dir, store) = store();
        let err = store
            .update(|s| {
                s.create_account("x", "", "x", None, "root")?;
                s.create_account("x", "", "x", None, "root")
            })
            .unwrap_err();
        assert!(err.message.contains("already exists"));
        assert!(!store.state_path().exists());
    }

    #[test]
    fn changes_made_by_others_are_seen_despite_the_cached_state() {
        let (_dir, store) = store();
        let other = StateStore::open(store.dir(), false).unwrap();
        store
            .update(|s| s.create_account("a", "A", "a", None, "root"))
            .unwrap();
        assert!(store.read(|s| Ok(s.account("a").is_ok())).unwrap());
        // An operator's in-place edit (same inode): the cache must not hide it.
        let text = fs::read_to_string(store.state_path()).unwrap();
        fs::write(store.state_path(), text.replace("\"a\"", "\"b\"")).unwrap();
        let names = |s: &State| Ok(s.accounts.keys().cloned().collect::<Vec<_>>());
        assert_eq!(store.read(names).unwrap(), vec!["b"]);
        // A replacement by rename, as another process's update does.
        let replaced = store.dir().join("replacement.json");
        fs::write(&replaced, text.replace("\"a\"", "\"c\"")).unwrap();
        fs::rename(&replaced, store.state_path()).unwrap();
        assert_eq!(other.read(names).unwrap(), vec!["c"]);
        // Deleting the file empties the backend.
        fs::remove_file(store.state_path()).unwrap();
        assert!(store.read(names).unwrap().is_empty());
    }

    #[test]
    fn corrupt_state_is_a_backend_error() {
        let (_dir, store) = store();
        fs::write(store.state_path(), "{\"version\": 1, \"accounts\": [").unwrap();
        let err = store.read(|_| Ok(())).unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::BACKEND);
        assert!(
            err.message.starts_with("demo: state file "),
            "{}",
            err.message
        );
        assert!(err.message.contains("is corrupt"), "{}", err.message);
        // Updates refuse too, and leave the broken file for the operator to inspect.
        assert!(store.update(|_| Ok(())).is_err());
        fs::write(store.state_path(), "{\"version\": 7}").unwrap();
        let err = store.read(|_| Ok(())).unwrap_err();
        assert!(
            err.message.contains("unsupported version 7"),
            "{}",
            err.message
        );
    }

    #[test]
    fn update_holds_the_file_lock() {
        let (_dir, store) = store();
        let lock_path = store.dir().join(LOCK_FILE);
        store
            .update(|_| {
                // Another open file description, as another process would have.
                let other = File::open(&lock_path).unwrap();
                assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
                assert!(matches!(
                    other.try_lock_shared(),
                    Err(TryLockError::WouldBlock)
                ));
                Ok(())
            })
            .unwrap();
        store
            .read(|_| {
                let other = File::open(&lock_path).unwrap();
                // Readers share, writers wait.
                other.try_lock_shared().unwrap();
                other.unlock().unwrap();
                assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let (_dir, store) = store();
        store
            .update(|s| s.create_account("a", "", "a", None, "root"))
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                // A separate store per thread, as separate backend instances would have.
                let store = StateStore::open(store.dir(), false).unwrap();
                std::thread::spawn(move || increment(&store, 25))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let cpu = store.read(|s| Ok(s.account("a")?.limits["cpu"])).unwrap();
        assert_eq!(cpu, 100);
    }

    fn increment(store: &StateStore, times: usize) {
        for _ in 0..times {
            store
                .update(|s| {
                    let cpu = s.account("a")?.limits.get("cpu").copied().unwrap_or(0);
                    s.set_limits("a", &BTreeMap::from([("cpu".into(), cpu + 1)]))
                })
                .unwrap();
        }
    }

    /// Run by `separate_processes_lose_nothing` in child processes; skipped otherwise.
    #[test]
    #[ignore = "helper: run as a child process"]
    fn child_process_increments() {
        if let Ok(dir) = std::env::var("DEMO_TEST_STATE_DIR") {
            increment(&StateStore::open(Path::new(&dir), false).unwrap(), 25);
        }
    }

    #[test]
    fn separate_processes_lose_nothing() {
        // What the agent does when each mode runs in its own process.
        let (_dir, store) = store();
        store
            .update(|s| s.create_account("a", "", "a", None, "root"))
            .unwrap();
        let children: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "store::tests::child_process_increments"])
                    .args(["--ignored", "--quiet", "--test-threads=1"])
                    .env("DEMO_TEST_STATE_DIR", store.dir())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        increment(&store, 25);
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let cpu = store.read(|s| Ok(s.account("a")?.limits["cpu"])).unwrap();
        assert_eq!(cpu, 100);
    }

    #[test]
    fn missing_or_unusable_dirs_are_invalid_settings() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = StateStore::open(&missing, false).unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::INVALID_SETTINGS);
        assert!(err.message.contains("does not exist"), "{}", err.message);
        assert!(!err.message.contains('\n'));
        StateStore::open(&missing, true).unwrap();
        assert!(missing.is_dir());

        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let err = StateStore::open(&file, false).unwrap_err();
        assert!(
            err.message.contains("is not a directory"),
            "{}",
            err.message
        );
        // Under a regular file nothing can be created, even by root (tests may run as root,
        // where permission bits would not stop a write).
        let err = StateStore::open(&file.join("sub"), true).unwrap_err();
        assert_eq!(err.kind, waldur_plugin_abi::ErrorKind::INVALID_SETTINGS);
        assert!(err.message.contains("cannot be created"), "{}", err.message);
    }
}
