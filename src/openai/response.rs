//! Client-facing response shapes: `chat.completion`, `chat.completion.chunk`, usage, model list.
//! Field names follow https://platform.openai.com/docs/api-reference/chat/object and
//! https://platform.openai.com/docs/api-reference/chat-streaming/streaming.

use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [Choice<'a>; 1],
    pub usage: WireUsage,
}

#[derive(Serialize)]
pub struct Choice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
pub struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut<'a>>,
    pub refusal: Option<&'a str>,
    /// Model reasoning text where the provider returns it (the de-facto `reasoning_content` field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
pub struct ToolCallOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub struct FunctionOut<'a> {
    pub name: &'a str,
    pub arguments: Cow<'a, str>,
}

impl<'a> ChatCompletion<'a> {
    pub fn new(
        id: &'a str,
        created: u64,
        model: &'a str,
        message: AssistantMessage<'a>,
        finish_reason: Option<&'a str>,
        usage: &Usage,
    ) -> Self {
        ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [Choice { index: 0, message, logprobs: None, finish_reason }],
            usage: WireUsage::from(usage),
        }
    }
}

#[derive(Serialize)]
pub struct ChatCompletionChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

#[derive(Serialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[DeltaToolCall<'a>; 1]>,
}

#[derive(Serialize)]
pub struct DeltaToolCall<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: DeltaFunction<'a>,
}

#[derive(Serialize)]
pub struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// The identity every chunk of one stream repeats.
#[derive(Debug, Clone, Default)]
pub struct ChunkHeader {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ChunkHeader {
    /// Writes one `data: {chunk}\n\n` event.
    pub fn write(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason }],
            usage: None,
        };
        write_event(out, &chunk);
    }

    /// The final usage chunk of `stream_options.include_usage`: empty `choices`.
    pub fn write_usage(&self, out: &mut Vec<u8>, usage: &Usage) {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(WireUsage::from(usage)),
        };
        write_event(out, &chunk);
    }
}

fn write_event<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(b"data: ");
    // Serialising these borrowed structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.extend_from_slice(b"\n\n");
}

pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// OpenAI's `usage` object. `prompt_tokens` includes cached and cache-write tokens.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PromptDetails {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub cached_tokens: u64,
    /// Not an OpenAI field: tokens written to a provider's prompt cache (Anthropic reports them).
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "crate::json::null_as_zero")]
    pub cache_write_tokens: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct CompletionDetails {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub reasoning_tokens: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[deny(clippy::arithmetic_side_effects)]
impl From<&Usage> for WireUsage {
    fn from(u: &Usage) -> Self {
        let prompt = u.prompt_tokens();
        WireUsage {
            prompt_tokens: prompt,
            completion_tokens: u.output_tokens,
            total_tokens: prompt.saturating_add(u.output_tokens),
            prompt_tokens_details: Some(PromptDetails { cached_tokens: u.cache_read_tokens, cache_write_tokens: u.cache_write_tokens }),
            completion_tokens_details: Some(CompletionDetails { reasoning_tokens: u.reasoning_tokens }),
        }
    }
}

#[deny(clippy::arithmetic_side_effects)]
impl From<&WireUsage> for Usage {
    fn from(w: &WireUsage) -> Self {
        let details = w.prompt_tokens_details.clone().unwrap_or_default();
        let cached = details.cached_tokens.min(w.prompt_tokens);
        let written = details.cache_write_tokens.min(w.prompt_tokens.saturating_sub(cached));
        Usage {
            input_tokens: w.prompt_tokens.saturating_sub(cached).saturating_sub(written),
            cache_read_tokens: cached,
            cache_write_tokens: written,
            output_tokens: w.completion_tokens,
            reasoning_tokens: w.completion_tokens_details.as_ref().map_or(0, |d| d.reasoning_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_round_trips_through_the_wire_shape() {
        let u = Usage { input_tokens: 10, cache_read_tokens: 5, cache_write_tokens: 2, output_tokens: 7, reasoning_tokens: 3 };
        let w = WireUsage::from(&u);
        assert_eq!(w.prompt_tokens, 17);
        assert_eq!(w.total_tokens, 24);
        assert_eq!(Usage::from(&w), u);
    }

    #[test]
    fn wire_usage_tolerates_missing_and_null_details() {
        let w: WireUsage = serde_json::from_str(
            r#"{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6,"prompt_tokens_details":{"cached_tokens":null}}"#,
        )
        .unwrap();
        let u = Usage::from(&w);
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (4, 0, 2));
        // inconsistent counts from an upstream never underflow
        let w: WireUsage = serde_json::from_str(r#"{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":9}}"#).unwrap();
        assert_eq!(Usage::from(&w).input_tokens, 0);
    }

    #[test]
    fn chunk_events_have_openai_shape() {
        let h = ChunkHeader { id: "msg_1".into(), created: 5, model: "m".into() };
        let mut out = Vec::new();
        h.write(&mut out, Delta { role: Some("assistant"), content: Some(""), ..Default::default() }, None);
        let text = String::from_utf8(out).unwrap();
        let json: serde_json::Value = serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":"msg_1","object":"chat.completion.chunk","created":5,"model":"m",
            "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})
        );
    }
}
