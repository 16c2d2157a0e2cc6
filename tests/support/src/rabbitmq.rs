//! Tests against a REAL RabbitMQ (started by `scripts/rabbitmq-setup.sh`): Web-STOMP for the
//! agent's STOMP client, the management API for the tests' own setup and checks.
//!
//! - [`require_real_rabbitmq`] gates a test: `None` (the test returns) when the broker does
//!   not answer, except under `CI=true`, where that is a failure.
//! - [`require_real_rabbitmq_exclusive`] is for tests that stop, restart or pause the broker:
//!   it waits until no other test of this process uses the broker, and the others wait for it.
//!   Every [`RealRabbit`] holds its share until dropped, so hold it for the whole test. When an
//!   exclusive test ends (or fails) with the broker stopped or paused, the drop starts or
//!   resumes it. Test binaries run one after another under `cargo test`, so this is enough
//!   for the workspace's suite.
//! - [`TestAccount`]: a vhost and a user of its own per test (unique names: tests run in
//!   parallel), deleted when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub use waldur_sim::broker::{BrokerAdmin, BrokerConfig, QueueCounts};

/// Web-STOMP, as scripts/rabbitmq-setup.sh configures it.
pub const WS_URL: &str = "ws://127.0.0.1:15674/ws";
pub const WS_PORT: u16 = 15674;
pub const STOMP_PORT: u16 = 61613;
pub const MANAGEMENT_PORT: u16 = 15672;
pub const MANAGEMENT_URL: &str = "http://127.0.0.1:15672";
/// The administrator the script creates (overridable there and here with the same variables).
pub const DEFAULT_ADMIN_USER: &str = "waldur-admin";
pub const DEFAULT_ADMIN_PASSWORD: &str = "waldur-admin-test";

