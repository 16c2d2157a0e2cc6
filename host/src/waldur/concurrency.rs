//! Bounded fan-out of Waldur calls.
//!
//! The reference makes its per-resource and per-order calls one after another; the host rules
//! ask for concurrency with a bound, so that a cycle is fast without flooding Waldur. The
//! futures run inside the calling task (no spawning): nothing needs to be `'static` or `Send`,
//! and a panic surfaces in the caller. At most `limit` of them are in flight at once.

use std::future::Future;

use futures_util::stream::{self, StreamExt};

/// The default bound for per-resource Waldur calls of one offering.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Runs `f` on every item, at most `limit` at a time (0 counts as 1), and returns the results
/// in completion order. One failing item does not stop the others: return a `Result` and
/// inspect it.
pub async fn for_each_concurrent<I, F, Fut, T>(limit: usize, items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    stream::iter(items)
        .map(f)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// Like [`for_each_concurrent`], but the results come in the order of `items`.
pub async fn map_concurrent<I, F, Fut, T>(limit: usize, items: I, f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    stream::iter(items)
        .map(f)
        .buffered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn never_more_than_limit_in_flight_and_order_kept() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let results = map_concurrent(3, 0..20u64, |i| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5 + (i * 7) % 11)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(results, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);

        let mut unordered = for_each_concurrent(0, 0..5, |i| async move { i }).await;
        unordered.sort();
        assert_eq!(unordered, vec![0, 1, 2, 3, 4]);
    }
}
