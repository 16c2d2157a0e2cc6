//! Agent registry (A1–A5) and the offering context every processor loads at start-up
//! (B1–B5, B7–B11, B13).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{body_json, created, field_error, ok, paginate, path_id, ApiError, ApiResult, Params};
use crate::app::App;
use crate::store::{now, AgentService, Component, Identity, Processor};
use crate::{ids, render};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/version/", get(version))
        .route("/api/users/me/", get(users_me))
        .route("/api/marketplace-provider-offerings/{uuid}/", get(offering))
        .route(
            "/api/marketplace-provider-offerings/{uuid}/user-attribute-config/",
            get(attribute_config),
        )
        .route(
            "/api/marketplace-provider-offerings/{uuid}/list_project_service_accounts/",
            get(service_accounts),
        )
        .route(
            "/api/marketplace-provider-offerings/{uuid}/list_course_accounts/",
            get(course_accounts),
        )
        .route(
            "/api/marketplace-service-providers/",
            get(service_providers),
        )
        .route(
            "/api/marketplace-service-providers/{uuid}/keys/",
            get(sp_keys),
        )
        .route(
            "/api/marketplace-service-providers/{uuid}/projects/",
            get(sp_projects),
        )
        .route(
            "/api/marketplace-provider-offerings/{uuid}/create_offering_component/",
            post(create_offering_component),
        )
        .route(
            "/api/marketplace-provider-offerings/{uuid}/update_offering_component/",
            post(update_offering_component),
        )
        .route(
            "/api/marketplace-provider-offerings/{uuid}/check_unique_backend_id/",
            post(check_unique_backend_id),
        )
        .route("/api/marketplace-plans/{uuid}/", get(plan))
        .route("/api/marketplace-site-agent-logs/", post(agent_logs))
        .route(
            "/api/marketplace-site-agent-identities/",
            get(list_identities).post(create_identity),
        )
        .route(
            "/api/marketplace-site-agent-identities/{uuid}/",
            get(get_identity)
                .put(update_identity)
                .patch(update_identity),
        )
        .route(
            "/api/marketplace-site-agent-identities/{uuid}/register_service/",
            post(register_service),
        )
        .route(
            "/api/marketplace-site-agent-services/{uuid}/register_processor/",
            post(register_processor),
        )
}

async fn version(State(app): State<App>) -> ApiResult {
    ok(render::version(&app.store()))
}

async fn users_me(State(app): State<App>) -> ApiResult {
    ok(render::user_me(&app.store(), &app.base))
}

pub(crate) async fn offering(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let o = st.offerings.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::offering(&st, &app.base, o))
}

async fn attribute_config(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let o = st.offerings.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::attribute_config(o))
}

/// Service and course accounts are not modelled: the offering exists, the list is empty.
async fn service_accounts(
    State(app): State<App>,
    Path(u): Path<String>,
    uri: Uri,
    params: Params,
) -> ApiResult {
    offering_accounts(&app, &u, &uri, &params, |st| &st.service_accounts)
}

async fn course_accounts(
    State(app): State<App>,
    Path(u): Path<String>,
    uri: Uri,
    params: Params,
) -> ApiResult {
    offering_accounts(&app, &u, &uri, &params, |st| &st.course_accounts)
}

/// The accounts of the projects that have a resource of the offering.
fn offering_accounts(
    app: &App,
    u: &str,
    uri: &Uri,
    params: &Params,
    accounts: impl Fn(&crate::store::Store) -> &Vec<Value>,
) -> ApiResult {
    let id = path_id(u)?;
    let st = app.store();
    if !st.offerings.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    let projects: std::collections::BTreeSet<&str> = st
        .resources
        .values()
        .filter(|r| r.offering_uuid == id)
        .map(|r| r.project_uuid.as_str())
        .collect();
    let listed: Vec<Value> = accounts(&st)
        .iter()
        .filter(|a| {
            a["project_uuid"]
                .as_str()
                .and_then(ids::normalize)
                .is_some_and(|p| projects.contains(p.as_str()))
        })
        .cloned()
        .collect();
    paginate(app, uri.path(), params, listed, Clone::clone)
}

