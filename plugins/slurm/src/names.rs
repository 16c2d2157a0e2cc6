//! Names from Waldur, checked before they reach a command or a path.
//!
//! Slugs, backend ids, usernames, QoS and partition names come from Waldur, which the agent
//! does not trust. No shell is involved, but sacctmgr gives meaning to characters inside one
//! argument: `,` separates list items (`remove account where name=x,root` names `root`
//! too), `=` separates a key from its value, quotes open values; `|` breaks its parsable
//! output; a leading `-` makes `id`, `scancel` or `mkhomedir_helper` read an option; `/` and
//! `..` leave a base directory. So every name is checked against an allow-list here, once,
//! by the client that builds the argv ([`crate::client`]) and by the path helpers below.
//!
//! A refused name is a BACKEND error (the order errs with the reason, shown to the Waldur
//! user, who can rename what they named) with a one-line message naming the value
//! (`{:?}`-escaped, truncated) and the rule it broke.

use std::fmt;
use std::path::{Path, PathBuf};

use waldur_plugin_abi::{Error, Result};

/// SLURM has no documented limit on account names; 64 bytes keeps them usable as QoS names
/// (the per-account QoS is named after its account), group names and directory names.
pub const SLURM_NAME_MAX: usize = 64;

/// POSIX user names: `useradd` and utmp (`UT_NAMESIZE`) stop at 32 bytes.
pub const USER_NAME_MAX: usize = 32;

/// How much of a refused value an error message shows.
const SHOWN_CHARS: usize = 64;

/// What a name names, and so which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A SLURM account (allocation, project or customer account; a backend id).
    Account,
    /// A user name (SLURM user, POSIX user, home directory).
    User,
    /// A SLURM QoS.
    Qos,
    /// A SLURM partition.
    Partition,
    /// A TRES name (`cpu`, `gres/gpu`, `gres/gpu:a100`) in a limit list.
    Tres,
}

impl NameKind {
    fn label(self) -> &'static str {
        match self {
            Self::Account => "SLURM account name",
            Self::User => "user name",
            Self::Qos => "SLURM QoS name",
            Self::Partition => "SLURM partition name",
            Self::Tres => "SLURM TRES name",
        }
    }

    fn max_len(self) -> usize {
        match self {
            Self::User => USER_NAME_MAX,
            _ => SLURM_NAME_MAX,
        }
    }

    /// The POSIX portable file name characters, plus `@` for users (fully qualified SSSD
    /// and federated names, `user@domain`) and `/` `:` for TRES (`gres/gpu:a100`).
    fn allows(self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || matches!(c, '.' | '_' | '-')
            || (self == Self::User && c == '@')
            || (self == Self::Tres && matches!(c, '/' | ':'))
    }

    fn allowed(self) -> &'static str {
        match self {
            Self::User => "letters A-Z a-z, digits, '.', '_', '-' and '@'",
            Self::Tres => "letters A-Z a-z, digits, '.', '_', '-', '/' and ':'",
            _ => "letters A-Z a-z, digits, '.', '_' and '-'",
        }
    }

    /// The first rule `value` breaks, if any.
    fn broken_rule(self, value: &str) -> Option<String> {
        if value.is_empty() {
            return Some("it is empty".into());
        }
        let max = self.max_len();
        if value.len() > max {
            return Some(format!("it is {} bytes long, more than {max}", value.len()));
        }
        if let Some(c) = value.chars().find(|&c| !self.allows(c)) {
            return Some(format!(
                "it contains {c:?}{}; allowed are {}",
                why_not(c),
                self.allowed()
            ));
        }
        let first = value.chars().next().unwrap_or_default();
        if !(first.is_ascii_alphanumeric() || first == '_') {
            let why = match first {
                '-' => " (commands would read it as an option)",
                '.' => " (a hidden or relative path)",
                _ => "",
            };
            return Some(format!(
                "it starts with {first:?}{why}; it must start with a letter, a digit or '_'"
            ));
        }
        if value.contains("..") {
            return Some("it contains \"..\" (the parent directory in a path)".into());
        }
        if self == Self::User && value.bytes().all(|b| b.is_ascii_digit()) {
            return Some(
                "it is all digits (id, chown and scancel would take it for a numeric uid)".into(),
            );
        }
        None
    }

    /// `value` when it is a valid name of this kind.
    pub fn check(self, value: &str) -> std::result::Result<&str, NameError> {
        match self.broken_rule(value) {
            None => Ok(value),
            Some(rule) => Err(NameError {
                kind: self,
                value: shown(value),
                rule,
            }),
        }
    }
}

