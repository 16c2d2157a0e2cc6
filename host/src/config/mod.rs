//! The agent configuration: the reference agent's YAML file, accepted unchanged.
//!
//! ```no_run
//! let loaded = waldur_agent::config::load("/etc/waldur/waldur-site-agent-config.yaml".as_ref())?;
//! for warning in &loaded.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! for offering in &loaded.config.offerings {
//!     println!("{} needs {:?}", offering.name, offering.plugin_entries());
//! }
//! # Ok::<(), waldur_agent::config::ConfigError>(())
//! ```
//!
//! # Keys
//! Every global and per-offering key of the reference (its `common/structures.py`) with the
//! reference's defaults; see [`Config`] and [`Offering`]. Four keys are agent extensions:
//! `plugin_dirs` (extra plugin directories), `allow_insecure_plugin_permissions`,
//! `runtime_dir` (locks, heartbeat, caches) and `plugin_probe_timeout_seconds`.
//!
//! # Reading rules
//! - Values are read the way the reference's pydantic models read them: booleans may be
//!   `true`/`false`, `yes`/`no`, `on`/`off`, `"true"`, `1`/`0`, ...; integers may be quoted.
//!   A key with an empty value (`key:` or `key: null`) gets its default.
//! - YAML anchors, aliases and `<<` merge keys work, as with the reference's `yaml.safe_load`.
//! - Unknown keys are ignored, as in the reference, but each one produces a warning with its key
//!   path and line (and a "did you mean" hint), because a mistyped key silently falls back to
//!   its default. `backend_settings` is free-form, and component entries may carry plugin
//!   extras, so keys inside them are not reported.
//!
//! # Errors
//! A [`ConfigError`] prints as one line naming the file, the key path and the line:
//! `/etc/waldur/waldur-site-agent-config.yaml: offerings[0].waldur_api_url (line 7): must start with http:// or
//! https://, got "ftp://x"`. YAML syntax errors, type errors and semantic errors (missing keys,
//! ranges, URLs, time zones, log levels, credentials, component keys) all have this form.
//! Messages never contain a token or secret.

mod env;
mod error;
mod locate;
mod raw;
mod runtime_dir;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

/// The config file every command reads without `-c/--config-file`: the reference's default
/// for `waldur_site_agent` and its tools, relative to the working directory. The reference's
/// `waldur_site_healthz` alone defaults to `/etc/waldur-site-agent/config.yaml`; its Helm
/// chart names that file explicitly, so one default serves every command here. The Debian
/// package's units pass `/etc/waldur/waldur-site-agent-config.yaml` with `-c`.
pub const DEFAULT_CONFIG_FILE: &str = "waldur-site-agent-config.yaml";

pub use env::{
    AgentEnv, MEMBERSHIP_SYNC_PERIOD_VAR, ORDER_PROCESS_PERIOD_VAR, RECONCILIATION_PERIOD_VAR,
    REPORT_PERIOD_VAR,
};
pub use error::{ConfigError, ConfigErrorKind};
pub use runtime_dir::{ensure_runtime_dir, runtime_dir, RUNTIME_DIR_VAR};
pub use types::{
    Config, LogFormat, LogLevel, LogShipping, Offering, OidcCredentials, Secret, SubscriptionFlow,
    WaldurAuth, DEFAULT_PLUGIN_PROBE_TIMEOUT_SECONDS, DEFAULT_STOMP_WS_PATH,
    PLUGIN_PROBE_TIMEOUT_SECONDS,
};

use error::{KeyPath, Seg};
use raw::{field_names, RawConfig, RawLogShipping, RawOffering};
use validate::Issue;