async fn service_providers(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let customer = params.uuid("customer_uuid")?;
    let items: Vec<Value> = {
        let st = app.store();
        st.customers
            .values()
            .filter(|c| customer.as_ref().is_none_or(|x| *x == c.uuid))
            .map(|c| render::service_provider(&app.base, c))
            .collect()
    };
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

async fn sp_keys(
    State(app): State<App>,
    Path(u): Path<String>,
    uri: Uri,
    params: Params,
) -> ApiResult {
    let sp = path_id(&u)?;
    let items: Vec<Value> = {
        let st = app.store();
        if st.customer_by_service_provider(&sp).is_none() {
            return Err(ApiError::not_found());
        }
        st.ssh_keys
            .values()
            .filter(|k| k.service_provider_uuid == sp)
            .map(|k| render::ssh_key(&app.base, k))
            .collect()
    };
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

/// B12: the projects with a resource of one of the service provider's offerings; `query`
/// matches a project's uuid (any form) or a part of its name, as Mastermind's search.
async fn sp_projects(
    State(app): State<App>,
    Path(u): Path<String>,
    uri: Uri,
    params: Params,
) -> ApiResult {
    let sp = path_id(&u)?;
    let query = params.get("query").unwrap_or("").to_string();
    let wanted = ids::normalize(&query);
    let items: Vec<Value> = {
        let st = app.store();
        let Some(customer) = st.customer_by_service_provider(&sp) else {
            return Err(ApiError::not_found());
        };
        let customer = customer.uuid.clone();
        let projects: std::collections::BTreeSet<&str> = st
            .resources
            .values()
            .filter(|r| {
                st.offerings
                    .get(&r.offering_uuid)
                    .is_some_and(|o| o.customer_uuid == customer)
            })
            .map(|r| r.project_uuid.as_str())
            .collect();
        st.projects
            .values()
            .filter(|p| projects.contains(p.uuid.as_str()))
            .filter(|p| match &wanted {
                Some(uuid) => *uuid == p.uuid,
                None => query.is_empty() || p.name.contains(&query),
            })
            .map(|p| render::provider_project(&app.base, p))
            .collect()
    };
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

/// Applies the writable `OfferingComponentRequest` fields the store keeps. `type`, `name` and
/// `billing_type` are required (as Mastermind's serializer requires them).
fn apply_component(c: &mut Component, body: &Value) -> Result<(), ApiError> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    for key in ["type", "name", "billing_type"] {
        if text(key).is_none_or(|v| v.is_empty()) {
            return Err(field_error(key, "This field is required."));
        }
    }
    let billing = text("billing_type").unwrap_or_default();
    if !["fixed", "usage", "limit", "one", "few"].contains(&billing.as_str()) {
        return Err(field_error(
            "billing_type",
            &format!("\"{billing}\" is not a valid choice."),
        ));
    }
    c.type_ = text("type").unwrap_or_default();
    c.name = text("name").unwrap_or_default();
    c.billing_type = billing;
    c.measured_unit = text("measured_unit").unwrap_or_default();
    c.limit_amount = body.get("limit_amount").and_then(Value::as_f64);
    if let Some(period) = body.get("limit_period") {
        c.limit_period = period.as_str().map(str::to_string);
    }
    Ok(())
}

/// B9: adds a component to the offering; 201 with the component. A type the offering already
/// has is a 400.
/// B6: `{backend_id, check_all_offerings}` -> `{is_unique}`: no resource of this offering (of
/// any offering with `check_all_offerings`) has that backend id.
async fn check_unique_backend_id(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let backend_id = body
        .get("backend_id")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| field_error("backend_id", "This field is required."))?;
    let all = body
        .get("check_all_offerings")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let st = app.store();
    if !st.offerings.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    let taken = st
        .resources
        .values()
        .any(|r| r.backend_id == backend_id && (all || r.offering_uuid == id));
    ok(json!({ "is_unique": !taken }))
}

async fn create_offering_component(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let mut st = app.store();
    let offering = st.offerings.get_mut(&id).ok_or_else(ApiError::not_found)?;
    let mut component = Component {
        uuid: ids::generate(),
        type_: String::new(),
        name: String::new(),
        measured_unit: String::new(),
        billing_type: String::new(),
        limit_amount: None,
        limit_period: None,
        unit_factor: 1,
    };
    apply_component(&mut component, &body)?;
    if offering
        .components
        .iter()
        .any(|c| c.type_ == component.type_)
    {
        return Err(field_error(
            "type",
            "Offering component with this type already exists.",
        ));
    }
    let rendered = render::component(&component);
    offering.components.push(component);
    created(rendered)
}

/// B10: updates the offering's component named by `uuid` in the body; 200.
async fn update_offering_component(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let target = body
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(ids::normalize)
        .ok_or_else(|| field_error("uuid", "This field is required."))?;
    let mut st = app.store();
    let offering = st.offerings.get_mut(&id).ok_or_else(ApiError::not_found)?;
    let index = offering
        .components
        .iter()
        .position(|c| c.uuid == target)
        .ok_or_else(ApiError::not_found)?;
    let mut component = offering.components[index].clone();
    apply_component(&mut component, &body)?;
    if offering
        .components
        .iter()
        .any(|c| c.uuid != target && c.type_ == component.type_)
    {
        return Err(field_error(
            "type",
            "Offering component with this type already exists.",
        ));
    }
    let rendered = render::component(&component);
    offering.components[index] = component;
    ok(rendered)
}

async fn plan(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let p = st.plans.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::plan(&app.base, p))
}

