//! The Converse request built from an OpenAI chat request.

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConverseRequest<'r> {
    pub(super) messages: Vec<Turn<Block<'r>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) system: Vec<Block<'r>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub(super) inference_config: InferenceConfig<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<ToolConfig<'r>>,
    #[serde(skip_serializing_if = "ModelFields::is_empty")]
    pub(super) additional_model_request_fields: ModelFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output_config: Option<OutputConfig>,
}

/// `outputConfig.textFormat`: structured outputs
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_OutputFormat.html; the
/// schema travels as JSON text, `JsonSchemaDefinition.schema` being a string).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OutputConfig {
    pub(super) text_format: TextFormat,
}

#[derive(Serialize)]
pub(super) struct TextFormat {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) structure: FormatStructure,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FormatStructure {
    pub(super) json_schema: JsonSchemaDefinition,
}

#[derive(Serialize)]
pub(super) struct JsonSchemaDefinition {
    pub(super) schema: String,
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
}

/// `additionalModelRequestFields`: settings in the model's own request format. Claude takes
/// Anthropic's `thinking` and `output_config.effort`
/// (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html,
/// https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-adaptive-thinking.html);
/// Nova 2 its `reasoningConfig`
/// (https://docs.aws.amazon.com/nova/latest/nova2-userguide/extended-thinking.html).
#[derive(Serialize, Default)]
pub(super) struct ModelFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output_config: Option<ClaudeOutputConfig>,
    #[serde(rename = "reasoningConfig", skip_serializing_if = "Option::is_none")]
    pub(super) reasoning_config: Option<NovaReasoning>,
}

impl ModelFields {
    pub(super) fn is_empty(&self) -> bool {
        self.thinking.is_none() && self.output_config.is_none() && self.reasoning_config.is_none()
    }
}

#[derive(Serialize)]
pub(super) struct ClaudeOutputConfig {
    pub(super) effort: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NovaReasoning {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) max_reasoning_effort: &'static str,
}

/// Room for the answer on top of Claude's thinking when the client sets no limit.
pub(super) const ANSWER_TOKENS: u64 = 4096;

/// What `reasoning_effort` becomes for the model: model fields, and the output limit.
pub(super) fn reasoning(
    req: &ChatRequest,
    model: &str,
    form: Option<ReasoningForm>,
    unsupported: &mut Unsupported,
) -> Result<(ModelFields, Option<u64>), ApiError> {
    let limit = req.output_limit();
    let Some(effort) = reasoning::requested(req)? else { return Ok((ModelFields::default(), limit)) };
    if model.contains("anthropic.claude") && reasoning::claude_thinks(model) {
        let form = form.unwrap_or_else(|| reasoning::claude_form(model));
        let claude = reasoning::claude(req, effort, form, ANSWER_TOKENS)?;
        let fields = ModelFields {
            thinking: claude.thinking,
            output_config: claude.effort.map(|effort| ClaudeOutputConfig { effort }),
            reasoning_config: None,
        };
        let max_tokens = if effort == Effort::None { limit } else { Some(claude.max_tokens) };
        return Ok((fields, max_tokens));
    }
    if model.contains("amazon.nova-2") {
        let max_reasoning_effort = match effort {
            Effort::None => return Ok((ModelFields::default(), limit)),
            Effort::Minimal | Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High | Effort::Xhigh => "high",
        };
        let reasoning_config = Some(NovaReasoning { kind: "enabled", max_reasoning_effort });
        return Ok((ModelFields { reasoning_config, ..Default::default() }, limit));
    }
    if effort != Effort::None {
        unsupported.add("reasoning_effort");
    }
    Ok((ModelFields::default(), limit))
}

