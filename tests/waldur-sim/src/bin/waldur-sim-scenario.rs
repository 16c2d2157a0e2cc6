//! `waldur-sim-scenario`: writes a generated benchmark scenario for `scripts/bench-agent.sh`,
//! plus the matching backend state (the demo plugin's `state.json` format, which the Python
//! `sim-demo` backend in `scripts/python/` reads too) and usage files, so the Rust agent and the
//! reference Python agent get exactly the same work.
//!
//! ```text
//! waldur-sim-scenario --mode order_process|report|membership_sync --resources N
//!     [--users 10] [--resources-per-project 10] --offering-uuid HEX --token TOKEN
//!     --scenario FILE --state-dir DIR [--agent-username agent]
//! ```
//!
//! Layout: one customer (slug `cust`), one offering with usage components `cpu` and `mem`
//! (unit factor 1), one project `proj-P` per `--resources-per-project` resources, `--users`
//! users per project (so every resource has that many team members), each with an `OK`
//! offering user `uP_K`. Allocation ids are `a_res-I` (the agent's `allocation_prefix: a_` plus
//! the resource slug).
//!
//! Per mode:
//! - `order_process`: every resource is `Creating` with a `pending-provider` Create order
//!   (limits cpu 10, mem 10); the backend is empty.
//! - `report`: every resource is `OK` with its backend id; the backend has every account with
//!   all team members; `usage/<this month, UTC>/a_res-I.json` has usage for every member.
//! - `membership_sync`: as `report`, but each allocation has only the first `users - 2` team
//!   members plus one stale user `stale_I`: the agent adds 2 and removes 1 per resource.
//! - `events` (scripts/bench-events.sh): as `report` without usage files, and each project
//!   has one more user `userP-new@idp` with an `OK` offering user `uP_new` who is not in the
//!   team yet: the benchmark grants them a role and orders new resources (`role_granted`
//!   and `order_created` through `POST /__sim/changes`) while the agent listens for events.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};
use waldur_sim::scenario::{ComponentSpec, OrderSpec, ResourceSpec, Scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum Mode {
    OrderProcess,
    Report,
    MembershipSync,
    Events,
}

#[derive(Parser)]
#[command(about = "Writes a generated benchmark scenario and its backend state")]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long)]
    resources: usize,
    /// Team members per project (= per resource).
    #[arg(long, default_value_t = 10)]
    users: usize,
    #[arg(long, default_value_t = 10)]
    resources_per_project: usize,
    #[arg(long)]
    offering_uuid: String,
    #[arg(long)]
    token: String,
    /// Scenario YAML to write.
    #[arg(long)]
    scenario: PathBuf,
    /// Backend state directory to fill (`state.json`, `usage/`).
    #[arg(long)]
    state_dir: PathBuf,
    /// The agent's Waldur username, which is also its RabbitMQ login in event processing
    /// (a unique one keeps concurrent runs apart on a shared broker).
    #[arg(long, default_value = "agent")]
    agent_username: String,
}

const ALLOCATION_PREFIX: &str = "a_";
const CUSTOMER_ACCOUNT: &str = "c_cust";

