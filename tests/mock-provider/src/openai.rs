//! The OpenAI Chat Completions API
//! (<https://platform.openai.com/docs/api-reference/chat>): request
//! validation, translation into the neutral [`Conversation`], and rendering of
//! the script's reply as a `chat.completion` or a stream of
//! `chat.completion.chunk` events; and the Embeddings API
//! (<https://platform.openai.com/docs/api-reference/embeddings>). OpenAI-
//! compatible hosts and Azure OpenAI answer through the same functions.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::{Request, Response};
use crate::provider::{Answer, Provider};
use crate::script::{self, Block, Cache, Conversation, Finish, KeyOrder, Reply, Role, Tool, ToolChoice, Turn};
use crate::validate::{self, Checked, Invalid, Obj};

pub struct OpenAi {
    key: String,
}

impl OpenAi {
    pub fn new(key: String) -> Self {
        OpenAi { key }
    }

    /// Addressed as `localhost`, the mock stands for a self-hosted server started without a key
    /// (Ollama, vLLM or TGI by default), which takes any request.
    pub fn authorize(&self, request: &Request) -> Result<(), Response> {
        if request.header("host").is_some_and(|host| host == "localhost" || host.starts_with("localhost:")) {
            return Ok(());
        }
        let presented = request.header("authorization").and_then(|value| value.strip_prefix("Bearer ")).unwrap_or_default();
        if presented == self.key {
            return Ok(());
        }
        let message = format!(
            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
            redact(presented)
        );
        Err(error_response(401, &message, None, Some("invalid_api_key")))
    }
}

/// Shows only the ends of a key, as OpenAI's error messages do.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

impl Provider for OpenAi {
    fn error(&self, status: u16, message: &str) -> Response {
        let code = match status {
            401 => Some("invalid_api_key"),
            429 => Some("rate_limit_exceeded"),
            _ => None,
        };
        error_response(status, message, None, code)
    }

    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        stream_error()
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        self.authorize(request)?;
        if request.path.ends_with("/embeddings") {
            return embeddings(&request.body);
        }
        chat(&request.body, cache)
    }
}

/// The error event OpenAI sends when a stream fails after it started.
pub fn stream_error() -> String {
    data(&ErrorBody {
        error: ErrorDetail {
            message: "The server had an error while processing your request.",
            kind: "server_error",
            param: None,
            code: None,
        },
    })
}

/// Answers a chat completion request whose credentials were already checked.
pub fn chat(raw: &[u8], cache: Cache) -> Result<Answer, Response> {
    let parsed = parse(raw, cache).map_err(rejection)?;
    let reply = script::reply(&parsed.conversation);
    Ok(render(&parsed, &reply))
}

/// Answers an embeddings request whose credentials were already checked.
pub fn embeddings(raw: &[u8]) -> Result<Answer, Response> {
    let parsed = parse_embeddings(raw).map_err(rejection)?;
    let tokens = parsed.inputs.iter().map(|(_, tokens)| tokens).sum();
    let data = parsed
        .inputs
        .iter()
        .enumerate()
        .map(|(index, (text, _))| {
            let vector = script::embedding(text, parsed.dimensions);
            let embedding = if parsed.base64 { Vector::Base64(base64_f32(&vector)) } else { Vector::Floats(script::exact(&vector)) };
            EmbeddingOut { object: "embedding", index, embedding }
        })
        .collect();
    let list =
        EmbeddingList { object: "list", data, model: &parsed.model, usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens } };
    Ok(Answer { whole: Response::json(200, &list), events: None })
}

fn rejection(invalid: Invalid) -> Response {
    let param = (!invalid.field.is_empty()).then_some(invalid.field.as_str());
    error_response(400, &invalid.to_string(), param, None)
}

struct EmbeddingsParsed {
    model: String,
    /// What each input is embedded from (its text, or its token ids written out) and its tokens.
    inputs: Vec<(String, u64)>,
    base64: bool,
    dimensions: usize,
}

