//! The Anthropic Messages API (<https://docs.anthropic.com/en/api/messages>):
//! versioned authentication, strict request validation with Anthropic's
//! field-path error messages, translation into the neutral [`Conversation`],
//! and rendering of the script's reply as a `message` or as the documented
//! sequence of named SSE events.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Request, Response};
use crate::provider::{Answer, Provider};
use crate::script::{self, Args, Block, Cache, Conversation, Finish, KeyOrder, Reply, Role, Tool, ToolChoice, Turn};
use crate::validate::{self, Checked, Invalid, Obj, join};

/// Models on which Anthropic no longer accepts `temperature`.
const TEMPERATURE_DEPRECATED: &[&str] = &["claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-sonnet-5", "claude-haiku-5"];

/// The request body's members, as https://docs.anthropic.com/en/api/messages documents them
/// (`service_tier` and `container` are generally available; the beta members are in
/// [`BETA_FIELDS`]). Anything else is "Extra inputs are not permitted".
const TOP_LEVEL_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "stream",
    "thinking",
    "output_config",
    "service_tier",
    "container",
    "context_management",
    "mcp_servers",
    "output_format",
];

/// Members the API takes only under an `anthropic-beta` that enables them (the beta Messages API,
/// https://docs.anthropic.com/en/api/beta/messages): the beta whose name starts with the prefix.
const BETA_FIELDS: &[(&str, &str)] =
    &[("context_management", "context-management-"), ("mcp_servers", "mcp-client-"), ("output_format", "structured-outputs-")];

/// The members of a token-counting request (https://docs.anthropic.com/en/api/messages-count-tokens):
/// the prompt, without the output settings.
const COUNT_TOKENS_FIELDS: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
    "mcp_servers",
    "output_format",
];

/// `service_tier` values (https://docs.anthropic.com/en/api/service-tiers).
const SERVICE_TIERS: &[&str] = &["auto", "standard_only"];

/// With interleaved thinking the budget covers every thinking block of a turn, so it may exceed
/// `max_tokens` (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking#interleaved-thinking).
const INTERLEAVED_THINKING: &str = "interleaved-thinking-2025-05-14";

/// The betas a request enables: `anthropic-beta` is a comma-separated list, and may be repeated.
fn betas(request: &Request) -> Checked<Vec<String>> {
    let mut betas = Vec::new();
    for (_, value) in request.headers.iter().filter(|(name, _)| name == "anthropic-beta") {
        for beta in value.split(',').map(str::trim) {
            if beta.is_empty() || !beta.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
                return Err(Invalid::standalone(
                    "anthropic-beta",
                    format!("Unexpected value(s) `{value}` for the `anthropic-beta` header."),
                ));
            }
            betas.push(beta.to_owned());
        }
    }
    Ok(betas)
}

fn beta_fields(body: &Obj, betas: &[String]) -> Checked<()> {
    for (field, prefix) in BETA_FIELDS {
        if body.get(field).is_some() && !betas.iter().any(|beta| beta.starts_with(prefix)) {
            return Err(Invalid::new(*field, "Extra inputs are not permitted"));
        }
    }
    Ok(())
}

/// Models from before extended thinking.
const NO_THINKING: &[&str] = &["claude-3-5", "claude-3-haiku", "claude-3-opus", "claude-3-sonnet"];
/// Models that think adaptively; the later ones (`ADAPTIVE_ONLY`) refuse a thinking budget.
const ADAPTIVE: &[&str] =
    &["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-sonnet-5", "claude-haiku-5"];
const ADAPTIVE_ONLY: &[&str] = &["claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-sonnet-5", "claude-haiku-5"];
const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];
/// Models with structured outputs: `output_config.format` and strict tools.
const STRUCTURED: &[&str] = &[
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
];

fn structured(model: &str) -> bool {
    STRUCTURED.iter().any(|m| model.starts_with(m))
}

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

pub struct Anthropic {
    key: String,
}

/// The `anthropic-version` values the mock understands; they differ in how
/// the key is sent and in which sampling parameters are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    June2023,
    October2026,
}

impl Version {
    fn of(request: &Request) -> Result<Self, String> {
        match request.header("anthropic-version") {
            None => Err("anthropic-version: header is required".to_owned()),
            Some("2023-06-01") => Ok(Version::June2023),
            Some("2026-10-21") => Ok(Version::October2026),
            Some(other) => Err(format!("anthropic-version: unknown version '{other}'")),
        }
    }
}

impl Anthropic {
    pub fn new(key: String) -> Self {
        Anthropic { key }
    }

    fn authorize(&self, request: &Request, version: Version) -> Result<(), Response> {
        let (presented, message) = match version {
            Version::June2023 => (request.header("x-api-key"), "invalid x-api-key"),
            Version::October2026 => {
                (request.header("authorization").and_then(|value| value.strip_prefix("Bearer ")), "invalid bearer token")
            }
        };
        if presented == Some(self.key.as_str()) { Ok(()) } else { Err(error_response(401, message)) }
    }
}

impl Provider for Anthropic {
    fn error(&self, status: u16, message: &str) -> Response {
        error_response(status, message)
    }

    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        overloaded_event()
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        let version = Version::of(request).map_err(|message| error_response(400, &message))?;
        self.authorize(request, version)?;
        let invalid = |invalid: Invalid| error_response(400, &invalid.to_string());
        let betas = betas(request).map_err(invalid)?;
        if request.path.ends_with("/messages/count_tokens") {
            let input_tokens = count_tokens(&request.body, &betas).map_err(invalid)?;
            return Ok(Answer { whole: Response::json(200, &CountOut { input_tokens }), events: None });
        }
        let parsed = parse(&request.body, version, cache, &betas, None).map_err(invalid)?;
        Ok(respond(&parsed))
    }
}

/// The script's reply to a parsed request, rendered.
fn respond(parsed: &Parsed) -> Answer {
    let mut reply = script::reply(&parsed.conversation);
    script::forced_call_alone(&parsed.conversation, &mut reply);
    // Structured outputs: the text is JSON in the requested schema.
    if let Some(format) = &parsed.format
        && reply.tool_call.is_none()
    {
        reply.text = format.sample_args().to_json();
        reply.usage.output = script::words(&reply.text);
    }
    render(parsed, &reply)
}

