//! Where plugins are looked for, in search order, and which files count as plugins.

use std::fs::FileType;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::Refusal;

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

/// The `*.so` entries directly in `dir`, sorted by name, whatever their type: a FIFO or a
/// directory named `*.so` is most likely a botched install, so the catalogue lists it as
/// refused (see [`check_regular_file`]) instead of skipping it silently.
pub fn plugin_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "so"))
        .collect();
    files.sort();
    files
}

/// `Ok` when `path` is a regular file or a symbolic link to one.
///
/// Only the file's metadata is looked at: a FIFO must never be opened for reading (that
/// blocks until someone writes to it), and a device could have side effects when opened.
pub fn check_regular_file(path: &Path) -> Result<(), Refusal> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Refusal::Unreadable {
        error: e.to_string(),
    })?;
    if !meta.file_type().is_symlink() {
        return match describe_type(meta.file_type()) {
            None => Ok(()),
            Some(what) => Err(Refusal::NotRegularFile {
                what: what.to_string(),
                link_target: None,
            }),
        };
    }
    let target = std::fs::read_link(path)
        .map(|target| one_line(&target.display().to_string()))
        .unwrap_or_else(|e| format!("an unreadable target ({e})"));
    match std::fs::metadata(path) {
        Ok(meta) => match describe_type(meta.file_type()) {
            None => Ok(()),
            Some(what) => Err(Refusal::NotRegularFile {
                what: what.to_string(),
                link_target: Some(target),
            }),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Refusal::DanglingLink { target }),
        Err(e) => Err(Refusal::BrokenLink {
            target,
            error: e.to_string(),
        }),
    }
}

/// `None` for a regular file, otherwise what it is, for a reason text.
pub(super) fn describe_type(file_type: FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_dir() {
        Some("a directory")
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else {
        Some("an unknown kind of file")
    }
}

/// A link target may hold any byte, a newline too; a reason must stay one line.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
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
    fn every_so_entry_sorted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.so", "a.so", "notes.txt", "c.so.bak"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("d.so")).unwrap();
        let names: Vec<_> = plugin_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.so", "b.so", "d.so"]);
    }

    #[test]
    fn only_regular_files_and_links_to_them_pass() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.so");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(check_regular_file(&file), Ok(()));
        let link = dir.path().join("link.so");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(check_regular_file(&link), Ok(()));
        let not_regular = |what: &str| Refusal::NotRegularFile {
            what: what.to_string(),
            link_target: None,
        };
        assert_eq!(
            check_regular_file(dir.path()),
            Err(not_regular("a directory"))
        );
        let dangling = dir.path().join("dangling.so");
        std::os::unix::fs::symlink("gone\nfile.so", &dangling).unwrap();
        assert_eq!(
            check_regular_file(&dangling),
            Err(Refusal::DanglingLink {
                target: "gone\\nfile.so".to_string()
            })
        );
        let looping = dir.path().join("loop.so");
        std::os::unix::fs::symlink(&looping, &looping).unwrap();
        let refusal = check_regular_file(&looping).unwrap_err();
        assert!(matches!(refusal, Refusal::BrokenLink { .. }), "{refusal:?}");
        assert_eq!(
            check_regular_file(Path::new("/dev/null")),
            Err(not_regular("a character device"))
        );
    }
}