/// The broker a test runs against, with the test's share of it.
pub struct RealRabbit {
    pub ws_url: String,
    pub stomp_port: u16,
    pub management_url: String,
    pub admin_user: String,
    pub admin_password: String,
    admin: BrokerAdmin,
    hold: Hold,
    /// Exclusive holders only: the broker may be stopped / paused by this test.
    stopped: AtomicBool,
    paused: AtomicBool,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn admin_credentials() -> (String, String) {
    (
        env_or("RABBITMQ_ADMIN_USER", DEFAULT_ADMIN_USER),
        env_or("RABBITMQ_ADMIN_PASSWORD", DEFAULT_ADMIN_PASSWORD),
    )
}

/// The management API of the broker scripts/rabbitmq-setup.sh starts, with its administrator.
pub fn broker_config() -> BrokerConfig {
    let (admin_user, admin_password) = admin_credentials();
    BrokerConfig {
        management_url: MANAGEMENT_URL.to_string(),
        admin_user,
        admin_password,
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The status line of the answer to a raw HTTP/1.1 request on 127.0.0.1 (synchronous, so the
/// gate works in any test, inside a runtime or not).
fn status_line(port: u16, request: &str) -> Result<String, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") && answer.len() < 200 {
        match stream.read(&mut byte) {
            Ok(1) => answer.push(byte[0]),
            Ok(_) => break,
            Err(e) => return Err(format!("127.0.0.1:{port}: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&answer).trim().to_string())
}

/// What `scripts/rabbitmq-setup.sh status` checks: a WebSocket upgrade on /ws and the
/// administrator on the management API.
fn probe() -> Result<(), String> {
    let ws = status_line(
        WS_PORT,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{WS_PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: d2FsZHVyLWFnZW50LXRlc3Q=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )?;
    if !ws.starts_with("HTTP/1.1 101") {
        return Err(format!("Web-STOMP answered {ws:?} to a WebSocket upgrade"));
    }
    let (user, password) = admin_credentials();
    let auth = base64(format!("{user}:{password}").as_bytes());
    let api = status_line(
        MANAGEMENT_PORT,
        &format!(
            "GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1:{MANAGEMENT_PORT}\r\n\
             Authorization: Basic {auth}\r\nConnection: close\r\n\r\n"
        ),
    )?;
    if !api.starts_with("HTTP/1.1 200") {
        return Err(format!("the management API answered {api:?} for {user}"));
    }
    Ok(())
}

// ------------------------------------------------------------------ sharing the broker

struct LockState {
    shared: usize,
    exclusive: bool,
    exclusive_waiting: usize,
}

static LOCK: Mutex<LockState> = Mutex::new(LockState {
    shared: 0,
    exclusive: false,
    exclusive_waiting: 0,
});
static LOCK_CHANGED: Condvar = Condvar::new();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldKind {
    Shared,
    Exclusive,
}

/// A share of the broker; released on drop. (Blocks while waiting: call it before the test
/// starts anything of its own.)
struct Hold(HoldKind);

impl Hold {
    fn take(kind: HoldKind) -> Hold {
        let mut state = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            HoldKind::Shared => {
                // Waiting exclusive tests go first, so they are not starved.
                while state.exclusive || state.exclusive_waiting > 0 {
                    state = LOCK_CHANGED.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.shared += 1;
            }
            HoldKind::Exclusive => {
                state.exclusive_waiting += 1;
                while state.exclusive || state.shared > 0 {
                    state = LOCK_CHANGED.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.exclusive_waiting -= 1;
                state.exclusive = true;
            }
        }
        Hold(kind)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut state = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        match self.0 {
            HoldKind::Shared => state.shared -= 1,
            HoldKind::Exclusive => state.exclusive = false,
        }
        LOCK_CHANGED.notify_all();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn require(kind: HoldKind) -> Option<RealRabbit> {
    let hold = Hold::take(kind);
    let missing = if kind == HoldKind::Exclusive && !is_root() {
        Err("not root: the broker cannot be stopped and started".to_string())
    } else {
        probe()
    };
    if let Err(reason) = missing {
        if in_ci() {
            panic!(
                "real RabbitMQ is not usable: start it with scripts/rabbitmq-setup.sh ({reason})"
            )
        }
        eprintln!("SKIPPED: real RabbitMQ is not usable ({reason}); start it with scripts/rabbitmq-setup.sh");
        return None;
    }
    let config = broker_config();
    Some(RealRabbit {
        ws_url: WS_URL.to_string(),
        stomp_port: STOMP_PORT,
        management_url: config.management_url.clone(),
        admin_user: config.admin_user.clone(),
        admin_password: config.admin_password.clone(),
        admin: BrokerAdmin::new(config),
        hold,
        stopped: AtomicBool::new(false),
        paused: AtomicBool::new(false),
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `Some` when real RabbitMQ answers (Web-STOMP and the management API). Otherwise prints a
/// skip line and answers `None`, or PANICS when `CI=true`. Waits while an exclusive test of
/// this process has the broker.
pub fn require_real_rabbitmq() -> Option<RealRabbit> {
    require(HoldKind::Shared)
}

/// Like [`require_real_rabbitmq`], for a test that stops, restarts or pauses the broker (and
/// must run as root): no other test of this process uses the broker meanwhile.
pub fn require_real_rabbitmq_exclusive() -> Option<RealRabbit> {
    require(HoldKind::Exclusive)
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<n>-<time>`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{}-{millis}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn script() -> PathBuf {
    crate::workspace_root().join("scripts/rabbitmq-setup.sh")
}

fn run_script(action: &str) {
    let output = Command::new("bash")
        .arg(script())
        .arg(action)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/rabbitmq-setup.sh {action}: {e}"));
    assert!(
        output.status.success(),
        "scripts/rabbitmq-setup.sh {action} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The beam process of the node, from the script's PID file.
fn node_pid() -> Option<String> {
    let state = env_or("RABBITMQ_STATE", "/tmp/waldur-agent-rabbitmq");
    let pid = std::fs::read_to_string(PathBuf::from(state).join("run/node.pid")).ok()?;
    Some(pid.trim().to_string())
}

fn signal_node(signal: &str) {
    let pid = node_pid().expect("the node's PID file (scripts/rabbitmq-setup.sh writes it)");
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A vhost and a user with every permission in it, like the account Mastermind creates for an
/// agent; removed (both) when dropped.
#[derive(Debug)]
pub struct TestAccount {
    pub vhost: String,
    pub user: String,
    pub password: String,
}

impl Drop for TestAccount {
    fn drop(&mut self) {
        // A thread of its own with a fresh client: drop may run inside the test's runtime.
        let (vhost, user) = (self.vhost.clone(), self.user.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the clean-up");
            runtime.block_on(async {
                let admin = BrokerAdmin::new(broker_config());
                let _ = admin.delete_vhost(&vhost).await;
                let _ = admin.delete_user(&user).await;
            });
        });
        let _ = cleanup.join();
    }
}

impl RealRabbit {
    /// The management API client (also what the Waldur simulator takes).
    pub fn admin(&self) -> &BrokerAdmin {
        &self.admin
    }

    /// The management API's address and administrator, for [`waldur_sim`]'s broker.
    pub fn broker_config(&self) -> BrokerConfig {
        broker_config()
    }

    /// A fresh vhost and user (names from `prefix`, see [`unique_name`]).
    pub async fn account(&self, prefix: &str) -> TestAccount {
        let name = unique_name(prefix);
        let account = TestAccount {
            vhost: format!("{name}-vh"),
            user: format!("{name}-user"),
            password: format!("{name}-token"),
        };
        self.admin
            .ensure_account(&account.vhost, &account.user, &account.password)
            .await
            .unwrap_or_else(|e| panic!("create vhost {}: {e}", account.vhost));
        account
    }

    /// A durable queue, as Mastermind declares it.
    pub async fn declare_queue(&self, vhost: &str, queue: &str) {
        self.admin
            .declare_queue(vhost, queue)
            .await
            .unwrap_or_else(|e| panic!("declare queue {queue} in {vhost}: {e}"));
    }

    /// Publishes `body` to `queue` through the default exchange (persistent); panics unless
    /// the broker routed it to the queue.
    pub async fn publish(&self, vhost: &str, queue: &str, body: &str) {
        let routed = self
            .admin
            .publish(vhost, queue, body)
            .await
            .unwrap_or_else(|e| panic!("publish to {queue} in {vhost}: {e}"));
        assert!(
            routed,
            "the broker did not route the message to {queue} in {vhost}"
        );
    }

    /// The queue's counts as of the last statistics refresh (`None` before the first).
    pub async fn queue_counts(&self, vhost: &str, queue: &str) -> Option<QueueCounts> {
        self.admin
            .queue_counts(vhost, queue)
            .await
            .unwrap_or_else(|e| panic!("counts of {queue} in {vhost}: {e}"))
    }

    /// Waits (up to `within`) until the queue has exactly `ready` ready and `unacked`
    /// unacknowledged messages; panics with the last counts otherwise.
    pub async fn wait_for_counts(
        &self,
        vhost: &str,
        queue: &str,
        ready: u64,
        unacked: u64,
        within: Duration,
    ) {
        let expected = QueueCounts { ready, unacked };
        let deadline = Instant::now() + within;
        loop {
            let seen = self.queue_counts(vhost, queue).await;
            if seen == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue {queue} in {vhost}: expected {expected:?} within {within:?}, the management API says {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn delete_vhost(&self, vhost: &str) {
        self.admin
            .delete_vhost(vhost)
            .await
            .unwrap_or_else(|e| panic!("delete vhost {vhost}: {e}"));
    }

    fn assert_exclusive(&self, what: &str) {
        assert_eq!(
            self.hold.0,
            HoldKind::Exclusive,
            "{what} needs require_real_rabbitmq_exclusive()"
        );
    }

    /// Stops the broker (`scripts/rabbitmq-setup.sh stop`: a clean shutdown).
    pub async fn stop_broker(&self) {
        self.assert_exclusive("stop_broker");
        self.stopped.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(|| run_script("stop"))
            .await
            .expect("stop the broker");
    }

    /// Starts the broker and waits until it answers.
    pub async fn start_broker(&self) {
        self.assert_exclusive("start_broker");
        tokio::task::spawn_blocking(|| run_script("start"))
            .await
            .expect("start the broker");
        self.stopped.store(false, Ordering::SeqCst);
    }

    pub async fn restart_broker(&self) {
        self.stop_broker().await;
        self.start_broker().await;
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing arrives, as with a
    /// hung broker or a dead network path.
    pub fn pause_broker(&self) {
        self.assert_exclusive("pause_broker");
        signal_node("-STOP");
        self.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume_broker(&self) {
        self.assert_exclusive("resume_broker");
        signal_node("-CONT");
        self.paused.store(false, Ordering::SeqCst);
    }
}

impl Drop for RealRabbit {
    fn drop(&mut self) {
        // An exclusive test that failed half-way leaves the broker as the next tests need it.
        if let Some(pid) = node_pid().filter(|_| self.paused.load(Ordering::SeqCst)) {
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
        if self.stopped.load(Ordering::SeqCst) {
            // No panic in drop (it may run while the test panics).
            let _ = Command::new("bash").arg(script()).arg("start").status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(b"waldur-admin:waldur-admin-test"),
            "d2FsZHVyLWFkbWluOndhbGR1ci1hZG1pbi10ZXN0"
        );
    }

    #[test]
    fn exclusive_waits_for_shared_holders() {
        let shared = Hold::take(HoldKind::Shared);
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _exclusive = Hold::take(HoldKind::Exclusive);
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(shared);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("exclusive after the share ended");
        waiter.join().unwrap();
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
    }

    /// The gate agrees with the broker: under CI=true (scripts/test.sh starts RabbitMQ)
    /// the broker is there and the management API works.
    #[test]
    fn gate_and_management_api() {
        let Some(rabbit) = require_real_rabbitmq() else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let account = rabbit.account("support").await;
            rabbit.declare_queue(&account.vhost, "q").await;
            rabbit.publish(&account.vhost, "q", "{}").await;
            rabbit
                .wait_for_counts(&account.vhost, "q", 1, 0, Duration::from_secs(10))
                .await;
        });
    }
}