/// What a refused character would do.
fn why_not(c: char) -> &'static str {
    match c {
        ',' => " (the list separator of sacctmgr)",
        '=' => " (separates a key from its value in sacctmgr)",
        '"' | '\'' | '`' => " (a quote)",
        '/' => " (a path separator)",
        '|' => " (the field separator of sacctmgr's output)",
        ':' => " (separates user and group in chown, fields in ACLs)",
        '\0' => " (NUL)",
        c if c.is_whitespace() => " (white space)",
        c if c.is_control() => " (a control character)",
        c if !c.is_ascii() => " (not ASCII)",
        _ => "",
    }
}

/// `value` for a one-line message: `{:?}`-escaped (newlines, control characters, NUL and
/// bidirectional marks become visible escapes) and cut after [`SHOWN_CHARS`] characters.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
        None => format!("{value:?}"),
    }
}

/// A refused name: what it was meant to be, the value as shown, and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub kind: NameKind,
    /// The value, escaped and truncated (see [`shown`]).
    pub value: String,
    pub rule: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {}: {}",
            self.kind.label(),
            self.value,
            self.rule
        )
    }
}

impl std::error::Error for NameError {}

impl From<NameError> for Error {
    /// A backend error: the order (or the user) errs with a message Waldur users see.
    fn from(e: NameError) -> Self {
        Error::backend(e.to_string())
    }
}

/// A checked SLURM account name.
pub fn account(value: &str) -> Result<&str> {
    Ok(NameKind::Account.check(value)?)
}

/// A checked user name.
pub fn user(value: &str) -> Result<&str> {
    Ok(NameKind::User.check(value)?)
}

/// A checked QoS name.
pub fn qos(value: &str) -> Result<&str> {
    Ok(NameKind::Qos.check(value)?)
}

/// A checked partition name.
pub fn partition(value: &str) -> Result<&str> {
    Ok(NameKind::Partition.check(value)?)
}

/// A checked TRES name.
pub fn tres(value: &str) -> Result<&str> {
    Ok(NameKind::Tres.check(value)?)
}

/// Names of one kind as a sacctmgr/sacct comma list, every item checked (so no item can
/// add another).
pub fn list<S: AsRef<str>>(kind: NameKind, values: &[S]) -> Result<String> {
    let mut joined = String::new();
    for value in values {
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(kind.check(value.as_ref())?);
    }
    Ok(joined)
}

/// A value (not a name) for a `key=value` argument: `Err` names it and says what it must be.
fn refuse_value(what: &str, value: &str, must: &str) -> Error {
    Error::backend(format!(
        "invalid {what} {}: it must be {must}",
        shown(value)
    ))
}

/// A whole number, possibly negative (`-1` clears a SLURM limit).
pub fn integer<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    match value.parse::<i64>() {
        Ok(_) if !value.starts_with('+') => Ok(value),
        _ => Err(refuse_value(what, value, "a whole number")),
    }
}

/// A fairshare: a whole number, or `parent`.
pub fn fairshare(value: &str) -> Result<&str> {
    if value.eq_ignore_ascii_case("parent")
        || value.parse::<u32>().is_ok_and(|_| !value.starts_with('+'))
    {
        return Ok(value);
    }
    Err(refuse_value(
        "fairshare",
        value,
        "a whole number or \"parent\"",
    ))
}

/// The TRES limits of an association that sacctmgr sets as `<type>=<tres>=<value>`.
pub const TRES_LIMIT_TYPES: [&str; 9] = [
    "GrpTRES",
    "GrpTRESMins",
    "GrpTRESRunMins",
    "MaxTRES",
    "MaxTRESPerJob",
    "MaxTRESMins",
    "MaxTRESMinsPerJob",
    "MaxTRESPerNode",
    "MaxTRESRunMins",
];

/// A periodic-settings limit type, which each Waldur message may name: one of
/// [`TRES_LIMIT_TYPES`] (any case, as sacctmgr reads them), never another option such as
/// `Parent` or `QOS`.
pub fn tres_limit_type(value: &str) -> Result<&str> {
    if TRES_LIMIT_TYPES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(value))
    {
        return Ok(value);
    }
    Err(refuse_value(
        "limit type",
        value,
        &format!("a TRES limit ({})", TRES_LIMIT_TYPES.join(", ")),
    ))
}

/// A umask for `mkhomedir_helper`: `0077`, `077` or `0o077`, at most 0777.
pub fn umask(value: &str) -> Result<&str> {
    let digits = value.strip_prefix("0o").unwrap_or(value);
    let octal = !digits.is_empty()
        && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        && u32::from_str_radix(digits, 8).is_ok_and(|v| v <= 0o777);
    if octal {
        return Ok(value);
    }
    Err(refuse_value(
        "umask",
        value,
        "octal permissions of at most 0777 (e.g. \"0077\")",
    ))
}

