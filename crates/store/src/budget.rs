//! A virtual key's spending cap and the UTC calendar period it counts over.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike as _, Days, Months, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The period a budget applies to: UTC calendar day, ISO week (from Monday), calendar month,
/// or the key's whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    Day,
    Week,
    Month,
    Total,
}

/// The period `now` falls in: the first day it counts spend from (`None`: since ever) and the
/// instant it ends and the budget is whole again (`None`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub since: Option<NaiveDate>,
    pub resets_at: Option<DateTime<Utc>>,
}

impl BudgetPeriod {
    pub const NAMES: &'static str = "day, week, month or total";

    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Week => "week",
            BudgetPeriod::Month => "month",
            BudgetPeriod::Total => "total",
        }
    }

    /// How a message names one period's budget: "daily", "weekly", "monthly", "total".
    pub fn adjective(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "daily",
            BudgetPeriod::Week => "weekly",
            BudgetPeriod::Month => "monthly",
            BudgetPeriod::Total => "total",
        }
    }

    pub fn window(self, now: DateTime<Utc>) -> Window {
        let today = now.date_naive();
        let (start, end) = match self {
            BudgetPeriod::Total => {
                return Window {
                    since: None,
                    resets_at: None,
                }
            }
            BudgetPeriod::Day => (today, today.checked_add_days(Days::new(1))),
            BudgetPeriod::Week => {
                let monday = today
                    .checked_sub_days(Days::new(u64::from(today.weekday().num_days_from_monday())))
                    .unwrap_or(today);
                (monday, monday.checked_add_days(Days::new(7)))
            }
            BudgetPeriod::Month => {
                let first = today.with_day(1).unwrap_or(today);
                (first, first.checked_add_months(Months::new(1)))
            }
        };
        Window {
            since: Some(start),
            resets_at: end.map(|d| d.and_time(NaiveTime::MIN).and_utc()),
        }
    }
}

impl fmt::Display for BudgetPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BudgetPeriod {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" | "daily" => Ok(BudgetPeriod::Day),
            "week" | "weekly" => Ok(BudgetPeriod::Week),
            "month" | "monthly" => Ok(BudgetPeriod::Month),
            "total" => Ok(BudgetPeriod::Total),
            other => Err(StoreError::invalid(
                "budget period",
                format!("`{other}` is not one of {}", Self::NAMES),
            )),
        }
    }
}

/// At most this much a key may spend in one [`BudgetPeriod`], in US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub usd: f64,
    pub period: BudgetPeriod,
}

impl Budget {
    /// A budget of `usd` (finite, 0 or more: 0 refuses every request) over `period`.
    pub fn new(usd: f64, period: BudgetPeriod) -> Result<Self, StoreError> {
        if !usd.is_finite() || usd < 0.0 {
            return Err(StoreError::invalid(
                "budget usd",
                format!("must be a number of dollars, 0 or more (got {usd})"),
            ));
        }
        Ok(Self { usd, period })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        // A Sunday, one second before midnight: the ISO week began the Monday before.
        let now = at("2026-03-01T23:59:59Z");
        let w = BudgetPeriod::Day.window(now);
        assert_eq!(w.since, Some(day("2026-03-01")));
        assert_eq!(w.resets_at, Some(at("2026-03-02T00:00:00Z")));
        let w = BudgetPeriod::Week.window(now);
        assert_eq!(w.since, Some(day("2026-02-23")));
        assert_eq!(w.resets_at, Some(at("2026-03-02T00:00:00Z")));
        let w = BudgetPeriod::Week.window(at("2026-03-02T00:00:00Z"));
        assert_eq!(w.since, Some(day("2026-03-02")), "Monday starts a week");
        let w = BudgetPeriod::Month.window(at("2026-12-31T10:00:00Z"));
        assert_eq!(w.since, Some(day("2026-12-01")));
        assert_eq!(w.resets_at, Some(at("2027-01-01T00:00:00Z")));
        let w = BudgetPeriod::Month.window(at("2028-02-29T10:00:00+05:00"));
        assert_eq!(
            w.since,
            Some(day("2028-02-01")),
            "UTC, not the offset's day"
        );
        assert_eq!(
            BudgetPeriod::Total.window(now),
            Window {
                since: None,
                resets_at: None
            }
        );
    }

    #[test]
    fn parsing_and_limits() {
        assert_eq!("Week".parse::<BudgetPeriod>().unwrap(), BudgetPeriod::Week);
        assert_eq!(
            "monthly".parse::<BudgetPeriod>().unwrap(),
            BudgetPeriod::Month
        );
        let e = "year".parse::<BudgetPeriod>().unwrap_err().to_string();
        assert!(e.contains("day, week, month or total"), "{e}");
        assert!(Budget::new(-1.0, BudgetPeriod::Day).is_err());
        assert!(Budget::new(f64::NAN, BudgetPeriod::Day).is_err());
        assert!(Budget::new(0.0, BudgetPeriod::Total).is_ok());
    }
}
