use std::process::ExitCode;

use clap::Parser;
use waldur_agent::cli::{init_logging, run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging("info");
    run(cli)
}
