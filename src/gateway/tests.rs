use super::exchange::{Finished, ResponseHead, ResponseMode};
use super::*;
use crate::host::memory::MemoryStore;
use serde_json::{Value, json};

thread_local! {
    static STORE: MemoryStore = MemoryStore::default();
}

fn head(status: u16, content_type: Option<&str>) -> ResponseHead<'_> {
    ResponseHead { status, content_type, ..Default::default() }
}

fn headers(g: &Gateway, method: &str, path: &str, content_length: Option<&str>) -> OnHeaders {
    STORE.with(|s| g.on_request_headers(&RequestHead { method, path, content_length, authorization: None }, s, 0))
}

fn chat<'g>(g: &'g Gateway, body: &[u8], now_secs: u64) -> Result<Forward<'g>, ApiError> {
    let incoming = Incoming { operation: Operation::Chat, caller: Caller::default(), headers: &[], explain: false };
    match STORE.with(|s| g.on_body(&incoming, body, s, now_secs * 1000))? {
        Next::Forward(f) => Ok(f),
        other => panic!("{other:?}"),
    }
}

const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "openai", "api_key_env": "OPENAI_API_KEY"},
        "anthropic": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        "next": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "ANTHROPIC_API_KEY", "api_version": "2026-10-21"}
    },
    "models": {
        "gpt-4o": {"provider": "openai", "model": "gpt-4o-2024-08-06", "aliases": ["gpt"]},
        "o3": {"provider": "openai"},
        "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5", "params": {"top_p": "reject"}},
        "opus": {"provider": "anthropic", "model": "claude-opus-4-7"},
        "claude-next": {"provider": "next", "model": "claude-sonnet-4-5"}
    },
    "limits": {"max_request_bytes": 4096}
}"#;

fn gateway() -> Gateway {
    let env = |k: &str| Some(format!("{k}-value"));
    Gateway::new(Config::from_json(CONFIG.as_bytes(), &env, 1).unwrap())
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn status_of(h: OnHeaders) -> u16 {
    match h {
        OnHeaders::Respond(r) => r.status,
        other => panic!("{other:?}"),
    }
}

#[test]
fn endpoints_are_classified() {
    let g = gateway();
    assert_eq!(headers(&g, "POST", "/v1/chat/completions", Some("100")), OnHeaders::ReadBody(Caller::default(), Operation::Chat));
    assert_eq!(headers(&g, "POST", "/v1/chat/completions?x=1", None), OnHeaders::ReadBody(Caller::default(), Operation::Chat));
    assert_eq!(headers(&g, "GET", "/healthz", None), OnHeaders::PassThrough);
    assert_eq!(headers(&g, "GET", "/v1", None), OnHeaders::PassThrough);
    assert_eq!(status_of(headers(&g, "GET", "/v1/chat/completions", None)), 405);
    assert_eq!(status_of(headers(&g, "POST", "/v1/chat/completions", Some("5000"))), 413);
    assert_eq!(status_of(headers(&g, "POST", "/v1/completions", None)), 404);
    assert_eq!(status_of(headers(&g, "DELETE", "/v1/models", None)), 405);
    assert_eq!(status_of(headers(&g, "GET", "/v1/models/nope", None)), 404);
    match headers(&g, "GET", "/v1/models", None) {
        OnHeaders::Respond(r) => {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["data"].as_array().unwrap().len(), 6);
            assert_eq!(r.headers, vec![("content-type", "application/json".to_string())]);
        }
        other => panic!("{other:?}"),
    }
    match headers(&g, "GET", "/v1/models/gpt", None) {
        OnHeaders::Respond(r) => assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap()["owned_by"], "openai"),
        other => panic!("{other:?}"),
    }
    match headers(&g, "PUT", "/v1/chat/completions", None) {
        OnHeaders::Respond(r) => assert!(r.headers.contains(&("allow", "POST".to_string()))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn openai_request_is_rewritten_for_its_upstream_model() {
    let g = gateway();
    let raw = body(json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]}));
    let f = chat(&g, &raw, 5).unwrap();
    assert_eq!(f.provider.unwrap().name, "openai");
    assert_eq!(f.provider.unwrap().cluster, "openai");
    assert_eq!(f.path().unwrap(), "/v1/chat/completions");
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert_eq!(sent["model"], "gpt-4o-2024-08-06");
    assert_eq!(f.exchange.upstream_model, "gpt-4o-2024-08-06");
    assert_eq!(
        f.exchange.client_headers(&g.config),
        vec![("x-tollgate-provider", "openai".to_string()), ("x-tollgate-model", "gpt-4o-2024-08-06".to_string())]
    );
}

