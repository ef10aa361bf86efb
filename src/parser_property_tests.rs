//! Property tests of every parser of outside input: client requests, provider answers, errors and
//! stream events (both framings), the byte-level JSON editing, and the configuration. Inputs come
//! from a small deterministic generator (so a failure reproduces): valid seeds mutated by
//! truncation, byte flips and spliced-in tokens (huge numbers, bad escapes, duplicate keys, deep
//! nesting), and random JSON and bytes. Properties: nothing panics, JSON nested deeper than
//! `json::MAX_DEPTH` is refused with the error each parser uses, a stream decoder's memory stays
//! bounded. The same tests run compiled to wasm (`make wasm-unit`), on a small stack: the
//! deepest accepted JSON through the deepest parser fits it.

use crate::client::{ClientBody, Dialect};
use crate::config::Config;
use crate::json::{self, MAX_DEPTH};
use crate::openai::{chat, embeddings};
use crate::providers::Provider;
use crate::providers::{self, BuildContext, Edits, Operation, ResponseContext, StreamTranslator};

/// Cases per property: fewer under wasm, where the tests run interpreted-slow.
const CASES: usize = if cfg!(target_arch = "wasm32") { 60 } else { 400 };
const MAX_EVENT_BYTES: usize = 64 * 1024;

/// xorshift64*: deterministic, and enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// JSON nested beyond the limit, by up to `extra` levels more.
    fn too_deep(&mut self, extra: usize) -> String {
        let depth = MAX_DEPTH + 1 + self.below(extra);
        nested(self, depth)
    }

    /// Random JSON nesting up to `max` levels.
    fn value(&mut self, max: usize) -> String {
        let depth = 1 + self.below(max);
        value(self, depth)
    }
}

/// Tokens that break naive parsers: numbers out of every integer and float range, escapes of
/// lone surrogates and NUL, strings that look like structure.
const ATOMS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "1e999999",
    "-1e-999999",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1.7976931348623157e309",
    "0.000000000000000000000000000001",
    "true",
    "false",
    "null",
    r#""""#,
    r#""hi""#,
    r#""a\u0000b""#,
    r#""\ud800""#,
    r#""x\"]}""#,
    r#""[{""#,
    r#""é☃𝄞""#,
];

/// Keys the parsers know, so random objects reach their typed paths.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "function",
    "parameters",
    "name",
    "arguments",
    "tool_calls",
    "usage",
    "choices",
    "delta",
    "message",
    "index",
    "id",
    "input",
    "embedding",
    "embeddings",
    "data",
    "float",
    "values",
    "error",
    "candidates",
    "parts",
    "functionCall",
    "args",
    "usageMetadata",
    "promptTokenCount",
    "output",
    "toolUse",
    "stopReason",
    "content_block",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "stream",
    "stop",
    "response_format",
    "json_schema",
    "schema",
    "properties",
    "items",
    "providers",
    "models",
    "kind",
    "cluster",
    "x",
];

