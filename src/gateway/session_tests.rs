//! The sessions against a recording host: what a shell is asked to do, in order.

use super::recording::RecordingHost;
use super::*;

const CONFIG: &str = r#"{
    "providers": {"anthropic": {"kind": "anthropic", "cluster": "anthropic_cluster", "api_key_env": "K"}},
    "models": {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"}}
}"#;

fn gateway() -> Rc<Gateway> {
    Rc::new(Gateway::new(Config::from_json(CONFIG.as_bytes(), &|_| Some("key".into()), 1).unwrap()))
}

fn chat_request(body: &str) -> RecordingHost {
    let headers = [(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")];
    RecordingHost::new(&headers, body.as_bytes(), 1_000)
}

#[test]
fn a_chat_request_waits_for_its_body_then_goes_translated_to_its_cluster() {
    let body = r#"{"model": "claude", "messages": [{"role": "user", "content": "hi"}]}"#;
    let host = chat_request(body);
    let mut session = Downstream::new(Some(gateway()));
    assert_eq!(session.on_request_headers(&host, false), Flow::Pause, "the route waits for the body");
    assert_eq!(session.on_request_body(&host, 10, false), Flow::Pause, "more is coming");
    assert_eq!(session.on_request_body(&host, body.len(), true), Flow::Continue);
    assert_eq!(host.take_log(), [format!("replace_request_body {}", body.len()), "set_request_headers".into()]);
    assert_eq!(host.request_header_value("x-tollgate-cluster").as_deref(), Some("anthropic_cluster"));
    assert_eq!(host.request_header_value(":path").as_deref(), Some("/v1/messages"));

    let answer = r#"{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
    host.answer(Some(&[(":status", "200"), ("content-type", "application/json")]), answer.as_bytes());
    assert_eq!(session.on_response_headers(&host, false), Flow::Pause, "a translated answer is buffered whole");
    assert_eq!(session.on_response_body(&host, answer.len(), true), Flow::Continue);
    let calls = host.take_log();
    assert_eq!(calls.first().map(String::as_str), Some("set_response_headers"));
    assert!(calls.contains(&format!("replace_response_body {}", answer.len())), "{calls:?}");

    session.on_log(&host);
    let calls = host.take_log();
    assert!(calls.len() == 1 && calls[0].starts_with("access_log ") && calls[0].contains("\"claude\""), "{calls:?}");
}

#[test]
fn without_a_configuration_every_request_is_answered_500() {
    let host = chat_request("{}");
    let mut session = Downstream::new(None);
    assert_eq!(session.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(host.take_log(), ["respond 500"]);
}

#[test]
fn an_attempt_without_a_plan_is_refused_locally() {
    let host = chat_request("{}");
    let mut session = Upstream::new(gateway());
    assert_eq!(session.on_request_headers(&host), Flow::Pause);
    assert_eq!(host.take_log(), ["respond 500"]);
}

#[test]
fn a_translated_request_makes_only_the_host_calls_it_needs() {
    use super::recording::{Kind, Phase};
    let body = r#"{"model": "claude", "messages": [{"role": "user", "content": "hi"}]}"#;
    let host = chat_request(body);
    let mut session = Downstream::new(Some(gateway()));
    host.enter(Phase::RequestHeaders);
    session.on_request_headers(&host, false);
    host.enter(Phase::RequestBody);
    session.on_request_body(&host, body.len(), true);
    let answer = r#"{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
    host.answer(Some(&[(":status", "200"), ("content-type", "application/json")]), answer.as_bytes());
    host.enter(Phase::ResponseHeaders);
    session.on_response_headers(&host, false);
    host.enter(Phase::ResponseBody);
    session.on_response_body(&host, answer.len(), true);
    host.enter(Phase::Log);
    session.on_log(&host);

    let calls = |phase, kind| host.tally(phase, kind).calls;
    for phase in [Phase::RequestHeaders, Phase::ResponseHeaders] {
        assert_eq!(calls(phase, Kind::HeaderMapRead), 1, "{phase:?}: the header map is read once");
    }
    assert_eq!(calls(Phase::RequestBody, Kind::HeaderMapRead), 0, "the body phase has the headers read before");
    assert_eq!(calls(Phase::RequestBody, Kind::HeaderMapWrite), 1, "the request headers are written in one call");
    assert_eq!(calls(Phase::ResponseHeaders, Kind::HeaderMapWrite), 1, "the response headers are written in one call");
    let clock_reads: Vec<u64> = Phase::ALL.into_iter().map(|phase| calls(phase, Kind::TimeRead)).collect();
    assert_eq!(clock_reads, [0, 1, 0, 0, 0, 1], "the clock is read where the time is used: routing and the log");
    assert_eq!(calls(Phase::Log, Kind::PropertyRead), 0, "only a failover cluster's upstream filter reports usage");
    assert_eq!(calls(Phase::Log, Kind::AccessLogExport), 1);
}

#[test]
fn the_usage_api_in_global_mode_asks_the_service_and_answers_without_it() {
    let config = r#"{"providers": {"anthropic": {"kind": "anthropic", "cluster": "a", "api_key_env": "K"}},
        "models": {"claude": {"provider": "anthropic"}},
        "auth": {"keys": [], "admin_keys_sha256": ["d5da4bd39ce2d6c3d190e07818ee0c80ee4d249d9d5b86c735bf806987b35952"]},
        "rate_limits": {"descriptor_headers": true, "global_charges": {}, "global_view": {"cluster": "ratelimit"}}}"#;
    let gateway = Rc::new(Gateway::new(Config::from_json(config.as_bytes(), &|_| Some("key".into()), 1).unwrap()));
    let headers = [(":method", "GET"), (":path", "/v1/tollgate/usage"), ("authorization", "Bearer tg-admin-demo-key")];
    let host = RecordingHost::new(&headers, b"", 1_000);
    let mut session = Downstream::new(Some(gateway));
    // The recorder cannot send calls: the report is given at once, saying the service is unavailable.
    assert_eq!(session.on_request_headers(&host, true), Flow::Pause);
    let calls = host.take_log();
    assert_eq!(calls.first().map(String::as_str), Some("call ratelimit"));
    assert_eq!(calls.last().map(String::as_str), Some("respond 200"), "{calls:?}");
}
