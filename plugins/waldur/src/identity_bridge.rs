//! `waldur-identity-bridge`: a username backend that assigns no usernames but keeps the
//! target Waldur's identity bridge in step with the source's offering users: every user's
//! profile is pushed before each membership pass (so the federation backend finds them on the
//! target), and users who left the offering since the previous pass are deactivated there.
//!
//! The previous pass lives in memory, as in the reference: after a restart the first pass
//! only pushes, and departures are seen from the second pass on.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::Value;
use waldur_plugin_abi::wire::{JsonMap, OfferingUser};
use waldur_plugin_abi::{
    backend_impl, Error, Result, SettingKind, SettingSpec, UsernameBackend, UsernameContext,
};

use crate::bridge::IdentityBridge;
use crate::settings::SETTINGS as BACKEND_SETTINGS;
use crate::target::{Target, TargetError};

/// The settings this entry reads: the federation backend's, so one `backend_settings`
/// block serves both entries.
const SETTINGS: &[SettingSpec] = &[
    BACKEND_SETTINGS[0], // target_api_url
    BACKEND_SETTINGS[1], // target_api_token
    SettingSpec::required(
        "identity_bridge_source",
        SettingKind::String,
        "Identity source the profiles are pushed as (e.g. isd:efp)",
    ),
    SettingSpec::optional(
        "target_request_timeout",
        SettingKind::Number,
        "Seconds one request to the target Waldur may take",
    )
    .default_json("30"),
];

/// Offering-user profile fields -> identity-bridge fields.
const PROFILE_FIELDS: &[(&str, &str)] = &[
    ("user_first_name", "first_name"),
    ("user_last_name", "last_name"),
    ("user_email", "email"),
    ("user_organization", "organization"),
    ("user_affiliations", "affiliations"),
    ("user_phone_number", "phone_number"),
    ("user_civil_number", "civil_number"),
    ("user_personal_title", "personal_title"),
    ("user_place_of_birth", "place_of_birth"),
    ("user_country_of_residence", "country_of_residence"),
    ("user_nationality", "nationality"),
    ("user_nationalities", "nationalities"),
    ("user_organization_country", "organization_country"),
    ("user_organization_type", "organization_type"),
    ("user_eduperson_assurance", "eduperson_assurance"),
    ("user_identity_source", "identity_source"),
    ("user_gender", "gender"),
    ("user_birth_date", "birth_date"),
];

pub struct IdentityBridgeUsernames {
    bridge: IdentityBridge,
    /// Waldur usernames pushed in the previous pass (`None` before the first).
    previous: Mutex<Option<BTreeSet<String>>>,
}

/// The identity-bridge profile of an offering user (non-empty fields only).
pub fn profile(user: &OfferingUser) -> JsonMap {
    let mut all = serde_json::to_value(user)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    all.extend(user.extra.clone());
    PROFILE_FIELDS
        .iter()
        .filter_map(|(from, to)| {
            let value = all.get(*from)?;
            let empty = value.is_null()
                || value.as_str() == Some("")
                || value.as_array().is_some_and(Vec::is_empty);
            (!empty).then(|| (to.to_string(), value.clone()))
        })
        .collect()
}

impl IdentityBridgeUsernames {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pushes one offering user's profile.
    fn push(&self, user: &OfferingUser) -> std::result::Result<(), TargetError> {
        self.bridge
            .push(&user.user_username, &profile(user))
            .map(drop)
    }
}

#[backend_impl]
impl UsernameBackend for IdentityBridgeUsernames {
    const DESCRIPTION: &'static str =
        "Pushes offering users' profiles to the target Waldur's identity bridge; assigns no usernames";
    const SETTINGS: &'static [SettingSpec] = SETTINGS;

    fn new(context: UsernameContext) -> Result<Self> {
        let settings = &context.settings;
        let text = |key: &str| -> Result<String> {
            match settings.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(Error::invalid_settings(format!(
                    "backend_settings.{key}: is required"
                ))),
            }
        };
        let timeout = settings
            .get("target_request_timeout")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(30.0);
        let url = text("target_api_url")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::invalid_settings(format!(
                "backend_settings.target_api_url: {url:?} must start with http:// or https://"
            )));
        }
        let target = Target::new(
            &url,
            &text("target_api_token")?,
            std::time::Duration::from_secs_f64(timeout),
        )?;
        Ok(Self {
            bridge: IdentityBridge::new(target, &text("identity_bridge_source")?),
            previous: Mutex::new(None),
        })
    }

    /// The username stays Waldur's to give: the profile is pushed, no name is invented.
    fn generate_username(&self, offering_user: OfferingUser) -> Result<String> {
        if !offering_user.user_username.is_empty() {
            self.push(&offering_user)?;
        }
        Ok(String::new())
    }

    fn get_username(&self, _offering_user: OfferingUser) -> Result<Option<String>> {
        Ok(None)
    }

    fn sync_user_profiles(&self, offering_users: Vec<OfferingUser>) -> Result<()> {
        let mut current = BTreeSet::new();
        let mut failed = Vec::new();
        for user in &offering_users {
            if user.user_username.is_empty() {
                continue;
            }
            current.insert(user.user_username.clone());
            if let Err(e) = self.push(user) {
                log::error!(
                    "pushing {} to the identity bridge failed: {e}",
                    user.user_username
                );
                failed.push(user.user_username.clone());
            }
        }
        let previous = Self::lock(&self.previous).replace(current.clone());
        if let Some(previous) = previous {
            let departed: Vec<String> = previous.difference(&current).cloned().collect();
            if !departed.is_empty() {
                if let Err(e) = self.deactivate_users(departed.clone()) {
                    // Still owed: the next pass sees them as departed again.
                    if let Some(kept) = Self::lock(&self.previous).as_mut() {
                        kept.extend(departed);
                    }
                    return Err(e);
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::not_ready(format!(
                "{} profile(s) not pushed to the identity bridge: {}",
                failed.len(),
                failed.join(", ")
            )))
        }
    }

    fn deactivate_users(&self, usernames: Vec<String>) -> Result<()> {
        let mut failed = Vec::new();
        for username in &usernames {
            match self.bridge.remove(username) {
                Ok(()) => log::info!("{username} deactivated in the identity bridge"),
                Err(e) => {
                    log::error!("deactivating {username} in the identity bridge failed: {e}");
                    failed.push(username.clone());
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::not_ready(format!(
                "{} user(s) not deactivated in the identity bridge: {}",
                failed.len(),
                failed.join(", ")
            )))
        }
    }
}
