//! Plugin-level rules of the root context: which role a root id takes, how a worker compiles
//! the plugin configuration, and how often the timer ticks.

use crate::config::Config;
use crate::host::SharedStore;
use crate::schema::{ConfigError, Role};

/// The host's clock for the plugin configuration.
pub struct Clock {
    pub now_ms: u64,
    /// Seeds the worker's weighted-traffic split.
    pub now_nanos: u64,
}

/// Compiles one worker's plugin configuration: its role from the filter's `root_id`, usage
/// records created in `store`, and the worker's own random sequence for weighted traffic.
/// `timer`: the host calls [`crate::gateway::Gateway::flush`] on a timer; without one (the
/// native module has no per-worker timer) counters of uncapped scopes are written at once,
/// since nothing would flush a batch left on an idle worker.
pub fn configure(
    json: &[u8],
    root_id: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
    store: &dyn SharedStore,
    clock: Clock,
    timer: bool,
) -> Result<Config, ConfigError> {
    let mut config = Config::from_json(json, env, clock.now_ms / 1000)?;
    config.role = role_of_root(root_id);
    if !timer {
        config.accounting.flush_ms = 0;
    }
    config.accounting.ensure_records(store);
    config.router.seed(clock.now_nanos);
    Ok(config)
}

/// Envoy names each filter's root context (`root_id`): the per-cluster filter's ends with
/// `upstream` and translates attempts; any other is the gateway filter.
pub fn role_of_root(root_id: &[u8]) -> Role {
    if root_id.ends_with(b"upstream") { Role::Upstream } else { Role::Gateway }
}

/// The timer drives the heap gauge and the metric flush (each second) and the usage flush
/// (`flush_ms`, 0: usage is written at once).
pub fn tick_ms(flush_ms: u64) -> u64 {
    if flush_ms == 0 { 1000 } else { flush_ms.min(1000) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_root_translates_attempts() {
        assert_eq!(role_of_root(b"tollgate_upstream"), Role::Upstream);
        assert_eq!(role_of_root(b"tollgate"), Role::Gateway);
        assert_eq!(role_of_root(b""), Role::Gateway);
    }

    const MINIMAL: &str = r#"{"providers": {"openai": {"kind": "openai", "cluster": "c", "api_key_env": "K"}},
        "models": {"m": {"provider": "openai"}}}"#;

    fn configured(root_id: &[u8], timer: bool) -> Config {
        let store = crate::host::memory::MemoryStore::default();
        configure(MINIMAL.as_bytes(), root_id, &|_| Some("key".into()), &store, Clock { now_ms: 1, now_nanos: 2 }, timer).unwrap()
    }

    #[test]
    fn a_worker_takes_its_role_from_the_root_id() {
        assert_eq!(configured(b"tollgate_upstream", true).role, Role::Upstream);
        assert_eq!(configured(b"tollgate", true).role, Role::Gateway);
    }

    #[test]
    fn without_a_timer_usage_is_written_at_once() {
        assert_eq!(configured(b"tollgate", true).accounting.flush_ms, 1000);
        assert_eq!(configured(b"tollgate", false).accounting.flush_ms, 0);
    }

    #[test]
    fn the_timer_ticks_at_least_each_second() {
        assert_eq!(tick_ms(0), 1000);
        assert_eq!(tick_ms(250), 250);
        assert_eq!(tick_ms(60_000), 1000);
    }
}
