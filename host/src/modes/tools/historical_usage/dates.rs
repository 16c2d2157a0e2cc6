//! The date range of `load-historical-usage`: two `YYYY-MM-DD` dates, the end not before the
//! start, at most five years apart (the reference's limit: 5 x 365 days).

use jiff::civil::Date;

use crate::modes::periods::{months_between, Period};

/// The longest range loaded at once, in days.
pub const MAX_RANGE_DAYS: i32 = 5 * 365;

/// A validated `--start-date` .. `--end-date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: Date,
    pub end: Date,
}

impl DateRange {
    /// Parses and checks the two flags; `Err` is one line naming the flag that is wrong.
    pub fn parse(start: &str, end: &str) -> Result<DateRange, String> {
        let (start, end) = (date("--start-date", start)?, date("--end-date", end)?);
        if end < start {
            return Err(format!("--end-date {end} is before --start-date {start}"));
        }
        let days = (end - start).get_days();
        if days > MAX_RANGE_DAYS {
            return Err(format!(
                "--start-date {start} to --end-date {end} is {days} days; at most {MAX_RANGE_DAYS} (5 years) are loaded at once"
            ));
        }
        Ok(DateRange { start, end })
    }

    /// The billing months the range touches, oldest first.
    pub fn months(&self) -> Vec<Period> {
        months_between(self.start, self.end)
    }
}

/// A strict `YYYY-MM-DD` (jiff alone would also take `20240101` and other ISO 8601 forms).
fn date(flag: &str, text: &str) -> Result<Date, String> {
    let shaped = text.len() == 10
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!("{flag} {text:?} is not a date in YYYY-MM-DD form"));
    }
    text.parse::<Date>()
        .map_err(|e| format!("{flag} {text:?} is not a valid date: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_range_gives_its_months() {
        let range = DateRange::parse("2024-01-15", "2024-03-31").unwrap();
        let months: Vec<String> = range
            .months()
            .iter()
            .map(|p| p.billing_period_start())
            .collect();
        assert_eq!(months, ["2024-01-01", "2024-02-01", "2024-03-01"]);
        // One day is a range too.
        assert_eq!(
            DateRange::parse("2024-02-29", "2024-02-29")
                .unwrap()
                .months()
                .len(),
            1
        );
    }

    #[test]
    fn bad_dates_are_one_line_errors_naming_the_flag() {
        let err = DateRange::parse("2024-13-01", "2024-03-31").unwrap_err();
        assert!(
            err.starts_with("--start-date \"2024-13-01\" is not a valid date"),
            "{err}"
        );
        let err = DateRange::parse("2024-01-01", "31.03.2024").unwrap_err();
        assert_eq!(
            err,
            "--end-date \"31.03.2024\" is not a date in YYYY-MM-DD form"
        );
        assert!(DateRange::parse("20240101", "2024-03-31").is_err());
        assert!(DateRange::parse("2023-02-29", "2024-03-31").is_err());
        for (s, e) in [("2024-13-01", "2024-03-31"), ("2024-01-01", "x")] {
            assert!(!DateRange::parse(s, e).unwrap_err().contains('\n'));
        }
    }

    #[test]
    fn the_end_may_not_be_before_the_start() {
        assert_eq!(
            DateRange::parse("2024-03-31", "2024-01-01").unwrap_err(),
            "--end-date 2024-01-01 is before --start-date 2024-03-31"
        );
    }

    #[test]
    fn more_than_five_years_is_refused() {
        // 2020-01-01 + 1825 days = 2024-12-30 (two leap days on the way).
        assert!(DateRange::parse("2020-01-01", "2024-12-30").is_ok());
        let err = DateRange::parse("2020-01-01", "2024-12-31").unwrap_err();
        assert_eq!(
            err,
            "--start-date 2020-01-01 to --end-date 2024-12-31 is 1826 days; at most 1825 (5 years) are loaded at once"
        );
        assert!(DateRange::parse("2020-01-01", "2030-12-31").is_err());
    }
}
