//! The Gemini API (<https://ai.google.dev/api/generate-content>) and Vertex AI
//! (<https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference>),
//! which host the same GenerateContent body under different paths and auth:
//! strict request validation with Google's error shape, translation into the
//! neutral [`Conversation`], the script's reply as a GenerateContentResponse or
//! as `alt=sse` events, and deterministic embeddings (`batchEmbedContents`,
//! Vertex `predict`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::http::{Request, Response};
use crate::provider::{Answer, Provider};
use crate::script::{self, Args, Block, Cache, Conversation, Finish, KeyOrder, Reply, Role, Tool, ToolChoice, Turn};
use crate::validate::{self, Checked, Invalid, Obj, join};

pub struct Gemini {
    key: String,
    vertex_token: String,
}

/// Which API a request came in through, from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Api {
    Gemini,
    Vertex { location: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Generate,
    Stream,
    BatchEmbed,
    Predict,
    CountTokens,
}

#[derive(Debug, PartialEq, Eq)]
struct Target {
    api: Api,
    model: String,
    method: Method,
}

/// Whether `path` is a model method this module serves.
pub fn handles(path: &str) -> bool {
    path.contains("/models/")
        && [":generateContent", ":streamGenerateContent", ":batchEmbedContents", ":predict", ":countTokens"]
            .iter()
            .any(|m| path.ends_with(m))
}

fn target(path: &str) -> Option<Target> {
    let (prefix, rest) = path.rsplit_once("/models/")?;
    let (model, method) = rest.split_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let method = match method {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        "batchEmbedContents" => Method::BatchEmbed,
        "predict" => Method::Predict,
        "countTokens" => Method::CountTokens,
        _ => return None,
    };
    let api = match prefix.split('/').collect::<Vec<_>>().as_slice() {
        ["", "v1beta"] | ["", "v1"] => Api::Gemini,
        ["", "v1", "projects", project, "locations", location, "publishers", "google"] if !project.is_empty() && !location.is_empty() => {
            Api::Vertex { location: (*location).to_owned() }
        }
        _ => return None,
    };
    // `predict` is Vertex's embeddings method, `batchEmbedContents` the Gemini API's.
    match (&api, method) {
        (Api::Gemini, Method::Predict) | (Api::Vertex { .. }, Method::BatchEmbed) => None,
        _ => Some(Target { api, model: model.to_owned(), method }),
    }
}

impl Gemini {
    pub fn new(key: String, vertex_token: String) -> Self {
        Gemini { key, vertex_token }
    }

    fn authorize(&self, request: &Request, api: &Api) -> Result<(), Response> {
        match api {
            Api::Gemini => match request.header("x-goog-api-key") {
                None => Err(error_response(403, "Method doesn't allow unregistered callers (callers without established identity).")),
                Some(key) if key == self.key => Ok(()),
                Some(_) => Err(with_reason(error_response(400, "API key not valid. Please pass a valid API key."), "API_KEY_INVALID")),
            },
            Api::Vertex { location } => authorize_vertex(request, &self.vertex_token, location),
        }
    }
}

/// Vertex AI's checks, whichever publisher serves the model: the OAuth access token, and the
/// location's own host.
pub fn authorize_vertex(request: &Request, vertex_token: &str, location: &str) -> Result<(), Response> {
    let token = request.header("authorization").and_then(|value| value.strip_prefix("Bearer "));
    if token != Some(vertex_token) {
        return Err(error_response(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ));
    }
    // Tollgate sets :authority; Vertex serves each location on its own host.
    let expected =
        if location == "global" { "aiplatform.googleapis.com".to_owned() } else { format!("{location}-aiplatform.googleapis.com") };
    match request.header("host") {
        Some(host) if host != expected => {
            Err(error_response(400, &format!("Host {host} does not serve location {location}; use {expected}.")))
        }
        _ => Ok(()),
    }
}

impl Provider for Gemini {
    fn error(&self, status: u16, message: &str) -> Response {
        error_response(status, message)
    }

    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        sse(&json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}))
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        let Some(target) = target(&request.path) else {
            return Err(error_response(404, &format!("The requested URL {} was not found on this server.", request.path)));
        };
        self.authorize(request, &target.api)?;
        let invalid = |invalid: Invalid| error_response(400, &invalid.to_string());
        match target.method {
            Method::Generate | Method::Stream => {
                if target.method == Method::Stream && request.query_param("alt").as_deref() != Some("sse") {
                    return Err(error_response(400, "The mock only streams server-sent events: add alt=sse."));
                }
                let parsed = parse(&request.body, cache).map_err(invalid)?;
                check_thought_signatures(&request.body, &target.model).map_err(invalid)?;
                let thoughts = thinking_config(&request.body, &target.model).map_err(invalid)?;
                if let Some(reason) = request.header("x-mock-block-reason") {
                    return Ok(blocked(&target, &parsed, reason));
                }
                let reply = script::reply(&parsed.conversation);
                Ok(render(&target, &parsed, reply, thoughts))
            }
            Method::BatchEmbed => batch_embed(&request.body, &target.model).map_err(invalid),
            Method::CountTokens => count_tokens(&request.body, &target, cache).map_err(invalid),
            Method::Predict => predict(&request.body).map_err(invalid),
        }
    }
}

/// google.rpc status names by HTTP status (<https://cloud.google.com/apis/design/errors>).
fn rpc_status(status: u16) -> &'static str {
    match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

pub fn error_response(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"error": {"code": status, "message": message, "status": rpc_status(status)}}))
}

/// Adds the `google.rpc.ErrorInfo` detail Google attaches to key errors.
fn with_reason(response: Response, reason: &str) -> Response {
    let mut body: Value = serde_json::from_slice(&response.body).expect("error bodies are JSON");
    body["error"]["details"] = json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}]);
    Response::json(response.status, &body)
}

const TOP_LEVEL_FIELDS: &[&str] =
    &["contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent", "labels"];

const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
];

const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

const TYPES: &[&str] = &["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"];

