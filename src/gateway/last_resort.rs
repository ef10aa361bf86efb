//! The last resort's state machine: a request whose targets all failed waits, paused, for the
//! handler's answer, then the client gets Tollgate's 503 saying so. It waits either before any
//! provider was called (the request is paused) or after they all failed (the response is
//! paused, with or without a buffered body to replace).

use super::response::Effect;
use super::{Escalation, Exchange, Gateway, Reply};

/// A request waiting for its last resort's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Escalating {
    pub escalation: Escalation,
    waiting: Waiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// No provider was called: the request waits.
    Request,
    /// Every provider failed: the response waits (its buffered body's size, `None` without one).
    Response { body_size: Option<usize> },
}

impl Escalating {
    /// No target was available: the request waits for the last resort.
    pub fn before_request(escalation: Escalation) -> Self {
        Escalating { escalation, waiting: Waiting::Request }
    }

    /// Every target failed: the response (buffered body of `body_size`, `None` without one)
    /// waits for the last resort.
    pub fn after_response(escalation: Escalation, body_size: Option<usize>) -> Self {
        Escalating { escalation, waiting: Waiting::Response { body_size } }
    }
}

/// What the client gets once the last resort answered (or could not be called).
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Answer locally (the request was waiting).
    Reply(Reply),
    /// Apply these to the paused response (`body_size`: its buffered body), then let it go on
    /// when `resume` (it is already answered locally otherwise).
    Response { effects: Vec<Effect>, body_size: usize, resume: bool },
}

impl Gateway {
    /// The last resort answered with `status` and `body` (`None`: it could not be reached).
    pub fn last_resort_answered(&self, escalating: &Escalating, exchange: Option<&Exchange>, status: Option<u16>, body: &[u8]) -> Answer {
        let reply = self.escalated_reply(&escalating.escalation, status, body);
        match (escalating.waiting, exchange) {
            (Waiting::Request, _) => Answer::Reply(reply),
            (Waiting::Response { .. }, None) => Answer::Response { effects: Vec::new(), body_size: 0, resume: true },
            (Waiting::Response { body_size }, Some(exchange)) => Answer::Response {
                effects: exchange.escalated(&self.config, reply.status, reply.body, body_size.is_some()),
                body_size: body_size.unwrap_or(0),
                resume: body_size.is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn gateway() -> Gateway {
        let json = r#"{"providers": {"openai": {"kind": "openai", "cluster": "openai", "api_key_env": "K"}},
            "models": {"gpt": {"provider": "openai"}}}"#;
        Gateway::new(Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap())
    }

    fn escalation() -> Escalation {
        Escalation {
            cluster: "queue".into(),
            path: "/review".into(),
            authority: "queue".into(),
            timeout_ms: 10,
            tried: "openai/gpt".into(),
            tried_providers: "openai".into(),
            dialect: crate::client::Dialect::OpenAiChat,
        }
    }

    fn message(body: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["error"]["message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_waiting_request_gets_the_503_naming_the_handlers_answer() {
        let g = gateway();
        let Answer::Reply(reply) = g.last_resort_answered(&Escalating::before_request(escalation()), None, Some(202), b"queued") else {
            panic!()
        };
        assert_eq!(reply.status, 503);
        assert!(message(&reply.body).contains("handed to the last-resort handler (HTTP 202: queued)"), "{}", message(&reply.body));
        let Answer::Reply(reply) = g.last_resort_answered(&Escalating::before_request(escalation()), None, None, b"") else { panic!() };
        assert!(message(&reply.body).contains("could not be reached"));
    }

    #[test]
    fn a_waiting_response_is_replaced_in_its_body_or_answered_locally() {
        let g = gateway();
        let exchange = Exchange::new(super::super::exchange::Opening::default());
        let in_body = g.last_resort_answered(&Escalating::after_response(escalation(), Some(40)), Some(&exchange), Some(500), b"");
        let Answer::Response { effects, body_size: 40, resume: true } = in_body else { panic!("{in_body:?}") };
        assert!(matches!(effects.first(), Some(Effect::SetHeader(name, Some(s))) if name == ":status" && s == "503"), "{effects:?}");
        let local = g.last_resort_answered(&Escalating::after_response(escalation(), None), Some(&exchange), Some(500), b"");
        let Answer::Response { effects, resume: false, .. } = local else { panic!("{local:?}") };
        assert!(matches!(&effects[..], [Effect::Respond { status: 503, .. }]));
    }
}