/// Claude on a cloud platform that takes Anthropic's body: Bedrock's InvokeModel
/// (<https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html>)
/// and Vertex AI's Anthropic publisher
/// (<https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>).
/// The model is in the path, never in the body, and the body names the platform's
/// `anthropic_version`.
pub struct Platform<'a> {
    pub model: &'a str,
    pub version: &'static str,
    /// Bedrock: the path says whether to stream, and the body may not; Vertex: `None`, the
    /// body's `stream` says.
    pub stream: Option<bool>,
    /// Bedrock takes the betas in the body's `anthropic_beta`; Vertex in the header.
    pub betas_in_body: bool,
}

/// Answers a platform's request as Anthropic would, after checking what the platform requires.
/// `Err` is the message of a 400.
pub fn hosted(request: &Request, cache: Cache, platform: &Platform) -> Result<Answer, String> {
    let body = validate::parse_body(&request.body).map_err(|e| e.to_string())?;
    let obj = Obj::new(&body, "").map_err(|e| e.to_string())?;
    match obj.get("anthropic_version").and_then(Value::as_str) {
        Some(version) if version == platform.version => {}
        Some(other) => return Err(format!("anthropic_version: unknown version '{other}', expected {}", platform.version)),
        None => return Err("anthropic_version: Field required".to_owned()),
    }
    let betas = if platform.betas_in_body {
        match obj.get("anthropic_beta") {
            None => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(_) => return Err("anthropic_beta: Input should be a list of strings".to_owned()),
        }
    } else {
        betas(request).map_err(|e| e.to_string())?
    };
    parse(&request.body, Version::June2023, cache, &betas, Some(platform)).map(|parsed| respond(&parsed)).map_err(|e| e.to_string())
}

/// A platform's token count (Vertex AI's `count-tokens:rawPredict`): Anthropic's request, the
/// model in the body, and the platform's `anthropic_version`.
pub fn hosted_count_tokens(request: &Request, version: &'static str) -> Result<Answer, String> {
    let mut body = validate::parse_body(&request.body).map_err(|e| e.to_string())?;
    let Some(members) = body.as_object_mut() else { return Err("Input should be an object".to_owned()) };
    match members.remove("anthropic_version") {
        Some(Value::String(v)) if v == version => {}
        Some(other) => return Err(format!("anthropic_version: unknown version {other}, expected {version}")),
        None => return Err("anthropic_version: Field required".to_owned()),
    }
    let betas = betas(request).map_err(|e| e.to_string())?;
    let raw = serde_json::to_vec(&body).expect("a parsed body serializes");
    let input_tokens = count_tokens(&raw, &betas).map_err(|e| e.to_string())?;
    Ok(Answer { whole: Response::json(200, &CountOut { input_tokens }), events: None })
}

/// The event Anthropic sends when a stream fails.
pub fn overloaded_event() -> String {
    sse(&Event::Error { error: ErrorDetail { kind: "overloaded_error", message: "Overloaded" } })
}

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

fn error_response(status: u16, message: &str) -> Response {
    let request_id = format!("req_mock{}", script::next_id());
    let body = ErrorOut { kind: "error", error: ErrorDetail { kind: error_type(status), message }, request_id: &request_id };
    Response::json(status, &body).with_header("request-id", request_id.clone())
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Debug)]
struct Parsed {
    model: String,
    stream: bool,
    /// Thinking is on: the answer opens with a thinking block.
    thinks: bool,
    /// `output_config.format`'s schema, as a tool whose sample input is the answer.
    format: Option<Tool>,
    conversation: Conversation,
}

/// `output_config.format.schema`, re-read for its property order (see [`KeyOrder`]).
#[derive(Deserialize)]
struct FormatOrder {
    output_config: Option<OutputConfigOrder>,
}

#[derive(Deserialize)]
struct OutputConfigOrder {
    format: Option<FormatSchemaOrder>,
}

#[derive(Deserialize)]
struct FormatSchemaOrder {
    schema: Option<SchemaOrder>,
}

fn json_format(body: &Obj, raw: &[u8]) -> Option<Tool> {
    let schema = body.get("output_config")?.get("format")?.get("schema")?;
    let order = serde_json::from_slice::<FormatOrder>(raw)
        .ok()
        .and_then(|o| o.output_config?.format?.schema?.properties)
        .map_or_else(Vec::new, |keys| keys.0);
    Some(Tool::new("response".to_owned(), schema, &order))
}

/// `thinking` and `output_config` as the Messages API checks them
/// (https://platform.claude.com/docs/en/build-with-claude/extended-thinking,
/// https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking,
/// https://platform.claude.com/docs/en/build-with-claude/effort). Whether Claude thinks.
fn thinking(body: &Obj, model: &str, max_tokens: u64, interleaved: bool) -> Checked<bool> {
    if let Some(value) = body.get("output_config") {
        let config = Obj::new(value, "output_config")?;
        config.only(&["effort", "format"])?;
        if let Some(effort) = config.opt_string("effort")?
            && !EFFORTS.contains(&effort)
        {
            return Err(Invalid::new(config.path("effort"), format!("Input should be {}", EFFORTS.join(", "))));
        }
        if let Some(format) = config.get("format") {
            let format = Obj::new(format, config.path("format"))?;
            format.only(&["type", "schema"])?;
            if format.string("type")? != "json_schema" {
                return Err(Invalid::new(format.path("type"), "Input should be 'json_schema'"));
            }
            if Obj::new(format.required("schema")?, format.path("schema"))?.string("type")? != "object" {
                return Err(Invalid::new(format.path("schema.type"), "The schema of a JSON output must be of type 'object'"));
            }
            if !structured(model) {
                return Err(Invalid::standalone(
                    config.path("format"),
                    format!("'{model}' does not support structured outputs (output_config.format)."),
                ));
            }
        }
    }
    let Some(value) = body.get("thinking") else { return Ok(false) };
    let thinking = Obj::new(value, "thinking")?;
    let named = |models: &[&str]| models.iter().any(|m| model.starts_with(m));
    let kind = thinking.string("type")?;
    if kind != "disabled" && named(NO_THINKING) {
        return Err(Invalid::standalone("thinking", format!("thinking is not supported for model {model}")));
    }
    match kind {
        "enabled" => {
            thinking.only(&["type", "budget_tokens"])?;
            if named(ADAPTIVE_ONLY) {
                return Err(Invalid::standalone(
                    "thinking.type",
                    "\"thinking.type.enabled\" is not supported for this model. Use \"thinking.type.adaptive\" and \"output_config.effort\" to control thinking behavior.",
                ));
            }
            let budget = thinking.positive_int("budget_tokens")?;
            if budget < 1024 {
                return Err(Invalid::new(thinking.path("budget_tokens"), "Input should be greater than or equal to 1024"));
            }
            if max_tokens <= budget && !interleaved {
                return Err(Invalid::standalone("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`."));
            }
        }
        "adaptive" => {
            thinking.only(&["type"])?;
            if !named(ADAPTIVE) {
                return Err(Invalid::standalone("thinking.type", format!("adaptive thinking is not supported on {model}")));
            }
        }
        "disabled" => {
            thinking.only(&["type"])?;
            return Ok(false);
        }
        _ => return Err(Invalid::new(thinking.path("type"), "Input should be 'enabled', 'adaptive' or 'disabled'")),
    }
    if body.get("temperature").and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
        return Err(Invalid::standalone(
            "temperature",
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking",
        ));
    }
    if body.get("top_p").and_then(Value::as_f64).is_some_and(|p| p < 0.95) {
        return Err(Invalid::standalone("top_p", "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."));
    }
    if body.get("top_k").is_some() {
        return Err(Invalid::standalone("top_k", "`top_k` must be unset when thinking is enabled."));
    }
    continues_with_thinking(body)?;
    Ok(true)
}

