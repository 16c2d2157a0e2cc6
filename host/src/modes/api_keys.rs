//! Resource API keys (reference §4.7 `rotate_resource_api_key`, §3.2 step 5
//! `_provision_resource_api_keys`, §3.5 `run_periodic_api_key_reconciliation`): keys a backend
//! mints for a resource (an S3 access key, an LLM gateway key) and Waldur keeps for its users.
//!
//! Only for backends that declare `supports_resource_api_keys`; for any other the functions
//! here do nothing and say so. The plugin methods are vtable slots of ABI 1.0
//! (`generate_resource_keys`, `rotate_resource_key`, `prune_unknown_resource_keys`).
//!
//! Exactly once: provisioning tops a resource up to [`DEFAULT_RESOURCE_KEY_COUNT`] keys rather
//! than adding that many, after dropping the backend's keys Waldur never learned about, so a
//! Create order repeated after a crash does not leave extra live keys. A rotation reports its
//! outcome inside one error path (the new key, or the failure), so a failed report leaves the
//! key erred instead of Updating, which the sweep would otherwise rotate again every hour.

use std::time::Duration;

use serde_json::Value;

use super::error::ModeError;
use super::runtime::{blocking, Session};
use crate::waldur::{normalize_uuid, ApiKeyFilter, NewKeyValue, ResourceApiKey};

/// How many keys a new resource gets (reference `DEFAULT_RESOURCE_KEY_COUNT`).
pub const DEFAULT_RESOURCE_KEY_COUNT: usize = 2;

/// A rotation not answered for this long is stuck (reference `stuck_threshold_minutes`).
pub const API_KEY_STUCK_AFTER: Duration = Duration::from_secs(30 * 60);

/// The only action a rotation event carries.
const ROTATE: &str = "rotate";

/// The state of a key whose rotation Waldur waits for.
const ROTATING_STATE: &str = "Updating";

/// One rotation, as an event asks for it or the sweep finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRotation {
    pub action: String,
    pub api_key_uuid: String,
    pub client_id: String,
    pub resource_backend_id: String,
    /// When known, the resource's other keys travel with the rotation, so the backend can
    /// drop keys Waldur never learned about.
    pub resource_uuid: Option<String>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The backend rotated the key and Waldur has the new value (K3).
    Rotated,
    /// The rotation failed and Waldur was told (K4) with this message.
    Erred(String),
    /// The backend does not manage resource API keys: nothing was done.
    Unsupported,
    /// The key is in this state, no longer Updating (the rotation was answered already):
    /// nothing was done.
    NotPending(String),
}

/// What the sweep of stuck rotations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySweep {
    /// Stuck keys found.
    pub stuck: usize,
    pub rotated: usize,
    pub erred: usize,
    /// Without a client id or a backend id: nothing to rotate from.
    pub skipped: usize,
    /// Waldur could not be told either way; left for the next sweep.
    pub failed: usize,
    /// The backend does not manage resource API keys.
    pub unsupported: bool,
}

