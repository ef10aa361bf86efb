//! The request story, top-down: classify the endpoint and identify the caller → parse the body
//! once → select where it goes (routing rules, strategies, health; or the `models` entry) →
//! apply the target model's parameter policy → translate for the provider (here, or per attempt
//! in the upstream filter for failover clusters) → admit against budgets → steer Envoy's
//! retries. The response story is in [`exchange`]; [`Gateway::finish`] accounts for the result.

pub mod access_log;
pub mod exchange;
pub mod selection;
pub mod telemetry;
pub mod upstream;

use crate::accounting::budget::{self, Caller};
use crate::config::Config;
use crate::config::Provider;
use crate::config::schema::ParamAction;
use crate::host::SharedStore;
use crate::openai::ApiError;
use crate::openai::embeddings;
use crate::openai::request::{self, ChatRequest};
use crate::providers::{self, Built, Edits, Operation, ResponseContext, Target};
use crate::router::health::{self, Attempt};
use crate::router::rules::Facts;
use crate::router::{Demand, Retry};
pub use exchange::Exchange;
use selection::{Choice, Selection};
use std::cell::RefCell;

/// Headers a client may use to authenticate to Tollgate or to a provider; none of them is ever
/// forwarded upstream.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"];

/// The header the Envoy route reads to pick the upstream cluster.
pub const CLUSTER_HEADER: &str = "x-tollgate-cluster";

/// Per-request headers some providers sign with; an earlier attempt's must never reach the
/// next provider (Envoy reuses one request header map across retry attempts).
const SIGNATURE_HEADERS: &[&str] = &["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];

/// Request headers that steer Envoy or Tollgate: only Tollgate sets them, whatever a client sends.
pub fn is_control_header(name: &str) -> bool {
    let name = name.as_bytes();
    [b"x-envoy-".as_slice(), b"x-tollgate-".as_slice()]
        .iter()
        .any(|p| name.len() >= p.len() && name.get(..p.len()).is_some_and(|n| n.eq_ignore_ascii_case(p)))
}

pub struct Gateway {
    pub config: Config,
    /// Headers an upstream attempt removes before setting its own: every credential and
    /// provider header any configured provider uses.
    pub attempt_scrub: Vec<String>,
    /// This worker's not-yet-written counters of uncapped scopes.
    batch: RefCell<budget::Batch>,
}

/// A response Tollgate answers itself.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The OpenAI error code, for the access log.
    pub error_code: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Reply { status, body, headers: vec![("content-type", "application/json".into())], error_code: None }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let mut reply = Reply::json(e.status, e.to_json());
        reply.error_code = e.code.map(|c| c.into_owned()).or_else(|| Some(e.kind.into_owned()));
        reply
    }
}

/// The request headers Tollgate looks at.
#[derive(Debug, Default)]
pub struct RequestHead<'h> {
    pub method: &'h str,
    pub path: &'h str,
    pub content_length: Option<&'h str>,
    pub authorization: Option<&'h str>,
}

/// What the body phase needs from the request headers.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'h> {
    pub operation: Operation,
    pub caller: Caller,
    /// All request headers (for routing rules on headers).
    pub headers: &'h [(String, String)],
    /// The client sent `x-tollgate-explain: 1`.
    pub explain: bool,
}

/// What to do once the request headers are known.
#[derive(Debug, PartialEq)]
pub enum OnHeaders {
    /// Not a Tollgate endpoint: leave the request to the rest of the Envoy config.
    PassThrough,
    Respond(Reply),
    /// A chat completion or embeddings request from this caller: wait for the whole body.
    ReadBody(Caller, Operation),
}

/// What to do with a complete request body.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per request and moved straight into its context
pub enum Next<'c> {
    Forward(Forward<'c>),
    Respond(Reply),
    /// No target is available: hand the request to the route's last resort, then answer.
    Escalate(Escalation),
}

