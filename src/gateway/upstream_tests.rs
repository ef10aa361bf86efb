use super::*;
use crate::accounting::budget::Caller;
use crate::config::Config;
use crate::gateway::exchange;
use crate::gateway::{Incoming, Next};
use crate::host::memory::MemoryStore;

const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "openai", "api_key_env": "OPENAI_API_KEY", "forward_headers": ["openai-organization"]},
        "anthropic": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "ANTHROPIC_API_KEY", "forward_headers": ["anthropic-beta"]}
    },
    "failover_clusters": [{"cluster": "openai_then_anthropic", "providers": ["openai", "anthropic"]}],
    "routes": [{"name": "chat", "match": {"models": ["chat"]}, "forward_headers": ["x-team"],
                "targets": [{"provider": "openai", "model": "gpt-4o"}],
                "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}]
}"#;

fn gateway() -> Gateway {
    let env = |k: &str| Some(format!("{k}-value"));
    Gateway::new(Config::from_json(CONFIG.as_bytes(), &env, 1).unwrap())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn get<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

const CLIENT: &[(&str, &str)] = &[
    (":method", "POST"),
    (":path", "/v1/chat/completions"),
    (":authority", "gw"),
    ("content-type", "application/json"),
    ("x-request-id", "same-id-as-another-request"),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"),
    ("authorization", "Bearer client"),
    ("cookie", "session=1"),
    ("openai-organization", "org-1"),
    ("anthropic-beta", "beta-1"),
    ("x-team", "blue"),
    ("x-custom", "1"),
];

/// The plan the gateway filter sets for a `chat` request from a client sending [`CLIENT`].
fn plan(g: &Gateway) -> String {
    let client = pairs(CLIENT);
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &client,
        explain: false,
    };
    let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    match g.on_body(&incoming, body, &MemoryStore::default(), 0) {
        Ok(Next::Forward(f)) => {
            let headers = f.request_headers(&client, None);
            assert_eq!(get(&headers, "x-tollgate-cluster"), ["openai_then_anthropic"]);
            for name in ["authorization", "cookie", "openai-organization", "anthropic-beta", "x-custom"] {
                assert!(get(&headers, name).is_empty(), "{name} is not sent to the failover cluster");
            }
            f.plan().unwrap().to_owned()
        }
        other => panic!("{other:?}"),
    }
}

/// Runs one attempt on the shared header map, as the upstream filter does.
fn attempt(g: &Gateway, plan: &str, endpoint: &str, shared: &mut Vec<(String, String)>) {
    let attempt = g.on_attempt_headers(Some(plan), Some(endpoint)).unwrap();
    let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    let forward = g.on_attempt_body(&attempt, body, 0).unwrap();
    let length = forward.upstream.body.as_ref().map_or(body.len(), Vec::len);
    *shared = attempt.request_headers(shared, &forward, length);
}

#[test]
fn a_request_without_a_plan_is_refused_not_sent_untranslated() {
    let g = gateway();
    let e = g.on_attempt_headers(None, Some("openai")).unwrap_err();
    assert_eq!((e.status, e.code.as_deref()), (500, Some("routing_plan_missing")));
    // No route 1: the config has one route.
    for forged in
        ["", "chat;openai=x", "chat;openai=x\n1;openai_chat\n", "chat;openai=x\n0;openai_chat\nno-colon\n", "chat;openai=x\n0;klingon\n"]
    {
        let e = g.on_attempt_headers(Some(forged), Some("openai")).unwrap_err();
        assert_eq!(e.code.as_deref(), Some("routing_plan_missing"), "{forged:?}");
    }
}

/// The trace context Envoy's tracer sets on the upstream request: the client's trace, Envoy's span.
const ENVOY_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn each_attempt_rebuilds_its_headers_for_its_own_provider() {
    let g = gateway();
    let plan = plan(&g);
    // What reached the failover cluster, plus what Envoy's router added.
    let mut shared = pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-length", "999"),
        ("x-envoy-expected-rq-timeout-ms", "4000"),
        ("x-tollgate-cluster", "openai_then_anthropic"),
        ("traceparent", ENVOY_TRACEPARENT),
    ]);
    attempt(&g, &plan, "openai", &mut shared);
    assert_eq!(get(&shared, "traceparent"), [ENVOY_TRACEPARENT], "Envoy's span is the provider's parent, not the client's");
    assert_eq!(get(&shared, ":authority"), ["api.openai.com"]);
    assert_eq!(get(&shared, "authorization"), ["Bearer OPENAI_API_KEY-value"]);
    assert_eq!(get(&shared, "openai-organization"), ["org-1"], "the provider's forward_headers");
    assert_eq!(get(&shared, "x-team"), ["blue"], "the route's forward_headers");
    assert!(get(&shared, "anthropic-beta").is_empty() && get(&shared, "cookie").is_empty());
    assert_eq!(get(&shared, "x-request-id"), ["same-id-as-another-request"]);
    assert_ne!(get(&shared, "content-length"), ["999"]);
    // Envoy retries on the next provider with the same (now edited) header map.
    attempt(&g, &plan, "anthropic", &mut shared);
    assert_eq!(get(&shared, ":path"), ["/v1/messages"]);
    assert_eq!(get(&shared, ":authority"), ["api.anthropic.com"]);
    assert_eq!(get(&shared, "x-api-key"), ["ANTHROPIC_API_KEY-value"]);
    assert!(get(&shared, "authorization").is_empty(), "the previous provider's key is gone");
    assert!(get(&shared, "openai-organization").is_empty(), "the previous provider's forwarded header is gone");
    assert_eq!(get(&shared, "anthropic-beta"), ["beta-1"]);
    assert_eq!(get(&shared, "anthropic-version"), ["2023-06-01"]);
    assert_eq!(get(&shared, "traceparent"), [ENVOY_TRACEPARENT]);
    assert_eq!(get(&shared, "x-envoy-expected-rq-timeout-ms"), ["4000"]);
    assert!(get(&shared, "x-tollgate-cluster").is_empty());
    let body_len = shared.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse::<usize>().unwrap()).unwrap();
    let expected = {
        let attempt = g.on_attempt_headers(Some(&plan), Some("anthropic")).unwrap();
        let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
        g.on_attempt_body(&attempt, body, 0).unwrap().upstream.body.unwrap().len()
    };
    assert_eq!(body_len, expected, "content-length is this attempt's body");
}

