//! The target's events (`target_stomp_enabled`): the plugin registers an agent identity and
//! one subscription per object type (orders, offering users, resources) on the TARGET Waldur,
//! hands the agent the queues to read, and acts on what arrives:
//!
//! - a target order reaching done, erred, canceled or rejected completes the source order it
//!   serves (found by its `backend_id`) at once, instead of at the next poll;
//! - a target offering user created or updated with a username syncs usernames to the source;
//! - a target resource whose end date changed syncs that end date.
//!
//! A message is idempotent to handle: the source order is completed only while it executes,
//! and a completion that races the agent's own poll is accepted once Waldur shows it done.

use serde_json::{json, Value};
use waldur_plugin_abi::wire::WaldurResource;
use waldur_plugin_abi::{Error, Result};

use crate::federation::Federation;
use crate::projects::dashed;
use crate::target::{checked_uuid, field, normalize_uuid, uuid_field};

/// The object types the plugin follows on the target, in Mastermind's names.
const OBSERVED: &[&str] = &["order", "offering_user", "resource"];
const TERMINAL: &[&str] = &["done", "erred", "canceled", "rejected"];

impl Federation {
    /// The subscriptions the agent serves for this backend: none unless `target_stomp_enabled`.
    pub(crate) fn target_subscriptions(
        &self,
        source_offering: &Value,
        user_agent: &str,
    ) -> Result<Vec<Value>> {
        if !self.settings.stomp_enabled {
            return Ok(Vec::new());
        }
        let url = self
            .settings
            .stomp_ws_url
            .clone()
            .or_else(|| {
                Some(field(source_offering, "stomp_ws_url").to_string()).filter(|u| !u.is_empty())
            })
            .ok_or_else(|| {
                Error::invalid_settings(
                    "backend_settings.target_stomp_ws_url: needed with target_stomp_enabled when \
                     the source offering has no STOMP settings",
                )
            })?;
        let identity = self.target_identity(user_agent)?;
        let mut subscriptions = Vec::new();
        for object_type in OBSERVED {
            let subscription = self.target.post(
                &format!(
                    "marketplace-site-agent-identities/{identity}/register_event_subscription/"
                ),
                &json!({
                    "observable_object_type": object_type,
                    "description": format!(
                        "Federation of source offering {} ({object_type})",
                        field(source_offering, "name")
                    ),
                }),
            )?;
            let (uuid, user) = (
                uuid_field(&subscription, "uuid"),
                uuid_field(&subscription, "user_uuid"),
            );
            if uuid.is_empty() || user.is_empty() {
                return Err(Error::backend(format!(
                    "the target Waldur answered a {object_type} event subscription without uuid or user_uuid"
                )));
            }
            self.target.post(
                &format!("event-subscriptions/{uuid}/create_queue/"),
                &json!({ "offering_uuid": self.settings.offering_uuid, "object_type": object_type }),
            )?;
            subscriptions.push(json!({
                "url": url,
                "vhost": user,
                "login": uuid,
                // The target's broker takes the target API token, as the source's does.
                "passcode": self.settings.api_token,
                // Mastermind's queue name convention.
                "destination": format!(
                    "/amq/queue/subscription_{uuid}_offering_{}_{object_type}",
                    self.settings.offering_uuid
                ),
                "label": format!("target {object_type}"),
            }));
        }
        log::info!(
            "{} target event subscription(s) registered on {}",
            subscriptions.len(),
            self.target.origin()
        );
        Ok(subscriptions)
    }

    /// The agent identity on the target (found by name, else created).
    fn target_identity(&self, user_agent: &str) -> Result<String> {
        let name = format!("agent-{}", self.settings.offering_uuid);
        let existing = self.target.get(
            "marketplace-site-agent-identities/",
            &[("name", name.clone())],
        )?;
        if let Some(identity) = existing.as_array().and_then(|i| i.first()) {
            let uuid = uuid_field(identity, "uuid");
            if !uuid.is_empty() {
                return Ok(uuid);
            }
        }
        let created = self.target.post(
            "marketplace-site-agent-identities/",
            &json!({
                "offering": self.settings.offering_uuid,
                "name": name,
                "version": self.host.agent_version(),
                "last_restarted": jiff::Timestamp::now().to_string(),
                "dependencies": [{"package": "waldur-plugin-waldur", "version": env!("CARGO_PKG_VERSION")}],
                "config_file_path": "",
                "config_file_content": format!("federation plugin ({user_agent})"),
            }),
        )?;
        let uuid = uuid_field(&created, "uuid");
        if uuid.is_empty() {
            return Err(Error::backend(
                "the target Waldur created an agent identity without a uuid",
            ));
        }
        Ok(uuid)
    }