/// Where and how to send a request upstream.
#[derive(Debug)]
pub struct Forward<'c> {
    pub cluster: &'c str,
    /// The provider this filter translated for; `None` when the upstream filter of a failover
    /// cluster translates each attempt.
    pub provider: Option<&'c Provider>,
    /// The body, path and extra headers the provider needs.
    pub upstream: Built,
    /// Envoy retry steering.
    pub headers: Vec<(&'static str, String)>,
    /// For failover clusters: the plan the upstream filter reads for each attempt.
    pub plan: Option<String>,
    pub exchange: Exchange,
    /// The request body must be kept: a last resort may need it after the providers failed.
    pub keep_body: bool,
}

impl Forward<'_> {
    pub fn path(&self) -> Option<&str> {
        let provider = self.provider?;
        Some(self.upstream.path.as_deref().unwrap_or(&provider.chat_path))
    }

    /// How the request headers change, in order: `remove` goes first, then the provider's
    /// path, authority, credentials and fixed headers, then the translation's and Envoy's retry
    /// steering, and the body length when it is given.
    pub fn header_edits<S: AsRef<str>>(&self, remove: &[S], content_length: Option<usize>) -> Vec<HeaderEdit> {
        let mut edits: Vec<HeaderEdit> = remove.iter().map(|name| (name.as_ref().to_owned(), None)).collect();
        if let (Some(p), Some(path)) = (self.provider, self.path()) {
            edits.push((":path".into(), Some(path.to_owned())));
            edits.push((":authority".into(), Some(p.authority.clone())));
            let credentials = p.auth.iter().map(|(name, value)| (*name, value.expose()));
            edits.extend(
                credentials.chain(p.headers.iter().map(|(n, v)| (*n, v.as_str()))).map(|(n, v)| (n.to_owned(), Some(v.to_owned()))),
            );
        }
        for (name, value) in self.upstream.headers.iter().chain(&self.headers) {
            edits.push(((*name).to_owned(), Some(value.clone())));
        }
        if let Some(length) = content_length {
            edits.push(("content-length".into(), Some(length.to_string())));
        }
        edits
    }
}

/// A header to set (replacing every value it had) or, with `None`, to remove.
pub type HeaderEdit = (String, Option<String>);

/// Applies edits to a header list as Envoy would apply them one by one.
pub fn apply_header_edits(headers: &mut Vec<(String, String)>, edits: Vec<HeaderEdit>) {
    for (name, value) in edits {
        let first = headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(&name));
        let mut seen = false;
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name) || !std::mem::replace(&mut seen, true) && value.is_some());
        match (first, value) {
            (Some(i), Some(value)) => {
                if let Some(slot) = headers.get_mut(i) {
                    slot.1 = value;
                }
            }
            (None, Some(value)) => headers.push((name, value)),
            (_, None) => {}
        }
    }
}

