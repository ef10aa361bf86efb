//! One request's filter, whatever the host: the gateway role (the HTTP connection manager's
//! filter) and the upstream role (the per-attempt filter of a failover cluster) as state
//! machines over a [`StreamHost`]. Each shell (proxy-wasm in `filter`, Envoy's dynamic-module
//! ABI in `native`) implements the host calls and forwards its callbacks here; neither holds
//! a decision of its own.

use super::client_request::{BodyProgress, ClientRequest, RequestEdits, Start};
use super::exchange::{Role, USAGE_PROPERTY};
use super::last_resort::{Answer, Escalating};
use super::response::{Effect, ResponseHost, Step};
use super::telemetry::Series;
use super::upstream::{PLAN_PROPERTY, PlannedAttempt};
use super::{Escalation, Exchange, Gateway, Next, Records, Reply};
use crate::accounting::budget::Caller;
use crate::config::Config;
use crate::error::ApiError;
use crate::host::SharedStore;
use std::rc::Rc;

/// Where the upstream role reads the provider of the endpoint Envoy picked for this attempt.
pub const ENDPOINT_PROVIDER_PATH: [&str; 5] = ["xds", "upstream_host_metadata", "filter_metadata", "tollgate", "provider"];

/// What a callback tells Envoy: go on, or hold the headers or body (buffering it) for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// What reporting needs of the host: the shared store, the clock and metrics (no call on the
/// stream itself, so a shell can report after Envoy let go of the stream).
pub trait Reporter {
    fn record_metric(&self, series: Series, value: u64, config: &Config);
    /// The store shared by every worker.
    fn store(&self) -> &dyn SharedStore;
    fn now_ms(&self) -> u64;
}

/// The host calls of one request's filter. The response side is read through the
/// [`ResponseHost`] part (its `property` reads the request's filter state too).
pub trait StreamHost: ResponseHost + Reporter {
    fn request_headers(&self) -> Vec<(String, String)>;
    /// Replaces every request header with these.
    fn set_request_headers(&self, headers: &[(String, String)]);
    /// The request body buffered so far (its first `size` bytes).
    fn request_body(&self, size: usize) -> Vec<u8>;
    /// Replaces the request body received so far (`size` bytes) with `body`.
    fn replace_request_body(&self, size: usize, body: &[u8]);
    /// Sets the response header (every value), or with `None` removes it.
    fn set_response_header(&self, name: &str, value: Option<&str>);
    fn set_response_headers(&self, headers: &[(String, String)]);
    fn replace_response_body(&self, size: usize, body: &[u8]);
    /// Sets the request's filter state `<name>` (both roles' filters of the request read it).
    fn set_property(&self, name: &str, value: &[u8]);
    /// Answers locally.
    fn respond(&self, status: u16, headers: &[(&str, String)], body: &[u8]);
    /// Sends a request to an Envoy cluster; its answer comes to [`Downstream::on_call_response`].
    /// False: it could not be sent.
    fn call(&self, cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> bool;
    fn resume_request(&self);
    fn resume_response(&self);
    /// The request's entry for Envoy's access log (filter state `tollgate`).
    fn export_access_log(&self, entry: &[u8]);
}

/// Makes a response step's host calls, in order (`body_size`: the buffered body they replace).
pub fn apply_effects(host: &dyn StreamHost, effects: Vec<Effect>, body_size: usize) {
    for effect in effects {
        match effect {
            Effect::SetHeader(name, value) => host.set_response_header(&name, value.as_deref()),
            Effect::SetHeaders(headers) => host.set_response_headers(&headers),
            Effect::ReplaceBody(body) => host.replace_response_body(body_size, &body),
            Effect::Respond { status, headers, body } => host.respond(status, &headers, &body),
            Effect::SetProperty(name, value) => host.set_property(name, &value),
        }
    }
}

/// Applies a step's effects; whether the response waits.
fn run(host: &dyn StreamHost, step: Step, body_size: usize) -> Flow {
    apply_effects(host, step.effects, body_size);
    if step.pause { Flow::Pause } else { Flow::Continue }
}

/// Applies a forwarded request's edits (`body_size`: the body they replace).
fn apply_edits(host: &dyn StreamHost, edits: RequestEdits, body_size: usize) {
    if let Some(body) = edits.body {
        host.replace_request_body(body_size, body);
    }
    host.set_request_headers(&edits.headers);
    if let Some((name, value)) = edits.property {
        host.set_property(name, &value);
    }
}

fn export(host: &dyn StreamHost, gateway: &Gateway, records: Records) {
    host.export_access_log(&records.access_log);
    for (series, value) in records.metrics {
        host.record_metric(series, value, &gateway.config);
    }
    for (name, value) in records.properties {
        host.set_property(name, &value);
    }
}

/// Envoy's `x-request-id` of the request, from the header map read with its headers.
fn request_id(request: &ClientRequest) -> &str {
    crate::headers::value(&request.headers, "x-request-id").unwrap_or_default()
}

enum Phase {
    /// Not a Tollgate request, forwarded, or already answered locally.
    Idle,
    ReadingBody(ClientRequest),
    /// Waiting for the last resort's answer.
    Escalating(Escalating),
    /// Waiting for the rate-limit service's counters for the usage API.
    ReadingGlobalUsage,
    /// Waiting for the external guardrail service's answer about the request.
    Analysing {
        request: ClientRequest,
        body: Vec<u8>,
        body_size: usize,
    },
}

/// The gateway role: hands headers and bodies to the core and applies what it decides.
pub struct Downstream {
    gateway: Option<Rc<Gateway>>,
    phase: Phase,
    /// Who sent the request (default until its headers are read), for the access log.
    caller: Caller,
    /// The request body and Envoy's `x-request-id`, kept while a last resort may still need them.
    body: Vec<u8>,
    request_id: String,
    exchange: Option<Exchange>,
}

impl Downstream {
    /// `gateway`: `None` when the plugin configuration was refused (every request gets a 500).
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Downstream { gateway, phase: Phase::Idle, caller: Caller::default(), body: Vec::new(), request_id: String::new(), exchange: None }
    }

