//! The upstream role: Tollgate as the per-attempt filter of a failover cluster. Each retry
//! attempt Envoy makes reaches one endpoint (one provider); this role translates the client's
//! OpenAI request for that provider, translates the answer back, and reports the target's
//! health. Accounting stays with the downstream filter, which sees the translated answer.

use super::{Exchange, Forward, Gateway, apply_policy};
use crate::openai::ApiError;
use crate::openai::embeddings;
use crate::openai::request;
use crate::providers::{self, Edits, Operation, ResponseContext, Target};
use crate::router::{TargetId, parse_plan};
use std::borrow::Cow;

/// Where this attempt goes, from the plan and the endpoint Envoy picked.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub operation: Operation,
    pub provider: usize,
    pub model: String,
    pub target: Option<TargetId>,
}

impl Gateway {
    /// `None` when the request has no plan (not routed through Tollgate: left alone).
    pub fn on_attempt_headers(&self, plan: Option<&str>, endpoint_provider: Option<&str>) -> Result<Option<Attempt>, ApiError> {
        let Some(plan) = plan else { return Ok(None) };
        let (operation, targets) = parse_plan(plan).ok_or_else(|| ApiError::internal("malformed routing plan"))?;
        let endpoint = endpoint_provider.ok_or_else(|| {
            ApiError::internal(
                "this failover cluster endpoint has no `tollgate.provider` metadata; Tollgate cannot tell which provider it is",
            )
        })?;
        let model = targets.iter().find(|(p, _)| *p == endpoint).map(|(_, m)| *m).ok_or_else(|| {
            ApiError::internal(format!("the failover cluster reached provider `{endpoint}`, which is not in this request's plan"))
        })?;
        let provider = self
            .config
            .providers
            .iter()
            .position(|p| p.name == endpoint)
            .ok_or_else(|| ApiError::internal(format!("provider `{endpoint}` is not configured in the upstream filter")))?;
        let target = self.config.router.find_target(provider, model);
        Ok(Some(Attempt { operation, provider, model: model.to_owned(), target }))
    }

    /// Translates the attempt's request body for its provider.
    pub fn on_attempt_body(&self, attempt: &Attempt, body: &[u8], now_ms: u64) -> Result<Forward<'_>, ApiError> {
        let provider = self.config.providers.get(attempt.provider).ok_or_else(|| ApiError::internal("unknown provider"))?;
        let target = attempt.target.and_then(|t| self.config.router.target(t));
        let policy = match target {
            Some(t) => Cow::Borrowed(t.policy.as_slice()),
            None => Cow::Owned(providers::param_policy(provider, &attempt.model, &[])),
        };
        let to = Target { model: &attempt.model, now_ms };
        // The downstream filter is the client here: it always wants usage.
        let mut ctx = ResponseContext {
            operation: attempt.operation,
            created: now_ms / 1000,
            client_wants_usage: true,
            report_usage: true,
            ..Default::default()
        };
        let mut dropped = Vec::new();
        let upstream = match attempt.operation {
            Operation::Chat => {
                let mut req = request::parse(body)?;
                let mut edits = Edits::default();
                apply_policy(&mut req, &policy, &mut edits)?;
                let built = providers::build_chat(provider, &req, body, &to, &mut edits)?;
                ctx.stream = req.stream;
                ctx.answer_tool = built.answer_tool.clone();
                dropped = edits.dropped;
                built
            }
            Operation::Embeddings => {
                let req = embeddings::parse(body)?;
                ctx.base64 = req.wants_base64();
                providers::build_embeddings(provider, &req, body, &to)?
            }
        };
        ctx.model = attempt.model.clone();
        let mut exchange = Exchange::new(attempt.provider, attempt.model.clone(), ctx, dropped, Default::default());
        exchange.started_ms = now_ms;
        exchange.target = attempt.target;
        Ok(Forward {
            cluster: &provider.cluster,
            provider: Some(provider),
            upstream,
            headers: Vec::new(),
            plan: None,
            exchange,
            keep_body: false,
        })
    }

    /// Reports how the attempt went to the target's health; true when its breaker opened.
    pub fn finish_attempt(&self, exchange: &Exchange, store: &dyn crate::host::SharedStore, now_ms: u64) -> bool {
        match exchange.target.and_then(|t| self.config.router.target(t)) {
            Some(target) => self.report_health(&target.health_key, exchange, store, now_ms),
            None => false,
        }
    }
}
