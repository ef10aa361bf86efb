//! The response story of one request: decide between streaming and buffering when the upstream
//! headers arrive, translate each chunk as it comes (never holding more than an unfinished
//! event), and remember usage and outcome for accounting and health.
//!
//! In a failover cluster the upstream filter tells the gateway filter which target an attempt
//! went to and what the answer used through Envoy filter state ([`ATTEMPT_PROPERTY`],
//! [`USAGE_PROPERTY`]), never through the response: a provider writes headers and stream bytes,
//! so anything read from them could be forged by the provider, while filter state can only be
//! written by Envoy's filters.

use super::Escalation;
use crate::accounting::budget::{Caller, Charges, ScopeId};
use crate::client;
use crate::config::Config;
use crate::error::ApiError;
use crate::providers::Provider;
use crate::providers::{self, ResponseContext, StreamTranslator, openai};
use crate::router::TargetId;
use crate::stream::{Decoder, StreamError};
use crate::usage::Usage;

/// Filter state (`wasm.tollgate_attempt`): the target of the latest attempt and the parameters
/// its translation dropped, set by the upstream filter when it sends the attempt.
pub const ATTEMPT_PROPERTY: &str = "tollgate_attempt";
/// Filter state (`wasm.tollgate_usage`): the usage of the answer so far, set by the upstream filter.
pub const USAGE_PROPERTY: &str = "tollgate_usage";

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request, never moved after the headers arrive
enum State {
    AwaitingHeaders,
    Streaming {
        framer: Decoder,
        translator: StreamTranslator,
    },
    /// The stream was cut short by Tollgate (event over the size limit): swallow the rest.
    Aborted,
    Buffering,
    /// The buffered answer was too large and has been replaced by an error: ignore the rest.
    Refused,
    Done,
}

/// How the upstream response will be handled.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// Forward chunk by chunk after setting these headers (content-length removed).
    Stream,
    /// Hold the headers until the whole body has arrived.
    Buffer,
}

/// What the response headers say.
#[derive(Debug, Default, Clone, Copy)]
pub struct ResponseHead<'a> {
    pub status: u16,
    pub content_type: Option<&'a str>,
    /// [`ATTEMPT_PROPERTY`] from the upstream filter of a failover cluster.
    pub served: Option<&'a str>,
    /// Envoy's `x-envoy-attempt-count`.
    pub attempts: Option<u32>,
    /// For 429s: when the provider takes requests again.
    pub rate_limited_until: Option<u64>,
    /// On errors, `x-amzn-errortype` (AWS names the error there, not in the body).
    pub error_type: Option<&'a str>,
    /// On errors Envoy answered itself (no provider was reached): its response code details,
    /// e.g. `cluster_not_found`, `no_healthy_upstream`.
    pub envoy_reply: Option<&'a str>,
}

/// The final response of a buffered exchange.
#[derive(Debug, PartialEq)]
pub struct Finished {
    pub status: u16,
    /// `None`: the upstream body is forwarded unchanged.
    pub body: Option<Vec<u8>>,
    /// Every target failed and the route has a last resort: call it before answering.
    pub escalate: Option<Escalation>,
}

/// Which filter holds an exchange, and so where its answer comes from and who it reports to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Role {
    /// The gateway filter translated the request for one provider and translates its answer.
    #[default]
    Direct,
    /// The gateway filter sent the request to a failover cluster: the upstream filter translates
    /// each attempt (targets in `plan` order), answers in OpenAI's format and reports which
    /// target served and what it used.
    ViaFailoverCluster { plan: Vec<TargetId> },
    /// The upstream filter's work for one attempt. Its client is the gateway filter, which always
    /// wants usage, reported as it becomes known (`reported`: the usage last reported).
    Attempt { reported: Option<Usage> },
}

