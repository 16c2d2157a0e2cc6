//! Usage reporting (C1–C6). Mastermind keeps one `ComponentUsage` per (resource, component
//! type, billing period): `set_usage` upserts it, so re-reporting the same numbers changes
//! nothing but the amount and `modified`. User usages are upserted per (component usage,
//! username) the same way.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::{body_json, created, field_error, paginate, path_id, ApiError, ApiResult, Params};
use crate::app::App;
use crate::store::{billing_period_of, decimal_string, now, ComponentUsage, Store, UserUsage};
use crate::{ids, render};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/marketplace-component-usages/", get(list_usages))
        .route(
            "/api/marketplace-component-usages/set_usage/",
            post(set_usage),
        )
        .route(
            "/api/marketplace-component-usages/{uuid}/set_user_usages/",
            post(set_user_usages),
        )
        .route(
            "/api/marketplace-component-usages/{uuid}/set_user_usage/",
            post(set_user_usage),
        )
        .route(
            "/api/marketplace-component-user-usages/",
            get(list_user_usages),
        )
        .route("/api/component-user-usage-limits/", get(list_limits))
}

fn period_filter(params: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match params.get(key) {
        None | Some("") => Ok(None),
        Some(v) => billing_period_of(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{key}: enter a valid date"))),
    }
}

async fn list_usages(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let resource = params.uuid("resource_uuid")?;
    let period = period_filter(&params, "billing_period")?;
    let types = params.set("type");
    let st = app.store();
    let pick = |u: &&ComponentUsage| {
        period.as_ref().is_none_or(|p| *p == u.billing_period)
            && types.as_ref().is_none_or(|t| t.contains(&u.type_.as_str()))
    };
    let items: Vec<&ComponentUsage> = match &resource {
        Some(r) => st.usages_of_resource(r).filter(pick).collect(),
        None => st.component_usages.values().filter(pick).collect(),
    };
    paginate(&app, uri.path(), &params, items, |u| {
        render::component_usage(&st, &app.base, u)
    })
}

async fn list_user_usages(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let resource = params.uuid("resource_uuid")?;
    // Mastermind's filter set knows both spellings.
    let period = match period_filter(&params, "component_usage__billing_period")? {
        Some(p) => Some(p),
        None => period_filter(&params, "component_usage_billing_period")?,
    };
    let component_usage = params.uuid("component_usage_uuid")?;
    let st = app.store();
    let usages: HashSet<&str> = match &resource {
        Some(r) => st.usages_of_resource(r).map(|u| u.uuid.as_str()).collect(),
        None => st.component_usages.keys().map(String::as_str).collect(),
    };
    let items: Vec<&UserUsage> = st
        .user_usages
        .values()
        .filter(|uu| usages.contains(uu.component_usage_uuid.as_str()))
        .filter(|uu| {
            component_usage
                .as_ref()
                .is_none_or(|c| *c == uu.component_usage_uuid)
        })
        .filter(|uu| {
            period.as_ref().is_none_or(|p| {
                st.component_usages
                    .get(&uu.component_usage_uuid)
                    .is_some_and(|c| c.billing_period == *p)
            })
        })
        .collect();
    paginate(&app, uri.path(), &params, items, |u| {
        render::user_usage(&st, &app.base, u)
    })
}

async fn list_limits(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let resource = params.uuid("resource_uuid")?;
    let st = app.store();
    let items: Vec<_> = st
        .component_user_usage_limits
        .values()
        .filter(|l| resource.as_ref().is_none_or(|r| *r == l.resource_uuid))
        .collect();
    paginate(&app, uri.path(), &params, items, |l| {
        render::user_usage_limit(&st, &app.base, l)
    })
}

/// The report date: the agent sends an ISO datetime; absent means now.
fn report_date(body: &Value) -> Result<(String, String), ApiError> {
    let date = match body.get("date").and_then(Value::as_str) {
        Some(d) => d.to_string(),
        None => now(),
    };
    let period =
        billing_period_of(&date).ok_or_else(|| field_error("date", "Enter a valid date/time."))?;
    Ok((date, period))
}

/// C3: `{usages: [{type, amount}], resource, date}` -> 201. Every type must be a component of
/// the resource's offering, and the whole call is validated before anything is stored.
async fn set_usage(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let resource = body
        .get("resource")
        .and_then(Value::as_str)
        .and_then(ids::normalize)
        .ok_or_else(|| field_error("resource", "This field is required."))?;
    let (date, period) = report_date(&body)?;
    let items = body
        .get("usages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_error("usages", "This field is required."))?;
    let mut st = app.store();
    let offering = st
        .resources
        .get(&resource)
        .map(|r| r.offering_uuid.clone())
        .ok_or_else(|| field_error("resource", "Object does not exist."))?;
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let type_ = item.get("type").and_then(Value::as_str).unwrap_or("");
        let known = st.offerings[&offering]
            .components
            .iter()
            .any(|c| c.type_ == type_);
        if !known {
            return Err(ApiError::bad_request(format!(
                "Component type '{type_}' is not found in the offering."
            )));
        }
        let amount = decimal_string(item.get("amount").unwrap_or(&Value::Null))
            .map_err(|e| field_error("amount", &e))?;
        parsed.push((type_.to_string(), amount));
    }
    let ts = now();
    let mut out = Vec::new();
    for (type_, amount) in parsed {
        let (uuid, created_at) = match st.find_usage(&resource, &type_, &period) {
            Some(u) => (u.uuid.clone(), u.created.clone()),
            None => (ids::generate(), ts.clone()),
        };
        out.push(json!({"uuid": uuid, "type": type_, "amount": amount}));
        st.insert_usage(ComponentUsage {
            uuid,
            resource_uuid: resource.clone(),
            type_,
            usage: amount,
            billing_period: period.clone(),
            date: date.clone(),
            created: created_at,
            modified: ts.clone(),
        });
    }
    created(json!({"resource": resource, "date": date, "usages": out}))
}

/// Upserts one user usage under a component usage; returns its id.
fn upsert_user_usage(st: &mut Store, cu: &str, item: &Value) -> Result<String, ApiError> {
    let username = item
        .get("username")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| field_error("username", "This field is required."))?
        .to_string();
    let usage = decimal_string(item.get("usage").unwrap_or(&Value::Null))
        .map_err(|e| field_error("usage", &e))?;
    let date = item
        .get("date")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| st.component_usages[cu].date.clone());
    let user = item.get("user").and_then(Value::as_str).map(str::to_string);
    let ts = now();
    let existing = st
        .user_usages
        .values()
        .find(|u| u.component_usage_uuid == cu && u.username == username)
        .map(|u| (u.uuid.clone(), u.created.clone()));
    let (uuid, created_at) = existing.unwrap_or_else(|| (ids::generate(), ts.clone()));
    st.user_usages.insert(
        uuid.clone(),
        UserUsage {
            uuid: uuid.clone(),
            component_usage_uuid: cu.to_string(),
            username,
            usage,
            date,
            user,
            created: created_at,
            modified: ts,
        },
    );
    Ok(uuid)
}