/// A call to a route's last resort (e.g. a human review queue) when every target failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
    /// `provider/model` of the targets tried or skipped, for the handler and the client.
    pub tried: String,
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        let mut scrub: Vec<String> = CLIENT_CREDENTIAL_HEADERS.iter().chain(SIGNATURE_HEADERS).map(|h| (*h).to_owned()).collect();
        for p in &config.providers {
            scrub.extend(p.auth.iter().map(|(name, _)| (*name).to_owned()));
            scrub.extend(p.headers.iter().map(|(name, _)| (*name).to_owned()));
        }
        scrub.sort();
        scrub.dedup();
        Gateway { config, attempt_scrub: scrub, batch: RefCell::default() }
    }

    pub fn on_request_headers(&self, head: &RequestHead, store: &dyn SharedStore, now_ms: u64) -> OnHeaders {
        let RequestHead { method, path, content_length, authorization } = *head;
        let path = path.split('?').next().unwrap_or_default();
        let Some(rest) = path.strip_prefix("/v1/") else {
            return OnHeaders::PassThrough;
        };
        let respond = |e: ApiError| OnHeaders::Respond(e.into());
        let allow = |allowed: &str| OnHeaders::Respond(with_allow(ApiError::method_not_allowed(method, path), allowed));
        let accounting = &self.config.accounting;
        match rest {
            "tollgate/usage" if method != "GET" => allow("GET"),
            "tollgate/usage" if !accounting.is_admin(authorization) => respond(
                ApiError::new(401, "authentication_error", "The usage API needs an admin key (`auth.admin_keys_sha256`).")
                    .with_code("admin_key_required"),
            ),
            "tollgate/usage" => OnHeaders::Respond(Reply::json(200, accounting.report(store, now_ms))),
            _ if rest.starts_with("chat/completions") || rest.starts_with("models") || rest == "embeddings" => {
                let caller = match accounting.authenticate(authorization) {
                    Ok(c) => c,
                    Err(e) => return respond(e),
                };
                self.route_endpoint(rest, method, path, content_length, caller)
            }
            _ => respond(ApiError::not_found(format!(
                "Unknown endpoint {method} {path}. This gateway serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models."
            ))),
        }
    }

    fn route_endpoint(&self, rest: &str, method: &str, path: &str, content_length: Option<&str>, caller: Caller) -> OnHeaders {
        let allow = |allowed: &str| OnHeaders::Respond(with_allow(ApiError::method_not_allowed(method, path), allowed));
        match rest {
            "chat/completions" | "embeddings" if method != "POST" => allow("POST"),
            "chat/completions" | "embeddings" => {
                let limit = self.config.limits.max_request_bytes;
                let operation = if rest == "embeddings" { Operation::Embeddings } else { Operation::Chat };
                match content_length.map(str::parse::<usize>) {
                    Some(Ok(n)) if n > limit => OnHeaders::Respond(ApiError::too_large(limit).into()),
                    _ => OnHeaders::ReadBody(caller, operation),
                }
            }
            _ if method != "GET" => allow("GET"),
            "models" | "models/" => OnHeaders::Respond(Reply::json(200, self.config.models_json.clone())),
            _ => {
                let id = rest.strip_prefix("models/").unwrap_or_default();
                match self.config.model_card(id) {
                    Some(card) => OnHeaders::Respond(Reply::json(200, card.to_vec())),
                    None => OnHeaders::Respond(ApiError::model_not_found(id).into()),
                }
            }
        }
    }

    /// Whether routing rules look at request headers (the shell then keeps them).
    pub fn routes_on_headers(&self) -> bool {
        !self.config.router.routes.is_empty()
    }

    /// Handles a complete request body.
    pub fn on_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, ApiError> {
        if body.len() > self.config.limits.max_request_bytes {
            return Err(ApiError::too_large(self.config.limits.max_request_bytes));
        }
        match incoming.operation {
            Operation::Chat => self.on_chat_body(incoming, body, store, now_ms),
            Operation::Embeddings => self.on_embeddings_body(incoming, body, store, now_ms),
        }
    }

    fn facts<'r>(&'r self, incoming: &Incoming<'r>, model: &'r str, req: Option<&'r ChatRequest<'r>>, now_ms: u64) -> Facts<'r> {
        let accounting = &self.config.accounting;
        let key = incoming.caller.key.and_then(|k| accounting.keys.get(k));
        Facts {
            model,
            headers: incoming.headers,
            user: req.and_then(|r| r.user.as_deref()),
            metadata: req.and_then(|r| r.metadata),
            messages: req.map(|r| r.messages.as_slice()).unwrap_or_default(),
            key: key.map(|k| k.id.as_str()),
            team: key.and_then(|k| k.team).and_then(|t| accounting.scopes.get(t as usize)).map(|s| s.name.as_str()),
            now_ms,
        }
    }

    fn on_chat_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, ApiError> {
        let mut req = request::parse(body)?;
        let output = req.output_limit().unwrap_or(self.config.limits.estimated_output_tokens);
        let demand = Demand { input_tokens: body.len() as u64 / 4, output_tokens: output, stream: req.stream };
        let selection = self.select(&self.facts(incoming, &req.model, Some(&req), now_ms), incoming.caller, store, demand)?;
        if incoming.explain && self.config.router.explain {
            return Ok(Next::Respond(Reply::json(200, self.explain(&selection))));
        }
        let ctx = ResponseContext {
            operation: Operation::Chat,
            created: now_ms / 1000,
            stream: req.stream,
            client_wants_usage: req.include_usage == Some(true),
            ..Default::default()
        };
        match selection {
            Selection::Exhausted { route, skipped } => self.exhausted(route.1, &skipped.iter().map(|s| s.target).collect::<Vec<_>>()),
            Selection::Chain { route, first, plan, chain, .. } => {
                let estimate = budget::estimate(first.price, body.len(), output);
                let requested = req.model.0.into_owned();
                self.relay(Operation::Chat, route, first, &plan, chain, ctx, requested, incoming.caller, estimate, (store, now_ms))
            }
            Selection::Direct { route, choice, .. } => {
                let mut edits = Edits::default();
                apply_policy(&mut req, &choice.policy, &mut edits)?;
                let upstream = providers::build_chat(choice.provider, &req, body, &Target { model: &choice.model, now_ms }, &mut edits)?;
                let ctx = ResponseContext { injected_usage: upstream.injected_usage, answer_tool: upstream.answer_tool.clone(), ..ctx };
                let estimate = budget::estimate(choice.price, body.len(), output);
                let requested = req.model.0.into_owned();
                let prepared = Prepared { choice, route, requested, ctx, dropped: edits.dropped, upstream, estimate };
                self.admit(prepared, incoming.caller, store, now_ms).map(Next::Forward)
            }
        }
    }

    fn on_embeddings_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, ApiError> {
        let req = embeddings::parse(body)?;
        let demand = Demand { input_tokens: body.len() as u64 / 4, output_tokens: 0, stream: false };
        let selection = self.select(&self.facts(incoming, &req.model, None, now_ms), incoming.caller, store, demand)?;
        if incoming.explain && self.config.router.explain {
            return Ok(Next::Respond(Reply::json(200, self.explain(&selection))));
        }
        let ctx =
            ResponseContext { operation: Operation::Embeddings, created: now_ms / 1000, base64: req.wants_base64(), ..Default::default() };
        match selection {
            Selection::Exhausted { route, skipped } => self.exhausted(route.1, &skipped.iter().map(|s| s.target).collect::<Vec<_>>()),
            Selection::Chain { route, first, plan, chain, .. } => {
                let estimate = budget::estimate(first.price, body.len(), 0);
                let requested = req.model.0.into_owned();
                self.relay(Operation::Embeddings, route, first, &plan, chain, ctx, requested, incoming.caller, estimate, (store, now_ms))
            }
            Selection::Direct { route, choice, .. } => {
                let upstream = providers::build_embeddings(choice.provider, &req, body, &Target { model: &choice.model, now_ms })?;
                let estimate = budget::estimate(choice.price, body.len(), 0);
                let requested = req.model.0.into_owned();
                let prepared = Prepared { choice, route, requested, ctx, dropped: Vec::new(), upstream, estimate };
                self.admit(prepared, incoming.caller, store, now_ms).map(Next::Forward)
            }
        }
    }

    /// No target of the route is available: the last resort, or a 503 saying why.
    fn exhausted(&self, route: &crate::router::Route, skipped: &[crate::router::TargetId]) -> Result<Next<'_>, ApiError> {
        let tried = self.config.router.names(skipped, &self.config.providers).join(", ");
        match &route.last_resort {
            Some(l) => Ok(Next::Escalate(Escalation {
                cluster: l.cluster.clone(),
                path: l.path.clone(),
                authority: l.authority.clone(),
                timeout_ms: l.timeout_ms,
                tried,
            })),
            None => Err(all_targets_failed(&tried, "every target is unavailable (circuit open or rate-limited)")),
        }
    }

    /// Sends the request to a failover cluster; the upstream filter translates each attempt.
    #[allow(clippy::too_many_arguments)]
    fn relay<'c>(
        &'c self,
        operation: Operation,
        route: (usize, &'c crate::router::Route),
        first: Choice<'c>,
        plan: &[crate::router::TargetId],
        chain: usize,
        ctx: ResponseContext,
        requested: String,
        caller: Caller,
        estimate: crate::accounting::money::Pico,
        (store, now_ms): (&dyn SharedStore, u64),
    ) -> Result<Next<'c>, ApiError> {
        let router = &self.config.router;
        let cluster = router.chains.get(chain).map(|c| c.cluster.as_str()).ok_or_else(|| ApiError::internal("unknown failover cluster"))?;
        // The upstream filter always reports usage; the client sees the usage chunk only if asked.
        let ctx = ResponseContext { relay: true, injected_usage: ctx.stream && !ctx.client_wants_usage, ..ctx };
        let attempts = u32::try_from(plan.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let headers = retry_headers(router.retry_for(route.1), attempts);
        let prepared =
            Prepared { choice: first, route: Some(route), requested, ctx, dropped: Vec::new(), upstream: Built::default(), estimate };
        let mut forward = self.admit(prepared, caller, store, now_ms)?;
        forward.cluster = cluster;
        forward.provider = None;
        forward.headers = headers;
        forward.plan = Some(router.encode_plan(operation, plan, &self.config.providers));
        forward.exchange.plan = plan.to_vec();
        // Each attempt reports its own target's health from the upstream filter.
        forward.exchange.target = None;
        Ok(Next::Forward(forward))
    }

    /// Reserves budget and hands the request over to its exchange.
    fn admit<'c>(&'c self, p: Prepared<'c>, caller: Caller, store: &dyn SharedStore, now_ms: u64) -> Result<Forward<'c>, ApiError> {
        let Prepared { choice, route, requested, mut ctx, dropped, upstream, estimate } = p;
        let accounting = &self.config.accounting;
        let mut tab = accounting.tab(caller, choice.provider.scope, choice.scope, choice.price);
        accounting.admit(store, now_ms, &mut tab, estimate)?;
        ctx.model = choice.model.clone();
        let mut exchange = Exchange::new(choice.provider_index, choice.model, ctx, dropped, tab);
        exchange.started_ms = now_ms;
        exchange.model_scope = choice.scope;
        exchange.caller = caller;
        exchange.requested_model = requested;
        exchange.target = choice.target;
        exchange.route = route.map(|(i, _)| i);
        let retry = route.and_then(|(_, r)| self.config.router.retry_for(r)).or(self.config.router.default_retry.as_ref());
        Ok(Forward {
            cluster: &choice.provider.cluster,
            provider: Some(choice.provider),
            upstream,
            headers: retry_headers(retry, 0),
            plan: None,
            exchange,
            keep_body: route.is_some_and(|(_, r)| r.last_resort.is_some()),
        })
    }

    /// Accounts for a finished exchange (complete, failed or cut off): usage and cost in every
    /// scope, reservations settled, and the target's health when the route has alternatives.
    pub fn finish(&self, exchange: &mut Exchange, store: &dyn SharedStore, now_ms: u64) {
        let failed = !exchange.completed || !(200..300).contains(&exchange.status);
        let outcome = budget::outcome(&exchange.tab, exchange.usage, failed);
        let accounting = &self.config.accounting;
        match self.batch.try_borrow_mut() {
            Ok(mut batch) if accounting.flush_ms > 0 => accounting.settle(store, now_ms, &exchange.tab, &outcome, Some(&mut batch)),
            _ => accounting.settle(store, now_ms, &exchange.tab, &outcome, None),
        }
        if let Some(target) = exchange.target.and_then(|t| self.config.router.target(t)) {
            exchange.breaker_opened = self.report_health(&target.health_key, exchange, store, now_ms);
        }
    }

    /// Writes this worker's batched counters to shared data.
    pub fn flush(&self, store: &dyn SharedStore) {
        if let Ok(mut batch) = self.batch.try_borrow_mut()
            && !batch.is_empty()
        {
            self.config.accounting.flush(store, &mut batch);
        }
    }

    /// Records how an attempt went; true when this opened the target's breaker.
    pub(crate) fn report_health(&self, key: &str, exchange: &Exchange, store: &dyn SharedStore, now_ms: u64) -> bool {
        let attempt = match exchange.status {
            200..=299 if exchange.completed => Attempt::Success {
                latency_us: now_ms.saturating_sub(exchange.started_ms) * 1000,
                ttfb_us: exchange.first_byte_ms.map(|f| f.saturating_sub(exchange.started_ms) * 1000),
            },
            429 => Attempt::RateLimited { until_ms: exchange.rate_limited_until },
            // Client errors say nothing about the target's health.
            400..=499 if exchange.status != 408 => return false,
            _ => Attempt::Failure,
        };
        match health::record(store, key, now_ms, &self.config.router.breaker, attempt) {
            Ok(t) => t == health::Transition::Opened,
            Err(e) => {
                log::warn!("could not record health for {key}: {e:?}");
                false
            }
        }
    }

    /// The answer after a last resort took the request.
    pub fn escalated_reply(&self, escalation: &Escalation, status: Option<u16>, body: &[u8]) -> Reply {
        let handler = match status {
            Some(s @ 200..=299) => format!("it was handed to the last-resort handler (HTTP {s}: {})", providers::excerpt(body)),
            Some(s) => format!("the last-resort handler failed too (HTTP {s})"),
            None => "the last-resort handler could not be reached".into(),
        };
        all_targets_failed(&escalation.tried, &handler).with_code("all_targets_failed").into()
    }
}