fn parse_embeddings(raw: &[u8]) -> Checked<EmbeddingsParsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(&["model", "input", "encoding_format", "dimensions", "user"])?;
    let model = body.non_empty_string("model")?.to_owned();
    let base64 = match body.opt_string("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(Invalid::new("encoding_format", "Input should be 'float' or 'base64'")),
    };
    // Fits in usize: the request named it in JSON.
    let dimensions = body.opt_positive_int("dimensions")?.map_or(script::EMBEDDING_DIMENSIONS, |d| d as usize);
    body.opt_string("user")?;
    let inputs = match body.required("input")? {
        Value::String(text) if !text.is_empty() => vec![(text.clone(), script::words(text))],
        Value::Array(items) if !items.is_empty() && items.len() <= 2048 => {
            if items.iter().all(Value::is_u64) {
                vec![token_input(items, "input")?]
            } else {
                items.iter().enumerate().map(|(index, item)| embedding_input(item, &format!("input[{index}]"))).collect::<Checked<_>>()?
            }
        }
        _ => return Err(Invalid::new("input", "Input should be a non-empty string, or an array of 1 to 2048 strings or token arrays")),
    };
    Ok(EmbeddingsParsed { model, inputs, base64, dimensions })
}

fn embedding_input(item: &Value, path: &str) -> Checked<(String, u64)> {
    match item {
        Value::String(text) if !text.is_empty() => Ok((text.clone(), script::words(text))),
        Value::Array(tokens) if !tokens.is_empty() => token_input(tokens, path),
        _ => Err(Invalid::new(path, "Input should be a non-empty string or array of token ids")),
    }
}

fn token_input(tokens: &[Value], path: &str) -> Checked<(String, u64)> {
    let ids: Option<Vec<String>> = tokens.iter().map(|t| t.as_u64().map(|id| id.to_string())).collect();
    let ids = ids.ok_or_else(|| Invalid::new(path, "Token ids should be non-negative integers"))?;
    Ok((ids.join(" "), ids.len() as u64))
}

/// OpenAI's base64 embedding: the little-endian f32s, base64-encoded.
fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]) } else { '=' });
        }
    }
    out
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f64>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u64,
    total_tokens: u64,
}

pub fn error_response(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let kind = match status {
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    let body = ErrorBody { error: ErrorDetail { message, kind, param, code } };
    Response::json(status, &body)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// What the rest of the module needs from a validated request.
#[derive(Debug)]
struct Parsed {
    model: String,
    stream: bool,
    include_usage: bool,
    conversation: Conversation,
}

fn parse(raw: &[u8], cache: Cache) -> Checked<Parsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    let model = body.non_empty_string("model")?.to_owned();
    let stream = body.opt_bool("stream")?.unwrap_or(false);
    let include_usage = include_usage(&body, stream)?;
    body.opt_number("temperature", 0.0..=2.0)?;
    body.opt_number("top_p", 0.0..=1.0)?;
    let max_tokens = match body.opt_positive_int("max_completion_tokens")? {
        Some(max) => Some(max),
        None => body.opt_positive_int("max_tokens")?,
    };
    let (system, turns) = messages(body.non_empty_array("messages")?)?;
    let tools = tools(&body, raw)?;
    let tool_choice = tool_choice(&body)?;
    let conversation = Conversation { system, turns, tools, tool_choice, max_tokens, stop: stop(&body)?, cache };
    Ok(Parsed { model, stream, include_usage, conversation })
}

/// Whether the stream ends with a usage chunk.
fn include_usage(body: &Obj, stream: bool) -> Checked<bool> {
    let Some(options) = stream_options(body, stream)? else { return Ok(false) };
    Ok(options.opt_bool("include_usage")?.unwrap_or(false))
}

/// `stream_options` (chat and Responses): only allowed with `stream`.
pub(crate) fn stream_options<'a>(body: &Obj<'a>, stream: bool) -> Checked<Option<Obj<'a>>> {
    let Some(options) = body.get("stream_options") else {
        return Ok(None);
    };
    if !stream {
        return Err(Invalid::standalone("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled."));
    }
    Obj::new(options, "stream_options").map(Some)
}

