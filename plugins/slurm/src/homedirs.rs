//! Home directories (`mkhomedir_helper`), their optional quotas (CephFS xattrs, XFS, Lustre)
//! and per-allocation project directories.

use std::path::{Path, PathBuf};

use waldur_plugin_abi::Result;

use crate::command::argv;
use crate::names::{self, NameKind};
use crate::settings::{HomedirQuota, ProjectDirectory, QuotaProvider};
use crate::slurm::Slurm;

/// A user's home directory from the password database.
fn passwd_home(username: &str) -> Option<String> {
    let user = nix::unistd::User::from_name(username).ok()??;
    Some(user.dir.to_string_lossy().into_owned())
}

/// `<base>/<user>` when `homedir_base_path` is set (kept inside the canonical base, see
/// [`names::path_inside`]), else the user's passwd home (`None` without an entry). A user
/// name that is no valid name, or a home that would leave the base, is a backend error.
pub fn homedir_of(username: &str, base: Option<&str>) -> Result<Option<PathBuf>> {
    let username = names::user(username)?;
    match base {
        Some(base) => names::path_inside(base, NameKind::User, username).map(Some),
        None => Ok(passwd_home(username).map(PathBuf::from)),
    }
}

impl Slurm {
    /// The reference BaseBackend's `create_user_homedirs`: for each user whose directory
    /// `homedir_base_path/<user>` does not exist (always, without a base path),
    /// `mkhomedir_helper <user> <umask>`, then the quota when one is configured. Failures are
    /// logged per user and never stop the others.
    pub(crate) fn create_homedirs(&self, usernames: &[String], umask: &str) {
        log::info!("Creating homedirs for users");
        let base = self.settings.homedir_base_path.as_deref();
        let mut seen = std::collections::BTreeSet::new();
        for username in usernames.iter().filter(|u| seen.insert(u.as_str())) {
            // Checked first: a refused name (or a home leaving the base) gets no home, no
            // quota and no command at all.
            let checked = names::user(username).and_then(|username| match base {
                Some(base) => names::path_inside(base, NameKind::User, username).map(Some),
                None => Ok(None),
            });
            let home = match checked {
                Ok(home) => home,
                Err(e) => {
                    log::error!("Unable to create user homedir, reason: {}", e.message);
                    continue;
                }
            };
            let exists = home.as_deref().is_some_and(Path::is_dir);
            if exists {
                log::info!("Homedir for user {username} already exists, skipping creation");
            } else {
                log::info!("Creating homedir for the user {username} with umask {umask}");
                match self.client.create_linux_user_homedir(username, umask) {
                    Ok(_) => log::info!("Homedir for user {username} has been created"),
                    Err(e) => {
                        log::error!(
                            "Unable to create user homedir for {username}, reason: {}",
                            e.message
                        );
                        continue;
                    }
                }
            }
            if let Some(quota) = &self.settings.homedir_quota {
                if let Err(message) = self.apply_quota(quota, username, home.as_deref()) {
                    log::error!("Failed to apply homedir quota for {username}: {message}");
                }
            }
        }
    }

    /// `home`: the checked `<homedir_base_path>/<user>`, else the passwd home is used.
    fn apply_quota(
        &self,
        quota: &HomedirQuota,
        username: &str,
        home: Option<&Path>,
    ) -> std::result::Result<(), String> {
        let home = match home {
            Some(home) => home.to_path_buf(),
            None => homedir_of(username, None)
                .map_err(|e| e.message)?
                .ok_or_else(|| format!("{username} has no entry in the password database"))?,
        };
        let home = home.display().to_string();
        let run =
            |command: Vec<String>| self.client.execute(&command, false).map_err(|e| e.message);
        match quota.provider {
            QuotaProvider::CephXattr => {
                let attributes = [
                    ("ceph.quota.max_bytes", quota.max_bytes.clone()),
                    (
                        "ceph.quota.max_files",
                        quota.max_files.map(|n| n.to_string()),
                    ),
                ];
                for (attribute, value) in attributes {
                    let Some(value) = value else { continue };
                    run(argv(&["setfattr", "-n", attribute, "-v", &value, &home]))?;
                    log::info!("Set {attribute}={value} on {home}");
                    match run(argv(&["getfattr", "--only-values", "-n", attribute, &home])) {
                        Ok(actual) if actual.trim() == value => {
                            log::info!("Verified {attribute}={value} on {home}")
                        }
                        Ok(actual) => log::warn!(
                            "Quota verification mismatch for {attribute} on {home}: expected={value}, actual={}",
                            actual.trim()
                        ),
                        Err(_) => log::warn!("Could not verify {attribute} on {home}"),
                    }
                }
            }
            QuotaProvider::Xfs => {
                let mount = quota.mount_point.as_deref().unwrap_or_default();
                let limits = [
                    ("bsoft", quota.block_softlimit.clone()),
                    ("bhard", quota.block_hardlimit.clone()),
                    ("isoft", quota.inode_softlimit.map(|n| n.to_string())),
                    ("ihard", quota.inode_hardlimit.map(|n| n.to_string())),
                ]
                .into_iter()
                .filter_map(|(key, value)| Some(format!("{key}={}", value?)))
                .collect::<Vec<_>>()
                .join(" ");
                run(argv(&[
                    "xfs_quota",
                    "-x",
                    "-c",
                    &format!("limit -u {limits} {username}"),
                    mount,
                ]))?;
                log::info!("Set XFS user quota for {username} on {mount}: {limits}");
                let check = format!("quota -u -N -b -h {username}");
                match run(argv(&["xfs_quota", "-x", "-c", &check, mount])) {
                    Ok(report) => {
                        log::info!("XFS quota of {username} on {mount}: {}", report.trim())
                    }
                    Err(_) => log::warn!("Could not verify XFS quota for {username} on {mount}"),
                }
            }
            QuotaProvider::Lustre => {
                let mount = quota.mount_point.as_deref().unwrap_or_default();
                let mut command = argv(&["lfs", "setquota", "-u", username]);
                for (flag, value) in [
                    ("-b", quota.block_softlimit.clone()),
                    ("-B", quota.block_hardlimit.clone()),
                    ("-i", quota.inode_softlimit.map(|n| n.to_string())),
                    ("-I", quota.inode_hardlimit.map(|n| n.to_string())),
                ] {
                    if let Some(value) = value {
                        command.extend([flag.to_string(), value]);
                    }
                }
                command.push(mount.to_string());
                run(command)?;
                log::info!("Set Lustre user quota for {username} on {mount}");
                match run(argv(&["lfs", "quota", "-u", username, mount])) {
                    Ok(report) => {
                        log::info!("Lustre quota of {username} on {mount}: {}", report.trim())
                    }
                    Err(_) => log::warn!("Could not verify Lustre quota for {username} on {mount}"),
                }
            }
        }
        Ok(())
    }

