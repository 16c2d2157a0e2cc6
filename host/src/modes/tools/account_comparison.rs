//! The comparison half of `diagnose-slurm-account`: the plugin's account diagnosis (what the
//! backend has, and what the plugin would set for Waldur's resource) against the Waldur side,
//! item by item. Pure: no I/O, so every rule is tested on its own.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use waldur_plugin_abi::wire::{AccountDiagnosis, CapabilitySet, OfferingUser, ProjectUser};

use crate::modes::membership::plan;

/// One compared item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// `qos`, `GrpTRESMins[cpu]`, `user alice`, `user alice MaxTRESMins[cpu]`, ...
    pub item: String,
    /// What the backend has (`None`: nothing).
    pub backend: Option<String>,
    /// What Waldur's resource means for it (`None`: nothing).
    pub expected: Option<String>,
    pub ok: bool,
    /// Why that is expected, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Comparison {
    fn new(item: String, backend: Option<String>, expected: Option<String>) -> Self {
        let ok = backend == expected;
        Self {
            item,
            backend,
            expected,
            ok,
            reason: None,
        }
    }

    fn because(mut self, reason: Option<&String>) -> Self {
        self.reason = reason.cloned();
        self
    }
}

/// The Waldur side the comparison needs.
#[derive(Debug, Clone, Default)]
pub struct WaldurFacts<'a> {
    /// How many resources of the offering have this backend id.
    pub resources: usize,
    pub team: &'a [ProjectUser],
    pub offering_users: &'a [OfferingUser],
    pub capabilities: CapabilitySet,
    pub restrict_member_access: bool,
}

const PRESENT: &str = "present";

fn presence(present: bool) -> Option<String> {
    present.then(|| PRESENT.to_string())
}

/// Every item, in a stable order: existence, settings, account limits, users, user limits.
/// Beyond existence nothing is compared unless both the account and the resource exist.
pub fn compare(diagnosis: &AccountDiagnosis, waldur: &WaldurFacts) -> Vec<Comparison> {
    let mut items = vec![
        Comparison::new(
            "backend account".into(),
            presence(diagnosis.exists),
            presence(true),
        ),
        Comparison::new(
            "Waldur resources with this backend id".into(),
            Some(waldur.resources.to_string()),
            Some("1".into()),
        ),
    ];
    if !diagnosis.exists || waldur.resources == 0 {
        return items;
    }
    let expected = &diagnosis.expected;
    for (name, value) in &expected.settings {
        let actual = diagnosis.settings.get(name).cloned().unwrap_or_default();
        items.push(
            Comparison::new(name.clone(), Some(actual), Some(value.clone()))
                .because(expected.reasons.get(name)),
        );
    }
    for (kind, wanted) in &expected.limits {
        items.extend(
            compare_kind("", kind, diagnosis.limits.get(kind), wanted).map(|c| {
                let reason = expected.reasons.get(&c.item);
                c.because(reason)
            }),
        );
    }
    let users: Vec<String> = diagnosis
        .associations
        .iter()
        .map(|a| a.user.clone())
        .collect();
    let membership = plan(
        waldur.team,
        &users,
        waldur.offering_users,
        &waldur.capabilities,
        waldur.restrict_member_access,
        None,
    );
    let mut user_items: BTreeMap<&String, Comparison> = BTreeMap::new();
    for user in &membership.existing {
        user_items.insert(
            user,
            Comparison::new(format!("user {user}"), presence(true), presence(true)),
        );
    }
    for user in &membership.to_add {
        let member = membership.options.user_cuids.get(user).cloned();
        let reason = member.map(|m| format!("team member {m}"));
        user_items.insert(
            user,
            Comparison::new(format!("user {user}"), None, presence(true)).because(reason.as_ref()),
        );
    }
    let why_not = if waldur.restrict_member_access {
        "the resource restricts member access"
    } else {
        "not in the resource's team"
    }
    .to_string();
    for user in &membership.to_remove {
        user_items.insert(
            user,
            Comparison::new(format!("user {user}"), presence(true), None).because(Some(&why_not)),
        );
    }
    items.extend(user_items.into_values());
    for (user, kinds) in &expected.user_limits {
        let Some(association) = diagnosis.associations.iter().find(|a| &a.user == user) else {
            continue; // a missing user is a difference already
        };
        let prefix = format!("user {user} ");
        for (kind, wanted) in kinds {
            items.extend(compare_kind(
                &prefix,
                kind,
                association.limits.get(kind),
                wanted,
            ));
        }
    }
    items
}

/// One limit kind, component by component over both sides; `<kind> (none)` when neither
/// side has any.
fn compare_kind<'a>(
    prefix: &'a str,
    kind: &'a str,
    actual: Option<&'a BTreeMap<String, String>>,
    wanted: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = Comparison> + 'a {
    let empty = BTreeMap::new();
    let actual = actual.unwrap_or(&empty).clone();
    let components: BTreeSet<String> = actual.keys().chain(wanted.keys()).cloned().collect();
    let none = components.is_empty().then(|| {
        Comparison::new(
            format!("{prefix}{kind}"),
            Some("(none)".into()),
            Some("(none)".into()),
        )
    });
    components
        .into_iter()
        .map(move |component| {
            Comparison::new(
                format!("{prefix}{kind}[{component}]"),
                actual.get(&component).cloned(),
                wanted.get(&component).cloned(),
            )
        })
        .chain(none)
}

#[cfg(test)]
mod tests {
    use super::*;
    use waldur_plugin_abi::wire::{AccountUser, ExpectedAccount, KindLimits};

