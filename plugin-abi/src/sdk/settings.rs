//! Reading `backend_settings` values the way the reference's Python does, for plugins and the
//! agent alike: one home for the rules, so a setting means the same on both sides.

use serde_json::Value;

/// Python truthiness of a settings value (`if backend_settings.get("soft_delete"):`): absent,
/// null, false, zero and empty strings, lists and maps are false.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// A list of strings (`fail_methods: [ping, diagnostics]`); absent or null is empty. The
/// error names `what` (e.g. `backend_settings.fail_methods`) and the offending value, for
/// the plugin to wrap in its settings error.
pub fn string_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("{what} must be a list, got {other}")),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("{what} entries must be strings, got {other}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_is_python_s() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(Some(&falsy)), "{falsy}");
        }
        assert!(!truthy(None));
        for true_ in [
            json!(true),
            json!(1),
            json!(-0.5),
            json!("no"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(truthy(Some(&true_)), "{true_}");
        }
    }

    #[test]
    fn string_lists_and_what_is_wrong_with_them() {
        assert_eq!(string_list(None, "x"), Ok(vec![]));
        assert_eq!(string_list(Some(&json!(null)), "x"), Ok(vec![]));
        assert_eq!(
            string_list(Some(&json!(["a", "b"])), "x"),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            string_list(Some(&json!("a")), "backend_settings.l"),
            Err("backend_settings.l must be a list, got \"a\"".to_string())
        );
        assert_eq!(
            string_list(Some(&json!(["a", 2])), "backend_settings.l"),
            Err("backend_settings.l entries must be strings, got 2".to_string())
        );
    }
}