#[test]
fn unknown_model_and_bad_bodies_are_client_errors() {
    let g = gateway();
    let e = chat(&g, &body(json!({"model":"nope","messages":[{"role":"user","content":"x"}]})), 0).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (404, Some("model_not_found")));
    let e = chat(&g, b"{", 0).unwrap_err();
    assert_eq!(e.status, 400);
    let e = chat(&g, &vec![b' '; 5000], 0).unwrap_err();
    assert_eq!(e.status, 413);
}

#[test]
fn provider_without_its_key_answers_a_clear_500() {
    let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "k".to_string());
    let g = Gateway::new(Config::from_json(CONFIG.as_bytes(), &env, 1).unwrap());
    let e = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"x"}]})), 0).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (500, Some("provider_credentials_missing")));
    assert!(e.message.contains("ANTHROPIC_API_KEY"));
    assert!(chat(&g, &body(json!({"model":"gpt","messages":[{"role":"user","content":"x"}]})), 0).is_ok());
}

#[test]
fn policies_drop_reject_and_rename() {
    let g = gateway();
    // shipped default: claude-opus-4-7 rejects temperature upstream, so it is dropped
    let f = chat(&g, &body(json!({"model":"opus","messages":[{"role":"user","content":"x"}],"temperature":0.5})), 0).unwrap();
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert!(sent.get("temperature").is_none());
    assert!(f.exchange.client_headers(&g.config).contains(&("x-tollgate-dropped-params", "temperature".to_string())));
    // configured reject
    let e = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"x"}],"top_p":0.5})), 0).unwrap_err();
    assert_eq!((e.status, e.param.as_deref()), (400, Some("top_p")));
    // API version 2026-10-21 takes no sampling parameters
    let f = chat(&g, &body(json!({"model":"claude-next","messages":[{"role":"user","content":"x"}],"temperature":0.5,"top_p":0.9})), 0)
        .unwrap();
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert!(sent.get("temperature").is_none() && sent.get("top_p").is_none());
    assert_eq!(f.exchange.dropped, vec!["temperature", "top_p"]);
    // reasoning model: max_tokens renamed, temperature dropped, in the raw body
    let f = chat(&g, &body(json!({"model":"o3","messages":[{"role":"user","content":"x"}],"temperature":0.5,"max_tokens":9})), 0).unwrap();
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert_eq!(sent["max_completion_tokens"], 9);
    assert!(sent.get("max_tokens").is_none() && sent.get("temperature").is_none());
}

#[test]
fn anthropic_non_streaming_exchange_end_to_end() {
    let g = gateway();
    let f = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"hi"}]})), 42).unwrap();
    assert_eq!(f.path().unwrap(), "/v1/messages");
    let mut ex = f.exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("application/json"))), ResponseMode::Buffer);
    let upstream = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
    let Finished { status, body, .. } = ex.on_complete_body(&g.config, upstream);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello");
    assert_eq!(v["created"], 42);
    assert_eq!(ex.usage.unwrap().output_tokens, 2);
    assert!(ex.completed);
}

#[test]
fn upstream_errors_become_openai_errors() {
    let g = gateway();
    let f = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"hi"}],"stream":true})), 0).unwrap();
    let mut ex = f.exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(529, Some("application/json"))), ResponseMode::Buffer);
    let fin = ex.on_complete_body(&g.config, br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
    assert_eq!(fin.status, 503);
    let v: Value = serde_json::from_slice(&fin.body.unwrap()).unwrap();
    assert_eq!(v["error"]["message"], "Overloaded");
    assert!(!ex.completed);
}

#[test]
fn streaming_request_answered_without_event_stream_is_502() {
    let g = gateway();
    let mut ex = chat(&g, &body(json!({"model":"gpt","messages":[{"role":"user","content":"hi"}],"stream":true})), 0).unwrap().exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("application/json"))), ResponseMode::Buffer);
    assert_eq!(ex.on_complete_body(&g.config, br#"{"choices":[]}"#).status, 502);
}

#[test]
fn openai_stream_passes_through_without_copies_when_nothing_changes() {
    let g = gateway();
    let f = chat(&g, &body(json!({"model":"gpt","messages":[{"role":"user","content":"hi"}],"stream":true})), 0).unwrap();
    assert!(f.exchange.ctx.injected_usage);
    let mut ex = f.exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("text/event-stream; charset=utf-8"))), ResponseMode::Stream);
    assert!(ex.is_streaming());
    let first = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
    assert_eq!(ex.on_stream_chunk(first, false), None, "whole events pass untouched");
    // an event split across chunks is held back until complete
    assert_eq!(ex.on_stream_chunk(b"data: {\"choices\":[{\"index\":0,", false), Some(Vec::new()));
    let out = ex.on_stream_chunk(b"\"delta\":{\"content\":\"b\"}}]}\n\n", false).unwrap();
    assert_eq!(out, b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n");
    let out = ex
        .on_stream_chunk(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2,\"total_tokens\":4}}\n\ndata: [DONE]\n\n",
            true,
        )
        .unwrap();
    assert_eq!(out, b"data: [DONE]\n\n", "the injected usage chunk is removed");
    assert_eq!(ex.usage.unwrap().output_tokens, 2);
    assert!(ex.completed);
}

