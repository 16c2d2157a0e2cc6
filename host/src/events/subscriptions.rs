//! Which queues an offering's events arrive on, and the broker credentials to read them
//! (reference §3.5 step 3, §9.3): the object types the offering observes, the agent identity
//! and its `event_process-<type>` services, then the queues through one of the two flows
//! Mastermind has.
//!
//! - single queue (`register_queue`, the reference's PyPI 1.0.7): one queue `consumer_<id>`
//!   for every type, login `rmq_username`; each message names its type in `object_type`;
//! - per object type (`register_event_subscription` + `create_queue`, earlier releases): one
//!   queue and one connection per type, login = the subscription's uuid.
//!
//! `stomp_subscription_flow: auto` (the default) asks for the single queue and falls back to
//! per-type queues when Waldur does not know `register_queue` (404 or 405).

use super::message::ObjectType;
use super::stomp::{Backoff, StompOptions};
use crate::config::{Offering, SubscriptionFlow};
use crate::modes::error::ModeError;
use crate::modes::runtime::{identity_request, Agent};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

/// The mode name event processing registers its services under.
pub const EVENT_MODE: &str = "event_process";

/// Heart-beats asked for in both directions (the reference's 10 s).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// Unacknowledged deliveries per connection: enough to keep every handler slot busy.
pub const PREFETCH: u16 = 32;

/// One queue to read.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The queue's only object type; `None` for a single queue, whose messages name theirs.
    pub object_type: Option<ObjectType>,
    pub options: StompOptions,
}

/// The object types an offering observes (reference `_determine_observable_object_types`),
/// in a stable order.
pub fn observed_types(offering: &Offering) -> Vec<ObjectType> {
    let mut types = Vec::new();
    if !offering.order_processing_backend.is_empty() {
        types.extend([ObjectType::Order, ObjectType::ResourceApiKeyRotation]);
    }
    if !offering.membership_sync_backend.is_empty() && offering.stomp_membership_sync() {
        types.extend([
            ObjectType::UserRole,
            ObjectType::Resource,
            ObjectType::ServiceAccount,
            ObjectType::CourseAccount,
            ObjectType::OfferingUser,
            ObjectType::OfferingResourcesSync,
        ]);
    }
    if offering.resource_import_enabled {
        types.push(ObjectType::ImportableResources);
    }
    if periodic_limits_enabled(offering) {
        types.push(ObjectType::ResourcePeriodicLimits);
    }
    types
}

/// `backend_settings.periodic_limits.enabled`.
fn periodic_limits_enabled(offering: &Offering) -> bool {
    offering
        .backend_settings
        .get("periodic_limits")
        .and_then(|p| p.get("enabled"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Registers the identity, one `event_process-<type>` service per type and the queues.
/// Answers the flow used and the queues; a type whose per-type queue Waldur refused is left
/// out with an error line (as the reference skips it).
pub async fn subscribe(
    agent: &Agent,
    offering: &Offering,
    client: &WaldurClient,
    types: &[ObjectType],
) -> Result<(SubscriptionFlow, Vec<Subscription>), ModeError> {
    // The broker takes the agent's Waldur API token as the passcode.
    let passcode = offering
        .auth
        .token()
        .map(|t| t.expose().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ModeError::NotConfigured(format!(
                "offering '{}': event processing needs waldur_api_token (the broker takes it \
                 as the STOMP passcode); an OIDC-only offering cannot subscribe",
                offering.name
            ))
        })?;
    let identity = client
        .register_agent_identity(&identity_request(agent, offering))
        .await?;
    crate::logging::shipping::register_identity(&offering.name, client, &identity.uuid);
    for object_type in types {
        let service = format!("{EVENT_MODE}-{}", object_type.name());
        client
            .register_service(&identity.uuid, &service, EVENT_MODE)
            .await?;
    }
    let base = Base {
        offering,
        passcode,
        url: offering.stomp_ws_url(),
    };
    match offering.stomp_subscription_flow {
        SubscriptionFlow::SingleQueue => single_queue(&base, client, &identity.uuid, types)
            .await
            .map(|s| (SubscriptionFlow::SingleQueue, s)),
        SubscriptionFlow::PerObjectType => Ok((
            SubscriptionFlow::PerObjectType,
            per_object_type(&base, client, &identity.uuid, &identity.name, types).await?,
        )),
        SubscriptionFlow::Auto => match single_queue(&base, client, &identity.uuid, types).await {
            Ok(subscriptions) => Ok((SubscriptionFlow::SingleQueue, subscriptions)),
            Err(ModeError::Waldur(e)) if unknown_endpoint(&e) => {
                tracing::info!(
                    offering = %offering.name,
                    "Waldur does not know register_queue ({}); subscribing per object type",
                    e.status().unwrap_or_default()
                );
                Ok((
                    SubscriptionFlow::PerObjectType,
                    per_object_type(&base, client, &identity.uuid, &identity.name, types).await?,
                ))
            }
            Err(e) => Err(e),
        },
    }
}

fn unknown_endpoint(e: &WaldurError) -> bool {
    matches!(e.status(), Some(404 | 405))
}

/// What every subscription of an offering shares.
struct Base<'a> {
    offering: &'a Offering,
    passcode: String,
    url: String,
}

impl Base<'_> {
    fn options(&self, vhost: &str, login: &str, queue: &str, label: String) -> StompOptions {
        StompOptions {
            url: self.url.clone(),
            vhost: vhost.to_string(),
            login: login.to_string(),
            passcode: self.passcode.clone(),
            destination: format!("/amq/queue/{queue}"),
            subscription_id: queue.to_string(),
            heartbeat: HEARTBEAT,
            backoff: Backoff::default(),
            prefetch: PREFETCH,
            label,
        }
    }
}

