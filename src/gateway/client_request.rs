//! The request side as the shell sees it: which client headers Tollgate keeps (control headers
//! are Tollgate's alone), and what to write back to the host once a request is forwarded.

use super::exchange::ATTEMPT_PROPERTY;
use super::upstream::{PLAN_PROPERTY, PlannedAttempt};
use super::{Forward, Gateway, Incoming, OnHeaders, Reply, RequestHead, is_control_header};
use crate::accounting::budget::Caller;
use crate::client::Dialect;
use crate::host::SharedStore;
use crate::providers::Operation;

/// What to do once the client's request headers are known.
#[derive(Debug, PartialEq)]
pub enum Start {
    /// Not a Tollgate endpoint: the request goes on, with these headers when the client's had
    /// control headers to remove.
    PassThrough {
        replace_headers: Option<Vec<(String, String)>>,
    },
    Respond(Reply),
    /// Wait for the whole body.
    ReadBody(ClientRequest),
    /// Read the rate-limit service's counters, then answer the usage API.
    ReadGlobalUsage,
}

/// A Tollgate request as its headers describe it.
#[derive(Debug, PartialEq)]
pub struct ClientRequest {
    pub caller: Caller,
    pub operation: Operation,
    pub dialect: Dialect,
    /// The client's headers less control headers: for routing rules and the header policy.
    pub headers: Vec<(String, String)>,
    /// The client sent `x-tollgate-explain: 1`.
    pub explain: bool,
}

impl ClientRequest {
    /// What the body phase reads of it.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { operation: self.operation, dialect: self.dialect, caller: self.caller, headers: &self.headers, explain: self.explain }
    }
}

/// What the request body received so far means.
#[derive(Debug, PartialEq)]
pub enum BodyProgress {
    /// More is coming: keep buffering.
    Wait,
    /// Over the gateway's limit: answer this, before Envoy's own buffer limit answers a bare 413.
    TooLarge(Reply),
    /// The whole body is here.
    Complete,
}

/// How a forwarded request's headers, body and filter state change.
#[derive(Debug, PartialEq)]
pub struct RequestEdits<'f> {
    /// The request headers, all of them (Envoy's map is rewritten in one host call).
    pub headers: Vec<(String, String)>,
    /// The new body, when the translation changed it.
    pub body: Option<&'f [u8]>,
    /// Filter state to set (`wasm.<name>`) for the other role's filter.
    pub property: Option<(&'static str, Vec<u8>)>,
}

impl Gateway {
    /// Control headers steer Envoy and Tollgate (the route reads the cluster from one): only
    /// Tollgate may set them, so the client's are removed, whatever the endpoint.
    pub fn on_client_headers(&self, mut headers: Vec<(String, String)>, store: &dyn SharedStore, now_ms: &dyn Fn() -> u64) -> Start {
        let explain = headers.iter().any(|(k, v)| k == "x-tollgate-explain" && v.trim() == "1");
        let sent = headers.len();
        headers.retain(|(name, _)| !is_control_header(name));
        let sent_control_headers = headers.len() != sent;
        let header = |name: &str| crate::headers::value(&headers, name);
        let head = RequestHead {
            method: header(":method").unwrap_or_default(),
            path: header(":path").unwrap_or_default(),
            content_length: header("content-length"),
            authorization: header("authorization"),
            api_key: header("x-api-key"),
        };
        match self.on_request_headers(&head, store, now_ms) {
            OnHeaders::PassThrough => Start::PassThrough { replace_headers: sent_control_headers.then_some(headers) },
            OnHeaders::Respond(reply) => Start::Respond(reply),
            OnHeaders::ReadGlobalUsage => Start::ReadGlobalUsage,
            OnHeaders::ReadBody(caller, operation, dialect) => {
                Start::ReadBody(ClientRequest { caller, operation, dialect, headers, explain })
            }
        }
    }

    /// `body_size` bytes of the request body arrived (`end_of_stream`: all of it).
    pub fn on_body_part(&self, request: &ClientRequest, body_size: usize, end_of_stream: bool) -> BodyProgress {
        let limit = self.config.limits.max_request_bytes;
        match (body_size > limit, end_of_stream) {
            (true, _) => BodyProgress::TooLarge(Reply::error(request.dialect, crate::error::ApiError::too_large(limit))),
            (false, false) => BodyProgress::Wait,
            (false, true) => BodyProgress::Complete,
        }
    }

