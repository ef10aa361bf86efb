//! `make microbench`: the per-request core functions, natively (the filter runs them compiled to
//! wasm under V8, so absolute times differ; ratios and regressions carry over).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use microbench::{ANTHROPIC_STREAM, Scenario, Store, full_request, gateway, request_body, response};
use std::hint::black_box;
use tollgate::stream::Decoder;

fn request_translation(c: &mut Criterion) {
    let (gateway, store) = (gateway(), Store::default());
    let mut group = c.benchmark_group("request");
    for (name, scenario) in [
        ("openai_to_anthropic", Scenario::Translate),
        ("openai_passthrough", Scenario::Passthrough),
        ("openai_to_anthropic_100k", Scenario::Large),
    ] {
        let body = scenario.request_body();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| b.iter(|| request_body(&gateway, &store, black_box(&body))));
    }
}

fn response_translation(c: &mut Criterion) {
    let (gateway, store) = (gateway(), Store::default());
    let mut group = c.benchmark_group("response");
    for (name, scenario) in [("anthropic_to_openai", Scenario::Translate), ("openai_passthrough", Scenario::Passthrough)] {
        let body = scenario.request_body();
        group.bench_function(name, |b| {
            b.iter_batched(
                || request_body(&gateway, &store, &body).1,
                |mut exchange| response(&gateway, &mut exchange, scenario),
                BatchSize::SmallInput,
            )
        });
    }
}

fn streaming(c: &mut Criterion) {
    let (gateway, store) = (gateway(), Store::default());
    let body = Scenario::Stream.request_body();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(ANTHROPIC_STREAM.len() as u64));
    group.bench_function("sse_framing", |b| {
        b.iter(|| {
            let mut events = 0;
            let mut decoder = Decoder::sse(1 << 20);
            decoder.feed(black_box(ANTHROPIC_STREAM), |_| events += 1).expect("fits");
            events
        })
    });
    group.bench_function("anthropic_to_openai", |b| {
        b.iter_batched(
            || request_body(&gateway, &store, &body).1,
            |mut exchange| response(&gateway, &mut exchange, Scenario::Stream),
            BatchSize::SmallInput,
        )
    });
}

fn whole_request(c: &mut Criterion) {
    let (gateway, store) = (gateway(), Store::default());
    let mut group = c.benchmark_group("full_request");
    for scenario in Scenario::ALL {
        let body = scenario.request_body();
        group.bench_function(scenario.name(), |b| b.iter(|| full_request(&gateway, &store, scenario, black_box(&body))));
    }
}

criterion_group!(benches, request_translation, response_translation, streaming, whole_request);
criterion_main!(benches);
