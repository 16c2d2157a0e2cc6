//! Plugins built against deliberately altered copies of the current `plugin-abi`.

use std::path::{Path, PathBuf};

use crate::standalone::standalone_manifest;
use crate::workspace_root;

/// How the copy of `plugin-abi` differs from the real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbiVariant {
    /// The same code released as version 2.0.0 (an incompatible major).
    NextMajor,
    /// Version 1.0.0, but `LogLevel` widened from `u8` to `u16`: a layout a 1.x agent must
    /// refuse, reached through the host callbacks every constructor receives.
    ChangedLayout,
}

impl AbiVariant {
    fn dir_name(self) -> &'static str {
        match self {
            Self::NextMajor => "abi-next-major",
            Self::ChangedLayout => "abi-changed-layout",
        }
    }

    /// The package name of the plugin built against the copy.
    pub fn package(self) -> String {
        format!("waldur-plugin-{}", self.dir_name())
    }
}

const PLUGIN_SOURCE: &str = r#"
//! Generated test plugin: a backend that answers ping.
use waldur_plugin_abi::{backend_impl, Backend, BackendContext, Client, Result};

struct Hello;

#[backend_impl]
impl Client for Hello {}

#[backend_impl]
impl Backend for Hello {
    fn new(_context: BackendContext) -> Result<Self> {
        Ok(Hello)
    }

    fn ping(&self, _raise_exception: bool) -> Result<bool> {
        Ok(true)
    }
}

waldur_plugin_abi::export_plugin! {
    description: "generated test plugin",
    backends: ["hello-variant" => Hello],
    username_backends: [],
}
"#;

/// Writes the copy and the plugin crate under `target/generated/<variant>`; answers the
/// plugin crate's directory.
pub fn prepare(variant: AbiVariant) -> PathBuf {
    let root = workspace_root();
    let base = crate::target_dir()
        .join("generated")
        .join(variant.dir_name());
    let abi = base.join("plugin-abi");
    let macros = abi.join("macros");
    let plugin = base.join("plugin");
    let root_manifest = read(&root.join("Cargo.toml"));

    copy_dir(&root.join("plugin-abi/src"), &abi.join("src"));
    copy_dir(&root.join("plugin-abi/macros/src"), &macros.join("src"));
    let mut abi_manifest = standalone_manifest(
        &read(&root.join("plugin-abi/Cargo.toml")),
        &root_manifest,
        &[("waldur-plugin-abi-macros", &macros)],
    );
    write(
        &macros.join("Cargo.toml"),
        &standalone_manifest(
            &read(&root.join("plugin-abi/macros/Cargo.toml")),
            &root_manifest,
            &[],
        ),
    );
    match variant {
        AbiVariant::NextMajor => {
            abi_manifest =
                replace_once(&abi_manifest, "version = \"1.0.0\"", "version = \"2.0.0\"");
        }
        AbiVariant::ChangedLayout => {
            let ffi = abi.join("src/ffi.rs");
            let text = read(&ffi);
            write(
                &ffi,
                &replace_once(
                    &text,
                    "pub struct LogLevel(pub u8);",
                    "pub struct LogLevel(pub u16);",
                ),
            );
        }
    }
    write(&abi.join("Cargo.toml"), &abi_manifest);

    write(
        &plugin.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nwaldur-plugin-abi = {{ path = \"{}\" }}\n\n[workspace]\n",
            variant.package(),
            abi.display()
        ),
    );
    write(&plugin.join("src/lib.rs"), PLUGIN_SOURCE);
    plugin
}

/// Replaces exactly one occurrence, so a fixture can never silently stop being altered.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the generated ABI variant expects exactly one `{from}` in plugin-abi; update tests/support"
    );
    text.replacen(from, to, 1)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Writes only when the content changed, so cargo does not rebuild needlessly.
fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            write(&dest, &read(&entry.path()));
        }
    }
}
