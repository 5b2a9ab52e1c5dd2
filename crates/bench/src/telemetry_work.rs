//! The telemetry CPU a request costs, done the way the destination workers do it: spans
//! built once per record and shared, then one body per destination and batch, written
//! straight from that destination's view of the spans (OTLP protobuf + gzip through privacy
//! for the private OTLP destination, OTLP/JSON with content for the file). Shared by the criterion bench and by the
//! quick in-binary figure in the report, so both measure the same thing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gatecast_telemetry::destinations::http::gzip;
use gatecast_telemetry::flavor::apply_sentry_flavor;
use gatecast_telemetry::model::SpanModel;
use gatecast_telemetry::otlp::{self, ResourceInfo, SpanView};
use gatecast_telemetry::record::{
    Attempt, Choice, Content, GenerationRecord, Output, RequestInfo, RouteInfo, Timings, Usage,
};
use gatecast_telemetry::spans::{build_spans, SpanOptions};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Serialize;

/// A chat exchange of the size the latency scenario sends: a system and a user message, a
/// one-sentence answer, usage, one attempt, a session and a user.
pub fn sample_record(seq: u64) -> GenerationRecord {
    sample_record_with_prompt(seq, "Say hello to the benchmark.")
}

/// A user message of about `bytes` bytes of prose with a few quotes and line breaks, the
/// shape of a pasted document or a retrieved context.
pub fn long_prompt(bytes: usize) -> String {
    const LINE: &str =
        "Summarise the \"quarterly report\" below in three sentences, citing the page.\n";
    LINE.repeat(bytes.div_ceil(LINE.len()))
}

/// [`sample_record`] with `prompt` as the user's message.
pub fn sample_record_with_prompt(seq: u64, prompt: &str) -> GenerationRecord {
    let ms = Duration::from_millis;
    let messages = format!(
        r#"[{{"role":"system","content":"You are a terse assistant."}},{{"role":"user","content":{}}}]"#,
        serde_json::Value::from(prompt)
    );
    GenerationRecord {
        operation: Default::default(),
        timings: Timings {
            accepted_unix_nanos: 1_700_000_000_000_000_000 + seq * 1_000_000,
            upstream_start: Some(Duration::from_micros(40)),
            first_chunk: None,
            end: ms(2),
            upstream_total: Duration::from_micros(1900),
        },
        route: Some(RouteInfo {
            provider: "up".into(),
            provider_kind: "openai".into(),
            model: "gpt-4o-mini".into(),
            route: "up/gpt-4o-mini".into(),
            server_address: Some("127.0.0.1".into()),
            server_port: Some(18080),
        }),
        request: RequestInfo {
            model: "up/gpt-4o-mini".into(),
            stream: false,
            max_tokens: Some(256),
            temperature: Some(0.2),
            messages: Some(Content {
                json: messages,
                truncated: false,
            }),
            ..RequestInfo::default()
        },
        output: Output {
            response_id: Some(format!("chatcmpl-{seq:016x}")),
            response_model: Some("gpt-4o-mini".into()),
            choices: vec![Choice {
                index: 0,
                role: Some("assistant".into()),
                text: "Mock reply to: Say hello to the benchmark.".into(),
                tool_calls: vec![],
                finish_reason: Some("stop".into()),
            }],
            truncated: false,
            embedding_dimensions: None,
        },
        usage: Some(Usage {
            input_tokens: 12,
            output_tokens: 7,
            cache_read_input_tokens: None,
            cache_creation_input_tokens: None,
            reasoning_output_tokens: None,
        }),
        attempts: vec![Attempt {
            provider: "up".into(),
            model: "gpt-4o-mini".into(),
            url: Some("http://127.0.0.1:18080/v1/chat/completions".into()),
            http_status: Some(200),
            error: None,
            start: Duration::from_micros(40),
            end: ms(2),
        }],
        context: gatecast_telemetry::record::TraceContext {
            trace_id: (u128::from(seq) + 1).to_be_bytes(),
            user: Some("user-42".into()),
            session_id: Some("session-7".into()),
            ..Default::default()
        },
        ..GenerationRecord::default()
    }
}