    fn reply(&mut self, host: &dyn StreamHost, reply: &Reply) -> Flow {
        self.phase = Phase::Idle;
        if let Some(gateway) = &self.gateway {
            export(host, gateway, gateway.reply_records(self.caller, reply));
        }
        host.respond(reply.status, &reply.headers, &reply.body);
        Flow::Pause
    }

    /// Calls the last resort with the client's request; its answer arrives in
    /// [`Self::on_call_response`] (or, when it cannot be called, is given at once).
    fn escalate(
        &mut self,
        host: &dyn StreamHost,
        gateway: &Gateway,
        escalating: Escalating,
        body: &[u8],
        request_id: &str,
    ) -> Option<Answer> {
        let Escalation { cluster, timeout_ms, .. } = &escalating.escalation;
        if host.call(cluster, &escalating.escalation.request_headers(request_id), body, *timeout_ms) {
            self.phase = Phase::Escalating(escalating);
            return None;
        }
        Some(gateway.last_resort_answered(&escalating, self.exchange.as_ref(), None, &[]))
    }

    /// Applies the answer Tollgate gives in place of the last resort's (`in_callback`: within
    /// a response callback, whose flow lets the response go on; otherwise it is resumed).
    fn answer(&mut self, host: &dyn StreamHost, answer: Answer, in_callback: bool) -> Flow {
        match answer {
            Answer::Reply(reply) => self.reply(host, &reply),
            Answer::Response { effects, body_size, resume } => {
                apply_effects(host, effects, body_size);
                match (resume, in_callback) {
                    (false, _) => Flow::Pause,
                    (true, true) => Flow::Continue,
                    (true, false) => {
                        host.resume_response();
                        Flow::Continue
                    }
                }
            }
        }
    }

    /// A response step: its effects, then the last resort when every provider failed (the
    /// response waits, with its buffered body's size, `None` when it had none).
    fn respond(&mut self, host: &dyn StreamHost, gateway: &Gateway, mut step: Step, body_size: Option<usize>) -> Flow {
        let escalation = step.escalate.take();
        let flow = run(host, step, body_size.unwrap_or(0));
        let Some(escalation) = escalation else { return flow };
        let (body, request_id) = (std::mem::take(&mut self.body), std::mem::take(&mut self.request_id));
        match self.escalate(host, gateway, Escalating::after_response(escalation, body_size), &body, &request_id) {
            Some(answer) => self.answer(host, answer, true),
            None => Flow::Pause,
        }
    }

    fn finish_body(&mut self, host: &dyn StreamHost, gateway: &Gateway, request: ClientRequest, body: Vec<u8>, body_size: usize) -> Flow {
        let next = gateway.on_body(&request.incoming(), &body, host.store(), host.now_ms());
        self.proceed(host, gateway, request, body, body_size, next)
    }