#[test]
fn oversized_stream_event_aborts_with_an_error_event() {
    let env = |_: &str| Some("k".to_string());
    let cfg = r#"{"providers":{"a":{"kind":"anthropic","cluster":"c","api_key_env":"K"}},"models":{"m":{"provider":"a"}},"limits":{"max_stream_event_bytes":1024}}"#;
    let g = Gateway::new(Config::from_json(cfg.as_bytes(), &env, 0).unwrap());
    let mut ex = chat(&g, &body(json!({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})), 0).unwrap().exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("text/event-stream"))), ResponseMode::Stream);
    let out = ex.on_stream_chunk(&vec![b'x'; 2000], false).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("stream_event_too_large"));
    assert_eq!(ex.on_stream_chunk(b"data: more\n\n", true), Some(Vec::new()));
    assert!(!ex.completed);
}

fn bedrock_gateway(env: &dyn Fn(&str) -> Option<String>) -> Gateway {
    let cfg = r#"{"providers":{"aws":{"kind":"bedrock","cluster":"bedrock","region":"us-west-2"}},
        "models":{"nova":{"provider":"aws","model":"amazon.nova-lite-v1:0"}}}"#;
    Gateway::new(Config::from_json(cfg.as_bytes(), env, 0).unwrap())
}

fn aws_env(name: &str) -> Option<String> {
    matches!(name, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY").then(|| format!("{name}-value"))
}

#[test]
fn bedrock_exchange_signs_translates_and_maps_typed_errors() {
    let g = bedrock_gateway(&aws_env);
    let f = chat(&g, &body(json!({"model":"nova","messages":[{"role":"user","content":"hi"}]})), 1_700_000_000).unwrap();
    assert_eq!(f.path().unwrap(), "/model/amazon.nova-lite-v1%3A0/converse");
    assert_eq!(f.provider.unwrap().authority, "bedrock-runtime.us-west-2.amazonaws.com");
    let auth = f.upstream.headers.iter().find(|(n, _)| *n == "authorization").map(|(_, v)| v.as_str()).unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AWS_ACCESS_KEY_ID-value/20231114/us-west-2/bedrock/aws4_request"), "{auth}");
    let mut ex = f.exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("application/json"))), ResponseMode::Buffer);
    let upstream = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5}}"#;
    let Finished { status, body: out, .. } = ex.on_complete_body(&g.config, upstream);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&out.unwrap()).unwrap();
    assert_eq!((v["choices"][0]["message"]["content"].as_str(), v["model"].as_str()), (Some("Hello"), Some("amazon.nova-lite-v1:0")));
    assert!(ex.completed);

    let mut ex = chat(&g, &body(json!({"model":"nova","messages":[{"role":"user","content":"hi"}]})), 0).unwrap().exchange;
    ex.on_response_headers(&g.config, &head(400, Some("application/json")));
    ex.error_type = Some("ThrottlingException".into());
    let fin = ex.on_complete_body(&g.config, br#"{"message":"Too many requests"}"#);
    let v: Value = serde_json::from_slice(&fin.body.unwrap()).unwrap();
    assert_eq!((fin.status, v["error"]["code"].as_str()), (400, Some("rate_limit_exceeded")), "the header names the error");
}

