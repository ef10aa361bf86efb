//! Where a request goes: a routing rule's plan, or the `models` entry for the requested name;
//! and what `x-tollgate-explain` shows about that decision.

use super::Gateway;
use crate::accounting::budget::{Caller, ScopeId};
use crate::accounting::prices::Price;
use crate::config::Resolved;
use crate::error::ApiError;
use crate::host::SharedStore;
use crate::providers::Provider;
use crate::router::rules::Facts;
use crate::router::{Commitment, Decision, Demand, Route, Skip, TargetId};
use crate::schema::{ParamAction, Strategy};
use serde::Serialize;
use std::borrow::Cow;

/// One provider and upstream model, with what translation and accounting need.
#[derive(Debug)]
pub struct Choice<'c> {
    pub provider: &'c Provider,
    pub provider_index: usize,
    pub model: String,
    pub policy: Cow<'c, [(String, ParamAction)]>,
    pub scope: ScopeId,
    pub price: Option<Price>,
    /// The router target whose health this request reports, for routes with alternatives.
    pub target: Option<TargetId>,
}

#[derive(Debug)]
pub enum Selection<'c> {
    /// One target; this filter translates.
    Direct { route: Option<&'c Route>, choice: Choice<'c>, strategy: Option<Strategy>, skipped: Vec<Skip>, commitment: Commitment },
    /// Several targets on a failover cluster; the upstream filter translates each attempt.
    Failover {
        route: &'c Route,
        first: Choice<'c>,
        plan: Vec<TargetId>,
        failover_cluster: usize,
        strategy: Strategy,
        skipped: Vec<Skip>,
        commitment: Commitment,
    },
    /// The matched route has no available target.
    Exhausted { route: &'c Route, skipped: Vec<Skip> },
}

impl Gateway {
    pub(super) fn credentials(provider: &Provider) -> Result<(), ApiError> {
        match &provider.missing_key_env {
            Some(var) => Err(ApiError::new(
                500,
                "api_error",
                format!("The gateway has no credentials for provider `{}`: environment variable `{var}` is not set.", provider.name),
            )
            .with_code("provider_credentials_missing")),
            None => Ok(()),
        }
    }