async fn single_queue(
    base: &Base<'_>,
    client: &WaldurClient,
    identity_uuid: &str,
    types: &[ObjectType],
) -> Result<Vec<Subscription>, ModeError> {
    let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
    let queue = client
        .register_consumer_queue(identity_uuid, &names)
        .await?;
    if queue.queue_name.is_empty() || queue.rmq_username.is_empty() {
        return Err(ModeError::NotConfigured(format!(
            "offering '{}': register_queue answered without a queue name or broker user",
            base.offering.name
        )));
    }
    let label = format!(
        "offering '{}' queue {}",
        base.offering.name, queue.queue_name
    );
    Ok(vec![Subscription {
        object_type: None,
        options: base.options(&queue.vhost, &queue.rmq_username, &queue.queue_name, label),
    }])
}

async fn per_object_type(
    base: &Base<'_>,
    client: &WaldurClient,
    identity_uuid: &str,
    identity_name: &str,
    types: &[ObjectType],
) -> Result<Vec<Subscription>, ModeError> {
    let offering_hex = normalize_uuid(&base.offering.waldur_offering_uuid);
    let mut subscriptions = Vec::new();
    for &object_type in types {
        let subscription = client
            .register_event_subscription(identity_uuid, object_type.name(), identity_name)
            .await?;
        if let Err(e) = client
            .create_event_queue(
                &subscription.uuid,
                &base.offering.waldur_offering_uuid,
                object_type.name(),
            )
            .await
        {
            // A transient failure fails the whole subscription step (it is retried); a
            // refusal leaves this type out, as the reference does.
            if e.is_transient() {
                return Err(e.into());
            }
            tracing::error!(
                offering = %base.offering.name,
                "no {} queue, its events are not received: {e}",
                object_type.name()
            );
            continue;
        }
        // The queue name is Mastermind's convention (the reference computes it too).
        let queue = format!(
            "subscription_{}_offering_{offering_hex}_{}",
            normalize_uuid(&subscription.uuid),
            object_type.name()
        );
        let label = format!(
            "offering '{}' {} queue",
            base.offering.name,
            object_type.name()
        );
        subscriptions.push(Subscription {
            object_type: Some(object_type),
            options: base.options(
                &normalize_uuid(&subscription.user_uuid),
                &normalize_uuid(&subscription.uuid),
                &queue,
                label,
            ),
        });
    }
    Ok(subscriptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_observed_types_follow_the_offering() {
        let mut offering = Offering {
            stomp_enabled: true,
            order_processing_backend: "demo".into(),
            ..Offering::default()
        };
        assert_eq!(
            observed_types(&offering),
            [ObjectType::Order, ObjectType::ResourceApiKeyRotation]
        );
        offering.membership_sync_backend = "demo".into();
        offering.resource_import_enabled = true;
        offering.backend_settings.insert(
            "periodic_limits".into(),
            serde_json::json!({"enabled": true}),
        );
        let all = observed_types(&offering);
        assert_eq!(all.len(), 10, "{all:?}");
        offering.stomp_membership_sync_enabled = Some(false);
        assert!(!observed_types(&offering).contains(&ObjectType::UserRole));
        assert_eq!(observed_types(&Offering::default()), []);
    }
}
