//! An OpenAI provider serving a Messages client: the request rendered from the representation,
//! the answer and the stream translated back.

use super::*;
use crate::anthropic::messages;
use crate::providers::test_support;
use crate::stream::Decoder;
use serde_json::{Value, json};

fn provider() -> Provider {
    let json = r#"{"providers":{"openai":{"kind":"openai","cluster":"c","api_key_env":"K"}},"models":{"m":{"provider":"openai"}}}"#;
    crate::config::Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap().providers.remove(0)
}

fn ctx(stream: bool) -> ResponseContext {
    ResponseContext { dialect: Dialect::AnthropicMessages, created: 7, stream, model: "gpt-4o".into(), ..Default::default() }
}

fn build(body: Value) -> Result<(Value, Edits), ApiError> {
    let bytes = serde_json::to_vec(&body).unwrap();
    let mut req = messages::parse(&bytes)?;
    req.forget_thinking(false);
    let mut edits = Edits::default();
    let client = ClientBody::bare(Dialect::AnthropicMessages, &bytes);
    let built = build_chat(&Settings { stream_usage: true, responses_api: true }, &provider(), &req, client, "gpt-4o", &mut edits)?;
    Ok((serde_json::from_slice(built.body.as_ref().unwrap()).unwrap(), edits))
}

#[test]
fn a_messages_request_becomes_a_chat_completions_request() {
    let (sent, _) = build(json!({
        "model": "fast", "max_tokens": 64, "stream": true,
        "system": "Be brief.",
        "messages": [
            {"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"s"},
                {"type":"tool_use","id":"toolu_1","name":"zoom","input":{"f":2}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a cat"},{"type":"text","text":"So?"}]}
        ],
        "tools": [{"name":"zoom","input_schema":{"type":"object"}}],
        "tool_choice": {"type":"tool","name":"zoom","disable_parallel_tool_use":true},
        "stop_sequences": ["END"], "temperature": 0.2, "metadata": {"user_id": "u-1"},
        "thinking": {"type":"enabled","budget_tokens":20000}
    }))
    .unwrap();
    assert_eq!(
        sent,
        json!({
            "model": "gpt-4o", "stream": true, "max_tokens": 64, "temperature": 0.2, "stop": ["END"],
            "messages": [
                {"role":"system","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
                {"role":"assistant","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"zoom","arguments":"{\"f\":2}"}}]},
                {"role":"tool","content":"a cat","tool_call_id":"toolu_1"},
                {"role":"user","content":[{"type":"text","text":"So?"}]}
            ],
            "tools": [{"type":"function","function":{"name":"zoom","parameters":{"type":"object"}}}],
            "tool_choice": {"type":"function","function":{"name":"zoom"}},
            "parallel_tool_calls": false, "user": "u-1", "reasoning_effort": "xhigh",
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn what_openai_has_no_counterpart_for_is_refused_or_dropped() {
    let base = json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]});
    let mut with_top_k = base.clone();
    with_top_k["top_k"] = json!(3);
    let e = build(with_top_k).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("top_k")));
    let mut server_tool = base.clone();
    server_tool["tools"] = json!([{"type":"web_search_20250305","name":"web_search"}]);
    assert_eq!(build(server_tool).unwrap_err().param.as_deref(), Some("tools[0]"));
    let mut document = base;
    document["messages"] = json!([{"role":"assistant","content":[{"type":"server_tool_use","id":"s","name":"web_search"}]}]);
    assert_eq!(build(document).unwrap_err().param.as_deref(), Some("messages[0].content[0]"));
}

