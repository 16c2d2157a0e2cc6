//! `load-components` (reference `waldur_site_load_components`): the offering's Waldur
//! components follow `backend_components`. A type Waldur lacks is created (B9); an existing one
//! is updated (B10, with its uuid). `unit_factor` stays local.

use serde_json::Value;
use waldur_plugin_abi::wire::{AccountingType, BackendComponent, JsonMap, WALDUR_COMPONENT_FIELDS};

use super::{client, each_offering, one_line, ToolOutcome, ToolReport};
use crate::modes::runtime::Agent;

/// What `load-components` did for one offering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentsSummary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    /// (component type, one-line error).
    pub failed: Vec<(String, String)>,
}

/// The B9 body of a configured component: `{billing_type, type, name, measured_unit,
/// limit_amount, <optional fields that are set>}`; `accounting_type: one` implies
/// `is_prepaid: true` unless configured otherwise.
pub fn component_body(component_type: &str, component: &BackendComponent) -> JsonMap {
    let billing = match component.accounting_type {
        AccountingType::Usage => "usage",
        AccountingType::Limit => "limit",
        AccountingType::One => "one",
    };
    let mut body = JsonMap::new();
    body.insert("billing_type".into(), billing.into());
    body.insert("type".into(), component_type.into());
    body.insert("name".into(), component.label.clone().into());
    body.insert(
        "measured_unit".into(),
        component.measured_unit.clone().into(),
    );
    body.insert(
        "limit_amount".into(),
        component.limit.map_or(Value::Null, Value::from),
    );
    for key in WALDUR_COMPONENT_FIELDS {
        if let Some(value) = component.extra.get(*key).filter(|v| !v.is_null()) {
            body.insert((*key).into(), value.clone());
        }
    }
    if component.accounting_type == AccountingType::One && !body.contains_key("is_prepaid") {
        body.insert("is_prepaid".into(), true.into());
    }
    body
}

/// Creates or updates every configured component of every offering.
pub async fn load_components(agent: &Agent) -> ToolReport<ComponentsSummary> {
    each_offering(agent, |offering| async move {
        if offering.backend_components.is_empty() {
            return ToolOutcome::Skipped("no backend_components configured".into());
        }
        let client = match client(agent, offering, "load_components") {
            Ok(c) => c,
            Err(e) => return ToolOutcome::Failed(e),
        };
        let remote = match client
            .provider_offering(&offering.waldur_offering_uuid, &["components"])
            .await
        {
            Ok(o) => o.components,
            Err(e) => return ToolOutcome::Failed(e.into()),
        };
        let mut summary = ComponentsSummary::default();
        for (kind, component) in &offering.backend_components {
            let mut body = component_body(kind, component);
            let existing = remote.iter().find(|c| &c.component_type == kind);
            let result = match existing {
                Some(existing) => {
                    body.insert("uuid".into(), existing.uuid.clone().into());
                    if !body.contains_key("limit_period") {
                        if let Some(period) = &existing.limit_period {
                            body.insert("limit_period".into(), period.clone().into());
                        }
                    }
                    client
                        .update_offering_component(&offering.waldur_offering_uuid, &body)
                        .await
                        .map(|()| summary.updated.push(kind.clone()))
                }
                None => client
                    .create_offering_component(&offering.waldur_offering_uuid, &body)
                    .await
                    .map(|()| summary.created.push(kind.clone())),
            };
            if let Err(e) = result {
                tracing::error!(offering = %offering.name, component = %kind, "{e}");
                summary.failed.push((kind.clone(), one_line(&e)));
            }
        }
        ToolOutcome::Done(summary)
    })
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_follow_the_reference_and_never_carry_unit_factor() {
        let component: BackendComponent = serde_json::from_value(json!({
            "measured_unit": "Hours", "accounting_type": "limit", "label": "CPU",
            "unit_factor": 60, "limit": 100, "description": "cores",
            "max_value": 10, "default_limit": null,
            "target_components": {"x": {"factor": 2}},
        }))
        .unwrap();
        let body = component_body("cpu", &component);
        assert_eq!(
            Value::Object(body),
            json!({"billing_type": "limit", "type": "cpu", "name": "CPU",
                   "measured_unit": "Hours", "limit_amount": 100.0,
                   "description": "cores", "max_value": 10})
        );
        let one: BackendComponent = serde_json::from_value(json!({
            "measured_unit": "x", "accounting_type": "one", "label": "Setup",
        }))
        .unwrap();
        let body = component_body("setup", &one);
        assert_eq!(body["is_prepaid"], json!(true));
        assert_eq!(body["limit_amount"], Value::Null);
    }
}
