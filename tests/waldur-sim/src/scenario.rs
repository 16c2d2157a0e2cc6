//! The scenario: everything the simulator is seeded with, as plain data. It is read from YAML
//! (or JSON) files or built in Rust with the `add_*` helpers, which only push onto vectors so
//! generating 10,000 resources stays cheap. References between entities are ids (any UUID form)
//! or, for readability in hand-written files, names/slugs/usernames; `Store::from_scenario`
//! resolves them and generates every id the scenario leaves out.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid scenario YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// Server-wide knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Page size used when a list request has no `page_size` (Mastermind's default is 10, so a
    /// client that forgets `page_size` and ignores `Link` loses data visibly).
    pub default_page_size: usize,
    /// Upper bound for `page_size`; waldur-api-client documents 100 as "the maximum allowed",
    /// so larger requests get 100 items and a `Link` to the next page.
    pub max_page_size: usize,
    /// Answer of `GET /api/version/`.
    pub version: String,
    /// Keep request and response bodies in the request log (turn off for large benchmarks).
    pub log_bodies: bool,
    /// Keep a request log at all (counters are always kept).
    pub request_log: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_page_size: 10,
            max_page_size: 100,
            version: "8.1.3".into(),
            log_bodies: true,
            request_log: true,
        }
    }
}

/// The authenticated account answering `GET /api/users/me/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentUser {
    pub uuid: Option<String>,
    pub username: String,
    pub full_name: String,
    pub is_staff: bool,
}

