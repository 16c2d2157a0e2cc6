//! The host's `client_execute_command`: the reference BaseClient's concrete
//! `execute_command` (`subprocess.check_output(argv, stderr=STDOUT)`), plus a timeout.
//!
//! No shell is involved: `argv[0]` is the program, the rest are its arguments verbatim.
//! stdout and stderr share ONE pipe, so the output interleaves exactly as the command wrote
//! it (parsers of `sacctmgr` and friends see what the reference saw). The reference waits
//! forever; a hung backend command would stall a whole agent mode, so here the command, and
//! everything it started in its process group, is killed after the timeout.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waldur_plugin_abi::wire::JsonMap;
use waldur_plugin_abi::Error as AbiError;

/// The `backend_settings` key (seconds, may be fractional) bounding every host-run command.
pub const COMMAND_TIMEOUT_SETTING: &str = "command_timeout_seconds";

/// Without the setting: long enough for a slow `sacctmgr` on a busy controller.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest pause between two checks whether a command that closed its output has exited.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Reads the timeout from the settings; an unusable value is reported and ignored.
pub(super) fn timeout_from_settings(entry: &str, settings: &JsonMap) -> Duration {
    let value = match settings.get(COMMAND_TIMEOUT_SETTING) {
        None | Some(Value::Null) => return DEFAULT_COMMAND_TIMEOUT,
        Some(value) => value,
    };
    match value.as_f64() {
        // Beyond what a Duration holds means "no limit" (the deadline then never comes).
        Some(seconds) if seconds > 0.0 => {
            Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
        }
        _ => {
            tracing::warn!(
                plugin = %entry,
                "backend_settings.{COMMAND_TIMEOUT_SETTING} must be a positive number of \
                 seconds, not {value}; using {}s",
                DEFAULT_COMMAND_TIMEOUT.as_secs()
            );
            DEFAULT_COMMAND_TIMEOUT
        }
    }
}

/// The reference's `create_linux_user_homedir` command (an empty umask is passed as is).
pub(super) fn mkhomedir_command(username: &str, umask: &str) -> Vec<String> {
    vec![
        "/sbin/mkhomedir_helper".to_string(),
        username.to_string(),
        umask.to_string(),
    ]
}

/// Runs `argv` and answers its merged output.
///
/// Failures of the command are BACKEND errors (shown to Waldur users like the reference's
/// `BackendError`): a non-zero exit carries the output (lines re-joined with `\n`, as the reference does, so
/// no trailing newline) and `details.exit_code`; a missing program is
/// `Command not found: <program>`; a timeout says so. An empty `argv` is
/// INVALID_INPUT; failures of the agent's own plumbing (pipe, thread) are INTERNAL. Output
/// that is not UTF-8 is decoded lossily rather than failing the call.
pub(super) fn execute(
    entry: &str,
    argv: &[String],
    timeout: Duration,
    silent: bool,
) -> Result<String, AbiError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(AbiError::invalid_input("cannot execute an empty command"));
    };
    tracing::debug!(plugin = %entry, "Executing command: {}", argv.join(" "));
    let deadline = Instant::now().checked_add(timeout);

    let (reader, writer) = merged_pipe()
        .map_err(|e| AbiError::internal(format!("cannot create a pipe for {program}: {e}")))?;
    // Started before the child so a failed spawn cannot leave a child behind; it ends at EOF,
    // i.e. once every copy of the write end is closed.
    let output = spawn_reader(reader)
        .map_err(|e| AbiError::internal(format!("cannot start a reader for {program}: {e}")))?;

    let spawned = writer.try_clone().and_then(|stderr| {
        let mut command = Command::new(program);
        command
            .args(args)
            // The reference inherits the agent's stdin; a command must never wait for input.
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(stderr))
            // Its own process group, so a timeout can kill whatever the command started.
            .process_group(0);
        command.spawn()
        // `command` and with it our copies of the write end are dropped here: the reader
        // then sees EOF as soon as the child and its descendants close theirs.
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(AbiError::backend(format!("Command not found: {program}")));
        }
        Err(e) => return Err(AbiError::backend(format!("Cannot execute {program}: {e}"))),
    };

    let bytes = match receive_until(&output, deadline) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => {
            kill_group(&mut child);
            return Err(AbiError::internal(format!(
                "cannot read the output of {program}: {e}"
            )));
        }
        None => return Err(timed_out(entry, argv, &mut child, timeout, silent)),
    };
    let status = match wait_until(&mut child, deadline) {
        Ok(Some(status)) => status,
        Ok(None) => return Err(timed_out(entry, argv, &mut child, timeout, silent)),
        Err(e) => {
            kill_group(&mut child);
            return Err(AbiError::internal(format!(
                "cannot wait for {program}: {e}"
            )));
        }
    };

    let text = String::from_utf8_lossy(&bytes).into_owned();
    if status.success() {
        return Ok(text);
    }
    // `"\n".join(output.splitlines())`, as the reference builds its BackendError.
    let message = text.lines().collect::<Vec<_>>().join("\n");
    if !silent {
        tracing::error!(
            plugin = %entry,
            "Failed to execute command \"{}\" ({status}): {message}",
            argv.join(" ")
        );
    }
    Err(AbiError::backend(message).with_details(json!({ "exit_code": status.code() })))
}

