//! `waldur-sim --scenario FILE [--listen 127.0.0.1:PORT]`: serves the scenario until killed and
//! prints the API URL on the first line of stdout so scripts can read it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use waldur_sim::{Scenario, Simulator};

#[derive(Parser)]
#[command(version, about = "Stateful Waldur Mastermind API simulator")]
struct Args {
    /// Scenario YAML file.
    #[arg(long)]
    scenario: PathBuf,
    /// Address to listen on; loopback only (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

fn main() {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "waldur-sim: refusing to listen on non-loopback address {}",
            args.listen
        );
        std::process::exit(2);
    }
    let scenario = match Scenario::from_file(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waldur-sim: {e}");
            std::process::exit(2);
        }
    };
    let sim = match Simulator::start_on(scenario, args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("waldur-sim: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", sim.url());
    let _ = std::io::stdout().flush();
    sim.wait();
}
