//! The reference's CLI tools (reference §3.7) as library functions: each works on every
//! offering of the configuration, and one failing offering never stops the others.

pub mod account_comparison;
pub mod account_diagnosis;
pub mod components;
pub mod diagnostics;
pub mod heartbeat;
pub mod historical_usage;
pub mod homedirs;
pub mod limits;
pub mod offering_users;

use std::future::Future;

use super::cycle::OFFERING_CONCURRENCY;
use super::error::ModeError;
use super::runtime::{Agent, Mode};
use crate::config::Offering;
use crate::waldur::{map_concurrent, WaldurClient};

/// What a tool did for one offering: a summary, a reason it was skipped, or a failure.
#[derive(Debug)]
pub enum ToolOutcome<T> {
    Done(T),
    Skipped(String),
    Failed(ModeError),
}

/// The outcomes of a tool, one per offering, in configuration order.
#[derive(Debug)]
pub struct ToolReport<T> {
    pub offerings: Vec<(String, ToolOutcome<T>)>,
}

impl<T> ToolReport<T> {
    pub fn failures(&self) -> usize {
        self.offerings
            .iter()
            .filter(|(_, o)| matches!(o, ToolOutcome::Failed(_)))
            .count()
    }

    /// The outcome for the offering called `name`.
    pub fn outcome(&self, name: &str) -> Option<&ToolOutcome<T>> {
        self.offerings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o)
    }
}

/// Runs `work` for every offering (a few at a time).
pub(crate) async fn each_offering<'a, T, F, Fut>(agent: &'a Agent, work: F) -> ToolReport<T>
where
    F: Fn(&'a Offering) -> Fut,
    Fut: Future<Output = ToolOutcome<T>>,
{
    let work = &work;
    let offerings = map_concurrent(
        OFFERING_CONCURRENCY,
        agent.config.offerings.iter(),
        |offering| async move { (offering.name.clone(), work(offering).await) },
    )
    .await;
    ToolReport { offerings }
}

/// The Waldur client a tool uses for an offering (`tool` goes into the User-Agent).
pub(crate) fn client(
    agent: &Agent,
    offering: &Offering,
    tool: &str,
) -> Result<WaldurClient, ModeError> {
    Ok(WaldurClient::for_offering(offering, &agent.config, tool)?)
}

/// The first of `preferred` whose backend the offering configures.
pub(crate) fn configured_mode(offering: &Offering, preferred: &[Mode]) -> Option<Mode> {
    preferred
        .iter()
        .copied()
        .find(|m| !m.backend_entry(offering).is_empty())
}

/// An error as one line (Waldur answers and plugin tracebacks can span several).
pub fn one_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
