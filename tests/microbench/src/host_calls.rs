//! One whole request of a scenario through the session state machines (`session::Downstream`,
//! and `session::Upstream` for each attempt through a failover cluster) against a host that
//! plays Envoy and counts the host calls the proxy-wasm shell would make, by phase and kind.

use crate::{DEMO_CONFIG, NOW_MS, Scenario, env};
use serde_json::{Value, json};
use std::rc::Rc;
use tollgate::config::Config;
use tollgate::gateway::Gateway;
use tollgate::gateway::session::recording::{Phase, RecordingHost};
use tollgate::gateway::session::{Downstream, ENDPOINT_PROVIDER_PATH, Flow, Upstream};
use tollgate::schema::Role;

/// The demo configuration with a failover route for `claude-sonnet`: Anthropic, then OpenAI,
/// through one Envoy cluster whose per-attempt filter is Tollgate's upstream role.
fn failover_config(role: Role) -> Config {
    let mut config: Value = serde_json::from_str(DEMO_CONFIG).expect("demo config is JSON");
    config["failover_clusters"] = json!([{"cluster": "anthropic_then_openai", "providers": ["anthropic", "openai"]}]);
    config["routes"] = json!([{"name": "sonnet", "match": {"models": ["claude-sonnet"]},
                               "targets": [{"provider": "anthropic", "model": "claude-sonnet-4-5-20250929"}],
                               "fallback": [{"provider": "openai", "model": "gpt-4o"}]}]);
    let mut config = Config::from_json(config.to_string().as_bytes(), &env, NOW_MS / 1000).expect("failover config is valid");
    config.role = role;
    config
}

/// How the request is served: by the gateway filter alone, or through a failover cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Direct,
    Failover,
}

/// The client's request as Envoy's gateway filter sees it (what the load benchmark sends, with
/// the headers Envoy adds).
fn client_headers(scenario: Scenario, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (":method", "POST".to_owned()),
        (":scheme", "http".to_owned()),
        (":authority", "127.0.0.1".to_owned()),
        (":path", scenario.client_path().to_owned()),
        ("content-type", "application/json".to_owned()),
        ("content-length", body.len().to_string()),
        ("x-forwarded-proto", "http".to_owned()),
        ("x-request-id", "6c1f0c1e-4f7b-4b7e-9d3a-2f1d8e7a9b10".to_owned()),
    ];
    if matches!(scenario, Scenario::Stream) {
        headers.push(("x-bench-sse", "1".to_owned()));
    }
    headers
}

/// The provider's answer: its headers (as nginx and Envoy's router give them) and its body in
/// the chunks Envoy hands the filter (a stream: one chunk per event).
fn provider_answer(scenario: Scenario) -> (Vec<(&'static str, String)>, Vec<&'static [u8]>) {
    let (body, content_type) = scenario.upstream_reply();
    let mut headers = vec![
        (":status", "200".to_owned()),
        ("server", "nginx".to_owned()),
        ("date", "Thu, 01 Jan 2026 00:00:00 GMT".to_owned()),
        ("content-type", content_type.to_owned()),
        ("x-envoy-upstream-service-time", "1".to_owned()),
    ];
    let chunks = if content_type == "text/event-stream" {
        events(body)
    } else {
        headers.push(("content-length", body.len().to_string()));
        vec![body]
    };
    (headers, chunks)
}

/// A stream's events, each with the blank line that ends it.
fn events(mut body: &[u8]) -> Vec<&[u8]> {
    let mut events = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\n\n") {
        let (event, rest) = body.split_at(end + 2);
        events.push(event);
        body = rest;
    }
    if !body.is_empty() {
        events.push(body);
    }
    events
}

fn pairs<'h>(headers: &'h [(&'static str, String)]) -> Vec<(&'static str, &'h str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs one request of `scenario` and returns the host with its counts.
pub fn record(scenario: Scenario, path: Path) -> RecordingHost {
    let (gateway, attempt_gateway) = match path {
        Path::Direct => (Rc::new(crate::gateway()), None),
        Path::Failover => {
            (Rc::new(Gateway::new(failover_config(Role::Gateway))), Some(Rc::new(Gateway::new(failover_config(Role::Upstream)))))
        }
    };
    let body = scenario.request_body();
    let headers = client_headers(scenario, &body);
    let host = RecordingHost::new(&pairs(&headers), &body, NOW_MS);
    let mut downstream = Downstream::new(Some(gateway));
    let mut upstream = attempt_gateway.map(Upstream::new);

    host.enter(Phase::RequestHeaders);
    if downstream.on_request_headers(&host, false) == Flow::Pause {
        host.enter(Phase::RequestBody);
        downstream.on_request_body(&host, body.len(), true);
    }
    if let Some(upstream) = &mut upstream {
        host.enter(Phase::Attempt);
        // Envoy picked the route's first target, from the endpoint's metadata.
        host.properties.borrow_mut().push((ENDPOINT_PROVIDER_PATH.join("."), b"anthropic".to_vec()));
        upstream.on_request_headers(&host);
        let size = host.request_body.borrow().len();
        upstream.on_request_body(&host, size, true);
    }

    let (answer_headers, chunks) = provider_answer(scenario);
    host.answer(Some(&pairs(&answer_headers)), chunks.first().copied().unwrap_or_default());
    let last = chunks.len().saturating_sub(1);
    // Each role's response callbacks for one chunk; a paused upstream role holds the gateway
    // filter's until its own body callback let the answer go on.
    let mut upstream_holds_headers = false;
    if let Some(upstream) = &mut upstream {
        host.enter(Phase::Attempt);
        upstream_holds_headers = upstream.on_response_headers(&host, false) == Flow::Pause;
    }
    if !upstream_holds_headers {
        host.enter(Phase::ResponseHeaders);
        downstream.on_response_headers(&host, false);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        if i > 0 {
            host.answer(None, chunk);
        }
        if let Some(upstream) = &mut upstream {
            host.enter(Phase::Attempt);
            upstream.on_response_body(&host, chunk.len(), i == last);
        }
        if upstream_holds_headers {
            host.enter(Phase::ResponseHeaders);
            downstream.on_response_headers(&host, false);
            upstream_holds_headers = false;
        }
        host.enter(Phase::ResponseBody);
        let size = host.response_body.borrow().len();
        downstream.on_response_body(&host, size, i == last);
    }
    if let Some(upstream) = &mut upstream {
        host.enter(Phase::Attempt);
        upstream.on_done(&host);
    }
    host.enter(Phase::Log);
    downstream.on_log(&host);
    host
}
