//! What a response consumed, as every layer counts it.

/// Token counts of one response. `input_tokens` excludes cache reads and writes, so each token
/// is counted once and can be priced at its own rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    /// Part of `output_tokens` spent on reasoning, where the provider reports it.
    pub reasoning_tokens: u64,
}

// Token counts come from providers: sums saturate rather than wrap.
#[deny(clippy::arithmetic_side_effects)]
impl Usage {
    /// What OpenAI calls `prompt_tokens`: every input token, cached or not.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.cache_read_tokens).saturating_add(self.cache_write_tokens)
    }
}
