//! Projects as their customer's members see and change them (B14's lookup by slug, the
//! federation's lookup by `backend_id`, create, edit), their members by role
//! (`add_user`, `delete_user`, `list_users`, which are the scenario's team), and the
//! directories a member needs for that: roles, users and science sub-domains.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::{
    body_json, created, date_field, field_error, id_in_url, ok, paginate, path_id, ApiError,
    ApiResult, Params,
};
use crate::app::App;
use crate::changes::Change;
use crate::store::{now, slugify, Project, RoleGrant, ScienceSubDomain, Store, TeamMember, User};
use crate::{ids, render};

/// The project roles every Mastermind has: `(uuid, name, description)`, ids fixed so tests
/// and scenarios can name them.
pub const ROLES: &[(&str, &str, &str)] = &[
    (
        "6b9bc3d0f1a44c3e8a2d000000000001",
        "PROJECT.ADMIN",
        "Project administrator",
    ),
    (
        "6b9bc3d0f1a44c3e8a2d000000000002",
        "PROJECT.MANAGER",
        "Project manager",
    ),
    (
        "6b9bc3d0f1a44c3e8a2d000000000003",
        "PROJECT.MEMBER",
        "Project member",
    ),
];

/// Project fields kept in `Project::details`, as sent.
const DETAIL_FIELDS: &[&str] = &["oecd_fos_2007_code", "is_industry"];

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/projects/", get(list).post(create))
        .route("/api/projects/{uuid}/", get(retrieve).patch(update))
        .route("/api/projects/{uuid}/add_user/", post(add_user))
        .route("/api/projects/{uuid}/delete_user/", post(delete_user))
        .route("/api/projects/{uuid}/list_users/", get(list_users))
        .route("/api/roles/", get(roles))
        .route("/api/users/", get(users))
        .route("/api/science-sub-domains/", get(science_sub_domains))
}

async fn science_sub_domains(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let st = app.store();
    let items: Vec<&ScienceSubDomain> = st.science_sub_domains.values().collect();
    paginate(&app, uri.path(), &params, items, |d| {
        render::science_sub_domain(&app.base, d)
    })
}

/// Exact filters `slug`, `backend_id`, `customer_uuid`, `name`; `field=` is ignored (every
/// field is sent).
async fn list(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let slug = params.get("slug").map(str::to_string);
    let backend_id = params.get("backend_id").map(str::to_string);
    let name = params.get("name").map(str::to_string);
    let customer = params.uuid("customer_uuid")?;
    let st = app.store();
    let items: Vec<&Project> = st
        .projects
        .values()
        .filter(|p| slug.as_ref().is_none_or(|s| *s == p.slug))
        .filter(|p| backend_id.as_ref().is_none_or(|b| *b == p.backend_id))
        .filter(|p| name.as_ref().is_none_or(|n| *n == p.name))
        .filter(|p| customer.as_ref().is_none_or(|c| *c == p.customer_uuid))
        .collect();
    paginate(&app, uri.path(), &params, items, |p| {
        render::project(&app.base, p)
    })
}

async fn retrieve(State(app): State<App>, Path(u): Path<String>) -> ApiResult {
    let id = path_id(&u)?;
    let st = app.store();
    let p = st.projects.get(&id).ok_or_else(ApiError::not_found)?;
    ok(render::project(&app.base, p))
}

