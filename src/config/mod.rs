//! Configuration: parsed from the plugin's JSON, validated and compiled once in `on_configure`
//! into the structures the request path uses. Errors name the field that is wrong.

use crate::accounting::budget::{Accounting, ScopeId};
use crate::accounting::global::GlobalCharges;
use crate::accounting::global_view::GlobalView;
use crate::accounting::ledger::Lifetime;
use crate::accounting::money;
use crate::accounting::prices::{Price, PriceTable};
use crate::guardrails::Guardrails;
use crate::patterns;
use crate::providers::{self, Provider};
use crate::router::Router;
use crate::schema::Role;
use crate::schema::{
    ConfigError, ConfigSpec, GlobalChargesSpec, GlobalViewSpec, LimitsSpec, ModelSpec, ParamAction, RateLimitsSpec, check_params,
};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug)]
pub struct ModelRoute {
    pub provider: usize,
    /// `None` for wildcard entries: the requested name is sent upstream unchanged.
    pub upstream_model: Option<String>,
    pub overrides: Vec<(String, ParamAction)>,
    /// Shipped defaults merged with `overrides`, for exact entries (wildcards resolve per request).
    pub policy: Vec<(String, ParamAction)>,
    /// Usage counter scope: the upstream model, or the pattern of a wildcard entry.
    pub scope: ScopeId,
    /// For exact entries (wildcards look theirs up per request).
    pub price: Option<Price>,
}

/// The model a request resolved to.
#[derive(Debug)]
pub struct Resolved<'c, 'r> {
    pub provider: &'c Provider,
    pub provider_index: usize,
    pub upstream_model: Cow<'r, str>,
    pub policy: Cow<'c, [(String, ParamAction)]>,
    pub scope: ScopeId,
    pub price: Option<Price>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_stream_event_bytes: usize,
    pub max_response_bytes: usize,
    pub estimated_output_tokens: u64,
}

#[derive(Debug)]
pub struct Config {
    pub providers: Vec<Provider>,
    exact: HashMap<String, ModelRoute>,
    prefixes: Vec<(String, ModelRoute)>,
    pub limits: Limits,
    /// The `GET /v1/models` body, built once.
    pub models_json: Vec<u8>,
    /// `GET /v1/models/{id}` bodies.
    /// `/v1/models/{id}` answers, in the list's order.
    model_cards: Vec<(String, Vec<u8>)>,
    /// Problems that do not stop the config from loading, for the operator's log.
    pub warnings: Vec<String>,
    pub accounting: Accounting,
    pub router: Router,
    pub guardrails: Guardrails,
    /// Write the GenAI span attributes for Envoy's tracer (`gateway::span`).
    pub span_attributes: bool,
    /// Set by the filter shell from the plugin's `root_id`.
    pub role: Role,
}

#[derive(Serialize)]
struct ModelCard<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelCard<'a>>,
}

impl Config {
    /// Parses and compiles the plugin configuration. `env` looks up environment variables
    /// (the API keys); `now` stamps the model list's `created`.
    pub fn from_json(json: &[u8], env: &dyn Fn(&str) -> Option<String>, now: u64) -> Result<Config, ConfigError> {
        let spec = parse(json)?;
        compile(spec, env, now)
    }