#[test]
fn a_completion_becomes_a_message() {
    let body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024","choices":[{"index":0,
        "message":{"role":"assistant","content":"Sure.","reasoning_content":"Thought.","tool_calls":[{"id":"call_9","type":"function",
        "function":{"name":"zoom","arguments":"{\"f\":3}"}}]},"finish_reason":"tool_calls"}],
        "usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":2}}}"#;
    let t = translate_chat(&ctx(false), body).unwrap();
    let v: Value = serde_json::from_slice(t.body.as_ref().unwrap()).unwrap();
    assert_eq!(
        v,
        json!({"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"gpt-4o-2024",
            "content":[{"type":"thinking","thinking":"Thought.","signature":""},{"type":"text","text":"Sure."},
                       {"type":"tool_use","id":"toolu_call_9","name":"zoom","input":{"f":3}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":10,"output_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":2}})
    );
    assert_eq!(t.usage.map(|u| (u.input_tokens, u.cache_read_tokens, u.output_tokens)), Some((10, 2, 4)));
}

const STREAM: &[u8] = b"data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"zoom\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"f\\\":1}\"}}]},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"chatcmpl-2\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n\
data: [DONE]\n\n";

fn run(chunks: &[&[u8]]) -> (String, StreamState) {
    run_as(&ctx(true), chunks)
}

fn run_as(ctx: &ResponseContext, chunks: &[&[u8]]) -> (String, StreamState) {
    let mut s = StreamState::new(ctx);
    let out = test_support::translate_stream(
        &mut s,
        Decoder::sse(1 << 16),
        chunks,
        |s, e, out| {
            s.on_event(e, out);
        },
        |s, out| s.finish(out),
    );
    (out, s)
}

#[test]
fn a_stream_becomes_the_messages_event_grammar_at_any_split() {
    let (out, s) = run(&[STREAM]);
    let events = crate::stream::sse::named_events(out.as_bytes());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!((&events[0].1["message"]["id"], &events[0].1["message"]["model"]), (&json!("msg_chatcmpl-2"), &json!("gpt-4o")));
    assert_eq!(events[5].1["content_block"], json!({"type":"tool_use","id":"toolu_call_1","name":"zoom","input":{}}));
    assert_eq!(events[6].1["delta"], json!({"type":"input_json_delta","partial_json":"{\"f\":1}"}));
    assert_eq!(events[8].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[8].1["usage"]["output_tokens"], 3);
    assert!(s.completed());
    assert_eq!(s.usage().map(|u| (u.input_tokens, u.output_tokens)), Some((9, 3)));
    test_support::assert_any_split_gives_the_same_output(STREAM, run, |s: &StreamState| s.completed());
}

#[test]
fn a_cut_stream_ends_with_an_anthropic_error_event() {
    let cut = &STREAM[..STREAM.len() - b"data: [DONE]\n\n".len()];
    let (out, s) = run(&[cut]);
    assert!(!s.completed());
    let last = out.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""), "{last}");
}

#[test]
fn a_relayed_stream_in_the_messages_dialect_ends_on_message_stop() {
    let mut s = StreamState::relay(&ctx(true));
    let mut out = Vec::new();
    let raw = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let mut decoder = Decoder::sse(1 << 16);
    decoder.feed(raw, |e| assert!(s.on_event(&e, &mut out))).unwrap();
    assert!(s.completed());
    assert_eq!(out, raw);
}

fn responses_ctx(stream: bool, native: bool) -> ResponseContext {
    ResponseContext { dialect: Dialect::OpenAiResponses, native, ..ctx(stream) }
}

#[test]
fn a_responses_request_to_openai_keeps_its_bytes_but_the_model() {
    let body = br#"{"model": "fast", "input": [{"type":"reasoning","id":"rs_1","encrypted_content":"gAAA","summary":[]}], "store": false, "temperature": 0.3}"#;
    let req = crate::openai::responses::parse(body).unwrap();
    let client = ClientBody::bare(Dialect::OpenAiResponses, body);
    let mut edits = Edits::default();
    let settings = Settings { stream_usage: true, responses_api: true };
    let to = crate::providers::BuildContext { model: "gpt-5", now_ms: 0 };
    let built = ProviderApi::build_chat(&settings, &provider(), &req, client, &to, &mut edits).unwrap();
    assert_eq!(built.body.unwrap(), br#"{"model": "gpt-5", "input": [{"type":"reasoning","id":"rs_1","encrypted_content":"gAAA","summary":[]}], "store": false, "temperature": 0.3}"#);
    assert_eq!(built.path.as_deref(), Some("/v1/responses"));
    assert_eq!(settings.responses_path(&provider(), "/resp_1?include=x").as_deref(), Some("/v1/responses/resp_1?include=x"));
    assert_eq!(Settings { responses_api: false, ..settings }.responses_path(&provider(), ""), None);
    // The model's policy drops what it rejects, wherever it is.
    let mut edits = Edits { dropped: vec!["temperature".into()], ..Default::default() };
    let built = build_chat(&settings, &provider(), &req, client, "gpt-5", &mut edits).unwrap();
    let sent: Value = serde_json::from_slice(&built.body.unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"model":"gpt-5","input":[{"type":"reasoning","id":"rs_1","encrypted_content":"gAAA","summary":[]}],"store":false})
    );
    // A host without the Responses API gets chat, rendered from the representation.
    let compatible = Settings { stream_usage: true, responses_api: false };
    let mut edits = Edits::default();
    let built = providers_build(&compatible, &req, client, &mut edits).unwrap();
    let sent: Value = serde_json::from_slice(&built.body.unwrap()).unwrap();
    assert_eq!((&sent["messages"], &sent["temperature"]), (&json!([]), &json!(0.3)), "the reasoning item is left out");
    assert_eq!(edits.dropped, ["input[0]"], "and noted");
}

