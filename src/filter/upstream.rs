//! The upstream role: the per-attempt filter of a failover cluster. Translates each attempt
//! for the provider of the endpoint Envoy picked, and reports that target's health.

use super::{host, response};
use crate::gateway::exchange::ATTEMPT_PROPERTY;
use crate::gateway::upstream::{PLAN_PROPERTY, PlannedAttempt};
use crate::gateway::{Exchange, Gateway, Reply, telemetry};
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
            let opened = self.gateway.finish_attempt(&exchange, &host::Shared, host::now_ms());
            let accounting = &self.gateway.config.accounting;
            for (series, value) in telemetry::attempt_samples(&exchange, &self.gateway.config, opened) {
                host::record_metric(series, value, accounting);
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
        let length = match &forward.upstream.body {
            Some(new_body) => {
                host::replace_body(BufferType::HttpRequestBody, body_size, new_body);
                new_body.len()
            }
            None => body_size,
        };
        // The request headers are shared with earlier attempts: rebuilt, not edited.
        host::set_headers(REQ, &attempt.request_headers(&host::headers(REQ), &forward, length));
        host::set_property(ATTEMPT_PROPERTY, forward.exchange.attempt_report(&gateway.config).as_bytes());
        gateway.attempt_sent(&forward.exchange, &host::Shared, host::now_ms());
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
