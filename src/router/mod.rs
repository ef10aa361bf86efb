//! Routing: rules pick a target group, a strategy picks the target, health skips broken or
//! rate-limited ones, and the fallback chain orders what comes next.
//!
//! Failover within one request is Envoy's job: when the plan's providers match a configured
//! failover cluster (one endpoint per provider, in priority order), Envoy's retries with
//! `previous_priorities` walk the chain and the upstream filter translates each attempt for the
//! provider it reaches. Otherwise the request goes to the chosen target's own cluster and the
//! fallbacks take over from the next request on, once health marks the target down.

pub mod health;
pub mod rules;

use crate::accounting::budget::{Accounting, ScopeId};
use crate::accounting::prices::Price;
use crate::config::schema::{FailoverClusterSpec, LastResortSpec, ParamAction, RetrySpec, RouteSpec, Strategy, TargetSpec};
use crate::config::{ConfigError, Provider};
use crate::host::SharedStore;
use crate::providers::{self, Operation};
use health::{Availability, Breaker};
use rules::{Facts, Matcher};
use serde::Serialize;
use std::cell::Cell;
use std::collections::HashMap;

pub type TargetId = usize;

/// A provider and upstream model a route can send to.
#[derive(Debug)]
pub struct Target {
    pub provider: usize,
    pub model: String,
    pub policy: Vec<(String, ParamAction)>,
    pub price: Option<Price>,
    pub scope: ScopeId,
    pub health_key: String,
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub on: String,
    pub status_codes: String,
    pub max_retries: u32,
    pub timeout_ms: Option<u64>,
    pub per_try_timeout_ms: Option<u64>,
}

impl From<&RetrySpec> for Retry {
    fn from(r: &RetrySpec) -> Self {
        Retry {
            on: r.on.clone(),
            status_codes: r.retriable_status_codes.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
            max_retries: r.max_retries,
            timeout_ms: r.timeout_ms,
            per_try_timeout_ms: r.per_try_timeout_ms,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LastResort {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    matcher: Matcher,
    pub primary: Vec<TargetId>,
    /// Weights of `primary`, for the weighted strategy.
    weights: Vec<u32>,
    pub fallback: Vec<TargetId>,
    pub strategy: Strategy,
    pub retry: Option<Retry>,
    pub last_resort: Option<LastResort>,
    /// Round-robin position of this worker.
    turn: Cell<u32>,
}

impl Route {
    fn tracked(&self) -> bool {
        self.primary.len() + self.fallback.len() > 1
    }

    pub fn exact_models(&self) -> impl Iterator<Item = &str> {
        self.matcher.exact_models()
    }
}

/// An Envoy cluster whose endpoints are providers in priority order.
#[derive(Debug)]
pub struct Chain {
    pub cluster: String,
    pub providers: Vec<usize>,
}

#[derive(Debug)]
pub struct Router {
    pub routes: Vec<Route>,
    pub targets: Vec<Target>,
    pub chains: Vec<Chain>,
    pub breaker: Breaker,
    pub default_retry: Option<Retry>,
    pub explain: bool,
    rng: Cell<u64>,
}

/// What the request asks for, for cost and latency estimates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demand {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub stream: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Skip {
    #[serde(skip)]
    pub target: TargetId,
    pub reason: &'static str,
}

#[derive(Debug)]
pub struct Plan<'c> {
    pub route: &'c Route,
    /// The strategy actually applied (a soft budget limit turns any strategy into least-cost).
    pub strategy: Strategy,
    /// Targets this request can reach, chosen first.
    pub targets: Vec<TargetId>,
    /// The failover cluster carrying `targets`, when there are several.
    pub chain: Option<usize>,
    pub skipped: Vec<Skip>,
}

#[derive(Debug)]
pub enum Decision<'c> {
    /// No route matched: the `models` entries apply.
    Unrouted,
    Routed(Plan<'c>),
    /// Every target of the matched route is unavailable.
    Exhausted {
        route: &'c Route,
        skipped: Vec<Skip>,
    },
}

/// The compile step's inputs from the rest of the configuration.
pub struct Inputs<'a> {
    pub routes: &'a [RouteSpec],
    pub failover: &'a [FailoverClusterSpec],
    pub breaker: Breaker,
    pub retry: Option<&'a RetrySpec>,
    pub explain: bool,
}

