//! Auth, pagination, UUID forms, response shapes and scenario loading.

use crate::common::*;
use serde_json::{json, Value};
use waldur_sim::{Scenario, Simulator};

#[tokio::test]
async fn auth_rejects_missing_and_wrong_tokens_and_accepts_oidc_bearer() {
    let (s, _) = fixture();
    let c = Client::start(s);
    let url = c.url("users/me/");
    let r = c.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .http
        .get(&url)
        .header("Authorization", "Token nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"], "Invalid token.");
    assert_eq!(c.get("users/me/").await.status(), 200);

    // OIDC client credentials -> bearer token.
    let token_url = c.sim.oidc_token_url();
    let bad = c
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "agent"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let tok: Value = c
        .http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "agent"),
            ("client_secret", "secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tok["expires_in"], 300);
    let bearer = format!("Bearer {}", tok["access_token"].as_str().unwrap());
    let r = c
        .http
        .get(&url)
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A static token is not a bearer token and vice versa.
    let r = c
        .http
        .get(&url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    c.sim.revoke_bearer_tokens();
    let r = c
        .http
        .get(&url)
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

fn next_link(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().ok()?.to_string();
    link.split(", ").find_map(|part| {
        let (url, rel) = part.split_once("; ")?;
        (rel == "rel=\"next\"").then(|| url.trim_matches(|c| c == '<' || c == '>').to_string())
    })
}

#[tokio::test]
async fn pagination_defaults_to_ten_and_links_every_page() {
    let (s, offering) = Scenario::generated(25);
    let mut c = Client::start(s);
    c.auth = format!("Token {}", Scenario::DEFAULT_TOKEN);
    let first = c
        .get(&format!(
            "marketplace-provider-resources/?offering_uuid={offering}"
        ))
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-result-count"], "25");
    let mut next = next_link(&first);
    let items: Vec<Value> = first.json().await.unwrap();
    assert_eq!(items.len(), 10, "default page size is 10");
    let mut seen: Vec<String> = items
        .iter()
        .map(|r| r["uuid"].as_str().unwrap().to_string())
        .collect();
    let mut pages = 1;
    while let Some(url) = next {
        assert!(
            url.contains(&format!("offering_uuid={offering}")),
            "filters kept: {url}"
        );
        let r = c
            .http
            .get(&url)
            .header("Authorization", &c.auth)
            .send()
            .await
            .unwrap();
        next = next_link(&r);
        let page: Vec<Value> = r.json().await.unwrap();
        seen.extend(page.iter().map(|r| r["uuid"].as_str().unwrap().to_string()));
        pages += 1;
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 25);

    let all: Vec<Value> = c
        .get_json("marketplace-provider-resources/?page_size=100")
        .await
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 25);
    let last = c
        .get("marketplace-provider-resources/?page_size=10&page=3")
        .await;
    assert!(next_link(&last).is_none());
    assert_eq!(last.json::<Vec<Value>>().await.unwrap().len(), 5);
    assert_eq!(
        c.get("marketplace-provider-resources/?page=4")
            .await
            .status(),
        404
    );
    // page_size is capped like Mastermind's maximum.
    let (s, _) = Scenario::generated(150);
    let mut c = Client::start(s);
    c.auth = format!("Token {}", Scenario::DEFAULT_TOKEN);
    let r = c
        .get("marketplace-provider-resources/?page_size=1000")
        .await;
    assert!(next_link(&r).is_some());
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 100);
}

