//! Cohere v2 Chat and Embed ↔ OpenAI Chat Completions and Embeddings, both ways, streaming
//! included.
//! References: https://docs.cohere.com/reference/chat, https://docs.cohere.com/reference/chat-stream,
//! https://docs.cohere.com/docs/streaming, https://docs.cohere.com/reference/embed,
//! https://docs.cohere.com/reference/errors, https://docs.cohere.com/docs/how-does-cohere-pricing-work.

use super::chunks::{ChunkWriter, ToolCallIndex, malformed_event};
use super::completion::{self, Answer};
use super::turns::legacy_function_role;
use super::{CompileInput, CompiledProvider, Destination, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::openai::ApiError;
use crate::openai::embeddings::{self, EmbeddingsRequest};
use crate::openai::error::kind_for_status;
use crate::openai::request::{ChatRequest, Content, Message, Part, Role, Str, ToolChoice};
use crate::openai::response::ChunkHeader;
use crate::schema::{ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Cohere has no settings beyond the common ones.
#[derive(Debug)]
pub struct Settings;

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/v2"
    }

    fn default_host(_spec: &ProviderSpec) -> Option<String> {
        Some("api.cohere.com".into())
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        let CompileInput { base_path, key, .. } = *input;
        Ok(CompiledProvider {
            settings: Settings,
            chat_path: format!("{base_path}/chat"),
            auth: key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))),
            headers: Vec::new(),
            missing_env: Vec::new(),
        })
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _raw: &[u8],
        to: &Destination,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_request(provider, req, to.model, edits)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &Destination,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, req, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

// ---- request ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct ChatBody<'r> {
    model: &'r str,
    messages: Vec<Turn<'r>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDef<'r>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    strict_tools: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormatOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<&'r RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Turn<'r> {
    System {
        content: ContentOut<'r>,
    },
    User {
        content: ContentOut<'r>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ContentOut<'r>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<Cow<'r, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallReq<'r>>,
    },
    Tool {
        tool_call_id: &'r str,
        content: ContentOut<'r>,
    },
}

/// A string, or content blocks (Cohere takes both for every role).
#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'r> {
    Text(&'r str),
    Blocks(Vec<BlockOut<'r>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'r> {
    Text { text: &'r str },
    ImageUrl { image_url: ImageOut<'r> },
}

#[derive(Serialize)]
struct ImageOut<'r> {
    url: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'r str>,
}

/// A tool call replayed to Cohere: OpenAI's shape, arguments as a JSON-encoded string.
#[derive(Serialize)]
struct ToolCallReq<'r> {
    id: &'r str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionReq<'r>,
}

#[derive(Serialize)]
struct FunctionReq<'r> {
    name: &'r str,
    arguments: &'r str,
}

#[derive(Serialize)]
struct ToolDef<'r> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDef<'r>,
}