/// A `ContentBlock` union member (also the `SystemContentBlock` members text and cachePoint).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum Block<'r> {
    Text(&'r str),
    Image(Image<'r>),
    ToolUse(ToolUse<'r>),
    ToolResult(ToolResult<'r>),
    CachePoint(CachePoint),
    ReasoningContent(ReasoningBlock<'r>),
}

/// Claude's earlier thinking, sent back with its signature (or redacted, as the bytes it gave):
/// with thinking on, a tool loop's assistant turn must start with it
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ReasoningContentBlock.html).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ReasoningBlock<'r> {
    ReasoningText { text: &'r str, signature: &'r str },
    RedactedContent(&'r str),
}

#[derive(Serialize)]
pub(super) struct Image<'r> {
    pub(super) format: &'static str,
    pub(super) source: ImageSource<'r>,
}

#[derive(Serialize)]
pub(super) struct ImageSource<'r> {
    /// Base64 in JSON, as blobs are.
    pub(super) bytes: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolUse<'r> {
    pub(super) tool_use_id: Cow<'r, str>,
    pub(super) name: &'r str,
    pub(super) input: &'r RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolResult<'r> {
    pub(super) tool_use_id: Cow<'r, str>,
    pub(super) content: Vec<ResultBlock<'r>>,
    /// `error` for a result that reports the tool's failure (Converse `ToolResultBlock.status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ResultBlock<'r> {
    Text(&'r str),
    Json(&'r RawValue),
    Image(Image<'r>),
}

#[derive(Serialize)]
pub(super) struct CachePoint {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
}

pub(super) const CACHE_POINT: CachePoint = CachePoint { kind: "default" };

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct InferenceConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'r str>,
}

impl InferenceConfig<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.max_tokens.is_none() && self.temperature.is_none() && self.top_p.is_none() && self.stop_sequences.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig<'r> {
    pub(super) tools: Vec<ToolEntry<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<ToolChoiceOut<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolEntry<'r> {
    pub(super) tool_spec: ToolSpec<'r>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolSpec<'r> {
    pub(super) name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'r str>,
    pub(super) input_schema: Schema<'r>,
    /// Strict tool use (`ToolSpecification.strict`,
    /// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolSpecification.html).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) strict: Option<bool>,
}

#[derive(Serialize)]
pub(super) struct Schema<'r> {
    pub(super) json: &'r RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ToolChoiceOut<'r> {
    Auto(Empty),
    Any(Empty),
    Tool(Named<'r>),
}

/// `{}`: the auto and any tool choices carry no fields.
#[derive(Serialize)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct Named<'r> {
    pub(super) name: &'r str,
}

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    now_ms: u64,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let mut unsupported = s.unsupported(provider, req);
    if let Some(t) = req.temperature
        && t > 1.0
    {
        return Err(ApiError::invalid_param("temperature", format!("`temperature` must be between 0 and 1 for Bedrock models, got {t}.")));
    }
    let Conversation { system, turns: messages } = turns::conversation(req, &ConverseTurns)?;
    let native = structured::claude_native(upstream_model);
    if !native {
        unsupported.add_strict_tools(req);
    }
    let answer = structured::requested(req, edits.json_schema, native, &mut unsupported)?;
    let mut tool_config = tool_config(req, &messages, native, &mut unsupported);
    let (mut model_fields, max_tokens) = reasoning(req, upstream_model, edits.reasoning, &mut unsupported)?;
    let mut output_config = None;
    match &answer {
        Some(a) if a.form == JsonSchemaForm::Tool => {
            // A forced tool and Claude's thinking do not go together (see the Anthropic translator).
            if model_fields.thinking.take().is_some() {
                unsupported.add("reasoning_effort");
            }
            let tools = vec![ToolEntry {
                tool_spec: ToolSpec { name: a.name, description: a.description, input_schema: Schema { json: a.schema }, strict: None },
            }];
            tool_config = Some(ToolConfig { tools, tool_choice: Some(ToolChoiceOut::Tool(Named { name: a.name })) });
        }
        Some(a) => {
            let json_schema = JsonSchemaDefinition {
                schema: a.schema.get().to_owned(),
                name: a.name.to_owned(),
                description: a.description.map(str::to_owned),
            };
            output_config =
                Some(OutputConfig { text_format: TextFormat { kind: "json_schema", structure: FormatStructure { json_schema } } });
        }
        None => {}
    }
    if model_fields.thinking.is_some() {
        unsupported.add_sampling_while_thinking(req);
    }
    let answer_tool = structured::answer_tool(answer.as_ref());
    unsupported.resolve(edits)?;
    super::super::drop_metadata(req, edits);
    // What thinking does not allow was refused or dropped (`add_sampling_while_thinking`).
    let samples = model_fields.thinking.is_none();
    let body = ConverseRequest {
        messages,
        system,
        inference_config: InferenceConfig {
            max_tokens,
            temperature: req.temperature.filter(|t| samples || *t == 1.0),
            top_p: req.top_p.filter(|p| samples || *p >= 0.95),
            stop_sequences: req.stop.iter().map(|s| &**s).collect(),
        },
        tool_config,
        additional_model_request_fields: model_fields,
        output_config,
    };
    let body = crate::json::to_vec_sized(&body, req.body_len + 256)
        .map_err(|e| ApiError::internal(format!("could not encode the Converse request: {e}")))?;
    let action = if req.stream { "converse-stream" } else { "converse" };
    let built = signed(provider, s, model_path(provider, upstream_model, action), body, now_ms)?;
    Ok(UpstreamRequest { answer_tool, ..built })
}

pub(super) fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
    let mut u = Unsupported::new(provider);
    u.add_choices_and_logprobs(req);
    u.add_penalties(req);
    u.add_response_format_other_than(req, &["text", "json_schema"]);
    // Converse has no switch for parallel tool calls; the models decide.
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        u.add("parallel_tool_calls");
    }
    u.add_unknown_members(req, MAPPED_EXTRA);
    u
}

/// Members without a typed field that this translator maps.
pub(super) const MAPPED_EXTRA: &[&str] = &["reasoning_effort"];

/// `toolConfig`. Converse's tool choice has no `none`: withholding the tools expresses it, but
/// Bedrock refuses toolUse/toolResult blocks without a `toolConfig`, so once the conversation
/// holds tool calls `none` cannot be honoured.
/// `strict_tool_use`: the model holds tool inputs to their schemas when asked.
pub(super) fn tool_config<'r>(
    req: &'r ChatRequest,
    messages: &[Turn<Block>],
    strict_tool_use: bool,
    unsupported: &mut Unsupported,
) -> Option<ToolConfig<'r>> {
    let tools: Vec<ToolEntry> = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| ToolEntry {
            tool_spec: ToolSpec {
                name: &f.name,
                description: f.description.as_deref().filter(|d| !d.is_empty()),
                input_schema: Schema { json: f.parameters.unwrap_or_else(|| turns::no_parameters_schema()) },
                strict: f.strict.filter(|s| *s && strict_tool_use),
            },
        })
        .collect();
    if tools.is_empty() {
        return None;
    }
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(m)) => match &**m {
            "none" => {
                let has_tool_blocks =
                    messages.iter().flat_map(|t| &t.content).any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
                if !has_tool_blocks {
                    return None;
                }
                unsupported.add("tool_choice");
                None
            }
            "required" => Some(ToolChoiceOut::Any(Empty {})),
            _ => Some(ToolChoiceOut::Auto(Empty {})),
        },
        Some(ToolChoice::Function(name)) => Some(ToolChoiceOut::Tool(Named { name })),
    };
    Some(ToolConfig { tools, tool_choice })
}

