//! One agent per (offering, mode) on a machine.
//!
//! A unit started twice, or a cron job beside the unit, would process the same orders and
//! send the same usage twice. Each (mode, offering) an agent runs is an exclusive `flock` on a
//! file under `<runtime_dir>/locks/`; the holder's PID is written into it so a second agent
//! can say who holds it. The kernel drops the lock when the holder exits, however it exits
//! (a `kill -9` included), so there is never a stale lock to clean up.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::Offering;

/// The locks this process holds; dropping it releases them.
#[derive(Debug)]
pub struct InstanceLocks {
    _files: Vec<File>,
}

/// Why the agent must not start.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another agent (PID {holder}) is already running {mode} for offering '{offering}' \
         on this machine (lock {}); stop it first, or run one agent per offering and mode",
        path.display()
    )]
    Held {
        holder: String,
        mode: &'static str,
        offering: String,
        path: PathBuf,
    },
    #[error("cannot take the instance lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock of every `(mode name, offering)` pair, or none: on the first one held by
/// another process the ones taken so far are released and the error names the holder.
pub fn acquire<'a>(
    runtime_dir: &Path,
    pairs: impl IntoIterator<Item = (&'static str, &'a Offering)>,
) -> Result<InstanceLocks, LockError> {
    let dir = runtime_dir.join("locks");
    crate::config::ensure_runtime_dir(&dir).map_err(|source| LockError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for (mode, offering) in pairs {
        let path = dir.join(lock_file_name(mode, offering));
        files.push(lock_one(&path, mode, offering)?);
    }
    Ok(InstanceLocks { _files: files })
}

fn lock_one(path: &Path, mode: &'static str, offering: &Offering) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.chars().take(20).collect()
                },
                mode,
                offering: offering.name.clone(),
                path: path.to_path_buf(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: say who we are for the next one who asks.
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// `<mode>-<offering uuid>-<hash of the API URL>.lock`: the same offering uuid on two Waldur
/// servers is two offerings. The hash is FNV-1a, spelled out so that every agent version
/// computes the same name.
fn lock_file_name(mode: &str, offering: &Offering) -> String {
    let url = offering.waldur_api_url.trim().trim_end_matches('/');
    let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let uuid: String = offering
        .waldur_offering_uuid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(64)
        .collect();
    format!("{mode}-{uuid}-{hash:016x}.lock")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::runtime::Mode;

    fn offering(name: &str, url: &str, uuid: &str) -> Offering {
        Offering {
            name: name.into(),
            waldur_api_url: url.into(),
            waldur_offering_uuid: uuid.into(),
            ..Offering::default()
        }
    }

    #[test]
    fn a_held_lock_names_its_holder_and_frees_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let a = offering("A", "https://w/api/", "0f01");
        let b = offering("B", "https://w/api/", "0f02");
        let held = acquire(dir.path(), [(Mode::Report.name(), &b)]).unwrap();
        // Locks are per open file, so a second acquisition in this process conflicts too.
        let err = acquire(
            dir.path(),
            [(Mode::Report.name(), &a), (Mode::Report.name(), &b)],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("PID {}", std::process::id()))
                && text.contains("report for offering 'B'"),
            "{text}"
        );
        assert!(!text.contains('\n'));
        // A's lock was released with the failed acquisition.
        drop(acquire(dir.path(), [(Mode::Report.name(), &a)]).unwrap());
        // Other modes and other servers are other locks.
        let other_server = offering("B", "https://x/api/", "0f02");
        drop(
            acquire(
                dir.path(),
                [
                    (Mode::OrderProcess.name(), &b),
                    (Mode::Report.name(), &other_server),
                ],
            )
            .unwrap(),
        );
        drop(held);
        drop(acquire(dir.path(), [(Mode::Report.name(), &b)]).unwrap());
    }

    #[test]
    fn lock_names_are_stable_and_safe() {
        let o = offering("A", "https://waldur.example.org/api/", "0F0F-../x");
        assert_eq!(
            lock_file_name(Mode::OrderProcess.name(), &o),
            lock_file_name(
                Mode::OrderProcess.name(),
                &offering("A", "https://waldur.example.org/api", "0F0F-../x")
            )
        );
        let name = lock_file_name(Mode::OrderProcess.name(), &o);
        assert!(name.starts_with("order_process-0f0fx-"), "{name}");
        assert!(!name.contains('/'));
    }
}
