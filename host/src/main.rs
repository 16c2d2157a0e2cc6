use std::process::ExitCode;

use waldur_agent::cli::{parse, run};

fn main() -> ExitCode {
    // `waldur-agent SUBCOMMAND ...`, or a reference name such as `waldur_site_agent -m report`.
    run(parse())
}
