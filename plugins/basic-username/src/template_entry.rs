//! The `template` entry: a thin adapter from the ABI to [`Generator`], which holds the logic.
//! Existing usernames come from Waldur through the agent's callback ([`WaldurUsernames`]).

use waldur_plugin_abi::wire::{JsonMap, OfferingUser};
use waldur_plugin_abi::{
    backend_impl, Host, Result, SettingSpec, UsernameBackend, UsernameContext,
};

use crate::existing::WaldurUsernames;
use crate::generator::Generator;
use crate::settings::{self, TemplateSettings};

/// Usernames from a template, unique within the offering.
pub struct TemplateUsernames {
    generator: Generator,
    host: Host,
    offering_uuid: String,
}

impl TemplateUsernames {
    fn existing(&self) -> WaldurUsernames<'_> {
        WaldurUsernames {
            host: &self.host,
            offering_uuid: &self.offering_uuid,
        }
    }
}

#[backend_impl]
impl UsernameBackend for TemplateUsernames {
    const DESCRIPTION: &'static str =
        "Usernames from a configurable template, normalised for POSIX and unique per offering";
    const SETTINGS: &'static [SettingSpec] = settings::SETTINGS;

    fn new(context: UsernameContext) -> Result<Self> {
        Ok(Self {
            generator: Generator::new(TemplateSettings::parse(&context.settings)?),
            host: context.host,
            offering_uuid: context.offering.uuid,
        })
    }

    /// The declared types, then what they cannot express (template syntax, lengths, prefix),
    /// so `waldur-agent` reports a bad template when it checks the configuration.
    fn validate_settings(settings: &JsonMap) -> Result<Vec<String>> {
        let warnings = waldur_plugin_abi::sdk::validate_settings(Self::SETTINGS, settings)?;
        TemplateSettings::parse(settings)?;
        Ok(warnings)
    }

    fn generate_username(&self, offering_user: OfferingUser) -> Result<String> {
        self.generator.generate(&offering_user, &self.existing())
    }

    fn get_username(&self, offering_user: OfferingUser) -> Result<Option<String>> {
        Ok(Generator::existing_username(&offering_user))
    }

    fn get_or_create_username(&self, offering_user: OfferingUser) -> Result<String> {
        self.generator
            .get_or_create(&offering_user, &self.existing())
    }

    /// Names live in Waldur and on the backend's own systems; this entry creates no accounts,
    /// so there is nothing to deactivate.
    fn deactivate_users(&self, usernames: Vec<String>) -> Result<()> {
        log::info!(
            "template usernames: nothing to deactivate for {} user(s): {}",
            usernames.len(),
            usernames.join(", ")
        );
        Ok(())
    }
}