/// The per-record half of a worker's job: the spans, built once and shared by every
/// destination (no attribute limit or flavor changes them here).
pub fn prepare(record: &GenerationRecord, opts: &SpanOptions) -> Vec<SpanModel> {
    build_spans(record, opts)
}

/// Encoded sizes of one batch, so the optimiser cannot drop the work.
#[derive(Clone, Copy, Debug, Default)]
pub struct Encoded {
    pub protobuf: usize,
    pub gzip: usize,
    pub json: usize,
}

/// The views of a batch's shared spans one destination exports.
fn views(records: &[Vec<SpanModel>], private: bool) -> Vec<SpanView<'_>> {
    records
        .iter()
        .flatten()
        .map(|s| SpanView::new(s, private))
        .collect()
}

/// The per-batch half: one body per destination, protobuf + gzip through privacy for OTLP
/// and a JSON line with content for the file.
pub fn encode_batch(
    records: &[Vec<SpanModel>],
    resource: &Resource,
    gzip: bool,
) -> Result<Encoded> {
    let protobuf = otlp::protobuf_body(&views(records, true), resource);
    let gz = if gzip { gzipped(&protobuf)? } else { 0 };
    // The bytes the file destination writes, as its worker encodes them.
    let json = otlp::json_body(&views(records, false), resource).context("encoding OTLP/JSON")?;
    Ok(Encoded {
        protobuf: protobuf.len(),
        gzip: gz,
        json: json.len(),
    })
}

/// The gzipped size, by the function the OTLP/HTTP destination compresses with.
fn gzipped(body: &[u8]) -> Result<usize> {
    Ok(gzip(body).map_err(|e| anyhow::anyhow!(e.message))?.len())
}

/// Records as a busy gateway would hand them to its workers, and what they cost.
pub struct Pipeline {
    records: Vec<GenerationRecord>,
    opts: SpanOptions,
    resource: Resource,
    gzip: bool,
}

impl Pipeline {
    pub fn new(batch: usize, gzip: bool) -> Self {
        Self::with_records(batch, gzip, sample_record)
    }

    /// Every record's user message is `prompt`.
    pub fn with_prompt(batch: usize, gzip: bool, prompt: &str) -> Self {
        Self::with_records(batch, gzip, |seq| sample_record_with_prompt(seq, prompt))
    }

    fn with_records(batch: usize, gzip: bool, record: impl FnMut(u64) -> GenerationRecord) -> Self {
        Self {
            records: (0..batch.max(1) as u64).map(record).collect(),
            opts: SpanOptions::default(),
            resource: ResourceInfo::default().to_proto(),
            gzip,
        }
    }

    pub fn batch_len(&self) -> usize {
        self.records.len()
    }

    pub fn records(&self) -> &[GenerationRecord] {
        &self.records
    }

    pub fn options(&self) -> &SpanOptions {
        &self.opts
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// One whole batch, end to end. The record clone stands in for the hand-over from the
    /// proxy, which moves an owned record into the broadcaster.
    pub fn run_batch(&self) -> Result<Encoded> {
        encode_batch(&self.spans(), &self.resource, self.gzip)
    }

    /// Every record's shared spans, as the workers build them.
    fn spans(&self) -> Vec<Vec<SpanModel>> {
        self.records
            .iter()
            .map(|r| prepare(&r.clone(), &self.opts))
            .collect()
    }
}

/// What one batch costs at three destinations: the two of [`Pipeline::run_batch`] plus a
/// Sentry destination with content (a copy of the spans with the Sentry flavor, protobuf and
/// gzip). Returns the Sentry payload's gzipped size next to the other encodings.
pub fn run_batch_three(p: &Pipeline) -> Result<(Encoded, usize)> {
    let spans = p.spans();
    let encoded = encode_batch(&spans, &p.resource, p.gzip)?;
    let flavored: Vec<Vec<SpanModel>> = spans
        .iter()
        .map(|s| {
            let mut copy = s.clone();
            apply_sentry_flavor(&mut copy);
            copy
        })
        .collect();
    let protobuf = otlp::protobuf_body(&views(&flavored, false), &p.resource);
    Ok((encoded, gzipped(&protobuf)?))
}

/// The report's telemetry row: a quick timing loop over [`Pipeline`], not a substitute for
/// the criterion bench but measured the same way.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TelemetryCost {
    pub batch: usize,
    pub gzip: bool,
    /// CPU per request, amortised over the batch: record, spans, privacy, proto, encodings.
    pub per_request_us: f64,
    /// At a batch of one, what a request costs when traffic is too low to batch.
    pub per_request_unbatched_us: f64,
    pub spans_us: f64,
    pub protobuf_bytes_per_request: f64,
    pub json_bytes_per_request: f64,
}

