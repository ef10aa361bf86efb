//! Per-token prices and usage → cost, in integer pico-dollars.
//!
//! Prices are configured in USD per million tokens. A shipped table (`default_prices.json`)
//! covers common models of every supported provider; configured prices override it.

use super::money::{Pico, parse_usd};
use crate::patterns;
use crate::schema::PriceSpec;
use crate::usage::Usage;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Pico-dollars per token for each kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: Pico,
    pub output: Pico,
    pub cache_read: Pico,
    pub cache_write: Pico,
}

#[deny(clippy::arithmetic_side_effects)]
impl Price {
    /// The dearest rate an input token can be billed at: a cache write costs more than plain
    /// input at Anthropic (1.25×), so a prompt that gets cached must still fit a reservation.
    pub fn input_ceiling(&self) -> Pico {
        self.input.max(self.cache_write).max(self.cache_read)
    }

    /// Saturates: no usage a provider reports can wrap the cost around to a small amount.
    pub fn cost(&self, u: &Usage) -> Pico {
        [
            (u.input_tokens, self.input),
            (u.cache_read_tokens, self.cache_read),
            (u.cache_write_tokens, self.cache_write),
            (u.output_tokens, self.output),
        ]
        .into_iter()
        .fold(0, |sum: Pico, (tokens, price)| sum.saturating_add(Pico::from(tokens).saturating_mul(price)))
    }
}

const PER_MILLION: Pico = 1_000_000;

impl PriceSpec {
    /// Cached tokens without a configured price are charged as plain input: never cheaper than
    /// the provider could bill, so budgets stay safe.
    pub fn compile(&self) -> Result<Price, (&'static str, String)> {
        let input = parse_usd(&self.input, PER_MILLION).map_err(|e| ("input", e))?;
        let output = parse_usd(&self.output, PER_MILLION).map_err(|e| ("output", e))?;
        let optional = |v: &Option<String>, field| v.as_deref().map_or(Ok(input), |t| parse_usd(t, PER_MILLION).map_err(|e| (field, e)));
        Ok(Price {
            input,
            output,
            cache_read: optional(&self.cache_read, "cache_read")?,
            cache_write: optional(&self.cache_write, "cache_write")?,
        })
    }
}

#[derive(Deserialize)]
struct DefaultFile {
    models: BTreeMap<String, PriceSpec>,
}

/// Model name (or `*` pattern) → price, most specific pattern first.
#[derive(Debug, Default, Clone)]
pub struct PriceTable {
    entries: Vec<(String, Price)>,
}

impl PriceTable {
    /// The shipped defaults overlaid with configured prices (configured wins).
    pub fn build(configured: &BTreeMap<String, PriceSpec>) -> Result<PriceTable, (String, String)> {
        let mut entries: Vec<(String, Price)> = Vec::new();
        for (model, spec) in configured {
            let price = spec.compile().map_err(|(field, e)| (format!("prices.{model}.{field}"), e))?;
            entries.push((model.clone(), price));
        }
        for (model, price) in shipped() {
            if !configured.contains_key(&model) {
                entries.push((model, price));
            }
        }
        // Exact names before patterns, longer patterns before shorter ones.
        entries.sort_by_key(|(m, _)| (m.contains('*'), std::cmp::Reverse(m.len())));
        Ok(PriceTable { entries })
    }

    pub fn lookup(&self, model: &str) -> Option<Price> {
        self.entries.iter().find(|(pattern, _)| patterns::matches(pattern, model)).map(|(_, p)| *p)
    }
}

/// The shipped table, parsed once per configuration load.
fn shipped() -> Vec<(String, Price)> {
    let Ok(file) = serde_json::from_str::<DefaultFile>(include_str!("default_prices.json")) else {
        return Vec::new();
    };
    file.models.into_iter().filter_map(|(m, spec)| spec.compile().ok().map(|p| (m, p))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> PriceSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cost_uses_each_token_kind_at_its_own_price() {
        let p = spec(r#"{"input":"3","output":"15","cache_read":"0.30","cache_write":"3.75"}"#).compile().unwrap();
        let u =
            Usage { input_tokens: 1000, cache_read_tokens: 10_000, cache_write_tokens: 2000, output_tokens: 500, reasoning_tokens: 100 };
        // 1000*3 + 10000*0.3 + 2000*3.75 + 500*15 = 3000+3000+7500+7500 = 21000 µ$ → 0.021 USD
        assert_eq!(p.cost(&u), 21_000 * 1_000_000);
        assert_eq!(super::super::money::format_usd(p.cost(&u)), "0.021");
    }

    #[test]
    fn numbers_and_strings_parse_exactly_and_cache_defaults_to_input() {
        let p = spec(r#"{"input":0.15,"output":"0.6"}"#).compile().unwrap();
        assert_eq!(p.input, 150_000);
        assert_eq!(p.output, 600_000);
        assert_eq!((p.cache_read, p.cache_write), (p.input, p.input));
        let e = spec(r#"{"input":"-1","output":"1"}"#).compile().unwrap_err();
        assert_eq!(e.0, "input");
    }

    #[test]
    fn configured_prices_override_shipped_ones_and_patterns_match() {
        let mut configured = BTreeMap::new();
        configured.insert("gpt-4o".to_string(), spec(r#"{"input":"1","output":"2"}"#));
        configured.insert("my-*".to_string(), spec(r#"{"input":"5","output":"5"}"#));
        let t = PriceTable::build(&configured).unwrap();
        assert_eq!(t.lookup("gpt-4o").unwrap().input, 1_000_000);
        assert_eq!(t.lookup("my-model").unwrap().input, 5_000_000);
        assert!(t.lookup("unknown-model-xyz").is_none());
    }

    #[test]
    fn shipped_table_parses_completely_and_covers_every_provider() {
        let file: DefaultFile = serde_json::from_str(include_str!("default_prices.json")).unwrap();
        for (model, spec) in &file.models {
            spec.compile().unwrap_or_else(|e| panic!("{model}: {e:?}"));
        }
        let t = PriceTable::build(&BTreeMap::new()).unwrap();
        for model in [
            "gpt-4o-mini",
            "gpt-4o-2024-08-06",
            "claude-sonnet-4-5-20250929",
            "claude-opus-4-7",
            "gemini-2.5-flash",
            "command-r-plus-08-2024",
            "text-embedding-3-small",
        ] {
            assert!(t.lookup(model).is_some(), "{model} has no shipped price");
        }
        let sonnet = t.lookup("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!((sonnet.input, sonnet.cache_read, sonnet.cache_write, sonnet.output), (3_000_000, 300_000, 3_750_000, 15_000_000));
    }
}
