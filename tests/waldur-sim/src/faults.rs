//! Fault injection: latency, error statuses, malformed bodies and dropped connections for
//! chosen endpoints, so tests can prove the agent retries, backs off and never loses or
//! duplicates work. Faults apply to the Waldur API (`/api/…`) and `/oidc/token`, never to the
//! `/__sim/` inspection API.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which requests a fault applies to. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Matcher {
    /// HTTP method, case-insensitive (`None` = any).
    pub method: Option<String>,
    /// Route template as counted by the simulator, e.g.
    /// `/api/marketplace-orders/{uuid}/set_state_done/`.
    pub path_template: Option<String>,
    /// Literal prefix of the request path, e.g. `/api/marketplace-orders/`.
    pub path_prefix: Option<String>,
    /// Literal text the request body must contain, e.g. a resource uuid in a `set_usage`
    /// body: a fault for one item of an endpoint many items share.
    pub body_contains: Option<String>,
}

impl Matcher {
    pub fn any() -> Self {
        Matcher::default()
    }

    pub fn endpoint(method: &str, path_template: &str) -> Self {
        Matcher {
            method: Some(method.into()),
            path_template: Some(path_template.into()),
            path_prefix: None,
            body_contains: None,
        }
    }

    /// This matcher, for requests whose body contains `text` only.
    pub fn with_body(mut self, text: &str) -> Self {
        self.body_contains = Some(text.into());
        self
    }

    pub fn prefix(method: Option<&str>, path_prefix: &str) -> Self {
        Matcher {
            method: method.map(str::to_string),
            path_template: None,
            path_prefix: Some(path_prefix.into()),
            body_contains: None,
        }
    }

    fn matches(&self, method: &str, template: &str, path: &str, body: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_template.as_deref().is_none_or(|t| t == template)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self
                .body_contains
                .as_deref()
                .is_none_or(|text| body.contains(text))
    }
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Delay the request (adds up with other matching latencies).
    Latency { ms: u64 },
    /// Answer with this status (500, 429, …) without running the handler; state is untouched.
    Status { status: u16 },
    /// Run the handler (state changes apply) but answer 200 with a body that is not JSON.
    Malformed,
    /// Close the connection without any response; the handler does not run.
    Drop,
    /// Run the handler (state changes apply), then answer this status anyway: a write that
    /// Waldur applied but whose answer the agent never saw (a proxy's 502 after the upstream
    /// committed, a timeout at a load balancer).
    AppliedStatus { status: u16 },
}

/// One injected fault. `count` is how many more requests it affects (`None` = until cleared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(flatten)]
    pub matcher: Matcher,
    #[serde(default)]
    pub count: Option<u32>,
}

impl Fault {
    pub fn latency(matcher: Matcher, delay: Duration) -> Self {
        Fault {
            kind: FaultKind::Latency {
                ms: delay.as_millis() as u64,
            },
            matcher,
            count: None,
        }
    }

    pub fn status(matcher: Matcher, status: u16, count: u32) -> Self {
        Fault {
            kind: FaultKind::Status { status },
            matcher,
            count: Some(count),
        }
    }

    pub fn malformed(matcher: Matcher, count: u32) -> Self {
        Fault {
            kind: FaultKind::Malformed,
            matcher,
            count: Some(count),
        }
    }

    pub fn applied_status(matcher: Matcher, status: u16, count: u32) -> Self {
        Fault {
            kind: FaultKind::AppliedStatus { status },
            matcher,
            count: Some(count),
        }
    }

    pub fn drop_connection(matcher: Matcher, count: u32) -> Self {
        Fault {
            kind: FaultKind::Drop,
            matcher,
            count: Some(count),
        }
    }
}

/// The non-latency outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Status(u16),
    AppliedStatus(u16),
    Malformed,
    Drop,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub delay: Duration,
    pub action: Option<Action>,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: Vec<Fault>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.active.push(fault);
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.active.clone()
    }

    /// Decides the fate of one request and consumes one use of every fault that fired. All
    /// matching latencies apply; only the first matching status/malformed/drop fault fires, so
    /// "500 twice, then drop once" can be queued on one endpoint.
    pub fn decide(&mut self, method: &str, template: &str, path: &str, body: &str) -> Decision {
        let mut decision = Decision::default();
        for fault in self.active.iter_mut() {
            if !fault.matcher.matches(method, template, path, body) {
                continue;
            }
            let fired = match fault.kind {
                FaultKind::Latency { ms } => {
                    decision.delay += Duration::from_millis(ms);
                    true
                }
                _ if decision.action.is_some() => false,
                FaultKind::Status { status } => {
                    decision.action = Some(Action::Status(status));
                    true
                }
                FaultKind::AppliedStatus { status } => {
                    decision.action = Some(Action::AppliedStatus(status));
                    true
                }
                FaultKind::Malformed => {
                    decision.action = Some(Action::Malformed);
                    true
                }
                FaultKind::Drop => {
                    decision.action = Some(Action::Drop);
                    true
                }
            };
            if fired {
                if let Some(c) = fault.count.as_mut() {
                    *c = c.saturating_sub(1);
                }
            }
        }
        self.active.retain(|f| f.count != Some(0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_fire_in_order_and_expire() {
        let mut f = Faults::default();
        let t = "/api/marketplace-orders/{uuid}/set_state_done/";
        f.add(Fault::status(Matcher::endpoint("POST", t), 500, 2));
        f.add(Fault::drop_connection(Matcher::endpoint("POST", t), 1));
        let p = "/api/marketplace-orders/x/set_state_done/";
        assert_eq!(f.decide("POST", t, p, "").action, Some(Action::Status(500)));
        assert_eq!(f.decide("GET", t, p, "").action, None);
        assert_eq!(f.decide("POST", t, p, "").action, Some(Action::Status(500)));
        assert_eq!(f.decide("POST", t, p, "").action, Some(Action::Drop));
        assert_eq!(f.decide("POST", t, p, "").action, None);
        assert!(f.list().is_empty());
    }

    #[test]
    fn a_body_condition_picks_one_item_of_an_endpoint() {
        let mut f = Faults::default();
        let t = "/api/marketplace-component-usages/set_usage/";
        f.add(Fault::status(
            Matcher::endpoint("POST", t).with_body("res-a"),
            400,
            1,
        ));
        assert_eq!(
            f.decide("POST", t, t, r#"{"resource":"res-b"}"#).action,
            None
        );
        assert_eq!(
            f.decide("POST", t, t, r#"{"resource":"res-a"}"#).action,
            Some(Action::Status(400))
        );
        assert!(f.list().is_empty());
    }

    #[test]
    fn fault_json_round_trip() {
        let j = r#"{"kind":"status","status":429,"method":"GET","path_prefix":"/api/","count":3}"#;
        let f: Fault = serde_json::from_str(j).unwrap();
        assert_eq!(
            f,
            Fault::status(Matcher::prefix(Some("GET"), "/api/"), 429, 3)
        );
    }
}
