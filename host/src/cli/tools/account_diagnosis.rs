//! `waldur-agent diagnose-slurm-account ACCOUNT` (reference `waldur_site_diagnose_slurm_account`,
//! same arguments): the account as the backend has it, the Waldur resource with that backend
//! id, and a table of every compared item with the differences marked; or all of it as JSON.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use super::{list, setup_failed, with_agent};
use crate::cli::PluginSource;
use crate::modes::tools::account_comparison::Comparison;
use crate::modes::tools::account_diagnosis::{diagnose_account, AccountReport};

/// Shown after `--help`.
pub const AFTER_HELP: &str = "Exit codes: 0 = the account and Waldur agree; 1 = at least one \
difference (an account or resource that does not exist is one); 2 = the configuration, the \
plugins, Waldur or the backend could not be used, or the plugin has no account diagnostics.";

#[derive(Debug, Args)]
pub struct DiagnoseAccountArgs {
    /// The account (backend id) to diagnose.
    #[arg(value_name = "ACCOUNT_NAME")]
    pub account_name: String,
    #[command(flatten)]
    pub source: PluginSource,
    /// The offering to use (default: the configuration's SLURM offering; among several,
    /// the one whose Waldur resources have the account).
    #[arg(long, value_name = "UUID")]
    pub offering_uuid: Option<String>,
    /// Print the whole report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also say why each matching value is expected.
    #[arg(short, long)]
    pub verbose: bool,
    /// No colours (there are none when the output is not a terminal either).
    #[arg(long)]
    pub no_color: bool,
}

pub fn run(args: DiagnoseAccountArgs) -> ExitCode {
    let (account, offering) = (args.account_name.clone(), args.offering_uuid.clone());
    let report = match with_agent(args.source, async |agent| {
        diagnose_account(agent, &account, offering.as_deref()).await
    }) {
        Ok(Ok(report)) => report,
        Ok(Err(e)) | Err(e) => return setup_failed(&e),
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => return setup_failed(&format!("cannot encode the report: {e}")),
        }
    } else {
        let colour = !args.no_color && std::io::stdout().is_terminal();
        print!("{}", render(&report, args.verbose, colour));
    }
    if report.differences > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The human-readable report.
fn render(report: &AccountReport, verbose: bool, colour: bool) -> String {
    let mut out = format!(
        "Account {} (offering '{}', plugin entry '{}')\n\nBackend\n",
        report.account, report.offering, report.plugin_entry
    );
    let row = |out: &mut String, label: &str, value: &str| {
        out.push_str(&format!("  {label:<22} {value}\n"));
    };
    let backend = &report.backend;
    row(
        &mut out,
        "exists",
        if backend.exists { "yes" } else { "no" },
    );
    for fact in &backend.facts {
        row(&mut out, &fact.label, &fact.value);
    }
    for (name, value) in &backend.settings {
        row(&mut out, name, value);
    }
    for (kind, values) in &backend.limits {
        let joined: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
        row(&mut out, kind, &joined.join(","));
    }
    let users: Vec<String> = backend
        .associations
        .iter()
        .map(|a| a.user.clone())
        .collect();
    if backend.exists {
        row(&mut out, "users", &list(&users));
    }
    out.push_str("\nWaldur\n");
    match &report.waldur {
        None => row(&mut out, "resource", "none with this backend id"),
        Some(w) => {
            row(&mut out, "resource", &format!("{} ({})", w.name, w.uuid));
            row(&mut out, "state", &w.state);
            row(&mut out, "project", &w.project_name);
            row(&mut out, "customer", &w.customer_name);
            let limits: Vec<String> = w.limits.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row(&mut out, "limits", &list(&limits));
            let yes = |b: bool| if b { "yes" } else { "no" };
            row(&mut out, "paused", yes(w.paused));
            row(&mut out, "downscaled", yes(w.downscaled));
            if w.restrict_member_access {
                row(&mut out, "restrict_member_access", "yes");
            }
            let team: Vec<String> = w
                .team
                .iter()
                .map(|m| match &m.offering_user_username {
                    Some(account) => format!("{} ({account})", m.username),
                    None => format!("{} (no offering user)", m.username),
                })
                .collect();
            row(&mut out, "team", &list(&team));
        }
    }
    out.push('\n');
    out.push_str(&table(&report.comparisons, verbose, colour));
    out.push_str(&if report.differences == 0 {
        "Result: no difference\n".to_string()
    } else {
        format!("Result: {} difference(s)\n", report.differences)
    });
    out
}