pub fn measure(budget: Duration, batch: usize, gzip: bool) -> Result<TelemetryCost> {
    let big = Pipeline::new(batch, gzip);
    let one = Pipeline::new(1, gzip);
    // A warm-up pass so allocator and caches are in their steady state.
    big.run_batch()?;
    one.run_batch()?;

    let per_request = |p: &Pipeline, budget: Duration| -> Result<(f64, Encoded)> {
        let started = Instant::now();
        let mut n = 0u64;
        let mut last = Encoded::default();
        while started.elapsed() < budget || n == 0 {
            last = std::hint::black_box(p.run_batch()?);
            n += 1;
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / (n as f64 * p.batch_len() as f64);
        Ok((per, last))
    };
    let (per_request_us, encoded) = per_request(&big, budget.mul_f64(0.6))?;
    let (per_request_unbatched_us, _) = per_request(&one, budget.mul_f64(0.2))?;

    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget.mul_f64(0.2) || n == 0 {
        for r in big.records() {
            std::hint::black_box(prepare(r, big.options()));
            n += 1;
        }
    }
    let spans_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let b = big.batch_len() as f64;
    Ok(TelemetryCost {
        batch: big.batch_len(),
        gzip,
        per_request_us,
        per_request_unbatched_us,
        spans_us,
        protobuf_bytes_per_request: encoded.protobuf as f64 / b,
        json_bytes_per_request: encoded.json as f64 / b,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn privacy_strips_content_from_the_private_view_only() {
        let spans = prepare(&sample_record(1), &SpanOptions::default());
        let keys = |private: bool| -> Vec<String> {
            spans
                .iter()
                .flat_map(|s| {
                    SpanView::new(s, private)
                        .attributes()
                        .map(|(k, _)| k.to_owned())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let full = keys(false);
        let private = keys(true);
        assert!(full.iter().any(|k| k.contains("messages")), "{full:?}");
        assert!(
            !private.iter().any(|k| k.contains("messages")),
            "{private:?}"
        );
        assert!(private.len() < full.len());
    }

    #[test]
    fn a_long_prompt_reaches_the_content_attribute_whole() {
        let prompt = long_prompt(4096);
        assert!(prompt.len() >= 4096 && prompt.contains('"') && prompt.contains('\n'));
        let spans = prepare(
            &sample_record_with_prompt(1, &prompt),
            &SpanOptions::default(),
        );
        let input = spans
            .iter()
            .find_map(|s| s.attr("gen_ai.input.messages"))
            .and_then(|v| v.as_str())
            .expect("input messages");
        let parsed: serde_json::Value = serde_json::from_str(input).unwrap();
        assert_eq!(parsed[0]["parts"][0]["content"], prompt.as_str());
    }

    #[test]
    fn a_batch_encodes_every_record() {
        let one = Pipeline::new(1, true).run_batch().unwrap();
        let ten = Pipeline::new(10, true).run_batch().unwrap();
        assert!(one.protobuf > 0 && one.gzip > 0 && one.json > 0);
        assert!(ten.protobuf > 5 * one.protobuf);
        assert!(ten.json > 5 * one.json);
    }

    #[test]
    fn three_destinations_encode_a_sentry_payload_too() {
        let (two, sentry) = run_batch_three(&Pipeline::new(4, true)).unwrap();
        assert!(two.json > 0 && two.gzip > 0);
        assert!(sentry > 0);
    }

    #[test]
    fn measure_reports_positive_costs() {
        let c = measure(Duration::from_millis(50), 8, false).unwrap();
        assert!(c.per_request_us > 0.0 && c.spans_us > 0.0);
        assert_eq!(c.batch, 8);
    }
}
