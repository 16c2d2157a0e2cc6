//! What each event does (reference §3.6), on the offering's long-lived sessions: the work
//! itself is the polling modes' (`modes`), so an event and a cycle can never disagree.
//!
//! A role event with a user adds or removes that one user (`modes::role_change`); one
//! without a user resyncs the resource or the project it names, as the reference.

use super::message::{Event, OfferingUserEvent, UserRole};
use crate::modes::accounts::{AccountAction, AccountKind};
use crate::modes::error::ModeError;
use crate::modes::order_process::OrderRetry;
use crate::modes::periodic_limits::PeriodicLimitsRequest;
use crate::modes::runtime::{blocking, Session};

/// The sessions of one offering in event processing: orders and membership each have their
/// own plugin entry (`order_processing_backend`, `membership_sync_backend`).
pub struct OfferingSessions<'a> {
    pub orders: Option<Session<'a>>,
    pub membership: Option<Session<'a>>,
    pub order_retry: OrderRetry,
}

/// What handling an event did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled(pub String);

impl OfferingSessions<'_> {
    pub async fn handle(&self, event: &Event) -> Result<Handled, ModeError> {
        match event {
            Event::Order { order_uuid, .. } => {
                let s = self
                    .orders
                    .as_ref()
                    .ok_or_else(|| not_configured("order_processing_backend"))?
                    .process_order_by_uuid(order_uuid, self.order_retry)
                    .await?;
                Ok(Handled(format!(
                    "order {order_uuid}: {} done, {} erred, {} rejected, {} waiting",
                    s.done, s.erred, s.rejected, s.waiting
                )))
            }
            Event::Resource { resource_uuid } => {
                let s = self
                    .membership()?
                    .sync_resource_by_uuid(resource_uuid)
                    .await?;
                Ok(membership_line(&format!("resource {resource_uuid}"), &s))
            }
            Event::UserRole(role) => self.role_changed(role).await,
            Event::OfferingResourcesSync { .. } => self.sync_offering(true).await,
            Event::PeriodicLimits(limits) => {
                let request = PeriodicLimitsRequest {
                    resource_uuid: limits.resource_uuid.clone(),
                    backend_id: limits.backend_id.clone(),
                    policy_uuid: limits.policy_uuid.clone(),
                    action: limits.action.clone(),
                    settings: limits.settings.clone(),
                };
                let result = self
                    .orders
                    .as_ref()
                    .ok_or_else(|| not_configured("order_processing_backend"))?
                    .apply_periodic_limits(&request)
                    .await?;
                Ok(Handled(format!(
                    "periodic settings of resource {}: {}",
                    limits.resource_uuid,
                    if result.success {
                        format!("applied, {} command(s)", result.commands_executed.len())
                    } else {
                        format!("failed: {}", result.error.unwrap_or_default())
                    }
                )))
            }
            Event::OfferingUser(user) => self.offering_user_changed(user).await,
            Event::Account { course, account } => {
                let kind = if *course {
                    AccountKind::Course
                } else {
                    AccountKind::Service
                };
                let action = match account.action.as_str() {
                    "create" => AccountAction::Create,
                    "delete" => AccountAction::Delete,
                    other => {
                        return Ok(Handled(format!(
                            "account {}: nothing to do for action {other:?}",
                            account.account_username
                        )))
                    }
                };
                let changed = self
                    .membership()?
                    .apply_account_change(
                        kind,
                        action,
                        &account.account_username,
                        &account.project_uuid,
                    )
                    .await?;
                Ok(Handled(format!(
                    "account {} {}: {changed} resource(s) changed",
                    account.account_username, account.action
                )))
            }
            Event::ImportableResources {
                backend_resource_request_uuid,
            } => self.import_requested(backend_resource_request_uuid).await,
            Event::ApiKeyRotation(rotation) => self.key_rotation_requested(rotation).await,
        }
    }

    /// The whole offering: event processing's start-up and catch-up pass, and (with
    /// `recreate_missing`) what an `offering_resources_sync` event asks. Membership first, as
    /// the reference: a forced sync recreates what the backend lost before the orders are
    /// looked at; the start-up pass does not (reference `process_offering()` defaults).
    pub async fn sync_offering(&self, recreate_missing: bool) -> Result<Handled, ModeError> {
        let mut parts = Vec::new();
        if let Some(membership) = &self.membership {
            let s = if recreate_missing {
                membership.sync_membership_recreating().await?
            } else {
                membership.sync_membership().await?
            };
            parts.push(format!(
                "{}, {} recreated",
                membership_line("membership", &s).0,
                s.recreated
            ));
        }
        if let Some(orders) = &self.orders {
            let s = orders.process_orders(self.order_retry).await?;
            parts.push(format!(
                "orders: {} done, {} erred, {} rejected, {} waiting, {} failed",
                s.done, s.erred, s.rejected, s.waiting, s.failed
            ));
        }
        Ok(Handled(format!("offering sync: {}", parts.join("; "))))
    }

    async fn role_changed(&self, role: &UserRole) -> Result<Handled, ModeError> {
        let membership = self.membership()?;
        let s = match (&role.user_uuid, &role.resource_uuid) {
            (Some(user), _) => {
                membership
                    .apply_role_change(user, &role.project_uuid)
                    .await?
            }
            (None, Some(resource)) => membership.sync_resource_by_uuid(resource).await?,
            (None, None) => {
                membership
                    .sync_project_membership(&role.project_uuid)
                    .await?
            }
        };
        let what = match role.granted {
            Some(true) => "granted",
            Some(false) => "revoked",
            None => "changed",
        };
        Ok(membership_line(
            &format!("role {what} in project {}", role.project_uuid),
            &s,
        ))
    }

    /// Reference `offering_user` handler: attributes go to the plugin; a username that was
    /// set lets the user into the resources the event names.
    async fn offering_user_changed(&self, user: &OfferingUserEvent) -> Result<Handled, ModeError> {
        let membership = self.membership()?;
        match user.action.as_str() {
            "attribute_update" | "create" if !user.attributes.is_empty() => {
                let (name, attributes) = (user.username.clone(), user.attributes.clone());
                blocking(&membership.backend, move |b| {
                    b.update_user_attributes(&name, &attributes)
                })
                .await?;
                Ok(Handled(format!(
                    "offering user {}: {} attribute(s) passed to the backend",
                    user.username,
                    user.attributes.len()
                )))
            }
            "username_set" => {
                let s = membership
                    .sync_resources_with_backend_ids(&user.resource_backend_ids)
                    .await?;
                Ok(membership_line(
                    &format!("offering user {} got a username", user.username),
                    &s,
                ))
            }
            // The reference does nothing for these: membership follows the team, and an
            // offering user that is deleted or updated leaves the team through a role event.
            other => Ok(Handled(format!(
                "offering user {}: nothing to do for action {other:?}",
                user.username
            ))),
        }
    }

    fn membership(&self) -> Result<&Session<'_>, ModeError> {
        self.membership
            .as_ref()
            .ok_or_else(|| not_configured("membership_sync_backend"))
    }
}

