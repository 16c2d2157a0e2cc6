//! Stopping: once asked, no new item (offering, order, resource) starts; the ones in hand
//! finish. The CLI bounds how long that may take (the grace period) and then cancels.
//!
//! Items are what the modes fan out over. Each takes a [`Work`] ticket before it starts; after
//! a stop request none is handed out, and the ones refused and the ones still running are
//! counted, so the log can say what was left.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Shutdown {
    requested: AtomicBool,
    notify: Notify,
    in_flight: AtomicUsize,
    not_started: AtomicUsize,
}

/// Held while one item runs.
#[derive(Debug)]
pub struct Work<'a> {
    shutdown: &'a Shutdown,
}

impl Drop for Work<'_> {
    fn drop(&mut self) {
        self.shutdown.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shutdown {
    /// Asks every loop and fan-out to stop starting work.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Resolves once a stop is requested (at once if it already was).
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if self.requested() {
            return;
        }
        notified.await;
    }

    /// A ticket to start one item, or `None` after a stop request (the item is left for the
    /// next run and counted).
    pub fn start(&self) -> Option<Work<'_>> {
        if self.requested() {
            self.not_started.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(Work { shutdown: self })
    }

    /// Items running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Items refused since the stop request.
    pub fn not_started(&self) -> usize {
        self.not_started.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_a_request_nothing_starts_and_waiters_wake() {
        let shutdown = std::sync::Arc::new(Shutdown::default());
        let running = shutdown.start().expect("not stopping yet");
        assert_eq!(shutdown.in_flight(), 1);
        let waiter = {
            let shutdown = std::sync::Arc::clone(&shutdown);
            tokio::spawn(async move { shutdown.wait().await })
        };
        tokio::task::yield_now().await;
        shutdown.request();
        waiter.await.unwrap();
        assert!(shutdown.start().is_none());
        assert!(shutdown.start().is_none());
        assert_eq!(shutdown.not_started(), 2);
        drop(running);
        assert_eq!(shutdown.in_flight(), 0);
        shutdown.wait().await; // already requested: returns at once
    }
}
