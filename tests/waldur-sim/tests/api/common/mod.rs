//! Shared fixture for the integration tests: a small scenario built with the Rust builder and
//! an HTTP client that talks to the simulator over real sockets.

#![allow(dead_code)]

use reqwest::{Method, Response};
use serde_json::{json, Map, Value};
use waldur_sim::scenario::{ComponentSpec, OrderSpec, PlanSpec, ResourceSpec};
use waldur_sim::{Scenario, Simulator};

pub const TOKEN: &str = "test-token";

/// Ids of the fixture's objects (normalised hex).
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub customer: String,
    pub project: String,
    pub user: String,
    pub offering: String,
    pub plan: String,
    pub ou_ok: String,
    pub ou_requested: String,
    pub res_creating: String,
    pub res_ok: String,
    pub res_terminate: String,
    pub order_create: String,
    pub order_update: String,
    pub order_terminate: String,
}

pub fn limits(pairs: &[(&str, i64)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

pub fn fixture() -> (Scenario, Ids) {
    let mut s = Scenario {
        tokens: vec![TOKEN.into()],
        ..Default::default()
    };
    s.oidc_clients.push(waldur_sim::scenario::OidcClient {
        client_id: "agent".into(),
        client_secret: "secret".into(),
        expires_in: 0,
    });
    let mut ids = Ids::default();
    ids.customer = s.add_customer("Customer One");
    ids.project = s.add_project(&ids.customer, "Project One");
    ids.user = s.add_user("alice@idp");
    let bob = s.add_user("bob@idp");
    s.add_team_member(&ids.project, &ids.user, "PROJECT.ADMIN");
    s.add_team_member(&ids.project, &bob, "PROJECT.MEMBER");
    ids.offering = s.add_offering(
        &ids.customer,
        "Offering One",
        vec![ComponentSpec::usage("cpu"), ComponentSpec::limit("mem")],
    );
    s.offerings[0].partitions = vec!["batch".into()];
    ids.plan = s.add_plan(PlanSpec {
        name: "Plan A".into(),
        offering: ids.offering.clone(),
        quotas: limits(&[("cpu", 7)]),
        ..Default::default()
    });
    ids.ou_ok = s.add_offering_user(&ids.offering, &ids.user, Some("alice1"), "OK");
    ids.ou_requested = s.add_offering_user(&ids.offering, &bob, None, "Requested");
    let (order, res) = s.add_create_order(
        &ids.offering,
        &ids.project,
        "new-res",
        limits(&[("cpu", 10)]),
    );
    ids.order_create = order;
    ids.res_creating = res;
    ids.res_ok = s.add_resource_spec(ResourceSpec {
        name: "ok-res".into(),
        offering: ids.offering.clone(),
        project: ids.project.clone(),
        backend_id: "alloc_ok".into(),
        limits: limits(&[("cpu", 1)]),
        plan: Some("Plan A".into()),
        ..Default::default()
    });
    ids.order_update = s.add_order(OrderSpec {
        type_: Some("Update".into()),
        state: Some("executing".into()),
        resource: Some(ids.res_ok.clone()),
        limits: limits(&[("cpu", 42)]),
        ..Default::default()
    });
    ids.res_terminate = s.add_resource(&ids.offering, &ids.project, "old-res");
    ids.order_terminate = s.add_order(OrderSpec {
        type_: Some("Terminate".into()),
        state: Some("executing".into()),
        resource: Some(ids.res_terminate.clone()),
        ..Default::default()
    });
    s.add_ssh_key(&ids.customer, "k1", "ssh-ed25519 AAAA test");
    s.add_user_usage_limit(&ids.res_ok, "cpu", "alice1", 5.0);
    (s, ids)
}

pub struct Client {
    pub sim: Simulator,
    pub http: reqwest::Client,
    pub auth: String,
}

impl Client {
    pub fn start(s: Scenario) -> Client {
        Client {
            sim: Simulator::start(s).expect("simulator starts"),
            http: reqwest::Client::new(),
            auth: format!("Token {TOKEN}"),
        }
    }

    /// `rel` is relative to the API root (`marketplace-orders/`) or absolute (`/__sim/state`).
    pub fn url(&self, rel: &str) -> String {
        if rel.starts_with('/') {
            format!("{}{rel}", self.sim.origin())
        } else {
            format!("{}{rel}", self.sim.url())
        }
    }

    pub async fn send(&self, method: Method, rel: &str, body: Option<Value>) -> Response {
        let mut req = self
            .http
            .request(method, self.url(rel))
            .header("Authorization", &self.auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, rel: &str) -> Response {
        self.send(Method::GET, rel, None).await
    }

    pub async fn post(&self, rel: &str, body: Value) -> Response {
        self.send(Method::POST, rel, Some(body)).await
    }

    /// POST without a body (like the agent's `set_state_done`).
    pub async fn post_empty(&self, rel: &str) -> Response {
        self.send(Method::POST, rel, None).await
    }

    pub async fn get_json(&self, rel: &str) -> Value {
        let r = self.get(rel).await;
        assert_eq!(r.status(), 200, "GET {rel}");
        r.json().await.expect("json body")
    }
}

/// Asserts every key is present in the object (null allowed only where listed as nullable).
pub fn assert_fields(v: &Value, required: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in required {
        assert!(obj.contains_key(*k), "missing field '{k}' in {v}");
    }
}

pub fn dashed(hex: &str) -> String {
    waldur_sim::ids::dashed(hex)
}
