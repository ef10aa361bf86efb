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
    STORE.with(|s| g.on_request_headers(&RequestHead { method, path, content_length, authorization: None, api_key: None }, s, &|| 0))
}

fn chat<'g>(g: &'g Gateway, body: &[u8], now_secs: u64) -> Result<Forward<'g>, ApiError> {
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &[],
        explain: false,
    };
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
    assert_eq!(
        headers(&g, "POST", "/v1/chat/completions", Some("100")),
        OnHeaders::ReadBody(Caller::default(), Operation::Chat, crate::client::Dialect::OpenAiChat)
    );
    assert_eq!(
        headers(&g, "POST", "/v1/chat/completions?x=1", None),
        OnHeaders::ReadBody(Caller::default(), Operation::Chat, crate::client::Dialect::OpenAiChat)
    );
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
    assert_eq!(f.provider().unwrap().name, "openai");
    assert_eq!(f.provider().unwrap().cluster, "openai");
    assert_eq!(f.path().unwrap(), "/v1/chat/completions");
    let sent: Value = serde_json::from_slice(&f.upstream.body.unwrap()).unwrap();
    assert_eq!(sent["model"], "gpt-4o-2024-08-06");
    assert_eq!(f.exchange.upstream_model(), "gpt-4o-2024-08-06");
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
    assert_eq!(f.provider().unwrap().authority, "bedrock-runtime.us-west-2.amazonaws.com");
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
    ex.on_response_headers(&g.config, &ResponseHead { error_type: Some("ThrottlingException"), ..head(400, Some("application/json")) });
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
fn request_headers_replace_the_clients_credentials_and_keep_only_the_allowlist() {
    let g = gateway();
    let f = chat(&g, br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#, 0).unwrap();
    let client: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("authorization", "Bearer client"),
        ("x-api-key", "client"),
        ("accept-encoding", "gzip"),
        ("traceparent", "00-1-2-01"),
        ("x-custom", "a"),
        ("x-custom", "b"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let headers = f.request_headers(&client, Some(42));
    let get = |name: &str| headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
    assert_eq!(headers.first().map(|(k, _)| k.as_str()), Some(":method"));
    assert_eq!(get(":path"), ["/v1/messages"]);
    assert_eq!(get(":authority"), ["api.anthropic.com"]);
    assert_eq!(get("authorization"), Vec::<&str>::new(), "the client's credentials never go upstream");
    assert_eq!(get("x-api-key"), ["ANTHROPIC_API_KEY-value"]);
    assert_eq!(get("anthropic-version"), ["2023-06-01"]);
    assert_eq!(get("accept-encoding"), Vec::<&str>::new(), "compressed answers could not be translated chunk by chunk");
    assert_eq!(get("traceparent"), ["00-1-2-01"]);
    // Behaviour change (issue 10): headers outside the allowlist and `forward_headers` stay here.
    assert_eq!(get("x-custom"), Vec::<&str>::new());
    assert_eq!(get("content-length"), ["42"]);
    assert_eq!(get("x-tollgate-cluster"), ["anthropic"]);
}

#[test]
fn a_providers_forward_headers_reach_it() {
    let json = CONFIG.replace(
        r#""api_key_env": "ANTHROPIC_API_KEY"},"#,
        r#""api_key_env": "ANTHROPIC_API_KEY", "forward_headers": ["Anthropic-Beta", "x-team-*"]},"#,
    );
    let env = |k: &str| Some(format!("{k}-value"));
    let g = Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap());
    let f = chat(&g, br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#, 0).unwrap();
    let client = vec![
        ("anthropic-beta".to_owned(), "b".to_owned()),
        ("x-team-id".to_owned(), "t".to_owned()),
        ("cookie".to_owned(), "c".to_owned()),
    ];
    let names: Vec<String> = f.request_headers(&client, None).into_iter().map(|(k, _)| k).collect();
    assert!(names.contains(&"anthropic-beta".to_owned()) && names.contains(&"x-team-id".to_owned()), "{names:?}");
    assert!(!names.contains(&"cookie".to_owned()));
    let f = chat(&g, br#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#, 0).unwrap();
    assert!(f.request_headers(&client, None).iter().all(|(k, _)| k != "anthropic-beta"), "another provider's list does not apply");
}

#[test]
fn forward_headers_may_not_name_credentials() {
    let json = CONFIG.replace(
        r#""api_key_env": "ANTHROPIC_API_KEY"},"#,
        r#""api_key_env": "ANTHROPIC_API_KEY", "forward_headers": ["authorization"]},"#,
    );
    let e = Config::from_json(json.as_bytes(), &|_| Some("k".into()), 1).unwrap_err();
    assert!(e.to_string().contains("forward_headers[0]"), "{e}");
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
fn provider_errors_name_the_model_the_client_asked_for() {
    let g = gateway();
    let mut ex = chat(&g, &body(json!({"model":"gpt","messages":[{"role":"user","content":"hi"}]})), 0).unwrap().exchange;
    ex.on_response_headers(&g.config, &head(404, Some("application/json")));
    let fin = ex.on_complete_body(
        &g.config,
        br#"{"error":{"message":"The model `gpt-4o-2024-08-06` does not exist","type":"invalid_request_error"}}"#,
    );
    let v: Value = serde_json::from_slice(&fin.body.unwrap()).unwrap();
    assert_eq!(v["error"]["message"], "The model `gpt` does not exist");
}

#[test]
fn a_key_sees_only_the_models_it_may_use() {
    let hash = |k: &str| crate::accounting::keys::hash(k).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let auth = format!(
        r#""auth": {{"keys": [{{"id": "narrow", "sha256": "{}", "models": ["claude*"]}}, {{"id": "wide", "sha256": "{}"}}]}},"#,
        hash("tg-narrow"),
        hash("tg-wide")
    );
    let json = CONFIG.replacen("\"limits\"", &format!("{auth}\n    \"limits\""), 1);
    let env = |k: &str| Some(format!("{k}-value"));
    let g = Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap());
    let ask = |path: &str, key: &str| {
        let authorization = format!("Bearer {key}");
        let head = RequestHead { method: "GET", path, content_length: None, authorization: Some(&authorization), api_key: None };
        match STORE.with(|s| g.on_request_headers(&head, s, &|| 0)) {
            OnHeaders::Respond(r) => (r.status, serde_json::from_slice::<Value>(&r.body).unwrap()),
            other => panic!("{other:?}"),
        }
    };
    let ids = |v: &Value| v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let (status, narrow) = ask("/v1/models", "tg-narrow");
    assert_eq!((status, ids(&narrow)), (200, vec!["claude".to_owned(), "claude-next".to_owned()]));
    let (_, wide) = ask("/v1/models", "tg-wide");
    assert_eq!(ids(&wide).len(), 6, "{wide}");
    assert_eq!(
        serde_json::to_vec(&wide).unwrap(),
        serde_json::to_vec(&serde_json::from_slice::<Value>(&g.config.models_json).unwrap()).unwrap()
    );
    assert_eq!(ask("/v1/models/claude", "tg-narrow").0, 200);
    let (status, e) = ask("/v1/models/gpt-4o", "tg-narrow");
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("model_not_found")));
    assert_eq!(ask("/v1/models/gpt-4o", "tg-wide").0, 200);
}

/// A gateway whose budget pays for little: $0.001 a day, at $1 input and $2 output per million.
fn budgeted_gateway() -> Gateway {
    let json = CONFIG.replace(
        r#""limits": {"max_request_bytes": 4096}"#,
        r#""limits": {"max_request_bytes": 4096}, "budget": {"daily_usd": "0.001"},
           "prices": {"gpt-4o-2024-08-06": {"input": "1", "output": "2"}, "claude-sonnet-4-5": {"input": "1", "output": "2", "cache_write": "1.25"}}"#,
    );
    let env = |k: &str| Some(format!("{k}-value"));
    Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap())
}