fn account(name: &str, parent: &str, organization: &str, users: &[String]) -> Value {
    let users: Map<String, Value> = users
        .iter()
        .map(|u| (u.clone(), json!({"default_account": "root"})))
        .collect();
    json!({
        "name": name, "description": name, "organization": organization, "parent": parent,
        "limits": {}, "user_limits": {}, "users": users, "qos": "normal",
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let per_project = a.resources_per_project.max(1);
    let mut s = Scenario::default();
    // Large runs: no request log (counters are always kept), except for the event benchmark,
    // which times each event by its requests (without bodies).
    s.settings.request_log = a.mode == Mode::Events;
    s.settings.log_bodies = false;
    s.tokens = vec![a.token.clone()];
    s.agent_user.username = a.agent_username.clone();
    let customer = s.add_customer("Bench Customer");
    s.customers.last_mut().unwrap().slug = Some("cust".into());
    let mut cpu = ComponentSpec::usage("cpu");
    cpu.name = Some("CPU".into());
    let mut mem = ComponentSpec::usage("mem");
    mem.name = Some("RAM".into());
    s.add_offering(&customer, "Bench Offering", vec![cpu, mem]);
    s.offerings.last_mut().unwrap().uuid = Some(a.offering_uuid.clone());
    let offering = a.offering_uuid.clone();

    let mut accounts: BTreeMap<String, Value> = BTreeMap::new();
    let month = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string();
    let usage_dir = a.state_dir.join("usage").join(&month);
    let with_backend = a.mode != Mode::OrderProcess;
    if with_backend {
        std::fs::create_dir_all(&usage_dir)?;
        accounts.insert(
            CUSTOMER_ACCOUNT.into(),
            account(CUSTOMER_ACCOUNT, "root", CUSTOMER_ACCOUNT, &[]),
        );
    }

    let mut project = String::new();
    let mut project_account = String::new();
    let mut usernames: Vec<String> = Vec::new();
    for i in 0..a.resources {
        if i % per_project == 0 {
            let p = i / per_project;
            let slug = format!("proj-{p}");
            project = s.add_project(&customer, &slug);
            s.projects.last_mut().unwrap().slug = Some(slug.clone());
            project_account = format!("p_{slug}");
            usernames.clear();
            for k in 0..a.users {
                let user = s.add_user(&format!("user{p}-{k}@idp"));
                let role = if k == 0 {
                    "PROJECT.ADMIN"
                } else {
                    "PROJECT.MEMBER"
                };
                s.add_team_member(&project, &user, role);
                let username = format!("u{p}_{k}");
                s.add_offering_user(&offering, &user, Some(&username), "OK");
                usernames.push(username);
            }
            if a.mode == Mode::Events {
                let newcomer = s.add_user(&format!("user{p}-new@idp"));
                s.add_offering_user(&offering, &newcomer, Some(&format!("u{p}_new")), "OK");
            }
            if with_backend {
                accounts.insert(
                    project_account.clone(),
                    account(&project_account, CUSTOMER_ACCOUNT, &project_account, &[]),
                );
            }
        }
        let name = format!("res-{i}");
        let backend_id = format!("{ALLOCATION_PREFIX}{name}");
        let limits: Map<String, Value> = [
            ("cpu".to_string(), Value::from(10)),
            ("mem".to_string(), Value::from(10)),
        ]
        .into_iter()
        .collect();
        match a.mode {
            Mode::OrderProcess => {
                let resource = s.add_resource_spec(ResourceSpec {
                    name: name.clone(),
                    slug: Some(name.clone()),
                    offering: offering.clone(),
                    project: project.clone(),
                    state: Some("Creating".into()),
                    limits: limits.clone(),
                    ..Default::default()
                });
                s.add_order(OrderSpec {
                    type_: Some("Create".into()),
                    state: Some("pending-provider".into()),
                    resource: Some(resource),
                    limits,
                    ..Default::default()
                });
            }
            Mode::Report | Mode::MembershipSync | Mode::Events => {
                s.add_resource_spec(ResourceSpec {
                    name: name.clone(),
                    slug: Some(name.clone()),
                    offering: offering.clone(),
                    project: project.clone(),
                    limits,
                    backend_id: backend_id.clone(),
                    ..Default::default()
                });
                let members: Vec<String> = if a.mode == Mode::MembershipSync {
                    let keep = usernames.len().saturating_sub(2);
                    let mut m = usernames[..keep].to_vec();
                    m.push(format!("stale_{i}"));
                    m
                } else {
                    usernames.clone()
                };
                let mut acc = account(&backend_id, &project_account, &project_account, &members);
                acc["limits"] = json!({"cpu": 10, "mem": 10});
                accounts.insert(backend_id.clone(), acc);
                if a.mode == Mode::Report {
                    let usage: Map<String, Value> = usernames
                        .iter()
                        .enumerate()
                        .map(|(k, u)| {
                            let cpu = (i % 97) as f64 + k as f64 * 0.25 + 1.0;
                            (u.clone(), json!({"cpu": cpu, "mem": cpu / 2.0}))
                        })
                        .collect();
                    std::fs::write(
                        usage_dir.join(format!("{backend_id}.json")),
                        serde_json::to_vec(&usage)?,
                    )?;
                }
            }
        }
    }

    std::fs::create_dir_all(&a.state_dir)?;
    let state = json!({"version": 1, "accounts": accounts, "homedirs": {}});
    std::fs::write(
        a.state_dir.join("state.json"),
        serde_json::to_vec_pretty(&state)?,
    )?;
    std::fs::write(&a.scenario, s.to_yaml())?;
    Ok(())
}
