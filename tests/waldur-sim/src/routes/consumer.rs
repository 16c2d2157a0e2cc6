//! What a Waldur consumer (a project member who orders) does with the marketplace: orders a
//! resource, changes its limits, terminates it, sets its end date, reads the public
//! offering's plans. The orders it places start in `consumer_orders.initial_state` and may
//! finish by themselves ([`lifecycle::schedule_completion`]). Also the two provider-side
//! resource setters the federation uses on its source Waldur (`set_end_date`,
//! `set_effective_id`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{
    body_json, created, date_field, field_error, id_in_url, ok, path_id, status_ok, ApiError,
    ApiResult,
};
use crate::app::App;
use crate::scenario::OrderSpec;
use crate::store::{now, Store};
use crate::{lifecycle, render};

const R: &str = "/api/marketplace-resources";
const PROVIDER: &str = "/api/marketplace-provider-resources";

pub fn router() -> Router<App> {
    Router::new()
        .route(&format!("{R}/{{uuid}}/"), get(super::resources::retrieve))
        .route(&format!("{R}/{{uuid}}/team/"), get(super::resources::team))
        .route(&format!("{R}/{{uuid}}/update_limits/"), post(update_limits))
        .route(&format!("{R}/{{uuid}}/terminate/"), post(terminate))
        .route(&format!("{R}/{{uuid}}/set_end_date/"), post(set_end_date))
        .route(
            &format!("{PROVIDER}/{{uuid}}/set_end_date/"),
            post(set_end_date),
        )
        .route(
            &format!("{PROVIDER}/{{uuid}}/set_effective_id/"),
            post(set_effective_id),
        )
        .route(
            "/api/marketplace-public-offerings/{uuid}/",
            get(super::registry::offering),
        )
        .route(
            "/api/marketplace-public-offerings/{uuid}/plans/",
            get(public_plans),
        )
}

/// The limits of an order body: an object whose every key is a component of the offering.
fn checked_limits(
    st: &Store,
    offering: &str,
    body: &Value,
) -> Result<Map<String, Value>, ApiError> {
    let limits = match body.get("limits") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(field_error("limits", "Expected a dictionary of items.")),
    };
    let components = &st.offerings[offering].components;
    if let Some(unknown) = limits
        .keys()
        .find(|k| !components.iter().any(|c| &c.type_ == *k))
    {
        return Err(field_error(
            "limits",
            &format!("Unknown component {unknown}."),
        ));
    }
    Ok(limits)
}

/// An object field of the body (`{}` when absent).
fn object_or_empty(body: &Value, key: &str) -> Result<Map<String, Value>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(field_error(key, "Expected a dictionary of items.")),
    }
}

/// The hyperlinked object of field `key` (one of `collections`), which must be in `map`.
fn linked<T>(
    body: &Value,
    key: &str,
    collections: &[&str],
    map: &std::collections::BTreeMap<String, T>,
) -> Result<String, ApiError> {
    let link = body
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| field_error(key, "This field is required."))?;
    id_in_url(link, collections)
        .filter(|id| map.contains_key(id))
        .ok_or_else(|| field_error(key, "Invalid hyperlink - Object does not exist."))
}

/// Adds the order (as Mastermind does when a consumer orders), publishes it and arms its
/// auto-completion; answers its id.
fn place(
    app: &App,
    st: &mut Store,
    mut spec: OrderSpec,
) -> Result<(String, lifecycle::OrderEvent), ApiError> {
    spec.state = Some(
        st.consumer_orders
            .initial_state
            .clone()
            .unwrap_or_else(|| "pending-provider".into()),
    );
    let id = st
        .load_order(&spec, &now())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    lifecycle::schedule_completion(app, &st.consumer_orders, &id);
    Ok((id.clone(), lifecycle::OrderEvent::of(&st.orders[&id])))
}