/// What an exchange starts from: everything known when the request goes upstream.
#[derive(Debug, Default)]
pub(super) struct Opening {
    pub role: Role,
    /// Index of the provider in the configuration.
    pub provider: usize,
    /// The answer's translation context; its `model` is the upstream model.
    pub ctx: ResponseContext,
    /// Parameters removed on the way upstream (reported in `x-tollgate-dropped-params`).
    pub dropped: Vec<String>,
    /// The counters this request touches and its budget reservations.
    pub charges: Charges,
    /// The model name the client asked for.
    pub requested_model: String,
    pub caller: Caller,
    /// Usage counter scope of the model, also its metrics label.
    pub model_scope: ScopeId,
    pub started_ms: u64,
    /// The matched routing rule.
    pub route: Option<usize>,
    /// The router target whose health this request reports (routes with alternatives).
    pub target: Option<TargetId>,
}

#[derive(Debug)]
pub struct Exchange {
    role: Role,
    pub(super) provider: usize,
    /// `model` is the upstream model (for a failover request: the one that served it).
    pub(super) ctx: ResponseContext,
    /// Parameters removed on the way upstream (reported in `x-tollgate-dropped-params`).
    pub(super) dropped: Vec<String>,
    state: State,
    pub(super) status: u16,
    /// The upstream's `x-amzn-errortype` header on an error answer.
    error_type: Option<String>,
    /// Envoy answered the error itself: why (see [`ResponseHead::envoy_reply`]).
    envoy_reply: Option<String>,
    pub(super) usage: Option<Usage>,
    /// The upstream answer arrived complete (for streams: `[DONE]`/`message_stop` was seen).
    pub(super) completed: bool,
    /// The counters this request touches and its budget reservations.
    pub(super) charges: Charges,
    /// The model name the client asked for.
    pub(super) requested_model: String,
    pub(super) caller: Caller,
    /// Usage counter scope of the model, also its metrics label.
    pub(super) model_scope: ScopeId,
    pub(super) started_ms: u64,
    /// When the first streamed body chunk arrived.
    pub(super) first_byte_ms: Option<u64>,
    /// The matched routing rule.
    route: Option<usize>,
    /// The router target whose health this request reports (routes with alternatives).
    pub(super) target: Option<TargetId>,
    pub(super) attempts: u32,
    pub(super) rate_limited_until: Option<u64>,
    /// This request's failure opened the target's breaker.
    pub(super) breaker_opened: bool,
    /// What the guardrails found in the request and did about it.
    pub guardrails: crate::guardrails::Audit,
}

impl Exchange {
    pub(super) fn new(o: Opening) -> Self {
        Exchange {
            role: o.role,
            provider: o.provider,
            ctx: o.ctx,
            dropped: o.dropped,
            state: State::AwaitingHeaders,
            status: 0,
            error_type: None,
            envoy_reply: None,
            usage: None,
            completed: false,
            charges: o.charges,
            requested_model: o.requested_model,
            caller: o.caller,
            model_scope: o.model_scope,
            started_ms: o.started_ms,
            first_byte_ms: None,
            route: o.route,
            target: o.target,
            attempts: 1,
            rate_limited_until: None,
            breaker_opened: false,
            guardrails: Vec::new(),
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The upstream model (for a failover request: the one that served it).
    pub fn upstream_model(&self) -> &str {
        &self.ctx.model
    }

    /// What the answer cost (`None`: no usage, or the target has no price).
    pub fn cost(&self) -> Option<crate::accounting::money::Pico> {
        self.usage.and_then(|u| self.charges.price.map(|p| p.cost(&u)))
    }

    /// From sending the request to the first streamed chunk (streams only).
    pub fn time_to_first_token_ms(&self) -> Option<u64> {
        self.first_byte_ms.map(|f| f.saturating_sub(self.started_ms))
    }

    /// The failover plan's targets, in attempt order (empty unless via a failover cluster).
    pub(super) fn plan(&self) -> &[TargetId] {
        match &self.role {
            Role::ViaFailoverCluster { plan } => plan,
            _ => &[],
        }
    }

    pub(super) fn route_index(&self) -> Option<usize> {
        self.route
    }

    fn via_failover_cluster(&self) -> bool {
        matches!(self.role, Role::ViaFailoverCluster { .. })
    }

    pub fn provider<'c>(&self, config: &'c Config) -> Option<&'c Provider> {
        config.providers.get(self.provider)
    }