    pub fn resolve<'c: 'r, 'r>(&'c self, requested: &'r str) -> Option<Resolved<'c, 'r>> {
        let (route, wildcard) = match self.exact.get(requested) {
            Some(r) => (r, false),
            None => (self.prefixes.iter().find(|(prefix, _)| requested.starts_with(prefix.as_str())).map(|(_, r)| r)?, true),
        };
        let provider = self.providers.get(route.provider)?;
        let upstream_model: Cow<str> = match &route.upstream_model {
            Some(m) => Cow::Borrowed(m.as_str()),
            None => Cow::Borrowed(requested),
        };
        let (policy, price) = if wildcard {
            (
                Cow::Owned(providers::param_policy(provider, &upstream_model, &route.overrides)),
                self.accounting.prices.lookup(&upstream_model),
            )
        } else {
            (Cow::Borrowed(route.policy.as_slice()), route.price)
        };
        Some(Resolved { provider, provider_index: route.provider, upstream_model, policy, scope: route.scope, price })
    }

    /// (provider, model) counter scopes of every model entry and route target, each once: the
    /// pairs whose metrics exist from startup.
    pub fn served_scopes(&self) -> Vec<(ScopeId, ScopeId)> {
        let entries = self.exact.values().chain(self.prefixes.iter().map(|(_, r)| r)).map(|r| (r.provider, r.scope));
        let targets = self.router.targets.iter().map(|t| (t.provider, t.scope));
        let mut out: Vec<(ScopeId, ScopeId)> =
            entries.chain(targets).filter_map(|(p, model)| Some((self.providers.get(p)?.scope, model))).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn model_card(&self, id: &str) -> Option<&[u8]> {
        self.model_cards.iter().find(|(name, _)| name == id).map(|(_, card)| card.as_slice())
    }

    /// The `/v1/models` list of the models `visible` keeps (`models_json` when it keeps all).
    pub fn models_json_where(&self, visible: &dyn Fn(&str) -> bool) -> Vec<u8> {
        let cards: Vec<&[u8]> = self.model_cards.iter().filter(|(id, _)| visible(id)).map(|(_, card)| card.as_slice()).collect();
        let mut out = br#"{"object":"list","data":["#.to_vec();
        out.extend_from_slice(&cards.join(&b","[..]));
        out.extend_from_slice(b"]}");
        out
    }
}

fn parse(json: &[u8]) -> Result<ConfigSpec, ConfigError> {
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ConfigError::new("", "the plugin configuration is empty; expected a JSON object")),
        Some(b'{') => {}
        Some(_) => return Err(ConfigError::new("", "the plugin configuration must be a JSON object")),
    }
    if let Err(deep) = crate::json::check_depth(json) {
        let limit = crate::json::MAX_DEPTH;
        return Err(ConfigError::new(deep.path, format!("JSON nested more than {limit} levels deep; at most {limit} levels are accepted")));
    }
    serde_json::from_slice(json).map_err(|e| {
        let message = e.to_string();
        let path = crate::json::path_at(json, crate::json::offset_of(json, e.line(), e.column()));
        // Unknown and missing fields are named in the message; the path is their object.
        let named = ["unknown field `", "missing field `", "unknown variant `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .filter(|_| !message.starts_with("unknown variant"));
        let field = match named {
            Some(name) if path.is_empty() => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        ConfigError::new(field, message)
    })
}

fn compile(spec: ConfigSpec, env: &dyn Fn(&str) -> Option<String>, now: u64) -> Result<Config, ConfigError> {
    let limits = compile_limits(spec.limits)?;
    let prices = PriceTable::build(&spec.prices).map_err(|(field, e)| ConfigError::new(field, e))?;
    let mut accounting = Accounting::new(prices, spec.budget.as_ref())?;
    accounting.flush_ms = spec.accounting_flush_ms;
    accounting.lifetime = reservation_lifetime(&spec)?;
    match &spec.auth {
        Some(auth) => accounting.add_auth(auth, &spec.teams)?,
        None if !spec.teams.is_empty() => return Err(ConfigError::new("teams", "teams need virtual keys: configure `auth.keys`")),
        None => {}
    }
    let mut warnings = Vec::new();
    let mut providers = Vec::with_capacity(spec.providers.len());
    let mut index = HashMap::new();
    for (name, p) in &spec.providers {
        index.insert(name.clone(), providers.len());
        let mut provider = Provider::compile(name, p, env, &mut warnings)?;
        provider.scope = accounting.scope("provider", name);
        providers.push(provider);
    }
    if spec.models.is_empty() && spec.routes.is_empty() {
        return Err(ConfigError::new("models", "at least one model (or route) must be configured"));
    }
    let mut exact = HashMap::new();
    let mut prefixes = Vec::new();
    let mut listed: Vec<(String, usize)> = Vec::new();
    for (name, m) in &spec.models {
        let field = format!("models.{name}");
        let mut route = compile_model(&field, name, m, &index, &providers)?;
        route.scope = accounting.scope("model", route.upstream_model.as_deref().unwrap_or(name));
        if let Some(upstream) = &route.upstream_model {
            route.price = accounting.prices.lookup(upstream);
            if route.price.is_none() {
                warnings.push(format!("{field}: no price for `{upstream}`; its cost is counted as unpriced and budgets cannot limit it (add it under `prices`)"));
            }
        }
        if let Some(prefix) = patterns::prefix_pattern(name) {
            if !m.aliases.is_empty() {
                return Err(ConfigError::new(format!("{field}.aliases"), "a wildcard model cannot have aliases"));
            }
            prefixes.push((prefix.to_owned(), route));
            continue;
        }
        if name.contains('*') {
            return Err(ConfigError::new(field, "`*` is only allowed at the end of a model name (a prefix match)"));
        }
        let names = std::iter::once(name).chain(m.aliases.iter());
        for (i, client_name) in names.enumerate() {
            if client_name.is_empty() || client_name.contains('*') {
                return Err(ConfigError::new(
                    format!("{field}.aliases[{}]", i.saturating_sub(1)),
                    "an alias must be a non-empty name without `*`",
                ));
            }
            if exact.contains_key(client_name) || spec.models.contains_key(client_name) && i > 0 {
                return Err(ConfigError::new(format!("{field}.aliases"), format!("the name `{client_name}` is configured twice")));
            }
            listed.push((client_name.clone(), route.provider));
            exact.insert(
                client_name.clone(),
                ModelRoute {
                    provider: route.provider,
                    upstream_model: route.upstream_model.clone(),
                    overrides: route.overrides.clone(),
                    policy: route.policy.clone(),
                    scope: route.scope,
                    price: route.price,
                },
            );
        }
    }
    // Longest prefix first, so `gpt-4o-*` wins over `gpt-*`.
    prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
    let inputs = crate::router::Inputs {
        routes: &spec.routes,
        failover: &spec.failover_clusters,
        breaker: (&spec.breaker).into(),
        retry: spec.retry.as_ref(),
        explain: spec.explain,
    };
    let router = Router::compile(&inputs, &providers, &mut accounting, &mut warnings)?;
    limit_rates(&spec.rate_limits, &mut accounting)?;
    for route in &router.routes {
        let owner = route.primary.first().and_then(|t| router.target(*t)).map_or(0, |t| t.provider);
        for name in route.exact_models() {
            if !listed.iter().any(|(n, _)| n == name) {
                listed.push((name.to_owned(), owner));
            }
        }
    }
    let route_detectors: Vec<(String, &str)> = spec
        .routes
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.conditions.guardrails.iter().map(move |d| (format!("routes[{i}].match.guardrails"), d.as_str())))
        .collect();
    let guardrails = Guardrails::compile(&spec.guardrails, &route_detectors)?;
    let (models_json, model_cards) = model_list(&listed, &providers, now);
    Ok(Config {
        providers,
        exact,
        prefixes,
        limits,
        models_json,
        model_cards,
        warnings,
        accounting,
        router,
        guardrails,
        span_attributes: spec.span_attributes,
        role: Role::Gateway,
    })
}

