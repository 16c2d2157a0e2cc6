//! Withheld writes, for dry runs (`waldur-agent run --dry-run`): a handle told to withhold
//! writes does not call a plugin method that changes the backend. It tells a
//! [`WriteRecorder`] which method it would have called with which arguments, and answers what
//! the method answers when it succeeds, so the agent's logic goes on as if it had (a created
//! account has the id it was asked for, added users were added).
//!
//! Every method of the catalogues is classified here, once: [`WRITING_METHODS`] with its
//! planned answer, or [`READING_METHODS`]. A test keeps the two lists equal to the catalogues,
//! so a method added to the ABI cannot be left unclassified. Methods reached through `invoke`
//! (added after ABI 1.0) are not classified and are called: the ABI cannot tell their reads
//! from their writes.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use waldur_plugin_abi::{Error, ErrorKind, Result};

/// Learns about each plugin call a dry run withheld.
pub trait WriteRecorder: Send + Sync {
    /// `method` would have been called with `arguments` (the JSON object the plugin would
    /// have received).
    fn record(&self, method: &'static str, arguments: Value);
}

/// The answer of a withheld write, from its arguments.
type PlannedAnswer = fn(&Value) -> Value;

fn nothing(_: &Value) -> Value {
    Value::Null
}

fn yes(_: &Value) -> Value {
    Value::Bool(true)
}

fn no(_: &Value) -> Value {
    Value::Bool(false)
}

fn empty_list(_: &Value) -> Value {
    json!([])
}

fn empty_object(_: &Value) -> Value {
    json!({})
}

/// The users asked for: all of them added, or removed.
fn the_usernames(args: &Value) -> Value {
    args["usernames"].clone()
}

/// A created account carries the id it was asked for.
fn created_with_id(args: &Value) -> Value {
    json!({ "backend_id": args["resource_backend_id"] })
}

/// `create_resource` picks its id from the resource; the id Waldur already has, else the
/// slug it would be derived from.
fn created_from_resource(args: &Value) -> Value {
    let resource = &args["waldur_resource"];
    let id = resource["backend_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .or_else(|| resource["slug"].as_str())
        .unwrap_or_default();
    json!({ "backend_id": id })
}

/// The post-create hook leaves the resource as it was created.
fn unchanged_resource_info(args: &Value) -> Value {
    args["resource_info"].clone()
}

fn created_client_resource(args: &Value) -> Value {
    args["name"].clone()
}

fn periodic_settings_applied(_: &Value) -> Value {
    json!({ "success": true, "commands_executed": [] })
}

/// A username the dry run cannot know (the backend would make it up): named after the user.
fn placeholder_username(args: &Value) -> Value {
    let user = args["offering_user"]["user_username"]
        .as_str()
        .unwrap_or_default();
    Value::String(format!("(dry run: the username of {user})"))
}

fn placeholder_key(_: &Value) -> Value {
    Value::String("(dry run: a new key)".into())
}

/// Every catalogue method that changes the backend (or, through the host API, Waldur), with
/// what it answers in a dry run.
pub const WRITING_METHODS: &[(&str, PlannedAnswer)] = &[
    // BaseBackend
    ("downscale_resource", yes),
    ("pause_resource", yes),
    ("restore_resource", yes),
    ("pre_create_resource", nothing),
    ("create_resource", created_from_resource),
    ("create_resource_with_id", created_with_id),
    ("create_backend_resource", yes),
    ("setup_resource_limits", empty_object),
    ("post_create_resource", unchanged_resource_info),
    ("delete_resource", nothing),
    ("pre_delete_resource", nothing),
    ("post_delete_resource", nothing),
    ("delete_resource_safely", nothing),
    ("pre_delete_user_actions", nothing),
    ("add_users_to_resource", the_usernames),
    ("add_user", yes),
    ("remove_users_from_resource", the_usernames),
    ("remove_user", yes),
    ("process_existing_users", nothing),
    ("reconcile_existing_user_roles", nothing),
    ("update_user_attributes", nothing),
    ("sync_offering_user_usernames", no),
    ("sync_resource_project", nothing),
    ("sync_project_end_date", nothing),
    ("sync_resource_end_date", nothing),
    ("sync_resource_effective_id", nothing),
    ("sync_resource_limits", nothing),
    ("set_resource_limits", nothing),
    ("set_resource_user_limits", nothing),
    ("recreate_missing_resource", no),
    ("create_user_homedirs", nothing),
    ("apply_periodic_settings", periodic_settings_applied),
    ("setup_target_event_subscriptions", empty_list),
    ("prune_unknown_resource_keys", nothing),
    ("generate_resource_keys", empty_list),
    ("rotate_resource_key", placeholder_key),
    // BaseClient
    ("client_create_resource", created_client_resource),
    ("client_delete_resource", nothing),
    ("client_set_resource_limits", nothing),
    ("client_set_resource_user_limits", nothing),
    ("client_create_association", nothing),
    ("client_delete_association", nothing),
    // A command can do anything.
    ("client_execute_command", |_| Value::String(String::new())),
    ("client_create_linux_user_homedir", nothing),
    // Username backends
    ("get_or_create_username", placeholder_username),
    ("sync_user_profiles", nothing),
    ("deactivate_users", nothing),
];

/// Every catalogue method that only reads: a dry run calls these.
pub const READING_METHODS: &[&str] = &[
    "capabilities",
    "set_runtime_context",
    "ping",
    "run_preflight",
    "diagnostics",
    "list_components",
    "get_usage_report",
    "get_usage_report_for_period",
    "get_resource_metadata",
    "collect_resource_limits",
    "get_resource_backend_id",
    "get_project_backend_id",
    "get_customer_backend_id",
    "get_resource_limits",
    "get_resource_user_limits",
    "list_resources",
    "pull_resources",
    "pull_resource",
    "pull_backend_resource",
    "check_pending_order",
    "evaluate_pending_order",
    "get_membership_sync_report",
    "has_prepaid_components",
    "client_list_resources",
    "client_get_resource",
    "client_get_resource_limits",
    "client_get_resource_user_limits",
    "client_get_association",
    "client_get_usage_report",
    "client_list_resource_users",
    // Makes a name up; `get_or_create_username` is the one that may create it.
    "generate_username",
    "get_username",
];

/// Whether a dry run withholds `method`.
pub fn is_write(method: &str) -> bool {
    planned_answer(method).is_some()
}

fn planned_answer(method: &str) -> Option<PlannedAnswer> {
    WRITING_METHODS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, answer)| *answer)
}

