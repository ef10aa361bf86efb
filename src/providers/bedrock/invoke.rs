//! Claude for Messages clients: InvokeModel and InvokeModelWithResponseStream with Anthropic's own
//! body, instead of Converse. The request is the client's (see `anthropic::hosted`); the answer is
//! Anthropic's message, and the stream carries Anthropic's events, each the base64 `bytes` of one
//! event-stream `chunk`, re-framed here as the SSE events Anthropic sends.
//! References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html
//! (`chunk` events holding a `PayloadPart` whose `bytes` are base64; the exceptions of the
//! stream), https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html
//! and https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html
//! (cross-Region inference profile ids: a geography prefix before the model id).

use super::stream::ExceptionBody;
use super::*;
use crate::client::{self, Dialect};
use crate::providers::anthropic::{self, hosted};
use crate::providers::excerpt;

/// Whether the model is one of Anthropic's: a model id `anthropic.…`, a cross-Region inference
/// profile id `us.anthropic.…` (`eu.`, `apac.`, `global.`, …), or an ARN ending in either. An
/// application inference profile's ARN does not name its model: it goes through Converse.
pub fn is_anthropic(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.starts_with("anthropic.")
        || id.split_once('.').is_some_and(|(geography, rest)| {
            rest.starts_with("anthropic.") && !geography.is_empty() && geography.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
        })
}

/// A Messages client asking for Claude: the client's request goes to InvokeModel as it came.
pub fn invokes_claude(dialect: Dialect, model: &str) -> bool {
    dialect == Dialect::AnthropicMessages && is_anthropic(model)
}

pub(super) fn build_invoke(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    client: ClientBody,
    to: &BuildContext,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let built = hosted::build_hosted(provider, req, client, to.model, edits, hosted::BEDROCK)?;
    let action = if req.stream { "invoke-with-response-stream" } else { "invoke" };
    signed(provider, s, model_path(provider, to.model, action), built.body.unwrap_or_default(), to.now_ms)
}

/// The decoded events of a stream, held while one continues in the next chunk, are bounded:
/// beyond this the stream is not Anthropic's.
const MAX_HELD_EVENT_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
struct PayloadPart<'a> {
    #[serde(borrow)]
    bytes: Str<'a>,
}

/// What is read of each Anthropic event: its type, which names the SSE event, and the usage
/// Bedrock adds to the last one.
#[derive(Deserialize)]
struct ChunkEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(rename = "amazon-bedrock-invocationMetrics", default)]
    metrics: Option<InvocationMetrics>,
}

/// Bedrock's count of the invocation, in the last chunk; Anthropic's own usage events win.
#[derive(Deserialize, Debug, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct InvocationMetrics {
    #[serde(default)]
    input_token_count: u64,
    #[serde(default)]
    output_token_count: u64,
    #[serde(default)]
    cache_read_input_token_count: u64,
    #[serde(default)]
    cache_write_input_token_count: u64,
}

impl From<InvocationMetrics> for Usage {
    fn from(m: InvocationMetrics) -> Self {
        Usage {
            input_tokens: m.input_token_count,
            cache_read_tokens: m.cache_read_input_token_count,
            cache_write_tokens: m.cache_write_input_token_count,
            output_tokens: m.output_token_count,
            reasoning_tokens: 0,
        }
    }
}

/// InvokeModelWithResponseStream's chunks as Anthropic's SSE events, read by the Anthropic
/// rules (usage from `message_start` and `message_delta`, passed through or translated into the
/// client's stream as for Anthropic itself). Nothing is buffered but an event whose JSON a
/// chunk did not finish.
#[derive(Debug)]
pub struct ClaudeStream {
    anthropic: anthropic::StreamState,
    held: Vec<u8>,
    metrics: Option<InvocationMetrics>,
    failed: bool,
}

impl ClaudeStream {
    pub fn new(ctx: &ResponseContext) -> Self {
        ClaudeStream { anthropic: anthropic::StreamState::new(ctx), held: Vec::new(), metrics: None, failed: false }
    }

    fn fail(&mut self, out: &mut Vec<u8>, e: &ApiError) {
        self.failed = true;
        out.extend_from_slice(&client::error_event(Dialect::AnthropicMessages, e));
    }

    fn on_chunk(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ApiError> {
        let part: PayloadPart = serde_json::from_slice(payload).map_err(|e| malformed_event(&e, payload))?;
        let bytes = decode_base64(&part.bytes)
            .ok_or_else(|| ApiError::bad_gateway(format!("The provider sent a chunk whose bytes are not base64: {}", excerpt(payload))))?;
        self.held.extend_from_slice(&bytes);
        let json = std::mem::take(&mut self.held);
        let event = match serde_json::from_slice::<ChunkEvent>(&json) {
            Ok(event) => event,
            // The event goes on in the next chunk.
            Err(e) if e.is_eof() && json.len() <= MAX_HELD_EVENT_BYTES => {
                self.held = json;
                return Ok(());
            }
            Err(e) => return Err(malformed_event(&e, &json)),
        };
        if !event.kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') || event.kind.is_empty() {
            return Err(ApiError::bad_gateway(format!("The provider sent an event of unknown type: {}", excerpt(&json))));
        }
        self.metrics = event.metrics.or(self.metrics);
        let sse = sse_event(&event.kind, &json);
        let event = Event { name: event.kind.as_bytes(), data: Cow::Borrowed(&json), raw: &sse, has_data: true, complete: true };
        self.anthropic.translate_event(&event, out);
        Ok(())
    }
}

/// `event: {kind}` and the JSON as `data:` lines (a line each, should the JSON hold line breaks
/// between its tokens: SSE joins them back with `\n`).
fn sse_event(kind: &str, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + kind.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    for line in json.split(|b| *b == b'\n' || *b == b'\r') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

impl StreamTranslation for ClaudeStream {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        if self.failed || self.anthropic.ended() {
            return false;
        }
        if event.name == b"chunk" {
            if let Err(e) = self.on_chunk(&event.data, out) {
                self.fail(out, &e);
            }
        } else if event.name.ends_with(b"Exception") {
            let kind = String::from_utf8_lossy(event.name);
            let message = serde_json::from_slice::<ExceptionBody>(&event.data)
                .ok()
                .and_then(|b| b.message)
                .map_or_else(|| "The provider reported an error mid-stream.".to_owned(), |m| m.0.into_owned());
            self.fail(out, &map_error(None, &kind, message));
        }
        // The event-stream message is never what the client gets: it gets the SSE event.
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.anthropic.usage().or(self.metrics.map(Usage::from))
    }

    fn ended(&self) -> bool {
        self.anthropic.ended()
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.failed {
            self.anthropic.finish(out);
        }
    }
}

/// Standard base64 (RFC 4648 section 4), padding optional, as AWS writes blobs in JSON.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let data = text.trim_end_matches('=');
    if text.len() - data.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in data.bytes() {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or_default());
            acc &= (1 << bits) - 1;
        }
    }
    // Six bits left over: one character too many to be base64.
    (bits < 6).then_some(out)
}

#[cfg(test)]
#[path = "invoke_tests.rs"]
mod tests;
