//! The Cohere v2 API (<https://docs.cohere.com/reference/chat>,
//! <https://docs.cohere.com/reference/chat-stream>, <https://docs.cohere.com/reference/embed>):
//! bearer authentication, strict validation of the v2 request shapes, and the script's reply
//! rendered as a v2 chat response, as the v2 event stream (SSE events named by their type,
//! closed by `data: [DONE]`), or as float embeddings.

use serde::Serialize;
use serde_json::Value;

use crate::http::{Request, Response};
use crate::openai;
use crate::provider::{Answer, Provider};
use crate::script::{self, Block, Cache, Conversation, Finish, Reply, Role, ToolChoice, Turn};
use crate::validate::{self, Checked, Invalid, Obj, join};

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "priority",
];

const EMBED_FIELDS: &[&str] =
    &["model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension", "max_tokens", "truncate", "priority"];

/// Tokens Cohere adds to every prompt itself (its preamble) and does not bill: they show in
/// `usage.tokens`, not in `usage.billed_units`.
const PREAMBLE_TOKENS: u64 = 66;

pub struct Cohere {
    key: String,
}

impl Cohere {
    pub fn new(key: String) -> Self {
        Cohere { key }
    }
}

fn error_response(status: u16, message: &str) -> Response {
    let id = format!("err-mock{}", script::next_id());
    Response::json(status, &ErrorOut { id: &id, message })
}

fn rejection(invalid: Invalid) -> Response {
    error_response(400, &format!("invalid request: {invalid}"))
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    id: &'a str,
    message: &'a str,
}

impl Provider for Cohere {
    fn error(&self, status: u16, message: &str) -> Response {
        error_response(status, message)
    }

    /// A generation that fails after it started ends with `finish_reason: ERROR`.
    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        event(
            "message-end",
            &serde_json::json!({"type": "message-end", "delta": {"error": "internal server error", "finish_reason": "ERROR"}}),
        )
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        let token = request.header("authorization").and_then(|value| value.strip_prefix("Bearer "));
        if token != Some(self.key.as_str()) {
            return Err(error_response(401, "invalid api token"));
        }
        if request.path.ends_with("/embed") {
            return embed(&request.body).map_err(rejection);
        }
        let parsed = parse(&request.body, cache).map_err(rejection)?;
        Ok(render(&parsed, &script::reply(&parsed.conversation)))
    }
}

struct Parsed {
    stream: bool,
    conversation: Conversation,
}

fn parse(raw: &[u8], cache: Cache) -> Checked<Parsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(CHAT_FIELDS)?;
    body.non_empty_string("model")?;
    let stream = body.opt_bool("stream")?.unwrap_or(false);
    body.opt_bool("strict_tools")?;
    body.opt_number("temperature", 0.0..=1.0)?;
    body.opt_number("p", 0.01..=0.99)?;
    body.opt_number("frequency_penalty", 0.0..=1.0)?;
    body.opt_number("presence_penalty", 0.0..=1.0)?;
    if body.get("k").is_some_and(|k| k.as_u64().is_none_or(|k| k > 500)) {
        return Err(Invalid::new("k", "must be an integer between 0 and 500"));
    }
    if body.get("seed").is_some_and(|seed| !seed.is_u64()) {
        return Err(Invalid::new("seed", "must be a non-negative integer"));
    }
    let max_tokens = body.opt_positive_int("max_tokens")?;
    let stop = stop_sequences(&body)?;
    let tools = openai::tools(&body, raw)?;
    for (index, tool) in body.opt_array("tools")?.unwrap_or_default().iter().enumerate() {
        let tool = Obj::new(tool, format!("tools[{index}]"))?;
        tool.only(&["type", "function"])?;
        let function = tool.object("function")?;
        function.only(&["name", "description", "parameters"])?;
        function.object("parameters")?;
    }
    let tool_choice = match body.opt_string("tool_choice")? {
        None => ToolChoice::Auto,
        Some(_) if tools.is_empty() => return Err(Invalid::new("tool_choice", "tool_choice requires tools")),
        Some("REQUIRED") => ToolChoice::Required,
        Some("NONE") => ToolChoice::None,
        Some(_) => return Err(Invalid::new("tool_choice", "must be one of REQUIRED, NONE")),
    };
    response_format(&body, !tools.is_empty())?;
    let (system, turns) = messages(body.non_empty_array("messages")?)?;
    Ok(Parsed { stream, conversation: Conversation { system, turns, tools, tool_choice, max_tokens, stop, cache } })
}

