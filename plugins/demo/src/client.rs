//! BaseClient: raw account operations on the state file. The agent's generic algorithms
//! (create, delete, add and remove users, set limits) run on these.

use std::collections::BTreeMap;

use waldur_plugin_abi::wire::{Association, BackendLimits, ClientResource};
use waldur_plugin_abi::{backend_impl, Client, Result};

use crate::demo::Demo;
use crate::state::Account;
use crate::usage::{self, parse_timezone};

fn client_resource(account: &Account) -> ClientResource {
    ClientResource {
        name: account.name.clone(),
        description: account.description.clone(),
        organization: account.organization.clone(),
        backend_id: account.name.clone(),
    }
}

// `client_execute_command` is deliberately left to the agent: the demo runs no commands.
#[backend_impl]
impl Client for Demo {
    fn client_list_resources(&self) -> Result<Vec<ClientResource>> {
        self.fail_point("client_list_resources")?;
        self.store
            .read(|s| Ok(s.accounts.values().map(client_resource).collect()))
    }

    fn client_get_resource(&self, resource_id: String) -> Result<Option<ClientResource>> {
        self.fail_point("client_get_resource")?;
        self.store
            .read(|s| Ok(s.accounts.get(&resource_id).map(client_resource)))
    }

    fn client_create_resource(
        &self,
        name: String,
        description: String,
        organization: String,
        parent_name: Option<String>,
    ) -> Result<String> {
        self.fail_point("client_create_resource")?;
        self.store.update(|s| {
            s.create_account(
                &name,
                &description,
                &organization,
                parent_name.as_deref(),
                &self.settings.root_account,
            )
        })?;
        log::info!("demo: created account {name} (parent {parent_name:?})");
        Ok(name)
    }

    fn client_delete_resource(&self, name: String) -> Result<()> {
        self.fail_point("client_delete_resource")?;
        if self.store.update(|s| s.delete_account(&name))? {
            log::info!("demo: deleted account {name}");
        } else {
            log::warn!("demo: account {name} to delete does not exist");
        }
        Ok(())
    }

    fn client_set_resource_limits(
        &self,
        resource_id: String,
        limits: BackendLimits,
    ) -> Result<Option<String>> {
        self.fail_point("client_set_resource_limits")?;
        self.store.update(|s| s.set_limits(&resource_id, &limits))?;
        log::info!("demo: account {resource_id} limits set to {limits:?}");
        Ok(None)
    }

    fn client_get_resource_limits(&self, resource_id: String) -> Result<BackendLimits> {
        self.fail_point("client_get_resource_limits")?;
        self.store
            .read(|s| Ok(s.account(&resource_id)?.limits.clone()))
    }

    fn client_get_resource_user_limits(
        &self,
        resource_id: String,
    ) -> Result<BTreeMap<String, BackendLimits>> {
        self.fail_point("client_get_resource_user_limits")?;
        self.store
            .read(|s| Ok(s.account(&resource_id)?.user_limits.clone()))
    }

    fn client_set_resource_user_limits(
        &self,
        resource_id: String,
        username: String,
        limits: BackendLimits,
    ) -> Result<()> {
        self.fail_point("client_set_resource_user_limits")?;
        if !self
            .store
            .update(|s| s.set_user_limits(&resource_id, &username, &limits))?
        {
            log::warn!("demo: {username} is not associated with {resource_id}; limits not set");
        }
        Ok(())
    }

    fn client_get_association(
        &self,
        user: String,
        resource_id: String,
    ) -> Result<Option<Association>> {
        self.fail_point("client_get_association")?;
        self.store.read(|s| {
            let member = s
                .accounts
                .get(&resource_id)
                .is_some_and(|a| a.users.contains_key(&user));
            Ok(member.then(|| Association {
                account: resource_id.clone(),
                user: user.clone(),
                value: 0,
            }))
        })
    }

    fn client_create_association(
        &self,
        username: String,
        resource_id: String,
        default_account: Option<String>,
    ) -> Result<()> {
        self.fail_point("client_create_association")?;
        let default_account =
            default_account.unwrap_or_else(|| self.settings.default_account.clone());
        if self
            .store
            .update(|s| s.associate(&username, &resource_id, &default_account))?
        {
            log::info!("demo: associated {username} with {resource_id}");
        }
        Ok(())
    }

    fn client_delete_association(&self, username: String, resource_id: String) -> Result<()> {
        self.fail_point("client_delete_association")?;
        // Like `sacctmgr remove user`, removing what is not there is not an error.
        let removed = self.store.update(|s| {
            if !s.accounts.contains_key(&resource_id) {
                return Ok(false);
            }
            s.dissociate(&username, &resource_id)
        })?;
        if removed {
            log::info!("demo: removed {username} from {resource_id}");
        }
        Ok(())
    }

    fn client_get_usage_report(
        &self,
        resource_ids: Vec<String>,
        timezone: Option<String>,
    ) -> Result<Vec<serde_json::Value>> {
        self.fail_point("client_get_usage_report")?;
        let period = match timezone.as_deref() {
            Some(tz) if !tz.trim().is_empty() => {
                usage::month_containing(jiff::Timestamp::now(), &parse_timezone(tz)?)
            }
            _ => self.current_period(),
        };
        usage::raw_records(&self.store.usage_dir(), period, &resource_ids)
    }

    fn client_list_resource_users(&self, resource_id: String) -> Result<Vec<String>> {
        self.fail_point("client_list_resource_users")?;
        // A missing account has no users (as `sacctmgr list associations` answers nothing).
        self.store.read(|s| {
            Ok(s.accounts
                .get(&resource_id)
                .map(|a| a.users.keys().cloned().collect())
                .unwrap_or_default())
        })
    }

    /// Records the home directory instead of running `mkhomedir_helper`.
    fn client_create_linux_user_homedir(&self, username: String, umask: String) -> Result<()> {
        self.fail_point("client_create_linux_user_homedir")?;
        if self.store.update(|s| s.record_homedir(&username, &umask))? {
            log::info!("demo: created home directory of {username} (umask {umask:?})");
        }
        Ok(())
    }
}
