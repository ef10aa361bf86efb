use super::*;
use crate::accounting::budget::Caller;
use crate::gateway::{Forward, Gateway, Incoming, Next};
use crate::host::memory::MemoryStore;
use crate::providers::Operation;
use std::collections::HashMap;

const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "openai", "api_key_env": "OPENAI_API_KEY"},
        "anthropic": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}
    },
    "models": {"gpt": {"provider": "openai", "model": "gpt-4o"}, "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"}},
    "failover_clusters": [{"cluster": "openai_then_anthropic", "providers": ["openai", "anthropic"]}],
    "routes": [
        {"name": "review", "match": {"models": ["review"]}, "targets": [{"provider": "openai", "model": "gpt-4o"}],
         "last_resort": {"cluster": "queue", "path": "/review"}},
        {"name": "chat", "match": {"models": ["chat"]},
         "targets": [{"provider": "openai", "model": "gpt-4o"}], "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}
    ],
    "limits": {"max_response_bytes": 1024},
    "span_attributes": true
}"#;

fn gateway() -> Gateway {
    let env = |k: &str| Some(format!("{k}-value"));
    Gateway::new(Config::from_json(CONFIG.as_bytes(), &env, 1).unwrap())
}

fn forward<'g>(g: &'g Gateway, model: &str, stream: bool) -> Forward<'g> {
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &[],
        explain: false,
    };
    let body = format!(r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#);
    match g.on_body(&incoming, body.as_bytes(), &MemoryStore::default(), 0) {
        Ok(Next::Forward(f)) => f,
        other => panic!("{other:?}"),
    }
}

/// A response as a host would show it.
#[derive(Default)]
struct FakeResponse {
    headers: Vec<(String, String)>,
    properties: HashMap<String, Vec<u8>>,
    body: Vec<u8>,
}

impl FakeResponse {
    fn new(headers: &[(&str, &str)], body: &[u8]) -> Self {
        let headers = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        FakeResponse { headers, body: body.to_vec(), ..Default::default() }
    }
}

impl ResponseHost for FakeResponse {
    fn headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }

    fn body(&self, size: usize) -> Vec<u8> {
        self.body.iter().copied().take(size).collect()
    }
}

/// A step without its span attributes (tested on their own below).
fn without_span(mut step: Step) -> Step {
    step.effects.retain(|e| !matches!(e, Effect::SetProperty(name, _) if span::ATTRIBUTES.contains(name)));
    step
}

/// The span attributes a step sets.
fn span_attributes(step: &Step) -> Vec<(&'static str, String)> {
    let attribute = |e: &Effect| match e {
        Effect::SetProperty(name, value) if span::ATTRIBUTES.contains(name) => Some((*name, String::from_utf8_lossy(value).into_owned())),
        _ => None,
    };
    step.effects.iter().filter_map(attribute).collect()
}

fn set(name: &str, value: Option<&str>) -> Effect {
    Effect::SetHeader(name.into(), value.map(str::to_owned))
}