fn stop_sequences(body: &Obj) -> Checked<Vec<String>> {
    let path = body.path("stop_sequences");
    let items = body.opt_array("stop_sequences")?.unwrap_or_default();
    if items.len() > 5 {
        return Err(Invalid::new(path, "at most 5 stop sequences are allowed"));
    }
    items.iter().enumerate().map(|(index, item)| validate::string(item, &format!("{path}[{index}]")).map(str::to_owned)).collect()
}

fn response_format(body: &Obj, has_tools: bool) -> Checked<()> {
    let Some(format) = body.get("response_format") else {
        return Ok(());
    };
    let format = Obj::new(format, "response_format")?;
    format.only(&["type", "json_schema"])?;
    match format.string("type")? {
        "text" if format.get("json_schema").is_some() => {
            Err(Invalid::new(format.path("json_schema"), "must not be specified when the type is \"text\""))
        }
        "text" => Ok(()),
        "json_object" if has_tools => Err(Invalid::new("response_format", "is not supported in combination with tools")),
        "json_object" => format.get("json_schema").map_or(Ok(()), |schema| Obj::new(schema, format.path("json_schema")).map(|_| ())),
        _ => Err(Invalid::new(format.path("type"), "must be one of text, json_object")),
    }
}

/// Splits messages into system text and turns; consecutive tool results make one user turn, as
/// the other providers' mocks count them.
fn messages(items: &[Value]) -> Checked<(Vec<String>, Vec<Turn>)> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("messages[{index}]");
        let message = Obj::new(item, path.as_str())?;
        let role = message.string("role")?;
        if role != "tool" && !pending.is_empty() {
            return Err(Invalid::new(path, format!("tool calls must be followed by tool messages for: {}", pending.join(", "))));
        }
        match role {
            "system" => {
                message.only(&["role", "content"])?;
                system.push(openai::texts(&content(&message, &["text"])?));
            }
            "user" => {
                message.only(&["role", "content"])?;
                turns.push(Turn { role: Role::User, blocks: content(&message, &["text", "image_url"])? });
            }
            "assistant" => {
                let (turn, ids) = assistant(&message)?;
                turns.push(turn);
                pending = ids;
            }
            "tool" => {
                message.only(&["role", "tool_call_id", "content"])?;
                let id = message.non_empty_string("tool_call_id")?;
                let Some(at) = pending.iter().position(|pending| pending == id) else {
                    return Err(Invalid::new(
                        message.path("tool_call_id"),
                        "does not answer a tool call of the previous assistant message",
                    ));
                };
                pending.remove(at);
                let result = Block::ToolResult { text: openai::texts(&content(&message, &["text", "document"])?), images: 0 };
                match turns.last_mut() {
                    Some(turn) if openai::is_tool_turn(turn) => turn.blocks.push(result),
                    _ => turns.push(Turn { role: Role::User, blocks: vec![result] }),
                }
            }
            _ => return Err(Invalid::new(message.path("role"), "must be one of system, user, assistant, tool")),
        }
    }
    Ok((system, turns))
}

/// `content`: a non-empty string, or content blocks of the `allowed` types.
fn content(message: &Obj, allowed: &[&str]) -> Checked<Vec<Block>> {
    let path = message.path("content");
    match message.required("content")? {
        Value::String(text) if text.is_empty() => Err(Invalid::new(path, "message must be at least 1 token long")),
        Value::String(text) => Ok(vec![Block::Text(text.clone())]),
        Value::Array(items) => {
            items.iter().enumerate().filter_map(|(index, item)| block(item, &join(&path, index), allowed).transpose()).collect()
        }
        _ => Err(Invalid::new(path, "must be a string or a list of content blocks")),
    }
}

/// One content block; `None` for blocks the script ignores.
fn block(item: &Value, path: &str, allowed: &[&str]) -> Checked<Option<Block>> {
    let block = Obj::new(item, path)?;
    let kind = block.string("type")?;
    if !allowed.contains(&kind) {
        return Err(Invalid::new(block.path("type"), format!("must be one of {}", allowed.join(", "))));
    }
    match kind {
        "text" => {
            block.only(&["type", "text"])?;
            Ok(Some(Block::Text(block.string("text")?.to_owned())))
        }
        "thinking" => {
            block.only(&["type", "thinking"])?;
            block.string("thinking").map(|_| None)
        }
        "image_url" => {
            block.only(&["type", "image_url"])?;
            let image = block.object("image_url")?;
            image.only(&["url", "detail"])?;
            image.non_empty_string("url")?;
            if image.opt_string("detail")?.is_some_and(|detail| !matches!(detail, "auto" | "low" | "high")) {
                return Err(Invalid::new(image.path("detail"), "must be one of auto, low, high"));
            }
            Ok(Some(Block::Image))
        }
        _ => {
            block.only(&["type", "document"])?;
            block.object("document").map(|_| None)
        }
    }
}