impl Router {
    pub fn compile(
        input: &Inputs,
        providers: &[Provider],
        accounting: &mut Accounting,
        warnings: &mut Vec<String>,
    ) -> Result<Router, ConfigError> {
        let provider_index: HashMap<&str, usize> = providers.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();
        let mut router = Router {
            routes: Vec::new(),
            targets: Vec::new(),
            chains: Vec::new(),
            breaker: input.breaker,
            default_retry: input.retry.map(Retry::from),
            explain: input.explain,
            rng: Cell::new(0x9e37_79b9_7f4a_7c15),
        };
        for (i, c) in input.failover.iter().enumerate() {
            let field = format!("failover_clusters[{i}]");
            if c.cluster.trim().is_empty() {
                return Err(ConfigError::new(format!("{field}.cluster"), "must name an Envoy cluster"));
            }
            let mut chain = Vec::new();
            for (j, name) in c.providers.iter().enumerate() {
                let p = *provider_index
                    .get(name.as_str())
                    .ok_or_else(|| ConfigError::new(format!("{field}.providers[{j}]"), format!("unknown provider `{name}`")))?;
                if chain.contains(&p) {
                    return Err(ConfigError::new(format!("{field}.providers[{j}]"), "a provider can appear once per failover cluster"));
                }
                chain.push(p);
            }
            if chain.len() < 2 {
                return Err(ConfigError::new(format!("{field}.providers"), "a failover cluster needs at least two providers"));
            }
            router.chains.push(Chain { cluster: c.cluster.clone(), providers: chain });
        }
        for (i, spec) in input.routes.iter().enumerate() {
            let field = format!("routes[{i}]");
            if spec.name.is_empty() || router.routes.iter().any(|r| r.name == spec.name) {
                return Err(ConfigError::new(format!("{field}.name"), "route names must be unique and non-empty"));
            }
            if spec.targets.is_empty() {
                return Err(ConfigError::new(format!("{field}.targets"), "a route needs at least one target"));
            }
            let mut target_ids = |list: &[TargetSpec], what: &str| -> Result<Vec<TargetId>, ConfigError> {
                list.iter()
                    .enumerate()
                    .map(|(j, t)| {
                        router_target(&mut router.targets, t, &format!("{field}.{what}[{j}]"), &provider_index, providers, accounting)
                    })
                    .collect()
            };
            let primary = target_ids(&spec.targets, "targets")?;
            let weights = spec.targets.iter().map(|t| t.weight.unwrap_or(1)).collect();
            let fallback = target_ids(&spec.fallback, "fallback")?;
            let last_resort = spec.last_resort.as_ref().map(|l| last_resort(&format!("{field}.last_resort"), l)).transpose()?;
            let route = Route {
                name: spec.name.clone(),
                matcher: Matcher::compile(&format!("{field}.match"), &spec.conditions)?,
                primary,
                weights,
                fallback,
                strategy: spec.strategy,
                retry: spec.retry.as_ref().map(Retry::from),
                last_resort,
                turn: Cell::new(0),
            };
            if !route.fallback.is_empty() {
                for &p in &route.primary {
                    let plan: Vec<TargetId> = std::iter::once(p).chain(route.fallback.iter().copied().filter(|f| *f != p)).collect();
                    if router.chain_for(&plan).is_none() {
                        warnings.push(format!(
                            "{field}: no failover cluster carries [{}]; a failing request is not retried on the fallbacks (later requests still avoid the failing target)",
                            router.names(&plan, providers).join(", ")
                        ));
                    }
                }
            }
            router.routes.push(route);
        }
        Ok(router)
    }

    /// Seeds this worker's random choices (weighted split, exploration).
    pub fn seed(&self, seed: u64) {
        self.rng.set(seed | 1);
    }

