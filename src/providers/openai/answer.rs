//! A Chat Completions answer read into the gateway's representation, for a client that speaks
//! another API: the whole `chat.completion`, and the chunks of a stream as `StreamWriter`
//! events (https://platform.openai.com/docs/api-reference/chat/object,
//! https://platform.openai.com/docs/api-reference/chat-streaming/streaming).

use super::super::completion;
use super::super::streams::malformed_event;
use super::super::{ResponseContext, Translated};
use crate::client::StreamWriter;
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::error::ApiError;
use crate::json::Str;
use crate::openai::response::WireUsage;
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::Deserialize;

#[derive(Deserialize)]
struct CompletionIn<'a> {
    #[serde(borrow, default)]
    id: Str<'a>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    message: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    delta: Option<MessageIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

/// A message or a chunk's delta. Reasoning text comes as `reasoning_content` (DeepSeek, vLLM) or
/// `reasoning` (Ollama, OpenRouter, Groq).
#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(borrow, default)]
    content: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Str<'a>>,
    #[serde(borrow, default)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow, default)]
    tool_calls: Vec<CallIn<'a>>,
}

impl MessageIn<'_> {
    fn reasoning(&self) -> Option<&str> {
        self.reasoning_content.as_deref().or(self.reasoning.as_deref())
    }
}

#[derive(Deserialize)]
struct CallIn<'a> {
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    function: Option<FunctionIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

/// OpenAI `finish_reason` → why the model stopped.
fn finish(reason: &str) -> Finish {
    match reason {
        "length" => Finish::MaxTokens,
        "tool_calls" | "function_call" => Finish::ToolUse,
        "content_filter" => Finish::ContentFilter,
        _ => Finish::EndTurn,
    }
}

pub(super) fn translate_completion(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: CompletionIn = serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("a chat completion", &e, body))?;
    let choice = r.choices.first();
    let message = choice.and_then(|c| c.message.as_ref());
    let mut answer = Answer::default();
    if let Some(m) = message {
        answer.text.push_str(m.content.as_deref().unwrap_or_default());
        answer.reasoning.push_str(m.reasoning().unwrap_or_default());
        answer.refusal = m.refusal.as_deref().map(str::to_owned);
        for call in &m.tool_calls {
            let function = call.function.as_ref();
            let name = function.and_then(|f| f.name.as_deref()).unwrap_or_default();
            let arguments = function.and_then(|f| f.arguments.as_deref()).filter(|a| !a.trim().is_empty()).unwrap_or("{}");
            answer.add_tool_call(call.id.as_deref().unwrap_or_default(), name, arguments);
        }
    }
    let model = r.model.as_deref().unwrap_or(&ctx.model);
    let finish = choice.and_then(|c| c.finish_reason.as_deref()).map(finish);
    let usage = r.usage.as_ref().map(Usage::from);
    completion::translated(ctx, Completion { id: &r.id, created: ctx.created, model, answer, finish, usage })
}

/// Chunks become the client's events as they arrive; `[DONE]` ends the answer.
#[derive(Debug)]
pub struct ChunkTranslation {
    pub(super) chunks: StreamWriter,
    started: bool,
    finish: Option<Finish>,
}

impl ChunkTranslation {
    pub(super) fn new(ctx: &ResponseContext) -> Self {
        ChunkTranslation { chunks: ctx.stream_writer(String::new(), ctx.model.clone()), started: false, finish: None }
    }

    /// Translates one chunk; `usage` takes the usage it reports.
    pub(super) fn on_event(&mut self, event: &Event, usage: &mut Option<Usage>, out: &mut Vec<u8>) {
        if !event.has_data || self.chunks.failed() {
            return;
        }
        if &*event.data == b"[DONE]" {
            self.open(out);
            self.chunks.finish(out, self.finish);
            self.chunks.done(out, *usage);
            return;
        }
        let chunk: CompletionIn = match serde_json::from_slice(&event.data) {
            Ok(c) => c,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        if let Some(u) = &chunk.usage {
            *usage = Some(Usage::from(u));
        }
        if !self.started {
            self.chunks.set_id(chunk.id.0.clone().into_owned());
            if let Some(model) = &chunk.model {
                self.chunks.set_model(model.0.clone().into_owned());
            }
        }
        let Some(choice) = chunk.choices.first() else { return };
        self.open(out);
        if let Some(delta) = &choice.delta {
            self.chunks.reasoning(out, delta.reasoning());
            self.chunks.text(out, delta.content.as_deref());
            self.chunks.text(out, delta.refusal.as_deref());
            for (n, call) in delta.tool_calls.iter().enumerate() {
                let index = call.index.unwrap_or(u32::try_from(n).unwrap_or(u32::MAX));
                let function = call.function.as_ref();
                let arguments = function.and_then(|f| f.arguments.as_deref());
                match &call.id {
                    Some(id) => {
                        let name = function.and_then(|f| f.name.as_deref());
                        self.chunks.tool_call(out, index, Some(id), name, arguments.unwrap_or_default());
                    }
                    None => self.chunks.tool_arguments(out, index, arguments),
                }
            }
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish = Some(finish(reason));
        }
    }

    fn open(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunks.opening(out);
        }
    }
}
