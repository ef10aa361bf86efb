//! What the stream translators of Anthropic, Bedrock, Gemini and Cohere share besides the
//! client's `StreamWriter`: reporting an unreadable event, and numbering tool calls.

use crate::error::ApiError;

/// An upstream event that does not parse: reported to the client, never forwarded.
pub(super) fn malformed_event(err: &serde_json::Error, data: &[u8]) -> ApiError {
    ApiError::bad_gateway(format!("The provider sent a malformed stream event ({err}): {}", super::excerpt(data)))
}

/// OpenAI numbers tool calls in the order they start; upstream blocks have indices of their own.
#[derive(Debug, Default)]
pub(super) struct ToolCallIndex {
    /// The upstream index of each call, in OpenAI's order.
    blocks: Vec<u32>,
}

impl ToolCallIndex {
    /// The OpenAI index of the call that upstream block `block` starts.
    pub fn start(&mut self, block: u32) -> u32 {
        let index = u32::try_from(self.blocks.len()).unwrap_or(u32::MAX);
        self.blocks.push(block);
        index
    }

    /// The OpenAI index of the call that upstream block `block` continues, if it is one.
    pub fn of(&self, block: u32) -> Option<u32> {
        self.blocks.iter().position(|&b| b == block).and_then(|p| u32::try_from(p).ok())
    }
}
