//! The order events are worked in: events of the same object (same ordering key) one after
//! another in arrival order; events of different objects concurrently, at most `limit` at
//! once. A slow event delays only the events of its own object.
//!
//! The jobs are driven inside the caller's task (no spawning), so a handler may borrow the
//! offering's sessions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

/// Which job may start next. Pure bookkeeping, driven by [`drive`].
#[derive(Debug)]
pub struct Schedule<J> {
    limit: usize,
    waiting: HashMap<String, VecDeque<J>>,
    /// Keys with waiting jobs and none running, oldest first.
    ready: VecDeque<String>,
    running: HashSet<String>,
}

impl<J> Schedule<J> {
    pub fn new(limit: usize) -> Self {
        Schedule {
            limit: limit.max(1),
            waiting: HashMap::new(),
            ready: VecDeque::new(),
            running: HashSet::new(),
        }
    }

    pub fn push(&mut self, key: String, job: J) {
        let queue = self.waiting.entry(key.clone()).or_default();
        queue.push_back(job);
        if queue.len() == 1 && !self.running.contains(&key) {
            self.ready.push_back(key);
        }
    }

    /// The next job to start, if the bound allows one and one is ready.
    pub fn start(&mut self) -> Option<(String, J)> {
        if self.running.len() >= self.limit {
            return None;
        }
        let key = self.ready.pop_front()?;
        let queue = self
            .waiting
            .get_mut(&key)
            .expect("ready keys have waiting jobs");
        let job = queue.pop_front().expect("ready keys have waiting jobs");
        if queue.is_empty() {
            self.waiting.remove(&key);
        }
        self.running.insert(key.clone());
        Some((key, job))
    }

    /// The job of `key` finished: the key's next job becomes ready.
    pub fn finished(&mut self, key: &str) {
        self.running.remove(key);
        if self.waiting.contains_key(key) {
            self.ready.push_back(key.to_string());
        }
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }
}

/// Works every `(key, job)` from `incoming` with `handle` in [`Schedule`] order until the
/// channel closes and every job has finished.
pub async fn drive<J, F, Fut>(mut incoming: mpsc::Receiver<(String, J)>, limit: usize, handle: F)
where
    F: Fn(J) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut schedule = Schedule::new(limit);
    let mut running = FuturesUnordered::new();
    let mut open = true;
    loop {
        while let Some((key, job)) = schedule.start() {
            let work = handle(job);
            running.push(async move {
                work.await;
                key
            });
        }
        if !open && schedule.is_idle() {
            return;
        }
        tokio::select! {
            received = incoming.recv(), if open => match received {
                Some((key, job)) => schedule.push(key, job),
                None => open = false,
            },
            Some(key) = running.next(), if !running.is_empty() => schedule.finished(&key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn one_key_at_a_time_in_arrival_order_within_the_bound() {
        let mut s = Schedule::new(2);
        s.push("a".into(), 1);
        s.push("a".into(), 2);
        s.push("b".into(), 3);
        s.push("c".into(), 4);
        assert_eq!(s.start(), Some(("a".into(), 1)));
        assert_eq!(s.start(), Some(("b".into(), 3)));
        assert_eq!(s.start(), None, "bound of 2");
        s.finished("a");
        // c waited longer than a's second job.
        assert_eq!(s.start(), Some(("c".into(), 4)));
        s.finished("b");
        assert_eq!(s.start(), Some(("a".into(), 2)));
        s.finished("c");
        s.finished("a");
        assert!(s.is_idle());
    }

    #[tokio::test]
    async fn drive_keeps_per_key_order_and_runs_keys_concurrently() {
        let (tx, rx) = mpsc::channel(64);
        let log = Arc::new(Mutex::new(Vec::new()));
        for (key, n, ms) in [("a", 1, 60), ("b", 2, 5), ("a", 3, 5), ("b", 4, 5)] {
            tx.send((key.to_string(), (n, ms))).await.unwrap();
        }
        drop(tx);
        let started = tokio::time::Instant::now();
        let seen = Arc::clone(&log);
        drive(rx, 4, move |(n, ms): (u32, u64)| {
            let seen = Arc::clone(&seen);
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                seen.lock().unwrap().push(n);
            }
        })
        .await;
        let order = log.lock().unwrap().clone();
        // b's events did not wait for a's slow first one; a's kept their order.
        assert_eq!(order, vec![2, 4, 1, 3]);
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
