//! What `test-order` prints: the plugin calls and the Waldur requests of a run in the order
//! they happened, and how the order ended, as text or JSON.

use serde::Serialize;
use serde_json::{json, Value};
use waldur_sim::LogEntry;

use crate::modes::call_trace::{CallOutcome, PluginCall};

/// One thing the processor did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Plugin(PluginCall),
    Waldur(LogEntry),
}

impl Step {
    fn started_unix_us(&self) -> u64 {
        match self {
            Step::Plugin(call) => call.started_unix_us,
            Step::Waldur(request) => request.received_unix_us,
        }
    }
}

/// The plugin calls and Waldur requests of one run, in the order they started. A request a
/// plugin made from inside a call comes after that call.
pub fn timeline(calls: Vec<PluginCall>, requests: Vec<LogEntry>) -> Vec<Step> {
    let mut steps: Vec<Step> = calls
        .into_iter()
        .map(Step::Plugin)
        .chain(requests.into_iter().map(Step::Waldur))
        .collect();
    // Stable: equal times keep calls before requests.
    steps.sort_by_key(Step::started_unix_us);
    steps
}

/// How the order ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Ending {
    Done,
    /// The message the processor sent Waldur.
    Erred {
        message: String,
    },
    /// Anything else: rejected, still waiting, or the processor could not start.
    NotDone {
        state: String,
        reason: String,
    },
}

impl Ending {
    /// 0 done, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        u8::from(*self != Ending::Done)
    }
}

/// One processor run over the simulator (the setup's or the order's).
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub order_uuid: String,
    pub order_type: String,
    pub steps: Vec<Step>,
    pub ending: Ending,
}

/// Everything one `test-order` run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub offering: String,
    /// The plugin entry that processed the order (`order_processing_backend`).
    pub entry: String,
    pub order: Value,
    /// The Create order that made the resource an Update or Terminate order needs.
    pub setup: Option<Phase>,
    pub run: Phase,
}

impl Report {
    pub fn exit_code(&self) -> u8 {
        self.run.ending.exit_code()
    }

    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["success"] = json!(self.exit_code() == 0);
        value
    }

    /// The text report; `verbose` adds the setup's steps and the bodies and answers.
    pub fn to_text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let run = &self.run;
        out.push_str(&format!(
            "Order {} ({}) on offering '{}', plugin entry '{}', against the embedded Waldur \
             simulator\n",
            dashed(&run.order_uuid),
            run.order_type,
            self.offering,
            self.entry
        ));
        if let Some(setup) = &self.setup {
            out.push_str(&format!(
                "Setup: Create order {} made the resource: {} ({} plugin call(s), {} Waldur \
                 request(s))\n",
                dashed(&setup.order_uuid),
                ending_text(&setup.ending),
                setup
                    .steps
                    .iter()
                    .filter(|s| matches!(s, Step::Plugin(_)))
                    .count(),
                setup
                    .steps
                    .iter()
                    .filter(|s| matches!(s, Step::Waldur(_)))
                    .count(),
            ));
            if verbose {
                out.push_str(&steps_text(&setup.steps, verbose));
            }
        }
        out.push('\n');
        out.push_str(&steps_text(&run.steps, verbose));
        out.push_str(&format!("\nResult: {}\n", ending_text(&run.ending)));
        out
    }
}

fn ending_text(ending: &Ending) -> String {
    match ending {
        Ending::Done => "done".into(),
        Ending::Erred { message } => format!("erred: {message}"),
        Ending::NotDone { state, reason } => format!("not done ({state}): {reason}"),
    }
}

/// One line per step: its number, milliseconds since the first, what it was.
fn steps_text(steps: &[Step], verbose: bool) -> String {
    let first = steps.first().map(Step::started_unix_us).unwrap_or_default();
    let mut out = String::new();
    for (i, step) in steps.iter().enumerate() {
        let at = step.started_unix_us().saturating_sub(first) as f64 / 1000.0;
        let line = match step {
            Step::Plugin(call) => format!(
                "plugin  {}.{}({}) -> {} [{:.1} ms]",
                call.entry,
                call.method,
                arguments_summary(&call.arguments),
                outcome_text(&call.outcome, verbose),
                call.seconds * 1000.0
            ),
            Step::Waldur(request) => {
                let query = if request.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", request.query)
                };
                let mut line = format!(
                    "waldur  {} {}{query} -> {} [{} ms]",
                    request.method, request.path, request.status, request.duration_ms
                );
                if verbose {
                    for (label, body) in [
                        ("sent", &request.request_body),
                        ("answer", &request.response_body),
                    ] {
                        if let Some(body) = body.as_deref().filter(|b| !b.is_empty()) {
                            line.push_str(&format!("\n{:>19}{label}: {body}", ""));
                        }
                    }
                }
                line
            }
        };
        out.push_str(&format!("{:>4} {at:>9.1}  {line}\n", i + 1));
    }
    out
}

