//! The agent's modes. The decision logic of each (what to send Waldur, what to ask the
//! plugin) lives in small pure modules, tested on their own; the drivers that talk to Waldur
//! and the plugins build on them.

pub mod accounts;
pub mod api_keys;
pub mod call_trace;
pub mod claims;
mod create;
pub mod cycle;
pub mod error;
pub mod gateway;
pub mod guards;
pub mod instance_lock;
pub mod membership;
mod membership_status;
pub mod membership_sync;
pub mod offering_users;
pub mod order_process;
pub mod periodic_limits;
pub mod periods;
pub mod progress;
pub mod reconcile;
pub mod report;
pub mod resource_import;
pub mod retry_rounds;
mod role_change;
pub mod runtime;
mod shared_team;
pub mod shutdown;
mod source_project;
pub mod tools;
pub mod usage;
pub mod users;
mod writes;
