use std::process::ExitCode;

use waldur_agent::cli::{parse, run};

fn main() -> ExitCode {
    waldur_agent::allocator::limit_arenas();
    // `waldur-agent SUBCOMMAND ...`, or a reference name such as `waldur_site_agent -m report`.
    run(parse())
}