/// The gateway's and the upstream models' rate limits, once every model scope is known.
fn limit_rates(spec: &RateLimitsSpec, accounting: &mut Accounting) -> Result<(), ConfigError> {
    accounting.descriptor_headers = spec.descriptor_headers;
    accounting.global_charges = spec.global_charges.as_ref().map(|g| global_charges(g, spec.descriptor_headers)).transpose()?;
    accounting.global_view = spec.global_view.as_ref().map(|v| global_view(v, accounting.global_charges)).transpose()?;
    if let Some(gateway) = &spec.gateway {
        accounting.limit_rate("global", "all", "rate_limits.gateway", gateway)?;
    }
    for (model, limits) in &spec.models {
        let field = format!("rate_limits.models.{model}");
        if accounting.limit_rate("model", model, &field, limits)?.is_none() {
            return Err(ConfigError::new(field, format!("no route or model serves upstream model `{model}`")));
        }
    }
    Ok(())
}

/// Global charges name their scopes with the descriptor headers, in a money unit above zero.
fn global_charges(spec: &GlobalChargesSpec, descriptor_headers: bool) -> Result<GlobalCharges, ConfigError> {
    let field = "rate_limits.global_charges";
    if !descriptor_headers {
        return Err(ConfigError::new(field, "needs `rate_limits.descriptor_headers: true`: the charges are counted per named scope"));
    }
    let Some(unit) = &spec.cost_unit_usd else { return Ok(GlobalCharges::default()) };
    let field = "rate_limits.global_charges.cost_unit_usd";
    let pico = money::parse_usd(unit, 1).map_err(|e| ConfigError::new(field, e))?;
    GlobalCharges::with_unit(pico).ok_or_else(|| ConfigError::new(field, "must be above zero"))
}

