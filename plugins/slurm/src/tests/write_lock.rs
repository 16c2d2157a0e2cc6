//! The cross-process sacctmgr write lock: in the runtime directory the host passes in the
//! runtime context, the file the real-SLURM test helpers lock too.

use std::fs::OpenOptions;
use std::sync::mpsc;
use std::time::Duration;

use waldur_plugin_abi::wire::RuntimeContext;
use waldur_plugin_abi::Backend;

use super::{golden_components, golden_settings, setup};
use crate::client::WRITE_LOCK_FILE;

#[test]
fn the_lock_file_is_the_one_the_test_helpers_take() {
    assert_eq!(
        WRITE_LOCK_FILE,
        waldur_test_support::slurm::SACCTMGR_WRITE_LOCK
    );
}

#[test]
fn writes_wait_for_the_lock_in_the_runtime_directory() {
    let runtime = tempfile::tempdir().unwrap();
    let (runner, slurm) = setup(golden_settings(), golden_components());
    slurm
        .set_runtime_context(RuntimeContext {
            runtime_dir: Some(runtime.path().display().to_string()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(slurm.client().write_lock_dir(), runtime.path());

    // Another agent process holds the lock: the write must not run until it is released.
    let held = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(runtime.path().join(WRITE_LOCK_FILE))
        .unwrap();
    held.lock().unwrap();
    let (done_tx, done) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let answer = slurm.client().delete_resource("acc_blocked");
            done_tx.send(answer.is_ok()).unwrap();
        });
        assert!(
            done.recv_timeout(Duration::from_millis(300)).is_err(),
            "the write ran while another process held the lock"
        );
        assert!(runner.calls().iter().all(|c| !c.contains("acc_blocked")));
        held.unlock().unwrap();
        assert!(done.recv_timeout(Duration::from_secs(10)).unwrap());
    });
    assert!(runner.calls().iter().any(|c| c.contains("acc_blocked")));
}

#[test]
fn without_a_runtime_directory_the_lock_falls_back_to_the_temp_directory() {
    let (_, slurm) = setup(golden_settings(), golden_components());
    slurm
        .set_runtime_context(RuntimeContext::default())
        .unwrap();
    assert_eq!(slurm.client().write_lock_dir(), std::env::temp_dir());
}
