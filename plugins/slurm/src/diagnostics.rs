//! `ping` and `diagnostics`: SLURM's version, a sacctmgr that is really SLURM's, the
//! accounting database answering, the configured cluster, the TRES, and the default and root
//! accounts. Logged with `log::info!` (failures with `log::error!`).

use waldur_plugin_abi::Result;

use crate::slurm::Slurm;

impl Slurm {
    /// `list account` answers. With `raise_exception`, its error instead of false.
    pub(crate) fn ping_cluster(&self, raise_exception: bool) -> Result<bool> {
        match self.client.list_resources() {
            Ok(_) => Ok(true),
            Err(e) if raise_exception => Err(e),
            Err(e) => {
                log::info!("Error: {}", e.message);
                Ok(false)
            }
        }
    }

    /// The health report; true when SLURM is usable as configured.
    pub(crate) fn run_diagnostics(&self) -> bool {
        let s = &self.settings;
        let row = |label: &str, value: &str| log::info!("{label:<30} = {value}");
        row("SLURM customer prefix", &s.customer_prefix);
        row("SLURM project prefix", &s.project_prefix);
        row("SLURM allocation prefix", &s.allocation_prefix);
        row("SLURM default account", &s.default_account);
        row("SLURM root account", &s.root_account);
        log::info!(
            "SLURM tres components: {:?}",
            self.components.keys().collect::<Vec<_>>()
        );
        log::info!("SLURM execution mode: cli");

        match self.client.get_version() {
            Ok(version) => log::info!("Slurm version: {version}"),
            Err(e) => {
                log::error!("Unable to fetch SLURM info, reason: {}", e.message);
                return false;
            }
        }
        if !self.client.validate_slurm_binary() {
            log::error!(
                "SLURM backend validation failed: sacctmgr does not appear to be a real SLURM \
                 binary. Check slurm_bin_path setting (current: '{}').",
                s.slurm_bin_path
            );
        }
        match self.ping_cluster(true) {
            Ok(_) => log::info!("SLURM cluster ping is successful"),
            Err(e) => log::error!("Unable to ping SLURM cluster, reason: {}", e.message),
        }
        match self.client.list_clusters() {
            Ok(clusters) => {
                let known = clusters.join(", ");
                log::info!(
                    "SLURM clusters: {}",
                    if known.is_empty() { "(none)" } else { &known }
                );
                match &s.cluster_name {
                    Some(cluster) if clusters.contains(cluster) => {
                        log::info!("Cluster filter \"{cluster}\" is valid")
                    }
                    Some(cluster) => {
                        log::error!(
                            "Configured cluster_name \"{cluster}\" not found in SLURM. Known clusters: {known}"
                        );
                        return false;
                    }
                    None => log::warn!(
                        "No cluster_name configured in backend_settings. sacctmgr commands will \
                         not be scoped to a specific cluster. Set cluster_name in \
                         backend_settings to match the offering backend_id."
                    ),
                }
            }
            Err(e) => log::error!("Unable to list SLURM clusters: {}", e.message),
        }
        match self.client.list_tres() {
            Ok(tres) => log::info!("Available tres in the cluster: {}", tres.join(",")),
            Err(e) => {
                log::error!("Unable to list the cluster's TRES: {}", e.message);
                return false;
            }
        }
        for (what, account) in [
            ("Default user account", &s.default_account),
            ("Root parent account", &s.root_account),
        ] {
            match self.client.get_resource(account) {
                Ok(Some(_)) => log::info!("{what} \"{account}\" is in place"),
                Ok(None) => {
                    log::error!("{what} {account} does not exist in the cluster");
                    return false;
                }
                Err(e) => {
                    log::error!("Unable to check the {what} {account}: {}", e.message);
                    return false;
                }
            }
        }
        true
    }
}
