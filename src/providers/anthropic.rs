//! Anthropic Messages API ↔ OpenAI Chat Completions, both ways, streaming included.
//! References: https://docs.anthropic.com/en/api/messages,
//! https://docs.anthropic.com/en/docs/build-with-claude/streaming,
//! https://docs.anthropic.com/en/api/errors, https://docs.anthropic.com/en/api/versioning,
//! https://platform.claude.com/docs/en/build-with-claude/extended-thinking and
//! https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking (thinking).

use super::chunks::{ChunkWriter, ToolCallIndex, malformed_event};
use super::completion::{self, Answer};
use super::media::{Source, media_source};
use super::reasoning::{self, ClaudeThinking, Effort, Thinking};
use super::structured;
use super::turns::{self, AssistantCall, Conversation, Turn, TurnRules};
use super::{CompileInput, CompiledProvider, Destination, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::openai::ApiError;
use crate::openai::request::{ChatRequest, Content, Message, Part, Role, Str, ToolChoice};
use crate::openai::response::ChunkHeader;
use crate::patterns;
use crate::schema::{JsonSchemaForm, ParamAction, ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// Long-standing version: `x-api-key` auth, sampling parameters accepted.
    V2023_06_01,
    /// October 2026: `Authorization: Bearer`, `temperature`/`top_p`/`top_k` rejected with 400
    /// (see shared provider notes; codersera.com "Anthropic API Version 2026-10-21").
    V2026_10_21,
}

impl ApiVersion {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "2023-06-01" => Some(ApiVersion::V2023_06_01),
            "2026-10-21" => Some(ApiVersion::V2026_10_21),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2023_06_01 => "2023-06-01",
            ApiVersion::V2026_10_21 => "2026-10-21",
        }
    }

    fn accepts_sampling(self) -> bool {
        self == ApiVersion::V2023_06_01
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub version: ApiVersion,
    pub default_max_tokens: u64,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv, SpecField::ApiVersion, SpecField::DefaultMaxTokens]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/v1"
    }

    fn default_host(_spec: &ProviderSpec) -> Option<String> {
        Some("api.anthropic.com".into())
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn param_defaults(&self, upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        default_policy(self, upstream_model)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _raw: &[u8],
        to: &Destination,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_request(provider, self, req, to.model, edits)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_response(ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let version = match spec.api_version.as_deref() {
        None => ApiVersion::V2023_06_01,
        Some(v) => ApiVersion::parse(v).ok_or_else(|| FieldError {
            field: "api_version",
            message: format!("unknown Anthropic API version `{v}`; supported: 2023-06-01, 2026-10-21"),
        })?,
    };
    let default_max_tokens = spec.default_max_tokens.unwrap_or(4096);
    if default_max_tokens == 0 {
        return Err(FieldError { field: "default_max_tokens", message: "must be at least 1".into() });
    }
    let auth = key.map(|k| match version {
        ApiVersion::V2023_06_01 => ("x-api-key", Secret::new(k.to_owned())),
        ApiVersion::V2026_10_21 => ("authorization", Secret::new(format!("Bearer {k}"))),
    });
    Ok(CompiledProvider {
        settings: Settings { version, default_max_tokens },
        chat_path: format!("{base_path}/messages"),
        auth,
        headers: vec![("anthropic-version", version.as_str().to_owned())],
        missing_env: Vec::new(),
    })
}

/// Models that answer "`temperature` is deprecated for this model" (shared provider notes;
/// BerriAI/litellm issue 26444).
const NO_TEMPERATURE: &[&str] = &["claude-opus-4-7*", "claude-opus-4-8*", "claude-opus-5*", "claude-sonnet-5*", "claude-haiku-5*"];

pub fn default_policy(s: &Settings, model: &str) -> Vec<(&'static str, ParamAction)> {
    if !s.version.accepts_sampling() {
        return vec![("temperature", ParamAction::Drop), ("top_p", ParamAction::Drop)];
    }
    if NO_TEMPERATURE.iter().any(|p| patterns::matches(p, model)) {
        return vec![("temperature", ParamAction::Drop)];
    }
    Vec::new()
}

// ---- request ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct MessagesRequest<'r> {
    model: &'r str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'r>>,
    messages: Vec<Turn<Block<'r>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "OutputConfig::is_empty")]
    output_config: OutputConfig<'r>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// `output_config`: thinking effort (https://platform.claude.com/docs/en/build-with-claude/effort)
/// and the JSON schema of the answer
/// (https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
#[derive(Serialize, Default)]
struct OutputConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Format<'r>>,
}

impl OutputConfig<'_> {
    fn is_empty(&self) -> bool {
        self.effort.is_none() && self.format.is_none()
    }
}

