//! Running commands: the one seam between the plugin and the operating system.
//!
//! [`ProcessRunner`] runs a command the way the reference's `subprocess.check_output(argv,
//! stderr=STDOUT)` does (no shell, stdout and stderr merged into one stream, a non-zero exit
//! is an error carrying that output), plus what the reference lacks: the command runs in its
//! own process group and the whole group is killed once `command_timeout` has passed.
//! [`RecordingRunner`] answers from scripted replies and records every command, for tests.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use waldur_plugin_abi::Error;

/// Runs one command given as argv (`argv[0]` is the program).
pub trait Runner: Send + Sync + 'static {
    /// Answers the command's output (stdout and stderr interleaved as written).
    fn run(&self, argv: &[String]) -> Result<String, RunError>;
}

/// Why a command did not answer its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The program does not exist (or is not executable at that path).
    NotFound { program: String },
    /// The command ran and failed: `status` is `exit code N` or `killed by signal N`.
    Failed {
        command: String,
        status: String,
        output: String,
    },
    /// The command ran longer than `command_timeout` and was killed with its process group.
    TimedOut { command: String, timeout: Duration },
    /// The command could not be started or read for another reason.
    Io { command: String, message: String },
}

impl RunError {
    /// What the command printed before failing (empty unless it ran and failed).
    pub fn output(&self) -> &str {
        match self {
            Self::Failed { output, .. } => output,
            _ => "",
        }
    }

    /// The plugin error: a BACKEND error (shown to Waldur users like the reference's
    /// `BackendError`) with a one-line message.
    pub fn to_error(&self) -> Error {
        Error::backend(self.to_string())
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { program } => write!(f, "{program}: not found"),
            Self::Failed {
                command,
                status,
                output,
            } => match one_line(output) {
                text if text.is_empty() => write!(f, "{command} failed ({status}) without output"),
                text => write!(f, "{command} failed ({status}): {text}"),
            },
            Self::TimedOut { command, timeout } => write!(
                f,
                "{command} did not finish within {timeout:?} (command_timeout) and was killed"
            ),
            Self::Io { command, message } => write!(f, "{command}: {message}"),
        }
    }
}

/// The output's non-blank lines, trimmed, on one line.
pub fn one_line(output: &str) -> String {
    output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs real processes, each bounded by `timeout`.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    timeout: Duration,
}

impl ProcessRunner {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Runner for ProcessRunner {
    fn run(&self, argv: &[String]) -> Result<String, RunError> {
        let command = argv.join(" ");
        let io_error = |message: String| RunError::Io {
            command: command.clone(),
            message,
        };
        let Some((program, args)) = argv.split_first() else {
            return Err(io_error("empty command".into()));
        };
        let deadline = Instant::now() + self.timeout;

        // One pipe for both streams, so the output interleaves as the command wrote it.
        let (reader, writer) = io::pipe().map_err(|e| io_error(format!("no pipe: {e}")))?;
        let writer_too = writer
            .try_clone()
            .map_err(|e| io_error(format!("no pipe: {e}")))?;
        let mut process = Command::new(program);
        process
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_too)
            // Messages the plugin parses (`id`: "no such user") must not be translated.
            .env("LC_ALL", "C")
            // A group of its own, so a timeout kills whatever the command started too.
            .process_group(0);
        let spawned = process.spawn();
        // The Command holds our copies of the write end: drop them, or EOF never comes.
        drop(process);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RunError::NotFound {
                    program: program.clone(),
                })
            }
            Err(e) => return Err(io_error(format!("cannot start {program}: {e}"))),
        };

        let output = read_in_background(reader);
        let bytes = match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                kill_group(&mut child);
                return Err(io_error(format!("cannot read the output: {e}")));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_group(&mut child);
                return Err(RunError::TimedOut {
                    command,
                    timeout: self.timeout,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                kill_group(&mut child);
                return Err(io_error("the output reader stopped".into()));
            }
        };
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(status)) => status,
            Ok(None) => {
                kill_group(&mut child);
                return Err(RunError::TimedOut {
                    command,
                    timeout: self.timeout,
                });
            }
            Err(e) => {
                kill_group(&mut child);
                return Err(io_error(format!("cannot wait for the command: {e}")));
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.success() {
            return Ok(text);
        }
        Err(RunError::Failed {
            command,
            status: describe(status),
            output: text,
        })
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Reads everything from `reader` on a thread; the answer arrives once the command and
/// everything it started have closed the pipe.
fn read_in_background(mut reader: io::PipeReader) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let result = reader.read_to_end(&mut bytes).map(|_| bytes);
        // After a timeout nobody listens any more.
        let _ = sender.send(result);
    });
    receiver
}

