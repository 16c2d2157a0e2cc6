//! Event processing's periodic reconciliation (reference §3.5 step 5): what an event that was
//! lost, or whose handler failed, would have done. Each step is a method of the session of the
//! backend it needs, so the polling paths and tools can call them too.
//!
//! Deliberate difference: the reference's project-hierarchy step (`sync_all_resource_projects`:
//! R1, pull, `sync_resource_project` per resource) is the membership pass here, which does the
//! same per resource and also brings the team and limits back in line with Waldur.

use std::time::Duration;

use super::api_keys::{KeySweep, API_KEY_STUCK_AFTER};
use super::error::ModeError;
use super::membership_sync::MembershipSummary;
use super::order_process::{OrderRetry, OrderSummary};
use super::runtime::{blocking, Session};

/// An order left this long in a pending state is stuck: the reference uses one threshold
/// for orders and key rotations.
pub const STUCK_AFTER: Duration = API_KEY_STUCK_AFTER;

/// What one reconciliation of an offering did; a step that failed holds its error line.
#[derive(Debug, Default)]
pub struct Reconciliation {
    /// `Some(true)` when the backend changed usernames in Waldur.
    pub usernames: Option<Result<bool, String>>,
    pub orders: Option<Result<OrderSummary, String>>,
    pub api_keys: Option<Result<KeySweep, String>>,
    pub offering_users: Option<Result<bool, String>>,
    pub membership: Option<Result<MembershipSummary, String>>,
}

impl Reconciliation {
    /// The failed steps, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut failed = Vec::new();
        let mut note = |step: &str, error: Option<&String>| {
            if let Some(e) = error {
                failed.push(format!("{step}: {e}"));
            }
        };
        note(
            "usernames",
            self.usernames.as_ref().and_then(|r| r.as_ref().err()),
        );
        note(
            "stuck orders",
            self.orders.as_ref().and_then(|r| r.as_ref().err()),
        );
        note(
            "API keys",
            self.api_keys.as_ref().and_then(|r| r.as_ref().err()),
        );
        note(
            "offering users",
            self.offering_users.as_ref().and_then(|r| r.as_ref().err()),
        );
        note(
            "membership",
            self.membership.as_ref().and_then(|r| r.as_ref().err()),
        );
        failed
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(Ok(changed)) = &self.usernames {
            parts.push(format!(
                "usernames {}",
                if *changed { "changed" } else { "unchanged" }
            ));
        }
        if let Some(Ok(s)) = &self.orders {
            parts.push(format!("stuck orders: {} done, {} erred", s.done, s.erred));
        }
        if let Some(Ok(s)) = &self.api_keys {
            parts.push(format!("stuck key rotations: {}", s.stuck));
        }
        if let Some(Ok(changed)) = &self.offering_users {
            parts.push(format!(
                "offering users {}",
                if *changed { "advanced" } else { "unchanged" }
            ));
        }
        if let Some(Ok(s)) = &self.membership {
            parts.push(format!(
                "membership: {} resource(s), {} added, {} removed",
                s.resources, s.users_added, s.users_removed
            ));
        }
        parts.extend(self.failures().into_iter().map(|f| format!("{f} (failed)")));
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join("; ")
        }
    }
}

impl Session<'_> {
    /// Reference `run_periodic_username_reconciliation`: the backend brings Waldur's
    /// usernames in line with its own (`sync_offering_user_usernames`).
    pub async fn reconcile_usernames(&self) -> Result<bool, ModeError> {
        let offering_uuid = self.offering.waldur_offering_uuid.clone();
        let changed = blocking(&self.backend, move |b| {
            b.sync_offering_user_usernames(&offering_uuid)
        })
        .await?;
        if changed {
            self.invalidate_offering_users().await;
        }
        Ok(changed)
    }

    /// Reference `run_periodic_offering_user_reconciliation`: offering users left in a state
    /// the username state machine works on (Requested, Creating, Error creating, Pending ...)
    /// get another pass. Answers whether a username was set.
    pub async fn retry_stuck_offering_users(&self) -> Result<bool, ModeError> {
        self.invalidate_offering_users().await;
        let users = self.offering_users().await?;
        self.update_offering_users(&users).await
    }
}

/// The sessions reconciliation works on: orders and keys on the order-processing backend,
/// membership and offering users on the membership backend.
pub async fn reconcile(
    orders: Option<&Session<'_>>,
    membership: Option<&Session<'_>>,
    retry: OrderRetry,
) -> Reconciliation {
    let line = |e: ModeError| e.to_string();
    let mut done = Reconciliation::default();
    if let Some(session) = membership {
        if session.offering.username_reconciliation_enabled {
            done.usernames = Some(session.reconcile_usernames().await.map_err(line));
        }
    }
    if let Some(session) = orders {
        done.orders = Some(
            session
                .process_stuck_orders(STUCK_AFTER, retry)
                .await
                .map_err(line),
        );
        if session.manages_resource_api_keys() {
            done.api_keys = Some(
                session
                    .reconcile_stuck_api_keys(STUCK_AFTER)
                    .await
                    .map_err(line),
            );
        }
    }
    if let Some(session) = membership {
        done.offering_users = Some(session.retry_stuck_offering_users().await.map_err(line));
        done.membership = Some(session.sync_membership().await.map_err(line));
    }
    done
}