#[derive(Serialize)]
struct FunctionDef<'r> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    /// Cohere requires `parameters`; OpenAI lets a function omit them.
    parameters: Schema<'r>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Schema<'r> {
    Given(&'r RawValue),
    NoParameters { r#type: &'static str, properties: NoProperties },
}

#[derive(Serialize)]
struct NoProperties {}

#[derive(Serialize)]
struct ResponseFormatOut<'r> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<&'r RawValue>,
}

/// OpenAI's `response_format.json_schema`: Cohere takes only the schema itself.
#[derive(Deserialize)]
struct JsonSchemaSpec<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

pub fn build_request(provider: &Provider, req: &ChatRequest, upstream_model: &str, edits: &mut Edits) -> Result<UpstreamRequest, ApiError> {
    check_unsupported(provider, req, edits)?;
    super::drop_metadata(req, edits);
    check_ranges(req)?;
    let messages = convert_messages(req)?;
    let (tools, tool_choice) = tools(req);
    let body = ChatBody {
        model: upstream_model,
        messages,
        // Cohere's strictness is one switch for all tools; it only holds arguments to their
        // declared schemas, so a single strict function turns it on.
        strict_tools: req.tools.iter().filter_map(|t| t.function.as_ref()).any(|f| f.strict == Some(true)),
        tools,
        tool_choice,
        response_format: response_format(req)?,
        max_tokens: req.output_limit(),
        stop_sequences: req.stop.iter().map(|s| &**s).collect(),
        temperature: req.temperature,
        // Cohere bounds `p` to 0.01–0.99; OpenAI's default 1.0 (no truncation) and 0 (greedy)
        // become the nearest values Cohere accepts.
        p: req.top_p.map(|p| p.clamp(0.01, 0.99)),
        seed: req.extra("seed"),
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        stream: req.stream,
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Cohere request: {e}")))?;
    Ok(UpstreamRequest::body(body))
}

fn check_unsupported(provider: &Provider, req: &ChatRequest, edits: &mut Edits) -> Result<(), ApiError> {
    let mut u = Unsupported::new(provider);
    // Cohere has `logprobs`, but its per-token shape is not OpenAI's and is not translated.
    u.add_choices_and_logprobs(req);
    // Cohere may always answer with several tool calls; it has no switch to prevent it.
    if req.parallel_tool_calls == Some(false) {
        u.add("parallel_tool_calls");
    }
    u.add_response_format_other_than(req, &["text", "json_object", "json_schema"]);
    // `user` and `metadata` are typed members, not checked here, and not sent either.
    u.add_unknown_members(req, &["seed"]);
    u.resolve(edits)
}

/// Cohere's ranges are narrower than OpenAI's: `temperature` 0–1, penalties 0–1.
fn check_ranges(req: &ChatRequest) -> Result<(), ApiError> {
    for (name, value) in
        [("temperature", req.temperature), ("frequency_penalty", req.frequency_penalty), ("presence_penalty", req.presence_penalty)]
    {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            return Err(ApiError::invalid_param(name, format!("`{name}` must be between 0 and 1 for Cohere models, got {v}.")));
        }
    }
    Ok(())
}

/// Function tools, and OpenAI's `tool_choice` in Cohere's terms. Cohere has no "call this
/// function": a named choice sends only that tool with `REQUIRED`, which forces exactly it.
fn tools<'r>(req: &'r ChatRequest) -> (Vec<ToolDef<'r>>, Option<&'static str>) {
    let named = match &req.tool_choice {
        Some(ToolChoice::Function(name)) => Some(&**name),
        _ => None,
    };
    let tools = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .filter(|f| named.is_none_or(|n| *f.name == *n))
        .map(|f| ToolDef {
            kind: "function",
            function: FunctionDef {
                name: &f.name,
                description: f.description.as_deref(),
                parameters: f.parameters.map_or(Schema::NoParameters { r#type: "object", properties: NoProperties {} }, Schema::Given),
            },
        })
        .collect::<Vec<_>>();
    let choice = match &req.tool_choice {
        _ if tools.is_empty() => None,
        Some(ToolChoice::Mode(m)) if &**m == "none" => Some("NONE"),
        Some(ToolChoice::Mode(m)) if &**m == "required" => Some("REQUIRED"),
        Some(ToolChoice::Function(_)) => Some("REQUIRED"),
        _ => None,
    };
    (tools, choice)
}

/// `json_object` maps as is; `json_schema` becomes `json_object` with Cohere's `json_schema`
/// (the schema itself, which Cohere always enforces).
fn response_format<'r>(req: &'r ChatRequest) -> Result<Option<ResponseFormatOut<'r>>, ApiError> {
    let Some(f) = &req.response_format else { return Ok(None) };
    match &*f.kind {
        "json_object" => Ok(Some(ResponseFormatOut { kind: "json_object", json_schema: None })),
        "json_schema" => {
            let schema = f.json_schema.and_then(|s| serde_json::from_str::<JsonSchemaSpec>(s.get()).ok()).and_then(|s| s.schema);
            match schema {
                Some(schema) => Ok(Some(ResponseFormatOut { kind: "json_object", json_schema: Some(schema) })),
                None => Err(ApiError::invalid_param(
                    "response_format.json_schema.schema",
                    "`response_format.json_schema.schema` must be a JSON schema object.",
                )),
            }
        }
        _ => Ok(None),
    }
}