/// While Claude thinks, an assistant message whose tool calls the last message answers must
/// open with its thinking block.
fn continues_with_thinking(body: &Obj) -> Checked<()> {
    let messages = body.non_empty_array("messages")?;
    let [.., assistant, last] = messages else { return Ok(()) };
    let blocks = |m: &Value| m.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
    let answers_tools = last["role"] == "user" && blocks(last).iter().any(|b| b["type"] == "tool_result");
    let first = blocks(assistant).first().map(|b| b["type"].clone()).unwrap_or_default();
    if assistant["role"] == "assistant" && answers_tools && first != "thinking" && first != "redacted_thinking" {
        let at = messages.len() - 2;
        return Err(Invalid::new(
            format!("messages.{at}.content.0.type"),
            format!(
                "Expected `thinking` or `redacted_thinking`, but found `{}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
                first.as_str().unwrap_or_default()
            ),
        ));
    }
    Ok(())
}

/// A token-counting request, checked like a message request: the prompt's tokens.
fn count_tokens(raw: &[u8], betas: &[String]) -> Checked<u64> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(COUNT_TOKENS_FIELDS)?;
    beta_fields(&body, betas)?;
    let model = body.non_empty_string("model")?.to_owned();
    // No output limit here: only the budget's own rules apply.
    thinking(&body, &model, u64::MAX, true)?;
    let conversation = Conversation {
        system: system(&body)?,
        turns: messages(body.non_empty_array("messages")?)?,
        tools: tools(&body, raw, &model)?,
        tool_choice: tool_choice(&body)?,
        ..Default::default()
    };
    Ok(script::input_tokens(&conversation))
}

#[derive(Serialize)]
struct CountOut {
    input_tokens: u64,
}

fn parse(raw: &[u8], version: Version, cache: Cache, betas: &[String], platform: Option<&Platform>) -> Checked<Parsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    match platform {
        None => body.only(TOP_LEVEL_FIELDS)?,
        Some(p) => {
            // The platform's own members, less those its path carries.
            let mut allowed: Vec<&str> =
                TOP_LEVEL_FIELDS.iter().copied().filter(|f| *f != "model" && !(*f == "stream" && p.stream.is_some())).collect();
            allowed.push("anthropic_version");
            if p.betas_in_body {
                allowed.push("anthropic_beta");
            }
            body.only(&allowed)?;
        }
    }
    beta_fields(&body, betas)?;
    if let Some(tier) = body.opt_string("service_tier")?
        && !SERVICE_TIERS.contains(&tier)
    {
        return Err(Invalid::new("service_tier", format!("Input should be {}", SERVICE_TIERS.join(" or "))));
    }
    let model = match platform {
        Some(p) => p.model.to_owned(),
        None => body.non_empty_string("model")?.to_owned(),
    };
    if version == Version::October2026
        && let Some(key) = ["temperature", "top_p", "top_k"].into_iter().find(|key| body.get(key).is_some())
    {
        return Err(Invalid::new(key, "parameter is not supported in API version 2026-10-21"));
    }
    if body.get("temperature").is_some() && TEMPERATURE_DEPRECATED.iter().any(|prefix| model.starts_with(prefix)) {
        return Err(Invalid::standalone("temperature", "`temperature` is deprecated for this model."));
    }
    let max_tokens = body.positive_int("max_tokens")?;
    body.opt_number("temperature", 0.0..=1.0)?;
    body.opt_number("top_p", 0.0..=1.0)?;
    if body.get("top_k").is_some_and(|top_k| !top_k.is_u64()) {
        return Err(Invalid::new("top_k", "Input should be a non-negative integer"));
    }
    let stream = match platform.and_then(|p| p.stream) {
        Some(stream) => stream,
        None => body.opt_bool("stream")?.unwrap_or(false),
    };
    let thinks = thinking(&body, &model, max_tokens, betas.iter().any(|beta| beta == INTERLEAVED_THINKING))?;
    let stop = stop_sequences(&body)?;
    metadata(&body)?;
    let system = system(&body)?;
    let turns = messages(body.non_empty_array("messages")?)?;
    let tools = tools(&body, raw, &model)?;
    let tool_choice = tool_choice(&body)?;
    let format = json_format(&body, raw);
    Ok(Parsed {
        model,
        stream,
        thinks,
        format,
        conversation: Conversation { system, turns, tools, tool_choice, max_tokens: Some(max_tokens), stop, cache },
    })
}

fn stop_sequences(body: &Obj) -> Checked<Vec<String>> {
    let path = body.path("stop_sequences");
    body.opt_array("stop_sequences")?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, item)| validate::string(item, &join(&path, index)).map(str::to_owned))
        .collect()
}

fn metadata(body: &Obj) -> Checked<()> {
    let Some(metadata) = body.get("metadata") else {
        return Ok(());
    };
    let metadata = Obj::new(metadata, "metadata")?;
    metadata.only(&["user_id"])?;
    metadata.opt_string("user_id").map(|_| ())
}

