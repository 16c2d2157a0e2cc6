//! Config errors and key paths.

use std::fmt;

/// One step of a key path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value sits in the document, printed like `offerings[0].backend_components.cpu`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path extended by a list index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn from_path_to_error(path: &serde_path_to_error::Path) -> Self {
        let segs = path
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        KeyPath(segs)
    }

    pub(crate) fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
            match path {
                serde_ignored::Path::Root => {}
                serde_ignored::Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Seg::Index(*index));
                }
                serde_ignored::Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Seg::Key(key.clone()));
                }
                serde_ignored::Path::Some { parent }
                | serde_ignored::Path::NewtypeStruct { parent }
                | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
            }
        }
        let mut segs = Vec::new();
        walk(path, &mut segs);
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What went wrong, for callers that want to react differently (exit codes, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read (missing, unreadable, not UTF-8).
    Io,
    /// The text is not valid YAML (or uses YAML features the agent cannot apply).
    Syntax,
    /// A value has the wrong type, e.g. a list where a string is expected.
    Type,
    /// A value is well-typed but not acceptable: a missing key, a bad URL, an out-of-range number.
    Invalid,
}

/// A configuration error. Its `Display` is one line naming the file, the key path and the line:
/// `/etc/waldur/waldur-site-agent-config.yaml: offerings[0].waldur_api_url (line 7): must start with http:// or https://`.
///
/// The key path or the line is left out when it is not known (a file that cannot be read, a key
/// that is missing from a mapping the file does not have, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    origin: String,
    key_path: Option<String>,
    line: Option<usize>,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ConfigErrorKind,
        origin: &str,
        key_path: Option<String>,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind,
            origin: origin.to_owned(),
            key_path: key_path.filter(|p| !p.is_empty()),
            line,
            message: one_line(&message.into()),
        }
    }

    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }

    /// The file name (or the `origin` given to [`super::parse`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key path, e.g. `offerings[0].waldur_api_url`.
    pub fn key_path(&self) -> Option<&str> {
        self.key_path.as_deref()
    }

    /// The 1-based line of the offending key or value.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The message alone, without file, key path and line.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.origin,
            self.key_path.as_deref(),
            self.line,
            &self.message,
        )
    }
}

/// `origin: path (line N): message`, leaving out what is unknown. Shared with warnings.
pub(crate) fn write_located(
    f: &mut impl fmt::Write,
    origin: &str,
    key_path: Option<&str>,
    line: Option<usize>,
    message: &str,
) -> fmt::Result {
    write!(f, "{origin}: ")?;
    match (key_path, line) {
        (Some(path), Some(line)) => write!(f, "{path} (line {line}): ")?,
        (Some(path), None) => write!(f, "{path}: ")?,
        (None, Some(line)) => write!(f, "line {line}: ")?,
        (None, None) => {}
    }
    f.write_str(message)
}

/// Collapses line breaks so a message always prints as one line.
pub(crate) fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_owned();
    }
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