fn forward_with<'g>(g: &'g Gateway, store: &MemoryStore, request: &[u8]) -> Result<Forward<'g>, ApiError> {
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &[],
        explain: false,
    };
    match g.on_body(&incoming, request, store, 0)? {
        Next::Forward(f) => Ok(f),
        other => panic!("{other:?}"),
    }
}

#[test]
fn budgets_clamp_the_output_limit_to_what_they_still_pay_for() {
    let g = budgeted_gateway();
    let cap: u128 = 1_000_000_000;
    for (model, sent_limit, input_rate) in [("gpt-4o", "max_tokens", 1_000_000u128), ("claude", "max_tokens", 1_250_000)] {
        let store = MemoryStore::default();
        g.config.accounting.ensure_records(&store);
        let request = body(json!({"model": model, "messages": [{"role": "user", "content": "tell me everything"}]}));
        let f = forward_with(&g, &store, &request).unwrap();
        let sent: Value = serde_json::from_slice(f.upstream.body.as_ref().unwrap()).unwrap();
        let limit = u128::from(sent[sent_limit].as_u64().unwrap());
        let input = request.len() as u128 * input_rate;
        assert_eq!(limit, (cap - input) / 2_000_000, "{model}: the largest output the cap pays for");
        let reserved: u128 = f.exchange.charges.scopes.iter().map(|(_, r)| r).sum();
        assert_eq!(reserved, input + limit * 2_000_000, "{model}: the reservation is the clamped worst case");
        assert!(reserved <= cap);
        // nothing is left for a second request, not even one output token
        let e = forward_with(&g, &store, &request).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (429, Some("budget_exceeded")), "{model}");
    }
    // a smaller limit of the client's own is kept as sent
    let store = MemoryStore::default();
    let request = body(json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}));
    let sent: Value = serde_json::from_slice(forward_with(&g, &store, &request).unwrap().upstream.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent["max_tokens"], 10);
    // without a budget nothing is clamped or added
    let open = gateway();
    let f = chat(&open, &body(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})), 0).unwrap();
    let sent: Value = serde_json::from_slice(f.upstream.body.as_ref().unwrap()).unwrap();
    assert!(sent.get("max_tokens").is_none());
}