/// `STATUS ITEM BACKEND EXPECTED [WHY]`, one row per item; WHY for differences (and, with
/// `verbose`, for matches).
fn table(items: &[Comparison], verbose: bool, colour: bool) -> String {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let width = |header: &str, column: &dyn Fn(&Comparison) -> String| {
        items
            .iter()
            .map(|c| column(c).chars().count())
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let (item_w, backend_w, expected_w) = (
        width("ITEM", &|c| c.item.clone()),
        width("BACKEND", &|c| shown(&c.backend)),
        width("EXPECTED", &|c| shown(&c.expected)),
    );
    let mut out = format!(
        "  {:<6} {:<item_w$} {:<backend_w$} {:<expected_w$} WHY\n",
        "STATUS", "ITEM", "BACKEND", "EXPECTED"
    );
    for c in items {
        let status = if c.ok { "ok" } else { "DIFF" };
        let status = match (colour, c.ok) {
            (true, false) => format!("\x1b[1;31m{status:<6}\x1b[0m"),
            (true, true) => format!("\x1b[32m{status:<6}\x1b[0m"),
            _ => format!("{status:<6}"),
        };
        let why = if !c.ok || verbose {
            c.reason.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let line = format!(
            "  {status} {:<item_w$} {:<backend_w$} {:<expected_w$} {why}",
            c.item,
            shown(&c.backend),
            shown(&c.expected),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::tools::account_diagnosis::{TeamMember, WaldurSide};
    use waldur_plugin_abi::wire::{AccountDiagnosis, AccountFact, AccountUser};

    fn item(item: &str, backend: Option<&str>, expected: Option<&str>) -> Comparison {
        Comparison {
            item: item.into(),
            backend: backend.map(str::to_string),
            expected: expected.map(str::to_string),
            ok: backend == expected,
            reason: Some(format!("why {item}")),
        }
    }

    fn report() -> AccountReport {
        AccountReport {
            account: "a_alloc".into(),
            offering: "SLURM".into(),
            plugin_entry: "slurm".into(),
            backend: AccountDiagnosis {
                account: "a_alloc".into(),
                exists: true,
                facts: vec![AccountFact {
                    label: "description".into(),
                    value: "alloc".into(),
                }],
                settings: [("qos".to_string(), "normal".to_string())].into(),
                limits: [(
                    "GrpTRESMins".to_string(),
                    [("cpu".to_string(), "20".to_string())].into(),
                )]
                .into(),
                associations: vec![AccountUser {
                    user: "alice".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            waldur: Some(WaldurSide {
                uuid: "u1".into(),
                name: "alloc".into(),
                state: "OK".into(),
                project_name: "P".into(),
                customer_name: "C".into(),
                limits: [("cpu".to_string(), 10.0)].into(),
                paused: false,
                downscaled: false,
                restrict_member_access: false,
                team: vec![
                    TeamMember {
                        username: "alice@idp".into(),
                        offering_user_username: Some("alice".into()),
                    },
                    TeamMember {
                        username: "carol@idp".into(),
                        offering_user_username: None,
                    },
                ],
            }),
            comparisons: vec![
                item("qos", Some("normal"), Some("normal")),
                item("GrpTRESMins[cpu]", Some("20"), Some("10")),
                item("user bob", None, Some("present")),
            ],
            differences: 2,
        }
    }

    #[test]
    fn the_table_marks_differences_and_gives_their_reasons() {
        let text = render(&report(), false, false);
        let lines: Vec<&str> = text.lines().collect();
        let header = lines.iter().position(|l| l.contains("STATUS")).unwrap();
        assert_eq!(
            &lines[header..],
            [
                "  STATUS ITEM             BACKEND EXPECTED WHY",
                "  ok     qos              normal  normal",
                "  DIFF   GrpTRESMins[cpu] 20      10       why GrpTRESMins[cpu]",
                "  DIFF   user bob         -       present  why user bob",
                "Result: 2 difference(s)",
            ]
        );
        assert!(text.contains("  GrpTRESMins            cpu=20\n"), "{text}");
        assert!(
            text.contains(
                "  team                   alice@idp (alice), carol@idp (no offering user)\n"
            ),
            "{text}"
        );
        // Verbose: reasons for matches too; colour only marks the status.
        let verbose = render(&report(), true, true);
        assert!(verbose.contains("normal  normal   why qos"), "{verbose}");
        assert!(verbose.contains("\x1b[1;31mDIFF  \x1b[0m"), "{verbose}");
    }
}
