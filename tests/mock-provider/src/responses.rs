//! The OpenAI Responses API (<https://platform.openai.com/docs/api-reference/responses>):
//! `POST /v1/responses` validated as strictly as OpenAI does (unknown members, item shapes, call
//! ids answered by outputs, model-dependent reasoning and sampling rules), translated into the
//! neutral [`Conversation`], and answered with a `response` object or its typed event stream
//! (<https://platform.openai.com/docs/api-reference/responses-streaming>); responses created with
//! `store` on can be fetched and deleted (`GET`/`DELETE /v1/responses/{id}`) and continued with
//! `previous_response_id`. Azure OpenAI's Responses API answers through the same functions.
//!
//! Reasoning models (o-series, gpt-5, codex) reason before they answer: a `reasoning` item whose
//! summary is [`THOUGHT`] when `reasoning.summary` asks for one, [`REASONING_TOKENS`] of output.
//! A request containing `[filtered-output]` ends `incomplete` for `content_filter`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{Request, Response};
use crate::openai::{self, OpenAi};
use crate::provider::{Answer, Provider};
use crate::script::{self, Block, Cache, Conversation, Finish, KeyOrder, Reply, Role, Tool, ToolChoice, Turn};
use crate::validate::{self, Checked, Invalid, Obj};

/// What a reasoning model's summary says.
pub const THOUGHT: &str = "Working through the question first.";
/// The output tokens a reasoning model spends reasoning, on top of its answer.
pub const REASONING_TOKENS: u64 = 12;
/// OpenAI's smallest `max_output_tokens`.
const MIN_OUTPUT_TOKENS: u64 = 16;

/// The request body's members (the SDK's `ResponseCreateParams` and `stream`).
const TOP_LEVEL_FIELDS: &[&str] = &[
    "access_programs",
    "background",
    "context_management",
    "conversation",
    "image",
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "model",
    "moderation",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
];

const INCLUDABLE: &[&str] = &[
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
];

const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh", "max"];
const SUMMARIES: &[&str] = &["auto", "concise", "detailed"];
const SERVICE_TIERS: &[&str] = &["auto", "default", "flex", "scale", "priority"];
/// Built-in tools: OpenAI runs them, the mock only accepts them.
const BUILT_IN_TOOLS: &[&str] = &[
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "computer",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
];

/// Input items of built-in tools' calls and their results (the SDK's `ResponseInputItemParam`).
const BUILT_IN_ITEMS: &[&str] = &[
    "web_search_call",
    "file_search_call",
    "computer_call",
    "computer_call_output",
    "code_interpreter_call",
    "image_generation_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
];

fn reasoning_model(model: &str) -> bool {
    ["o1", "o3", "o4", "gpt-5", "codex"].iter().any(|prefix| model.starts_with(prefix))
}

/// Responses OpenAI stored (`store` true or absent), by id: the answer as sent, and the
/// conversation it ended, for `previous_response_id`.
#[derive(Default)]
pub struct Store(Mutex<BTreeMap<String, Stored>>);

#[derive(Clone)]
struct Stored {
    response: Value,
    conversation: Conversation,
    /// The call ids of the response's function calls, which the next input answers.
    calls: Vec<String>,
}

impl Store {
    fn get(&self, id: &str) -> Option<Stored> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    fn put(&self, id: String, stored: Stored) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id, stored);
    }

    fn remove(&self, id: &str) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id).is_some()
    }
}

/// OpenAI's `/v1/responses` and `/v1/responses/{id}`, under OpenAI's key.
pub struct Responses {
    openai: OpenAi,
    store: Store,
}

impl Responses {
    pub fn new(key: String) -> Self {
        Responses { openai: OpenAi::new(key), store: Store::default() }
    }
}

impl Provider for Responses {
    fn error(&self, status: u16, message: &str) -> Response {
        self.openai.error(status, message)
    }

    fn stream_error(&self, _request: &Request, sent: usize) -> String {
        stream_error(sent)
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        self.openai.authorize(request)?;
        serve(request, cache, &self.store, request.path.strip_prefix("/v1/responses"))
    }
}

/// Answers a Responses request whose credentials were checked; `rest` is the path after
/// `…/responses` (`""` to create, `/{id}` to fetch or delete).
pub fn serve(request: &Request, cache: Cache, store: &Store, rest: Option<&str>) -> Result<Answer, Response> {
    let whole = |response| Ok(Answer { whole: response, events: None });
    match (request.method.as_str(), rest) {
        ("POST", Some("")) => create(&request.body, cache, store),
        ("GET", Some(id)) if id.len() > 1 => match store.get(&id[1..]) {
            Some(stored) => whole(Response::json(200, &stored.response)),
            None => Err(not_found(&id[1..])),
        },
        ("DELETE", Some(id)) if id.len() > 1 => {
            if store.remove(&id[1..]) {
                whole(Response::json(200, &json!({"id": &id[1..], "object": "response", "deleted": true})))
            } else {
                Err(not_found(&id[1..]))
            }
        }
        (method, _) => Err(openai::error_response(404, &format!("Invalid URL ({method} {})", request.path), None, None)),
    }
}

fn not_found(id: &str) -> Response {
    openai::error_response(404, &format!("Response with id '{id}' not found."), None, None)
}

/// The `error` event OpenAI sends when a response fails mid-stream, numbered after the `sent`
/// events before it.
pub fn stream_error(sent: usize) -> String {
    event(&json!({
        "type": "error",
        "sequence_number": sent,
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": null,
    }))
}

fn create(raw: &[u8], cache: Cache, store: &Store) -> Result<Answer, Response> {
    let parsed = parse(raw, cache, store).map_err(rejection)?;
    let mut reply = script::reply(&parsed.conversation);
    if let Some(format) = &parsed.format
        && reply.tool_call.is_none()
    {
        reply.text = format.sample_args().to_json();
        reply.usage.output = script::words(&reply.text);
    }
    Ok(render(&parsed, &reply, store))
}

/// OpenAI's 400: the member as `param`, and `unknown_parameter` for one it does not know.
fn rejection(invalid: Invalid) -> Response {
    let code = (invalid.message == "Extra inputs are not permitted").then_some("unknown_parameter");
    let message = match code {
        Some(_) => format!("Unknown parameter: '{}'.", invalid.field),
        None => invalid.to_string(),
    };
    let param = (!invalid.field.is_empty()).then_some(invalid.field.as_str());
    openai::error_response(400, &message, param, code)
}