#[test]
fn a_request_the_budget_cannot_pay_for_is_refused_and_reserves_nothing() {
    let g = budgeted_gateway();
    let store = MemoryStore::default();
    g.config.accounting.ensure_records(&store);
    // 1,000 input tokens of bound ($0.001) leave nothing for output
    let request = body(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(1000)}]}));
    let e = forward_with(&g, &store, &request).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (429, Some("budget_exceeded")));
    let global = &g.config.accounting.scopes[0].key;
    assert_eq!(crate::accounting::ledger::read(&store, global, 0).reserved_at(0), 0);
    // a translation error after the reservation gives it back
    let bad = body(json!({"model": "claude", "top_p": 0.5, "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(forward_with(&g, &store, &bad).unwrap_err().param.as_deref(), Some("top_p"));
    assert_eq!(crate::accounting::ledger::read(&store, global, 0).reserved_at(0), 0);
}

#[test]
fn a_request_refused_by_its_budget_leaves_the_probe_to_the_next() {
    let json = CONFIG.replace(
        r#""limits": {"max_request_bytes": 4096}"#,
        r#""limits": {"max_request_bytes": 4096}, "budget": {"daily_usd": "0.0007"},
           "prices": {"gpt-4o": {"input": "0.1", "output": "0.1"}},
           "breaker": {"consecutive_failures": 1, "cooldown_seconds": 10},
           "routes": [{"name": "r", "match": {"models": ["routed"]}, "targets": [{"provider": "openai", "model": "gpt-4o"}],
                       "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}]"#,
    );
    let env = |k: &str| Some(format!("{k}-value"));
    let g = Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap());
    let store = MemoryStore::default();
    g.config.accounting.ensure_records(&store);
    let router = &g.config.router;
    let openai = g.config.providers.iter().position(|p| p.name == "openai").unwrap();
    let primary = router.find_target(openai, "gpt-4o").unwrap();
    let key = &router.target(primary).unwrap().health_key;
    crate::router::health::record(&store, key, 0, &router.breaker, crate::router::health::Observation::Failure).unwrap();
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &[],
        explain: false,
    };
    let after_cooldown = 10_000;
    // 4,000 bytes at $0.1/M is $0.0004 of input: with its output, two of them cannot both fit
    let big = body(json!({"model": "routed", "max_tokens": 1, "messages": [{"role": "user", "content": "x".repeat(3900)}]}));
    let held = match g.on_body(&incoming, &big, &store, after_cooldown).unwrap() {
        Next::Forward(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(held.exchange.target, Some(primary), "the probe");
    assert_eq!(crate::router::health::read(&store, key).state, crate::router::health::State::HalfOpen);
    // the probe reports back failed: open again, and a new cool-down
    crate::router::health::record(&store, key, after_cooldown, &router.breaker, crate::router::health::Observation::Failure).unwrap();
    let later = after_cooldown + 10_000;
    let e = g.on_body(&incoming, &big, &store, later).unwrap_err();
    assert_eq!(e.status, 429, "the first request still holds its reservation");
    assert_eq!(crate::router::health::read(&store, key).state, crate::router::health::State::Open, "the refused request took no probe");
    let small = body(json!({"model": "routed", "messages": [{"role": "user", "content": "x"}]}));
    match g.on_body(&incoming, &small, &store, later).unwrap() {
        Next::Forward(f) => assert_eq!(f.exchange.target, Some(primary), "the next admitted request probes"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failover_request_is_clamped_at_the_dearest_target_price_for_every_attempt() {
    let json = CONFIG.replace(
        r#""limits": {"max_request_bytes": 4096}"#,
        r#""limits": {"max_request_bytes": 4096}, "budget": {"daily_usd": "0.001"},
           "prices": {"gpt-4o": {"input": "1", "output": "1"}, "claude-sonnet-4-5": {"input": "1", "output": "2"}},
           "failover_clusters": [{"cluster": "both", "providers": ["openai", "anthropic"]}],
           "routes": [{"name": "r", "match": {"models": ["routed"]}, "targets": [{"provider": "openai", "model": "gpt-4o"}],
                       "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}]"#,
    );
    let env = |k: &str| Some(format!("{k}-value"));
    let g = Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap());
    let store = MemoryStore::default();
    let request = body(json!({"model": "routed", "messages": [{"role": "user", "content": "write at length"}]}));
    let f = forward_with(&g, &store, &request).unwrap();
    assert_eq!(f.cluster(), Some("both"));
    // the upstream filter translates each attempt from this body: it carries the limit
    let sent: Value = serde_json::from_slice(f.upstream.body.as_ref().unwrap()).unwrap();
    let limit = u128::from(sent["max_tokens"].as_u64().unwrap());
    let input = request.len() as u128 * 1_000_000;
    assert_eq!(limit, (1_000_000_000 - input) / 2_000_000, "priced at the fallback's dearer output");
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "write at length"}]));
}

#[test]
fn errors_envoy_answered_itself_say_no_provider_was_reached() {
    let g = gateway();
    for (details, status, says) in [
        ("cluster_not_found", 503, "missing from the gateway's Envoy configuration"),
        ("no_healthy_upstream", 503, "no healthy endpoint"),
        ("upstream_response_timeout", 504, "did not answer in time"),
        ("upstream_reset_before_response_started{connection_failure}", 502, "failed before it answered"),
    ] {
        let mut ex = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"hi"}]})), 0).unwrap().exchange;
        let head = ResponseHead { status: 503, envoy_reply: Some(details), ..Default::default() };
        assert_eq!(ex.on_response_headers(&g.config, &head), ResponseMode::Buffer);
        let Finished { status: got, body, .. } = ex.on_complete_body(&g.config, b"no healthy upstream");
        let e: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(got, status, "{details}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(says) && message.contains("`anthropic`") && !message.contains("HTTP 503"), "{message}");
        assert_eq!(e["error"]["code"], "provider_unreachable");
    }
}

