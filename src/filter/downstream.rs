//! The gateway role: the HTTP connection manager's filter. Hands headers and bodies to the core
//! and applies what it decides.

use super::{host, response};
use crate::accounting::budget::Caller;
use crate::gateway::exchange::USAGE_PROPERTY;
use crate::gateway::upstream::PLAN_PROPERTY;
use crate::gateway::{Escalation, Exchange, Forward, Gateway, Incoming, Next, OnHeaders, Reply, RequestHead, is_control_header};
use crate::gateway::{access_log, telemetry};
use crate::openai::ApiError;
use crate::providers::Operation;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

const REQ: MapType = MapType::HttpRequestHeaders;

#[derive(PartialEq, Eq)]
enum Phase {
    /// Not a Tollgate request, or already answered locally.
    Idle,
    ReadingBody(Operation),
    /// Waiting for the last resort's answer (request phase: no provider was called).
    Escalating(Escalation),
    /// Waiting for the last resort's answer after every provider failed (response paused, with
    /// its buffered body's size; `None` when the answer had no body).
    EscalatingResponse(Escalation, Option<usize>),
}

pub struct Downstream {
    gateway: Option<Rc<Gateway>>,
    phase: Phase,
    caller: Caller,
    explain: bool,
    /// The client's request headers, less control headers: for routing rules and the header policy.
    headers: Vec<(String, String)>,
    /// The request body, kept while a last resort may still need it.
    body: Vec<u8>,
    exchange: Option<Exchange>,
}

impl Downstream {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Downstream {
            gateway,
            phase: Phase::Idle,
            caller: Caller::default(),
            explain: false,
            headers: Vec::new(),
            body: Vec::new(),
            exchange: None,
        }
    }

    fn reply(&mut self, reply: &Reply) -> Action {
        self.phase = Phase::Idle;
        if let Some(gateway) = &self.gateway {
            let accounting = &gateway.config.accounting;
            if reply.status >= 400 {
                host::record_metric(telemetry::rejection(reply.status), 1, accounting);
            }
            host::export_access_log(&access_log::for_reply(accounting, self.caller, reply.status, reply.error_code.as_deref()));
        }
        host::respond(reply.status, &reply.headers, &reply.body);
        Action::Pause
    }

    fn forward(&mut self, forward: Forward, body: Vec<u8>, body_size: usize) {
        if let Some(new_body) = &forward.upstream.body {
            host::replace_body(BufferType::HttpRequestBody, body_size, new_body);
        }
        let headers = forward.request_headers(&self.headers, forward.upstream.body.as_ref().map(Vec::len));
        host::set_headers(REQ, &headers);
        if let Some(plan) = forward.plan() {
            host::set_property(PLAN_PROPERTY, plan.as_bytes());
        }
        if forward.keep_body {
            self.body = body;
        }
        self.exchange = Some(forward.exchange);
        self.phase = Phase::Idle;
    }

    /// Every provider failed: the last resort takes the request while the response waits (its
    /// buffered body's size, `None` when it had none).
    fn escalate_response(&mut self, gateway: &Gateway, escalation: Escalation, body_size: Option<usize>) -> Action {
        let body = std::mem::take(&mut self.body);
        if Self::escalate(&escalation, &body) {
            self.phase = Phase::EscalatingResponse(escalation, body_size);
            return Action::Pause;
        }
        let reply = gateway.escalated_reply(&escalation, None, &[]);
        if self.replace_response(gateway, body_size, reply) { Action::Continue } else { Action::Pause }
    }

    /// Puts Tollgate's answer in place of the paused response (true: the response may go on).
    fn replace_response(&self, gateway: &Gateway, body_size: Option<usize>, reply: Reply) -> bool {
        let Some(exchange) = self.exchange.as_ref() else { return true };
        response::apply(exchange.escalated(&gateway.config, reply.status, reply.body, body_size.is_some()), body_size.unwrap_or(0));
        body_size.is_some()
    }

    /// Calls the last resort with the client's request; the answer arrives in `on_http_call_response`.
    fn escalate(escalation: &Escalation, body: &[u8]) -> bool {
        let request_id = host::header(REQ, "x-request-id").unwrap_or_default();
        let headers = escalation.request_headers(&request_id);
        host::call(&escalation.cluster, &headers, body, escalation.timeout_ms)
    }
}

