use super::health::{Observation, record};
use super::*;
use crate::config::Config;
use crate::host::memory::MemoryStore;
use crate::openai::chat;

const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "openai", "api_key_env": "K"},
        "anthropic": {"kind": "anthropic", "cluster": "anthropic", "api_key_env": "K"},
        "local": {"kind": "openai_compatible", "cluster": "local", "host": "localhost:8000"}
    },
    "models": {"plain": {"provider": "openai", "model": "gpt-4o-mini"}},
    "prices": {"cheap-model": {"input": "0.1", "output": "0.2"}, "dear-model": {"input": "10", "output": "20"}},
    "failover_clusters": [{"cluster": "openai_then_anthropic", "providers": ["openai", "anthropic"]}],
    "breaker": {"consecutive_failures": 2, "cooldown_seconds": 10},
    "routes": [
        {"name": "compliance", "match": {"prompt": {"keywords": ["account number"]}},
         "targets": [{"provider": "anthropic", "model": "claude-compliance"}]},
        {"name": "premium", "match": {"headers": {"x-tier": "premium"}, "models": ["chat"]},
         "targets": [{"provider": "openai", "model": "gpt-4o"}], "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
        {"name": "evening", "match": {"models": ["chat"], "time": {"after": "18:00", "before": "08:00"}},
         "targets": [{"provider": "local", "model": "cheap-model"}]},
        {"name": "canary", "match": {"models": ["canary"]}, "strategy": "weighted",
         "targets": [{"provider": "openai", "model": "gpt-4o", "weight": 90}, {"provider": "local", "model": "gpt-4o-next", "weight": 10}]},
        {"name": "spread", "match": {"models": ["spread"]}, "strategy": "round_robin",
         "targets": [{"provider": "openai", "model": "a"}, {"provider": "local", "model": "b"}]},
        {"name": "fast", "match": {"models": ["fast"]}, "strategy": "least_latency",
         "targets": [{"provider": "openai", "model": "slow"}, {"provider": "local", "model": "quick"}]},
        {"name": "thrifty", "match": {"models": ["thrifty"]}, "strategy": "least_cost",
         "targets": [{"provider": "openai", "model": "dear-model"}, {"provider": "local", "model": "cheap-model"}]},
        {"name": "default", "match": {"models": ["chat"]},
         "targets": [{"provider": "openai", "model": "gpt-4o"}], "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}, {"provider": "local", "model": "llama"}]}
    ]
}"#;

// 2026-11-24 (Tuesday) 12:00 UTC
const NOON: u64 = 1_795_521_600_000;

fn config() -> Config {
    Config::from_json(CONFIG.as_bytes(), &|_| Some("k".into()), 0).unwrap()
}

struct Ask {
    body: String,
    headers: Vec<(String, String)>,
    now: u64,
    demand: Demand,
    cheap: bool,
}

fn ask(model: &str) -> Ask {
    Ask {
        body: format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}"#),
        headers: vec![],
        now: NOON,
        demand: Demand { input_tokens: 10, output_tokens: 10, stream: false },
        cheap: false,
    }
}

fn decide<'c>(c: &'c Config, store: &MemoryStore, a: &Ask) -> Decision<'c> {
    let req = chat::parse(a.body.as_bytes()).unwrap();
    let facts = Facts {
        model: &req.model,
        headers: &a.headers,
        user: None,
        metadata: None,
        messages: &req.messages,
        key: None,
        team: None,
        now_ms: a.now,
        guardrails: &[],
    };
    c.router.decide(&facts, store, a.demand, a.cheap)
}

/// Decides and commits, as for a request that is sent.
fn plan_of(c: &Config, store: &MemoryStore, a: &Ask) -> (String, Vec<String>, Option<String>) {
    match decide(c, store, a) {
        Decision::Routed(p) if !c.router.commit(p.route, p.commitment, store, a.now) => ("probe taken".into(), vec![], None),
        Decision::Routed(p) => (
            p.route.name.clone(),
            p.targets.iter().map(|t| c.router.targets[*t].model.clone()).collect(),
            p.failover_cluster.map(|i| c.router.failover_clusters[i].cluster.clone()),
        ),
        other => panic!("{other:?}"),
    }
}

fn target_id(c: &Config, model: &str) -> TargetId {
    c.router.targets.iter().position(|t| t.model == model).unwrap()
}

fn fail(c: &Config, store: &MemoryStore, model: &str, times: u64) {
    let key = &c.router.targets[target_id(c, model)].health_key;
    for i in 0..times {
        record(store, key, NOON + i, &c.router.breaker, Observation::Failure).unwrap();
    }
}