#[test]
fn an_answer_larger_than_the_gateway_buffers_is_replaced_by_a_502_once() {
    let g = gateway();
    let mut ex = chat(&g, &body(json!({"model":"claude","messages":[{"role":"user","content":"hi"}]})), 0).unwrap().exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("application/json"))), ResponseMode::Buffer);
    let limit = g.config.limits.max_response_bytes;
    assert_eq!(ex.too_large(&g.config, limit), None);
    let refused = ex.too_large(&g.config, limit + 1).unwrap();
    assert_eq!(refused.status, 502);
    let e: Value = serde_json::from_slice(&refused.body.unwrap()).unwrap();
    assert_eq!(e["error"]["code"], "response_too_large");
    assert!(ex.is_refused() && ex.too_large(&g.config, limit + 2).is_none(), "answered once");
    // streams are never buffered, whatever their size
    let f = chat(&g, &body(json!({"model":"claude","stream":true,"messages":[{"role":"user","content":"hi"}]})), 0).unwrap();
    let mut ex = f.exchange;
    assert_eq!(ex.on_response_headers(&g.config, &head(200, Some("text/event-stream"))), ResponseMode::Stream);
    assert_eq!(ex.too_large(&g.config, usize::MAX), None);
}

#[test]
fn a_failover_plan_skips_targets_that_refuse_the_request() {
    let json = CONFIG.replace(
        r#""limits": {"max_request_bytes": 4096}"#,
        r#""limits": {"max_request_bytes": 4096},
           "failover_clusters": [{"cluster": "both", "providers": ["openai", "anthropic"]}],
           "routes": [{"name": "r", "match": {"models": ["routed"]}, "targets": [{"provider": "openai", "model": "gpt-4o"}],
                       "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5", "params": {"top_p": "reject"}}]}]"#,
    );
    let env = |k: &str| Some(format!("{k}-value"));
    let g = Gateway::new(Config::from_json(json.as_bytes(), &env, 1).unwrap());
    let store = MemoryStore::default();
    // both accept: the failover cluster
    let f = forward_with(&g, &store, &body(json!({"model": "routed", "messages": [{"role": "user", "content": "x"}]}))).unwrap();
    assert_eq!((f.cluster(), f.exchange.plan().len()), (Some("both"), 2));
    // the fallback refuses top_p: straight to the primary's own cluster, still tracked
    let f =
        forward_with(&g, &store, &body(json!({"model": "routed", "top_p": 0.5, "messages": [{"role": "user", "content": "x"}]}))).unwrap();
    assert_eq!((f.cluster(), f.plan().is_none()), (Some("openai"), true));
    assert!(f.exchange.target.is_some());
    // explain says why
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &[],
        explain: true,
    };
    let mut g = g;
    g.config.router.explain = true;
    let request = body(json!({"model": "routed", "top_p": 0.5, "messages": [{"role": "user", "content": "x"}]}));
    let Next::Respond(reply) = g.on_body(&incoming, &request, &store, 0).unwrap() else { panic!() };
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["skipped"], json!([{"target": "anthropic/claude-sonnet-4-5", "reason": "rejects_request"}]));
    assert_eq!(v["plan"], json!(["openai/gpt-4o"]));
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

