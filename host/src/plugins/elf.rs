//! Reads a plugin's manifest from its ELF file without loading it: no plugin code runs, so a
//! foreign, corrupt or hostile file can be described safely.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};
use waldur_plugin_abi::ffi::{MANIFEST_SECTION, ROOT_MODULE_SYMBOL};
use waldur_plugin_abi::manifest::Manifest;

/// Reads and parses the manifest. `Err` is a one-line reason the file is not a usable plugin.
pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if !data.starts_with(b"\x7fELF") {
        return Err("not a shared library (no ELF header)".to_string());
    }
    let file =
        object::File::parse(&*data).map_err(|e| format!("corrupt or truncated ELF file ({e})"))?;
    if file.kind() != object::ObjectKind::Dynamic {
        return Err("an ELF file but not a shared library".to_string());
    }
    let Some(section) = file.section_by_name(MANIFEST_SECTION) else {
        let is_abi_stable = file
            .dynamic_symbols()
            .any(|s| s.name() == Ok(ROOT_MODULE_SYMBOL));
        return Err(if is_abi_stable {
            "an abi_stable library but not a waldur-agent plugin (no plugin manifest)".to_string()
        } else {
            "not a waldur-agent plugin (no plugin manifest; a foreign shared library?)".to_string()
        });
    };
    let bytes = section
        .data()
        .map_err(|e| format!("corrupt or truncated ELF file: manifest unreadable ({e})"))?;
    Manifest::parse(bytes).map_err(|e| format!("invalid plugin manifest: {e}"))
}
