//! Progress lines for long cycles: while one offering's cycle of a mode runs longer than
//! [`PROGRESS_INTERVAL`], a line every interval says how many of its items are done, the rate
//! and an estimate of the time left. The line is logged inside the cycle's span, so it
//! carries the offering and the mode.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How often a running cycle reports its progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// Replaces [`PROGRESS_INTERVAL`] (milliseconds): tests see progress lines without waiting
/// ten seconds per line. Not a config key: operators have no reason to change it.
pub const PROGRESS_INTERVAL_VAR: &str = "WALDUR_AGENT_PROGRESS_INTERVAL_MS";

/// The interval in force for this process.
pub fn interval() -> Duration {
    static INTERVAL: OnceLock<Duration> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        std::env::var(PROGRESS_INTERVAL_VAR)
            .ok()
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(PROGRESS_INTERVAL, Duration::from_millis)
    })
}

/// Items of one offering's cycle: how many there are and how many are done. Modes add to the
/// total when they have listed their items and mark each one done when it ends, however.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicUsize,
    done: AtomicUsize,
}

impl Progress {
    pub fn add_total(&self, items: usize) {
        self.total.fetch_add(items, Ordering::Relaxed);
    }

    pub fn item_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (usize, usize) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// Runs `work`, logging a progress line every `every` for as long as it runs.
pub async fn report_while<T>(
    progress: &Progress,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(started + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            answer = &mut work => return answer,
            _ = ticks.tick() => {
                let (done, total) = progress.snapshot();
                tracing::info!("{}", line(done, total, started.elapsed()));
            }
        }
    }
}

/// `progress: 40/100 item(s) done in 10.0 s, 4.0/s, about 15 s left`.
fn line(done: usize, total: usize, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if total == 0 {
        return format!("progress: listing the items, {seconds:.1} s in");
    }
    let rate = done as f64 / seconds.max(f64::EPSILON);
    let left = if done == 0 {
        "time left unknown".to_string()
    } else {
        let remaining = total.saturating_sub(done) as f64 / rate;
        format!("about {remaining:.0} s left")
    };
    format!("progress: {done}/{total} item(s) done in {seconds:.1} s, {rate:.1}/s, {left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_has_the_count_the_rate_and_the_time_left() {
        assert_eq!(
            line(40, 100, Duration::from_secs(10)),
            "progress: 40/100 item(s) done in 10.0 s, 4.0/s, about 15 s left"
        );
        assert_eq!(
            line(0, 7, Duration::from_millis(2500)),
            "progress: 0/7 item(s) done in 2.5 s, 0.0/s, time left unknown"
        );
        assert_eq!(
            line(0, 0, Duration::from_secs(3)),
            "progress: listing the items, 3.0 s in"
        );
    }
}