/// The global view reads the counters the global charges write, from a named cluster, with a
/// bounded timeout.
fn global_view(spec: &GlobalViewSpec, charges: Option<GlobalCharges>) -> Result<GlobalView, ConfigError> {
    let field = "rate_limits.global_view";
    let Some(charges) = charges else {
        return Err(ConfigError::new(field, "needs `rate_limits.global_charges`: it reads the counters they charge"));
    };
    if spec.cluster.is_empty() {
        return Err(ConfigError::new(format!("{field}.cluster"), "must name the rate-limit service's cluster"));
    }
    let timeout_ms = spec.timeout_ms.unwrap_or(100);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(format!("{field}.timeout_ms"), "must be between 1 and 60000"));
    }
    let refresh_ms = spec.refresh_ms.unwrap_or(10_000);
    if !(100..=86_400_000).contains(&refresh_ms) {
        return Err(ConfigError::new(format!("{field}.refresh_ms"), "must be between 100 and 86400000"));
    }
    let domain = spec.domain.clone().unwrap_or_else(|| "tollgate".to_owned());
    Ok(GlobalView { cluster: spec.cluster.clone(), domain, timeout_ms, refresh_ms, charges })
}

/// A reservation must outlive its request, or the budget stops holding room for a request
/// still running: longer than every retry timeout Tollgate sets.
fn reservation_lifetime(spec: &ConfigSpec) -> Result<Lifetime, ConfigError> {
    let field = "limits.reservation_lifetime_seconds";
    let ms = spec.limits.reservation_lifetime_seconds.saturating_mul(1000);
    if ms == 0 {
        return Err(ConfigError::new(field, "must be at least 1"));
    }
    let retries = spec.retry.iter().chain(spec.routes.iter().filter_map(|r| r.retry.as_ref()));
    if let Some(t) = retries.filter_map(|r| r.timeout_ms).find(|t| *t >= ms) {
        return Err(ConfigError::new(field, format!("must be longer than every retry `timeout_ms` ({t} ms)")));
    }
    Ok(Lifetime { ms })
}

fn compile_limits(l: LimitsSpec) -> Result<Limits, ConfigError> {
    if l.max_request_bytes < 1024 {
        return Err(ConfigError::new("limits.max_request_bytes", "must be at least 1024"));
    }
    if l.max_stream_event_bytes < 1024 {
        return Err(ConfigError::new("limits.max_stream_event_bytes", "must be at least 1024"));
    }
    if l.max_response_bytes < 1024 {
        return Err(ConfigError::new("limits.max_response_bytes", "must be at least 1024"));
    }
    Ok(Limits {
        max_request_bytes: l.max_request_bytes,
        max_stream_event_bytes: l.max_stream_event_bytes,
        max_response_bytes: l.max_response_bytes,
        estimated_output_tokens: l.estimated_output_tokens,
    })
}

fn compile_model(
    field: &str,
    name: &str,
    m: &ModelSpec,
    index: &HashMap<String, usize>,
    providers: &[Provider],
) -> Result<ModelRoute, ConfigError> {
    let Some(&provider) = index.get(&m.provider) else {
        return Err(ConfigError::new(format!("{field}.provider"), format!("unknown provider `{}`", m.provider)));
    };
    let wildcard = patterns::prefix_pattern(name).is_some();
    let upstream_model = match &m.model {
        Some(u) if u.trim().is_empty() => return Err(ConfigError::new(format!("{field}.model"), "must not be empty")),
        Some(_) if wildcard => {
            return Err(ConfigError::new(format!("{field}.model"), "a wildcard entry forwards the requested name; remove `model`"));
        }
        Some(u) => Some(u.clone()),
        None if wildcard => None,
        None => Some(name.to_owned()),
    };
    check_params(field, &m.params)?;
    let overrides: Vec<(String, ParamAction)> = m.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let policy = match (&upstream_model, providers.get(provider)) {
        (Some(u), Some(p)) => providers::param_policy(p, u, &overrides),
        _ => Vec::new(),
    };
    Ok(ModelRoute { provider, upstream_model, overrides, policy, scope: 0, price: None })
}

