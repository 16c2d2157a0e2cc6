//! JSON shapes of the objects the agent parses (waldur-api-client 8.1.3 `from_dict`): every
//! required field is always present, and the optional fields the agent dereferences without
//! guards (`offering_plugin_options`, `limits`, `backend_id`, …) are never omitted.
//! `base` is the API root, e.g. `http://127.0.0.1:8080/api/`.

use serde_json::{json, Value};

use crate::ids;
use crate::store::*;

const EPOCH: &str = "2026-01-01T00:00:00Z";

fn url(base: &str, collection: &str, uuid: &str) -> String {
    format!("{base}{collection}/{uuid}/")
}

pub fn version(st: &Store) -> Value {
    json!({"version": st.settings.version})
}

pub fn user_me(st: &Store, base: &str) -> Value {
    let u = &st.agent_user;
    json!({
        "uuid": u.uuid, "url": url(base, "users", &u.uuid), "username": u.username,
        "full_name": u.full_name, "is_staff": u.is_staff, "is_support": false,
        "email": format!("{}@example.org", u.username), "permissions": [],
    })
}

pub fn component(c: &Component) -> Value {
    json!({
        "uuid": c.uuid, "type": c.type_, "name": c.name, "description": "",
        "measured_unit": c.measured_unit, "billing_type": c.billing_type,
        "limit_amount": c.limit_amount, "limit_period": c.limit_period,
        "unit_factor": c.unit_factor, "article_code": "", "is_boolean": false,
        "default_limit": null, "min_value": null, "max_value": null,
    })
}

pub fn offering(st: &Store, base: &str, o: &Offering) -> Value {
    let customer = st.customers.get(&o.customer_uuid);
    json!({
        "uuid": o.uuid, "url": url(base, "marketplace-provider-offerings", &o.uuid),
        "name": o.name, "type": "Marketplace.Slurm", "state": o.state, "backend_id": o.backend_id,
        "customer_uuid": o.customer_uuid,
        "customer_name": customer.map(|c| c.name.as_str()).unwrap_or(""),
        "components": o.components.iter().map(component).collect::<Vec<_>>(),
        "partitions": o.partitions.iter().map(|p| json!({"partition_name": p})).collect::<Vec<_>>(),
        "plugin_options": o.plugin_options,
        "secret_options": {},
    })
}

pub fn service_provider(base: &str, c: &Customer) -> Value {
    json!({
        "uuid": c.service_provider_uuid,
        "url": url(base, "marketplace-service-providers", &c.service_provider_uuid),
        "customer_uuid": c.uuid, "customer_name": c.name, "customer_slug": c.slug,
        "created": EPOCH, "description": "",
    })
}

pub fn ssh_key(base: &str, k: &SshKey) -> Value {
    json!({
        "uuid": k.uuid, "url": url(base, "keys", &k.uuid), "name": k.name,
        "public_key": k.public_key, "fingerprint_md5": "", "fingerprint_sha256": "",
        "type": k.public_key.split_whitespace().next().unwrap_or("ssh-rsa"), "is_shared": false,
    })
}

pub fn plan(base: &str, p: &Plan) -> Value {
    json!({
        "url": url(base, "marketplace-plans", &p.uuid), "uuid": p.uuid, "name": p.name,
        "description": "", "article_code": "", "max_amount": null, "archived": false,
        "is_active": true, "unit_price": "0", "unit": "month",
        "init_price": 0.0, "switch_price": 0.0, "organization_groups": [], "components": [],
        "offering": url(base, "marketplace-provider-offerings", &p.offering_uuid),
        "prices": {}, "future_prices": {}, "quotas": p.quotas, "resources_count": 0,
        "plan_type": "usage-based", "minimal_price": 0.0, "backend_id": "",
    })
}

