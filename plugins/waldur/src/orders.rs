//! Source orders as target orders, without blocking: each write answers the target order it
//! started, the agent records it as the source order's `backend_id`, and
//! `check_pending_order` follows it on later cycles (or a target event completes it).
//!
//! Exactly once: a target order whose submission answer was lost, or whose id the agent died
//! before recording, is found again on the next attempt and adopted, never submitted twice:
//! a Create by the source resource uuid it carries in its attributes, an Update or Terminate
//! as the resource's in-flight order of that type.

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{BackendLimits, BackendResourceInfo, Limits, WaldurResource};
use waldur_plugin_abi::{Error, Result};

use crate::federation::Federation;
use crate::projects::dashed;
use crate::target::{checked_uuid, field, normalize_uuid, uuid_field};

/// The attribute of a target Create order naming the source resource it serves.
pub const SOURCE_RESOURCE_ATTRIBUTE: &str = "source_resource_uuid";
/// Order states that will change no more without someone acting (Mastermind's).
const FAILED_ORDER_STATES: &[&str] = &["erred", "canceled", "rejected"];
const IN_FLIGHT_ORDER_STATES: &[&str] = &[
    "pending-consumer",
    "pending-provider",
    "pending-project",
    "pending-start-date",
    "executing",
];

impl Federation {
    /// The resource's limits of the configured components (reference `_collect_resource_limits`).
    pub(crate) fn waldur_limits(&self, resource: &WaldurResource) -> Limits {
        resource
            .limits
            .iter()
            .filter(|(component, _)| self.components.contains_key(*component))
            .map(|(component, value)| (component.clone(), value.trunc()))
            .collect()
    }

    fn target_limits(&self, limits: &Limits) -> BackendLimits {
        self.mapper.limits_to_target(limits)
    }

    /// Create: the target project, then a Create order on the target offering (or the one an
    /// earlier attempt submitted). Answers the target resource and order.
    pub(crate) fn submit_create(&self, resource: &WaldurResource) -> Result<BackendResourceInfo> {
        let source_uuid = checked_uuid(&resource.uuid, "source resource uuid")?;
        let project = self.find_or_create_project(resource)?;
        let project_uuid = uuid_field(&project, "uuid");
        let waldur_limits = self.waldur_limits(resource);
        let order = match self.submitted_create(&project_uuid, &source_uuid)? {
            Some(order) => {
                log::info!(
                    "adopting target order {} submitted earlier for resource {}",
                    field(&order, "uuid"),
                    resource.uuid
                );
                order
            }
            None => {
                self.post_create_order(resource, &project_uuid, &source_uuid, &waldur_limits)?
            }
        };
        let order_uuid = uuid_field(&order, "uuid");
        let mut resource_uuid = uuid_field(&order, "marketplace_resource_uuid");
        if resource_uuid.is_empty() {
            resource_uuid = uuid_field(&order, "resource_uuid");
        }
        if order_uuid.is_empty() || resource_uuid.is_empty() {
            return Err(Error::not_ready(format!(
                "the target Waldur answered a Create order without {}; it is looked up again \
                 on the next attempt",
                if order_uuid.is_empty() {
                    "a uuid"
                } else {
                    "a resource uuid"
                }
            )));
        }
        log::info!(
            "target order {order_uuid} submitted for resource {} (target resource {resource_uuid})",
            resource.uuid
        );
        Ok(BackendResourceInfo {
            backend_id: dashed(&resource_uuid),
            pending_order_id: dashed(&order_uuid),
            limits: waldur_limits,
            ..Default::default()
        })
    }

    /// A Create order an earlier attempt submitted for this source resource, unless it failed.
    fn submitted_create(&self, project_uuid: &str, source_uuid: &str) -> Result<Option<Value>> {
        let orders = self.target.list(
            "marketplace-orders/",
            &[
                ("project_uuid", project_uuid.to_string()),
                ("offering_uuid", self.settings.offering_uuid.clone()),
                ("type", "Create".to_string()),
            ],
        )?;
        Ok(orders.into_iter().find(|order| {
            let attributes = order.get("attributes").unwrap_or(&Value::Null);
            normalize_uuid(field(attributes, SOURCE_RESOURCE_ATTRIBUTE)).as_deref()
                == Some(source_uuid)
                && !FAILED_ORDER_STATES.contains(&field(order, "state"))
        }))
    }

