//! The gateway role: the HTTP connection manager's filter. Hands headers and bodies to the core
//! and applies what it decides.

use super::{host, response};
use crate::accounting::budget::Caller;
use crate::error::ApiError;
use crate::gateway::client_request::{BodyProgress, ClientRequest, RequestEdits, Start};
use crate::gateway::exchange::USAGE_PROPERTY;
use crate::gateway::last_resort::{Answer, Escalating};
use crate::gateway::response::Step;
use crate::gateway::{Escalation, Exchange, Gateway, Next, Records, Reply};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

const REQ: MapType = MapType::HttpRequestHeaders;

enum Phase {
    /// Not a Tollgate request, forwarded, or already answered locally.
    Idle,
    ReadingBody(ClientRequest),
    /// Waiting for the last resort's answer.
    Escalating(Escalating),
    /// Waiting for the external guardrail service's answer about the request.
    Analysing {
        request: ClientRequest,
        body: Vec<u8>,
        body_size: usize,
    },
}

pub struct Downstream {
    gateway: Option<Rc<Gateway>>,
    phase: Phase,
    /// Who sent the request (default until its headers are read), for the access log.
    caller: Caller,
    /// The request body, kept while a last resort may still need it.
    body: Vec<u8>,
    exchange: Option<Exchange>,
}

impl Downstream {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Downstream { gateway, phase: Phase::Idle, caller: Caller::default(), body: Vec::new(), exchange: None }
    }

    fn reply(&mut self, reply: &Reply) -> Action {
        self.phase = Phase::Idle;
        if let Some(gateway) = &self.gateway {
            export(gateway, gateway.reply_records(self.caller, reply));
        }
        host::respond(reply.status, &reply.headers, &reply.body);
        Action::Pause
    }

    /// Calls the last resort with the client's request; its answer arrives in
    /// `on_http_call_response` (or, when it cannot be called, is given at once).
    fn escalate(&mut self, gateway: &Gateway, escalating: Escalating, body: &[u8]) -> Option<Answer> {
        let request_id = host::header(REQ, "x-request-id").unwrap_or_default();
        let Escalation { cluster, timeout_ms, .. } = &escalating.escalation;
        if host::call(cluster, &escalating.escalation.request_headers(&request_id), body, *timeout_ms) {
            self.phase = Phase::Escalating(escalating);
            return None;
        }
        Some(gateway.last_resort_answered(&escalating, self.exchange.as_ref(), None, &[]))
    }

    /// Applies the answer Tollgate gives in place of the last resort's (`in_callback`: within
    /// a response callback, whose action lets the response go on; otherwise it is resumed).
    fn answer(&mut self, answer: Answer, in_callback: bool) -> Action {
        match answer {
            Answer::Reply(reply) => self.reply(&reply),
            Answer::Response { effects, body_size, resume } => {
                response::apply(effects, body_size);
                match (resume, in_callback) {
                    (false, _) => Action::Pause,
                    (true, true) => Action::Continue,
                    (true, false) => {
                        host::resume_response();
                        Action::Continue
                    }
                }
            }
        }
    }

    /// A response step: its effects, then the last resort when every provider failed (the
    /// response waits, with its buffered body's size, `None` when it had none).
    fn respond(&mut self, gateway: &Gateway, mut step: Step, body_size: Option<usize>) -> Action {
        let escalation = step.escalate.take();
        let action = response::run(step, body_size.unwrap_or(0));
        let Some(escalation) = escalation else { return action };
        let body = std::mem::take(&mut self.body);
        match self.escalate(gateway, Escalating::after_response(escalation, body_size), &body) {
            Some(answer) => self.answer(answer, true),
            None => Action::Pause,
        }
    }

    fn finish_body(&mut self, gateway: &Gateway, request: ClientRequest, body: Vec<u8>, body_size: usize) -> Action {
        let next = gateway.on_body(&request.incoming(), &body, &host::Shared, host::now_ms());
        self.proceed(gateway, request, body, body_size, next)
    }

    /// Applies what the core decided for the complete request body.
    fn proceed(
        &mut self,
        gateway: &Gateway,
        request: ClientRequest,
        body: Vec<u8>,
        body_size: usize,
        next: Result<Next, ApiError>,
    ) -> Action {
        match next {
            Ok(Next::Forward(forward)) => {
                apply(forward.edits(&request.headers), body_size);
                if forward.keep_body {
                    self.body = body;
                }
                self.exchange = Some(forward.exchange);
                self.phase = Phase::Idle;
                Action::Continue
            }
            Ok(Next::Respond(reply)) => self.reply(&reply),
            Ok(Next::Escalate(escalation)) => match self.escalate(gateway, Escalating::before_request(escalation), &body) {
                Some(answer) => self.answer(answer, true),
                None => Action::Pause,
            },
            Ok(Next::Analyze(analysis)) => {
                let request_id = host::header(REQ, "x-request-id").unwrap_or_default();
                if host::call(&analysis.cluster, &analysis.request_headers(&request_id), &analysis.body, analysis.timeout_ms) {
                    self.phase = Phase::Analysing { request, body, body_size };
                    return Action::Pause;
                }
                let next = gateway.on_analysed(&request.incoming(), &body, (None, &[]), &host::Shared, host::now_ms());
                self.proceed(gateway, request, body, body_size, next)
            }
            Err(e) => self.reply(&Reply::error(request.dialect, e)),
        }
    }
}

