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
    pub content: Option<crate::conversation::text::Text<'a>>,
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

/// The identity every chunk of one stream repeats, rendered once: a chunk is this prefix, its
/// delta and the finish reason.
#[derive(Debug, Clone, Default)]
pub struct ChunkHeader {
    id: String,
    created: u64,
    model: String,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":`
    prefix: Vec<u8>,
}

impl ChunkHeader {
    pub fn new(id: String, created: u64, model: String) -> Self {
        let mut header = ChunkHeader { id, created, model, prefix: Vec::new() };
        header.render();
        header
    }

    pub fn set_id(&mut self, id: String) {
        self.id = id;
        self.render();
    }

    pub fn set_model(&mut self, model: String) {
        self.model = model;
        self.render();
    }

    fn render(&mut self) {
        let p = &mut self.prefix;
        p.clear();
        p.extend_from_slice(b"data: {\"id\":");
        crate::conversation::text::Text::Plain(&self.id).write_json(p);
        p.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        p.extend_from_slice(self.created.to_string().as_bytes());
        p.extend_from_slice(b",\"model\":");
        crate::conversation::text::Text::Plain(&self.model).write_json(p);
        p.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
    }

    /// Writes one `data: {chunk}\n\n` event.
    pub fn write(&self, out: &mut Vec<u8>, delta: Delta<'_>, finish_reason: Option<&str>) {
        out.extend_from_slice(&self.prefix);
        // Serialising these borrowed structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &delta);
        Self::end(out, finish_reason);
    }

    /// Writes the event of a delta of one text member (`content`, `reasoning_content`).
    pub fn write_text(&self, out: &mut Vec<u8>, member: &str, text: crate::conversation::text::Text) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(member.as_bytes());
        out.extend_from_slice(b"\":");
        text.write_json(out);
        out.push(b'}');
        Self::end(out, None);
    }

    fn end(out: &mut Vec<u8>, finish_reason: Option<&str>) {
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish_reason {
            Some(reason) => crate::conversation::text::Text::Plain(reason).write_json(out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}]}\n\n");
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
        out.extend_from_slice(b"data: ");
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }
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
        let mut h = ChunkHeader::new("msg_0".into(), 5, "m".into());
        h.set_id("msg_\"1\"".into());
        let mut out = Vec::new();
        h.write(&mut out, Delta { role: Some("assistant"), content: Some(""), ..Default::default() }, None);
        let json = |out: &[u8]| -> serde_json::Value {
            let text = std::str::from_utf8(out).unwrap();
            serde_json::from_str(text.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap()).unwrap()
        };
        assert_eq!(
            json(&out),
            serde_json::json!({"id":"msg_\"1\"","object":"chat.completion.chunk","created":5,"model":"m",
            "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})
        );
        let mut out = Vec::new();
        h.write(&mut out, Delta::default(), Some("stop"));
        assert_eq!(json(&out)["choices"][0], serde_json::json!({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}));
        let escaped: crate::conversation::text::JsonStr = serde_json::from_str(r#""a \"b\"\n\u00e9""#).unwrap();
        let mut out = Vec::new();
        h.write_text(&mut out, "content", escaped.into());
        assert_eq!(json(&out)["choices"][0]["delta"], serde_json::json!({"content":"a \"b\"\n\u{e9}"}));
    }
}
