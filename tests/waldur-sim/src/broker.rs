//! Mastermind's side of event processing on a real RabbitMQ: the vhost, user and queues it
//! creates when an agent subscribes, and the messages it publishes when its state changes.
//!
//! Through RabbitMQ's HTTP management API: one request per step, far faster than
//! `rabbitmqctl` (which starts an Erlang VM per call).

use std::time::Duration;

use serde_json::json;

/// Where the broker's management API is, with an administrator's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// e.g. `http://127.0.0.1:15672`.
    pub management_url: String,
    pub admin_user: String,
    pub admin_password: String,
}

#[derive(Debug, thiserror::Error)]
#[error("RabbitMQ management API: {0}")]
pub struct BrokerError(String);

/// Messages in a queue: ready for delivery, and delivered but not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
}

/// A client of the management API.
#[derive(Debug, Clone)]
pub struct BrokerAdmin {
    config: BrokerConfig,
    client: reqwest::Client,
}

/// `/` and other reserved characters in a vhost or queue name must not split the path.
fn segment(name: &str) -> String {
    form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl BrokerAdmin {
    pub fn new(config: BrokerConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        BrokerAdmin { config, client }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, BrokerError> {
        let url = format!(
            "{}/api/{path}",
            self.config.management_url.trim_end_matches('/')
        );
        let response = self
            .client
            .request(method.clone(), &url)
            .basic_auth(&self.config.admin_user, Some(&self.config.admin_password))
            .json(&body)
            .send()
            .await
            .map_err(|e| BrokerError(format!("{method} /api/{path}: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(BrokerError(format!(
                "{method} /api/{path}: {status}: {text}"
            )));
        }
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// A vhost and a user with every permission in it (what Mastermind creates for an agent:
    /// the user's password is the agent's API token).
    pub async fn ensure_account(
        &self,
        vhost: &str,
        user: &str,
        password: &str,
    ) -> Result<(), BrokerError> {
        self.call(
            reqwest::Method::PUT,
            &format!("vhosts/{}", segment(vhost)),
            json!({}),
        )
        .await?;
        self.call(
            reqwest::Method::PUT,
            &format!("users/{}", segment(user)),
            json!({"password": password, "tags": ""}),
        )
        .await?;
        self.call(
            reqwest::Method::PUT,
            &format!("permissions/{}/{}", segment(vhost), segment(user)),
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await?;
        Ok(())
    }

    /// A durable queue, declared by the server side: agents subscribe to `/amq/queue/<name>`,
    /// which must exist and which they never declare.
    pub async fn declare_queue(&self, vhost: &str, queue: &str) -> Result<(), BrokerError> {
        self.call(
            reqwest::Method::PUT,
            &format!("queues/{}/{}", segment(vhost), segment(queue)),
            json!({"durable": true, "auto_delete": false, "arguments": {}}),
        )
        .await
        .map(drop)
    }

    /// Publishes `body` (JSON text) to `queue` through the default exchange; true when it was
    /// routed to the queue.
    pub async fn publish(&self, vhost: &str, queue: &str, body: &str) -> Result<bool, BrokerError> {
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("exchanges/{}/amq.default/publish", segment(vhost)),
                json!({
                    "properties": {"content_type": "application/json", "delivery_mode": 2},
                    "routing_key": queue,
                    "payload": body,
                    "payload_encoding": "string",
                }),
            )
            .await?;
        Ok(answer["routed"].as_bool().unwrap_or(false))
    }

    /// A queue's message counts as the management API reports them. The API refreshes them
    /// every `collect_statistics_interval` (500 ms with scripts/rabbitmq-setup.sh), so they
    /// lag, and a queue declared a moment ago has none yet (`None`).
    pub async fn queue_counts(
        &self,
        vhost: &str,
        queue: &str,
    ) -> Result<Option<QueueCounts>, BrokerError> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &format!("queues/{}/{}", segment(vhost), segment(queue)),
                json!({}),
            )
            .await?;
        let count = |key: &str| answer[key].as_u64();
        Ok(
            match (count("messages_ready"), count("messages_unacknowledged")) {
                (Some(ready), Some(unacked)) => Some(QueueCounts { ready, unacked }),
                _ => None,
            },
        )
    }

    /// Removes a user (tests clean up after themselves).
    pub async fn delete_user(&self, user: &str) -> Result<(), BrokerError> {
        self.delete(format!("users/{}", segment(user))).await
    }

    /// Removes a vhost with everything in it (tests clean up after themselves).
    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        self.delete(format!("vhosts/{}", segment(vhost))).await
    }

    async fn delete(&self, path: String) -> Result<(), BrokerError> {
        self.call(reqwest::Method::DELETE, &path, json!({}))
            .await
            .map(drop)
    }
}

/// Delivers what [`crate::app::Shared::publish_event`] queued, one message at a time so the
/// broker sees them in publication order.
pub async fn deliver(
    app: crate::app::App,
    mut outbox: tokio::sync::mpsc::UnboundedReceiver<usize>,
) {
    while let Some(seq) = outbox.recv().await {
        let Some((vhost, queue, body)) = app
            .store()
            .published
            .get(seq)
            .map(|p| (p.vhost.clone(), p.queue_name.clone(), p.body.to_string()))
        else {
            continue;
        };
        // Stamped before the call: the agent can receive the message before the answer.
        let handed_over = crate::store::epoch_ms();
        let outcome = match app.broker() {
            Some(broker) => broker
                .publish(&vhost, &queue, &body)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no broker attached to the simulator".to_string()),
        };
        if let Some(record) = app.store().published.get_mut(seq) {
            match outcome {
                Ok(routed) => {
                    record.routed = Some(routed);
                    record.published_ms = Some(handed_over);
                }
                Err(e) => record.error = Some(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_path_segment() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("0f0f"), "0f0f");
    }
}
