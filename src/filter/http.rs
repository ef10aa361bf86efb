//! Per-request context: hands headers and bodies to the core and applies what it decides.

use super::host;
use crate::accounting::budget::Caller;
use crate::gateway::exchange::ResponseMode;
use crate::gateway::{CLIENT_CREDENTIAL_HEADERS, CLUSTER_HEADER, Exchange, Forward, Gateway, OnHeaders, Reply, RequestHead};
use crate::gateway::{access_log, telemetry};
use crate::openai::ApiError;
use crate::providers::Operation;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

const REQ: MapType = MapType::HttpRequestHeaders;
const RESP: MapType = MapType::HttpResponseHeaders;

#[derive(PartialEq, Eq)]
enum Phase {
    /// Not a Tollgate request, or already answered locally.
    Idle,
    ReadingBody(Caller, Operation),
    Forwarded,
}

pub struct Http {
    gateway: Option<Rc<Gateway>>,
    phase: Phase,
    caller: Caller,
    exchange: Option<Exchange>,
}

impl Http {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Http { gateway, phase: Phase::Idle, caller: Caller::default(), exchange: None }
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

    fn forward(&mut self, forward: Forward, body_size: usize) {
        let p = forward.provider;
        host::set_header(REQ, CLUSTER_HEADER, Some(&p.cluster));
        host::set_header(REQ, ":path", Some(forward.path()));
        host::set_header(REQ, ":authority", Some(&p.authority));
        for name in CLIENT_CREDENTIAL_HEADERS {
            host::set_header(REQ, name, None);
        }
        if let Some((name, value)) = &p.auth {
            host::set_header(REQ, name, Some(value.expose()));
        }
        for (name, value) in p.headers.iter().chain(&forward.upstream.headers) {
            host::set_header(REQ, name, Some(value));
        }
        // Compressed answers could not be translated chunk by chunk.
        host::set_header(REQ, "accept-encoding", None);
        if let Some(body) = &forward.upstream.body {
            host::replace_body(BufferType::HttpRequestBody, body_size, body);
            host::set_header(REQ, "content-length", Some(&body.len().to_string()));
        }
        self.exchange = Some(forward.exchange);
        self.phase = Phase::Forwarded;
    }
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // The route picks the cluster from this header: only Tollgate may set it.
        if host::header(REQ, CLUSTER_HEADER).is_some() {
            host::set_header(REQ, CLUSTER_HEADER, None);
        }
        let Some(gateway) = self.gateway.clone() else {
            return self.reply(&ApiError::internal("The gateway has no valid configuration.").into());
        };
        let method = host::header(REQ, ":method").unwrap_or_default();
        let path = host::header(REQ, ":path").unwrap_or_default();
        let content_length = host::header(REQ, "content-length");
        let authorization = host::header(REQ, "authorization");
        let head = RequestHead {
            method: &method,
            path: &path,
            content_length: content_length.as_deref(),
            authorization: authorization.as_deref(),
        };
        match gateway.on_request_headers(&head, &host::Shared, host::now_ms()) {
            OnHeaders::PassThrough => Action::Continue,
            OnHeaders::Respond(reply) => self.reply(&reply),
            OnHeaders::ReadBody(caller, operation) if end_of_stream => {
                self.caller = caller;
                let e = gateway
                    .on_body(operation, &[], caller, &host::Shared, host::now_ms())
                    .err()
                    .unwrap_or_else(|| ApiError::invalid_request("empty body"));
                self.reply(&e.into())
            }
            OnHeaders::ReadBody(caller, operation) => {
                self.caller = caller;
                self.phase = Phase::ReadingBody(caller, operation);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::ReadingBody(caller, operation) = self.phase else {
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
        match gateway.on_body(operation, &body, caller, &host::Shared, host::now_ms()) {
            Ok(forward) => {
                self.forward(forward, body_size);
                Action::Continue
            }
            Err(e) => self.reply(&e.into()),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        let status = host::header(RESP, ":status").and_then(|s| s.parse().ok()).unwrap_or(502);
        let content_type = host::header(RESP, "content-type");
        if !(200..300).contains(&status) {
            exchange.error_type = host::header(RESP, "x-amzn-errortype");
        }
        let mode = exchange.on_response_headers(&gateway.config, status, content_type.as_deref());
        for (name, value) in exchange.client_headers(&gateway.config) {
            host::set_header(RESP, name, Some(&value));
        }
        match mode {
            ResponseMode::Stream => {
                host::set_header(RESP, "content-length", None);
                host::set_header(RESP, "content-type", Some("text/event-stream"));
                host::set_header(RESP, "cache-control", Some("no-cache"));
                Action::Continue
            }
            ResponseMode::Buffer if end_of_stream => {
                // No body will follow: answer with the translated result right away.
                let finished = exchange.on_complete_body(&gateway.config, &[]);
                let mut headers = exchange.client_headers(&gateway.config);
                headers.push(("content-type", "application/json".into()));
                host::respond(finished.status, &headers, &finished.body.unwrap_or_default());
                Action::Pause
            }
            ResponseMode::Buffer => Action::Pause,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Action::Continue;
        };
        if exchange.is_streaming() {
            if exchange.first_byte_ms.is_none() && body_size > 0 {
                exchange.first_byte_ms = Some(host::now_ms());
            }
            let chunk = host::body(BufferType::HttpResponseBody, body_size);
            if let Some(out) = exchange.on_stream_chunk(&chunk, end_of_stream) {
                host::replace_body(BufferType::HttpResponseBody, body_size, &out);
            }
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let upstream_status = exchange.status;
        let body = host::body(BufferType::HttpResponseBody, body_size);
        let finished = exchange.on_complete_body(&gateway.config, &body);
        if finished.status != upstream_status {
            host::set_header(RESP, ":status", Some(&finished.status.to_string()));
        }
        if let Some(new_body) = finished.body {
            host::replace_body(BufferType::HttpResponseBody, body_size, &new_body);
            host::set_header(RESP, "content-length", Some(&new_body.len().to_string()));
            host::set_header(RESP, "content-type", Some("application/json"));
        }
        Action::Continue
    }

    /// Runs once per request whatever ended it (completion, upstream reset, client
    /// disconnect), so usage is always accounted.
    fn on_log(&mut self) {
        if let (Some(gateway), Some(exchange)) = (&self.gateway, self.exchange.take()) {
            let now = host::now_ms();
            host::export_access_log(&access_log::for_exchange(&gateway.config, &exchange, now));
            gateway.finish(&exchange, &host::Shared, now);
            let accounting = &gateway.config.accounting;
            if let Some(provider) = exchange.provider(&gateway.config) {
                for (series, value) in telemetry::samples(&exchange, provider.scope, now) {
                    host::record_metric(series, value, accounting);
                }
            }
        }
    }
}
