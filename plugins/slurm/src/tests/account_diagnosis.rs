//! `invoke("diagnose_account")`: the account read from recorded real output, what the plugin
//! would set for Waldur's resource, the commands run (and not run), and the agent's typed
//! call through the real SDK shims.

use std::collections::BTreeMap;

use serde_json::json;
use waldur_plugin_abi::wire::{
    AccountDiagnosis, AccountFact, AccountUser, BackendLimits, DiagnoseAccountArgs, KindLimits,
};
use waldur_plugin_abi::ErrorKind;

use super::*;

/// `kind -> component -> value` from literals.
fn kind(kind: &str, values: &[(&str, &str)]) -> KindLimits {
    KindLimits::from([(
        kind.to_string(),
        values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )])
}

const DETAILS: &str = "show association where account=fx_alloc format=Account,User,Partition,\
ParentName,QOS,GrpSubmit,GrpTRES,GrpTRESMins,MaxTRES,MaxTRESMins";

/// The fixture's account (`fx_alloc`) as Waldur's resource `fx_alloc` of project `proj`.
fn resource() -> WaldurResource {
    WaldurResource {
        backend_id: "fx_alloc".into(),
        project_slug: "proj".into(),
        ..golden_resource()
    }
}

fn args(
    resource: Option<WaldurResource>,
    user_limits: &[(&str, &[(&str, i64)])],
) -> DiagnoseAccountArgs {
    DiagnoseAccountArgs {
        backend_id: "fx_alloc".into(),
        waldur_resource: resource,
        user_limits: user_limits
            .iter()
            .map(|(user, limits)| {
                let limits: BackendLimits =
                    limits.iter().map(|(c, v)| (c.to_string(), *v)).collect();
                (user.to_string(), limits)
            })
            .collect(),
    }
}

/// The golden settings and components with account names `fx_...`, on the recorded outputs.
fn on_fixtures(settings: Value) -> (Arc<RecordingRunner>, Slurm) {
    let mut all = golden_settings();
    let prefixes = json!({
        "customer_prefix": "fx_", "project_prefix": "fx_", "allocation_prefix": "fx_",
    });
    all.as_object_mut().unwrap().extend(map(prefixes));
    all.as_object_mut().unwrap().extend(map(settings));
    let (runner, slurm) = setup(all, golden_components());
    runner.reply("show account fx_alloc", &fixture("show_account.txt"));
    runner.reply(
        "show account fx_missing",
        &fixture("show_account_missing.txt"),
    );
    runner.reply("list tres", &fixture("list_tres.txt"));
    runner.reply(DETAILS, &fixture("show_association_details.txt"));
    (runner, slurm)
}

#[test]
fn the_account_as_slurm_has_it_next_to_what_the_plugin_would_set() {
    let (runner, slurm) = on_fixtures(json!({}));
    let diagnosis = slurm
        .diagnose_account(&args(Some(resource()), &[("wa-alice", &[("gres/gpu", 1)])]))
        .unwrap();
    assert_calls(
        &runner,
        &[
            "{S} list tres",
            "{S} show account fx_alloc",
            &format!("{{S}} {DETAILS}"),
        ],
    );
    let expected_reasons = BTreeMap::from([
        (
            "GrpTRESMins[cpu]".to_string(),
            "backend_components.cpu.limit 10 x unit_factor 60000".to_string(),
        ),
        (
            "GrpTRESMins[gres/gpu]".to_string(),
            "Waldur limit 5 x unit_factor 60".to_string(),
        ),
        (
            "GrpTRESMins[mem]".to_string(),
            "backend_components.mem.limit 10 x unit_factor 61440".to_string(),
        ),
        (
            "parent".to_string(),
            "the account of the project".to_string(),
        ),
        (
            "qos".to_string(),
            "Waldur: neither paused nor downscaled, so qos_default".to_string(),
        ),
    ]);
    assert_eq!(
        diagnosis,
        AccountDiagnosis {
            account: "fx_alloc".into(),
            exists: true,
            facts: vec![
                AccountFact {
                    label: "description".into(),
                    value: "my alloc".into()
                },
                AccountFact {
                    label: "organization".into(),
                    value: "fx_proj".into()
                },
                AccountFact {
                    label: "partitions of wa-bob".into(),
                    value: "debug".into()
                },
            ],
            settings: BTreeMap::from([
                ("GrpSubmitJobs".to_string(), String::new()),
                ("parent".to_string(), "fx_proj".to_string()),
                ("qos".to_string(), "paused".to_string()),
            ]),
            // mem=600G is read in MB, as the plugin sets it.
            limits: kind(
                "GrpTRESMins",
                &[("cpu", "600000"), ("gres/gpu", "300"), ("mem", "614400")]
            ),
            associations: vec![
                AccountUser {
                    user: "wa-alice".into(),
                    limits: kind("MaxTRESMins", &[("gres/gpu", "60")]),
                },
                AccountUser {
                    user: "wa-bob".into(),
                    limits: KindLimits::new(),
                },
            ],
            expected: waldur_plugin_abi::wire::ExpectedAccount {
                settings: BTreeMap::from([
                    ("parent".to_string(), "fx_proj".to_string()),
                    ("qos".to_string(), "normal".to_string()),
                ]),
                limits: kind(
                    "GrpTRESMins",
                    &[("cpu", "600000"), ("gres/gpu", "300"), ("mem", "614400")]
                ),
                // Waldur's 1 GPU-hour x 60 for alice; bob gets no limit, so none expected.
                user_limits: BTreeMap::from([
                    (
                        "wa-alice".to_string(),
                        kind("MaxTRESMins", &[("gres/gpu", "60")])
                    ),
                    ("wa-bob".to_string(), kind("MaxTRESMins", &[])),
                ]),
                reasons: expected_reasons,
            },
        }
    );
}

