//! The Amazon Bedrock runtime API: `Converse`, `ConverseStream` and `InvokeModel`
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>,
//! <https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html>).
//! Every request must carry a valid SigV4 signature for one of the mock's
//! credentials; bodies are validated strictly, translated into the neutral
//! [`Conversation`], and the script's reply is rendered as a Converse answer or
//! as binary event-stream messages with real CRCs.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::anthropic;
use crate::http::{Request, Response};
use crate::provider::{Answer, Provider};
use crate::script::{self, Args, Block, Cache, Conversation, Finish, KeyOrder, Reply, Role, Tool, ToolChoice, Turn};
use crate::sigv4::{self, Credentials};
use crate::validate::{self, Checked, Invalid, Obj, join};

/// The SigV4 signing name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

const CONVERSE_FIELDS: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "outputConfig",
    "promptVariables",
    "requestMetadata",
];

const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];

/// Vector sizes the mock's embedding models produce.
const TITAN_DIMENSIONS: u64 = 1024;
const COHERE_DIMENSIONS: usize = 1024;

pub struct Bedrock {
    credentials: Vec<Credentials>,
}

impl Bedrock {
    pub fn new(credentials: Vec<Credentials>) -> Self {
        Bedrock { credentials }
    }
}

impl Provider for Bedrock {
    fn error(&self, status: u16, message: &str) -> Response {
        error_response(status, error_type(status), message)
    }

    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        logical_event("modelStreamErrorException", &ExceptionOut { message: "The model stream ended with an error." })
    }

    fn stream_content_type(&self) -> &'static str {
        "application/vnd.amazon.eventstream"
    }

    fn encode_event(&self, event: &str) -> Vec<u8> {
        let (name, payload) = event.split_once('\n').unwrap_or((event, ""));
        if name.ends_with("Exception") {
            frame(&[(":exception-type", name), (":content-type", "application/json"), (":message-type", "exception")], payload.as_bytes())
        } else {
            frame(&[(":event-type", name), (":content-type", "application/json"), (":message-type", "event")], payload.as_bytes())
        }
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        sigv4::verify(request, &self.credentials, SERVICE).map_err(|rejection| error_response(403, rejection.kind, &rejection.message))?;
        let Some((model, action)) = operation(&request.path) else {
            return Err(error_response(404, "UnknownOperationException", "The requested operation is not recognized by the service."));
        };
        let invalid = |invalid: Invalid| error_response(400, "ValidationException", &invalid.to_string());
        if is_anthropic(&model) && matches!(action, "invoke" | "invoke-with-response-stream") {
            let platform = anthropic::Platform {
                model: &model,
                version: "bedrock-2023-05-31",
                stream: Some(action == "invoke-with-response-stream"),
                betas_in_body: true,
            };
            let Answer { whole, events } =
                anthropic::hosted(request, cache, &platform).map_err(|message| error_response(400, "ValidationException", &message))?;
            return Ok(Answer { whole, events: events.map(|events| chunks(&events)) });
        }
        match action {
            "converse" | "converse-stream" => {
                let conversation = parse_converse(&request.body, cache).map_err(invalid)?;
                let thinks = model_fields(&request.body, &model).map_err(invalid)?;
                let format = structured_output(&request.body, &model).map_err(invalid)?;
                let mut reply = script::reply(&conversation);
                if model.contains("anthropic.claude") {
                    script::forced_call_alone(&conversation, &mut reply);
                }
                if let Some(format) = format
                    && reply.tool_call.is_none()
                {
                    reply.text = format.sample_args().to_json();
                    reply.usage.output = script::words(&reply.text);
                }
                Ok(render(&reply, action == "converse-stream", thinks))
            }
            "invoke" => invoke(&model, &request.body).map(|whole| Answer { whole, events: None }).map_err(invalid),
            _ => Err(error_response(404, "UnknownOperationException", "The requested operation is not recognized by the service.")),
        }
    }
}

/// Anthropic's models, by id (`anthropic.…`) or cross-Region inference profile (`us.anthropic.…`).
fn is_anthropic(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    id.starts_with("anthropic.") || id.split_once('.').is_some_and(|(_, rest)| rest.starts_with("anthropic."))
}

/// InvokeModelWithResponseStream's framing of Anthropic's events: each the base64 `bytes` of a
/// `chunk` event's `PayloadPart`, the last with Bedrock's invocation metrics added
/// (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModelWithResponseStream.html>).
fn chunks(events: &[String]) -> Vec<String> {
    let (mut input, mut output) = (0, 0);
    events
        .iter()
        .map(|sse| {
            let json = sse.lines().filter_map(|line| line.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
            let mut event: Value = serde_json::from_str(&json).expect("the mock's events are JSON");
            let bytes = match event["type"].as_str() {
                Some("message_start") => {
                    input = event["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                    json
                }
                Some("message_delta") => {
                    output = event["usage"]["output_tokens"].as_u64().unwrap_or(0);
                    json
                }
                Some("message_stop") => {
                    event["amazon-bedrock-invocationMetrics"] = serde_json::json!({
                        "inputTokenCount": input, "outputTokenCount": output, "invocationLatency": 42, "firstByteLatency": 7});
                    event.to_string()
                }
                _ => json,
            };
            logical_event("chunk", &serde_json::json!({"bytes": base64(bytes.as_bytes())}))
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= group.len() { char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]) } else { '=' });
        }
    }
    out
}

/// `/model/{modelId}/{action}` with the model id percent-decoded.
fn operation(path: &str) -> Option<(String, &str)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, action) = rest.split_once('/')?;
    let model = percent_decode(model)?;
    (!model.is_empty() && !action.contains('/')).then_some((model, action))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            out.push(b);
            at += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The error type AWS names in `x-amzn-ErrorType` for an injected status.
fn error_type(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500.. => "InternalServerException",
        _ => "ValidationException",
    }
}

/// Bedrock's error shape: the type in a header, `{"message": …}` in the body.
fn error_response(status: u16, kind: &str, message: &str) -> Response {
    Response::json(status, &ExceptionOut { message })
        .with_header("x-amzn-errortype", format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
        .with_header("x-amzn-requestid", request_id())
}

fn request_id() -> String {
    format!("00000000-0000-4000-8000-{:012x}", script::next_id())
}

#[derive(Serialize)]
struct ExceptionOut<'a> {
    message: &'a str,
}

// ---- Converse requests -------------------------------------------------------------------------

