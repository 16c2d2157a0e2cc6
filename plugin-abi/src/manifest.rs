//! The plugin manifest: a JSON description of the plugin embedded in the ELF section
//! [`crate::ffi::MANIFEST_SECTION`], so `waldur-agent plugins list` can describe a library
//! without loading it. It is rendered at compile time from the same constants the plugin's root
//! module uses (a `static` in a link section must be a constant), and the agent cross-checks
//! the two at load.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ffi::EntryKind;
use crate::wire::CapabilitySet;

/// Manifest format version, bumped only for incompatible manifest changes.
pub const MANIFEST_VERSION: u32 = 1;

/// The BaseBackend class-level flags, as a constant a vendor declares.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub supports_decreasing_usage: bool,
    pub supports_async_orders: bool,
    pub supports_resource_api_keys: bool,
    pub supports_cycle_preflight: bool,
    pub supports_user_homedirs: bool,
    pub supports_periodic_settings: bool,
    pub requires_source_project: bool,
    pub shared_project_membership: bool,
    pub skip_resource_team_diff: bool,
    pub fetch_consented_users_only: bool,
    pub team_fetch_attempts: u32,
    pub team_fetch_delay_ms: u32,
    pub handled_resource_states: &'static [&'static str],
    pub user_resolve_method: &'static str,
}

impl Capabilities {
    /// The reference BaseBackend's defaults.
    pub const DEFAULT: Self = Self {
        supports_decreasing_usage: false,
        supports_async_orders: false,
        supports_resource_api_keys: false,
        supports_cycle_preflight: false,
        supports_user_homedirs: false,
        supports_periodic_settings: false,
        requires_source_project: false,
        shared_project_membership: false,
        skip_resource_team_diff: false,
        fetch_consented_users_only: false,
        team_fetch_attempts: 1,
        team_fetch_delay_ms: 3000,
        handled_resource_states: &["OK", "Erred"],
        user_resolve_method: "",
    };
}

/// The JSON type a setting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    String,
    Integer,
    Number,
    Boolean,
    List,
    Object,
    Any,
}

impl SettingKind {
    pub const fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::List => "list",
            Self::Object => "object",
            Self::Any => "any",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "boolean" => Self::Boolean,
            "list" => Self::List,
            "object" => Self::Object,
            "any" => Self::Any,
            _ => return None,
        })
    }

    /// Does a JSON value (null meaning "unset") fit this kind?
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            _ if value.is_null() => true,
            Self::String => value.is_string(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => value.is_number(),
            Self::Boolean => value.is_boolean(),
            Self::List => value.is_array(),
            Self::Object => value.is_object(),
            Self::Any => true,
        }
    }
}

/// One setting a plugin entry accepts, for validation and `plugins inspect`.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub kind: SettingKind,
    pub required: bool,
    /// The default as JSON text (`"\"0077\""`, `"50"`), shown to administrators.
    pub default_json: Option<&'static str>,
    pub description: &'static str,
}

impl SettingSpec {
    pub const fn optional(
        name: &'static str,
        kind: SettingKind,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            required: false,
            default_json: None,
            description,
        }
    }

    pub const fn required(
        name: &'static str,
        kind: SettingKind,
        description: &'static str,
    ) -> Self {
        Self {
            required: true,
            ..Self::optional(name, kind, description)
        }
    }

    pub const fn default_json(self, json: &'static str) -> Self {
        Self {
            default_json: Some(json),
            ..self
        }
    }
}

/// Everything the manifest says about one entry (built from a plugin's types by
/// `EntrySpec::backend` and `EntrySpec::username`, in [`crate::sdk`]).
#[derive(Debug, Clone, Copy)]
pub struct EntrySpec {
    pub kind: EntryKind,
    pub name: &'static str,
    pub description: &'static str,
    pub capabilities: Option<Capabilities>,
    pub settings: &'static [SettingSpec],
    pub component_settings: &'static [SettingSpec],
    /// Methods the entry implements (BaseBackend, or username-backend methods).
    pub implemented: &'static [&'static str],
    /// BaseClient methods the entry implements.
    pub implemented_client: &'static [&'static str],
}

/// The whole plugin, as the export macro declares it.
#[derive(Debug, Clone, Copy)]
pub struct PluginSpec {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub abi_version: &'static str,
    pub panic_unwind: bool,
    pub entries: &'static [EntrySpec],
}

/// A fixed-capacity byte buffer usable in constant evaluation. With capacity 0 it only counts,
/// which is how the export macro sizes the manifest static before rendering it.
pub struct ConstWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> ConstWriter<N> {
    const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn into_bytes(self) -> [u8; N] {
        assert!(
            self.len == N,
            "manifest length changed between sizing and rendering"
        );
        self.buf
    }

    const fn byte(&mut self, b: u8) {
        if self.len < N {
            self.buf[self.len] = b;
        }
        self.len += 1;
    }