#[derive(Serialize)]
struct Format<'r> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'r RawValue,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'r> {
    Text {
        text: &'r str,
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
    },
}

#[derive(Serialize)]
struct ToolDef<'r> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    input_schema: &'r RawValue,
    /// Strict tool use: the input follows the schema
    /// (https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct ToolChoiceOut<'r> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'r str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_parallel_tool_use: bool,
}

#[derive(Serialize)]
struct Metadata<'r> {
    user_id: &'r str,
}

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let mut u = check_unsupported(provider, req);
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
    super::drop_metadata(req, edits);
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
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Anthropic request: {e}")))?;
    Ok(UpstreamRequest { answer_tool, ..UpstreamRequest::body(body) })
}

/// Members without a typed field that this translator maps.
const MAPPED_EXTRA: &[&str] = &["reasoning_effort"];

fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
    let mut u = Unsupported::new(provider);
    u.add_choices_and_logprobs(req);
    u.add_penalties(req);
    u.add_response_format_other_than(req, &["text", "json_schema"]);
    u.add_unknown_members(req, MAPPED_EXTRA);
    u
}

fn tool_choice<'r>(req: &'r ChatRequest) -> Option<ToolChoiceOut<'r>> {
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
struct AnthropicTurns;

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
        Ok(Block::ToolResult { tool_use_id, content: self.content(i, m.content.as_ref(), m.role)? })
    }

    /// Tool results must open the user turn, before any text.
    fn leads_turn(block: &Block) -> bool {
        matches!(block, Block::ToolResult { .. })
    }
}

