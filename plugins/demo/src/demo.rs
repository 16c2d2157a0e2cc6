//! The backend type: its parts, its construction and the helpers its trait methods share.
//! The methods themselves are in `client.rs` (BaseClient) and `backend.rs` (BaseBackend).

use std::sync::RwLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use waldur_plugin_abi::wire::{
    BackendComponents, JsonMap, ResourceUsage, UsageReport, TOTAL_ACCOUNT_USAGE,
};
use waldur_plugin_abi::{Backend, Client, Error, Result};

use crate::settings::DemoSettings;
use crate::store::StateStore;
use crate::usage::{self, Period};

/// The demo backend of one offering.
pub struct Demo {
    pub(crate) settings: DemoSettings,
    pub(crate) components: BackendComponents,
    pub(crate) store: StateStore,
    /// Billing periods are months in this zone (`set_runtime_context`); UTC until told.
    timezone: RwLock<TimeZone>,
}

impl Demo {
    /// Builds the backend from `backend_settings` and `backend_components`. This is all of
    /// `Backend::new` except the host handle, which the demo never needs, so tests can build
    /// one directly.
    pub fn open(settings: &JsonMap, components: BackendComponents) -> Result<Self> {
        let settings = DemoSettings::parse(settings)?;
        check_fail_methods(&settings.fail_methods)?;
        let store = StateStore::open(&settings.state_dir, settings.create_state_dir)?;
        Ok(Self {
            settings,
            components,
            store,
            timezone: RwLock::new(TimeZone::UTC),
        })
    }

    /// Answers the injected failure when `method` is listed in `fail_methods`. Every method
    /// the demo implements calls this first, before touching any state.
    pub(crate) fn fail_point(&self, method: &str) -> Result<()> {
        debug_assert!(is_implemented(method), "fail_point({method}): not a method");
        if self.settings.fail_methods.iter().any(|m| m == method) {
            return Err(Error::backend(format!(
                "demo: injected failure in {method}"
            )));
        }
        Ok(())
    }

    pub(crate) fn timezone(&self) -> TimeZone {
        self.timezone
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_timezone(&self, tz: TimeZone) {
        *self.timezone.write().unwrap_or_else(|e| e.into_inner()) = tz;
    }

    /// The current billing month in the offering's timezone.
    pub(crate) fn current_period(&self) -> Period {
        usage::month_containing(Timestamp::now(), &self.timezone())
    }

    pub(crate) fn usage_report(&self, ids: &[String], period: Period) -> Result<UsageReport> {
        usage::report(&self.store.usage_dir(), period, ids, &self.components)
    }

    /// `{TOTAL_ACCOUNT_USAGE: {component: 0}}`: the usage of an account without records.
    pub(crate) fn zero_usage(&self) -> ResourceUsage {
        let zero = self.components.keys().map(|c| (c.clone(), 0.0)).collect();
        ResourceUsage::from([(TOTAL_ACCOUNT_USAGE.to_string(), zero)])
    }
}

/// Every method name `fail_methods` may list: those the demo implements. A method left to
/// the agent's default never reaches plugin code, so listing it would silently inject nothing.
fn is_implemented(method: &str) -> bool {
    <Demo as Backend>::IMPLEMENTED
        .iter()
        .chain(<Demo as Client>::IMPLEMENTED)
        .any(|m| *m == method)
}

fn check_fail_methods(methods: &[String]) -> Result<()> {
    match methods.iter().find(|m| !is_implemented(m)) {
        Some(unknown) => Err(Error::invalid_settings(format!(
            "demo: backend_settings.fail_methods lists {unknown:?}, which is not a method the demo implements"
        ))),
        None => Ok(()),
    }
}