pub fn attribute_config(o: &Offering) -> Value {
    json!({
        "uuid": o.uuid, "created": EPOCH, "modified": EPOCH,
        "exposed_fields": ["username", "full_name", "email"], "is_default": true,
        "offering_uuid": o.uuid, "offering_name": o.name,
    })
}

pub fn order(st: &Store, base: &str, o: &Order) -> Value {
    let project = st.projects.get(&o.project_uuid);
    let customer = project.and_then(|p| st.customers.get(&p.customer_uuid));
    let offering = st.offerings.get(&o.offering_uuid);
    let plan = o.plan_uuid.as_ref().and_then(|p| st.plans.get(p));
    json!({
        "uuid": o.uuid, "url": url(base, "marketplace-orders", &o.uuid),
        "type": o.type_, "state": o.state, "resource_name": o.resource_name,
        "marketplace_resource_uuid": o.resource_uuid, "resource_uuid": o.resource_uuid,
        "offering": url(base, "marketplace-provider-offerings", &o.offering_uuid),
        "offering_uuid": o.offering_uuid,
        "offering_name": offering.map(|x| x.name.as_str()).unwrap_or(""),
        "project_uuid": o.project_uuid,
        "project_slug": project.map(|p| p.slug.as_str()).unwrap_or(""),
        "project_name": project.map(|p| p.name.as_str()).unwrap_or(""),
        "project_description": project.map(|p| p.description.as_str()).unwrap_or(""),
        "customer_uuid": customer.map(|c| c.uuid.as_str()).unwrap_or(""),
        "customer_slug": customer.map(|c| c.slug.as_str()).unwrap_or(""),
        "customer_name": customer.map(|c| c.name.as_str()).unwrap_or(""),
        "limits": o.limits, "attributes": o.attributes,
        "plan_uuid": o.plan_uuid, "plan_name": plan.map(|p| p.name.as_str()),
        "backend_id": o.backend_id, "error_message": o.error_message,
        "error_traceback": o.error_traceback, "created": o.created, "modified": o.modified,
        "created_by_username": st.agent_user.username, "created_by_full_name": st.agent_user.full_name,
    })
}

pub fn resource(st: &Store, base: &str, r: &Resource) -> Value {
    let project = st.projects.get(&r.project_uuid);
    let customer = project.and_then(|p| st.customers.get(&p.customer_uuid));
    let offering = st.offerings.get(&r.offering_uuid);
    json!({
        "uuid": r.uuid, "url": url(base, "marketplace-provider-resources", &r.uuid),
        "name": r.name, "slug": r.slug, "state": r.state, "backend_id": r.backend_id,
        "limits": r.limits, "attributes": r.attributes, "backend_metadata": r.backend_metadata,
        "endpoints": r.endpoints,
        "offering": url(base, "marketplace-provider-offerings", &r.offering_uuid),
        "offering_uuid": r.offering_uuid,
        "offering_name": offering.map(|o| o.name.as_str()).unwrap_or(""),
        "offering_type": "Marketplace.Slurm",
        "offering_plugin_options": offering.map(|o| o.plugin_options.clone()).unwrap_or_default(),
        "offering_backend_id": offering.map(|o| o.backend_id.as_str()).unwrap_or(""),
        "project_uuid": r.project_uuid,
        "project_slug": project.map(|p| p.slug.as_str()).unwrap_or(""),
        "project_name": project.map(|p| p.name.as_str()).unwrap_or(""),
        "project_description": project.map(|p| p.description.as_str()).unwrap_or(""),
        "project_end_date": project.and_then(|p| p.end_date.clone()),
        "customer_uuid": customer.map(|c| c.uuid.as_str()).unwrap_or(""),
        "customer_slug": customer.map(|c| c.slug.as_str()).unwrap_or(""),
        "customer_name": customer.map(|c| c.name.as_str()).unwrap_or(""),
        "restrict_member_access": r.restrict_member_access, "paused": r.paused,
        "downscaled": r.downscaled, "plan_uuid": r.plan_uuid,
        "end_date": r.end_date, "end_date_updated_at": r.end_date_updated_at,
        "end_date_requested_by": r.end_date_requested_by, "effective_id": r.effective_id,
        "error_message": r.error_message, "error_traceback": r.error_traceback,
        // Mastermind's last_sync is never null (the client parses it as a datetime when present).
        "last_sync": r.last_sync.as_deref().unwrap_or(&r.created),
        "created": r.created, "modified": r.modified,
    })
}