fn system(body: &Obj) -> Checked<Vec<String>> {
    let path = body.path("system");
    match body.get("system") {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let block = Obj::new(item, join(&path, index))?;
                if block.string("type")? != "text" {
                    return Err(Invalid::new(block.path("type"), "Input should be 'text'"));
                }
                text_block(&block)
            })
            .collect(),
        Some(_) => Err(Invalid::new(path, "Input should be a valid string or a list of text blocks")),
    }
}

fn messages(items: &[Value]) -> Checked<Vec<Turn>> {
    let mut turns: Vec<Turn> = Vec::new();
    // Ids of the tool_use blocks in the message before the current one.
    let mut open_tool_uses: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = join("messages", index);
        let message = Obj::new(item, path.as_str())?;
        message.only(&["role", "content"])?;
        let role = match message.string("role")? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(Invalid::new(message.path("role"), "Input should be 'user' or 'assistant'"));
            }
        };
        match turns.last() {
            None if role != Role::User => {
                return Err(Invalid::new(message.path("role"), "The first message must use the \"user\" role"));
            }
            Some(previous) if previous.role == role => {
                return Err(Invalid::new(message.path("role"), "roles must alternate between \"user\" and \"assistant\""));
            }
            _ => {}
        }
        let content = content(&message, role)?;
        for (block, id) in &content.tool_results {
            if !open_tool_uses.contains(id) {
                return Err(Invalid::new(
                    join(&message.path("content"), block),
                    format!(
                        "unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    ),
                ));
            }
        }
        let unanswered: Vec<&str> = open_tool_uses
            .iter()
            .filter(|id| !content.tool_results.iter().any(|(_, answered)| answered == *id))
            .map(String::as_str)
            .collect();
        if !unanswered.is_empty() {
            return Err(Invalid::new(
                path,
                format!(
                    "`tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    unanswered.join(", ")
                ),
            ));
        }
        open_tool_uses = content.tool_uses;
        turns.push(Turn { role, blocks: content.blocks });
    }
    Ok(turns)
}

#[derive(Default)]
struct Content {
    blocks: Vec<Block>,
    tool_uses: Vec<String>,
    /// Block index and `tool_use_id` of each tool_result.
    tool_results: Vec<(usize, String)>,
}

fn content(message: &Obj, role: Role) -> Checked<Content> {
    let path = message.path("content");
    let mut content = Content::default();
    let items = match message.required("content")? {
        Value::String(text) if !text.is_empty() => {
            content.blocks.push(Block::Text(text.clone()));
            return Ok(content);
        }
        Value::Array(items) if !items.is_empty() => items,
        Value::String(_) | Value::Array(_) => {
            return Err(Invalid::new(path, "content must be non-empty"));
        }
        _ => {
            return Err(Invalid::new(path, "Input should be a valid string or a list of content blocks"));
        }
    };
    for (index, item) in items.iter().enumerate() {
        let block_path = join(&path, index);
        let block = Obj::new(item, &block_path)?;
        match block.string("type")? {
            "tool_use" => {
                if role != Role::Assistant {
                    return Err(Invalid::new(block_path, "`tool_use` blocks can only be in `assistant` messages"));
                }
                let (id, call) = tool_use(&block)?;
                content.tool_uses.push(id);
                content.blocks.push(call);
            }
            "tool_result" => {
                if role != Role::User {
                    return Err(Invalid::new(block_path, "`tool_result` blocks can only be in `user` messages"));
                }
                if index > content.tool_results.len() {
                    return Err(Invalid::new(block_path, "`tool_result` blocks must come before any other content in a message"));
                }
                let (id, result) = tool_result(&block)?;
                content.tool_results.push((index, id));
                content.blocks.push(result);
            }
            // Earlier turns' thinking goes back as Claude wrote it; the script does not read it.
            "thinking" | "redacted_thinking" if role == Role::Assistant => thinking_block(&block)?,
            _ => content.blocks.extend(plain_block(&block, &["text", "image", "document"])?),
        }
    }
    Ok(content)
}

/// A text, image or document block, when its type is among `allowed`;
/// `None` for blocks the script ignores.
fn plain_block(block: &Obj, allowed: &[&str]) -> Checked<Option<Block>> {
    let kind = block.string("type")?;
    if !allowed.contains(&kind) {
        return Err(Invalid::new(block.path("type"), format!("Input should be one of: {}", allowed.join(", "))));
    }
    match kind {
        "text" => text_block(block).map(|text| Some(Block::Text(text))),
        "image" => {
            block.only(&["type", "source", "cache_control"])?;
            cache_control(block)?;
            source(block, IMAGE_TYPES)?;
            Ok(Some(Block::Image))
        }
        "document" => {
            block.only(&["type", "source", "title", "context", "citations", "cache_control"])?;
            cache_control(block)?;
            source(block, &["application/pdf"])?;
            block.opt_string("title")?;
            block.opt_string("context")?;
            Ok(None)
        }
        _ => Err(Invalid::new(block.path("type"), format!("Input should be one of: {}", allowed.join(", ")))),
    }
}

/// A `thinking` block (its text and signature) or a `redacted_thinking` block (its data), as
/// an assistant turn carries them back (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking).
fn thinking_block(block: &Obj) -> Checked<()> {
    if block.string("type")? == "thinking" {
        block.only(&["type", "thinking", "signature"])?;
        block.string("thinking")?;
        block.non_empty_string("signature").map(|_| ())
    } else {
        block.only(&["type", "data"])?;
        block.non_empty_string("data").map(|_| ())
    }
}

fn text_block(block: &Obj) -> Checked<String> {
    block.only(&["type", "text", "cache_control", "citations"])?;
    cache_control(block)?;
    block.non_empty_string("text").map(str::to_owned)
}

fn source(block: &Obj, media_types: &[&str]) -> Checked<()> {
    let source = block.object("source")?;
    match source.string("type")? {
        "base64" => {
            source.only(&["type", "media_type", "data"])?;
            let media_type = source.string("media_type")?;
            if !media_types.contains(&media_type) {
                return Err(Invalid::new(source.path("media_type"), format!("Input should be one of: {}", media_types.join(", "))));
            }
            source.non_empty_string("data").map(|_| ())
        }
        "url" => {
            source.only(&["type", "url"])?;
            source.non_empty_string("url").map(|_| ())
        }
        _ => Err(Invalid::new(source.path("type"), "Input should be 'base64' or 'url'")),
    }
}