async fn list_identities(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let name = params.get("name").map(str::to_string);
    let offering = params.uuid("offering_uuid")?;
    let items: Vec<Value> = {
        let st = app.store();
        st.identities
            .values()
            .filter(|i| name.as_ref().is_none_or(|n| *n == i.name))
            .filter(|i| offering.as_ref().is_none_or(|o| *o == i.offering))
            .map(|i| render::identity(&st, &app.base, i))
            .collect()
    };
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

/// What Mastermind's `AgentIdentitySerializer` refuses besides the name and the offering:
/// a `version` over 100 characters (the model's `max_length`) and a dependency without a
/// non-blank `package` and `version` (`AgentDependencySerializer`, two `CharField`s). It
/// accepts any version string otherwise: the version is only compared, later and for the
/// operator, by Mastermind's STOMP contract check (`contracts.py --impact`).
fn check_identity_body(body: &Value) -> Result<(), ApiError> {
    if let Some(version) = body.get("version").and_then(Value::as_str) {
        if version.chars().count() > 100 {
            return Err(field_error(
                "version",
                "Ensure this field has no more than 100 characters.",
            ));
        }
    }
    let Some(dependencies) = body.get("dependencies") else {
        return Ok(());
    };
    let Some(dependencies) = dependencies.as_array() else {
        return Err(field_error(
            "dependencies",
            "Expected a list of items but got type \"dict\".",
        ));
    };
    for dependency in dependencies {
        for key in ["package", "version"] {
            let blank = dependency
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(|v| v.trim().is_empty());
            if blank {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    json!({"dependencies": [{ key: ["This field may not be blank."] }]}),
                ));
            }
        }
    }
    Ok(())
}

/// Validates an `AgentIdentityRequest` and returns `(name, offering hex)`.
fn identity_fields(body: &Value) -> Result<(String, String), ApiError> {
    check_identity_body(body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                json!({"name": ["This field is required."]}),
            )
        })?;
    let offering = body
        .get("offering")
        .and_then(Value::as_str)
        .and_then(ids::normalize)
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                json!({"offering": ["This field is required."]}),
            )
        })?;
    Ok((name.to_string(), offering))
}

/// POST creates the identity, or refreshes the one with the same name (registration is
/// idempotent by name, which is what the agent relies on across restarts).
async fn create_identity(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let (name, offering) = identity_fields(&body)?;
    let mut st = app.store();
    if !st.offerings.contains_key(&offering) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            json!({"offering": ["Object with uuid does not exist."]}),
        ));
    }
    let ts = now();
    let existing = st
        .identities
        .values()
        .find(|i| i.name == name)
        .map(|i| i.uuid.clone());
    let uuid = existing.unwrap_or_else(ids::generate);
    let created_at = st
        .identities
        .get(&uuid)
        .map(|i| i.created.clone())
        .unwrap_or_else(|| ts.clone());
    st.identities.insert(
        uuid.clone(),
        Identity {
            uuid: uuid.clone(),
            name,
            offering,
            body,
            created: created_at,
            modified: ts,
        },
    );
    created(render::identity(&st, &app.base, &st.identities[&uuid]))
}

