//! Golden costs, computed by hand from the shipped table's rates (USD per million tokens),
//! the table against its source, and where cost attributes go on the span tree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use gatecast_telemetry::cost::{
    Overrides, PriceOverride, PriceTable, Priced, Pricer, ProviderPricing, TierOverride,
};
use gatecast_telemetry::filter::CompiledFilters;
use gatecast_telemetry::flavor::apply_sentry_flavor;
use gatecast_telemetry::model::{AttrValue, SpanModel};
use gatecast_telemetry::privacy::apply_privacy;
use gatecast_telemetry::record::{Attempt, Cost, ErrorInfo, ErrorKind, Status, Usage};
use gatecast_telemetry::spans::{build_spans, SpanOptions};
use gatecast_telemetry::GenerationRecord;
use serde_json::json;

/// A record served by `kind` provider `provider` for `model`, with `usage`.
fn record(provider: &str, kind: &str, model: &str, usage: Usage) -> GenerationRecord {
    let mut r = base();
    let route = r.route.as_mut().unwrap();
    route.provider = provider.into();
    route.provider_kind = kind.into();
    route.model = model.into();
    route.route = format!("{provider}/{model}");
    r.request.model = route.route.clone();
    r.output.response_model = Some(model.into());
    r.usage = Some(usage);
    r
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Default::default()
    }
}

/// Dollars from token counts times per-million rates, written out in each test.
fn usd(token_rate_products: f64) -> f64 {
    token_rate_products / 1e6
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-9)
}

#[track_caller]
fn assert_cost(pricer: &Pricer, r: &GenerationRecord, input_usd: f64, output_usd: f64) {
    let Priced::Cost(c) = pricer.price(r) else {
        panic!("not priced: {:?}", pricer.price(r));
    };
    assert!(
        close(c.input_usd, input_usd),
        "input {} != {input_usd}",
        c.input_usd
    );
    assert!(
        close(c.output_usd, output_usd),
        "output {} != {output_usd}",
        c.output_usd
    );
    assert!(
        close(c.total_usd, input_usd + output_usd),
        "total {}",
        c.total_usd
    );
}

#[test]
fn openai_cached_and_reasoning_tokens_at_their_own_rates() {
    let p = Pricer::shipped();
    // o3-mini: input 1.1, output 4.4, cache read 0.55. OpenAI counts the cached tokens inside
    // prompt_tokens, so 2000 input are 500 uncached and 1500 cached; the 500 reasoning
    // tokens are inside the 800 output, at the output rate (no reasoning rate listed).
    let mut u = usage(2000, 800);
    u.cache_read_input_tokens = Some(1500);
    u.reasoning_output_tokens = Some(500);
    let r = record("up", "openai", "o3-mini", u);
    assert_cost(&p, &r, usd(500.0 * 1.1 + 1500.0 * 0.55), usd(800.0 * 4.4));

    // A reasoning rate of its own: dashscope/qwen-turbo, output 0.2, reasoning 0.5.
    let mut u = usage(1000, 100);
    u.reasoning_output_tokens = Some(60);
    let r = record("qwen", "dashscope", "qwen-turbo", u);
    assert_cost(&p, &r, usd(1000.0 * 0.05), usd(40.0 * 0.2 + 60.0 * 0.5));
}

#[test]
fn anthropic_cache_read_and_creation_each_once() {
    let p = Pricer::shipped();
    // claude-sonnet-4-5: input 3, output 15, cache read 0.3, cache write 3.75. Anthropic
    // reported input_tokens 100 beside 2000 read and 1000 written; the gateway's record
    // holds the total, 3100, with both as subsets.
    let mut u = usage(3100, 200);
    u.cache_read_input_tokens = Some(2000);
    u.cache_creation_input_tokens = Some(1000);
    let r = record("claude", "anthropic", "claude-sonnet-4-5-20250929", u);
    assert_cost(
        &p,
        &r,
        usd(100.0 * 3.0 + 2000.0 * 0.3 + 1000.0 * 3.75),
        usd(200.0 * 15.0),
    );
    // No token counted twice: the span's input total is the record's, once.
    let spans = build_spans(&priced(&p, r), &SpanOptions::default());
    let g = generation(&spans);
    assert_eq!(
        g.attr("gen_ai.usage.input_tokens"),
        Some(&AttrValue::Int(3100))
    );
    assert_eq!(
        g.attr("gen_ai.usage.cache_read.input_tokens"),
        Some(&AttrValue::Int(2000))
    );
    assert_eq!(
        g.attr("gen_ai.usage.cache_creation.input_tokens"),
        Some(&AttrValue::Int(1000))
    );
}

