//! The Anthropic Messages dialect, inbound: a `POST /v1/messages` body parsed into the gateway's
//! [`ChatRequest`] and validated, errors naming the field as the client wrote it.
//! Field names follow https://docs.anthropic.com/en/api/messages.
//!
//! Only providers that do not speak Messages read what this yields; an Anthropic provider gets
//! the client's bytes (see `client::ClientBody`). So what has no counterpart elsewhere (server
//! tools, `container`, `mcp_servers`, …) is kept as an unknown member or part kind, which those
//! providers refuse by name (or drop with `drop_unsupported`).

use crate::conversation::request::{
    ChatRequest, Content, FilePart, FunctionCall, FunctionDef, ImageUrl, Message, Part, Role, Tool, ToolCall, ToolChoice,
};
use crate::error::ApiError;
use crate::json::{Str, Text};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Members that change nothing in the answer and that no other provider has (Anthropic's
/// capacity tier).
const IGNORED: &[&str] = &["service_tier"];

/// `content` and `system`: a string or a list of blocks.
enum Blocks<'a> {
    Text(Str<'a>),
    List(Vec<Block<'a>>),
}

struct BlocksVisitor;

impl<'de> Visitor<'de> for BlocksVisitor {
    type Value = Blocks<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an array of content blocks")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Blocks::Text(Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Blocks::Text(Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Blocks::Text(Str(Cow::Owned(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(b) = seq.next_element()? {
            blocks.push(b);
        }
        Ok(Blocks::List(blocks))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Blocks<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BlocksVisitor)
    }
}

/// One content block; which fields it has depends on its `type`.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    title: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    content: Option<Blocks<'a>>,
    #[serde(default)]
    is_error: Option<bool>,
    #[serde(borrow, default)]
    thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    signature: Option<Str<'a>>,
    #[serde(borrow, default)]
    data: Option<Str<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<&'a RawValue>,
}

/// An image's or document's `source`.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    media_type: Option<Str<'a>>,
    #[serde(borrow, default)]
    data: Option<Str<'a>>,
    #[serde(borrow, default)]
    url: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: Blocks<'a>,
}

#[derive(Deserialize)]
struct WireTool<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Str<'a>,
    #[serde(borrow, default)]
    description: Option<Str<'a>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
    #[serde(borrow, default)]
    cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Thinking<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(default)]
    budget_tokens: Option<u64>,
}

/// A parsed Messages body, before it becomes the gateway's request.
#[derive(Default)]
struct MessagesRequest<'a> {
    model: Option<Str<'a>>,
    max_tokens: Option<u64>,
    messages: Option<Vec<WireMessage<'a>>>,
    system: Option<Blocks<'a>>,
    stop_sequences: Vec<Str<'a>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    tools: Vec<WireTool<'a>>,
    tool_choice: Option<WireToolChoice<'a>>,
    user_id: Option<Str<'a>>,
    stream: bool,
    thinking: Option<Thinking<'a>>,
    extra: Vec<(Str<'a>, &'a RawValue)>,
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = MessagesRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Messages request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = MessagesRequest::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "model" => r.model = Some(map.next_value()?),
                "max_tokens" => r.max_tokens = map.next_value()?,
                "messages" => r.messages = Some(map.next_value()?),
                "system" => r.system = map.next_value()?,
                "stop_sequences" => r.stop_sequences = map.next_value::<Option<Vec<Str>>>()?.unwrap_or_default(),
                "temperature" => r.temperature = map.next_value()?,
                "top_p" => r.top_p = map.next_value()?,
                "tools" => r.tools = map.next_value::<Option<Vec<WireTool>>>()?.unwrap_or_default(),
                "tool_choice" => r.tool_choice = map.next_value()?,
                "metadata" => r.user_id = map.next_value::<Option<Metadata>>()?.and_then(|m| m.user_id),
                "stream" => r.stream = map.next_value::<Option<bool>>()?.unwrap_or(false),
                "thinking" => r.thinking = map.next_value()?,
                _ => {
                    let raw: &'de RawValue = map.next_value()?;
                    if raw.get() != "null" && !IGNORED.contains(&&*key) {
                        r.extra.push((key, raw));
                    }
                }
            }
        }
        Ok(r)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MessagesRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

/// Parses and validates a Messages body into the gateway's request.
pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
    parse_as(body, Endpoint::Messages)
}

/// A `count_tokens` body: a Messages request without `max_tokens`.
pub fn parse_count_tokens(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
    parse_as(body, Endpoint::CountTokens)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Messages,
    CountTokens,
}

