use super::super::test_support::{self, body_of, chunks_of, content_of, finish_reasons, last_event, tool_call_deltas, user};
use super::*;
use crate::config::Config;
use crate::schema::{JsonSchemaForm, ReasoningForm};
use crate::stream::Decoder;
use serde_json::{Value, json};

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"providers":{{"anthropic":{{"kind":"anthropic","cluster":"c","api_key_env":"K"{extra}}}}},
            "models":{{"claude":{{"provider":"anthropic","model":"claude-sonnet-4-5"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &|_| Some("key".into()), 0).unwrap()
}

fn settings(c: &Config) -> Settings {
    match &c.providers[0].settings {
        super::super::KindSettings::Anthropic(s) => *s,
        _ => panic!(),
    }
}

fn translate_with(c: &Config, body: Value) -> Result<(Value, Edits), ApiError> {
    let (sent, _, edits) =
        test_support::build(&body, |req, edits| build_request(&c.providers[0], &settings(c), req, "claude-sonnet-4-5", edits))?;
    Ok((sent, edits))
}

fn translate(body: Value) -> Value {
    translate_with(&config(""), body).unwrap().0
}

fn translate_err(body: Value) -> ApiError {
    translate_with(&config(""), body).unwrap_err()
}

#[test]
fn system_and_developer_messages_become_system_blocks() {
    let out = translate(json!({"model":"claude","messages":[
        {"role":"system","content":"Be brief."},
        {"role":"developer","content":[{"type":"text","text":"Use French.","cache_control":{"type":"ephemeral"}}]},
        user("Hi")]}));
    assert_eq!(
        out["system"],
        json!([{"type":"text","text":"Be brief."},{"type":"text","text":"Use French.","cache_control":{"type":"ephemeral"}}])
    );
    assert_eq!(out["messages"], json!([{"role":"user","content":[{"type":"text","text":"Hi"}]}]));
    assert_eq!(out["model"], "claude-sonnet-4-5");
}

#[test]
fn max_tokens_defaults_and_client_values() {
    assert_eq!(translate(json!({"model":"claude","messages":[user("x")]}))["max_tokens"], 4096);
    assert_eq!(translate(json!({"model":"claude","messages":[user("x")],"max_tokens":77}))["max_tokens"], 77);
    assert_eq!(translate(json!({"model":"claude","messages":[user("x")],"max_tokens":77,"max_completion_tokens":55}))["max_tokens"], 55);
    let c = config(r#","default_max_tokens":1000"#);
    assert_eq!(translate_with(&c, json!({"model":"claude","messages":[user("x")]})).unwrap().0["max_tokens"], 1000);
}

#[test]
fn sampling_stop_user_and_stream() {
    let out =
        translate(json!({"model":"claude","messages":[user("x")],"temperature":0.3,"top_p":0.8,"stop":"END","user":"u-1","stream":true}));
    assert_eq!(out["temperature"], 0.3);
    assert_eq!(out["top_p"], 0.8);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["metadata"], json!({"user_id":"u-1"}));
    assert_eq!(out["stream"], true);
    let out = translate(json!({"model":"claude","messages":[user("x")],"stop":["a","b"]}));
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert!(out.get("stream").is_none());
    assert!(out.get("temperature").is_none());
    let out = translate(json!({"model":"claude","messages":[user("x")],"safety_identifier":"hash-1","store":true}));
    assert_eq!(out["metadata"], json!({"user_id":"hash-1"}));
}

#[test]
fn images_and_documents() {
    let out = translate(json!({"model":"claude","messages":[{"role":"user","content":[
        {"type":"text","text":"What is this?"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
        {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"high"}},
        {"type":"file","file":{"file_data":"data:application/pdf;base64,JVBERi0=","filename":"a.pdf"}}]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
        {"type":"text","text":"What is this?"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
        {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}},
        {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="},"title":"a.pdf"}])
    );
}

#[test]
fn bad_media_is_a_clear_400() {
    for (part, param) in [
        (json!({"type":"image_url","image_url":{"url":"ftp://x"}}), "messages[0].content[0]"),
        (json!({"type":"image_url","image_url":{"url":"data:image/png,abc"}}), "messages[0].content[0]"),
        (json!({"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}), "messages[0].content[0]"),
        (json!({"type":"file","file":{"file_id":"file-abc"}}), "messages[0].content[0]"),
        (json!({"type":"input_audio","input_audio":{"data":"x","format":"wav"}}), "messages[0].content[0]"),
    ] {
        let e = translate_err(json!({"model":"claude","messages":[{"role":"user","content":[part]}]}));
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{e:?}");
    }
}

#[test]
fn tools_round_trip_with_merged_tool_results() {
    let out = translate(json!({"model":"claude",
    "tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
             {"type":"function","function":{"name":"now"}}],
    "tool_choice":"required",
    "messages":[
        user("Weather in Paris and time?"),
        {"role":"assistant","content":"Checking.","tool_calls":[
            {"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"toolu_2","type":"function","function":{"name":"now","arguments":""}}]},
        {"role":"tool","tool_call_id":"toolu_1","content":"18C"},
        {"role":"tool","tool_call_id":"toolu_2","content":[{"type":"text","text":"noon"}]},
        user("Thanks"),
    ]}));
    assert_eq!(
        out["tools"],
        json!([
        {"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},
        {"name":"now","input_schema":{"type":"object","properties":{}}}])
    );
    assert_eq!(out["tool_choice"], json!({"type":"any"}));
    assert_eq!(
        out["messages"],
        json!([
        {"role":"user","content":[{"type":"text","text":"Weather in Paris and time?"}]},
        {"role":"assistant","content":[
            {"type":"text","text":"Checking."},
            {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"toolu_2","name":"now","input":{}}]},
        {"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]},
            {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"noon"}]},
            {"type":"text","text":"Thanks"}]}])
    );
}

#[test]
fn tool_results_open_a_user_turn_even_after_user_text() {
    let out = translate(json!({"model":"claude","messages":[
        {"role":"assistant","content":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]},
        user("first"),
        {"role":"tool","tool_call_id":"t1","content":""}]}));
    assert_eq!(out["messages"][1]["content"], json!([{"type":"tool_result","tool_use_id":"t1"},{"type":"text","text":"first"}]));
}

#[test]
fn consecutive_same_role_messages_merge() {
    let out = translate(
        json!({"model":"claude","messages":[user("a"),user("b"),{"role":"assistant","content":"c"},{"role":"assistant","content":""},{"role":"assistant","content":"d"}]}),
    );
    assert_eq!(
        out["messages"],
        json!([
        {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
        {"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}])
    );
}

#[test]
fn tool_choice_variants() {
    let tools = json!([{"type":"function","function":{"name":"f"}}]);
    let cases = [
        (json!("auto"), Value::Null, json!({"type":"auto"})),
        (json!("none"), Value::Null, json!({"type":"none"})),
        (json!({"type":"function","function":{"name":"f"}}), Value::Null, json!({"type":"tool","name":"f"})),
        (json!("required"), json!(false), json!({"type":"any","disable_parallel_tool_use":true})),
        (Value::Null, json!(false), json!({"type":"auto","disable_parallel_tool_use":true})),
        (Value::Null, Value::Null, Value::Null),
    ];
    for (choice, parallel, expected) in cases {
        let mut body = json!({"model":"claude","messages":[user("x")],"tools":tools});
        if !choice.is_null() {
            body["tool_choice"] = choice.clone();
        }
        if !parallel.is_null() {
            body["parallel_tool_calls"] = parallel.clone();
        }
        let out = translate(body);
        assert_eq!(out.get("tool_choice").cloned().unwrap_or(Value::Null), expected, "{choice} {parallel}");
    }
}

#[test]
fn unsupported_parameters_are_400_or_dropped_by_config() {
    let params = vec![
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(1)),
        ("response_format", json!({"type":"json_object"})),
        ("seed", json!(1)),
        ("logit_bias", json!({"1":2})),
    ];
    test_support::assert_refused_or_dropped(&json!({"model":"claude","messages":[user("x")]}), params, |body, drop| {
        translate_with(&config(if drop { r#","drop_unsupported":true"# } else { "" }), body.clone())
    });
    // default values are fine
    translate(
        json!({"model":"claude","messages":[user("x")],"n":1,"logprobs":false,"presence_penalty":0,"response_format":{"type":"text"}}),
    );
}

#[test]
fn invalid_input_for_anthropic_is_400_with_param() {
    let cases = [
        (json!({"model":"claude","messages":[user("x")],"temperature":1.5}), "temperature"),
        (
            json!({"model":"claude","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{oops"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model":"claude","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (json!({"model":"claude","messages":[{"role":"function","name":"f","content":"x"}]}), "messages[0].role"),
        (json!({"model":"claude","messages":[user("")]}), "messages[0].content"),
        (json!({"model":"claude","messages":[{"role":"system","content":"only system"}]}), "messages"),
        (
            json!({"model":"claude","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},user("x")]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let e = translate_err(body.clone());
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
}

#[test]
fn api_versions_choose_auth_and_sampling_policy() {
    let c = config("");
    let p = &c.providers[0];
    assert_eq!(p.auth.as_ref().unwrap().0, "x-api-key");
    assert_eq!(p.headers, vec![("anthropic-version", "2023-06-01".to_string())]);
    assert!(default_policy(&settings(&c), "claude-sonnet-4-5").is_empty());
    assert_eq!(default_policy(&settings(&c), "claude-opus-4-7"), vec![("temperature", ParamAction::Drop)]);
    assert_eq!(default_policy(&settings(&c), "claude-sonnet-5-20261001"), vec![("temperature", ParamAction::Drop)]);
    let c = config(r#","api_version":"2026-10-21""#);
    let p = &c.providers[0];
    let (name, value) = p.auth.as_ref().unwrap();
    assert_eq!((*name, value.expose()), ("authorization", "Bearer key"));
    assert_eq!(p.headers, vec![("anthropic-version", "2026-10-21".to_string())]);
    assert_eq!(default_policy(&settings(&c), "claude-sonnet-4-5"), vec![("temperature", ParamAction::Drop), ("top_p", ParamAction::Drop)]);
}

// ---- responses -------------------------------------------------------------------------------

const TEXT_RESPONSE: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
    "content":[{"type":"text","text":"Hello"},{"type":"text","text":" world"}],"stop_reason":"end_turn","stop_sequence":null,
    "usage":{"input_tokens":12,"output_tokens":6,"cache_creation_input_tokens":3,"cache_read_input_tokens":20}}"#;

const TOOL_RESPONSE: &str = r#"{"id":"msg_02","type":"message","role":"assistant","model":"claude-sonnet-4-5",
    "content":[{"type":"tool_use","id":"toolu_9","name":"get_weather","input":{"city":"Paris"}}],"stop_reason":"tool_use",
    "usage":{"input_tokens":30,"output_tokens":9}}"#;

fn ctx() -> ResponseContext {
    ResponseContext { created: 1_750_000_000, ..Default::default() }
}

#[test]
fn text_response_translates_with_cached_usage() {
    let t = translate_response(&ctx(), TEXT_RESPONSE.as_bytes()).unwrap();
    assert_eq!(
        body_of(&t),
        json!({"id":"msg_01","object":"chat.completion","created":1_750_000_000u64,"model":"claude-sonnet-4-5-20250929",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello world","refusal":null},"logprobs":null,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":35,"completion_tokens":6,"total_tokens":41,"prompt_tokens_details":{"cached_tokens":20,"cache_write_tokens":3},
                 "completion_tokens_details":{"reasoning_tokens":0}}})
    );
    assert_eq!(
        t.usage.unwrap(),
        Usage { input_tokens: 12, cache_read_tokens: 20, cache_write_tokens: 3, output_tokens: 6, reasoning_tokens: 0 }
    );
}

#[test]
fn tool_use_response_translates_to_tool_calls() {
    let v = body_of(&translate_response(&ctx(), TOOL_RESPONSE.as_bytes()).unwrap());
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null);
    assert_eq!(
        msg["tool_calls"],
        json!([{"id":"toolu_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn finish_reasons_map() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        assert_eq!(crate::openai::chat_answer::finish_reason(finish_reason(stop)), finish);
    }
}

#[test]
fn garbage_or_wrong_shape_is_502() {
    for body in [
        &b"not json"[..],
        br#"{"id":"x"}"#,
        br#"{"type":"message","content":"oops","id":"a","model":"m"}"#,
        br#"{"id":"a","model":"m","content":[{"type":"tool_use"}]}"#,
    ] {
        let e = translate_response(&ctx(), body).unwrap_err();
        assert_eq!(e.status, 502, "{}", String::from_utf8_lossy(body));
        assert_eq!(e.code.as_deref(), Some("bad_upstream_response"));
    }
}

#[test]
fn errors_map_type_and_status() {
    let cases = [
        (400, "invalid_request_error", 400, "invalid_request_error"),
        (401, "authentication_error", 401, "authentication_error"),
        (403, "permission_error", 403, "permission_error"),
        (404, "not_found_error", 404, "invalid_request_error"),
        (413, "request_too_large", 413, "invalid_request_error"),
        (429, "rate_limit_error", 429, "rate_limit_error"),
        (500, "api_error", 500, "api_error"),
        (529, "overloaded_error", 503, "api_error"),
    ];
    for (status, kind, want_status, want_kind) in cases {
        let body = format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"msg {kind}"}},"request_id":"req_1"}}"#);
        let e = translate_error(status, body.as_bytes());
        assert_eq!((e.status, &*e.kind, e.message.as_str()), (want_status, want_kind, format!("msg {kind}").as_str()), "{kind}");
    }
    let e = translate_error(529, b"");
    assert_eq!(e.status, 503);
    let e = translate_error(502, b"<html>upstream connect error</html>");
    assert!(e.message.contains("upstream connect error"));
}

// ---- streaming -------------------------------------------------------------------------------

const TEXT_STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":3,\"cache_read_input_tokens\":20,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" w\u{f6}rld \u{1F30D}\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":6}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

const TOOL_STREAM: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_02\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check.\"}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"get_weather\",\"input\":{}}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

/// The model comes from the stream itself.
fn run(chunks: &[&[u8]], wants_usage: bool) -> (String, StreamState) {
    let mut s = StreamState::new(&test_support::stream_ctx("", wants_usage));
    let out = test_support::translate_stream(&mut s, Decoder::sse(1 << 16), chunks, StreamState::on_event, StreamState::finish);
    (out, s)
}

#[test]
fn text_stream_translates_to_openai_chunks() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], true);
    assert!(out.ends_with("data: [DONE]\n\n"));
    let chunks = chunks_of(&out);
    test_support::assert_chunk_headers(&chunks, "msg_01", "claude-sonnet-4-5-20250929");
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role":"assistant","content":""}));
    assert_eq!(content_of(&chunks), "Hello w\u{f6}rld \u{1F30D}");
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 35);
    assert_eq!(last["usage"]["completion_tokens"], 6);
    assert!(s.completed());
    assert!(!out.contains("ping"));
}

#[test]
fn usage_chunk_only_when_asked() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], false);
    assert!(!out.contains("\"usage\""));
    assert_eq!(s.usage().unwrap().output_tokens, 6, "usage is still recorded");
}

#[test]
fn stream_and_non_stream_agree_on_usage_and_finish_reason() {
    let (_, s) = run(&[TEXT_STREAM.as_bytes()], false);
    let t = translate_response(&ctx(), TEXT_RESPONSE.as_bytes()).unwrap();
    assert_eq!(s.usage(), t.usage);
    let (out, s) = run(&[TOOL_STREAM.as_bytes()], false);
    let t = translate_response(&ctx(), TOOL_RESPONSE.as_bytes()).unwrap();
    assert_eq!(s.usage(), t.usage);
    assert_eq!(finish_reasons(&chunks_of(&out)), [body_of(&t)["choices"][0]["finish_reason"].as_str().unwrap()]);
}

#[test]
fn tool_stream_yields_openai_tool_call_deltas() {
    let (out, _) = run(&[TOOL_STREAM.as_bytes()], false);
    let chunks = chunks_of(&out);
    let calls = tool_call_deltas(&chunks);
    assert_eq!(calls[0], &json!([{"index":0,"id":"toolu_9","type":"function","function":{"name":"get_weather","arguments":""}}]));
    let args: String = calls.iter().map(|c| c[0]["function"]["arguments"].as_str().unwrap()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city":"Paris"}));
    assert!(calls[1..].iter().all(|c| c[0]["index"] == 0 && c[0].get("id").is_none()));
    assert_eq!(content_of(&chunks), "Let me check.");
}

#[test]
fn every_split_position_gives_identical_output() {
    for body in [TEXT_STREAM, TOOL_STREAM] {
        test_support::assert_any_split_gives_the_same_output(body.as_bytes(), |chunks| run(chunks, true), StreamState::completed);
    }
}

#[test]
fn error_event_becomes_openai_error_and_ends_stream() {
    let body = format!(
        "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n",
        &TEXT_STREAM[..TEXT_STREAM.find("event: content_block_stop").unwrap()]
    );
    let (out, s) = run(&[body.as_bytes()], true);
    let v = last_event(&out);
    assert_eq!(v["error"]["message"], "Overloaded");
    assert_eq!(v["error"]["code"], "overloaded");
    assert!(!out.contains("[DONE]"));
    assert!(!s.completed());
}

#[test]
fn truncated_stream_ends_with_error_and_keeps_partial_usage() {
    let cut = &TEXT_STREAM[..TEXT_STREAM.find("event: message_delta").unwrap()];
    let (out, s) = run(&[cut.as_bytes()], true);
    assert!(out.contains("stream_truncated"));
    assert!(!out.contains("[DONE]"));
    assert_eq!(s.usage().unwrap().input_tokens, 12);
}

#[test]
fn malformed_event_is_reported_not_forwarded() {
    let (out, _) = run(&[b"event: message_start\ndata: {not json\n\n"], false);
    assert!(out.contains("bad_upstream_response"));
    assert_eq!(out.matches("data: ").count(), 1);
}

// ---- reasoning_effort ------------------------------------------------------------------------

fn translate_for(model: &str, form: Option<ReasoningForm>, body: Value) -> Result<(Value, Edits), ApiError> {
    let c = config("");
    let (sent, _, edits) = test_support::build(&body, |req, edits| {
        edits.reasoning = form;
        build_request(&c.providers[0], &settings(&c), req, model, edits)
    })?;
    Ok((sent, edits))
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens_on_older_models() {
    let (out, edits) =
        translate_for("claude-sonnet-4-5", None, json!({"model":"claude","messages":[user("x")],"reasoning_effort":"medium"})).unwrap();
    assert_eq!(out["thinking"], json!({"type":"enabled","budget_tokens":8192}));
    assert_eq!(out["max_tokens"], 4096 + 8192);
    assert!(out.get("output_config").is_none() && edits.dropped.is_empty());
    let (out, _) = translate_for(
        "claude-sonnet-4-5",
        None,
        json!({"model":"claude","messages":[user("x")],"reasoning_effort":"high","max_tokens":3000}),
    )
    .unwrap();
    assert_eq!((&out["thinking"]["budget_tokens"], &out["max_tokens"]), (&json!(2999), &json!(3000)));
    let (out, _) =
        translate_for("claude-sonnet-4-5", None, json!({"model":"claude","messages":[user("x")],"reasoning_effort":"none"})).unwrap();
    assert!(out.get("thinking").is_none());
    // models from before extended thinking cannot honour it
    let e = translate_for("claude-3-5-haiku-20241022", None, json!({"model":"claude","messages":[user("x")],"reasoning_effort":"low"}))
        .unwrap_err();
    assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("reasoning_effort"), Some("unsupported_parameter")));
}

#[test]
fn reasoning_effort_becomes_adaptive_thinking_with_an_effort_on_newer_models_or_by_policy() {
    let body = json!({"model":"claude","messages":[user("x")],"reasoning_effort":"low","max_completion_tokens":900});
    let (out, _) = translate_for("claude-opus-4-6", None, body.clone()).unwrap();
    assert_eq!(
        (&out["thinking"], &out["output_config"], &out["max_tokens"]),
        (&json!({"type":"adaptive"}), &json!({"effort":"low"}), &json!(900))
    );
    // a model's policy overrides the shipped default, both ways
    let (out, _) = translate_for("claude-sonnet-4-5", Some(ReasoningForm::Level), body.clone()).unwrap();
    assert_eq!(out["thinking"], json!({"type":"adaptive"}));
    let e = translate_for("claude-opus-4-6", Some(ReasoningForm::Budget), body).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("max_completion_tokens"), "900 tokens leave no room for the smallest budget");
}

#[test]
fn sampling_is_refused_or_dropped_while_claude_thinks() {
    let body = json!({"model":"claude","messages":[user("x")],"reasoning_effort":"low","temperature":0.2,"top_p":0.97});
    let e = translate_for("claude-sonnet-4-5", None, body.clone()).unwrap_err();
    assert_eq!((e.status, e.param.as_deref(), e.code.as_deref()), (400, Some("temperature"), Some("unsupported_parameter")));
    let c = config(r#","drop_unsupported":true"#);
    let (sent, _, edits) =
        test_support::build(&body, |req, edits| build_request(&c.providers[0], &settings(&c), req, "claude-sonnet-4-5", edits)).unwrap();
    assert_eq!(edits.dropped, vec!["temperature"]);
    assert!(sent.get("temperature").is_none());
    assert_eq!(sent["top_p"], 0.97, "allowed while thinking");
    // without thinking, sampling passes as before
    let (out, _) = translate_for(
        "claude-sonnet-4-5",
        None,
        json!({"model":"claude","messages":[user("x")],"reasoning_effort":"none","temperature":0.2}),
    )
    .unwrap();
    assert_eq!(out["temperature"], 0.2);
}

// ---- json_schema, strict tools, metadata ------------------------------------------------------

fn schema_format() -> Value {
    json!({"type":"json_schema","json_schema":{"name":"get_weather","description":"The weather","strict":true,
        "schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}})
}

#[test]
fn json_schema_becomes_structured_outputs_on_models_that_have_them() {
    let body = json!({"model":"claude","messages":[user("x")],"response_format":schema_format()});
    let c = config("");
    let (sent, built, _) =
        test_support::build(&body, |req, edits| build_request(&c.providers[0], &settings(&c), req, "claude-sonnet-4-5", edits)).unwrap();
    assert_eq!(sent["output_config"], json!({"format":{"type":"json_schema","schema":schema_format()["json_schema"]["schema"]}}));
    assert!(sent.get("tools").is_none() && built.answer_tool.is_none());
}

#[test]
fn json_schema_becomes_a_forced_tool_on_older_models_or_by_policy() {
    let body = json!({"model":"claude","messages":[user("x")],"response_format":schema_format()});
    let c = config("");
    for (model, form) in [("claude-3-5-haiku-20241022", None), ("claude-sonnet-4-5", Some(JsonSchemaForm::Tool))] {
        let (sent, built, _) = test_support::build(&body, |req, edits| {
            edits.json_schema = form;
            build_request(&c.providers[0], &settings(&c), req, model, edits)
        })
        .unwrap();
        assert_eq!(
            sent["tools"],
            json!([{"name":"get_weather","description":"The weather","input_schema":schema_format()["json_schema"]["schema"]}])
        );
        assert_eq!(sent["tool_choice"], json!({"type":"tool","name":"get_weather"}));
        assert!(sent.get("output_config").is_none());
        assert_eq!(built.answer_tool.as_deref(), Some("get_weather"));
    }
    // the forced tool cannot share the request with the client's own tools, nor with thinking
    let mut with_tools = body.clone();
    with_tools["tools"] = json!([{"type":"function","function":{"name":"f"}}]);
    let e = translate_for("claude-3-7-sonnet-20250219", Some(ReasoningForm::Budget), with_tools).unwrap_err();
    assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("response_format"), Some("unsupported_parameter")));
    let mut thinking = body;
    thinking["reasoning_effort"] = json!("low");
    let e = translate_for("claude-3-7-sonnet-20250219", None, thinking).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("reasoning_effort"));
}

#[test]
fn a_forced_tools_input_is_the_answers_content() {
    let ctx = ResponseContext { answer_tool: Some("get_weather".into()), ..ctx() };
    let v = body_of(&translate_response(&ctx, TOOL_RESPONSE.as_bytes()).unwrap());
    let choice = &v["choices"][0];
    assert_eq!((&choice["message"]["content"], &choice["finish_reason"]), (&json!(r#"{"city":"Paris"}"#), &json!("stop")));
    assert!(choice["message"].get("tool_calls").is_none());
    let mut s = StreamState::new(&ResponseContext { answer_tool: Some("get_weather".into()), ..test_support::stream_ctx("", false) });
    let out = test_support::translate_stream(
        &mut s,
        Decoder::sse(1 << 16),
        &[TOOL_STREAM.as_bytes()],
        StreamState::on_event,
        StreamState::finish,
    );
    let chunks = chunks_of(&out);
    assert_eq!(content_of(&chunks), r#"Let me check.{"city": "Paris"}"#);
    assert!(tool_call_deltas(&chunks).is_empty());
    assert_eq!(finish_reasons(&chunks), vec!["stop"]);
}

#[test]
fn strict_tools_are_strict_where_claude_has_strict_tool_use_and_unsupported_elsewhere() {
    let tools =
        json!([{"type":"function","function":{"name":"f","strict":true}},{"type":"function","function":{"name":"g","strict":false}}]);
    let body = json!({"model":"claude","messages":[user("x")],"tools":tools});
    let (out, _) = translate_for("claude-sonnet-4-5", None, body.clone()).unwrap();
    assert_eq!((&out["tools"][0]["strict"], out["tools"][1].get("strict")), (&json!(true), None));
    let e = translate_for("claude-3-5-haiku-20241022", None, body.clone()).unwrap_err();
    assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("tools[0].function.strict"), Some("unsupported_parameter")));
}

#[test]
fn openai_metadata_is_dropped_and_said_so_while_user_becomes_the_user_id() {
    let (out, edits) =
        translate_with(&config(""), json!({"model":"claude","messages":[user("x")],"metadata":{"run":"7"},"user":"u-1"})).unwrap();
    assert_eq!(out["metadata"], json!({"user_id":"u-1"}));
    assert_eq!(edits.dropped, vec!["metadata"]);
}

/// Texts are copied as the client quoted them, so the provider reads the same values whatever
/// the client escaped: quotes, backslashes, control escapes, `\u` escapes and surrogate pairs.
#[test]
fn texts_reach_the_provider_with_the_values_the_client_sent() {
    let texts = [
        r#"plain"#,
        r#"say \"hi\" \\ back\/slash"#,
        r#"line\nbreak\ttab\r\b\f\u0000\u001f"#,
        r#"caf\u00e9 \u00E9t\u00e9"#,
        r#"smile \ud83d\ude00 and 😀"#,
        r#"ends with backslash \\"#,
    ];
    for text in texts {
        let body = format!(
            r#"{{"model":"claude","messages":[{{"role":"system","content":"{text}"}},{{"role":"user","content":"{text}"}},
                {{"role":"assistant","content":[{{"type":"text","text":"{text}"}},{{"type":"refusal","refusal":"{text}"}}]}},
                {{"role":"user","content":[{{"type":"text","text":""}},{{"type":"text","text":"{text}"}}]}}]}}"#
        );
        let decoded: String = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        let req = crate::openai::chat::parse(body.as_bytes()).unwrap();
        let c = config("");
        let built = build_request(&c.providers[0], &settings(&c), &req, "claude-sonnet-4-5", &mut Edits::default()).unwrap();
        let raw = String::from_utf8(built.body.clone().unwrap()).unwrap();
        assert!(raw.contains(&format!("\"{text}\"")), "copied as quoted: {raw}");
        let sent: Value = serde_json::from_str(&raw).unwrap();
        let block = json!({"type":"text","text":decoded});
        assert_eq!(sent["system"], json!([block]), "{text}");
        assert_eq!(
            sent["messages"],
            json!([{"role":"user","content":[block]},{"role":"assistant","content":[block, block]},{"role":"user","content":[block]}]),
            "{text}: the empty text is left out as before"
        );
    }
}

/// Text deltas reach the client as the provider escaped them (quotes, line ends, `\u` escapes,
/// a word that names a field), whichever way the stream is cut, and read back as the same text.
#[test]
fn escaped_text_deltas_are_copied_as_written_at_any_split() {
    let deltas = [r#"say \"usage\": {}\n"#, r#"caf\u00e9 \ud83c\udf0d"#, r#"back\\slash \/ \t"#];
    let mut body = String::from(TEXT_STREAM.split("event: content_block_delta").next().unwrap());
    for d in deltas {
        body.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{d}\"}}}}\n\n"
        ));
    }
    body.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    let (out, _) = run(&[body.as_bytes()], false);
    for d in deltas {
        assert!(out.contains(&format!("{{\"content\":\"{d}\"}}")), "{d} copied as written: {out}");
    }
    assert_eq!(content_of(&chunks_of(&out)), "say \"usage\": {}\ncaf\u{e9} \u{1F30D}back\\slash / \t");
    test_support::assert_any_split_gives_the_same_output(body.as_bytes(), |chunks| run(chunks, false), StreamState::completed);
}

/// A delta that would not decode (half a surrogate pair) is a malformed event, as when text was
/// decoded before it was written.
#[test]
fn a_delta_that_would_not_decode_is_malformed() {
    let body = TEXT_STREAM.replacen(r#""text":"Hello""#, r#""text":"Hello \ud83c""#, 1);
    let (out, s) = run(&[body.as_bytes()], false);
    assert!(out.contains("malformed stream event"), "{out}");
    assert!(!out.contains(r#""content":"Hello"#), "no text chunk: {out}");
    assert!(!s.completed());
}

/// A whole answer's single text block is copied as written too.
#[test]
fn an_answers_escaped_text_is_copied_as_written() {
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "a \"quoted\" caf\u{e9}\n"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 2}});
    let raw = answer.to_string().replace('\u{e9}', "\\u00e9");
    let t = translate_response(&ctx(), raw.as_bytes()).unwrap();
    let written = String::from_utf8(t.body.clone().unwrap()).unwrap();
    assert!(written.contains(r#""content":"a \"quoted\" caf\u00e9\n""#), "{written}");
    assert_eq!(body_of(&t)["choices"][0]["message"]["content"], "a \"quoted\" caf\u{e9}\n");
    // Two blocks are joined, decoded.
    let mut two = answer.clone();
    two["content"] = json!([{"type": "text", "text": "one "}, {"type": "text", "text": "t\"wo"}]);
    let t = translate_response(&ctx(), two.to_string().as_bytes()).unwrap();
    assert_eq!(body_of(&t)["choices"][0]["message"]["content"], "one t\"wo");
}

/// The quick read of a text delta takes only the exact spelling it knows, and reads it as the
/// parse does; everything else is left to the parse.
#[test]
fn the_quick_text_delta_read_agrees_with_the_parse() {
    let quick = |data: &str| super::stream::text_delta(data.as_bytes()).map(|t| t.decode().into_owned());
    let parsed = |data: &str| {
        let e: super::stream::StreamEvent = serde_json::from_str(data).ok()?;
        let d = e.delta?;
        (&*e.kind == "content_block_delta" && d.kind.as_deref() == Some("text_delta")).then(|| d.text.unwrap().decode().into_owned())
    };
    for data in [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        r#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"a \"b\"}} \u00e9\n"}}"#,
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":""}}"#,
    ] {
        assert!(quick(data).is_some(), "{data}");
        assert_eq!(quick(data), parsed(data), "{data}");
    }
    for data in [
        r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced"}}"#,
        r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"zero"}}"#,
        r#"{"type":"content_block_delta","index":99999999999,"delta":{"type":"text_delta","text":"big"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"},"extra":1}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a","more":"b"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"half \ud83c"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"raw"line"}}"#,
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tab\there\"}}",
    ] {
        assert_eq!(quick(data), None, "{data}");
    }
}