/// System and developer messages become `system`.
pub(super) struct ConverseTurns;

impl<'r> TurnRules<'r> for ConverseTurns {
    type Block = Block<'r>;
    const NO_TURNS: &'static str = "Bedrock models need at least one user message besides system messages.";

    fn system(&self, i: usize, m: &'r Message, out: &mut Vec<Block<'r>>) -> Result<(), ApiError> {
        turns::system_texts(i, m, "Bedrock", |text, cache_control| push_with_cache_point(out, Block::Text(text), cache_control))
    }

    /// Empty text is left out: Bedrock refuses blank text blocks.
    fn content(&self, i: usize, content: Option<&'r Content>, role: Role) -> Result<Vec<Block<'r>>, ApiError> {
        turns::content_blocks(
            content,
            |t| Block::Text(t),
            |out, j, p| {
                let block = match &*p.kind {
                    "text" => p.text.as_deref().filter(|t| !t.is_empty()).map(Block::Text),
                    "refusal" => p.refusal.as_deref().filter(|t| !t.is_empty()).map(Block::Text),
                    "image_url" => Some(Block::Image(image(i, j, p)?)),
                    "thinking" if role == Role::Assistant => p.signature.as_deref().map(|signature| {
                        Block::ReasoningContent(ReasoningBlock::ReasoningText {
                            text: p.thinking.as_deref().unwrap_or_default(),
                            signature,
                        })
                    }),
                    "redacted_thinking" if role == Role::Assistant => {
                        p.signature.as_deref().map(|data| Block::ReasoningContent(ReasoningBlock::RedactedContent(data)))
                    }
                    other => {
                        return Err(ApiError::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            format!("Content parts of type `{other}` are not supported by Bedrock models in {} messages.", role.as_str()),
                        ));
                    }
                };
                if let Some(block) = block {
                    push_with_cache_point(out, block, p.cache_control);
                }
                Ok(())
            },
        )
    }

