//! Where plugins are looked for, in search order, and which files count as plugins.

use std::path::{Path, PathBuf};

/// The packaged plugin directory, searched first.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/waldur-agent/plugins";

/// Extra directories, `:`-separated like `PATH`.
pub const PLUGIN_PATH_ENV: &str = "WALDUR_AGENT_PLUGIN_PATH";

/// The ordered list of plugin directories. When two plugins register the same entry name the
/// one found first wins, so the order is part of the contract: the packaged directory, then
/// `WALDUR_AGENT_PLUGIN_PATH`, then the config's `plugin_dirs`, then `--plugin-dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The agent's standard search path.
    pub fn standard(
        env_value: Option<&str>,
        config_dirs: &[PathBuf],
        cli_dirs: &[PathBuf],
    ) -> Self {
        let mut path = Self::default();
        path.push(PathBuf::from(DEFAULT_PLUGIN_DIR));
        for dir in env_value
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.is_empty())
        {
            path.push(PathBuf::from(dir));
        }
        for dir in config_dirs.iter().chain(cli_dirs) {
            path.push(dir.clone());
        }
        path
    }

    /// Only the given directories (tests, `--only-plugin-dir`).
    pub fn only(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut path = Self::default();
        for dir in dirs {
            path.push(dir);
        }
        path
    }

    /// Adds a directory unless it is already listed (the first position counts).
    pub fn push(&mut self, dir: PathBuf) {
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every candidate file, directory by directory in search order, by name within one.
    /// Missing directories are skipped: the packaged one does not exist on development hosts.
    pub fn candidates(&self) -> Vec<PathBuf> {
        self.dirs.iter().flat_map(|dir| plugin_files(dir)).collect()
    }
}

/// The `*.so` files directly in `dir`, sorted by name.
pub fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "so"))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_order_is_default_env_config_cli_without_duplicates() {
        let path = SearchPath::standard(
            Some("/a::/b"),
            &[PathBuf::from("/c"), PathBuf::from("/a")],
            &[PathBuf::from("/d")],
        );
        let dirs: Vec<_> = path
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        assert_eq!(dirs, [DEFAULT_PLUGIN_DIR, "/a", "/b", "/c", "/d"]);
    }

    #[test]
    fn only_so_files_sorted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.so", "a.so", "notes.txt", "c.so.bak"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("d.so")).unwrap();
        let names: Vec<_> = plugin_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.so", "b.so"]);
    }
}
