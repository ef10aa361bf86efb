use super::super::test_support::{self, body_of, chunks_of, content_of, finish_reasons, last_event, tool_call_deltas, user};
use super::*;
use crate::config::Config;
use crate::openai::embeddings;
use crate::stream::Decoder;
use serde_json::{Value, json};

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"providers":{{"cohere":{{"kind":"cohere","cluster":"c","api_key_env":"K"{extra}}}}},
            "models":{{"command":{{"provider":"cohere","model":"command-a-03-2025"}}}}}}"#
    );
    Config::from_json(json.as_bytes(), &|_| Some("co-key".into()), 0).unwrap()
}

fn translate_with(c: &Config, body: Value) -> Result<(Value, Edits), ApiError> {
    let (sent, built, edits) = test_support::build(&body, |req, edits| build_request(&c.providers[0], req, "command-a-03-2025", edits))?;
    assert!(built.path.is_none(), "chat goes to the provider's chat path");
    Ok((sent, edits))
}

fn translate(body: Value) -> Value {
    translate_with(&config(""), body).unwrap().0
}

fn translate_err(body: Value) -> ApiError {
    translate_with(&config(""), body).unwrap_err()
}

const WEATHER: &str = r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;

fn weather_tool() -> Value {
    json!({"type":"function","function":{"name":"get_weather","description":"Weather","parameters":serde_json::from_str::<Value>(WEATHER).unwrap()}})
}

#[test]
fn compiles_with_bearer_auth_and_cohere_defaults() {
    let c = config("");
    let p = &c.providers[0];
    assert_eq!((p.authority.as_str(), p.base_path.as_str(), p.chat_path.as_str()), ("api.cohere.com", "/v2", "/v2/chat"));
    let (name, value) = p.auth.as_ref().unwrap();
    assert_eq!((*name, value.expose()), ("authorization", "Bearer co-key"));
    let json = r#"{"providers":{"cohere":{"kind":"cohere","cluster":"c","api_key_env":"K","api_version":"2"}},"models":{"m":{"provider":"cohere"}}}"#;
    assert_eq!(Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap_err().field, "providers.cohere.api_version");
    let json = r#"{"providers":{"cohere":{"kind":"cohere","cluster":"c"}},"models":{"m":{"provider":"cohere"}}}"#;
    assert_eq!(Config::from_json(json.as_bytes(), &|_| None, 0).unwrap_err().field, "providers.cohere.api_key_env");
}

