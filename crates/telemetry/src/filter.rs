//! Which records a destination wants (DESIGN §5): key include/exclude lists, then rule
//! groups that combine by OR, each group combining its rules by `and` or `or`.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{GenerationRecord, Status};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    /// When non-empty, only records from these virtual keys.
    #[serde(default)]
    pub include_keys: Vec<String>,
    /// Never records from these keys; wins over `include_keys`.
    #[serde(default)]
    pub exclude_keys: Vec<String>,
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    #[serde(default)]
    pub logic: Logic,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Logic {
    #[default]
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// model, provider, user, session_id, key_name, status, finish_reason, total_tokens, cost,
    /// or `metadata.<key>`.
    pub field: String,
    pub operator: Operator,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    Regex,
    StartsWith,
    EndsWith,
    Gt,
    Lt,
    Gte,
    Lte,
    Exists,
    NotExists,
}

const FIELDS: [&str; 9] = [
    "model",
    "provider",
    "user",
    "session_id",
    "key_name",
    "status",
    "finish_reason",
    "total_tokens",
    "cost",
];

/// Filters checked once at load, with their regexes compiled.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilters {
    filters: Filters,
    regexes: Vec<Vec<Option<Regex>>>,
}

/// A filter mistake, with the path below the destination's `filters`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl CompiledFilters {
    pub fn compile(filters: &Filters) -> Result<Self, FilterError> {
        let mut regexes = Vec::with_capacity(filters.groups.len());
        for (g, group) in filters.groups.iter().enumerate() {
            let mut compiled = Vec::with_capacity(group.rules.len());
            for (r, rule) in group.rules.iter().enumerate() {
                let path = |leaf: &str| format!("filters.groups[{g}].rules[{r}].{leaf}");
                let known = FIELDS.contains(&rule.field.as_str())
                    || rule
                        .field
                        .strip_prefix("metadata.")
                        .is_some_and(|k| !k.is_empty());
                if !known {
                    return Err(FilterError {
                        path: path("field"),
                        message: format!(
                            "unknown field `{}`; use one of {} or metadata.<key>",
                            rule.field,
                            FIELDS.join(", ")
                        ),
                    });
                }
                let needs_value = !matches!(rule.operator, Operator::Exists | Operator::NotExists);
                if needs_value && rule.value.is_none() {
                    return Err(FilterError {
                        path: path("value"),
                        message: "this operator needs a value".into(),
                    });
                }
                let numeric = matches!(
                    rule.operator,
                    Operator::Gt | Operator::Lt | Operator::Gte | Operator::Lte
                );
                if numeric && rule.value.as_ref().and_then(as_number).is_none() {
                    return Err(FilterError {
                        path: path("value"),
                        message: "must be a number for this operator".into(),
                    });
                }
                let regex = match (rule.operator, &rule.value) {
                    (Operator::Regex, Some(v)) => {
                        Some(Regex::new(&as_text(v)).map_err(|e| FilterError {
                            path: path("value"),
                            message: format!("invalid regex: {e}"),
                        })?)
                    }
                    _ => None,
                };
                compiled.push(regex);
            }
            regexes.push(compiled);
        }
        Ok(Self {
            filters: filters.clone(),
            regexes,
        })
    }

    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    pub fn matches(&self, record: &GenerationRecord) -> bool {
        let key = record.key_name.as_deref();
        if key.is_some_and(|k| self.filters.exclude_keys.iter().any(|x| x == k)) {
            return false;
        }
        if !self.filters.include_keys.is_empty()
            && !key.is_some_and(|k| self.filters.include_keys.iter().any(|x| x == k))
        {
            return false;
        }
        if self.filters.groups.is_empty() {
            return true;
        }
        self.filters
            .groups
            .iter()
            .zip(&self.regexes)
            .any(|(group, regexes)| {
                let mut results = group
                    .rules
                    .iter()
                    .zip(regexes)
                    .map(|(rule, re)| rule_matches(rule, re.as_ref(), record));
                match group.logic {
                    Logic::And => results.all(|m| m),
                    Logic::Or => results.any(|m| m),
                }
            })
    }
}