/// Google's wording for a field the schema does not have.
fn unknown(obj: &Obj, allowed: &[&str]) -> Checked<()> {
    obj.only(allowed).map_err(|invalid| {
        let name = invalid.field.rsplit('.').next().unwrap_or_default().to_owned();
        Invalid::new(invalid.field, format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field."))
    })
}

#[derive(Debug)]
struct Parsed {
    model_json: bool,
    /// The response schema, for answers in JSON mode.
    response_schema: Option<(Value, Vec<String>)>,
    conversation: Conversation,
}

fn parse(raw: &[u8], cache: Cache) -> Checked<Parsed> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    unknown(&body, TOP_LEVEL_FIELDS)?;
    let system = match body.get("systemInstruction") {
        Some(value) => {
            let instruction = Obj::new(value, "systemInstruction")?;
            unknown(&instruction, &["role", "parts"])?;
            let mut texts = Vec::new();
            for (index, item) in instruction.non_empty_array("parts")?.iter().enumerate() {
                let part = Obj::new(item, join(&instruction.path("parts"), index))?;
                unknown(&part, &["text"])?;
                texts.push(part.string("text")?.to_owned());
            }
            texts
        }
        None => Vec::new(),
    };
    let turns = contents(body.non_empty_array("contents")?)?;
    let tools = tools(&body, raw)?;
    let tool_choice = tool_config(&body, &tools)?;
    let config = match body.get("generationConfig") {
        Some(value) => Some(Obj::new(value, "generationConfig")?),
        None => None,
    };
    let mut max_tokens = None;
    let mut stop = Vec::new();
    let mut model_json = false;
    let mut response_schema = None;
    if let Some(config) = &config {
        unknown(config, GENERATION_FIELDS)?;
        config.opt_number("temperature", 0.0..=2.0)?;
        config.opt_number("topP", 0.0..=1.0)?;
        config.opt_number("presencePenalty", -2.0..=2.0)?;
        config.opt_number("frequencyPenalty", -2.0..=2.0)?;
        if config.get("seed").is_some_and(|seed| !seed.is_i64()) {
            return Err(Invalid::new(config.path("seed"), "Invalid value: expected an int32"));
        }
        if config.opt_positive_int("candidateCount")?.is_some_and(|count| count > 8) {
            return Err(Invalid::new(config.path("candidateCount"), "must be at most 8"));
        }
        max_tokens = config.opt_positive_int("maxOutputTokens")?;
        let path = config.path("stopSequences");
        let items = config.opt_array("stopSequences")?.unwrap_or_default();
        if items.len() > 5 {
            return Err(Invalid::new(path, "at most 5 stop sequences are allowed"));
        }
        for (index, item) in items.iter().enumerate() {
            stop.push(validate::string(item, &join(&path, index))?.to_owned());
        }
        let mime = config.opt_string("responseMimeType")?;
        if let Some(mime) = mime
            && !["text/plain", "application/json", "text/x.enum"].contains(&mime)
        {
            return Err(Invalid::new(config.path("responseMimeType"), format!("unsupported mime type {mime}")));
        }
        model_json = mime == Some("application/json");
        if let Some(schema) = config.get("responseSchema") {
            if mime != Some("application/json") && mime != Some("text/x.enum") {
                return Err(Invalid::new(config.path("responseSchema"), "only supported when responseMimeType is application/json"));
            }
            check_schema(schema, &config.path("responseSchema"))?;
            let order = serde_json::from_slice::<SchemaOrders>(raw)
                .ok()
                .and_then(|o| o.generation_config)
                .and_then(|c| c.response_schema)
                .and_then(|s| s.properties)
                .map_or_else(Vec::new, |keys| keys.0);
            response_schema = Some((schema.clone(), order));
        }
    }
    let cache = Cache { read: cache.read, write: 0 };
    Ok(Parsed { model_json, response_schema, conversation: Conversation { system, turns, tools, tool_choice, max_tokens, stop, cache } })
}

fn contents(items: &[Value]) -> Checked<Vec<Turn>> {
    let mut turns: Vec<Turn> = Vec::new();
    // Names of the function calls in the previous model turn, not yet answered.
    let mut open_calls: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let content = Obj::new(item, join("contents", index))?;
        unknown(&content, &["role", "parts"])?;
        let role = match content.string("role")? {
            "user" => Role::User,
            "model" => Role::Assistant,
            other => return Err(Invalid::new(content.path("role"), format!("Please use a valid role: user, model (got {other})."))),
        };
        match turns.last() {
            None if role != Role::User => {
                return Err(Invalid::new(content.path("role"), "First content should be with role 'user'."));
            }
            Some(previous) if previous.role == role => {
                return Err(Invalid::new(content.path("role"), "Please ensure that multiturn requests alternate between user and model."));
            }
            _ => {}
        }
        let mut blocks = Vec::new();
        let mut calls = Vec::new();
        let mut answered = Vec::new();
        for (at, item) in content.non_empty_array("parts")?.iter().enumerate() {
            let part = Obj::new(item, join(&content.path("parts"), at))?;
            match part_block(&part, role)? {
                PartIn::Block(block) => blocks.push(block),
                PartIn::Call(name, block) => {
                    calls.push(name);
                    blocks.push(block);
                }
                PartIn::Response(name, block) => {
                    let Some(open) = open_calls.iter().position(|call| *call == name) else {
                        return Err(Invalid::new(
                            part.path("functionResponse"),
                            format!("function response {name} does not answer a function call of the previous model turn"),
                        ));
                    };
                    open_calls.remove(open);
                    answered.push(name);
                    blocks.push(block);
                }
            }
        }
        if !open_calls.is_empty() {
            return Err(Invalid::new(
                content.path("parts"),
                "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.",
            ));
        }
        open_calls = calls;
        turns.push(Turn { role, blocks });
    }
    Ok(turns)
}

enum PartIn {
    Block(Block),
    Call(String, Block),
    Response(String, Block),
}

