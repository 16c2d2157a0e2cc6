//! The agent's side of a username-management backend, with the reference's default for
//! `get_or_create_username`.

use std::sync::Arc;

use crate::handle::UsernameHandle;
use waldur_plugin_abi::wire::OfferingUser;

use crate::calls::{CallObserver, Observed};
use crate::{HostBinding, PluginError};

/// A username-management backend instance for one offering.
pub struct UsernameBackend {
    // Dropped before `binding`: the instance points into it.
    handle: UsernameHandle,
    binding: HostBinding,
    entry: String,
    /// Every call into the plugin goes through this (latency per method, when metrics are on).
    calls: Observed,
}

impl UsernameBackend {
    pub fn new(handle: UsernameHandle, binding: HostBinding, entry: String) -> Self {
        Self {
            handle,
            binding,
            entry,
            calls: Observed::default(),
        }
    }

    /// Records the latency of every later call into the plugin (`run --metrics-address`).
    ///
    /// An observer that [`CallObserver::wants_calls`] also sees each crossing in full.
    pub fn record_calls(&mut self, observer: impl CallObserver + 'static) {
        self.record_calls_shared(Arc::new(observer));
    }

    /// [`Self::record_calls`] with an observer shared with other backends.
    pub fn record_calls_shared(&mut self, observer: Arc<dyn CallObserver>) {
        if observer.wants_calls() {
            self.handle.watch_calls(Arc::clone(&observer));
        }
        self.calls = Observed::new(observer);
    }

    /// A dry run: the plugin's writing methods are not called from here on; `recorder`
    /// learns of each call instead (see [`crate::withheld`]).
    pub fn withhold_writes(&mut self, recorder: std::sync::Arc<dyn crate::WriteRecorder>) {
        self.handle.withhold_writes(recorder);
    }

    pub fn entry(&self) -> &str {
        &self.entry
    }

    pub fn binding(&self) -> &HostBinding {
        &self.binding
    }

    pub fn handle(&self) -> &UsernameHandle {
        &self.handle
    }

    /// As `Backend::timed`: only calls that cross into the plugin are timed.
    fn timed<T>(&self, method: &'static str, call: impl FnOnce() -> T) -> T {
        self.calls.time(method, |m| self.handle.crosses(m), call)
    }

    fn wrap<T>(
        &self,
        method: &'static str,
        r: waldur_plugin_abi::Result<T>,
    ) -> Result<T, PluginError> {
        r.map_err(|e| PluginError::new(&self.entry, method, e))
    }

    pub fn generate_username(&self, user: &OfferingUser) -> Result<String, PluginError> {
        self.wrap(
            "generate_username",
            self.timed("generate_username", || self.handle.generate_username(user)),
        )
    }

    pub fn get_username(&self, user: &OfferingUser) -> Result<Option<String>, PluginError> {
        self.wrap(
            "get_username",
            self.timed("get_username", || self.handle.get_username(user)),
        )
    }

    /// The plugin's own answer, or else the reference default: the existing username, or a
    /// newly generated one. A plugin without `get_username` has no existing names to find.
    pub fn get_or_create_username(&self, user: &OfferingUser) -> Result<String, PluginError> {
        match self.timed("get_or_create_username", || {
            self.handle.get_or_create_username(user)
        }) {
            Err(e) if e.is_not_implemented() => {
                let existing = match self.timed("get_username", || self.handle.get_username(user)) {
                    Err(e) if e.is_not_implemented() => None,
                    other => self.wrap("get_username", other)?,
                };
                match existing {
                    Some(name) if !name.is_empty() => Ok(name),
                    _ => self.generate_username(user),
                }
            }
            other => self.wrap("get_or_create_username", other),
        }
    }

    /// A no-op when the plugin does not implement it.
    pub fn sync_user_profiles(&self, users: &[OfferingUser]) -> Result<(), PluginError> {
        match self.timed("sync_user_profiles", || {
            self.handle.sync_user_profiles(users)
        }) {
            Err(e) if e.is_not_implemented() => Ok(()),
            other => self.wrap("sync_user_profiles", other),
        }
    }

    /// A no-op when the plugin does not implement it.
    pub fn deactivate_users(&self, usernames: &[String]) -> Result<(), PluginError> {
        match self.timed("deactivate_users", || {
            self.handle.deactivate_users(usernames)
        }) {
            Err(e) if e.is_not_implemented() => Ok(()),
            other => self.wrap("deactivate_users", other),
        }
    }

    /// Runs the plugin's drop and reports a panic in it.
    pub fn close(self) -> Result<(), PluginError> {
        let Self {
            handle,
            binding,
            entry,
            ..
        } = self;
        let result = handle
            .close()
            .map_err(|e| PluginError::new(&entry, "drop", e));
        drop(binding);
        result
    }
}
