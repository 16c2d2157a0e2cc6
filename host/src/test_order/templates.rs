//! Order templates: the built-in ones (the reference's names) or an operator's directory of
//! `*.json` files, in Jinja syntax (minijinja) with the reference's filters, filled from
//! `--var` values.

use std::path::{Component, Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value as Jinja};
use serde_json::{Map, Value};

/// The built-in templates, by name (their files are in `templates/`).
pub const BUILT_IN: &[(&str, &str)] = &[
    ("create/basic", include_str!("templates/create/basic.json")),
    (
        "create/slurm-full",
        include_str!("templates/create/slurm-full.json"),
    ),
    (
        "create/with-limits",
        include_str!("templates/create/with-limits.json"),
    ),
    (
        "terminate/basic",
        include_str!("templates/terminate/basic.json"),
    ),
    (
        "update/attributes-and-limits",
        include_str!("templates/update/attributes-and-limits.json"),
    ),
    (
        "update/limits-only",
        include_str!("templates/update/limits-only.json"),
    ),
];

/// Where templates come from: the built-in set, or a directory (`--template-dir`).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    dir: Option<PathBuf>,
}

impl Templates {
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// Every template name, sorted (without `.json`).
    pub fn list(&self) -> Result<Vec<String>, String> {
        let Some(dir) = &self.dir else {
            return Ok(BUILT_IN.iter().map(|(name, _)| name.to_string()).collect());
        };
        let mut names = Vec::new();
        collect_json_files(dir, dir, &mut names)?;
        names.sort();
        Ok(names)
    }

    /// Renders template `name` (`create/basic` or `create/basic.json`) with `vars` and
    /// parses the result as JSON.
    pub fn render(&self, name: &str, vars: &Map<String, Value>) -> Result<Value, String> {
        let name = name.strip_suffix(".json").unwrap_or(name);
        let source = self.source(name)?;
        let env = environment();
        let template = env
            .template_from_named_str(name, &source)
            .map_err(|e| format!("template '{name}': {e}"))?;
        let text = template
            .render(Jinja::from(Serde(vars)))
            .map_err(|e| format!("template '{name}': {e}"))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("template '{name}' did not render valid JSON: {e}"))
    }

    fn source(&self, name: &str) -> Result<String, String> {
        let Some(dir) = &self.dir else {
            return BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| format!("no built-in template '{name}' (see --list-templates)"));
        };
        // A name is a path below the directory, never outside it.
        let relative = Path::new(name);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "template name '{name}' must be a relative path inside --template-dir"
            ));
        }
        let path = dir.join(format!("{name}.json"));
        std::fs::read_to_string(&path).map_err(|e| format!("template {}: {e}", path.display()))
    }
}

fn collect_json_files(base: &Path, dir: &Path, names: &mut Vec<String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect_json_files(base, &path, names)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            if let Ok(relative) = path.with_extension("").strip_prefix(base) {
                names.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    Ok(())
}

/// Jinja as the reference configures it: undefined variables are errors (`is defined` and
/// `default` still work), no escaping, block tags take their line with them. Functions
/// `uuid4()` and `now()`; the reference's filters `uuid4`, `timestamp`, `from_json` and
/// `to_json` so that its templates render too (`uuid4` and `timestamp` keep a value given).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.add_function("uuid4", new_uuid);
    env.add_function("now", now);
    env.add_filter("uuid4", |given: Jinja| given_or(given, new_uuid));
    env.add_filter("timestamp", |given: Jinja| given_or(given, now));
    env.add_filter("from_json", |text: String| {
        serde_json::from_str::<Value>(&text)
            .map(|v| Jinja::from(Serde(v)))
            .map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("from_json: {e}"),
                )
            })
    });
    env.add_filter("to_json", minijinja::filters::tojson);
    env
}

fn new_uuid() -> String {
    waldur_sim::ids::dashed(&waldur_sim::ids::generate())
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// A non-empty string given to the filter, else a fresh value.
fn given_or(given: Jinja, fresh: fn() -> String) -> String {
    match given.as_str() {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => fresh(),
    }
}

/// One `--var KEY=VALUE`. The value is JSON when it looks like JSON (an object, array or
/// quoted string, `true`, `false`, `null`, or a number); a number-like value that is not one
/// (`2025-01-01`) stays a string, as in the reference. An object, array or quoted string that
/// does not parse is an error (the reference would silently use the text).
pub fn parse_var(text: &str) -> Result<(String, Value), String> {
    let Some((key, raw)) = text.split_once('=') else {
        return Err(format!("--var '{text}' is not KEY=VALUE"));
    };
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "--var '{text}': the name must be letters, digits and underscores"
        ));
    }
    let trimmed = raw.trim();
    let structured = trimmed.starts_with(['{', '[', '"']);
    let literal = matches!(trimmed, "true" | "false" | "null");
    let number_like = !trimmed.is_empty()
        && trimmed
            .replace(['.', '-'], "")
            .chars()
            .all(|c| c.is_ascii_digit())
        && trimmed.chars().any(|c| c.is_ascii_digit());
    let value = if structured || literal {
        serde_json::from_str(trimmed)
            .map_err(|e| format!("--var {key}: the value is not valid JSON: {e}"))?
    } else if number_like {
        serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(raw.to_string()))
    } else {
        Value::String(raw.to_string())
    };
    Ok((key.to_string(), value))
}