/// An assistant turn (its `tool_plan` counts as its text), and the ids of its tool calls.
fn assistant(message: &Obj) -> Checked<(Turn, Vec<String>)> {
    message.only(&["role", "content", "tool_plan", "tool_calls", "citations"])?;
    let mut blocks = Vec::new();
    if let Some(plan) = message.opt_string("tool_plan")?.filter(|plan| !plan.is_empty()) {
        blocks.push(Block::Text(plan.to_owned()));
    }
    if message.get("content").is_some() {
        blocks.extend(content(message, &["text", "thinking"])?);
    }
    let mut ids = Vec::new();
    let calls_path = message.path("tool_calls");
    for (index, call) in message.opt_array("tool_calls")?.unwrap_or_default().iter().enumerate() {
        let call = Obj::new(call, format!("{calls_path}[{index}]"))?;
        call.only(&["id", "type", "function"])?;
        ids.push(call.non_empty_string("id")?.to_owned());
        if call.string("type")? != "function" {
            return Err(Invalid::new(call.path("type"), "must be function"));
        }
        let function = call.object("function")?;
        function.only(&["name", "arguments"])?;
        blocks.push(Block::ToolCall {
            name: function.non_empty_string("name")?.to_owned(),
            args: script::canonical_args(function.string("arguments")?),
        });
    }
    if blocks.is_empty() {
        return Err(Invalid::new(message.path("content"), "an assistant message needs content, a tool_plan or tool_calls"));
    }
    Ok((Turn { role: Role::Assistant, blocks }, ids))
}

fn render(parsed: &Parsed, reply: &Reply) -> Answer {
    let id = format!("mock-{}", script::next_id());
    let call = reply.tool_call.as_ref().map(|call| CallOut {
        id: format!("{}_mock{}", call.name, script::next_id()),
        kind: "function",
        function: FunctionOut { name: &call.name, arguments: call.args.to_json() },
    });
    let finish_reason = match reply.finish {
        Finish::EndTurn => "COMPLETE",
        Finish::MaxTokens => "MAX_TOKENS",
        Finish::StopSequence(_) => "STOP_SEQUENCE",
        Finish::ToolUse => "TOOL_CALL",
    };
    let usage = reply.usage;
    let usage = UsageOut {
        billed_units: Counts { input_tokens: usage.prompt(), output_tokens: usage.output },
        tokens: Counts { input_tokens: usage.prompt() + PREAMBLE_TOKENS, output_tokens: usage.output },
        cached_tokens: usage.cache_read,
    };
    // With a tool call, Cohere writes the text before it as `tool_plan`, not as content.
    let (content, tool_plan) = match &call {
        Some(_) => (Vec::new(), Some(reply.text.as_str())),
        None => (vec![TextOut { kind: "text", text: &reply.text }], None),
    };
    let message = MessageOut { role: "assistant", content, tool_plan, tool_calls: call.iter().collect() };
    let whole = ChatOut { id: &id, finish_reason, message, usage };
    let events = parsed.stream.then(|| stream_events(&whole));
    Answer { whole: Response::json(200, &whole), events }
}