fn outcome_text(outcome: &CallOutcome, verbose: bool) -> String {
    match outcome {
        CallOutcome::Ok { answer } if verbose => format!("ok {}", compact(answer, usize::MAX)),
        CallOutcome::Ok { answer } => format!("ok {}", compact(answer, 60)),
        CallOutcome::NotImplemented => "not implemented (the agent's default runs)".into(),
        CallOutcome::Withheld => "NOT CALLED (dry run: it writes)".into(),
        CallOutcome::Failed { kind, message } => format!("FAILED ({kind}): {message}"),
    }
}

/// The arguments, one `name=value` each; an object argument by the fields that name it
/// (`name`, `backend_id`, `uuid`, `username`) when it has them.
pub fn arguments_summary(arguments: &Value) -> String {
    let Some(map) = arguments.as_object() else {
        return compact(arguments, 80);
    };
    map.iter()
        .map(|(name, value)| format!("{name}={}", brief(value)))
        .collect::<Vec<_>>()
        .join(", ")
}

const NAMING_FIELDS: [&str; 4] = ["name", "backend_id", "uuid", "username"];

fn brief(value: &Value) -> String {
    if let Some(map) = value.as_object() {
        let naming: Vec<String> = NAMING_FIELDS
            .iter()
            .filter_map(|field| match map.get(*field) {
                Some(Value::String(s)) if !s.is_empty() => Some(format!("{field}: {s:?}")),
                _ => None,
            })
            .collect();
        if !naming.is_empty() {
            return format!("{{{}}}", naming.join(", "));
        }
    }
    compact(value, 60)
}

/// Compact JSON, cut at `limit` characters.
fn compact(value: &Value, limit: usize) -> String {
    let text = value.to_string();
    if text.chars().count() <= limit {
        return text;
    }
    let cut: String = text.chars().take(limit).collect();
    format!("{cut}…")
}

/// `8-4-4-4-12` for reading; ids are kept normalised elsewhere.
fn dashed(uuid: &str) -> String {
    waldur_sim::ids::dashed(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_summarised_by_what_names_them() {
        let args = json!({
            "resource": {"name": "alloc", "backend_id": "", "uuid": "abc", "limits": {"cpu": 5}},
            "usernames": ["a", "b"],
            "limits": {"cpu": 5},
        });
        assert_eq!(
            arguments_summary(&args),
            r#"limits={"cpu":5}, resource={name: "alloc", uuid: "abc"}, usernames=["a","b"]"#
        );
        let long = json!({"text": "x".repeat(100)});
        assert!(arguments_summary(&long).ends_with("…"));
    }

    #[test]
    fn steps_are_in_the_order_they_started() {
        let call = |method: &str, at: u64| PluginCall {
            entry: "demo".into(),
            method: method.into(),
            arguments: json!({}),
            outcome: CallOutcome::NotImplemented,
            started_unix_us: at,
            seconds: 0.0,
        };
        let request = |path: &str, at: u64| LogEntry {
            seq: 0,
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            template: path.into(),
            status: 200,
            request_body: None,
            response_body: None,
            fault: None,
            received_unix_us: at,
            duration_ms: 0,
            at_ms: 0,
        };
        let steps = timeline(
            vec![call("a", 10), call("b", 30)],
            vec![request("/x/", 20), request("/y/", 30), request("/z/", 5)],
        );
        let order: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Plugin(c) => c.method.clone(),
                Step::Waldur(r) => r.path.clone(),
            })
            .collect();
        assert_eq!(order, ["/z/", "a", "/x/", "b", "/y/"]);
    }
}
