//! The upstream role: Tollgate as the per-attempt filter of a failover cluster. Each retry
//! attempt Envoy makes reaches one endpoint (one provider); this role translates the client's
//! request for that provider, translates the answer back, and reports the target's
//! health. Accounting stays with the downstream filter, which sees the translated answer.
//!
//! The gateway filter hands each request's plan to this role in Envoy filter state
//! ([`PLAN_PROPERTY`]), never in a header: a client cannot write filter state, nothing of it
//! reaches a provider, it belongs to one request (no id to collide or guess), and it survives
//! retries (checked on Envoy 1.40: the upstream filter of every attempt reads what the gateway
//! filter set). Envoy reuses one request header map for every attempt, so each attempt rebuilds
//! its headers from the plan's copy of the client's instead of editing what the previous
//! attempt left for another provider.

use super::exchange::{Opening, Role};
use super::{Destination, Exchange, Forward, Gateway, apply_policy};
use crate::client::{self, ClientBody, Dialect};
use crate::error::ApiError;
use crate::headers::is_trace_context;
use crate::openai::embeddings;
use crate::providers::{self, BuildContext, Edits, Operation, ResponseContext};
use crate::router::{TargetId, parse_plan};
use std::borrow::Cow;

/// The filter state property (`wasm.tollgate_plan`) holding the plan of a failover request.
pub const PLAN_PROPERTY: &str = "tollgate_plan";

/// The plan: the targets line ([`Router::encode_plan`](crate::router::Router::encode_plan)),
/// the route's index and the client's dialect (`3;openai_chat`: each attempt parses the
/// client's body in it), then the client headers an attempt may forward, one `name:value` a
/// line (header names have no `:`, values no line breaks).
pub fn encode_plan(targets: &str, route: usize, dialect: Dialect, headers: &[(String, String)]) -> String {
    let mut out = format!("{targets}\n{route};{}\n", dialect.as_str());
    for (name, value) in headers.iter().filter(|(name, _)| !name.starts_with(':')) {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out
}

/// Where this attempt goes, from the plan and the endpoint Envoy picked.
#[derive(Debug, Clone)]
pub struct PlannedAttempt {
    pub operation: Operation,
    pub dialect: Dialect,
    pub provider: usize,
    pub model: String,
    pub target: Option<TargetId>,
    pub route: usize,
    /// The client's headers, as the gateway filter saw them (less pseudo- and control headers).
    pub client_headers: Vec<(String, String)>,
}

impl PlannedAttempt {
    /// The headers of this attempt: the pseudo-headers and Envoy's own (`x-envoy-*`, set by
    /// Tollgate or the router) from the shared map, then the client's headers the policy
    /// forwards to this provider, then the provider's path, authority, credentials and headers.
    /// Nothing an earlier attempt set for another provider survives (its key, host, signature,
    /// content-length). The trace context comes from the shared map too: Envoy's tracer set it
    /// there for this request, with Envoy's span as the parent; the plan has the client's.
    pub fn request_headers(&self, shared: &[(String, String)], forward: &Forward, content_length: usize) -> Vec<(String, String)> {
        let pseudo = shared.iter().filter(|(name, _)| name.starts_with(':'));
        let client_headers = self.client_headers.iter().filter(|(name, _)| !is_trace_context(name));
        let trace_context = shared.iter().filter(|(name, _)| is_trace_context(name));
        let client: Vec<(String, String)> = pseudo.chain(client_headers).chain(trace_context).cloned().collect();
        let mut headers = forward.request_headers(&client, Some(content_length));
        let envoy = shared.iter().filter(|(name, _)| name.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("x-envoy-")));
        headers.extend(envoy.cloned());
        headers
    }
}