fn part_block(part: &Obj, role: Role) -> Checked<PartIn> {
    unknown(part, &["text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature"])?;
    let data: Vec<&str> =
        ["text", "inlineData", "fileData", "functionCall", "functionResponse"].into_iter().filter(|key| part.get(key).is_some()).collect();
    let [kind] = data.as_slice() else {
        let field = part.path("");
        let field = field.strip_suffix('.').unwrap_or(&field);
        return Err(Invalid::new(field, "a part must hold exactly one of text, inlineData, fileData, functionCall, functionResponse"));
    };
    match *kind {
        "text" => Ok(PartIn::Block(Block::Text(part.string("text")?.to_owned()))),
        "inlineData" => {
            let blob = part.object("inlineData")?;
            unknown(&blob, &["mimeType", "data"])?;
            let mime = blob.non_empty_string("mimeType")?;
            blob.non_empty_string("data")?;
            Ok(PartIn::Block(if mime.starts_with("image/") { Block::Image } else { Block::Text(String::new()) }))
        }
        "fileData" => {
            let file = part.object("fileData")?;
            unknown(&file, &["mimeType", "fileUri"])?;
            let mime = file.non_empty_string("mimeType")?;
            let uri = file.non_empty_string("fileUri")?;
            if !uri.starts_with("https://") && !uri.starts_with("http://") && !uri.starts_with("gs://") {
                return Err(Invalid::new(file.path("fileUri"), "Unsupported file uri"));
            }
            Ok(PartIn::Block(if mime.starts_with("image/") { Block::Image } else { Block::Text(String::new()) }))
        }
        "functionCall" => {
            if role != Role::Assistant {
                return Err(Invalid::new(part.path("functionCall"), "function calls are only allowed in model turns"));
            }
            let call = part.object("functionCall")?;
            unknown(&call, &["id", "name", "args"])?;
            let name = validate::tool_name(call.required("name")?, &call.path("name"), 64)?.to_owned();
            let args = match call.get("args") {
                Some(args) => {
                    Obj::new(args, call.path("args"))?;
                    args.to_string()
                }
                None => "{}".to_owned(),
            };
            Ok(PartIn::Call(name.clone(), Block::ToolCall { name, args }))
        }
        _ => {
            if role != Role::User {
                return Err(Invalid::new(part.path("functionResponse"), "function responses are only allowed in user turns"));
            }
            let response = part.object("functionResponse")?;
            unknown(&response, &["id", "name", "response"])?;
            let name = response.non_empty_string("name")?.to_owned();
            let value = response.required("response")?;
            let object = Obj::new(value, response.path("response"))?;
            // A lone `content` string is the tool's text; anything else is its JSON.
            let text = match (value.as_object().map(Map::len), object.get("content")) {
                (Some(1), Some(Value::String(text))) => text.clone(),
                _ => value.to_string(),
            };
            Ok(PartIn::Response(name, Block::ToolResult { text, images: 0 }))
        }
    }
}

// ---- thinking (https://ai.google.dev/gemini-api/docs/thinking) --------------------------------

/// What the model thinks, as a thought summary.
const THOUGHT: &str = "Thinking it over.";