/// `<base>/<name>` for a checked `kind` name, kept inside `base`: the base is canonicalised
/// (so it must exist), the name is one checked component (no `/`, no `..`), the result's
/// parent is verified to be the base, and an existing entry of that name that is a symlink
/// must resolve to a path strictly inside the base. The commands run on these paths
/// (`mkdir -p`, `chmod`, `chown`, `setfacl -R`, `setfattr`) follow symlinks, so a link
/// planted as `<base>/<name>` would otherwise carry them anywhere.
pub fn path_inside(base: &str, kind: NameKind, name: &str) -> Result<PathBuf> {
    let name = kind.check(name)?;
    let root = std::fs::canonicalize(base)
        .map_err(|e| Error::backend(format!("cannot resolve base directory {base:?}: {e}")))?;
    let path = root.join(name);
    if path.parent() != Some(root.as_path()) {
        return Err(outside(&path, &root));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::canonicalize(&path).map_err(|e| {
                Error::backend(format!(
                    "{} is a symlink that does not resolve ({e}); refusing to follow it",
                    shown(&path.display().to_string())
                ))
            })?;
            if target == root || !target.starts_with(&root) {
                return Err(Error::backend(format!(
                    "{} is a symlink to {}, outside base directory {}; refusing to follow it",
                    shown(&path.display().to_string()),
                    shown(&target.display().to_string()),
                    shown(&root.display().to_string())
                )));
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::backend(format!(
                "cannot inspect {}: {e}",
                shown(&path.display().to_string())
            )))
        }
    }
    Ok(path)
}