impl Session<'_> {
    /// Whether this backend manages resource API keys (`supports_resource_api_keys`).
    pub fn manages_resource_api_keys(&self) -> bool {
        self.backend.capabilities().supports_resource_api_keys
    }

    /// Rotates one key and reports the new value (K3), or the failure (K4). A request the
    /// agent cannot carry out (another action, missing ids) is an error and reported nowhere,
    /// as in the reference; so is a failure Waldur could not be told about.
    pub async fn rotate_resource_api_key(
        &self,
        rotation: &KeyRotation,
    ) -> Result<RotationOutcome, ModeError> {
        if !self.manages_resource_api_keys() {
            tracing::info!(
                offering = %self.offering.name,
                key = %rotation.api_key_uuid,
                "key rotation ignored: the backend does not manage resource API keys"
            );
            return Ok(RotationOutcome::Unsupported);
        }
        check_rotation(rotation).map_err(ModeError::Offering)?;
        // An event and the sweep may ask for the same rotation: one at a time.
        let _turn = self
            .agent
            .resource_turns
            .claim(format!(
                "api-key\n{}",
                normalize_uuid(&rotation.api_key_uuid)
            ))
            .await;
        let listed = match &rotation.resource_uuid {
            Some(resource) => self.resource_keys(resource).await,
            None => None,
        };
        // A redelivered event, or one the sweep already answered: the row is no longer
        // Updating, so rotating again would only replace a key Waldur just handed out.
        if let Some(row) = listed.as_deref().and_then(|keys| {
            keys.iter()
                .find(|k| normalize_uuid(&k.uuid) == normalize_uuid(&rotation.api_key_uuid))
        }) {
            if row.state != ROTATING_STATE {
                tracing::info!(
                    offering = %self.offering.name,
                    key = %rotation.api_key_uuid,
                    "key rotation skipped: the key is {}, no longer {ROTATING_STATE}",
                    row.state
                );
                return Ok(RotationOutcome::NotPending(row.state.clone()));
            }
        }
        let known = listed.as_deref().and_then(complete_client_ids);
        let reported = async {
            let (client_id, backend_id) = (
                rotation.client_id.clone(),
                rotation.resource_backend_id.clone(),
            );
            let answer = blocking(&self.backend, move |b| {
                b.rotate_resource_key(&client_id, &backend_id, known.as_deref())
            })
            .await?;
            let value = new_key_value(&answer).map_err(ModeError::Backend)?;
            self.client
                .set_resource_api_key(&rotation.api_key_uuid, &value)
                .await?;
            Ok::<_, ModeError>(())
        }
        .await;
        let error = match reported {
            Ok(()) => return Ok(RotationOutcome::Rotated),
            Err(error) => error,
        };
        tracing::error!(
            offering = %self.offering.name,
            key = %rotation.api_key_uuid,
            "rotating API key {} failed: {error}",
            rotation.client_id
        );
        let (message, _) = error.details_for_waldur(self.agent.config.expose_backend_error_details);
        self.client
            .set_resource_api_key_erred(&rotation.api_key_uuid, &message)
            .await
            .map_err(|report| {
                ModeError::Offering(format!(
                    "rotating API key {} failed ({error}), and telling Waldur failed too: {report}",
                    rotation.client_id
                ))
            })?;
        Ok(RotationOutcome::Erred(message))
    }

    /// Gives a resource its keys after a Create or Restore (reference
    /// `_provision_resource_api_keys`): the backend's keys Waldur does not know are dropped,
    /// then keys are minted up to [`DEFAULT_RESOURCE_KEY_COUNT`] and each reported (K2).
    /// Answers how many were reported; 0 for a backend without key support.
    pub async fn provision_resource_api_keys(
        &self,
        resource_uuid: &str,
        resource_backend_id: &str,
    ) -> Result<usize, ModeError> {
        if !self.manages_resource_api_keys() {
            return Ok(0);
        }
        let known = self.known_client_ids(resource_uuid).await;
        if let Some(keep) = known.clone() {
            let id = resource_backend_id.to_string();
            // Dropping residue is hygiene; minting is the point, so a failure here is logged.
            if let Err(e) = blocking(&self.backend, move |b| {
                b.prune_unknown_resource_keys(&id, &keep)
            })
            .await
            {
                tracing::warn!(
                    resource = %resource_uuid,
                    "could not drop the backend's stale keys, minting anyway: {e}"
                );
            }
        }
        let missing = keys_missing(known.as_deref());
        if missing == 0 {
            return Ok(0);
        }
        let id = resource_backend_id.to_string();
        let keys = blocking(&self.backend, move |b| {
            b.generate_resource_keys(&id, missing as u32)
        })
        .await?;
        let mut reported = 0;
        let mut first_error = None;
        for key in keys {
            let sent = if key.client_id.is_empty() || key.api_key.is_empty() {
                Err(ModeError::Backend(
                    "generate_resource_keys answered a key without client_id or api_key".into(),
                ))
            } else {
                self.client
                    .report_resource_api_key_created(resource_uuid, &key.client_id, &key.api_key)
                    .await
                    .map_err(ModeError::from)
            };
            match sent {
                Ok(()) => reported += 1,
                Err(e) => {
                    tracing::error!(resource = %resource_uuid, "reporting a new API key failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reported),
        }
    }

    /// The sweep the event-mode timer runs (reference `run_periodic_api_key_reconciliation`):
    /// keys Updating for longer than `stuck_after` (the rotation event was lost, or its
    /// handler died) are rotated again. Rotating again converges: the backend applies a fresh
    /// value and Waldur learns it.
    pub async fn reconcile_stuck_api_keys(
        &self,
        stuck_after: Duration,
    ) -> Result<KeySweep, ModeError> {
        if !self.manages_resource_api_keys() {
            return Ok(KeySweep {
                unsupported: true,
                ..KeySweep::default()
            });
        }
        let cutoff = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(stuck_after).unwrap_or_default())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let filter =
            ApiKeyFilter::stuck_rotations(&self.offering.waldur_offering_uuid, &cutoff.to_string());
        let stuck = self.client.list_resource_api_keys(&filter).await?;
        let mut sweep = KeySweep {
            stuck: stuck.len(),
            ..KeySweep::default()
        };
        let outcomes = crate::waldur::map_concurrent(
            crate::waldur::DEFAULT_CONCURRENCY,
            stuck,
            |key| async move {
                let Some(rotation) = sweep_rotation(&key) else {
                    tracing::warn!(
                        offering = %self.offering.name,
                        "stuck API key {} has no client id or no resource backend id; skipped",
                        key.uuid
                    );
                    return None;
                };
                Some(self.rotate_resource_api_key(&rotation).await)
            },
        )
        .await;
        for outcome in outcomes {
            match outcome {
                None => sweep.skipped += 1,
                Some(Ok(RotationOutcome::Rotated)) => sweep.rotated += 1,
                Some(Ok(RotationOutcome::Erred(_))) => sweep.erred += 1,
                Some(Ok(RotationOutcome::Unsupported)) => sweep.unsupported = true,
                // Answered meanwhile (an event got there first).
                Some(Ok(RotationOutcome::NotPending(_))) => sweep.skipped += 1,
                Some(Err(e)) => {
                    tracing::error!(offering = %self.offering.name, "{e}");
                    sweep.failed += 1;
                }
            }
        }
        Ok(sweep)
    }

    /// The client ids Waldur holds for a resource (K1), or `None` when that is not known for
    /// sure: the listing failed, is empty, or has a row without a client id. `None` prunes
    /// nothing, so a failed listing never reads as "Waldur holds no keys".
    async fn known_client_ids(&self, resource_uuid: &str) -> Option<Vec<String>> {
        complete_client_ids(&self.resource_keys(resource_uuid).await?)
    }

    /// The resource's keys (K1), or `None` when the listing failed.
    async fn resource_keys(&self, resource_uuid: &str) -> Option<Vec<ResourceApiKey>> {
        match self
            .client
            .list_resource_api_keys(&ApiKeyFilter::resource(resource_uuid))
            .await
        {
            Ok(keys) => Some(keys),
            Err(e) => {
                tracing::warn!(resource = %resource_uuid, "could not list the resource's API keys: {e}");
                None
            }
        }
    }
}

/// The reference's `_known_client_ids` rules on a listing.
fn complete_client_ids(keys: &[ResourceApiKey]) -> Option<Vec<String>> {
    let ids: Vec<String> = keys
        .iter()
        .filter_map(|k| k.client_id().map(str::to_string))
        .collect();
    (!ids.is_empty() && ids.len() == keys.len()).then_some(ids)
}

/// How many keys to mint: up to the target, counting what Waldur holds.
fn keys_missing(known: Option<&[String]>) -> usize {
    DEFAULT_RESOURCE_KEY_COUNT.saturating_sub(known.map_or(0, <[String]>::len))
}

/// Why a rotation cannot be carried out, if it cannot.
fn check_rotation(rotation: &KeyRotation) -> Result<(), String> {
    if rotation.action != ROTATE {
        return Err(format!(
            "unknown key action {:?} (expected {ROTATE})",
            rotation.action.chars().take(40).collect::<String>()
        ));
    }
    let missing: Vec<&str> = [
        ("api_key_uuid", &rotation.api_key_uuid),
        ("client_id", &rotation.client_id),
        ("resource_backend_id", &rotation.resource_backend_id),
    ]
    .into_iter()
    .filter(|(_, value)| value.is_empty())
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("the rotation has no {}", missing.join(", ")))
    }
}