/// `generationConfig.thinkingConfig` as Gemini checks it: a budget for 2.5 models within each
/// one's range, a level for Gemini 3 models (Pro takes LOW and HIGH), never both. Whether the
/// answer includes thought summaries.
fn thinking_config(raw: &[u8], model: &str) -> Checked<bool> {
    let body = validate::parse_body(raw)?;
    let Some(config) = body.get("generationConfig").and_then(|c| c.get("thinkingConfig")) else { return Ok(false) };
    let config = Obj::new(config, "generationConfig.thinkingConfig")?;
    unknown(&config, &["thinkingBudget", "thinkingLevel", "includeThoughts"])?;
    let include = config.opt_bool("includeThoughts")?.unwrap_or(false);
    let gemini_3 = model.starts_with("gemini-3");
    match (config.get("thinkingBudget"), config.opt_string("thinkingLevel")?) {
        (Some(_), Some(_)) => {
            Err(Invalid::standalone(config.path("thinkingLevel"), "You can only set only one of thinking budget and thinking level."))
        }
        (None, Some(level)) => {
            let levels: &[&str] = match (gemini_3, model.contains("-pro")) {
                (false, _) => {
                    return Err(Invalid::standalone(config.path("thinkingLevel"), "Thinking level is not supported for this model."));
                }
                (true, true) => &["LOW", "HIGH"],
                (true, false) => &["MINIMAL", "LOW", "MEDIUM", "HIGH"],
            };
            if !levels.contains(&level) {
                return Err(Invalid::new(
                    config.path("thinkingLevel"),
                    format!("Invalid value \"{level}\"; this model takes {}", levels.join(", ")),
                ));
            }
            Ok(include)
        }
        (Some(budget), None) => {
            let Some(budget) = budget.as_i64() else {
                return Err(Invalid::new(config.path("thinkingBudget"), "Invalid value: expected an int32"));
            };
            let range = if model.contains("flash-lite") {
                512..=24576
            } else if model.contains("flash") {
                0..=24576
            } else {
                128..=32768
            };
            if budget == 0 && !range.contains(&0) {
                return Err(Invalid::standalone(
                    config.path("thinkingBudget"),
                    "Budget 0 is invalid. This model only works in thinking mode.",
                ));
            }
            if budget != -1 && budget != 0 && !range.contains(&budget) {
                return Err(Invalid::standalone(
                    config.path("thinkingBudget"),
                    format!(
                        "The thinking budget {budget} is invalid. Please choose a value between {} and {}.",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            Ok(include && budget != 0)
        }
        (None, None) => Ok(include),
    }
}

// ---- thought signatures (https://ai.google.dev/gemini-api/docs/thought-signatures) -------------

/// Gemini 3 models sign the first function call of each answer and refuse a conversation whose
/// current turn holds a model step without that signature.
fn signs_calls(model: &str) -> bool {
    model.starts_with("gemini-3")
}

/// What Google documents as the stand-in for a signature the caller does not have.
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

/// Every signature the mock issues starts so, with characters that differ between standard and
/// URL-safe base64, and is long, as real ones are.
const SIGNATURE_PREFIX: &str = "TW9ja1NpZ24+/";

fn issue_signature() -> String {
    // 1,022 base64 digits, the last one `A` so that the padding bits are zero.
    format!("{SIGNATURE_PREFIX}{}{:08}A==", "A".repeat(1000), script::next_id() % 100_000_000)
}

/// proto3 JSON reads `bytes` as standard or URL-safe base64, padded or not.
fn is_base64(s: &str) -> bool {
    let data = s.trim_end_matches('=');
    let padding = s.len() - data.len();
    padding <= 2
        && data.len() % 4 != 1
        && (padding == 0 || s.len().is_multiple_of(4))
        && data.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

fn check_thought_signatures(raw: &[u8], model: &str) -> Checked<()> {
    let body = validate::parse_body(raw)?;
    let contents = body.get("contents").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let parts = |content: &'_ Value| content.get("parts").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, content) in contents.iter().enumerate() {
        for (j, part) in parts(content).iter().enumerate() {
            let Some(signature) = part.get("thoughtSignature") else { continue };
            if !signature.as_str().is_some_and(is_base64) {
                return Err(Invalid::standalone(
                    format!("contents.{i}.parts.{j}.thoughtSignature"),
                    format!(
                        "Invalid value at 'contents[{i}].parts[{j}].thought_signature' (TYPE_BYTES), Base64 decoding failed for {signature}"
                    ),
                ));
            }
        }
    }
    if !signs_calls(model) {
        return Ok(());
    }
    // The current turn began with the last user content that is not function responses alone.
    let is_prompt = |c: &Value| c["role"] == "user" && parts(c).iter().any(|p| p.get("functionResponse").is_none());
    let start = contents.iter().rposition(is_prompt).unwrap_or(0);
    for (i, content) in contents.iter().enumerate().skip(start).filter(|(_, c)| c["role"] == "model") {
        let parts = parts(content);
        let Some((j, first)) = parts.iter().enumerate().find(|(_, p)| p.get("functionCall").is_some()) else { continue };
        let path = format!("contents.{i}.parts.{j}");
        match first.get("thoughtSignature").and_then(Value::as_str) {
            None => {
                let name = first["functionCall"]["name"].as_str().unwrap_or_default();
                return Err(Invalid::standalone(
                    path,
                    format!(
                        "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:{name}` , position {}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                        i + 1
                    ),
                ));
            }
            Some(s) if s == PLACEHOLDER_SIGNATURE || s.starts_with(SIGNATURE_PREFIX) => {}
            Some(_) => return Err(Invalid::standalone(path, "Corrupted thought signature.")),
        }
    }
    Ok(())
}

fn check_schema(value: &Value, path: &str) -> Checked<()> {
    let schema = Obj::new(value, path)?;
    unknown(&schema, SCHEMA_FIELDS)?;
    if let Some(kind) = schema.opt_string("type")?
        && !TYPES.contains(&kind)
    {
        return Err(Invalid::new(schema.path("type"), format!("Invalid value at '{path}.type', \"{kind}\"")));
    }
    if let Some(properties) = schema.get("properties") {
        let map = properties.as_object().ok_or_else(|| Invalid::new(schema.path("properties"), "must be an object"))?;
        if map.is_empty() && schema.opt_string("type")? == Some("OBJECT") {
            return Err(Invalid::new(schema.path("properties"), "should be non-empty for OBJECT type"));
        }
        for (key, property) in map {
            check_schema(property, &join(&schema.path("properties"), key))?;
        }
    }
    if let Some(items) = schema.get("items") {
        check_schema(items, &schema.path("items"))?;
    }
    for (index, option) in schema.opt_array("anyOf")?.unwrap_or_default().iter().enumerate() {
        check_schema(option, &join(&schema.path("anyOf"), index))?;
    }
    for (index, value) in schema.opt_array("enum")?.unwrap_or_default().iter().enumerate() {
        validate::string(value, &join(&schema.path("enum"), index))?;
    }
    Ok(())
}

/// Gemini writes types in capitals; the script reads JSON Schema's lowercase ones.
fn script_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            if let Some(Value::String(kind)) = property.get_mut("type") {
                *kind = kind.to_lowercase();
            }
        }
    }
    schema
}

fn tools(body: &Obj, raw: &[u8]) -> Checked<Vec<Tool>> {
    let Some(items) = body.opt_array("tools")? else {
        return Ok(Vec::new());
    };
    let orders = serde_json::from_slice::<ToolOrders>(raw).map(|orders| orders.tools.unwrap_or_default()).unwrap_or_default();
    let mut seen = HashSet::new();
    let mut tools = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let tool = Obj::new(item, join("tools", index))?;
        unknown(&tool, &["functionDeclarations", "googleSearch", "codeExecution", "urlContext"])?;
        let path = tool.path("functionDeclarations");
        for (at, declaration) in tool.opt_array("functionDeclarations")?.unwrap_or_default().iter().enumerate() {
            let declaration = Obj::new(declaration, join(&path, at))?;
            unknown(&declaration, &["name", "description", "parameters", "response", "behavior"])?;
            let name = validate::tool_name(declaration.required("name")?, &declaration.path("name"), 64)?;
            if !seen.insert(name.to_owned()) {
                return Err(Invalid::new(declaration.path("name"), "Duplicate function declaration"));
            }
            declaration.opt_string("description")?;
            let schema = match declaration.get("parameters") {
                Some(parameters) => {
                    check_schema(parameters, &declaration.path("parameters"))?;
                    script_schema(parameters)
                }
                None => Value::Null,
            };
            let order = orders
                .get(index)
                .and_then(|order| order.function_declarations.as_ref())
                .and_then(|declarations| declarations.get(at))
                .and_then(|declaration| declaration.parameters.as_ref())
                .and_then(|parameters| parameters.properties.as_ref())
                .map_or(&[][..], |keys| &keys.0);
            tools.push(Tool::new(name.to_owned(), &schema, order));
        }
    }
    Ok(tools)
}

