use std::process::ExitCode;

use clap::Parser;
use waldur_agent::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli)
}