/// What the rest of the module needs from a validated request.
struct Parsed {
    model: String,
    stream: bool,
    obfuscate: bool,
    store: bool,
    /// The request's members the response echoes.
    echo: Value,
    /// The model reasons: whether it summarizes, whether it returns its encrypted reasoning.
    reasons: Option<(bool, bool)>,
    /// `text.format`'s JSON schema, as a tool whose sample arguments are the answer.
    format: Option<Tool>,
    filtered: bool,
    conversation: Conversation,
}

fn parse(raw: &[u8], cache: Cache, store: &Store) -> Checked<Parsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(TOP_LEVEL_FIELDS)?;
    let model = body.non_empty_string("model")?.to_owned();
    let stream = body.opt_bool("stream")?.unwrap_or(false);
    let obfuscate = obfuscation(&body, stream)?;
    let store_it = body.opt_bool("store")?.unwrap_or(true);
    body.opt_bool("background")?;
    body.opt_bool("parallel_tool_calls")?;
    for key in ["user", "safety_identifier", "prompt_cache_key"] {
        body.opt_string(key)?;
    }
    one_of(&body, "service_tier", SERVICE_TIERS)?;
    one_of(&body, "truncation", &["auto", "disabled"])?;
    body.opt_positive_int("max_tool_calls")?;
    if body.get("top_logprobs").is_some_and(|n| n.as_u64().is_none_or(|n| n > 20)) {
        return Err(Invalid::new("top_logprobs", "Input should be an integer between 0 and 20"));
    }
    metadata(&body)?;
    let include = include(&body)?;
    let max_tokens = body.opt_positive_int("max_output_tokens")?;
    if let Some(max) = max_tokens.filter(|max| *max < MIN_OUTPUT_TOKENS) {
        return Err(Invalid::standalone(
            "max_output_tokens",
            format!(
                "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, but got {max} instead."
            ),
        ));
    }
    let reasons = reasoning(&body, &model, include.contains(&"reasoning.encrypted_content"))?;
    if let Some(conversation) = body.get("conversation") {
        return Err(Invalid::standalone("conversation", format!("Conversation with id '{}' not found.", id_of(conversation))));
    }
    let (mut conversation, open_calls) = match body.opt_string("previous_response_id")? {
        Some(id) => match store.get(id) {
            Some(stored) => (stored.conversation, stored.calls),
            None => return Err(Invalid::standalone("previous_response_id", format!("Previous response with id '{id}' not found."))),
        },
        None => (Conversation::default(), Vec::new()),
    };
    if let Some(instructions) = body.opt_string("instructions")? {
        // Instructions do not carry over from a previous response.
        conversation.system = vec![instructions.to_owned()];
    } else {
        conversation.system.clear();
    }
    let input = body.required("input")?;
    let (system, turns) = input_items(input, std::mem::take(&mut conversation.turns), open_calls)?;
    conversation.system.extend(system);
    conversation.turns = turns;
    conversation.tools = tools(&body, raw)?;
    conversation.tool_choice = tool_choice(&body)?;
    conversation.max_tokens = max_tokens;
    conversation.cache = cache;
    let format = text_format(&body, raw, &conversation)?;
    let filtered = String::from_utf8_lossy(raw).contains("[filtered-output]");
    let echo = json!({
        "instructions": body.get("instructions"),
        "max_output_tokens": max_tokens,
        "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "parallel_tool_calls": body.get("parallel_tool_calls").cloned().unwrap_or(json!(true)),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": reasons.map_or_else(
            || json!({"effort": null, "summary": null}),
            |_| json!({"effort": body.get("reasoning").and_then(|r| r.get("effort")).cloned().unwrap_or(json!("medium")),
                       "summary": body.get("reasoning").and_then(|r| r.get("summary")).cloned()})
        ),
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": store_it,
        "temperature": body.get("temperature").cloned().unwrap_or(json!(1.0)),
        "text": {"format": body.get("text").and_then(|t| t.get("format")).cloned().unwrap_or(json!({"type": "text"})), "verbosity": "medium"},
        "tool_choice": body.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": tools_echo(body.get("tools")),
        "top_logprobs": body.get("top_logprobs").cloned().unwrap_or(json!(0)),
        "top_p": body.get("top_p").cloned().unwrap_or(json!(1.0)),
        "truncation": body.get("truncation").cloned().unwrap_or(json!("disabled")),
        "user": body.get("user"),
    });
    Ok(Parsed { model, stream, obfuscate, store: store_it, echo, reasons, format, filtered, conversation })
}

fn id_of(value: &Value) -> String {
    value.as_str().map_or_else(|| value.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(), str::to_owned)
}

