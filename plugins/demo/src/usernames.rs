//! The `demo-profiles` username-management entry: it never chooses usernames (Waldur's username
//! policies do), but keeps the offering users' profiles in the same state directory, as a
//! directory service would, and deactivates the profiles of users who left the offering.
//! Like the reference's federation entry, it decides itself who left: the users of its last
//! `sync_user_profiles` that are not in this one.

use std::collections::BTreeSet;

use waldur_plugin_abi::wire::OfferingUser;
use waldur_plugin_abi::{backend_impl, Result, SettingSpec, UsernameBackend, UsernameContext};

use crate::settings::{self, DemoSettings};
use crate::state::Profile;
use crate::store::StateStore;

/// Profiles in `state.json` (`profiles`).
pub struct DemoUsernames {
    store: StateStore,
}

#[backend_impl]
impl UsernameBackend for DemoUsernames {
    const DESCRIPTION: &'static str =
        "Demo usernames: never sets one; keeps offering users' profiles in the demo state directory";
    const SETTINGS: &'static [SettingSpec] = settings::SETTINGS;

    fn new(context: UsernameContext) -> Result<Self> {
        let settings = DemoSettings::parse(&context.settings)?;
        let store = StateStore::open(&settings.state_dir, settings.create_state_dir)?;
        Ok(Self { store })
    }

    /// "" means "no username": the agent makes no change.
    fn generate_username(&self, _offering_user: OfferingUser) -> Result<String> {
        Ok(String::new())
    }

    fn get_username(&self, _offering_user: OfferingUser) -> Result<Option<String>> {
        Ok(None)
    }

    /// Every offering user with a username gets its profile written, with the accounts it
    /// is on at this moment; the profiles of the last sync that are missing now are
    /// deactivated.
    fn sync_user_profiles(&self, offering_users: Vec<OfferingUser>) -> Result<()> {
        let current: BTreeSet<String> = offering_users
            .iter()
            .filter_map(|u| u.username.clone().filter(|n| !n.is_empty()))
            .collect();
        let departed: Vec<String> = self.store.update(|s| {
            for user in &offering_users {
                let Some(name) = user.username.as_ref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let accounts_at_sync = s
                    .accounts
                    .values()
                    .filter(|a| a.users.contains_key(name))
                    .map(|a| a.name.clone())
                    .collect();
                s.profiles.insert(
                    name.clone(),
                    Profile {
                        full_name: user.user_full_name.clone(),
                        email: user.user_email.clone(),
                        accounts_at_sync,
                        deactivated: false,
                    },
                );
            }
            Ok(s.profiles
                .iter()
                .filter(|(name, p)| !p.deactivated && !current.contains(*name))
                .map(|(name, _)| name.clone())
                .collect())
        })?;
        if !departed.is_empty() {
            self.deactivate_users(departed)?;
        }
        Ok(())
    }

    fn deactivate_users(&self, usernames: Vec<String>) -> Result<()> {
        self.store.update(|s| {
            for name in &usernames {
                if let Some(profile) = s.profiles.get_mut(name) {
                    profile.deactivated = true;
                }
            }
            Ok(())
        })?;
        log::info!("demo: deactivated {}", usernames.join(", "));
        Ok(())
    }
}
