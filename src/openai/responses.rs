//! The OpenAI Responses dialect, inbound: a `POST /v1/responses` body parsed into the gateway's
//! [`ChatRequest`] and validated, errors naming the field as the client wrote it.
//! Field names follow https://platform.openai.com/docs/api-reference/responses/create.
//!
//! Stateless: only OpenAI and Azure providers get the client's bytes (with `store`,
//! `previous_response_id`, `conversation` and reasoning items as sent). For the others,
//! `store` changes nothing (nothing is stored), reasoning items are left out and noted, and
//! members that need OpenAI's state are refused by name.

use crate::conversation::request::{
    ChatRequest, Content, FilePart, FunctionCall, FunctionDef, ImageUrl, Message, Part, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use crate::error::ApiError;
use crate::json::{Str, Text};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Members that only OpenAI can honour: they name state it keeps.
pub const STATEFUL: &[&str] = &["previous_response_id", "conversation"];

/// Members that change nothing in a stateless answer from another provider: what OpenAI stores
/// or returns besides the answer (`include`), how it truncates or caches, its obfuscation.
const IGNORED: &[&str] =
    &["store", "include", "truncation", "prompt_cache_key", "prompt_cache_retention", "stream_options", "service_tier", "background"];

/// A string or a list, borrowing from the body.
enum OneOrList<'a, T> {
    Text(Str<'a>),
    List(Vec<T>),
}

struct OneOrListVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrListVisitor<T> {
    type Value = OneOrList<'de, T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an array")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(OneOrList::Text(Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(OneOrList::Text(Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(OneOrList::Text(Str(Cow::Owned(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(OneOrList::List(items))
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for OneOrList<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OneOrListVisitor(std::marker::PhantomData))
    }
}

/// One input item; which fields it has depends on its `type` (a message may leave it out).
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    role: Option<Str<'a>>,
    #[serde(borrow, default)]
    content: Option<OneOrList<'a, InputPart<'a>>>,
    #[serde(borrow, default)]
    call_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
    #[serde(borrow, default)]
    output: Option<OneOrList<'a, InputPart<'a>>>,
}

/// A content part: `input_text`, `input_image`, `input_file`, `output_text`, `refusal`.
#[derive(Deserialize)]
struct InputPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    image_url: Option<Str<'a>>,
    #[serde(borrow, default)]
    detail: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_data: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_url: Option<Str<'a>>,
    #[serde(borrow, default)]
    filename: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct WireTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    description: Option<Str<'a>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}

/// `tool_choice`: a mode, or `{"type":"function","name":…}` (or a built-in tool's type).
enum WireToolChoice<'a> {
    Mode(Str<'a>),
    Named { kind: Str<'a>, name: Option<Str<'a>> },
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
}

struct ToolChoiceVisitor;

impl<'de> Visitor<'de> for ToolChoiceVisitor {
    type Value = WireToolChoice<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#""auto", "none", "required" or {"type":"function","name":…}"#)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(WireToolChoice::Mode(Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(WireToolChoice::Mode(Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let named = NamedChoice::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(WireToolChoice::Named { kind: named.kind, name: named.name })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireToolChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ToolChoiceVisitor)
    }
}

#[derive(Deserialize)]
struct TextConfig<'a> {
    #[serde(borrow, default)]
    format: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FormatKind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
}

#[derive(Deserialize)]
struct Reasoning<'a> {
    #[serde(borrow, default)]
    effort: Option<&'a RawValue>,
}

/// A parsed Responses body, before it becomes the gateway's request.
#[derive(Default)]
struct ResponsesRequest<'a> {
    model: Option<Str<'a>>,
    input: Option<OneOrList<'a, Item<'a>>>,
    instructions: Option<Str<'a>>,
    tools: Vec<WireTool<'a>>,
    tool_choice: Option<WireToolChoice<'a>>,
    parallel_tool_calls: Option<bool>,
    format: Option<&'a RawValue>,
    effort: Option<&'a RawValue>,
    max_output_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    metadata: Option<&'a RawValue>,
    user: Option<Str<'a>>,
    stream: bool,
    extra: Vec<(Str<'a>, &'a RawValue)>,
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = ResponsesRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Responses request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = ResponsesRequest::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "model" => r.model = Some(map.next_value()?),
                "input" => r.input = Some(map.next_value()?),
                "instructions" => r.instructions = map.next_value()?,
                "tools" => r.tools = map.next_value::<Option<Vec<WireTool>>>()?.unwrap_or_default(),
                "tool_choice" => r.tool_choice = map.next_value()?,
                "parallel_tool_calls" => r.parallel_tool_calls = map.next_value()?,
                "text" => r.format = map.next_value::<Option<TextConfig>>()?.and_then(|t| t.format),
                "reasoning" => r.effort = map.next_value::<Option<Reasoning>>()?.and_then(|t| t.effort),
                "max_output_tokens" => r.max_output_tokens = map.next_value()?,
                "temperature" => r.temperature = map.next_value()?,
                "top_p" => r.top_p = map.next_value()?,
                "metadata" => r.metadata = map.next_value()?,
                "user" => r.user = map.next_value()?,
                "stream" => r.stream = map.next_value::<Option<bool>>()?.unwrap_or(false),
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

