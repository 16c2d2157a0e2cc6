//! The agent's integration tests, one binary (each module links the agent once, not once per
//! file). Real parts throughout: the Waldur simulator over HTTP, real plugin `.so` files
//! through the real loader, the agent binary, and real SLURM and RabbitMQ where a module says
//! so (under `CI=true` a missing one fails the test). Run one module with
//! `cargo test -p waldur-agent --test integration MODULE::`.

mod async_orders_e2e;
mod cli_run;
mod common;
mod config_check;
mod demo_vtable;
mod diagnose_slurm_e2e;
mod dry_run_e2e;
mod event_handlers_broker_e2e;
mod event_process_e2e;
mod events_handlers_e2e;
mod exactly_once_e2e;
mod federation_e2e;
mod historical_usage_e2e;
mod import_and_keys_e2e;
mod metrics_e2e;
mod modes_e2e;
mod modes_edge_cases_e2e;
mod observability_e2e;
mod plugin_safety;
mod plugins_cli;
mod polling_features_e2e;
mod reference_differences_e2e;
mod removal_guards_e2e;
mod slurm_e2e;
mod stomp_rabbitmq;
#[cfg(feature = "simulator")]
mod test_order_e2e;
mod tools_e2e;
