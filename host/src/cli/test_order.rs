//! `waldur-agent test-order` (the reference's `waldur_site_test_order`): the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::plugins::scan;
use super::PluginSource;
use crate::modes::tools::one_line;
use crate::test_order::templates::{parse_vars, Templates};
use crate::test_order::{order, order_json, pick_offering, OrderSource, RunOptions};

pub const AFTER_HELP: &str = "The order runs through the agent's own order processor (the code of \
`run -m order_process`) and the plugin the configuration names for the offering, against a Waldur \
simulator embedded in this process and seeded with the offering, its components, the order's \
customer and project, a team member, the resource and the order. An Update or Terminate order \
first has its resource created by a Create order through the same processor. Every plugin call and \
every Waldur request is printed in order. The backend is real: a Create order creates the account.

Exit codes: 0 = the order reached `done` (or, with --validate-only / --generate-only / \
--list-templates, the order is valid / was written); 1 = the order erred or did not finish \
(the error Waldur got is printed); 2 = bad arguments, template, --var, order or configuration.";

#[derive(Debug, Args)]
pub struct TestOrderArgs {
    #[command(flatten)]
    pub source: PluginSource,
    /// A directory of order templates (`*.json`, Jinja syntax) instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub template_dir: Option<PathBuf>,
    /// The template to render the order from (`create/basic`; `.json` may be added).
    #[arg(long, value_name = "NAME", conflicts_with = "order_file")]
    pub template: Option<String>,
    /// A JSON file holding the order.
    #[arg(long, value_name = "PATH")]
    pub order_file: Option<PathBuf>,
    /// A template variable (repeatable); the value is JSON when it looks like JSON (an object,
    /// array, quoted string, number, true, false or null), else text.
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// The offering to run the order on (default: the one the order names, else the
    /// configuration's first).
    #[arg(long, value_name = "UUID")]
    pub offering_uuid: Option<String>,
    /// Only check that the order is one the processor takes (and, with -c, its offering).
    #[arg(long, conflicts_with = "generate_only")]
    pub validate_only: bool,
    /// Only print the rendered order (or write it to --output).
    #[arg(long, requires = "template")]
    pub generate_only: bool,
    /// Do not call the plugin's writing methods: each is shown, with its arguments, as not
    /// called, and the processor goes on as if it had succeeded (Waldur is the embedded
    /// simulator either way). The Create order an Update or Terminate needs still runs.
    #[arg(long)]
    pub dry_run: bool,
    /// Accepted for the reference's command lines: the order always runs through the real
    /// plugin the configuration names (there is no mock backend).
    #[arg(long)]
    pub use_real_backend: bool,
    /// With --generate-only: write the order to FILE instead of printing it.
    #[arg(short = 'o', long, value_name = "FILE", requires = "generate_only")]
    pub output: Option<PathBuf>,
    /// Also print the setup's steps, the Waldur bodies and the plugins' full answers.
    #[arg(long)]
    pub verbose: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json_output: bool,
    /// List the templates and exit.
    #[arg(long)]
    pub list_templates: bool,
}

pub fn run(args: TestOrderArgs) -> ExitCode {
    match execute(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn execute(args: &TestOrderArgs) -> Result<ExitCode, String> {
    let templates = Templates::new(args.template_dir.clone());
    if args.list_templates {
        let names = templates.list()?;
        if args.json_output {
            println!("{}", json!(names));
        } else {
            names.iter().for_each(|name| println!("{name}"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let source = match (&args.template, &args.order_file) {
        (Some(name), _) => OrderSource::Template(name.clone()),
        (None, Some(path)) => OrderSource::File(path.clone()),
        (None, None) => {
            return Err("give --template NAME or --order-file PATH (see --list-templates)".into())
        }
    };
    let mut vars = parse_vars(&args.vars)?;
    // Running needs the configuration; checking and rendering only when it is given.
    let offline = args.validate_only || args.generate_only;
    let loaded = match (&args.source.config, offline) {
        (None, true) => None,
        _ => Some(crate::config::load(&args.source.config_file()).map_err(|e| one_line(&e))?),
    };
    let config = loaded.as_ref().map(|l| &l.config);
    if !vars.contains_key("offering_uuid") {
        let offering = args.offering_uuid.clone().or_else(|| {
            config
                .and_then(|c| c.offerings.first())
                .map(|o| o.waldur_offering_uuid.clone())
        });
        if let Some(uuid) = offering {
            vars.insert("offering_uuid".into(), Value::String(uuid));
        }
    }
    let rendered = order_json(&source, &templates, &vars)?;
    if args.generate_only {
        let text = serde_json::to_string_pretty(&rendered).unwrap_or_default();
        match &args.output {
            Some(path) => {
                std::fs::write(path, format!("{text}\n"))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                println!("Generated order saved to: {}", path.display());
            }
            None => println!("{text}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let order = order::parse(rendered)?;
    let offering = config
        .map(|c| pick_offering(c, args.offering_uuid.as_deref(), &order))
        .transpose()?;
    let (Some(loaded), Some(offering)) = (&loaded, offering) else {
        print_valid(args, &order, None);
        return Ok(ExitCode::SUCCESS);
    };
    if args.validate_only {
        print_valid(args, &order, Some(offering));
        return Ok(ExitCode::SUCCESS);
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let catalog = scan(&args.source, Some(&loaded.config))?;
    let report = crate::test_order::run(
        &loaded.config,
        offering,
        catalog,
        order,
        RunOptions {
            dry_run: args.dry_run,
        },
    )?;
    if args.json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text(args.verbose));
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn print_valid(
    args: &TestOrderArgs,
    order: &order::TestOrder,
    offering: Option<&crate::config::Offering>,
) {
    if args.json_output {
        let value = json!({
            "valid": true,
            "order_uuid": order.uuid,
            "order_type": order.kind.name(),
            "resource_name": order.resource_name,
            "offering": offering.map(|o| o.name.clone()),
            "entry": offering.map(|o| o.order_processing_backend.clone()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return;
    }
    let on = offering
        .map(|o| {
            format!(
                " on offering '{}' (plugin entry '{}')",
                o.name, o.order_processing_backend
            )
        })
        .unwrap_or_default();
    println!(
        "Valid {} order {} for resource '{}'{on}",
        order.kind.name(),
        waldur_sim::ids::dashed(&order.uuid),
        order.resource_name
    );
}