fn cache_control(block: &Obj) -> Checked<()> {
    let Some(value) = block.get("cache_control") else {
        return Ok(());
    };
    let cache_control = Obj::new(value, block.path("cache_control"))?;
    cache_control.only(&["type", "ttl"])?;
    if cache_control.string("type")? != "ephemeral" {
        return Err(Invalid::new(cache_control.path("type"), "Input should be 'ephemeral'"));
    }
    cache_control.opt_string("ttl").map(|_| ())
}

fn tool_use(block: &Obj) -> Checked<(String, Block)> {
    block.only(&["type", "id", "name", "input", "cache_control"])?;
    cache_control(block)?;
    let id = block.non_empty_string("id")?.to_owned();
    let name = block.non_empty_string("name")?.to_owned();
    let input = block.required("input")?;
    Obj::new(input, block.path("input"))?;
    let args = input.to_string();
    Ok((id, Block::ToolCall { name, args }))
}

fn tool_result(block: &Obj) -> Checked<(String, Block)> {
    block.only(&["type", "tool_use_id", "content", "is_error", "cache_control"])?;
    cache_control(block)?;
    block.opt_bool("is_error")?;
    let id = block.non_empty_string("tool_use_id")?.to_owned();
    let path = block.path("content");
    let (text, images) = match block.get("content") {
        None => (String::new(), 0),
        Some(Value::String(text)) => (text.clone(), 0),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            let mut images = 0;
            for (index, item) in items.iter().enumerate() {
                match plain_block(&Obj::new(item, join(&path, index))?, &["text", "image"])? {
                    Some(Block::Text(text)) => texts.push(text),
                    Some(Block::Image) => images += 1,
                    _ => {}
                }
            }
            (texts.join(" "), images)
        }
        Some(_) => {
            return Err(Invalid::new(path, "Input should be a valid string or a list of content blocks"));
        }
    };
    Ok((id, Block::ToolResult { text, images }))
}

fn tools(body: &Obj, raw: &[u8], model: &str) -> Checked<Vec<Tool>> {
    let Some(items) = body.opt_array("tools")? else {
        return Ok(Vec::new());
    };
    let orders = serde_json::from_slice::<ToolOrders>(raw).map(|orders| orders.tools.unwrap_or_default()).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut tools = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tool = Obj::new(item, join("tools", index))?;
        tool.only(&["type", "name", "description", "input_schema", "cache_control", "strict"])?;
        // Client tools may say so; server tools (web search, code execution) the mock does not run.
        if let Some(kind) = tool.opt_string("type")?
            && kind != "custom"
        {
            return Err(Invalid::new(tool.path("type"), "Input should be 'custom'"));
        }
        if tool.opt_bool("strict")?.is_some() && !structured(model) {
            return Err(Invalid::standalone(tool.path("strict"), format!("'{model}' does not support strict tool use.")));
        }
        let name = validate::tool_name(tool.required("name")?, &tool.path("name"), 128)?;
        if !seen.insert(name) {
            return Err(Invalid::new(tool.path("name"), "Tool names must be unique"));
        }
        tool.opt_string("description")?;
        cache_control(&tool)?;
        let schema_value = tool.required("input_schema")?;
        let schema = Obj::new(schema_value, tool.path("input_schema"))?;
        if schema.string("type")? != "object" {
            return Err(Invalid::new(schema.path("type"), "Input should be 'object'"));
        }
        if let Some(properties) = schema.get("properties") {
            Obj::new(properties, schema.path("properties"))?;
        }
        let order = orders.get(index).and_then(|order| order.input_schema.properties.as_ref()).map_or(&[][..], |keys| &keys.0);
        tools.push(Tool::new(name.to_owned(), schema_value, order));
    }
    Ok(tools)
}

/// Tool schemas re-read for their property order (see [`KeyOrder`]).
#[derive(Deserialize)]
struct ToolOrders {
    tools: Option<Vec<ToolOrder>>,
}

#[derive(Deserialize)]
struct ToolOrder {
    input_schema: SchemaOrder,
}

#[derive(Deserialize)]
struct SchemaOrder {
    properties: Option<KeyOrder>,
}

fn tool_choice(body: &Obj) -> Checked<ToolChoice> {
    let Some(value) = body.get("tool_choice") else {
        return Ok(ToolChoice::Auto);
    };
    let choice = Obj::new(value, "tool_choice")?;
    choice.only(&["type", "name", "disable_parallel_tool_use"])?;
    choice.opt_bool("disable_parallel_tool_use")?;
    let kind = choice.string("type")?;
    if kind != "tool" && choice.get("name").is_some() {
        return Err(Invalid::new(choice.path("name"), "Extra inputs are not permitted"));
    }
    match kind {
        "auto" => Ok(ToolChoice::Auto),
        "any" => Ok(ToolChoice::Required),
        "none" => Ok(ToolChoice::None),
        "tool" => Ok(ToolChoice::Named(choice.non_empty_string("name")?.to_owned())),
        _ => Err(Invalid::new(choice.path("type"), "Input should be 'auto', 'any', 'tool' or 'none'")),
    }
}

/// What Claude thinks, when it thinks.
const THOUGHT: &str = "Let me think this through.";

fn render(parsed: &Parsed, reply: &Reply) -> Answer {
    let id = format!("msg_mock{}", script::next_id());
    let request_id = format!("req_mock{}", script::next_id());
    let tool_id = reply.tool_call.as_ref().map(|_| format!("toolu_mock_{}", script::next_id()));
    let mut content = Vec::new();
    if parsed.thinks {
        content.push(ContentOut::Thinking { thinking: THOUGHT, signature: "bW9jay10aGlua2luZy1zaWduYXR1cmU=" });
    }
    if !reply.text.is_empty() {
        content.push(ContentOut::Text { text: &reply.text });
    }
    if let (Some(call), Some(tool_id)) = (&reply.tool_call, &tool_id) {
        content.push(ContentOut::ToolUse { id: tool_id, name: &call.name, input: &call.args });
    }
    let (stop_reason, stop_sequence) = match &reply.finish {
        Finish::EndTurn => ("end_turn", None),
        Finish::MaxTokens => ("max_tokens", None),
        Finish::StopSequence(sequence) => ("stop_sequence", Some(sequence.as_str())),
        Finish::ToolUse => ("tool_use", None),
    };
    let usage = reply.usage;
    let message = MessageOut {
        id: &id,
        kind: "message",
        role: "assistant",
        model: &parsed.model,
        content,
        stop_reason: Some(stop_reason),
        stop_sequence,
        usage: UsageOut {
            input_tokens: usage.input,
            cache_creation_input_tokens: usage.cache_write,
            cache_read_input_tokens: usage.cache_read,
            output_tokens: usage.output,
        },
    };
    let whole = Response::json(200, &message).with_header("request-id", request_id);
    let events = parsed.stream.then(|| stream_events(&message));
    Answer { whole, events }
}