    const fn raw(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            self.byte(bytes[i]);
            i += 1;
        }
    }

    const fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.byte(b'"');
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'"' || b == b'\\' {
                self.byte(b'\\');
                self.byte(b);
            } else if b < 0x20 {
                self.raw("\\u00");
                self.byte(HEX[(b >> 4) as usize]);
                self.byte(HEX[(b & 0xf) as usize]);
            } else {
                self.byte(b);
            }
            i += 1;
        }
        self.byte(b'"');
    }

    const fn key(&mut self, key: &str) {
        self.string(key);
        self.byte(b':');
    }

    const fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    const fn uint(&mut self, n: u32) {
        let mut digits = [0u8; 10];
        let (mut n, mut count) = (n, 0);
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while count > 0 {
            count -= 1;
            self.byte(digits[count]);
        }
    }

    const fn strings(&mut self, list: &[&str]) {
        self.byte(b'[');
        self.items(list, true);
        self.byte(b']');
    }

    const fn items(&mut self, list: &[&str], first: bool) {
        let mut i = 0;
        while i < list.len() {
            if i > 0 || !first {
                self.byte(b',');
            }
            self.string(list[i]);
            i += 1;
        }
    }

    const fn capabilities(&mut self, c: &Capabilities) {
        self.byte(b'{');
        let flags: [(&str, bool); 10] = [
            ("supports_decreasing_usage", c.supports_decreasing_usage),
            ("supports_async_orders", c.supports_async_orders),
            ("supports_resource_api_keys", c.supports_resource_api_keys),
            ("supports_cycle_preflight", c.supports_cycle_preflight),
            ("supports_user_homedirs", c.supports_user_homedirs),
            ("supports_periodic_settings", c.supports_periodic_settings),
            ("requires_source_project", c.requires_source_project),
            ("shared_project_membership", c.shared_project_membership),
            ("skip_resource_team_diff", c.skip_resource_team_diff),
            ("fetch_consented_users_only", c.fetch_consented_users_only),
        ];
        let mut i = 0;
        while i < flags.len() {
            self.key(flags[i].0);
            self.bool(flags[i].1);
            self.byte(b',');
            i += 1;
        }
        self.key("team_fetch_attempts");
        self.uint(c.team_fetch_attempts);
        self.byte(b',');
        self.key("team_fetch_delay_ms");
        self.uint(c.team_fetch_delay_ms);
        self.byte(b',');
        self.key("handled_resource_states");
        self.strings(c.handled_resource_states);
        self.byte(b',');
        self.key("user_resolve_method");
        self.string(c.user_resolve_method);
        self.byte(b'}');
    }

    const fn settings(&mut self, list: &[SettingSpec]) {
        self.byte(b'[');
        let mut i = 0;
        while i < list.len() {
            let s = &list[i];
            if i > 0 {
                self.byte(b',');
            }
            self.byte(b'{');
            self.key("name");
            self.string(s.name);
            self.byte(b',');
            self.key("kind");
            self.string(s.kind.name());
            self.byte(b',');
            self.key("required");
            self.bool(s.required);
            self.byte(b',');
            self.key("default_json");
            match s.default_json {
                Some(d) => self.string(d),
                None => self.raw("null"),
            }
            self.byte(b',');
            self.key("description");
            self.string(s.description);
            self.byte(b'}');
            i += 1;
        }
        self.byte(b']');
    }

    const fn entry(&mut self, e: &EntrySpec) {
        self.byte(b'{');
        self.key("kind");
        self.string(e.kind.name());
        self.byte(b',');
        self.key("name");
        self.string(e.name);
        self.byte(b',');
        self.key("description");
        self.string(e.description);
        self.byte(b',');
        self.key("capabilities");
        match &e.capabilities {
            Some(c) => self.capabilities(c),
            None => self.raw("null"),
        }
        self.byte(b',');
        self.key("settings");
        self.settings(e.settings);
        self.byte(b',');
        self.key("component_settings");
        self.settings(e.component_settings);
        self.byte(b',');
        self.key("implemented");
        self.byte(b'[');
        self.items(e.implemented, true);
        self.items(e.implemented_client, e.implemented.is_empty());
        self.byte(b']');
        self.byte(b'}');
    }
}

/// Renders the manifest of `spec`; with `N == 0` it only measures.
pub const fn render<const N: usize>(spec: &PluginSpec) -> ConstWriter<N> {
    let mut w = ConstWriter::<N>::new();
    w.byte(b'{');
    w.key("manifest_version");
    w.uint(MANIFEST_VERSION);
    w.byte(b',');
    w.key("name");
    w.string(spec.name);
    w.byte(b',');
    w.key("version");
    w.string(spec.version);
    w.byte(b',');
    w.key("description");
    w.string(spec.description);
    w.byte(b',');
    w.key("abi_version");
    w.string(spec.abi_version);
    w.byte(b',');
    w.key("panic_unwind");
    w.bool(spec.panic_unwind);
    w.byte(b',');
    w.key("entries");
    w.byte(b'[');
    let mut i = 0;
    while i < spec.entries.len() {
        if i > 0 {
            w.byte(b',');
        }
        w.entry(&spec.entries[i]);
        i += 1;
    }
    w.byte(b']');
    w.byte(b'}');
    w
}

/// A manifest as the agent reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub abi_version: String,
    pub panic_unwind: bool,
    pub entries: Vec<ManifestEntry>,
}

/// One entry of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// `backend` or `username-management`.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Option<CapabilitySet>,
    #[serde(default)]
    pub settings: Vec<SettingInfo>,
    #[serde(default)]
    pub component_settings: Vec<SettingInfo>,
    #[serde(default)]
    pub implemented: Vec<String>,
}

/// One accepted setting of a [`ManifestEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingInfo {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default_json: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl Manifest {
    /// Parses the bytes of the manifest section.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if manifest.manifest_version != MANIFEST_VERSION {
            return Err(format!(
                "manifest format {} is not supported (this agent reads format {MANIFEST_VERSION})",
                manifest.manifest_version
            ));
        }
        Ok(manifest)
    }
}