/// A loaded configuration and the warnings found on the way (unknown keys, settings that are
/// accepted but probably not what was meant). Each warning is one line in the same
/// `file: key.path (line N): message` form as errors.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads and validates the config file at `path`. Relative `plugin_dirs` entries are resolved
/// against the file's directory.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let io_error =
        |message: String| ConfigError::new(ConfigErrorKind::Io, &origin, None, None, message);
    // Opening a FIFO blocks until a writer comes, so a named pipe left at the config path
    // would hang the agent without a word: only regular files are read.
    let metadata =
        std::fs::metadata(path).map_err(|err| io_error(format!("cannot read the file: {err}")))?;
    if !metadata.is_file() {
        return Err(io_error(format!(
            "not a regular file ({})",
            file_kind(&metadata.file_type())
        )));
    }
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(io_error(format!(
            "{} bytes is larger than a config file can be ({MAX_CONFIG_BYTES} bytes at most)",
            metadata.len()
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|err| io_error(format!("cannot read the file: {err}")))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        io_error(format!(
            "not UTF-8 text (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        ))
    })?;
    let mut loaded = parse(&text, &origin)?;
    if let Some(dir) = path.parent() {
        for plugin_dir in &mut loaded.config.plugin_dirs {
            if plugin_dir.is_relative() {
                *plugin_dir = dir.join(&*plugin_dir);
            }
        }
        if let Some(runtime_dir) = loaded.config.runtime_dir.as_mut() {
            if runtime_dir.is_relative() {
                *runtime_dir = dir.join(&*runtime_dir);
            }
        }
    }
    Ok(loaded)
}

/// Far above any real config (20,000 offerings fit in a few MB), low enough that a wrong path
/// (a disk image, a log) is refused instead of read into memory.
const MAX_CONFIG_BYTES: u64 = 64 << 20;

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

/// Validates config `text`; `origin` names it in messages (normally the file path).
pub fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigError> {
    let doc = Document { text, origin };

    // 1. YAML to a tree. Syntax errors (and duplicate keys) come with the parser's position.
    let mut value: serde_norway::Value =
        serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text))
            .map_err(|err| doc.syntax_error(err))?;
    value.apply_merge().map_err(|err| {
        doc.error(
            ConfigErrorKind::Syntax,
            &KeyPath::root(),
            format!("cannot apply a `<<` merge key: {err}"),
        )
    })?;
    match value {
        serde_norway::Value::Mapping(_) => {}
        serde_norway::Value::Null => {
            return Err(doc.error(
                ConfigErrorKind::Invalid,
                &KeyPath::root(),
                "the file has no settings; it needs at least an `offerings` list",
            ))
        }
        _ => {
            return Err(doc.error(
                ConfigErrorKind::Type,
                &KeyPath::root(),
                "the top level must be a mapping of keys (offerings, timezone, ...)",
            ))
        }
    }

    // 2. Tree to typed keys; unknown keys are collected, type errors carry the key path.
    let mut unknown = Vec::new();
    let raw: RawConfig = {
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(KeyPath::from_ignored(&path));
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record))
    }
    .map_err(|err| {
        let path = KeyPath::from_path_to_error(err.path());
        doc.error(ConfigErrorKind::Type, &path, err.into_inner().to_string())
    })?;

    // 3. Defaults and semantic checks.
    let mut issues = Vec::new();
    let config = validate::build(raw, &mut issues).map_err(|issue| doc.issue(&issue))?;

    let mut warnings: Vec<String> = unknown.iter().map(|path| doc.unknown_key(path)).collect();
    warnings.extend(issues.iter().map(|issue| doc.issue(issue).to_string()));
    Ok(Loaded { config, warnings })
}

