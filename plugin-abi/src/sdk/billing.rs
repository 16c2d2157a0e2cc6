//! Billing months and the reference's rounding of usage, for every plugin that reports usage:
//! one home, so two plugins cannot disagree on a month's bounds or on a hundredth.

use std::fmt;

use crate::{Error, Result};

/// A billing month (Waldur bills usage per calendar month, in the agent's `timezone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    /// The month, or INVALID_INPUT for one that does not exist (month 13, year 0).
    pub fn new(year: i32, month: u32) -> Result<Self> {
        if !(1..=12).contains(&month) || !(1..=9999).contains(&year) {
            return Err(Error::invalid_input(format!(
                "there is no billing month {year}-{month}"
            )));
        }
        Ok(Self { year, month })
    }

    /// Days in the month (the Gregorian calendar).
    pub fn days(self) -> u32 {
        match self.month {
            4 | 6 | 9 | 11 => 30,
            2 if self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0) => 29,
            2 => 28,
            _ => 31,
        }
    }

    /// The first second, `YYYY-MM-01T00:00:00` (naive local time).
    pub fn start(self) -> String {
        format!("{self}-01T00:00:00")
    }

    /// The last second, `YYYY-MM-<last day>T23:59:59` (naive local time).
    pub fn end(self) -> String {
        format!("{self}-{:02}T23:59:59", self.days())
    }
}

/// `YYYY-MM`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Python's `round(x, 2)`, as the reference rounds usage: to the nearest hundredth of the
/// exact binary value, ties to even. Formatting rounds exactly that way; `(x * 100).round()`
/// does not (0.125 would become 0.13, not 0.12). Never `-0.0`.
pub fn round2(value: f64) -> f64 {
    let rounded: f64 = format!("{value:.2}").parse().unwrap_or(value);
    rounded + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_their_bounds() {
        assert!(Period::new(2026, 13).is_err());
        assert!(Period::new(0, 1).is_err());
        let feb = |year| Period::new(year, 2).unwrap().days();
        assert_eq!(
            (feb(2024), feb(2025), feb(1900), feb(2000)),
            (29, 28, 28, 29)
        );
        let p = Period::new(2026, 4).unwrap();
        assert_eq!(p.to_string(), "2026-04");
        assert_eq!(p.start(), "2026-04-01T00:00:00");
        assert_eq!(p.end(), "2026-04-30T23:59:59");
        assert_eq!(Period::new(2026, 12).unwrap().end(), "2026-12-31T23:59:59");
    }

    #[test]
    fn rounding_is_python_s() {
        assert_eq!(round2(0.125), 0.12);
        assert_eq!(round2(0.375), 0.38);
        assert_eq!(round2(2.675), 2.67);
        assert_eq!(round2(-0.001).to_string(), "0");
        assert_eq!(round2(1.005), 1.0);
    }
}