/// Every `--var`, later ones winning.
pub fn parse_vars(texts: &[String]) -> Result<Map<String, Value>, String> {
    let mut vars = Map::new();
    for text in texts {
        let (key, value) = parse_var(text)?;
        vars.insert(key, value);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vars_are_json_when_they_look_like_it() {
        let var = |t: &str| parse_var(t).unwrap().1;
        assert_eq!(var("cpu=2000"), json!(2000));
        assert_eq!(var("ratio=-1.5"), json!(-1.5));
        assert_eq!(var("on=true"), json!(true));
        assert_eq!(var("x=null"), json!(null));
        assert_eq!(var(r#"limits={"cpu": 5}"#), json!({"cpu": 5}));
        assert_eq!(var(r#"name="a b""#), json!("a b"));
        assert_eq!(var("name=alloc-1"), json!("alloc-1"));
        assert_eq!(var("day=2025-01-01"), json!("2025-01-01"));
        assert_eq!(var("empty="), json!(""));
        assert_eq!(var("url=a=b"), json!("a=b"));
    }

    #[test]
    fn bad_vars_name_the_problem() {
        assert_eq!(
            parse_var("cpu").unwrap_err(),
            "--var 'cpu' is not KEY=VALUE"
        );
        assert!(parse_var("=1").unwrap_err().contains("the name"));
        assert!(parse_var("a-b=1").unwrap_err().contains("the name"));
        let bad = parse_var("limits={cpu: 5}").unwrap_err();
        assert!(
            bad.starts_with("--var limits: the value is not valid JSON"),
            "{bad}"
        );
    }

    #[test]
    fn every_built_in_template_renders_an_object_with_its_defaults() {
        let templates = Templates::default();
        for name in templates.list().unwrap() {
            let order = templates.render(&name, &Map::new()).unwrap();
            let kind = name.split('/').next().unwrap();
            assert_eq!(
                order["type"].as_str().unwrap().to_lowercase(),
                kind,
                "{name}"
            );
            assert_eq!(order["uuid"].as_str().unwrap().len(), 36, "{name}");
        }
        // The reference's spelling of a name works too.
        assert!(templates.render("create/basic.json", &Map::new()).is_ok());
    }

    #[test]
    fn vars_fill_the_template() {
        let vars = parse_vars(&[
            "resource_name=alloc \"x\"".into(),
            "cpu_limit=7".into(),
            "gpu_limit=1".into(),
            "order_uuid=0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f0f".into(),
        ])
        .unwrap();
        let order = Templates::default()
            .render("create/with-limits", &vars)
            .unwrap();
        assert_eq!(order["resource_name"], json!("alloc \"x\""));
        assert_eq!(order["limits"], json!({"cpu": 7, "mem": 2048, "gpu": 1}));
        assert_eq!(order["uuid"], json!("0f0f0f0f-0f0f-0f0f-0f0f-0f0f0f0f0f0f"));
    }

    #[test]
    fn a_directory_holds_the_operators_templates_in_the_reference_syntax() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site")).unwrap();
        std::fs::write(
            dir.path().join("site/mine.json"),
            r#"{"uuid": "{{ order_uuid | uuid4() }}", "type": "Create",
               "attributes": {{ attributes | default('{}') | from_json | to_json }},
               {% if extra is defined %}"extra": 1,{% endif %}
               "resource_name": "{{ resource_name }}"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.json"), "{{ oops").unwrap();
        let templates = Templates::new(Some(dir.path().to_path_buf()));
        assert_eq!(templates.list().unwrap(), ["broken", "site/mine"]);
        let mut vars = Map::new();
        vars.insert("resource_name".into(), json!("r1"));
        let order = templates.render("site/mine.json", &vars).unwrap();
        assert_eq!(order["resource_name"], json!("r1"));
        assert_eq!(order["attributes"], json!({}));
        assert_eq!(order["uuid"].as_str().unwrap().len(), 36);
        // An undefined variable, a syntax error, a path outside the directory: one line each.
        let missing = templates.render("site/mine", &Map::new()).unwrap_err();
        assert!(
            missing.starts_with("template 'site/mine': undefined value"),
            "{missing}"
        );
        let broken = templates.render("broken", &Map::new()).unwrap_err();
        assert!(
            broken.starts_with("template 'broken': syntax error"),
            "{broken}"
        );
        assert!(templates
            .render("../etc/passwd", &Map::new())
            .unwrap_err()
            .contains("inside --template-dir"));
        for error in [missing, broken] {
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