fn parse_converse(raw: &[u8], cache: Cache) -> Checked<Conversation> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    body.only(CONVERSE_FIELDS)?;
    let system = system(&body)?;
    let (max_tokens, stop) = inference_config(&body)?;
    let (tools, tool_choice) = tool_config(&body, raw)?;
    let (turns, uses_tools) = messages(body.non_empty_array("messages")?)?;
    if uses_tools && tools.is_empty() {
        return Err(Invalid::standalone(
            "toolConfig",
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    Ok(Conversation { system, turns, tools, tool_choice, max_tokens, stop, cache })
}

/// Models with structured outputs (`outputConfig.textFormat`) and strict tool use
/// (https://docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html).
const STRUCTURED: &[&str] = &[
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
];

/// `outputConfig.textFormat` (its schema a JSON string) and `toolSpec.strict`, which only models
/// with structured outputs take. The schema, as a tool whose sample input is the answer.
fn structured_output(raw: &[u8], model: &str) -> Checked<Option<Tool>> {
    let body = validate::parse_body(raw)?;
    let supported = STRUCTURED.iter().any(|m| model.contains(m));
    let unsupported = |path: String| Invalid::standalone(path, format!("This model doesn't support structured outputs: {model}"));
    let tools = body.get("toolConfig").and_then(|c| c.get("tools")).and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(index) = tools.iter().position(|t| t.get("toolSpec").and_then(|s| s.get("strict")).is_some())
        && !supported
    {
        return Err(unsupported(format!("toolConfig.tools.{index}.toolSpec.strict")));
    }
    let Some(config) = body.get("outputConfig") else { return Ok(None) };
    let config = Obj::new(config, "outputConfig")?;
    config.only(&["textFormat"])?;
    let format = config.object("textFormat")?;
    format.only(&["type", "structure"])?;
    if format.string("type")? != "json_schema" {
        return Err(Invalid::new(
            format.path("type"),
            "Value at 'outputConfig.textFormat.type' failed to satisfy constraint: Member must satisfy enum value set: [json_schema]",
        ));
    }
    let (_, definition) = union(format.required("structure")?, &format.path("structure"), &["jsonSchema"])?;
    let definition = Obj::new(definition, format.path("structure.jsonSchema"))?;
    definition.only(&["schema", "name", "description"])?;
    let text = definition.non_empty_string("schema")?;
    let schema: Value = serde_json::from_str(text).map_err(|_| Invalid::new(definition.path("schema"), "The schema is not valid JSON"))?;
    if !supported {
        return Err(unsupported("outputConfig".to_owned()));
    }
    let order = serde_json::from_str::<JsonOrder>(text).ok().and_then(|o| o.properties).map_or_else(Vec::new, |keys| keys.0);
    Ok(Some(Tool::new("response".to_owned(), &schema, &order)))
}

/// What the model thinks, when it thinks.
const THOUGHT: &str = "Weighing it up.";

/// `additionalModelRequestFields`, which Bedrock hands to the model in its own format: Claude
/// takes Anthropic's `thinking` and `output_config` (a budget of at least 1,024 tokens below
/// `maxTokens`, no sampling changes while thinking; adaptive thinking on 4.6+ models), Nova 2
/// its `reasoningConfig`; other models refuse these keys. Whether the model thinks.
fn model_fields(raw: &[u8], model: &str) -> Checked<bool> {
    let body = validate::parse_body(raw)?;
    let Some(fields) = body.get("additionalModelRequestFields") else { return Ok(false) };
    let fields = Obj::new(fields, "additionalModelRequestFields")?;
    let extraneous = |key: &str| {
        Invalid::standalone(
            join("additionalModelRequestFields", key),
            format!("The model returned the following errors: extraneous key [{key}] is not permitted"),
        )
    };
    let inference = body.get("inferenceConfig");
    if model.contains("amazon.nova-2") {
        if let Some(key) = ["thinking", "output_config"].into_iter().find(|k| fields.get(k).is_some()) {
            return Err(extraneous(key));
        }
        let Some(config) = fields.get("reasoningConfig") else { return Ok(false) };
        let config = Obj::new(config, fields.path("reasoningConfig"))?;
        config.only(&["type", "maxReasoningEffort"])?;
        let enabled = match config.string("type")? {
            "enabled" => true,
            "disabled" => false,
            other => return Err(Invalid::new(config.path("type"), format!("Invalid reasoning type {other}"))),
        };
        if let Some(effort) = config.opt_string("maxReasoningEffort")?
            && !["low", "medium", "high"].contains(&effort)
        {
            return Err(Invalid::new(config.path("maxReasoningEffort"), format!("Invalid reasoning effort {effort}")));
        }
        return Ok(enabled);
    }
    if !model.contains("anthropic.claude") || ["claude-3-5", "claude-3-haiku", "claude-3-opus"].iter().any(|m| model.contains(m)) {
        return match fields.get("thinking").map(|_| "thinking").or(fields.get("reasoningConfig").map(|_| "reasoningConfig")) {
            Some(key) => Err(extraneous(key)),
            None => Ok(false),
        };
    }
    if let Some(key) = fields.get("reasoningConfig").map(|_| "reasoningConfig") {
        return Err(extraneous(key));
    }
    if let Some(config) = fields.get("output_config") {
        let config = Obj::new(config, fields.path("output_config"))?;
        config.only(&["effort"])?;
        if let Some(effort) = config.opt_string("effort")?
            && !["low", "medium", "high", "xhigh", "max"].contains(&effort)
        {
            return Err(Invalid::new(config.path("effort"), format!("invalid effort {effort}")));
        }
    }
    let Some(thinking) = fields.get("thinking") else { return Ok(false) };
    let thinking = Obj::new(thinking, fields.path("thinking"))?;
    let adaptive_models =
        ["claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5", "claude-sonnet-5"];
    match thinking.string("type")? {
        "enabled" => {
            thinking.only(&["type", "budget_tokens"])?;
            let budget = thinking.positive_int("budget_tokens")?;
            // Claude's own default output limit on Bedrock when the request sets none.
            let max_tokens = inference.and_then(|c| c.get("maxTokens")).and_then(Value::as_u64).unwrap_or(4096);
            if budget < 1024 || max_tokens <= budget {
                return Err(Invalid::standalone(
                    thinking.path("budget_tokens"),
                    "The model returned the following errors: thinking.budget_tokens must be at least 1024 and less than max_tokens",
                ));
            }
        }
        "adaptive" if adaptive_models.iter().any(|m| model.contains(m)) => thinking.only(&["type"])?,
        other => {
            return Err(Invalid::new(
                thinking.path("type"),
                format!("The model returned the following errors: thinking type {other} is not supported"),
            ));
        }
    }
    let sampling = inference.map(|c| (c.get("temperature").and_then(Value::as_f64), c.get("topP").and_then(Value::as_f64)));
    if let Some((temperature, top_p)) = sampling
        && (temperature.is_some_and(|t| t != 1.0) || top_p.is_some_and(|p| p < 0.95))
    {
        return Err(Invalid::standalone(
            "inferenceConfig",
            "The model returned the following errors: temperature may only be set to 1 and top_p to 0.95 or more when thinking is enabled",
        ));
    }
    Ok(true)
}

/// A union value: an object with exactly one of `members` set.
fn union<'a>(value: &'a Value, path: &str, members: &[&str]) -> Checked<(&'a str, &'a Value)> {
    let object = Obj::new(value, path)?;
    object.only(members)?;
    let set: Vec<(&String, &Value)> = value.as_object().into_iter().flatten().filter(|(_, v)| !v.is_null()).collect();
    match set.as_slice() {
        [(name, value)] => Ok((name.as_str(), value)),
        _ => Err(Invalid::new(path, format!("exactly one of {} must be set", members.join(", ")))),
    }
}

fn text(value: &Value, path: &str) -> Checked<String> {
    let text = validate::string(value, path)?;
    if text.trim().is_empty() {
        return Err(Invalid::new(path, "The text field in the ContentBlock object is blank. Add text to the text field, and try again."));
    }
    Ok(text.to_owned())
}

fn cache_point(value: &Value, path: &str) -> Checked<()> {
    let point = Obj::new(value, path)?;
    point.only(&["type"])?;
    if point.string("type")? != "default" {
        return Err(Invalid::new(point.path("type"), "Value must be 'default'"));
    }
    Ok(())
}

fn system(body: &Obj) -> Checked<Vec<String>> {
    let path = body.path("system");
    let mut texts = Vec::new();
    for (index, item) in body.opt_array("system")?.unwrap_or_default().iter().enumerate() {
        let block_path = join(&path, index);
        match union(item, &block_path, &["text", "guardContent", "cachePoint"])? {
            ("text", value) => texts.push(text(value, &join(&block_path, "text"))?),
            ("cachePoint", value) => cache_point(value, &join(&block_path, "cachePoint"))?,
            _ => {}
        }
    }
    Ok(texts)
}

fn inference_config(body: &Obj) -> Checked<(Option<u64>, Vec<String>)> {
    let Some(value) = body.get("inferenceConfig") else {
        return Ok((None, Vec::new()));
    };
    let config = Obj::new(value, "inferenceConfig")?;
    config.only(&["maxTokens", "temperature", "topP", "stopSequences"])?;
    config.opt_number("temperature", 0.0..=1.0)?;
    config.opt_number("topP", 0.0..=1.0)?;
    let path = config.path("stopSequences");
    let stop = config
        .opt_array("stopSequences")?
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, item)| validate::non_empty_string(item, &join(&path, index)).map(str::to_owned))
        .collect::<Checked<_>>()?;
    Ok((config.opt_positive_int("maxTokens")?, stop))
}