/// Schemas re-read for their property order (see [`KeyOrder`]).
#[derive(Deserialize)]
struct ToolOrders {
    tools: Option<Vec<ToolOrder>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolOrder {
    function_declarations: Option<Vec<DeclarationOrder>>,
}

#[derive(Deserialize)]
struct DeclarationOrder {
    parameters: Option<SchemaOrder>,
}

#[derive(Deserialize)]
struct SchemaOrder {
    properties: Option<KeyOrder>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaOrders {
    generation_config: Option<ConfigOrder>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigOrder {
    response_schema: Option<SchemaOrder>,
}

fn tool_config(body: &Obj, tools: &[Tool]) -> Checked<ToolChoice> {
    let Some(value) = body.get("toolConfig") else {
        return Ok(ToolChoice::Auto);
    };
    let config = Obj::new(value, "toolConfig")?;
    unknown(&config, &["functionCallingConfig"])?;
    let calling = config.object("functionCallingConfig")?;
    unknown(&calling, &["mode", "allowedFunctionNames"])?;
    let names = calling.opt_array("allowedFunctionNames")?.unwrap_or_default();
    let mode = calling.opt_string("mode")?.unwrap_or("AUTO");
    if !names.is_empty() && mode != "ANY" {
        return Err(Invalid::new(calling.path("allowedFunctionNames"), "allowed_function_names is only allowed when mode is ANY"));
    }
    let mut allowed = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let name = validate::string(name, &join(&calling.path("allowedFunctionNames"), index))?;
        if !tools.iter().any(|tool| tool.name == name) {
            return Err(Invalid::new(calling.path("allowedFunctionNames"), format!("{name} is not a declared function")));
        }
        allowed.push(name.to_owned());
    }
    match mode {
        "AUTO" | "VALIDATED" => Ok(ToolChoice::Auto),
        "NONE" => Ok(ToolChoice::None),
        "ANY" => Ok(match allowed.as_slice() {
            [one] => ToolChoice::Named(one.clone()),
            _ => ToolChoice::Required,
        }),
        other => Err(Invalid::new(calling.path("mode"), format!("Invalid value \"{other}\""))),
    }
}

// ---- responses -------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
    total_token_count: u64,
}

fn usage_out(usage: script::Usage, output: Option<u64>) -> UsageOut {
    let prompt = usage.prompt();
    UsageOut {
        prompt_token_count: prompt,
        candidates_token_count: output,
        cached_content_token_count: (usage.cache_read > 0).then_some(usage.cache_read),
        total_token_count: prompt + output.unwrap_or(0),
    }
}

/// JSON mode: the reply's text as a JSON value, shaped by the response schema when there is one.
fn json_text(parsed: &Parsed, text: &str) -> String {
    match &parsed.response_schema {
        Some((schema, order)) if schema.get("properties").is_some() => {
            let tool = Tool::new("response".to_owned(), &script_schema(schema), order);
            tool.sample_args().to_json()
        }
        _ => json!({"text": text}).to_string(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    candidates: [CandidateOut<'a>; 1],
    usage_metadata: UsageOut,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    parts: Vec<PartOut<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum PartOut<'a> {
    Text(&'a str),
    FunctionCall(CallOut<'a>),
    #[serde(untagged)]
    Thought {
        text: &'a str,
        thought: bool,
    },
    #[serde(untagged)]
    SignedCall {
        #[serde(rename = "functionCall")]
        function_call: CallOut<'a>,
        #[serde(rename = "thoughtSignature")]
        thought_signature: String,
    },
}

/// The function call part of an answer, signed where the model signs its calls.
fn call_part<'a>(target: &Target, call: &'a script::ToolCall) -> PartOut<'a> {
    let function_call = CallOut { name: &call.name, args: &call.args };
    if signs_calls(&target.model) {
        PartOut::SignedCall { function_call, thought_signature: issue_signature() }
    } else {
        PartOut::FunctionCall(function_call)
    }
}

/// `args` keeps the schema's property order, which `serde_json::Value` would sort.
#[derive(Serialize)]
struct CallOut<'a> {
    name: &'a str,
    args: &'a Args,
}

fn candidate<'a>(parts: Vec<PartOut<'a>>, finish_reason: Option<&'static str>) -> CandidateOut<'a> {
    let content = (!parts.is_empty()).then_some(ContentOut { parts, role: "model" });
    CandidateOut { content, finish_reason, index: 0 }
}

fn render(target: &Target, parsed: &Parsed, mut reply: Reply, thoughts: bool) -> Answer {
    if parsed.model_json && reply.tool_call.is_none() {
        reply.text = json_text(parsed, &reply.text);
        reply.usage.output = script::words(&reply.text);
    }
    let response_id = format!("mock-resp-{}", script::next_id());
    let finish = match reply.finish {
        Finish::EndTurn | Finish::StopSequence(_) | Finish::ToolUse => "STOP",
        Finish::MaxTokens => "MAX_TOKENS",
    };
    let mut parts = Vec::new();
    if thoughts {
        parts.push(PartOut::Thought { text: THOUGHT, thought: true });
    }
    if !reply.text.is_empty() {
        parts.push(PartOut::Text(&reply.text));
    }
    if let Some(call) = &reply.tool_call {
        parts.push(call_part(target, call));
    }
    let whole = ResponseOut {
        candidates: [candidate(parts, Some(finish))],
        usage_metadata: usage_out(reply.usage, Some(reply.usage.output)),
        model_version: &target.model,
        response_id: &response_id,
    };
    let events = (target.method == Method::Stream).then(|| stream_events(target, &response_id, &reply, finish, thoughts));
    Answer { whole: Response::json(200, &whole), events }
}

/// One event per word, then the function call, the last one with the finish reason and the
/// full usage; earlier events carry only the prompt count, as Gemini's do.
fn stream_events(target: &Target, response_id: &str, reply: &Reply, finish: &'static str, thoughts: bool) -> Vec<String> {
    let thought = thoughts.then_some(PartOut::Thought { text: THOUGHT, thought: true });
    let mut pieces: Vec<PartOut> = thought.into_iter().chain(script::word_pieces(&reply.text).into_iter().map(PartOut::Text)).collect();
    if let Some(call) = &reply.tool_call {
        pieces.push(call_part(target, call));
    }
    if pieces.is_empty() {
        pieces.push(PartOut::Text(""));
    }
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let done = index == last;
            let event = ResponseOut {
                candidates: [candidate(vec![part], done.then_some(finish))],
                usage_metadata: usage_out(reply.usage, done.then_some(reply.usage.output)),
                model_version: &target.model,
                response_id,
            };
            sse(&event)
        })
        .collect()
}

fn blocked(target: &Target, parsed: &Parsed, reason: &str) -> Answer {
    let usage = script::reply(&parsed.conversation).usage;
    let body = json!({
        "promptFeedback": {"blockReason": reason, "safetyRatings": []},
        "usageMetadata": usage_out(usage, None),
        "modelVersion": target.model,
        "responseId": format!("mock-resp-{}", script::next_id()),
    });
    let events = (target.method == Method::Stream).then(|| vec![sse(&body)]);
    Answer { whole: Response::json(200, &body), events }
}

/// Gemini ends its SSE events with CRLF pairs.
fn sse(payload: &impl Serialize) -> String {
    format!("data: {}\r\n\r\n", serde_json::to_string(payload).expect("events serialize"))
}

// ---- embeddings ------------------------------------------------------------------------------

/// A vector that depends only on the text; multiples of 1/8 are exact in f32, so base64 and
/// float answers can be compared exactly.
fn vector(text: &str, dimensions: u64) -> Vec<f64> {
    let seed: u64 = text.bytes().map(u64::from).sum();
    (0..dimensions).map(|i| ((seed + 7 * i) % 16) as f64 / 8.0 - 1.0).collect()
}

fn dimensions(obj: &Obj, key: &str) -> Checked<u64> {
    Ok(obj.opt_positive_int(key)?.unwrap_or(8))
}

/// `countTokens` (https://ai.google.dev/api/tokens#method:-models.counttokens): the Gemini API
/// takes the whole request in `generateContentRequest` (with its model) or bare `contents`;
/// Vertex AI takes the request's fields at the top. The count is the one `generateContent`
/// would report as `promptTokenCount`.
fn count_tokens(raw: &[u8], target: &Target, cache: Cache) -> Checked<Answer> {
    let body = validate::parse_body(raw)?;
    let outer = Obj::new(&body, "")?;
    let request = match (&target.api, outer.get("generateContentRequest")) {
        (Api::Gemini, Some(inner)) => {
            unknown(&outer, &["generateContentRequest"])?;
            let inner_obj = Obj::new(inner, "generateContentRequest")?;
            let named = inner_obj.string("model")?;
            if named != format!("models/{}", target.model) {
                return Err(Invalid::new(
                    inner_obj.path("model"),
                    format!("Model {named} does not match the URL model models/{}", target.model),
                ));
            }
            let mut inner = inner.clone();
            if let Some(map) = inner.as_object_mut() {
                map.remove("model");
            }
            serde_json::to_vec(&inner).map_err(|e| Invalid::new("generateContentRequest", e.to_string()))?
        }
        (Api::Gemini, None) => {
            unknown(&outer, &["contents"])?;
            raw.to_vec()
        }
        (Api::Vertex { .. }, _) => {
            unknown(&outer, &["contents", "systemInstruction", "tools", "generationConfig"])?;
            raw.to_vec()
        }
    };
    let parsed = parse(&request, cache)?;
    let total = script::input_tokens(&parsed.conversation);
    Ok(Answer { whole: Response::json(200, &json!({"totalTokens": total})), events: None })
}

fn batch_embed(raw: &[u8], model: &str) -> Checked<Answer> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    unknown(&body, &["requests"])?;
    let mut embeddings = Vec::new();
    for (index, item) in body.non_empty_array("requests")?.iter().enumerate() {
        let request = Obj::new(item, join("requests", index))?;
        unknown(&request, &["model", "content", "taskType", "title", "outputDimensionality"])?;
        let named = request.string("model")?;
        if named != format!("models/{model}") {
            return Err(Invalid::new(request.path("model"), format!("Model {named} does not match the URL model models/{model}")));
        }
        let content = request.object("content")?;
        unknown(&content, &["role", "parts"])?;
        let mut text = String::new();
        for (at, part) in content.non_empty_array("parts")?.iter().enumerate() {
            let part = Obj::new(part, join(&content.path("parts"), at))?;
            unknown(&part, &["text"])?;
            text.push_str(part.string("text")?);
        }
        embeddings.push(json!({"values": vector(&text, dimensions(&request, "outputDimensionality")?)}));
    }
    Ok(Answer { whole: Response::json(200, &json!({"embeddings": embeddings})), events: None })
}

