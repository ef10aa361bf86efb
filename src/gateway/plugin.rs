//! Plugin-level rules of the root context: which role a root id takes, and how often the
//! timer ticks.

use crate::schema::Role;

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

    #[test]
    fn the_timer_ticks_at_least_each_second() {
        assert_eq!(tick_ms(0), 1000);
        assert_eq!(tick_ms(250), 250);
        assert_eq!(tick_ms(60_000), 1000);
    }
}