    /// `project_directory`: `mkdir -p <base>/<account>`, `chmod <permissions>`, `chmod g+s`,
    /// `chown <owner>:<group>`, `setfacl -R -m group:<g>:rwx,d:group:<g>:rwx`. Failures are
    /// logged, never fatal (as in the reference).
    ///
    /// `<base>/<account>` is kept inside the canonical base ([`names::path_inside`]): an
    /// account that is no valid name (`../../tmp/x`), a missing base or a symlink planted
    /// there pointing out of the base runs no command (the reference ran them all,
    /// `setfacl -R` included, wherever the path led).
    pub(crate) fn setup_project_directory(&self, config: &ProjectDirectory, account: &str) {
        let path = match names::path_inside(&config.base_path, NameKind::Account, account) {
            Ok(path) => path.display().to_string(),
            Err(e) => {
                log::error!("Not creating the project directory: {}", e.message);
                return;
            }
        };
        let group = match (config.group_owner_source.as_str(), &config.group_name) {
            ("project_id", _) | (_, None) => account.to_string(),
            (_, Some(name)) => name.clone(),
        };
        let run = |command: Vec<String>| self.client.execute(&command, false).map(drop);
        let created = run(argv(&["mkdir", "-p", &path]))
            .and_then(|()| run(argv(&["chmod", &config.permissions, &path])))
            .and_then(|()| match config.set_gid {
                true => run(argv(&["chmod", "g+s", &path])),
                false => Ok(()),
            });
        if let Err(e) = created {
            log::error!("Failed to create project directory {path}: {}", e.message);
            return;
        }
        if let Err(e) = run(argv(&[
            "chown",
            &format!("{}:{group}", config.owner),
            &path,
        ])) {
            log::error!("Failed to chown project directory {path}: {}", e.message);
        }
        if config.set_acl {
            let acl = format!("group:{group}:rwx,d:group:{group}:rwx");
            if let Err(e) = run(argv(&["setfacl", "-R", "-m", &acl, &path])) {
                log::error!(
                    "Failed to set ACL on project directory {path}: {}",
                    e.message
                );
            }
        }
        log::info!("Created project directory {path}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homedirs_come_from_the_base_path_or_the_password_database() {
        let base = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(base.path()).unwrap();
        let slash = format!("{}/", base.path().display());
        assert_eq!(
            homedir_of("alice", Some(&slash)).unwrap(),
            Some(root.join("alice"))
        );
        assert_eq!(
            homedir_of("root", None).unwrap(),
            Some(PathBuf::from("/root"))
        );
        assert_eq!(homedir_of("no-such-user-xyz", None).unwrap(), None);
        for bad in ["../alice", "..", "", "a/b"] {
            assert!(homedir_of(bad, Some(&slash)).is_err(), "{bad:?}");
            assert!(homedir_of(bad, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_passwd_home_of_a_known_user_and_none_for_an_unknown_one() {
        assert_eq!(passwd_home("root").as_deref(), Some("/root"));
        assert_eq!(passwd_home("no-such-user-waldur-agent"), None);
        assert_eq!(passwd_home("nul\0inside"), None);
    }
}
