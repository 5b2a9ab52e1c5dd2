//! Which table entry a model name means.
//!
//! Providers answer with names the table may not list as such: dated snapshots
//! (`gpt-4o-mini-2024-07-18`, `claude-sonnet-4-5-20250929`), `provider/model` forms
//! (`openrouter/openai/gpt-4o`), and Azure deployments whose response names the real model.
//! A name is tried as given first, so a snapshot the table lists keeps its own price.

use crate::record::GenerationRecord;

/// The names to price a record by, most specific first: the provider's response model wins
/// over the model sent upstream unless the latter extends it (`gpt-4o-2024-08-06` asked,
/// `gpt-4o` answered). Either may be missing; both are tried.
pub fn model_names(record: &GenerationRecord) -> [Option<&str>; 2] {
    let sent = record
        .route
        .as_ref()
        .map(|r| r.model.as_str())
        .filter(|m| !m.is_empty())
        .or(Some(record.request.model.as_str()).filter(|m| !m.is_empty()));
    let answered = record
        .output
        .response_model
        .as_deref()
        .filter(|m| !m.is_empty());
    match (answered, sent) {
        (Some(a), Some(s)) if a == s => [Some(a), None],
        (Some(a), Some(s)) if s.len() > a.len() && s.starts_with(a) => [Some(s), Some(a)],
        (a, s) => [a.or(s), a.and(s)],
    }
}

/// The first entry `get` finds for `name` or one of its normal forms: the name itself, then
/// with each leading `provider/` removed, each of those also without a date suffix. With a
/// `kind` (the provider's kind), `kind/NAME` is tried before each bare form, so a provider
/// that prices a model its own way (`azure/gpt-4o`) gets its own price.
pub fn find<'t, T>(
    name: &str,
    kind: Option<&str>,
    get: impl Fn(&str) -> Option<&'t T>,
) -> Option<&'t T> {
    let kind = kind.filter(|k| !k.is_empty());
    let try_one = |n: &str| {
        if let Some(k) = kind {
            // Only when the name does not already carry that prefix.
            if !n.starts_with(k) || n.as_bytes().get(k.len()) != Some(&b'/') {
                if let Some(hit) = get(&format!("{k}/{n}")) {
                    return Some(hit);
                }
            }
        }
        get(n)
    };
    let mut n = name;
    loop {
        if let Some(hit) = try_one(n) {
            return Some(hit);
        }
        if let Some(hit) = strip_date(n).and_then(try_one) {
            return Some(hit);
        }
        match n.split_once('/') {
            Some((_, rest)) if !rest.is_empty() => n = rest,
            _ => return None,
        }
    }
}

/// `NAME-YYYY-MM-DD`, `NAME-YYYYMMDD` or `NAME@YYYYMMDD` → `NAME`.
pub fn strip_date(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let cut = |date_len: usize, seps: &[u8]| -> Option<&str> {
        let at = b.len().checked_sub(date_len + 1)?;
        (at > 0 && seps.contains(&b[at])).then(|| &name[..at])
    };
    if b.len() > 11 {
        let d = &b[b.len() - 10..];
        let dashed = digits(&d[..4])
            && d[4] == b'-'
            && digits(&d[5..7])
            && d[7] == b'-'
            && digits(&d[8..])
            && d[..2] == *b"20";
        if dashed {
            if let Some(base) = cut(10, b"-") {
                return Some(base);
            }
        }
    }
    if b.len() > 9 {
        let d = &b[b.len() - 8..];
        if digits(d) && d[..2] == *b"20" {
            return cut(8, b"-@");
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::RouteInfo;
    use std::collections::HashMap;

    #[test]
    fn dates() {
        assert_eq!(strip_date("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
        assert_eq!(
            strip_date("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            strip_date("claude-3-5-sonnet@20241022"),
            Some("claude-3-5-sonnet")
        );
        for name in [
            "gpt-4o-mini",
            "gpt-4-0613",
            "2024-07-18",
            "-20250929",
            "m-12345678",
            "",
        ] {
            assert_eq!(strip_date(name), None, "{name}");
        }
    }

    #[test]
    fn find_prefers_the_listed_name_then_provider_then_forms() {
        let table: HashMap<&str, u32> = [
            ("gpt-4o-mini", 1),
            ("gpt-4o-mini-2024-07-18", 2),
            ("azure/gpt-4o", 3),
            ("gpt-4o", 4),
        ]
        .into_iter()
        .collect();
        let get = |n: &str| table.get(n);
        let f = |name: &str, kind: Option<&str>| find(name, kind, get).copied();
        assert_eq!(
            f("gpt-4o-mini-2024-07-18", None),
            Some(2),
            "listed snapshot"
        );
        assert_eq!(
            f("gpt-4o-mini-2099-01-01", None),
            Some(1),
            "unlisted snapshot"
        );
        assert_eq!(f("openai/gpt-4o-mini", None), Some(1));
        assert_eq!(f("openrouter/openai/gpt-4o-2024-08-06", None), Some(4));
        assert_eq!(
            f("gpt-4o", Some("azure")),
            Some(3),
            "the provider's own price"
        );
        assert_eq!(f("azure/gpt-4o", Some("azure")), Some(3));
        assert_eq!(f("gpt-4o", Some("openai")), Some(4));
        assert_eq!(f("gpt-4o-2024-08-06", Some("azure")), Some(3));
        assert_eq!(f("mystery", Some("openai")), None);
        assert_eq!(f("a/", None), None);
    }

    #[test]
    fn the_response_model_wins_when_more_specific() {
        let mut r = GenerationRecord::default();
        r.request.model = "up/gpt-4o-mini".into();
        r.route = Some(RouteInfo {
            model: "gpt-4o-mini".into(),
            ..Default::default()
        });
        assert_eq!(model_names(&r), [Some("gpt-4o-mini"), None]);
        r.output.response_model = Some("gpt-4o-mini-2024-07-18".into());
        assert_eq!(
            model_names(&r),
            [Some("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini")]
        );
        r.output.response_model = Some("gpt-4o-mini".into());
        assert_eq!(model_names(&r), [Some("gpt-4o-mini"), None]);
        // An Azure deployment: the answer names the model, the route the deployment.
        r.route.as_mut().unwrap().model = "prod-chat".into();
        r.output.response_model = Some("gpt-4o-2024-08-06".into());
        assert_eq!(
            model_names(&r),
            [Some("gpt-4o-2024-08-06"), Some("prod-chat")]
        );
        // More specific asked than answered: the asked name first.
        r.route.as_mut().unwrap().model = "gpt-4o-2024-08-06".into();
        r.output.response_model = Some("gpt-4o".into());
        assert_eq!(model_names(&r), [Some("gpt-4o-2024-08-06"), Some("gpt-4o")]);
        r.route = None;
        r.output.response_model = None;
        assert_eq!(model_names(&r), [Some("up/gpt-4o-mini"), None]);
    }
}
