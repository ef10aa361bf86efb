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
