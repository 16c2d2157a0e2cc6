//! Why a plugin file is refused: one variant per reason, found by the file checks
//! (`discover`, `permissions`), the manifest reader (`elf`), the loader (`load`) or the
//! crash-safe prober (`probe`). `Display` is the one line the operator sees in
//! `plugins list`, `config check` and the agent's log; code and tests match on the variant.
//!
//! It is serialized (tagged by `kind`) into the probe cache and `plugins list --json`, so
//! the variant names and their fields are a stable interface.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One reason a plugin file is not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    // The file itself, before it is opened.
    /// A directory, FIFO, socket or device named `*.so` (perhaps through a link).
    #[error("not a regular file ({what}{})", link_note(.link_target))]
    NotRegularFile {
        what: String,
        /// Where the symbolic link that was named points, when it was one.
        link_target: Option<String>,
    },
    #[error("dangling symbolic link to {target}")]
    DanglingLink { target: String },
    #[error("symbolic link to {target} cannot be followed: {error}")]
    BrokenLink { target: String, error: String },
    #[error("cannot read: {error}")]
    Unreadable { error: String },

    // Who could have replaced it.
    /// The file or a directory above it belongs to someone other than root or the agent.
    #[error(
        "{what} {} is owned by uid {owner}, not by root or the agent's user (uid {agent_uid})",
        path.display()
    )]
    ForeignOwner {
        what: String,
        path: PathBuf,
        owner: u32,
        agent_uid: u32,
    },
    /// The file or a directory above it is writable by a group or by everyone.
    #[error(
        "{what} {} is {who}-writable (mode {mode:o}); fix with chmod go-w or allow insecure \
         plugin permissions for development",
        path.display()
    )]
    Writable {
        what: String,
        path: PathBuf,
        /// `group` or `world`.
        who: String,
        mode: u32,
    },
    #[error("cannot check the permissions of {}: {error}", path.display())]
    PermissionsUnknown { path: PathBuf, error: String },

    // What the ELF file says, read without loading it.
    #[error("not a shared library (no ELF header)")]
    NotElf,
    #[error("corrupt or truncated ELF file ({detail})")]
    CorruptElf { detail: String },
    #[error("an ELF file but not a shared library")]
    NotSharedLibrary,
    #[error("built for {found}, this agent runs on {expected}")]
    ForeignArchitecture { found: String, expected: String },
    #[error("not a waldur-agent plugin (no plugin manifest; a foreign shared library?)")]
    ForeignLibrary,
    #[error("an abi_stable library but not a waldur-agent plugin (no plugin manifest)")]
    NoManifest,
    #[error("invalid plugin manifest: {detail}")]
    ManifestInvalid { detail: String },
    #[error(
        "built with panic = \"abort\": a panic in it would kill the agent; rebuild with \
         panic = \"unwind\""
    )]
    PanicAbort,
    /// Another major version of the plugin ABI (the manifest's or the root module's).
    #[error("built against plugin ABI {plugin}, this agent speaks ABI {agent}")]
    AbiMismatch { plugin: String, agent: String },

    // Loading it (in the prober child, then in the agent).
    #[error("cannot be loaded: {error}")]
    DlopenFailed { error: String },
    #[error("not a waldur-agent plugin (no abi_stable root module)")]
    MissingRootSymbol,
    #[error("built with abi_stable ABI {major}.{minor}, this agent uses 0.11")]
    AbiStableMismatch { major: u32, minor: u32 },
    /// The stock layout check failed; `first` is the path to the first field that differs.
    #[error("plugin ABI layout mismatch: {first}")]
    LayoutMismatch { first: String },
    #[error("its root module failed to initialise: {error}")]
    RootModuleFailed { error: String },
    /// The manifest section and the root module describe different plugins.
    #[error("manifest and root module disagree on {what} ('{section}' vs '{root}')")]
    ManifestMismatch {
        what: String,
        section: String,
        root: String,
    },
    #[error("root module manifest: {detail}")]
    RootManifestInvalid { detail: String },
    #[error("manifest section and root module manifest differ")]
    RootManifestDiffers,
    #[error("the root module registers other entries than its manifest lists")]
    EntriesDiffer,
    /// Any other abi_stable loading error, in its own words.
    #[error("{error}")]
    LoadFailed { error: String },

    // What loading did to the prober child.
    #[error("loading it crashed the process (signal {signal})")]
    Crashed { signal: i32 },
    #[error("loading it ended the process (exit code {code})")]
    Exited { code: i32 },
    #[error("loading it ended the process ({error})")]
    ChildLost { error: String },
    #[error("loading did not finish within {seconds} s (hung initializer?)")]
    Hung { seconds: u64 },

    // The prober itself failed: nothing is known about the file.
    #[error("cannot start the plugin prober {}: {error}", executable.display())]
    ProberUnavailable { executable: PathBuf, error: String },
    #[error("the plugin prober answered garbage")]
    ProberGarbage,
    #[error("the plugin prober gave no answer")]
    ProberSilent,
}