impl<'de: 'a, 'a> Deserialize<'de> for ResponsesRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

/// Parses and validates a Responses body into the gateway's request.
pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_request("The request body is empty; send a JSON Responses request."));
    }
    crate::json::check_depth(body).map_err(|deep| ApiError::nesting_too_deep(&deep))?;
    let wire: ResponsesRequest = crate::json::from_body(body).map_err(|e| super::chat::describe_parse_error(body, &e))?;
    into_request(wire)
}

fn into_request(w: ResponsesRequest) -> Result<ChatRequest, ApiError> {
    let model =
        w.model.filter(|m| !m.is_empty()).ok_or_else(|| ApiError::invalid_param("model", "Missing required parameter: 'model'."))?;
    if w.max_output_tokens == Some(0) {
        return Err(ApiError::invalid_param("max_output_tokens", "`max_output_tokens` must be at least 1."));
    }
    for (name, value, max) in [("temperature", w.temperature, 2.0), ("top_p", w.top_p, 1.0)] {
        if let Some(v) = value
            && !(0.0..=max).contains(&v)
        {
            return Err(ApiError::invalid_param(name, format!("`{name}` must be between 0 and {max}, got {v}.")));
        }
    }
    let mut messages = Vec::new();
    if let Some(instructions) = w.instructions.filter(|i| !i.is_empty()) {
        messages.push(message(Role::System, Content::Text(instructions.into())));
    }
    let mut left_out = Vec::new();
    let mut extra = w.extra;
    match w.input {
        None => return Err(ApiError::invalid_param("input", "Missing required parameter: 'input'.")),
        Some(OneOrList::Text(t)) => messages.push(message(Role::User, Content::Text(t.into()))),
        Some(OneOrList::List(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                match item.kind.as_deref().unwrap_or("message") {
                    "message" => messages.push(input_message(i, item)?),
                    "function_call" => add_call(i, item, &mut messages)?,
                    "function_call_output" => messages.push(call_output(i, item)?),
                    // A reasoning item (possibly encrypted) only its own provider reads.
                    "reasoning" => left_out.push(format!("input[{i}]")),
                    // Items of OpenAI's built-in tools and state: refused by other providers, by
                    // name (their content goes nowhere but in the client's own bytes to OpenAI).
                    _ => extra.push((Str(Cow::Owned(format!("input[{i}]"))), RawValue::NULL)),
                }
            }
        }
    }
    let tools = w.tools.into_iter().enumerate().map(|(i, t)| tool(i, t)).collect::<Result<Vec<_>, _>>()?;
    let tool_choice = w.tool_choice.map(|c| tool_choice(c, &tools)).transpose()?;
    let response_format = w.format.map(response_format).transpose()?;
    if let Some(effort) = w.effort {
        extra.push((Str::from("reasoning_effort"), effort));
    }
    Ok(ChatRequest {
        model,
        messages,
        stream: w.stream,
        max_tokens: w.max_output_tokens,
        temperature: w.temperature,
        top_p: w.top_p,
        tools,
        tool_choice,
        parallel_tool_calls: w.parallel_tool_calls,
        user: w.user,
        response_format,
        metadata: w.metadata,
        extra,
        left_out,
        ..Default::default()
    })
}

fn message<'a>(role: Role, content: Content<'a>) -> Message<'a> {
    Message { role, content: Some(content), name: None, tool_calls: None, tool_call_id: None, is_error: false }
}

fn input_message<'a>(i: usize, item: Item<'a>) -> Result<Message<'a>, ApiError> {
    let role = match item.role.as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some("system") => Role::System,
        Some("developer") => Role::Developer,
        other => {
            return Err(ApiError::invalid_param(
                format!("input[{i}].role"),
                format!("`input[{i}].role` must be 'user', 'assistant', 'system' or 'developer', got {other:?}."),
            ));
        }
    };
    let content = match item.content {
        None => return Err(ApiError::invalid_param(format!("input[{i}].content"), format!("`input[{i}]` needs `content`."))),
        Some(c) => content(&|| format!("input[{i}].content"), c)?,
    };
    Ok(message(role, content))
}

/// `path` names the content in errors (made on the error path only).
fn content<'a>(path: &dyn Fn() -> String, c: OneOrList<'a, InputPart<'a>>) -> Result<Content<'a>, ApiError> {
    match c {
        OneOrList::Text(t) => Ok(Content::Text(t.into())),
        OneOrList::List(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(j, p)| part(&|| format!("{}[{j}]", path()), p))
            .collect::<Result<_, _>>()
            .map(Content::Parts),
    }
}