    fn tool_call(&self, call: AssistantCall<'r>) -> Block<'r> {
        Block::ToolUse(ToolUse { tool_use_id: tool_use_id(call.id), name: call.name, input: call.input })
    }

    fn tool_result(&self, i: usize, m: &'r Message) -> Result<Block<'r>, ApiError> {
        let tool_use_id = tool_use_id(m.tool_call_id.as_deref().unwrap_or_default());
        let status = m.is_error.then_some("error");
        Ok(Block::ToolResult(ToolResult { tool_use_id, content: result_blocks(i, m.content.as_ref())?, status }))
    }

    /// Tool results open the user turn, before any text, as the models expect.
    fn leads_turn(block: &Block) -> bool {
        matches!(block, Block::ToolResult(_))
    }

    fn model_opens(&self, i: usize) -> Result<(), ApiError> {
        Err(ApiError::invalid_param(
            format!("messages[{i}].role"),
            "Bedrock conversations must start with a user message (after any system messages).",
        ))
    }
}

/// Converse takes tool use ids of 1 to 64 characters of `[a-zA-Z0-9_-]`
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolUseBlock.html). Any
/// other id (such as a Gemini call's, which carries its thought signature) is sent as a digest of
/// itself, the same for the call and for its result.
pub(super) fn tool_use_id(id: &str) -> Cow<'_, str> {
    let valid = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        return Cow::Borrowed(id);
    }
    Cow::Owned(thought_signature::digest_id("tooluse_", id))
}

/// Anthropic-style `cache_control` on a part marks a prompt-cache checkpoint; Converse writes
/// checkpoints as `cachePoint` blocks after the content they close.
pub(super) fn push_with_cache_point<'r>(out: &mut Vec<Block<'r>>, block: Block<'r>, cache_control: Option<&RawValue>) {
    out.push(block);
    if cache_control.is_some() {
        out.push(Block::CachePoint(CACHE_POINT));
    }
}

/// `data:image/<type>;base64,<data>` → an image block. Converse takes images inline or from S3,
/// never by URL.
pub(super) fn image<'r>(i: usize, j: usize, p: &'r Part) -> Result<Image<'r>, ApiError> {
    let param = || format!("messages[{i}].content[{j}]");
    let url = p.image_url.as_ref().map(|u| &*u.url).unwrap_or_default();
    let inline = url.starts_with("data:").then(|| media_source(url, &param())).transpose()?;
    let Some(Source::Base64 { media_type, data: bytes }) = inline else {
        return Err(ApiError::invalid_param(
            param(),
            "Bedrock models take images inline only: send a base64 data URL (`data:image/png;base64,…`), not an image URL.",
        ));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(ApiError::invalid_param(
                param(),
                format!("Image type `{other}` is not supported by Bedrock (use png, jpeg, gif or webp)."),
            ));
        }
    };
    Ok(Image { format, source: ImageSource { bytes } })
}

/// A tool's output: JSON objects as `json` blocks (models get them structured), other text as
/// `text`, images inline. Bedrock refuses an empty result, so silence is said in words.
pub(super) fn result_blocks<'r>(i: usize, content: Option<&'r Content>) -> Result<Vec<ResultBlock<'r>>, ApiError> {
    let text_block = |t: &'r str| match serde_json::from_str::<&RawValue>(t) {
        Ok(v) if v.get().starts_with('{') => ResultBlock::Json(v),
        _ => ResultBlock::Text(t),
    };
    let mut out = Vec::new();
    match content {
        Some(Content::Text(t)) if !t.is_empty() => out.push(text_block(t)),
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match &*p.kind {
                    "text" => out.extend(p.text.as_deref().filter(|t| !t.is_empty()).map(ResultBlock::Text)),
                    "image_url" => out.push(ResultBlock::Image(image(i, j, p)?)),
                    other => {
                        return Err(ApiError::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            format!("Content parts of type `{other}` are not supported by Bedrock models in tool messages."),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if out.is_empty() {
        out.push(ResultBlock::Text("(empty)"));
    }
    Ok(out)
}