impl Gateway {
    /// Reads the plan. A request without one did not come through Tollgate's gateway filter (an
    /// Envoy route that sends to the failover cluster directly): it is refused, never sent
    /// untranslated. Envoy does not retry this local reply.
    pub fn on_attempt_headers(&self, plan: Option<&str>, endpoint_provider: Option<&str>) -> Result<PlannedAttempt, ApiError> {
        let plan = plan.ok_or_else(|| {
            ApiError::internal(
                "This request reached a failover cluster without a routing plan from Tollgate's gateway filter; no provider was called.",
            )
            .with_code("routing_plan_missing")
        })?;
        let malformed = || ApiError::internal("malformed routing plan").with_code("routing_plan_missing");
        let mut lines = plan.lines();
        let (operation, targets) = lines.next().and_then(parse_plan).ok_or_else(malformed)?;
        let (route, dialect) = lines.next().and_then(|l| l.split_once(';')).ok_or_else(malformed)?;
        let route = route.parse::<usize>().ok().filter(|r| *r < self.config.router.routes.len()).ok_or_else(malformed)?;
        let dialect = Dialect::from_name(dialect).ok_or_else(malformed)?;
        let client_headers = lines
            .map(|l| l.split_once(':').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(malformed)?;
        let endpoint = endpoint_provider.ok_or_else(|| {
            ApiError::internal(
                "this failover cluster endpoint has no `tollgate.provider` metadata; Tollgate cannot tell which provider it is",
            )
        })?;
        let (_, model, planned) = targets.iter().find(|(p, _, _)| *p == endpoint).copied().ok_or_else(|| {
            ApiError::internal(format!("the failover cluster reached provider `{endpoint}`, which is not in this request's plan"))
        })?;
        let provider = self
            .config
            .providers
            .iter()
            .position(|p| p.name == endpoint)
            .ok_or_else(|| ApiError::internal(format!("provider `{endpoint}` is not configured in the upstream filter")))?;
        let target = self.config.router.planned_target(planned, provider, model);
        Ok(PlannedAttempt { operation, dialect, provider, model: model.to_owned(), target, route, client_headers })
    }

    /// Translates the attempt's request body for its provider.
    pub fn on_attempt_body(&self, attempt: &PlannedAttempt, body: &[u8], now_ms: u64) -> Result<Forward<'_>, ApiError> {
        let provider = self.config.providers.get(attempt.provider).ok_or_else(|| ApiError::internal("unknown provider"))?;
        let target = attempt.target.and_then(|t| self.config.router.target(t));
        let policy = match target {
            Some(t) => Cow::Borrowed(t.policy.as_slice()),
            None => Cow::Owned(providers::param_policy(provider, &attempt.model, &[])),
        };
        let to = BuildContext { model: &attempt.model, now_ms };
        // The downstream filter is the client here: it always wants usage.
        let mut ctx = ResponseContext {
            operation: attempt.operation,
            dialect: attempt.dialect,
            created: now_ms / 1000,
            client_wants_usage: true,
            ..Default::default()
        };
        let mut dropped = Vec::new();
        let upstream = match attempt.operation {
            Operation::Chat => {
                let client = ClientBody { dialect: attempt.dialect, bytes: body, headers: &attempt.client_headers };
                let mut req = client::parse_chat(client)?;
                let mut edits = Edits::default();
                let in_client_terms = |e| client::in_client_terms(client.dialect, e);
                apply_policy(&mut req, &policy, &mut edits).map_err(in_client_terms)?;
                let built = providers::build_chat(provider, &req, client, &to, &mut edits).map_err(in_client_terms)?;
                ctx.stream = req.stream;
                ctx.answer_tool = built.answer_tool.clone();
                dropped = edits.dropped.iter().map(|d| client::field_name(client.dialect, d).into_owned()).collect();
                built
            }
            // Counted by one provider directly, never through a failover cluster.
            Operation::CountTokens | Operation::StoredResponse => {
                return Err(ApiError::internal("this operation is never planned through a failover cluster"));
            }
            Operation::Embeddings => {
                let req = embeddings::parse(body)?;
                ctx.base64 = req.wants_base64();
                providers::build_embeddings(provider, &req, body, &to)?
            }
        };
        ctx.model = attempt.model.clone();
        ctx.native = provider.settings.api().speaks(ctx.dialect, &ctx.model);
        let exchange = Exchange::new(Opening {
            role: Role::Attempt { reported: None },
            provider: attempt.provider,
            ctx,
            dropped,
            started_ms: now_ms,
            target: attempt.target,
            ..Default::default()
        });
        let route_forward = self.config.router.routes.get(attempt.route).map_or(&[][..], |r| r.forward_headers.as_slice());
        Ok(Forward { to: Destination::Attempt(provider), upstream, retry_headers: Vec::new(), route_forward, exchange, keep_body: false })
    }

    /// The attempt is going out: a target past its cool-down takes its probe slot now (the
    /// downstream filter claims only the first target's; later ones are reached only when
    /// the earlier attempts failed).
    pub fn attempt_sent(&self, exchange: &Exchange, store: &dyn crate::host::SharedStore, now_ms: u64) {
        if let Some(target) = exchange.target {
            self.config.router.attempt_sent(target, store, now_ms);
        }
    }

    /// Reports how the attempt went to the target's health; true when its breaker opened.
    pub(super) fn finish_attempt(&self, exchange: &Exchange, store: &dyn crate::host::SharedStore, now_ms: u64) -> bool {
        match exchange.target.and_then(|t| self.config.router.target(t)) {
            Some(target) => self.report_health(&target.health_key, exchange, store, now_ms),
            None => false,
        }
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