fn part_block<'r>(i: usize, j: usize, p: &'r Part, role: Role) -> Result<Option<Block<'r>>, ApiError> {
    let param = || format!("messages[{i}].content[{j}]");
    let block = match &*p.kind {
        "text" => match p.text.as_deref() {
            Some(t) if !t.is_empty() => Block::Text { text: t, cache_control: p.cache_control },
            _ => return Ok(None),
        },
        "refusal" => match p.refusal.as_deref() {
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

// ---- response --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct MessagesResponse<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    model: Str<'a>,
    #[serde(borrow)]
    content: Vec<ContentBlock<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct ContentBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<Str<'a>>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct AnthropicUsage {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cache_creation_input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cache_read_input_tokens: u64,
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

/// A JSON schema answered through its tool: the call is the answer, which ends as `stop`.
fn answer_finish(stop_reason: &str, answered_by_tool: bool) -> &'static str {
    match finish_reason(stop_reason) {
        "tool_calls" if answered_by_tool => "stop",
        other => other,
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: MessagesResponse = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("an Anthropic message", &e, body))?;
    let mut answer = Answer::default();
    let mut answered_by_tool = false;
    for block in &r.content {
        match &*block.kind {
            "text" => answer.text.push_str(block.text.as_deref().unwrap_or_default()),
            "thinking" => answer.reasoning.push_str(block.thinking.as_deref().unwrap_or_default()),
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
    let finish = r.stop_reason.as_deref().map(|reason| answer_finish(reason, answered_by_tool));
    completion::encode(&r.id, ctx.created, &r.model, answer.into_message(), finish, r.usage.map(Usage::from))
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: ErrorDetail<'a>,
}

#[derive(Deserialize, Debug)]
struct ErrorDetail<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
}

/// Anthropic error type → (OpenAI type, code). 529 `overloaded_error` becomes 503, the status
/// OpenAI clients and Envoy retry policies know.
fn map_error(status: u16, kind: &str, message: String) -> ApiError {
    let (status, openai_kind, code): (u16, &'static str, Cow<'static, str>) = match kind {
        "overloaded_error" => (503, "api_error", "overloaded".into()),
        "not_found_error" => (status, "invalid_request_error", "not_found".into()),
        "request_too_large" => (status, "invalid_request_error", "request_too_large".into()),
        "rate_limit_error" => (status, "rate_limit_error", "rate_limit_exceeded".into()),
        "authentication_error" => (status, "authentication_error", "invalid_api_key".into()),
        "permission_error" => (status, "permission_error", kind.to_owned().into()),
        "invalid_request_error" => (status, "invalid_request_error", kind.to_owned().into()),
        _ => (status, crate::openai::error::kind_for_status(status), kind.to_owned().into()),
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
        Err(_) => map_error(status, "", super::status_message(status, body)),
    }
}

// ---- streaming -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    message: Option<StartMessage<'a>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    content_block: Option<ContentBlock<'a>>,
    #[serde(borrow, default)]
    delta: Option<StreamDelta<'a>>,
    #[serde(default)]
    usage: Option<DeltaUsage>,
    #[serde(borrow, default)]
    error: Option<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    model: Str<'a>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    partial_json: Option<Str<'a>>,
    #[serde(borrow, default)]
    thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Str<'a>>,
}

/// `message_delta` usage: cumulative counts; any field may be absent.
#[derive(Deserialize)]
struct DeltaUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Debug)]
pub struct StreamState {
    chunks: ChunkWriter,
    usage: Option<AnthropicUsage>,
    finish_reason: Option<&'static str>,
    tool_calls: ToolCallIndex,
    stopped: bool,
    /// The tool whose input is the answer (`ResponseContext::answer_tool`), and its block.
    answer_tool: Option<String>,
    answer_block: Option<u32>,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ChunkWriter::new(ctx, ChunkHeader { created: ctx.created, ..Default::default() }),
            usage: None,
            finish_reason: None,
            tool_calls: ToolCallIndex::default(),
            stopped: false,
            answer_tool: ctx.answer_tool.clone(),
            answer_block: None,
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if !event.has_data || self.stopped || self.chunks.failed() {
            return;
        }
        let e: StreamEvent = match serde_json::from_slice(&event.data) {
            Ok(e) => e,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        match &*e.kind {
            "message_start" => {
                if let Some(m) = e.message {
                    self.chunks.header.id = m.id.0.into_owned();
                    self.chunks.header.model = m.model.0.into_owned();
                    self.usage = m.usage.or(self.usage);
                }
                self.chunks.opening(out);
            }
            "content_block_start" => self.block_start(e.index.unwrap_or(0), e.content_block, out),
            "content_block_delta" => {
                if let Some(d) = e.delta {
                    self.block_delta(e.index.unwrap_or(0), &d, out);
                }
            }
            "message_delta" => {
                if let Some(u) = e.usage {
                    self.merge_usage(&u);
                }
                let answered_by_tool = self.answer_block.is_some();
                let reason = e.delta.and_then(|d| d.stop_reason).map(|r| answer_finish(&r, answered_by_tool));
                self.finish_reason = reason.or(self.finish_reason);
                self.chunks.finish_reason(out, self.finish_reason);
            }
            "message_stop" => {
                self.stopped = true;
                self.chunks.done(out, self.usage());
            }
            "error" => {
                let (kind, message) = match e.error {
                    Some(d) => (d.kind.0.into_owned(), d.message.map(|m| m.0.into_owned()).unwrap_or_default()),
                    None => (String::new(), "The provider reported an error mid-stream.".into()),
                };
                self.chunks.fail(out, &map_error(500, &kind, message));
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to forward.
            _ => {}
        }
    }

    fn block_start(&mut self, index: u32, block: Option<ContentBlock>, out: &mut Vec<u8>) {
        let Some(block) = block else { return };
        match &*block.kind {
            "text" => self.chunks.content(out, block.text.as_deref()),
            "thinking" => self.chunks.reasoning(out, block.thinking.as_deref()),
            "tool_use" if self.answer_tool.is_some() && block.name.as_deref() == self.answer_tool.as_deref() => {
                self.answer_block = Some(index);
            }
            "tool_use" => {
                let tool_index = self.tool_calls.start(index);
                self.chunks.tool_call(out, tool_index, block.id.as_deref(), block.name.as_deref(), "");
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, index: u32, d: &StreamDelta, out: &mut Vec<u8>) {
        match d.kind.as_deref() {
            Some("text_delta") => self.chunks.content(out, d.text.as_deref()),
            Some("thinking_delta") => self.chunks.reasoning(out, d.thinking.as_deref()),
            Some("input_json_delta") if self.answer_block == Some(index) => self.chunks.content(out, d.partial_json.as_deref()),
            Some("input_json_delta") => {
                if let Some(tool_index) = self.tool_calls.of(index) {
                    self.chunks.tool_arguments(out, tool_index, d.partial_json.as_deref());
                }
            }
            _ => {}
        }
    }

    fn merge_usage(&mut self, d: &DeltaUsage) {
        let mut u = self.usage.unwrap_or_default();
        u.input_tokens = d.input_tokens.unwrap_or(u.input_tokens);
        u.output_tokens = d.output_tokens.unwrap_or(u.output_tokens);
        u.cache_creation_input_tokens = d.cache_creation_input_tokens.unwrap_or(u.cache_creation_input_tokens);
        u.cache_read_input_tokens = d.cache_read_input_tokens.unwrap_or(u.cache_read_input_tokens);
        self.usage = Some(u);
    }
}

impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.on_event(event, out);
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    fn ended(&self) -> bool {
        self.stopped
    }

    fn chunks(&self) -> Option<&ChunkWriter> {
        Some(&self.chunks)
    }
}

#[cfg(test)]
#[path = "anthropic_tests.rs"]
mod tests;