/// The values a field has on a record; several for `finish_reason` (one per choice).
fn field_values(field: &str, record: &GenerationRecord) -> Vec<Value> {
    let s = |v: Option<&str>| v.map(|x| vec![Value::from(x)]).unwrap_or_default();
    match field {
        "model" => s(record
            .route
            .as_ref()
            .map(|r| r.model.as_str())
            .or(Some(record.request.model.as_str()).filter(|m| !m.is_empty()))),
        "provider" => s(record.route.as_ref().map(|r| r.provider.as_str())),
        "user" => s(record.context.user.as_deref()),
        "session_id" => s(record.context.session_id.as_deref()),
        "key_name" => s(record.key_name.as_deref()),
        "status" => s(Some(match record.status {
            Status::Ok => "ok",
            Status::Error(_) => "error",
        })),
        "finish_reason" => record
            .output
            .choices
            .iter()
            .filter_map(|c| c.finish_reason.as_deref())
            .map(Value::from)
            .collect(),
        "total_tokens" => record
            .usage
            .as_ref()
            .map(|u| vec![Value::from(u.input_tokens + u.output_tokens)])
            .unwrap_or_default(),
        "cost" => record
            .cost
            .as_ref()
            .map(|c| vec![Value::from(c.total_usd)])
            .unwrap_or_default(),
        other => other
            .strip_prefix("metadata.")
            .and_then(|k| record.context.trace.get(k))
            .filter(|v| !v.is_null())
            .map(|v| vec![v.clone()])
            .unwrap_or_default(),
    }
}

fn rule_matches(rule: &Rule, regex: Option<&Regex>, record: &GenerationRecord) -> bool {
    let values = field_values(&rule.field, record);
    let want = rule.value.as_ref();
    let any = |f: &dyn Fn(&Value, &Value) -> bool| match want {
        Some(w) => values.iter().any(|v| f(v, w)),
        None => false,
    };
    match rule.operator {
        Operator::Exists => !values.is_empty(),
        Operator::NotExists => values.is_empty(),
        Operator::Equals => any(&|v, w| as_text(v) == as_text(w)),
        Operator::NotEquals => !any(&|v, w| as_text(v) == as_text(w)),
        Operator::Contains => any(&|v, w| as_text(v).contains(&as_text(w))),
        Operator::NotContains => !any(&|v, w| as_text(v).contains(&as_text(w))),
        Operator::StartsWith => any(&|v, w| as_text(v).starts_with(&as_text(w))),
        Operator::EndsWith => any(&|v, w| as_text(v).ends_with(&as_text(w))),
        Operator::Regex => regex.is_some_and(|re| values.iter().any(|v| re.is_match(&as_text(v)))),
        Operator::Gt => any(&|v, w| cmp(v, w, |a, b| a > b)),
        Operator::Lt => any(&|v, w| cmp(v, w, |a, b| a < b)),
        Operator::Gte => any(&|v, w| cmp(v, w, |a, b| a >= b)),
        Operator::Lte => any(&|v, w| cmp(v, w, |a, b| a <= b)),
    }
}

fn cmp(v: &Value, w: &Value, op: impl Fn(f64, f64) -> bool) -> bool {
    matches!((as_number(v), as_number(w)), (Some(a), Some(b)) if op(a, b))
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::field_reassign_with_default)]
mod tests {
    use super::*;
    use crate::record::{Choice, ErrorInfo, ErrorKind, RouteInfo, Usage};
    use serde_json::json;

