//! A Messages answer as an OpenAI chat completion, and Anthropic errors as OpenAI errors.

use super::*;

#[derive(Deserialize)]
pub(super) struct MessagesResponse<'a> {
    #[serde(borrow)]
    pub(super) id: Str<'a>,
    #[serde(borrow)]
    pub(super) model: Str<'a>,
    #[serde(borrow)]
    pub(super) content: Vec<ContentBlock<'a>>,
    #[serde(borrow, default)]
    pub(super) stop_reason: Option<Str<'a>>,
    #[serde(default)]
    pub(super) usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
pub(super) struct ContentBlock<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(super) text: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub(super) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<JsonStr<'a>>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct AnthropicUsage {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) output_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    pub(super) cache_read_input_tokens: u64,
}

impl From<AnthropicUsage> for Usage {
    fn from(u: AnthropicUsage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_creation_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: 0,
        }
    }
}

/// Anthropic `stop_reason` → why the model stopped.
pub(super) fn finish_reason(stop_reason: &str) -> Finish {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => Finish::MaxTokens,
        "tool_use" => Finish::ToolUse,
        "refusal" => Finish::ContentFilter,
        "stop_sequence" => Finish::StopSequence,
        _ => Finish::EndTurn,
    }
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: MessagesResponse =
        serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("an Anthropic message", &e, body))?;
    let mut answer = Answer::default();
    let mut answered_by_tool = false;
    for block in &r.content {
        match &*block.kind {
            "text" => {
                if let Some(text) = block.text {
                    answer.text.push_json(text);
                }
            }
            "thinking" => answer.reasoning.push_str(&block.thinking.map(|t| t.decode()).unwrap_or_default()),
            "tool_use" => {
                let (Some(id), Some(name), Some(input)) = (&block.id, &block.name, block.input) else {
                    return Err(ApiError::bad_gateway("The provider returned a tool_use block without id, name or input."));
                };
                if ctx.answer_tool.as_deref() == Some(&**name) {
                    answered_by_tool = true;
                    answer.text.push_str(input.get());
                } else {
                    answer.add_tool_call(id, name, input.get());
                }
            }
            _ => {}
        }
    }
    let finish = r.stop_reason.as_deref().map(|reason| finish_reason(reason).answered_by_tool(answered_by_tool));
    completion::translated(
        ctx,
        Completion { id: &r.id, created: ctx.created, model: &r.model, answer, finish, usage: r.usage.map(Usage::from) },
    )
}

#[derive(Deserialize)]
pub(super) struct ErrorBody<'a> {
    #[serde(borrow)]
    pub(super) error: ErrorDetail<'a>,
}

#[derive(Deserialize, Debug)]
pub(super) struct ErrorDetail<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(super) message: Option<Str<'a>>,
}

/// Anthropic error type → (OpenAI type, code). 529 `overloaded_error` becomes 503, the status
/// OpenAI clients and Envoy retry policies know.
pub(super) fn map_error(status: u16, kind: &str, message: String) -> ApiError {
    let (status, openai_kind, code): (u16, &'static str, Cow<'static, str>) = match kind {
        "overloaded_error" => (503, "api_error", "overloaded".into()),
        "not_found_error" => (status, "invalid_request_error", "not_found".into()),
        "request_too_large" => (status, "invalid_request_error", "request_too_large".into()),
        "rate_limit_error" => (status, "rate_limit_error", "rate_limit_exceeded".into()),
        "authentication_error" => (status, "authentication_error", "invalid_api_key".into()),
        "permission_error" => (status, "permission_error", kind.to_owned().into()),
        "invalid_request_error" => (status, "invalid_request_error", kind.to_owned().into()),
        _ => (status, crate::error::kind_for_status(status), kind.to_owned().into()),
    };
    let status = if status == 529 { 503 } else { status };
    ApiError::new(status, openai_kind, message).with_code(code)
}

pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => {
            let message = b.error.message.map(|m| m.0.into_owned()).unwrap_or_else(|| format!("The provider answered HTTP {status}."));
            map_error(status, &b.error.kind, message)
        }
        Err(_) => map_error(status, "", super::super::status_message(status, body)),
    }
}

#[derive(Deserialize)]
struct UsagePeek {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// A Messages client gets the answer untouched; only its usage is read.
pub(super) fn passthrough_usage(body: &[u8]) -> Result<Translated, ApiError> {
    if let Some(usage) = super::super::passthrough_usage::<AnthropicUsage>(body, &[]) {
        return Ok(Translated { body: None, usage: usage.map(Usage::from) });
    }
    let peek: UsagePeek = serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("an Anthropic message", &e, body))?;
    Ok(Translated { body: None, usage: peek.usage.map(Usage::from) })
}
