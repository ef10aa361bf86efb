//! The upstream role: the per-attempt filter of a failover cluster. Translates each attempt
//! for the provider of the endpoint Envoy picked, and reports that target's health.

use super::{downstream, host, response};
use crate::gateway::upstream::{PLAN_PROPERTY, PlannedAttempt};
use crate::gateway::{Exchange, Gateway, Reply};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

const REQ: MapType = MapType::HttpRequestHeaders;

pub struct Upstream {
    gateway: Rc<Gateway>,
    attempt: Option<PlannedAttempt>,
    exchange: Option<Exchange>,
}

impl Upstream {
    pub fn new(gateway: Rc<Gateway>) -> Self {
        Upstream { gateway, attempt: None, exchange: None }
    }

    /// A local reply here is final: Envoy does not retry it, so it is used only for
    /// configuration mistakes, which a retry could not fix either.
    fn reply(reply: &Reply) -> Action {
        host::respond(reply.status, &reply.headers, &reply.body);
        Action::Pause
    }
}

impl Context for Upstream {
    /// Called for every attempt, including ones that got no response (connection refused,
    /// reset, timeout): the moment to report the target's health.
    fn on_done(&mut self) -> bool {
        if let Some(exchange) = self.exchange.take() {
            let config = &self.gateway.config;
            for (series, value) in self.gateway.on_attempt_done(&exchange, &host::Shared, host::now_ms()) {
                host::record_metric(series, value, config);
            }
        }
        true
    }
}

impl HttpContext for Upstream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let plan = host::property(vec![PLAN_PROPERTY]);
        let plan = plan.as_deref().and_then(|p| std::str::from_utf8(p).ok());
        let endpoint = host::property(vec!["xds", "upstream_host_metadata", "filter_metadata", "tollgate", "provider"]);
        let endpoint = endpoint.as_deref().and_then(|e| std::str::from_utf8(e).ok());
        match self.gateway.on_attempt_headers(plan, endpoint) {
            Ok(attempt) => {
                self.attempt = Some(attempt);
                Action::Pause
            }
            Err(e) => Self::reply(&e.into()),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(attempt) = &self.attempt else { return Action::Continue };
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host::body(BufferType::HttpRequestBody, body_size);
        let gateway = self.gateway.clone();
        let forward = match gateway.on_attempt_body(attempt, &body, host::now_ms()) {
            Ok(f) => f,
            Err(e) => return Self::reply(&e.into()),
        };
        // The request headers are shared with earlier attempts: rebuilt, not edited.
        let edits = gateway.send_attempt(attempt, &forward, &host::headers(REQ), body_size, &host::Shared, host::now_ms());
        downstream::apply(edits, body_size);
        self.exchange = Some(forward.exchange);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        response::run(exchange.on_response_head(&self.gateway.config, &response::Response, host::now_ms(), end_of_stream), 0)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(exchange) = self.exchange.as_mut() else { return Action::Continue };
        let step = exchange.on_response_body(&self.gateway.config, &response::Response, host::now_ms(), body_size, end_of_stream);
        response::run(step, body_size)
    }
}