/// The events that stream `whole`, in the order Cohere sends them.
fn stream_events(whole: &ChatOut) -> Vec<String> {
    let mut events = vec![event(
        "message-start",
        &serde_json::json!({"id": whole.id, "type": "message-start",
            "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
    )];
    let message = &whole.message;
    for plan in script::stream_pieces(message.tool_plan.unwrap_or_default()) {
        events.push(event("tool-plan-delta", &serde_json::json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": plan}}})));
    }
    for (index, call) in message.tool_calls.iter().enumerate() {
        let start = serde_json::json!({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls":
            {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": ""}}}}});
        events.push(event("tool-call-start", &start));
        for arguments in script::thirds(&call.function.arguments) {
            let delta = serde_json::json!({"type": "tool-call-delta", "index": index,
                "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}}});
            events.push(event("tool-call-delta", &delta));
        }
        events.push(event("tool-call-end", &serde_json::json!({"type": "tool-call-end", "index": index})));
    }
    for (index, block) in message.content.iter().enumerate() {
        events.push(event(
            "content-start",
            &serde_json::json!({"type": "content-start", "index": index, "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        ));
        for text in script::stream_pieces(block.text) {
            events.push(event(
                "content-delta",
                &serde_json::json!({"type": "content-delta", "index": index, "delta": {"message": {"content": {"text": text}}}}),
            ));
        }
        events.push(event("content-end", &serde_json::json!({"type": "content-end", "index": index})));
    }
    let end = serde_json::json!({"type": "message-end", "delta": {"finish_reason": whole.finish_reason, "usage": whole.usage}});
    events.push(event("message-end", &end));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

fn event(name: &str, payload: &impl Serialize) -> String {
    let json = serde_json::to_string(payload).expect("response types always serialize");
    format!("event: {name}\ndata: {json}\n\n")
}

#[derive(Serialize)]
struct ChatOut<'a> {
    id: &'a str,
    finish_reason: &'static str,
    message: MessageOut<'a>,
    usage: UsageOut,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    content: Vec<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_plan: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<&'a CallOut<'a>>,
}

#[derive(Serialize)]
struct TextOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct CallOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: String,
}

#[derive(Serialize, Clone, Copy)]
struct UsageOut {
    billed_units: Counts,
    tokens: Counts,
    cached_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
struct Counts {
    input_tokens: u64,
    output_tokens: u64,
}

/// `POST /v2/embed`: float embeddings of `texts`, billed per input token.
fn embed(raw: &[u8]) -> Checked<Answer> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(EMBED_FIELDS)?;
    body.non_empty_string("model")?;
    let input_type = body.string("input_type")?;
    if !matches!(input_type, "search_document" | "search_query" | "classification" | "clustering" | "image") {
        return Err(Invalid::new("input_type", "must be one of search_document, search_query, classification, clustering, image"));
    }
    let texts = body.non_empty_array("texts")?;
    if texts.len() > 96 {
        return Err(Invalid::new("texts", "at most 96 texts are allowed"));
    }
    let texts: Vec<&str> =
        texts.iter().enumerate().map(|(index, text)| validate::non_empty_string(text, &join("texts", index))).collect::<Checked<_>>()?;
    for (index, kind) in body.opt_array("embedding_types")?.unwrap_or_default().iter().enumerate() {
        // The mock only computes floats, the type Tollgate asks for.
        if kind.as_str() != Some("float") {
            return Err(Invalid::new(join("embedding_types", index), "the mock embeds as float only"));
        }
    }
    let dimensions = match body.opt_positive_int("output_dimension")? {
        None => script::EMBEDDING_DIMENSIONS,
        // Fits in usize: one of the four sizes Cohere offers.
        Some(d @ (256 | 512 | 1024 | 1536)) => d as usize,
        Some(_) => return Err(Invalid::new("output_dimension", "must be one of 256, 512, 1024, 1536")),
    };
    let floats: Vec<Vec<f64>> = texts.iter().map(|text| script::exact(&script::embedding(text, dimensions))).collect();
    let tokens: u64 = texts.iter().map(|text| script::words(text)).sum();
    let response = serde_json::json!({
        "id": format!("embed-mock{}", script::next_id()),
        "texts": texts,
        "embeddings": {"float": floats},
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
        "response_type": "embeddings_by_type",
    });
    Ok(Answer { whole: Response::json(200, &response), events: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn send(path: &str, key: &str, body: &Value) -> Result<Answer, Response> {
        let body = body.to_string();
        let raw = format!("POST {path} HTTP/1.1\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        Cohere::new("co".to_owned()).answer(&request, Cache::default())
    }

    fn chat(body: Value) -> Result<Answer, Response> {
        send("/v2/chat", "co", &body)
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn weather_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    }

    #[test]
    fn answers_text_with_billed_and_processed_tokens() {
        let answer = chat(
            json!({"model": "command-a", "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "hi there"}]}),
        )
        .ok()
        .unwrap();
        let body = json_of(&answer.whole);
        assert_eq!(body["finish_reason"], "COMPLETE");
        assert_eq!(body["message"], json!({"role": "assistant", "content": [{"type": "text", "text": "Hello! You said: hi there"}]}));
        assert_eq!(body["usage"]["billed_units"], json!({"input_tokens": 4, "output_tokens": 5}));
        assert_eq!(body["usage"]["tokens"], json!({"input_tokens": 4 + PREAMBLE_TOKENS, "output_tokens": 5}));
    }

    #[test]
    fn tool_calls_come_with_a_plan_whole_and_streamed() {
        let request =
            json!({"model": "command-a", "tools": weather_tools(), "messages": [{"role": "user", "content": "weather in Paris?"}]});
        let whole = json_of(&chat(request.clone()).ok().unwrap().whole);
        assert_eq!(whole["finish_reason"], "TOOL_CALL");
        assert_eq!(whole["message"]["tool_plan"], "Let me check.");
        assert!(whole["message"].get("content").is_none());
        let call = &whole["message"]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
        let mut streaming = request;
        streaming["stream"] = json!(true);
        let events = chat(streaming).ok().unwrap().events.unwrap();
        let names: Vec<&str> = events.iter().map(|e| e.split('\n').next().unwrap()).collect();
        assert_eq!(names.first(), Some(&"event: message-start"));
        assert!(names.contains(&"event: tool-plan-delta") && names.contains(&"event: tool-call-start"));
        assert_eq!(events[events.len() - 2].split('\n').next(), Some("event: message-end"));
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
        let data: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e.split("data: ").nth(1).unwrap().trim_end()).unwrap())
            .collect();
        let arguments: String = data.iter().filter_map(|d| d["delta"]["message"]["tool_calls"]["function"]["arguments"].as_str()).collect();
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert_eq!(data.last().unwrap()["delta"]["usage"], whole["usage"]);
    }

    #[test]
    fn accepts_a_full_tool_round_trip() {
        let answer = chat(json!({"model": "command-a", "tools": weather_tools(), "tool_choice": "REQUIRED", "max_tokens": 50, "p": 0.99,
            "temperature": 1, "seed": 1, "stop_sequences": ["zzz"], "response_format": {"type": "text"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}}]},
                {"role": "assistant", "tool_plan": "Checking.", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "sunny"}]},
            ]}))
        .ok()
        .unwrap();
        assert_eq!(json_of(&answer.whole)["message"]["content"][0]["text"], "Tool results: sunny");
    }

    #[test]
    fn rejects_openai_shapes_and_bad_values() {
        let user = json!([{"role": "user", "content": "x"}]);
        let cases = [
            json!({"model": "m", "messages": user, "stream_options": {"include_usage": true}}),
            json!({"model": "m", "messages": user, "top_p": 0.5}),
            json!({"model": "m", "messages": user, "p": 1.0}),
            json!({"model": "m", "messages": user, "temperature": 1.5}),
            json!({"model": "m", "messages": user, "tool_choice": "required", "tools": weather_tools()}),
            json!({"model": "m", "messages": user, "tool_choice": "REQUIRED"}),
            json!({"model": "m", "messages": user, "response_format": {"type": "json_object"}, "tools": weather_tools()}),
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {"name": "f"}}]}),
            json!({"model": "m", "messages": [{"role": "developer", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": ""}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "content": "x", "name": "bot"}]}),
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "d", "content": "x"}]}),
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}]}),
        ];
        for body in cases {
            let response = chat(body.clone()).err().unwrap_or_else(|| panic!("accepted {body}"));
            assert_eq!(response.status, 400, "{body}");
            assert!(json_of(&response)["message"].as_str().unwrap().starts_with("invalid request: "), "{body}");
        }
        assert_eq!(send("/v2/chat", "wrong", &json!({})).err().unwrap().status, 401);
    }

    #[test]
    fn embeds_texts_as_floats() {
        let body = json!({"model": "embed-v4.0", "texts": ["hello world", "x"], "input_type": "search_document", "embedding_types": ["float"], "output_dimension": 256});
        let response = json_of(&send("/v2/embed", "co", &body).ok().unwrap().whole);
        assert_eq!(response["embeddings"]["float"][0].as_array().unwrap().len(), 256);
        assert_eq!(response["embeddings"]["float"][1], json!(script::exact(&script::embedding("x", 256))));
        assert_eq!(response["meta"]["billed_units"]["input_tokens"], 3);
        for bad in [
            json!({"model": "e", "texts": ["x"]}),
            json!({"model": "e", "texts": ["x"], "input_type": "query"}),
            json!({"model": "e", "texts": [], "input_type": "search_query"}),
            json!({"model": "e", "texts": ["x"], "input_type": "search_query", "output_dimension": 8}),
            json!({"model": "e", "texts": ["x"], "input_type": "search_query", "embedding_types": ["int8"]}),
            json!({"model": "e", "input": ["x"], "input_type": "search_query"}),
        ] {
            assert_eq!(send("/v2/embed", "co", &bad).err().unwrap_or_else(|| panic!("accepted {bad}")).status, 400, "{bad}");
        }
    }
}