    fn post_create_order(
        &self,
        resource: &WaldurResource,
        project_uuid: &str,
        source_uuid: &str,
        waldur_limits: &Limits,
    ) -> Result<Value> {
        let mut attributes = serde_json::Map::new();
        attributes.insert("name".into(), json!(resource.name));
        for key in &self.settings.passthrough_attributes {
            if let Some(value) = resource.attributes.get(key) {
                attributes.insert(key.clone(), value.clone());
            }
        }
        if let Some(end_date) = &resource.end_date {
            attributes.insert("end_date".into(), json!(end_date));
        }
        attributes.insert(SOURCE_RESOURCE_ATTRIBUTE.into(), json!(dashed(source_uuid)));
        let mut body = json!({
            "offering": self.target.url(&format!(
                "marketplace-public-offerings/{}/",
                self.settings.offering_uuid
            )),
            "project": self.target.url(&format!("projects/{project_uuid}/")),
            "limits": self.target_limits(waldur_limits),
            "attributes": attributes,
            "type": "Create",
        });
        if let Some(plan) = self.plan_url()? {
            body["plan"] = json!(plan);
        }
        self.target.post("marketplace-orders/", &body).map_err(|e| {
            if e.status == Some(400) {
                Error::backend(format!("the target Waldur refused the order: {}", e.detail))
            } else {
                e.into()
            }
        })
    }

    /// The first plan of the target offering (reference `_get_offering_plan_url`), read once.
    fn plan_url(&self) -> Result<Option<String>> {
        if let Some(known) = self.remembered().plan_url.clone() {
            return Ok(known);
        }
        let path = format!(
            "marketplace-public-offerings/{}/plans/",
            self.settings.offering_uuid
        );
        let plans = match self.target.get(&path, &[]) {
            Ok(plans) => plans,
            Err(e) if !e.is_transient() => {
                log::warn!(
                    "the target offering's plans are not readable ({e}); ordering without a plan"
                );
                Value::Null
            }
            Err(e) => return Err(e.into()),
        };
        let plan = plans
            .as_array()
            .and_then(|p| p.first())
            .map(|p| field(p, "url").to_string())
            .filter(|url| !url.is_empty());
        self.remembered().plan_url = Some(plan.clone());
        Ok(plan)
    }