/// Applies the editable fields present in `body` (`end_date` also stamps
/// `end_date_updated_at`; `science_sub_domain`, a uuid or null, sets the code the project
/// shows).
fn apply_fields(
    p: &mut Project,
    body: &Value,
    sub_domains: &BTreeMap<String, ScienceSubDomain>,
) -> Result<(), ApiError> {
    if let Some(value) = body.get("science_sub_domain") {
        let code = match value {
            Value::Null => Value::Null,
            link => {
                let id = link.as_str().and_then(|l| {
                    id_in_url(l, &["science-sub-domains"]).or_else(|| ids::normalize(l))
                });
                let domain = id.and_then(|id| sub_domains.get(&id)).ok_or_else(|| {
                    field_error("science_sub_domain", "Invalid pk - object does not exist.")
                })?;
                Value::String(domain.code.clone())
            }
        };
        p.details.insert("science_sub_domain_code".into(), code);
    }
    if let Some(name) = body.get("name") {
        p.name = name
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| field_error("name", "This field may not be blank."))?
            .to_string();
    }
    for (key, field) in [
        ("description", &mut p.description),
        ("backend_id", &mut p.backend_id),
    ] {
        if let Some(value) = body.get(key) {
            *field = value.as_str().unwrap_or_default().to_string();
        }
    }
    if body.get("end_date").is_some() {
        p.end_date = date_field(body, "end_date")?;
        p.end_date_updated_at = Some(now());
    }
    for key in DETAIL_FIELDS {
        if let Some(value) = body.get(*key) {
            p.details.insert(key.to_string(), value.clone());
        }
    }
    Ok(())
}

/// `{customer: <customer url>, name, backend_id?, description?, end_date?, ...}` -> 201.
async fn create(State(app): State<App>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let mut st = app.store();
    let customer = body
        .get("customer")
        .and_then(Value::as_str)
        .and_then(|link| id_in_url(link, &["customers"]))
        .filter(|c| st.customers.contains_key(c))
        .ok_or_else(|| field_error("customer", "Invalid hyperlink - Object does not exist."))?;
    if body
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(field_error("name", "This field is required."));
    }
    let mut project = Project {
        uuid: ids::generate(),
        name: String::new(),
        slug: String::new(),
        customer_uuid: customer,
        description: String::new(),
        end_date: None,
        end_date_updated_at: None,
        backend_id: String::new(),
        details: Map::new(),
    };
    apply_fields(&mut project, &body, &st.science_sub_domains)?;
    project.slug = slugify(&project.name);
    let rendered = render::project(&app.base, &project);
    st.projects.insert(project.uuid.clone(), project);
    created(rendered)
}

async fn update(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let id = path_id(&u)?;
    let body = body_json(&body)?;
    let mut guard = app.store();
    let st = &mut *guard;
    let p = st.projects.get_mut(&id).ok_or_else(ApiError::not_found)?;
    apply_fields(p, &body, &st.science_sub_domains)?;
    ok(render::project(&app.base, p))
}

fn role_name(uuid: &str) -> Option<&'static str> {
    let id = ids::normalize(uuid)?;
    ROLES.iter().find(|(u, _, _)| *u == id).map(|(_, n, _)| *n)
}

fn non_field_error(message: &str) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        json!({"non_field_errors": [message]}),
    )
}

/// The membership a body names: the path's project, the body's role (a role uuid) and user
/// (a user uuid or URL), each checked to exist.
fn membership(st: &Store, raw: &str, body: &Value) -> Result<TeamMember, ApiError> {
    let project = path_id(raw)?;
    if !st.projects.contains_key(&project) {
        return Err(ApiError::not_found());
    }
    let role = body
        .get("role")
        .and_then(Value::as_str)
        .and_then(role_name)
        .ok_or_else(|| field_error("role", "Invalid role."))?;
    let user = body
        .get("user")
        .and_then(Value::as_str)
        .and_then(|u| id_in_url(u, &["users"]))
        .filter(|u| st.users.contains_key(u))
        .ok_or_else(|| field_error("user", "Invalid hyperlink - Object does not exist."))?;
    Ok(TeamMember {
        project_uuid: project,
        user_uuid: user,
        role: role.to_string(),
    })
}

fn holds(st: &Store, m: &TeamMember) -> bool {
    st.team
        .iter()
        .any(|t| t.project_uuid == m.project_uuid && t.user_uuid == m.user_uuid && t.role == m.role)
}

/// Applies a role change through [`crate::changes`], which keeps the team and announces it.
fn change(app: &App, change: Change) -> Result<(), ApiError> {
    crate::changes::apply(app, change)
        .map(drop)
        .map_err(ApiError::bad_request)
}

