//! Loads plugin files in a child process first, so that a library whose loading crashes (a bad
//! initializer, a foreign `.so`, a plugin that aborts) costs a child, not the agent.
//!
//! Like GStreamer's plugin scanner, one child probes many files in turn and answers one JSON
//! line per file; if it dies or hangs on a file, that file is marked and a new child carries on
//! with the rest. The child is this same executable run as `waldur-agent plugins probe`.
//!
//! Both directions are JSON lines: a request `{"path": ...}` per file, an answer per file.
//! A path is a JSON string when it is UTF-8 (JSON escapes a newline in it) and an array of its
//! bytes otherwise, so any name a directory can hold gets through.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use waldur_plugin_abi::manifest::Manifest;

use super::load::load_library;

/// The hidden subcommand the child runs.
pub const PROBE_ARGS: [&str; 2] = ["plugins", "probe"];

/// How long one file may take to load before the child is killed, unless configured.
pub const DEFAULT_PROBE_TIMEOUT: Duration =
    Duration::from_secs(crate::config::DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS);

/// One request to the child: load this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ProbeRequest {
    #[serde(with = "wire_path")]
    path: PathBuf,
}

/// The child's answer for one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    #[serde(with = "wire_path")]
    pub path: PathBuf,
    /// `Ok(manifest)` when the library loaded and matched its manifest.
    pub result: Result<Manifest, String>,
}

/// Child side: loads each file requested on stdin, answers on stdout, one JSON line each.
pub fn serve_probe_requests() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let request: ProbeRequest = serde_json::from_str(&line?)?;
        let path = request.path;
        let result = load_library(&path).map(|loaded| loaded.manifest().clone());
        let answer = ProbeAnswer { path, result };
        serde_json::to_writer(&mut stdout, &answer)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

/// A path on the wire: a string when it is UTF-8, else its bytes.
pub(crate) mod wire_path {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => serializer.serialize_str(text),
            None => serializer.collect_seq(path.as_os_str().as_bytes()),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Text(text) => PathBuf::from(text),
            Wire::Bytes(bytes) => PathBuf::from(OsString::from_vec(bytes)),
        })
    }
}

/// Parent side: probes `paths` with `prober` (the agent executable), in order.
pub struct Prober {
    executable: PathBuf,
    timeout: Duration,
}

impl Prober {
    pub fn new(executable: PathBuf) -> Self {
        Self {
            executable,
            timeout: DEFAULT_PROBE_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The agent binary itself, when this process is it.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// One answer per path, in the same order.
    pub fn probe(&self, paths: &[PathBuf]) -> Vec<ProbeAnswer> {
        let mut answers = Vec::with_capacity(paths.len());
        while answers.len() < paths.len() {
            if let Err(reason) = self.run_child(&paths[answers.len()..], &mut answers) {
                // The child died or hung on the first unanswered file: mark it, go on.
                answers.push(ProbeAnswer {
                    path: paths[answers.len()].clone(),
                    result: Err(reason),
                });
            }
        }
        answers
    }

    /// Runs one child over `rest`, appending answers; `Err` says why the child stopped early.
    fn run_child(&self, rest: &[PathBuf], answers: &mut Vec<ProbeAnswer>) -> Result<(), String> {
        let mut child = Command::new(&self.executable)
            .args(PROBE_ARGS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the plugin prober {}: {e}",
                    self.executable.display()
                )
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut input = Vec::new();
        for path in rest {
            let request = ProbeRequest { path: path.clone() };
            serde_json::to_writer(&mut input, &request).expect("a request serializes");
            input.push(b'\n');
        }
        // From a thread of its own: the requests for many files can fill the pipe while the
        // child waits for its answers to be read.
        thread::spawn(move || {
            // A child that dies early closes the pipe; its answers tell what happened.
            let _ = stdin.write_all(&input);
        });
        let lines = spawn_reader(child.stdout.take().expect("stdout is piped"));
        for expected in rest {
            match lines.recv_timeout(self.timeout) {
                Ok(Some(line)) => match serde_json::from_str::<ProbeAnswer>(&line) {
                    Ok(answer) if answer.path == *expected => answers.push(answer),
                    _ => {
                        kill(&mut child);
                        return Err("the plugin prober answered garbage".to_string());
                    }
                },
                Ok(None) => return Err(death_reason(&mut child)),
                Err(_) => {
                    kill(&mut child);
                    return Err(format!(
                        "loading did not finish within {} s (hung initializer?)",
                        self.timeout.as_secs()
                    ));
                }
            }
        }
        let _ = child.wait();
        Ok(())
    }
}

/// Lines from the child, `None` at end of stream.
fn spawn_reader(stdout: ChildStdout) -> mpsc::Receiver<Option<String>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) => {
                    if tx.send(Some(line)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn death_reason(child: &mut Child) -> String {
    use std::os::unix::process::ExitStatusExt;
    match child.wait() {
        Ok(status) => match status.signal() {
            Some(signal) => format!("loading it crashed the process (signal {signal})"),
            None => format!(
                "loading it ended the process (exit code {})",
                status.code().unwrap_or(-1)
            ),
        },
        Err(e) => format!("loading it ended the process ({e})"),
    }
}

/// Probes a single file; convenient for the agent before it loads a plugin in-process.
pub fn probe_one(prober: &Prober, path: &Path) -> Result<Manifest, String> {
    prober
        .probe(&[path.to_path_buf()])
        .pop()
        .map(|a| a.result)
        .unwrap_or_else(|| Err("the plugin prober gave no answer".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn any_path_survives_a_json_line() {
        for bytes in [
            &b"/plugins/plain.so"[..],
            b"/plugins/new\nline.so",
            b"/plugins/caf\xe9.so",
            b"/plugins/\"quoted\" \\ back.so",
        ] {
            let request = ProbeRequest {
                path: PathBuf::from(OsStr::from_bytes(bytes)),
            };
            let line = serde_json::to_string(&request).unwrap();
            assert!(!line.contains('\n'), "{line}");
            let back: ProbeRequest = serde_json::from_str(&line).unwrap();
            assert_eq!(back, request, "{line}");
        }
        let line = serde_json::to_string(&ProbeRequest {
            path: PathBuf::from("/p/a.so"),
        })
        .unwrap();
        assert_eq!(line, r#"{"path":"/p/a.so"}"#);
    }
}