fn stop(body: &Obj) -> Checked<Vec<String>> {
    let path = body.path("stop");
    match body.get("stop") {
        None => Ok(Vec::new()),
        Some(Value::String(stop)) => Ok(vec![stop.clone()]),
        Some(value) => {
            let items = validate::array(value, &path)?;
            if items.len() > 4 {
                return Err(Invalid::new(path, "At most 4 stop sequences are allowed"));
            }
            items.iter().enumerate().map(|(index, item)| validate::string(item, &format!("{path}[{index}]")).map(str::to_owned)).collect()
        }
    }
}

/// Splits messages into system text and turns. Consecutive `tool` messages
/// become one user turn of tool results, the shape Anthropic uses, so the
/// script treats parallel tool results alike under both providers.
fn messages(items: &[Value]) -> Checked<(Vec<String>, Vec<Turn>)> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    // Ids of the last assistant message's tool calls not yet answered.
    let mut pending: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("messages[{index}]");
        let message = Obj::new(item, path.as_str())?;
        let role = message.string("role")?;
        if role != "tool" && !pending.is_empty() {
            return Err(Invalid::new(
                path,
                format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                    pending.join(", ")
                ),
            ));
        }
        match role {
            "system" | "developer" => {
                system.push(texts(&parts(&message, &["text"])?));
            }
            "user" => turns.push(Turn { role: Role::User, blocks: parts(&message, &["text", "image_url", "input_audio", "file"])? }),
            "assistant" => {
                let (turn, ids) = assistant(&message)?;
                turns.push(turn);
                pending = ids;
            }
            "tool" => {
                let id = message.string("tool_call_id")?;
                let Some(at) = pending.iter().position(|pending| pending == id) else {
                    return Err(Invalid::new(
                        message.path("tool_call_id"),
                        "Messages with role 'tool' must be a response to a preceding message with 'tool_calls'",
                    ));
                };
                pending.remove(at);
                let result = Block::ToolResult { text: texts(&parts(&message, &["text"])?), images: 0 };
                match turns.last_mut() {
                    Some(turn) if is_tool_turn(turn) => turn.blocks.push(result),
                    _ => turns.push(Turn { role: Role::User, blocks: vec![result] }),
                }
            }
            _ => {
                return Err(Invalid::new(message.path("role"), "Input should be 'system', 'developer', 'user', 'assistant' or 'tool'"));
            }
        }
    }
    Ok((system, turns))
}

pub fn is_tool_turn(turn: &Turn) -> bool {
    turn.blocks.iter().all(|block| matches!(block, Block::ToolResult { .. }))
}