#[test]
fn first_matching_rule_wins() {
    let c = config();
    let s = MemoryStore::default();
    let mut a = ask("chat");
    a.body = r#"{"model":"chat","messages":[{"role":"user","content":"My ACCOUNT NUMBER is 123"}]}"#.into();
    assert_eq!(plan_of(&c, &s, &a).0, "compliance");
    let mut a = ask("chat");
    a.headers = vec![("x-tier".into(), "premium".into())];
    assert_eq!(plan_of(&c, &s, &a).0, "premium");
    assert_eq!(plan_of(&c, &s, &ask("chat")).0, "default");
    assert!(matches!(decide(&c, &s, &ask("plain")), Decision::Unrouted));
}

#[test]
fn time_window_rule_follows_the_clock() {
    let c = config();
    let s = MemoryStore::default();
    let mut a = ask("chat");
    a.now = NOON + 7 * 3_600_000; // 19:00 UTC
    assert_eq!(plan_of(&c, &s, &a), ("evening".into(), vec!["cheap-model".into()], None));
    a.now = NOON;
    assert_eq!(plan_of(&c, &s, &a).0, "default");
}

#[test]
fn plan_uses_the_failover_cluster_covering_its_providers() {
    let c = config();
    let s = MemoryStore::default();
    // openai → anthropic is carried by the failover cluster; local is beyond it
    assert_eq!(
        plan_of(&c, &s, &ask("chat")),
        ("default".into(), vec!["gpt-4o".into(), "claude-sonnet-4-5".into()], Some("openai_then_anthropic".into()))
    );
}

#[test]
fn open_breaker_skips_the_target_until_a_single_probe_after_cooldown() {
    let c = config();
    let s = MemoryStore::default();
    fail(&c, &s, "gpt-4o", 2);
    let (_, plan, chain) = plan_of(&c, &s, &ask("chat"));
    assert_eq!(plan, vec!["claude-sonnet-4-5"], "straight to the fallback, on its own cluster");
    assert_eq!(chain, None);
    match decide(&c, &s, &ask("chat")) {
        Decision::Routed(p) => assert_eq!(p.skipped, vec![Skip { target: target_id(&c, "gpt-4o"), reason: "circuit_open" }]),
        other => panic!("{other:?}"),
    }
    let mut later = ask("chat");
    later.now = NOON + 10_002;
    assert_eq!(plan_of(&c, &s, &later).1[0], "gpt-4o", "the probe goes to the recovering target");
    assert_eq!(plan_of(&c, &s, &later).1[0], "claude-sonnet-4-5", "only one probe at a time");
}

#[test]
fn deciding_alone_takes_neither_the_probe_nor_the_turn() {
    let c = config();
    let s = MemoryStore::default();
    fail(&c, &s, "gpt-4o", 2);
    let mut later = ask("chat");
    later.now = NOON + 10_002;
    // explain, or a request refused by its budget, decides and never commits
    for _ in 0..3 {
        let Decision::Routed(p) = decide(&c, &s, &later) else { panic!() };
        assert_eq!(p.commitment.probe, Some(target_id(&c, "gpt-4o")));
    }
    let key = &c.router.targets[target_id(&c, "gpt-4o")].health_key;
    assert_eq!(health::read(&s, key).state, health::State::Open, "the probe slot is still free");
    // two requests decided at once: the first to commit probes, the other must decide again
    let (Decision::Routed(a), Decision::Routed(b)) = (decide(&c, &s, &later), decide(&c, &s, &later)) else { panic!() };
    assert!(c.router.commit(a.route, a.commitment, &s, later.now));
    assert!(!c.router.commit(b.route, b.commitment, &s, later.now));
    assert_eq!(plan_of(&c, &s, &later).1[0], "claude-sonnet-4-5", "decided again: half-open, skipped");
    let spread = ask("spread");
    for _ in 0..3 {
        decide(&c, &s, &spread);
    }
    assert_eq!(plan_of(&c, &s, &spread).1[0], "a", "explained requests did not advance the turn");
    assert_eq!(plan_of(&c, &s, &spread).1[0], "b");
}