fn model_list(listed: &[(String, usize)], providers: &[Provider], now: u64) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let cards: Vec<ModelCard> = listed
        .iter()
        .map(|(id, p)| ModelCard { id, object: "model", created: now, owned_by: providers.get(*p).map_or("", |p| p.name.as_str()) })
        .collect();
    let single = cards.iter().map(|c| (c.id.to_owned(), serde_json::to_vec(c).unwrap_or_default())).collect();
    let list = serde_json::to_vec(&ModelList { object: "list", data: cards }).unwrap_or_default();
    (list, single)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "ANTHROPIC_API_KEY" => Some("ak-test".into()),
            _ => None,
        }
    }

    const GOOD: &str = r#"{
        "providers": {
            "openai": {"kind": "openai", "cluster": "openai", "api_key_env": "OPENAI_API_KEY"},
            "anthropic": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
            "local": {"kind": "openai_compatible", "cluster": "vllm", "host": "localhost:8000"}
        },
        "models": {
            "gpt-4o": {"provider": "openai"},
            "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5", "aliases": ["sonnet", "claude-latest"],
                       "params": {"temperature": "reject"}},
            "llama-*": {"provider": "local"},
            "llama-3-*": {"provider": "openai"}
        }
    }"#;

    fn compile_str(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json.as_bytes(), &env, 1_700_000_000)
    }

    fn with_rate_limits(rate_limits: &str) -> Result<Config, ConfigError> {
        let json = GOOD.trim_end().strip_suffix('}').map(|head| format!("{head}, \"rate_limits\": {rate_limits}}}"));
        compile_str(&json.unwrap_or_default())
    }

    #[test]
    fn global_charges_take_a_money_unit_and_need_the_scope_names() {
        let on = with_rate_limits(r#"{"descriptor_headers": true, "global_charges": {}}"#).unwrap();
        assert_eq!(on.accounting.global_charges, Some(GlobalCharges::default()));
        let cents = with_rate_limits(r#"{"descriptor_headers": true, "global_charges": {"cost_unit_usd": "0.01"}}"#).unwrap();
        assert_eq!(cents.accounting.global_charges.map(|g| g.cost_unit), Some(money::PICO_PER_USD / 100));
        assert_eq!(compile_str(GOOD).unwrap().accounting.global_charges, None, "off unless asked for");
        let unnamed = with_rate_limits(r#"{"global_charges": {}}"#).unwrap_err();
        assert_eq!(unnamed.field, "rate_limits.global_charges");
        let zero = with_rate_limits(r#"{"descriptor_headers": true, "global_charges": {"cost_unit_usd": "0"}}"#).unwrap_err();
        assert_eq!(zero.field, "rate_limits.global_charges.cost_unit_usd");
    }

    #[test]
    fn the_global_view_reads_the_global_charges_from_a_cluster() {
        let charged = r#""descriptor_headers": true, "global_charges": {"cost_unit_usd": "0.01"}"#;
        let on = with_rate_limits(&format!(r#"{{{charged}, "global_view": {{"cluster": "ratelimit"}}}}"#)).unwrap();
        let view = on.accounting.global_view.unwrap();
        assert_eq!((view.cluster.as_str(), view.domain.as_str(), view.timeout_ms, view.refresh_ms), ("ratelimit", "tollgate", 100, 10_000));
        assert_eq!(view.charges.cost_unit, money::PICO_PER_USD / 100, "in the charges' unit");
        let uncharged = with_rate_limits(r#"{"global_view": {"cluster": "ratelimit"}}"#).unwrap_err();
        assert_eq!(uncharged.field, "rate_limits.global_view");
        let slow = with_rate_limits(&format!(r#"{{{charged}, "global_view": {{"cluster": "r", "timeout_ms": 0}}}}"#)).unwrap_err();
        assert_eq!(slow.field, "rate_limits.global_view.timeout_ms");
        let unnamed = with_rate_limits(&format!(r#"{{{charged}, "global_view": {{"cluster": ""}}}}"#)).unwrap_err();
        assert_eq!(unnamed.field, "rate_limits.global_view.cluster");
    }

    #[test]
    fn served_scopes_name_each_provider_model_pair_once() {
        let c = compile_str(GOOD).unwrap();
        let names: Vec<(String, String)> = c
            .served_scopes()
            .iter()
            .map(|&(p, m)| (c.accounting.scopes[p as usize].name.clone(), c.accounting.scopes[m as usize].name.clone()))
            .collect();
        // claude's aliases share its entry; wildcard entries count under their pattern
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&("anthropic".into(), "claude-sonnet-4-5".into())));
        assert!(names.contains(&("openai".into(), "gpt-4o".into())));
    }

    fn err(json: &str) -> ConfigError {
        compile_str(json).unwrap_err()
    }

    #[test]
    fn compiles_providers_models_and_aliases() {
        let c = compile_str(GOOD).unwrap();
        let r = c.resolve("sonnet").unwrap();
        assert_eq!(r.provider.name, "anthropic");
        assert_eq!(r.upstream_model, "claude-sonnet-4-5");
        assert_eq!(r.provider.authority, "api.anthropic.com");
        assert_eq!(r.provider.chat_path, "/v1/messages");
        let (name, key) = r.provider.auth.as_ref().unwrap();
        assert_eq!((*name, key.expose()), ("x-api-key", "ak-test"));
        assert!(r.policy.iter().any(|(k, a)| k == "temperature" && *a == ParamAction::Reject));
        let r = c.resolve("gpt-4o").unwrap();
        assert_eq!(r.upstream_model, "gpt-4o");
        let (name, key) = r.provider.auth.as_ref().unwrap();
        assert_eq!((*name, key.expose()), ("authorization", "Bearer sk-test"));
        assert_eq!(r.provider.chat_path, "/v1/chat/completions");
        assert!(c.resolve("gpt-5").is_none());
    }

    #[test]
    fn reservations_outlive_every_request_timeout() {
        assert_eq!(compile_str(GOOD).unwrap().accounting.lifetime, Lifetime { ms: 900_000 });
        let short = GOOD.replacen('{', r#"{"limits": {"reservation_lifetime_seconds": 60}, "retry": {"timeout_ms": 60000},"#, 1);
        assert_eq!(compile_str(&short).unwrap_err().field, "limits.reservation_lifetime_seconds");
        let fine = GOOD.replacen('{', r#"{"limits": {"reservation_lifetime_seconds": 61}, "retry": {"timeout_ms": 60000},"#, 1);
        assert_eq!(compile_str(&fine).unwrap().accounting.lifetime, Lifetime { ms: 61_000 });
        let zero = GOOD.replacen('{', r#"{"limits": {"reservation_lifetime_seconds": 0},"#, 1);
        assert_eq!(compile_str(&zero).unwrap_err().field, "limits.reservation_lifetime_seconds");
    }

    #[test]
    fn uncapped_usage_is_flushed_each_second_unless_configured() {
        assert_eq!(compile_str(GOOD).unwrap().accounting.flush_ms, 1000);
        let immediate = GOOD.replacen('{', r#"{"accounting_flush_ms": 0,"#, 1);
        assert_eq!(compile_str(&immediate).unwrap().accounting.flush_ms, 0);
    }

    #[test]
    fn wildcards_forward_the_requested_name_longest_prefix_first() {
        let c = compile_str(GOOD).unwrap();
        let r = c.resolve("llama-3-70b").unwrap();
        assert_eq!(r.provider.name, "openai");
        assert_eq!(r.upstream_model, "llama-3-70b");
        let r = c.resolve("llama-2").unwrap();
        assert_eq!(r.provider.name, "local");
        assert!(r.provider.auth.is_none());
    }

    #[test]
    fn model_list_has_every_exact_name_and_alias() {
        let c = compile_str(GOOD).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&c.models_json).unwrap();
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["claude", "sonnet", "claude-latest", "gpt-4o"]);
        assert_eq!(v["data"][0]["owned_by"], "anthropic");
        assert_eq!(v["data"][0]["created"], 1_700_000_000);
        let card: serde_json::Value = serde_json::from_slice(c.model_card("sonnet").unwrap()).unwrap();
        assert_eq!(card["id"], "sonnet");
        assert!(c.model_card("llama-2").is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = compile_str(GOOD).unwrap();
        let dump = format!("{c:?}");
        assert!(!dump.contains("sk-test") && !dump.contains("ak-test"), "{dump}");
    }

    #[test]
    fn json_nested_too_deep_is_a_config_error_naming_where() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = err(&GOOD.replacen(r#""model": "claude-sonnet-4-5""#, &format!(r#""model": {deep}"#), 1));
        assert_eq!(e.field, "models.claude.model");
        assert!(e.message.contains("64 levels"), "{e}");
    }

    #[test]
    fn malformed_json_is_an_error_not_a_hang() {
        // A stray closer in an array once kept the error path's walk in place forever.
        for json in [r#"{"providers":[}"#, r#"{"providers":{"a":[1,}]}}"#, r#"{"models":{"m":{"aliases":["x",}}}"#] {
            assert!(compile_str(json).is_err(), "{json}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("[]", ""),
            (r#"{"providers":{},"models":{}}"#, "models"),
            (r#"{"provders":{}}"#, "provders"),
            (
                r#"{"providers":{"a":{"kind":"openai","cluster":"c","api_key_env":"OPENAI_API_KEY","clustr":"x"}},"models":{}}"#,
                "providers.a.clustr",
            ),
            (r#"{"providers":{"a":{"kind":"gopher","cluster":"c"}},"models":{}}"#, "providers.a.kind"),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","model":"up"}},"rate_limits":{"models":{"m":{"requests_per_minute":5}}}}"#,
                "rate_limits.models.m",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a"}},"rate_limits":{"gateway":{"requests_per_minute":0}}}"#,
                "rate_limits.gateway.requests_per_minute",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai","cluster":"","api_key_env":"OPENAI_API_KEY"}},"models":{"m":{"provider":"a"}}}"#,
                "providers.a.cluster",
            ),
            (r#"{"providers":{"a":{"kind":"openai","cluster":"c"}},"models":{"m":{"provider":"a"}}}"#, "providers.a.api_key_env"),
            (r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c"}},"models":{"m":{"provider":"a"}}}"#, "providers.a.host"),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h","base_path":"v1"}},"models":{"m":{"provider":"a"}}}"#,
                "providers.a.base_path",
            ),
            (
                r#"{"providers":{"a":{"kind":"anthropic","cluster":"c","api_key_env":"ANTHROPIC_API_KEY","api_version":"1999-01-01"}},"models":{"m":{"provider":"a"}}}"#,
                "providers.a.api_version",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"b"}}}"#,
                "models.m.provider",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","model":""}}}"#,
                "models.m.model",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","params":{"temperature":"maybe"}}}}"#,
                "models.m.params.temperature",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","params":{"model":"drop"}}}}"#,
                "models.m.params.model",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","params":{"top_p":{"reasoning":"level"}}}}}"#,
                "models.m.params.top_p",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","params":{"tools":{"json_schema":"tool"}}}}}"#,
                "models.m.params.tools",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"routes":[{"name":"r","targets":[{"provider":"a","model":"m","params":{"seed":{"reasoning":"budget"}}}]}]}"#,
                "routes[0].targets[0].params.seed",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a","aliases":["n"]},"n":{"provider":"a"}}}"#,
                "models.m.aliases",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m*x":{"provider":"a"}}}"#,
                "models.m*x",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m-*":{"provider":"a","model":"x"}}}"#,
                "models.m-*.model",
            ),
            (
                r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},"models":{"m":{"provider":"a"}},"limits":{"max_request_bytes":5}}"#,
                "limits.max_request_bytes",
            ),
        ];
        for (json, field) in cases {
            let e = err(json);
            assert_eq!(e.field, *field, "{json}: {e}");
            assert!(!e.message.is_empty());
            let shown = e.to_string();
            if !field.is_empty() {
                assert!(shown.contains(field), "{shown}");
            }
        }
    }

    #[test]
    fn unset_key_variable_is_a_warning_not_a_load_failure() {
        let c = compile_str(r#"{"providers":{"a":{"kind":"openai","cluster":"c","api_key_env":"NOPE"}},"models":{"m":{"provider":"a"}}}"#)
            .unwrap();
        assert!(c.warnings[0].contains("providers.a.api_key_env") && c.warnings[0].contains("NOPE"), "{:?}", c.warnings);
        let p = &c.providers[0];
        assert!(p.auth.is_none());
        assert_eq!(p.missing_key_env.as_deref(), Some("NOPE"));
        assert!(compile_str(GOOD).unwrap().warnings.iter().all(|w| w.contains("no price")));
    }

    #[test]
    fn rename_action_parses_from_an_object() {
        let c = compile_str(
            r#"{"providers":{"a":{"kind":"openai_compatible","cluster":"c","host":"h"}},
            "models":{"m":{"provider":"a","params":{"max_tokens":{"rename":"max_completion_tokens"},"seed":"drop"}}}}"#,
        )
        .unwrap();
        let r = c.resolve("m").unwrap();
        assert!(r.policy.contains(&("max_tokens".into(), ParamAction::Rename("max_completion_tokens".into()))));
        assert!(r.policy.contains(&("seed".into(), ParamAction::Drop)));
    }
}