#[test]
fn bedrock_event_stream_is_decoded_and_a_corrupt_frame_aborts_it() {
    use crate::stream::eventstream::tests::event;
    let g = bedrock_gateway(&aws_env);
    let req = body(json!({"model":"nova","messages":[{"role":"user","content":"hi"}],"stream":true}));
    let mut ex = chat(&g, &req, 0).unwrap().exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("text/event-stream"))), ResponseMode::Buffer, "not Bedrock's framing");
    let mut ex = chat(&g, &req, 0).unwrap().exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("application/vnd.amazon.eventstream"))), ResponseMode::Stream);
    let mut stream = event("messageStart", r#"{"role":"assistant"}"#);
    stream.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#));
    let out = String::from_utf8(ex.on_stream_chunk(&stream, false).unwrap()).unwrap();
    assert!(out.contains("\"content\":\"Hi\""), "{out}");
    let mut bad = event("messageStop", r#"{"stopReason":"end_turn"}"#);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let out = String::from_utf8(ex.on_stream_chunk(&bad, false).unwrap()).unwrap();
    assert!(out.contains("corrupt") && out.contains("bad_upstream_response"), "{out}");
    assert!(!out.contains("finish_reason\":\"stop"), "nothing from the corrupt frame is forwarded");
    assert_eq!(ex.on_stream_chunk(&event("metadata", "{}"), true), Some(Vec::new()));
    assert!(!ex.completed);
}

#[test]
fn bedrock_without_credentials_refuses_requests_naming_the_variable() {
    let g = bedrock_gateway(&|_| None);
    let e = chat(&g, &body(json!({"model":"nova","messages":[{"role":"user","content":"hi"}]})), 0).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (500, Some("provider_credentials_missing")));
    assert!(e.message.contains("AWS_ACCESS_KEY_ID"), "{}", e.message);
}

#[test]
fn header_edits_replace_the_clients_credentials_with_the_providers() {
    let g = gateway();
    let f = chat(&g, br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#, 0).unwrap();
    let mut headers: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("authorization", "Bearer client"),
        ("x-api-key", "client"),
        ("accept-encoding", "gzip"),
        ("x-custom", "a"),
        ("x-custom", "b"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    apply_header_edits(&mut headers, f.header_edits(&["authorization", "x-api-key", "accept-encoding"], Some(42)));
    let get = |name: &str| headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(headers.first().map(|(k, _)| k.as_str()), Some(":method"));
    assert_eq!(get(":path"), ["/v1/messages"]);
    assert_eq!(get(":authority"), ["api.anthropic.com"]);
    assert_eq!(get("authorization"), Vec::<&str>::new(), "the client's credentials never go upstream");
    assert_eq!(get("x-api-key"), ["ANTHROPIC_API_KEY-value"]);
    assert_eq!(get("anthropic-version"), ["2023-06-01"]);
    assert_eq!(get("accept-encoding"), Vec::<&str>::new());
    assert_eq!(get("x-custom"), ["a", "b"], "other headers keep every value");
    assert_eq!(get("content-length"), ["42"]);
}

#[test]
fn setting_a_repeated_header_leaves_one_value_in_the_first_place() {
    let mut headers = vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned()), ("A".to_owned(), "3".to_owned())];
    apply_header_edits(&mut headers, vec![("a".into(), Some("new".into()))]);
    assert_eq!(headers, [("a".to_owned(), "new".to_owned()), ("b".to_owned(), "2".to_owned())]);
    apply_header_edits(&mut headers, vec![("b".into(), None), ("c".into(), Some("4".into()))]);
    assert_eq!(headers, [("a".to_owned(), "new".to_owned()), ("c".to_owned(), "4".to_owned())]);
}

#[test]
fn a_models_policy_chooses_how_it_thinks_and_answers_in_a_schema() {
    let env = |_: &str| Some("k".to_string());
    let cfg = r#"{"providers":{"a":{"kind":"anthropic","cluster":"c","api_key_env":"K"}},"models":{
        "budget":{"provider":"a","model":"claude-opus-4-6","params":{"reasoning_effort":{"reasoning":"budget"}}},
        "tool":{"provider":"a","model":"claude-sonnet-4-5","params":{"response_format":{"json_schema":"tool"}}}}}"#;
    let g = Gateway::new(Config::from_json(cfg.as_bytes(), &env, 0).unwrap());
    let f = chat(&g, &body(json!({"model":"budget","messages":[{"role":"user","content":"hi"}],"reasoning_effort":"low"})), 0).unwrap();
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert_eq!(sent["thinking"], json!({"type":"enabled","budget_tokens":2048}), "claude-opus-4-6 thinks adaptively by default");
    let format = json!({"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}});
    let f = chat(&g, &body(json!({"model":"tool","messages":[{"role":"user","content":"hi"}],"response_format":format})), 0).unwrap();
    assert_eq!(f.exchange.ctx.answer_tool.as_deref(), Some("w"), "the answer comes from the forced tool");
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert_eq!(sent["tool_choice"], json!({"type":"tool","name":"w"}));
}