    /// One message of a target subscription; answers what was done, for the agent's log.
    pub(crate) fn target_event(&self, event: &Value) -> Result<Value> {
        let body = event.get("body").unwrap_or(&Value::Null);
        let done = if body.get("order_uuid").is_some() {
            self.target_order_event(body)?
        } else if body.get("offering_user_uuid").is_some() {
            self.target_offering_user_event(body)?
        } else if field(body, "action") == "end_date_updated" {
            self.target_end_date_event(body)?
        } else {
            "not a message the federation acts on".to_string()
        };
        log::info!("target event: {done}");
        Ok(json!({ "handled": done }))
    }

    fn target_order_event(&self, body: &Value) -> Result<String> {
        let target_order = checked_uuid(field(body, "order_uuid"), "target order uuid")?;
        let state = field(body, "order_state");
        if !TERMINAL.contains(&state) {
            return Ok(format!(
                "target order {target_order} is {state}; nothing to do yet"
            ));
        }
        let source_offering = self.source_offering_uuid()?;
        let executing = self.source_list(
            "marketplace-orders/",
            &json!({"offering_uuid": source_offering, "state": ["executing"]}),
        )?;
        let Some(order) = executing.iter().find(|o| {
            normalize_uuid(field(o, "backend_id")).as_deref() == Some(target_order.as_str())
        }) else {
            return Ok(format!(
                "no executing source order follows target order {target_order}"
            ));
        };
        let source_order = checked_uuid(field(order, "uuid"), "source order uuid")?;
        let (action, body) = if state == "done" {
            ("set_state_done", None)
        } else {
            let mut reason = format!("target order {} {state}", dashed(&target_order));
            if let Ok(target) = self
                .target
                .get(&format!("marketplace-orders/{target_order}/"), &[])
            {
                if !field(&target, "error_message").is_empty() {
                    reason = format!("{reason}: {}", field(&target, "error_message"));
                }
            }
            (
                "set_state_erred",
                Some(json!({"error_message": reason, "error_traceback": ""})),
            )
        };
        let path = format!("marketplace-orders/{source_order}/{action}/");
        if let Err(e) = self
            .host
            .waldur_request("POST", &path, &json!({}), body.as_ref())
        {
            // The agent's own poll may have completed it a moment earlier.
            let now = self
                .host
                .waldur_get(&format!("marketplace-orders/{source_order}/"), &json!({}))?;
            if field(&now, "state") == "executing" {
                return Err(e);
            }
        }
        Ok(format!(
            "source order {source_order} {action} (target order {target_order} {state})"
        ))
    }

    fn target_offering_user_event(&self, body: &Value) -> Result<String> {
        let action = field(body, "action");
        if !matches!(action, "create" | "update") || field(body, "username").is_empty() {
            return Ok(format!(
                "target offering user {action} without a username; nothing to sync"
            ));
        }
        let changed = self.sync_usernames(&self.source_offering_uuid()?)?;
        Ok(format!(
            "usernames synced from the target (changed: {changed})"
        ))
    }

    fn target_end_date_event(&self, body: &Value) -> Result<String> {
        let target_resource = checked_uuid(field(body, "resource_uuid"), "target resource uuid")?;
        let resources = self.source_list(
            "marketplace-provider-resources/",
            &json!({"offering_uuid": self.source_offering_uuid()?, "backend_id": dashed(&target_resource)}),
        )?;
        let Some(raw) = resources.into_iter().next() else {
            return Ok(format!(
                "no source resource follows target resource {target_resource}"
            ));
        };
        let resource: WaldurResource = serde_json::from_value(raw)
            .map_err(|e| Error::backend(format!("the source resource is not readable: {e}")))?;
        self.sync_end_date(&resource)?;
        Ok(format!(
            "end date of source resource {} synced",
            resource.uuid
        ))
    }
}
