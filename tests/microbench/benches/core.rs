//! `make microbench`: the per-request core functions, natively (the filter runs them compiled to
//! wasm under V8, so absolute times differ; ratios and regressions carry over).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use microbench::{ANTHROPIC_STREAM, Scenario, Store, full_request, gateway, guarded_gateway, request_body, response};
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
        group.bench_function(name, |b| b.iter(|| request_body(&gateway, &store, scenario, black_box(&body))));
    }
}

fn response_translation(c: &mut Criterion) {
    let (gateway, store) = (gateway(), Store::default());
    let mut group = c.benchmark_group("response");
    for (name, scenario) in [("anthropic_to_openai", Scenario::Translate), ("openai_passthrough", Scenario::Passthrough)] {
        let body = scenario.request_body();
        group.bench_function(name, |b| {
            b.iter_batched(
                || request_body(&gateway, &store, scenario, &body).1,
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
            || request_body(&gateway, &store, Scenario::Stream, &body).1,
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

/// The guardrails' cost: every built-in detector over the 1.5 KB and 100 KB prompts (nothing
/// found, as in most requests), the same with an e-mail address to redact, and the time a
/// restoring stream adds per text chunk.
fn guardrails(c: &mut Criterion) {
    let (plain, guarded, store) = (gateway(), guarded_gateway(), Store::default());
    let mut group = c.benchmark_group("guardrails");
    for (name, scenario) in [("1k5", Scenario::Translate), ("100k", Scenario::Large)] {
        let body = scenario.request_body();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("request_off_{name}"), |b| b.iter(|| request_body(&plain, &store, scenario, black_box(&body))));
        group.bench_function(format!("request_on_{name}"), |b| b.iter(|| request_body(&guarded, &store, scenario, black_box(&body))));
        let with_pii =
            String::from_utf8(body.clone()).expect("UTF-8").replacen("\"content\":\"", "\"content\":\"Mail ann@example.org. ", 1);
        group.bench_function(format!("request_redacting_{name}"), |b| {
            b.iter(|| request_body(&guarded, &store, scenario, black_box(with_pii.as_bytes())))
        });
    }
    let restore = {
        let d = tollgate::guardrails::detectors::Detectors::new(Vec::new());
        let email = d.find("email").expect("built-in");
        let found = [tollgate::guardrails::Finding { detector: email, value: "ann@example.org" }];
        tollgate::guardrails::Redaction::new(&found, &d).restore(|_| true)
    };
    for (name, map) in [("stream_chunk_off", None), ("stream_chunk_restoring", restore)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    tollgate::client::StreamWriter::new(tollgate::client::Dialect::OpenAiChat, Default::default(), false)
                        .restoring(map.clone())
                },
                |mut w| {
                    let mut out = Vec::with_capacity(256);
                    w.text(&mut out, Some(black_box("Hello! The first words of the answer")));
                    out
                },
                BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, request_translation, response_translation, streaming, whole_request, guardrails);
criterion_main!(benches);
