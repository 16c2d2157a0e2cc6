//! `waldur-agent load-components`.

use std::process::ExitCode;

use super::{list, print_report, setup_failed, with_agent, ToolArgs};
use crate::modes::tools::components::load_components;

pub fn run(args: ToolArgs) -> ExitCode {
    match with_agent(args.source, async |agent| load_components(agent).await) {
        Ok(report) => {
            let code = print_report(&report, |s| {
                let failed: Vec<String> = s
                    .failed
                    .iter()
                    .map(|(kind, e)| format!("{kind} ({e})"))
                    .collect();
                format!(
                    "created {}; updated {}; failed {}",
                    list(&s.created),
                    list(&s.updated),
                    list(&failed)
                )
            });
            // A component that failed fails the offering's outcome too.
            let component_failures = report.offerings.iter().any(|(_, o)| {
                matches!(o, crate::modes::tools::ToolOutcome::Done(s) if !s.failed.is_empty())
            });
            if component_failures {
                ExitCode::from(1)
            } else {
                code
            }
        }
        Err(e) => setup_failed(&e),
    }
}