    /// Headers that tell the client what served it and how (none from the upstream role: its
    /// client is the gateway filter, which learns that from [`Self::attempt_report`]).
    pub fn client_headers(&self, config: &Config) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(5);
        if let Role::Attempt { .. } = self.role {
            return h;
        }
        if let Some(p) = self.provider(config) {
            h.push(("x-tollgate-provider", p.name.clone()));
        }
        h.push(("x-tollgate-model", self.ctx.model.clone()));
        if let Some(route) = self.route.and_then(|r| config.router.routes.get(r)) {
            h.push(("x-tollgate-route", route.name.clone()));
            h.push(("x-tollgate-attempts", self.attempts.to_string()));
        }
        if !self.dropped.is_empty() {
            h.push(("x-tollgate-dropped-params", self.dropped.join(",")));
        }
        h.extend(super::refusal::rate_headers(&self.charges.standings));
        h
    }

    /// Upstream role: the attempt's target and dropped parameters, for [`ATTEMPT_PROPERTY`]
    /// (`provider/model`, then a line of dropped parameters; provider names have no `/`).
    pub fn attempt_report(&self, config: &Config) -> String {
        let provider = self.provider(config).map_or("", |p| p.name.as_str());
        format!("{provider}/{}\n{}", self.ctx.model, self.dropped.join(","))
    }

    /// Upstream role: the usage to write to [`USAGE_PROPERTY`] when it changed since last time.
    pub fn usage_report(&mut self) -> Option<String> {
        let Role::Attempt { reported } = &mut self.role else { return None };
        if self.usage == *reported {
            return None;
        }
        *reported = self.usage;
        let u = self.usage.as_ref()?;
        Some(format!("{} {} {} {} {}", u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens))
    }

    /// Gateway role of a failover request: the usage the upstream filter reported is the
    /// usage accounted (`None` when it reported none).
    pub fn take_reported_usage(&mut self, report: Option<&[u8]>) {
        if !self.via_failover_cluster() {
            return;
        }
        let parse = |raw: &[u8]| {
            let mut n = std::str::from_utf8(raw).ok()?.split(' ').map(|v| v.parse::<u64>().ok());
            Some(Usage {
                input_tokens: n.next()??,
                cache_read_tokens: n.next()??,
                cache_write_tokens: n.next()??,
                output_tokens: n.next()??,
                reasoning_tokens: n.next()??,
            })
        };
        self.usage = report.and_then(parse);
    }

    /// A failover cluster's upstream filter says which target answered: account for that one.
    fn served_by(&mut self, config: &Config, report: &str) {
        let (target, dropped) = report.split_once('\n').unwrap_or((report, ""));
        let Some((provider, model)) = target.split_once('/') else { return };
        self.dropped = dropped.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect();
        let Some(p) = config.providers.iter().position(|p| p.name == provider) else { return };
        self.provider = p;
        model.clone_into(&mut self.ctx.model);
        if let Some(target) = config.router.find_target(p, model).and_then(|t| config.router.target(t)) {
            self.model_scope = target.scope;
            let provider_scope = config.providers.get(p).map_or(0, |p| p.scope);
            self.charges.retarget(provider_scope, target.scope, target.price);
        }
    }

    pub fn on_response_headers(&mut self, config: &Config, head: &ResponseHead) -> ResponseMode {
        self.status = head.status;
        self.attempts = head.attempts.unwrap_or(1).max(1);
        self.rate_limited_until = head.rate_limited_until;
        self.error_type = head.error_type.map(str::to_owned);
        self.envoy_reply = head.envoy_reply.map(str::to_owned);
        if let (true, Some(report)) = (self.via_failover_cluster(), head.served) {
            self.served_by(config, report);
        }
        let max = config.limits.max_stream_event_bytes;
        let streaming = self.provider(config).filter(|_| self.ctx.stream && (200..300).contains(&head.status)).and_then(|p| {
            if self.via_failover_cluster() {
                // A failover cluster's upstream filter already answers in OpenAI's format.
                let sse = head.content_type.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
                sse.then(|| (Decoder::sse(max), StreamTranslator::OpenAi(openai::StreamState::relay(&self.ctx))))
            } else {
                Some((providers::stream_decoder(p, head.content_type, max)?, StreamTranslator::new(p, &self.ctx)))
            }
        });
        match streaming {
            Some((framer, translator)) => {
                self.state = State::Streaming { framer, translator };
                ResponseMode::Stream
            }
            None => {
                self.state = State::Buffering;
                ResponseMode::Buffer
            }
        }
    }

    /// Translates one streamed chunk. `None`: forward the chunk unchanged.
    pub fn on_stream_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let (framer, translator) = match &mut self.state {
            State::Streaming { framer, translator } => (framer, translator),
            State::Aborted => return Some(Vec::new()),
            _ => return None,
        };
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 2);
        let mut verbatim = framer.pending_len() == 0;
        let fed = framer.feed(chunk, |event| verbatim &= translator.on_event(&event, &mut out));
        if let Err(error) = fed {
            self.usage = translator.usage();
            self.state = State::Aborted;
            let e = match error {
                StreamError::Overflow { limit } => {
                    ApiError::bad_gateway(format!("The provider sent a stream event larger than the gateway limit of {limit} bytes."))
                        .with_code("stream_event_too_large")
                }
                StreamError::Corrupt(reason) => ApiError::bad_gateway(format!("The provider's stream is corrupt: {reason}.")),
            };
            out.extend_from_slice(&client::error_event(self.ctx.dialect, &e));
            return Some(out);
        }
        if end_of_stream {
            framer.finish(|event| verbatim &= translator.on_event(&event, &mut out));
            let before = out.len();
            translator.finish(&mut out);
            verbatim &= out.len() == before;
        }
        self.usage = translator.usage();
        let pending = framer.pending_len();
        if end_of_stream {
            self.completed = translator.completed();
            self.state = State::Done;
        }
        if verbatim && pending == 0 && out.len() == chunk.len() { None } else { Some(out) }
    }

    /// A buffered answer (its announced length, or what has arrived so far) larger than the
    /// gateway buffers: the 502 that replaces it, before Envoy's own buffer limit answers a bare
    /// 500 instead.
    pub fn too_large(&mut self, config: &Config, size: usize) -> Option<Finished> {
        let limit = config.limits.max_response_bytes;
        if !matches!(self.state, State::Buffering) || size <= limit {
            return None;
        }
        self.state = State::Refused;
        let e = ApiError::bad_gateway(format!("The provider's answer is larger than the gateway limit of {limit} bytes."))
            .with_code("response_too_large");
        Some(self.error_reply(e))
    }

    /// Translates a complete buffered response (success or error).
    pub fn on_complete_body(&mut self, config: &Config, body: &[u8]) -> Finished {
        self.state = State::Done;
        let Some(provider) = self.provider(config) else {
            return self.error_reply(ApiError::internal("provider configuration changed during the request"));
        };
        let status = self.status;
        if !(200..300).contains(&status) {
            let error = if let Some(refusal) = self.envoy_reply.as_deref().and_then(global_refusal) {
                // Envoy's rate-limit filter answered: no provider was asked, nothing to fail over.
                return self.error_reply(refusal);
            } else if let Some(details) = &self.envoy_reply {
                unreached(provider, status, details)
            } else if self.via_failover_cluster() {
                providers::sane_status(openai::translate_error(status, body))
            } else {
                providers::translate_error(provider, status, self.error_type.as_deref(), body)
            };
            return self.failed(config, error);
        }
        if self.ctx.stream {
            return self.error_reply(ApiError::bad_gateway("The provider answered a streaming request without an event stream."));
        }
        let translated = if self.via_failover_cluster() {
            openai::translate_relayed(&self.ctx, body)
        } else {
            providers::translate_response(provider, &self.ctx, body)
        };
        match translated {
            Ok(t) => {
                self.usage = t.usage;
                self.completed = true;
                // Whole answers get their placeholders back in every string of the client's JSON,
                // whichever path made it (see `guardrails::redact`).
                let restored = self.ctx.restore.as_ref().and_then(|r| r.apply_json(t.body.as_deref().unwrap_or(body)));
                Finished { status, body: restored.or(t.body), escalate: None }
            }
            Err(e) => self.error_reply(e),
        }
    }

    /// The final answer is an error. After a failover across several targets, say what was
    /// tried; with a last resort configured, escalate.
    fn failed(&self, config: &Config, mut error: ApiError) -> Finished {
        // Providers name their own model in errors; the client asked for another name.
        let upstream_model = &self.ctx.model;
        if !upstream_model.is_empty() && !self.requested_model.is_empty() && *upstream_model != self.requested_model {
            error.message = error.message.replace(upstream_model.as_str(), &self.requested_model);
        }
        let retriable = error.status >= 500 || error.status == 429;
        let route = self.route.and_then(|r| config.router.routes.get(r));
        if !retriable || route.is_none() {
            return self.error_reply(error);
        }
        let plan = self.plan();
        let tried_targets: Vec<TargetId> =
            if plan.is_empty() { self.target.into_iter().collect() } else { plan.iter().copied().take(self.attempts as usize).collect() };
        let tried = config.router.names(&tried_targets, &config.providers).join(", ");
        let tried_providers = config.router.provider_names(&tried_targets, &config.providers).join(", ");
        if let Some(l) = route.and_then(|r| r.last_resort.as_ref()) {
            let escalation = Escalation {
                cluster: l.cluster.clone(),
                path: l.path.clone(),
                authority: l.authority.clone(),
                timeout_ms: l.timeout_ms,
                tried,
                tried_providers,
                dialect: self.ctx.dialect,
            };
            return Finished { status: 503, body: None, escalate: Some(escalation) };
        }
        if plan.len() > 1 {
            let e = ApiError::new(
                503,
                "api_error",
                format!("No target could serve this request. Tried: {tried_providers}. Last error: {}", error.message),
            )
            .with_code("all_targets_failed");
            return self.error_reply(e);
        }
        self.error_reply(error)
    }

    /// An error answer in the client's dialect.
    fn error_reply(&self, e: ApiError) -> Finished {
        Finished { status: e.status, body: Some(client::error_body(self.ctx.dialect, &e)), escalate: None }
    }

    pub fn is_refused(&self) -> bool {
        matches!(self.state, State::Refused)
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. } | State::Aborted)
    }
}

