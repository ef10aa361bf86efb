//! A Converse answer as an OpenAI chat completion.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseResponse<'a> {
    #[serde(borrow)]
    pub(super) output: Output<'a>,
    #[serde(borrow)]
    pub(super) stop_reason: Str<'a>,
    #[serde(default)]
    pub(super) usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
pub(super) struct Output<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<OutputMessage<'a>>,
}

#[derive(Deserialize)]
pub(super) struct OutputMessage<'a> {
    #[serde(borrow, default)]
    pub(super) content: Vec<OutputBlock<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutputBlock<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) tool_use: Option<OutputToolUse<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning_content: Option<Reasoning<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutputToolUse<'a> {
    #[serde(borrow)]
    pub(super) tool_use_id: Str<'a>,
    #[serde(borrow)]
    pub(super) name: Str<'a>,
    #[serde(borrow)]
    pub(super) input: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Reasoning<'a> {
    #[serde(borrow, default)]
    pub(super) reasoning_text: Option<ReasoningText<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ReasoningText<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    /// Claude's signature over its thinking, which it needs back to read it.
    #[serde(borrow, default)]
    pub(super) signature: Option<Str<'a>>,
}

/// `TokenUsage`. `inputTokens` excludes the tokens read from or written to the prompt cache
/// (`totalTokens` = input + output + cache read + cache write; see the prompt caching guide), which
/// is the gateway's own convention, so the counts map one to one.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenUsage {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) output_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) cache_read_input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) cache_write_input_tokens: u64,
}

impl From<TokenUsage> for Usage {
    fn from(u: TokenUsage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: 0,
        }
    }
}

/// Converse `stopReason` → why the model stopped.
pub(super) fn finish_reason(stop_reason: &str) -> Finish {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::MaxTokens,
        "tool_use" => Finish::ToolUse,
        "guardrail_intervened" | "content_filtered" => Finish::ContentFilter,
        "stop_sequence" => Finish::StopSequence,
        _ => Finish::EndTurn,
    }
}

/// Converse answers carry no id; OpenAI clients expect one per completion.
pub(super) fn completion_id(created: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("chatcmpl-bedrock-{created:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: ConverseResponse = serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("a Converse answer", &e, body))?;
    let mut answer = Answer::default();
    let mut answered_by_tool = false;
    for block in r.output.message.iter().flat_map(|m| &m.content) {
        if let Some(t) = &block.text {
            answer.text.push_str(t);
        }
        let reasoning = block.reasoning_content.as_ref().and_then(|r| r.reasoning_text.as_ref());
        if let Some(signature) = reasoning.and_then(|r| r.signature.as_deref()) {
            answer.reasoning_signature = Some(signature.to_owned());
        }
        if let Some(t) = reasoning.and_then(|r| r.text.as_deref()) {
            answer.reasoning.push_str(t);
        }
        if let Some(call) = &block.tool_use {
            if ctx.answer_tool.as_deref() == Some(&*call.name) {
                answered_by_tool = true;
                answer.text.push_str(call.input.get());
            } else {
                answer.add_tool_call(&call.tool_use_id, &call.name, call.input.get());
            }
        }
    }
    let finish = Some(finish_reason(&r.stop_reason).answered_by_tool(answered_by_tool));
    let id = completion_id(ctx.created);
    completion::translated(
        ctx,
        Completion { id: &id, created: ctx.created, model: &ctx.model, answer, finish, usage: r.usage.map(Usage::from) },
    )
}
