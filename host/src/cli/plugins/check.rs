//! `waldur-agent plugins check NAME -c CONFIG`.

use std::process::ExitCode;

use super::scan;
use crate::cli::PluginSource;
use crate::plugins::checklist::{self, Verdict};
use crate::plugins::{HostContext, Registry};

pub fn run(entry: &str, source: &PluginSource, only: Option<&str>) -> Result<ExitCode, String> {
    let config_path = source
        .config
        .as_ref()
        .ok_or("plugins check needs the configuration: -c CONFIG")?;
    let loaded = crate::config::load(config_path).map_err(|e| e.to_string())?;
    let offerings: Vec<_> = loaded
        .config
        .offerings
        .iter()
        .filter(|o| o.plugin_entries().iter().any(|(_, e)| *e == entry))
        .filter(|o| only.is_none_or(|name| o.name == name))
        .collect();
    if offerings.is_empty() {
        return Err(format!(
            "no offering in {} uses the plugin entry '{entry}'{}",
            config_path.display(),
            only.map(|o| format!(" under the name '{o}'"))
                .unwrap_or_default()
        ));
    }
    let registry = Registry::new(scan(source, Some(&loaded.config))?);
    let mut failures = 0;
    for offering in offerings {
        println!("Offering '{}', plugin entry '{entry}':", offering.name);
        let backend = match registry.backend(
            entry,
            &offering.backend_settings,
            &offering.backend_components,
            HostContext::new(entry, &offering.name),
        ) {
            Ok(backend) => backend,
            Err(e) => {
                println!("FAIL  construct the backend: {e}");
                failures += 1;
                continue;
            }
        };
        for outcome in checklist::run(&backend) {
            println!("{outcome}");
            if outcome.verdict == Verdict::Fail {
                failures += 1;
            }
        }
        if let Err(e) = backend.close() {
            println!("FAIL  drop the backend: {e}");
            failures += 1;
        }
    }
    if failures > 0 {
        println!("{failures} check(s) failed");
        Ok(ExitCode::from(1))
    } else {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    }
}
