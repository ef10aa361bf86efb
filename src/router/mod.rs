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
use crate::host::SharedStore;
use crate::providers::Provider;
use crate::providers::{self, Operation};
use crate::schema::ConfigError;
use crate::schema::{FailoverClusterSpec, LastResortSpec, ParamAction, RetrySpec, RouteSpec, Strategy, TargetSpec};
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
    /// Its position in [`Router::routes`]: how a request's plan names it to the upstream filter.
    pub index: usize,
    pub name: String,
    matcher: Matcher,
    pub primary: Vec<TargetId>,
    /// Weights of `primary`, for the weighted strategy.
    weights: Vec<u32>,
    pub fallback: Vec<TargetId>,
    pub strategy: Strategy,
    pub retry: Option<Retry>,
    pub last_resort: Option<LastResort>,
    /// Client request headers forwarded to this route's providers besides the built-in allowlist.
    pub forward_headers: Vec<String>,
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
pub struct FailoverCluster {
    pub cluster: String,
    pub providers: Vec<usize>,
}

#[derive(Debug)]
pub struct Router {
    pub routes: Vec<Route>,
    pub targets: Vec<Target>,
    pub failover_clusters: Vec<FailoverCluster>,
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
    pub failover_cluster: Option<usize>,
    pub skipped: Vec<Skip>,
    /// What the plan takes once its request is admitted.
    pub commitment: Commitment,
}