#[test]
fn a_prompt_above_the_threshold_is_priced_at_the_tier() {
    let p = Pricer::shipped();
    // gemini-2.5-pro: 1.25 / 10 / cache read 0.125; above 200k tokens 2.5 / 15 / 0.25.
    let mut u = usage(250_000, 1000);
    u.cache_read_input_tokens = Some(50_000);
    let r = record("gem", "gemini", "gemini-2.5-pro", u);
    assert_cost(
        &p,
        &r,
        usd(200_000.0 * 2.5 + 50_000.0 * 0.25),
        usd(1000.0 * 15.0),
    );
    // At the threshold, not above it: the base rates.
    let r = record("gem", "gemini", "gemini-2.5-pro", usage(200_000, 1000));
    assert_cost(&p, &r, usd(200_000.0 * 1.25), usd(1000.0 * 10.0));
}

#[test]
fn dated_snapshots_use_their_own_entry_else_the_model() {
    let p = Pricer::shipped();
    // gpt-4o-mini and its listed snapshot 2024-07-18: 0.15 / 0.6.
    let mut r = record("up", "openai", "gpt-4o-mini", usage(1000, 100));
    r.output.response_model = Some("gpt-4o-mini-2024-07-18".into());
    assert_cost(&p, &r, usd(1000.0 * 0.15), usd(100.0 * 0.6));
    // A snapshot the table does not list falls back to the undated model.
    r.output.response_model = Some("gpt-4o-mini-2031-01-01".into());
    assert_cost(&p, &r, usd(1000.0 * 0.15), usd(100.0 * 0.6));
    // `provider/model` forms.
    let r = record("up", "openai", "openai/gpt-4o-mini", usage(1000, 100));
    assert_cost(&p, &r, usd(1000.0 * 0.15), usd(100.0 * 0.6));
    // A provider's own entry: gpt-4-turbo is 10 / 30, azure/gpt-4-turbo 11 / 33; an Azure
    // deployment is priced by the model its answer names.
    let mut r = record("az", "azure", "prod-turbo", usage(1000, 100));
    r.output.response_model = Some("gpt-4-turbo-2024-04-09".into());
    assert_cost(&p, &r, usd(1000.0 * 11.0), usd(100.0 * 33.0));
    r.route.as_mut().unwrap().provider_kind = "openai".into();
    assert_cost(&p, &r, usd(1000.0 * 10.0), usd(100.0 * 30.0));
}

