//! A stateful simulator of the Waldur Mastermind REST API, for testing site agents (the Rust
//! `waldur-agent` and the reference Python `waldur-site-agent`) without a real Waldur.
//!
//! ```no_run
//! use waldur_sim::{Scenario, Simulator};
//! let (scenario, _offering) = Scenario::generated(100);
//! let sim = Simulator::start(scenario).unwrap();
//! println!("{}", sim.url()); // http://127.0.0.1:PORT/api/
//! ```

pub mod app;
pub mod broker;
pub mod changes;
pub mod faults;
pub mod ids;
pub mod inspect;
pub mod lifecycle;
pub mod render;
pub mod routes;
pub mod scenario;
pub mod server;
pub mod sim_api;
pub mod store;

pub use broker::{BrokerAdmin, BrokerConfig, QueueCounts};
pub use changes::Change;
pub use faults::{Fault, FaultKind, Matcher};
pub use inspect::LogEntry;
pub use scenario::{Scenario, ScenarioError};
pub use server::{SimError, Simulator};
pub use store::Store;