/// What a plan takes from shared state once its request is really sent (admitted by budgets):
/// deciding alone (`x-tollgate-explain`, a refused request) takes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Commitment {
    /// The first target is past its cool-down: this request must win its half-open probe.
    pub probe: Option<TargetId>,
    /// The round-robin turn this plan used; the route's next request takes the following one.
    pub turn: Option<u32>,
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
            failover_clusters: Vec::new(),
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
            let mut members = Vec::new();
            for (j, name) in c.providers.iter().enumerate() {
                let p = *provider_index
                    .get(name.as_str())
                    .ok_or_else(|| ConfigError::new(format!("{field}.providers[{j}]"), format!("unknown provider `{name}`")))?;
                if members.contains(&p) {
                    return Err(ConfigError::new(format!("{field}.providers[{j}]"), "a provider can appear once per failover cluster"));
                }
                members.push(p);
            }
            if members.len() < 2 {
                return Err(ConfigError::new(format!("{field}.providers"), "a failover cluster needs at least two providers"));
            }
            router.failover_clusters.push(FailoverCluster { cluster: c.cluster.clone(), providers: members });
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
                index: i,
                name: spec.name.clone(),
                matcher: Matcher::compile(&format!("{field}.match"), &spec.conditions)?,
                primary,
                weights,
                fallback,
                strategy: spec.strategy,
                retry: spec.retry.as_ref().map(Retry::from),
                last_resort,
                forward_headers: crate::headers::compile_forward_headers(&format!("{field}.forward_headers"), &spec.forward_headers)?,
                turn: Cell::new(0),
            };
            if !route.fallback.is_empty() {
                for &p in &route.primary {
                    let plan: Vec<TargetId> = std::iter::once(p).chain(route.fallback.iter().copied().filter(|f| *f != p)).collect();
                    if router.failover_cluster_for(&plan).is_none() {
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

    /// The provider of each target, for clients: they may not know the upstream models
    /// behind a route.
    pub fn provider_names(&self, plan: &[TargetId], providers: &[Provider]) -> Vec<String> {
        plan.iter()
            .filter_map(|t| self.targets.get(*t))
            .map(|t| providers.get(t.provider).map_or("?", |p| p.name.as_str()).to_owned())
            .collect()
    }

    /// `provider/model` of each target, for operators (explain, the last resort's handler).
    pub fn names(&self, plan: &[TargetId], providers: &[Provider]) -> Vec<String> {
        plan.iter()
            .filter_map(|t| self.targets.get(*t))
            .map(|t| format!("{}/{}", providers.get(t.provider).map_or("?", |p| p.name.as_str()), t.model))
            .collect()
    }

    /// The dearest rate of each kind among the plan's priced targets: a failover may be
    /// answered by any of them.
    pub fn dearest_price(&self, plan: &[TargetId]) -> Option<Price> {
        plan.iter().filter_map(|t| self.targets.get(*t)?.price).reduce(|a, b| Price {
            input: a.input.max(b.input),
            output: a.output.max(b.output),
            cache_read: a.cache_read.max(b.cache_read),
            cache_write: a.cache_write.max(b.cache_write),
        })
    }

    pub fn target(&self, id: TargetId) -> Option<&Target> {
        self.targets.get(id)
    }

    pub fn find_target(&self, provider: usize, model: &str) -> Option<TargetId> {
        self.targets.iter().position(|t| t.provider == provider && t.model == model)
    }

    /// The plan's target id when it names this provider and model, else the first target that does.
    pub fn planned_target(&self, id: Option<TargetId>, provider: usize, model: &str) -> Option<TargetId> {
        id.filter(|&i| self.targets.get(i).is_some_and(|t| t.provider == provider && t.model == model))
            .or_else(|| self.find_target(provider, model))
    }

    /// A plan cut to what one request can reach: the failover cluster carrying its head, and
    /// only as many targets as that cluster has providers (one without a cluster).
    pub fn carry(&self, mut plan: Vec<TargetId>) -> (Vec<TargetId>, Option<usize>) {
        let cluster = self.failover_cluster_for(&plan);
        plan.truncate(cluster.and_then(|c| self.failover_clusters.get(c)).map_or(1, |c| c.providers.len()));
        (plan, cluster)
    }

    /// The longest failover cluster whose providers are a prefix of the plan's.
    fn failover_cluster_for(&self, plan: &[TargetId]) -> Option<usize> {
        let providers: Vec<usize> = plan.iter().filter_map(|t| self.targets.get(*t)).map(|t| t.provider).collect();
        self.failover_clusters
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
            return Decision::Routed(Plan {
                route,
                strategy,
                targets,
                failover_cluster: None,
                skipped: Vec::new(),
                commitment: Commitment::default(),
            });
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
        let (chosen, turn) = self.choose(route, strategy, &candidates, &view, demand);
        let mut plan: Vec<TargetId> = chosen.into_iter().collect();
        plan.extend(route.fallback.iter().copied().filter(|t| usable(t) && Some(*t) != chosen));
        let Some(&first) = plan.first() else {
            return Decision::Exhausted { route, skipped };
        };
        let (plan, failover_cluster) = self.carry(plan);
        // The first target is certainly sent, so it needs the probe slot (claimed on commit);
        // a later one past its cool-down claims it only if an attempt reaches it (upstream filter).
        let probe = view.get(&first).is_some_and(|(_, a)| *a == Availability::Probe).then_some(first);
        Decision::Routed(Plan { route, strategy, targets: plan, failover_cluster, skipped, commitment: Commitment { probe, turn } })
    }

    /// Takes what an admitted request's plan needs: false when another request won the first
    /// target's probe slot in the meantime (decide again: it is then skipped as half-open).
    pub fn commit(&self, route: &Route, commitment: Commitment, store: &dyn SharedStore, now_ms: u64) -> bool {
        if let Some(target) = commitment.probe.and_then(|t| self.targets.get(t))
            && !health::claim_probe(store, &target.health_key, now_ms, &self.breaker)
        {
            return false;
        }
        if let Some(turn) = commitment.turn {
            route.turn.set(turn.wrapping_add(1));
        }
        true
    }

    /// An attempt is being sent to a target (upstream filter): takes its probe slot if it is
    /// past its cool-down, so concurrent requests skip it until the attempt reports back.
    pub fn attempt_sent(&self, target: TargetId, store: &dyn SharedStore, now_ms: u64) {
        if let Some(t) = self.targets.get(target)
            && health::read(store, &t.health_key).availability(now_ms, &self.breaker) == Availability::Probe
        {
            health::claim_probe(store, &t.health_key, now_ms, &self.breaker);
        }
    }

    fn choose(
        &self,
        route: &Route,
        strategy: Strategy,
        candidates: &[TargetId],
        view: &HashMap<TargetId, (health::Health, Availability)>,
        demand: Demand,
    ) -> (Option<TargetId>, Option<u32>) {
        // Round robin reads its turn here and advances it only on commit.
        let turn = (strategy == Strategy::RoundRobin).then(|| route.turn.get());
        (self.choose_by(route, strategy, candidates, view, demand, turn.unwrap_or(0)), turn)
    }

    fn choose_by(
        &self,
        route: &Route,
        strategy: Strategy,
        candidates: &[TargetId],
        view: &HashMap<TargetId, (health::Health, Availability)>,
        demand: Demand,
        turn: u32,
    ) -> Option<TargetId> {
        let first = *candidates.first()?;
        let target = |t: &TargetId| self.targets.get(*t);
        match strategy {
            Strategy::Priority => Some(first),
            Strategy::RoundRobin => candidates.get(turn as usize % candidates.len()).copied(),
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

    /// The plan for the upstream filter: the operation and provider=model=target per target
    /// (the target id selects the route's own parameter policy; names guard against a
    /// configuration that differs between the two filter instances).
    pub fn encode_plan(&self, operation: Operation, plan: &[TargetId], providers: &[Provider]) -> String {
        let mut out = String::from(match operation {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
            Operation::CountTokens => "count_tokens",
            Operation::StoredResponse => "stored_response",
        });
        out.push(';');
        let entries: Vec<String> = plan
            .iter()
            .filter_map(|&id| self.targets.get(id).map(|t| (id, t)))
            .filter_map(|(id, t)| providers.get(t.provider).map(|p| format!("{}={}={id}", p.name, t.model)))
            .collect();
        out.push_str(&entries.join(","));
        out
    }

    pub fn retry_for<'a>(&'a self, route: &'a Route) -> Option<&'a Retry> {
        route.retry.as_ref().or(self.default_retry.as_ref())
    }
}

/// One entry of a plan: provider name, upstream model, and the target id when given.
pub type PlanEntry<'a> = (&'a str, &'a str, Option<TargetId>);

/// Reads [`Router::encode_plan`]'s format (model names never contain `=`).
pub fn parse_plan(header: &str) -> Option<(Operation, Vec<PlanEntry<'_>>)> {
    let (op, entries) = header.split_once(';')?;
    let operation = match op {
        "chat" => Operation::Chat,
        "embeddings" => Operation::Embeddings,
        "count_tokens" => Operation::CountTokens,
        "stored_response" => Operation::StoredResponse,
        _ => return None,
    };
    let targets = entries.split(',').filter(|e| !e.is_empty()).map(plan_entry).collect::<Option<Vec<_>>>()?;
    Some((operation, targets))
}

fn plan_entry(e: &str) -> Option<PlanEntry<'_>> {
    let (provider, rest) = e.split_once('=')?;
    Some(match rest.split_once('=') {
        Some((model, id)) => (provider, model, Some(id.parse().ok()?)),
        None => (provider, rest, None),
    })
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
    crate::schema::check_params(field, &t.params)?;
    let overrides: Vec<(String, ParamAction)> = t.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let p = providers.get(provider).ok_or_else(|| ConfigError::new(format!("{field}.provider"), "unknown provider"))?;
    let policy = providers::param_policy(p, &t.model, &overrides);
    // Routes naming the same (provider, model) share one target only when their parameter
    // policies agree; otherwise each keeps its own (they still share health, scope and price,
    // which are keyed by the name).
    if let Some(i) = targets.iter().position(|x| x.provider == provider && x.model == t.model && x.policy == policy) {
        return Ok(i);
    }
    targets.push(Target {
        provider,
        model: t.model.clone(),
        policy,
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