fn part<'a>(path: &dyn Fn() -> String, p: InputPart<'a>) -> Result<Part<'a>, ApiError> {
    let missing = |field: &str| ApiError::invalid_param(format!("{}.{field}", path()), format!("`{}` needs `{field}`.", path()));
    Ok(match &*p.kind {
        "input_text" | "output_text" => {
            Part { kind: Str::from("text"), text: Some(p.text.ok_or_else(|| missing("text"))?.into()), ..Default::default() }
        }
        "refusal" => Part { kind: p.kind, refusal: Some(p.refusal.ok_or_else(|| missing("refusal"))?.into()), ..Default::default() },
        "input_image" => {
            let url = p.image_url.ok_or_else(|| missing("image_url"))?;
            Part { kind: Str::from("image_url"), image_url: Some(ImageUrl { url, detail: p.detail }), ..Default::default() }
        }
        "input_file" => {
            let file = FilePart { file_data: p.file_data.or(p.file_url), file_id: p.file_id, filename: p.filename };
            Part { kind: Str::from("file"), file: Some(file), ..Default::default() }
        }
        other => {
            return Err(ApiError::invalid_param(format!("{}.type", path()), format!("`{}`: unknown content part type `{other}`.", path())));
        }
    })
}

/// A `function_call` item joins the assistant message before it, as chat's tool calls do.
fn add_call<'a>(i: usize, item: Item<'a>, messages: &mut Vec<Message<'a>>) -> Result<(), ApiError> {
    let missing = |field: &str| ApiError::invalid_param(format!("input[{i}].{field}"), format!("`input[{i}]` needs `{field}`."));
    let id = item.call_id.ok_or_else(|| missing("call_id"))?;
    let name = item.name.ok_or_else(|| missing("name"))?;
    let call =
        ToolCall { id, kind: Some(Str::from("function")), function: FunctionCall { name, arguments: item.arguments.unwrap_or_default() } };
    match messages.last_mut() {
        Some(m) if m.role == Role::Assistant => m.tool_calls.get_or_insert_with(Vec::new).push(call),
        _ => messages.push(Message {
            role: Role::Assistant,
            content: None,
            name: None,
            tool_calls: Some(vec![call]),
            tool_call_id: None,
            is_error: false,
        }),
    }
    Ok(())
}

fn call_output<'a>(i: usize, item: Item<'a>) -> Result<Message<'a>, ApiError> {
    let id =
        item.call_id.ok_or_else(|| ApiError::invalid_param(format!("input[{i}].call_id"), format!("`input[{i}]` needs `call_id`.")))?;
    let content = match item.output {
        None => Content::Text(Text::default()),
        Some(o) => content(&|| format!("input[{i}].output"), o)?,
    };
    Ok(Message { tool_call_id: Some(id), ..message(Role::Tool, content) })
}

fn tool(i: usize, t: WireTool) -> Result<Tool, ApiError> {
    if &*t.kind != "function" {
        // A built-in tool (web search, file search, code interpreter, …): only OpenAI runs it.
        return Ok(Tool { kind: t.kind, function: None, cache_control: None });
    }
    let name = t
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid_param(format!("tools[{i}].name"), format!("Missing required parameter: 'tools[{i}].name'.")))?;
    let function = FunctionDef { name, description: t.description, parameters: t.parameters, strict: t.strict };
    Ok(Tool { kind: t.kind, function: Some(function), cache_control: None })
}

fn tool_choice<'a>(c: WireToolChoice<'a>, tools: &[Tool]) -> Result<ToolChoice<'a>, ApiError> {
    match c {
        WireToolChoice::Mode(m) if matches!(&*m, "auto" | "none" | "required") => Ok(ToolChoice::Mode(m)),
        WireToolChoice::Mode(m) => Err(ApiError::invalid_param(
            "tool_choice",
            format!("`tool_choice` must be \"auto\", \"none\", \"required\" or a named function, got \"{}\".", &*m),
        )),
        WireToolChoice::Named { kind, name: Some(name) } if &*kind == "function" => {
            if !tools.iter().any(|t| t.function.as_ref().is_some_and(|f| f.name == name)) {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!("`tool_choice` names function `{}`, which is not in `tools`.", &*name),
                ));
            }
            Ok(ToolChoice::Function(name))
        }
        WireToolChoice::Named { kind, .. } => Err(ApiError::invalid_param(
            "tool_choice",
            format!("`tool_choice` of type `{}` names a built-in tool, which only OpenAI providers run.", &*kind),
        )),
    }
}

/// `text.format`: `text`, `json_object`, or `json_schema` (its `name` and `schema` at the top,
/// where chat nests them in `json_schema`; the representation reads them from either).
fn response_format(raw: &RawValue) -> Result<ResponseFormat<'_>, ApiError> {
    let kind: FormatKind = serde_json::from_str(raw.get())
        .map_err(|_| ApiError::invalid_param("text.format", "`text.format` must be an object with a `type`."))?;
    let json_schema = (&*kind.kind == "json_schema").then_some(raw);
    Ok(ResponseFormat { kind: kind.kind, json_schema })
}

/// The body with `max_output_tokens` set to `limit` (budgets clamp it), every other byte as it was.
pub fn with_output_limit(body: &[u8], limit: u64) -> Result<Vec<u8>, ApiError> {
    let members = crate::json::members(body).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let value = limit.to_string();
    Ok(crate::json::rewrite(body, &members, |k| k != "max_output_tokens", &[("max_output_tokens", value.as_bytes())]))
}

#[cfg(test)]
mod tests;