fn parse_as(body: &[u8], endpoint: Endpoint) -> Result<ChatRequest<'_>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("The request body is empty; send a JSON Messages request."));
    }
    crate::json::check_depth(body).map_err(|deep| ApiError::nesting_too_deep(&deep))?;
    let wire: MessagesRequest = crate::json::from_body(body).map_err(|e| describe_parse_error(body, &e))?;
    into_request(wire, endpoint)
}

fn describe_parse_error(body: &[u8], e: &serde_json::Error) -> ApiError {
    if e.is_syntax() || e.is_eof() {
        return ApiError::invalid_request(format!("The request body is not valid JSON: {e}. Send a JSON object."));
    }
    let message = crate::json::strip_position(&e.to_string());
    let path = crate::json::path_at(body, crate::json::offset_of(body, e.line(), e.column()));
    if path.is_empty() {
        return ApiError::invalid_request(format!("Invalid request: {message}."));
    }
    ApiError::invalid_param(path.clone(), format!("{path}: {message}."))
}

fn into_request(w: MessagesRequest, endpoint: Endpoint) -> Result<ChatRequest, ApiError> {
    let model = w.model.filter(|m| !m.is_empty()).ok_or_else(|| ApiError::invalid_param("model", "model: Field required."))?;
    let max_tokens = match w.max_tokens {
        None if endpoint == Endpoint::CountTokens => None,
        None => return Err(ApiError::invalid_param("max_tokens", "max_tokens: Field required.")),
        Some(0) => return Err(ApiError::invalid_param("max_tokens", "max_tokens: must be at least 1.")),
        Some(n) => Some(n),
    };
    let wire_messages = w.messages.ok_or_else(|| ApiError::invalid_param("messages", "messages: Field required."))?;
    if wire_messages.is_empty() {
        return Err(ApiError::invalid_param("messages", "messages: at least one message is required."));
    }
    for (name, value) in [("temperature", w.temperature), ("top_p", w.top_p)] {
        if let Some(v) = value
            && !(0.0..=1.0).contains(&v)
        {
            return Err(ApiError::invalid_param(name, format!("{name}: must be between 0 and 1, got {v}.")));
        }
    }
    let mut messages = Vec::with_capacity(wire_messages.len() + 1);
    if let Some(system) = w.system {
        messages.push(system_message(system)?);
    }
    for (i, m) in wire_messages.into_iter().enumerate() {
        match &*m.role {
            "user" => user_messages(i, m.content, &mut messages)?,
            "assistant" => messages.push(assistant_message(i, m.content)?),
            other => {
                return Err(ApiError::invalid_param(
                    format!("messages.{i}.role"),
                    format!("messages.{i}.role: Input should be 'user' or 'assistant', got '{other}'."),
                ));
            }
        }
    }
    let tools = w.tools.into_iter().enumerate().map(|(i, t)| tool(i, t)).collect::<Result<Vec<_>, _>>()?;
    let (tool_choice, parallel_tool_calls) = match w.tool_choice {
        None => (None, None),
        Some(c) => tool_choice(c, &tools)?,
    };
    let mut extra = w.extra;
    if let Some(effort) = w.thinking.map(reasoning_effort).transpose()?.flatten() {
        extra.push((Str::from("reasoning_effort"), effort));
    }
    Ok(ChatRequest {
        model,
        messages,
        stream: w.stream,
        max_tokens,
        temperature: w.temperature,
        top_p: w.top_p,
        stop: w.stop_sequences,
        tools,
        tool_choice,
        parallel_tool_calls,
        user: w.user_id,
        extra,
        ..Default::default()
    })
}

fn system_message(system: Blocks) -> Result<Message, ApiError> {
    let content = match system {
        Blocks::Text(t) => Content::Text(t.into()),
        Blocks::List(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.into_iter().enumerate() {
                if &*b.kind != "text" {
                    return Err(ApiError::invalid_param(
                        format!("system.{j}.type"),
                        format!("system.{j}: system blocks must be text, got '{}'.", &*b.kind),
                    ));
                }
                parts.push(Part {
                    kind: b.kind,
                    text: Some(b.text.unwrap_or_default().into()),
                    cache_control: b.cache_control,
                    ..Default::default()
                });
            }
            Content::Parts(parts)
        }
    };
    Ok(message(Role::System, Some(content)))
}

fn message(role: Role, content: Option<Content>) -> Message {
    Message { role, content, name: None, tool_calls: None, tool_call_id: None, is_error: false }
}

