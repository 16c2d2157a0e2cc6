//! Guards against mass removal (agent extension; VSC's account sync has `max_user_del`).
//!
//! A Waldur that suddenly lists empty teams (a broken identity provider, a project moved by
//! mistake) would have the agent remove every user from every account, and a flood of
//! Terminate orders would delete accounts with their data. With a bound configured, a cycle
//! that would remove more stops before its first write and says why; `run --force` lets one
//! run past it. Without the key there is no bound, as in the reference.

use super::error::ModeError;

/// What a guard counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// User associations a membership cycle would remove.
    UserAssociations,
    /// Terminate orders an order cycle would carry out.
    Terminations,
}

impl Removal {
    fn key(self) -> &'static str {
        match self {
            Removal::UserAssociations => "max_user_removals_per_cycle",
            Removal::Terminations => "max_terminations_per_cycle",
        }
    }

    fn planned(self, count: usize) -> String {
        match self {
            Removal::UserAssociations => format!("remove {count} user association(s)"),
            Removal::Terminations => format!("carry out {count} Terminate order(s)"),
        }
    }
}

/// `Err` when `planned` removals exceed `bound` and the run is not forced.
pub fn check(
    what: Removal,
    planned: usize,
    bound: Option<usize>,
    forced: bool,
) -> Result<(), ModeError> {
    match bound {
        Some(bound) if planned > bound => {
            if forced {
                tracing::warn!(
                    "--force: this cycle will {}, more than {} ({bound}) allows",
                    what.planned(planned),
                    what.key()
                );
                return Ok(());
            }
            Err(ModeError::Guard(format!(
                "stopped before writing anything: this cycle would {}, more than {}: {bound} \
                 allows; check Waldur, then raise the limit or run once with --force",
                what.planned(planned),
                what.key()
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_more_than_the_bound_stops_and_force_lets_it_pass() {
        assert!(check(Removal::UserAssociations, 5, None, false).is_ok());
        assert!(check(Removal::UserAssociations, 5, Some(5), false).is_ok());
        let stopped = check(Removal::UserAssociations, 6, Some(5), false).unwrap_err();
        assert_eq!(
            stopped.to_string(),
            "stopped before writing anything: this cycle would remove 6 user association(s), \
             more than max_user_removals_per_cycle: 5 allows; check Waldur, then raise the \
             limit or run once with --force"
        );
        assert!(check(Removal::Terminations, 1, Some(0), false)
            .unwrap_err()
            .to_string()
            .contains("carry out 1 Terminate order(s), more than max_terminations_per_cycle: 0"));
        assert!(check(Removal::Terminations, 100, Some(0), true).is_ok());
    }
}
