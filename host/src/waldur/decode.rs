//! Turning response bodies into typed models, with errors that name the endpoint and the JSON
//! path of the offending value.
//!
//! Models tolerate unknown fields and default missing ones (the plugin-abi wire types and the
//! host models in [`super::models`] are all `#[serde(default)]`). Fields the agent dereferences
//! without a guard (reference §6.2) are checked first: an object lacking one of them, or
//! carrying `null` there, is a decode error rather than a silently empty value.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;

use super::call::Call;
use super::error::WaldurError;

/// Decodes one JSON object that must carry the `required` top-level fields.
pub(crate) fn decode_one<T: DeserializeOwned>(
    call: &Call,
    body: &[u8],
    required: &[&str],
) -> Result<T, WaldurError> {
    let value = parse(call, body)?;
    decode_item(call, value, required, "")
}

/// Decodes a bare JSON array of objects that must each carry the `required` fields.
///
/// Item by item from the body: the whole list as one `Value` tree costs several times the
/// body (an offering's users run to megabytes), while one item's tree is small.
pub(crate) fn decode_list<T: DeserializeOwned>(
    call: &Call,
    body: &[u8],
    required: &[&str],
) -> Result<Vec<T>, WaldurError> {
    let Ok(items) = serde_json::from_slice::<Vec<&RawValue>>(body) else {
        let other = parse(call, body)?;
        return Err(error(
            call,
            "(body)".into(),
            format!("expected a JSON array, got {}", kind(&other)),
        ));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let prefix = format!("[{i}]");
            let item = serde_json::from_str(raw.get())
                .map_err(|e| error(call, prefix.clone(), format!("not valid JSON: {e}")))?;
            decode_item(call, item, required, &prefix)
        })
        .collect()
}

/// The `required` fields that a `?field=` selection asks for: with a selection, Waldur sends
/// only the selected fields, so only those can be required. An empty selection means all.
pub(crate) fn required_within<'a>(required: &[&'a str], fields: &[&str]) -> Vec<&'a str> {
    required
        .iter()
        .copied()
        .filter(|name| fields.is_empty() || fields.contains(name))
        .collect()
}

fn parse(call: &Call, body: &[u8]) -> Result<Value, WaldurError> {
    serde_json::from_slice(body)
        .map_err(|e| error(call, "(body)".into(), format!("not valid JSON: {e}")))
}

fn decode_item<T: DeserializeOwned>(
    call: &Call,
    mut value: Value,
    required: &[&str],
    prefix: &str,
) -> Result<T, WaldurError> {
    if let Value::Object(object) = &mut value {
        for name in required {
            match object.get(*name) {
                None => {
                    return Err(error(
                        call,
                        join(prefix, name),
                        "required field is missing".into(),
                    ))
                }
                Some(Value::Null) => {
                    return Err(error(
                        call,
                        join(prefix, name),
                        "required field is null".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        // Waldur sends `null` for unset optional values; the models default absent fields
        // (`""`, `{}`, `None`), so a null is treated exactly like an absent key.
        object.retain(|_, v| !v.is_null());
    } else if !required.is_empty() {
        return Err(error(
            call,
            if prefix.is_empty() {
                "(body)".into()
            } else {
                prefix.to_owned()
            },
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            if prefix.is_empty() {
                "(body)".to_owned()
            } else {
                prefix.to_owned()
            }
        } else {
            join(prefix, &path)
        };
        error(call, field, e.into_inner().to_string())
    })
}

fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.starts_with('[')) {
        (true, _) => path.to_owned(),
        (false, true) => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error(call: &Call, field: String, message: String) -> WaldurError {
    WaldurError::Decode {
        endpoint: call.endpoint,
        method: call.method.clone(),
        path: call.url.path().to_owned(),
        field,
        message: message.replace(['\n', '\r'], " "),
    }
}
