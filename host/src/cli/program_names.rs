//! The reference agent's command names (its `[project.scripts]`) as names of this binary.
//! Installed as links to `waldur-agent` (the Debian package does), each runs one subcommand,
//! so the reference's systemd units, container commands and Helm probes work unchanged:
//! `waldur_site_agent -m report -c FILE` is `waldur-agent run -m report -c FILE`.

use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory, Parser};

use super::Cli;

/// A reference command name and the subcommand it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramName {
    pub name: &'static str,
    pub subcommand: &'static str,
}

/// Every reference command name this binary answers to; the package links each one.
pub const PROGRAM_NAMES: &[ProgramName] = &[
    ProgramName {
        name: "waldur_site_agent",
        subcommand: "run",
    },
    ProgramName {
        name: "waldur_site_diagnostics",
        subcommand: "diagnostics",
    },
    ProgramName {
        name: "waldur_site_load_components",
        subcommand: "load-components",
    },
    ProgramName {
        name: "waldur_sync_offering_users",
        subcommand: "sync-offering-users",
    },
    ProgramName {
        name: "waldur_sync_resource_limits",
        subcommand: "sync-resource-limits",
    },
    ProgramName {
        name: "waldur_site_create_homedirs",
        subcommand: "create-homedirs",
    },
    ProgramName {
        name: "waldur_site_load_historical_usage",
        subcommand: "load-historical-usage",
    },
    ProgramName {
        name: "waldur_site_healthz",
        subcommand: "healthz",
    },
    #[cfg(feature = "simulator")]
    ProgramName {
        name: "waldur_site_test_order",
        subcommand: "test-order",
    },
    ProgramName {
        name: "waldur_site_diagnose_slurm_account",
        subcommand: "diagnose-slurm-account",
    },
];

/// The reference name a program path ends in (`/usr/bin/waldur_site_healthz`), if any.
pub fn program_name(argv0: &Path) -> Option<&'static ProgramName> {
    let file = argv0.file_name()?.to_str()?;
    PROGRAM_NAMES.iter().find(|p| p.name == file)
}

/// Parses the process's command line. Under a reference name the arguments are those of its
/// subcommand; help, usage and errors name the program as it was called.
pub fn parse() -> Cli {
    parse_from(std::env::args_os().collect())
}

/// [`parse`] of an explicit argument vector (`args[0]` is the program).
pub fn parse_from(mut args: Vec<OsString>) -> Cli {
    let Some(program) = args.first().and_then(|a| program_name(Path::new(a))) else {
        return Cli::parse_from(args);
    };
    // A multicall command whose only subcommand carries the program's name: clap then prints
    // `Usage: waldur_site_healthz [OPTIONS]` and exits on --help or a bad argument.
    let subcommand = Cli::command()
        .find_subcommand(program.subcommand)
        .unwrap_or_else(|| panic!("no subcommand {}", program.subcommand))
        .clone()
        .name(program.name)
        .version(crate::AGENT_VERSION);
    let single = clap::Command::new(program.name)
        .multicall(true)
        .subcommand_required(true)
        .subcommand(subcommand);
    single.get_matches_from(&args);
    // The same arguments under the subcommand's own name build the typed command line.
    args[0] = OsString::from("waldur-agent");
    args.insert(1, OsString::from(program.subcommand));
    Cli::try_parse_from(args).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run::RunMode;
    use crate::cli::Command;

    #[test]
    fn every_name_has_its_subcommand() {
        let cli = Cli::command();
        for program in PROGRAM_NAMES {
            assert!(
                cli.find_subcommand(program.subcommand).is_some(),
                "{program:?}"
            );
        }
    }

    #[test]
    fn a_link_name_runs_its_subcommand_with_the_reference_flags() {
        let args = |line: &str| line.split(' ').map(OsString::from).collect::<Vec<_>>();
        let cli = parse_from(args(
            "/usr/bin/waldur_site_agent -m report -c /etc/waldur/a.yaml",
        ));
        match cli.command {
            Command::Run(run) => {
                assert_eq!(run.mode, RunMode::Report);
                assert_eq!(
                    run.source.config.as_deref(),
                    Some(Path::new("/etc/waldur/a.yaml"))
                );
            }
            other => panic!("{other:?}"),
        }
        let cli = parse_from(args(
            "waldur_site_healthz --config-file x.yaml --max-age 5 --liveness-only",
        ));
        match cli.command {
            Command::Healthz(h) => {
                assert!(h.liveness_only);
                assert_eq!(h.max_age, 5);
            }
            other => panic!("{other:?}"),
        }
        let cli = parse_from(args(
            "waldur_site_load_historical_usage --config x.yaml -o U -t T -s 2024-01-01 \
             -e 2024-02-01 --resource-backend-id a --resource-backend-id b --reconcile-stale",
        ));
        match cli.command {
            Command::LoadHistoricalUsage(h) => {
                assert_eq!(h.source.config.as_deref(), Some(Path::new("x.yaml")));
                assert_eq!(
                    (h.offering_uuid.as_str(), h.user_token.expose()),
                    ("U", "T")
                );
                assert_eq!(h.resource_backend_ids, ["a", "b"]);
                assert!(h.reconcile_stale && !h.dry_run);
            }
            other => panic!("{other:?}"),
        }
        let cli = parse_from(args("waldur_site_diagnostics -m order_process -c x.yaml"));
        assert!(matches!(cli.command, Command::Diagnostics(_)));
        #[cfg(feature = "simulator")]
        {
            let cli = parse_from(args(
                "waldur_site_test_order -c x.yaml --template create/basic --var cpu_limit=5",
            ));
            match cli.command {
                Command::TestOrder(t) => {
                    assert_eq!(t.template.as_deref(), Some("create/basic"));
                    assert_eq!(t.vars, ["cpu_limit=5"]);
                    assert_eq!(t.source.config.as_deref(), Some(Path::new("x.yaml")));
                }
                other => panic!("{other:?}"),
            }
        }
        let cli = parse_from(args(
            "waldur_site_diagnose_slurm_account alloc_x -c x.yaml --offering-uuid u --json -v --no-color",
        ));
        match cli.command {
            Command::DiagnoseSlurmAccount(d) => {
                assert_eq!(d.account_name, "alloc_x");
                assert_eq!(d.offering_uuid.as_deref(), Some("u"));
                assert!(d.json && d.verbose && d.no_color);
                assert_eq!(d.source.config.as_deref(), Some(Path::new("x.yaml")));
            }
            other => panic!("{other:?}"),
        }
        // Any other program name is the ordinary command line.
        let cli = parse_from(args("./waldur-agent sync-offering-users -c x.yaml"));
        assert!(matches!(cli.command, Command::SyncOfferingUsers(_)));
    }
}