fn convert_messages<'r>(req: &'r ChatRequest) -> Result<Vec<Turn<'r>>, ApiError> {
    let mut turns = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let turn = match m.role {
            Role::System | Role::Developer => Turn::System { content: content(i, m.content.as_ref(), &["text"])? },
            Role::User => Turn::User { content: content(i, m.content.as_ref(), &["text", "image_url"])? },
            Role::Assistant => match assistant(i, m)? {
                Some(turn) => turn,
                None => continue,
            },
            Role::Tool => Turn::Tool {
                tool_call_id: m.tool_call_id.as_deref().unwrap_or_default(),
                content: content(i, m.content.as_ref(), &["text"])?,
            },
            Role::Function => return Err(legacy_function_role(i)),
        };
        turns.push(turn);
    }
    Ok(turns)
}

fn content<'r>(i: usize, content: Option<&'r Content>, allowed: &[&str]) -> Result<ContentOut<'r>, ApiError> {
    match content {
        // Request validation already requires content of system, user and tool messages.
        None => Ok(ContentOut::Text("")),
        Some(Content::Text(t)) => Ok(ContentOut::Text(t)),
        Some(Content::Parts(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if !allowed.contains(&&*p.kind) {
                    return Err(ApiError::invalid_param(
                        format!("messages[{i}].content[{j}]"),
                        format!("Content parts of type `{}` are not supported in this message for Cohere models.", &*p.kind),
                    ));
                }
                blocks.push(block(p));
            }
            Ok(ContentOut::Blocks(blocks))
        }
    }
}

fn block<'r>(p: &'r Part) -> BlockOut<'r> {
    match &p.image_url {
        Some(image) if &*p.kind == "image_url" => {
            BlockOut::ImageUrl { image_url: ImageOut { url: &image.url, detail: image.detail.as_deref() } }
        }
        _ => BlockOut::Text { text: p.text.as_deref().unwrap_or_default() },
    }
}

/// With tool calls, the assistant's text is the plan it wrote before calling them, which Cohere
/// takes back as `tool_plan` (see `translate_response`). An empty turn is left out.
fn assistant<'r>(i: usize, m: &'r Message) -> Result<Option<Turn<'r>>, ApiError> {
    let text = m.content.as_ref().map(Content::text).filter(|t| !t.is_empty());
    let calls: Vec<ToolCallReq> = m
        .tool_calls
        .iter()
        .flatten()
        .map(|c| ToolCallReq {
            id: &c.id,
            kind: "function",
            function: FunctionReq { name: &c.function.name, arguments: &c.function.arguments },
        })
        .collect();
    let content = m.content.as_ref().map(|c| assistant_content(i, c)).transpose()?;
    if calls.is_empty() {
        return Ok(text.and(content).map(|content| Turn::Assistant { content: Some(content), tool_plan: None, tool_calls: calls }));
    }
    Ok(Some(Turn::Assistant { content: None, tool_plan: text, tool_calls: calls }))
}

fn assistant_content<'r>(i: usize, content: &'r Content) -> Result<ContentOut<'r>, ApiError> {
    match content {
        Content::Text(t) => Ok(ContentOut::Text(t)),
        Content::Parts(parts) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let text = match &*p.kind {
                    "text" => p.text.as_deref(),
                    "refusal" => p.refusal.as_deref(),
                    other => {
                        return Err(ApiError::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            format!("Assistant messages can only hold text for Cohere models, got a `{other}` part."),
                        ));
                    }
                };
                blocks.push(BlockOut::Text { text: text.unwrap_or_default() });
            }
            Ok(ContentOut::Blocks(blocks))
        }
    }
}

// ---- response --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChatResponse<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    finish_reason: Str<'a>,
    #[serde(borrow)]
    message: ResponseMessage<'a>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

#[derive(Deserialize)]
struct ResponseMessage<'a> {
    #[serde(borrow, default)]
    content: Option<Vec<ContentBlock<'a>>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ResponseCall<'a>>>,
    #[serde(borrow, default)]
    tool_plan: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ResponseCall<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    function: ResponseFunction<'a>,
}