/// A random JSON text nesting at most `depth` levels.
fn value(rng: &mut Rng, depth: usize) -> String {
    match if depth == 0 { 0 } else { rng.below(4) } {
        0 | 1 => (*rng.pick(ATOMS)).to_owned(),
        2 => {
            let items: Vec<String> = (0..rng.below(4)).map(|_| value(rng, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            // Keys repeat now and then: duplicates must not confuse anything.
            let members: Vec<String> = (0..rng.below(5)).map(|_| format!(r#""{}":{}"#, rng.pick(KEYS), value(rng, depth - 1))).collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

/// JSON nested exactly `depth` levels: arrays, objects, or both by turns.
fn nested(rng: &mut Rng, depth: usize) -> String {
    let mut open = String::new();
    let mut close = String::new();
    let style = rng.below(3);
    for level in 0..depth {
        if style == 0 || (style == 2 && level % 2 == 0) {
            open.push('[');
            close.push(']');
        } else {
            open.push_str(&format!(r#"{{"{}":"#, rng.pick(KEYS)));
            close.push('}');
        }
    }
    format!("{open}1{}", close.chars().rev().collect::<String>())
}

/// `seed` damaged one way or another.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 => out.truncate(at),
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let atom = rng.pick(ATOMS).as_bytes().to_vec();
                out.splice(at..at, atom);
            }
            3 => {
                let deep = rng.too_deep(2000).into_bytes();
                out.splice(at..at, deep);
            }
            4 => {
                let from = rng.below(out.len() + 1);
                let copy = out[from.min(at)..from.max(at)].to_vec();
                out.splice(at..at, copy);
            }
            _ => {
                let v = value(rng, 4).into_bytes();
                out.splice(at..at, v);
            }
        }
    }
    out
}

/// Inputs for a parser: its seeds mutated, random JSON, random bytes, and the seeds with a deep
/// value spliced into every member (those come back flagged, as they must be refused).
fn inputs(rng: &mut Rng, seeds: &[&str]) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(CASES + 64);
    for seed in seeds {
        out.push((seed.as_bytes().to_vec(), false));
        for deep in deep_variants(rng, seed) {
            out.push((deep, true));
        }
    }
    for i in 0..CASES {
        let case = match i % 4 {
            0 | 1 => {
                let seed = *rng.pick(seeds);
                mutate(rng, seed.as_bytes())
            }
            2 => rng.value(8).into_bytes(),
            _ => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        };
        out.push((case, false));
    }
    out
}

/// `seed` with each of its values in turn replaced by JSON nested beyond the limit.
fn deep_variants(rng: &mut Rng, seed: &str) -> Vec<Vec<u8>> {
    let bytes = seed.as_bytes();
    let mut out = Vec::new();
    let mut pending = vec![json::members(bytes).unwrap_or_default().into_iter().map(|m| m.value).collect::<Vec<_>>()];
    while let Some(values) = pending.pop() {
        for v in values {
            let mut deep = bytes[..v.start].to_vec();
            deep.extend_from_slice(rng.too_deep(5000).as_bytes());
            deep.extend_from_slice(&bytes[v.end..]);
            out.push(deep);
            // One level further in, for objects inside the seed.
            if let Some(inner) = json::members(&bytes[v.clone()]) {
                pending.push(inner.into_iter().map(|m| m.value.start + v.start..m.value.end + v.start).collect());
            }
        }
    }
    out
}

fn env(name: &str) -> Option<String> {
    Some(match name {
        "AWS_SECRET_ACCESS_KEY" => "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        other => format!("{other}-value"),
    })
}

const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "c", "api_key_env": "OPENAI_API_KEY"},
        "anthropic": {"kind": "anthropic", "cluster": "c", "api_key_env": "ANTHROPIC_API_KEY"},
        "gemini": {"kind": "gemini", "cluster": "c", "api_key_env": "GEMINI_API_KEY"},
        "vertex": {"kind": "vertex", "cluster": "c", "api_key_env": "VERTEX_TOKEN", "project": "p", "location": "us-central1"},
        "bedrock": {"kind": "bedrock", "cluster": "c", "region": "us-east-1"},
        "cohere": {"kind": "cohere", "cluster": "c", "api_key_env": "COHERE_API_KEY"},
        "azure": {"kind": "azure", "cluster": "c", "host": "r.openai.azure.com", "api_key_env": "AZURE_KEY", "api_version": "2024-10-21"}
    },
    "models": {
        "gpt": {"provider": "openai", "model": "gpt-4o", "aliases": ["fast"], "params": {"temperature": "reject"}},
        "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        "gemini": {"provider": "gemini", "model": "gemini-2.5-flash"},
        "converse": {"provider": "bedrock", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"},
        "command": {"provider": "cohere", "model": "command-a-03-2025"},
        "llama-*": {"provider": "azure"}
    },
    "limits": {"max_request_bytes": 1048576}
}"#;

fn config() -> Config {
    Config::from_json(CONFIG.as_bytes(), &env, 0).unwrap()
}

/// A model of each provider's for chat and for embeddings.
fn models(p: &Provider) -> (&'static str, &'static str) {
    match p.name.as_str() {
        "anthropic" => ("claude-sonnet-4-5", "none"),
        "gemini" | "vertex" => ("gemini-2.5-flash", "text-embedding-004"),
        "bedrock" => ("anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.titan-embed-text-v2:0"),
        "cohere" => ("command-a-03-2025", "embed-v4.0"),
        _ => ("gpt-4o", "text-embedding-3-small"),
    }
}

const REQUESTS: &[&str] = &[
    r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#,
    r#"{"model":"gpt","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"temperature":0.5,"stop":["x"],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}}],"tool_choice":"auto","metadata":{"k":"v"},"seed":1}"#,
    r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object","properties":{"a":{"type":"array","items":{"type":"string"}}}}}}}"#,
];

const EMBEDDINGS: &[&str] = &[r#"{"model":"gpt","input":["a","b"],"dimensions":8}"#, r#"{"model":"gpt","input":[[1,2],[3]]}"#];

#[test]
fn request_parsers_never_panic_and_refuse_deep_json() {
    let c = config();
    let mut rng = Rng::new(1);
    for (body, deep) in inputs(&mut rng, REQUESTS) {
        let parsed = chat::parse(&body);
        if deep || json::check_depth(&body).is_err() {
            let e = parsed.as_ref().unwrap_err();
            assert_eq!((e.status, e.code.as_deref()), (400, Some("nesting_too_deep")), "{}", String::from_utf8_lossy(&body));
            continue;
        }
        match parsed {
            Err(e) => assert_eq!(e.status, 400),
            // Every translator walks what parsed: schemas, contents, tool arguments.
            Ok(req) => {
                for p in &c.providers {
                    let target = BuildContext { model: models(p).0, now_ms: 1_700_000_000_000 };
                    if let Err(e) =
                        providers::build_chat(p, &req, ClientBody::bare(Dialect::OpenAiChat, &body), &target, &mut Edits::default())
                    {
                        assert!(e.status == 400 || e.status == 500, "{}: {e:?}", p.name);
                    }
                }
            }
        }
    }
    for (body, deep) in inputs(&mut rng, EMBEDDINGS) {
        match embeddings::parse(&body) {
            Err(e) if deep => assert_eq!((e.status, e.code.as_deref()), (400, Some("nesting_too_deep"))),
            Err(e) => assert_eq!(e.status, 400),
            Ok(req) => {
                assert!(!deep);
                for p in &c.providers {
                    let _ = providers::build_embeddings(p, &req, &body, &BuildContext { model: models(p).1, now_ms: 0 });
                }
            }
        }
    }
}

/// A successful answer of each provider (chat, then embeddings), as seeds.
fn answers(p: &Provider) -> (&'static str, &'static str) {
    match p.name.as_str() {
        "anthropic" => (
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t","name":"f","input":{"a":1}}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}"#,
            "{}",
        ),
        "gemini" | "vertex" => (
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"},{"functionCall":{"name":"f","args":{"a":1}}}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2},"modelVersion":"g"}"#,
            r#"{"embeddings":[{"values":[0.1,0.2]}],"predictions":[{"embeddings":{"values":[0.1],"statistics":{"token_count":1}}}]}"#,
        ),
        "bedrock" => (
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"},{"toolUse":{"toolUseId":"t","name":"f","input":{"a":1}}}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#,
            r#"{"embedding":[0.1,0.2],"inputTextTokenCount":1}"#,
        ),
        "cohere" => (
            r#"{"id":"c","message":{"role":"assistant","content":[{"type":"text","text":"hi"}],"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":1,"output_tokens":2}}}"#,
            r#"{"id":"e","embeddings":{"float":[[0.1,0.2]]},"meta":{"billed_units":{"input_tokens":1}}}"#,
        ),
        _ => (
            r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}"#,
        ),
    }
}

const ERRORS: &[&str] = &[
    r#"{"error":{"message":"m","type":"t","param":"p","code":"c"}}"#,
    r#"{"type":"error","error":{"type":"overloaded_error","message":"m"}}"#,
    r#"[{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}]"#,
    r#"{"message":"m","__type":"ThrottlingException"}"#,
];

#[test]
fn answer_and_error_translators_never_panic_and_refuse_deep_json() {
    let c = config();
    let mut rng = Rng::new(2);
    for p in &c.providers {
        let (chat, embedding) = answers(p);
        for (operation, seed, model) in [(Operation::Chat, chat, models(p).0), (Operation::Embeddings, embedding, models(p).1)] {
            let ctx = ResponseContext { operation, model: model.into(), ..Default::default() };
            for (body, deep) in inputs(&mut rng, &[seed]) {
                match providers::translate_response(p, &ctx, &body) {
                    Err(e) if deep => assert_eq!((e.status, e.code.as_deref()), (502, Some("bad_upstream_response")), "{}", p.name),
                    Err(e) => assert!((400..=599).contains(&e.status), "{}: {e:?}", p.name),
                    Ok(_) => assert!(!deep, "{}: a deep answer was translated", p.name),
                }
                if deep {
                    // A failover cluster's upstream filter relays answers in OpenAI's format.
                    let e = providers::openai::translate_relayed(&ctx, &body).unwrap_err();
                    assert_eq!(e.code.as_deref(), Some("bad_upstream_response"));
                }
            }
        }
        for (body, _) in inputs(&mut rng, ERRORS) {
            for status in [400, 429, 500, 503, 200] {
                let e = providers::translate_error(p, status, Some("ThrottlingException"), &body);
                assert!((400..=599).contains(&e.status), "{}: {e:?}", p.name);
            }
        }
    }
}

/// A stream of each provider's, as its events' (name, data).
fn stream_seed(p: &Provider) -> Vec<(&'static str, &'static str)> {
    match p.name.as_str() {
        "anthropic" => vec![
            ("message_start", r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ],
        "gemini" | "vertex" => vec![(
            "",
            r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":1}}"#,
        )],
        "bedrock" => vec![
            ("messageStart", r#"{"role":"assistant"}"#),
            ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#),
            ("messageStop", r#"{"stopReason":"end_turn"}"#),
            ("metadata", r#"{"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#),
        ],
        "cohere" => vec![
            ("message-start", r#"{"type":"message-start","id":"c"}"#),
            ("content-delta", r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"hi"}}}}"#),
            (
                "message-end",
                r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":1,"output_tokens":1}}}}"#,
            ),
        ],
        _ => vec![
            ("", r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}"#),
            ("", r#"{"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#),
            ("", "[DONE]"),
        ],
    }
}

fn encode(p: &Provider, events: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in events {
        if p.name == "bedrock" {
            out.extend(crate::stream::eventstream::tests::event(name, &String::from_utf8_lossy(data)));
        } else {
            if !name.is_empty() {
                out.extend_from_slice(format!("event: {name}\n").as_bytes());
            }
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\n\n");
        }
    }
    out
}

/// Feeds `body` in random pieces through the provider's decoder and translator: what the client
/// got, and whether the stream completed.
fn run_stream(rng: &mut Rng, p: &Provider, body: &[u8]) -> (String, bool) {
    let content_type = if p.name == "bedrock" { "application/vnd.amazon.eventstream" } else { "text/event-stream" };
    let ctx = ResponseContext { stream: true, client_wants_usage: true, model: models(p).0.into(), ..Default::default() };
    let mut decoder = providers::stream_decoder(p, Some(content_type), MAX_EVENT_BYTES).unwrap();
    let mut translator = StreamTranslator::new(p, &ctx);
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(700)));
        rest = tail;
        if decoder.feed(piece, |e| _ = translator.on_event(&e, &mut out)).is_err() {
            return (String::from_utf8_lossy(&out).into_owned(), false);
        }
        assert!(decoder.pending_len() <= MAX_EVENT_BYTES + 16, "{}: the decoder holds {} bytes", p.name, decoder.pending_len());
    }
    decoder.finish(|e| _ = translator.on_event(&e, &mut out));
    translator.finish(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), translator.completed())
}

#[test]
fn stream_translators_never_panic_keep_memory_bounded_and_refuse_deep_events() {
    let c = config();
    let mut rng = Rng::new(3);
    for p in &c.providers {
        let seed = stream_seed(p);
        let whole: Vec<(&str, Vec<u8>)> = seed.iter().map(|(n, d)| (*n, d.as_bytes().to_vec())).collect();
        let (_, completed) = run_stream(&mut rng, p, &encode(p, &whole));
        assert!(completed, "{}: the seed stream completes", p.name);
        for i in 0..CASES / 4 {
            let mut events = whole.clone();
            let at = rng.below(events.len());
            let deep = i % 3 == 0;
            events[at].1 = if deep { rng.too_deep(1000).into_bytes() } else { mutate(&mut rng, &events[at].1) };
            let (out, completed) = run_stream(&mut rng, p, &encode(p, &events));
            if deep {
                assert!(out.contains("bad_upstream_response") && !completed, "{}: {out}", p.name);
                let error_at = out.find("bad_upstream_response").unwrap();
                assert!(!out[error_at..].contains("[DONE]"), "{}: nothing follows the error: {out}", p.name);
            }
            // Raw bytes, framed or not.
            let garbage: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
            run_stream(&mut rng, p, &garbage);
            let mut framed = encode(p, &whole);
            let cut = rng.below(framed.len());
            framed.truncate(cut);
            framed.extend(mutate(&mut rng, b"data: {\"x\":1}\n\n"));
            run_stream(&mut rng, p, &framed);
        }
    }
}

#[test]
fn json_editing_never_panics_and_keeps_objects_valid() {
    let mut rng = Rng::new(4);
    for i in 0..CASES * 2 {
        let body = if i % 2 == 0 { rng.value(6).into_bytes() } else { mutate(&mut rng, REQUESTS[i % REQUESTS.len()].as_bytes()) };
        let parsed = serde_json::from_slice::<serde_json::Value>(&body);
        if let Some(members) = json::members(&body) {
            for m in &members {
                assert!(m.value.end <= body.len() && m.key.end <= body.len());
                let _ = m.key(&body);
            }
            let rewritten = json::rewrite(&body, &members, |k| k != "model", &[("model", b"\"up\"")]);
            if let Ok(serde_json::Value::Object(original)) = &parsed {
                // Whatever the duplicates, the rewrite is an object with every other key.
                let out: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&rewritten).unwrap();
                assert_eq!(out["model"], "up");
                assert!(original.keys().filter(|k| *k != "model").all(|k| out.contains_key(k)));
            }
        } else if let Ok(v) = &parsed {
            assert!(!v.is_object(), "members refused an object: {}", String::from_utf8_lossy(&body));
        }
        for offset in [0, rng.below(body.len() + 2), body.len()] {
            let _ = json::path_at(&body, offset);
        }
        let _ = json::offset_of(&body, rng.below(5), rng.below(body.len() + 2));
    }
    // check_depth agrees with the depth of generated JSON.
    for _ in 0..CASES {
        let depth = rng.below(2 * MAX_DEPTH);
        let body = nested(&mut rng, depth);
        assert_eq!(json::check_depth(body.as_bytes()).is_ok(), depth <= MAX_DEPTH, "depth {depth}");
    }
}