fn tool_config(body: &Obj, raw: &[u8]) -> Checked<(Vec<Tool>, ToolChoice)> {
    let Some(value) = body.get("toolConfig") else {
        return Ok((Vec::new(), ToolChoice::Auto));
    };
    let config = Obj::new(value, "toolConfig")?;
    config.only(&["tools", "toolChoice"])?;
    let orders = serde_json::from_slice::<Orders>(raw).ok().and_then(|o| o.tool_config).and_then(|c| c.tools).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut tools = Vec::new();
    for (index, item) in config.non_empty_array("tools")?.iter().enumerate() {
        let path = join("toolConfig.tools", index);
        let (member, value) = union(item, &path, &["toolSpec", "cachePoint"])?;
        if member == "cachePoint" {
            cache_point(value, &join(&path, member))?;
            continue;
        }
        let spec = Obj::new(value, join(&path, member))?;
        spec.only(&["name", "description", "inputSchema", "strict"])?;
        spec.opt_bool("strict")?;
        let name = validate::tool_name(spec.required("name")?, &spec.path("name"), 64)?;
        if !seen.insert(name) {
            return Err(Invalid::new(spec.path("name"), "Tool names must be unique"));
        }
        if spec.opt_string("description")?.is_some_and(str::is_empty) {
            return Err(Invalid::new(spec.path("description"), "String should have at least 1 character"));
        }
        let schema_path = spec.path("inputSchema");
        let (_, schema) = union(spec.required("inputSchema")?, &schema_path, &["json"])?;
        let schema_object = Obj::new(schema, join(&schema_path, "json"))?;
        if schema_object.string("type")? != "object" {
            return Err(Invalid::new(schema_object.path("type"), "The input schema of a tool must be of type 'object'"));
        }
        let order = orders
            .get(index)
            .and_then(|o| o.tool_spec.as_ref())
            .and_then(|s| s.input_schema.json.properties.as_ref())
            .map_or(&[][..], |keys| &keys.0);
        tools.push(Tool::new(name.to_owned(), schema, order));
    }
    let choice = match config.get("toolChoice") {
        None => ToolChoice::Auto,
        Some(value) => match union(value, "toolConfig.toolChoice", &["auto", "any", "tool"])? {
            ("tool", named) => {
                let named = Obj::new(named, "toolConfig.toolChoice.tool")?;
                named.only(&["name"])?;
                let name = named.non_empty_string("name")?;
                if !seen.contains(name) {
                    return Err(Invalid::new(named.path("name"), format!("tool '{name}' is not in toolConfig.tools")));
                }
                ToolChoice::Named(name.to_owned())
            }
            (member, empty) => {
                Obj::new(empty, join("toolConfig.toolChoice", member))?.only(&[])?;
                if member == "any" { ToolChoice::Required } else { ToolChoice::Auto }
            }
        },
    };
    Ok((tools, choice))
}

/// Tool schemas re-read for their property order (see [`KeyOrder`]).
#[derive(Deserialize)]
struct Orders {
    #[serde(rename = "toolConfig")]
    tool_config: Option<ToolConfigOrder>,
}

#[derive(Deserialize)]
struct ToolConfigOrder {
    tools: Option<Vec<ToolOrder>>,
}

#[derive(Deserialize)]
struct ToolOrder {
    #[serde(rename = "toolSpec")]
    tool_spec: Option<SpecOrder>,
}

#[derive(Deserialize)]
struct SpecOrder {
    #[serde(rename = "inputSchema")]
    input_schema: SchemaOrder,
}

#[derive(Deserialize)]
struct SchemaOrder {
    json: JsonOrder,
}

