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
use super::probe_cache::{FileIdentity, ProbeCache};
use super::Refusal;

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
    pub result: Result<Manifest, Refusal>,
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

/// The prober's verdict on one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub path: PathBuf,
    /// `Ok(manifest)` when the library loaded and matched its manifest.
    pub result: Result<Manifest, Refusal>,
    /// The refusal was remembered from an earlier probe of the same file ([`ProbeCache`]);
    /// the file was not probed now.
    pub cached: bool,
}

impl Probed {
    fn new(path: PathBuf, result: Result<Manifest, Refusal>) -> Self {
        Self {
            path,
            result,
            cached: false,
        }
    }
}

/// Parent side: probes `paths` with `prober` (the agent executable), in order.
pub struct Prober {
    executable: PathBuf,
    timeout: Duration,
    cache: Option<CacheUse>,
}

/// The probe cache file, and whether to ignore what it says (and only record).
struct CacheUse {
    file: PathBuf,
    reprobe: bool,
}

impl Prober {
    pub fn new(executable: PathBuf) -> Self {
        Self {
            executable,
            timeout: DEFAULT_PROBE_TIMEOUT,
            cache: None,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Remembers refusals in `file` and answers them from there while the file refused is
    /// unchanged, so that a hanging plugin costs the timeout once, not at every start.
    /// `reprobe` probes everything again (and records the new verdicts).
    pub fn with_cache(mut self, file: PathBuf, reprobe: bool) -> Self {
        self.cache = Some(CacheUse { file, reprobe });
        self
    }

    /// The agent binary itself, when this process is it.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?))
    }

    /// One verdict per path, in the same order.
    pub fn probe(&self, paths: &[PathBuf]) -> Vec<Probed> {
        match &self.cache {
            None => self.probe_children(paths),
            Some(cache) => self.probe_cached(paths, cache),
        }
    }

    /// Answers what the cache knows, probes the rest and records their refusals.
    fn probe_cached(&self, paths: &[PathBuf], cache_use: &CacheUse) -> Vec<Probed> {
        let mut cache = ProbeCache::load(&cache_use.file, &self.identity());
        let mut verdicts: Vec<Option<Probed>> = vec![None; paths.len()];
        let mut to_probe = Vec::new();
        for (index, path) in paths.iter().enumerate() {
            // A file whose identity cannot be read is probed, and its verdict not recorded.
            let identity = FileIdentity::of(path).ok();
            let known = identity
                .as_ref()
                .filter(|_| !cache_use.reprobe)
                .and_then(|identity| cache.lookup(identity, self.timeout));
            match known {
                Some(refusal) => {
                    tracing::debug!(
                        "plugin {}: refused by an earlier probe (remembered in {})",
                        path.display(),
                        cache_use.file.display()
                    );
                    verdicts[index] = Some(Probed {
                        path: path.clone(),
                        result: Err(refusal),
                        cached: true,
                    });
                }
                None => to_probe.push((index, identity)),
            }
        }
        let paths_to_probe: Vec<PathBuf> =
            to_probe.iter().map(|&(i, _)| paths[i].clone()).collect();
        let probed = self.probe_children(&paths_to_probe);
        for ((index, before), probed) in to_probe.into_iter().zip(probed) {
            if let Some(before) = before {
                match &probed.result {
                    // Only what the file was when probed: one replaced meanwhile is probed
                    // again next time.
                    Err(refusal)
                        if refusal.is_about_the_file()
                            && FileIdentity::of(&probed.path).ok().as_ref() == Some(&before) =>
                    {
                        cache.remember(before, refusal, self.timeout)
                    }
                    Err(_) => {}
                    Ok(_) => cache.forget(&before.path),
                }
            }
            verdicts[index] = Some(probed);
        }
        cache.save();
        verdicts
            .into_iter()
            .map(|verdict| verdict.expect("every path has a verdict"))
            .collect()
    }

    /// What the verdicts of this prober depend on besides the file: the agent's version and
    /// the prober executable itself (a rebuilt development binary may judge differently).
    fn identity(&self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        match FileIdentity::of(&self.executable) {
            Ok(exe) => format!(
                "waldur-agent {version} ({}, {} bytes, mtime {} ns, inode {})",
                exe.path.display(),
                exe.size,
                exe.mtime_ns,
                exe.inode
            ),
            Err(_) => format!("waldur-agent {version}"),
        }
    }

    /// Probes every path in child processes: one child for all, a new one after each death.
    fn probe_children(&self, paths: &[PathBuf]) -> Vec<Probed> {
        let mut verdicts = Vec::with_capacity(paths.len());
        while verdicts.len() < paths.len() {
            if let Err(refusal) = self.run_child(&paths[verdicts.len()..], &mut verdicts) {
                // The child died or hung on the first unanswered file: mark it, go on.
                verdicts.push(Probed::new(paths[verdicts.len()].clone(), Err(refusal)));
            }
        }
        verdicts
    }

    /// Runs one child over `rest`, appending verdicts; `Err` says why the child stopped early.
    fn run_child(&self, rest: &[PathBuf], verdicts: &mut Vec<Probed>) -> Result<(), Refusal> {
        let mut child = Command::new(&self.executable)
            .args(PROBE_ARGS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Refusal::ProberUnavailable {
                executable: self.executable.clone(),
                error: e.to_string(),
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
                    Ok(answer) if answer.path == *expected => {
                        verdicts.push(Probed::new(answer.path, answer.result))
                    }
                    _ => {
                        kill(&mut child);
                        return Err(Refusal::ProberGarbage);
                    }
                },
                Ok(None) => return Err(death_reason(&mut child)),
                Err(_) => {
                    kill(&mut child);
                    return Err(Refusal::Hung {
                        seconds: self.timeout.as_secs(),
                    });
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

fn death_reason(child: &mut Child) -> Refusal {
    use std::os::unix::process::ExitStatusExt;
    match child.wait() {
        Ok(status) => match status.signal() {
            Some(signal) => Refusal::Crashed { signal },
            None => Refusal::Exited {
                code: status.code().unwrap_or(-1),
            },
        },
        Err(e) => Refusal::ChildLost {
            error: e.to_string(),
        },
    }
}

/// Probes a single file; convenient for the agent before it loads a plugin in-process.
pub fn probe_one(prober: &Prober, path: &Path) -> Result<Manifest, Refusal> {
    prober
        .probe(&[path.to_path_buf()])
        .pop()
        .map(|probed| probed.result)
        .unwrap_or(Err(Refusal::ProberSilent))
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