    /// Applies what the core decided for the complete request body.
    fn proceed(
        &mut self,
        host: &dyn StreamHost,
        gateway: &Gateway,
        request: ClientRequest,
        body: Vec<u8>,
        body_size: usize,
        next: Result<Next, ApiError>,
    ) -> Flow {
        match next {
            Ok(Next::Forward(forward)) => {
                apply_edits(host, forward.edits(&request.headers), body_size);
                if forward.keep_body {
                    self.body = body;
                    self.request_id = request_id(&request).to_owned();
                }
                self.exchange = Some(forward.exchange);
                self.phase = Phase::Idle;
                Flow::Continue
            }
            Ok(Next::Respond(reply)) => self.reply(host, &reply),
            Ok(Next::Escalate(escalation)) => {
                match self.escalate(host, gateway, Escalating::before_request(escalation), &body, request_id(&request)) {
                    Some(answer) => self.answer(host, answer, true),
                    None => Flow::Pause,
                }
            }
            Ok(Next::Analyze(analysis)) => {
                if host.call(&analysis.cluster, &analysis.request_headers(request_id(&request)), &analysis.body, analysis.timeout_ms) {
                    self.phase = Phase::Analysing { request, body, body_size };
                    return Flow::Pause;
                }
                let next = gateway.on_analysed(&request.incoming(), &body, (None, &[]), host.store(), host.now_ms());
                self.proceed(host, gateway, request, body, body_size, next)
            }
            Err(e) => self.reply(host, &Reply::error(request.dialect, e)),
        }
    }

    /// The answer to [`StreamHost::call`]: `status` `None` when there was none (e.g. a timeout).
    pub fn on_call_response(&mut self, host: &dyn StreamHost, status: Option<u16>, body: &[u8]) {
        let Some(gateway) = self.gateway.clone() else { return };
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Escalating(escalating) => {
                let answer = gateway.last_resort_answered(&escalating, self.exchange.as_ref(), status, body);
                self.answer(host, answer, false);
            }
            Phase::ReadingGlobalUsage => {
                let reply = gateway.global_usage_answered(status, body, host.store(), host.now_ms());
                self.reply(host, &reply);
            }
            Phase::Analysing { request, body: request_body, body_size } => {
                let next = gateway.on_analysed(&request.incoming(), &request_body, (status, body), host.store(), host.now_ms());
                if self.proceed(host, &gateway, request, request_body, body_size, next) == Flow::Continue {
                    host.resume_request();
                }
            }
            other => self.phase = other,
        }
    }

    pub fn on_request_headers(&mut self, host: &dyn StreamHost, end_of_stream: bool) -> Flow {
        let Some(gateway) = self.gateway.clone() else {
            return self.reply(host, &ApiError::internal("The gateway has no valid configuration.").into());
        };
        match gateway.on_client_headers(host.request_headers(), host.store(), &|| host.now_ms()) {
            Start::PassThrough { replace_headers } => {
                if let Some(headers) = replace_headers {
                    host.set_request_headers(&headers);
                }
                Flow::Continue
            }
            Start::Respond(reply) => self.reply(host, &reply),
            Start::ReadGlobalUsage => {
                if let Some(call) = gateway.global_usage_call()
                    && host.call(call.cluster, &call.headers, &call.body, call.timeout_ms)
                {
                    self.phase = Phase::ReadingGlobalUsage;
                    return Flow::Pause;
                }
                self.reply(host, &gateway.global_usage_answered(None, &[], host.store(), host.now_ms()))
            }
            Start::ReadBody(request) if end_of_stream => {
                self.caller = request.caller;
                self.finish_body(host, &gateway, request, Vec::new(), 0)
            }
            Start::ReadBody(request) => {
                self.caller = request.caller;
                self.phase = Phase::ReadingBody(request);
                Flow::Pause
            }
        }
    }

    /// `body_size`: the whole request body received so far.
    pub fn on_request_body(&mut self, host: &dyn StreamHost, body_size: usize, end_of_stream: bool) -> Flow {
        let Phase::ReadingBody(request) = &self.phase else {
            return Flow::Continue;
        };
        let Some(gateway) = self.gateway.clone() else { return Flow::Continue };
        match gateway.on_body_part(request, body_size, end_of_stream) {
            BodyProgress::Wait => return Flow::Pause,
            BodyProgress::TooLarge(reply) => return self.reply(host, &reply),
            BodyProgress::Complete => {}
        }
        let Phase::ReadingBody(request) = std::mem::replace(&mut self.phase, Phase::Idle) else { return Flow::Continue };
        let body = host.request_body(body_size);
        self.finish_body(host, &gateway, request, body, body_size)
    }

    pub fn on_response_headers(&mut self, host: &dyn StreamHost, end_of_stream: bool) -> Flow {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Flow::Continue;
        };
        let step = exchange.on_response_head(&gateway.config, host, &|| host.now_ms(), end_of_stream);
        self.respond(host, &gateway, step, None)
    }

    /// `body_size`: the response body buffered so far (the chunk, when streaming).
    pub fn on_response_body(&mut self, host: &dyn StreamHost, body_size: usize, end_of_stream: bool) -> Flow {
        let (Some(gateway), Some(exchange)) = (self.gateway.clone(), self.exchange.as_mut()) else {
            return Flow::Continue;
        };
        let step = exchange.on_response_body(&gateway.config, host, &|| host.now_ms(), body_size, end_of_stream);
        self.respond(host, &gateway, step, Some(body_size))
    }

    /// Runs once per request whatever ended it (completion, upstream reset, client
    /// disconnect), so usage is always accounted.
    pub fn on_log(&mut self, host: &dyn StreamHost) {
        if let (Some(gateway), Some(mut exchange)) = (&self.gateway, self.exchange.take()) {
            // Only the upstream filter of a failover cluster reports usage.
            let reported = matches!(exchange.role(), Role::ViaFailoverCluster { .. });
            let usage = if reported { host.property(&[USAGE_PROPERTY]) } else { None };
            export(host, gateway, gateway.on_log(&mut exchange, usage.as_deref(), host.store(), host.now_ms()));
        }
    }
}

