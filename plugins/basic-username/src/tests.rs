//! The two entries through the SDK trait, as the agent constructs them, with a detached host
//! (whose Waldur requests fail).

use serde_json::{json, Value};
use waldur_plugin_abi::wire::{JsonMap, OfferingInfo, OfferingUser};
use waldur_plugin_abi::{ErrorKind, Host, UsernameBackend, UsernameContext};

use crate::{BaseUsernames, TemplateUsernames};

fn context(entry: &str, settings: Value) -> UsernameContext {
    UsernameContext {
        entry: entry.into(),
        settings: settings.as_object().cloned().unwrap_or_default(),
        offering: OfferingInfo {
            name: "HPC".into(),
            uuid: "offering-uuid".into(),
            ..Default::default()
        },
        host: Host::detached(),
    }
}

fn jane() -> OfferingUser {
    OfferingUser {
        uuid: "ou-1".into(),
        user_uuid: "u-1".into(),
        user_first_name: "Jane".into(),
        user_last_name: "Doe".into(),
        user_username: "jane@idp.example".into(),
        ..Default::default()
    }
}

#[test]
fn base_never_produces_a_username() {
    let base = BaseUsernames::new(context("base", json!({}))).unwrap();
    let mut user = jane();
    assert_eq!(base.generate_username(user.clone()).unwrap(), "");
    user.username = Some("jdoe".into());
    assert_eq!(base.get_username(user.clone()).unwrap(), None);
    // Left to the agent's defaults (get_username or generate_username; no-ops).
    assert!(base
        .get_or_create_username(user)
        .unwrap_err()
        .is_not_implemented());
    assert!(base
        .sync_user_profiles(vec![])
        .unwrap_err()
        .is_not_implemented());
    assert!(base
        .deactivate_users(vec![])
        .unwrap_err()
        .is_not_implemented());
    assert_eq!(
        BaseUsernames::IMPLEMENTED,
        &["generate_username", "get_username"]
    );
}

#[test]
fn base_accepts_any_settings() {
    let settings = json!({"anything": 1}).as_object().cloned().unwrap();
    assert_eq!(
        BaseUsernames::validate_settings(&settings).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn template_reuses_an_existing_username_without_waldur() {
    let t = TemplateUsernames::new(context("template", json!({}))).unwrap();
    let mut user = jane();
    user.username = Some("jd42".into());
    assert_eq!(
        t.get_username(user.clone()).unwrap().as_deref(),
        Some("jd42")
    );
    assert_eq!(t.get_or_create_username(user).unwrap(), "jd42");
    assert_eq!(t.get_username(jane()).unwrap(), None);
}

#[test]
fn template_needs_waldur_for_new_names() {
    let t = TemplateUsernames::new(context("template", json!({}))).unwrap();
    for result in [
        t.generate_username(jane()),
        t.get_or_create_username(jane()),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::BACKEND, "{err}");
        assert!(err.message.contains("no agent behind this host"), "{err}");
    }
}

#[test]
fn template_asks_for_validation_before_asking_waldur() {
    let t = TemplateUsernames::new(context(
        "template",
        json!({"validation_comment_url": "https://example.org/fix-profile"}),
    ))
    .unwrap();
    let nameless = OfferingUser {
        uuid: "ou-2".into(),
        ..Default::default()
    };
    let err = t.get_or_create_username(nameless).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ADDITIONAL_VALIDATION_REQUIRED);
    assert_eq!(err.comment_url(), Some("https://example.org/fix-profile"));
}

#[test]
fn template_deactivation_is_a_no_op() {
    let t = TemplateUsernames::new(context("template", json!({}))).unwrap();
    t.deactivate_users(vec!["jdoe".into()]).unwrap();
}

#[test]
fn template_settings_are_checked_at_validation_and_construction() {
    let settings = |v: Value| -> JsonMap { v.as_object().cloned().unwrap() };
    let warnings =
        TemplateUsernames::validate_settings(&settings(json!({"colour": "blue"}))).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("colour"), "{warnings:?}");
    for bad in [
        json!({"username_template": "{surname}"}),
        json!({"max_length": "32"}),
        json!({"prefix": "9"}),
    ] {
        let err = TemplateUsernames::validate_settings(&settings(bad.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS, "{bad}");
        let err = TemplateUsernames::new(context("template", bad.clone()))
            .err()
            .unwrap();
        assert_eq!(err.kind, ErrorKind::INVALID_SETTINGS, "{bad}");
    }
}

#[test]
fn template_declares_what_it_implements_and_reads() {
    let implemented = TemplateUsernames::IMPLEMENTED;
    for method in [
        "generate_username",
        "get_username",
        "get_or_create_username",
        "deactivate_users",
    ] {
        assert!(implemented.contains(&method), "{method}: {implemented:?}");
    }
    let names: Vec<&str> = TemplateUsernames::SETTINGS.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "username_template",
            "prefix",
            "max_length",
            "min_length",
            "reserved_usernames",
            "validation_comment_url"
        ]
    );
}