    pub(super) fn choice(&self, target: TargetId) -> Option<Choice<'_>> {
        let t = self.config.router.target(target)?;
        let provider = self.config.providers.get(t.provider)?;
        Some(Choice {
            provider,
            provider_index: t.provider,
            model: t.model.clone(),
            policy: Cow::Borrowed(&t.policy),
            scope: t.scope,
            price: t.price,
            target: Some(target),
        })
    }

    pub(super) fn select(&self, facts: &Facts, caller: Caller, store: &dyn SharedStore, demand: Demand) -> Result<Selection<'_>, ApiError> {
        let accounting = &self.config.accounting;
        accounting.check_model(caller, facts.model)?;
        let router = &self.config.router;
        let prefer_cheap = accounting.has_soft_limits() && accounting.caller_over_soft_limit(store, facts.now_ms, caller);
        match router.decide(facts, store, demand, prefer_cheap) {
            Decision::Unrouted => {
                let Resolved { provider, provider_index, upstream_model, policy, scope, price } =
                    self.config.resolve(facts.model).ok_or_else(|| ApiError::model_not_found(facts.model))?;
                Self::credentials(provider)?;
                let choice = Choice { provider, provider_index, model: upstream_model.into_owned(), policy, scope, price, target: None };
                Ok(Selection::Direct { route: None, choice, strategy: None, skipped: Vec::new(), commitment: Commitment::default() })
            }
            Decision::Exhausted { route, skipped } => Ok(Selection::Exhausted { route, skipped }),
            Decision::Routed(plan) => {
                let route = plan.route;
                let first = plan.targets.first().and_then(|t| self.choice(*t)).ok_or_else(|| ApiError::internal("empty routing plan"))?;
                for t in &plan.targets {
                    if let Some(p) = router.target(*t).and_then(|t| self.config.providers.get(t.provider)) {
                        Self::credentials(p)?;
                    }
                }
                let tracked = plan.route.primary.len() + plan.route.fallback.len() > 1;
                let commitment = plan.commitment;
                match plan.failover_cluster {
                    Some(failover_cluster) => Ok(Selection::Failover {
                        route,
                        first,
                        plan: plan.targets,
                        failover_cluster,
                        strategy: plan.strategy,
                        skipped: plan.skipped,
                        commitment,
                    }),
                    None => {
                        let choice = Choice { target: if tracked { first.target } else { None }, ..first };
                        Ok(Selection::Direct {
                            route: Some(route),
                            choice,
                            strategy: Some(plan.strategy),
                            skipped: plan.skipped,
                            commitment,
                        })
                    }
                }
            }
        }
    }

    /// A failover plan keeps only the targets that accept the request as translated for them
    /// (a parameter policy or a provider's own validation may refuse it): the upstream filter's
    /// refusal of an attempt would be final, Envoy does not retry it. The plan then takes the
    /// failover cluster that carries what is left, or goes direct to its one target; when no
    /// target accepts, the first one's refusal is the answer.
    pub(super) fn accepted<'c>(
        &'c self,
        selection: Selection<'c>,
        accepts: impl Fn(&Choice) -> Result<(), ApiError>,
    ) -> Result<Selection<'c>, ApiError> {
        let Selection::Failover { route, first, plan, failover_cluster, strategy, mut skipped, commitment } = selection else {
            return Ok(selection);
        };
        let mut refusal = None;
        let mut kept = Vec::with_capacity(plan.len());
        for &t in &plan {
            match self.choice(t).map(|c| accepts(&c)) {
                Some(Ok(())) => kept.push(t),
                Some(Err(e)) => {
                    skipped.push(Skip { target: t, reason: "rejects_request" });
                    refusal.get_or_insert(e);
                }
                None => {}
            }
        }
        if kept == plan {
            return Ok(Selection::Failover { route, first, plan, failover_cluster, strategy, skipped, commitment });
        }
        let lead = *kept.first().ok_or_else(|| refusal.unwrap_or_else(|| ApiError::internal("empty routing plan")))?;
        // A new head was a fallback: its probe, if it needs one, is claimed when its attempt goes out.
        let commitment = if Some(lead) == first.target { commitment } else { Commitment { probe: None, ..commitment } };
        let first = self.choice(lead).ok_or_else(|| ApiError::internal("unknown routing target"))?;
        match self.config.router.carry(kept) {
            (plan, Some(failover_cluster)) => {
                Ok(Selection::Failover { route, first, plan, failover_cluster, strategy, skipped, commitment })
            }
            (_, None) => Ok(Selection::Direct { route: Some(route), choice: first, strategy: Some(strategy), skipped, commitment }),
        }
    }

    /// The `x-tollgate-explain` answer: the decision, without calling any provider.
    pub(super) fn explain(&self, selection: &Selection) -> Vec<u8> {
        let router = &self.config.router;
        let skipped = |s: &[Skip]| -> Vec<SkipOut> {
            s.iter()
                .map(|k| SkipOut { target: router.names(&[k.target], &self.config.providers).pop().unwrap_or_default(), reason: k.reason })
                .collect()
        };
        let out = match selection {
            Selection::Direct { route, choice, strategy, skipped: s, .. } => Explanation {
                route: route.map(|r| r.name.as_str()),
                strategy: strategy.map(strategy_name),
                plan: vec![format!("{}/{}", choice.provider.name, choice.model)],
                cluster: Some(choice.provider.cluster.as_str()),
                failover_cluster: false,
                skipped: skipped(s),
                last_resort: route.and_then(|r| r.last_resort.as_ref()).map(|l| l.cluster.as_str()),
            },
            Selection::Failover { route, plan, failover_cluster, strategy, skipped: s, .. } => Explanation {
                route: Some(route.name.as_str()),
                strategy: Some(strategy_name(*strategy)),
                plan: router.names(plan, &self.config.providers),
                cluster: router.failover_clusters.get(*failover_cluster).map(|c| c.cluster.as_str()),
                failover_cluster: true,
                skipped: skipped(s),
                last_resort: route.last_resort.as_ref().map(|l| l.cluster.as_str()),
            },
            Selection::Exhausted { route, skipped: s } => Explanation {
                route: Some(route.name.as_str()),
                strategy: None,
                plan: Vec::new(),
                cluster: None,
                failover_cluster: false,
                skipped: skipped(s),
                last_resort: route.last_resort.as_ref().map(|l| l.cluster.as_str()),
            },
        };
        serde_json::to_vec(&out).unwrap_or_default()
    }
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Priority => "priority",
        Strategy::Weighted => "weighted",
        Strategy::RoundRobin => "round_robin",
        Strategy::LeastLatency => "least_latency",
        Strategy::LeastCost => "least_cost",
    }
}

#[derive(Serialize)]
struct Explanation<'a> {
    route: Option<&'a str>,
    strategy: Option<&'static str>,
    /// Targets in the order this request would try them.
    plan: Vec<String>,
    cluster: Option<&'a str>,
    failover_cluster: bool,
    skipped: Vec<SkipOut>,
    last_resort: Option<&'a str>,
}

#[derive(Serialize)]
struct SkipOut {
    target: String,
    reason: &'static str,
}
