//! The per-path part of the report (`--path`): what each client API onto each provider wire
//! adds over its own direct baseline, and how that compares with chat → OpenAI in the same
//! run, with the budgets of the dialect and inbound-API issues checked against it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::api_path::{ApiPath, ClientApi, Wire};
use crate::hist::{Added, Summary};
use crate::report::{us, TargetCheck};

/// Translating chat onto Anthropic's wire may add this much over the OpenAI pass-through, at
/// c=1, p50 and p99.
pub const DIALECT_BUDGET_US: f64 = 30.0;
/// Bridging the Responses API onto chat may add this much at p50 over the pass-through.
pub const BRIDGE_BUDGET_US: f64 = 50.0;
/// Buffering holds an event until the next one (5 ms apart in the stream); translation costs
/// microseconds. Within this of chat → OpenAI is "no added buffering". Judged at p50: a hop
/// that holds events back moves every stream, while the p99 of a per-stream maximum is the
/// few streams a scheduling stall hit on a shared 2-core box.
pub const BUFFERING_TOLERANCE_US: f64 = 1000.0;

/// One path at one concurrency.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PathLatency {
    pub path: String,
    /// The direct baseline: the request the gateway sends upstream, straight to the mock.
    pub direct: Summary,
    pub gateway: Summary,
    pub added: Added,
    /// `added` minus chat → OpenAI's `added`, same run.
    pub vs_reference: Added,
    /// The path's gateway's CPU time per request (each path has a gateway of its own).
    pub gateway_cpu_us: f64,
    pub errors: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PathsLatency {
    /// c=1, in the latency scenario's interleaved rounds.
    pub c1: Vec<PathLatency>,
    /// Closed loop at `concurrency`, the paths alternated in rounds.
    pub concurrency: usize,
    pub seconds_per_target: f64,
    pub loaded: Vec<PathLatency>,
}

/// One path in the streaming scenario's alternating rounds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PathStreaming {
    pub path: String,
    pub direct_streams: u64,
    pub gateway_streams: u64,
    pub ttfc_direct: Summary,
    pub ttfc_gateway: Summary,
    pub added_ttfc: Added,
    pub vs_reference_ttfc: Added,
    /// Per stream, the longest silence between frames that carry content.
    pub max_gap_direct: Summary,
    pub max_gap_gateway: Summary,
    pub added_max_gap: Added,
    pub vs_reference_max_gap: Added,
    /// Content events per frame that carries content: above 1, a hop held deltas back.
    pub content_per_frame_direct: f64,
    pub content_per_frame_gateway: f64,
    pub errors: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PathsStreaming {
    pub paths: Vec<PathStreaming>,
}

fn path_of(name: &str) -> Option<ApiPath> {
    use clap::ValueEnum as _;
    ApiPath::from_str(name, false).ok()
}

fn diff(a: &Added) -> String {
    format!("{}{}", if a.p50_us >= 0.0 { "+" } else { "" }, us(a.p50_us))
}

fn signed(v: f64) -> String {
    format!("{}{}", if v >= 0.0 { "+" } else { "" }, us(v))
}

impl PathsLatency {
    pub fn to_markdown(&self, md: &mut String, requests_per_target: u64) {
        let _ = writeln!(
            md,
            "### Paths, c=1 ({requests_per_target} requests per target, in the same interleaved rounds)\n\n\
             Each path's direct baseline is the request the gateway sends upstream, sent straight to the mock \
             in that wire's own shape; \"vs {}\" is the path's added latency minus {}'s.\n",
            ApiPath::REFERENCE.name(),
            ApiPath::REFERENCE.name()
        );
        table(md, &self.c1);
        let _ = writeln!(
            md,
            "### Paths, closed loop at c={} ({:.1} s per target, alternated)\n",
            self.concurrency, self.seconds_per_target
        );
        table(md, &self.loaded);
    }
}

fn table(md: &mut String, rows: &[PathLatency]) {
    let _ = writeln!(
        md,
        "| path | direct p50 | gateway p50 | added p50 | added p99 | vs {r} p50 | vs {r} p99 | gateway CPU/req | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        r = ApiPath::REFERENCE.name()
    );
    for p in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | **{}** | **{}** | {} | {} | {} | {} |",
            p.path,
            us(p.direct.p50_us),
            us(p.gateway.p50_us),
            us(p.added.p50_us),
            us(p.added.p99_us),
            signed(p.vs_reference.p50_us),
            signed(p.vs_reference.p99_us),
            us(p.gateway_cpu_us),
            p.errors
        );
    }
    md.push('\n');
}

