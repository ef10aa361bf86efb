//! The Messages request built from an OpenAI chat request.

use super::*;
use crate::json::Text;

#[derive(Serialize)]
pub(super) struct MessagesRequest<'r> {
    pub(super) model: &'r str,
    pub(super) max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) system: Vec<Block<'r>>,
    pub(super) messages: Vec<Turn<Block<'r>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<ToolDef<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<ToolChoiceOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) metadata: Option<Metadata<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "OutputConfig::is_empty")]
    pub(super) output_config: OutputConfig<'r>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) stream: bool,
}

/// `output_config`: thinking effort (https://platform.claude.com/docs/en/build-with-claude/effort)
/// and the JSON schema of the answer
/// (https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
#[derive(Serialize, Default)]
pub(super) struct OutputConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<Format<'r>>,
}

impl OutputConfig<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.effort.is_none() && self.format.is_none()
    }
}

#[derive(Serialize)]
pub(super) struct Format<'r> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) schema: &'r RawValue,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'r> {
    Text {
        /// Written as the client quoted it where it came unchanged.
        text: &'r Text<'r>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'r RawValue>,
    },
    Image {
        source: Source<'r>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'r RawValue>,
    },
    Document {
        source: Source<'r>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'r str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'r RawValue>,
    },
    ToolUse {
        id: &'r str,
        name: &'r str,
        input: &'r RawValue,
    },
    ToolResult {
        tool_use_id: &'r str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block<'r>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
pub(super) struct ToolDef<'r> {
    pub(super) name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'r str>,
    pub(super) input_schema: &'r RawValue,
    /// Strict tool use: the input follows the schema
    /// (https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) strict: Option<bool>,
}

#[derive(Serialize)]
pub(super) struct ToolChoiceOut<'r> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'r str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) disable_parallel_tool_use: bool,
}

#[derive(Serialize)]
pub(super) struct Metadata<'r> {
    pub(super) user_id: &'r str,
}

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let mut u = s.unsupported(provider, req);
    let effort = reasoning::requested(req)?;
    let thinks = reasoning::claude_thinks(upstream_model);
    let mut thinking = match effort {
        Some(effort) if thinks => {
            let form = edits.reasoning.unwrap_or_else(|| reasoning::claude_form(upstream_model));
            reasoning::claude(req, effort, form, s.default_max_tokens)?
        }
        _ => ClaudeThinking::off(req, s.default_max_tokens),
    };
    if !thinks && effort.is_some_and(|e| e != Effort::None) {
        u.add("reasoning_effort");
    }
    let native = structured::claude_native(upstream_model);
    if !native {
        u.add_strict_tools(req);
    }
    let answer = structured::requested(req, edits.json_schema, native, &mut u)?;
    let answer_tool = structured::answer_tool(answer.as_ref());
    // A forced tool and thinking do not go together: "Tool use with thinking only supports
    // tool_choice: auto or none" (extended thinking guide).
    if answer_tool.is_some() && thinking.thinking.is_some() {
        u.add("reasoning_effort");
        thinking.thinking = None;
    }
    if thinking.thinking.is_some() {
        u.add_sampling_while_thinking(req);
    }
    u.resolve(edits)?;
    super::super::drop_metadata(req, edits);
    if let Some(t) = req.temperature
        && t > 1.0
    {
        return Err(ApiError::invalid_param(
            "temperature",
            format!("`temperature` must be between 0 and 1 for Anthropic models, got {t}."),
        ));
    }
    let Conversation { system, turns: messages } = turns::conversation(req, &AnthropicTurns)?;
    let mut tools: Vec<ToolDef> = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| ToolDef {
            name: &f.name,
            description: f.description.as_deref(),
            input_schema: f.parameters.unwrap_or_else(|| turns::no_parameters_schema()),
            strict: f.strict.filter(|strict| *strict && native),
        })
        .collect();
    let mut tool_choice = if tools.is_empty() { None } else { tool_choice(req) };
    let mut format = None;
    match &answer {
        Some(a) if a.form == JsonSchemaForm::Tool => {
            tools.push(ToolDef { name: a.name, description: a.description, input_schema: a.schema, strict: None });
            tool_choice = Some(ToolChoiceOut { kind: "tool", name: Some(a.name), disable_parallel_tool_use: false });
        }
        Some(a) => format = Some(Format { kind: "json_schema", schema: a.schema }),
        None => {}
    }
    let safety_identifier = req.extra("safety_identifier").and_then(|v| serde_json::from_str::<&str>(v.get()).ok());
    let samples = thinking.thinking.is_none();
    let body = MessagesRequest {
        model: upstream_model,
        max_tokens: thinking.max_tokens,
        system,
        messages,
        stop_sequences: req.stop.iter().map(|s| &**s).collect(),
        // What thinking does not allow was refused or dropped (`add_sampling_while_thinking`).
        temperature: req.temperature.filter(|t| samples || *t == 1.0),
        top_p: req.top_p.filter(|p| samples || *p >= 0.95),
        tool_choice,
        tools,
        metadata: req.user.as_deref().or(safety_identifier).map(|user_id| Metadata { user_id }),
        thinking: thinking.thinking,
        output_config: OutputConfig { effort: thinking.effort, format },
        stream: req.stream,
    };
    let body = crate::json::to_vec_sized(&body, req.body_len + 256)
        .map_err(|e| ApiError::internal(format!("could not encode the Anthropic request: {e}")))?;
    Ok(UpstreamRequest { answer_tool, ..UpstreamRequest::body(body) })
}

/// Members without a typed field that this translator maps.
pub(super) const MAPPED_EXTRA: &[&str] = &["reasoning_effort"];

