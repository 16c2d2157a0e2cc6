//! Claims on backend ids inside one agent process.
//!
//! Two Create orders of different resources may want the same backend id (resources with the
//! same slug, or `account_name_generation_policy: project_slug`). Whether an existing account
//! is an orphan of an earlier attempt of *this* resource is decided by asking Waldur whether
//! another resource holds the id; that answer is only true while no other task of this
//! process is between creating the same id and recording it in Waldur. A claim covers exactly
//! that window: it is taken before the backend is touched and released once Waldur has the
//! id (or the attempt gave up). Other agent processes are kept out by the instance lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A set of named async locks, each existing only while someone holds or waits for it.
#[derive(Debug, Default)]
pub struct Claims {
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Held while one task works on a backend id; dropping it lets the next waiter in.
#[derive(Debug)]
pub struct Claim {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    waited: bool,
}

impl Claim {
    /// True when someone else held the key when it was asked for: what was read before the
    /// claim may have been changed by them and must be read again.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Claims {
    /// Waits until nobody else in this process holds `key`, then holds it.
    pub async fn claim(&self, key: String) -> Claim {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget locks nobody holds any more, so the map stays as small as the work in
            // flight.
            locks.retain(|_, lock| lock.strong_count() > 0);
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        match Arc::clone(&lock).try_lock_owned() {
            Ok(guard) => Claim {
                _guard: guard,
                waited: false,
            },
            Err(_) => Claim {
                _guard: lock.lock_owned().await,
                waited: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_second_claim_waits_for_the_first() {
        let claims = Arc::new(Claims::default());
        let first = claims.claim("slurm/a".into()).await;
        let other = claims.claim("slurm/b".into()).await;
        assert!(!first.waited() && !other.waited());
        let waiter = {
            let claims = Arc::clone(&claims);
            tokio::spawn(async move { claims.claim("slurm/a".into()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the same key must wait");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released claims let the waiter in")
            .unwrap();
        assert!(second.waited(), "it found the key held");
        drop((second, other));
        let claims = Arc::try_unwrap(claims).unwrap();
        claims
            .locks
            .lock()
            .unwrap()
            .retain(|_, l| l.strong_count() > 0);
        assert!(claims.locks.lock().unwrap().is_empty());
    }
}
