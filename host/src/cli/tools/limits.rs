//! `waldur-agent sync-resource-limits`.

use std::process::ExitCode;

use super::{print_report, setup_failed, with_agent, ToolArgs};
use crate::modes::tools::limits::sync_resource_limits;
use crate::modes::tools::ToolOutcome;

pub fn run(args: ToolArgs) -> ExitCode {
    match with_agent(args.source, async |agent| sync_resource_limits(agent).await) {
        Ok(report) => {
            let code = print_report(&report, |s| {
                let mut line = format!(
                    "{} resource(s), limits pushed for {}, {} failed",
                    s.resources,
                    s.pushed,
                    s.failed.len()
                );
                for (uuid, e) in &s.failed {
                    line.push_str(&format!("; {uuid}: {e}"));
                }
                line
            });
            let resource_failures = report
                .offerings
                .iter()
                .any(|(_, o)| matches!(o, ToolOutcome::Done(s) if !s.failed.is_empty()));
            if resource_failures {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Err(e) => setup_failed(&e),
    }
}
