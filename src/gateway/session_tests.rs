//! The sessions against a recording host: what a shell is asked to do, in order.

use super::*;
use crate::host::memory::MemoryStore;
use std::cell::RefCell;

const CONFIG: &str = r#"{
    "providers": {"anthropic": {"kind": "anthropic", "cluster": "anthropic_cluster", "api_key_env": "K"}},
    "models": {"claude": {"provider": "anthropic", "model": "claude-sonnet-4-5"}}
}"#;

fn gateway() -> Rc<Gateway> {
    Rc::new(Gateway::new(Config::from_json(CONFIG.as_bytes(), &|_| Some("key".into()), 1).unwrap()))
}

/// One request as a shell would see it, and every host call the session made.
#[derive(Default)]
struct Recorder {
    request_headers: RefCell<Vec<(String, String)>>,
    request_body: Vec<u8>,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    calls: RefCell<Vec<String>>,
    properties: RefCell<Vec<(String, Vec<u8>)>>,
    store: MemoryStore,
}

impl Recorder {
    fn note(&self, call: String) {
        self.calls.borrow_mut().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }
}

impl ResponseHost for Recorder {
    fn headers(&self) -> Vec<(String, String)> {
        self.response_headers.clone()
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let [name] = path else { return None };
        self.properties.borrow().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn body(&self, size: usize) -> Vec<u8> {
        self.response_body[..size].to_vec()
    }
}

impl Reporter for Recorder {
    fn record_metric(&self, _series: Series, _value: u64, _config: &Config) {}

    fn store(&self) -> &dyn SharedStore {
        &self.store
    }

    fn now_ms(&self) -> u64 {
        1_000
    }
}

impl StreamHost for Recorder {
    fn request_headers(&self) -> Vec<(String, String)> {
        self.request_headers.borrow().clone()
    }

    fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers.borrow().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn set_request_headers(&self, headers: &[(String, String)]) {
        self.note("set_request_headers".into());
        *self.request_headers.borrow_mut() = headers.to_vec();
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.request_body[..size].to_vec()
    }

    fn replace_request_body(&self, size: usize, _body: &[u8]) {
        self.note(format!("replace_request_body {size}"));
    }

    fn set_response_header(&self, name: &str, _value: Option<&str>) {
        self.note(format!("set_response_header {name}"));
    }

    fn set_response_headers(&self, _headers: &[(String, String)]) {
        self.note("set_response_headers".into());
    }

    fn replace_response_body(&self, size: usize, _body: &[u8]) {
        self.note(format!("replace_response_body {size}"));
    }

    fn set_property(&self, name: &str, value: &[u8]) {
        self.properties.borrow_mut().push((name.into(), value.to_vec()));
    }

    fn respond(&self, status: u16, _headers: &[(&str, String)], _body: &[u8]) {
        self.note(format!("respond {status}"));
    }

    fn call(&self, cluster: &str, _headers: &[(&str, &str)], _body: &[u8], _timeout_ms: u64) -> bool {
        self.note(format!("call {cluster}"));
        false
    }

    fn resume_request(&self) {
        self.note("resume_request".into());
    }

    fn resume_response(&self) {
        self.note("resume_response".into());
    }

    fn export_access_log(&self, entry: &[u8]) {
        self.note(format!("access_log {}", String::from_utf8_lossy(entry)));
    }
}

fn chat_request(body: &str) -> Recorder {
    let headers = [(":method", "POST"), (":path", "/v1/chat/completions"), ("content-type", "application/json")];
    Recorder {
        request_headers: RefCell::new(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        request_body: body.as_bytes().to_vec(),
        ..Recorder::default()
    }
}

#[test]
fn a_chat_request_waits_for_its_body_then_goes_translated_to_its_cluster() {
    let body = r#"{"model": "claude", "messages": [{"role": "user", "content": "hi"}]}"#;
    let mut host = chat_request(body);
    let mut session = Downstream::new(Some(gateway()));
    assert_eq!(session.on_request_headers(&host, false), Flow::Pause, "the route waits for the body");
    assert_eq!(session.on_request_body(&host, 10, false), Flow::Pause, "more is coming");
    assert_eq!(session.on_request_body(&host, body.len(), true), Flow::Continue);
    assert_eq!(host.calls(), [format!("replace_request_body {}", body.len()), "set_request_headers".into()]);
    assert_eq!(host.request_header("x-tollgate-cluster").as_deref(), Some("anthropic_cluster"));
    assert_eq!(host.request_header(":path").as_deref(), Some("/v1/messages"));

    let answer = r#"{"id":"m","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hello"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
    host.response_headers = vec![(":status".into(), "200".into()), ("content-type".into(), "application/json".into())];
    host.response_body = answer.as_bytes().to_vec();
    host.calls.borrow_mut().clear();
    assert_eq!(session.on_response_headers(&host, false), Flow::Pause, "a translated answer is buffered whole");
    assert_eq!(session.on_response_body(&host, answer.len(), true), Flow::Continue);
    let calls = host.calls();
    assert_eq!(calls.first().map(String::as_str), Some("set_response_headers"));
    assert!(calls.contains(&format!("replace_response_body {}", answer.len())), "{calls:?}");

    host.calls.borrow_mut().clear();
    session.on_log(&host);
    let calls = host.calls();
    assert!(calls.len() == 1 && calls[0].starts_with("access_log ") && calls[0].contains("\"claude\""), "{calls:?}");
}

#[test]
fn without_a_configuration_every_request_is_answered_500() {
    let host = chat_request("{}");
    let mut session = Downstream::new(None);
    assert_eq!(session.on_request_headers(&host, false), Flow::Pause);
    assert_eq!(host.calls(), ["respond 500"]);
}

#[test]
fn an_attempt_without_a_plan_is_refused_locally() {
    let host = chat_request("{}");
    let mut session = Upstream::new(gateway());
    assert_eq!(session.on_request_headers(&host), Flow::Pause);
    assert_eq!(host.calls(), ["respond 500"]);
}

#[test]
fn the_usage_api_in_global_mode_asks_the_service_and_answers_without_it() {
    let config = r#"{"providers": {"anthropic": {"kind": "anthropic", "cluster": "a", "api_key_env": "K"}},
        "models": {"claude": {"provider": "anthropic"}},
        "auth": {"keys": [], "admin_keys_sha256": ["d5da4bd39ce2d6c3d190e07818ee0c80ee4d249d9d5b86c735bf806987b35952"]},
        "rate_limits": {"descriptor_headers": true, "global_charges": {}, "global_view": {"cluster": "ratelimit"}}}"#;
    let gateway = Rc::new(Gateway::new(Config::from_json(config.as_bytes(), &|_| Some("key".into()), 1).unwrap()));
    let headers = [(":method", "GET"), (":path", "/v1/tollgate/usage"), ("authorization", "Bearer tg-admin-demo-key")];
    let host = Recorder {
        request_headers: RefCell::new(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Recorder::default()
    };
    let mut session = Downstream::new(Some(gateway));
    // The recorder cannot send calls: the report is given at once, saying the service is unavailable.
    assert_eq!(session.on_request_headers(&host, true), Flow::Pause);
    let calls = host.calls();
    assert_eq!(calls.first().map(String::as_str), Some("call ratelimit"));
    assert_eq!(calls.last().map(String::as_str), Some("respond 200"), "{calls:?}");
}