/// The refusal of Envoy's rate-limit filter (global limits and budgets), by its response code
/// details (source/extensions/filters/http/ratelimit/ratelimit.cc, `RcDetailsValues`): over a
/// limit, or the rate-limit service failed and the filter fails closed.
pub fn global_refusal(details: &str) -> Option<ApiError> {
    match details {
        "request_rate_limited" => Some(
            ApiError::new(
                429,
                "requests",
                "Rate limit reached: a limit or budget this gateway shares across its replicas (for this key, team, model or \
                 the whole gateway) is used up. Please try again later.",
            )
            .with_code("rate_limit_exceeded"),
        ),
        "rate_limiter_error" => Some(
            ApiError::new(503, "api_error", "The gateway's rate-limit service did not answer; requests are refused until it does.")
                .with_code("rate_limit_service_unavailable"),
        ),
        _ => None,
    }
}

/// The error when Envoy answered itself and no provider was reached: says why, naming the
/// provider (never Envoy's cluster, an internal name). Details as in
/// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/response_code_details
fn unreached(provider: &Provider, status: u16, details: &str) -> ApiError {
    let name = &provider.name;
    let (status, message) = match details {
        "cluster_not_found" => {
            (503, format!("The gateway has no route to provider `{name}`: it is missing from the gateway's Envoy configuration."))
        }
        "no_healthy_upstream" => (503, format!("Provider `{name}` has no healthy endpoint at the moment.")),
        "upstream_response_timeout" | "upstream_per_try_timeout" => (504, format!("Provider `{name}` did not answer in time.")),
        d if d.starts_with("upstream_reset") => (502, format!("The connection to provider `{name}` failed before it answered.")),
        _ => (status, format!("The gateway could not get an answer from provider `{name}`.")),
    };
    providers::sane_status(ApiError::new(status, crate::error::kind_for_status(status), message).with_code("provider_unreachable"))
}