/// `{role, user, expiration_time?}` -> 201 `{expiration_time}`.
async fn add_user(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let expiration_time = body
        .get("expiration_time")
        .and_then(Value::as_str)
        .map(str::to_string);
    let member = {
        let st = app.store();
        let member = membership(&st, &u, &body)?;
        if holds(&st, &member) {
            return Err(non_field_error("User already has role within this scope."));
        }
        member
    };
    change(
        &app,
        Change::RoleGranted {
            project_uuid: member.project_uuid.clone(),
            user_uuid: member.user_uuid.clone(),
            role: member.role.clone(),
        },
    )?;
    app.store().role_grants.insert(
        RoleGrant::key(&member),
        RoleGrant {
            uuid: ids::generate(),
            created: now(),
            expiration_time: expiration_time.clone(),
        },
    );
    created(json!({ "expiration_time": expiration_time }))
}

/// `{role, user}` -> 200 `{}`.
async fn delete_user(State(app): State<App>, Path(u): Path<String>, body: Bytes) -> ApiResult {
    let body = body_json(&body)?;
    let member = {
        let st = app.store();
        let member = membership(&st, &u, &body)?;
        if !holds(&st, &member) {
            return Err(non_field_error(
                "User does not have this role in the scope.",
            ));
        }
        member
    };
    change(
        &app,
        Change::RoleRevoked {
            project_uuid: member.project_uuid,
            user_uuid: member.user_uuid,
            role: member.role,
        },
    )?;
    ok(json!({}))
}

/// The project's role grants (its team), each with its grant details.
async fn list_users(
    State(app): State<App>,
    Path(u): Path<String>,
    uri: Uri,
    params: Params,
) -> ApiResult {
    let id = path_id(&u)?;
    let mut st = app.store();
    if !st.projects.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    let members: Vec<TeamMember> = st
        .team
        .iter()
        .filter(|m| m.project_uuid == id)
        .cloned()
        .collect();
    let mut items = Vec::with_capacity(members.len());
    for m in &members {
        // Team members from the scenario get their grant details on first sight.
        let grant = st
            .role_grants
            .entry(RoleGrant::key(m))
            .or_insert_with(|| RoleGrant {
                uuid: ids::generate(),
                created: now(),
                expiration_time: None,
            })
            .clone();
        let user = st.users.get(&m.user_uuid);
        let text = |f: fn(&User) -> &str| user.map(f).unwrap_or_default().to_string();
        items.push(json!({
            "uuid": grant.uuid, "user_uuid": m.user_uuid,
            "user_username": text(|u| &u.username), "user_email": text(|u| &u.email),
            "user_full_name": text(|u| &u.full_name),
            "role_uuid": ROLES.iter().find(|r| r.1 == m.role).map(|r| r.0),
            "role_name": m.role, "created": grant.created,
            "expiration_time": grant.expiration_time,
        }));
    }
    drop(st);
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

/// The built-in project roles; `name=` filters exactly.
async fn roles(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let name = params.get("name").map(str::to_string);
    let items: Vec<Value> = ROLES
        .iter()
        .filter(|(_, n, _)| name.as_ref().is_none_or(|x| x == n))
        .map(|(uuid, name, description)| {
            json!({"uuid": uuid, "name": name, "description": description,
                   "content_type": "project", "is_active": true})
        })
        .collect();
    paginate(&app, uri.path(), &params, items, Clone::clone)
}

/// Users by exact `email` and/or `username`.
async fn users(State(app): State<App>, uri: Uri, params: Params) -> ApiResult {
    let email = params.get("email").map(str::to_string);
    let username = params.get("username").map(str::to_string);
    let st = app.store();
    let items: Vec<&User> = st
        .users
        .values()
        .filter(|u| email.as_ref().is_none_or(|e| *e == u.email))
        .filter(|u| username.as_ref().is_none_or(|n| *n == u.username))
        .collect();
    paginate(&app, uri.path(), &params, items, |u| {
        render::user(&app.base, u)
    })
}