pub fn offering_user(st: &Store, base: &str, ou: &OfferingUser) -> Value {
    let user = st.users.get(&ou.user_uuid);
    let full_name = user.map(|u| u.full_name.as_str()).unwrap_or("");
    let (first, last) = full_name.split_once(' ').unwrap_or((full_name, ""));
    json!({
        "uuid": ou.uuid, "url": url(base, "marketplace-offering-users", &ou.uuid),
        "user_uuid": ou.user_uuid, "username": ou.username, "state": ou.state,
        "offering_uuid": ou.offering_uuid,
        "offering_name": st.offerings.get(&ou.offering_uuid).map(|o| o.name.as_str()).unwrap_or(""),
        "user_username": user.map(|u| u.username.as_str()).unwrap_or(""),
        "user_email": user.map(|u| u.email.as_str()).unwrap_or(""),
        "user_full_name": full_name, "user_first_name": first, "user_last_name": last,
        "is_restricted": ou.is_restricted, "service_provider_comment": ou.comment,
        "service_provider_comment_url": ou.comment_url.clone().unwrap_or_default(),
        "created": ou.created, "modified": ou.modified,
    })
}

pub fn team_member(st: &Store, base: &str, m: &TeamMember, offering: &str) -> Value {
    let user = st.users.get(&m.user_uuid);
    let ou = st.offering_user_for(offering, &m.user_uuid);
    json!({
        "url": url(base, "users", &m.user_uuid), "uuid": m.user_uuid,
        "username": user.map(|u| u.username.as_str()).unwrap_or(""),
        "full_name": user.map(|u| u.full_name.as_str()).unwrap_or(""),
        "email": user.map(|u| u.email.as_str()).unwrap_or(""),
        "role": m.role,
        "expiration_time": st.role_grants.get(&RoleGrant::key(m)).and_then(|g| g.expiration_time.clone()),
        "offering_user_username": ou.and_then(|o| o.username.clone()),
        "offering_user_state": ou.map(|o| o.state.clone()),
    })
}

pub fn component_usage(st: &Store, base: &str, u: &ComponentUsage) -> Value {
    let resource = st.resources.get(&u.resource_uuid);
    json!({
        "uuid": u.uuid, "url": url(base, "marketplace-component-usages", &u.uuid),
        "type": u.type_, "name": u.type_, "usage": u.usage, "billing_period": u.billing_period,
        "date": u.date, "description": "", "recurring": false,
        "resource_uuid": u.resource_uuid,
        "resource_name": resource.map(|r| r.name.as_str()).unwrap_or(""),
        "offering_uuid": resource.map(|r| r.offering_uuid.as_str()).unwrap_or(""),
        "created": u.created, "modified": u.modified,
    })
}

pub fn user_usage(st: &Store, base: &str, u: &UserUsage) -> Value {
    let cu = st.component_usages.get(&u.component_usage_uuid);
    json!({
        "uuid": u.uuid, "url": url(base, "marketplace-component-user-usages", &u.uuid),
        "username": u.username, "usage": u.usage, "date": u.date, "user": u.user,
        "component_usage": url(base, "marketplace-component-usages", &u.component_usage_uuid),
        "component_type": cu.map(|c| c.type_.as_str()).unwrap_or(""),
        "billing_period": cu.map(|c| c.billing_period.as_str()).unwrap_or(""),
        "resource_uuid": cu.map(|c| c.resource_uuid.as_str()).unwrap_or(""),
        "created": u.created, "modified": u.modified,
    })
}