#[tokio::test]
async fn repeated_state_filters_and_empty_lists() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    let q = format!(
        "marketplace-orders/?offering_uuid={}&state=pending-provider&state=executing",
        ids.offering
    );
    assert_eq!(c.get_json(&q).await.as_array().unwrap().len(), 3);
    let q = format!(
        "marketplace-orders/?offering_uuid={}&state=pending-provider",
        ids.offering
    );
    assert_eq!(c.get_json(&q).await.as_array().unwrap().len(), 1);
    let r = c.get("marketplace-orders/?state=done").await;
    assert!(r.headers().get("link").is_some());
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 0);
    let q = "marketplace-provider-resources/?state=Updating&state=Terminating&field=uuid&field=backend_id";
    assert_eq!(c.get_json(q).await.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn uuids_accepted_dashed_hex_and_upper_case() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    for form in [
        ids.order_create.clone(),
        dashed(&ids.order_create),
        dashed(&ids.order_create).to_uppercase(),
    ] {
        let o = c.get_json(&format!("marketplace-orders/{form}/")).await;
        assert_eq!(o["uuid"], ids.order_create);
    }
    let hex = c
        .get_json(&format!(
            "marketplace-orders/?offering_uuid={}",
            ids.offering
        ))
        .await;
    let dsh = c
        .get_json(&format!(
            "marketplace-orders/?offering_uuid={}",
            dashed(&ids.offering)
        ))
        .await;
    assert_eq!(hex, dsh);
    assert_eq!(c.get("marketplace-orders/not-a-uuid/").await.status(), 404);
    assert_eq!(
        c.get("marketplace-orders/?offering_uuid=zzz")
            .await
            .status(),
        400
    );
    assert_eq!(
        c.get(&format!("marketplace-orders/{}/", "0".repeat(32)))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn every_response_has_the_fields_the_agent_requires() {
    let (s, ids) = fixture();
    let c = Client::start(s);
    assert_fields(&c.get_json("version/").await, &["version"]);
    assert_fields(
        &c.get_json("users/me/").await,
        &["uuid", "username", "full_name", "is_staff", "permissions"],
    );
    let off = c
        .get_json(&format!("marketplace-provider-offerings/{}/", ids.offering))
        .await;
    assert_fields(
        &off,
        &[
            "uuid",
            "name",
            "customer_uuid",
            "components",
            "partitions",
            "plugin_options",
            "state",
            "backend_id",
        ],
    );
    assert_eq!(off["partitions"], json!([{"partition_name": "batch"}]));
    assert!(off["plugin_options"].is_object());
    for comp in off["components"].as_array().unwrap() {
        assert_fields(
            comp,
            &[
                "uuid",
                "type",
                "name",
                "measured_unit",
                "billing_type",
                "limit_amount",
                "unit_factor",
                "limit_period",
            ],
        );
    }
    let sps = c
        .get_json(&format!(
            "marketplace-service-providers/?customer_uuid={}&field=uuid",
            ids.customer
        ))
        .await;
    assert_eq!(sps.as_array().unwrap().len(), 1);
    assert_fields(&sps[0], &["uuid"]);
    let sp = sps[0]["uuid"].as_str().unwrap();
    let keys = c
        .get_json(&format!("marketplace-service-providers/{sp}/keys/"))
        .await;
    assert_fields(&keys[0], &["uuid", "public_key"]);
    let cfg = c
        .get_json(&format!(
            "marketplace-provider-offerings/{}/user-attribute-config/",
            ids.offering
        ))
        .await;
    assert_fields(
        &cfg,
        &[
            "uuid",
            "created",
            "modified",
            "exposed_fields",
            "is_default",
            "offering_uuid",
            "offering_name",
        ],
    );
    let plan = c
        .get_json(&format!("marketplace-plans/{}/", dashed(&ids.plan)))
        .await;
    assert_fields(
        &plan,
        &[
            "url",
            "uuid",
            "name",
            "is_active",
            "init_price",
            "switch_price",
            "organization_groups",
            "components",
            "offering",
            "prices",
            "future_prices",
            "quotas",
            "resources_count",
            "plan_type",
            "minimal_price",
        ],
    );
    assert_eq!(plan["quotas"]["cpu"], 7);
    let order = c
        .get_json(&format!("marketplace-orders/{}/", ids.order_create))
        .await;
    assert_fields(
        &order,
        &[
            "uuid",
            "type",
            "state",
            "marketplace_resource_uuid",
            "resource_name",
            "limits",
            "plan_uuid",
            "backend_id",
            "project_slug",
            "project_uuid",
            "customer_uuid",
            "offering_uuid",
            "attributes",
        ],
    );
    let res = c
        .get_json(&format!("marketplace-provider-resources/{}/", ids.res_ok))
        .await;
    assert_fields(
        &res,
        &[
            "uuid",
            "name",
            "slug",
            "backend_id",
            "state",
            "limits",
            "offering_plugin_options",
            "project_uuid",
            "project_slug",
            "customer_slug",
            "customer_name",
            "project_name",
            "project_description",
            "customer_uuid",
            "restrict_member_access",
            "paused",
            "downscaled",
            "backend_metadata",
            "attributes",
            "plan_uuid",
            "end_date",
            "end_date_updated_at",
            "project_end_date",
            "offering_backend_id",
            "offering_uuid",
        ],
    );
    assert_eq!(res["plan_uuid"], ids.plan);
    // The client parses last_sync as a datetime whenever the key is present: never null.
    assert!(res["last_sync"].is_string());
    let team = c
        .get_json(&format!(
            "marketplace-provider-resources/{}/team/",
            ids.res_ok
        ))
        .await;
    assert_eq!(team.as_array().unwrap().len(), 2);
    for m in team.as_array().unwrap() {
        assert_fields(
            m,
            &[
                "url",
                "uuid",
                "username",
                "full_name",
                "role",
                "expiration_time",
                "offering_user_username",
                "offering_user_state",
            ],
        );
    }
    let alice = team
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["uuid"] == ids.user)
        .unwrap();
    assert_eq!(alice["offering_user_username"], "alice1");
    assert_eq!(alice["role"], "PROJECT.ADMIN");
    let ous = c
        .get_json(&format!(
            "marketplace-offering-users/?offering_uuid={}&is_restricted=false",
            ids.offering
        ))
        .await;
    assert_eq!(ous.as_array().unwrap().len(), 2);
    for ou in ous.as_array().unwrap() {
        assert_fields(
            ou,
            &[
                "uuid",
                "url",
                "user_uuid",
                "username",
                "state",
                "user_username",
                "user_email",
                "user_full_name",
                "user_first_name",
                "user_last_name",
            ],
        );
    }
    let limits = c
        .get_json(&format!(
            "component-user-usage-limits/?resource_uuid={}",
            ids.res_ok
        ))
        .await;
    assert_fields(
        &limits[0],
        &[
            "url",
            "uuid",
            "resource",
            "component",
            "component_type",
            "user",
            "limit",
        ],
    );
    assert_eq!(limits[0]["user"], "alice1");
    for rel in ["list_project_service_accounts", "list_course_accounts"] {
        let v = c
            .get_json(&format!(
                "marketplace-provider-offerings/{}/{rel}/?page_size=100",
                ids.offering
            ))
            .await;
        assert_eq!(v, json!([]));
    }
}

#[test]
fn scenario_loads_from_yaml_with_name_references_and_generated_ids() {
    let yaml = r#"
customers: [{name: Org, slug: org}]
projects: [{name: P1, customer: org}]
users: [{username: u@idp, full_name: U One}]
team: [{project: P1, user: u@idp, role: PROJECT.MANAGER}]
offerings:
  - name: Off
    customer: Org
    components: [{type: cpu, billing_type: usage}]
    plugin_options: {username_generation_policy: service_provider}
offering_users: [{offering: Off, user: u@idp}]
resources: [{name: r1, offering: Off, project: P1, backend_id: b1}]
orders:
  - {type: Create, offering: Off, project: P1, resource_name: r2, limits: {cpu: 3}}
  - {type: Update, resource: r1, limits: {cpu: 9}}
component_usages: [{resource: r1, type: cpu, usage: "1.50", billing_period: "2026-01-01"}]
user_usages: [{resource: r1, type: cpu, billing_period: "2026-01-15", username: u1, usage: 1}]
"#;
    let s = Scenario::from_yaml_str(yaml).unwrap();
    let sim = Simulator::start(s).unwrap();
    sim.with_store(|st| {
        assert_eq!(
            st.resources.len(),
            2,
            "Create order without resource creates one"
        );
        let r2 = st.resources.values().find(|r| r.name == "r2").unwrap();
        assert_eq!(r2.state, "Creating");
        let r1 = st.resources.values().find(|r| r.name == "r1").unwrap();
        assert_eq!(
            r1.state, "Updating",
            "open Update order moves OK -> Updating"
        );
        let ou = st.offering_users.values().next().unwrap();
        assert_eq!(ou.state, "Requested");
        assert_eq!(st.component_usages.values().next().unwrap().usage, "1.50");
        assert_eq!(st.user_usages.len(), 1);
        assert!(st.orders.values().all(|o| o.state == "pending-provider"));
        assert!(st
            .orders
            .keys()
            .all(|k| waldur_sim::ids::normalize(k).as_deref() == Some(k.as_str())));
    });
    // Unknown keys and dangling references are errors, not silent defaults.
    assert!(Scenario::from_yaml_str("customerz: []").is_err());
    let bad = Scenario::from_yaml_str("projects: [{name: P, customer: nobody}]").unwrap();
    assert!(Simulator::start(bad).is_err());
}

#[test]
fn committed_conformance_scenario_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/conformance.yaml");
    let sim = Simulator::start(Scenario::from_file(path).unwrap()).unwrap();
    sim.with_store(|st| {
        assert_eq!(st.orders.len(), 3);
        assert_eq!(
            st.resources["88888888888888888888888888888803"].state,
            "Terminating"
        );
    });
}

#[tokio::test]
async fn builder_handles_ten_thousand_resources() {
    let (s, offering) = Scenario::generated(10_000);
    assert_eq!(s.resources.len(), 10_000);
    // Round-trips through YAML too (benchmarks may write it to a file for the binary).
    let yaml = s.to_yaml();
    assert_eq!(
        Scenario::from_yaml_str(&yaml).unwrap().resources.len(),
        10_000
    );
    let mut c = Client::start(s);
    c.auth = format!("Token {}", Scenario::DEFAULT_TOKEN);
    c.sim.set_request_log(false, false);
    let r = c
        .get(&format!(
            "marketplace-provider-resources/?offering_uuid={offering}&state=OK&page_size=100"
        ))
        .await;
    assert_eq!(r.headers()["x-result-count"], "10000");
    assert!(c.sim.requests().is_empty(), "log disabled");
    assert_eq!(c.sim.total_requests(), 1, "counters still kept");
}

#[test]
fn dropping_the_simulator_frees_its_port() {
    let (s, _) = fixture();
    let sim = Simulator::start(s).unwrap();
    let addr = sim.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    drop(sim);
    std::net::TcpListener::bind(addr).expect("port is free again");
}