/// The 503 that lists what was tried.
fn all_targets_failed(tried: &str, what: &str) -> ApiError {
    let tried = if tried.is_empty() { String::new() } else { format!(" Tried: {tried}.") };
    ApiError::new(503, "api_error", format!("No target could serve this request: {what}.{tried}")).with_code("all_targets_failed")
}

/// Envoy retry steering headers (honoured by the router for requests from Tollgate).
fn retry_headers(retry: Option<&Retry>, min_retries: u32) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    let (on, codes, max) = match retry {
        Some(r) => (r.on.as_str(), r.status_codes.as_str(), r.max_retries.max(min_retries)),
        None if min_retries > 0 => ("5xx,reset,connect-failure,refused-stream,retriable-status-codes", "429", min_retries),
        None => return h,
    };
    h.push(("x-envoy-retry-on", on.to_owned()));
    if !codes.is_empty() {
        h.push(("x-envoy-retriable-status-codes", codes.to_owned()));
    }
    h.push(("x-envoy-max-retries", max.to_string()));
    if let Some(r) = retry {
        if let Some(t) = r.timeout_ms {
            h.push(("x-envoy-upstream-rq-timeout-ms", t.to_string()));
        }
        if let Some(t) = r.per_try_timeout_ms {
            h.push(("x-envoy-upstream-rq-per-try-timeout-ms", t.to_string()));
        }
    }
    h
}