/// The upstream role: the per-attempt filter of a failover cluster. Translates each attempt
/// for the provider of the endpoint Envoy picked, and reports that target's health.
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
    fn reply(host: &dyn StreamHost, reply: &Reply) -> Flow {
        host.respond(reply.status, &reply.headers, &reply.body);
        Flow::Pause
    }

    pub fn on_request_headers(&mut self, host: &dyn StreamHost) -> Flow {
        let plan = host.property(&[PLAN_PROPERTY]);
        let plan = plan.as_deref().and_then(|p| std::str::from_utf8(p).ok());
        let endpoint = host.property(&ENDPOINT_PROVIDER_PATH);
        let endpoint = endpoint.as_deref().and_then(|e| std::str::from_utf8(e).ok());
        match self.gateway.on_attempt_headers(plan, endpoint) {
            Ok(attempt) => {
                self.attempt = Some(attempt);
                Flow::Pause
            }
            Err(e) => Self::reply(host, &e.into()),
        }
    }

    pub fn on_request_body(&mut self, host: &dyn StreamHost, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(attempt) = &self.attempt else { return Flow::Continue };
        if !end_of_stream {
            return Flow::Pause;
        }
        let body = host.request_body(body_size);
        let gateway = self.gateway.clone();
        let now_ms = host.now_ms();
        let forward = match gateway.on_attempt_body(attempt, &body, now_ms) {
            Ok(f) => f,
            Err(e) => return Self::reply(host, &e.into()),
        };
        // The request headers are shared with earlier attempts: rebuilt, not edited.
        let edits = gateway.send_attempt(attempt, &forward, &host.request_headers(), body_size, host.store(), now_ms);
        apply_edits(host, edits, body_size);
        self.exchange = Some(forward.exchange);
        Flow::Continue
    }

    pub fn on_response_headers(&mut self, host: &dyn StreamHost, end_of_stream: bool) -> Flow {
        let Some(exchange) = self.exchange.as_mut() else { return Flow::Continue };
        run(host, exchange.on_response_head(&self.gateway.config, host, &|| host.now_ms(), end_of_stream), 0)
    }

    pub fn on_response_body(&mut self, host: &dyn StreamHost, body_size: usize, end_of_stream: bool) -> Flow {
        let Some(exchange) = self.exchange.as_mut() else { return Flow::Continue };
        let step = exchange.on_response_body(&self.gateway.config, host, &|| host.now_ms(), body_size, end_of_stream);
        run(host, step, body_size)
    }

    /// Called for every attempt, including ones that got no response (connection refused,
    /// reset, timeout): the moment to report the target's health. Once: later calls do nothing.
    pub fn on_done(&mut self, host: &dyn Reporter) {
        if let Some(exchange) = self.exchange.take() {
            let config = &self.gateway.config;
            for (series, value) in self.gateway.on_attempt_done(&exchange, host.store(), host.now_ms()) {
                host.record_metric(series, value, config);
            }
        }
    }
}

#[cfg(any(test, feature = "memory-host"))]
#[path = "session_recording.rs"]
pub mod recording;

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