    fn random(&self) -> u64 {
        // xorshift64*: small, fast, and plenty for splitting traffic.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `provider/model` of each target, for messages.
    pub fn names(&self, plan: &[TargetId], providers: &[Provider]) -> Vec<String> {
        plan.iter()
            .filter_map(|t| self.targets.get(*t))
            .map(|t| format!("{}/{}", providers.get(t.provider).map_or("?", |p| p.name.as_str()), t.model))
            .collect()
    }

    pub fn target(&self, id: TargetId) -> Option<&Target> {
        self.targets.get(id)
    }

    pub fn find_target(&self, provider: usize, model: &str) -> Option<TargetId> {
        self.targets.iter().position(|t| t.provider == provider && t.model == model)
    }

    /// The longest failover cluster whose providers are a prefix of the plan's.
    fn chain_for(&self, plan: &[TargetId]) -> Option<usize> {
        let providers: Vec<usize> = plan.iter().filter_map(|t| self.targets.get(*t)).map(|t| t.provider).collect();
        self.chains
            .iter()
            .enumerate()
            .filter(|(_, c)| providers.len() >= c.providers.len() && providers.starts_with(&c.providers))
            .max_by_key(|(_, c)| c.providers.len())
            .map(|(i, _)| i)
    }

    pub fn decide<'c>(&'c self, facts: &Facts, store: &dyn SharedStore, demand: Demand, prefer_cheap: bool) -> Decision<'c> {
        let Some(route) = self.routes.iter().find(|r| r.matcher.matches(facts)) else {
            return Decision::Unrouted;
        };
        let strategy = if prefer_cheap { Strategy::LeastCost } else { route.strategy };
        if !route.tracked() {
            let targets = route.primary.clone();
            return Decision::Routed(Plan { route, strategy, targets, chain: None, skipped: Vec::new() });
        }
        let now = facts.now_ms;
        let mut skipped = Vec::new();
        let mut view = HashMap::new();
        for &t in route.primary.iter().chain(&route.fallback) {
            if view.contains_key(&t) {
                continue;
            }
            let Some(target) = self.targets.get(t) else { continue };
            let h = health::read(store, &target.health_key);
            let availability = h.availability(now, &self.breaker);
            if let Availability::Unavailable(reason) = availability {
                skipped.push(Skip { target: t, reason });
            }
            view.insert(t, (h, availability));
        }
        let usable = |t: &TargetId| view.get(t).is_some_and(|(_, a)| !matches!(a, Availability::Unavailable(_)));
        let candidates: Vec<TargetId> = route.primary.iter().copied().filter(usable).collect();
        let chosen = self.choose(route, strategy, &candidates, &view, demand);
        let mut plan: Vec<TargetId> = chosen.into_iter().collect();
        plan.extend(route.fallback.iter().copied().filter(|t| usable(t) && Some(*t) != chosen));
        // A target past its cool-down takes part only if this request wins its probe slot.
        plan.retain(|t| {
            let probing = view.get(t).is_some_and(|(_, a)| *a == Availability::Probe);
            let ok = !probing || self.targets.get(*t).is_some_and(|tg| health::claim_probe(store, &tg.health_key, now, &self.breaker));
            if !ok {
                skipped.push(Skip { target: *t, reason: "circuit_half_open" });
            }
            ok
        });
        if plan.is_empty() {
            return Decision::Exhausted { route, skipped };
        }
        let chain = self.chain_for(&plan);
        let reach = chain.and_then(|c| self.chains.get(c)).map_or(1, |c| c.providers.len());
        plan.truncate(reach);
        Decision::Routed(Plan { route, strategy, targets: plan, chain, skipped })
    }

    fn choose(
        &self,
        route: &Route,
        strategy: Strategy,
        candidates: &[TargetId],
        view: &HashMap<TargetId, (health::Health, Availability)>,
        demand: Demand,
    ) -> Option<TargetId> {
        let first = *candidates.first()?;
        let target = |t: &TargetId| self.targets.get(*t);
        match strategy {
            Strategy::Priority => Some(first),
            Strategy::RoundRobin => {
                let turn = route.turn.get();
                route.turn.set(turn.wrapping_add(1));
                candidates.get(turn as usize % candidates.len()).copied()
            }
            Strategy::Weighted => {
                let weight = |t: &TargetId| {
                    let i = route.primary.iter().position(|p| p == t);
                    i.and_then(|i| route.weights.get(i)).map_or(0, |w| u64::from(*w))
                };
                let total: u64 = candidates.iter().map(weight).sum();
                if total == 0 {
                    return Some(first);
                }
                let mut pick = self.random() % total;
                candidates.iter().copied().find(|t| {
                    let w = weight(t);
                    if pick < w {
                        return true;
                    }
                    pick -= w;
                    false
                })
            }
            Strategy::LeastLatency => {
                // Unmeasured targets first, and 1 request in 20 explores, so estimates stay fresh.
                if let Some(t) = candidates.iter().copied().find(|t| view.get(t).is_none_or(|(h, _)| h.samples == 0)) {
                    return Some(t);
                }
                if self.random().is_multiple_of(20) {
                    return candidates.get(self.random() as usize % candidates.len()).copied();
                }
                let latency = |t: &TargetId| {
                    view.get(t).map_or(u64::MAX, |(h, _)| if demand.stream && h.ttfb_us > 0 { h.ttfb_us } else { h.latency_us })
                };
                candidates.iter().copied().min_by_key(latency)
            }
            Strategy::LeastCost => {
                let cost = |t: &TargetId| {
                    target(t).and_then(|t| t.price).map_or(u128::MAX, |p| {
                        u128::from(demand.input_tokens) * p.input + u128::from(demand.output_tokens.max(1)) * p.output
                    })
                };
                candidates.iter().copied().min_by_key(cost)
            }
        }
    }

    /// The plan for the upstream filter: the operation and provider=model per target.
    pub fn encode_plan(&self, operation: Operation, plan: &[TargetId], providers: &[Provider]) -> String {
        let mut out = String::from(match operation {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
        });
        out.push(';');
        let entries: Vec<String> = plan
            .iter()
            .filter_map(|t| self.targets.get(*t))
            .filter_map(|t| providers.get(t.provider).map(|p| format!("{}={}", p.name, t.model)))
            .collect();
        out.push_str(&entries.join(","));
        out
    }

    pub fn retry_for<'a>(&'a self, route: &'a Route) -> Option<&'a Retry> {
        route.retry.as_ref().or(self.default_retry.as_ref())
    }
}