pub fn texts(blocks: &[Block]) -> String {
    let texts: Vec<&str> = blocks
        .iter()
        .filter_map(|block| match block {
            Block::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join(" ")
}

/// Content as blocks: a string, or an array of parts of the `allowed` types.
fn parts(message: &Obj, allowed: &[&str]) -> Checked<Vec<Block>> {
    let path = message.path("content");
    match message.required("content")? {
        Value::String(text) => Ok(vec![Block::Text(text.clone())]),
        Value::Array(items) => {
            items.iter().enumerate().filter_map(|(index, item)| part(item, &format!("{path}[{index}]"), allowed).transpose()).collect()
        }
        _ => Err(Invalid::new(path, "Input should be a string or an array of content parts")),
    }
}

/// One content part; `None` for parts the script ignores.
fn part(item: &Value, path: &str, allowed: &[&str]) -> Checked<Option<Block>> {
    let part = Obj::new(item, path)?;
    let kind = part.string("type")?;
    let unexpected = || Invalid::new(part.path("type"), format!("Input should be one of: {}", allowed.join(", ")));
    if !allowed.contains(&kind) {
        return Err(unexpected());
    }
    match kind {
        "text" => Ok(Some(Block::Text(part.string("text")?.to_owned()))),
        "refusal" => part.string("refusal").map(|_| None),
        "image_url" => {
            part.object("image_url")?.non_empty_string("url")?;
            Ok(Some(Block::Image))
        }
        "input_audio" => {
            let audio = part.object("input_audio")?;
            audio.non_empty_string("data")?;
            audio.non_empty_string("format")?;
            Ok(None)
        }
        "file" => {
            let file = part.object("file")?;
            if file.opt_string("file_data")?.is_none() && file.opt_string("file_id")?.is_none() {
                return Err(Invalid::new(part.path("file"), "Either 'file_data' or 'file_id' is required"));
            }
            Ok(None)
        }
        _ => Err(unexpected()),
    }
}

/// OpenAI's longest tool call id (its 400 says "Expected a string with maximum length 40").
const MAX_CALL_ID: usize = 40;

/// An assistant turn, and the ids of the tool calls it makes.
fn assistant(message: &Obj) -> Checked<(Turn, Vec<String>)> {
    let calls = message.opt_array("tool_calls")?.unwrap_or_default();
    let mut blocks = if calls.is_empty() || message.get("content").is_some() { parts(message, &["text", "refusal"])? } else { Vec::new() };
    let mut ids = Vec::new();
    let calls_path = message.path("tool_calls");
    for (index, call) in calls.iter().enumerate() {
        let call = Obj::new(call, format!("{calls_path}[{index}]"))?;
        let id = call.non_empty_string("id")?;
        if id.len() > MAX_CALL_ID {
            return Err(Invalid::standalone(
                call.path("id"),
                format!(
                    "Invalid '{}': string too long. Expected a string with maximum length {MAX_CALL_ID}, but got a string with length {} instead.",
                    call.path("id"),
                    id.len()
                ),
            ));
        }
        ids.push(id.to_owned());
        if call.string("type")? != "function" {
            return Err(Invalid::new(call.path("type"), "Input should be 'function'"));
        }
        let function = call.object("function")?;
        blocks.push(Block::ToolCall {
            name: function.non_empty_string("name")?.to_owned(),
            args: script::canonical_args(function.string("arguments")?),
        });
    }
    let turn = Turn { role: Role::Assistant, blocks };
    Ok((turn, ids))
}

/// Function tools as OpenAI (and Cohere v2) write them.
pub fn tools(body: &Obj, raw: &[u8]) -> Checked<Vec<Tool>> {
    let Some(items) = body.opt_array("tools")? else {
        return Ok(Vec::new());
    };
    let orders = serde_json::from_slice::<ToolOrders>(raw).map(|orders| orders.tools.unwrap_or_default()).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut tools = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tool = Obj::new(item, format!("tools[{index}]"))?;
        if tool.string("type")? != "function" {
            return Err(Invalid::new(tool.path("type"), "Input should be 'function'"));
        }
        let function = tool.object("function")?;
        let name = validate::tool_name(function.required("name")?, &function.path("name"), 64)?;
        if !seen.insert(name) {
            return Err(Invalid::new(function.path("name"), "Tool names must be unique"));
        }
        function.opt_string("description")?;
        let schema = match function.get("parameters") {
            Some(parameters) => {
                Obj::new(parameters, function.path("parameters"))?;
                parameters.clone()
            }
            None => Value::Null,
        };
        let order = orders
            .get(index)
            .and_then(|order| order.function.parameters.as_ref())
            .and_then(|parameters| parameters.properties.as_ref())
            .map_or(&[][..], |keys| &keys.0);
        tools.push(Tool::new(name.to_owned(), &schema, order));
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
    function: FunctionOrder,
}

#[derive(Deserialize)]
struct FunctionOrder {
    parameters: Option<SchemaOrder>,
}

#[derive(Deserialize)]
struct SchemaOrder {
    properties: Option<KeyOrder>,
}

fn tool_choice(body: &Obj) -> Checked<ToolChoice> {
    let path = body.path("tool_choice");
    match body.get("tool_choice") {
        None => Ok(ToolChoice::Auto),
        Some(Value::String(choice)) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(Invalid::new(path, "Input should be 'none', 'auto' or 'required'")),
        },
        Some(value) => {
            let choice = Obj::new(value, path)?;
            if choice.string("type")? != "function" {
                return Err(Invalid::new(choice.path("type"), "Input should be 'function'"));
            }
            let function = choice.object("function")?;
            Ok(ToolChoice::Named(function.non_empty_string("name")?.to_owned()))
        }
    }
}

fn render(parsed: &Parsed, reply: &Reply) -> Answer {
    let id = format!("chatcmpl-mock{}", script::next_id());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    let tool_call = reply.tool_call.as_ref().map(|call| CallOut {
        id: format!("call_mock_{}", script::next_id()),
        name: &call.name,
        arguments: call.args.to_json(),
    });
    let out = Out { id: &id, created, model: &parsed.model, reply, tool_call: tool_call.as_ref() };
    // As api.openai.com answers: the account's organization, rate limits and a cookie.
    let whole = Response::json(200, &out.completion())
        .with_header("x-request-id", id.clone())
        .with_header("openai-organization", "org-gateway-owner")
        .with_header("x-ratelimit-remaining-tokens", "149984")
        .with_header("set-cookie", "__cf_bm=mock-cookie; path=/; HttpOnly");
    let events = parsed.stream.then(|| out.chunks(parsed.include_usage));
    Answer { whole, events }
}

/// Everything a response carries, shared by the whole and streamed forms.
struct Out<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
    reply: &'a Reply,
    tool_call: Option<&'a CallOut<'a>>,
}