#[derive(Deserialize)]
struct JsonOrder {
    properties: Option<KeyOrder>,
}

/// The turns, and whether any holds a toolUse or toolResult block.
fn messages(items: &[Value]) -> Checked<(Vec<Turn>, bool)> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut open_tool_uses: Vec<String> = Vec::new();
    let mut uses_tools = false;
    for (index, item) in items.iter().enumerate() {
        let path = join("messages", index);
        let message = Obj::new(item, path.as_str())?;
        message.only(&["role", "content"])?;
        let role = match message.string("role")? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return Err(Invalid::new(message.path("role"), "Value must be 'user' or 'assistant'")),
        };
        match turns.last() {
            None if role != Role::User => {
                return Err(Invalid::standalone(
                    message.path("role"),
                    "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
                ));
            }
            Some(previous) if previous.role == role => {
                return Err(Invalid::standalone(
                    message.path("role"),
                    "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
                ));
            }
            _ => {}
        }
        let content = content(&message, role)?;
        uses_tools |= !content.tool_uses.is_empty() || !content.tool_results.is_empty();
        for (block, id) in &content.tool_results {
            if !open_tool_uses.contains(id) {
                return Err(Invalid::new(
                    join(&message.path("content"), block),
                    format!("The toolUseId {id} of a toolResult does not match any toolUse block in the previous assistant message."),
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
                format!("Expected toolResult blocks for the toolUse ids {} in the message after they were used.", unanswered.join(", ")),
            ));
        }
        open_tool_uses = content.tool_uses;
        turns.push(Turn { role, blocks: content.blocks });
    }
    Ok((turns, uses_tools))
}

#[derive(Default)]
struct Content {
    blocks: Vec<Block>,
    tool_uses: Vec<String>,
    /// Block index and `toolUseId` of each toolResult.
    tool_results: Vec<(usize, String)>,
}

fn content(message: &Obj, role: Role) -> Checked<Content> {
    let path = message.path("content");
    let mut content = Content::default();
    for (index, item) in message.non_empty_array("content")?.iter().enumerate() {
        let block_path = join(&path, index);
        let (member, value) = union(
            item,
            &block_path,
            &["text", "image", "document", "video", "toolUse", "toolResult", "guardContent", "cachePoint", "reasoningContent"],
        )?;
        let member_path = join(&block_path, member);
        match member {
            "text" => content.blocks.push(Block::Text(text(value, &member_path)?)),
            "image" => {
                image(value, &member_path)?;
                content.blocks.push(Block::Image);
            }
            "cachePoint" => cache_point(value, &member_path)?,
            "toolUse" => {
                if role != Role::Assistant {
                    return Err(Invalid::new(block_path, "toolUse blocks can only be in assistant messages"));
                }
                let (id, call) = tool_use(value, &member_path)?;
                content.tool_uses.push(id);
                content.blocks.push(call);
            }
            "toolResult" => {
                if role != Role::User {
                    return Err(Invalid::new(block_path, "toolResult blocks can only be in user messages"));
                }
                let (id, result) = tool_result(value, &member_path)?;
                content.tool_results.push((index, id));
                content.blocks.push(result);
            }
            other => return Err(Invalid::new(member_path, format!("the mock does not model `{other}` blocks"))),
        }
    }
    Ok(content)
}

