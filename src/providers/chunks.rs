//! The OpenAI chunks a provider's stream becomes: what the stream translators of Anthropic,
//! Bedrock, Gemini and Cohere share.

use super::ResponseContext;
use crate::openai::ApiError;
use crate::openai::response::{ChunkHeader, DONE_EVENT, Delta, DeltaFunction, DeltaToolCall};
use crate::usage::Usage;

/// The client's side of a translated stream.
#[derive(Debug)]
pub struct ChunkWriter {
    pub header: ChunkHeader,
    client_wants_usage: bool,
    failed: bool,
}

impl ChunkWriter {
    pub fn new(ctx: &ResponseContext, header: ChunkHeader) -> Self {
        ChunkWriter { header, client_wants_usage: ctx.client_wants_usage, failed: false }
    }

    /// The role, with the empty content OpenAI streams open with.
    pub fn opening(&self, out: &mut Vec<u8>) {
        self.header.write(out, Delta { role: Some("assistant"), content: Some(""), ..Default::default() }, None);
    }

    /// Empty text makes no chunk.
    pub fn content(&self, out: &mut Vec<u8>, text: Option<&str>) {
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            self.header.write(out, Delta { content: Some(text), ..Default::default() }, None);
        }
    }

    /// Empty text makes no chunk.
    pub fn reasoning(&self, out: &mut Vec<u8>, text: Option<&str>) {
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            self.header.write(out, Delta { reasoning_content: Some(text), ..Default::default() }, None);
        }
    }

    /// The chunk that opens tool call `index`; `arguments` is empty unless the provider sends
    /// calls whole.
    pub fn tool_call(&self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let call = DeltaToolCall { index, id, kind: Some("function"), function: DeltaFunction { name, arguments } };
        self.header.write(out, Delta { tool_calls: Some([call]), ..Default::default() }, None);
    }

    /// More arguments of tool call `index`; empty arguments make no chunk.
    pub fn tool_arguments(&self, out: &mut Vec<u8>, index: u32, arguments: Option<&str>) {
        if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
            let call = DeltaToolCall { index, id: None, kind: None, function: DeltaFunction { name: None, arguments } };
            self.header.write(out, Delta { tool_calls: Some([call]), ..Default::default() }, None);
        }
    }

    pub fn finish_reason(&self, out: &mut Vec<u8>, reason: Option<&str>) {
        self.header.write(out, Delta::default(), reason);
    }

    /// The proper end of the stream: the usage chunk when the client asked for it, then `[DONE]`.
    pub fn done(&self, out: &mut Vec<u8>, usage: Option<Usage>) {
        if self.client_wants_usage {
            self.header.write_usage(out, &usage.unwrap_or_default());
        }
        out.extend_from_slice(DONE_EVENT);
    }

    /// Reports `e` to the client; the stream carries nothing after it.
    pub fn fail(&mut self, out: &mut Vec<u8>, e: &ApiError) {
        self.failed = true;
        out.extend_from_slice(&e.to_sse_event());
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The upstream ended: a stream cut before its end (`complete` false) gets the truncation
    /// error, unless it already failed.
    pub fn upstream_ended(&self, out: &mut Vec<u8>, complete: bool) {
        if !complete && !self.failed {
            out.extend_from_slice(&super::openai::truncated_error().to_sse_event());
        }
    }
}

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