/// `POST /api/marketplace-orders/`: a Create order and its new resource in `Creating`.
pub async fn create_order(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let order_type = body.get("type").and_then(Value::as_str).unwrap_or("Create");
    if order_type != "Create" {
        return Err(field_error(
            "type",
            "Only Create orders are placed here; use update_limits or terminate.",
        ));
    }
    let (event, rendered) = {
        let mut st = app.store();
        let offering = linked(
            &body,
            "offering",
            &[
                "marketplace-public-offerings",
                "marketplace-provider-offerings",
            ],
            &st.offerings,
        )?;
        let project = linked(&body, "project", &["projects"], &st.projects)?;
        let plan = match body.get("plan").and_then(Value::as_str) {
            None => None,
            Some(_) => {
                let plan = linked(&body, "plan", &["plans", "marketplace-plans"], &st.plans)?;
                if st.plans[&plan].offering_uuid != offering {
                    return Err(field_error("plan", "This plan is not of the offering."));
                }
                Some(plan)
            }
        };
        let limits = checked_limits(&st, &offering, &body)?;
        let attributes = object_or_empty(&body, "attributes")?;
        let name = attributes
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| field_error("attributes", "name is required."))?
            .to_string();
        let spec = OrderSpec {
            type_: Some("Create".into()),
            offering: Some(offering),
            project: Some(project),
            resource_name: Some(name),
            limits,
            attributes,
            plan,
            ..Default::default()
        };
        let (id, event) = place(&app, &mut st, spec)?;
        (event, render::order(&st, &app.base, &st.orders[&id]))
    };
    event.publish(&app);
    created(rendered)
}

/// Places an Update or Terminate order on a resource whose state `allowed` accepts.
fn order_on_resource(
    app: &App,
    raw: &str,
    allowed: &[&str],
    make: impl FnOnce(&Store, &str, &str) -> Result<OrderSpec, ApiError>,
) -> ApiResult {
    let id = path_id(raw)?;
    let (order, event) = {
        let mut st = app.store();
        let r = st.resources.get(&id).ok_or_else(ApiError::not_found)?;
        if !allowed.contains(&r.state.as_str()) {
            return Err(ApiError::conflict(format!(
                "Resource is not in {} state.",
                allowed.join(" or ")
            )));
        }
        let offering = r.offering_uuid.clone();
        let spec = make(&st, &id, &offering)?;
        place(app, &mut st, spec)?
    };
    event.publish(app);
    ok(json!({ "order_uuid": order }))
}

/// `{limits}` -> an Update order; the resource goes `Updating` (only from OK).
async fn update_limits(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    order_on_resource(&app, &u, &["OK"], |st, resource, offering| {
        let limits = checked_limits(st, offering, &body)?;
        if limits.is_empty() {
            return Err(field_error("limits", "This field is required."));
        }
        Ok(OrderSpec {
            type_: Some("Update".into()),
            resource: Some(resource.to_string()),
            limits,
            ..Default::default()
        })
    })
}

/// `{}` or `{attributes}` -> a Terminate order; the resource goes `Terminating` (from OK or
/// Erred).
async fn terminate(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    order_on_resource(&app, &u, &["OK", "Erred"], |_, resource, _| {
        Ok(OrderSpec {
            type_: Some("Terminate".into()),
            resource: Some(resource.to_string()),
            attributes: object_or_empty(&body, "attributes")?,
            ..Default::default()
        })
    })
}

/// `{end_date}` (YYYY-MM-DD or null): a change is stamped and published as a `resource`
/// event `{action: "end_date_updated", resource_uuid, end_date}`.
async fn set_end_date(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let id = path_id(&u)?;
    let end_date = date_field(&body_json(&body)?, "end_date")?;
    let event = {
        let mut st = app.store();
        let requested_by = render::user_me(&st, &app.base)["url"].clone();
        let r = st.resources.get_mut(&id).ok_or_else(ApiError::not_found)?;
        let changed = r.end_date != end_date;
        r.end_date = end_date.clone();
        r.end_date_updated_at = Some(now());
        r.end_date_requested_by = requested_by.as_str().map(str::to_string);
        r.modified = now();
        changed.then(|| r.offering_uuid.clone())
    };
    if let Some(offering) = event {
        app.publish_event(
            &offering,
            "resource",
            json!({"action": "end_date_updated", "resource_uuid": id, "end_date": end_date}),
        );
    }
    status_ok()
}

async fn set_effective_id(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let effective_id = body
        .get("effective_id")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("effective_id", "This field is required."))?
        .to_string();
    let mut st = app.store();
    let r = st.resources.get_mut(&id).ok_or_else(ApiError::not_found)?;
    r.effective_id = effective_id;
    r.modified = now();
    status_ok()
}

/// The offering's plans (not paginated here, as the public offering's `plans` action).
async fn public_plans(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    if !st.offerings.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    let plans: Vec<Value> = st
        .plans
        .values()
        .filter(|p| p.offering_uuid == id)
        .map(|p| render::public_plan(&app.base, p))
        .collect();
    ok(Value::Array(plans))
}