#[test]
fn config_parser_never_panics_and_refuses_deep_json() {
    let mut rng = Rng::new(5);
    for (body, deep) in inputs(&mut rng, &[CONFIG]) {
        match Config::from_json(&body, &env, 0) {
            Err(e) if deep => assert!(e.message.contains("levels deep"), "{e}"),
            Err(_) => {}
            Ok(_) => assert!(!deep),
        }
    }
}

/// The deepest JSON each parser accepts, through its deepest walk (Gemini's schema conversion
/// recurses once per schema level, serde once per JSON level), fits the stack: under wasm this
/// runs on Wasmtime's stack, smaller than V8's.
#[test]
fn deepest_accepted_json_fits_the_stack() {
    let c = config();
    // The body, `tools`, `[0]`, `function` and `parameters` take five levels.
    let levels = MAX_DEPTH - 5;
    let schema = format!("{}{{\"type\":\"string\"}}{}", r#"{"type":"array","items":"#.repeat(levels - 1), "}".repeat(levels - 1));
    let body = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"x"}}],"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"n","schema":{schema}}}}}}}"#
    );
    assert_eq!(json::check_depth(body.as_bytes()), Ok(()));
    let req = chat::parse(body.as_bytes()).unwrap();
    for p in &c.providers {
        let target = BuildContext { model: models(p).0, now_ms: 1_700_000_000_000 };
        let _ = providers::build_chat(p, &req, ClientBody::bare(Dialect::OpenAiChat, body.as_bytes()), &target, &mut Edits::default());
    }
    // Untyped values (an error's `code`) and untagged enums buffer whole subtrees.
    let deep_code = format!(r#"{{"error":{{"message":"m","code":{}}}}}"#, "[".repeat(MAX_DEPTH - 2) + &"]".repeat(MAX_DEPTH - 2));
    for p in &c.providers {
        let _ = providers::translate_error(p, 400, None, deep_code.as_bytes());
    }
    let input = format!(r#"{{"model":"gpt","input":{}}}"#, "[".repeat(MAX_DEPTH - 1) + &"]".repeat(MAX_DEPTH - 1));
    assert!(embeddings::parse(input.as_bytes()).is_err());
    let deep_config =
        CONFIG.replacen(r#""params": {"temperature": "reject"}"#, &format!(r#""params": {}"#, nested(&mut Rng::new(6), MAX_DEPTH - 4)), 1);
    assert!(Config::from_json(deep_config.as_bytes(), &env, 0).is_err());
}

/// Each provider's answer with every usage count set to `n` (JSON number text).
fn answer_with_usage(p: &Provider, n: &str) -> String {
    let (chat, _) = answers(p);
    ["1", "2", "3"].iter().fold(chat.to_owned(), |body, count| {
        body.replace(&format!(":{count}}}"), &format!(":{n}}}")).replace(&format!(":{count},"), &format!(":{n},"))
    })
}

#[test]
fn usage_counts_at_the_limits_saturate_and_garbage_is_refused() {
    use crate::accounting::ledger::{Outcome, Totals};
    use crate::accounting::prices::Price;
    let c = config();
    let vertex = c.providers.iter().find(|p| p.name == "vertex").unwrap();
    let ctx = ResponseContext { operation: Operation::Embeddings, model: "text-embedding-005".into(), ..Default::default() };
    let huge = r#"{"predictions":[{"embeddings":{"values":[0.5],"statistics":{"token_count":1e300}}},{"embeddings":{"values":[0.5],"statistics":{"token_count":18446744073709551615}}}]}"#;
    let usage = providers::translate_response(vertex, &ctx, huge.as_bytes()).unwrap().usage.unwrap();
    assert_eq!(usage.input_tokens, u64::MAX, "Vertex's counts are summed saturating");
    let price = Price { input: u128::MAX / 2, output: 3, cache_read: 1, cache_write: 1 };
    for p in &c.providers {
        let ctx = ResponseContext { model: models(p).0.into(), ..Default::default() };
        let body = answer_with_usage(p, &u64::MAX.to_string());
        let usage = providers::translate_response(p, &ctx, body.as_bytes()).unwrap().usage.unwrap();
        assert!(usage.prompt_tokens() == u64::MAX || usage.output_tokens == u64::MAX, "{}: {usage:?}", p.name);
        let wire = crate::openai::response::WireUsage::from(&usage);
        assert_eq!(wire.total_tokens, u64::MAX, "{}", p.name);
        assert_eq!(price.cost(&usage), u128::MAX, "{}: the cost saturates", p.name);
        let mut totals = Totals::default();
        for _ in 0..2 {
            totals.add(&Outcome { usage: Some(usage), cost: Some(price.cost(&usage)), failed: false });
            totals.merge(&totals.clone());
        }
        assert_eq!((totals.cost, totals.output_tokens.max(totals.input_tokens)), (u128::MAX, u64::MAX), "{}", p.name);
        // Negative, fractional, beyond u64 or not numbers: the answer is unreadable, or (Cohere,
        // which types counts as any JSON number) the count saturates; it never wraps.
        for (garbage, saturated) in [("-1", 0), ("1.5", 2), ("1e3", 1000), ("18446744073709551616", u64::MAX), ("\"12\"", 0), ("{}", 0)] {
            let body = answer_with_usage(p, garbage);
            match providers::translate_response(p, &ctx, body.as_bytes()) {
                Err(e) => assert_eq!(e.code.as_deref(), Some("bad_upstream_response"), "{}: {garbage}", p.name),
                Ok(t) => {
                    let u = t.usage.unwrap();
                    assert_eq!((p.name.as_str(), u.input_tokens, u.output_tokens), ("cohere", saturated, saturated), "{garbage}");
                }
            }
        }
    }
}

#[test]
fn a_deep_event_after_the_end_of_a_stream_adds_nothing() {
    let c = config();
    let mut rng = Rng::new(7);
    // Gemini streams have no terminal event: any event is still part of the stream.
    for p in c.providers.iter().filter(|p| p.name != "gemini" && p.name != "vertex") {
        let mut events: Vec<(&str, Vec<u8>)> = stream_seed(p).iter().map(|(n, d)| (*n, d.as_bytes().to_vec())).collect();
        events.push(("message_stop", rng.too_deep(100).into_bytes()));
        let (out, completed) = run_stream(&mut rng, p, &encode(p, &events));
        assert!(completed && !out.contains("bad_upstream_response"), "{}: {out}", p.name);
        if p.name != "openai" && p.name != "azure" {
            assert!(out.ends_with("data: [DONE]\n\n"), "{}: translators ignore what follows the end: {out}", p.name);
        }
    }
}