/// Applies a forwarded request's edits (`body_size`: the body they replace).
pub fn apply(edits: RequestEdits, body_size: usize) {
    if let Some(body) = edits.body {
        host::replace_body(BufferType::HttpRequestBody, body_size, body);
    }
    host::set_headers(REQ, &edits.headers);
    if let Some((name, value)) = edits.property {
        host::set_property(name, &value);
    }
}

fn export(gateway: &Gateway, records: Records) {
    host::export_access_log(&records.access_log);
    for (series, value) in records.metrics {
        host::record_metric(series, value, &gateway.config);
    }
    for (name, value) in records.properties {
        host::set_property(name, &value);
    }
}

impl Context for Downstream {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(gateway) = self.gateway.clone() else { return };
        let (status, body) = host::call_response(body_size);
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Escalating(escalating) => {
                let answer = gateway.last_resort_answered(&escalating, self.exchange.as_ref(), status, &body);
                self.answer(answer, false);
            }
            Phase::Analysing { request, body: request_body, body_size } => {
                let next = gateway.on_analysed(&request.incoming(), &request_body, (status, &body), &host::Shared, host::now_ms());
                if self.proceed(&gateway, request, request_body, body_size, next) == Action::Continue {
                    host::resume_request();
                }
            }
            other => self.phase = other,
        }
    }
}

impl HttpContext for Downstream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(gateway) = self.gateway.clone() else {
            return self.reply(&ApiError::internal("The gateway has no valid configuration.").into());
        };
        match gateway.on_client_headers(host::headers(REQ), &host::Shared, host::now_ms()) {
            Start::PassThrough { replace_headers } => {
                if let Some(headers) = replace_headers {
                    host::set_headers(REQ, &headers);
                }
                Action::Continue
            }
            Start::Respond(reply) => self.reply(&reply),
            Start::ReadBody(request) if end_of_stream => {
                self.caller = request.caller;
                self.finish_body(&gateway, request, Vec::new(), 0)
            }
            Start::ReadBody(request) => {
                self.caller = request.caller;
                self.phase = Phase::ReadingBody(request);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::ReadingBody(request) = &self.phase else {
            return Action::Continue;
        };
        let Some(gateway) = self.gateway.clone() else { return Action::Continue };
        match gateway.on_body_part(request, body_size, end_of_stream) {
            BodyProgress::Wait => return Action::Pause,
            BodyProgress::TooLarge(reply) => return self.reply(&reply),
            BodyProgress::Complete => {}
        }
        let Phase::ReadingBody(request) = std::mem::replace(&mut self.phase, Phase::Idle) else { return Action::Continue };
        let body = host::body(BufferType::HttpRequestBody, body_size);
        self.finish_body(&gateway, request, body, body_size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let step = exchange.on_response_head(&gateway.config, &response::Response, host::now_ms(), end_of_stream);
        self.respond(&gateway, step, None)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let step = exchange.on_response_body(&gateway.config, &response::Response, host::now_ms(), body_size, end_of_stream);
        self.respond(&gateway, step, Some(body_size))
    }

    /// Runs once per request whatever ended it (completion, upstream reset, client
    /// disconnect), so usage is always accounted.
    fn on_log(&mut self) {
        if let (Some(gateway), Some(mut exchange)) = (&self.gateway, self.exchange.take()) {
            let usage = host::property(vec![USAGE_PROPERTY]);
            export(gateway, gateway.on_log(&mut exchange, usage.as_deref(), &host::Shared, host::now_ms()));
        }
    }
}