#[test]
fn messages_of_every_role_map_to_cohere_turns() {
    let out = translate(json!({"model":"command","messages":[
        {"role":"system","content":"Be brief."},
        {"role":"developer","content":[{"type":"text","text":"Use French."}]},
        user("Hi"),
        {"role":"assistant","content":"Hello."},
        {"role":"user","content":[
            {"type":"text","text":"What is this?"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
            {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]}]}));
    assert_eq!(out["model"], "command-a-03-2025");
    assert_eq!(
        out["messages"],
        json!([
            {"role":"system","content":"Be brief."},
            {"role":"system","content":[{"type":"text","text":"Use French."}]},
            {"role":"user","content":"Hi"},
            {"role":"assistant","content":"Hello."},
            {"role":"user","content":[
                {"type":"text","text":"What is this?"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"low"}}]}])
    );
    for absent in ["tools", "tool_choice", "stream", "temperature", "p", "max_tokens", "stop_sequences", "response_format", "seed"] {
        assert!(out.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn tool_round_trip_uses_tool_plan_and_tool_messages() {
    let out = translate(json!({"model":"command","tools":[weather_tool(), {"type":"function","function":{"name":"now"}}],
    "messages":[
        user("Weather in Paris and time?"),
        {"role":"assistant","content":"I will check both.","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
            {"id":"call_2","type":"function","function":{"name":"now","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_1","content":"18C"},
        {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"noon"}]},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_3","type":"function","function":{"name":"now","arguments":"{}"}}]},
        {"role":"tool","tool_call_id":"call_3","content":"12:01"},
        {"role":"assistant","content":""},
        user("Thanks")]}));
    assert_eq!(
        out["tools"],
        json!([
            {"type":"function","function":{"name":"get_weather","description":"Weather","parameters":serde_json::from_str::<Value>(WEATHER).unwrap()}},
            {"type":"function","function":{"name":"now","parameters":{"type":"object","properties":{}}}}])
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role":"user","content":"Weather in Paris and time?"},
            {"role":"assistant","tool_plan":"I will check both.","tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"now","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_1","content":"18C"},
            {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"noon"}]},
            {"role":"assistant","tool_calls":[{"id":"call_3","type":"function","function":{"name":"now","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call_3","content":"12:01"},
            {"role":"user","content":"Thanks"}])
    );
    assert!(out.get("strict_tools").is_none());
}

#[test]
fn tool_choice_maps_to_required_none_or_a_single_tool() {
    let tools = json!([weather_tool(), {"type":"function","function":{"name":"now","strict":true}}]);
    let cases = [
        (json!("auto"), None, 2),
        (json!("none"), Some("NONE"), 2),
        (json!("required"), Some("REQUIRED"), 2),
        (json!({"type":"function","function":{"name":"now"}}), Some("REQUIRED"), 1),
    ];
    for (choice, expected, tool_count) in cases {
        let out = translate(json!({"model":"command","messages":[user("x")],"tools":tools,"tool_choice":choice}));
        assert_eq!(out.get("tool_choice").and_then(Value::as_str), expected, "{choice}");
        assert_eq!(out["tools"].as_array().unwrap().len(), tool_count, "{choice}");
        assert_eq!(out["strict_tools"], true, "a strict function asks Cohere for strict tools");
    }
    let out = translate(
        json!({"model":"command","messages":[user("x")],"tools":tools,"tool_choice":{"type":"function","function":{"name":"now"}}}),
    );
    assert_eq!(out["tools"][0]["function"]["name"], "now");
}

#[test]
fn sampling_limits_stop_seed_and_stream() {
    let out = translate(json!({"model":"command","messages":[user("x")],"max_tokens":50,"max_completion_tokens":40,"temperature":0.3,
        "top_p":0.9,"stop":["END","STOP"],"seed":7,"frequency_penalty":0.2,"presence_penalty":0.1,"stream":true,
        "stream_options":{"include_usage":true},"user":"u1","metadata":{"a":"b"},"store":false}));
    assert_eq!(out["max_tokens"], 40);
    assert_eq!(out["temperature"], 0.3);
    assert_eq!(out["p"], 0.9);
    assert_eq!(out["stop_sequences"], json!(["END", "STOP"]));
    assert_eq!(out["seed"], 7);
    assert_eq!((out["frequency_penalty"].as_f64(), out["presence_penalty"].as_f64()), (Some(0.2), Some(0.1)));
    assert_eq!(out["stream"], true);
    for gone in ["stream_options", "user", "metadata", "store", "top_p", "stop", "max_completion_tokens"] {
        assert!(out.get(gone).is_none(), "{gone}");
    }
    for (top_p, p) in [(1.0, 0.99), (0.0, 0.01), (0.5, 0.5)] {
        assert_eq!(translate(json!({"model":"command","messages":[user("x")],"top_p":top_p}))["p"], p);
    }
    assert_eq!(translate(json!({"model":"command","messages":[user("x")],"stop":"END"}))["stop_sequences"], json!(["END"]));
}

#[test]
fn response_format_json_object_and_schema() {
    let out = translate(json!({"model":"command","messages":[user("x")],"response_format":{"type":"json_object"}}));
    assert_eq!(out["response_format"], json!({"type":"json_object"}));
    let schema = json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
    let out = translate(json!({"model":"command","messages":[user("x")],
        "response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":schema}}}));
    assert_eq!(out["response_format"], json!({"type":"json_object","json_schema":schema}));
    let out = translate(json!({"model":"command","messages":[user("x")],"response_format":{"type":"text"}}));
    assert!(out.get("response_format").is_none());
    let e = translate_err(
        json!({"model":"command","messages":[user("x")],"response_format":{"type":"json_schema","json_schema":{"name":"p"}}}),
    );
    assert_eq!((e.status, e.param.as_deref()), (400, Some("response_format.json_schema.schema")));
}

#[test]
fn unsupported_parameters_are_400_or_dropped_by_config() {
    let params = vec![
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("parallel_tool_calls", json!(false)),
        ("logit_bias", json!({"1":2})),
        ("top_logprobs", json!(2)),
        ("reasoning_effort", json!("low")),
        ("response_format", json!({"type":"grammar"})),
    ];
    let body = json!({"model":"command","messages":[user("x")],"tools":[weather_tool()]});
    test_support::assert_refused_or_dropped(&body, params, |body, drop| {
        translate_with(&config(if drop { r#","drop_unsupported":true"# } else { "" }), body.clone())
    });
    translate(json!({"model":"command","messages":[user("x")],"n":1,"logprobs":false,"parallel_tool_calls":true}));
}

#[test]
fn invalid_input_for_cohere_is_400_with_param() {
    let cases = [
        (json!({"model":"command","messages":[user("x")],"temperature":1.5}), "temperature"),
        (json!({"model":"command","messages":[user("x")],"frequency_penalty":-0.5}), "frequency_penalty"),
        (json!({"model":"command","messages":[user("x")],"presence_penalty":1.5}), "presence_penalty"),
        (json!({"model":"command","messages":[{"role":"function","name":"f","content":"x"}]}), "messages[0].role"),
        (
            json!({"model":"command","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"command","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"command","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},user("x")]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model":"command","messages":[{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}),
            "messages[0].content[0]",
        ),
    ];
    for (body, param) in cases {
        let e = translate_err(body.clone());
        assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{body}: {e:?}");
    }
}

// ---- responses -------------------------------------------------------------------------------

const TEXT_RESPONSE: &str = r#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE",
    "message":{"role":"assistant","content":[{"type":"text","text":"Hello w\u00f6rld "},{"type":"text","text":"\ud83c\udf0d"}]},
    "usage":{"billed_units":{"input_tokens":5,"output_tokens":6},"tokens":{"input_tokens":71,"output_tokens":6},"cached_tokens":0}}"#;

const TOOL_RESPONSE: &str = r#"{"id":"tool-1","finish_reason":"TOOL_CALL",
    "message":{"role":"assistant","tool_plan":"I will look up the weather.",
        "tool_calls":[{"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                      {"id":"now_def","type":"function","function":{"name":"now","arguments":"{}"}}]},
    "usage":{"billed_units":{"input_tokens":30.0,"output_tokens":9.0},"tokens":{"input_tokens":900,"output_tokens":40}}}"#;

fn ctx() -> ResponseContext {
    ResponseContext { created: 1_750_000_000, model: "command-a-03-2025".into(), ..Default::default() }
}

#[test]
fn text_response_translates_and_accounts_billed_units() {
    let t = translate_response(&ctx(), TEXT_RESPONSE.as_bytes()).unwrap();
    assert_eq!(t.usage.unwrap(), Usage { input_tokens: 5, output_tokens: 6, ..Default::default() });
    assert_eq!(
        body_of(&t),
        json!({"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","object":"chat.completion","created":1_750_000_000u64,"model":"command-a-03-2025",
        "choices":[{"index":0,"message":{"role":"assistant","content":"Hello w\u{f6}rld \u{1F30D}","refusal":null},"logprobs":null,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0},
                 "completion_tokens_details":{"reasoning_tokens":0}}})
    );
}

#[test]
fn tool_call_response_keeps_the_plan_as_content() {
    let t = translate_response(&ctx(), TOOL_RESPONSE.as_bytes()).unwrap();
    assert_eq!(t.usage.unwrap(), Usage { input_tokens: 30, output_tokens: 9, ..Default::default() }, "float counts are read");
    let v = body_of(&t);
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "I will look up the weather.");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
               {"id":"now_def","type":"function","function":{"name":"now","arguments":"{}"}}])
    );
    let bare = r#"{"id":"x","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f"}}]}}"#;
    let v = body_of(&translate_response(&ctx(), bare.as_bytes()).unwrap());
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{}");
}

#[test]
fn finish_reasons_thinking_and_usage_fallback() {
    for (reason, finish) in [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")] {
        assert_eq!(crate::openai::chat_answer::finish_reason(finish_reason(reason)), finish);
    }
    let body = r#"{"id":"x","finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"cut"}]},
        "usage":{"tokens":{"input_tokens":4,"output_tokens":2}}}"#;
    let t = translate_response(&ctx(), body.as_bytes()).unwrap();
    assert_eq!(t.usage.unwrap().input_tokens, 4, "`tokens` stands in when `billed_units` is missing");
    let v = body_of(&t);
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "hmm");
    assert_eq!(v["choices"][0]["message"]["content"], "cut");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[test]
fn error_and_timeout_finishes_are_errors() {
    for (reason, status, code) in [("ERROR", 500, "provider_error"), ("TIMEOUT", 504, "provider_timeout")] {
        let body = format!(r#"{{"id":"x","finish_reason":"{reason}","message":{{"role":"assistant","content":[]}}}}"#);
        let e = translate_response(&ctx(), body.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (status, Some(code)));
    }
}

#[test]
fn garbage_or_wrong_shape_is_502() {
    for body in [&b"not json"[..], br#"{"id":"x"}"#, br#"{"id":"x","finish_reason":"COMPLETE","message":"hi"}"#] {
        let e = translate_response(&ctx(), body).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (502, Some("bad_upstream_response")), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn errors_map_status_type_and_message() {
    let cases = [
        (400, 400, "invalid_request_error", None),
        (401, 401, "authentication_error", Some("invalid_api_key")),
        (498, 401, "authentication_error", Some("invalid_api_key")),
        (403, 403, "permission_error", None),
        (404, 404, "invalid_request_error", Some("not_found")),
        (422, 422, "invalid_request_error", None),
        (429, 429, "rate_limit_error", Some("rate_limit_exceeded")),
        (500, 500, "api_error", None),
        (503, 503, "api_error", Some("overloaded")),
        (504, 504, "api_error", Some("provider_timeout")),
    ];
    for (upstream, status, kind, code) in cases {
        let e = translate_error(upstream, br#"{"id":"a1b2","message":"invalid request: message must be at least 1 token long"}"#);
        assert_eq!((e.status, &*e.kind, e.code.as_deref()), (status, kind, code), "{upstream}");
        assert_eq!(e.message, "invalid request: message must be at least 1 token long");
    }
    let c = config("");
    let e = super::super::translate_error(&c.providers[0], 498, None, br#"{"id":"x","message":"invalid api token"}"#);
    assert_eq!((e.status, e.message.as_str()), (401, "Provider `cohere` rejected the gateway's credentials: invalid api token"));
    assert!(translate_error(502, b"<html>bad gateway</html>").message.contains("<html>bad gateway</html>"));
    assert_eq!(translate_error(500, b"").message, "The provider answered HTTP 500.");
}

// ---- embeddings ------------------------------------------------------------------------------

fn embed_request(body: &str) -> Result<UpstreamRequest, ApiError> {
    let c = config("");
    let req = embeddings::parse(body.as_bytes())?;
    build_embeddings(&c.providers[0], &req, "embed-v4.0")
}

#[test]
fn embeddings_request_is_cohere_embed() {
    let b = embed_request(r#"{"model":"e","input":["a b","c"],"dimensions":256,"encoding_format":"base64","user":"u"}"#).unwrap();
    assert_eq!(b.path.as_deref(), Some("/v2/embed"));
    assert_eq!(
        serde_json::from_slice::<Value>(&b.body.unwrap()).unwrap(),
        json!({"model":"embed-v4.0","texts":["a b","c"],"input_type":"search_document","embedding_types":["float"],"output_dimension":256})
    );
    let b = embed_request(r#"{"model":"e","input":"one"}"#).unwrap();
    let v: Value = serde_json::from_slice(&b.body.unwrap()).unwrap();
    assert_eq!(v["texts"], json!(["one"]));
    assert!(v.get("output_dimension").is_none());
    for bad in [r#"{"model":"e","input":[1,2]}"#.to_string(), format!(r#"{{"model":"e","input":[{}]}}"#, vec!["\"x\""; 97].join(","))] {
        let e = embed_request(&bad).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("input")));
    }
}

const EMBED_RESPONSE: &str = r#"{"id":"da6e531f","texts":["a","b"],"embeddings":{"float":[[0.5,-1.25],[1.0,0]]},
    "meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":2}},"response_type":"embeddings_by_type"}"#;

#[test]
fn embeddings_response_becomes_an_openai_list() {
    let t = translate_embeddings(&ctx(), EMBED_RESPONSE.as_bytes()).unwrap();
    assert_eq!(t.usage.unwrap(), Usage { input_tokens: 2, ..Default::default() });
    assert_eq!(
        body_of(&t),
        json!({"object":"list","model":"command-a-03-2025","usage":{"prompt_tokens":2,"total_tokens":2},
        "data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25]},{"object":"embedding","index":1,"embedding":[1.0,0]}]})
    );
    let base64 = ResponseContext { base64: true, ..ctx() };
    let v = body_of(&translate_embeddings(&base64, EMBED_RESPONSE.as_bytes()).unwrap());
    // 1.0f32 = 00 00 80 3f, 0.0f32 = 00 00 00 00
    assert_eq!(v["data"][1]["embedding"], "AACAPwAAAAA=");
    let e = translate_embeddings(&ctx(), br#"{"embeddings":{"int8":[[1]]}}"#).unwrap_err();
    assert_eq!(e.status, 502);
}

// ---- streaming -------------------------------------------------------------------------------

const TEXT_STREAM: &str = "event: message-start\n\
data: {\"id\":\"c14c80c3-18eb-4519-9460-6c92edd8cfb4\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\n\
event: content-start\n\
data: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
event: content-delta\n\
data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hello w\u{f6}rld \"}}}}\n\n\
event: content-delta\n\
data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"\u{1F30D}\"}}}}\n\n\
event: content-end\n\
data: {\"type\":\"content-end\",\"index\":0}\n\n\
event: message-end\n\
data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":5,\"output_tokens\":6},\"tokens\":{\"input_tokens\":71,\"output_tokens\":6},\"cached_tokens\":0}}}\n\n\
data: [DONE]\n\n";

const TOOL_STREAM: &str = "event: message-start\r\n\
data: {\"id\":\"tool-1\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\r\n\r\n\
event: tool-plan-delta\r\n\
data: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"I will look up \"}}}\r\n\r\n\
event: tool-plan-delta\r\n\
data: {\"type\":\"tool-plan-delta\",\"delta\":{\"message\":{\"tool_plan\":\"the weather.\"}}}\r\n\r\n\
event: tool-call-start\r\n\
data: {\"type\":\"tool-call-start\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"get_weather_abc\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}}}}\r\n\r\n\
event: tool-call-delta\r\n\
data: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"city\\\": \\\"Par\"}}}}}\r\n\r\n\
event: tool-call-delta\r\n\
data: {\"type\":\"tool-call-delta\",\"index\":0,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"is\\\"}\"}}}}}\r\n\r\n\
event: tool-call-end\r\n\
data: {\"type\":\"tool-call-end\",\"index\":0}\r\n\r\n\
event: tool-call-start\r\n\
data: {\"type\":\"tool-call-start\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"now_def\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"\"}}}}}\r\n\r\n\
event: tool-call-delta\r\n\
data: {\"type\":\"tool-call-delta\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{}\"}}}}}\r\n\r\n\
event: tool-call-end\r\n\
data: {\"type\":\"tool-call-end\",\"index\":1}\r\n\r\n\
event: message-end\r\n\
data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\",\"usage\":{\"billed_units\":{\"input_tokens\":30,\"output_tokens\":9},\"tokens\":{\"input_tokens\":900,\"output_tokens\":40}}}}\r\n\r\n\
data: [DONE]\r\n\r\n";

fn run(chunks: &[&[u8]], wants_usage: bool) -> (String, StreamState) {
    let mut s = StreamState::new(&test_support::stream_ctx("command-a-03-2025", wants_usage));
    let out = test_support::translate_stream(&mut s, Decoder::sse(1 << 16), chunks, StreamState::on_event, StreamState::finish);
    (out, s)
}

#[test]
fn text_stream_translates_to_openai_chunks() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], true);
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(out.matches("[DONE]").count(), 1, "Cohere's own [DONE] is not repeated");
    let chunks = chunks_of(&out);
    test_support::assert_chunk_headers(&chunks, "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "command-a-03-2025");
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role":"assistant","content":""}));
    assert_eq!(content_of(&chunks), "Hello w\u{f6}rld \u{1F30D}");
    assert_eq!(finish_reasons(&chunks), ["stop"]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!((last["usage"]["prompt_tokens"].as_u64(), last["usage"]["completion_tokens"].as_u64()), (Some(5), Some(6)));
    assert!(s.completed());
    assert!(!out.contains("event:"));
}

#[test]
fn usage_chunk_only_when_asked() {
    let (out, s) = run(&[TEXT_STREAM.as_bytes()], false);
    assert!(!out.contains("\"usage\""));
    assert_eq!(s.usage().unwrap().output_tokens, 6, "usage is still recorded");
}

#[test]
fn tool_stream_yields_plan_text_then_tool_call_deltas() {
    let (out, _) = run(&[TOOL_STREAM.as_bytes()], false);
    let chunks = chunks_of(&out);
    assert_eq!(content_of(&chunks), "I will look up the weather.");
    let calls = tool_call_deltas(&chunks);
    assert_eq!(calls[0], &json!([{"index":0,"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":""}}]));
    let args = |i: u64| -> String {
        calls.iter().filter(|c| c[0]["index"] == i).map(|c| c[0]["function"]["arguments"].as_str().unwrap()).collect()
    };
    assert_eq!(serde_json::from_str::<Value>(&args(0)).unwrap(), json!({"city":"Paris"}));
    assert_eq!(args(1), "{}");
    assert_eq!(calls.iter().filter(|c| c[0].get("id").is_some()).count(), 2, "each call's id comes once, first");
}

#[test]
fn stream_and_non_stream_agree() {
    for (stream, whole) in [(TEXT_STREAM, TEXT_RESPONSE), (TOOL_STREAM, TOOL_RESPONSE)] {
        let (out, s) = run(&[stream.as_bytes()], true);
        let t = translate_response(&ctx(), whole.as_bytes()).unwrap();
        assert_eq!(s.usage(), t.usage);
        let v = body_of(&t);
        let chunks = chunks_of(&out);
        let message = &v["choices"][0]["message"];
        assert_eq!(content_of(&chunks), message["content"].as_str().unwrap_or_default());
        assert_eq!(finish_reasons(&chunks), [v["choices"][0]["finish_reason"].as_str().unwrap()]);
        assert_eq!(chunks.last().unwrap()["usage"], v["usage"]);
        let names: Vec<&str> =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str()).collect();
        let whole_names: Vec<&str> =
            message["tool_calls"].as_array().into_iter().flatten().map(|c| c["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, whole_names);
    }
}

#[test]
fn every_split_position_gives_identical_output() {
    for body in [TEXT_STREAM, TOOL_STREAM] {
        test_support::assert_any_split_gives_the_same_output(body.as_bytes(), |chunks| run(chunks, true), StreamState::completed);
    }
}

#[test]
fn truncated_stream_ends_with_the_truncation_error() {
    let cut = &TEXT_STREAM[..TEXT_STREAM.find("event: message-end").unwrap()];
    let (out, s) = run(&[cut.as_bytes()], true);
    let last = last_event(&out);
    assert_eq!(last["error"]["code"], "stream_truncated");
    assert!(!out.contains("[DONE]"));
    assert!(!s.completed());
    assert!(s.usage().is_none());
}

#[test]
fn error_finish_mid_stream_becomes_an_error_event() {
    let body = format!(
        "{}event: message-end\ndata: {{\"type\":\"message-end\",\"delta\":{{\"error\":\"internal\",\"finish_reason\":\"ERROR\",\"usage\":{{\"billed_units\":{{\"input_tokens\":5,\"output_tokens\":2}}}}}}}}\n\ndata: [DONE]\n\n",
        &TEXT_STREAM[..TEXT_STREAM.find("event: content-end").unwrap()]
    );
    let (out, s) = run(&[body.as_bytes()], true);
    let last = last_event(&out);
    assert_eq!(
        (last["error"]["code"].as_str(), last["error"]["message"].as_str()),
        (Some("provider_error"), Some("The provider failed while generating the answer: internal"))
    );
    assert!(!out.contains("[DONE]"));
    assert!(!out.contains("stream_truncated"));
    assert!(!s.completed());
    assert_eq!(s.usage().unwrap().output_tokens, 2, "what was generated is still accounted");
}

#[test]
fn malformed_event_is_reported_not_forwarded() {
    let (out, s) = run(&[b"event: message-start\ndata: {not json\n\n"], false);
    assert!(out.contains("bad_upstream_response"));
    assert_eq!(out.matches("data: ").count(), 1);
    assert!(!s.completed());
}

#[test]
fn openai_metadata_is_dropped_and_said_so() {
    let (_, edits) = translate_with(&config(""), json!({"model":"command","messages":[user("x")],"metadata":{"a":"b"}})).unwrap();
    assert_eq!(edits.dropped, vec!["metadata"]);
}
