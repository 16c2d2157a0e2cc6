//! The backend as the agent runs it, in-process: `waldur_plugin_host::testing::Harness`
//! wraps it in the agent's real default algorithms, so these tests see what a site would
//! (create, users, limits, pull, delete), without building the `.so` or running the agent.

use serde_json::json;
use waldur_plugin_abi::wire::{Limits, UserOptions, WaldurResource};
use waldur_plugin_host::testing::Harness;
use waldur_plugin_host::Backend;

use super::TemplateBackend;

/// The offering as a site would configure it: CPU limited per order, storage fixed.
fn agent() -> Backend {
    Harness::new("template")
        .settings(json!({"cluster_name": "test-cluster"}))
        .components(json!({
            "cpu": {"measured_unit": "k-Hours", "accounting_type": "limit", "label": "CPU",
                    "unit_factor": 60},
            "storage": {"measured_unit": "GB", "accounting_type": "usage", "label": "Storage",
                        "limit": 100},
        }))
        .backend::<TemplateBackend>()
        .expect("the template backend builds")
}

fn order() -> WaldurResource {
    WaldurResource {
        uuid: "0a1b".into(),
        name: "Test allocation".into(),
        slug: "alloc-1".into(),
        project_slug: "proj-1".into(),
        customer_slug: "cust-1".into(),
        limits: Limits::from([("cpu".into(), 10.0)]),
        ..Default::default()
    }
}

/// The order's account, made by the agent's create; answers the resource with its backend id.
fn created(agent: &Backend) -> WaldurResource {
    let id = agent.get_resource_backend_id("alloc-1").unwrap();
    agent.create_resource_with_id(&order(), &id, None).unwrap();
    WaldurResource {
        backend_id: id,
        ..order()
    }
}

#[test]
fn a_create_order_makes_the_account_with_its_limits() {
    let agent = agent();
    let id = agent.get_resource_backend_id("alloc-1").unwrap();
    let info = agent.create_resource_with_id(&order(), &id, None).unwrap();
    assert_eq!(info.backend_id, id);
    // Waldur units back to Waldur; backend units (x unit_factor) on the account.
    assert_eq!(
        info.limits,
        Limits::from([("cpu".into(), 10.0), ("storage".into(), 100.0)])
    );
    let limits = agent.client_get_resource_limits(&id).unwrap();
    assert_eq!(limits["cpu"], 600);
    // A retried order finds the account and creates nothing twice.
    let again = agent
        .create_resource_with_id(&order(), &id, None)
        .unwrap_err();
    assert_eq!(
        again.kind(),
        waldur_plugin_abi::ErrorKind::DUPLICATE_RESOURCE
    );
    assert_eq!(agent.client_list_resources().unwrap().len(), 1);
}

#[test]
fn team_members_are_added_and_removed() {
    let agent = agent();
    let resource = created(&agent);
    let options = UserOptions::default();
    let users = ["alice".to_string(), "bob".to_string()];
    let added = agent
        .add_users_to_resource(&resource, &users, &options)
        .unwrap();
    assert_eq!(added, users);
    agent
        .remove_users_from_resource(&resource, &["bob".into()], &options)
        .unwrap();
    // The agent's membership sync reads the users back through the pull default.
    let pulled = agent.pull_resource(&resource).unwrap().expect("pulled");
    assert_eq!(pulled.users, ["alice"]);
}

#[test]
fn pause_and_restore_show_in_the_metadata() {
    let agent = agent();
    let id = created(&agent).backend_id;
    assert!(agent.pause_resource(&id).unwrap());
    assert!(!agent.pause_resource(&id).unwrap(), "already paused");
    let metadata = agent.get_resource_metadata(&id).unwrap();
    assert_eq!(metadata["status"], "paused");
    assert_eq!(metadata["cluster"], "test-cluster");
    assert!(agent.restore_resource(&id).unwrap());
}

#[test]
fn a_terminate_order_deletes_the_account_once() {
    let agent = agent();
    let resource = created(&agent);
    agent.delete_resource(&resource, Some("proj-1")).unwrap();
    assert!(agent
        .client_get_resource(&resource.backend_id)
        .unwrap()
        .is_none());
    // A retried terminate finds nothing to do.
    agent.delete_resource(&resource, Some("proj-1")).unwrap();
}

#[test]
fn unknown_settings_are_warned_about() {
    let warnings = Harness::new("template")
        .settings(json!({"cluster_name": "c", "clustre_name": "typo"}))
        .validate::<TemplateBackend>()
        .unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("clustre_name")),
        "{warnings:?}"
    );
}
