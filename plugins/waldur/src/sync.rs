//! What flows between the two Waldurs outside orders: end dates of resources and projects (in
//! the configured direction; `bidirectional` lets the later change win), the target's
//! effective id and limits onto the source resource, and offering-user usernames the target
//! assigned onto the source's offering users.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{BackendLimits, WaldurResource};
use waldur_plugin_abi::Result;

use crate::federation::Federation;
use crate::orders::target_limits_of;
use crate::projects::project_backend_id;
use crate::settings::EndDateSync;
use crate::target::{checked_uuid, field, uuid_field};

/// Which side's end date is written to the other: `Some(true)` source to target,
/// `Some(false)` target to source, `None` nothing (equal, disabled, or undecidable).
pub fn end_date_winner(
    direction: EndDateSync,
    source: Option<&str>,
    target: Option<&str>,
    source_changed: Option<&str>,
    target_changed: Option<&str>,
) -> Option<bool> {
    if direction == EndDateSync::Disabled || source == target {
        return None;
    }
    match direction {
        EndDateSync::AToB => Some(true),
        EndDateSync::BToA => Some(false),
        _ => match (source_changed.map(instant), target_changed.map(instant)) {
            (Some(a), Some(b)) if a > b => Some(true),
            (Some(a), Some(b)) if b > a => Some(false),
            (Some(_), Some(_)) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        },
    }
}

/// A change time as an instant (RFC 3339); text that is not one orders before every instant,
/// so a garbled stamp never wins over a real one.
fn instant(text: &str) -> (u8, Option<jiff::Timestamp>, String) {
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => (1, Some(t), String::new()),
        Err(_) => (0, None, text.to_string()),
    }
}

