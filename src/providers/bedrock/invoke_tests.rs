use super::*;
use crate::providers::test_support;
use crate::stream::Decoder;
use crate::stream::eventstream::tests::{event, frame};
use serde_json::Value;

const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const NOW_MS: u64 = 1_440_938_160_000;

fn encode_base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn config() -> crate::config::Config {
    let json = format!(
        r#"{{"providers":{{"bedrock":{{"kind":"bedrock","cluster":"c","region":"us-east-1"}}}},
            "models":{{"claude":{{"provider":"bedrock","model":"{MODEL}"}}}}}}"#
    );
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned()),
        _ => None,
    };
    crate::config::Config::from_json(json.as_bytes(), &env, 0).unwrap()
}

fn build(c: &crate::config::Config, dialect: Dialect, body: &str, headers: &[(String, String)], edits: &mut Edits) -> UpstreamRequest {
    let client = ClientBody { dialect, bytes: body.as_bytes(), headers };
    let req = crate::client::parse_chat(client).unwrap();
    crate::providers::build_chat(&c.providers[0], &req, client, &BuildContext { model: MODEL, now_ms: NOW_MS }, edits).unwrap()
}

#[test]
fn anthropic_models_are_told_by_their_id_or_profile() {
    for model in [
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "apac.anthropic.claude-sonnet-4-20250514-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    ] {
        assert!(is_anthropic(model), "{model}");
    }
    for model in [
        "amazon.nova-pro-v1:0",
        "us.amazon.nova-2-lite-v1:0",
        "meta.llama3-70b-instruct-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
        "anthropic",
        "x.y.anthropic.claude",
        ".anthropic.claude",
        "US.anthropic.claude",
    ] {
        assert!(!is_anthropic(model), "{model}");
    }
    assert!(invokes_claude(Dialect::AnthropicMessages, MODEL));
    assert!(!invokes_claude(Dialect::OpenAiChat, MODEL) && !invokes_claude(Dialect::OpenAiResponses, MODEL));
    assert!(!invokes_claude(Dialect::AnthropicMessages, "amazon.nova-pro-v1:0"));
    let c = config();
    let api = c.providers[0].settings.api();
    assert!(api.speaks(Dialect::AnthropicMessages, MODEL) && !api.speaks(Dialect::AnthropicMessages, "amazon.nova-pro-v1:0"));
    assert!(!api.speaks(Dialect::OpenAiChat, MODEL));
}

/// Thinking with its signature, `cache_control` and a member Tollgate does not know.
const MESSAGES: &str = r#"{"model":"claude", "max_tokens":100,"stream":true,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
 "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"Hm.","signature":"c2ln"},{"type":"text","text":"Yes?"}]},
 {"role":"user","content":"go on"}],"thinking":{"type":"enabled","budget_tokens":2048},"future_member":{"x":[1, 2]}}"#;