fn one_of(body: &Obj, key: &str, allowed: &[&str]) -> Checked<()> {
    match body.opt_string(key)? {
        Some(value) if !allowed.contains(&value) => Err(Invalid::standalone(
            body.path(key),
            format!(
                "Invalid value: '{value}'. Supported values are: {}.",
                allowed.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// Whether to add `obfuscation` to delta events, which OpenAI does unless told not to.
fn obfuscation(body: &Obj, stream: bool) -> Checked<bool> {
    let Some(options) = openai::stream_options(body, stream)? else { return Ok(stream) };
    options.only(&["include_obfuscation"])?;
    Ok(options.opt_bool("include_obfuscation")?.unwrap_or(true))
}

fn metadata(body: &Obj) -> Checked<()> {
    let Some(value) = body.get("metadata") else { return Ok(()) };
    let metadata = Obj::new(value, "metadata")?;
    let map = value.as_object().map(|m| m.len()).unwrap_or_default();
    if map > 16 {
        return Err(Invalid::new("metadata", "Metadata can have at most 16 keys"));
    }
    for (key, _) in value.as_object().into_iter().flatten() {
        metadata.string(key)?;
    }
    Ok(())
}

fn include(body: &Obj) -> Checked<Vec<&'static str>> {
    let mut included = Vec::new();
    for (index, item) in body.opt_array("include")?.unwrap_or_default().iter().enumerate() {
        let path = format!("include[{index}]");
        let value = validate::string(item, &path)?;
        match INCLUDABLE.iter().find(|known| **known == value) {
            Some(known) => included.push(*known),
            None => return Err(Invalid::standalone(path, format!("Invalid value: '{value}'."))),
        }
    }
    Ok(included)
}

/// `reasoning` as OpenAI checks it, and the sampling members reasoning models refuse: whether
/// the model reasons, and if so whether it summarizes and returns `encrypted_content`.
fn reasoning(body: &Obj, model: &str, encrypted: bool) -> Checked<Option<(bool, bool)>> {
    let thinks = reasoning_model(model);
    let mut summary = false;
    let mut effort = "medium";
    if let Some(value) = body.get("reasoning") {
        let reasoning = Obj::new(value, "reasoning")?;
        reasoning.only(&["effort", "summary", "generate_summary", "context", "mode"])?;
        if let Some(asked) = reasoning.opt_string("effort")? {
            if !EFFORTS.contains(&asked) {
                return Err(Invalid::standalone("reasoning.effort", format!("Invalid value: '{asked}'.")));
            }
            if !thinks {
                return Err(Invalid::standalone(
                    "reasoning.effort",
                    "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
                ));
            }
            effort = asked;
        }
        for key in ["summary", "generate_summary"] {
            if let Some(asked) = reasoning.opt_string(key)? {
                if !SUMMARIES.contains(&asked) {
                    return Err(Invalid::standalone(reasoning.path(key), format!("Invalid value: '{asked}'.")));
                }
                summary = true;
            }
        }
    }
    if encrypted && body.get("store").and_then(Value::as_bool) != Some(false) {
        // OpenAI returns encrypted reasoning only to stateless clients.
        return Err(Invalid::standalone(
            "include",
            "Encrypted content is only supported with store=false. Please set store=false or remove 'reasoning.encrypted_content' from include.",
        ));
    }
    if !thinks || effort == "none" {
        return Ok(None);
    }
    if let Some(key) = ["temperature", "top_p"].into_iter().find(|key| body.get(key).is_some()) {
        return Err(Invalid::standalone(key, format!("Unsupported parameter: '{key}' is not supported with this model.")));
    }
    Ok(Some((summary, encrypted)))
}

/// `input`: a string (one user message) or items. Returns the system text of system and developer
/// messages, and the turns: `earlier` (a previous response's), then the input's. `open_calls` are
/// the previous response's function calls, which the input must answer.
fn input_items(input: &Value, mut turns: Vec<Turn>, open_calls: Vec<String>) -> Checked<(Vec<String>, Vec<Turn>)> {
    let mut system = Vec::new();
    // Call ids of function calls not yet answered by an output, and every call id seen.
    let mut calls: HashSet<String> = open_calls.iter().cloned().collect();
    let mut pending = open_calls;
    let items = match input {
        Value::String(text) if pending.is_empty() => {
            turns.push(Turn { role: Role::User, blocks: vec![Block::Text(text.clone())] });
            return Ok((system, turns));
        }
        Value::String(_) => return Err(no_output_for(&pending[0])),
        Value::Array(items) => items,
        _ => return Err(Invalid::new("input", "Input should be a string or a list of input items")),
    };
    for (index, item) in items.iter().enumerate() {
        let item = Obj::new(item, format!("input[{index}]"))?;
        let kind = item.opt_string("type")?.unwrap_or("message");
        let push = |turns: &mut Vec<Turn>, role: Role, block: Block| match turns.last_mut() {
            Some(turn) if turn.role == role && (role == Role::Assistant || openai::is_tool_turn(turn)) => turn.blocks.push(block),
            _ => turns.push(Turn { role, blocks: vec![block] }),
        };
        match kind {
            "message" => {
                item.only(&["type", "role", "content", "id", "status", "phase"])?;
                match item.string("role")? {
                    "system" | "developer" => system.push(openai::texts(&content(&item, false)?)),
                    "user" => turns.push(Turn { role: Role::User, blocks: content(&item, false)? }),
                    "assistant" => {
                        for block in content(&item, true)? {
                            push(&mut turns, Role::Assistant, block);
                        }
                    }
                    role => {
                        return Err(Invalid::standalone(
                            item.path("role"),
                            format!("Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."),
                        ));
                    }
                }
            }
            "function_call" => {
                item.only(&["type", "id", "call_id", "name", "arguments", "status", "namespace", "caller"])?;
                let call_id = item.non_empty_string("call_id")?.to_owned();
                let name = item.non_empty_string("name")?.to_owned();
                let args = script::canonical_args(item.string("arguments")?);
                if let Some(id) = item.opt_string("id")?
                    && !id.starts_with("fc")
                {
                    return Err(Invalid::standalone(
                        item.path("id"),
                        format!("Invalid 'input[{index}].id': '{id}'. Expected an ID that begins with 'fc'."),
                    ));
                }
                calls.insert(call_id.clone());
                pending.push(call_id);
                push(&mut turns, Role::Assistant, Block::ToolCall { name, args });
            }
            "function_call_output" => {
                item.only(&["type", "id", "call_id", "output", "status", "name", "namespace", "caller"])?;
                let call_id = item.non_empty_string("call_id")?;
                if !calls.contains(call_id) {
                    return Err(Invalid::standalone(
                        "input",
                        format!("No tool call found for function call output with call_id {call_id}."),
                    ));
                }
                pending.retain(|pending| pending != call_id);
                let (text, images) = match item.required("output")? {
                    Value::String(text) => (text.clone(), 0),
                    Value::Array(_) => {
                        let blocks = content_parts(item.required("output")?, &item.path("output"), false)?;
                        (openai::texts(&blocks), blocks.iter().filter(|b| **b == Block::Image).count() as u64)
                    }
                    _ => return Err(Invalid::new(item.path("output"), "Input should be a string or a list of content parts")),
                };
                push(&mut turns, Role::User, Block::ToolResult { text, images });
            }
            "reasoning" => {
                item.only(&["type", "id", "summary", "content", "encrypted_content", "status"])?;
                item.non_empty_string("id")?;
                for (at, part) in validate::array(item.required("summary")?, &item.path("summary"))?.iter().enumerate() {
                    let part = Obj::new(part, format!("{}[{at}]", item.path("summary")))?;
                    part.only(&["type", "text"])?;
                    if part.string("type")? != "summary_text" {
                        return Err(Invalid::new(part.path("type"), "Input should be 'summary_text'"));
                    }
                    part.string("text")?;
                }
                item.opt_string("encrypted_content")?;
            }
            "custom_tool_call" => {
                item.only(&["type", "id", "call_id", "name", "input", "status", "namespace", "caller"])?;
                let call_id = item.non_empty_string("call_id")?.to_owned();
                let name = item.non_empty_string("name")?.to_owned();
                let input = item.string("input")?.to_owned();
                calls.insert(call_id.clone());
                pending.push(call_id);
                push(&mut turns, Role::Assistant, Block::ToolCall { name, args: input });
            }
            "custom_tool_call_output" => {
                item.only(&["type", "id", "call_id", "output", "caller"])?;
                let call_id = item.non_empty_string("call_id")?;
                if !calls.contains(call_id) {
                    return Err(Invalid::standalone(
                        "input",
                        format!("No tool call found for custom tool call output with call_id {call_id}."),
                    ));
                }
                pending.retain(|pending| pending != call_id);
                let text = item.string("output")?.to_owned();
                push(&mut turns, Role::User, Block::ToolResult { text, images: 0 });
            }
            // A stored item, by id: the mock does not look it up.
            "item_reference" => {
                item.only(&["type", "id"])?;
                item.non_empty_string("id")?;
            }
            // The calls of OpenAI's built-in tools and their outputs, which OpenAI itself ran.
            kind if BUILT_IN_ITEMS.contains(&kind) => {
                if item.get("id").is_none() && item.get("call_id").is_none() {
                    return Err(Invalid::standalone(item.path("id"), format!("Missing required parameter: '{}'.", item.path("id"))));
                }
            }
            other => {
                return Err(Invalid::standalone(
                    item.path("type"),
                    format!(
                        "Invalid value: '{other}'. Supported values are: 'message', 'function_call', 'function_call_output', 'reasoning', 'custom_tool_call', 'custom_tool_call_output', 'item_reference' and the items of built-in tools."
                    ),
                ));
            }
        }
    }
    match pending.first() {
        Some(call_id) => Err(no_output_for(call_id)),
        None => Ok((system, turns)),
    }
}

fn no_output_for(call_id: &str) -> Invalid {
    Invalid::standalone("input", format!("No tool output found for function call {call_id}."))
}

/// A message's content: a string, or parts (`input_*` for the user, system and developer;
/// `output_text` and `refusal` for the assistant).
fn content(message: &Obj, assistant: bool) -> Checked<Vec<Block>> {
    let path = message.path("content");
    match message.required("content")? {
        Value::String(text) => Ok(vec![Block::Text(text.clone())]),
        parts => content_parts(parts, &path, assistant),
    }
}

fn content_parts(parts: &Value, path: &str, assistant: bool) -> Checked<Vec<Block>> {
    let mut blocks = Vec::new();
    for (index, part) in validate::array(parts, path)?.iter().enumerate() {
        let part = Obj::new(part, format!("{path}[{index}]"))?;
        let kind = part.string("type")?;
        let allowed: &[&str] = if assistant { &["output_text", "refusal"] } else { &["input_text", "input_image", "input_file"] };
        if !allowed.contains(&kind) {
            return Err(Invalid::standalone(
                part.path("type"),
                format!(
                    "Invalid value: '{kind}'. Supported values are: {}.",
                    allowed.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        match kind {
            "input_text" => {
                part.only(&["type", "text"])?;
                blocks.push(Block::Text(part.string("text")?.to_owned()));
            }
            "output_text" => {
                part.only(&["type", "text", "annotations", "logprobs"])?;
                blocks.push(Block::Text(part.string("text")?.to_owned()));
            }
            "refusal" => {
                part.only(&["type", "refusal"])?;
                part.string("refusal")?;
            }
            "input_image" => {
                part.only(&["type", "image_url", "file_id", "detail"])?;
                let url = part.opt_string("image_url")?;
                if url.is_none() && part.opt_string("file_id")?.is_none() {
                    return Err(Invalid::standalone(part.path("image_url"), "Either 'image_url' or 'file_id' must be provided."));
                }
                if let Some(url) = url
                    && !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("data:image/"))
                {
                    return Err(Invalid::standalone(part.path("image_url"), "Expected a valid URL or a base64-encoded data URL."));
                }
                one_of(&part, "detail", &["low", "high", "auto", "original"])?;
                blocks.push(Block::Image);
            }
            _ => {
                part.only(&["type", "file_id", "file_data", "file_url", "filename", "detail"])?;
                if ["file_id", "file_data", "file_url"].iter().all(|key| part.get(key).is_none()) {
                    return Err(Invalid::standalone(part.path("file_id"), "One of 'file_id', 'file_data' or 'file_url' must be provided."));
                }
            }
        }
    }
    Ok(blocks)
}

/// Tools: `function` tools (flat: `name`, `parameters` at the top, not under `function` as in
/// chat) become the script's; built-in tools are accepted and never called.
fn tools(body: &Obj, raw: &[u8]) -> Checked<Vec<Tool>> {
    let Some(items) = body.opt_array("tools")? else {
        return Ok(Vec::new());
    };
    let orders = serde_json::from_slice::<ToolOrders>(raw).map(|orders| orders.tools.unwrap_or_default()).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut tools = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tool = Obj::new(item, format!("tools[{index}]"))?;
        let kind = tool.string("type")?;
        if BUILT_IN_TOOLS.contains(&kind) {
            if kind == "file_search" {
                tool.required("vector_store_ids")?;
            }
            continue;
        }
        if kind != "function" {
            return Err(Invalid::standalone(tool.path("type"), format!("Invalid value: '{kind}'.")));
        }
        tool.only(&["type", "name", "description", "parameters", "strict", "defer_loading", "allowed_callers", "output_schema", "async"])?;
        let name = validate::tool_name(tool.required("name")?, &tool.path("name"), 64)?;
        if !seen.insert(name) {
            return Err(Invalid::standalone(tool.path("name"), format!("Duplicate tool name '{name}'.")));
        }
        tool.opt_string("description")?;
        tool.opt_bool("strict")?;
        let schema = match tool.get("parameters") {
            Some(parameters) => {
                Obj::new(parameters, tool.path("parameters"))?;
                parameters.clone()
            }
            None => Value::Null,
        };
        let order =
            orders.get(index).and_then(|order| order.parameters.as_ref()).and_then(|p| p.properties.as_ref()).map_or(&[][..], |k| &k.0);
        tools.push(Tool::new(name.to_owned(), &schema, order));
    }
    Ok(tools)
}

/// The tools as a response lists them: function tools with `strict` and `parameters` filled in.
fn tools_echo(tools: Option<&Value>) -> Value {
    let tools = tools.and_then(Value::as_array).cloned().unwrap_or_default();
    let echoed = tools.into_iter().map(|mut tool| {
        if tool["type"] == "function" {
            for (key, default) in [("strict", json!(true)), ("parameters", Value::Null), ("description", Value::Null)] {
                if tool.get(key).is_none() {
                    tool[key] = default;
                }
            }
        }
        tool
    });
    Value::Array(echoed.collect())
}

/// Tool schemas re-read for their property order (see [`KeyOrder`]).
#[derive(Deserialize)]
struct ToolOrders {
    tools: Option<Vec<ToolOrder>>,
}

#[derive(Deserialize)]
struct ToolOrder {
    parameters: Option<SchemaOrder>,
}

#[derive(Deserialize)]
struct SchemaOrder {
    properties: Option<KeyOrder>,
}

/// `text.format.schema`, re-read for its property order.
#[derive(Deserialize)]
struct FormatOrder {
    text: Option<TextOrder>,
}

#[derive(Deserialize)]
struct TextOrder {
    format: Option<FormatSchemaOrder>,
}

#[derive(Deserialize)]
struct FormatSchemaOrder {
    schema: Option<SchemaOrder>,
}

fn tool_choice(body: &Obj) -> Checked<ToolChoice> {
    match body.get("tool_choice") {
        None => Ok(ToolChoice::Auto),
        Some(Value::String(choice)) => match choice.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(Invalid::standalone(
                "tool_choice",
                format!("Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."),
            )),
        },
        Some(value) => {
            let choice = Obj::new(value, "tool_choice")?;
            match choice.string("type")? {
                "function" => {
                    choice.only(&["type", "name"])?;
                    Ok(ToolChoice::Named(choice.non_empty_string("name")?.to_owned()))
                }
                "allowed_tools" => {
                    choice.only(&["type", "mode", "tools"])?;
                    choice.opt_array("tools")?;
                    match choice.string("mode")? {
                        "auto" => Ok(ToolChoice::Auto),
                        _ => Ok(ToolChoice::Required),
                    }
                }
                kind if BUILT_IN_TOOLS.contains(&kind) => Ok(ToolChoice::None),
                other => Err(Invalid::standalone(choice.path("type"), format!("Invalid value: '{other}'."))),
            }
        }
    }
}

/// `text.format`: `text`, `json_object` (the input must say "JSON"), or `json_schema` (a name
/// and an object schema), whose sample arguments become the answer.
fn text_format(body: &Obj, raw: &[u8], conversation: &Conversation) -> Checked<Option<Tool>> {
    let Some(text) = body.get("text") else { return Ok(None) };
    let text = Obj::new(text, "text")?;
    text.only(&["format", "verbosity"])?;
    one_of(&text, "verbosity", &["low", "medium", "high"])?;
    let Some(format) = text.get("format") else { return Ok(None) };
    let format = Obj::new(format, "text.format")?;
    match format.string("type")? {
        "text" => {
            format.only(&["type"])?;
            Ok(None)
        }
        "json_object" => {
            format.only(&["type"])?;
            let said: String = conversation
                .system
                .iter()
                .cloned()
                .chain(conversation.turns.iter().flat_map(|turn| &turn.blocks).filter_map(|block| match block {
                    Block::Text(text) => Some(text.clone()),
                    _ => None,
                }))
                .collect();
            if !said.to_lowercase().contains("json") {
                return Err(Invalid::standalone(
                    "input",
                    "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.",
                ));
            }
            Ok(Some(Tool::new("response".to_owned(), &json!({}), &[])))
        }
        "json_schema" => {
            format.only(&["type", "name", "schema", "strict", "description"])?;
            format
                .non_empty_string("name")
                .map_err(|_| Invalid::standalone("text.format.name", "Missing required parameter: 'text.format.name'."))?;
            format.opt_bool("strict")?;
            let schema = format.required("schema")?;
            if Obj::new(schema, "text.format.schema")?.string("type")? != "object" {
                return Err(Invalid::standalone(
                    "text.format.schema",
                    "Invalid schema for response_format: schema must be a JSON Schema of 'type: \"object\"'.",
                ));
            }
            let order = serde_json::from_slice::<FormatOrder>(raw)
                .ok()
                .and_then(|o| o.text?.format?.schema?.properties)
                .map_or_else(Vec::new, |keys| keys.0);
            Ok(Some(Tool::new("response".to_owned(), schema, &order)))
        }
        other => Err(Invalid::standalone(
            "text.format.type",
            format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."),
        )),
    }
}

/// Everything one answer is made of: the whole response, and the items in the order they stream.
struct Rendered {
    response: Value,
    items: Vec<Value>,
}

fn render(parsed: &Parsed, reply: &Reply, store: &Store) -> Answer {
    let id = format!("resp_mock{}", script::next_id());
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    let incomplete =
        if parsed.filtered { Some("content_filter") } else { (reply.finish == Finish::MaxTokens).then_some("max_output_tokens") };
    let mut items = Vec::new();
    let mut reasoning_tokens = 0;
    if let Some((summary, encrypted)) = parsed.reasons {
        reasoning_tokens = REASONING_TOKENS;
        let mut item = json!({
            "id": format!("rs_mock{}", script::next_id()),
            "type": "reasoning",
            "summary": if summary { json!([{"type": "summary_text", "text": THOUGHT}]) } else { json!([]) },
        });
        if encrypted {
            item["encrypted_content"] = json!("Z0FBQUFBQm1vY2stZW5jcnlwdGVkLXJlYXNvbmluZw==");
        }
        items.push(item);
    }
    if !reply.text.is_empty() {
        items.push(json!({
            "id": format!("msg_mock{}", script::next_id()),
            "type": "message",
            "status": if incomplete.is_some() { "incomplete" } else { "completed" },
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
        }));
    }
    let call_id = reply.tool_call.as_ref().map(|_| format!("call_mock{}", script::next_id()));
    if let (Some(call), Some(call_id)) = (&reply.tool_call, &call_id) {
        items.push(json!({
            "id": format!("fc_mock{}", script::next_id()),
            "type": "function_call",
            "status": "completed",
            "call_id": call_id,
            "name": call.name,
            "arguments": call.args.to_json(),
        }));
    }
    let usage = reply.usage;
    let output_tokens = usage.output + reasoning_tokens;
    let mut response = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": if incomplete.is_some() { "incomplete" } else { "completed" },
        "background": false,
        "completed_at": created,
        "error": null,
        "incomplete_details": incomplete.map(|reason| json!({"reason": reason})),
        "max_tool_calls": null,
        "model": parsed.model,
        "output": items,
        "usage": {
            "input_tokens": usage.prompt(),
            "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": usage.prompt() + output_tokens,
        },
    });
    if let (Some(response), Some(echo)) = (response.as_object_mut(), parsed.echo.as_object()) {
        response.extend(echo.clone());
    }
    if parsed.store {
        let mut conversation = parsed.conversation.clone();
        let blocks: Vec<Block> = reply
            .tool_call
            .iter()
            .map(|call| Block::ToolCall { name: call.name.clone(), args: call.args.to_json() })
            .chain((!reply.text.is_empty()).then(|| Block::Text(reply.text.clone())))
            .collect();
        if !blocks.is_empty() {
            conversation.turns.push(Turn { role: Role::Assistant, blocks });
        }
        store.put(id.clone(), Stored { response: response.clone(), conversation, calls: call_id.into_iter().collect() });
    }
    let rendered = Rendered { items: response["output"].as_array().cloned().unwrap_or_default(), response };
    // As api.openai.com answers: the account's organization, rate limits and a cookie.
    let whole = Response::json(200, &rendered.response)
        .with_header("x-request-id", format!("req_mock{}", script::next_id()))
        .with_header("openai-organization", "org-gateway-owner")
        .with_header("x-ratelimit-remaining-tokens", "149984")
        .with_header("set-cookie", "__cf_bm=mock-cookie; path=/; HttpOnly");
    let events = parsed.stream.then(|| stream_events(&rendered, parsed.obfuscate));
    Answer { whole, events }
}

/// The typed events that stream `rendered`, numbered from 0, in the order OpenAI sends them.
fn stream_events(rendered: &Rendered, obfuscate: bool) -> Vec<String> {
    let mut events = Events { payloads: Vec::new(), obfuscate };
    let mut pending = rendered.response.clone();
    pending["status"] = json!("in_progress");
    pending["output"] = json!([]);
    pending["usage"] = Value::Null;
    pending["incomplete_details"] = Value::Null;
    pending["completed_at"] = Value::Null;
    events.push(json!({"type": "response.created", "response": pending}));
    events.push(json!({"type": "response.in_progress", "response": pending}));
    for (output_index, item) in rendered.items.iter().enumerate() {
        let item_id = item["id"].clone();
        let at = json!({"item_id": item_id, "output_index": output_index});
        let with = |mut extra: Value| {
            if let (Some(extra), Some(at)) = (extra.as_object_mut(), at.as_object()) {
                extra.extend(at.clone());
            }
            extra
        };
        match item["type"].as_str() {
            Some("reasoning") => {
                events.push(json!({"type": "response.output_item.added", "output_index": output_index,
                                   "item": {"id": item_id, "type": "reasoning", "summary": []}}));
                for (summary_index, part) in item["summary"].as_array().into_iter().flatten().enumerate() {
                    let text = part["text"].as_str().unwrap_or_default();
                    events.push(with(json!({"type": "response.reasoning_summary_part.added", "summary_index": summary_index,
                                            "part": {"type": "summary_text", "text": ""}})));
                    for piece in script::stream_pieces(text) {
                        events.delta(with(
                            json!({"type": "response.reasoning_summary_text.delta", "summary_index": summary_index, "delta": piece}),
                        ));
                    }
                    events
                        .push(with(json!({"type": "response.reasoning_summary_text.done", "summary_index": summary_index, "text": text})));
                    events
                        .push(with(json!({"type": "response.reasoning_summary_part.done", "summary_index": summary_index, "part": part})));
                }
            }
            Some("message") => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["content"] = json!([]);
                events.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}));
                for (content_index, part) in item["content"].as_array().into_iter().flatten().enumerate() {
                    let text = part["text"].as_str().unwrap_or_default();
                    let empty = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                    events.push(with(json!({"type": "response.content_part.added", "content_index": content_index, "part": empty})));
                    for piece in script::stream_pieces(text) {
                        events.delta(with(
                            json!({"type": "response.output_text.delta", "content_index": content_index, "delta": piece, "logprobs": []}),
                        ));
                    }
                    events.push(with(
                        json!({"type": "response.output_text.done", "content_index": content_index, "text": text, "logprobs": []}),
                    ));
                    events.push(with(json!({"type": "response.content_part.done", "content_index": content_index, "part": part})));
                }
            }
            _ => {
                let mut added = item.clone();
                added["status"] = json!("in_progress");
                added["arguments"] = json!("");
                events.push(json!({"type": "response.output_item.added", "output_index": output_index, "item": added}));
                let arguments = item["arguments"].as_str().unwrap_or_default();
                for piece in script::thirds(arguments) {
                    events.delta(with(json!({"type": "response.function_call_arguments.delta", "delta": piece})));
                }
                events.push(with(json!({"type": "response.function_call_arguments.done", "arguments": arguments, "name": item["name"]})));
            }
        }
        events.push(json!({"type": "response.output_item.done", "output_index": output_index, "item": item}));
    }
    let last = if rendered.response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
    events.push(json!({"type": last, "response": rendered.response}));
    events
        .payloads
        .into_iter()
        .enumerate()
        .map(|(sequence, mut payload)| {
            payload["sequence_number"] = json!(sequence);
            event(&payload)
        })
        .collect()
}