pub fn user_usage_limit(st: &Store, base: &str, l: &UserUsageLimit) -> Value {
    let component = st
        .resources
        .get(&l.resource_uuid)
        .and_then(|r| st.offerings.get(&r.offering_uuid))
        .and_then(|o| o.components.iter().find(|c| c.type_ == l.component_type))
        .map(|c| c.uuid.clone())
        .unwrap_or_else(|| l.uuid.clone());
    json!({
        "url": url(base, "component-user-usage-limits", &l.uuid), "uuid": l.uuid,
        "resource": l.resource_uuid, "component": component, "component_type": l.component_type,
        "user": l.user, "limit": l.limit,
    })
}

pub fn identity(st: &Store, base: &str, i: &Identity) -> Value {
    let services: Vec<Value> = st
        .services
        .values()
        .filter(|s| s.identity_uuid == i.uuid)
        .map(|s| {
            json!({"uuid": s.uuid, "url": url(base, "marketplace-site-agent-services", &s.uuid),
                   "name": s.name, "mode": s.mode, "state": s.state, "created": s.created,
                   "modified": s.modified})
        })
        .collect();
    let mut v = json!({
        "uuid": i.uuid, "url": url(base, "marketplace-site-agent-identities", &i.uuid),
        "offering": ids::dashed(&i.offering), "created_by": st.agent_user.uuid, "name": i.name,
        "created": i.created, "modified": i.modified, "services": services,
        "compatibility": {"status": "compatible", "message": ""},
    });
    // Echo the registration fields (version, dependencies, …) like Mastermind does.
    if let (Some(obj), Some(body)) = (v.as_object_mut(), i.body.as_object()) {
        for (k, val) in body {
            obj.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

pub fn service(st: &Store, base: &str, s: &AgentService) -> Value {
    let identity_name = st
        .identities
        .get(&s.identity_uuid)
        .map(|i| i.name.as_str())
        .unwrap_or("");
    let processors: Vec<Value> = st
        .processors
        .values()
        .filter(|p| p.service_uuid == s.uuid)
        .map(|p| processor(st, base, p))
        .collect();
    json!({
        "uuid": s.uuid, "url": url(base, "marketplace-site-agent-services", &s.uuid),
        "identity": s.identity_uuid, "identity_name": identity_name, "name": s.name,
        "mode": s.mode, "state": s.state, "created": s.created, "modified": s.modified,
        "processors": processors,
    })
}

pub fn processor(st: &Store, base: &str, p: &Processor) -> Value {
    let service_name = st
        .services
        .get(&p.service_uuid)
        .map(|s| s.name.as_str())
        .unwrap_or("");
    json!({
        "uuid": p.uuid, "url": url(base, "marketplace-site-agent-processors", &p.uuid),
        "service": p.service_uuid, "service_name": service_name, "name": p.name,
        "backend_type": p.backend_type, "backend_version": p.backend_version,
        "created": p.created, "modified": p.modified,
    })
}

/// B12: a project as a service provider sees it, with its further fields.
pub fn provider_project(base: &str, p: &Project) -> Value {
    let mut rendered = project(base, p);
    if let Value::Object(fields) = &mut rendered {
        for (key, value) in &p.details {
            fields.insert(key.clone(), value.clone());
        }
    }
    rendered
}

pub fn science_sub_domain(base: &str, d: &crate::store::ScienceSubDomain) -> Value {
    json!({"uuid": d.uuid, "url": url(base, "science-sub-domains", &d.uuid),
           "code": d.code, "name": d.name})
}

pub fn project(base: &str, p: &Project) -> Value {
    let detail = |key: &str, absent: Value| p.details.get(key).cloned().unwrap_or(absent);
    json!({
        "uuid": p.uuid, "url": url(base, "projects", &p.uuid), "name": p.name, "slug": p.slug,
        "customer": url(base, "customers", &p.customer_uuid),
        "customer_uuid": p.customer_uuid, "description": p.description,
        "backend_id": p.backend_id, "end_date": p.end_date,
        "end_date_updated_at": p.end_date_updated_at,
        "oecd_fos_2007_code": detail("oecd_fos_2007_code", Value::Null),
        "is_industry": detail("is_industry", Value::Bool(false)),
        "science_sub_domain_code": detail("science_sub_domain_code", Value::Null),
        "created": EPOCH,
    })
}

/// A user as `GET /api/users/` lists it.
pub fn user(base: &str, u: &User) -> Value {
    json!({
        "uuid": u.uuid, "url": url(base, "users", &u.uuid), "username": u.username,
        "email": u.email, "full_name": u.full_name, "first_name": u.first_name,
        "last_name": u.last_name, "civil_number": u.civil_number, "is_active": u.is_active,
    })
}

/// A plan as the public offering lists it (its URL under the offering).
pub fn public_plan(base: &str, p: &Plan) -> Value {
    let mut v = plan(base, p);
    v["url"] = json!(format!(
        "{base}marketplace-public-offerings/{}/plans/{}/",
        p.offering_uuid, p.uuid
    ));
    v["offering_uuid"] = json!(p.offering_uuid);
    v
}

/// `ResourceApiKeyStatus` (8.1.3): the key value itself is never rendered.
pub fn resource_api_key(st: &Store, base: &str, k: &ResourceApiKey) -> Value {
    let resource = st.resources.get(&k.resource_uuid);
    json!({
        "uuid": k.uuid, "url": url(base, "marketplace-resource-api-keys", &k.uuid),
        "resource_uuid": k.resource_uuid,
        "resource_name": resource.map(|r| r.name.as_str()).unwrap_or(""),
        "resource_backend_id": resource.map(|r| r.backend_id.as_str()).unwrap_or(""),
        "client_id": k.client_id, "state": k.state, "pending_action": k.pending_action,
        "error_message": k.error_message, "created": k.created, "modified": k.modified,
        "user_uuid": null, "user_full_name": null, "limits": null, "allowed_models": null,
        "current_usages": null, "usage_period": null, "paused_by_limit": null,
    })
}

/// `BackendResourceReq`.
pub fn backend_resource_request(st: &Store, base: &str, r: &BackendResourceRequest) -> Value {
    let offering = st.offerings.get(&r.offering_uuid);
    json!({
        "uuid": r.uuid, "url": url(base, "backend-resource-requests", &r.uuid),
        "created": r.created, "modified": r.modified, "started": r.started,
        "finished": r.finished, "state": r.state, "offering": ids::dashed(&r.offering_uuid),
        "offering_name": offering.map(|o| o.name.as_str()).unwrap_or(""),
        "offering_url": url(base, "marketplace-provider-offerings", &r.offering_uuid),
        "error_message": r.error_message, "error_traceback": r.error_traceback,
    })
}

/// `BackendResource`.
pub fn backend_resource(st: &Store, base: &str, r: &BackendResource) -> Value {
    let project = st.projects.get(&r.project_uuid);
    let offering = st.offerings.get(&r.offering_uuid);
    json!({
        "uuid": r.uuid, "url": url(base, "backend-resources", &r.uuid), "name": r.name,
        "backend_id": r.backend_id, "backend_metadata": r.backend_metadata,
        "created": r.created, "modified": r.modified,
        "project": ids::dashed(&r.project_uuid),
        "project_name": project.map(|p| p.name.as_str()).unwrap_or(""),
        "project_url": url(base, "projects", &r.project_uuid),
        "offering": ids::dashed(&r.offering_uuid),
        "offering_name": offering.map(|o| o.name.as_str()).unwrap_or(""),
        "offering_url": url(base, "marketplace-provider-offerings", &r.offering_uuid),
    })
}