fn predict(raw: &[u8]) -> Checked<Answer> {
    let body = validate::parse_body(raw)?;
    let body = Obj::new(&body, "")?;
    unknown(&body, &["instances", "parameters"])?;
    let dims = match body.get("parameters") {
        Some(value) => {
            let parameters = Obj::new(value, "parameters")?;
            unknown(&parameters, &["outputDimensionality", "autoTruncate"])?;
            dimensions(&parameters, "outputDimensionality")?
        }
        None => 8,
    };
    let mut predictions = Vec::new();
    let mut characters = 0;
    for (index, item) in body.non_empty_array("instances")?.iter().enumerate() {
        let instance = Obj::new(item, join("instances", index))?;
        unknown(&instance, &["content", "task_type", "title"])?;
        let text = instance.non_empty_string("content")?;
        characters += text.chars().count();
        predictions.push(json!({"embeddings": {
            "values": vector(text, dims),
            "statistics": {"token_count": script::words(text), "truncated": false},
        }}));
    }
    let body = json!({"predictions": predictions, "metadata": {"billableCharacterCount": characters}});
    Ok(Answer { whole: Response::json(200, &body), events: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "gkey";
    const TOKEN: &str = "vtoken";

    fn request(path: &str, body: &str, headers: &[(&str, &str)]) -> Request {
        let mut raw = format!("POST {path} HTTP/1.1\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    fn send(path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Answer, Response> {
        send_text(path, &body.to_string(), headers)
    }

    fn send_text(path: &str, body: &str, headers: &[(&str, &str)]) -> Result<Answer, Response> {
        Gemini::new(KEY.to_owned(), TOKEN.to_owned()).answer(&request(path, body, headers), Cache::default())
    }

    const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
    const AUTH: &[(&str, &str)] = &[("x-goog-api-key", KEY)];

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    fn rejection(result: Result<Answer, Response>) -> (u16, Value) {
        let response = result.err().expect("the request should be rejected");
        (response.status, json_of(&response))
    }

    fn hi() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    }

    #[test]
    fn routes_gemini_and_vertex_paths() {
        assert!(handles(GENERATE));
        assert!(handles("/v1/projects/p/locations/us-central1/publishers/google/models/m:streamGenerateContent"));
        assert!(!handles("/v1/chat/completions"));
        let vertex = target("/v1/projects/p/locations/global/publishers/google/models/m:predict").unwrap();
        assert_eq!(vertex.api, Api::Vertex { location: "global".to_owned() });
        assert_eq!(vertex.method, Method::Predict);
        assert!(target("/v1beta/models/m:predict").is_none());
        assert!(target("/v1beta/models/a/b:generateContent").is_none());
    }

    #[test]
    fn answers_and_streams_the_same_reply() {
        let whole = json_of(&send(GENERATE, &hi(), AUTH).ok().unwrap().whole);
        assert_eq!(whole["candidates"][0]["content"]["parts"], json!([{"text": "Hello! You said: hi"}]));
        assert_eq!(whole["candidates"][0]["finishReason"], "STOP");
        assert_eq!(whole["usageMetadata"], json!({"promptTokenCount": 1, "candidatesTokenCount": 4, "totalTokenCount": 5}));
        let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
        let events = send(path, &hi(), AUTH).ok().unwrap().events.unwrap();
        assert_eq!(events.len(), 4);
        assert!(events.iter().all(|e| e.starts_with("data: {") && e.ends_with("}\r\n\r\n")));
        let last: Value = serde_json::from_str(events[3].trim_start_matches("data: ").trim_end()).unwrap();
        assert_eq!(last["usageMetadata"], whole["usageMetadata"]);
        assert_eq!(rejection(send("/v1beta/models/m:streamGenerateContent", &hi(), AUTH)).0, 400);
    }

    #[test]
    fn checks_keys_and_tokens_like_google() {
        let (status, error) = rejection(send(GENERATE, &hi(), &[("x-goog-api-key", "nope")]));
        assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")));
        assert_eq!(error["error"]["details"][0]["reason"], "API_KEY_INVALID");
        assert_eq!(rejection(send(GENERATE, &hi(), &[])).0, 403);
        let vertex = "/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent";
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(rejection(send(vertex, &hi(), AUTH)).0, 401);
        assert!(send(vertex, &hi(), &[("authorization", &bearer), ("host", "us-central1-aiplatform.googleapis.com")]).is_ok());
        assert_eq!(rejection(send(vertex, &hi(), &[("authorization", &bearer), ("host", "aiplatform.googleapis.com")])).0, 400);
    }

    #[test]
    fn rejects_invalid_bodies_naming_the_field() {
        let call = json!({"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]});
        let cases = [
            (json!({"contents": [], "model": "x"}), "model"),
            (json!({"contents": []}), "contents"),
            (json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}), "contents.0.role"),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}]}),
                "contents.1.role",
            ),
            (json!({"contents": [{"role": "user", "parts": []}]}), "contents.0.parts"),
            (json!({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]}), "contents.0.parts.0"),
            (json!({"contents": [{"role": "user", "parts": [{"image": "a"}]}]}), "contents.0.parts.0.image"),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}, call, {"role": "user", "parts": [{"functionResponse": {"name": "g", "response": {}}}]}]}),
                "contents.2.parts.0.functionResponse",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}, call, {"role": "user", "parts": [{"text": "no answer"}]}]}),
                "contents.2.parts",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}, call, {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "s"}}]}]}),
                "contents.2.parts.0.functionResponse.response",
            ),
            (json!({"contents": hi()["contents"], "generationConfig": {"max_tokens": 5}}), "generationConfig.max_tokens"),
            (
                json!({"contents": hi()["contents"], "generationConfig": {"responseSchema": {"type": "OBJECT"}}}),
                "generationConfig.responseSchema",
            ),
            (
                json!({"contents": hi()["contents"], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object"}}]}]}),
                "tools.0.functionDeclarations.0.parameters.type",
            ),
            (
                json!({"contents": hi()["contents"], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {}}}]}]}),
                "tools.0.functionDeclarations.0.parameters.properties",
            ),
            (
                json!({"contents": hi()["contents"], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "additionalProperties": false}}]}]}),
                "tools.0.functionDeclarations.0.parameters.additionalProperties",
            ),
            (
                json!({"contents": hi()["contents"], "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}}}),
                "toolConfig.functionCallingConfig.allowedFunctionNames",
            ),
        ];
        for (body, field) in cases {
            let (status, error) = rejection(send(GENERATE, &body, AUTH));
            assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")), "{body}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("{field}:")), "{body}: {message}");
        }
    }

    #[test]
    fn calls_tools_and_reads_function_responses() {
        // Written out by hand: `json!` would sort the schema's properties.
        let body = r#"{"contents": [{"role": "user", "parts": [{"text": "weather in Paris"}]}],
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "OBJECT",
                    "properties": {"unit": {"type": "STRING"}, "city": {"type": "STRING"}}}}]}]}"#;
        let answer = send_text(GENERATE, body, AUTH).ok().unwrap();
        let raw = String::from_utf8(answer.whole.body.clone()).unwrap();
        assert!(raw.contains(r#""args":{"unit":"Paris","city":"Paris"}"#), "{raw}");
        let whole = json_of(&answer.whole);
        assert_eq!(whole["candidates"][0]["content"]["parts"][1]["functionCall"]["name"], "get_weather");
        let follow_up = json!({"contents": [
            {"role": "user", "parts": [{"text": "weather in Paris"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]}]});
        let whole = json_of(&send(GENERATE, &follow_up, AUTH).ok().unwrap().whole);
        assert_eq!(whole["candidates"][0]["content"]["parts"][0]["text"], "Tool results: sunny");
    }

    #[test]
    fn gemini_3_signs_calls_and_wants_the_signature_back_in_the_current_turn() {
        const GEMINI_3: &str = "/v1beta/models/gemini-3-pro-preview:generateContent";
        let tools = json!([{"functionDeclarations": [{"name": "get_weather"}]}]);
        let ask = json!({"role": "user", "parts": [{"text": "weather?"}]});
        let whole = json_of(&send(GEMINI_3, &json!({"contents": [ask], "tools": tools}), AUTH).ok().unwrap().whole);
        let signed = &whole["candidates"][0]["content"]["parts"][1];
        let signature = signed["thoughtSignature"].as_str().unwrap().to_owned();
        assert!(signature.starts_with(SIGNATURE_PREFIX) && is_base64(&signature), "{signed}");
        let stream =
            send("/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse", &json!({"contents": [ask], "tools": tools}), AUTH);
        assert!(stream.ok().unwrap().events.unwrap().iter().any(|e| e.contains("\"thoughtSignature\":\"TW9ja1NpZ24+/")));
        let step = |signature: Option<&str>| {
            let mut call = json!({"functionCall": {"name": "get_weather", "args": {}}});
            if let Some(s) = signature {
                call["thoughtSignature"] = json!(s);
            }
            let answer =
                json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}]});
            json!({"contents": [ask, {"role": "model", "parts": [call]}, answer], "tools": tools})
        };
        assert!(send(GEMINI_3, &step(Some(&signature)), AUTH).is_ok());
        assert!(send(GEMINI_3, &step(Some(PLACEHOLDER_SIGNATURE)), AUTH).is_ok());
        let (status, error) = rejection(send(GEMINI_3, &step(None), AUTH));
        assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")));
        assert!(error["error"]["message"].as_str().unwrap().starts_with("Function call is missing a thought_signature"), "{error}");
        assert_eq!(rejection(send(GEMINI_3, &step(Some("c29tZXRoaW5n")), AUTH)).0, 400, "a signature the model never issued");
        assert_eq!(rejection(send(GEMINI_3, &step(Some("not base64!")), AUTH)).0, 400);
        // earlier turns and older models are not checked
        assert!(send(GENERATE, &step(None), AUTH).is_ok());
        let mut later = step(None);
        later["contents"].as_array_mut().unwrap().extend([json!({"role": "model", "parts": [{"text": "sunny"}]}), ask.clone()]);
        assert!(send(GEMINI_3, &later, AUTH).is_ok());
    }

    #[test]
    fn checks_thinking_config_per_model_and_answers_with_thoughts() {
        let with = |model: &str, config: Value| {
            let body = json!({"contents": hi()["contents"], "generationConfig": {"thinkingConfig": config}});
            send(&format!("/v1beta/models/{model}:generateContent"), &body, AUTH)
        };
        let whole = json_of(&with("gemini-2.5-flash", json!({"thinkingBudget": 1024, "includeThoughts": true})).ok().unwrap().whole);
        assert_eq!(whole["candidates"][0]["content"]["parts"][0], json!({"text": THOUGHT, "thought": true}));
        assert!(with("gemini-2.5-flash", json!({"thinkingBudget": 0})).is_ok());
        assert!(with("gemini-3-flash-preview", json!({"thinkingLevel": "MINIMAL"})).is_ok());
        assert!(with("gemini-3-pro-preview", json!({"thinkingLevel": "LOW"})).is_ok());
        let refused = [
            ("gemini-2.5-pro", json!({"thinkingBudget": 0})),
            ("gemini-2.5-flash", json!({"thinkingBudget": 30000})),
            ("gemini-2.5-flash", json!({"thinkingLevel": "LOW"})),
            ("gemini-3-pro-preview", json!({"thinkingLevel": "MINIMAL"})),
            ("gemini-3-flash-preview", json!({"thinkingLevel": "LOW", "thinkingBudget": 1024})),
            ("gemini-3-flash-preview", json!({"thinkingLevel": "low"})),
            ("gemini-2.5-flash", json!({"budget": 1})),
        ];
        for (model, config) in refused {
            assert_eq!(rejection(with(model, config.clone())).0, 400, "{model} {config}");
        }
    }

    #[test]
    fn embeds_deterministically() {
        let body = json!({"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3}]});
        let whole = json_of(&send("/v1beta/models/e:batchEmbedContents", &body, AUTH).ok().unwrap().whole);
        assert_eq!(whole, json!({"embeddings": [{"values": vector("a", 3)}]}));
        let wrong = json!({"requests": [{"model": "models/x", "content": {"parts": [{"text": "a"}]}}]});
        assert_eq!(rejection(send("/v1beta/models/e:batchEmbedContents", &wrong, AUTH)).0, 400);
        let bearer = format!("Bearer {TOKEN}");
        let path = "/v1/projects/p/locations/global/publishers/google/models/e:predict";
        let whole = json_of(&send(path, &json!({"instances": [{"content": "a b"}]}), &[("authorization", &bearer)]).ok().unwrap().whole);
        assert_eq!(whole["predictions"][0]["embeddings"]["statistics"]["token_count"], 2);
        assert_eq!(whole["predictions"][0]["embeddings"]["values"].as_array().unwrap().len(), 8);
    }
}