    fn kind(kind: &str, values: &[(&str, &str)]) -> KindLimits {
        KindLimits::from([(
            kind.to_string(),
            values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )])
    }

    fn member(cuid: &str, username: &str) -> ProjectUser {
        ProjectUser {
            username: cuid.into(),
            offering_user_username: Some(username.into()),
            role: "PROJECT.MEMBER".into(),
            ..Default::default()
        }
    }

    fn consistent() -> AccountDiagnosis {
        AccountDiagnosis {
            account: "a_alloc".into(),
            exists: true,
            settings: [("qos".to_string(), "normal".to_string())].into(),
            limits: kind("GrpTRESMins", &[("cpu", "10"), ("gres/gpu", "300")]),
            associations: vec![
                AccountUser {
                    user: "alice".into(),
                    limits: KindLimits::new(),
                },
                AccountUser {
                    user: "bob".into(),
                    limits: kind("MaxTRESMins", &[("cpu", "5")]),
                },
            ],
            expected: ExpectedAccount {
                settings: [("qos".to_string(), "normal".to_string())].into(),
                limits: kind("GrpTRESMins", &[("cpu", "10"), ("gres/gpu", "300")]),
                user_limits: [
                    ("alice".to_string(), kind("MaxTRESMins", &[])),
                    ("bob".to_string(), kind("MaxTRESMins", &[("cpu", "5")])),
                ]
                .into(),
                reasons: [(
                    "GrpTRESMins[gres/gpu]".to_string(),
                    "Waldur limit 5 x unit_factor 60".to_string(),
                )]
                .into(),
            },
            ..Default::default()
        }
    }

    fn team() -> Vec<ProjectUser> {
        vec![member("alice@idp", "alice"), member("bob@idp", "bob")]
    }

    fn facts(team: &[ProjectUser]) -> WaldurFacts<'_> {
        WaldurFacts {
            resources: 1,
            team,
            ..Default::default()
        }
    }

    /// `(item, backend, expected, reason)` of a comparison.
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn differences(items: &[Comparison]) -> Vec<&Comparison> {
        items.iter().filter(|c| !c.ok).collect()
    }

    #[test]
    fn a_consistent_account_has_no_difference() {
        let team = team();
        let items = compare(&consistent(), &facts(&team));
        assert!(differences(&items).is_empty(), "{items:#?}");
        let names: Vec<&str> = items.iter().map(|c| c.item.as_str()).collect();
        assert_eq!(
            names,
            [
                "backend account",
                "Waldur resources with this backend id",
                "qos",
                "GrpTRESMins[cpu]",
                "GrpTRESMins[gres/gpu]",
                "user alice",
                "user bob",
                "user alice MaxTRESMins",
                "user bob MaxTRESMins[cpu]",
            ]
        );
        assert_eq!(
            items[4].reason.as_deref(),
            Some("Waldur limit 5 x unit_factor 60")
        );
    }

    #[test]
    fn changed_extra_and_missing_limits_differ() {
        let mut diagnosis = consistent();
        let limits = diagnosis.limits.get_mut("GrpTRESMins").unwrap();
        limits.insert("cpu".into(), "20".into());
        limits.remove("gres/gpu");
        limits.insert("mem".into(), "100".into());
        let team = team();
        let items = compare(&diagnosis, &facts(&team));
        let found: Vec<(&str, Option<&str>, Option<&str>)> = differences(&items)
            .iter()
            .map(|c| (c.item.as_str(), c.backend.as_deref(), c.expected.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("GrpTRESMins[cpu]", Some("20"), Some("10")),
                ("GrpTRESMins[gres/gpu]", None, Some("300")),
                ("GrpTRESMins[mem]", Some("100"), None),
            ]
        );
    }

    #[test]
    fn missing_and_extra_users_and_user_limits_differ() {
        let mut diagnosis = consistent();
        // bob was removed behind the agent's back; eve was added.
        diagnosis.associations.retain(|a| a.user != "bob");
        diagnosis.associations.push(AccountUser {
            user: "eve".into(),
            limits: kind("MaxTRESMins", &[("cpu", "1")]),
        });
        diagnosis
            .expected
            .user_limits
            .insert("eve".into(), kind("MaxTRESMins", &[]));
        let team = team();
        let items = compare(&diagnosis, &facts(&team));
        let found: Vec<Row> = differences(&items)
            .iter()
            .map(|c| {
                (
                    c.item.as_str(),
                    c.backend.as_deref(),
                    c.expected.as_deref(),
                    c.reason.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "user bob",
                    None,
                    Some("present"),
                    Some("team member bob@idp")
                ),
                (
                    "user eve",
                    Some("present"),
                    None,
                    Some("not in the resource's team")
                ),
                ("user eve MaxTRESMins[cpu]", Some("1"), None, None),
            ]
        );
    }

    #[test]
    fn settings_differ_by_value_and_unknown_accounts_stop_at_existence() {
        let mut diagnosis = consistent();
        diagnosis.settings.insert("qos".into(), "paused".into());
        let team = team();
        let items = compare(&diagnosis, &facts(&team));
        assert_eq!(differences(&items).len(), 1);
        assert_eq!(differences(&items)[0].item, "qos");

        let unknown = AccountDiagnosis {
            account: "nope".into(),
            ..Default::default()
        };
        let nobody = WaldurFacts::default();
        let items = compare(&unknown, &nobody);
        assert_eq!(items.len(), 2, "{items:#?}");
        assert!(items.iter().all(|c| !c.ok));
        assert_eq!(items[0].backend, None);
        assert_eq!(items[1].backend.as_deref(), Some("0"));
    }
}