fn image(value: &Value, path: &str) -> Checked<()> {
    let image = Obj::new(value, path)?;
    image.only(&["format", "source"])?;
    let format = image.string("format")?;
    if !IMAGE_FORMATS.contains(&format) {
        return Err(Invalid::new(image.path("format"), format!("Value must be one of: {}", IMAGE_FORMATS.join(", "))));
    }
    let source_path = image.path("source");
    match union(image.required("source")?, &source_path, &["bytes", "s3Location"])? {
        ("bytes", bytes) => {
            let bytes = validate::non_empty_string(bytes, &join(&source_path, "bytes"))?;
            let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
            if bytes.len() % 4 != 0 || !bytes.bytes().all(base64) {
                return Err(Invalid::new(join(&source_path, "bytes"), "Invalid base64 data"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `^[a-zA-Z0-9_-]{1,64}$`, the ToolUseId pattern.
fn tool_use_id(value: &Value, path: &str) -> Checked<String> {
    let id = validate::string(value, path)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if (1..=64).contains(&id.len()) && id.bytes().all(allowed) {
        Ok(id.to_owned())
    } else {
        Err(Invalid::new(path, "Value must match pattern ^[a-zA-Z0-9_-]+$ and be 1 to 64 characters long"))
    }
}

fn tool_use(value: &Value, path: &str) -> Checked<(String, Block)> {
    let call = Obj::new(value, path)?;
    call.only(&["toolUseId", "name", "input"])?;
    let id = tool_use_id(call.required("toolUseId")?, &call.path("toolUseId"))?;
    let name = validate::tool_name(call.required("name")?, &call.path("name"), 64)?.to_owned();
    let input = call.required("input")?;
    Obj::new(input, call.path("input"))?;
    Ok((id, Block::ToolCall { name, args: input.to_string() }))
}

fn tool_result(value: &Value, path: &str) -> Checked<(String, Block)> {
    let result = Obj::new(value, path)?;
    result.only(&["toolUseId", "content", "status"])?;
    let id = tool_use_id(result.required("toolUseId")?, &result.path("toolUseId"))?;
    if let Some(status) = result.opt_string("status")?
        && !matches!(status, "success" | "error")
    {
        return Err(Invalid::new(result.path("status"), "Value must be 'success' or 'error'"));
    }
    let content_path = result.path("content");
    let mut texts = Vec::new();
    let mut images = 0;
    for (index, item) in result.non_empty_array("content")?.iter().enumerate() {
        let block_path = join(&content_path, index);
        match union(item, &block_path, &["text", "json", "image", "document", "video"])? {
            ("text", value) => texts.push(text(value, &join(&block_path, "text"))?),
            ("json", value) => texts.push(value.to_string()),
            ("image", value) => {
                image(value, &join(&block_path, "image"))?;
                images += 1;
            }
            (other, _) => return Err(Invalid::new(join(&block_path, other), format!("the mock does not model `{other}` tool results"))),
        }
    }
    Ok((id, Block::ToolResult { text: texts.join(" "), images }))
}

// ---- Converse answers --------------------------------------------------------------------------

fn stop_reason(finish: &Finish) -> &'static str {
    match finish {
        Finish::EndTurn => "end_turn",
        Finish::MaxTokens => "max_tokens",
        Finish::StopSequence(_) => "stop_sequence",
        Finish::ToolUse => "tool_use",
    }
}

fn render(reply: &Reply, stream: bool, thinks: bool) -> Answer {
    let tool_id = reply.tool_call.as_ref().map(|_| format!("tooluse_mock_{}", script::next_id()));
    let mut content = Vec::new();
    if thinks {
        content
            .push(BlockOut::ReasoningContent(ReasoningOut { reasoning_text: ReasoningTextOut { text: THOUGHT, signature: "c2lnbmVk" } }));
    }
    if !reply.text.is_empty() {
        content.push(BlockOut::Text(&reply.text));
    }
    if let (Some(call), Some(id)) = (&reply.tool_call, &tool_id) {
        content.push(BlockOut::ToolUse(ToolUseOut { tool_use_id: id, name: &call.name, input: &call.args }));
    }
    let usage = reply.usage;
    let usage = UsageOut {
        input_tokens: usage.input,
        output_tokens: usage.output,
        total_tokens: usage.prompt() + usage.output,
        cache_read_input_tokens: usage.cache_read,
        cache_write_input_tokens: usage.cache_write,
    };
    let answer = ConverseOut {
        output: OutputOut { message: MessageOut { role: "assistant", content } },
        stop_reason: stop_reason(&reply.finish),
        usage,
        metrics: Metrics { latency_ms: 42 },
    };
    let whole = Response::json(200, &answer).with_header("x-amzn-requestid", request_id());
    let events = stream.then(|| stream_events(&answer));
    Answer { whole, events }
}

/// The events that stream `answer`, in ConverseStream's order: text blocks have no start
/// event, tool blocks announce their id and name first and stream their input as JSON text.
fn stream_events(answer: &ConverseOut) -> Vec<String> {
    let mut events = vec![padded("messageStart", &RoleOut { role: "assistant" }, 0)];
    for (index, block) in answer.output.message.content.iter().enumerate() {
        match block {
            BlockOut::Text(text) => {
                for piece in script::word_pieces(text) {
                    let n = events.len();
                    events.push(padded("contentBlockDelta", &DeltaOut { content_block_index: index, delta: DeltaBody::Text(piece) }, n));
                }
            }
            BlockOut::ReasoningContent(reasoning) => {
                for piece in script::word_pieces(reasoning.reasoning_text.text) {
                    let delta = DeltaOut { content_block_index: index, delta: DeltaBody::ReasoningContent(ReasoningDelta { text: piece }) };
                    let n = events.len();
                    events.push(padded("contentBlockDelta", &delta, n));
                }
            }
            BlockOut::ToolUse(call) => {
                let start = StartOut {
                    content_block_index: index,
                    start: StartBody { tool_use: ToolStart { tool_use_id: call.tool_use_id, name: call.name } },
                };
                events.push(padded("contentBlockStart", &start, events.len()));
                let json = call.input.to_json();
                for piece in script::thirds(&json) {
                    let delta = DeltaOut { content_block_index: index, delta: DeltaBody::ToolUse(ToolInput { input: piece }) };
                    let n = events.len();
                    events.push(padded("contentBlockDelta", &delta, n));
                }
            }
        }
        events.push(padded("contentBlockStop", &StopBlockOut { content_block_index: index }, events.len()));
    }
    events.push(padded("messageStop", &MessageStopOut { stop_reason: answer.stop_reason }, events.len()));
    events.push(padded("metadata", &MetadataOut { usage: answer.usage, metrics: answer.metrics }, events.len()));
    events
}

/// A streamed event before framing: its type, a newline, its JSON payload (JSON never holds a
/// raw newline). [`Provider::encode_event`] frames it.
fn logical_event(name: &str, payload: &impl Serialize) -> String {
    format!("{name}\n{}", serde_json::to_string(payload).expect("response types always serialize"))
}

/// Bedrock pads stream payloads with a `p` member of varying length so that sizes do not
/// reveal the text; clients must ignore it.
fn padded(name: &str, payload: &impl Serialize, n: usize) -> String {
    const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut value = serde_json::to_value(payload).expect("response types always serialize");
    if let Value::Object(map) = &mut value {
        map.insert("p".to_owned(), Value::from(&PAD[..(n * 7) % PAD.len() + 1]));
    }
    logical_event(name, &value)
}

/// One event-stream message: prelude (total and headers length, CRC32 of both), string
/// headers, payload, CRC32 of everything before it, all big-endian
/// (<https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html>).
pub fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.push(u8::try_from(name.len()).expect("header names are short"));
        encoded.extend_from_slice(name.as_bytes());
        encoded.push(7); // string
        encoded.extend_from_slice(&u16::try_from(value.len()).expect("header values are short").to_be_bytes());
        encoded.extend_from_slice(value.as_bytes());
    }
    let total = u32::try_from(12 + encoded.len() + payload.len() + 4).expect("messages stay far below 4 GiB");
    let mut message = Vec::with_capacity(total as usize);
    message.extend_from_slice(&total.to_be_bytes());
    message.extend_from_slice(&u32::try_from(encoded.len()).expect("headers are short").to_be_bytes());
    let prelude_crc = crc32fast::hash(&message);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    message.extend_from_slice(&encoded);
    message.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&message);
    message.extend_from_slice(&message_crc.to_be_bytes());
    message
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseOut<'a> {
    output: OutputOut<'a>,
    stop_reason: &'static str,
    usage: UsageOut,
    metrics: Metrics,
}

#[derive(Serialize)]
struct OutputOut<'a> {
    message: MessageOut<'a>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<BlockOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum BlockOut<'a> {
    Text(&'a str),
    ToolUse(ToolUseOut<'a>),
    ReasoningContent(ReasoningOut<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningOut<'a> {
    reasoning_text: ReasoningTextOut<'a>,
}

#[derive(Serialize)]
struct ReasoningTextOut<'a> {
    text: &'a str,
    signature: &'a str,
}

#[derive(Serialize)]
struct ReasoningDelta<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseOut<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: &'a Args,
}

/// `inputTokens` excludes the prompt cache's tokens; `totalTokens` counts everything.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_input_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

#[derive(Serialize)]
struct RoleOut {
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartOut<'a> {
    content_block_index: usize,
    start: StartBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    tool_use: ToolStart<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolStart<'a> {
    tool_use_id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeltaOut<'a> {
    content_block_index: usize,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum DeltaBody<'a> {
    Text(&'a str),
    ToolUse(ToolInput<'a>),
    ReasoningContent(ReasoningDelta<'a>),
}

#[derive(Serialize)]
struct ToolInput<'a> {
    input: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopBlockOut {
    content_block_index: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopOut {
    stop_reason: &'static str,
}

#[derive(Serialize)]
struct MetadataOut {
    usage: UsageOut,
    metrics: Metrics,
}

// ---- InvokeModel embeddings ----------------------------------------------------------------------

/// Titan text embeddings (<https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>)
/// and Cohere embed (<https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html>).
fn invoke(model: &str, raw: &[u8]) -> Checked<Response> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    let answer = if model.contains("amazon.titan-embed-text-v2") {
        body.only(&["inputText", "dimensions", "normalize", "embeddingTypes"])?;
        let text = body.non_empty_string("inputText")?;
        let dimensions = body.opt_positive_int("dimensions")?.unwrap_or(TITAN_DIMENSIONS);
        if !matches!(dimensions, 256 | 512 | 1024) {
            return Err(Invalid::new("dimensions", "Value must be one of 256, 512 or 1024"));
        }
        body.opt_bool("normalize")?;
        let embedding = vector(text, usize::try_from(dimensions).unwrap_or(0));
        serde_json::json!({
            "embedding": embedding,
            "embeddingsByType": {"float": embedding},
            "inputTextTokenCount": script::words(text),
        })
    } else if model.contains("cohere.embed") {
        body.only(&["texts", "input_type", "truncate", "embedding_types"])?;
        let texts = body.non_empty_array("texts")?;
        if texts.len() > 96 {
            return Err(Invalid::new("texts", "At most 96 texts are allowed"));
        }
        let texts: Vec<&str> = texts
            .iter()
            .enumerate()
            .map(|(index, text)| validate::non_empty_string(text, &join("texts", index)))
            .collect::<Checked<_>>()?;
        let input_type = body.string("input_type")?;
        if !matches!(input_type, "search_document" | "search_query" | "classification" | "clustering") {
            return Err(Invalid::new("input_type", "Value must be search_document, search_query, classification or clustering"));
        }
        if body.opt_string("truncate")?.is_some_and(|t| !matches!(t, "NONE" | "START" | "END")) {
            return Err(Invalid::new("truncate", "Value must be NONE, START or END"));
        }
        let vectors: Vec<Vec<f64>> = texts.iter().map(|text| vector(text, COHERE_DIMENSIONS)).collect();
        let by_type = body.opt_array("embedding_types")?.is_some();
        serde_json::json!({
            "id": format!("emb-mock-{}", script::next_id()),
            "embeddings": if by_type { serde_json::json!({"float": vectors}) } else { serde_json::json!(vectors) },
            "response_type": if by_type { "embeddings_by_type" } else { "embeddings_floats" },
            "texts": texts,
        })
    } else {
        return Err(Invalid::standalone("", format!("The mock has no InvokeModel format for model `{model}`.")));
    };
    Ok(Response::json(200, &answer).with_header("x-amzn-requestid", request_id()))
}

/// A deterministic vector for a text: equal texts embed equally.
fn vector(text: &str, dimensions: usize) -> Vec<f64> {
    let seed = text.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..dimensions).map(|i| (((seed >> (i % 48)) ^ i as u64) % 2001) as f64 / 1000.0 - 1.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::tests::sign;
    use serde_json::json;

    fn creds() -> Credentials {
        Credentials { access_key_id: "AKIDMOCK".into(), secret_access_key: "secret".into(), session_token: None }
    }

    fn request(path: &str, body: &str) -> Request {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: bedrock-runtime.us-east-1.amazonaws.com\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        sign(&creds(), "us-east-1", "bedrock", "20250101T000000Z", &mut request);
        request
    }

    fn send(path: &str, body: &Value) -> Result<Answer, Response> {
        Bedrock::new(vec![creds()]).answer(&request(path, &body.to_string()), Cache::default())
    }

    const CONVERSE: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    const STREAM: &str = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn rejection(result: Result<Answer, Response>) -> (u16, String, String) {
        let response = result.err().expect("the request should be rejected");
        let kind = response.headers.iter().find(|(n, _)| n == "x-amzn-errortype").map(|(_, v)| v.clone()).unwrap();
        (response.status, kind.split(':').next().unwrap().to_owned(), json_of(&response)["message"].as_str().unwrap().to_owned())
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"text": text}]})
    }

    fn weather_tools() -> Value {
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Weather", "inputSchema": {"json": {
            "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}}}]})
    }

    const INVOKE: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";

    #[test]
    fn claude_takes_anthropics_body_on_invoke_model() {
        let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
        let answer = send(INVOKE, &body).ok().unwrap();
        let message = json_of(&answer.whole);
        assert_eq!((message["type"].as_str(), message["content"][0]["text"].as_str()), (Some("message"), Some("Hello! You said: hi")));
        assert!(answer.events.is_none());
        for (bad, needle) in [
            (json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}), "anthropic_version"),
            (
                json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                "anthropic_version",
            ),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "model": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                "model",
            ),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                "stream",
            ),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": "x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
                "anthropic_beta",
            ),
        ] {
            let (status, kind, message) = rejection(send(INVOKE, &bad));
            assert_eq!((status, kind.as_str()), (400, "ValidationException"), "{bad}");
            assert!(message.contains(needle), "{message}");
        }
        // Betas come in the body: one that enables a member lets it through.
        let beta = json!({"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["context-management-2025-06-27"], "max_tokens": 5,
            "context_management": {"edits": []}, "messages": [{"role": "user", "content": "hi"}]});
        assert!(send(INVOKE, &beta).is_ok());
        let unsigned = crate::http::read_request(
            &mut format!("POST {INVOKE} HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}", body.to_string().len()).as_bytes(),
            &mut Vec::new(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(Bedrock::new(vec![creds()]).answer(&unsigned, Cache::default()).err().unwrap().status, 403);
    }

    #[test]
    fn claudes_stream_is_chunks_of_base64_anthropic_events() {
        let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]});
        let path = INVOKE.replace("/invoke", "/invoke-with-response-stream");
        let events = send(&path, &body).ok().unwrap().events.unwrap();
        let decoded: Vec<Value> = events
            .iter()
            .map(|e| {
                let (name, payload) = e.split_once('\n').unwrap();
                assert_eq!(name, "chunk");
                let b64 = serde_json::from_str::<Value>(payload).unwrap()["bytes"].as_str().unwrap().to_owned();
                serde_json::from_slice(&decode_base64(&b64)).unwrap()
            })
            .collect();
        assert_eq!(decoded.first().unwrap()["type"], "message_start");
        let last = decoded.last().unwrap();
        assert_eq!(last["type"], "message_stop");
        assert_eq!(last["amazon-bedrock-invocationMetrics"]["outputTokenCount"], 4);
    }

    fn decode_base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
        for b in text.bytes().filter(|b| *b != b'=') {
            acc = acc << 6 | ALPHABET.iter().position(|a| *a == b).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    #[test]
    fn answers_a_converse_request() {
        let body = json!({"messages": [user("hi")], "system": [{"text": "Be brief"}, {"cachePoint": {"type": "default"}}],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}});
        let answer = send(CONVERSE, &body).ok().unwrap();
        assert!(answer.events.is_none());
        assert_eq!(
            json_of(&answer.whole),
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hello! You said: hi"}]}},
                "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}, "metrics": {"latencyMs": 42}})
        );
    }

    #[test]
    fn reports_cache_tokens_outside_input_tokens() {
        let request = request(CONVERSE, &json!({"messages": [user("one two three four five")]}).to_string());
        let answer = Bedrock::new(vec![creds()]).answer(&request, Cache { read: 3, write: 1 }).ok().unwrap();
        assert_eq!(
            json_of(&answer.whole)["usage"],
            json!({"inputTokens": 1, "outputTokens": 8, "totalTokens": 13, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 1})
        );
    }

    #[test]
    fn refuses_unsigned_or_badly_signed_requests() {
        let body = json!({"messages": [user("hi")]}).to_string();
        let raw = format!("POST {CONVERSE} HTTP/1.1\r\nhost: h\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let unsigned = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        let bedrock = Bedrock::new(vec![creds()]);
        let (status, kind, _) = rejection(bedrock.answer(&unsigned, Cache::default()));
        assert_eq!((status, kind.as_str()), (403, "MissingAuthenticationTokenException"));
        let mut tampered = request(CONVERSE, &body);
        tampered.body = json!({"messages": [user("bye")]}).to_string().into_bytes();
        let (status, kind, message) = rejection(bedrock.answer(&tampered, Cache::default()));
        assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));
        assert!(message.starts_with("The request signature we calculated does not match"));
    }

    #[test]
    fn rejects_invalid_bodies_naming_the_field() {
        let tool_turns = |result_id: &str| {
            json!([user("x"),
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": result_id, "content": [{"text": "sunny"}]}}]}])
        };
        let cases = [
            (json!({"messages": [user("x")], "model": "m"}), "model: Extra inputs are not permitted"),
            (json!({"messages": []}), "messages: List should have at least 1 item"),
            (json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}), "A conversation must start with a user message"),
            (json!({"messages": [user("x"), user("y")]}), "A conversation must alternate"),
            (json!({"messages": [{"role": "user", "content": [{"text": " "}]}]}), "messages.0.content.0.text: The text field"),
            (json!({"messages": [{"role": "user", "content": "hi"}]}), "messages.0.content: Input should be a valid list"),
            (json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}), "messages.0.content.0: exactly one of"),
            (
                json!({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": "AAAA"}}}]}]}),
                "messages.0.content.0.image.format:",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}]}),
                "messages.0.content.0.image.source.bytes: Invalid base64",
            ),
            (json!({"messages": tool_turns("t1")}), "The toolConfig field must be defined"),
            (json!({"messages": tool_turns("t2"), "toolConfig": weather_tools()}), "messages.2.content.0: The toolUseId t2"),
            (
                json!({"messages": [user("x"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}]}, user("no result")], "toolConfig": weather_tools()}),
                "messages.2: Expected toolResult blocks for the toolUse ids t1",
            ),
            (
                json!({"messages": [user("x"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t:1", "name": "f", "input": {}}}]}]}),
                "messages.1.content.0.toolUse.toolUseId:",
            ),
            (json!({"messages": [user("x")], "inferenceConfig": {"maxTokens": 0}}), "inferenceConfig.maxTokens:"),
            (json!({"messages": [user("x")], "inferenceConfig": {"temperature": 1.5}}), "inferenceConfig.temperature:"),
            (json!({"messages": [user("x")], "inferenceConfig": {"max_tokens": 5}}), "inferenceConfig.max_tokens: Extra inputs"),
            (json!({"messages": [user("x")], "toolConfig": {"tools": []}}), "toolConfig.tools: List should have at least 1 item"),
            (
                json!({"messages": [user("x")], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "string"}}}}]}}),
                "toolConfig.tools.0.toolSpec.inputSchema.json.type:",
            ),
            (
                json!({"messages": [user("x")], "toolConfig": {"tools": weather_tools()["tools"], "toolChoice": {"none": {}}}}),
                "toolConfig.toolChoice.none: Extra inputs",
            ),
            (
                json!({"messages": [user("x")], "toolConfig": {"tools": weather_tools()["tools"], "toolChoice": {"tool": {"name": "g"}}}}),
                "toolConfig.toolChoice.tool.name:",
            ),
            (json!({"messages": [user("x")], "system": [{"text": ""}]}), "system.0.text:"),
        ];
        for (body, expected) in cases {
            let (status, kind, message) = rejection(send(CONVERSE, &body));
            assert_eq!((status, kind.as_str()), (400, "ValidationException"), "{body}");
            assert!(message.starts_with(expected), "{body}: {message}");
        }
    }

    #[test]
    fn checks_model_fields_per_model_and_answers_with_reasoning() {
        let with = |model: &str, extra: Value| {
            let mut body = json!({"messages": [user("hi")]});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            send(&format!("/model/{model}/converse"), &body)
        };
        let claude = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0";
        let budget = json!({"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}});
        let whole = json_of(&with(claude, budget.clone()).ok().unwrap().whole);
        assert_eq!(whole["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"]["text"], THOUGHT);
        assert!(
            with(
                "anthropic.claude-opus-4-6-v1",
                json!({"additionalModelRequestFields": {"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}})
            )
            .is_ok()
        );
        assert!(
            with(
                "us.amazon.nova-2-lite-v1%3A0",
                json!({"additionalModelRequestFields": {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}})
            )
            .is_ok()
        );
        let refused = [
            (
                claude,
                json!({"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}, "inferenceConfig": {"maxTokens": 1024}}),
            ),
            (claude, json!({"additionalModelRequestFields": {"thinking": {"type": "adaptive"}}})),
            (
                claude,
                json!({"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}, "inferenceConfig": {"temperature": 0.5}}),
            ),
            ("anthropic.claude-3-haiku-20240307-v1%3A0", budget.clone()),
            ("meta.llama3-70b-instruct-v1%3A0", budget.clone()),
            ("us.amazon.nova-2-lite-v1%3A0", budget.clone()),
            (
                "us.amazon.nova-2-lite-v1%3A0",
                json!({"additionalModelRequestFields": {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "max"}}}),
            ),
        ];
        for (model, extra) in refused {
            assert_eq!(rejection(with(model, extra.clone())).0, 400, "{model} {extra}");
        }
    }

    #[test]
    fn answers_in_the_json_schema_and_takes_strict_tools_on_models_with_structured_outputs() {
        let sonnet = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse";
        let schema = r#"{"type":"object","properties":{"city":{"type":"string"}}}"#;
        let output = json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": schema, "name": "w"}}}});
        let body = json!({"messages": [user("hi")], "outputConfig": output});
        let whole = json_of(&send(sonnet, &body).ok().unwrap().whole);
        assert_eq!(whole["output"]["message"]["content"][0]["text"], r#"{"city":"Paris"}"#);
        assert_eq!(rejection(send(CONVERSE, &body)).0, 400, "Claude 3 Haiku has no structured outputs");
        let unparsed = json!({"messages": [user("hi")], "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}}});
        assert_eq!(rejection(send(sonnet, &unparsed)).0, 400, "the schema is JSON text");
        let strict = json!({"messages": [user("hi")], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}, "strict": true}}]}});
        assert!(send(sonnet, &strict).is_ok());
        assert_eq!(rejection(send(CONVERSE, &strict)).0, 400);
    }

    #[test]
    fn accepts_a_tool_round_trip() {
        let body = json!({"toolConfig": weather_tools(), "messages": [user("weather?"),
            {"role": "assistant", "content": [{"text": "Let me check."}, {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 18}}], "status": "success"}}, {"text": "thanks"}]}]});
        let answer = send(CONVERSE, &body).ok().unwrap();
        assert_eq!(json_of(&answer.whole)["output"]["message"]["content"][0]["text"], "Tool results: {\"temp\":18}");
    }

    /// Decodes the frames the mock writes, checking both CRCs.
    fn decode(bytes: &[u8]) -> Vec<(Vec<(String, String)>, Value)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let total = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let headers_len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            assert_eq!(crc32fast::hash(&rest[..8]).to_be_bytes(), rest[8..12]);
            assert_eq!(crc32fast::hash(&rest[..total - 4]).to_be_bytes(), rest[total - 4..total]);
            let mut h = &rest[12..12 + headers_len];
            let mut headers = Vec::new();
            while !h.is_empty() {
                let n = h[0] as usize;
                let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
                assert_eq!(h[1 + n], 7);
                let len = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
                headers.push((name, String::from_utf8(h[4 + n..4 + n + len].to_vec()).unwrap()));
                h = &h[4 + n + len..];
            }
            out.push((headers, serde_json::from_slice(&rest[12 + headers_len..total - 4]).unwrap()));
            rest = &rest[total..];
        }
        out
    }

    #[test]
    fn streams_binary_events_in_converse_stream_order() {
        let mut body = json!({"toolConfig": weather_tools(), "messages": [user("weather in Paris")]});
        let bedrock = Bedrock::new(vec![creds()]);
        let streamed = bedrock.answer(&request(STREAM, &body.to_string()), Cache::default()).ok().unwrap();
        body["messages"][0]["content"][0]["text"] = json!("weather in Paris");
        let whole = json_of(&send(CONVERSE, &body).ok().unwrap().whole);
        let bytes: Vec<u8> = streamed.events.unwrap().iter().flat_map(|e| bedrock.encode_event(e)).collect();
        let events = decode(&bytes);
        let names: Vec<&str> = events.iter().map(|(h, _)| h.iter().find(|(n, _)| n == ":event-type").unwrap().1.as_str()).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata",
            ]
        );
        assert!(events.iter().all(|(h, p)| h.contains(&(":message-type".into(), "event".into())) && p["p"].is_string()));
        let text: String = events.iter().filter_map(|(_, p)| p["delta"]["text"].as_str()).collect();
        assert_eq!(text, "Let me check.");
        let start = &events[5].1;
        assert_eq!(start["start"]["toolUse"]["name"], "get_weather");
        assert_eq!(start["contentBlockIndex"], 1);
        let input: String = events.iter().filter_map(|(_, p)| p["delta"]["toolUse"]["input"].as_str()).collect();
        assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), whole["output"]["message"]["content"][1]["toolUse"]["input"]);
        assert_eq!(events[10].1["stopReason"], "tool_use");
        assert_eq!(events[11].1["usage"], whole["usage"]);
        let error = decode(&bedrock.encode_event(&bedrock.stream_error(&request("/model/m/converse-stream", "{}"), 0)));
        assert!(error[0].0.contains(&(":exception-type".into(), "modelStreamErrorException".into())));
        assert!(error[0].0.contains(&(":message-type".into(), "exception".into())));
    }

    #[test]
    fn embeds_with_titan_and_cohere() {
        let titan = "/model/amazon.titan-embed-text-v2%3A0/invoke";
        let answer = send(titan, &json!({"inputText": "hello world", "dimensions": 256})).ok().unwrap();
        let v = json_of(&answer.whole);
        assert_eq!((v["embedding"].as_array().unwrap().len(), v["inputTextTokenCount"].as_u64()), (256, Some(2)));
        assert_eq!(
            v["embedding"],
            json_of(&send(titan, &json!({"inputText": "hello world", "dimensions": 256})).ok().unwrap().whole)["embedding"]
        );
        let (status, _, message) = rejection(send(titan, &json!({"inputText": "x", "texts": ["x"]})));
        assert_eq!((status, message.as_str()), (400, "texts: Extra inputs are not permitted"));
        let cohere = "/model/cohere.embed-english-v3/invoke";
        let v = json_of(&send(cohere, &json!({"texts": ["a", "b"], "input_type": "search_document"})).ok().unwrap().whole);
        assert_eq!((v["embeddings"].as_array().unwrap().len(), v["response_type"].as_str()), (2, Some("embeddings_floats")));
        assert!(v.get("meta").is_none());
        let (status, _, message) = rejection(send(cohere, &json!({"texts": ["a"]})));
        assert_eq!((status, message.as_str()), (400, "input_type: Field required"));
        let (status, _, _) = rejection(send("/model/anthropic.claude-v2/invoke", &json!({"prompt": "x"})));
        assert_eq!(status, 400);
    }

    #[test]
    fn unknown_paths_are_unknown_operations() {
        let (status, kind, _) = rejection(send("/model/m/converse/extra", &json!({})));
        assert_eq!((status, kind.as_str()), (404, "UnknownOperationException"));
        assert_eq!(operation("/model/a%3Ab%2Fc/invoke"), Some(("a:b/c".to_owned(), "invoke")));
    }
}
