//! BaseClient: the raw account operations the agent's generic algorithms (create, delete,
//! add and remove users, limits, pull) run on, each one SLURM command of `client.rs`, which
//! checks every name it is given (`names.rs`).

use std::collections::BTreeMap;

use serde_json::json;
use waldur_plugin_abi::wire::{Association, BackendLimits, ClientResource};
use waldur_plugin_abi::{backend_impl, Client, Result};

use crate::slurm::Slurm;
use crate::usage::{month_containing, parse_timezone};

#[backend_impl]
impl Client for Slurm {
    fn client_list_resources(&self) -> Result<Vec<ClientResource>> {
        self.client.list_resources()
    }

    fn client_get_resource(&self, resource_id: String) -> Result<Option<ClientResource>> {
        self.client.get_resource(&resource_id)
    }

    fn client_create_resource(
        &self,
        name: String,
        description: String,
        organization: String,
        parent_name: Option<String>,
    ) -> Result<String> {
        self.client
            .create_resource(&name, &description, &organization, parent_name.as_deref())
    }

    fn client_delete_resource(&self, name: String) -> Result<()> {
        self.client.delete_resource(&name).map(drop)
    }

    /// Backend units; answers no order id (SLURM is synchronous).
    fn client_set_resource_limits(
        &self,
        resource_id: String,
        limits: BackendLimits,
    ) -> Result<Option<String>> {
        self.client.set_resource_limits(&resource_id, &limits)?;
        Ok(None)
    }

    fn client_get_resource_limits(&self, resource_id: String) -> Result<BackendLimits> {
        self.client.get_resource_limits(&resource_id)
    }

    fn client_get_resource_user_limits(
        &self,
        resource_id: String,
    ) -> Result<BTreeMap<String, BackendLimits>> {
        self.client.get_resource_user_limits(&resource_id)
    }

    fn client_set_resource_user_limits(
        &self,
        resource_id: String,
        username: String,
        limits: BackendLimits,
    ) -> Result<()> {
        self.client
            .set_resource_user_limits(&resource_id, &username, &limits)
            .map(drop)
    }

    fn client_get_association(
        &self,
        user: String,
        resource_id: String,
    ) -> Result<Option<Association>> {
        self.client.get_association(&user, &resource_id)
    }

    fn client_create_association(
        &self,
        username: String,
        resource_id: String,
        default_account: Option<String>,
    ) -> Result<()> {
        self.client
            .create_association(&[&username], &resource_id, default_account.as_deref())
            .map(drop)
    }

    fn client_delete_association(&self, username: String, resource_id: String) -> Result<()> {
        self.client
            .delete_association(&[&username], &resource_id)
            .map(drop)
    }

    /// The allocation lines of the month (in `timezone`, else the offering's), one object
    /// per line: account, user, ReqTRES, Elapsed, minutes and the TRES·minutes read.
    fn client_get_usage_report(
        &self,
        resource_ids: Vec<String>,
        timezone: Option<String>,
    ) -> Result<Vec<serde_json::Value>> {
        let period = match timezone.as_deref().map(str::trim) {
            Some(zone) if !zone.is_empty() => {
                month_containing(jiff::Timestamp::now(), &parse_timezone(zone))
            }
            _ => self.current_period(),
        };
        let lines = self.client.usage_lines(&resource_ids, period)?;
        Ok(lines
            .iter()
            .map(|line| {
                json!({
                    "account": line.account,
                    "user": line.user,
                    "req_tres": line.req_tres,
                    "elapsed": line.elapsed,
                    "minutes": line.minutes(),
                    "tres_usage": line.tres_usage(self.client.reported_tres()),
                })
            })
            .collect())
    }

    fn client_list_resource_users(&self, resource_id: String) -> Result<Vec<String>> {
        self.client.list_resource_users(&resource_id)
    }

    /// Runs the command through the plugin's runner (no shell, merged output, bounded by
    /// `command_timeout`).
    fn client_execute_command(&self, command: Vec<String>, silent: bool) -> Result<String> {
        self.client.execute(&command, silent)
    }

    fn client_create_linux_user_homedir(&self, username: String, umask: String) -> Result<()> {
        self.client
            .create_linux_user_homedir(&username, &umask)
            .map(drop)
    }
}
