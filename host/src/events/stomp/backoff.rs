//! Reconnect delays: capped exponential backoff with equal jitter.
//!
//! Attempt `n` (0-based) waits between `d/2` and `d`, where `d = min(max, initial * 2^n)`:
//! never less than half the nominal delay (a broker that is down is not hammered), and
//! agents that lost the broker together do not come back in lockstep.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Reconnect backoff of the STOMP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The nominal delay before the first retry.
    pub initial: Duration,
    /// The largest nominal delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The nominal (un-jittered) delay of attempt `attempt`.
    pub fn nominal(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay of attempt `attempt` with `jitter` in [0, 1]: `d/2 + jitter * d/2`.
    pub fn delay_with(&self, attempt: u32, jitter: f64) -> Duration {
        let nominal = self.nominal(attempt);
        let half = nominal / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// The delay of attempt `attempt`, randomly jittered.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_unit())
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher (no RNG dependency
/// for one number per reconnect).
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let backoff = Backoff::default();
        let nominal: Vec<u64> = (0..9).map(|n| backoff.nominal(n).as_secs()).collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff.nominal(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn equal_jitter_stays_in_the_upper_half() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(backoff.delay_with(0, 0.0), Duration::from_millis(50));
        assert_eq!(backoff.delay_with(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff.delay_with(3, 0.5), Duration::from_millis(600));
        assert_eq!(backoff.delay_with(10, 1.0), Duration::from_secs(1));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let delay = backoff.delay(2);
            assert!(
                delay >= Duration::from_millis(200) && delay <= Duration::from_millis(400),
                "{delay:?}"
            );
            seen.insert(delay);
        }
        assert!(seen.len() > 100, "jitter varies: {} distinct", seen.len());
    }

    #[test]
    fn zero_initial_means_no_wait() {
        let backoff = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(5),
        };
        assert_eq!(backoff.delay(7), Duration::ZERO);
    }
}
