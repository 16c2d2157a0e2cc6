//! Unit tests of what needs no target Waldur: settings, capabilities, profiles. The end-to-end
//! tests (host/tests/integration/federation_e2e.rs) run the plugin against two simulators.

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{JsonMap, OfferingUser};
use waldur_plugin_abi::{Backend, ErrorKind};

use crate::settings::{EndDateSync, FederationSettings, MatchField, ResolveMethod};
use crate::{identity_bridge, Federation};

fn map(value: Value) -> JsonMap {
    value.as_object().cloned().unwrap()
}

fn minimal() -> Value {
    json!({
        "target_api_url": "https://waldur-b.example.org/api/",
        "target_api_token": "secret-token",
        "target_offering_uuid": "0F0F0F0F-0F0F-0F0F-0F0F-0F0F0F0F0F01",
        "target_customer_uuid": "11111111111111111111111111111111",
        "identity_bridge_source": "isd:efp",
    })
}

fn with(extra: Value) -> JsonMap {
    let mut settings = map(minimal());
    settings.extend(map(extra));
    settings
}

#[test]
fn the_references_defaults_apply() {
    let s = FederationSettings::parse(&map(minimal())).unwrap();
    assert_eq!(s.offering_uuid, "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f01");
    assert_eq!(s.match_field, MatchField::Cuid);
    assert_eq!(s.resolve_method, ResolveMethod::IdentityBridge);
    assert_eq!(s.end_date_sync, EndDateSync::Bidirectional);
    assert!(s.limits_from_target && !s.fail_on_unknown_user && !s.stomp_enabled);
    assert_eq!(s.target_role("PROJECT.ADMIN"), "PROJECT.ADMIN");
    let mapped = FederationSettings::parse(&with(json!({
        "role_mapping": {"PROJECT.ADMIN": "PROJECT.MANAGER"},
        "user_resolve_method": "user_field", "user_match_field": "email",
        "end_date_sync_direction": "b_to_a", "limit_sync_direction": "disabled",
        "user_not_found_action": "fail", "passthrough_attributes": ["partition"],
    })))
    .unwrap();
    assert_eq!(mapped.target_role("PROJECT.ADMIN"), "PROJECT.MANAGER");
    assert_eq!(mapped.resolve_method, ResolveMethod::UserField);
    assert!(!mapped.limits_from_target && mapped.fail_on_unknown_user);
    assert_eq!(mapped.passthrough_attributes, ["partition"]);
}

#[test]
fn unusable_settings_are_refused_naming_the_key() {
    for (settings, key) in [
        (
            {
                let mut s = map(minimal());
                s.remove("target_api_token");
                s
            },
            "target_api_token",
        ),
        (
            with(json!({"target_api_url": "waldur-b"})),
            "target_api_url",
        ),
        (
            with(json!({"target_offering_uuid": "../../users"})),
            "target_offering_uuid",
        ),
        (
            with(json!({"target_customer_uuid": 7})),
            "target_customer_uuid",
        ),
        (
            with(json!({"user_match_field": "phone"})),
            "user_match_field",
        ),
        (
            with(json!({"user_resolve_method": "guess"})),
            "user_resolve_method",
        ),
        (
            with(json!({"identity_bridge_source": ""})),
            "identity_bridge_source",
        ),
        (
            with(json!({"user_not_found_action": "ignore"})),
            "user_not_found_action",
        ),
        (
            with(json!({"role_mapping": {"PROJECT.ADMIN": 1}})),
            "role_mapping.PROJECT.ADMIN",
        ),
        (
            with(json!({"end_date_sync_direction": "sideways"})),
            "end_date_sync_direction",
        ),
        (
            with(json!({"limit_sync_direction": "a_to_b"})),
            "limit_sync_direction",
        ),
        (
            with(json!({"passthrough_attributes": "partition"})),
            "passthrough_attributes",
        ),
        (
            with(json!({"target_stomp_ws_url": "http://x"})),
            "target_stomp_ws_url",
        ),
        (
            with(json!({"target_request_timeout": 0})),
            "target_request_timeout",
        ),
        (
            with(json!({"order_poll_interval": -5})),
            "order_poll_interval",
        ),
    ] {
        let e = <Federation as Backend>::validate_settings(&settings).unwrap_err();
        assert_eq!(e.kind, ErrorKind::INVALID_SETTINGS, "{key}: {}", e.message);
        assert!(e.message.contains(key), "{key}: {}", e.message);
        assert!(
            !e.message.contains('\n') && !e.message.contains("secret-token"),
            "{}",
            e.message
        );
    }
    // Another resolve method needs no identity-bridge source.
    let mut other = with(json!({"user_resolve_method": "remote_eduteams"}));
    other.remove("identity_bridge_source");
    assert!(<Federation as Backend>::validate_settings(&other).is_ok());
    let warnings =
        <Federation as Backend>::validate_settings(&with(json!({"order_poll_timeout": 300})))
            .unwrap();
    assert!(
        warnings.iter().any(|w| w.contains("order_poll_timeout")),
        "{warnings:?}"
    );
}

#[test]
fn components_with_bad_factors_are_refused() {
    let bad = serde_json::from_value(json!({
        "cpu": {"measured_unit": "h", "accounting_type": "usage", "label": "CPU",
                "target_components": {"node_hours": {"factor": "x"}}}
    }))
    .unwrap();
    let e = <Federation as Backend>::validate_components(&bad).unwrap_err();
    assert!(
        e.message.contains("cpu.target_components.node_hours"),
        "{}",
        e.message
    );
}

#[test]
fn capabilities_follow_the_settings() {
    let open = |settings: JsonMap| {
        Federation::open(
            &settings,
            Default::default(),
            waldur_plugin_abi::Host::detached(),
        )
        .unwrap()
    };
    let default = open(map(minimal())).capabilities().unwrap();
    assert!(default.supports_async_orders && default.supports_cycle_preflight);
    assert!(default.requires_source_project && default.shared_project_membership);
    assert!(default
        .handled_resource_states
        .contains(&"Creating".to_string()));
    assert_eq!(default.user_resolve_method, "identity_bridge");
    assert!(!default.fetch_consented_users_only);
    let other = open(with(
        json!({"user_resolve_method": "user_field", "fetch_consented_users_only": true}),
    ))
    .capabilities()
    .unwrap();
    // Members are named by their source Waldur username whatever the method.
    assert_eq!(other.user_resolve_method, "identity_bridge");
    assert!(other.fetch_consented_users_only);
}

#[test]
fn an_offering_users_profile_keeps_only_filled_fields() {
    let user: OfferingUser = serde_json::from_value(json!({
        "user_username": "alice", "user_first_name": "Alice", "user_last_name": "",
        "user_email": "alice@example.org", "user_affiliations": [], "user_organization": "Uni",
    }))
    .unwrap();
    let profile = identity_bridge::profile(&user);
    assert_eq!(
        Value::Object(profile),
        json!({"first_name": "Alice", "email": "alice@example.org", "organization": "Uni"})
    );
}