#[test]
fn only_an_attempt_that_is_sent_claims_a_fallback_probe() {
    let c = config();
    let s = MemoryStore::default();
    // the fallback in the failover cluster, and the one beyond its reach, are past their cool-down
    fail(&c, &s, "claude-sonnet-4-5", 2);
    fail(&c, &s, "llama", 2);
    let mut later = ask("chat");
    later.now = NOON + 10_002;
    let Decision::Routed(p) = decide(&c, &s, &later) else { panic!() };
    assert_eq!(p.targets, vec![target_id(&c, "gpt-4o"), target_id(&c, "claude-sonnet-4-5")], "llama is cut by the cluster's reach");
    assert_eq!(p.commitment.probe, None, "the first target is healthy");
    assert!(c.router.commit(p.route, p.commitment, &s, later.now));
    let state = |m: &str| health::read(&s, &c.router.targets[target_id(&c, m)].health_key).state;
    assert_eq!((state("claude-sonnet-4-5"), state("llama")), (health::State::Open, health::State::Open), "no probe claimed");
    // Envoy's retry reaches the fallback: now it probes
    c.router.attempt_sent(target_id(&c, "claude-sonnet-4-5"), &s, later.now);
    assert_eq!(state("claude-sonnet-4-5"), health::State::HalfOpen);
    c.router.attempt_sent(target_id(&c, "gpt-4o"), &s, later.now);
    assert_eq!(state("gpt-4o"), health::State::Closed, "a healthy target is left alone");
}