/// The events that stream `message`, in the order Anthropic sends them.
fn stream_events(message: &MessageOut) -> Vec<String> {
    let start = MessageOut {
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: UsageOut { output_tokens: 1, ..message.usage },
        ..*message
    };
    let mut events = vec![sse(&Event::MessageStart { message: start })];
    // Anthropic sends its first ping right after the first block starts.
    if message.content.is_empty() {
        events.push(sse(&Event::Ping));
    }
    let no_input = Args::default();
    for (index, block) in message.content.iter().enumerate() {
        let (start, deltas) = match block {
            ContentOut::Text { text } => (
                ContentOut::Text { text: "" },
                script::word_pieces(text).into_iter().map(|text| DeltaOut::Text { text: text.to_owned() }).collect::<Vec<_>>(),
            ),
            ContentOut::Thinking { thinking, signature } => (
                ContentOut::Thinking { thinking: "", signature: "" },
                script::word_pieces(thinking)
                    .into_iter()
                    .map(|thinking| DeltaOut::Thinking { thinking: thinking.to_owned() })
                    .chain([DeltaOut::Signature { signature: (*signature).to_owned() }])
                    .collect(),
            ),
            ContentOut::ToolUse { id, name, input } => {
                let json = input.to_json();
                let pieces = std::iter::once("").chain(script::thirds(&json));
                (
                    ContentOut::ToolUse { id, name, input: &no_input },
                    pieces.map(|piece| DeltaOut::InputJson { partial_json: piece.to_owned() }).collect(),
                )
            }
        };
        events.push(sse(&Event::ContentBlockStart { index, content_block: start }));
        if index == 0 {
            events.push(sse(&Event::Ping));
        }
        events.extend(deltas.into_iter().map(|delta| sse(&Event::ContentBlockDelta { index, delta })));
        events.push(sse(&Event::ContentBlockStop { index }));
    }
    events.push(sse(&Event::MessageDelta {
        delta: StopOut { stop_reason: message.stop_reason, stop_sequence: message.stop_sequence },
        usage: OutputUsage { output_tokens: message.usage.output_tokens },
    }));
    events.push(sse(&Event::MessageStop));
    events
}

fn sse(event: &Event) -> String {
    let json = serde_json::to_string(event).expect("response types always serialize");
    format!("event: {}\ndata: {json}\n\n", event.name())
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<ContentOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentOut<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: &'a Args },
}

#[derive(Serialize, Clone, Copy)]
struct UsageOut {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: MessageOut<'a> },
    ContentBlockStart { index: usize, content_block: ContentOut<'a> },
    Ping,
    ContentBlockDelta { index: usize, delta: DeltaOut },
    ContentBlockStop { index: usize },
    MessageDelta { delta: StopOut<'a>, usage: OutputUsage },
    MessageStop,
    Error { error: ErrorDetail<'a> },
}

impl Event<'_> {
    /// The SSE event name, which Anthropic always sets to the payload's type.
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }
}

/// A `content_block_delta` payload, named by its `type` (`text_delta`, …).
#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
}