#[derive(Deserialize)]
struct ResponseFunction<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ContentBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    thinking: Option<Str<'a>>,
}

/// `usage` of a chat response or `message-end` event.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CohereUsage {
    #[serde(default)]
    billed_units: Option<Counts>,
    #[serde(default)]
    tokens: Option<Counts>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    #[serde(default, deserialize_with = "count")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "count")]
    output_tokens: u64,
}

/// Cohere types its counts as JSON numbers, which may be written `5.0`.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        _ => "stop",
    }
}

/// The error a generation that Cohere ended with `ERROR` or `TIMEOUT` becomes.
fn generation_failed(reason: &str, detail: Option<&str>) -> Option<ApiError> {
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
    let r: ChatResponse = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("a Cohere chat response", &e, body))?;
    if let Some(e) = generation_failed(&r.finish_reason, None) {
        return Err(e);
    }
    let mut answer = Answer { text: r.message.tool_plan.as_deref().unwrap_or_default().to_owned(), ..Default::default() };
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
    completion::encode(&r.id, ctx.created, &ctx.model, answer.into_message(), finish, r.usage.map(Usage::from))
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
}

/// Cohere errors are `{"id": …, "message": …}`; the status says what kind of error it is. 498
/// (Cohere's "invalid token") is the 401 OpenAI clients know.
pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    let message = match serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.message) {
        Some(m) => m.0.into_owned(),
        None => super::status_message(status, body),
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

// ---- embeddings ------------------------------------------------------------------------------

/// Cohere embeds at most 96 texts per call.
const MAX_TEXTS: usize = 96;

#[derive(Serialize)]
struct EmbedBody<'r> {
    model: &'r str,
    texts: Vec<&'r str>,
    input_type: &'static str,
    embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimension: Option<u64>,
}

/// `POST /v2/embed`. OpenAI has no way to say what a text is for, so every text is embedded as
/// `search_document` (what is stored and searched); Cohere also has `search_query`, which
/// clients of this endpoint cannot ask for. Vectors are always fetched as floats: OpenAI's base64
/// is encoded from them on the way back.
pub fn build_embeddings(provider: &Provider, req: &EmbeddingsRequest, upstream_model: &str) -> Result<UpstreamRequest, ApiError> {
    let Some(texts) = req.inputs()?.texts else {
        return Err(ApiError::invalid_param(
            "input",
            "Cohere models embed text: send `input` as a string or an array of strings, not token ids.",
        ));
    };
    if texts.len() > MAX_TEXTS {
        return Err(ApiError::invalid_param(
            "input",
            format!("`input` holds {} texts; Cohere embeds at most {MAX_TEXTS} per request.", texts.len()),
        ));
    }
    let body = EmbedBody {
        model: upstream_model,
        texts: texts.iter().map(|t| &**t).collect(),
        input_type: "search_document",
        embedding_types: ["float"],
        output_dimension: req.dimensions,
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Cohere request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(format!("{}/embed", provider.base_path)), ..Default::default() })
}

#[derive(Deserialize)]
struct EmbedResponse<'a> {
    #[serde(borrow)]
    embeddings: EmbeddingsByType<'a>,
    #[serde(default)]
    meta: Option<EmbedMeta>,
}

#[derive(Deserialize)]
struct EmbeddingsByType<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EmbedMeta {
    #[serde(default)]
    billed_units: Option<Counts>,
}

pub fn translate_embeddings(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: EmbedResponse = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("Cohere float embeddings", &e, body))?;
    let usage = r.meta.and_then(|m| m.billed_units).map(|b| Usage { input_tokens: b.input_tokens, ..Default::default() });
    let body = embeddings::list_response(&ctx.model, &r.embeddings.float, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}

// ---- streaming -------------------------------------------------------------------------------

/// One event of the v2 stream. Cohere frames events as SSE with `event:` naming the type and the
/// same `type` inside the JSON, then ends with `data: [DONE]`.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(borrow, default)]
    delta: Option<EventDelta<'a>>,
}

