//! `waldur-agent package-assets DIR` (hidden): writes what the Debian package ships beside the
//! binary and that is derived from the command line itself: shell completions, man pages and
//! the links under the reference's command names. A subcommand rather than a build step: the
//! release binary scripts/package.sh packages is already built, so this costs no compilation
//! (a build script would need the CLI definitions outside the crate, an example would build
//! every dev-dependency in release), and the files always describe exactly the binary shipped,
//! with its features.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, PROGRAM_NAMES};

/// The binary's name; the links point at it (relative, beside it in /usr/bin).
const BINARY: &str = "waldur-agent";

/// Writes `DIR/completions/{waldur-agent.bash,_waldur-agent,waldur-agent.fish}`,
/// `DIR/man/*.1` (the command and each visible subcommand) and `DIR/bin/<name>` links.
pub fn run(dir: &Path) -> ExitCode {
    match write_all(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn write_all(dir: &Path) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    let completions = dir.join("completions");
    let man = dir.join("man");
    let bin = dir.join("bin");
    for sub in [&completions, &man, &bin] {
        std::fs::create_dir_all(sub).map_err(|e| io(sub, e))?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), BINARY, &completions)
            .map_err(|e| io(&completions, e))?;
    }
    let command = Cli::command();
    clap_mangen::generate_to(command, &man).map_err(|e| io(&man, e))?;
    for program in PROGRAM_NAMES {
        let link = bin.join(program.name);
        match std::fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&link, e)),
        }
        std::os::unix::fs::symlink(BINARY, &link).map_err(|e| io(&link, e))?;
    }
    Ok(())
}