/// A user turn: its tool results become tool messages (in order, ahead of what follows them),
/// the rest one user message.
fn user_messages<'a>(i: usize, content: Blocks<'a>, out: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    let blocks = match content {
        Blocks::Text(t) => {
            out.push(message(Role::User, Some(Content::Text(t.into()))));
            return Ok(());
        }
        Blocks::List(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        if &*b.kind == "tool_result" {
            if !parts.is_empty() {
                out.push(message(Role::User, Some(Content::Parts(std::mem::take(&mut parts)))));
            }
            out.push(tool_result(i, j, b)?);
        } else {
            parts.push(part(&|| format!("messages.{i}.content.{j}"), b)?);
        }
    }
    if !parts.is_empty() {
        out.push(message(Role::User, Some(Content::Parts(parts))));
    }
    Ok(())
}

fn tool_result<'a>(i: usize, j: usize, b: Block<'a>) -> Result<Message<'a>, ApiError> {
    let path = || format!("messages.{i}.content.{j}");
    let id = b
        .tool_use_id
        .ok_or_else(|| ApiError::invalid_param(format!("{}.tool_use_id", path()), format!("{}.tool_use_id: Field required.", path())))?;
    let content = match b.content {
        None => Content::Text(Text::default()),
        Some(Blocks::Text(t)) => Content::Text(t.into()),
        Some(Blocks::List(blocks)) => Content::Parts(
            blocks.into_iter().enumerate().map(|(k, b)| part(&|| format!("{}.content.{k}", path()), b)).collect::<Result<_, _>>()?,
        ),
    };
    Ok(Message { tool_call_id: Some(id), is_error: b.is_error == Some(true), ..message(Role::Tool, Some(content)) })
}

fn assistant_message<'a>(i: usize, content: Blocks<'a>) -> Result<Message<'a>, ApiError> {
    let blocks = match content {
        Blocks::Text(t) => return Ok(message(Role::Assistant, Some(Content::Text(t.into())))),
        Blocks::List(blocks) => blocks,
    };
    let mut parts = Vec::with_capacity(blocks.len());
    let mut calls = Vec::new();
    for (j, b) in blocks.into_iter().enumerate() {
        let path = || format!("messages.{i}.content.{j}");
        match &*b.kind {
            "tool_use" => {
                let (Some(id), Some(name)) = (b.id, b.name) else {
                    return Err(ApiError::invalid_param(path(), format!("{}: a tool_use block needs `id` and `name`.", path())));
                };
                let arguments = b.input.map_or(Str::from("{}"), |input| Str(Cow::Borrowed(input.get())));
                calls.push(ToolCall { id, kind: Some(Str::from("function")), function: FunctionCall { name, arguments } });
            }
            "thinking" => parts.push(Part { kind: b.kind, thinking: b.thinking, signature: b.signature, ..Default::default() }),
            "redacted_thinking" => parts.push(Part { kind: b.kind, signature: b.data, ..Default::default() }),
            _ => parts.push(part(&path, b)?),
        }
    }
    let content = if parts.is_empty() { None } else { Some(Content::Parts(parts)) };
    if content.is_none() && calls.is_empty() {
        return Err(ApiError::invalid_param(format!("messages.{i}.content"), format!("messages.{i}: an assistant message needs content.")));
    }
    Ok(Message { tool_calls: (!calls.is_empty()).then_some(calls), ..message(Role::Assistant, content) })
}

/// A text, image or document block as a part; other kinds are kept by name, for the provider to
/// refuse if it has no counterpart. `path` names the block in errors (made on the error path only).
fn part<'a>(path: &dyn Fn() -> String, b: Block<'a>) -> Result<Part<'a>, ApiError> {
    let cache_control = b.cache_control;
    let part = match &*b.kind {
        "text" => Part { kind: b.kind, text: Some(b.text.unwrap_or_default().into()), ..Default::default() },
        "image" => {
            let url = media_url(path, b.source, "image")?;
            Part { kind: Str::from("image_url"), image_url: Some(ImageUrl { url, detail: None }), ..Default::default() }
        }
        "document" => match b.source {
            Some(Source { kind, data: Some(text), .. }) if &*kind == "text" => {
                Part { kind: Str::from("text"), text: Some(text.into()), ..Default::default() }
            }
            source => {
                let data = media_url(path, source, "document")?;
                let file = FilePart { file_data: Some(data), file_id: None, filename: b.title };
                Part { kind: Str::from("file"), file: Some(file), ..Default::default() }
            }
        },
        _ => Part { kind: b.kind, text: b.text.map(Text::from), ..Default::default() },
    };
    Ok(Part { cache_control, ..part })
}

