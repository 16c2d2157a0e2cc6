//! Event subscriptions (reference §2.1 A6, A7, and PyPI 1.0.7's `register_queue`): where
//! Waldur publishes an agent's events and with which broker credentials.

use reqwest::Method;
use serde_json::json;

use crate::waldur::call::{Call, Query};
use crate::waldur::models::{ConsumerQueue, EventSubscription, EventSubscriptionQueue};
use crate::waldur::{normalize_uuid, WaldurClient, WaldurError};

impl WaldurClient {
    /// A6 `POST /api/marketplace-site-agent-identities/{uuid}/register_event_subscription/`
    /// `{observable_object_type, description}` -> 200/201. Each call makes a new subscription on
    /// Waldur's side, so it is retried only when it provably did not arrive; a stray one costs
    /// an idle broker login, nothing more.
    pub async fn register_event_subscription(
        &self,
        identity_uuid: &str,
        object_type: &str,
        identity_name: &str,
    ) -> Result<EventSubscription, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-site-agent-identities",
                &normalize_uuid(identity_uuid),
                "register_event_subscription",
            ],
            Query::new(),
        );
        let body = json!({
            "observable_object_type": object_type,
            "description": format!(
                "Event subscription created by the site agent for identity {identity_name}"
            ),
        });
        let call = Call::with_json(
            "A6 marketplace_site_agent_identities_register_event_subscription",
            Method::POST,
            url,
            &body,
        )
        .accept(&[200, 201])
        .retry(crate::waldur::retry::RetryMode::UnlessDelivered);
        self.http.json(&call, &["uuid", "user_uuid"]).await
    }

    /// A7 `POST /api/event-subscriptions/{uuid}/create_queue/` `{offering_uuid, object_type}`
    /// -> 200/201. Waldur declares the queue (the agent must not: its arguments are Waldur's);
    /// declaring it again is a no-op, hence retried.
    pub async fn create_event_queue(
        &self,
        subscription_uuid: &str,
        offering_uuid: &str,
        object_type: &str,
    ) -> Result<EventSubscriptionQueue, WaldurError> {
        let url = self.http.url(
            &[
                "event-subscriptions",
                &normalize_uuid(subscription_uuid),
                "create_queue",
            ],
            Query::new(),
        );
        let body = json!({
            "offering_uuid": normalize_uuid(offering_uuid),
            "object_type": object_type,
        });
        let call = Call::with_json(
            "A7 event_subscriptions_create_queue",
            Method::POST,
            url,
            &body,
        )
        .accept(&[200, 201]);
        self.http.json(&call, &["queue_name"]).await
    }

    /// 1.0.7 `POST /api/marketplace-site-agent-identities/{uuid}/register_queue/`
    /// `{object_types}` -> 200/201: one queue `consumer_<id>` for all of them. Idempotent on
    /// Waldur's side (the same queue is answered again), hence retried.
    pub async fn register_consumer_queue(
        &self,
        identity_uuid: &str,
        object_types: &[&str],
    ) -> Result<ConsumerQueue, WaldurError> {
        let url = self.http.url(
            &[
                "marketplace-site-agent-identities",
                &normalize_uuid(identity_uuid),
                "register_queue",
            ],
            Query::new(),
        );
        let call = Call::with_json(
            "register_queue marketplace_site_agent_identities_register_queue",
            Method::POST,
            url,
            &json!({ "object_types": object_types }),
        )
        .accept(&[200, 201]);
        self.http
            .json(&call, &["rmq_username", "queue_name", "vhost"])
            .await
    }
}