struct CallOut<'a> {
    id: String,
    name: &'a str,
    arguments: String,
}

impl Out<'_> {
    fn finish_reason(&self) -> &'static str {
        match self.reply.finish {
            Finish::EndTurn | Finish::StopSequence(_) => "stop",
            Finish::MaxTokens => "length",
            Finish::ToolUse => "tool_calls",
        }
    }

    fn usage(&self) -> UsageOut {
        let usage = self.reply.usage;
        UsageOut {
            prompt_tokens: usage.prompt(),
            completion_tokens: usage.output,
            total_tokens: usage.prompt() + usage.output,
            prompt_tokens_details: PromptDetails { cached_tokens: usage.cache_read, audio_tokens: 0 },
            completion_tokens_details: CompletionDetails::default(),
        }
    }

    fn completion(&self) -> Completion<'_> {
        let has_call = self.tool_call.is_some();
        let text = self.reply.text.as_str();
        Completion {
            id: self.id,
            object: "chat.completion",
            created: self.created,
            model: self.model,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: (!has_call || !text.is_empty()).then_some(text),
                    refusal: None,
                    annotations: [],
                    tool_calls: self.tool_call.map(|call| {
                        [CallJson {
                            id: &call.id,
                            kind: "function",
                            function: FunctionJson { name: call.name, arguments: &call.arguments },
                        }]
                    }),
                },
                logprobs: None,
                finish_reason: self.finish_reason(),
            }],
            usage: self.usage(),
            service_tier: "default",
            system_fingerprint: "fp_mock",
        }
    }

    fn chunks(&self, include_usage: bool) -> Vec<String> {
        let mut deltas = vec![Delta::Start { role: "assistant", content: "", refusal: None }];
        deltas.extend(script::stream_pieces(&self.reply.text).into_iter().map(|content| Delta::Content { content }));
        if let Some(call) = self.tool_call {
            deltas.push(Delta::ToolCalls {
                tool_calls: [CallDelta {
                    index: 0,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: FunctionDelta { name: Some(call.name), arguments: "" },
                }],
            });
            deltas.extend(script::thirds(&call.arguments).map(|arguments| Delta::ToolCalls {
                tool_calls: [CallDelta { index: 0, id: None, kind: None, function: FunctionDelta { name: None, arguments } }],
            }));
        }
        let last = deltas.len();
        deltas.push(Delta::Finish {});
        let mut events: Vec<String> = deltas
            .into_iter()
            .enumerate()
            .map(|(index, delta)| {
                data(&Chunk {
                    id: self.id,
                    object: "chat.completion.chunk",
                    created: self.created,
                    model: self.model,
                    system_fingerprint: "fp_mock",
                    choices: vec![ChunkChoice {
                        index: 0,
                        delta,
                        logprobs: None,
                        finish_reason: (index == last).then(|| self.finish_reason()),
                    }],
                    // `Some(None)` renders as `"usage": null`, which OpenAI
                    // puts on every chunk once usage was asked for.
                    usage: include_usage.then_some(None),
                })
            })
            .collect();
        if include_usage {
            events.push(data(&Chunk {
                id: self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model,
                system_fingerprint: "fp_mock",
                choices: Vec::new(),
                usage: Some(Some(self.usage())),
            }));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }
}