#[test]
fn a_messages_request_goes_to_invoke_model_as_it_came_but_for_what_bedrock_takes_elsewhere() {
    let c = config();
    let headers = vec![
        ("anthropic-beta".to_owned(), "interleaved-thinking-2025-05-14, context-1m-2025-08-07".to_owned()),
        ("Anthropic-Beta".to_owned(), "x-beta".to_owned()),
    ];
    let built = build(&c, Dialect::AnthropicMessages, MESSAGES, &headers, &mut Edits::default());
    assert_eq!(built.path.as_deref(), Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"));
    let body = String::from_utf8(built.body.clone().unwrap()).unwrap();
    // Each member's bytes as the client wrote them (the space between members is Tollgate's).
    let kept = r#"{"max_tokens":100,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"Hm.","signature":"c2ln"},{"type":"text","text":"Yes?"}]},
 {"role":"user","content":"go on"}],"thinking":{"type":"enabled","budget_tokens":2048},"future_member":{"x":[1, 2]},"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["interleaved-thinking-2025-05-14","context-1m-2025-08-07","x-beta"]}"#;
    assert_eq!(body, kept, "every member but `model` and `stream` byte for byte");
    let auth = built.headers.iter().find(|(n, _)| *n == "authorization").map(|(_, v)| v.as_str()).unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request"), "{auth}");
    let sha = built.headers.iter().find(|(n, _)| *n == "x-amz-content-sha256").map(|(_, v)| v.clone()).unwrap();
    assert_eq!(sha, crate::providers::sigv4::sha256_hex(body.as_bytes()), "the signature covers the body sent");

    // Not streamed: InvokeModel; no betas: no `anthropic_beta`; a member the policy drops is gone.
    let whole = MESSAGES.replace(r#""stream":true,"#, "");
    let mut edits = Edits { dropped: vec!["stop".into()], ..Edits::default() };
    let built = build(
        &c,
        Dialect::AnthropicMessages,
        &whole.replace(r#""max_tokens":100,"#, r#""max_tokens":100,"stop_sequences":["X"],"#),
        &[],
        &mut edits,
    );
    assert_eq!(built.path.as_deref(), Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"));
    let sent: Value = serde_json::from_slice(built.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
    assert!(sent.get("anthropic_beta").is_none() && sent.get("stop_sequences").is_none() && sent.get("model").is_none());
}

#[test]
fn chat_clients_keep_converse() {
    let built = build(
        &config(),
        Dialect::OpenAiChat,
        r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
        &[],
        &mut Edits::default(),
    );
    assert_eq!(built.path.as_deref(), Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"));
}

fn native_ctx(stream: bool) -> ResponseContext {
    ResponseContext { native: true, stream, ..test_support::messages_stream_ctx(MODEL) }
}

#[test]
fn a_whole_answer_passes_through_and_its_usage_is_read() {
    let c = config();
    let answer = br#"{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi"}],
        "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":1}}"#;
    let t = c.providers[0].settings.api().translate_chat(&native_ctx(false), answer).unwrap();
    assert!(t.body.is_none(), "as it came");
    assert_eq!(
        t.usage,
        Some(Usage { input_tokens: 5, cache_write_tokens: 2, cache_read_tokens: 3, output_tokens: 1, reasoning_tokens: 0 })
    );
}

fn chunk(json: &str) -> Vec<u8> {
    event("chunk", &format!(r#"{{"bytes":"{}"}}"#, encode_base64(json.as_bytes())))
}

const EVENTS: [&str; 9] = [
    r#"{"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":1}}}"#,
    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hm."}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2ln"}}"#,
    r#"{"type":"content_block_stop","index":0}"#,
    r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi ✓"}}"#,
    r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"#,
    r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":10,"outputTokenCount":7,"invocationLatency":500,"firstByteLatency":100}}"#,
];

fn sse_of(events: &[&str]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", serde_json::from_str::<Value>(e).unwrap()["type"].as_str().unwrap()))
        .collect()
}

fn run(ctx: &ResponseContext, chunks: &[&[u8]]) -> (String, ClaudeStream) {
    let mut s = ClaudeStream::new(ctx);
    let out = test_support::translate_stream(
        &mut s,
        Decoder::event_stream(1 << 16),
        chunks,
        |s, e, out| {
            assert!(!s.translate_event(e, out), "the client never gets the event-stream bytes");
        },
        |s, out| s.finish(out),
    );
    (out, s)
}

fn stream_body() -> Vec<u8> {
    EVENTS.iter().flat_map(|e| chunk(e)).collect()
}

#[test]
fn chunks_become_anthropics_sse_events_and_their_usage_counts() {
    let (out, s) = run(&native_ctx(true), &[&stream_body()]);
    assert_eq!(out, sse_of(&EVENTS), "each event as Anthropic frames it, its JSON as Bedrock sent it");
    assert!(s.completed());
    assert_eq!(
        s.usage(),
        Some(Usage { input_tokens: 10, cache_write_tokens: 2, cache_read_tokens: 3, output_tokens: 7, reasoning_tokens: 0 })
    );
    // A chunk split anywhere across reads, or byte by byte, changes nothing.
    test_support::assert_any_split_gives_the_same_output(&stream_body(), |chunks| run(&native_ctx(true), chunks), ClaudeStream::completed);
}

#[test]
fn an_event_split_across_chunks_is_joined() {
    let long = EVENTS[0];
    let (head, tail) = long.split_at(40);
    let mut body = chunk(head);
    body.extend(chunk(tail));
    body.extend(EVENTS[1..].iter().flat_map(|e| chunk(e)));
    let (out, s) = run(&native_ctx(true), &[&body]);
    assert_eq!(out, sse_of(&EVENTS));
    assert_eq!(s.usage().map(|u| u.cache_read_tokens), Some(3));
    // A JSON event with line breaks between its tokens keeps them, one `data:` line each.
    let (out, _) = run(&native_ctx(true), &[&chunk("{\"type\":\"ping\"\n}")]);
    assert!(out.starts_with("event: ping\ndata: {\"type\":\"ping\"\ndata: }\n\n"), "{out}");
}

#[test]
fn without_anthropics_usage_bedrocks_metrics_count() {
    let start = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"c","content":[]}}"#;
    let body: Vec<u8> = [start, EVENTS[8]].iter().flat_map(|e| chunk(e)).collect();
    let (_, s) = run(&native_ctx(true), &[&body]);
    assert_eq!(s.usage(), Some(Usage { input_tokens: 10, output_tokens: 7, ..Usage::default() }));
}

#[test]
fn exceptions_become_anthropic_error_events_and_end_the_stream() {
    for (exception, kind) in [
        ("throttlingException", "rate_limit_error"),
        ("modelStreamErrorException", "api_error"),
        ("serviceUnavailableException", "overloaded_error"),
        ("validationException", "invalid_request_error"),
    ] {
        let mut body = chunk(EVENTS[0]);
        body.extend(frame(
            &[(":exception-type", exception), (":content-type", "application/json"), (":message-type", "exception")],
            br#"{"message":"slow down"}"#,
        ));
        body.extend(chunk(EVENTS[1]));
        let (out, s) = run(&native_ctx(true), &[&body]);
        let events = crate::stream::sse::named_events(out.as_bytes());
        assert_eq!(events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["message_start", "error"], "{out}");
        assert_eq!(events[1].1["error"]["type"], kind, "{exception}");
        assert!(events[1].1["error"]["message"].as_str().unwrap().contains("slow down"));
        assert!(!s.completed());
    }
}

#[test]
fn a_cut_or_broken_stream_ends_with_an_error() {
    let cut: Vec<u8> = EVENTS[..3].iter().flat_map(|e| chunk(e)).collect();
    let (out, s) = run(&native_ctx(true), &[&cut]);
    assert_eq!(crate::stream::sse::named_events(out.as_bytes()).last().unwrap().0, "error");
    assert!(!s.completed());
    for bad in [event("chunk", r#"{"bytes":"not base64!"}"#), event("chunk", "{nope"), chunk(r#"{"type":"bad\nname"}"#), chunk("[1]")] {
        let (out, _) = run(&native_ctx(true), &[&chunk(EVENTS[0]), &bad]);
        let events = crate::stream::sse::named_events(out.as_bytes());
        assert_eq!(events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["message_start", "error"], "{out}");
    }
}

#[test]
fn a_stream_restoring_placeholders_is_translated_into_messages_events() {
    // Not native: the Anthropic rules write the client's stream themselves.
    let ctx = ResponseContext { native: false, ..native_ctx(true) };
    let (out, s) = run(&ctx, &[&stream_body()]);
    let (text, _, stop) = test_support::messages_stream(&out);
    assert_eq!((text.as_str(), stop.as_str()), ("Hi ✓", "end_turn"));
    assert!(s.completed());
}

#[test]
fn base64_decodes_as_aws_writes_it() {
    for text in ["", "a", "ab", "abc", "hello world ✓", "\u{0}\u{ff}"] {
        let encoded = encode_base64(text.as_bytes());
        assert_eq!(decode_base64(&encoded).as_deref(), Some(text.as_bytes()), "{encoded}");
        assert_eq!(decode_base64(encoded.trim_end_matches('=')).as_deref(), Some(text.as_bytes()), "padding is optional");
    }
    for bad in ["a", "ab=c", "abc===", "a-b_", "YW Jj"] {
        assert_eq!(decode_base64(bad), None, "{bad}");
    }
}
