//! The Cohere v2 chat request built from an OpenAI chat request.

use super::*;

#[derive(Serialize)]
pub(super) struct ChatBody<'r> {
    pub(super) model: &'r str,
    pub(super) messages: Vec<Turn<'r>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<ToolDef<'r>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) strict_tools: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_format: Option<ResponseFormatOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<&'r RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(super) enum Turn<'r> {
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
pub(super) enum ContentOut<'r> {
    Text(&'r str),
    Blocks(Vec<BlockOut<'r>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum BlockOut<'r> {
    Text { text: &'r str },
    ImageUrl { image_url: ImageOut<'r> },
}

#[derive(Serialize)]
pub(super) struct ImageOut<'r> {
    pub(super) url: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) detail: Option<&'r str>,
}

/// A tool call replayed to Cohere: OpenAI's shape, arguments as a JSON-encoded string.
#[derive(Serialize)]
pub(super) struct ToolCallReq<'r> {
    pub(super) id: &'r str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: FunctionReq<'r>,
}

#[derive(Serialize)]
pub(super) struct FunctionReq<'r> {
    pub(super) name: &'r str,
    pub(super) arguments: &'r str,
}

#[derive(Serialize)]
pub(super) struct ToolDef<'r> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) function: FunctionDef<'r>,
}

#[derive(Serialize)]
pub(super) struct FunctionDef<'r> {
    pub(super) name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'r str>,
    /// Cohere requires `parameters`; OpenAI lets a function omit them.
    pub(super) parameters: Schema<'r>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Schema<'r> {
    Given(&'r RawValue),
    NoParameters { r#type: &'static str, properties: NoProperties },
}

#[derive(Serialize)]
pub(super) struct NoProperties {}

#[derive(Serialize)]
pub(super) struct ResponseFormatOut<'r> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) json_schema: Option<&'r RawValue>,
}

/// OpenAI's `response_format.json_schema`: Cohere takes only the schema itself.
#[derive(Deserialize)]
pub(super) struct JsonSchemaSpec<'a> {
    #[serde(borrow, default)]
    pub(super) schema: Option<&'a RawValue>,
}

pub fn build_request(provider: &Provider, req: &ChatRequest, upstream_model: &str, edits: &mut Edits) -> Result<UpstreamRequest, ApiError> {
    Settings.unsupported(provider, req).resolve(edits)?;
    super::super::drop_metadata(req, edits);
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
    let body = crate::json::to_vec_sized(&body, req.body_len + 256)
        .map_err(|e| ApiError::internal(format!("could not encode the Cohere request: {e}")))?;
    Ok(UpstreamRequest::body(body))
}

pub(super) fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
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
    u
}

/// Cohere's ranges are narrower than OpenAI's: `temperature` 0–1, penalties 0–1.
pub(super) fn check_ranges(req: &ChatRequest) -> Result<(), ApiError> {
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
pub(super) fn tools<'r>(req: &'r ChatRequest) -> (Vec<ToolDef<'r>>, Option<&'static str>) {
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
pub(super) fn response_format<'r>(req: &'r ChatRequest) -> Result<Option<ResponseFormatOut<'r>>, ApiError> {
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

pub(super) fn convert_messages<'r>(req: &'r ChatRequest) -> Result<Vec<Turn<'r>>, ApiError> {
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

pub(super) fn content<'r>(i: usize, content: Option<&'r Content>, allowed: &[&str]) -> Result<ContentOut<'r>, ApiError> {
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

pub(super) fn block<'r>(p: &'r Part) -> BlockOut<'r> {
    match &p.image_url {
        Some(image) if &*p.kind == "image_url" => {
            BlockOut::ImageUrl { image_url: ImageOut { url: &image.url, detail: image.detail.as_deref() } }
        }
        _ => BlockOut::Text { text: p.text.as_deref().unwrap_or_default() },
    }
}

/// With tool calls, the assistant's text is the plan it wrote before calling them, which Cohere
/// takes back as `tool_plan` (see `translate_response`). An empty turn is left out.
pub(super) fn assistant<'r>(i: usize, m: &'r Message) -> Result<Option<Turn<'r>>, ApiError> {
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

pub(super) fn assistant_content<'r>(i: usize, content: &'r Content) -> Result<ContentOut<'r>, ApiError> {
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