fn outside(path: &Path, root: &Path) -> Error {
    Error::backend(format!(
        "{} is not directly inside base directory {}",
        shown(&path.display().to_string()),
        shown(&root.display().to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::ErrorKind;

    #[test]
    fn ordinary_names_pass() {
        for name in ["hpc_alloc-1", "proj.2", "A1", "_x", "root", "normal"] {
            assert_eq!(account(name).unwrap(), name);
            assert_eq!(qos(name).unwrap(), name);
            assert_eq!(partition(name).unwrap(), name);
        }
        for name in ["alice", "wa-bob", "j.doe", "alice@idp", "u1000", "_svc"] {
            assert_eq!(user(name).unwrap(), name);
        }
        for name in ["cpu", "mem", "gres/gpu", "gres/gpu:a100", "license/matlab"] {
            assert_eq!(tres(name).unwrap(), name);
        }
        assert!(account(&"a".repeat(64)).is_ok());
        assert!(user(&"a".repeat(32)).is_ok());
    }

    /// The message for `value` as `kind`, checked to be one short line.
    fn refusal(kind: NameKind, value: &str) -> String {
        let err: Error = kind.check(value).unwrap_err().into();
        assert_eq!(err.kind, ErrorKind::BACKEND);
        assert!(
            !err.message.contains(['\n', '\r', '\0', '\t']),
            "{:?}",
            err.message
        );
        assert!(err.message.len() < 300, "{}", err.message);
        err.message
    }

    #[test]
    fn hostile_names_are_refused_with_the_value_and_the_rule() {
        let cases: &[(&str, &str)] = &[
            ("", "it is empty"),
            ("..", "it starts with '.'"),
            ("../", "it contains '/' (a path separator)"),
            ("a/../../tmp/x", "it contains '/' (a path separator)"),
            (",root", "it contains ',' (the list separator of sacctmgr)"),
            ("x,root", "it contains ','"),
            ("a=b", "it contains '='"),
            ("a\nb", "it contains '\\n' (white space)"),
            ("a\tb", "it contains '\\t' (white space)"),
            ("a\0b", "it contains '\\0' (NUL)"),
            ("a\u{1b}b", "it contains '\\u{1b}' (a control character)"),
            ("a b", "white space"),
            ("a\"b", "(a quote)"),
            ("a'b", "(a quote)"),
            ("a|b", "field separator"),
            ("a:b", "chown"),
            ("ünïcode", "it contains 'ü' (not ASCII)"),
            ("a\u{202e}b", "it contains '\\u{202e}' (not ASCII)"),
            ("a\u{200f}", "'\\u{200f}' (not ASCII)"),
            (
                "-rf",
                "it starts with '-' (commands would read it as an option)",
            ),
            (".hidden", "it starts with '.'"),
            ("a..b", "it contains \"..\""),
        ];
        for (value, rule) in cases {
            for kind in [NameKind::Account, NameKind::User, NameKind::Qos] {
                let message = refusal(kind, value);
                assert!(message.contains(&format!("{value:?}")), "{message}");
                assert!(message.contains(rule), "{value:?} as {kind:?}: {message}");
            }
        }
        assert_eq!(
            refusal(NameKind::Account, "x,root"),
            "invalid SLURM account name \"x,root\": it contains ',' (the list separator of \
             sacctmgr); allowed are letters A-Z a-z, digits, '.', '_' and '-'"
        );
        assert!(refusal(NameKind::Account, "a@b").contains("'@'"));
        assert!(refusal(NameKind::Account, "gres/gpu").contains("'/'"));
    }

    #[test]
    fn lengths_and_numeric_users() {
        let message = refusal(NameKind::Account, &"a".repeat(65));
        assert!(message.contains("65 bytes long, more than 64"), "{message}");
        let message = refusal(NameKind::User, &"a".repeat(33));
        assert!(message.contains("33 bytes long, more than 32"), "{message}");
        // Multi-byte characters count in bytes: 17 x 'ü' is 34 bytes.
        assert!(refusal(NameKind::User, &"ü".repeat(17)).contains("34 bytes"));
        for uid in ["0", "1000"] {
            assert!(refusal(NameKind::User, uid).contains("numeric uid"));
            assert!(account(uid).is_ok(), "accounts may be numeric");
        }
    }

    #[test]
    fn a_10_kb_value_is_shown_truncated() {
        let long = format!("x,root{}", "\n".repeat(10 * 1024));
        let message = refusal(NameKind::Account, &long);
        assert!(message.contains("10246 bytes long"), "{message}");
        assert!(message.starts_with("invalid SLURM account name \"x,root\\n"));
        assert!(message.contains("\"... (10246 bytes)"), "{message}");
    }

    #[test]
    fn lists_check_every_item() {
        assert_eq!(list(NameKind::Account, &["a", "b"]).unwrap(), "a,b");
        assert_eq!(list::<&str>(NameKind::User, &[]).unwrap(), "");
        let err = list(NameKind::Account, &["a", "b,root"]).unwrap_err();
        assert!(err.message.contains("\"b,root\""), "{}", err.message);
    }

    #[test]
    fn values_in_key_value_arguments() {
        assert_eq!(integer("TRES limit", "-1").unwrap(), "-1");
        assert_eq!(integer("TRES limit", "600").unwrap(), "600");
        for bad in ["1,mem=2", "1.5", "+1", "", " 1", "1\n"] {
            let err = integer("TRES limit", bad).unwrap_err();
            assert_eq!(
                err.message,
                format!("invalid TRES limit {bad:?}: it must be a whole number")
            );
        }
        assert!(fairshare("5").is_ok() && fairshare("parent").is_ok());
        for bad in ["5,parent=root", "-1", "5 where", ""] {
            assert!(fairshare(bad)
                .unwrap_err()
                .message
                .contains(&format!("{bad:?}")));
        }
        assert!(tres_limit_type("GrpTRES").is_ok() && tres_limit_type("maxtres").is_ok());
        for bad in ["Parent", "QOS", "DefaultAccount", "GrpTRES=cpu"] {
            let err = tres_limit_type(bad).unwrap_err();
            assert!(
                err.message.contains("a TRES limit (GrpTRES,"),
                "{}",
                err.message
            );
        }
        for good in ["0077", "077", "0o022", "0"] {
            assert!(umask(good).is_ok(), "{good}");
        }
        for bad in ["0999", "01777", "0077 x", "-x", ""] {
            assert!(umask(bad).unwrap_err().message.contains("invalid umask"));
        }
    }

    #[test]
    fn paths_stay_inside_their_base() {
        let base = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(base.path()).unwrap();
        let base_str = base.path().to_str().unwrap();
        // A trailing slash or `.` in the base does not matter: it is canonicalised.
        assert_eq!(
            path_inside(&format!("{base_str}/./"), NameKind::Account, "a").unwrap(),
            root.join("a")
        );
        for bad in ["..", "../x", "a/../../tmp/x", "", "a\0b", "/etc"] {
            let err = path_inside(base_str, NameKind::Account, bad).unwrap_err();
            assert!(err.message.contains(&format!("{bad:?}")), "{}", err.message);
        }
        // An existing directory is fine; a symlink out of the base, to the base itself or
        // dangling is refused; a symlink to another entry of the base is fine.
        std::fs::create_dir(root.join("real")).unwrap();
        assert_eq!(
            path_inside(base_str, NameKind::Account, "real").unwrap(),
            root.join("real")
        );
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("evil")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("self")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("dangling")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        for (name, needle) in [
            ("evil", "outside base directory"),
            ("self", "outside base directory"),
            ("dangling", "does not resolve"),
        ] {
            let err = path_inside(base_str, NameKind::Account, name).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BACKEND);
            assert!(err.message.contains(needle), "{name}: {}", err.message);
        }
        assert!(path_inside(base_str, NameKind::Account, "alias").is_ok());
        // A base that does not exist cannot be canonicalised: refused.
        let err = path_inside("/nonexistent-base-dir", NameKind::User, "alice").unwrap_err();
        assert!(err.message.contains("cannot resolve base directory"));
    }
}