/// The text being loaded, for turning key paths into lines.
struct Document<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Document<'_> {
    fn error(
        &self,
        kind: ConfigErrorKind,
        path: &KeyPath,
        message: impl Into<String>,
    ) -> ConfigError {
        let line = locate::line_of(self.text, &path.0);
        let key_path = (!path.is_root()).then(|| path.to_string());
        ConfigError::new(kind, self.origin, key_path, line, message)
    }

    fn issue(&self, issue: &Issue) -> ConfigError {
        self.error(issue.kind, &issue.path, issue.message.clone())
    }

    fn syntax_error(&self, err: serde_path_to_error::Error<serde_norway::Error>) -> ConfigError {
        let path = KeyPath::from_path_to_error(err.path());
        let inner = err.into_inner();
        let location = inner.location();
        let mut message = inner.to_string();
        // serde_norway prints "<path>: <problem> at line L column C, <context>"; the path and the
        // line go to their own places in our format.
        if let Some(location) = &location {
            let at = format!(" at line {} column {}", location.line(), location.column());
            if let Some(start) = message.find(&at) {
                message.replace_range(start..start + at.len(), "");
            }
        }
        if !path.is_root() {
            if let Some(rest) = message.strip_prefix(&format!("{path}: ")) {
                message = rest.to_owned();
            }
        }
        if let Some(error) = self.duplicate_key(&path, &message) {
            return error;
        }
        if message.contains("` as u128") || message.contains("` as i128") {
            // serde_norway cannot hold integers beyond 64 bits (PyYAML can, but the reference's
            // string keys reject them anyway).
            let key_path = (!path.is_root()).then(|| path.to_string());
            return ConfigError::new(
                ConfigErrorKind::Type,
                self.origin,
                key_path,
                location.map(|l| l.line()),
                "this number is too large; put it in quotes if it is text (a UUID, a token)",
            );
        }
        let message = match &location {
            Some(location) => format!("invalid YAML (column {}): {message}", location.column()),
            None => format!("invalid YAML: {message}"),
        };
        let key_path = (!path.is_root()).then(|| path.to_string());
        ConfigError::new(
            ConfigErrorKind::Syntax,
            self.origin,
            key_path,
            location.map(|l| l.line()),
            message,
        )
    }

    /// serde_norway reports a duplicate key at its mapping; point at the second occurrence.
    fn duplicate_key(&self, mapping: &KeyPath, message: &str) -> Option<ConfigError> {
        let quoted = message.strip_prefix("duplicate entry with key ")?;
        let key: String = serde_json::from_str(quoted).ok()?;
        let path = mapping.key(&key);
        let first = locate::line_of_repeated(self.text, &path.0, 0)?;
        let second = locate::line_of_repeated(self.text, &path.0, 1)?;
        Some(ConfigError::new(
            ConfigErrorKind::Syntax,
            self.origin,
            Some(path.to_string()),
            Some(second),
            format!("duplicate key; it is already given on line {first}"),
        ))
    }

    fn unknown_key(&self, path: &KeyPath) -> String {
        let mut message = "is not a known key; it is ignored".to_owned();
        if let Some(hint) = hint_for_unknown(path) {
            message.push_str("; ");
            message.push_str(&hint);
        }
        self.error(ConfigErrorKind::Invalid, path, message)
            .to_string()
    }
}

/// "did you mean" for an unknown key, from the fields of the struct it was found in, or a note
/// that it belongs one level up or down.
fn hint_for_unknown(path: &KeyPath) -> Option<String> {
    let (Seg::Key(key), parent) = path.0.split_last()? else {
        return None;
    };
    let global = field_names::<RawConfig>();
    let offering = field_names::<RawOffering>();
    let (known, elsewhere): (&[&str], Option<(&[&str], &str)>) = match parent {
        [] => (
            global,
            Some((
                offering,
                "an offering key; indent it under an offerings entry",
            )),
        ),
        [Seg::Key(o), Seg::Index(_)] if o == "offerings" => (
            offering,
            Some((global, "a top-level key, not an offering key")),
        ),
        [Seg::Key(l)] if l == "log_shipping" => (field_names::<RawLogShipping>(), None),
        _ => return None,
    };
    if let Some((other, note)) = elsewhere {
        if other.contains(&key.as_str()) {
            return Some(format!("it is {note}"));
        }
    }
    closest(key, known).map(|best| format!("did you mean `{best}`?"))
}

/// The known key closest to `key` by edit distance, if close enough to be a typo.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let normalized = key.to_ascii_lowercase().replace(['-', ' '], "_");
    let limit = match normalized.chars().count() {
        0..=4 => 1,
        5..=12 => 2,
        _ => 3,
    };
    known
        .iter()
        .map(|candidate| (edit_distance(&normalized, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