impl Context for Downstream {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(gateway) = self.gateway.clone() else { return };
        let (status, body) = host::call_response(body_size);
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Escalating(escalation) => {
                let reply = gateway.escalated_reply(&escalation, status, &body);
                self.reply(&reply);
            }
            Phase::EscalatingResponse(escalation, response_size) => {
                let reply = gateway.escalated_reply(&escalation, status, &body);
                if self.replace_response(&gateway, response_size, reply) {
                    host::resume_response();
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
        let mut headers = host::headers(REQ);
        // Control headers steer Envoy and Tollgate (the route reads the cluster from one): only
        // Tollgate may set them.
        self.explain = headers.iter().any(|(k, v)| k == "x-tollgate-explain" && v.trim() == "1");
        let sent = headers.len();
        headers.retain(|(name, _)| !is_control_header(name));
        let client_sent_control_headers = headers.len() != sent;
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let head = RequestHead {
            method: header(":method").unwrap_or_default(),
            path: header(":path").unwrap_or_default(),
            content_length: header("content-length"),
            authorization: header("authorization"),
        };
        let decision = gateway.on_request_headers(&head, &host::Shared, host::now_ms());
        match decision {
            OnHeaders::PassThrough => {
                if client_sent_control_headers {
                    host::set_headers(REQ, &headers);
                }
                Action::Continue
            }
            OnHeaders::Respond(reply) => self.reply(&reply),
            OnHeaders::ReadBody(caller, operation) => {
                self.caller = caller;
                // Forwarding rewrites the headers in one host call, from this copy (without
                // the control headers).
                self.headers = headers;
                if end_of_stream {
                    return self.finish_body(&gateway, operation, Vec::new(), 0);
                }
                self.phase = Phase::ReadingBody(operation);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::ReadingBody(operation) = self.phase else {
            return Action::Continue;
        };
        let Some(gateway) = self.gateway.clone() else { return Action::Continue };
        let limit = gateway.config.limits.max_request_bytes;
        if body_size > limit {
            return self.reply(&ApiError::too_large(limit).into());
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::body(BufferType::HttpRequestBody, body_size);
        self.finish_body(&gateway, operation, body, body_size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let mut step = exchange.on_response_head(&gateway.config, &response::Response, host::now_ms(), end_of_stream);
        let escalation = step.escalate.take();
        let action = response::run(step, 0);
        match escalation {
            Some(escalation) => self.escalate_response(&gateway, escalation, None),
            None => action,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let mut step = exchange.on_response_body(&gateway.config, &response::Response, host::now_ms(), body_size, end_of_stream);
        let escalation = step.escalate.take();
        let action = response::run(step, body_size);
        match escalation {
            Some(escalation) => self.escalate_response(&gateway, escalation, Some(body_size)),
            None => action,
        }
    }

    /// Runs once per request whatever ended it (completion, upstream reset, client
    /// disconnect), so usage is always accounted.
    fn on_log(&mut self) {
        if let (Some(gateway), Some(mut exchange)) = (&self.gateway, self.exchange.take()) {
            exchange.relayed_usage(host::property(vec![USAGE_PROPERTY]).as_deref());
            let now = host::now_ms();
            host::export_access_log(&access_log::for_exchange(&gateway.config, &exchange, now));
            gateway.finish(&mut exchange, &host::Shared, now);
            let accounting = &gateway.config.accounting;
            if let Some(provider) = exchange.provider(&gateway.config) {
                for (series, value) in telemetry::samples(&exchange, provider.scope, now) {
                    host::record_metric(series, value, accounting);
                }
            }
        }
    }
}

impl Downstream {
    fn finish_body(&mut self, gateway: &Gateway, operation: Operation, body: Vec<u8>, body_size: usize) -> Action {
        let incoming = Incoming { operation, caller: self.caller, headers: &self.headers, explain: self.explain };
        match gateway.on_body(&incoming, &body, &host::Shared, host::now_ms()) {
            Ok(Next::Forward(forward)) => {
                self.forward(forward, body, body_size);
                Action::Continue
            }
            Ok(Next::Respond(reply)) => self.reply(&reply),
            Ok(Next::Escalate(escalation)) => {
                if Self::escalate(&escalation, &body) {
                    self.phase = Phase::Escalating(escalation);
                    Action::Pause
                } else {
                    self.reply(&gateway.escalated_reply(&escalation, None, &[]))
                }
            }
            Err(e) => self.reply(&e.into()),
        }
    }
}