#[test]
fn an_endpoint_outside_the_plan_is_refused() {
    let g = gateway();
    let plan = plan(&g);
    let e = g.on_attempt_headers(Some(&plan), Some("mistral")).unwrap_err();
    assert_eq!(e.status, 500);
}

/// The gateway filter's exchange of a failover request.
fn via_failover_cluster(g: &Gateway) -> Exchange {
    let client = pairs(CLIENT);
    let incoming = Incoming {
        operation: Operation::Chat,
        dialect: crate::client::Dialect::OpenAiChat,
        caller: Caller::default(),
        headers: &client,
        explain: false,
    };
    let body = br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    match g.on_body(&incoming, body, &MemoryStore::default(), 0) {
        Ok(Next::Forward(f)) => f.exchange,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_attempt_report_decides_what_is_accounted_not_the_response() {
    let g = gateway();
    let plan = plan(&g);
    let attempt = g.on_attempt_headers(Some(&plan), Some("anthropic")).unwrap();
    let body = br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let upstream = g.on_attempt_body(&attempt, body, 0).unwrap().exchange;
    assert!(upstream.client_headers(&g.config).is_empty(), "the upstream role tells the gateway filter nothing in headers");
    let report = upstream.attempt_report(&g.config);
    assert_eq!(report, "anthropic/claude-sonnet-4-5\n");

    let mut gateway_side = via_failover_cluster(&g);
    let head = exchange::ResponseHead { status: 200, content_type: Some("text/event-stream"), served: Some(&report), ..Default::default() };
    gateway_side.on_response_headers(&g.config, &head);
    assert_eq!(g.config.providers[gateway_side.provider].name, "anthropic");
    assert_eq!(gateway_side.upstream_model(), "claude-sonnet-4-5");
    // Whatever the relayed stream claims, the usage is the one the upstream filter reported.
    let forged = b": tollgate-usage 1 0 0 1 0\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
    gateway_side.on_stream_chunk(forged, false);
    gateway_side.take_reported_usage(Some(b"8 0 0 11 0"));
    let usage = gateway_side.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (8, 11));
    for unreadable in [None, Some(&b"8 0 0"[..]), Some(&b"a b c d e"[..])] {
        gateway_side.take_reported_usage(unreadable);
        assert_eq!(gateway_side.usage, None, "{unreadable:?}");
    }
}

#[test]
fn usage_is_reported_once_per_change() {
    let g = gateway();
    let plan = plan(&g);
    let attempt = g.on_attempt_headers(Some(&plan), Some("openai")).unwrap();
    let body = br#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut upstream = g.on_attempt_body(&attempt, body, 0).unwrap().exchange;
    assert_eq!(upstream.usage_report(), None);
    upstream.usage = Some(crate::usage::Usage { input_tokens: 3, output_tokens: 4, ..Default::default() });
    assert_eq!(upstream.usage_report().as_deref(), Some("3 0 0 4 0"));
    assert_eq!(upstream.usage_report(), None);
}

#[test]
fn after_a_failover_the_client_learns_the_providers_tried_not_their_models() {
    let g = gateway();
    let mut ex = via_failover_cluster(&g);
    let report = "anthropic/claude-sonnet-4-5\n";
    let head = exchange::ResponseHead { status: 503, attempts: Some(2), served: Some(report), ..Default::default() };
    ex.on_response_headers(&g.config, &head);
    let error = br#"{"error":{"message":"claude-sonnet-4-5 is overloaded","type":"api_error"}}"#;
    let fin = ex.on_complete_body(&g.config, error);
    let message = serde_json::from_slice::<serde_json::Value>(&fin.body.unwrap()).unwrap()["error"]["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "No target could serve this request. Tried: openai, anthropic. Last error: chat is overloaded");
}

#[test]
fn an_embeddings_attempt_is_answered_as_embeddings() {
    let g = gateway();
    let attempt = g.on_attempt_headers(Some("embeddings;openai=text-embedding-3-small\n0;openai_chat\n"), Some("openai")).unwrap();
    let forward = g.on_attempt_body(&attempt, br#"{"model":"chat","input":"hi"}"#, 7_500).unwrap();
    let ctx = &forward.exchange.ctx;
    assert_eq!((ctx.operation, ctx.created), (Operation::Embeddings, 7));
    // The gateway filter is this answer's client: it always gets usage, reported as it comes.
    assert!(ctx.client_wants_usage && matches!(forward.exchange.role(), exchange::Role::Attempt { .. }));
}

#[test]
fn failed_attempts_open_their_targets_breaker() {
    let g = gateway();
    let plan = plan(&g);
    let attempt = g.on_attempt_headers(Some(&plan), Some("openai")).unwrap();
    let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    let mut exchange = g.on_attempt_body(&attempt, body, 0).unwrap().exchange;
    exchange.status = 503;
    let store = MemoryStore::default();
    // The default breaker opens after 5 consecutive failures.
    let opened: Vec<bool> = (0..5).map(|i| g.finish_attempt(&exchange, &store, i)).collect();
    assert_eq!(opened, [false, false, false, false, true]);
}