/// For a writing `method`: records the call instead of making it and answers the planned
/// result. `None` for a method that reads, which is then called.
pub(crate) fn intercept<A: Serialize, R: DeserializeOwned>(
    recorder: &dyn WriteRecorder,
    method: &'static str,
    args: &A,
) -> Option<Result<R>> {
    let answer = planned_answer(method)?;
    let arguments = match serde_json::to_value(args) {
        Ok(arguments) => arguments,
        Err(e) => {
            return Some(Err(Error::invalid_input(format!(
                "{method}: cannot encode arguments: {e}"
            ))))
        }
    };
    let planned = answer(&arguments);
    recorder.record(method, arguments);
    Some(serde_json::from_value(planned).map_err(|e| {
        Error::new(
            ErrorKind::INTERNAL,
            format!("{method}: the dry run's planned answer does not fit: {e}"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::{BACKEND_METHODS, CLIENT_METHODS, USERNAME_METHODS};
    use std::collections::BTreeSet;
    #[allow(unused_imports)]
    use waldur_plugin_abi::wire::*;

    /// Per catalogue: every writing method's planned answer, from arguments with every key the
    /// answers read, decodes into the method's return type.
    macro_rules! check_planned_answers {
        (
            $args:ident;
            $(
                $(#[doc = $doc:literal])*
                fn $name:ident ( $( $arg:ident : $ty:ty ),* ) -> $ret:ty $(= $default:block)? ;
            )*
        ) => {
            $(
                if let Some(answer) = planned_answer(stringify!($name)) {
                    let planned = answer(&$args);
                    if let Err(e) = serde_json::from_value::<$ret>(planned.clone()) {
                        panic!("{}: {planned} is no {}: {e}", stringify!($name), stringify!($ret));
                    }
                }
            )*
        };
    }

    #[test]
    fn every_planned_answer_fits_its_method() {
        let args = json!({
            "usernames": ["alice"],
            "resource_backend_id": "alloc_a",
            "waldur_resource": {"slug": "a", "backend_id": ""},
            "resource_info": {"backend_id": "alloc_a"},
            "name": "alloc_a",
            "offering_user": {"user_username": "alice@idp"},
        });
        waldur_plugin_abi::with_backend_methods!(check_planned_answers!(args));
        waldur_plugin_abi::with_client_methods!(check_planned_answers!(args));
        waldur_plugin_abi::with_username_methods!(check_planned_answers!(args));
        assert_eq!(created_from_resource(&args), json!({"backend_id": "a"}));
        assert_eq!(
            placeholder_username(&args),
            json!("(dry run: the username of alice@idp)")
        );
    }

    #[test]
    fn every_catalogue_method_is_classified_once() {
        let catalogue: BTreeSet<&str> = BACKEND_METHODS
            .iter()
            .chain(CLIENT_METHODS)
            .chain(USERNAME_METHODS)
            .copied()
            .collect();
        let writes: BTreeSet<&str> = WRITING_METHODS.iter().map(|(m, _)| *m).collect();
        let reads: BTreeSet<&str> = READING_METHODS.iter().copied().collect();
        assert_eq!(writes.len(), WRITING_METHODS.len(), "a write listed twice");
        assert_eq!(reads.len(), READING_METHODS.len(), "a read listed twice");
        assert!(
            writes.is_disjoint(&reads),
            "{:?}",
            writes.intersection(&reads)
        );
        let classified: BTreeSet<&str> = writes.union(&reads).copied().collect();
        assert_eq!(classified, catalogue);
    }
}