    fn record() -> GenerationRecord {
        let mut r = GenerationRecord::default();
        r.route = Some(RouteInfo {
            provider: "up".into(),
            model: "gpt-4o-mini".into(),
            ..Default::default()
        });
        r.context.user = Some("u-17".into());
        r.context.session_id = Some("chat-9".into());
        r.key_name = Some("team-a".into());
        r.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Default::default()
        });
        r.output.choices = vec![Choice {
            finish_reason: Some("stop".into()),
            ..Default::default()
        }];
        r.context.trace = json!({"customer": "acme", "tier": 3})
            .as_object()
            .unwrap()
            .clone();
        r
    }

    fn compile(v: Value) -> CompiledFilters {
        CompiledFilters::compile(&serde_json::from_value(v).unwrap()).unwrap()
    }

    fn rule(field: &str, op: &str, value: Value) -> CompiledFilters {
        compile(json!({"groups": [{"rules": [{"field": field, "operator": op, "value": value}]}]}))
    }

    #[test]
    fn every_operator() {
        let r = record();
        let cases = [
            ("model", "equals", json!("gpt-4o-mini"), true),
            ("model", "equals", json!("gpt-4o"), false),
            ("model", "not_equals", json!("gpt-4o"), true),
            ("model", "contains", json!("4o-m"), true),
            ("model", "not_contains", json!("claude"), true),
            ("model", "not_contains", json!("gpt"), false),
            ("model", "regex", json!("^gpt-\\d"), true),
            ("model", "regex", json!("^claude"), false),
            ("model", "starts_with", json!("gpt-"), true),
            ("model", "ends_with", json!("mini"), true),
            ("total_tokens", "gt", json!(14), true),
            ("total_tokens", "gt", json!(15), false),
            ("total_tokens", "gte", json!(15), true),
            ("total_tokens", "lt", json!(16), true),
            ("total_tokens", "lte", json!(14), false),
            ("metadata.tier", "gte", json!(3), true),
            ("metadata.customer", "equals", json!("acme"), true),
            ("finish_reason", "equals", json!("stop"), true),
            ("status", "equals", json!("ok"), true),
            ("provider", "equals", json!("up"), true),
            ("user", "equals", json!("u-17"), true),
            ("session_id", "starts_with", json!("chat"), true),
            ("key_name", "equals", json!("team-a"), true),
        ];
        for (field, op, value, want) in cases {
            assert_eq!(
                rule(field, op, value.clone()).matches(&r),
                want,
                "{field} {op} {value}"
            );
        }
        let exists = |field: &str, op: &str| {
            compile(json!({"groups": [{"rules": [{"field": field, "operator": op}]}]}))
        };
        assert!(exists("metadata.customer", "exists").matches(&r));
        assert!(!exists("metadata.nope", "exists").matches(&r));
        assert!(exists("metadata.nope", "not_exists").matches(&r));
        assert!(!exists("cost", "exists").matches(&r));
        let mut failed = r.clone();
        failed.status = Status::Error(ErrorInfo {
            kind: ErrorKind::Timeout,
            http_status: None,
            message: String::new(),
        });
        assert!(rule("status", "equals", json!("error")).matches(&failed));
    }

    #[test]
    fn group_logic_and_or_between_groups() {
        let r = record();
        let and = compile(json!({"groups": [{"logic": "and", "rules": [
            {"field": "model", "operator": "starts_with", "value": "gpt-"},
            {"field": "user", "operator": "equals", "value": "other"}]}]}));
        assert!(!and.matches(&r));
        let or = compile(json!({"groups": [{"logic": "or", "rules": [
            {"field": "model", "operator": "starts_with", "value": "gpt-"},
            {"field": "user", "operator": "equals", "value": "other"}]}]}));
        assert!(or.matches(&r));
        let groups = compile(json!({"groups": [
            {"rules": [{"field": "user", "operator": "equals", "value": "other"}]},
            {"rules": [{"field": "model", "operator": "equals", "value": "gpt-4o-mini"}]}]}));
        assert!(groups.matches(&r), "groups combine by OR");
        assert!(compile(json!({})).matches(&r), "no filters: everything");
    }

    #[test]
    fn key_lists_and_exclude_wins() {
        let r = record();
        assert!(compile(json!({"include_keys": ["team-a"]})).matches(&r));
        assert!(!compile(json!({"include_keys": ["team-b"]})).matches(&r));
        assert!(!compile(json!({"exclude_keys": ["team-a"]})).matches(&r));
        assert!(
            !compile(json!({"include_keys": ["team-a"], "exclude_keys": ["team-a"]})).matches(&r)
        );
        let mut anonymous = r.clone();
        anonymous.key_name = None;
        assert!(!compile(json!({"include_keys": ["team-a"]})).matches(&anonymous));
        assert!(compile(json!({"exclude_keys": ["team-a"]})).matches(&anonymous));
    }

    #[test]
    fn mistakes_are_reported_with_paths() {
        let bad = |v: Value| {
            CompiledFilters::compile(&serde_json::from_value(v).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(bad(
            json!({"groups": [{"rules": [{"field": "colour", "operator": "equals", "value": 1}]}]})
        )
        .starts_with("filters.groups[0].rules[0].field"));
        assert!(bad(
            json!({"groups": [{"rules": [{"field": "model", "operator": "regex", "value": "("}]}]})
        )
        .starts_with("filters.groups[0].rules[0].value: invalid regex"));
        assert!(bad(
            json!({"groups": [{"rules": [{"field": "model", "operator": "gt", "value": "x"}]}]})
        )
        .starts_with("filters.groups[0].rules[0].value"));
        assert!(bad(
            json!({"groups": [{}, {"rules": [{"field": "model", "operator": "equals"}]}]})
        )
        .starts_with("filters.groups[1].rules[0].value"));
    }
}
