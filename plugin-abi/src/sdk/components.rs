//! The component mapping of `backend_components.<c>.target_components`, shared by every plugin
//! whose backend names its components differently from Waldur (the reference moved its
//! `ComponentMapper` into the core for the same reason): one home, so two plugins cannot
//! disagree on a factor.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::wire::{BackendComponents, BackendLimits};
use crate::{Error, Result};

/// Waldur components mapped onto the backend's own components with factors
/// (`backend_components.<c>.target_components: {<target>: {factor: <f>}}`): SLURM TRES, the
/// components of another Waldur's offering. Forward (limits): `target += value × factor`;
/// reverse (usage): `component += target / factor`. Components without targets map to
/// themselves with factor 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComponentMapper {
    forward: BTreeMap<String, Vec<(String, f64)>>,
    reverse: BTreeMap<String, Vec<(String, f64)>>,
    passthrough: bool,
    targets: BTreeSet<String>,
}

impl ComponentMapper {
    /// Reads the `target_components` of every component; a malformed one is INVALID_SETTINGS.
    pub fn new(components: &BackendComponents) -> Result<Self> {
        let mut mapper = Self {
            passthrough: true,
            ..Self::default()
        };
        for (source, component) in components {
            let targets = match component.extra.get("target_components") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(targets)) => parse_targets(source, targets)?,
                Some(other) => {
                    return Err(Error::invalid_settings(format!(
                        "backend_components.{source}.target_components must be an object of \
                         {{<target>: {{factor: <number>}}}}, got {other}"
                    )))
                }
            };
            if targets.is_empty() {
                mapper
                    .forward
                    .insert(source.clone(), vec![(source.clone(), 1.0)]);
                mapper
                    .reverse
                    .entry(source.clone())
                    .or_default()
                    .push((source.clone(), 1.0));
                continue;
            }
            mapper.passthrough = false;
            for (target, factor) in &targets {
                mapper.targets.insert(target.clone());
                mapper
                    .reverse
                    .entry(target.clone())
                    .or_default()
                    .push((source.clone(), *factor));
            }
            mapper
                .forward
                .insert(source.clone(), targets.into_iter().collect());
        }
        Ok(mapper)
    }

    /// True when no component has targets (plain `unit_factor` conversion).
    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }

    /// Every target named in some `target_components`.
    pub fn target_names(&self) -> &BTreeSet<String> {
        &self.targets
    }

    /// Waldur limits as target limits (sums of `value × factor`, truncated like Python's
    /// `int()`).
    pub fn limits_to_target(&self, source: &BTreeMap<String, f64>) -> BackendLimits {
        let mut target: BTreeMap<String, f64> = BTreeMap::new();
        for (component, value) in source {
            match self.forward.get(component) {
                Some(mappings) => {
                    for (name, factor) in mappings {
                        *target.entry(name.clone()).or_default() += value * factor;
                    }
                }
                None => {
                    log::warn!("No forward mapping for component {component}, passing through");
                    *target.entry(component.clone()).or_default() += value;
                }
            }
        }
        target
            .into_iter()
            .map(|(k, v)| (k, v.trunc() as i64))
            .collect()
    }

    /// Target usage as component usage (sums of `value / factor`); targets no component
    /// maps to are ignored.
    pub fn usage_from_target(&self, usage: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
        let mut source: BTreeMap<String, f64> = BTreeMap::new();
        for (target, value) in usage {
            let Some(mappings) = self.reverse.get(target) else {
                log::warn!("No reverse mapping for target component {target}, ignoring");
                continue;
            };
            for (component, factor) in mappings {
                let converted = if *factor != 0.0 { value / factor } else { 0.0 };
                *source.entry(component.clone()).or_default() += converted;
            }
        }
        source
    }
}

fn parse_targets(
    source: &str,
    targets: &serde_json::Map<String, Value>,
) -> Result<BTreeMap<String, f64>> {
    let invalid = |target: &str, what: String| {
        Error::invalid_settings(format!(
            "backend_components.{source}.target_components.{target}: {what}"
        ))
    };
    let mut parsed = BTreeMap::new();
    for (target, config) in targets {
        let factor = match config {
            Value::Null => 1.0,
            Value::Object(config) => {
                if let Some(key) = config.keys().find(|k| k.as_str() != "factor") {
                    return Err(invalid(
                        target,
                        format!("unknown key {key:?} (only factor)"),
                    ));
                }
                match config.get("factor") {
                    None | Some(Value::Null) => 1.0,
                    Some(value) => match value.as_f64() {
                        Some(f) if f.is_finite() && f > 0.0 => f,
                        _ => {
                            return Err(invalid(
                                target,
                                format!("factor must be a positive number, got {value}"),
                            ))
                        }
                    },
                }
            }
            other => {
                return Err(invalid(
                    target,
                    format!("must be {{factor: <number>}}, got {other}"),
                ))
            }
        };
        parsed.insert(target.clone(), factor);
    }
    Ok(parsed)
}