/// The exit status, or `None` once `deadline` has passed. Polls, so the child stays
/// un-reaped (and its pid ours) until we know.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kills the child's process group (it leads it) and reaps the child.
fn kill_group(child: &mut Child) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let killed = i32::try_from(child.id())
        .ok()
        // The child is not reaped yet, so its group id is still ours.
        .is_some_and(|group| killpg(Pid::from_raw(group), Signal::SIGKILL).is_ok());
    if !killed {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A scripted reply of the [`RecordingRunner`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Output(String),
    Fail { code: i32, output: String },
    NotFound,
    TimedOut,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    reply: Reply,
    /// `None`: for every matching command; `Some(n)`: for the next `n`.
    remaining: Option<usize>,
}

/// A fake [`Runner`] for tests: records every command (argv joined with spaces) and answers
/// the reply of the most recently added rule whose pattern the command contains, or empty
/// output when none matches.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<String>>,
    rules: Mutex<Vec<Rule>>,
}

impl RecordingRunner {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn add(&self, pattern: &str, reply: Reply, remaining: Option<usize>) -> &Self {
        self.rules.lock().unwrap().push(Rule {
            pattern: pattern.to_string(),
            reply,
            remaining,
        });
        self
    }

    /// Every command containing `pattern` prints `output`.
    pub fn reply(&self, pattern: &str, output: &str) -> &Self {
        self.add(pattern, Reply::Output(output.to_string()), None)
    }

    /// The next command containing `pattern` prints `output`.
    pub fn reply_once(&self, pattern: &str, output: &str) -> &Self {
        self.add(pattern, Reply::Output(output.to_string()), Some(1))
    }

    /// Every command containing `pattern` fails with `code` after printing `output`.
    pub fn fail(&self, pattern: &str, code: i32, output: &str) -> &Self {
        let reply = Reply::Fail {
            code,
            output: output.to_string(),
        };
        self.add(pattern, reply, None)
    }

    /// The next command containing `pattern` fails.
    pub fn fail_once(&self, pattern: &str, code: i32, output: &str) -> &Self {
        let reply = Reply::Fail {
            code,
            output: output.to_string(),
        };
        self.add(pattern, reply, Some(1))
    }

    /// Any reply, for every command containing `pattern`.
    pub fn answer(&self, pattern: &str, reply: Reply) -> &Self {
        self.add(pattern, reply, None)
    }