pub(super) fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
    let mut u = Unsupported::new(provider);
    u.add_choices_and_logprobs(req);
    u.add_penalties(req);
    u.add_response_format_other_than(req, &["text", "json_schema"]);
    u.add_unknown_members(req, MAPPED_EXTRA);
    u
}

pub(super) fn tool_choice<'r>(req: &'r ChatRequest) -> Option<ToolChoiceOut<'r>> {
    let no_parallel = req.parallel_tool_calls == Some(false);
    let (kind, name) = match &req.tool_choice {
        None if !no_parallel => return None,
        None => ("auto", None),
        Some(ToolChoice::Mode(m)) => match &**m {
            "none" => ("none", None),
            "required" => ("any", None),
            _ => ("auto", None),
        },
        Some(ToolChoice::Function(name)) => ("tool", Some(&**name)),
    };
    Some(ToolChoiceOut { kind, name, disable_parallel_tool_use: no_parallel && kind != "none" })
}

/// System and developer messages become `system`.
pub(super) struct AnthropicTurns;

impl<'r> TurnRules<'r> for AnthropicTurns {
    type Block = Block<'r>;
    const NO_TURNS: &'static str = "Anthropic models need at least one user or assistant message besides system messages.";

    fn system(&self, i: usize, m: &'r Message, out: &mut Vec<Block<'r>>) -> Result<(), ApiError> {
        turns::system_texts(i, m, "Anthropic", |text, cache_control| out.push(Block::Text { text, cache_control }))
    }

    fn content(&self, i: usize, content: Option<&'r Content>, role: Role) -> Result<Vec<Block<'r>>, ApiError> {
        let text = |text| Block::Text { text, cache_control: None };
        turns::content_blocks(content, text, |out, j, p| {
            out.extend(part_block(i, j, p, role)?);
            Ok(())
        })
    }

    fn tool_call(&self, call: AssistantCall<'r>) -> Block<'r> {
        Block::ToolUse { id: call.id, name: call.name, input: call.input }
    }

    fn tool_result(&self, i: usize, m: &'r Message) -> Result<Block<'r>, ApiError> {
        let tool_use_id = m.tool_call_id.as_deref().unwrap_or_default();
        Ok(Block::ToolResult { tool_use_id, content: self.content(i, m.content.as_ref(), m.role)?, is_error: m.is_error })
    }

    /// Tool results must open the user turn, before any text.
    fn leads_turn(block: &Block) -> bool {
        matches!(block, Block::ToolResult { .. })
    }
}

pub(super) fn part_block<'r>(i: usize, j: usize, p: &'r Part, role: Role) -> Result<Option<Block<'r>>, ApiError> {
    let param = || format!("messages[{i}].content[{j}]");
    let block = match &*p.kind {
        "text" => match &p.text {
            Some(t) if !t.is_empty() => Block::Text { text: t, cache_control: p.cache_control },
            _ => return Ok(None),
        },
        "refusal" => match &p.refusal {
            Some(t) if !t.is_empty() => Block::Text { text: t, cache_control: None },
            _ => return Ok(None),
        },
        "image_url" => {
            let url = p.image_url.as_ref().map(|u| &*u.url).unwrap_or_default();
            let source = media_source(url, &param())?;
            if let Source::Base64 { media_type, .. } = source
                && !matches!(media_type, "image/jpeg" | "image/png" | "image/gif" | "image/webp")
            {
                return Err(ApiError::invalid_param(
                    param(),
                    format!("Image type `{media_type}` is not supported by Anthropic (use jpeg, png, gif or webp)."),
                ));
            }
            Block::Image { source, cache_control: p.cache_control }
        }
        "file" if role == Role::User => {
            let file = p.file.as_ref();
            let Some(data) = file.and_then(|f| f.file_data.as_deref()) else {
                return Err(ApiError::invalid_param(
                    param(),
                    "Anthropic models need files inline as `file.file_data` (a data URL); uploaded file ids are not supported.",
                ));
            };
            let source = media_source(data, &param())?;
            if let Source::Base64 { media_type, .. } = source
                && media_type != "application/pdf"
            {
                return Err(ApiError::invalid_param(
                    param(),
                    format!("File type `{media_type}` is not supported by Anthropic (use application/pdf)."),
                ));
            }
            Block::Document { source, title: file.and_then(|f| f.filename.as_deref()), cache_control: p.cache_control }
        }
        other => {
            return Err(ApiError::invalid_param(
                param(),
                format!("Content parts of type `{other}` are not supported by Anthropic models in {} messages.", role.as_str()),
            ));
        }
    };
    Ok(Some(block))
}

/// A Messages client's request goes on as it came but for what Tollgate owns: the model, and the
/// members the model's parameter policy drops (named as in the representation).
pub(super) fn passthrough(raw: &[u8], upstream_model: &str, edits: &Edits) -> Result<UpstreamRequest, ApiError> {
    let members = crate::json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let dropped: Vec<&str> = edits.dropped.iter().map(|d| messages_member(d)).collect();
    if dropped.is_empty() && super::super::openai::only_model_is(&members, raw, upstream_model) {
        return Ok(UpstreamRequest::default());
    }
    let model = crate::json::quote(upstream_model);
    let in_place = dropped.is_empty().then(|| crate::json::replace_value(raw, &members, "model", &model)).flatten();
    let body =
        in_place.unwrap_or_else(|| crate::json::rewrite(raw, &members, |k| k != "model" && !dropped.contains(&k), &[("model", &model)]));
    Ok(UpstreamRequest::body(body))
}

/// The Messages member a parameter of the representation comes from.
pub(super) fn messages_member(param: &str) -> &str {
    match param {
        "stop" => "stop_sequences",
        "user" => "metadata",
        "reasoning_effort" => "thinking",
        other => other,
    }
}
