//! A GenerateContent answer as an OpenAI chat completion.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse<'a> {
    #[serde(borrow, default)]
    pub(super) candidates: Vec<Candidate<'a>>,
    #[serde(borrow, default)]
    pub(super) prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(borrow, default)]
    pub(super) model_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) response_id: Option<Str<'a>>,
    /// A stream that fails midway sends an error object as its last event.
    #[serde(borrow, default)]
    pub(super) error: Option<GoogleError<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<CandidateContent<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CandidateContent<'a> {
    #[serde(borrow, default)]
    pub(super) parts: Vec<PartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PartIn<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    #[serde(default)]
    pub(super) thought: Option<bool>,
    #[serde(borrow, default)]
    pub(super) function_call: Option<FunctionCallIn<'a>>,
    #[serde(borrow, default)]
    pub(super) thought_signature: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct FunctionCallIn<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Str<'a>>,
    #[serde(borrow)]
    pub(super) name: Str<'a>,
    #[serde(borrow, default)]
    pub(super) args: Option<&'a RawValue>,
}

impl FunctionCallIn<'_> {
    pub(super) fn arguments(&self) -> &str {
        self.args.map_or("{}", RawValue::get)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback<'a> {
    #[serde(borrow, default)]
    pub(super) block_reason: Option<Str<'a>>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) prompt_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) candidates_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) cached_content_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) thoughts_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) tool_use_prompt_token_count: u64,
}

/// Gemini counts cached tokens inside `promptTokenCount` and thinking tokens apart from
/// `candidatesTokenCount` (both are billed as output).
#[deny(clippy::arithmetic_side_effects)]
impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count.saturating_add(u.tool_use_prompt_token_count).saturating_sub(u.cached_content_token_count),
            cache_read_tokens: u.cached_content_token_count,
            cache_write_tokens: 0,
            output_tokens: u.candidates_token_count.saturating_add(u.thoughts_token_count),
            reasoning_tokens: u.thoughts_token_count,
        }
    }
}

/// Gemini `finishReason` → why the model stopped. Gemini says STOP after function calls too.
pub(super) fn finish_reason(reason: &str, has_tool_calls: bool) -> Finish {
    match reason {
        "STOP" if has_tool_calls => Finish::ToolUse,
        "MAX_TOKENS" => Finish::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => Finish::ContentFilter,
        _ => Finish::EndTurn,
    }
}

/// A prompt Gemini blocks gets HTTP 200 with no candidates and `promptFeedback.blockReason`,
/// and its prompt tokens are counted: it is answered as an empty `content_filter` completion,
/// the same whether streamed or not, rather than as an error.
pub(super) fn block_reason<'r>(r: &'r GenerateContentResponse) -> Option<&'r str> {
    if !r.candidates.is_empty() {
        return None;
    }
    r.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref())
}

/// Gemini may leave function calls without ids; the n-th call of an answer is `call_<n>`,
/// streamed or not. The part's thought signature travels in the id (see `thought_signature`).
pub(super) fn call_id<'a>(part: &'a PartIn, call: &'a FunctionCallIn, n: usize) -> Cow<'a, str> {
    let id = match call.id.as_deref() {
        Some(id) if !id.is_empty() => Cow::Borrowed(id),
        _ => Cow::Owned(format!("call_{n}")),
    };
    thought_signature::encode(id, part.thought_signature.as_deref(), || format!("call_{n}"))
}

pub(super) fn completion_id(r: &GenerateContentResponse) -> String {
    r.response_id.as_deref().map_or_else(|| "chatcmpl-gemini".to_owned(), str::to_owned)
}

pub(super) fn parse_response(body: &[u8]) -> Result<GenerateContentResponse<'_>, serde_json::Error> {
    serde_json::from_slice(body)
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r = parse_response(body).map_err(|e| super::super::unexpected_answer("a Gemini GenerateContentResponse", &e, body))?;
    let blocked = block_reason(&r);
    let Some(candidate) = r.candidates.first() else {
        if blocked.is_none() {
            return Err(ApiError::bad_gateway(format!("The provider returned no candidates: {}", super::super::excerpt(body))));
        }
        return blocked_completion(ctx, &r);
    };
    let mut calls: Vec<(Cow<str>, &FunctionCallIn)> = Vec::new();
    let mut answer = Answer::default();
    for part in candidate.content.as_ref().map(|c| c.parts.as_slice()).unwrap_or_default() {
        if let Some(call) = &part.function_call {
            calls.push((call_id(part, call, calls.len()), call));
        } else if let Some(t) = &part.text {
            if part.thought == Some(true) { answer.reasoning.push_str(t) } else { answer.text.push_str(t) }
        }
    }
    for (id, call) in &calls {
        answer.add_tool_call(id, &call.name, call.arguments());
    }
    let finish = finish_reason(candidate.finish_reason.as_deref().unwrap_or("STOP"), !answer.tool_calls.is_empty());
    let model = r.model_version.as_deref().unwrap_or(&ctx.model);
    let id = completion_id(&r);
    let usage = r.usage_metadata.map(Usage::from);
    completion::translated(ctx, Completion { id: &id, created: ctx.created, model, answer, finish: Some(finish), usage })
}

pub(super) fn blocked_completion(ctx: &ResponseContext, r: &GenerateContentResponse) -> Result<Translated, ApiError> {
    let refusal = format!("The provider blocked the prompt (blockReason {}).", block_reason(r).unwrap_or_default());
    let answer = Answer { refusal: Some(refusal), ..Default::default() };
    let model = r.model_version.as_deref().unwrap_or(&ctx.model);
    let id = completion_id(r);
    let usage = r.usage_metadata.map(Usage::from);
    completion::translated(ctx, Completion { id: &id, created: ctx.created, model, answer, finish: Some(Finish::ContentFilter), usage })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountTokensResponse {
    #[serde(default)]
    total_tokens: Option<u64>,
    /// Claude's count, from Vertex AI's Anthropic publisher: already Anthropic's answer.
    #[serde(default, rename = "input_tokens")]
    input_tokens: Option<u64>,
}

/// Gemini's `{"totalTokens": N}` as Anthropic's `{"input_tokens": N}`, the answer of the only
/// client API that counts; Claude's count passes as it came.
pub fn translate_count_tokens(body: &[u8]) -> Result<Translated, ApiError> {
    let r: CountTokensResponse =
        serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("a Gemini token count", &e, body))?;
    match (r.total_tokens, r.input_tokens) {
        (Some(total), _) => Ok(Translated { body: Some(format!("{{\"input_tokens\":{total}}}").into_bytes()), usage: None }),
        (None, Some(_)) => Ok(Translated::default()),
        (None, None) => Err(ApiError::bad_gateway(format!(
            "The provider returned a token count without `totalTokens` or `input_tokens`: {}",
            super::super::excerpt(body)
        ))),
    }
}