fn with_allow(e: ApiError, allow: &str) -> Reply {
    let mut reply = Reply::from(e);
    reply.headers.push(("allow", allow.to_owned()));
    reply
}

/// A request translated for its provider, waiting for budget admission.
struct Prepared<'c> {
    choice: Choice<'c>,
    route: Option<(usize, &'c crate::router::Route)>,
    requested: String,
    ctx: ResponseContext,
    dropped: Vec<String>,
    upstream: Built,
    estimate: crate::accounting::money::Pico,
}

/// Applies a model's parameter policy to the parsed request.
pub(crate) fn apply_policy(req: &mut ChatRequest, policy: &[(String, ParamAction)], edits: &mut Edits) -> Result<(), ApiError> {
    for (param, action) in policy {
        if !req.has_param(param) {
            continue;
        }
        match action {
            ParamAction::Pass => {}
            ParamAction::Drop => {
                req.remove_param(param);
                edits.dropped.push(param.clone());
            }
            ParamAction::Reject => {
                return Err(ApiError::invalid_param(
                    param.clone(),
                    format!("Parameter `{param}` is not accepted for model `{}` by this gateway's policy.", &*req.model),
                )
                .with_code("unsupported_parameter"));
            }
            ParamAction::Rename(to) => edits.renamed.push((param.clone(), to.clone())),
            ParamAction::Reasoning(form) => edits.reasoning = Some(*form),
            ParamAction::JsonSchema(form) => edits.json_schema = Some(*form),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