async fn get_identity(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let i = st.identities.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::identity(&st, &app.base, i))
}

async fn update_identity(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    check_identity_body(&body)?;
    let mut st = app.store();
    let ident = st.identities.get_mut(&id).ok_or_else(ApiError::not_found)?;
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        ident.name = name.to_string();
    }
    if let Some(off) = body
        .get("offering")
        .and_then(Value::as_str)
        .and_then(ids::normalize)
    {
        ident.offering = off;
    }
    if let (Some(old), Some(new)) = (ident.body.as_object_mut(), body.as_object()) {
        for (k, v) in new {
            old.insert(k.clone(), v.clone());
        }
    }
    ident.modified = now();
    ok(render::identity(&st, &app.base, &st.identities[&id]))
}

fn required_str<'a>(body: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                json!({key: ["This field is required."]}),
            )
        })
}

/// 201 for a new service, 200 when the identity already had one with this name.
async fn register_service(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let identity = path_id(&u)?;
    let body = body_json(&body)?;
    let name = required_str(&body, "name")?.to_string();
    let mode = body
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut st = app.store();
    if !st.identities.contains_key(&identity) {
        return Err(ApiError::not_found());
    }
    let ts = now();
    let existing = st
        .services
        .values()
        .find(|s| s.identity_uuid == identity && s.name == name)
        .map(|s| s.uuid.clone());
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let uuid = existing.unwrap_or_else(ids::generate);
    let created_at = st
        .services
        .get(&uuid)
        .map(|s| s.created.clone())
        .unwrap_or_else(|| ts.clone());
    st.services.insert(
        uuid.clone(),
        AgentService {
            uuid: uuid.clone(),
            identity_uuid: identity,
            name,
            mode,
            state: "Active".into(),
            created: created_at,
            modified: ts,
        },
    );
    Ok((
        status,
        Json(render::service(&st, &app.base, &st.services[&uuid])),
    )
        .into_response())
}

async fn register_processor(
    State(app): State<App>,
    Path(u): Path<String>,
    body: Bytes,
) -> ApiResult {
    let service = path_id(&u)?;
    let body = body_json(&body)?;
    let name = required_str(&body, "name")?.to_string();
    let backend_type = body
        .get("backend_type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let backend_version = body
        .get("backend_version")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut st = app.store();
    if !st.services.contains_key(&service) {
        return Err(ApiError::not_found());
    }
    let ts = now();
    let existing = st
        .processors
        .values()
        .find(|p| p.service_uuid == service && p.name == name)
        .map(|p| p.uuid.clone());
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let uuid = existing.unwrap_or_else(ids::generate);
    let created_at = st
        .processors
        .get(&uuid)
        .map(|p| p.created.clone())
        .unwrap_or_else(|| ts.clone());
    st.processors.insert(
        uuid.clone(),
        Processor {
            uuid: uuid.clone(),
            service_uuid: service,
            name,
            backend_type,
            backend_version,
            created: created_at,
            modified: ts,
        },
    );
    Ok((
        status,
        Json(render::processor(&st, &app.base, &st.processors[&uuid])),
    )
        .into_response())
}

/// A9: a JSON array of `{agent_identity_uuid, timestamp, level, message, module}`, each of a
/// registered identity; stored as sent.
async fn agent_logs(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let Some(records) = body.as_array() else {
        return Err(ApiError::bad_request("Expected a list of log records."));
    };
    let mut st = app.store();
    for (i, record) in records.iter().enumerate() {
        for key in [
            "agent_identity_uuid",
            "timestamp",
            "level",
            "message",
            "module",
        ] {
            if record.get(key).is_none() {
                return Err(ApiError::bad_request(format!("[{i}].{key}: required")));
            }
        }
        let identity = record["agent_identity_uuid"]
            .as_str()
            .and_then(ids::normalize)
            .filter(|u| st.identities.contains_key(u));
        if identity.is_none() {
            return Err(ApiError::bad_request(format!(
                "[{i}].agent_identity_uuid: Object with uuid does not exist."
            )));
        }
        if !record["timestamp"].is_number() {
            return Err(ApiError::bad_request(format!("[{i}].timestamp: a number")));
        }
    }
    st.agent_logs.extend(records.iter().cloned());
    created(json!({"created": records.len()}))
}