/// Reads [`Router::encode_plan`]'s format.
pub fn parse_plan(header: &str) -> Option<(Operation, Vec<(&str, &str)>)> {
    let (op, entries) = header.split_once(';')?;
    let operation = match op {
        "chat" => Operation::Chat,
        "embeddings" => Operation::Embeddings,
        _ => return None,
    };
    let targets = entries.split(',').filter(|e| !e.is_empty()).map(|e| e.split_once('=')).collect::<Option<Vec<_>>>()?;
    Some((operation, targets))
}

fn router_target(
    targets: &mut Vec<Target>,
    t: &TargetSpec,
    field: &str,
    provider_index: &HashMap<&str, usize>,
    providers: &[Provider],
    accounting: &mut Accounting,
) -> Result<TargetId, ConfigError> {
    let provider = *provider_index
        .get(t.provider.as_str())
        .ok_or_else(|| ConfigError::new(format!("{field}.provider"), format!("unknown provider `{}`", t.provider)))?;
    if t.model.is_empty() || t.model.contains([',', '=', ';']) || t.model.chars().any(char::is_whitespace) {
        return Err(ConfigError::new(format!("{field}.model"), "must be a non-empty model name without spaces, `,`, `=` or `;`"));
    }
    if let Some(i) = targets.iter().position(|x| x.provider == provider && x.model == t.model) {
        return Ok(i);
    }
    crate::config::check_params(field, &t.params)?;
    let overrides: Vec<(String, ParamAction)> = t.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let p = providers.get(provider).ok_or_else(|| ConfigError::new(format!("{field}.provider"), "unknown provider"))?;
    targets.push(Target {
        provider,
        model: t.model.clone(),
        policy: providers::param_policy(p, &t.model, &overrides),
        price: accounting.prices.lookup(&t.model),
        scope: accounting.scope("model", &t.model),
        health_key: format!("tollgate:health:{}/{}", p.name, t.model),
    });
    Ok(targets.len() - 1)
}

fn last_resort(field: &str, l: &LastResortSpec) -> Result<LastResort, ConfigError> {
    if l.cluster.trim().is_empty() {
        return Err(ConfigError::new(format!("{field}.cluster"), "must name an Envoy cluster"));
    }
    if !l.path.starts_with('/') {
        return Err(ConfigError::new(format!("{field}.path"), "must start with `/`"));
    }
    Ok(LastResort {
        cluster: l.cluster.clone(),
        path: l.path.clone(),
        authority: l.host.clone().unwrap_or_else(|| l.cluster.clone()),
        timeout_ms: l.timeout_ms,
    })
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
