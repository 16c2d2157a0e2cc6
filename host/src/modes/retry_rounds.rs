//! Retrying failed items of a cycle within the cycle (the reference retries a failing report
//! resource 10 times, 5 s apart, on any error, one resource after the other).
//!
//! Here every item's first attempt runs first, concurrently and bounded as before; only then
//! are the failed ones tried again, together, after a pause that doubles each round. A retry
//! therefore never holds a concurrency slot that another item's first attempt waits for, and
//! the pause is shared by all failing items instead of one per item: a cycle with a few bad
//! resources reports the others at full speed and costs at most the sum of the pauses more.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use crate::waldur::{map_concurrent, DEFAULT_CONCURRENCY};

/// Attempts per item in one cycle (the first and three retries).
pub const ATTEMPTS: u32 = 4;

/// The pause before the first retry; it doubles each round (1 s, 2 s, 4 s), capped at
/// [`MAX_DELAY`]. Not a config key (the reference has none).
pub const FIRST_DELAY: Duration = Duration::from_secs(1);

/// The longest pause between two rounds.
pub const MAX_DELAY: Duration = Duration::from_secs(8);

/// Replaces [`FIRST_DELAY`] (milliseconds), so tests see retries without waiting seconds.
pub const FIRST_DELAY_VAR: &str = "WALDUR_AGENT_RETRY_DELAY_MS";

/// The first pause in force for this process.
fn first_delay() -> Duration {
    static DELAY: OnceLock<Duration> = OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var(FIRST_DELAY_VAR)
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(FIRST_DELAY, Duration::from_millis)
    })
}

/// The pause before retry round `round` (1-based): doubling from `first`, at most
/// [`MAX_DELAY`] (or `first` itself when that is larger).
fn delay_before(round: u32, first: Duration) -> Duration {
    let doubled = first.saturating_mul(1 << (round - 1).min(16));
    doubled.min(MAX_DELAY.max(first))
}

/// What one attempt of an item came to.
pub enum Attempt<T, E> {
    Done(Result<T, E>),
    /// The agent is stopping: the item was not (re)started and is left for the next run.
    NotStarted,
}

/// Runs `attempt` for every item (bounded concurrency, results in item order), then again
/// for the items whose result was an error, up to [`ATTEMPTS`] times in all. `attempt` gets
/// the item and the attempt number (1-based). An item's answer is its last attempt's.
pub async fn with_retry_rounds<I, T, E, F, Fut>(items: Vec<I>, attempt: F) -> Vec<Attempt<T, E>>
where
    I: Clone,
    F: FnMut(I, u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    rounds(first_delay(), items, attempt).await
}

async fn rounds<I, T, E, F, Fut>(
    first: Duration,
    items: Vec<I>,
    mut attempt: F,
) -> Vec<Attempt<T, E>>
where
    I: Clone,
    F: FnMut(I, u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut results: Vec<Attempt<T, E>> =
        map_concurrent(DEFAULT_CONCURRENCY, items.clone(), |item| attempt(item, 1)).await;
    for number in 2..=ATTEMPTS {
        let failed: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Attempt::Done(Err(_))))
            .map(|(i, _)| i)
            .collect();
        if failed.is_empty() {
            break;
        }
        let pause = delay_before(number - 1, first);
        tracing::info!(
            "{} item(s) failed; retrying in {} ms (attempt {number} of {ATTEMPTS})",
            failed.len(),
            pause.as_millis()
        );
        tokio::time::sleep(pause).await;
        let again = map_concurrent(
            DEFAULT_CONCURRENCY,
            failed.iter().map(|&i| (i, items[i].clone())),
            |(i, item)| {
                let run = attempt(item, number);
                async move { (i, run.await) }
            },
        )
        .await;
        for (i, result) in again {
            results[i] = result;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let first = Duration::from_secs(1);
        let pauses: Vec<u64> = (1..=5).map(|r| delay_before(r, first).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 8]);
        assert_eq!(
            delay_before(3, Duration::from_millis(10)),
            Duration::from_millis(40)
        );
    }

    #[tokio::test]
    async fn failures_are_retried_after_every_first_attempt() {
        let calls = Mutex::new(Vec::new());
        let flaky_failures = AtomicU32::new(0);
        let results = rounds(
            Duration::from_millis(1),
            vec!["flaky", "good", "bad"],
            |item, number| {
                calls.lock().unwrap().push((item, number));
                let failed_before = flaky_failures.load(Ordering::SeqCst);
                let outcome = match item {
                    "flaky" if failed_before < 2 => {
                        flaky_failures.fetch_add(1, Ordering::SeqCst);
                        Err("not yet".to_string())
                    }
                    "bad" => Err("never".to_string()),
                    _ => Ok(number),
                };
                async move { Attempt::Done(outcome) }
            },
        )
        .await;
        let calls = calls.into_inner().unwrap();
        // Every first attempt comes before any retry.
        assert_eq!(&calls[..3], &[("flaky", 1), ("good", 1), ("bad", 1)]);
        assert!(matches!(results[0], Attempt::Done(Ok(3))));
        assert!(matches!(results[1], Attempt::Done(Ok(1))));
        assert!(matches!(results[2], Attempt::Done(Err(_))));
        let bad_attempts = calls.iter().filter(|(item, _)| *item == "bad").count();
        assert_eq!(bad_attempts, ATTEMPTS as usize);
        assert_eq!(calls.iter().filter(|(item, _)| *item == "good").count(), 1);
    }
}