fn overrides(global: &[(&str, PriceOverride)], providers: &[(&str, ProviderPricing)]) -> Overrides {
    Overrides {
        global: global
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        providers: providers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

fn flat(input: f64, output: f64) -> PriceOverride {
    PriceOverride {
        input_per_mtok: input,
        output_per_mtok: output,
        ..Default::default()
    }
}

#[test]
fn an_override_replaces_the_table_entry() {
    let mut cheap = flat(1.0, 2.0);
    cheap.cache_read_per_mtok = Some(0.5);
    let p = Pricer::new(
        None,
        &overrides(
            &[("gpt-4o-mini", cheap), ("house-model", flat(7.0, 9.0))],
            &[],
        ),
    )
    .unwrap();
    let mut u = usage(1000, 100);
    u.cache_read_input_tokens = Some(400);
    let mut r = record("up", "openai", "gpt-4o-mini", u);
    // The response names a snapshot: the override of the model still applies.
    r.output.response_model = Some("gpt-4o-mini-2024-07-18".into());
    assert_cost(&p, &r, usd(600.0 * 1.0 + 400.0 * 0.5), usd(100.0 * 2.0));
    let r = record("up", "openai", "house-model", usage(10, 10));
    assert_cost(&p, &r, usd(10.0 * 7.0), usd(10.0 * 9.0));
    // Tiers in an override.
    let mut tiered = flat(1.0, 2.0);
    tiered.tiers = vec![TierOverride {
        above_tokens: 100,
        input_per_mtok: Some(3.0),
        ..Default::default()
    }];
    let p = Pricer::new(None, &overrides(&[("house-model", tiered)], &[])).unwrap();
    let r = record("up", "openai", "house-model", usage(101, 10));
    assert_cost(&p, &r, usd(101.0 * 3.0), usd(10.0 * 2.0));
}

#[test]
fn a_provider_factor_scales_table_and_global_prices_not_its_own() {
    let mut own = BTreeMap::new();
    own.insert("house-model".to_owned(), flat(4.0, 8.0));
    let discounted = ProviderPricing {
        prices: own,
        price_factor: 0.8,
    };
    let p = Pricer::new(
        None,
        &overrides(&[("global-model", flat(10.0, 20.0))], &[("up", discounted)]),
    )
    .unwrap();
    // gpt-4o-mini from the table (0.15 / 0.6), times 0.8.
    let r = record("up", "openai", "gpt-4o-mini", usage(1000, 100));
    assert_cost(&p, &r, usd(1000.0 * 0.15) * 0.8, usd(100.0 * 0.6) * 0.8);
    let r = record("up", "openai", "global-model", usage(1000, 100));
    assert_cost(&p, &r, usd(1000.0 * 10.0) * 0.8, usd(100.0 * 20.0) * 0.8);
    // The provider's own price is what it charges: no factor.
    let r = record("up", "openai", "house-model", usage(1000, 100));
    assert_cost(&p, &r, usd(1000.0 * 4.0), usd(100.0 * 8.0));
    // Another provider: no factor, and no access to up's own prices.
    let r = record("other", "openai", "gpt-4o-mini", usage(1000, 100));
    assert_cost(&p, &r, usd(1000.0 * 0.15), usd(100.0 * 0.6));
    let r = record("other", "openai", "house-model", usage(1000, 100));
    assert_eq!(p.price(&r), Priced::UnknownModel);
}

fn priced(p: &Pricer, mut r: GenerationRecord) -> GenerationRecord {
    p.apply(&mut r);
    r
}

fn cost_keys(span: &SpanModel) -> Vec<&str> {
    span.attributes
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("gen_ai.cost") || k.starts_with("gatecast.cost"))
        .collect()
}

const COST_KEYS: [&str; 4] = [
    "gen_ai.cost.input_tokens",
    "gen_ai.cost.output_tokens",
    "gen_ai.cost.total_tokens",
    "gen_ai.cost_usd",
];

#[test]
fn an_unknown_model_has_no_cost_and_says_so() {
    let p = Pricer::shipped();
    let r = priced(&p, record("up", "openai", "no-such-model-x", usage(10, 5)));
    assert_eq!(r.cost, None);
    assert!(r.cost_unknown_model);
    let spans = build_spans(&r, &SpanOptions::default());
    let g = generation(&spans);
    assert_eq!(cost_keys(g), vec!["gatecast.cost.unknown_model"]);
    assert_eq!(
        g.attr("gatecast.cost.unknown_model"),
        Some(&AttrValue::Bool(true))
    );
    // Nothing used: nothing to price, and not an unknown model either.
    let mut r = record("up", "openai", "no-such-model-x", usage(0, 0));
    r.usage = None;
    let r = priced(&p, r);
    assert_eq!((r.cost.clone(), r.cost_unknown_model), (None, false));
    assert!(cost_keys(generation(&build_spans(&r, &SpanOptions::default()))).is_empty());
}

#[test]
fn a_stream_broken_midway_is_priced_on_what_it_used() {
    let p = Pricer::shipped();
    let mut r = record("up", "openai", "gpt-4o-mini", usage(1000, 40));
    r.request.stream = true;
    r.status = Status::Error(ErrorInfo {
        kind: ErrorKind::StreamAborted,
        http_status: Some(200),
        message: "the provider broke the stream".into(),
    });
    assert_cost(&p, &r, usd(1000.0 * 0.15), usd(40.0 * 0.6));
    let r = priced(&p, r);
    let spans = build_spans(&r, &SpanOptions::default());
    let g = generation(&spans);
    assert_eq!(cost_keys(g), COST_KEYS.to_vec());
    assert_eq!(g.attr("error.type"), Some(&s("stream_aborted")));
    let total = usd(1000.0 * 0.15 + 40.0 * 0.6);
    match g.attr("gen_ai.cost_usd") {
        Some(AttrValue::Double(v)) => assert!(close(*v, total), "{v}"),
        other => panic!("{other:?}"),
    }
}

/// Every tree shape: only the generation span carries usage or cost, so a backend summing a
/// trace's spans counts each token and cent once.
#[test]
fn only_the_generation_span_carries_usage_and_cost() {
    let p = Pricer::shipped();
    let shapes = [
        json!({}),
        json!({"trace_name": "agent"}),
        json!({"span_name": "step"}),
        json!({"trace_name": "agent", "span_name": "step", "generation_name": "gen"}),
        json!({"trace_name": "agent", "generation_name": "gen"}),
    ];
    for trace in shapes {
        for parent in [
            None,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ] {
            for tries in [1, 3] {
                let mut r = with_trace(base(), trace.clone(), parent);
                r.attempts = (0..tries)
                    .map(|i| Attempt {
                        provider: "up".into(),
                        model: "gpt-4o-mini".into(),
                        http_status: Some(if i + 1 == tries { 200 } else { 503 }),
                        start: ms(2 + 30 * i),
                        end: ms(30 + 30 * i),
                        ..Default::default()
                    })
                    .collect();
                let r = priced(&p, r);
                assert!(r.cost.is_some());
                let spans = build_spans(&r, &SpanOptions::default());
                let g = generation(&spans);
                assert_eq!(cost_keys(g), COST_KEYS.to_vec(), "{trace} {parent:?}");
                let mut others = 0;
                for sp in spans.iter().filter(|sp| sp.span_id != g.span_id) {
                    others += 1;
                    for (k, _) in &sp.attributes {
                        assert!(
                            !k.starts_with("gen_ai.usage.") && !k.contains("cost"),
                            "{k} on {} ({trace}, {tries} tries)",
                            sp.name
                        );
                    }
                }
                let want = build_spans(&r, &SpanOptions::default()).len() - 1;
                assert_eq!(others, want);
            }
        }
    }
}

#[test]
fn a_private_destination_keeps_every_cost_attribute() {
    let p = Pricer::shipped();
    let r = priced(
        &p,
        with_trace(
            base(),
            json!({"trace_name": "agent", "span_name": "step"}),
            None,
        ),
    );
    let mut open = build_spans(&r, &SpanOptions::default());
    let mut private = open.clone();
    apply_privacy(&mut private);
    let cost_attrs = |spans: &[SpanModel]| -> Vec<(String, AttrValue)> {
        generation(spans)
            .attributes
            .iter()
            .filter(|(k, _)| k.contains("cost") || k.starts_with("gen_ai.usage."))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    assert_eq!(cost_keys(generation(&private)), COST_KEYS.to_vec());
    assert_eq!(cost_attrs(&private), cost_attrs(&open));
    // And through the Sentry flavor, which private Sentry destinations apply after privacy.
    apply_sentry_flavor(&mut private);
    apply_sentry_flavor(&mut open);
    assert_eq!(cost_keys(generation(&private)), COST_KEYS.to_vec());
    // The unknown-model flag is kept too.
    let mut unknown = priced(&p, record("up", "openai", "no-such-model-x", usage(1, 1)));
    unknown.privacy = true;
    let mut spans = build_spans(&unknown, &SpanOptions::default());
    apply_privacy(&mut spans);
    assert_eq!(
        generation(&spans).attr("gatecast.cost.unknown_model"),
        Some(&AttrValue::Bool(true))
    );
}

#[test]
fn the_cost_filter_compares_the_total() {
    let mut r = base();
    r.cost = Some(Cost {
        input_usd: 0.002,
        output_usd: 0.001,
        total_usd: 0.003,
    });
    let rule = |op: &str, v: serde_json::Value| {
        CompiledFilters::compile(
            &serde_json::from_value(
                json!({"groups": [{"rules": [{"field": "cost", "operator": op, "value": v}]}]}),
            )
            .unwrap(),
        )
        .unwrap()
    };
    assert!(rule("gt", json!(0.001)).matches(&r));
    assert!(!rule("gt", json!(0.01)).matches(&r));
    assert!(rule("lt", json!(0.01)).matches(&r));
    assert!(rule("gte", json!(0.003)).matches(&r));
    assert!(!rule("lte", json!(0.0029)).matches(&r));
    let exists = CompiledFilters::compile(
        &serde_json::from_value(
            json!({"groups": [{"rules": [{"field": "cost", "operator": "exists"}]}]}),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(exists.matches(&r));
    r.cost = None;
    assert!(!exists.matches(&r));
    assert!(
        !rule("lt", json!(1)).matches(&r),
        "no cost is not a cost below 1"
    );
}

/// Input, output, cache read, cache write (USD per token) and provider, as the source has them.
type SourceRates = (f64, f64, Option<f64>, Option<f64>, &'static str);

/// The committed table against figures read from its source file
/// (litellm/model_prices_and_context_window_backup.json of litellm 1.110.2) when it was
/// generated, in the source's unit, USD per token.
#[test]
fn the_shipped_table_matches_its_source() {
    let t = PriceTable::shipped();
    assert!(t.len() > 3000, "{} models", t.len());
    assert!(t.source.contains("litellm"), "{}", t.source);
    assert!(!t.version.is_empty() && !t.generated.is_empty());
    for (name, m) in t.models() {
        let mode = m.mode.as_deref().unwrap_or("");
        assert!(
            ["chat", "completion", "embedding"].contains(&mode),
            "{name}: {mode}"
        );
        assert!(m.provider.is_some() && m.since.is_some(), "{name}");
    }
    let per_token = |name: &str| {
        let m = t
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the table"));
        let f = |v: f64| v / 1e6;
        (
            f(m.rates.input),
            f(m.rates.output),
            m.rates.cache_read.map(f),
            m.rates.cache_write.map(f),
            m.provider.clone().unwrap(),
        )
    };
    let samples: [(&str, SourceRates); 6] = [
        (
            "gpt-4o-mini",
            (1.5e-07, 6e-07, Some(7.5e-08), None, "openai"),
        ),
        (
            "gpt-4o-2024-08-06",
            (2.5e-06, 1e-05, Some(1.25e-06), None, "openai"),
        ),
        (
            "o4-mini",
            (1.1e-06, 4.4e-06, Some(2.75e-07), None, "openai"),
        ),
        (
            "claude-sonnet-4-5",
            (3e-06, 1.5e-05, Some(3e-07), Some(3.75e-06), "anthropic"),
        ),
        (
            "azure/gpt-4o",
            (2.5e-06, 1e-05, Some(1.25e-06), None, "azure"),
        ),
        ("text-embedding-3-small", (2e-08, 0.0, None, None, "openai")),
    ];
    for (name, (input, output, read, write, provider)) in samples {
        let (i, o, r, w, p) = per_token(name);
        assert!(close(i, input) && close(o, output), "{name}: {i} {o}");
        assert_eq!(r.is_some(), read.is_some(), "{name}");
        assert!(r.zip(read).is_none_or(|(a, b)| close(a, b)), "{name}");
        assert_eq!(w.is_some(), write.is_some(), "{name}");
        assert!(w.zip(write).is_none_or(|(a, b)| close(a, b)), "{name}");
        assert_eq!(p, provider);
    }
    // Tiers: gemini-2.5-pro's *_above_200k_tokens keys.
    let g = t.get("gemini-2.5-pro").unwrap();
    assert_eq!(g.tiers.len(), 1);
    assert_eq!(g.tiers[0].above, 200_000);
    assert!(close(g.tiers[0].input.unwrap() / 1e6, 2.5e-06));
    assert!(close(g.tiers[0].output.unwrap() / 1e6, 1.5e-05));
    assert!(close(g.tiers[0].cache_read.unwrap() / 1e6, 2.5e-07));
    // A reasoning rate of its own: output_cost_per_reasoning_token of dashscope/qwen-turbo.
    let q = t.get("dashscope/qwen-turbo").unwrap();
    assert!(close(q.rates.reasoning.unwrap() / 1e6, 5e-07));
    // Equal to the output rate: left out, so it falls back to it.
    assert!(t.get("gpt-4o-mini").unwrap().rates.reasoning.is_none());
}