/// C4: `{usages: [{username, usage, date, user?}]}` -> 201.
async fn set_user_usages(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let cu = path_id(&u)?;
    let body = body_json(&body)?;
    let items = body
        .get("usages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_error("usages", "This field is required."))?;
    let mut st = app.store();
    if !st.component_usages.contains_key(&cu) {
        return Err(ApiError::not_found());
    }
    let mut out = Vec::new();
    for item in items {
        out.push(upsert_user_usage(&mut st, &cu, item)?);
    }
    created(json!({"component_usage": cu, "user_usages": out}))
}

/// C5: one `{username, usage, date, user?}` -> 201.
async fn set_user_usage(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let cu = path_id(&u)?;
    let body = body_json(&body)?;
    let mut st = app.store();
    if !st.component_usages.contains_key(&cu) {
        return Err(ApiError::not_found());
    }
    let id = upsert_user_usage(&mut st, &cu, &body)?;
    created(json!({"component_usage": cu, "uuid": id}))
}

/// A usage a test adds (`POST /__sim/component-usages`): without `username` the resource's
/// component usage of that type and period; with one, that user's usage under it (the
/// component usage is made, at 0, when missing).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UsageSeed {
    pub resource_uuid: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub usage: Value,
    /// `YYYY-MM-DD` (any day; the period is its month).
    pub billing_period: String,
    pub username: Option<String>,
}

/// Adds or replaces the usage; answers the id of the component or user usage.
pub fn add_usage(st: &mut Store, seed: &UsageSeed) -> Result<String, String> {
    let resource = ids::parse(&seed.resource_uuid, "resource_uuid")?;
    if !st.resources.contains_key(&resource) {
        return Err(format!("no resource {resource}"));
    }
    let period = billing_period_of(&seed.billing_period)
        .ok_or_else(|| format!("billing_period {:?} is not a date", seed.billing_period))?;
    let usage = decimal_string(&seed.usage)?;
    let ts = now();
    let existing = st
        .find_usage(&resource, &seed.type_, &period)
        .map(|u| (u.uuid.clone(), u.created.clone(), u.usage.clone()));
    let (uuid, created_at, total) =
        existing.unwrap_or_else(|| (ids::generate(), ts.clone(), "0".into()));
    let total = if seed.username.is_some() {
        total
    } else {
        usage.clone()
    };
    st.insert_usage(ComponentUsage {
        uuid: uuid.clone(),
        resource_uuid: resource,
        type_: seed.type_.clone(),
        usage: total,
        date: format!("{period}T00:00:00Z"),
        billing_period: period,
        created: created_at,
        modified: ts,
    });
    match &seed.username {
        None => Ok(uuid),
        Some(username) => {
            upsert_user_usage(st, &uuid, &json!({"username": username, "usage": usage}))
                .map_err(|e| e.1.to_string())
        }
    }
}
