//! What `gatecast spend` and `GET /admin/v1/spend` show: the same JSON, or a table, from the
//! same arguments (`since` a UTC day, `by` one dimension).

use chrono::NaiveDate;
use gatecast_store::{Budget, BudgetPeriod, SpendBy, SpendRow};
use serde_json::{json, Value};

use crate::control::bridge::FieldError;

/// `since` as given (`YYYY-MM-DD`), with an error naming `field`.
pub fn parse_since(field: &str, since: Option<&str>) -> Result<Option<NaiveDate>, FieldError> {
    since
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
                FieldError::new(field, format!("`{s}` is not a day as YYYY-MM-DD (UTC)"))
            })
        })
        .transpose()
}

pub fn parse_by(field: &str, by: Option<&str>) -> Result<Option<SpendBy>, FieldError> {
    by.filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.parse::<SpendBy>().map_err(|_| {
                FieldError::new(
                    field,
                    format!("`{s}` is not one of key, user, model or day"),
                )
            })
        })
        .transpose()
}

/// A budget from its two settings: both or neither (`None`: no budget); errors name the
/// setting at fault.
pub fn parse_budget(
    usd: Option<f64>,
    period: Option<&str>,
    (usd_field, period_field): (&str, &str),
) -> Result<Option<Budget>, FieldError> {
    let period = match (usd, period) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(FieldError::new(
                period_field,
                format!("required with {usd_field}: {}", BudgetPeriod::NAMES),
            ))
        }
        (None, Some(_)) => {
            return Err(FieldError::new(
                usd_field,
                format!("required with {period_field}"),
            ))
        }
        (Some(_), Some(p)) => p.parse::<BudgetPeriod>().map_err(|_| {
            FieldError::new(
                period_field,
                format!("`{p}` is not one of {}", BudgetPeriod::NAMES),
            )
        })?,
    };
    let usd = usd.unwrap_or_default();
    Budget::new(usd, period)
        .map(Some)
        .map_err(|_| FieldError::new(usd_field, "must be a number of dollars, 0 or more"))
}

pub fn json(rows: &[SpendRow], since: Option<NaiveDate>, by: Option<SpendBy>) -> Value {
    json!({
        "object": "list",
        "since": since.map(|d| d.format("%Y-%m-%d").to_string()),
        "by": by,
        "data": rows,
    })
}

/// The report as a table: the dimensions shown, then dollars, requests and tokens; `-` for
/// no key or no user.
pub fn table(rows: &[SpendRow]) -> String {
    let mut out = String::new();
    let dims = |r: &SpendRow| -> Vec<String> {
        [&r.day, &r.key, &r.user, &r.model]
            .into_iter()
            .filter_map(|d| d.as_ref())
            .map(|d| {
                if d.is_empty() {
                    "-".to_owned()
                } else {
                    d.clone()
                }
            })
            .collect()
    };
    let heads: Vec<&str> = match rows.first() {
        Some(r) => [
            ("DAY", &r.day),
            ("KEY", &r.key),
            ("USER", &r.user),
            ("MODEL", &r.model),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_some())
        .map(|(h, _)| h)
        .collect(),
        None => return "no spend recorded\n".to_owned(),
    };
    let mut line = String::new();
    for h in &heads {
        line.push_str(&format!("{h:<24} "));
    }
    out.push_str(&format!(
        "{line}{:>14} {:>9} {:>12} {:>12} {:>10}\n",
        "USD", "REQUESTS", "INPUT", "OUTPUT", "UNPRICED"
    ));
    for r in rows {
        let mut line = String::new();
        for d in dims(r) {
            line.push_str(&format!("{d:<24} "));
        }
        out.push_str(&format!(
            "{line}{:>14.6} {:>9} {:>12} {:>12} {:>10}\n",
            r.usd,
            r.sums.requests,
            r.sums.input_tokens,
            r.sums.output_tokens,
            r.sums.unpriced_requests
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_the_field_at_fault() {
        assert_eq!(
            parse_since("since", Some("2026-05-01")).unwrap(),
            NaiveDate::from_ymd_opt(2026, 5, 1)
        );
        let e = parse_since("since", Some("May 1")).unwrap_err();
        assert_eq!(e.path, "since");
        assert_eq!(parse_by("by", Some("MODEL")).unwrap(), Some(SpendBy::Model));
        assert_eq!(parse_by("by", Some("team")).unwrap_err().path, "by");
        let fields = ("budget_usd", "budget_period");
        assert_eq!(parse_budget(None, None, fields).unwrap(), None);
        assert_eq!(
            parse_budget(Some(50.0), Some("day"), fields).unwrap(),
            Some(Budget::new(50.0, BudgetPeriod::Day).unwrap())
        );
        assert_eq!(
            parse_budget(Some(50.0), None, fields).unwrap_err().path,
            "budget_period"
        );
        assert_eq!(
            parse_budget(None, Some("day"), fields).unwrap_err().path,
            "budget_usd"
        );
        assert_eq!(
            parse_budget(Some(-1.0), Some("day"), fields)
                .unwrap_err()
                .path,
            "budget_usd"
        );
        assert_eq!(
            parse_budget(Some(1.0), Some("year"), fields)
                .unwrap_err()
                .path,
            "budget_period"
        );
    }
}