/// The rotation the sweep asks for a stuck key, unless it lacks what to rotate from.
fn sweep_rotation(key: &ResourceApiKey) -> Option<KeyRotation> {
    let client_id = key.client_id()?;
    if key.resource_backend_id.is_empty() {
        return None;
    }
    Some(KeyRotation {
        action: ROTATE.into(),
        api_key_uuid: key.uuid.clone(),
        client_id: client_id.to_string(),
        resource_backend_id: key.resource_backend_id.clone(),
        resource_uuid: Some(key.resource_uuid.clone()).filter(|u| !u.is_empty()),
    })
}

/// The K3 body from the plugin's answer: a non-empty string (the client id stays) or an
/// object with both `api_key` and `client_id` (the client id changed with the secret).
fn new_key_value(answer: &Value) -> Result<NewKeyValue, String> {
    fn text(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    match answer {
        Value::String(key) if !key.is_empty() => Ok(NewKeyValue {
            api_key: key.clone(),
            client_id: None,
        }),
        Value::Object(fields) => match (text(fields.get("api_key")), text(fields.get("client_id")))
        {
            (Some(api_key), Some(client_id)) => Ok(NewKeyValue {
                api_key: api_key.to_string(),
                client_id: Some(client_id.to_string()),
            }),
            _ => Err(
                "rotate_resource_key answered an object without a non-empty api_key and \
                 client_id"
                    .into(),
            ),
        },
        other => Err(format!(
            "rotate_resource_key answered {}, expected a non-empty string or an object with \
             api_key and client_id",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "an empty string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(client_id: Option<&str>) -> ResourceApiKey {
        ResourceApiKey {
            uuid: "k".into(),
            resource_uuid: "r".into(),
            resource_backend_id: "acc".into(),
            client_id: client_id.map(str::to_string),
            ..ResourceApiKey::default()
        }
    }

    #[test]
    fn known_client_ids_are_none_unless_complete() {
        assert_eq!(
            complete_client_ids(&[key(Some("a")), key(Some("b"))]),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(complete_client_ids(&[]), None);
        assert_eq!(complete_client_ids(&[key(Some("a")), key(None)]), None);
        assert_eq!(complete_client_ids(&[key(Some(""))]), None);
    }

    #[test]
    fn provisioning_tops_up_to_two() {
        let ids = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(keys_missing(None), 2);
        assert_eq!(keys_missing(Some(&ids(1))), 1);
        assert_eq!(keys_missing(Some(&ids(2))), 0);
        assert_eq!(keys_missing(Some(&ids(5))), 0);
    }

    #[test]
    fn the_new_key_is_a_string_or_both_halves() {
        assert_eq!(
            new_key_value(&json!("k2")).unwrap(),
            NewKeyValue {
                api_key: "k2".into(),
                client_id: None
            }
        );
        assert_eq!(
            new_key_value(&json!({"api_key": "k2", "client_id": "AKIA2"})).unwrap(),
            NewKeyValue {
                api_key: "k2".into(),
                client_id: Some("AKIA2".into())
            }
        );
        for bad in [
            json!(""),
            json!(null),
            json!(7),
            json!({"api_key": "k2"}),
            json!({"api_key": "", "client_id": "c"}),
        ] {
            let error = new_key_value(&bad).unwrap_err();
            assert!(error.starts_with("rotate_resource_key answered"), "{error}");
        }
    }

    #[test]
    fn rotations_need_the_action_and_every_id() {
        let good = KeyRotation {
            action: "rotate".into(),
            api_key_uuid: "k".into(),
            client_id: "c".into(),
            resource_backend_id: "acc".into(),
            resource_uuid: None,
        };
        assert_eq!(check_rotation(&good), Ok(()));
        let other = KeyRotation {
            action: "pause".into(),
            ..good.clone()
        };
        assert!(check_rotation(&other).unwrap_err().contains("\"pause\""));
        let missing = KeyRotation {
            client_id: String::new(),
            resource_backend_id: String::new(),
            ..good
        };
        assert_eq!(
            check_rotation(&missing).unwrap_err(),
            "the rotation has no client_id, resource_backend_id"
        );
    }

    #[test]
    fn the_sweep_rotates_only_keys_with_both_ids() {
        let rotation = sweep_rotation(&key(Some("c"))).unwrap();
        assert_eq!(rotation.client_id, "c");
        assert_eq!(rotation.resource_uuid.as_deref(), Some("r"));
        assert!(sweep_rotation(&key(None)).is_none());
        let without_backend_id = ResourceApiKey {
            resource_backend_id: String::new(),
            ..key(Some("c"))
        };
        assert!(sweep_rotation(&without_backend_id).is_none());
    }
}
