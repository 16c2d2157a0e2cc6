//! Billing periods the report mode submits: the current month and the ones before it, in the
//! configured timezone (the reference's `_compute_reporting_periods`).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};

/// One billing month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i16,
    pub month: i8,
    pub is_current: bool,
}

impl Period {
    /// The month's first day.
    pub fn first_day(&self) -> Date {
        Date::new(self.year, self.month, 1).expect("a period is a valid month")
    }

    /// `YYYY-MM-01`, the `billing_period` query value.
    pub fn billing_period_start(&self) -> String {
        self.first_day().to_string()
    }

    /// Midnight of the first day in `tz`, ISO 8601 with offset: the `date` of usage reports.
    pub fn report_date(&self, tz: &TimeZone) -> String {
        let midnight = self
            .first_day()
            .to_datetime(jiff::civil::Time::midnight())
            .to_zoned(tz.clone())
            .expect("midnight of a first day exists in every zone");
        midnight.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    /// Midnight of the first day without an offset, `YYYY-MM-01T00:00:00`: the `date` the
    /// reference's historical loader sends (Waldur reads it in its own zone).
    pub fn naive_report_date(&self) -> String {
        format!("{}T00:00:00", self.first_day())
    }
}

/// Every month from the one `start` is in to the one `end` is in, oldest first (none when
/// `end` is before `start`); none is the current one.
pub fn months_between(start: Date, end: Date) -> Vec<Period> {
    let last = end.first_of_month();
    let mut day = start.first_of_month();
    let mut months = Vec::new();
    while day <= last {
        months.push(Period {
            year: day.year(),
            month: day.month(),
            is_current: false,
        });
        day = day.checked_add(1.month()).expect("months before year 9999");
    }
    months
}

/// `count` months ending with the one `now` is in, oldest first.
pub fn reporting_periods(now: &Zoned, count: u8) -> Vec<Period> {
    let current = now.date().first_of_month();
    (0..i64::from(count.max(1)))
        .rev()
        .map(|back| {
            let day = current
                .checked_sub(back.months())
                .expect("months since year -9999 fit");
            Period {
                year: day.year(),
                month: day.month(),
                is_current: back == 0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, zone: &str) -> Zoned {
        format!("{text}[{zone}]").parse().unwrap()
    }

    #[test]
    fn two_periods_oldest_first_across_a_year_boundary() {
        let periods = reporting_periods(&at("2026-01-15T10:00:00+02:00", "Europe/Tallinn"), 2);
        assert_eq!(
            periods,
            [
                Period {
                    year: 2025,
                    month: 12,
                    is_current: false
                },
                Period {
                    year: 2026,
                    month: 1,
                    is_current: true
                }
            ]
        );
        assert_eq!(periods[0].billing_period_start(), "2025-12-01");
    }

    #[test]
    fn the_month_is_the_one_in_the_configured_zone() {
        // 22:30 UTC on March 31st is already April 1st in Tallinn.
        let now = at("2026-03-31T22:30:00+00:00", "UTC")
            .with_time_zone(TimeZone::get("Europe/Tallinn").unwrap());
        let periods = reporting_periods(&now, 1);
        assert_eq!(
            periods,
            [Period {
                year: 2026,
                month: 4,
                is_current: true
            }]
        );
    }

    #[test]
    fn report_dates_carry_the_zone_offset() {
        let period = Period {
            year: 2026,
            month: 7,
            is_current: true,
        };
        assert_eq!(
            period.report_date(&TimeZone::UTC),
            "2026-07-01T00:00:00+00:00"
        );
        let tallinn = TimeZone::get("Europe/Tallinn").unwrap();
        assert_eq!(period.report_date(&tallinn), "2026-07-01T00:00:00+03:00");
    }

    #[test]
    fn months_between_two_dates_cover_both_ends() {
        let date = |s: &str| s.parse::<Date>().unwrap();
        let months = months_between(date("2024-11-30"), date("2025-02-01"));
        let names: Vec<String> = months.iter().map(|p| p.billing_period_start()).collect();
        assert_eq!(
            names,
            ["2024-11-01", "2024-12-01", "2025-01-01", "2025-02-01"]
        );
        assert_eq!(months[1].naive_report_date(), "2024-12-01T00:00:00");
        assert_eq!(
            months_between(date("2025-03-15"), date("2025-03-16")).len(),
            1
        );
        assert!(months_between(date("2025-03-15"), date("2025-02-16")).is_empty());
    }

    #[test]
    fn twelve_periods_at_most_one_at_least() {
        let now = at("2026-07-10T00:00:00+00:00", "UTC");
        assert_eq!(reporting_periods(&now, 12).len(), 12);
        assert_eq!(
            reporting_periods(&now, 12)[0],
            Period {
                year: 2025,
                month: 8,
                is_current: false
            }
        );
        assert_eq!(reporting_periods(&now, 0).len(), 1);
    }
}