impl Default for AgentUser {
    fn default() -> Self {
        AgentUser {
            uuid: None,
            username: "agent".into(),
            full_name: "Site Agent".into(),
            is_staff: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcClient {
    pub client_id: String,
    pub client_secret: String,
    /// Lifetime announced in `expires_in`; 0 means 300 s.
    pub expires_in: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CustomerSpec {
    pub uuid: Option<String>,
    pub name: String,
    pub slug: Option<String>,
    /// Id of the customer's service provider (generated when absent; every customer is one).
    pub service_provider_uuid: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSpec {
    pub uuid: Option<String>,
    pub name: String,
    pub slug: Option<String>,
    /// Customer id, name or slug.
    pub customer: String,
    pub description: String,
    pub end_date: Option<String>,
    /// The project's id in another system (the federation's source project uuid).
    pub backend_id: String,
    /// Further project fields Mastermind has (`oecd_fos_2007_code`, `is_industry`, ...),
    /// rendered as they are where the agent asks for them (B12).
    pub details: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScienceSubDomainSpec {
    pub uuid: Option<String>,
    /// What Waldurs share (their uuids differ), e.g. `1.1.2`.
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSpec {
    pub uuid: Option<String>,
    /// Waldur username (the CUID, e.g. `cuid@idp`).
    pub username: String,
    pub full_name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeamMemberSpec {
    /// Project id, name or slug.
    pub project: String,
    /// User id or username.
    pub user: String,
    /// `PROJECT.ADMIN`, `PROJECT.MANAGER` or `PROJECT.MEMBER` (default).
    pub role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentSpec {
    pub uuid: Option<String>,
    #[serde(rename = "type")]
    pub type_: String,
    pub name: Option<String>,
    pub measured_unit: String,
    pub billing_type: String,
    pub limit_amount: Option<f64>,
    pub limit_period: Option<String>,
    pub unit_factor: i64,
}

impl Default for ComponentSpec {
    fn default() -> Self {
        ComponentSpec {
            uuid: None,
            type_: String::new(),
            name: None,
            measured_unit: "Hours".into(),
            billing_type: "usage".into(),
            limit_amount: None,
            limit_period: None,
            unit_factor: 1,
        }
    }
}

impl ComponentSpec {
    /// A usage-billed component of the given type.
    pub fn usage(type_: &str) -> Self {
        ComponentSpec {
            type_: type_.into(),
            ..Default::default()
        }
    }

    /// A limit-billed component of the given type.
    pub fn limit(type_: &str) -> Self {
        ComponentSpec {
            type_: type_.into(),
            billing_type: "limit".into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfferingSpec {
    pub uuid: Option<String>,
    pub name: String,
    /// Customer id, name or slug (the service provider's organisation).
    pub customer: String,
    pub components: Vec<ComponentSpec>,
    /// Free-form `plugin_options` (e.g. `username_generation_policy`).
    pub plugin_options: Map<String, Value>,
    /// Partition names (`partitions: [{partition_name}]` in responses).
    pub partitions: Vec<String>,
    pub backend_id: String,
    /// Defaults to `Active`.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanSpec {
    pub uuid: Option<String>,
    pub name: String,
    /// Offering id or name.
    pub offering: String,
    /// `{component type: amount}`.
    pub quotas: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfferingUserSpec {
    pub uuid: Option<String>,
    /// Offering id or name.
    pub offering: String,
    /// User id or username.
    pub user: String,
    /// Offering-level username (`null` until the provider sets it).
    pub username: Option<String>,
    /// Defaults to `OK` when a username is given, `Requested` otherwise.
    pub state: Option<String>,
    pub is_restricted: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSpec {
    pub uuid: Option<String>,
    pub name: String,
    pub slug: Option<String>,
    /// Offering id or name.
    pub offering: String,
    /// Project id, name or slug.
    pub project: String,
    /// Defaults to `OK`.
    pub state: Option<String>,
    pub limits: Map<String, Value>,
    pub backend_id: String,
    pub paused: bool,
    pub downscaled: bool,
    pub restrict_member_access: bool,
    /// Plan id or name.
    pub plan: Option<String>,
    pub attributes: Map<String, Value>,
    pub backend_metadata: Map<String, Value>,
    pub end_date: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderSpec {
    pub uuid: Option<String>,
    /// `Create` (default), `Update`, `Terminate` or `Restore`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Defaults to `pending-provider`.
    pub state: Option<String>,
    /// Resource id or name. A `Create` order without one gets a new resource in `Creating`
    /// (then `offering`, `project` and `resource_name` are required).
    pub resource: Option<String>,
    pub offering: Option<String>,
    pub project: Option<String>,
    pub resource_name: Option<String>,
    pub limits: Map<String, Value>,
    pub attributes: Map<String, Value>,
    pub plan: Option<String>,
    pub backend_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentUsageSpec {
    pub uuid: Option<String>,
    /// Resource id or name.
    pub resource: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// Decimal amount (number or string).
    pub usage: Value,
    /// `YYYY-MM-01`.
    pub billing_period: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserUsageSpec {
    pub uuid: Option<String>,
    /// Component usage id; or leave empty and give `resource`, `type` and `billing_period`.
    pub component_usage: Option<String>,
    pub resource: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub billing_period: Option<String>,
    /// Offering-level username.
    pub username: String,
    pub usage: Value,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshKeySpec {
    pub uuid: Option<String>,
    /// Customer id/name/slug or service-provider id that owns the key.
    pub service_provider: String,
    pub name: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserUsageLimitSpec {
    pub uuid: Option<String>,
    /// Resource id or name.
    pub resource: String,
    pub component_type: String,
    /// Offering-level username (Waldur returns a username in `user`).
    pub user: String,
    pub limit: Value,
}

/// A complete scenario. Every list may be empty; a scenario with no `tokens` accepts the
/// single token [`Scenario::DEFAULT_TOKEN`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub settings: Settings,
    pub tokens: Vec<String>,
    pub oidc_clients: Vec<OidcClient>,
    pub agent_user: AgentUser,
    pub customers: Vec<CustomerSpec>,
    pub projects: Vec<ProjectSpec>,
    pub users: Vec<UserSpec>,
    pub team: Vec<TeamMemberSpec>,
    pub offerings: Vec<OfferingSpec>,
    pub plans: Vec<PlanSpec>,
    pub offering_users: Vec<OfferingUserSpec>,
    pub resources: Vec<ResourceSpec>,
    pub orders: Vec<OrderSpec>,
    pub component_usages: Vec<ComponentUsageSpec>,
    pub user_usages: Vec<UserUsageSpec>,
    pub ssh_keys: Vec<SshKeySpec>,
    pub component_user_usage_limits: Vec<UserUsageLimitSpec>,
    /// `GET /api/science-sub-domains/`; a project names one by uuid and shows its code.
    pub science_sub_domains: Vec<ScienceSubDomainSpec>,
    /// How `/api/identity-bridge/` behaves.
    pub identity_bridge: IdentityBridgeSpec,
    /// How orders placed through the consumer API (`POST /api/marketplace-orders/`,
    /// `update_limits`, `terminate`) start and whether they finish by themselves.
    pub consumer_orders: ConsumerOrdersSpec,
}

/// The identity bridge of a target Waldur: which profile fields it takes, which usernames it
/// cannot resolve, and whether it exists at all (`enabled: false` -> 404 on its paths).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityBridgeSpec {
    pub enabled: bool,
    pub allowed_fields: Vec<String>,
    pub refused_usernames: Vec<String>,
}

impl Default for IdentityBridgeSpec {
    fn default() -> Self {
        IdentityBridgeSpec {
            enabled: true,
            allowed_fields: [
                "first_name",
                "last_name",
                "email",
                "organization",
                "affiliations",
            ]
            .map(String::from)
            .to_vec(),
            refused_usernames: Vec::new(),
        }
    }
}

/// Consumer orders: `initial_state` (`pending-provider` when absent, or `executing`), and
/// `complete_after_ms` (absent = never) after which each one moves to `final_state`
/// (default `done`), as the target's own site agent would.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerOrdersSpec {
    pub initial_state: Option<String>,
    pub complete_after_ms: Option<u64>,
    pub final_state: Option<String>,
}

impl ConsumerOrdersSpec {
    /// Refuses states a consumer order cannot start in or finish with.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if let Some(s) = &self.initial_state {
            if !["pending-provider", "executing"].contains(&s.as_str()) {
                return Err(ScenarioError::Invalid(format!(
                    "consumer_orders.initial_state '{s}' is not pending-provider or executing"
                )));
            }
        }
        if let Some(s) = &self.final_state {
            if !crate::lifecycle::FINAL_STATES.contains(&s.as_str()) {
                return Err(ScenarioError::Invalid(format!(
                    "consumer_orders.final_state '{s}' is not one of {}",
                    crate::lifecycle::FINAL_STATES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Gives `spec.uuid` an id if it has none and returns the id: builder helpers hand ids back so
/// callers can reference what they just added.
fn assign(uuid: &mut Option<String>) -> String {
    match uuid {
        Some(u) => ids::normalize(u).unwrap_or_else(|| u.clone()),
        None => {
            let id = ids::generate();
            *uuid = Some(id.clone());
            id
        }
    }
}

impl Scenario {
    pub const DEFAULT_TOKEN: &'static str = "sim-token";

    pub fn from_yaml_str(text: &str) -> Result<Self, ScenarioError> {
        Ok(serde_norway::from_str(text)?)
    }

    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text)
    }

    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Tokens accepted with `Authorization: Token …`.
    pub fn effective_tokens(&self) -> Vec<String> {
        if self.tokens.is_empty() {
            vec![Self::DEFAULT_TOKEN.to_string()]
        } else {
            self.tokens.clone()
        }
    }

    pub fn add_customer(&mut self, name: &str) -> String {
        let mut spec = CustomerSpec {
            name: name.into(),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.customers.push(spec);
        id
    }

    pub fn add_project(&mut self, customer: &str, name: &str) -> String {
        let mut spec = ProjectSpec {
            name: name.into(),
            customer: customer.into(),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.projects.push(spec);
        id
    }

    pub fn add_user(&mut self, username: &str) -> String {
        let mut spec = UserSpec {
            username: username.into(),
            full_name: username.into(),
            email: format!("{username}@example.org"),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.users.push(spec);
        id
    }

    pub fn add_team_member(&mut self, project: &str, user: &str, role: &str) {
        self.team.push(TeamMemberSpec {
            project: project.into(),
            user: user.into(),
            role: Some(role.into()),
        });
    }

    pub fn add_offering(
        &mut self,
        customer: &str,
        name: &str,
        components: Vec<ComponentSpec>,
    ) -> String {
        let mut spec = OfferingSpec {
            name: name.into(),
            customer: customer.into(),
            components,
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.offerings.push(spec);
        id
    }

    pub fn add_plan(&mut self, mut spec: PlanSpec) -> String {
        let id = assign(&mut spec.uuid);
        self.plans.push(spec);
        id
    }

    pub fn add_offering_user(
        &mut self,
        offering: &str,
        user: &str,
        username: Option<&str>,
        state: &str,
    ) -> String {
        let mut spec = OfferingUserSpec {
            offering: offering.into(),
            user: user.into(),
            username: username.map(str::to_string),
            state: Some(state.into()),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.offering_users.push(spec);
        id
    }

    /// A resource in state `OK` (change fields through [`Scenario::resource_mut`] or pass a full
    /// spec to [`Scenario::add_resource_spec`]).
    pub fn add_resource(&mut self, offering: &str, project: &str, name: &str) -> String {
        self.add_resource_spec(ResourceSpec {
            name: name.into(),
            offering: offering.into(),
            project: project.into(),
            ..Default::default()
        })
    }

    pub fn add_resource_spec(&mut self, mut spec: ResourceSpec) -> String {
        let id = assign(&mut spec.uuid);
        self.resources.push(spec);
        id
    }

    /// The most recently added resource, for tweaking after `add_resource`.
    pub fn last_resource_mut(&mut self) -> &mut ResourceSpec {
        self.resources.last_mut().expect("no resource added yet")
    }

    pub fn add_order(&mut self, mut spec: OrderSpec) -> String {
        let id = assign(&mut spec.uuid);
        self.orders.push(spec);
        id
    }

    /// A `Create` order in `pending-provider` together with its resource in `Creating`.
    /// Returns `(order id, resource id)`.
    pub fn add_create_order(
        &mut self,
        offering: &str,
        project: &str,
        name: &str,
        limits: Map<String, Value>,
    ) -> (String, String) {
        let resource = self.add_resource_spec(ResourceSpec {
            name: name.into(),
            offering: offering.into(),
            project: project.into(),
            state: Some("Creating".into()),
            limits: limits.clone(),
            ..Default::default()
        });
        let order = self.add_order(OrderSpec {
            type_: Some("Create".into()),
            resource: Some(resource.clone()),
            limits,
            ..Default::default()
        });
        (order, resource)
    }

    pub fn add_component_usage(&mut self, mut spec: ComponentUsageSpec) -> String {
        let id = assign(&mut spec.uuid);
        self.component_usages.push(spec);
        id
    }

    pub fn add_user_usage(&mut self, mut spec: UserUsageSpec) -> String {
        let id = assign(&mut spec.uuid);
        self.user_usages.push(spec);
        id
    }

    pub fn add_ssh_key(&mut self, service_provider: &str, name: &str, public_key: &str) -> String {
        let mut spec = SshKeySpec {
            service_provider: service_provider.into(),
            name: name.into(),
            public_key: public_key.into(),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.ssh_keys.push(spec);
        id
    }

    pub fn add_user_usage_limit(
        &mut self,
        resource: &str,
        component_type: &str,
        user: &str,
        limit: f64,
    ) -> String {
        let mut spec = UserUsageLimitSpec {
            resource: resource.into(),
            component_type: component_type.into(),
            user: user.into(),
            limit: Value::from(limit),
            ..Default::default()
        };
        let id = assign(&mut spec.uuid);
        self.component_user_usage_limits.push(spec);
        id
    }

    /// A ready-made scenario with `n` resources in `OK` (with backend ids) on one offering with
    /// `cpu` and `mem` usage components, one project per 10 resources, one admin per project
    /// with an `OK` offering user. Used by tests and benchmarks. Returns the offering id too.
    pub fn generated(n: usize) -> (Scenario, String) {
        let mut s = Scenario::default();
        let customer = s.add_customer("Generated Customer");
        let offering = s.add_offering(
            &customer,
            "Generated Offering",
            vec![ComponentSpec::usage("cpu"), ComponentSpec::usage("mem")],
        );
        s.resources.reserve(n);
        let mut project = String::new();
        for i in 0..n {
            if i % 10 == 0 {
                project = s.add_project(&customer, &format!("project-{i}"));
                let user = s.add_user(&format!("user{i}@idp"));
                s.add_team_member(&project, &user, "PROJECT.ADMIN");
                s.add_offering_user(&offering, &user, Some(&format!("u{i}")), "OK");
            }
            let mut limits = Map::new();
            limits.insert("cpu".into(), Value::from(100));
            s.add_resource_spec(ResourceSpec {
                name: format!("res-{i}"),
                offering: offering.clone(),
                project: project.clone(),
                backend_id: format!("alloc_{i}"),
                limits,
                ..Default::default()
            });
        }
        (s, offering)
    }
}
