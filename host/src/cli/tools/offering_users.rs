//! `waldur-agent sync-offering-users`.

use std::process::ExitCode;

use super::{print_report, setup_failed, with_agent, ToolArgs};
use crate::modes::tools::offering_users::sync_offering_users;

pub fn run(args: ToolArgs) -> ExitCode {
    match with_agent(args.source, async |agent| sync_offering_users(agent).await) {
        Ok(report) => print_report(&report, |s| {
            let states: Vec<String> = s.states.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!(
                "{} offering user(s), {} changed; {}",
                s.users,
                s.changed,
                if states.is_empty() {
                    "no users".into()
                } else {
                    states.join(", ")
                }
            )
        }),
        Err(e) => setup_failed(&e),
    }
}
