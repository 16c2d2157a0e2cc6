//! The simulator's state: every Waldur object the agent can see or change, keyed by normalised
//! hex id. Built once from a [`Scenario`] (resolving references and generating ids) and then
//! mutated only by route handlers under one lock. Serialises as the `/__sim/state` dump.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ids;
use crate::scenario::{ConsumerOrdersSpec, IdentityBridgeSpec, Scenario, ScenarioError, Settings};

/// Current time in the ISO-8601 form Mastermind uses.
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Current time in milliseconds since the Unix epoch: the stamp of the request log and of
/// broker deliveries, so a benchmark can measure publish -> done without parsing dates.
pub fn epoch_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Decimal amounts travel as strings (`"12.35"`); scenario files may use numbers.
pub fn decimal_string(v: &Value) -> Result<String, String> {
    match v {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) if s.trim().parse::<f64>().is_ok() => Ok(s.trim().to_string()),
        Value::Null => Ok("0".into()),
        other => Err(format!("not a decimal amount: {other}")),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentUserRec {
    pub uuid: String,
    pub username: String,
    pub full_name: String,
    pub is_staff: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScienceSubDomain {
    pub uuid: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub service_provider_uuid: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub customer_uuid: String,
    pub description: String,
    pub end_date: Option<String>,
    /// When `end_date` last changed through the API (`None` until then).
    pub end_date_updated_at: Option<String>,
    pub backend_id: String,
    /// Further fields (`oecd_fos_2007_code`, `is_industry`, ...), from the scenario.
    pub details: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub uuid: String,
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Matched by `POST /api/remote-eduteams/` (`cuid`).
    pub civil_number: String,
    /// `false` once the identity bridge removed the user.
    pub is_active: bool,
    /// Further profile fields the identity bridge set (`organization`, `affiliations`, ...).
    pub details: Map<String, Value>,
}

impl User {
    /// A user known by username only, names taken from `full_name` ("First Last").
    pub fn new(uuid: String, username: String, full_name: String, email: String) -> User {
        let (first, last) = full_name.split_once(' ').unwrap_or((&full_name, ""));
        User {
            first_name: first.to_string(),
            last_name: last.to_string(),
            uuid,
            username,
            full_name,
            email,
            civil_number: String::new(),
            is_active: true,
            details: Map::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    pub project_uuid: String,
    pub user_uuid: String,
    pub role: String,
}

/// What `list_users` shows of one team membership besides the member itself: the grant's
/// id, when it was made and until when it holds. Kept beside `Store::team` (keyed by
/// [`RoleGrant::key`]) so the team stays the one record of who holds which role.
#[derive(Debug, Clone, Serialize)]
pub struct RoleGrant {
    pub uuid: String,
    pub created: String,
    pub expiration_time: Option<String>,
}

impl RoleGrant {
    pub fn key(m: &TeamMember) -> String {
        format!("{}/{}/{}", m.project_uuid, m.user_uuid, m.role)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub uuid: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub name: String,
    pub measured_unit: String,
    pub billing_type: String,
    pub limit_amount: Option<f64>,
    pub limit_period: Option<String>,
    pub unit_factor: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Offering {
    pub uuid: String,
    pub name: String,
    pub customer_uuid: String,
    pub components: Vec<Component>,
    pub plugin_options: Map<String, Value>,
    pub partitions: Vec<String>,
    pub backend_id: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub uuid: String,
    pub name: String,
    pub offering_uuid: String,
    pub quotas: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OfferingUser {
    pub uuid: String,
    pub offering_uuid: String,
    pub user_uuid: String,
    pub username: Option<String>,
    pub state: String,
    pub is_restricted: bool,
    pub comment: String,
    pub comment_url: Option<String>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub uuid: String,
    pub name: String,
    pub slug: String,
    pub offering_uuid: String,
    pub project_uuid: String,
    pub state: String,
    pub limits: Map<String, Value>,
    pub backend_id: String,
    pub paused: bool,
    pub downscaled: bool,
    pub restrict_member_access: bool,
    pub plan_uuid: Option<String>,
    pub attributes: Map<String, Value>,
    pub backend_metadata: Map<String, Value>,
    pub endpoints: Vec<Value>,
    pub end_date: Option<String>,
    pub end_date_updated_at: Option<String>,
    /// URL of the user who set the end date last.
    pub end_date_requested_by: Option<String>,
    pub effective_id: String,
    pub error_message: String,
    pub error_traceback: String,
    pub last_sync: Option<String>,
    /// Bodies of `set_membership_sync_statuses` calls, newest last.
    pub membership_sync_statuses: Vec<Value>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub uuid: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub state: String,
    pub offering_uuid: String,
    pub resource_uuid: String,
    pub project_uuid: String,
    pub resource_name: String,
    pub limits: Map<String, Value>,
    pub attributes: Map<String, Value>,
    pub plan_uuid: Option<String>,
    pub backend_id: String,
    pub error_message: String,
    pub error_traceback: String,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentUsage {
    pub uuid: String,
    pub resource_uuid: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub usage: String,
    /// `YYYY-MM-01`.
    pub billing_period: String,
    pub date: String,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserUsage {
    pub uuid: String,
    pub component_usage_uuid: String,
    pub username: String,
    pub usage: String,
    pub date: String,
    /// Offering-user URL as sent by the agent, if any.
    pub user: Option<String>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshKey {
    pub uuid: String,
    pub service_provider_uuid: String,
    pub name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserUsageLimit {
    pub uuid: String,
    pub resource_uuid: String,
    pub component_type: String,
    pub user: String,
    pub limit: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub uuid: String,
    pub name: String,
    pub offering: String,
    pub body: Value,
    pub created: String,
    pub modified: String,
}

/// A6: the RabbitMQ account of one (identity, object type): login = `uuid`, vhost =
/// `user_uuid` (the agent's Waldur user), password = the agent's API token.
#[derive(Debug, Clone, Serialize)]
pub struct EventSubscription {
    pub uuid: String,
    pub identity_uuid: String,
    pub user_uuid: String,
    pub object_type: String,
    pub created: String,
}

/// A7: `subscription_<es>_offering_<offering>_<object type>` in the vhost.
#[derive(Debug, Clone, Serialize)]
pub struct EventQueue {
    pub uuid: String,
    pub subscription_uuid: String,
    pub offering_uuid: String,
    pub object_type: String,
    pub queue_name: String,
    pub vhost: String,
    pub created: String,
}

/// `register_queue` (1.0.7): one queue for every object type the identity observes.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerQueue {
    pub identity_uuid: String,
    pub offering_uuid: String,
    pub queue_name: String,
    pub vhost: String,
    pub rmq_username: String,
    pub object_types: Vec<String>,
}

/// One message to one queue. `routed` stays `None` until the broker took it (or without a
/// broker); `error` says why it was not delivered.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedEvent {
    pub seq: usize,
    pub offering_uuid: String,
    pub object_type: String,
    pub vhost: String,
    pub queue_name: String,
    pub body: Value,
    pub routed: Option<bool>,
    pub error: Option<String>,
    /// When the message was handed to the broker (ms since the epoch); `None` until then.
    pub published_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentService {
    pub uuid: String,
    pub identity_uuid: String,
    pub name: String,
    pub mode: String,
    pub state: String,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Processor {
    pub uuid: String,
    pub service_uuid: String,
    pub name: String,
    pub backend_type: String,
    pub backend_version: String,
    pub created: String,
    pub modified: String,
}

/// A resource API key row (K1-K4). `api_key` is what the agent reported last (Mastermind
/// keeps it encrypted and never renders it); tests read it from here.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceApiKey {
    pub uuid: String,
    pub resource_uuid: String,
    pub client_id: Option<String>,
    pub api_key: Option<String>,
    /// `Creating`, `OK`, `Updating`, `Deleting`, `Deleted`, `Erred` or `Paused`.
    pub state: String,
    /// `rotate`, `create`, ... or `""`.
    pub pending_action: String,
    pub error_message: String,
    pub created: String,
    pub modified: String,
}

/// A user's request to list what the backend has and Waldur does not (I1-I4).
#[derive(Debug, Clone, Serialize)]
pub struct BackendResourceRequest {
    pub uuid: String,
    pub offering_uuid: String,
    /// `Sent` -> `Processing` -> `Done` or `Erred`.
    pub state: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub error_message: String,
    pub error_traceback: String,
    pub created: String,
    pub modified: String,
}

/// A backend account offered for import (I5, I6).
#[derive(Debug, Clone, Serialize)]
pub struct BackendResource {
    pub uuid: String,
    pub name: String,
    pub backend_id: String,
    pub project_uuid: String,
    pub offering_uuid: String,
    pub backend_metadata: Map<String, Value>,
    pub created: String,
    pub modified: String,
}

/// Key of the one `ComponentUsage` Mastermind keeps per resource, component type and period.
type UsageKey = (String, String, String);

#[derive(Debug, Clone, Serialize)]
pub struct Store {
    pub settings: Settings,
    pub agent_user: AgentUserRec,
    pub customers: BTreeMap<String, Customer>,
    pub projects: BTreeMap<String, Project>,
    pub science_sub_domains: BTreeMap<String, ScienceSubDomain>,
    pub users: BTreeMap<String, User>,
    pub team: Vec<TeamMember>,
    pub offerings: BTreeMap<String, Offering>,
    pub plans: BTreeMap<String, Plan>,
    pub offering_users: BTreeMap<String, OfferingUser>,
    pub resources: BTreeMap<String, Resource>,
    pub orders: BTreeMap<String, Order>,
    pub component_usages: BTreeMap<String, ComponentUsage>,
    pub user_usages: BTreeMap<String, UserUsage>,
    pub ssh_keys: BTreeMap<String, SshKey>,
    pub component_user_usage_limits: BTreeMap<String, UserUsageLimit>,
    pub identities: BTreeMap<String, Identity>,
    pub services: BTreeMap<String, AgentService>,
    pub processors: BTreeMap<String, Processor>,
    /// Event processing, upstream flow: A6 subscriptions and their A7 queues.
    pub event_subscriptions: BTreeMap<String, EventSubscription>,
    pub event_queues: BTreeMap<String, EventQueue>,
    /// Event processing, PyPI 1.0.7 flow: one `consumer_<id>` queue per identity.
    pub consumer_queues: BTreeMap<String, ConsumerQueue>,
    /// Every event published, in order.
    pub published: Vec<PublishedEvent>,
    /// A9: log records the agent shipped, in arrival order.
    pub agent_logs: Vec<Value>,
    /// Sentry envelopes received at `/__sim/sentry/api/<project>/envelope/`, as sent.
    pub sentry_envelopes: Vec<String>,
    /// P1 reports of periodic settings, as sent (plus `policy_uuid`).
    pub periodic_reports: Vec<Value>,
    /// B7/B8 objects as Mastermind renders them (`uuid`, `username`, `project_uuid`, `state`,
    /// ...); listed for an offering when their project has a resource of it.
    pub service_accounts: Vec<Value>,
    pub course_accounts: Vec<Value>,
    /// Offering -> the users who consented to its terms of service. An offering without an
    /// entry has none to consent to: `team/?has_consent=true` lists the whole team.
    pub consents: BTreeMap<String, BTreeSet<String>>,
    /// K1-K4: API keys of resources, by id.
    pub resource_api_keys: BTreeMap<String, ResourceApiKey>,
    /// I1-I4 and I5/I6: import requests and the backend resources offered for import.
    pub backend_resource_requests: BTreeMap<String, BackendResourceRequest>,
    pub backend_resources: BTreeMap<String, BackendResource>,
    /// Grant details of `team` entries, by [`RoleGrant::key`] (made on first sight).
    pub role_grants: BTreeMap<String, RoleGrant>,
    pub identity_bridge: IdentityBridgeSpec,
    /// Every identity-bridge push and removal, in order: `{action: "push"|"remove",
    /// username, source, created, fields}`.
    pub identity_bridge_log: Vec<Value>,
    pub consumer_orders: ConsumerOrdersSpec,
    /// (resource, type, billing period) -> component usage id, for the upsert in `set_usage`.
    #[serde(skip)]
    usage_index: HashMap<UsageKey, String>,
    /// resource -> component usage ids, so per-resource usage lists do not scan everything.
    #[serde(skip)]
    usages_by_resource: HashMap<String, BTreeSet<String>>,
}

fn invalid(msg: String) -> ScenarioError {
    ScenarioError::Invalid(msg)
}

fn id_or_new(uuid: &Option<String>, what: &str) -> Result<String, ScenarioError> {
    match uuid {
        None => Ok(ids::generate()),
        Some(u) => ids::normalize(u).ok_or_else(|| invalid(format!("{what}: '{u}' is not a UUID"))),
    }
}

/// Resolves a reference that may be an id (any form) or a human key (name, slug, username).
fn resolve<T>(
    map: &BTreeMap<String, T>,
    reference: &str,
    what: &str,
    keys: impl Fn(&T) -> [&str; 2],
) -> Result<String, ScenarioError> {
    if let Some(id) = ids::normalize(reference) {
        if map.contains_key(&id) {
            return Ok(id);
        }
    }
    map.iter()
        .find(|(_, v)| keys(v).contains(&reference))
        .map(|(k, _)| k.clone())
        .ok_or_else(|| invalid(format!("unknown {what} '{reference}'")))
}

impl Store {
    pub fn from_scenario(s: &Scenario) -> Result<Store, ScenarioError> {
        let ts = now();
        let mut st = Store {
            settings: s.settings.clone(),
            agent_user: AgentUserRec {
                uuid: id_or_new(&s.agent_user.uuid, "agent_user")?,
                username: s.agent_user.username.clone(),
                full_name: s.agent_user.full_name.clone(),
                is_staff: s.agent_user.is_staff,
            },
            customers: BTreeMap::new(),
            projects: BTreeMap::new(),
            science_sub_domains: BTreeMap::new(),
            users: BTreeMap::new(),
            team: Vec::new(),
            offerings: BTreeMap::new(),
            plans: BTreeMap::new(),
            offering_users: BTreeMap::new(),
            resources: BTreeMap::new(),
            orders: BTreeMap::new(),
            component_usages: BTreeMap::new(),
            user_usages: BTreeMap::new(),
            ssh_keys: BTreeMap::new(),
            component_user_usage_limits: BTreeMap::new(),
            identities: BTreeMap::new(),
            services: BTreeMap::new(),
            processors: BTreeMap::new(),
            event_subscriptions: BTreeMap::new(),
            event_queues: BTreeMap::new(),
            consumer_queues: BTreeMap::new(),
            published: Vec::new(),
            agent_logs: Vec::new(),
            sentry_envelopes: Vec::new(),
            periodic_reports: Vec::new(),
            service_accounts: Vec::new(),
            course_accounts: Vec::new(),
            consents: BTreeMap::new(),
            resource_api_keys: BTreeMap::new(),
            backend_resource_requests: BTreeMap::new(),
            backend_resources: BTreeMap::new(),
            role_grants: BTreeMap::new(),
            identity_bridge: s.identity_bridge.clone(),
            identity_bridge_log: Vec::new(),
            consumer_orders: s.consumer_orders.clone(),
            usage_index: HashMap::new(),
            usages_by_resource: HashMap::new(),
        };
        s.consumer_orders.validate()?;
        if st.settings.default_page_size == 0 {
            return Err(invalid("settings.default_page_size must be > 0".into()));
        }

        for c in &s.customers {
            let uuid = id_or_new(&c.uuid, "customer")?;
            let sp = id_or_new(&c.service_provider_uuid, "customer.service_provider_uuid")?;
            st.customers.insert(
                uuid.clone(),
                Customer {
                    uuid,
                    name: c.name.clone(),
                    slug: c.slug.clone().unwrap_or_else(|| slugify(&c.name)),
                    service_provider_uuid: sp,
                },
            );
        }
        for p in &s.projects {
            let uuid = id_or_new(&p.uuid, "project")?;
            let customer_uuid = st.customer_ref(&p.customer)?;
            st.projects.insert(
                uuid.clone(),
                Project {
                    uuid,
                    name: p.name.clone(),
                    slug: p.slug.clone().unwrap_or_else(|| slugify(&p.name)),
                    customer_uuid,
                    description: p.description.clone(),
                    end_date: p.end_date.clone(),
                    end_date_updated_at: None,
                    backend_id: p.backend_id.clone(),
                    details: p.details.clone(),
                },
            );
        }
        for d in &s.science_sub_domains {
            let uuid = id_or_new(&d.uuid, "science sub-domain")?;
            st.science_sub_domains.insert(
                uuid.clone(),
                ScienceSubDomain {
                    uuid,
                    code: d.code.clone(),
                    name: d.name.clone(),
                },
            );
        }
        for u in &s.users {
            let uuid = id_or_new(&u.uuid, "user")?;
            st.users.insert(
                uuid.clone(),
                User::new(
                    uuid,
                    u.username.clone(),
                    u.full_name.clone(),
                    u.email.clone(),
                ),
            );
        }
        for m in &s.team {
            let project_uuid =
                resolve(&st.projects, &m.project, "project", |p| [&p.name, &p.slug])?;
            let user_uuid = st.user_ref(&m.user)?;
            st.team.push(TeamMember {
                project_uuid,
                user_uuid,
                role: m.role.clone().unwrap_or_else(|| "PROJECT.MEMBER".into()),
            });
        }
        for o in &s.offerings {
            let uuid = id_or_new(&o.uuid, "offering")?;
            let customer_uuid = st.customer_ref(&o.customer)?;
            let mut components = Vec::new();
            for c in &o.components {
                if c.type_.is_empty() {
                    return Err(invalid(format!(
                        "offering '{}': component without type",
                        o.name
                    )));
                }
                components.push(Component {
                    uuid: id_or_new(&c.uuid, "component")?,
                    type_: c.type_.clone(),
                    name: c.name.clone().unwrap_or_else(|| c.type_.to_uppercase()),
                    measured_unit: c.measured_unit.clone(),
                    billing_type: c.billing_type.clone(),
                    limit_amount: c.limit_amount,
                    limit_period: c.limit_period.clone(),
                    unit_factor: c.unit_factor,
                });
            }
            st.offerings.insert(
                uuid.clone(),
                Offering {
                    uuid,
                    name: o.name.clone(),
                    customer_uuid,
                    components,
                    plugin_options: o.plugin_options.clone(),
                    partitions: o.partitions.clone(),
                    backend_id: o.backend_id.clone(),
                    state: o.state.clone().unwrap_or_else(|| "Active".into()),
                },
            );
        }
        for p in &s.plans {
            let uuid = id_or_new(&p.uuid, "plan")?;
            let offering_uuid = st.offering_ref(&p.offering)?;
            st.plans.insert(
                uuid.clone(),
                Plan {
                    uuid,
                    name: p.name.clone(),
                    offering_uuid,
                    quotas: p.quotas.clone(),
                },
            );
        }
        for ou in &s.offering_users {
            let uuid = id_or_new(&ou.uuid, "offering_user")?;
            let offering_uuid = st.offering_ref(&ou.offering)?;
            let user_uuid = st.user_ref(&ou.user)?;
            let default_state = if ou.username.is_some() {
                "OK"
            } else {
                "Requested"
            };
            st.offering_users.insert(
                uuid.clone(),
                OfferingUser {
                    uuid,
                    offering_uuid,
                    user_uuid,
                    username: ou.username.clone(),
                    state: ou.state.clone().unwrap_or_else(|| default_state.into()),
                    is_restricted: ou.is_restricted,
                    comment: String::new(),
                    comment_url: None,
                    created: ts.clone(),
                    modified: ts.clone(),
                },
            );
        }
        for r in &s.resources {
            let uuid = id_or_new(&r.uuid, "resource")?;
            let offering_uuid = st.offering_ref(&r.offering)?;
            let project_uuid = st.project_ref(&r.project)?;
            let plan_uuid = match &r.plan {
                Some(p) => Some(st.plan_ref(p)?),
                None => None,
            };
            st.resources.insert(
                uuid.clone(),
                Resource {
                    uuid,
                    name: r.name.clone(),
                    slug: r.slug.clone().unwrap_or_else(|| slugify(&r.name)),
                    offering_uuid,
                    project_uuid,
                    state: r.state.clone().unwrap_or_else(|| "OK".into()),
                    limits: r.limits.clone(),
                    backend_id: r.backend_id.clone(),
                    paused: r.paused,
                    downscaled: r.downscaled,
                    restrict_member_access: r.restrict_member_access,
                    plan_uuid,
                    attributes: r.attributes.clone(),
                    backend_metadata: r.backend_metadata.clone(),
                    endpoints: Vec::new(),
                    end_date: r.end_date.clone(),
                    end_date_updated_at: None,
                    end_date_requested_by: None,
                    effective_id: String::new(),
                    error_message: String::new(),
                    error_traceback: String::new(),
                    last_sync: None,
                    membership_sync_statuses: Vec::new(),
                    created: ts.clone(),
                    modified: ts.clone(),
                },
            );
        }
        for o in &s.orders {
            st.load_order(o, &ts)?;
        }
        for u in &s.component_usages {
            let resource_uuid = st.resource_ref(&u.resource)?;
            let usage = decimal_string(&u.usage).map_err(invalid)?;
            let uuid = id_or_new(&u.uuid, "component_usage")?;
            let period = billing_period_of(&u.billing_period)
                .ok_or_else(|| invalid(format!("bad billing_period '{}'", u.billing_period)))?;
            st.insert_usage(ComponentUsage {
                uuid,
                resource_uuid,
                type_: u.type_.clone(),
                usage,
                date: format!("{period}T00:00:00Z"),
                billing_period: period,
                created: ts.clone(),
                modified: ts.clone(),
            });
        }
        for u in &s.user_usages {
            let cu = match &u.component_usage {
                Some(c) => ids::normalize(c)
                    .filter(|c| st.component_usages.contains_key(c))
                    .ok_or_else(|| invalid(format!("unknown component usage '{c}'")))?,
                None => {
                    let resource = st.resource_ref(u.resource.as_deref().unwrap_or(""))?;
                    let key = (
                        resource,
                        u.type_.clone().unwrap_or_default(),
                        billing_period_of(u.billing_period.as_deref().unwrap_or(""))
                            .unwrap_or_default(),
                    );
                    st.usage_index.get(&key).cloned().ok_or_else(|| {
                        invalid(format!("user usage: no component usage for {key:?}"))
                    })?
                }
            };
            let uuid = id_or_new(&u.uuid, "user_usage")?;
            let date = st.component_usages[&cu].date.clone();
            st.user_usages.insert(
                uuid.clone(),
                UserUsage {
                    uuid,
                    component_usage_uuid: cu,
                    username: u.username.clone(),
                    usage: decimal_string(&u.usage).map_err(invalid)?,
                    date,
                    user: None,
                    created: ts.clone(),
                    modified: ts.clone(),
                },
            );
        }
        for k in &s.ssh_keys {
            let uuid = id_or_new(&k.uuid, "ssh_key")?;
            let service_provider_uuid = st.service_provider_ref(&k.service_provider)?;
            st.ssh_keys.insert(
                uuid.clone(),
                SshKey {
                    uuid,
                    service_provider_uuid,
                    name: k.name.clone(),
                    public_key: k.public_key.clone(),
                },
            );
        }
        for l in &s.component_user_usage_limits {
            let uuid = id_or_new(&l.uuid, "component_user_usage_limit")?;
            let resource_uuid = st.resource_ref(&l.resource)?;
            st.component_user_usage_limits.insert(
                uuid.clone(),
                UserUsageLimit {
                    uuid,
                    resource_uuid,
                    component_type: l.component_type.clone(),
                    user: l.user.clone(),
                    limit: decimal_string(&l.limit).map_err(invalid)?,
                },
            );
        }
        Ok(st)
    }

    /// Adds an order (and, for a `Create` without a resource, its new resource) as
    /// Mastermind does when a user orders; answers the order's id.
    pub fn load_order(
        &mut self,
        o: &crate::scenario::OrderSpec,
        ts: &str,
    ) -> Result<String, ScenarioError> {
        let uuid = id_or_new(&o.uuid, "order")?;
        let type_ = o.type_.clone().unwrap_or_else(|| "Create".into());
        if !["Create", "Update", "Terminate", "Restore"].contains(&type_.as_str()) {
            return Err(invalid(format!(
                "order type '{type_}' is not one of Create/Update/Terminate/Restore"
            )));
        }
        let state = o.state.clone().unwrap_or_else(|| "pending-provider".into());
        let plan_uuid = match &o.plan {
            Some(p) => Some(self.plan_ref(p)?),
            None => None,
        };
        let resource_uuid = match &o.resource {
            Some(r) => self.resource_ref(r)?,
            None if type_ == "Create" => {
                // Mastermind creates the resource together with a Create order.
                let offering = self.offering_ref(o.offering.as_deref().unwrap_or(""))?;
                let project = self.project_ref(o.project.as_deref().unwrap_or(""))?;
                let name = o.resource_name.clone().ok_or_else(|| {
                    invalid("Create order without resource needs resource_name".into())
                })?;
                let rid = ids::generate();
                self.resources.insert(
                    rid.clone(),
                    Resource {
                        uuid: rid.clone(),
                        slug: slugify(&name),
                        name,
                        offering_uuid: offering,
                        project_uuid: project,
                        state: "Creating".into(),
                        limits: o.limits.clone(),
                        backend_id: String::new(),
                        paused: false,
                        downscaled: false,
                        restrict_member_access: false,
                        plan_uuid: plan_uuid.clone(),
                        attributes: o.attributes.clone(),
                        backend_metadata: Map::new(),
                        endpoints: Vec::new(),
                        end_date: None,
                        end_date_updated_at: None,
                        end_date_requested_by: None,
                        effective_id: String::new(),
                        error_message: String::new(),
                        error_traceback: String::new(),
                        last_sync: None,
                        membership_sync_statuses: Vec::new(),
                        created: ts.to_string(),
                        modified: ts.to_string(),
                    },
                );
                rid
            }
            None => return Err(invalid(format!("{type_} order needs a resource"))),
        };
        let res = self
            .resources
            .get_mut(&resource_uuid)
            .expect("resolved above");
        // An open Update/Terminate order puts its resource into the matching transitional state,
        // as Mastermind does when the order is created.
        if matches!(state.as_str(), "pending-provider" | "executing") && res.state == "OK" {
            match type_.as_str() {
                "Update" => res.state = "Updating".into(),
                "Terminate" => res.state = "Terminating".into(),
                _ => {}
            }
        }
        let order = Order {
            uuid: uuid.clone(),
            type_,
            state,
            offering_uuid: res.offering_uuid.clone(),
            resource_uuid: resource_uuid.clone(),
            project_uuid: res.project_uuid.clone(),
            resource_name: o.resource_name.clone().unwrap_or_else(|| res.name.clone()),
            limits: o.limits.clone(),
            attributes: o.attributes.clone(),
            plan_uuid,
            backend_id: o.backend_id.clone(),
            error_message: String::new(),
            error_traceback: String::new(),
            created: ts.to_string(),
            modified: ts.to_string(),
        };
        self.orders.insert(uuid.clone(), order);
        Ok(uuid)
    }

    fn customer_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.customers, r, "customer", |c| [&c.name, &c.slug])
    }
    fn user_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.users, r, "user", |u| [&u.username, &u.username])
    }
    fn project_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.projects, r, "project", |p| [&p.name, &p.slug])
    }
    fn offering_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.offerings, r, "offering", |o| [&o.name, &o.name])
    }
    fn plan_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.plans, r, "plan", |p| [&p.name, &p.name])
    }
    fn resource_ref(&self, r: &str) -> Result<String, ScenarioError> {
        resolve(&self.resources, r, "resource", |x| [&x.name, &x.slug])
    }
    fn service_provider_ref(&self, r: &str) -> Result<String, ScenarioError> {
        if let Some(id) = ids::normalize(r) {
            if let Some(c) = self
                .customers
                .values()
                .find(|c| c.service_provider_uuid == id)
            {
                return Ok(c.service_provider_uuid.clone());
            }
        }
        let c = self.customer_ref(r)?;
        Ok(self.customers[&c].service_provider_uuid.clone())
    }

    /// Inserts or replaces a component usage, keeping the lookup indexes in step.
    pub fn insert_usage(&mut self, u: ComponentUsage) {
        self.usage_index.insert(
            (
                u.resource_uuid.clone(),
                u.type_.clone(),
                u.billing_period.clone(),
            ),
            u.uuid.clone(),
        );
        self.usages_by_resource
            .entry(u.resource_uuid.clone())
            .or_default()
            .insert(u.uuid.clone());
        self.component_usages.insert(u.uuid.clone(), u);
    }

    pub fn find_usage(&self, resource: &str, type_: &str, period: &str) -> Option<&ComponentUsage> {
        self.usage_index
            .get(&(resource.to_string(), type_.to_string(), period.to_string()))
            .and_then(|id| self.component_usages.get(id))
    }

    pub fn usages_of_resource(&self, resource: &str) -> impl Iterator<Item = &ComponentUsage> {
        self.usages_by_resource
            .get(resource)
            .into_iter()
            .flatten()
            .filter_map(|id| self.component_usages.get(id))
    }

    pub fn customer_by_service_provider(&self, sp: &str) -> Option<&Customer> {
        self.customers
            .values()
            .find(|c| c.service_provider_uuid == sp)
    }

    pub fn offering_user_for(&self, offering: &str, user: &str) -> Option<&OfferingUser> {
        self.offering_users
            .values()
            .find(|ou| ou.offering_uuid == offering && ou.user_uuid == user)
    }
}

/// `YYYY-MM-01` for a date or datetime string (only its `YYYY-MM` prefix matters).
pub fn billing_period_of(date: &str) -> Option<String> {
    let b = date.as_bytes();
    if b.len() < 7
        || b[4] != b'-'
        || !b[..4].iter().all(u8::is_ascii_digit)
        || !b[5..7].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let month: u32 = date[5..7].parse().ok()?;
    (1..=12)
        .contains(&month)
        .then(|| format!("{}-01", &date[..7]))
}