#[derive(Serialize)]
struct StopOut<'a> {
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "key";

    fn request(body: &str, headers: &[(&str, &str)]) -> Request {
        let mut raw = String::from("POST /v1/messages HTTP/1.1\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    fn send(body: &Value, headers: &[(&str, &str)]) -> Result<Answer, Response> {
        let request = request(&body.to_string(), headers);
        Anthropic::new(KEY.to_owned()).answer(&request, Cache::default())
    }

    const LEGACY: &[(&str, &str)] = &[("anthropic-version", "2023-06-01"), ("x-api-key", KEY)];

    fn answer(body: Value) -> Result<Answer, Response> {
        send(&body, LEGACY)
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    /// The error message of a rejected request.
    fn rejection(result: Result<Answer, Response>) -> (u16, Value) {
        let response = result.err().expect("the request should be rejected");
        (response.status, json_of(&response))
    }

    fn base(messages: Value) -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages})
    }

    fn weather_tools() -> Value {
        json!([{"name": "get_weather", "description": "Weather", "input_schema": {
            "type": "object",
            "properties": {"unit": {"type": "string"}, "city": {"type": "string"}, "days": {"type": "number"}},
        }}])
    }

    #[test]
    fn accepts_valid_bodies() {
        let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}});
        let document = json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}});
        let bodies = [
            base(json!([{"role": "user", "content": "hi"}])),
            json!({
                "model": "claude-opus-4-1", "max_tokens": 5, "stream": false, "temperature": 0.5,
                "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
                "system": [{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
                "tools": weather_tools(), "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
                "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, image, document]}],
            }),
            base(json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "text", "text": "thanks"},
                ]},
            ])),
        ];
        for body in bodies {
            assert!(answer(body.clone()).is_ok(), "rejected {body}");
        }
    }

    #[test]
    fn rejects_invalid_bodies_naming_the_field() {
        let cases = [
            (json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}), "max_tokens: Field required"),
            (json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}), "max_tokens:"),
            (
                json!({"model": "m", "max_tokens": 5, "n": 1, "messages": [{"role": "user", "content": "x"}]}),
                "n: Extra inputs are not permitted",
            ),
            (base(json!([{"role": "user", "content": "x", "tool_calls": []}])), "messages.0.tool_calls:"),
            (base(json!([{"role": "assistant", "content": "x"}])), "messages.0.role:"),
            (base(json!([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}])), "messages.1.role:"),
            (base(json!([{"role": "system", "content": "x"}])), "messages.0.role:"),
            (base(json!([{"role": "user", "content": ""}])), "messages.0.content:"),
            (base(json!([{"role": "user", "content": [{"type": "text", "text": ""}]}])), "messages.0.content.0.text:"),
            (
                base(
                    json!([{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
                ),
                "messages.0.content.0.source.media_type:",
            ),
            (
                base(json!([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}])),
                "messages.0.content.0:",
            ),
            (
                base(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": "{}"}]},
                ])),
                "messages.1.content.0.input:",
            ),
            (
                base(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2"}]},
                ])),
                "messages.2.content.0: unexpected `tool_use_id`",
            ),
            (
                base(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "no result"},
                ])),
                "messages.2: `tool_use` ids were found without `tool_result` blocks",
            ),
            (
                base(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "tool_result", "tool_use_id": "t1"}]},
                ])),
                "messages.2.content.1:",
            ),
            (json!({"model": "m", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}), "temperature:"),
            (
                json!({"model": "m", "max_tokens": 5, "tool_choice": {"type": "tool"}, "messages": [{"role": "user", "content": "x"}]}),
                "tool_choice.name: Field required",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "tools": [{"name": "f", "input_schema": {"type": "string"}}], "messages": [{"role": "user", "content": "x"}]}),
                "tools.0.input_schema.type:",
            ),
            (
                json!({"model": "m", "max_tokens": 5, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}),
                "system.0.type:",
            ),
        ];
        for (body, expected) in cases {
            let (status, error) = rejection(answer(body.clone()));
            assert_eq!(status, 400, "{body}");
            assert_eq!(error["type"], "error");
            assert_eq!(error["error"]["type"], "invalid_request_error");
            assert!(error["request_id"].as_str().unwrap().starts_with("req_mock"));
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(expected), "{body}: {message}");
        }
    }

    #[test]
    fn checks_thinking_like_anthropic_and_answers_with_a_thinking_block() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        let with = |model: &str, max_tokens: u64, extra: Value| {
            let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": hi});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            answer(body)
        };
        let budget = json!({"thinking": {"type": "enabled", "budget_tokens": 1024}});
        let whole = json_of(&with("claude-sonnet-4-5", 2000, budget.clone()).ok().unwrap().whole);
        assert_eq!(whole["content"][0], json!({"type": "thinking", "thinking": THOUGHT, "signature": "bW9jay10aGlua2luZy1zaWduYXR1cmU="}));
        assert_eq!(whole["content"][1]["type"], "text");
        let adaptive = json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}});
        assert!(with("claude-opus-4-6", 100, adaptive.clone()).is_ok());
        let refused = [
            ("claude-sonnet-4-5", 1024, budget.clone()),
            ("claude-sonnet-4-5", 5000, json!({"thinking": {"type": "enabled", "budget_tokens": 1000}})),
            ("claude-opus-4-7", 5000, budget.clone()),
            ("claude-sonnet-4-5", 100, adaptive.clone()),
            ("claude-3-5-haiku-20241022", 5000, budget.clone()),
            ("claude-opus-4-6", 100, json!({"output_config": {"effort": "extreme"}})),
            ("claude-sonnet-4-5", 5000, json!({"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 0.5})),
        ];
        for (model, max_tokens, extra) in refused {
            assert_eq!(rejection(with(model, max_tokens, extra.clone())).0, 400, "{model} {extra}");
        }
        // a tool loop continued without the thinking block that opened the call
        let mut body = base(json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]));
        body["tools"] = weather_tools();
        body["max_tokens"] = json!(5000);
        assert!(answer(body.clone()).is_ok());
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        let (status, error) = rejection(answer(body));
        assert_eq!(status, 400);
        assert!(error["error"]["message"].as_str().unwrap().contains("must start with a thinking block"), "{error}");
    }

    #[test]
    fn answers_in_the_json_schema_and_takes_strict_tools_on_models_with_structured_outputs() {
        let format = json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}});
        let mut body = base(json!([{"role": "user", "content": "hi"}]));
        body["output_config"] = format;
        let whole = json_of(&answer(body.clone()).ok().unwrap().whole);
        assert_eq!(whole["content"][0]["text"], r#"{"city":"Paris"}"#);
        body["model"] = json!("claude-3-5-haiku-20241022");
        assert_eq!(rejection(answer(body)).0, 400);
        let mut strict = base(json!([{"role": "user", "content": "hi"}]));
        strict["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}, "strict": true}]);
        assert!(answer(strict.clone()).is_ok());
        strict["model"] = json!("claude-3-5-haiku-20241022");
        assert_eq!(rejection(answer(strict)).0, 400);
    }

    #[test]
    fn enforces_versions_and_keys() {
        let body = base(json!([{"role": "user", "content": "x"}]));
        assert_eq!(rejection(send(&body, &[("x-api-key", KEY)])).0, 400);
        let unknown = [("anthropic-version", "2024-01-01"), ("x-api-key", KEY)];
        assert_eq!(rejection(send(&body, &unknown)).0, 400);
        let (status, error) = rejection(send(&body, &[("anthropic-version", "2023-06-01"), ("x-api-key", "no")]));
        assert_eq!((status, &error["error"]["type"]), (401, &json!("authentication_error")));
        let new_version_old_auth = [("anthropic-version", "2026-10-21"), ("x-api-key", KEY)];
        assert_eq!(rejection(send(&body, &new_version_old_auth)).0, 401);
        let bearer = format!("Bearer {KEY}");
        let new_version = [("anthropic-version", "2026-10-21"), ("authorization", bearer.as_str())];
        assert!(send(&body, &new_version).is_ok());
        let mut with_temperature = body.clone();
        with_temperature["temperature"] = json!(0.2);
        let (status, error) = rejection(send(&with_temperature, &new_version));
        assert_eq!(status, 400);
        assert_eq!(error["error"]["message"], "temperature: parameter is not supported in API version 2026-10-21");
        with_temperature["model"] = json!("claude-opus-4-7-20260101");
        let (_, error) = rejection(answer(with_temperature));
        assert_eq!(error["error"]["message"], "`temperature` is deprecated for this model.");
    }

    #[test]
    fn answers_with_a_message() {
        // Written out by hand: `json!` would sort the schema's properties.
        let body = r#"{"model": "claude-sonnet-4-5", "max_tokens": 100,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {
                "unit": {"type": "string"}, "city": {"type": "string"}, "days": {"type": "number"}}}}],
            "messages": [{"role": "user", "content": "weather in Paris"}]}"#;
        let answer = Anthropic::new(KEY.to_owned()).answer(&request(body, LEGACY), Cache::default()).ok().unwrap();
        let body = json_of(&answer.whole);
        assert_eq!(body["type"], "message");
        assert_eq!(body["stop_reason"], "tool_use");
        assert_eq!(body["stop_sequence"], Value::Null);
        assert_eq!(body["content"][0], json!({"type": "text", "text": "Let me check."}));
        let tool_use = &body["content"][1];
        assert!(tool_use["id"].as_str().unwrap().starts_with("toolu_mock_"));
        assert_eq!(tool_use["input"], json!({"unit": "Paris", "city": "Paris", "days": 1}));
        // Schema order survives into the wire format.
        let raw = String::from_utf8(answer.whole.body).unwrap();
        assert!(raw.contains(r#""input":{"unit":"Paris","city":"Paris","days":1}"#));
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 13})
        );
    }

    fn parse_events(events: &[String]) -> Vec<(String, Value)> {
        events
            .iter()
            .map(|event| {
                let (name, data) = event
                    .strip_prefix("event: ")
                    .and_then(|rest| rest.strip_suffix("\n\n"))
                    .and_then(|rest| rest.split_once("\ndata: "))
                    .expect("event framing");
                (name.to_owned(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    #[test]
    fn streams_events_in_anthropic_order() {
        let mut body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true, "tools": weather_tools(),
            "messages": [{"role": "user", "content": "weather in Paris"}],
        });
        let streamed = answer(body.clone()).ok().unwrap();
        body["stream"] = json!(false);
        let whole = json_of(&answer(body).ok().unwrap().whole);
        let events = parse_events(&streamed.events.unwrap());
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert!(events.iter().all(|(name, data)| data["type"] == name.as_str()));
        let start = &events[0].1["message"];
        assert_eq!(start["content"], json!([]));
        assert_eq!(start["stop_reason"], Value::Null);
        assert_eq!(start["usage"]["output_tokens"], 1);
        assert_eq!(start["usage"]["input_tokens"], whole["usage"]["input_tokens"]);
        let text: String = events.iter().filter_map(|(_, data)| data["delta"]["text"].as_str()).collect();
        assert_eq!(text, "Let me check.");
        assert_eq!(events[7].1["content_block"]["input"], json!({}));
        assert_eq!(events[8].1["delta"]["partial_json"], "");
        let json: String = events.iter().filter_map(|(_, data)| data["delta"]["partial_json"].as_str()).collect();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), whole["content"][1]["input"]);
        let delta = &events[13].1;
        assert_eq!(delta["delta"], json!({"stop_reason": "tool_use", "stop_sequence": null}));
        assert_eq!(delta["usage"]["output_tokens"], whole["usage"]["output_tokens"]);
    }

    fn with_path(path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Answer, Response> {
        let body = body.to_string();
        let mut raw = format!("POST {path} HTTP/1.1\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        Anthropic::new(KEY.to_owned()).answer(&request, Cache::default())
    }

    #[test]
    fn counts_tokens_of_the_prompt_without_output_settings() {
        let body = json!({"model": "claude-sonnet-4-5", "system": "Be brief", "tools": weather_tools(),
            "messages": [{"role": "user", "content": "one two three"}]});
        let counted = with_path("/v1/messages/count_tokens", &body, LEGACY).ok().unwrap();
        assert!(counted.events.is_none());
        // 2 system words, the tool's name, 3 message words
        assert_eq!(json_of(&counted.whole), json!({"input_tokens": 6}));
        let mut with_limit = body.clone();
        with_limit["max_tokens"] = json!(10);
        let (status, error) = rejection(with_path("/v1/messages/count_tokens", &with_limit, LEGACY));
        assert_eq!((status, error["error"]["message"].as_str().unwrap()), (400, "max_tokens: Extra inputs are not permitted"));
        let unauthorized = [("anthropic-version", "2023-06-01"), ("x-api-key", "no")];
        assert_eq!(rejection(with_path("/v1/messages/count_tokens", &body, &unauthorized)).0, 401);
    }

    #[test]
    fn takes_documented_members_and_beta_members_only_under_their_beta() {
        let mut body = base(json!([{"role": "user", "content": "hi"}]));
        body["service_tier"] = json!("auto");
        body["metadata"] = json!({"user_id": "u-1"});
        assert!(answer(body.clone()).is_ok());
        body["service_tier"] = json!("priority_only");
        assert!(rejection(answer(body.clone())).1["error"]["message"].as_str().unwrap().starts_with("service_tier:"));
        body["service_tier"] = json!("standard_only");
        body["context_management"] = json!({"edits": [{"type": "clear_tool_uses_20250919"}]});
        let (status, error) = rejection(answer(body.clone()));
        assert_eq!((status, error["error"]["message"].as_str().unwrap()), (400, "context_management: Extra inputs are not permitted"));
        let beta = [LEGACY, &[("anthropic-beta", "claude-code-20250219, context-management-2025-06-27")]].concat();
        assert!(send(&body, &beta).is_ok());
        let malformed = [LEGACY, &[("anthropic-beta", "a,,b")]].concat();
        assert_eq!(rejection(send(&body, &malformed)).0, 400);
    }

    #[test]
    fn interleaved_thinking_lets_the_budget_exceed_max_tokens() {
        let mut body = base(json!([{"role": "user", "content": "hi"}]));
        body["max_tokens"] = json!(2000);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 4000});
        assert_eq!(rejection(answer(body.clone())).0, 400);
        let interleaved = [LEGACY, &[("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")]].concat();
        assert!(send(&body, &interleaved).is_ok());
    }

    #[test]
    fn takes_thinking_blocks_back_in_assistant_turns_only() {
        let thought = json!({"type": "thinking", "thinking": "hmm", "signature": "c2ln"});
        let mut body = base(json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [thought, {"type": "redacted_thinking", "data": "ZGF0YQ=="},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]));
        body["tools"] = weather_tools();
        body["max_tokens"] = json!(5000);
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
        let whole = json_of(&answer(body).ok().unwrap().whole);
        assert_eq!(whole["content"][1]["text"], "Tool results: sunny");
        let in_user_turn = base(json!([{"role": "user", "content": [thought]}]));
        assert_eq!(rejection(answer(in_user_turn)).0, 400);
    }

    #[test]
    fn reports_stop_sequences() {
        let body = json!({"model": "m", "max_tokens": 100, "stop_sequences": ["said"],
            "messages": [{"role": "user", "content": "hi"}]});
        let body = json_of(&answer(body).ok().unwrap().whole);
        assert_eq!(body["content"][0]["text"], "Hello! You ");
        assert_eq!(body["stop_reason"], "stop_sequence");
        assert_eq!(body["stop_sequence"], "said");
    }
}
