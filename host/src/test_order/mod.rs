//! `waldur-agent test-order`: one order, for real, through the agent's own order processor
//! (`run -m order_process`'s code) and the plugin the configuration names, against an
//! embedded Waldur simulator seeded with the order's world. Every plugin call and every
//! Waldur request is printed, in order. Unlike the reference's `waldur_site_test_order`, which
//! only checks the order's JSON against a mock, the plugin really does the work: a Create
//! order creates the account on the configured backend.

pub mod order;
pub mod report;
pub mod seed;
pub mod templates;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use waldur_sim::{Change, Simulator};

use crate::config::{Config, Offering, Secret, WaldurAuth};
use crate::modes::call_trace::CallTrace;
use crate::modes::cycle::{run_cycle, OfferingOutcome, RunSettings};
use crate::modes::runtime::{Agent, Mode};
use crate::plugins::{Catalog, Registry};
use order::{OrderKind, TestOrder};
use report::{timeline, Ending, Phase, Report};
use templates::Templates;

/// Where the order comes from.
#[derive(Debug, Clone)]
pub enum OrderSource {
    /// A template name (`create/basic`), rendered with the variables.
    Template(String),
    /// A JSON file.
    File(PathBuf),
}

/// The order's JSON: the template rendered with `vars`, or the file read.
pub fn order_json(
    source: &OrderSource,
    templates: &Templates,
    vars: &Map<String, Value>,
) -> Result<Value, String> {
    match source {
        OrderSource::Template(name) => templates.render(name, vars),
        OrderSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("order file {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("order file {} is not JSON: {e}", path.display()))
        }
    }
}

/// The offering the order is for: `--offering-uuid`, else the one the order names, else the
/// configuration's first.
pub fn pick_offering<'a>(
    config: &'a Config,
    requested: Option<&str>,
    order: &TestOrder,
) -> Result<&'a Offering, String> {
    let same = |a: &str, b: &str| waldur_sim::ids::normalize(a) == waldur_sim::ids::normalize(b);
    let wanted = requested.unwrap_or(&order.offering_uuid);
    if wanted.is_empty() {
        return config
            .offerings
            .first()
            .ok_or_else(|| "the configuration has no offerings".to_string());
    }
    let offering = config
        .offerings
        .iter()
        .find(|o| same(&o.waldur_offering_uuid, wanted))
        .ok_or_else(|| {
            format!("no offering with waldur_offering_uuid {wanted} in the configuration")
        })?;
    if !order.offering_uuid.is_empty() && !same(&order.offering_uuid, wanted) {
        return Err(format!(
            "the order is for offering {}, not {wanted}",
            order.offering_uuid
        ));
    }
    if offering.order_processing_backend.is_empty() {
        return Err(format!(
            "offering '{}' has no order_processing_backend",
            offering.name
        ));
    }
    Ok(offering)
}

/// What a run is given besides the order.
pub struct RunOptions {
    /// Plugin writes are planned, not made (`run --dry-run`'s facility).
    pub dry_run: bool,
}

/// Runs `order` on `offering` (of `config`) through the order processor with the plugins of
/// `registry`, against a simulator seeded for it. An Update or Terminate order first has its
/// resource created by a Create order through the same processor, so the plugin has it.
/// `Err` is a one-line reason the run could not start.
pub fn run(
    config: &Config,
    offering: &Offering,
    catalog: Catalog,
    order: TestOrder,
    options: RunOptions,
) -> Result<Report, String> {
    let (scenario, setup_order) = seed::scenario(offering, &order);
    let sim = Simulator::start(scenario)
        .map_err(|e| format!("cannot start the embedded simulator: {e}"))?;
    let trace = Arc::new(CallTrace::default());
    let config = on_simulator(config, offering, &sim);
    // The setup really creates the resource, so that a dry run of the order under test
    // plans against what the plugin has.
    let setup_agent = agent(config.clone(), catalog.clone(), &trace, false);
    let order_agent = agent(config, catalog, &trace, options.dry_run);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let process = |agent: &Agent, uuid: &str, kind: OrderKind| {
        sim.reset_log();
        trace.take();
        let cycle = runtime.block_on(run_cycle(agent, Mode::OrderProcess, RunSettings::default()));
        let failure = cycle
            .offerings
            .into_iter()
            .find_map(|(_, outcome)| match outcome {
                OfferingOutcome::Failed(e) => Some(crate::modes::tools::one_line(&e)),
                _ => None,
            });
        Phase {
            order_uuid: uuid.to_string(),
            order_type: kind.name().to_string(),
            steps: timeline(trace.take(), sim.requests()),
            ending: ending(&sim, uuid, failure),
        }
    };
    // The order under test comes once the Create order that makes its resource is done.
    let setup = setup_order.map(|uuid| process(&setup_agent, &uuid, OrderKind::Create));
    let run = match &setup {
        Some(phase) if phase.ending != Ending::Done => Phase {
            order_uuid: order.uuid.clone(),
            order_type: order.kind.name().to_string(),
            steps: Vec::new(),
            ending: Ending::NotDone {
                state: "not run".into(),
                reason: "the Create order that makes its resource did not finish".into(),
            },
        },
        Some(_) => {
            sim.apply_change(Change::OrderCreated {
                order: seed::order_spec(&order),
            })
            .map_err(|e| format!("cannot add the order to the simulator: {e}"))?;
            process(&order_agent, &order.uuid, order.kind)
        }
        None => process(&order_agent, &order.uuid, order.kind),
    };
    Ok(Report {
        offering: offering.name.clone(),
        entry: offering.order_processing_backend.clone(),
        order: order.json,
        setup,
        run,
    })
}

/// An agent that processes orders: the one place a run's switches go in. In a dry run the
/// plugin's writing methods are not called (each is shown as such); Waldur, the embedded
/// simulator, still gets every request, so the order's path through the processor is whole.
fn agent(config: Config, catalog: Catalog, trace: &Arc<CallTrace>, dry_run: bool) -> Agent {
    let agent = Agent::new(config, Registry::new(catalog)).with_call_trace(Arc::clone(trace));
    if dry_run {
        agent.with_plugin_dry_run(crate::dry_run::Plan::new())
    } else {
        agent
    }
}

/// `config` with only `offering`, pointed at the simulator. Event processing is off: the
/// polling processor carries the order out (events reach the same code per order).
fn on_simulator(config: &Config, offering: &Offering, sim: &Simulator) -> Config {
    let mut offering = offering.clone();
    offering.waldur_api_url = sim.url();
    offering.auth = WaldurAuth::Token(Secret::new(seed::TOKEN));
    offering.stomp_enabled = false;
    offering.stomp_membership_sync_enabled = Some(false);
    Config {
        offerings: vec![offering],
        global_proxy: None,
        ..config.clone()
    }
}

/// How the order ended, from the simulator's copy of it.
fn ending(sim: &Simulator, uuid: &str, failure: Option<String>) -> Ending {
    let Some(order) = sim.order(uuid) else {
        return Ending::NotDone {
            state: "missing".into(),
            reason: "the simulator lost the order".into(),
        };
    };
    match order.state.as_str() {
        "done" => Ending::Done,
        "erred" => Ending::Erred {
            message: order.error_message,
        },
        state => Ending::NotDone {
            state: state.to_string(),
            reason: failure.unwrap_or_else(|| match state {
                "rejected" => "the plugin rejected it".into(),
                _ => "the processor left it for a later cycle (see the log)".into(),
            }),
        },
    }
}