#[test]
fn a_stream_keeps_only_allowed_headers_and_says_what_served_it() {
    let g = gateway();
    let mut ex = forward(&g, "gpt", true).exchange;
    let host = FakeResponse::new(
        &[(":status", "200"), ("content-type", "text/event-stream"), ("openai-processing-ms", "5"), ("x-tollgate-provider", "forged")],
        b"",
    );
    let step = without_span(ex.on_response_head(&g.config, &host, &|| 0, false));
    assert_eq!(
        step,
        Step {
            effects: vec![Effect::SetHeaders(
                [
                    (":status", "200"),
                    ("content-type", "text/event-stream"),
                    ("x-tollgate-provider", "openai"),
                    ("x-tollgate-model", "gpt-4o"),
                    ("cache-control", "no-cache"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .to_vec()
            )],
            pause: false,
            escalate: None,
        }
    );
    let chunk = b"data: {\"choices\":[]}\n\n";
    let host = FakeResponse::new(&[], chunk);
    assert_eq!(ex.on_response_body(&g.config, &host, &|| 7, chunk.len(), false), Step::default(), "unchanged bytes pass as they are");
    assert_eq!(ex.first_byte_ms, Some(7));
}

#[test]
fn a_buffered_answer_waits_for_its_body_then_is_translated_in_place() {
    let g = gateway();
    let mut ex = forward(&g, "claude", false).exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-type", "application/json")], b"");
    let step = ex.on_response_head(&g.config, &host, &|| 0, false);
    assert!(step.pause && step.escalate.is_none());
    let answer = br#"{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
    let host = FakeResponse::new(&[], answer);
    assert_eq!(ex.on_response_body(&g.config, &host, &|| 0, answer.len(), false), Step::wait(Vec::new()), "not complete yet");
    let step = without_span(ex.on_response_body(&g.config, &host, &|| 0, answer.len(), true));
    assert!(!step.pause);
    let [Effect::ReplaceBody(body), Effect::SetHeader(length, Some(n)), Effect::SetHeader(kind, Some(json))] = &step.effects[..] else {
        panic!("{:?}", step.effects)
    };
    assert_eq!(
        (length.as_str(), n.clone(), kind.as_str(), json.as_str()),
        ("content-length", body.len().to_string(), "content-type", "application/json")
    );
    assert!(ex.completed);
}

#[test]
fn an_answer_without_body_and_an_oversized_one_are_answered_locally() {
    let g = gateway();
    let mut ex = forward(&g, "gpt", false).exchange;
    let host = FakeResponse::new(&[(":status", "500"), ("content-length", "0")], b"");
    let step = ex.on_response_head(&g.config, &host, &|| 0, true);
    assert!(step.pause);
    assert!(matches!(step.effects.last(), Some(Effect::Respond { status: 500, .. })), "{:?}", step.effects);

    let mut ex = forward(&g, "gpt", false).exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-length", "1025")], b"");
    let step = ex.on_response_head(&g.config, &host, &|| 0, false);
    let Some(Effect::Respond { status: 502, headers, .. }) = step.effects.last() else { panic!("{:?}", step.effects) };
    assert!(headers.contains(&("content-type", "application/json".into())));
    assert_eq!(ex.on_response_body(&g.config, &FakeResponse::default(), &|| 0, 1025, true), Step::wait(Vec::new()), "refused once");
}

#[test]
fn a_failed_route_with_a_last_resort_escalates_and_its_answer_replaces_the_response() {
    let g = gateway();
    let mut ex = forward(&g, "review", false).exchange;
    let host = FakeResponse::new(&[(":status", "503")], b"");
    ex.on_response_head(&g.config, &host, &|| 0, false);
    let error = br#"{"error":{"message":"overloaded","type":"api_error"}}"#;
    let step = ex.on_response_body(&g.config, &FakeResponse::new(&[], error), &|| 0, error.len(), true);
    let escalation = step.escalate.expect("escalates");
    assert!(step.pause);
    assert_eq!((escalation.cluster.as_str(), escalation.path.as_str()), ("queue", "/review"));
    let headers = escalation.request_headers("id-1");
    assert!(headers.contains(&(":path", "/review")) && headers.contains(&("x-request-id", "id-1")));

    let replaced = ex.escalated(&g.config, 503, b"{}".to_vec(), true);
    assert_eq!(
        replaced,
        vec![Effect::ReplaceBody(b"{}".to_vec()), set("content-length", Some("2")), set("content-type", Some("application/json"))]
    );
    let answered = ex.escalated(&g.config, 503, b"{}".to_vec(), false);
    assert!(matches!(&answered[..], [Effect::Respond { status: 503, .. }]));
}

#[test]
fn an_attempt_reports_its_usage_to_the_gateway_filter_and_nothing_in_headers() {
    let g = gateway();
    let plan = forward(&g, "chat", true).plan().unwrap().to_owned();
    let attempt = g.on_attempt_headers(Some(&plan), Some("openai")).unwrap();
    let body = br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = g.on_attempt_body(&attempt, body, 0).unwrap().exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-type", "text/event-stream")], b"");
    let step = ex.on_response_head(&g.config, &host, &|| 0, false);
    let [Effect::SetHeaders(headers)] = &step.effects[..] else { panic!("{:?}", step.effects) };
    assert!(!headers.iter().any(|(name, _)| name.starts_with("x-tollgate")), "{headers:?}");
    let chunk = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
    let step = ex.on_response_body(&g.config, &FakeResponse::new(&[], chunk), &|| 0, chunk.len(), false);
    assert_eq!(step.effects, vec![Effect::SetProperty(USAGE_PROPERTY, b"3 0 0 4 0".to_vec())]);
}

/// The head of a failover cluster's answer from its second target, as the gateway filter sees it.
fn served_by_anthropic_on_second_attempt(content_type: &str) -> FakeResponse {
    let mut host = FakeResponse::new(&[(":status", "200"), ("content-type", content_type), ("x-envoy-attempt-count", "2")], b"");
    host.properties.insert(ATTEMPT_PROPERTY.into(), b"anthropic/claude-sonnet-4-5\n".to_vec());
    host
}

#[test]
fn the_gateway_filter_reads_which_target_served_a_failover_request() {
    let g = gateway();
    let mut ex = forward(&g, "chat", true).exchange;
    let host = served_by_anthropic_on_second_attempt("text/event-stream");
    let step = without_span(ex.on_response_head(&g.config, &host, &|| 0, false));
    let [Effect::SetHeaders(headers)] = &step.effects[..] else { panic!("{:?}", step.effects) };
    for (name, value) in [("x-tollgate-provider", "anthropic"), ("x-tollgate-model", "claude-sonnet-4-5"), ("x-tollgate-attempts", "2")] {
        assert!(headers.contains(&(name.to_owned(), value.to_owned())), "{name}: {headers:?}");
    }
}

#[test]
fn the_span_learns_who_serves_at_the_head_and_usage_with_the_last_chunk() {
    let g = gateway();
    let mut ex = forward(&g, "gpt", true).exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-type", "text/event-stream")], b"");
    let head = span_attributes(&ex.on_response_head(&g.config, &host, &|| 0, false));
    assert_eq!(
        head.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        [span::OPERATION_NAME, span::PROVIDER_NAME, span::REQUEST_MODEL, span::ATTEMPTS]
    );
    let usage = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n";
    let middle = ex.on_response_body(&g.config, &FakeResponse::new(&[], usage), &|| 5, usage.len(), false);
    assert_eq!(span_attributes(&middle), [], "not before the stream ends");
    let done = b"data: [DONE]\n\n";
    let end = span_attributes(&ex.on_response_body(&g.config, &FakeResponse::new(&[], done), &|| 9, done.len(), true));
    for expected in [(span::INPUT_TOKENS, "3"), (span::OUTPUT_TOKENS, "4"), (span::TIME_TO_FIRST_TOKEN_MS, "5")] {
        assert!(end.contains(&(expected.0, expected.1.to_owned())), "{expected:?} not in {end:?}");
    }
}

#[test]
fn a_failover_span_has_the_usage_the_upstream_filter_reported_and_an_attempt_sets_none() {
    let g = gateway();
    let mut ex = forward(&g, "chat", false).exchange;
    let host = served_by_anthropic_on_second_attempt("application/json");
    let head = span_attributes(&ex.on_response_head(&g.config, &host, &|| 0, false));
    for expected in [(span::PROVIDER_NAME, "anthropic"), (span::ROUTE, "chat"), (span::ATTEMPTS, "2")] {
        assert!(head.contains(&(expected.0, expected.1.to_owned())), "{expected:?} not in {head:?}");
    }
    let answer = br#"{"id":"c","object":"chat.completion","created":1,"model":"claude-sonnet-4-5","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
    let mut host = FakeResponse::new(&[], answer);
    host.properties.insert(USAGE_PROPERTY.into(), b"7 0 0 8 0".to_vec());
    let end = span_attributes(&ex.on_response_body(&g.config, &host, &|| 0, answer.len(), true));
    assert!(end.contains(&(span::INPUT_TOKENS, "7".to_owned())) && end.contains(&(span::OUTPUT_TOKENS, "8".to_owned())), "{end:?}");

    let plan = forward(&g, "chat", true).plan().unwrap().to_owned();
    let attempt = g.on_attempt_headers(Some(&plan), Some("openai")).unwrap();
    let body = br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = g.on_attempt_body(&attempt, body, 0).unwrap().exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-type", "text/event-stream")], b"");
    assert_eq!(span_attributes(&ex.on_response_head(&g.config, &host, &|| 0, false)), []);
    let done = b"data: [DONE]\n\n";
    assert_eq!(span_attributes(&ex.on_response_body(&g.config, &FakeResponse::new(&[], done), &|| 0, done.len(), true)), []);
}

#[test]
fn without_span_attributes_configured_no_response_sets_any() {
    let json = CONFIG.replace(r#""span_attributes": true"#, r#""span_attributes": false"#);
    let g = Gateway::new(Config::from_json(json.as_bytes(), &|k: &str| Some(format!("{k}-value")), 1).unwrap());
    let mut ex = forward(&g, "gpt", true).exchange;
    let host = FakeResponse::new(&[(":status", "200"), ("content-type", "text/event-stream")], b"");
    assert_eq!(span_attributes(&ex.on_response_head(&g.config, &host, &|| 0, false)), []);
    let done = b"data: [DONE]\n\n";
    assert_eq!(span_attributes(&ex.on_response_body(&g.config, &FakeResponse::new(&[], done), &|| 0, done.len(), true)), []);
}

/// Envoy's rate-limit filter refused (global limits): the client gets the refusal in its own
/// dialect with `retry-after` from the filter's `x-ratelimit-reset`, and no fallback is tried.
#[test]
fn a_global_rate_limit_refusal_is_answered_with_retry_after_and_never_fails_over() {
    let g = gateway();
    let mut ex = forward(&g, "chat", false).exchange;
    let mut host = FakeResponse::new(
        &[(":status", "429"), ("content-type", "application/json"), ("x-ratelimit-reset", "42"), ("x-ratelimit-limit", "6")],
        b"",
    );
    host.properties.insert("response.code_details".into(), b"request_rate_limited".to_vec());
    let step = ex.on_response_head(&g.config, &host, &|| 0, false);
    let Some(Effect::SetHeaders(headers)) = step.effects.first() else { panic!("{:?}", step.effects) };
    assert_eq!(crate::headers::value(headers, "retry-after"), Some("42"));
    assert_eq!(crate::headers::value(headers, "x-ratelimit-limit"), None, "the filter's own headers stay in the gateway");
    let body = br#"{"error":{"message":"Rate limit reached (global limit of this gateway)."}}"#;
    let step = ex.on_response_body(&g.config, &FakeResponse::new(&[], body), &|| 0, body.len(), true);
    assert!(step.escalate.is_none(), "no provider was asked: nothing to fail over from");
    let Some(Effect::ReplaceBody(answer)) = step.effects.first() else { panic!("{:?}", step.effects) };
    let error: serde_json::Value = serde_json::from_slice(answer).unwrap();
    assert_eq!((error["error"]["code"].as_str(), error["error"]["type"].as_str()), (Some("rate_limit_exceeded"), Some("requests")));
}

#[test]
fn a_failing_rate_limit_service_that_fails_closed_is_a_503_of_its_own() {
    let e = crate::gateway::exchange::global_refusal("rate_limiter_error").unwrap();
    assert_eq!((e.status, e.code.as_deref()), (503, Some("rate_limit_service_unavailable")));
    assert!(crate::gateway::exchange::global_refusal("upstream_reset_before_response_started{connection_termination}").is_none());
}
