//! A Cohere chat answer as an OpenAI chat completion, and Cohere errors as OpenAI errors.

use super::*;

#[derive(Deserialize)]
pub(super) struct ChatResponse<'a> {
    #[serde(borrow)]
    pub(super) id: Str<'a>,
    #[serde(borrow)]
    pub(super) finish_reason: Str<'a>,
    #[serde(borrow)]
    pub(super) message: ResponseMessage<'a>,
    #[serde(default)]
    pub(super) usage: Option<CohereUsage>,
}

#[derive(Deserialize)]
pub(super) struct ResponseMessage<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<Vec<ContentBlock<'a>>>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<Vec<ResponseCall<'a>>>,
    #[serde(borrow, default)]
    pub(super) tool_plan: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ResponseCall<'a> {
    #[serde(borrow)]
    pub(super) id: Str<'a>,
    #[serde(borrow)]
    pub(super) function: ResponseFunction<'a>,
}

#[derive(Deserialize)]
pub(super) struct ResponseFunction<'a> {
    #[serde(borrow)]
    pub(super) name: Str<'a>,
    #[serde(borrow, default)]
    pub(super) arguments: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ContentBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<Str<'a>>,
}

/// `usage` of a chat response or `message-end` event.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct CohereUsage {
    #[serde(default)]
    pub(super) billed_units: Option<Counts>,
    #[serde(default)]
    pub(super) tokens: Option<Counts>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    #[serde(default, deserialize_with = "count")]
    pub(super) input_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    pub(super) output_tokens: u64,
}

/// Cohere types its counts as JSON numbers, which may be written `5.0`.
pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = Option::<f64>::deserialize(d)?.unwrap_or(0.0);
    // Counts are small non-negative integers; the cast saturates anything else.
    Ok(n.round() as u64)
}

/// Cohere bills `billed_units`, not `tokens`: the difference is tokens Cohere adds itself (its
/// own preamble, special tokens), which it does not charge for
/// (https://docs.cohere.com/docs/how-does-cohere-pricing-work). `tokens` only stands in when a
/// response carries no `billed_units`. `cached_tokens` is left out: Cohere publishes no cached
/// rate, so cached tokens are billed as plain input and already counted in `billed_units`.
impl From<CohereUsage> for Usage {
    fn from(u: CohereUsage) -> Self {
        let counts = u.billed_units.or(u.tokens).unwrap_or_default();
        Usage { input_tokens: counts.input_tokens, output_tokens: counts.output_tokens, ..Default::default() }
    }
}

/// Cohere `finish_reason` → OpenAI `finish_reason`; `ERROR` and `TIMEOUT` are failures, not
/// answers (see `generation_failed`).
pub(super) fn finish_reason(reason: &str) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::MaxTokens,
        "TOOL_CALL" => Finish::ToolUse,
        "STOP_SEQUENCE" => Finish::StopSequence,
        _ => Finish::EndTurn,
    }
}

/// The error a generation that Cohere ended with `ERROR` or `TIMEOUT` becomes.
pub(super) fn generation_failed(reason: &str, detail: Option<&str>) -> Option<ApiError> {
    let detail = detail.filter(|d| !d.is_empty()).map(|d| format!(": {d}")).unwrap_or_default();
    match reason {
        "ERROR" => Some(
            ApiError::new(500, "api_error", format!("The provider failed while generating the answer{detail}")).with_code("provider_error"),
        ),
        "TIMEOUT" => Some(
            ApiError::new(504, "api_error", format!("The provider stopped generating: the answer exceeded its time limit{detail}"))
                .with_code("provider_timeout"),
        ),
        _ => None,
    }
}

/// `tool_plan` is what the model says before it calls tools: the text OpenAI models put in
/// `content` beside `tool_calls`. It becomes content (first, as Cohere streams it first), and
/// goes back to Cohere as `tool_plan` when the client replays the turn.
pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: ChatResponse = serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("a Cohere chat response", &e, body))?;
    if let Some(e) = generation_failed(&r.finish_reason, None) {
        return Err(e);
    }
    let mut answer = Answer { text: r.message.tool_plan.as_deref().unwrap_or_default().into(), ..Default::default() };
    for block in r.message.content.iter().flatten() {
        match block.kind.as_deref() {
            Some("thinking") => answer.reasoning.push_str(block.thinking.as_deref().unwrap_or_default()),
            _ => answer.text.push_str(block.text.as_deref().unwrap_or_default()),
        }
    }
    for c in r.message.tool_calls.iter().flatten() {
        answer.add_tool_call(&c.id, &c.function.name, c.function.arguments.as_deref().unwrap_or("{}"));
    }
    let finish = Some(finish_reason(&r.finish_reason));
    completion::translated(
        ctx,
        Completion { id: &r.id, created: ctx.created, model: &ctx.model, answer, finish, usage: r.usage.map(Usage::from) },
    )
}

#[derive(Deserialize)]
pub(super) struct ErrorBody<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<Str<'a>>,
}

/// Cohere errors are `{"id": …, "message": …}`; the status says what kind of error it is. 498
/// (Cohere's "invalid token") is the 401 OpenAI clients know.
pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    let message = match serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.message) {
        Some(m) => m.0.into_owned(),
        None => super::super::status_message(status, body),
    };
    let status = if status == 498 { 401 } else { status };
    let e = ApiError::new(status, kind_for_status(status), message);
    match status {
        401 => e.with_code("invalid_api_key"),
        404 => e.with_code("not_found"),
        429 => e.with_code("rate_limit_exceeded"),
        503 => e.with_code("overloaded"),
        504 => e.with_code("provider_timeout"),
        _ => e,
    }
}