impl PathsStreaming {
    pub fn to_markdown(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Paths, in the same alternating rounds (direct: the mock in the provider's wire; the gap is between \
             frames that carry content, which is what compares across wires):\n\n\
             | path | streams direct / gateway | added first chunk p50 | added first chunk p99 | vs {r} p50 | \
             added largest content gap p50 | added largest content gap p99 | vs {r} p50 | content events/frame, direct / gateway | errors |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            r = ApiPath::REFERENCE.name()
        );
        for p in &self.paths {
            let _ = writeln!(
                md,
                "| {} | {} / {} | **{}** | {} | {} | {} | **{}** | {} | {:.2} / {:.2} | {} |",
                p.path,
                p.direct_streams,
                p.gateway_streams,
                us(p.added_ttfc.p50_us),
                us(p.added_ttfc.p99_us),
                diff(&p.vs_reference_ttfc),
                us(p.added_max_gap.p50_us),
                us(p.added_max_gap.p99_us),
                diff(&p.vs_reference_max_gap),
                p.content_per_frame_direct,
                p.content_per_frame_gateway,
                p.errors
            );
        }
        md.push('\n');
    }
}

/// The budgets the issues state for each path, on what the run measured; paths without a
/// stated budget are shown in the tables only.
pub fn checks(
    latency: Option<&PathsLatency>,
    streaming: Option<&PathsStreaming>,
) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for p in latency.map_or(&[][..], |l| &l.c1[..]) {
        let Some(path) = path_of(&p.path) else {
            continue;
        };
        let loaded = latency.and_then(|l| l.loaded.iter().find(|r| r.path == p.path));
        let v = &p.vs_reference;
        match (path.api(), path.wire()) {
            (ClientApi::Chat, Wire::Anthropic) => out.push(TargetCheck {
                target: format!(
                    "{}: added latency at c=1 over {}",
                    path.name(),
                    ApiPath::REFERENCE.name()
                ),
                threshold: format!("p50 and p99 ≤ +{DIALECT_BUDGET_US:.0} µs"),
                measured: format!("{} / {}", signed(v.p50_us), signed(v.p99_us)),
                met: Some(v.p50_us <= DIALECT_BUDGET_US && v.p99_us <= DIALECT_BUDGET_US),
            }),
            (ClientApi::Messages, Wire::Anthropic) => out.push(TargetCheck {
                target: format!(
                    "{}: pass-through adds no more than {}",
                    path.name(),
                    ApiPath::REFERENCE.name()
                ),
                threshold: "p50 ≤ +0 µs at c=1 and at c=32".into(),
                measured: match loaded {
                    Some(l) => format!("{} / {}", signed(v.p50_us), signed(l.vs_reference.p50_us)),
                    None => signed(v.p50_us),
                },
                met: Some(v.p50_us <= 0.0 && loaded.is_none_or(|l| l.vs_reference.p50_us <= 0.0)),
            }),
            (ClientApi::Responses, Wire::OpenAi) => out.push(TargetCheck {
                target: format!(
                    "{}: bridging over the pass-through ({})",
                    path.name(),
                    ApiPath::REFERENCE.name()
                ),
                threshold: format!("p50 ≤ +{BRIDGE_BUDGET_US:.0} µs at c=1 and at c=32"),
                measured: match loaded {
                    Some(l) => format!("{} / {}", signed(v.p50_us), signed(l.vs_reference.p50_us)),
                    None => signed(v.p50_us),
                },
                met: Some(
                    v.p50_us <= BRIDGE_BUDGET_US
                        && loaded.is_none_or(|l| l.vs_reference.p50_us <= BRIDGE_BUDGET_US),
                ),
            }),
            _ => {}
        }
    }
    for p in streaming.map_or(&[][..], |s| &s.paths[..]) {
        if path_of(&p.path) == Some(ApiPath::REFERENCE) {
            continue;
        }
        let coalesced = p.content_per_frame_gateway > p.content_per_frame_direct * 1.05 + 0.01;
        out.push(TargetCheck {
            target: format!("{}: no added buffering in a stream", p.path),
            threshold: format!(
                "content events/frame as direct; added first chunk and largest content gap (p50) within {} of {}'s",
                us(BUFFERING_TOLERANCE_US),
                ApiPath::REFERENCE.name()
            ),
            measured: format!(
                "{:.2} vs {:.2} events/frame; first chunk {}, largest gap {}",
                p.content_per_frame_gateway,
                p.content_per_frame_direct,
                signed(p.vs_reference_ttfc.p50_us),
                signed(p.vs_reference_max_gap.p50_us)
            ),
            met: Some(
                !coalesced
                    && p.vs_reference_ttfc.p50_us.abs() < BUFFERING_TOLERANCE_US
                    && p.vs_reference_max_gap.p50_us < BUFFERING_TOLERANCE_US,
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn added(p50: f64, p99: f64) -> Added {
        Added {
            p50_us: p50,
            p90_us: p50,
            p99_us: p99,
            p999_us: p99,
        }
    }

    fn row(path: ApiPath, vs: Added) -> PathLatency {
        PathLatency {
            path: path.name().into(),
            vs_reference: vs,
            ..PathLatency::default()
        }
    }

    fn verdict(checks: &[TargetCheck], prefix: &str) -> Option<bool> {
        checks
            .iter()
            .find(|c| c.target.starts_with(prefix))
            .unwrap_or_else(|| panic!("no check {prefix}: {checks:?}"))
            .met
    }

    #[test]
    fn each_path_is_judged_on_its_own_budget() {
        let latency = PathsLatency {
            c1: vec![
                row(ApiPath::ChatOpenai, added(0.0, 0.0)),
                row(ApiPath::ChatAnthropic, added(12.0, 31.0)),
                row(ApiPath::MessagesAnthropic, added(-1.0, 5.0)),
                row(ApiPath::ResponsesOpenai, added(40.0, 90.0)),
                row(ApiPath::MessagesOpenai, added(400.0, 900.0)),
            ],
            concurrency: 32,
            seconds_per_target: 1.0,
            loaded: vec![
                row(ApiPath::MessagesAnthropic, added(3.0, 0.0)),
                row(ApiPath::ResponsesOpenai, added(45.0, 0.0)),
            ],
        };
        let checks = checks(Some(&latency), None);
        // The p99 is over the dialect's budget by 1 µs.
        assert_eq!(verdict(&checks, "chat-anthropic"), Some(false));
        // Below chat at c=1, above it at c=32.
        assert_eq!(verdict(&checks, "messages-anthropic"), Some(false));
        assert_eq!(verdict(&checks, "responses-openai"), Some(true));
        // No budget stated: no check, and the reference judges nothing.
        assert_eq!(checks.len(), 3);
    }

    #[test]
    fn buffering_is_judged_against_the_reference_stream() {
        let stream = |path: ApiPath, ttfc: f64, gap: f64, per_frame: f64| PathStreaming {
            path: path.name().into(),
            vs_reference_ttfc: added(ttfc, ttfc),
            vs_reference_max_gap: added(gap, gap),
            content_per_frame_direct: 1.0,
            content_per_frame_gateway: per_frame,
            ..PathStreaming::default()
        };
        let s = PathsStreaming {
            paths: vec![
                stream(ApiPath::ChatOpenai, 0.0, 0.0, 1.0),
                stream(ApiPath::ChatAnthropic, 20.0, 300.0, 1.0),
                stream(ApiPath::ResponsesOpenai, 5_000.0, 0.0, 1.0),
                stream(ApiPath::MessagesAnthropic, 0.0, 0.0, 2.0),
            ],
        };
        let checks = checks(None, Some(&s));
        assert_eq!(checks.len(), 3);
        assert_eq!(verdict(&checks, "chat-anthropic"), Some(true));
        // A first chunk held until the next event.
        assert_eq!(verdict(&checks, "responses-openai"), Some(false));
        // Two deltas in one frame.
        assert_eq!(verdict(&checks, "messages-anthropic"), Some(false));
    }

    #[test]
    fn tables_have_a_row_per_path_and_as_many_cells_as_headers() {
        let mut md = String::new();
        PathsLatency {
            c1: vec![
                row(ApiPath::ChatOpenai, added(0.0, 0.0)),
                row(ApiPath::ChatAnthropic, added(8.0, 9.0)),
            ],
            concurrency: 32,
            seconds_per_target: 2.0,
            loaded: vec![row(ApiPath::ChatOpenai, added(0.0, 0.0))],
        }
        .to_markdown(&mut md, 100);
        PathsStreaming {
            paths: vec![PathStreaming {
                path: "chat-anthropic".into(),
                ..PathStreaming::default()
            }],
        }
        .to_markdown(&mut md);
        assert!(md.contains("| chat-anthropic |"), "{md}");
        assert!(md.contains("| +8.0 µs | +9.0 µs |"), "{md}");
        assert!(md.contains("closed loop at c=32"), "{md}");
        for table in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
            assert!(
                cells.windows(2).all(|w| w[0] == w[1]),
                "ragged table:\n{table}"
            );
        }
    }
}
