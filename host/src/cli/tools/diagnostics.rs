//! `waldur-agent diagnostics`: a readable report of the checks of every offering.

use std::process::ExitCode;

use super::{setup_failed, with_agent, ToolArgs};
use crate::modes::tools::diagnostics::diagnostics;

pub fn run(args: ToolArgs) -> ExitCode {
    let reports = match with_agent(args.source, async |agent| diagnostics(agent).await) {
        Ok(r) => r,
        Err(e) => return setup_failed(&e),
    };
    let mut failed = 0;
    for report in &reports {
        let verdict = if report.passed() { "ok" } else { "FAILED" };
        println!("offering '{}': {verdict}", report.offering);
        for check in &report.checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            println!("  [{mark}] {}: {}", check.name, check.detail);
        }
        if !report.passed() {
            failed += 1;
        }
    }
    println!(
        "{} offering(s), {} with failed checks",
        reports.len(),
        failed
    );
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
