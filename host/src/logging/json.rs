//! `log_format: json`: one JSON object per line on stdout, shaped as the reference's
//! structlog lines (`timestamp` ISO 8601 UTC, `level` lower case, `logger`, `event`), plus
//! every field of the event and of the spans around it (`offering`, `mode`, ...).
//!
//! Written as a small layer rather than with `tracing_subscriber::fmt().json()`, whose lines
//! nest the text under `fields.message` and the spans under `spans`: log pipelines already
//! parsing the reference's lines would break.

use std::io::Write;

use serde_json::Value;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::fields::{in_context, MESSAGE};

/// Writes JSON lines to stdout.
pub struct JsonLines;

/// structlog's level names.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// The line for `event` (without the newline).
pub fn render<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> String
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let mut fields = in_context(event, ctx).0;
    let message = fields
        .remove(MESSAGE)
        .unwrap_or(Value::String(String::new()));
    let metadata = event.metadata();
    fields.insert("event".into(), message);
    fields.insert("level".into(), level_name(metadata.level()).into());
    fields.insert("logger".into(), metadata.target().into());
    fields.insert(
        "timestamp".into(),
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            .to_string()
            .into(),
    );
    Value::Object(fields).to_string()
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = render(event, &ctx);
        line.push('\n');
        // One write per line under the lock: lines of concurrent tasks never interleave.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}
