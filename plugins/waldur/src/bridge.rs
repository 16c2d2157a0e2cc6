//! The target's identity bridge (`POST /api/identity-bridge/`), shared by the backend (which
//! resolves members through it) and the `waldur-identity-bridge` username backend (which
//! pushes profiles): the bridge refuses fields its configuration does not allow, so the
//! allowed ones are read once (`allowed_fields/`) and only those are sent; a refusal reads
//! them again and tries once more, in case the target's configuration changed.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::{json, Value};
use waldur_plugin_abi::wire::JsonMap;

use crate::target::{Target, TargetResult};

pub struct IdentityBridge {
    target: Target,
    source: String,
    /// `None`: not known (not read yet, or unreadable: everything is sent).
    allowed: Mutex<Option<BTreeSet<String>>>,
}

impl IdentityBridge {
    pub fn new(target: Target, source: &str) -> Self {
        Self {
            target,
            source: source.to_string(),
            allowed: Mutex::new(None),
        }
    }

    fn allowed(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<String>>> {
        self.allowed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read_allowed(&self) -> Option<BTreeSet<String>> {
        match self.target.get("identity-bridge/allowed_fields/", &[]) {
            Ok(answer) => Some(
                answer
                    .get("allowed_fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect(),
            ),
            Err(e) => {
                log::warn!(
                    "the identity bridge's allowed fields are unknown ({e}); sending every field"
                );
                None
            }
        }
    }

    /// The request for `username`: the allowed, non-empty fields of `profile`.
    fn request(&self, username: &str, profile: &JsonMap) -> Value {
        let allowed = self.allowed().clone();
        let mut body = json!({ "username": username, "source": self.source });
        for (key, value) in profile {
            let empty = value.is_null()
                || value.as_str() == Some("")
                || value.as_array().is_some_and(Vec::is_empty);
            let known = allowed.as_ref().is_none_or(|a| a.contains(key));
            if !empty && known && key != "username" && key != "source" {
                body[key] = value.clone();
            }
        }
        body
    }

    /// Finds or creates the target user `username` with `profile`; answers the bridge's
    /// answer (`{uuid, username, created}`).
    pub fn push(&self, username: &str, profile: &JsonMap) -> TargetResult<Value> {
        if self.allowed().is_none() {
            let read = self.read_allowed();
            *self.allowed() = read;
        }
        match self
            .target
            .post("identity-bridge/", &self.request(username, profile))
        {
            Err(e) if e.status == Some(400) => {
                log::warn!("the identity bridge refused {username} ({e}); reading its allowed fields again");
                let read = self.read_allowed();
                *self.allowed() = read;
                self.target
                    .post("identity-bridge/", &self.request(username, profile))
            }
            other => other,
        }
    }

    /// Deactivates `username` in the bridge; a user it does not know is success.
    pub fn remove(&self, username: &str) -> TargetResult<()> {
        let body = json!({ "username": username, "source": self.source });
        match self.target.post("identity-bridge/remove/", &body) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(drop),
        }
    }
}
