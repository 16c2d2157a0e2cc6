//! argv construction, exactly as the reference's `SlurmClient._execute_command`:
//!
//! ```text
//! <slurm_bin_path>/<cmd>  (sacctmgr, sacct, scancel, sinfo; other programs by name)
//! [--parsable2 --noheader]   sacctmgr and sacct queries
//! [--immediate]              sacctmgr (except the limit queries)
//! <args, with the cluster filter injected when cluster_name is set>
//! ```
//!
//! Cluster injection: for `sacctmgr`, `cluster=<c>` goes before the first `set` (or at the
//! end), except for cluster-independent entities (`qos`, `tres`, `cluster` among the first
//! three arguments) and `--version`; `sacct` and `scancel` get `--cluster=<c>` first.

use std::path::{Path, PathBuf};

/// The programs found through `slurm_bin_path`.
pub const SLURM_COMMANDS: [&str; 4] = ["sacctmgr", "sacct", "scancel", "sinfo"];

/// sacctmgr entities that exist once for all clusters.
const CLUSTER_INDEPENDENT: [&str; 3] = ["qos", "tres", "cluster"];

/// `["a", "b"]` as owned argv.
pub fn argv(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Builds the argv of every command the plugin runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandBuilder {
    bin_path: String,
    cluster_name: Option<String>,
}

impl CommandBuilder {
    pub fn new(bin_path: &str, cluster_name: Option<&str>) -> Self {
        Self {
            bin_path: bin_path.to_string(),
            cluster_name: cluster_name.filter(|c| !c.is_empty()).map(str::to_string),
        }
    }

    pub fn cluster_name(&self) -> Option<&str> {
        self.cluster_name.as_deref()
    }

    /// The path of a program: SLURM's under `slurm_bin_path` (when set), others by name.
    pub fn program(&self, name: &str) -> String {
        if self.bin_path.is_empty() || !SLURM_COMMANDS.contains(&name) {
            return name.to_string();
        }
        // Like Python's `Path(bin) / name`: repeated slashes and `.` segments collapse.
        let base: PathBuf = Path::new(&self.bin_path).components().collect();
        base.join(name).display().to_string()
    }

    /// `sacctmgr --parsable2 --noheader --immediate <args>`.
    pub fn sacctmgr(&self, args: &[String]) -> Vec<String> {
        self.sacctmgr_with(args, true)
    }

    /// `sacctmgr --parsable2 --noheader <args>` (the limit queries run without --immediate).
    pub fn sacctmgr_query(&self, args: &[String]) -> Vec<String> {
        self.sacctmgr_with(args, false)
    }

    fn sacctmgr_with(&self, args: &[String], immediate: bool) -> Vec<String> {
        let mut command = vec![
            self.program("sacctmgr"),
            "--parsable2".into(),
            "--noheader".into(),
        ];
        if immediate {
            command.push("--immediate".into());
        }
        command.extend(self.inject_sacctmgr(args));
        command
    }

    /// `sacctmgr --version` (no flags, no cluster).
    pub fn sacctmgr_version(&self) -> Vec<String> {
        vec![self.program("sacctmgr"), "--version".into()]
    }

    /// `sacct --parsable2 --noheader [--cluster=<c>] <args>`.
    pub fn sacct(&self, args: &[String]) -> Vec<String> {
        let mut command = vec![
            self.program("sacct"),
            "--parsable2".into(),
            "--noheader".into(),
        ];
        command.extend(self.cluster_flag());
        command.extend_from_slice(args);
        command
    }

    /// `scancel [--cluster=<c>] <args>`.
    pub fn scancel(&self, args: &[String]) -> Vec<String> {
        let mut command = vec![self.program("scancel")];
        command.extend(self.cluster_flag());
        command.extend_from_slice(args);
        command
    }

    /// `sinfo <args>` (no flags, no cluster).
    pub fn sinfo(&self, args: &[String]) -> Vec<String> {
        let mut command = vec![self.program("sinfo")];
        command.extend_from_slice(args);
        command
    }

    fn cluster_flag(&self) -> Option<String> {
        self.cluster_name.as_ref().map(|c| format!("--cluster={c}"))
    }

    fn inject_sacctmgr(&self, args: &[String]) -> Vec<String> {
        let mut args = args.to_vec();
        let Some(cluster) = &self.cluster_name else {
            return args;
        };
        let independent = args
            .iter()
            .take(3)
            .any(|a| CLUSTER_INDEPENDENT.contains(&a.as_str()));
        if independent || args.iter().any(|a| a == "--version") {
            return args;
        }
        let filter = format!("cluster={cluster}");
        match args.iter().position(|a| a == "set") {
            Some(at) => args.insert(at, filter),
            None => args.push(filter),
        }
        args
    }
}

/// A value for a `key="value"` sacctmgr argument (free text: descriptions, organizations;
/// names go through [`crate::names`] instead). Double quotes are dropped (they would end the
/// quoted value and let the rest pass as further options); `|` becomes a space (it is the
/// field separator of the `--parsable2` output this text comes back in, so `a|org` would
/// read as another organization); other control characters are dropped; every run of
/// whitespace, newlines included, collapses to one space (a newline breaks the
/// line-per-record output, reference issue #17). Commas and `=` stay: inside a quoted value
/// sacctmgr takes them literally (verified against SLURM 22.05 in `tests/real_slurm.rs`).
pub fn sanitize_value(value: &str) -> String {
    value
        .chars()
        .filter_map(|c| match c {
            '"' => None,
            '|' => Some(' '),
            c if c.is_control() && !c.is_whitespace() => None,
            c => Some(c),
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `key="<sanitized value>"`, quotes included: sacctmgr strips them itself.
pub fn quoted(key: &str, value: &str) -> String {
    format!("{key}=\"{}\"", sanitize_value(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> CommandBuilder {
        CommandBuilder::new("/usr/bin", None)
    }

    fn clustered() -> CommandBuilder {
        CommandBuilder::new("/usr/bin", Some("mycluster"))
    }

    #[test]
    fn slurm_programs_come_from_the_bin_path_others_by_name() {
        assert_eq!(plain().program("sacctmgr"), "/usr/bin/sacctmgr");
        assert_eq!(plain().program("sinfo"), "/usr/bin/sinfo");
        assert_eq!(plain().program("id"), "id");
        let b = CommandBuilder::new("/opt/slurm//bin/", None);
        assert_eq!(b.program("sacct"), "/opt/slurm/bin/sacct");
        let b = CommandBuilder::new(".venv/bin", None);
        assert_eq!(b.program("scancel"), ".venv/bin/scancel");
        let b = CommandBuilder::new("", None);
        assert_eq!(b.program("sacctmgr"), "sacctmgr");
    }

    #[test]
    fn sacctmgr_flags() {
        assert_eq!(
            plain().sacctmgr(&argv(&["list", "account"])).join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader --immediate list account"
        );
        assert_eq!(
            plain()
                .sacctmgr_query(&argv(&["show", "association"]))
                .join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader show association"
        );
        assert_eq!(
            clustered().sacctmgr_version().join(" "),
            "/usr/bin/sacctmgr --version"
        );
    }

    #[test]
    fn cluster_goes_before_set_or_at_the_end() {
        let b = clustered();
        assert_eq!(
            b.sacctmgr(&argv(&["modify", "account", "a", "set", "qos=x"]))
                .join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader --immediate modify account a cluster=mycluster set qos=x"
        );
        assert_eq!(
            b.sacctmgr(&argv(&["show", "account", "a"])).join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader --immediate show account a cluster=mycluster"
        );
        assert_eq!(
            b.sacctmgr(&argv(&["modify", "account", "set", "qos+=q", "where", "account=a"]))
                .join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader --immediate modify account cluster=mycluster set qos+=q where account=a"
        );
    }

    #[test]
    fn cluster_independent_entities_get_no_cluster() {
        let b = clustered();
        for args in [
            argv(&["list", "tres"]),
            argv(&["list", "cluster", "format=cluster"]),
            argv(&["show", "qos", "q"]),
            argv(&["modify", "qos", "q", "set", "MaxJobs=4"]),
            argv(&["remove", "qos", "where", "name=q"]),
        ] {
            let command = b.sacctmgr(&args);
            assert!(
                !command.iter().any(|a| a.starts_with("cluster=")),
                "{command:?}"
            );
        }
    }

    #[test]
    fn sacct_and_scancel_get_the_cluster_flag_first() {
        assert_eq!(
            clustered().sacct(&argv(&["-a"])).join(" "),
            "/usr/bin/sacct --parsable2 --noheader --cluster=mycluster -a"
        );
        assert_eq!(
            plain().sacct(&argv(&["-a"])).join(" "),
            "/usr/bin/sacct --parsable2 --noheader -a"
        );
        assert_eq!(
            clustered().scancel(&argv(&["-A", "a", "-f"])).join(" "),
            "/usr/bin/scancel --cluster=mycluster -A a -f"
        );
        assert_eq!(
            clustered().sinfo(&argv(&["-V"])).join(" "),
            "/usr/bin/sinfo -V"
        );
    }

    #[test]
    fn an_empty_cluster_name_is_no_cluster() {
        let b = CommandBuilder::new("/usr/bin", Some(""));
        assert_eq!(b.cluster_name(), None);
        assert_eq!(
            b.sacctmgr(&argv(&["list", "account"])).join(" "),
            "/usr/bin/sacctmgr --parsable2 --noheader --immediate list account"
        );
    }

    #[test]
    fn values_are_sanitized() {
        assert_eq!(
            sanitize_value("Proj \"A\"\n  two\tthree "),
            "Proj A two three"
        );
        assert_eq!(
            quoted("description", "a\" parent=\"root"),
            "description=\"a parent=root\""
        );
        assert_eq!(quoted("organization", ""), "organization=\"\"");
        assert_eq!(
            sanitize_value("a|hpc_other\u{1b}[0m\0b\r\nc"),
            "a hpc_other[0mb c"
        );
        assert_eq!(sanitize_value("Org, x=y"), "Org, x=y");
    }
}
