//! The fields of a `tracing` event or span as JSON values: what the JSON lines, the shipped
//! log records and Sentry read.

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};

/// The field holding an event's text.
pub const MESSAGE: &str = "message";

/// Fields in the order they were recorded; a later value for a key replaces the earlier.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn of_event(event: &tracing::Event<'_>) -> Fields {
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields
    }

    /// The event's text (its `message` field), or "" when it has none.
    pub fn message(&self) -> &str {
        self.0.get(MESSAGE).and_then(Value::as_str).unwrap_or("")
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

/// Span fields, kept in the span's extensions by [`remember_span_fields`].
#[derive(Debug, Default, Clone)]
pub struct SpanFields(pub Fields);

/// Stores every new span's fields once, so the JSON lines and the shipped records of events
/// inside it can carry them (offering, mode).
pub struct RememberSpanFields;

impl<S> tracing_subscriber::Layer<S> for RememberSpanFields
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            span.extensions_mut().insert(SpanFields(fields));
        }
    }
}

/// The fields of the spans around `event`, outermost first, then the event's own.
pub fn in_context<S>(
    event: &tracing::Event<'_>,
    ctx: &tracing_subscriber::layer::Context<'_, S>,
) -> Fields
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let mut all = Fields::default();
    if let Some(scope) = ctx.event_scope(event) {
        for span in scope.from_root() {
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                all.0
                    .extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    event.record(&mut all);
    all
}
