//! `waldur-agent create-homedirs`.

use std::process::ExitCode;

use super::{list, print_report, setup_failed, with_agent, ToolArgs};
use crate::modes::tools::homedirs::create_homedirs;

pub fn run(args: ToolArgs) -> ExitCode {
    match with_agent(args.source, async |agent| create_homedirs(agent).await) {
        Ok(report) => print_report(&report, |s| {
            format!(
                "home directories for {} (umask {})",
                list(&s.usernames),
                s.umask
            )
        }),
        Err(e) => setup_failed(&e),
    }
}