    /// The commands run so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The commands run so far, forgetting them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Runner for RecordingRunner {
    fn run(&self, argv: &[String]) -> Result<String, RunError> {
        let command = argv.join(" ");
        self.calls.lock().unwrap().push(command.clone());
        let mut rules = self.rules.lock().unwrap();
        let rule = rules
            .iter_mut()
            .rev()
            .find(|r| r.remaining != Some(0) && command.contains(&r.pattern));
        let reply = match rule {
            Some(rule) => {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                rule.reply.clone()
            }
            None => Reply::Output(String::new()),
        };
        match reply {
            Reply::Output(output) => Ok(output),
            Reply::Fail { code, output } => Err(RunError::Failed {
                command,
                status: format!("exit code {code}"),
                output,
            }),
            Reply::NotFound => Err(RunError::NotFound {
                program: argv.first().cloned().unwrap_or_default(),
            }),
            Reply::TimedOut => Err(RunError::TimedOut {
                command,
                timeout: Duration::from_secs(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn output_of_both_streams_is_merged_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "both", "echo one; echo two >&2; echo three");
        let out = ProcessRunner::new(Duration::from_secs(10))
            .run(&argv(&[&program]))
            .unwrap();
        assert_eq!(out, "one\ntwo\nthree\n");
    }

    #[test]
    fn a_non_zero_exit_names_the_command_and_its_output_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "sacctmgr", "echo ' Nothing new added.'; exit 1");
        let err = ProcessRunner::new(Duration::from_secs(10))
            .run(&argv(&[&program, "add", "account", "x"]))
            .unwrap_err();
        assert_eq!(err.output(), " Nothing new added.\n");
        let message = err.to_error().message;
        assert_eq!(
            message,
            format!("{program} add account x failed (exit code 1): Nothing new added.")
        );
        assert!(!message.contains('\n'));
        assert_eq!(err.to_error().kind, waldur_plugin_abi::ErrorKind::BACKEND);
    }

    #[test]
    fn multi_line_output_becomes_one_line() {
        assert_eq!(one_line("  a \n\n b\n"), "a; b");
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "quiet", "exit 3");
        let err = ProcessRunner::new(Duration::from_secs(10))
            .run(&argv(&[&program]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{program} failed (exit code 3) without output")
        );
    }

    #[test]
    fn a_missing_binary_names_its_path() {
        let err = ProcessRunner::new(Duration::from_secs(10))
            .run(&argv(&["/nonexistent-dir/sacctmgr", "list", "account"]))
            .unwrap_err();
        assert_eq!(
            err,
            RunError::NotFound {
                program: "/nonexistent-dir/sacctmgr".into()
            }
        );
        assert_eq!(err.to_string(), "/nonexistent-dir/sacctmgr: not found");
    }

    #[test]
    fn a_command_over_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        // The child of the command writes the marker if it is not killed with the group.
        let program = script(
            dir.path(),
            "sacctmgr",
            &format!("(sleep 2; touch {}) & sleep 30", marker.display()),
        );
        let started = Instant::now();
        let err = ProcessRunner::new(Duration::from_millis(500))
            .run(&argv(&[&program, "list", "account"]))
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert!(matches!(err, RunError::TimedOut { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{program} list account did not finish within 500ms (command_timeout) and was killed"
            )
        );
        thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the command's child outlived the timeout");
    }

    #[test]
    fn stdin_is_closed_and_messages_are_not_translated() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(dir.path(), "env", "cat; echo \"lc=$LC_ALL\"");
        let out = ProcessRunner::new(Duration::from_secs(10))
            .run(&argv(&[&program]))
            .unwrap();
        assert_eq!(out, "lc=C\n");
    }

    #[test]
    fn the_recording_runner_prefers_the_latest_rule_and_counts_once_rules() {
        let runner = RecordingRunner::new();
        runner.reply("show account", "a|b|c\n");
        runner.reply_once("show account x", "x|y|z\n");
        runner.fail("remove", 1, " Nothing deleted");
        assert_eq!(
            runner.run(&argv(&["show", "account", "x"])).unwrap(),
            "x|y|z\n"
        );
        assert_eq!(
            runner.run(&argv(&["show", "account", "x"])).unwrap(),
            "a|b|c\n"
        );
        assert_eq!(runner.run(&argv(&["list", "tres"])).unwrap(), "");
        assert!(runner.run(&argv(&["remove", "x"])).is_err());
        assert_eq!(
            runner.take_calls(),
            vec!["show account x", "show account x", "list tres", "remove x"]
        );
        assert!(runner.calls().is_empty());
    }
}
