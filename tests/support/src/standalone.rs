//! Turns a workspace member's manifest into a standalone one: inherited fields and
//! `dep.workspace = true` dependencies get the workspace's values, so the crate can be copied
//! out of the workspace and built on its own.

use std::path::Path;

use toml::{Table, Value};

/// Rewrites `manifest` (a member of the workspace whose root manifest is `root_manifest`).
/// `path_deps` maps a dependency name to the path it should point to in the copy.
pub fn standalone_manifest(
    manifest: &str,
    root_manifest: &str,
    path_deps: &[(&str, &Path)],
) -> String {
    let mut doc: Table = manifest.parse().expect("member manifest is valid TOML");
    let root: Table = root_manifest.parse().expect("root manifest is valid TOML");
    let workspace = root["workspace"].as_table().expect("root has [workspace]");
    let shared_package = workspace.get("package").and_then(Value::as_table);
    let shared_deps = workspace.get("dependencies").and_then(Value::as_table);

    if let Some(package) = doc.get_mut("package").and_then(Value::as_table_mut) {
        for (key, value) in package.iter_mut() {
            if is_inherited(value) {
                *value = shared_package
                    .and_then(|p| p.get(key))
                    .cloned()
                    .unwrap_or_else(|| panic!("[workspace.package] has no {key}"));
            }
        }
    }
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(deps) = doc.get_mut(section).and_then(Value::as_table_mut) else {
            continue;
        };
        for (name, spec) in deps.iter_mut() {
            if is_inherited(spec) {
                let mut resolved = shared_deps
                    .and_then(|d| d.get(name))
                    .cloned()
                    .unwrap_or_else(|| panic!("[workspace.dependencies] has no {name}"));
                // Features added at the use site are kept.
                if let (Some(extra), Value::Table(t)) =
                    (spec.get("features").cloned(), &mut resolved)
                {
                    t.insert("features".into(), extra);
                }
                *spec = resolved;
            }
            if let Some((_, path)) = path_deps.iter().find(|(n, _)| n == name) {
                let mut table = match spec.clone() {
                    Value::Table(t) => t,
                    _ => Table::new(),
                };
                table.insert("path".into(), Value::String(path.display().to_string()));
                table.remove("version");
                *spec = Value::Table(table);
            }
        }
    }
    // `[lints] workspace = true` becomes the workspace's lints themselves.
    if doc.get("lints").is_some_and(is_inherited) {
        match workspace.get("lints") {
            Some(lints) => {
                doc.insert("lints".into(), lints.clone());
            }
            None => panic!("[workspace.lints] is missing"),
        }
    }
    // Its own workspace root: cargo must not take the copy for a stray member of another.
    doc.insert("workspace".into(), Value::Table(Table::new()));
    toml::to_string(&doc).expect("manifest serializes")
}

fn is_inherited(value: &Value) -> bool {
    value.get("workspace").and_then(Value::as_bool) == Some(true)
}