#[test]
fn paused_and_downscaled_follow_the_configured_qos_model() {
    let expect = |settings: Value, paused: bool, downscaled: bool| {
        let (_, slurm) = on_fixtures(settings);
        let resource = WaldurResource {
            paused,
            downscaled,
            ..resource()
        };
        let expected = slurm
            .diagnose_account(&args(Some(resource), &[]))
            .unwrap()
            .expected;
        let mut settings = expected.settings;
        settings.remove("parent");
        settings
    };
    let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    assert_eq!(expect(json!({}), true, false), one("qos", "paused"));
    assert_eq!(expect(json!({}), false, true), one("qos", "limited"));
    assert_eq!(expect(json!({}), true, true), one("qos", "paused"));
    assert_eq!(expect(json!({}), false, false), one("qos", "normal"));
    // Without qos_paused the agent's pause changes nothing: no expectation.
    assert_eq!(
        expect(json!({"qos_paused": null}), true, false),
        BTreeMap::new()
    );
    // QoS enforcement: pause and downscale set GrpSubmitJobs=0, restore clears it.
    let enforced = json!({
        "qos_enforcement_enabled": true, "enforce_offering_qos": true,
        "qos_paused": null, "qos_downscaled": null,
    });
    assert_eq!(
        expect(enforced.clone(), false, true),
        one("GrpSubmitJobs", "0")
    );
    assert_eq!(expect(enforced, false, false), one("GrpSubmitJobs", ""));
}

#[test]
fn a_missing_account_and_no_waldur_resource_run_only_what_is_needed() {
    let (runner, slurm) = on_fixtures(json!({}));
    let mut missing = args(Some(resource()), &[]);
    missing.backend_id = "fx_missing".into();
    let diagnosis = slurm.diagnose_account(&missing).unwrap();
    assert!(!diagnosis.exists);
    assert!(diagnosis.associations.is_empty() && diagnosis.limits.is_empty());
    // What would be set is still answered: the agent shows it.
    assert_eq!(diagnosis.expected.settings["qos"], "normal");
    assert_calls(&runner, &["{S} list tres", "{S} show account fx_missing"]);

    let diagnosis = slurm.diagnose_account(&args(None, &[])).unwrap();
    assert!(diagnosis.exists);
    assert_eq!(diagnosis.expected, Default::default());
    assert_calls(
        &runner,
        &["{S} show account fx_alloc", &format!("{{S}} {DETAILS}")],
    );
}

#[test]
fn a_hostile_account_name_runs_no_command() {
    let (runner, slurm) = on_fixtures(json!({}));
    let mut hostile = args(Some(resource()), &[]);
    hostile.backend_id = "x,root".into();
    let err = slurm.diagnose_account(&hostile).unwrap_err();
    assert!(
        err.message
            .starts_with("invalid SLURM account name \"x,root\""),
        "{}",
        err.message
    );
    assert_calls(&runner, &[]);
}

#[test]
fn the_agent_calls_it_through_invoke_and_other_methods_stay_not_implemented() {
    let (_, slurm) = on_fixtures(json!({}));
    let agent = agent(&slurm);
    let answer = agent
        .diagnose_account(&args(Some(resource()), &[]))
        .unwrap()
        .expect("the SLURM plugin has account diagnostics");
    assert_eq!(answer.account, "fx_alloc");
    assert_eq!(answer.settings["qos"], "paused");
    let err = agent
        .handle()
        .invoke("no_such_method", &json!({}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NOT_IMPLEMENTED);
    let err = agent
        .handle()
        .invoke("diagnose_account", &json!({"backend_id": 5}))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::INVALID_INPUT);
    assert!(err.message.contains("diagnose_account"), "{}", err.message);
}