/// A `base64` source as a data URL, a `url` source as its URL.
fn media_url<'a>(path: &dyn Fn() -> String, source: Option<Source<'a>>, what: &str) -> Result<Str<'a>, ApiError> {
    let bad = |detail: &str| ApiError::invalid_param(format!("{}.source", path()), format!("{}.source: {detail}", path()));
    let source = source.ok_or_else(|| bad(&format!("an {what} block needs a `source`.")))?;
    match (&*source.kind, source.media_type, source.data, source.url) {
        ("base64", Some(media_type), Some(data), _) => Ok(Str(Cow::Owned(format!("data:{};base64,{}", &*media_type, &*data)))),
        ("base64", ..) => Err(bad("a base64 source needs `media_type` and `data`.")),
        ("url", _, _, Some(url)) => Ok(url),
        ("url", ..) => Err(bad("a url source needs `url`.")),
        (other, ..) => Err(bad(&format!("sources of type '{other}' are only served by Anthropic providers."))),
    }
}

fn tool(i: usize, t: WireTool) -> Result<Tool, ApiError> {
    let custom = t.kind.as_deref().is_none_or(|k| k == "custom");
    if t.name.is_empty() {
        return Err(ApiError::invalid_param(format!("tools.{i}.name"), format!("tools.{i}.name: Field required.")));
    }
    if !custom {
        // A server tool (web search, code execution, …): only Anthropic runs it.
        return Ok(Tool { kind: t.kind.unwrap_or_default(), function: None, cache_control: t.cache_control });
    }
    let function = FunctionDef { name: t.name, description: t.description, parameters: t.input_schema, strict: t.strict };
    Ok(Tool { kind: Str::from("function"), function: Some(function), cache_control: t.cache_control })
}

/// `tool_choice`, and `disable_parallel_tool_use` as the parallel-calls switch.
fn tool_choice<'a>(c: WireToolChoice<'a>, tools: &[Tool]) -> Result<(Option<ToolChoice<'a>>, Option<bool>), ApiError> {
    let parallel = c.disable_parallel_tool_use.map(|disabled| !disabled);
    let choice = match (&*c.kind, c.name) {
        ("auto", _) => ToolChoice::Mode(Str::from("auto")),
        ("any", _) => ToolChoice::Mode(Str::from("required")),
        ("none", _) => ToolChoice::Mode(Str::from("none")),
        ("tool", Some(name)) => {
            if !tools.iter().any(|t| t.function.as_ref().is_some_and(|f| f.name == name)) {
                return Err(ApiError::invalid_param("tool_choice.name", format!("tool_choice.name: tool '{}' is not in `tools`.", &*name)));
            }
            ToolChoice::Function(name)
        }
        ("tool", None) => return Err(ApiError::invalid_param("tool_choice.name", "tool_choice.name: Field required.")),
        (other, _) => {
            return Err(ApiError::invalid_param(
                "tool_choice.type",
                format!("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none', got '{other}'."),
            ));
        }
    };
    Ok((Some(choice), parallel))
}

/// `thinking` as a reasoning effort the other providers take: a budget maps to the effort whose
/// budget (`providers::reasoning::Effort::budget_tokens`) holds it.
fn reasoning_effort(t: Thinking) -> Result<Option<&'static RawValue>, ApiError> {
    let effort = match (&*t.kind, t.budget_tokens) {
        ("disabled", _) => return Ok(None),
        ("enabled", None) => return Err(ApiError::invalid_param("thinking.budget_tokens", "thinking.budget_tokens: Field required.")),
        ("enabled", Some(b)) if b <= 1024 => "\"minimal\"",
        ("enabled", Some(b)) if b <= 2048 => "\"low\"",
        ("enabled", Some(b)) if b <= 8192 => "\"medium\"",
        ("enabled", Some(b)) if b <= 16384 => "\"high\"",
        ("enabled", Some(_)) => "\"xhigh\"",
        ("adaptive", _) => "\"medium\"",
        (other, _) => {
            return Err(ApiError::invalid_param(
                "thinking.type",
                format!("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive', got '{other}'."),
            ));
        }
    };
    Ok(serde_json::from_str(effort).ok())
}

/// The body with `max_tokens` set to `limit` (budgets clamp it), every other byte as it was.
pub fn with_output_limit(body: &[u8], limit: u64) -> Result<Vec<u8>, ApiError> {
    let members = crate::json::members(body).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let value = limit.to_string();
    Ok(crate::json::rewrite(body, &members, |k| k != "max_tokens", &[("max_tokens", value.as_bytes())]))
}

#[cfg(test)]
mod tests;