#[test]
fn messages_and_responses_endpoints_are_classified_and_answer_in_their_shape() {
    use crate::client::Dialect;
    let g = gateway();
    let caller = Caller::default();
    assert_eq!(
        headers(&g, "POST", "/v1/messages?beta=true", None),
        OnHeaders::ReadBody(caller, Operation::Chat, Dialect::AnthropicMessages)
    );
    assert_eq!(
        headers(&g, "POST", "/v1/messages/count_tokens", None),
        OnHeaders::ReadBody(caller, Operation::CountTokens, Dialect::AnthropicMessages)
    );
    assert_eq!(headers(&g, "POST", "/v1/responses", None), OnHeaders::ReadBody(caller, Operation::Chat, Dialect::OpenAiResponses));
    assert_eq!(
        headers(&g, "GET", "/v1/responses/resp_1", None),
        OnHeaders::ReadBody(caller, Operation::StoredResponse, Dialect::OpenAiResponses)
    );
    assert_eq!(
        headers(&g, "DELETE", "/v1/responses/resp_1", None),
        OnHeaders::ReadBody(caller, Operation::StoredResponse, Dialect::OpenAiResponses)
    );
    assert_eq!(status_of(headers(&g, "GET", "/v1/responses", None)), 405);
    assert_eq!(status_of(headers(&g, "PUT", "/v1/responses/resp_1", None)), 405);
    let OnHeaders::Respond(reply) = headers(&g, "GET", "/v1/messages", None) else { panic!() };
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!((reply.status, &v["type"], &v["error"]["type"]), (405, &json!("error"), &json!("invalid_request_error")));
    let OnHeaders::Respond(reply) = headers(&g, "POST", "/v1/messages", Some("5000")) else { panic!() };
    assert_eq!(serde_json::from_slice::<Value>(&reply.body).unwrap()["error"]["type"], "request_too_large");
}

#[test]
fn anthropic_clients_authenticate_with_x_api_key_or_bearer() {
    let hash: String = crate::accounting::keys::hash("tg-key").iter().map(|b| format!("{b:02x}")).collect();
    let json = format!(
        r#"{{"providers":{{"anthropic":{{"kind":"anthropic","cluster":"a","api_key_env":"K"}}}},"models":{{"claude":{{"provider":"anthropic"}}}},
            "auth":{{"keys":[{{"id":"k1","sha256":"{hash}"}}]}}}}"#
    );
    let g = Gateway::new(Config::from_json(json.as_bytes(), &|_| Some("v".into()), 0).unwrap());
    let on = |authorization: Option<&str>, api_key: Option<&str>| {
        let head = RequestHead { method: "POST", path: "/v1/messages", content_length: None, authorization, api_key };
        STORE.with(|s| g.on_request_headers(&head, s, &|| 0))
    };
    let admitted = |h: OnHeaders| matches!(h, OnHeaders::ReadBody(Caller { key: Some(0) }, ..));
    assert!(admitted(on(None, Some("tg-key"))));
    assert!(admitted(on(Some("Bearer tg-key"), None)));
    let OnHeaders::Respond(reply) = on(None, Some("tg-other")) else { panic!() };
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!((reply.status, &v["error"]["type"]), (401, &json!("authentication_error")));
    assert_eq!(status_of(on(None, None)), 401);
}