struct Events {
    payloads: Vec<Value>,
    obfuscate: bool,
}

impl Events {
    fn push(&mut self, payload: Value) {
        self.payloads.push(payload);
    }

    /// A delta event, padded with `obfuscation` as OpenAI pads them against length side channels.
    fn delta(&mut self, mut payload: Value) {
        if self.obfuscate {
            payload["obfuscation"] = json!("x".repeat(16 - payload["delta"].as_str().map_or(0, str::len) % 16));
        }
        self.payloads.push(payload);
    }
}

/// A typed event: `event:` names its `type`.
fn event(payload: &Value) -> String {
    format!("event: {}\ndata: {payload}\n\n", payload["type"].as_str().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, body: &str) -> Request {
        let raw = format!("{method} {path} HTTP/1.1\r\nauthorization: Bearer k\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    fn send_raw(responses: &Responses, body: &str) -> Result<Answer, Response> {
        responses.answer(&request("POST", "/v1/responses", body), Cache::default())
    }

    fn send(responses: &Responses, body: &Value) -> Result<Answer, Response> {
        send_raw(responses, &body.to_string())
    }

    fn answer(body: Value) -> Value {
        json_of(&send(&Responses::new("k".to_owned()), &body).ok().unwrap_or_else(|| panic!("rejected")).whole)
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    /// Each event's `event:` name and data.
    fn events(answer: &Answer) -> Vec<(String, Value)> {
        answer
            .events
            .as_ref()
            .unwrap()
            .iter()
            .map(|event| {
                let (name, data) = event.strip_prefix("event: ").unwrap().strip_suffix("\n\n").unwrap().split_once("\ndata: ").unwrap();
                (name.to_owned(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }

    // Written out by hand: `json!` would sort the schema's properties.
    const WEATHER: &str = r#"{"model": "gpt-5", "reasoning": {"effort": "low", "summary": "auto"}, "store": false,
        "include": ["reasoning.encrypted_content"], "stream": STREAM,
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}}}}],
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]}]}"#;

    #[test]
    fn answers_with_a_response_object() {
        let body = answer(json!({"model": "gpt-4o", "instructions": "Be nice", "input": "hi there"}));
        assert_eq!((body["object"].as_str(), body["status"].as_str()), (Some("response"), Some("completed")));
        assert!(body["id"].as_str().unwrap().starts_with("resp_"));
        let message = &body["output"][0];
        assert_eq!((message["type"].as_str(), message["role"].as_str()), (Some("message"), Some("assistant")));
        assert!(message["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(
            message["content"],
            json!([{"type": "output_text", "text": "Hello! You said: hi there", "annotations": [], "logprobs": []}])
        );
        assert_eq!(body["output"].as_array().unwrap().len(), 1, "no reasoning from a model that does not reason");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 4, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 5,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 9})
        );
        assert_eq!(
            (body["instructions"].as_str(), body["tool_choice"].as_str(), body["store"].as_bool()),
            (Some("Be nice"), Some("auto"), Some(true))
        );
        assert_eq!(body["text"]["format"], json!({"type": "text"}));
    }

    #[test]
    fn reasoning_models_reason_and_call_tools_and_the_stream_agrees_with_the_whole_answer() {
        let responses = Responses::new("k".to_owned());
        let whole = json_of(&send_raw(&responses, &WEATHER.replace("STREAM", "false")).ok().unwrap().whole);
        let kinds: Vec<&str> = whole["output"].as_array().unwrap().iter().map(|item| item["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["reasoning", "message", "function_call"]);
        let reasoning = &whole["output"][0];
        assert_eq!(reasoning["summary"], json!([{"type": "summary_text", "text": THOUGHT}]));
        assert!(reasoning["encrypted_content"].is_string());
        let call = &whole["output"][2];
        assert_eq!((call["name"].as_str(), call["arguments"].as_str()), (Some("get_weather"), Some(r#"{"city":"Paris","days":1}"#)));
        assert!(call["call_id"].as_str().unwrap().starts_with("call_") && call["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(whole["usage"]["output_tokens_details"]["reasoning_tokens"], REASONING_TOKENS);
        assert_eq!(whole["usage"]["output_tokens"], 3 + 10 + REASONING_TOKENS);
        assert_eq!(whole["tools"][0]["strict"], true, "the defaults the response lists");

        let streamed = send_raw(&responses, &WEATHER.replace("STREAM", "true")).ok().unwrap();
        let events = events(&streamed);
        for (sequence, (name, data)) in events.iter().enumerate() {
            assert_eq!((data["type"].as_str(), data["sequence_number"].as_u64()), (Some(name.as_str()), Some(sequence as u64)));
        }
        let names: Vec<&str> = events.iter().map(|(name, _)| name.strip_prefix("response.").unwrap()).collect();
        assert_eq!(names[..4], ["created", "in_progress", "output_item.added", "reasoning_summary_part.added"]);
        assert_eq!(names.iter().filter(|name| **name == "output_item.added").count(), 3);
        assert_eq!(names.iter().filter(|name| **name == "output_item.done").count(), 3);
        assert_eq!(names.last(), Some(&"completed"));
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert_eq!(events[0].1["response"]["output"], json!([]));
        let joined = |kind: &str| -> String {
            events.iter().filter(|(name, _)| name == kind).map(|(_, data)| data["delta"].as_str().unwrap()).collect()
        };
        assert_eq!(joined("response.reasoning_summary_text.delta"), THOUGHT);
        assert_eq!(joined("response.output_text.delta"), "Let me check.");
        assert_eq!(joined("response.function_call_arguments.delta"), r#"{"city":"Paris","days":1}"#);
        assert!(events.iter().filter(|(name, _)| name.ends_with(".delta")).all(|(_, data)| data["obfuscation"].is_string()));
        let last = &events.last().unwrap().1["response"];
        assert_eq!((&last["usage"], &last["status"]), (&whole["usage"], &whole["status"]));
        let done: Vec<&Value> =
            events.iter().filter(|(name, _)| name == "response.output_item.done").map(|(_, data)| &data["item"]).collect();
        assert_eq!(done, last["output"].as_array().unwrap().iter().collect::<Vec<_>>(), "each item done as the response lists it");
    }

    #[test]
    fn a_function_call_round_trip_and_a_continued_response() {
        let responses = Responses::new("k".to_owned());
        let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
        let question = json!({"role": "user", "content": "weather in Paris?"});
        let first = json_of(&send(&responses, &json!({"model": "gpt-4o", "tools": tools, "input": [question]})).ok().unwrap().whole);
        let call = first["output"][1].clone();
        let output = json!({"type": "function_call_output", "call_id": call["call_id"], "output": "18C and sunny"});
        let second = json!({"model": "gpt-4o", "tools": tools, "input": [question, call, output]});
        assert_eq!(
            json_of(&send(&responses, &second).ok().unwrap().whole)["output"][0]["content"][0]["text"],
            "Tool results: 18C and sunny"
        );

        let continued = json!({"model": "gpt-4o", "tools": tools, "previous_response_id": first["id"], "input": [output]});
        let continued = json_of(&send(&responses, &continued).ok().unwrap().whole);
        assert_eq!(continued["output"][0]["content"][0]["text"], "Tool results: 18C and sunny");
        assert_eq!(continued["previous_response_id"], first["id"]);
        let unanswered = json!({"model": "gpt-4o", "previous_response_id": first["id"], "input": "and tomorrow?"});
        let error = json_of(&send(&responses, &unanswered).err().unwrap());
        assert!(error["error"]["message"].as_str().unwrap().starts_with("No tool output found for function call call_"), "{error}");
    }

    #[test]
    fn stored_responses_can_be_fetched_and_deleted() {
        let responses = Responses::new("k".to_owned());
        let created = json_of(&send(&responses, &json!({"model": "gpt-4o", "input": "hi"})).ok().unwrap().whole);
        let path = format!("/v1/responses/{}", created["id"].as_str().unwrap());
        let fetch = |method: &str| responses.answer(&request(method, &path, ""), Cache::default());
        assert_eq!(json_of(&fetch("GET").ok().unwrap().whole), created);
        assert_eq!(json_of(&fetch("DELETE").ok().unwrap().whole), json!({"id": created["id"], "object": "response", "deleted": true}));
        assert_eq!(fetch("GET").err().unwrap().status, 404);
        assert_eq!(fetch("DELETE").err().unwrap().status, 404);

        let unstored = json_of(&send(&responses, &json!({"model": "gpt-4o", "input": "hi", "store": false})).ok().unwrap().whole);
        let path = format!("/v1/responses/{}", unstored["id"].as_str().unwrap());
        assert_eq!(responses.answer(&request("GET", &path, ""), Cache::default()).err().unwrap().status, 404);
        let wrong_key = "GET /v1/responses/x HTTP/1.1\r\nauthorization: Bearer nope\r\n\r\n";
        let wrong_key = crate::http::read_request(&mut wrong_key.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        assert_eq!(responses.answer(&wrong_key, Cache::default()).err().unwrap().status, 401);
    }

    #[test]
    fn answers_in_the_json_schema() {
        let body = r#"{"model": "gpt-4o", "input": "hi", "text": {"format": {"type": "json_schema", "name": "w",
            "schema": {"type": "object", "properties": {"temp": {"type": "number"}, "city": {"type": "string"}}}}}}"#;
        let structured = json_of(&send_raw(&Responses::new("k".to_owned()), body).ok().unwrap().whole);
        assert_eq!(structured["output"][0]["content"][0]["text"], r#"{"temp":1,"city":"Paris"}"#);
        assert_eq!(structured["text"]["format"]["name"], "w");
        let json_mode = answer(json!({"model": "gpt-4o", "input": "answer in JSON", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(json_mode["output"][0]["content"][0]["text"], "{}");
    }

    #[test]
    fn output_limits_and_the_content_filter_leave_the_response_incomplete() {
        let cut = answer(json!({"model": "gpt-4o", "max_output_tokens": 16, "input": "please write 40 words"}));
        assert_eq!((cut["status"].as_str(), cut["incomplete_details"]["reason"].as_str()), (Some("incomplete"), Some("max_output_tokens")));
        assert_eq!((cut["usage"]["output_tokens"].as_u64(), cut["output"][0]["status"].as_str()), (Some(16), Some("incomplete")));
        let filtered = answer(json!({"model": "gpt-4o", "input": "[filtered-output]"}));
        assert_eq!(filtered["incomplete_details"]["reason"], "content_filter");
        let streamed =
            send(&Responses::new("k".to_owned()), &json!({"model": "gpt-4o", "input": "[filtered-output]", "stream": true})).ok().unwrap();
        assert_eq!(events(&streamed).last().unwrap().0, "response.incomplete");
    }

    #[test]
    fn rejects_invalid_requests_naming_the_parameter() {
        let fc = json!({"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"});
        let cases = [
            (json!({"input": "x"}), "model", None),
            (json!({"model": "m"}), "input", None),
            (json!({"model": "m", "input": "x", "messages": []}), "messages", Some("unknown_parameter")),
            (json!({"model": "m", "input": 5}), "input", None),
            (json!({"model": "m", "input": [{"role": "bot", "content": "x"}]}), "input[0].role", None),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
                "input[0].content[0].type",
                None,
            ),
            (json!({"model": "m", "input": [{"type": "teleport"}]}), "input[0].type", None),
            (json!({"model": "m", "input": [{"type": "web_search_call"}]}), "input[0].id", None),
            (json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]}), "input", None),
            (json!({"model": "m", "input": [fc]}), "input", None),
            (json!({"model": "m", "input": [{"type": "reasoning", "id": "rs_1"}]}), "input[0].summary", None),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tools[0].function",
                Some("unknown_parameter"),
            ),
            (json!({"model": "m", "input": "x", "tools": [{"type": "teleport"}]}), "tools[0].type", None),
            (json!({"model": "m", "input": "x", "max_output_tokens": 5}), "max_output_tokens", None),
            (json!({"model": "gpt-4o", "input": "x", "reasoning": {"effort": "low"}}), "reasoning.effort", None),
            (json!({"model": "gpt-5", "input": "x", "reasoning": {"effort": "huge"}}), "reasoning.effort", None),
            (json!({"model": "gpt-5", "input": "x", "temperature": 0.5}), "temperature", None),
            (json!({"model": "gpt-5", "input": "x", "include": ["reasoning.encrypted_content"]}), "include", None),
            (json!({"model": "m", "input": "x", "include": ["everything"]}), "include[0]", None),
            (
                json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}),
                "text.format.name",
                None,
            ),
            (json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}), "input", None),
            (json!({"model": "m", "input": "x", "tool_choice": "always"}), "tool_choice", None),
            (json!({"model": "m", "input": "x", "stream_options": {"include_obfuscation": false}}), "stream_options", None),
            (json!({"model": "m", "input": "x", "previous_response_id": "resp_nope"}), "previous_response_id", None),
            (json!({"model": "m", "input": "x", "conversation": "conv_1"}), "conversation", None),
        ];
        for (body, param, code) in cases {
            let response = send(&Responses::new("k".to_owned()), &body).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(response.status, 400, "{body}");
            let error = json_of(&response);
            assert_eq!((error["error"]["param"].as_str(), error["error"]["code"].as_str()), (Some(param), code), "{body}: {error}");
            assert_eq!(error["error"]["type"], "invalid_request_error");
        }
    }

    #[test]
    fn takes_the_documented_members() {
        let body = json!({
            "model": "gpt-5-codex", "instructions": "You are a coding agent.", "store": false, "stream": true,
            "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "medium", "summary": "auto"},
            "parallel_tool_calls": false, "tool_choice": "auto", "prompt_cache_key": "session-1", "service_tier": "auto",
            "truncation": "auto", "metadata": {"session": "s1"}, "safety_identifier": "user-1", "max_output_tokens": 1000,
            "stream_options": {"include_obfuscation": false}, "text": {"verbosity": "low"},
            "tools": [{"type": "function", "name": "shell", "description": "Runs a command", "strict": false,
                       "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
                      {"type": "web_search"}],
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Work in /repo"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}], "encrypted_content": "abc"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "README.md"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done.", "annotations": []}]},
                {"role": "user", "content": "thanks"},
            ],
        });
        let streamed = send(&Responses::new("k".to_owned()), &body).ok().unwrap_or_else(|| panic!("rejected"));
        let events = events(&streamed);
        assert!(events.iter().all(|(_, data)| data.get("obfuscation").is_none()), "include_obfuscation: false");
        assert_eq!(events.last().unwrap().1["response"]["output"][1]["content"][0]["text"], "Hello! You said: thanks");
    }

    #[test]
    fn takes_custom_tool_calls_item_references_and_built_in_tool_items() {
        let body = json!({"model": "gpt-5-codex", "tools": [{"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}],
        "input": [
            {"type": "item_reference", "id": "msg_1"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
            {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Done!"},
        ]});
        let whole = answer(body);
        assert_eq!(whole["output"][1]["content"][0]["text"], "Tool results: Done!");
        let unanswered = json!({"model": "m", "input": [{"type": "custom_tool_call", "call_id": "c", "name": "f", "input": ""}]});
        assert_eq!(json_of(&send(&Responses::new("k".to_owned()), &unanswered).err().unwrap())["error"]["param"], "input");
    }

    #[test]
    fn a_failed_stream_ends_with_an_error_event_numbered_after_the_rest() {
        let request = request("POST", "/v1/responses", "{}");
        let error = Responses::new("k".to_owned()).stream_error(&request, 4);
        let data: Value = serde_json::from_str(error.strip_prefix("event: error\ndata: ").unwrap().trim_end()).unwrap();
        assert_eq!(
            (data["type"].as_str(), data["sequence_number"].as_u64(), data["code"].as_str()),
            (Some("error"), Some(4), Some("server_error"))
        );
    }
}
