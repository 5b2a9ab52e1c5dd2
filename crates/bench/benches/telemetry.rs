//! Telemetry CPU per request (DESIGN §8: ≤ 10 µs amortised): what the destination workers
//! spend turning one finished record into bytes for two destinations, one private.
//!
//! `cargo bench -p gatecast-bench --bench telemetry`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gatecast_bench::telemetry_work::{
    encode_batch, long_prompt, prepare, run_batch_three, sample_record, Pipeline,
};
use gatecast_telemetry::privacy::apply_privacy;
use gatecast_telemetry::spans::SpanOptions;

/// The allocator the `gatecast` binary runs with, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The workers' default `max_batch_spans`, reached at any real request rate.
const BATCH: usize = 512;

fn per_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry/per_request");
    for (batch, gzip) in [(BATCH, true), (BATCH, false), (1, true)] {
        let pipeline = Pipeline::new(batch, gzip);
        // Elements are records, so criterion's time per element is the per-request cost.
        g.throughput(Throughput::Elements(batch as u64));
        let name = format!("batch{batch}{}", if gzip { "_gzip" } else { "" });
        g.bench_function(name, |b| {
            b.iter(|| {
                #[allow(clippy::unwrap_used)]
                black_box(pipeline.run_batch().unwrap())
            })
        });
    }
    // A 4 KB user message (a pasted document): the content's escaping and rewriting dominate.
    let pipeline = Pipeline::with_prompt(BATCH, true, &long_prompt(4096));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch512_gzip_4k_prompt", |b| {
        b.iter(|| {
            #[allow(clippy::unwrap_used)]
            black_box(pipeline.run_batch().unwrap())
        })
    });
    // Broadcasting to three destinations: a private OTLP collector, a file with content, and
    // Sentry with content and its flavor.
    let pipeline = Pipeline::new(BATCH, true);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("three_destinations_batch512_gzip", |b| {
        b.iter(|| {
            #[allow(clippy::unwrap_used)]
            black_box(run_batch_three(&pipeline).unwrap())
        })
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let opts = SpanOptions::default();
    let record = sample_record(1);
    let mut g = c.benchmark_group("telemetry/stage");
    g.bench_function("record_clone", |b| b.iter(|| black_box(record.clone())));
    g.bench_function("build_spans", |b| {
        b.iter(|| black_box(prepare(black_box(&record), &opts)))
    });
    let spans = prepare(&record, &opts);
    g.bench_function("privacy", |b| {
        b.iter_batched(
            || spans.clone(),
            |mut s| {
                apply_privacy(&mut s);
                s
            },
            BatchSize::SmallInput,
        )
    });
    let pipeline = Pipeline::new(BATCH, true);
    let prepared: Vec<_> = pipeline
        .records()
        .iter()
        .map(|r| prepare(r, pipeline.options()))
        .collect();
    g.throughput(Throughput::Elements(BATCH as u64));
    for gzip in [false, true] {
        let name = if gzip {
            "encode_batch_gzip"
        } else {
            "encode_batch"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                #[allow(clippy::unwrap_used)]
                black_box(encode_batch(&prepared, pipeline.resource(), gzip).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_request, stages);
criterion_main!(benches);