fn guarded(guardrails: Value) -> Gateway {
    let mut config: Value = serde_json::from_str(CONFIG).unwrap();
    config["guardrails"] = guardrails;
    let env = |k: &str| Some(format!("{k}-value"));
    Gateway::new(Config::from_json(config.to_string().as_bytes(), &env, 1).unwrap())
}

#[test]
fn guardrails_redact_what_goes_upstream_on_the_fast_path_and_block_with_an_audit() {
    let g =
        guarded(json!({"policies": [{"detectors": ["aws_access_key"], "action": "block"}, {"detectors": ["email"], "action": "redact"}]}));
    let forward = chat(&g, &body(json!({"model": "gpt", "messages": [{"role": "user", "content": "mail a@example.com"}]})), 0).unwrap();
    let sent = String::from_utf8(forward.upstream.body.clone().expect("the fast path sends the redacted body")).unwrap();
    assert!(sent.contains("mail <EMAIL_1>") && !sent.contains("a@example.com"), "{sent}");
    assert_eq!(forward.exchange.guardrails.len(), 1);
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: Dialect::AnthropicMessages,
        caller: Caller::default(),
        headers: &[],
        explain: false,
    };
    let blocked = body(json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "AKIAIOSFODNN7EXAMPLE"}]}));
    match g.on_body(&incoming, &blocked, &MemoryStore::default(), 0) {
        Ok(Next::Respond(reply)) => {
            assert_eq!((reply.status, reply.error_code.as_deref()), (400, Some("content_blocked")));
            assert!(!String::from_utf8_lossy(&reply.body).contains("AKIA"));
            let records = g.reply_records(Caller::default(), &reply);
            assert!(
                String::from_utf8(records.access_log).unwrap().contains(r#""guardrails":[{"detector":"aws_access_key","action":"block""#)
            );
            assert!(records.metrics.iter().any(|(s, n)| s.metric == telemetry::Metric::GuardrailFindings && *n == 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_external_service_is_asked_first_and_its_failure_fails_closed_or_open() {
    let external = |mode: &str| {
        json!({"external": {"cluster": "presidio", "entities": ["PERSON"], "on_failure": mode},
               "policies": [{"detectors": ["person", "email"], "action": "redact"}]})
    };
    let incoming =
        Incoming { operation: Operation::Chat, dialect: Dialect::OpenAiChat, caller: Caller::default(), headers: &[], explain: false };
    let request = body(json!({"model": "gpt", "messages": [{"role": "user", "content": "Hi Ann Lee, a@example.com"}]}));
    let store = MemoryStore::default();
    let closed = guarded(external("closed"));
    match closed.on_body(&incoming, &request, &store, 0) {
        Ok(Next::Analyze(call)) => {
            assert_eq!((call.cluster.as_str(), call.path.as_str()), ("presidio", "/analyze"));
            assert_eq!(
                serde_json::from_slice::<Value>(&call.body).unwrap(),
                json!({"text": "Hi Ann Lee, a@example.com", "language": "en"})
            );
        }
        other => panic!("{other:?}"),
    }
    let answer = br#"[{"entity_type":"PERSON","start":3,"end":10,"score":0.9}]"#;
    let Ok(Next::Forward(f)) = closed.on_analysed(&incoming, &request, (Some(200), answer), &store, 0) else { panic!("forwarded") };
    let sent = String::from_utf8(f.upstream.body.clone().unwrap()).unwrap();
    assert!(sent.contains("Hi <PERSON_1>, <EMAIL_1>"), "{sent}");
    match closed.on_analysed(&incoming, &request, (None, b""), &store, 0) {
        Ok(Next::Respond(reply)) => assert_eq!((reply.status, reply.error_code.as_deref()), (503, Some("guardrail_unavailable"))),
        other => panic!("{other:?}"),
    }
    let open = guarded(external("open"));
    let Ok(Next::Forward(f)) = open.on_analysed(&incoming, &request, (Some(500), b"oops"), &store, 0) else { panic!("forwarded") };
    let sent = String::from_utf8(f.upstream.body.clone().unwrap()).unwrap();
    assert!(sent.contains("Hi Ann Lee, <EMAIL_1>"), "the built-in findings only: {sent}");
}
