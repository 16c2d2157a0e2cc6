//! `diagnostics` (reference `waldur_site_diagnostics`): per offering, whether Waldur answers
//! (B1, B2, B3 with the diagnostics fields), how many orders wait (O1), and whether each
//! configured backend plugin resolves, loads, pings and passes its own diagnostics.

use std::collections::BTreeSet;

use waldur_plugin_abi::ffi::EntryKind;

use super::{client, one_line};
use crate::config::Offering;
use crate::modes::cycle::OFFERING_CONCURRENCY;
use crate::modes::runtime::{backend_components, backend_for, blocking, Agent};
use crate::waldur::{map_concurrent, OrderFilter, WaldurClient};

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found, or the one-line error.
    pub detail: String,
}

/// The checks of one offering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferingDiagnostics {
    pub offering: String,
    pub checks: Vec<Check>,
}

impl OfferingDiagnostics {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn record<T, E: std::fmt::Display>(
        &mut self,
        name: impl Into<String>,
        result: Result<T, E>,
        detail: impl FnOnce(&T) -> String,
    ) -> Option<T> {
        let name = name.into();
        match result {
            Ok(value) => {
                self.checks.push(Check {
                    name,
                    ok: true,
                    detail: detail(&value),
                });
                Some(value)
            }
            Err(e) => {
                self.checks.push(Check {
                    name,
                    ok: false,
                    detail: one_line(&e),
                });
                None
            }
        }
    }
}

/// Runs every check for every offering.
pub async fn diagnostics(agent: &Agent) -> Vec<OfferingDiagnostics> {
    map_concurrent(
        OFFERING_CONCURRENCY,
        agent.config.offerings.iter(),
        |offering| diagnose(agent, offering),
    )
    .await
}

async fn diagnose(agent: &Agent, offering: &Offering) -> OfferingDiagnostics {
    let mut report = OfferingDiagnostics {
        offering: offering.name.clone(),
        checks: Vec::new(),
    };
    let Some(client) = report.record(
        "Waldur client",
        client(agent, offering, "diagnostics"),
        |c: &WaldurClient| c.api_base_redacted(),
    ) else {
        return report;
    };
    report.record("Waldur version (B1)", client.version().await, |v| {
        v.version.clone()
    });
    report.record("Waldur user (B2)", client.users_me(&[]).await, |me| {
        format!(
            "{} ({}){}",
            me.username,
            me.full_name,
            if me.is_staff { ", staff" } else { "" }
        )
    });
    let waldur_offering = report.record(
        "Waldur offering (B3)",
        client
            .provider_offering(
                &offering.waldur_offering_uuid,
                WaldurClient::DIAGNOSTICS_OFFERING_FIELDS,
            )
            .await,
        |o| {
            format!(
                "'{}' of {}, state {}, {} component(s), backend_id '{}'",
                o.name,
                o.customer_name,
                o.state,
                o.components.len(),
                o.backend_id
            )
        },
    );
    let filter = OrderFilter {
        fields: ["project_name", "type", "state"].map(String::from).to_vec(),
        ..OrderFilter::pending(&offering.waldur_offering_uuid)
    };
    report.record(
        "pending orders (O1)",
        client.list_orders(&filter).await,
        |orders| format!("{} pending-provider or executing", orders.len()),
    );

    // `backend_type` too: the tools use it, so a mistyped one must show here.
    let entries: BTreeSet<&str> = [
        offering.backend_type.as_str(),
        offering.order_processing_backend.as_str(),
        offering.membership_sync_backend.as_str(),
        offering.reporting_backend.as_str(),
    ]
    .into_iter()
    .filter(|e| !e.is_empty())
    .collect();
    if entries.is_empty() {
        report.checks.push(Check {
            name: "backend".into(),
            ok: true,
            detail: "no backend configured".into(),
        });
    }
    let remote = waldur_offering.map(|o| o.components).unwrap_or_default();
    for entry in entries {
        let Some(plugin) = report.record(
            format!("plugin '{entry}'"),
            agent.registry.plugin(EntryKind::BACKEND, entry),
            |p| {
                format!(
                    "{} {} ({})",
                    p.manifest().name,
                    p.manifest().version,
                    p.path().display()
                )
            },
        ) else {
            continue;
        };
        drop(plugin);
        let components = backend_components(&offering.name, &offering.backend_components, &remote);
        let Some(backend) = report.record(
            format!("backend '{entry}'"),
            backend_for(agent, offering, entry, components, &client).await,
            |_| "constructed".into(),
        ) else {
            continue;
        };
        let ping = blocking(&backend, |b| b.ping(false)).await;
        report.record(
            format!("backend '{entry}' ping"),
            ping.map_err(|e| e.to_string()).and_then(|up| {
                if up {
                    Ok(())
                } else {
                    Err("the backend did not answer".to_string())
                }
            }),
            |_| "ok".into(),
        );
        let diagnostics = blocking(&backend, |b| b.diagnostics()).await;
        report.record(
            format!("backend '{entry}' diagnostics"),
            diagnostics.map_err(|e| e.to_string()).and_then(|ok| {
                if ok {
                    Ok(())
                } else {
                    Err("the plugin's diagnostics failed".to_string())
                }
            }),
            |_| "ok".into(),
        );
    }
    report
}