fn link_note(target: &Option<String>) -> String {
    target
        .as_ref()
        .map(|t| format!(", through the symbolic link to {t}"))
        .unwrap_or_default()
}

impl Refusal {
    /// Whether the verdict is about the file (and may be remembered while it is unchanged),
    /// not about the prober that could not judge it.
    pub fn is_about_the_file(&self) -> bool {
        !matches!(
            self,
            Self::ProberUnavailable { .. } | Self::ProberGarbage | Self::ProberSilent
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines operators see: one per reason, as they were worded before the enum.
    #[test]
    fn each_reason_reads_as_one_line() {
        let cases = [
            (
                Refusal::NotRegularFile {
                    what: "a directory".into(),
                    link_target: Some("/p/d".into()),
                },
                "not a regular file (a directory, through the symbolic link to /p/d)",
            ),
            (
                Refusal::NotRegularFile {
                    what: "a FIFO".into(),
                    link_target: None,
                },
                "not a regular file (a FIFO)",
            ),
            (
                Refusal::AbiMismatch {
                    plugin: "2.0.0".into(),
                    agent: "1.x".into(),
                },
                "built against plugin ABI 2.0.0, this agent speaks ABI 1.x",
            ),
            (
                Refusal::Writable {
                    what: "directory".into(),
                    path: "/p".into(),
                    who: "world".into(),
                    mode: 0o1777,
                },
                "directory /p is world-writable (mode 1777); fix with chmod go-w or allow \
                 insecure plugin permissions for development",
            ),
            (
                Refusal::Crashed { signal: 6 },
                "loading it crashed the process (signal 6)",
            ),
            (
                Refusal::Hung { seconds: 1 },
                "loading did not finish within 1 s (hung initializer?)",
            ),
            (
                Refusal::PanicAbort,
                "built with panic = \"abort\": a panic in it would kill the agent; rebuild \
                 with panic = \"unwind\"",
            ),
        ];
        for (refusal, line) in cases {
            assert_eq!(refusal.to_string(), line);
        }
    }

    #[test]
    fn serialized_with_a_stable_kind() {
        let json = serde_json::to_value(Refusal::Crashed { signal: 6 }).unwrap();
        assert_eq!(json, serde_json::json!({"kind": "crashed", "signal": 6}));
        let back: Refusal = serde_json::from_value(json).unwrap();
        assert_eq!(back, Refusal::Crashed { signal: 6 });
        assert_eq!(
            serde_json::to_value(Refusal::NotElf).unwrap(),
            serde_json::json!({"kind": "not_elf"})
        );
    }

    #[test]
    fn only_prober_failures_say_nothing_about_the_file() {
        assert!(Refusal::Hung { seconds: 1 }.is_about_the_file());
        assert!(!Refusal::ProberGarbage.is_about_the_file());
    }
}