fn not_configured(key: &str) -> ModeError {
    ModeError::NotConfigured(format!("the offering has no {key} for this event"))
}

fn membership_line(what: &str, s: &crate::modes::membership_sync::MembershipSummary) -> Handled {
    Handled(format!(
        "{what}: {} resource(s), {} user(s) added, {} removed, {} failed",
        s.resources, s.users_added, s.users_removed, s.failed
    ))
}

// Resource import and resource API keys (reference §3.6 `importable_resources` and
// `resource_api_key_rotation`): both work on the order-processing backend.
impl OfferingSessions<'_> {
    fn orders(&self) -> Result<&Session<'_>, ModeError> {
        self.orders
            .as_ref()
            .ok_or_else(|| not_configured("order_processing_backend"))
    }

    async fn import_requested(&self, request_uuid: &str) -> Result<Handled, ModeError> {
        use crate::modes::resource_import::ImportOutcome;
        let outcome = self
            .orders()?
            .process_backend_resource_request(request_uuid)
            .await?;
        let counts = |s: &crate::modes::resource_import::ImportSummary| {
            format!(
                "{} imported, {} already offered, {} skipped, {} failed",
                s.imported, s.already_offered, s.skipped, s.failed
            )
        };
        Ok(Handled(match outcome {
            ImportOutcome::AlreadyFinished { state } => {
                format!("backend resource request {request_uuid}: already {state}, nothing to do")
            }
            ImportOutcome::Done(s) => {
                format!(
                    "backend resource request {request_uuid}: done; {}",
                    counts(&s)
                )
            }
            ImportOutcome::Erred { message, summary } => format!(
                "backend resource request {request_uuid}: erred ({message}); {}",
                counts(&summary)
            ),
        }))
    }

    async fn key_rotation_requested(
        &self,
        event: &super::message::ApiKeyRotation,
    ) -> Result<Handled, ModeError> {
        use crate::modes::api_keys::{KeyRotation, RotationOutcome};
        let rotation = KeyRotation {
            action: event.action.clone(),
            api_key_uuid: event.api_key_uuid.clone(),
            client_id: event.client_id.clone(),
            resource_backend_id: event.resource_backend_id.clone(),
            resource_uuid: Some(event.resource_uuid.clone()),
        };
        let what = format!(
            "API key {} of resource {}",
            event.api_key_uuid, event.resource_uuid
        );
        Ok(Handled(
            match self.orders()?.rotate_resource_api_key(&rotation).await? {
                RotationOutcome::Rotated => format!("{what}: rotated"),
                RotationOutcome::Erred(message) => {
                    format!("{what}: rotation failed, reported to Waldur: {message}")
                }
                RotationOutcome::NotPending(state) => {
                    format!("{what}: already answered (the key is {state}), nothing to do")
                }
                RotationOutcome::Unsupported => {
                    format!("{what}: ignored, the backend does not manage resource API keys")
                }
            },
        ))
    }
}