/// A pipe whose two ends are closed on exec, so commands spawned concurrently by other
/// threads do not inherit them (which would delay EOF until they exit).
fn merged_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(read), write))
}

fn spawn_reader(mut reader: File) -> io::Result<mpsc::Receiver<io::Result<Vec<u8>>>> {
    let (sender, receiver) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("command-output".to_string())
        .spawn(move || {
            let mut bytes = Vec::new();
            let result = reader.read_to_end(&mut bytes).map(|_| bytes);
            // The receiver is gone after a timeout; nobody wants the output then.
            let _ = sender.send(result);
        })?;
    Ok(receiver)
}

/// The reader's answer, or `None` when the deadline passed first.
fn receive_until<T>(
    receiver: &mpsc::Receiver<io::Result<T>>,
    deadline: Option<Instant>,
) -> Option<io::Result<T>> {
    let received = match deadline {
        None => receiver
            .recv()
            .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        Some(deadline) => receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())),
    };
    match received {
        Ok(result) => Some(result),
        Err(mpsc::RecvTimeoutError::Timeout) => None,
        Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(io::Error::other(
            "the output reader stopped without an answer",
        ))),
    }
}

/// Waits for the child's exit; `None` when the deadline passed first. The output is already
/// at EOF here, so this normally returns at once; polling (rather than a blocking `wait`)
/// keeps the child un-reaped until we know, so killing its pid can never hit a stranger.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(None);
        }
        let left = deadline.map_or(pause, |d| d - now);
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_POLL_INTERVAL);
    }
}

fn timed_out(
    entry: &str,
    argv: &[String],
    child: &mut Child,
    timeout: Duration,
    silent: bool,
) -> AbiError {
    kill_group(child);
    if !silent {
        tracing::error!(
            plugin = %entry,
            "Command \"{}\" timed out after {timeout:?}",
            argv.join(" ")
        );
    }
    // Only the program name: the arguments may carry things users should not see.
    AbiError::backend(format!("Command timed out after {timeout:?}: {}", argv[0]))
}

/// Kills the command's whole process group, then reaps the command.
fn kill_group(child: &mut Child) {
    // The child leads its own group (`process_group(0)`), and it is not reaped yet, so its
    // pid, and with it the group id, cannot have been reused.
    let group = child.id() as libc::pid_t;
    // SAFETY: plain syscall on a process group we created.
    if unsafe { libc::kill(-group, libc::SIGKILL) } != 0 {
        let _ = child.kill();
    }
    let _ = child.wait();
}