/// Through the registry's entry point, which leaves out what only the client's own API reads.
fn providers_build(s: &Settings, req: &ChatRequest, client: ClientBody, edits: &mut Edits) -> Result<UpstreamRequest, ApiError> {
    let mut provider = provider();
    provider.settings = crate::providers::KindSettings::OpenAi(*s);
    crate::providers::build_chat(&provider, req, client, &crate::providers::BuildContext { model: "llama", now_ms: 0 }, edits)
}

#[test]
fn a_responses_answer_from_openai_passes_with_its_usage() {
    let body = br#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":5},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":27}}"#;
    let t = translate_chat(&responses_ctx(false, true), body).unwrap();
    assert!(t.body.is_none());
    assert_eq!(
        t.usage,
        Some(Usage { input_tokens: 15, cache_read_tokens: 5, cache_write_tokens: 0, output_tokens: 7, reasoning_tokens: 3 })
    );
}

#[test]
fn a_responses_stream_from_openai_passes_and_ends_on_its_last_event() {
    let stream: &[u8] = b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\"}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Hi\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":4,\"output_tokens\":2,\"total_tokens\":6}}}\n\n";
    let run = |chunks: &[&[u8]]| run_as(&responses_ctx(true, true), chunks);
    let (out, s) = run(&[stream]);
    assert_eq!(out.as_bytes(), stream);
    assert!(s.completed());
    assert_eq!(s.usage().map(|u| (u.input_tokens, u.output_tokens)), Some((4, 2)));
    test_support::assert_any_split_gives_the_same_output(stream, run, |s: &StreamState| s.completed());
    let (out, s) = run(&[&stream[..stream.len() - 60]]);
    assert!(!s.completed());
    assert!(out.contains("event: error\ndata: {\"type\":\"error\""), "a cut stream ends with an error event: {out}");
}

#[test]
fn sequence_numbers_are_read_without_parsing() {
    assert_eq!(sequence_number(br#"{"type":"x","sequence_number": 41,"delta":"a"}"#), Some(41));
    assert_eq!(sequence_number(br#"{"type":"x"}"#), None);
    assert_eq!(sequence_number(br#"{"sequence_number":"7"}"#), None);
}

#[test]
fn a_passthrough_cut_short_ends_with_the_next_number_and_an_upstream_error_with_nothing_more() {
    let started = b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Hi\"}\n\n";
    let (out, _) = run_as(&responses_ctx(true, true), &[started]);
    let events = crate::stream::sse::named_events(out.as_bytes());
    assert_eq!((events[2].0.as_str(), &events[2].1["sequence_number"]), ("error", &json!(2)));
    let failed =
        [&started[..], b"event: error\ndata: {\"type\":\"error\",\"sequence_number\":2,\"code\":\"server_error\",\"message\":\"x\"}\n\n"]
            .concat();
    let (out, s) = run_as(&responses_ctx(true, true), &[&failed]);
    assert_eq!(crate::stream::sse::named_events(out.as_bytes()).len(), 3, "the provider's error is the last event");
    assert!(!s.completed());
}

#[test]
fn a_chat_stream_becomes_responses_events() {
    let (out, s) = run_as(&responses_ctx(true, false), &[STREAM]);
    let events = crate::stream::sse::named_events(out.as_bytes());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    assert!(names.contains(&"response.function_call_arguments.done"));
    assert!(s.completed());
}