    /// The upstream filter sends an attempt: its headers are rebuilt from the shared map (see
    /// [`PlannedAttempt::request_headers`]), the gateway filter learns its target, and a target
    /// past its cool-down takes its probe slot.
    pub fn send_attempt<'f>(
        &self,
        attempt: &PlannedAttempt,
        forward: &'f Forward,
        shared: &[(String, String)],
        body_size: usize,
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> RequestEdits<'f> {
        let body = forward.upstream.body.as_deref();
        let headers = attempt.request_headers(shared, forward, body.map_or(body_size, <[u8]>::len));
        self.attempt_sent(&forward.exchange, store, now_ms);
        let report = forward.exchange.attempt_report(&self.config).into_bytes();
        RequestEdits { headers, body, property: Some((ATTEMPT_PROPERTY, report)) }
    }
}

impl Forward<'_> {
    /// The gateway filter sends the request: the client's headers as the policy forwards them
    /// plus Tollgate's, the translated body, and for a failover cluster the plan.
    pub fn edits(&self, client: &[(String, String)]) -> RequestEdits<'_> {
        let body = self.upstream.body.as_deref();
        RequestEdits {
            headers: self.request_headers(client, body.map(<[u8]>::len)),
            body,
            property: self.plan().map(|plan| (PLAN_PROPERTY, plan.as_bytes().to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::memory::MemoryStore;

    fn gateway() -> Gateway {
        let json = r#"{"providers": {"openai": {"kind": "openai", "cluster": "openai", "api_key_env": "K"}},
            "models": {"gpt": {"provider": "openai"}}}"#;
        Gateway::new(Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn control_headers_are_removed_even_from_requests_tollgate_does_not_serve() {
        let g = gateway();
        let store = MemoryStore::default();
        let clean = pairs(&[(":method", "GET"), (":path", "/healthz")]);
        assert_eq!(g.on_client_headers(clean.clone(), &store, &|| 0), Start::PassThrough { replace_headers: None });
        let mut forged = clean.clone();
        forged.push(("x-tollgate-cluster".into(), "internal".into()));
        assert_eq!(g.on_client_headers(forged, &store, &|| 0), Start::PassThrough { replace_headers: Some(clean) });
    }

    #[test]
    fn a_chat_request_is_read_with_its_headers_less_control_headers_and_the_explain_flag() {
        let g = gateway();
        let sent = pairs(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("x-tollgate-explain", " 1"), ("x-team", "a")]);
        let Start::ReadBody(request) = g.on_client_headers(sent, &MemoryStore::default(), &|| 0) else { panic!() };
        assert_eq!(request.operation, Operation::Chat);
        assert!(request.explain && request.incoming().explain);
        assert_eq!(request.headers, pairs(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("x-team", "a")]));
        let sent = pairs(&[(":method", "GET"), (":path", "/v1/nope")]);
        assert!(matches!(g.on_client_headers(sent, &MemoryStore::default(), &|| 0), Start::Respond(Reply { status: 404, .. })));
    }

    #[test]
    fn a_body_over_the_limit_is_refused_as_soon_as_it_is_seen() {
        let g = gateway();
        let limit = g.config.limits.max_request_bytes;
        let r = ClientRequest {
            caller: Caller::default(),
            operation: Operation::Chat,
            dialect: Dialect::OpenAiChat,
            headers: Vec::new(),
            explain: false,
        };
        assert_eq!(g.on_body_part(&r, limit, false), BodyProgress::Wait);
        assert_eq!(g.on_body_part(&r, limit, true), BodyProgress::Complete);
        assert!(matches!(g.on_body_part(&r, limit + 1, false), BodyProgress::TooLarge(Reply { status: 413, .. })));
        // A Messages client gets Anthropic's error shape.
        let r = ClientRequest { dialect: Dialect::AnthropicMessages, ..r };
        let BodyProgress::TooLarge(reply) = g.on_body_part(&r, limit + 1, false) else { panic!() };
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("request_too_large")));
    }

    #[test]
    fn a_forwarded_request_names_its_cluster_and_carries_its_body() {
        let g = gateway();
        let incoming = super::super::Incoming {
            operation: Operation::Chat,
            dialect: crate::client::Dialect::OpenAiChat,
            caller: Caller::default(),
            headers: &[],
            explain: false,
        };
        let body = br#"{"model":"gpt","messages":[{"role":"user","content":"hi"}]}"#;
        let Ok(super::super::Next::Forward(forward)) = g.on_body(&incoming, body, &MemoryStore::default(), 0) else { panic!() };
        let edits = forward.edits(&pairs(&[(":method", "POST")]));
        assert!(edits.headers.contains(&("x-tollgate-cluster".into(), "openai".into())));
        assert_eq!(edits.body.map(<[u8]>::len), forward.upstream.body.as_ref().map(Vec::len));
        assert_eq!(edits.property, None, "only a failover request has a plan");
    }
}