#[derive(Deserialize)]
struct EventDelta<'a> {
    #[serde(borrow, default)]
    message: Option<DeltaMessage<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<CohereUsage>,
    #[serde(borrow, default)]
    error: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct DeltaMessage<'a> {
    #[serde(borrow, default)]
    content: Option<ContentBlock<'a>>,
    #[serde(borrow, default)]
    tool_plan: Option<Str<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<DeltaCall<'a>>,
}

#[derive(Deserialize)]
struct DeltaCall<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    function: Option<DeltaCallFunction<'a>>,
}

#[derive(Deserialize)]
struct DeltaCallFunction<'a> {
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

#[derive(Debug)]
pub struct StreamState {
    chunks: ChunkWriter,
    usage: Option<CohereUsage>,
    tool_calls: ToolCallIndex,
    ended: bool,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ChunkWriter::new(ctx, ChunkHeader { created: ctx.created, model: ctx.model.clone(), ..Default::default() }),
            usage: None,
            tool_calls: ToolCallIndex::default(),
            ended: false,
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        // Cohere's closing `[DONE]` follows `message-end`, after which the client already has its own.
        if !event.has_data || self.ended || self.chunks.failed() || &*event.data == b"[DONE]" {
            return;
        }
        let e: StreamEvent = match serde_json::from_slice(&event.data) {
            Ok(e) => e,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        let message = e.delta.as_ref().and_then(|d| d.message.as_ref());
        match &*e.kind {
            "message-start" => {
                if let Some(id) = &e.id {
                    self.chunks.header.id = id.0.clone().into_owned();
                }
                self.chunks.opening(out);
            }
            "content-start" | "content-delta" => {
                if let Some(block) = message.and_then(|m| m.content.as_ref()) {
                    self.chunks.content(out, block.text.as_deref());
                    self.chunks.reasoning(out, block.thinking.as_deref());
                }
            }
            "tool-plan-delta" => self.chunks.content(out, message.and_then(|m| m.tool_plan.as_deref())),
            "tool-call-start" => {
                if let Some(call) = message.and_then(|m| m.tool_calls.as_ref()) {
                    self.tool_call_start(e.index.unwrap_or(0), call, out);
                }
            }
            "tool-call-delta" => {
                if let Some(call) = message.and_then(|m| m.tool_calls.as_ref()) {
                    self.tool_call_delta(e.index.unwrap_or(0), call, out);
                }
            }
            "message-end" => self.message_end(e.delta.as_ref(), out),
            // `content-end`, `tool-call-end`, citation and debug events carry nothing to forward.
            _ => {}
        }
    }

    fn tool_call_start(&mut self, index: u32, call: &DeltaCall, out: &mut Vec<u8>) {
        let tool_index = self.tool_calls.start(index);
        let function = call.function.as_ref();
        let name = function.and_then(|f| f.name.as_deref());
        let arguments = function.and_then(|f| f.arguments.as_deref()).unwrap_or_default();
        self.chunks.tool_call(out, tool_index, call.id.as_deref(), name, arguments);
    }

    fn tool_call_delta(&self, index: u32, call: &DeltaCall, out: &mut Vec<u8>) {
        if let Some(tool_index) = self.tool_calls.of(index) {
            self.chunks.tool_arguments(out, tool_index, call.function.as_ref().and_then(|f| f.arguments.as_deref()));
        }
    }

    fn message_end(&mut self, delta: Option<&EventDelta>, out: &mut Vec<u8>) {
        self.usage = delta.and_then(|d| d.usage).or(self.usage);
        let reason = delta.and_then(|d| d.finish_reason.as_deref()).unwrap_or("COMPLETE");
        if let Some(e) = generation_failed(reason, delta.and_then(|d| d.error.as_deref())) {
            return self.chunks.fail(out, &e);
        }
        self.ended = true;
        self.chunks.finish_reason(out, Some(finish_reason(reason)));
        self.chunks.done(out, self.usage());
    }
}

/// A stream cut before `message-end` gets the truncation error.
impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.on_event(event, out);
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn chunks(&self) -> Option<&ChunkWriter> {
        Some(&self.chunks)
    }
}

#[cfg(test)]
#[path = "cohere_tests.rs"]
mod tests;
