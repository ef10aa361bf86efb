//! Global mode's charges: what a finished request adds to the counters a rate-limit service
//! keeps for every replica (global token limits and budgets).
//!
//! Tollgate writes two numbers into Envoy filter state when the request is over
//! ([`TOKENS_PROPERTY`], [`COST_PROPERTY`]); the route's rate limits with
//! `apply_on_stream_done: true` read them as `hits_addend`
//! (`%FILTER_STATE(wasm.tollgate_charge_tokens:PLAIN)%`) and Envoy's rate-limit filter sends them
//! to the service when the stream is destroyed, after Tollgate's `on_log`
//! (`Filter::onDestroy`, source/extensions/filters/http/ratelimit/ratelimit.cc, Envoy 1.40).
//! Admission is the same descriptors sent before the provider is called with a per-descriptor
//! `hits_addend` of 0: envoyproxy/ratelimit then checks without counting
//! (`utils.GetHitsAddends`: "the zero value means check only") and refuses a counter already
//! over its limit.
//!
//! Units: the protocol's counters are integers and the limits (`requests_per_unit`) are
//! `uint32`, so money is charged in a configurable unit (`cost_unit_usd`, default one
//! micro-dollar: a limit of at most 2³² − 1 units is $4,294.967295), rounded up per request;
//! Envoy drops a descriptor whose `hits_addend` is above [`MAX_HITS`], so a charge is clamped to it.

use super::ledger::Outcome;
use super::money::{PICO_PER_USD, Pico};

/// Filter state `wasm.tollgate_charge_tokens`: the request's counted tokens.
pub const TOKENS_PROPERTY: &str = "tollgate_charge_tokens";
/// Filter state `wasm.tollgate_charge_cost`: the request's cost in [`GlobalCharges::cost_unit`]s.
pub const COST_PROPERTY: &str = "tollgate_charge_cost";

/// The largest `hits_addend` Envoy sends (`MAX_HITS_ADDEND`,
/// source/extensions/filters/common/ratelimit_config/ratelimit_config.cc): a larger value drops
/// the descriptor, so the charge would be lost.
pub const MAX_HITS: u64 = 1_000_000_000;

/// Default money unit: one micro-dollar.
pub const DEFAULT_COST_UNIT: Pico = PICO_PER_USD / 1_000_000;

/// Global charging is on (`rate_limits.global_charges`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalCharges {
    /// One unit of the cost counter, in pico-dollars (never zero).
    pub cost_unit: Pico,
}

impl Default for GlobalCharges {
    fn default() -> Self {
        GlobalCharges { cost_unit: DEFAULT_COST_UNIT }
    }
}

/// What one finished request adds to the global counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    pub tokens: u64,
    pub cost: u64,
}

impl GlobalCharges {
    /// A unit of `unit` pico-dollars; `None` for zero.
    pub fn with_unit(unit: Pico) -> Option<Self> {
        (unit > 0).then_some(GlobalCharges { cost_unit: unit })
    }

    /// The request's charges: the tokens the provider reported (input, cached input and
    /// output, as the local token limits count them) and their cost in units, rounded up.
    /// Nothing is charged for what was not reported or not priced.
    pub fn hits(&self, outcome: &Outcome) -> Hits {
        let tokens = outcome.usage.map_or(0, |u| u.prompt_tokens().saturating_add(u.output_tokens));
        Hits { tokens: tokens.min(MAX_HITS), cost: outcome.cost.map_or(0, |c| self.units(c)) }
    }

    /// `cost` in units, rounded up (a request is never charged less than it cost), at most
    /// [`MAX_HITS`].
    pub fn units(&self, cost: Pico) -> u64 {
        let units = cost.div_ceil(self.cost_unit.max(1));
        u64::try_from(units).unwrap_or(u64::MAX).min(MAX_HITS)
    }
}

impl Hits {
    /// The filter state to write, as the decimal text Envoy's `hits_addend` format parses.
    pub fn properties(&self) -> [(&'static str, Vec<u8>); 2] {
        [(TOKENS_PROPERTY, self.tokens.to_string().into_bytes()), (COST_PROPERTY, self.cost.to_string().into_bytes())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;

    fn outcome(usage: Option<Usage>, cost: Option<Pico>) -> Outcome {
        Outcome { usage, cost, failed: false }
    }

    #[test]
    fn charges_reported_tokens_and_cost_rounded_up_to_the_unit() {
        let micro = GlobalCharges::default();
        let usage = Usage { input_tokens: 10, cache_read_tokens: 4, output_tokens: 7, ..Usage::default() };
        // 2.5 micro-dollars is charged as 3: the counter never runs behind the spend.
        let hits = micro.hits(&outcome(Some(usage), Some(2_500_000)));
        assert_eq!(hits, Hits { tokens: usage.prompt_tokens() + 7, cost: 3 });
        assert_eq!(micro.units(3_000_000), 3, "exact amounts are not rounded");
        assert_eq!(micro.units(1), 1, "any cost at all is at least one unit");
        assert_eq!(micro.units(0), 0);
        let cents = GlobalCharges::with_unit(PICO_PER_USD / 100).unwrap();
        assert_eq!(cents.units(PICO_PER_USD), 100);
        assert_eq!(GlobalCharges::with_unit(0), None);
    }

    #[test]
    fn charges_nothing_unreported_or_unpriced() {
        let micro = GlobalCharges::default();
        assert_eq!(micro.hits(&outcome(None, None)), Hits::default());
        let usage = Usage { input_tokens: 5, output_tokens: 5, ..Usage::default() };
        assert_eq!(micro.hits(&outcome(Some(usage), None)), Hits { tokens: 10, cost: 0 });
    }

    #[test]
    fn clamps_to_what_envoy_sends() {
        let micro = GlobalCharges::default();
        // $5,000 in one request: above Envoy's largest hits_addend ($1,000 in micro-dollars).
        assert_eq!(micro.units(5_000 * PICO_PER_USD), MAX_HITS);
        assert_eq!(micro.units(Pico::MAX), MAX_HITS);
        let usage = Usage { input_tokens: u64::MAX, output_tokens: 1, ..Usage::default() };
        assert_eq!(micro.hits(&outcome(Some(usage), None)).tokens, MAX_HITS);
    }

    #[test]
    fn writes_decimal_text_for_envoys_format() {
        let props = Hits { tokens: 42, cost: 7 }.properties();
        assert_eq!(props, [(TOKENS_PROPERTY, b"42".to_vec()), (COST_PROPERTY, b"7".to_vec())]);
    }
}
