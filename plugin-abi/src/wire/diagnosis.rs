//! Account diagnostics (`invoke("diagnose_account")`, a method added after ABI 1.0 and
//! optional for plugins): what one backend account looks like, next to what the plugin would
//! set on it for Waldur's resource. The plugin converts Waldur's values into its own units
//! and names, so the agent compares like with like without knowing the backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BackendLimits, WaldurResource};

/// The `invoke` method: [`DiagnoseAccountArgs`] in, [`AccountDiagnosis`] out.
pub const DIAGNOSE_ACCOUNT_METHOD: &str = "diagnose_account";

/// Limit kind as the backend names it (`GrpTRESMins`) -> component -> value as text.
pub type KindLimits = BTreeMap<String, BTreeMap<String, String>>;

/// What the agent asks about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiagnoseAccountArgs {
    /// The account (untrusted: the plugin checks it like every name it puts in a command).
    pub backend_id: String,
    /// Waldur's resource with this backend id, when Waldur has one: the plugin answers what
    /// it would set on the account for it.
    pub waldur_resource: Option<WaldurResource>,
    /// Waldur's per-user limits of that resource, in Waldur units, by backend username.
    pub user_limits: BTreeMap<String, BackendLimits>,
}

/// One user's association with the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountUser {
    pub user: String,
    /// The limits on the user's association.
    pub limits: KindLimits,
}

/// A fact shown as it is (description, parent, ...), never compared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountFact {
    pub label: String,
    pub value: String,
}

/// What the plugin would set on the account for Waldur's resource. Empty without one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpectedAccount {
    /// Compared with [`AccountDiagnosis::settings`]; `""` means "not set".
    pub settings: BTreeMap<String, String>,
    /// Compared kind by kind with [`AccountDiagnosis::limits`]: within a kind named here,
    /// a component the account limits and this map does not is a difference too.
    pub limits: KindLimits,
    /// Per user: the limits their association should have, compared like `limits` (an
    /// empty kind: no limit of that kind).
    pub user_limits: BTreeMap<String, KindLimits>,
    /// Why a value is expected, keyed `<kind>[<component>]` for limits and by name for
    /// settings (`GrpTRESMins[cpu]` -> "Waldur limit 5 x unit_factor 60").
    pub reasons: BTreeMap<String, String>,
}

/// The plugin's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountDiagnosis {
    pub account: String,
    pub exists: bool,
    pub facts: Vec<AccountFact>,
    /// Named settings that are not limits (`qos`, ...).
    pub settings: BTreeMap<String, String>,
    /// The account's own limits.
    pub limits: KindLimits,
    /// Every user with an association in the account, once each.
    pub associations: Vec<AccountUser>,
    pub expected: ExpectedAccount,
}