/// `YYYY-MM-DD` of a date or date-time; `None` for null or empty.
fn date_of(value: Option<&str>) -> Option<&str> {
    let text = value?.trim();
    (!text.is_empty()).then(|| text.get(..10).unwrap_or(text))
}

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Federation {
    pub(crate) fn sync_end_date(&self, resource: &WaldurResource) -> Result<()> {
        if self.settings.end_date_sync == EndDateSync::Disabled || resource.backend_id.is_empty() {
            return Ok(());
        }
        let Some(target) = self.target_resource(&resource.backend_id)? else {
            return Ok(());
        };
        let source_end = date_of(resource.end_date.as_deref());
        let target_end = date_of(text(&target, "end_date"));
        let Some(source_wins) = end_date_winner(
            self.settings.end_date_sync,
            source_end,
            target_end,
            resource.end_date_updated_at.as_deref(),
            text(&target, "end_date_updated_at"),
        ) else {
            return Ok(());
        };
        if source_wins {
            log::info!(
                "end date of {} -> target: {source_end:?}",
                resource.backend_id
            );
            let uuid = checked_uuid(&resource.backend_id, "resource backend id")?;
            self.target.post(
                &format!("marketplace-resources/{uuid}/set_end_date/"),
                &json!({ "end_date": source_end }),
            )?;
        } else {
            log::info!("end date of {} -> source: {target_end:?}", resource.uuid);
            let uuid = checked_uuid(&resource.uuid, "source resource uuid")?;
            self.source_write(
                "POST",
                &format!("marketplace-provider-resources/{uuid}/set_end_date/"),
                &json!({ "end_date": target_end }),
            )?;
        }
        Ok(())
    }

    pub(crate) fn sync_project_end_date(
        &self,
        resource: &WaldurResource,
        source_project: Option<&Value>,
    ) -> Result<()> {
        let direction = self.settings.end_date_sync;
        if direction == EndDateSync::Disabled {
            return Ok(());
        }
        let Ok(backend_id) = project_backend_id(resource) else {
            return Ok(());
        };
        let Some(project) = self.find_project(&backend_id)? else {
            return Ok(());
        };
        let source_end = date_of(resource.project_end_date.as_deref());
        let target_end = date_of(text(&project, "end_date"));
        let source_changed = match (direction, source_project) {
            (EndDateSync::Bidirectional, Some(p)) => text(p, "end_date_updated_at"),
            _ => None,
        };
        let Some(source_wins) = end_date_winner(
            direction,
            source_end,
            target_end,
            source_changed,
            text(&project, "end_date_updated_at"),
        ) else {
            return Ok(());
        };
        if source_wins {
            log::info!("end date of project {backend_id} -> target: {source_end:?}");
            let uuid = uuid_field(&project, "uuid");
            self.target.patch(
                &format!("projects/{uuid}/"),
                &json!({ "end_date": source_end }),
            )?;
        } else {
            log::info!(
                "end date of project {} -> source: {target_end:?}",
                resource.project_uuid
            );
            let uuid = checked_uuid(&resource.project_uuid, "source project uuid")?;
            self.source_write(
                "PATCH",
                &format!("projects/{uuid}/"),
                &json!({ "end_date": target_end }),
            )?;
        }
        Ok(())
    }

    /// The target resource's own `backend_id` (what the target's site calls it) as the
    /// source resource's effective id.
    pub(crate) fn sync_effective_id(&self, resource: &WaldurResource) -> Result<()> {
        if resource.backend_id.is_empty() {
            return Ok(());
        }
        let Some(target) = self.target_resource(&resource.backend_id)? else {
            return Ok(());
        };
        let effective = field(&target, "backend_id");
        if effective.is_empty() || effective == resource.effective_id {
            return Ok(());
        }
        log::info!(
            "effective id of {}: {:?} -> {effective:?}",
            resource.uuid,
            resource.effective_id
        );
        let uuid = checked_uuid(&resource.uuid, "source resource uuid")?;
        self.source_write(
            "POST",
            &format!("marketplace-provider-resources/{uuid}/set_effective_id/"),
            &json!({ "effective_id": effective }),
        )?;
        Ok(())
    }

    /// The target's limits in source components (reverse-mapped, truncated).
    pub(crate) fn source_limits_of_target(&self, backend_id: &str) -> Result<BackendLimits> {
        let Some(target) = self.target_resource(backend_id)? else {
            return Ok(BackendLimits::new());
        };
        let limits: BTreeMap<String, f64> = target_limits_of(&target)
            .into_iter()
            .map(|(k, v)| (k, v as f64))
            .collect();
        Ok(self
            .mapper
            .usage_from_target(&limits)
            .into_iter()
            .map(|(k, v)| (k, v.trunc() as i64))
            .collect())
    }

    /// Usernames the target assigned to its offering users, copied onto the source offering
    /// users of the same Waldur username. True when something changed.
    pub(crate) fn sync_usernames(&self, source_offering_uuid: &str) -> Result<bool> {
        let target_users = self.target.list(
            "marketplace-offering-users/",
            &[
                ("offering_uuid", self.settings.offering_uuid.clone()),
                ("state", "OK".to_string()),
            ],
        )?;
        let by_user: BTreeMap<&str, &str> = target_users
            .iter()
            .filter_map(|u| {
                let (user, username) = (text(u, "user_username")?, text(u, "username")?);
                Some((user, username))
            })
            .collect();
        if by_user.is_empty() {
            return Ok(false);
        }
        let offering = checked_uuid(source_offering_uuid, "source offering uuid")?;
        let source_users = self.source_list(
            "marketplace-offering-users/",
            &json!({
                "offering_uuid": offering,
                "state": ["OK", "Creating", "Requested"],
                "is_restricted": false,
            }),
        )?;
        let mut changed = false;
        for user in &source_users {
            let Some(wanted) = text(user, "user_username").and_then(|u| by_user.get(u)) else {
                continue;
            };
            if text(user, "username") == Some(*wanted) {
                continue;
            }
            let uuid = checked_uuid(field(user, "uuid"), "source offering user uuid")?;
            log::info!(
                "offering user {uuid}: username {:?} -> {wanted:?} (from the target)",
                text(user, "username")
            );
            self.source_write(
                "PATCH",
                &format!("marketplace-offering-users/{uuid}/"),
                &json!({ "username": wanted }),
            )?;
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_date_direction_decides_who_is_written() {
        use EndDateSync::*;
        let (a, b) = (Some("2027-01-01"), Some("2027-06-30"));
        assert_eq!(end_date_winner(Disabled, a, b, None, None), None);
        assert_eq!(end_date_winner(AToB, a, a, None, None), None);
        assert_eq!(end_date_winner(AToB, a, b, None, None), Some(true));
        assert_eq!(end_date_winner(BToA, a, b, None, None), Some(false));
        let (early, late) = (
            Some("2026-12-01T10:00:00Z"),
            Some("2026-12-01T11:00:00+00:00"),
        );
        assert_eq!(
            end_date_winner(Bidirectional, a, b, early, late),
            Some(false)
        );
        assert_eq!(
            end_date_winner(Bidirectional, a, b, late, early),
            Some(true)
        );
        assert_eq!(end_date_winner(Bidirectional, a, b, early, early), None);
        assert_eq!(
            end_date_winner(Bidirectional, a, b, early, None),
            Some(true)
        );
        assert_eq!(
            end_date_winner(Bidirectional, a, b, None, late),
            Some(false)
        );
        assert_eq!(end_date_winner(Bidirectional, a, b, None, None), None);
        // A garbled stamp never beats a real one.
        assert_eq!(
            end_date_winner(Bidirectional, a, b, Some("yesterday"), early),
            Some(false)
        );
        assert_eq!(date_of(Some("2027-01-01T00:00:00Z")), Some("2027-01-01"));
        assert_eq!(date_of(Some("")), None);
    }
}
