//! The Chat Completions body rendered from the gateway's representation, for a client that
//! speaks another API (an OpenAI client's own bytes go on edited instead, see `build_request`).
//! Field names follow https://platform.openai.com/docs/api-reference/chat/create.

use super::super::Unsupported;
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::error::ApiError;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct ChatOut<'r> {
    model: &'r str,
    messages: Vec<MessageOut<'r>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<&'r str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'r RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormatOut<'r>>,
}

#[derive(Serialize)]
struct MessageOut<'r> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ContentOut<'r>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'r str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'r> {
    Text(&'r str),
    Parts(Vec<PartOut<'r>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'r> {
    Text { text: &'r str },
    ImageUrl { image_url: ImageOut<'r> },
    File { file: FileOut<'r> },
}

#[derive(Serialize)]
struct ImageOut<'r> {
    url: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'r str>,
}

#[derive(Serialize)]
struct FileOut<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'r str>,
}

#[derive(Serialize)]
struct ToolCallOut<'r> {
    id: &'r str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallOut<'r>,
}

#[derive(Serialize)]
struct FunctionCallOut<'r> {
    name: &'r str,
    arguments: &'r str,
}

#[derive(Serialize)]
struct ToolOut<'r> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'r>,
}

#[derive(Serialize)]
struct FunctionOut<'r> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'r RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceOut<'r> {
    Mode(&'r str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NamedOut<'r>,
    },
}

#[derive(Serialize)]
struct NamedOut<'r> {
    name: &'r str,
}

#[derive(Serialize)]
struct ResponseFormatOut<'r> {
    #[serde(rename = "type")]
    kind: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<&'r RawValue>,
}

/// What of the request OpenAI cannot take: members it has no counterpart for (`top_k`,
/// Anthropic's server tools and containers, …).
pub(super) fn check_unsupported(u: &mut Unsupported, req: &ChatRequest) {
    u.add_unknown_members(req, &["reasoning_effort"]);
}

/// The request as a Chat Completions body for `model`.
pub(super) fn render(req: &ChatRequest, model: &str) -> Result<Vec<u8>, ApiError> {
    let messages = req.messages.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?;
    let tools = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| ToolOut {
            kind: "function",
            function: FunctionOut { name: &f.name, description: f.description.as_deref(), parameters: f.parameters, strict: f.strict },
        })
        .collect();
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Mode(m) => ToolChoiceOut::Mode(m),
        ToolChoice::Function(name) => ToolChoiceOut::Function { kind: "function", function: NamedOut { name } },
    });
    let body = ChatOut {
        model,
        messages,
        stream: req.stream,
        max_tokens: req.output_limit(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop.iter().map(|s| &**s).collect(),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        user: req.user.as_deref(),
        reasoning_effort: req.extra("reasoning_effort"),
        response_format: req.response_format.as_ref().map(|f| ResponseFormatOut { kind: &f.kind, json_schema: f.json_schema }),
    };
    serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the OpenAI request: {e}")))
}

fn message<'r>(i: usize, m: &'r Message) -> Result<MessageOut<'r>, ApiError> {
    let role = match m.role {
        Role::System | Role::Developer => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        Role::Function => return Err(super::super::turns::legacy_function_role(i)),
    };
    let tool_calls = m
        .tool_calls
        .iter()
        .flatten()
        .map(|c| ToolCallOut {
            id: &c.id,
            kind: "function",
            function: FunctionCallOut { name: &c.function.name, arguments: &c.function.arguments },
        })
        .collect();
    let content = match &m.content {
        None => None,
        Some(Content::Text(t)) => Some(ContentOut::Text(t)),
        Some(Content::Parts(parts)) => {
            let parts = parts.iter().enumerate().map(|(j, p)| part(i, j, p, m.role)).collect::<Result<Vec<_>, _>>()?;
            // An assistant turn of tool calls alone (its reasoning left out) has no content.
            (!parts.is_empty()).then_some(ContentOut::Parts(parts))
        }
    };
    Ok(MessageOut { role, content, tool_calls, tool_call_id: m.tool_call_id.as_deref() })
}

fn part<'r>(i: usize, j: usize, p: &'r Part, role: Role) -> Result<PartOut<'r>, ApiError> {
    let media = matches!(role, Role::User);
    match (&*p.kind, &p.image_url, &p.file) {
        ("text", ..) => Ok(PartOut::Text { text: p.text.as_deref().unwrap_or_default() }),
        ("refusal", ..) => Ok(PartOut::Text { text: p.refusal.as_deref().unwrap_or_default() }),
        ("image_url", Some(image), _) if media => {
            Ok(PartOut::ImageUrl { image_url: ImageOut { url: &image.url, detail: image.detail.as_deref() } })
        }
        ("file", _, Some(file)) if media => {
            Ok(PartOut::File { file: FileOut { file_data: file.file_data.as_deref(), filename: file.filename.as_deref() } })
        }
        (other, ..) => Err(ApiError::invalid_param(
            format!("messages[{i}].content[{j}]"),
            format!("Content of type `{other}` is not supported by OpenAI models in {} messages.", role.as_str()),
        )
        .with_code("unsupported_parameter")),
    }
}