fn data(payload: &impl Serialize) -> String {
    let json = serde_json::to_string(payload).expect("response types always serialize");
    format!("data: {json}\n\n")
}

/// Fields that are always null in the mock's answers (`refusal`, `logprobs`).
type AlwaysNull = Option<()>;

/// Fields that are always an empty array (`annotations`).
type AlwaysEmpty = [(); 0];

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: UsageOut,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: AlwaysNull,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: AlwaysNull,
    annotations: AlwaysEmpty,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[CallJson<'a>; 1]>,
}

#[derive(Serialize)]
struct CallJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionJson<'a>,
}

#[derive(Serialize)]
struct FunctionJson<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize, Default)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: AlwaysNull,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Delta<'a> {
    Start { role: &'static str, content: &'static str, refusal: AlwaysNull },
    Content { content: &'a str },
    ToolCalls { tool_calls: [CallDelta<'a>; 1] },
    Finish {},
}

#[derive(Serialize)]
struct CallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: &Value, key: &str) -> Request {
        let body = body.to_string();
        let raw =
            format!("POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    fn answer(body: Value) -> Result<Answer, Response> {
        OpenAi::new("k".to_owned()).answer(&request(&body, "k"), Cache::default())
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn events(answer: &Answer) -> Vec<Value> {
        answer
            .events
            .as_ref()
            .unwrap()
            .iter()
            .map(|event| event.strip_prefix("data: ").unwrap().trim_end())
            .filter(|payload| *payload != "[DONE]")
            .map(|payload| serde_json::from_str(payload).unwrap())
            .collect()
    }

    fn weather_request(stream: bool) -> Value {
        json!({
            "model": "gpt-4o",
            "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
            "messages": [{"role": "user", "content": "weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}
            }}}],
        })
    }

    #[test]
    fn answers_with_a_completion() {
        let answer = answer(json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Be nice"},
            {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
        ]}))
        .unwrap_or_else(|_| panic!("rejected"));
        assert!(answer.events.is_none());
        let body = json_of(&answer.whole);
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], "gpt-4o");
        let message = &body["choices"][0]["message"];
        assert_eq!(message["content"], "Hello! You said: hi there");
        assert_eq!(message["refusal"], Value::Null);
        assert!(message.get("tool_calls").is_none());
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["prompt_tokens"], 4);
        assert_eq!(body["usage"]["completion_tokens"], 5);
        assert_eq!(body["usage"]["total_tokens"], 9);
    }

    #[test]
    fn streamed_tool_call_matches_the_whole_one() {
        let whole = json_of(&answer(weather_request(false)).ok().unwrap().whole);
        let call = &whole["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris","days":1}"#);
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole["choices"][0]["message"]["content"], "Let me check.");

        let streamed = answer(weather_request(true)).ok().unwrap();
        let chunks = events(&streamed);
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "", "refusal": null}));
        let text: String = chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Let me check.");
        let arguments: String =
            chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()).collect();
        assert_eq!(arguments, call["function"]["arguments"].as_str().unwrap());
        assert!(chunks.iter().all(|chunk| chunk.get("usage").is_some()));
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"], whole["usage"]);
        assert_eq!(streamed.events.unwrap().last().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn rejects_invalid_requests() {
        let cases = [
            (json!({"messages": [{"role": "user", "content": "x"}]}), "model"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]}), "messages[0].role"),
            (json!({"model": "m", "messages": [{"role": "user", "content": 5}]}), "messages[0].content"),
            (json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}), "messages[0].tool_call_id"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [{"id": "c".repeat(41), "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c".repeat(41), "content": "x"}]}),
                "messages[1].tool_calls[0].id",
            ),
            (
                json!({"model": "m", "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x"}]}),
                "stream_options",
            ),
            (
                json!({"model": "m", "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "user", "content": "y"},
                ]}),
                "messages[2]",
            ),
        ];
        for (body, param) in cases {
            let response = answer(body.clone()).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(response.status, 400, "{body}");
            let error = json_of(&response);
            assert_eq!(error["error"]["param"], param, "{body}");
            assert_eq!(error["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn rejects_wrong_keys() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let mut keyless = request(&body, "anything");
        keyless.headers.push(("host".to_owned(), "localhost:11434".to_owned()));
        assert!(OpenAi::new("k".to_owned()).answer(&keyless, Cache::default()).is_ok(), "a self-hosted server takes no key");
        let response = OpenAi::new("k".to_owned()).answer(&request(&body, "wrong-key-123"), Cache::default()).err().unwrap();
        assert_eq!(response.status, 401);
        let error = json_of(&response);
        assert_eq!(error["error"]["code"], "invalid_api_key");
        assert!(error["error"]["message"].as_str().unwrap().starts_with("Incorrect API key provided: wro"));
    }

    fn embed(body: Value) -> Result<Answer, Response> {
        let body = body.to_string();
        let raw = format!("POST /v1/embeddings HTTP/1.1\r\nauthorization: Bearer k\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        OpenAi::new("k".to_owned()).answer(&request, Cache::default())
    }

    #[test]
    fn embeds_strings_and_tokens_as_floats_or_base64() {
        let answer = embed(json!({"model": "text-embedding-3-small", "input": ["hello world", "x"], "dimensions": 2})).ok().unwrap();
        assert!(answer.events.is_none());
        let body = json_of(&answer.whole);
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], "text-embedding-3-small");
        assert_eq!(body["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        let expected: Vec<f64> = script::embedding("hello world", 2).into_iter().map(f64::from).collect();
        assert_eq!(body["data"][0], json!({"object": "embedding", "index": 0, "embedding": expected}));
        let encoded = json_of(
            &embed(json!({"model": "m", "input": "hello world", "encoding_format": "base64", "dimensions": 2})).ok().unwrap().whole,
        );
        assert_eq!(encoded["data"][0]["embedding"], base64_f32(&script::embedding("hello world", 2)));
        assert_eq!(base64_f32(&[1.0, 0.0]), "AACAPwAAAAA=");
        let tokens = json_of(&embed(json!({"model": "m", "input": [[1, 2, 3], [4]]})).ok().unwrap().whole);
        assert_eq!(tokens["usage"]["prompt_tokens"], 4);
        assert_eq!(tokens["data"][1]["embedding"].as_array().unwrap().len(), script::EMBEDDING_DIMENSIONS);
        for (body, param) in [
            (json!({"input": "x"}), "model"),
            (json!({"model": "m", "input": ""}), "input"),
            (json!({"model": "m", "input": [1, "a"]}), "input[0]"),
            (json!({"model": "m", "input": "x", "encoding_format": "hex"}), "encoding_format"),
            (json!({"model": "m", "input": "x", "input_type": "query"}), "input_type"),
        ] {
            let response = embed(body.clone()).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(json_of(&response)["error"]["param"], param, "{body}");
        }
    }

    #[test]
    fn accepts_tool_round_trips_and_limits() {
        let answer = answer(json!({"model": "m", "max_completion_tokens": 3, "stop": ["nothing"], "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny and warm"},
        ]}))
        .ok()
        .unwrap();
        let body = json_of(&answer.whole);
        assert_eq!(body["choices"][0]["message"]["content"], "Tool results: sunny");
        assert_eq!(body["choices"][0]["finish_reason"], "length");
    }
}