    /// Reference `check_pending_order`: done -> true; erred, canceled, rejected -> the
    /// source order errs with the target's reason; anything else -> still pending. An
    /// unavailable target is BACKEND_NOT_READY (the order waits).
    pub(crate) fn target_order_done(&self, order_backend_id: &str) -> Result<bool> {
        let order_uuid = checked_uuid(order_backend_id, "target order id")?;
        let order = match self
            .target
            .get(&format!("marketplace-orders/{order_uuid}/"), &[])
        {
            Ok(order) => order,
            Err(e) if e.is_not_found() => {
                return Err(Error::backend(format!(
                    "target order {order_backend_id} does not exist on the target Waldur"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let state = field(&order, "state");
        if state == "done" {
            log::info!("target order {order_backend_id} is done");
            return Ok(true);
        }
        if FAILED_ORDER_STATES.contains(&state) {
            let reason = field(&order, "error_message");
            return Err(Error::backend(if reason.is_empty() {
                format!("target order {order_backend_id} {state}")
            } else {
                format!("target order {order_backend_id} {state}: {reason}")
            }));
        }
        log::info!("target order {order_backend_id} is {state}");
        Ok(false)
    }

    /// The target resource, or `None` when the target has no such resource.
    pub(crate) fn target_resource(&self, backend_id: &str) -> Result<Option<Value>> {
        let uuid = checked_uuid(backend_id, "resource backend id")?;
        Ok(self
            .target
            .find(&format!("marketplace-resources/{uuid}/"))?)
    }

    /// The resource's in-flight order of `order_type`, if any.
    fn in_flight_order(&self, resource_uuid: &str, order_type: &str) -> Result<Option<Value>> {
        let mut query = vec![
            ("resource_uuid", resource_uuid.to_string()),
            ("type", order_type.to_string()),
        ];
        query.extend(
            IN_FLIGHT_ORDER_STATES
                .iter()
                .map(|s| ("state", s.to_string())),
        );
        let orders = self.target.list("marketplace-orders/", &query)?;
        if orders.len() > 1 {
            log::warn!(
                "{} in-flight {order_type} orders for target resource {resource_uuid}; following the first",
                orders.len()
            );
        }
        Ok(orders.into_iter().next())
    }

    /// `POST marketplace-resources/<uuid>/<action>/`, answering the order it started.
    fn resource_action(&self, resource_uuid: &str, action: &str, body: Value) -> Result<String> {
        let answer = self.target.post(
            &format!("marketplace-resources/{resource_uuid}/{action}/"),
            &body,
        )?;
        let order = uuid_field(&answer, "order_uuid");
        if order.is_empty() {
            // Whatever it started is found as the in-flight order on the next attempt.
            return Err(Error::not_ready(format!(
                "the target Waldur answered {action} without an order uuid"
            )));
        }
        Ok(dashed(&order))
    }

    /// Update: `None` when the target already has the limits; else the target Update order
    /// (an in-flight one with the same limits is adopted; a different one must finish first).
    pub(crate) fn submit_limits(
        &self,
        backend_id: &str,
        limits: &Limits,
    ) -> Result<Option<String>> {
        let wanted = self.target_limits(limits);
        let Some(resource) = self.target_resource(backend_id)? else {
            return Err(Error::backend(format!(
                "resource {backend_id} does not exist on the target Waldur"
            )));
        };
        let current = target_limits_of(&resource);
        if !wanted.is_empty() && wanted.iter().all(|(k, v)| current.get(k) == Some(v)) {
            log::info!("target resource {backend_id} has the limits already");
            return Ok(None);
        }
        let resource_uuid = checked_uuid(backend_id, "resource backend id")?;
        match field(&resource, "state") {
            "Updating" => {
                let order = self.in_flight_order(&resource_uuid, "Update")?;
                match order {
                    Some(order) if target_limits_of(&order) == wanted => {
                        log::info!(
                            "adopting the target's in-flight update {} of {backend_id}",
                            field(&order, "uuid")
                        );
                        Ok(Some(dashed(&uuid_field(&order, "uuid"))))
                    }
                    _ => Err(Error::not_ready(format!(
                        "target resource {backend_id} is being updated with other limits; \
                         the update waits for that to finish"
                    ))),
                }
            }
            "OK" | "Erred" => {
                let order = self.resource_action(
                    &resource_uuid,
                    "update_limits",
                    json!({ "limits": wanted }),
                )?;
                log::info!("target update order {order} submitted for {backend_id}");
                Ok(Some(order))
            }
            state => Err(Error::not_ready(format!(
                "target resource {backend_id} is {state}; its limits change once it is OK"
            ))),
        }
    }

    /// Terminate (reference `delete_resource`): `None` when there is nothing left to
    /// terminate, else the target Terminate order (an in-flight one is adopted).
    pub(crate) fn submit_terminate(&self, resource: &WaldurResource) -> Result<Option<String>> {
        let backend_id = resource.backend_id.trim();
        if backend_id.is_empty() {
            log::warn!(
                "resource {} has no backend id; nothing to terminate",
                resource.uuid
            );
            return Ok(None);
        }
        let Some(target) = self.target_resource(backend_id)? else {
            log::warn!("resource {backend_id} is not on the target Waldur; nothing to terminate");
            return Ok(None);
        };
        let resource_uuid = checked_uuid(backend_id, "resource backend id")?;
        match field(&target, "state") {
            "Terminated" => {
                log::info!("target resource {backend_id} is terminated already");
                Ok(None)
            }
            "Terminating" => match self.in_flight_order(&resource_uuid, "Terminate")? {
                Some(order) => {
                    log::info!("adopting the target's in-flight termination {}", field(&order, "uuid"));
                    Ok(Some(dashed(&uuid_field(&order, "uuid"))))
                }
                None => Err(Error::backend(format!(
                    "target resource {backend_id} is Terminating but has no in-flight Terminate order"
                ))),
            },
            "Creating" | "Updating" => Err(Error::not_ready(format!(
                "target resource {backend_id} is {}; it can be terminated once that finishes",
                field(&target, "state")
            ))),
            "OK" | "Erred" => {
                let order = self.resource_action(&resource_uuid, "terminate", json!({}))?;
                log::info!("target termination {order} submitted for {backend_id}");
                Ok(Some(order))
            }
            state => Err(Error::backend(format!(
                "target resource {backend_id} is in an unexpected state {state:?}"
            ))),
        }
    }
}

/// The integer limits of a target resource or order.
pub(crate) fn target_limits_of(object: &Value) -> BackendLimits {
    object
        .get("limits")
        .and_then(Value::as_object)
        .map(|limits| {
            limits
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?.trunc() as i64)))
                .collect()
        })
        .unwrap_or_default()
}