#[test]
fn all_targets_down_is_exhausted() {
    let c = config();
    let s = MemoryStore::default();
    for m in ["gpt-4o", "claude-sonnet-4-5", "llama"] {
        fail(&c, &s, m, 2);
    }
    match decide(&c, &s, &ask("chat")) {
        Decision::Exhausted { route, skipped } => {
            assert_eq!(route.name, "default");
            assert_eq!(skipped.len(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rate_limited_target_waits_for_its_reset() {
    let c = config();
    let s = MemoryStore::default();
    let key = &c.router.targets[target_id(&c, "gpt-4o")].health_key;
    record(&s, key, NOON, &c.router.breaker, Observation::RateLimited { until_ms: Some(NOON + 5000) }).unwrap();
    assert_eq!(plan_of(&c, &s, &ask("chat")).1[0], "claude-sonnet-4-5");
    let mut later = ask("chat");
    later.now = NOON + 5000;
    assert_eq!(plan_of(&c, &s, &later).1[0], "gpt-4o");
}

#[test]
fn weighted_split_follows_weights() {
    let c = config();
    c.router.seed(42);
    let s = MemoryStore::default();
    let n = 10_000;
    let canary = (0..n).filter(|_| plan_of(&c, &s, &ask("canary")).1[0] == "gpt-4o-next").count();
    let share = canary as f64 / n as f64;
    assert!((0.08..0.12).contains(&share), "{share}");
}

#[test]
fn round_robin_alternates() {
    let c = config();
    let s = MemoryStore::default();
    let picks: Vec<String> = (0..4).map(|_| plan_of(&c, &s, &ask("spread")).1[0].clone()).collect();
    assert_eq!(picks, vec!["a", "b", "a", "b"]);
}

#[test]
fn least_latency_prefers_the_faster_measured_target() {
    let c = config();
    c.router.seed(7);
    let s = MemoryStore::default();
    // unmeasured targets are tried first
    assert_eq!(plan_of(&c, &s, &ask("fast")).1[0], "slow");
    for (model, us) in [("slow", 900_000), ("quick", 100_000)] {
        let key = &c.router.targets[target_id(&c, model)].health_key;
        record(&s, key, NOON, &c.router.breaker, Observation::Success { latency_us: us, ttfb_us: Some(us / 10) }).unwrap();
    }
    let quick = (0..1000).filter(|_| plan_of(&c, &s, &ask("fast")).1[0] == "quick").count();
    assert!(quick > 900 && quick < 1000, "mostly the faster one, with exploration: {quick}");
}

#[test]
fn least_cost_and_soft_budget_limits_prefer_cheap() {
    let c = config();
    let s = MemoryStore::default();
    assert_eq!(plan_of(&c, &s, &ask("thrifty")).1[0], "cheap-model");
    let mut a = ask("canary");
    a.cheap = true;
    // gpt-4o has a shipped price, gpt-4o-next has none: the priced one is cheaper to trust
    assert_eq!(plan_of(&c, &s, &a).1[0], "gpt-4o");
}

#[test]
fn plan_header_round_trips() {
    let c = config();
    let s = MemoryStore::default();
    let Decision::Routed(p) = decide(&c, &s, &ask("chat")) else { panic!() };
    let header = c.router.encode_plan(Operation::Chat, &p.targets, &c.providers);
    let (openai, anthropic) = (p.targets[0], p.targets[1]);
    assert_eq!(header, format!("chat;openai=gpt-4o={openai},anthropic=claude-sonnet-4-5={anthropic}"));
    let (op, targets) = parse_plan(&header).unwrap();
    assert_eq!(op, Operation::Chat);
    assert_eq!(targets, vec![("openai", "gpt-4o", Some(openai)), ("anthropic", "claude-sonnet-4-5", Some(anthropic))]);
    // a plan from an instance with an older format names no ids
    assert_eq!(parse_plan("chat;openai=gpt-4o").unwrap().1, vec![("openai", "gpt-4o", None)]);
    assert!(parse_plan("chat;openai=gpt-4o=x").is_none());
    assert!(parse_plan("chat;oops").is_none());
    assert!(parse_plan("dance;a=b").is_none());
}

#[test]
fn route_models_are_listed_and_config_errors_name_fields() {
    let c = config();
    let v: serde_json::Value = serde_json::from_slice(&c.models_json).unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"canary") && ids.contains(&"chat") && ids.contains(&"plain"));
    let bad = |patch: &str, field: &str| {
        let json = CONFIG.replacen(r#""routes": ["#, &format!(r#""routes": [{patch},"#), 1);
        let e = Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap_err();
        assert_eq!(e.field, field, "{patch}");
    };
    bad(r#"{"name": "x", "targets": []}"#, "routes[0].targets");
    bad(r#"{"name": "x", "targets": [{"provider": "nope", "model": "m"}]}"#, "routes[0].targets[0].provider");
    bad(r#"{"name": "x", "targets": [{"provider": "openai", "model": "a,b"}]}"#, "routes[0].targets[0].model");
    bad(r#"{"name": "default", "targets": [{"provider": "openai", "model": "m"}]}"#, "routes[8].name");
    bad(r#"{"name": "x", "targets": [{"provider": "openai", "model": "m"}], "strategy": "fastest"}"#, "routes[0].strategy");
    bad(
        r#"{"name": "x", "targets": [{"provider": "openai", "model": "m"}], "last_resort": {"cluster": "q", "path": "review"}}"#,
        "routes[0].last_resort.path",
    );
}

#[test]
fn missing_failover_cluster_is_a_warning() {
    let c = config();
    assert!(!c.warnings.iter().any(|w| w.contains("routes[1]") && w.contains("no failover cluster")));
    let json = CONFIG.replace(r#""failover_clusters": [{"cluster": "openai_then_anthropic", "providers": ["openai", "anthropic"]}],"#, "");
    let c = Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("routes[1]") && w.contains("[openai/gpt-4o, anthropic/claude-sonnet-4-5]")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn routes_sharing_a_provider_model_keep_their_own_params() {
    let json = CONFIG.replacen(
        r#""routes": ["#,
        r#""routes": [
        {"name": "cool", "match": {"models": ["cool"]}, "targets": [{"provider": "openai", "model": "gpt-4o", "params": {"temperature": "drop"}}]},
        {"name": "strict", "match": {"models": ["strict"]}, "targets": [{"provider": "openai", "model": "gpt-4o", "params": {"temperature": "reject"}}]},
        {"name": "plainly", "match": {"models": ["plainly"]}, "targets": [{"provider": "openai", "model": "gpt-4o", "params": {"temperature": "reject"}}]},"#,
        1,
    );
    let c = Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap();
    let target_of = |name: &str| c.router.routes.iter().find(|r| r.name == name).unwrap().primary[0];
    let policy = |name: &str| c.router.target(target_of(name)).unwrap().policy.clone();
    assert_eq!(policy("cool"), vec![("temperature".to_string(), ParamAction::Drop)]);
    assert_eq!(policy("strict"), vec![("temperature".to_string(), ParamAction::Reject)]);
    assert_eq!(target_of("strict"), target_of("plainly"), "equal policies share one target");
    let (cool, strict) = (c.router.target(target_of("cool")).unwrap(), c.router.target(target_of("strict")).unwrap());
    assert_eq!(cool.health_key, strict.health_key, "one breaker per provider model");
    // the upstream filter finds each route's target from the plan, not the first with that name
    let openai = cool.provider;
    assert_eq!(c.router.planned_target(Some(target_of("strict")), openai, "gpt-4o"), Some(target_of("strict")));
    assert_eq!(c.router.planned_target(Some(target_of("strict")), openai, "gpt-4o-mini"), None);
    assert_eq!(c.router.planned_target(None, openai, "gpt-4o"), c.router.find_target(openai, "gpt-4o"));
}
