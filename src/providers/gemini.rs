//! Google Gemini API and Vertex AI ↔ OpenAI Chat Completions and Embeddings, both ways,
//! streaming included. Vertex AI hosts the same GenerateContent body as the Gemini API; the two
//! differ in host, path, auth and embeddings endpoint.
//! References:
//! https://ai.google.dev/api/generate-content (request, response, streaming with `alt=sse`,
//! finish and block reasons, usage metadata),
//! https://ai.google.dev/api/caching#Content (Content, Part, FunctionCall, FunctionResponse),
//! https://ai.google.dev/api/caching#Schema (the OpenAPI 3.0 subset of JSON Schema Gemini takes),
//! https://ai.google.dev/gemini-api/docs/function-calling (function declarations, tool config,
//! function responses as objects),
//! https://ai.google.dev/gemini-api/docs/thought-signatures (signatures of function calls),
//! https://ai.google.dev/gemini-api/docs/thinking (thinking budgets and levels),
//! https://ai.google.dev/gemini-api/docs/structured-output (JSON mode),
//! https://ai.google.dev/gemini-api/docs/file-input-methods and
//! https://blog.google/innovation-and-ai/technology/developers-tools/gemini-api-new-file-limits
//! (public HTTPS URLs as `fileData`),
//! https://ai.google.dev/api/embeddings#method:-models.batchembedcontents,
//! https://ai.google.dev/gemini-api/docs/troubleshooting (error statuses),
//! https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference (Vertex paths
//! and `Authorization: Bearer` access tokens),
//! https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api
//! (Vertex `:predict`), https://cloud.google.com/apis/design/errors (error body and codes).

use super::chunks::{ChunkWriter, malformed_event};
use super::completion::{self, Answer};
use super::media::{Source, media_source};
use super::reasoning::{self, Effort};
use super::thought_signature;
use super::turns::{self, AssistantCall, Conversation, TurnRules};
use super::{CompileInput, CompiledProvider, Destination, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::openai::ApiError;
use crate::openai::embeddings::{self, EmbeddingsRequest};
use crate::openai::error::kind_for_status;
use crate::openai::request::{ChatRequest, Content, Message, Part, Role, Str, ToolChoice, strip_position};
use crate::openai::response::{AssistantMessage, ChunkHeader};
use crate::schema::{ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Gemini,
    Vertex,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub api: Api,
    /// The collection every model endpoint sits under: `{base}/models` or
    /// `{base}/projects/{project}/locations/{location}/publishers/google/models`.
    pub models_path: String,
}

impl ProviderApi for Settings {
    fn accepted_fields(kind: ProviderKind) -> &'static [SpecField] {
        match kind {
            ProviderKind::Vertex => &[SpecField::ApiKeyEnv, SpecField::Project, SpecField::Location],
            _ => &[SpecField::ApiKeyEnv],
        }
    }

    fn default_base_path(kind: ProviderKind) -> &'static str {
        match kind {
            ProviderKind::Vertex => "/v1",
            _ => "/v1beta",
        }
    }

    fn default_host(spec: &ProviderSpec) -> Option<String> {
        match spec.kind {
            ProviderKind::Vertex => Some(vertex_host(spec.location.as_deref())),
            _ => Some("generativelanguage.googleapis.com".into()),
        }
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _raw: &[u8],
        to: &Destination,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_request(provider, self, req, to.model, edits)
    }

    fn build_embeddings(
        &self,
        _provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &Destination,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(self, req, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(self, ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let (api, models_path, auth) = if spec.kind == ProviderKind::Vertex {
        let project = path_segment(spec.project.as_deref(), "project")?;
        let location = path_segment(spec.location.as_deref(), "location")?;
        let path = format!("{base_path}/projects/{project}/locations/{location}/publishers/google/models");
        // An OAuth access token the operator refreshes (e.g. `gcloud auth print-access-token`).
        (Api::Vertex, path, key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))))
    } else {
        (Api::Gemini, format!("{base_path}/models"), key.map(|k| ("x-goog-api-key", Secret::new(k.to_owned()))))
    };
    Ok(CompiledProvider {
        // Every request names its own endpoint (model and method are in the path).
        chat_path: models_path.clone(),
        settings: Settings { api, models_path },
        auth,
        headers: Vec::new(),
        missing_env: Vec::new(),
    })
}

/// Vertex AI's regional endpoint; the `global` location has no regional prefix. A missing
/// location gets the global host here and is refused by `compile`.
pub fn vertex_host(location: Option<&str>) -> String {
    match location {
        Some(l) if l != "global" => format!("{l}-aiplatform.googleapis.com"),
        _ => "aiplatform.googleapis.com".into(),
    }
}

fn path_segment<'s>(value: Option<&'s str>, field: &'static str) -> Result<&'s str, FieldError> {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) => Ok(v),
        Some(_) => Err(FieldError { field, message: "may only use letters, digits, `-`, `_`, `.` and `:`".into() }),
        None => Err(FieldError { field, message: "is required for kind `vertex`".into() }),
    }
}

/// `{models}/{model}:{method}`. The model lands in the path, so a name that could change the
/// path (a client's name under a wildcard route) is refused.
fn endpoint(s: &Settings, model: &str, method: &str) -> Result<String, ApiError> {
    let valid = !model.is_empty() && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !valid {
        return Err(ApiError::invalid_param(
            "model",
            format!("`{model}` is not a valid Gemini model name (letters, digits, `-`, `_`, `.` and `@` only)."),
        ));
    }
    Ok(format!("{}/{model}:{method}", s.models_path))
}

// ---- request ---------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'r> {
    contents: Vec<Turn<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'r>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'r>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'r>,
}

#[derive(Serialize)]
struct SystemInstruction<'r> {
    parts: Vec<PartOut<'r>>,
}

#[derive(Serialize)]
struct Turn<'r> {
    role: &'static str,
    parts: Vec<PartOut<'r>>,
}

/// A Part is a union written as an object with exactly one data member, which is how serde
/// writes an externally tagged enum; a function call part also carries its thought signature.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum PartOut<'r> {
    Text(&'r str),
    InlineData(Blob<'r>),
    FileData(FileData<'r>),
    FunctionResponse(FunctionResponseOut<'r>),
    #[serde(untagged)]
    FunctionCall(CallPart<'r>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallPart<'r> {
    function_call: FunctionCallOut<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<Cow<'r, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'r> {
    mime_type: &'r str,
    data: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'r> {
    mime_type: &'static str,
    file_uri: &'r str,
}

#[derive(Serialize)]
struct FunctionCallOut<'r> {
    name: &'r str,
    args: &'r RawValue,
}

#[derive(Serialize)]
struct FunctionResponseOut<'r> {
    name: &'r str,
    response: ToolOutput<'r>,
}

/// `functionResponse.response` must be an object: tool output that is not one is wrapped.
#[derive(Serialize)]
#[serde(untagged)]
enum ToolOutput<'r> {
    Object(Box<RawValue>),
    Wrapped { content: Cow<'r, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolOut<'r> {
    function_declarations: Vec<FunctionDeclaration<'r>>,
}

#[derive(Serialize)]
struct FunctionDeclaration<'r> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Schema<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'r> {
    function_calling_config: FunctionCallingConfig<'r>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'r> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'r str>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Schema<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig` (https://ai.google.dev/gemini-api/docs/thinking): a budget
/// for Gemini 2.5 models, a level for Gemini 3 models (the API refuses both at once); thought
/// summaries come back as `reasoning_content`.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    include_thoughts: bool,
}

/// The largest budget every Gemini 2.5 model takes (Flash and Flash-Lite: 24,576; Pro: 32,768).
const MAX_THINKING_BUDGET: u64 = 24576;

/// The shipped default form of a model (overridden by a model's `params`).
fn reasoning_form(model: &str) -> ReasoningForm {
    if model.starts_with("gemini-3") { ReasoningForm::Level } else { ReasoningForm::Budget }
}

fn thinking_config(effort: Effort, form: ReasoningForm, model: &str) -> ThinkingConfig {
    let thinks = effort != Effort::None;
    // Gemini 3 Pro takes LOW and HIGH only.
    let two_levels = model.contains("-pro");
    match form {
        // Budget 0 turns thinking off where the model allows it (2.5 Pro always thinks).
        ReasoningForm::Budget => ThinkingConfig {
            thinking_budget: Some(effort.budget_tokens().map_or(0, |b| b.min(MAX_THINKING_BUDGET))),
            thinking_level: None,
            include_thoughts: thinks,
        },
        // Gemini 3 always thinks a little; `MINIMAL` is the least it takes.
        ReasoningForm::Level => ThinkingConfig {
            thinking_budget: None,
            thinking_level: Some(match effort {
                Effort::None | Effort::Minimal | Effort::Low if two_levels => "LOW",
                Effort::None | Effort::Minimal => "MINIMAL",
                Effort::Low => "LOW",
                Effort::Medium if !two_levels => "MEDIUM",
                Effort::Medium | Effort::High | Effort::Xhigh => "HIGH",
            }),
            include_thoughts: thinks,
        },
    }
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
            && self.thinking_config.is_none()
    }
}

/// Members without a typed field that this translator maps.
const MAPPED_EXTRA: &[&str] = &["seed", "reasoning_effort"];

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    check_unsupported(provider, req, edits)?;
    let method = if req.stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
    let path = endpoint(s, upstream_model, method)?;
    let (system_instruction, contents) = convert_messages(req)?;
    let declarations = function_declarations(req)?;
    let body = GenerateContentRequest {
        contents,
        system_instruction,
        tool_config: if declarations.is_empty() { None } else { tool_config(req) },
        tools: if declarations.is_empty() { Vec::new() } else { vec![ToolOut { function_declarations: declarations }] },
        generation_config: generation_config(req, upstream_model, edits.reasoning)?,
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Gemini request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(path), ..Default::default() })
}

fn check_unsupported(provider: &Provider, req: &ChatRequest, edits: &mut Edits) -> Result<(), ApiError> {
    let mut u = Unsupported::new(provider);
    // Gemini can sample several candidates, but the answer has room for one choice only.
    u.add_choices_and_logprobs(req);
    // Gemini decides alone whether to call functions in parallel.
    if req.parallel_tool_calls == Some(false) {
        u.add("parallel_tool_calls");
    }
    u.add_unknown_members(req, MAPPED_EXTRA);
    u.resolve(edits)?;
    super::drop_metadata(req, edits);
    Ok(())
}

fn generation_config<'r>(req: &'r ChatRequest, model: &str, form: Option<ReasoningForm>) -> Result<GenerationConfig<'r>, ApiError> {
    let thinking_config =
        reasoning::requested(req)?.map(|effort| thinking_config(effort, form.unwrap_or_else(|| reasoning_form(model)), model));
    let seed = req
        .extra("seed")
        .map(|raw| {
            serde_json::from_str::<i32>(raw.get())
                .map_err(|_| ApiError::invalid_param("seed", "`seed` must be an integer that fits in 32 bits for Gemini models."))
        })
        .transpose()?;
    let (response_mime_type, response_schema) = response_format(req)?;
    Ok(GenerationConfig {
        max_output_tokens: req.output_limit(),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop.iter().map(|s| &**s).collect(),
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        seed,
        response_mime_type,
        response_schema,
        thinking_config,
    })
}

#[derive(Deserialize)]
struct JsonSchemaFormat<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

type ResponseFormat<'r> = (Option<&'static str>, Option<Schema<'r>>);

fn response_format<'r>(req: &'r ChatRequest) -> Result<ResponseFormat<'r>, ApiError> {
    let Some(format) = &req.response_format else { return Ok((None, None)) };
    match &*format.kind {
        "text" => Ok((None, None)),
        "json_object" => Ok((Some("application/json"), None)),
        "json_schema" => {
            let param = "response_format.json_schema";
            let parsed = format.json_schema.map(|raw| serde_json::from_str::<JsonSchemaFormat>(raw.get()));
            let Some(Ok(parsed)) = parsed else {
                return Err(ApiError::invalid_param(param, "`response_format.json_schema` must be an object with a `schema`."));
            };
            let schema = parsed.schema.map(|raw| convert_schema(raw, "response_format.json_schema.schema")).transpose()?;
            Ok((Some("application/json"), schema))
        }
        other => Err(ApiError::invalid_param(
            "response_format.type",
            format!("`response_format.type` must be \"text\", \"json_object\" or \"json_schema\", got \"{other}\"."),
        )),
    }
}

fn function_declarations<'r>(req: &'r ChatRequest) -> Result<Vec<FunctionDeclaration<'r>>, ApiError> {
    let mut out = Vec::with_capacity(req.tools.len());
    for (i, f) in req.tools.iter().enumerate().filter_map(|(i, t)| t.function.as_ref().map(|f| (i, f))) {
        let parameters = f.parameters.map(|raw| convert_schema(raw, &format!("tools[{i}].function.parameters"))).transpose()?;
        out.push(FunctionDeclaration {
            name: &f.name,
            description: f.description.as_deref(),
            // Gemini refuses an OBJECT without properties; a function without parameters says the same.
            parameters: parameters.filter(|p| !p.is_empty_object()),
        });
    }
    Ok(out)
}

fn tool_config<'r>(req: &'r ChatRequest) -> Option<ToolConfig<'r>> {
    let (mode, allowed_function_names) = match req.tool_choice.as_ref()? {
        ToolChoice::Mode(m) => match &**m {
            "none" => ("NONE", Vec::new()),
            "required" => ("ANY", Vec::new()),
            _ => ("AUTO", Vec::new()),
        },
        ToolChoice::Function(name) => ("ANY", vec![&**name]),
    };
    Some(ToolConfig { function_calling_config: FunctionCallingConfig { mode, allowed_function_names } })
}

type Converted<'r> = (Option<SystemInstruction<'r>>, Vec<Turn<'r>>);

/// System and developer messages become `systemInstruction`; tool results are user turns of
/// `functionResponse` parts; turns alternate between `user` and `model`.
fn convert_messages<'r>(req: &'r ChatRequest) -> Result<Converted<'r>, ApiError> {
    let Conversation { system, turns: mut contents } = turns::conversation(req, &GeminiTurns { req })?;
    for turn in &mut contents {
        sign_first_call(&mut turn.content);
    }
    let system = (!system.is_empty()).then_some(SystemInstruction { parts: system });
    Ok((system, contents.into_iter().map(|t| Turn { role: t.role, parts: t.content }).collect()))
}

/// Gemini 3 wants a signature on the first function call of each model turn; where the client's
/// history carries none, Google's placeholder stands in (see `thought_signature`).
fn sign_first_call(parts: &mut [PartOut]) {
    let first_call = parts.iter_mut().find_map(|p| match p {
        PartOut::FunctionCall(call) => Some(call),
        _ => None,
    });
    if let Some(call) = first_call
        && call.thought_signature.is_none()
    {
        call.thought_signature = Some(Cow::Borrowed(thought_signature::PLACEHOLDER));
    }
}

struct GeminiTurns<'r, 'a> {
    /// Where tool results find the names of the functions that made them.
    req: &'r ChatRequest<'a>,
}

impl<'r> TurnRules<'r> for GeminiTurns<'r, '_> {
    type Block = PartOut<'r>;
    const MODEL_ROLE: &'static str = "model";
    const NO_TURNS: &'static str = "Gemini models need at least one user or assistant message besides system messages.";

    fn system(&self, i: usize, m: &'r Message, out: &mut Vec<PartOut<'r>>) -> Result<(), ApiError> {
        out.extend(self.content(i, m.content.as_ref(), m.role)?);
        Ok(())
    }

    fn content(&self, i: usize, content: Option<&'r Content>, role: Role) -> Result<Vec<PartOut<'r>>, ApiError> {
        turns::content_blocks(content, PartOut::Text, |out, j, p| {
            out.extend(part_out(i, j, p, role)?);
            Ok(())
        })
    }

    fn tool_call(&self, call: AssistantCall<'r>) -> PartOut<'r> {
        let thought_signature = thought_signature::decode(call.id).map(Cow::Owned);
        PartOut::FunctionCall(CallPart { function_call: FunctionCallOut { name: call.name, args: call.input }, thought_signature })
    }

    fn tool_result(&self, i: usize, m: &'r Message) -> Result<PartOut<'r>, ApiError> {
        let id = m.tool_call_id.as_deref().unwrap_or_default();
        let name = called_function(self.req, i, id)?;
        let response = tool_output(i, m)?;
        Ok(PartOut::FunctionResponse(FunctionResponseOut { name, response }))
    }
}

/// Gemini's `functionResponse` names the function, OpenAI's tool message only the call id: the
/// name comes from the latest earlier assistant call with that id.
fn called_function<'r>(req: &'r ChatRequest, i: usize, id: &str) -> Result<&'r str, ApiError> {
    req.messages
        .get(..i)
        .unwrap_or_default()
        .iter()
        .rev()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|call| &*call.id == id)
        .map(|call| &*call.function.name)
        .ok_or_else(|| {
            ApiError::invalid_param(
                format!("messages[{i}].tool_call_id"),
                format!(
                    "messages[{i}]: no earlier assistant message has a tool call with id `{id}`; Gemini needs the function's name, which the gateway takes from that call."
                ),
            )
        })
}

fn tool_output<'r>(i: usize, m: &'r Message) -> Result<ToolOutput<'r>, ApiError> {
    if let Some(Content::Parts(parts)) = &m.content
        && let Some((j, p)) = parts.iter().enumerate().find(|(_, p)| &*p.kind != "text")
    {
        return Err(ApiError::invalid_param(
            format!("messages[{i}].content[{j}]"),
            format!("Tool results can only hold text for Gemini models, got a `{}` part.", &*p.kind),
        ));
    }
    let text = m.content.as_ref().map(Content::text).unwrap_or_default();
    if text.trim_start().starts_with('{')
        && let Ok(object) = serde_json::from_str::<Box<RawValue>>(&text)
    {
        return Ok(ToolOutput::Object(object));
    }
    Ok(ToolOutput::Wrapped { content: text })
}

fn part_out<'r>(i: usize, j: usize, p: &'r Part, role: Role) -> Result<Option<PartOut<'r>>, ApiError> {
    let param = || format!("messages[{i}].content[{j}]");
    let text = match &*p.kind {
        "text" => p.text.as_deref(),
        "refusal" => p.refusal.as_deref(),
        "image_url" if role == Role::User => {
            let url = p.image_url.as_ref().map(|u| &*u.url).unwrap_or_default();
            return media(url, &param()).map(Some);
        }
        "file" if role == Role::User => {
            let Some(data) = p.file.as_ref().and_then(|f| f.file_data.as_deref()) else {
                return Err(ApiError::invalid_param(
                    param(),
                    "Gemini models need files inline as `file.file_data` (a data URL); uploaded file ids are not supported.",
                ));
            };
            return media(data, &param()).map(Some);
        }
        other => {
            return Err(ApiError::invalid_param(
                param(),
                format!("Content parts of type `{other}` are not supported by Gemini models in {} messages.", role.as_str()),
            ));
        }
    };
    Ok(text.filter(|t| !t.is_empty()).map(PartOut::Text))
}

/// Base64 data URLs go inline; public http(s) URLs as `fileData`, which Gemini fetches itself
/// and which needs the media type, read from the file extension.
fn media<'r>(url: &'r str, param: &str) -> Result<PartOut<'r>, ApiError> {
    match media_source(url, param)? {
        Source::Base64 { media_type, data } => Ok(PartOut::InlineData(Blob { mime_type: media_type, data })),
        Source::Url { url } => {
            let mime_type = mime_from_extension(url).ok_or_else(|| {
                ApiError::invalid_param(
                    param,
                    "Gemini needs the media type of a file URL, which the gateway reads from its extension (.png, .jpg, .jpeg, .webp, .heic, .heif, .pdf); send other files as base64 data URLs.",
                )
            })?;
            Ok(PartOut::FileData(FileData { mime_type, file_uri: url }))
        }
    }
}

fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let (_, ext) = name.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

// ---- schemas ---------------------------------------------------------------------------------

/// A JSON Schema (as OpenAI tools and `json_schema` formats carry it) rewritten as Gemini's
/// Schema object. Keywords Gemini cannot express are refused, not dropped: a dropped
/// constraint would let the model produce output the client's schema forbids. The one
/// exception is `additionalProperties: false`, which OpenAI's strict mode requires on every
/// object and which Gemini already honours, since it generates declared properties only.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Schema<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    nullable: bool,
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    enum_values: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Properties::is_empty")]
    properties: Properties<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    property_ordering: Option<Vec<Cow<'a, str>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Box<Schema<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    any_of: Option<Vec<Schema<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<Cow<'a, str>>,
    /// Numeric bounds, defaults and examples, copied as written.
    #[serde(flatten)]
    verbatim: Verbatim<'a>,
}

#[derive(Default)]
struct Verbatim<'a>(Vec<(&'static str, &'a RawValue)>);

impl Serialize for Verbatim<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Keywords Gemini's Schema shares with JSON Schema and that pass unchanged.
const VERBATIM_KEYWORDS: &[&str] =
    &["minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties", "minimum", "maximum", "default", "example"];

/// `properties` in the client's order, which Gemini uses to order its output.
#[derive(Default)]
struct Properties<'a>(Vec<(Cow<'a, str>, Schema<'a>)>);

impl Properties<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Schema<'_> {
    fn is_empty_object(&self) -> bool {
        self.kind == Some("OBJECT") && self.properties.is_empty() && self.any_of.is_none()
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TypeSpec<'a> {
    One(#[serde(borrow)] Str<'a>),
    Many(#[serde(borrow)] Vec<Str<'a>>),
}

fn gemini_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "string" => "STRING",
        "number" => "NUMBER",
        "integer" => "INTEGER",
        "boolean" => "BOOLEAN",
        "array" => "ARRAY",
        "object" => "OBJECT",
        "null" => "NULL",
        _ => return None,
    })
}

/// `"type"` → (Gemini type, nullable). `["T", "null"]` is how JSON Schema spells nullable.
fn schema_type<E: de::Error>(spec: TypeSpec) -> Result<(&'static str, bool), E> {
    let unknown = |t: &str| E::custom(format_args!("unknown type `{t}`"));
    match spec {
        TypeSpec::One(t) => gemini_type(&t).map(|g| (g, false)).ok_or_else(|| unknown(&t)),
        TypeSpec::Many(types) => {
            let nullable = types.iter().any(|t| &**t == "null");
            let mut rest = types.iter().filter(|t| &***t != "null");
            match (rest.next(), rest.next()) {
                (None, _) => Ok(("NULL", false)),
                (Some(t), None) => gemini_type(t).map(|g| (g, nullable)).ok_or_else(|| unknown(t)),
                (Some(_), Some(_)) => Err(E::custom("a list of several types cannot be expressed; use `anyOf`")),
            }
        }
    }
}

struct SchemaVisitor;

impl<'de> Visitor<'de> for SchemaVisitor {
    type Value = Schema<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON Schema object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut s = Schema::default();
        let strings = |v: Vec<Str<'de>>| v.into_iter().map(|s| s.0).collect::<Vec<_>>();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "type" => {
                    let (kind, nullable) = schema_type(map.next_value()?)?;
                    s.kind = Some(kind);
                    s.nullable |= nullable;
                }
                "nullable" => s.nullable |= map.next_value::<bool>()?,
                "format" => s.format = Some(map.next_value::<Str>()?.0),
                "title" => s.title = Some(map.next_value::<Str>()?.0),
                "description" => s.description = Some(map.next_value::<Str>()?.0),
                "pattern" => s.pattern = Some(map.next_value::<Str>()?.0),
                "enum" => s.enum_values = Some(strings(map.next_value()?)),
                "required" => s.required = Some(strings(map.next_value()?)),
                "propertyOrdering" => s.property_ordering = Some(strings(map.next_value()?)),
                "properties" => s.properties = map.next_value()?,
                "items" => s.items = Some(Box::new(map.next_value()?)),
                "anyOf" => s.any_of = Some(map.next_value()?),
                "additionalProperties" => {
                    let value: &RawValue = map.next_value()?;
                    if value.get().trim() != "false" {
                        return Err(de::Error::custom("`additionalProperties` other than `false` cannot be expressed"));
                    }
                }
                // Annotations for schema tooling, not constraints on the output.
                "$schema" | "$id" | "$comment" => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => match VERBATIM_KEYWORDS.iter().find(|k| **k == other) {
                    Some(k) => s.verbatim.0.push((k, map.next_value()?)),
                    None => return Err(de::Error::custom(format_args!("keyword `{other}` is not supported"))),
                },
            }
        }
        Ok(s)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Schema<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SchemaVisitor)
    }
}

struct PropertiesVisitor;

impl<'de> Visitor<'de> for PropertiesVisitor {
    type Value = Properties<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of property schemas")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            out.push((key.0, map.next_value()?));
        }
        Ok(Properties(out))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Properties<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PropertiesVisitor)
    }
}

fn convert_schema<'r>(raw: &'r RawValue, param: &str) -> Result<Schema<'r>, ApiError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        // Only on the error path: find where the schema went wrong from the error's position.
        let text = raw.get().as_bytes();
        let path = crate::json::path_at(text, crate::json::offset_of(text, e.line(), e.column()));
        let at = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
        ApiError::invalid_param(
            param,
            format!(
                "`{param}` cannot be sent to Gemini{at}: {}. Gemini takes an OpenAPI 3.0 subset of JSON Schema (https://ai.google.dev/api/caching#Schema).",
                strip_position(&e.to_string())
            ),
        )
    })
}

// ---- response --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse<'a> {
    #[serde(borrow, default)]
    candidates: Vec<Candidate<'a>>,
    #[serde(borrow, default)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(borrow, default)]
    model_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    response_id: Option<Str<'a>>,
    /// A stream that fails midway sends an error object as its last event.
    #[serde(borrow, default)]
    error: Option<GoogleError<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<CandidateContent<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct CandidateContent<'a> {
    #[serde(borrow, default)]
    parts: Vec<PartIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartIn<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default)]
    function_call: Option<FunctionCallIn<'a>>,
    #[serde(borrow, default)]
    thought_signature: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct FunctionCallIn<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}

impl FunctionCallIn<'_> {
    fn arguments(&self) -> &str {
        self.args.map_or("{}", RawValue::get)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(borrow, default)]
    block_reason: Option<Str<'a>>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    prompt_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    candidates_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cached_content_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    thoughts_token_count: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    tool_use_prompt_token_count: u64,
}

/// Gemini counts cached tokens inside `promptTokenCount` and thinking tokens apart from
/// `candidatesTokenCount` (both are billed as output).
#[deny(clippy::arithmetic_side_effects)]
impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            input_tokens: u.prompt_token_count.saturating_add(u.tool_use_prompt_token_count).saturating_sub(u.cached_content_token_count),
            cache_read_tokens: u.cached_content_token_count,
            cache_write_tokens: 0,
            output_tokens: u.candidates_token_count.saturating_add(u.thoughts_token_count),
            reasoning_tokens: u.thoughts_token_count,
        }
    }
}

/// Gemini `finishReason` → OpenAI `finish_reason`. Gemini says STOP after function calls too.
fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "STOP" if has_tool_calls => "tool_calls",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ => "stop",
    }
}

/// A prompt Gemini blocks gets HTTP 200 with no candidates and `promptFeedback.blockReason`,
/// and its prompt tokens are counted: it is answered as an empty `content_filter` completion,
/// the same whether streamed or not, rather than as an error.
fn block_reason<'r>(r: &'r GenerateContentResponse) -> Option<&'r str> {
    if !r.candidates.is_empty() {
        return None;
    }
    r.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref())
}

/// Gemini may leave function calls without ids; the n-th call of an answer is `call_<n>`,
/// streamed or not. The part's thought signature travels in the id (see `thought_signature`).
fn call_id<'a>(part: &'a PartIn, call: &'a FunctionCallIn, n: usize) -> Cow<'a, str> {
    let id = match call.id.as_deref() {
        Some(id) if !id.is_empty() => Cow::Borrowed(id),
        _ => Cow::Owned(format!("call_{n}")),
    };
    thought_signature::encode(id, part.thought_signature.as_deref(), || format!("call_{n}"))
}

fn completion_id(r: &GenerateContentResponse) -> String {
    r.response_id.as_deref().map_or_else(|| "chatcmpl-gemini".to_owned(), str::to_owned)
}

fn parse_response(body: &[u8]) -> Result<GenerateContentResponse<'_>, serde_json::Error> {
    serde_json::from_slice(body)
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r = parse_response(body).map_err(|e| super::unexpected_answer("a Gemini GenerateContentResponse", &e, body))?;
    let blocked = block_reason(&r);
    let Some(candidate) = r.candidates.first() else {
        if blocked.is_none() {
            return Err(ApiError::bad_gateway(format!("The provider returned no candidates: {}", super::excerpt(body))));
        }
        return blocked_completion(ctx, &r);
    };
    let mut calls: Vec<(Cow<str>, &FunctionCallIn)> = Vec::new();
    let mut answer = Answer::default();
    for part in candidate.content.as_ref().map(|c| c.parts.as_slice()).unwrap_or_default() {
        if let Some(call) = &part.function_call {
            calls.push((call_id(part, call, calls.len()), call));
        } else if let Some(t) = &part.text {
            if part.thought == Some(true) { answer.reasoning.push_str(t) } else { answer.text.push_str(t) }
        }
    }
    for (id, call) in &calls {
        answer.add_tool_call(id, &call.name, call.arguments());
    }
    let finish = finish_reason(candidate.finish_reason.as_deref().unwrap_or("STOP"), !answer.tool_calls.is_empty());
    let mut message = answer.into_message();
    // A filtered answer without text has no content either.
    if finish == "content_filter" && message.content.as_deref() == Some("") {
        message.content = None;
    }
    let model = r.model_version.as_deref().unwrap_or(&ctx.model);
    completion::encode(&completion_id(&r), ctx.created, model, message, Some(finish), r.usage_metadata.map(Usage::from))
}

fn blocked_completion(ctx: &ResponseContext, r: &GenerateContentResponse) -> Result<Translated, ApiError> {
    let refusal = format!("The provider blocked the prompt (blockReason {}).", block_reason(r).unwrap_or_default());
    let message =
        AssistantMessage { role: "assistant", content: None, tool_calls: Vec::new(), refusal: Some(&refusal), reasoning_content: None };
    let model = r.model_version.as_deref().unwrap_or(&ctx.model);
    completion::encode(&completion_id(r), ctx.created, model, message, Some("content_filter"), r.usage_metadata.map(Usage::from))
}

// ---- errors ----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: GoogleError<'a>,
}

#[derive(Deserialize)]
struct GoogleError<'a> {
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
    #[serde(borrow, default)]
    status: Option<Str<'a>>,
    #[serde(borrow, default)]
    details: Vec<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
struct ErrorDetail<'a> {
    #[serde(borrow, default)]
    reason: Option<Str<'a>>,
}

/// A Google error → OpenAI error. The HTTP status Google answered with stands (it already
/// matches the google.rpc code), except that the Gemini API answers a bad key with 400
/// INVALID_ARGUMENT and reason API_KEY_INVALID, which clients know as a 401. An error inside a
/// stream has no status of its own (`http` is `None`): the google.rpc code gives it.
fn map_error(http: Option<u16>, e: &GoogleError) -> ApiError {
    let rpc = e.status.as_deref().unwrap_or_default();
    let key_invalid = e.details.iter().any(|d| d.reason.as_deref() == Some("API_KEY_INVALID"));
    let canonical = match rpc {
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    };
    let status = match http {
        _ if key_invalid => 401,
        Some(status) if (400..=599).contains(&status) => status,
        _ => canonical,
    };
    let code: Option<Cow<'static, str>> = match status {
        401 => Some("invalid_api_key".into()),
        429 => Some("rate_limit_exceeded".into()),
        _ if rpc.is_empty() => None,
        _ => Some(rpc.to_ascii_lowercase().into()),
    };
    let message = e.message.as_ref().map(|m| m.0.clone().into_owned()).unwrap_or_else(|| format!("The provider answered HTTP {status}."));
    let err = ApiError::new(status, kind_for_status(status), message);
    match code {
        Some(c) => err.with_code(c),
        None => err,
    }
}

pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    // The streaming method wraps its errors in a one-element array. The array is tried first:
    // serde would also read an array as the envelope's fields in order.
    let parsed = serde_json::from_slice::<[ErrorEnvelope; 1]>(body).map(|[e]| e).or_else(|_| serde_json::from_slice::<ErrorEnvelope>(body));
    match parsed {
        Ok(envelope) => map_error(Some(status), &envelope.error),
        Err(_) => ApiError::new(status, kind_for_status(status), super::status_message(status, body)),
    }
}

// ---- streaming -------------------------------------------------------------------------------

/// Each `data:` event of `streamGenerateContent?alt=sse` is a partial GenerateContentResponse:
/// new parts, and on the last one `finishReason` and the full usage.
#[derive(Debug)]
pub struct StreamState {
    chunks: ChunkWriter,
    started: bool,
    usage: Option<UsageMetadata>,
    tool_calls: usize,
    finish_reason: Option<&'static str>,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ChunkWriter::new(ctx, ChunkHeader { created: ctx.created, model: ctx.model.clone(), ..Default::default() }),
            started: false,
            usage: None,
            tool_calls: 0,
            finish_reason: None,
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if !event.has_data || self.chunks.failed() {
            return;
        }
        let r = match parse_response(&event.data) {
            Ok(r) => r,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        if let Some(e) = &r.error {
            return self.chunks.fail(out, &map_error(None, e));
        }
        if let Some(u) = r.usage_metadata {
            self.usage = Some(u);
        }
        if self.finish_reason.is_some() {
            return;
        }
        if !self.started {
            self.started = true;
            self.chunks.header.id = completion_id(&r);
            if let Some(model) = &r.model_version {
                self.chunks.header.model = model.to_string();
            }
            self.chunks.opening(out);
        }
        let candidate = r.candidates.first();
        for part in candidate.and_then(|c| c.content.as_ref()).map(|c| c.parts.as_slice()).unwrap_or_default() {
            self.part(part, out);
        }
        let finish = match candidate.and_then(|c| c.finish_reason.as_deref()) {
            Some(reason) => Some(finish_reason(reason, self.tool_calls > 0)),
            None => block_reason(&r).map(|_| "content_filter"),
        };
        if let Some(finish) = finish {
            self.finish_reason = Some(finish);
            self.chunks.finish_reason(out, Some(finish));
        }
    }

    fn part(&mut self, part: &PartIn, out: &mut Vec<u8>) {
        if let Some(call) = &part.function_call {
            // Gemini sends each function call whole, never its arguments in pieces.
            let id = call_id(part, call, self.tool_calls);
            let index = u32::try_from(self.tool_calls).unwrap_or(u32::MAX);
            self.tool_calls += 1;
            self.chunks.tool_call(out, index, Some(&id), Some(&call.name), call.arguments());
        } else if part.thought == Some(true) {
            self.chunks.reasoning(out, part.text.as_deref());
        } else {
            self.chunks.content(out, part.text.as_deref());
        }
    }
}

impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.on_event(event, out);
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    /// A candidate (or a blocked prompt) brought a finish reason.
    fn ended(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn chunks(&self) -> Option<&ChunkWriter> {
        Some(&self.chunks)
    }

    /// The stream is complete once it ended without failing.
    fn completed(&self) -> bool {
        self.ended() && !self.chunks.failed()
    }

    /// The upstream ended. Usage is written here rather than with the finish reason because
    /// Gemini may still send usage after it.
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.chunks.upstream_ended(out, self.ended());
        if self.completed() {
            self.chunks.done(out, self.usage());
        }
    }
}

// ---- embeddings ------------------------------------------------------------------------------

#[derive(Serialize)]
struct BatchEmbedRequest<'r> {
    requests: Vec<EmbedRequest<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmbedRequest<'r> {
    model: &'r str,
    content: EmbedContent<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_dimensionality: Option<u64>,
}

#[derive(Serialize)]
struct EmbedContent<'r> {
    parts: [PartOut<'r>; 1],
}

#[derive(Serialize)]
struct PredictRequest<'r> {
    instances: Vec<Instance<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<PredictParameters>,
}

#[derive(Serialize)]
struct Instance<'r> {
    content: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PredictParameters {
    output_dimensionality: u64,
}

/// Gemini: `batchEmbedContents`, one request per input. Vertex AI: `predict`, one instance per
/// input. `user` has no counterpart and does not change the vectors.
pub fn build_embeddings(s: &Settings, req: &EmbeddingsRequest, upstream_model: &str) -> Result<UpstreamRequest, ApiError> {
    let texts = req
        .inputs()?
        .texts
        .ok_or_else(|| ApiError::invalid_param("input", "Gemini embedding models take text; token-id inputs are not supported."))?;
    let (method, body) = match s.api {
        Api::Gemini => {
            let model = format!("models/{upstream_model}");
            let requests = texts
                .iter()
                .map(|t| EmbedRequest {
                    model: &model,
                    content: EmbedContent { parts: [PartOut::Text(t)] },
                    output_dimensionality: req.dimensions,
                })
                .collect();
            ("batchEmbedContents", serde_json::to_vec(&BatchEmbedRequest { requests }))
        }
        Api::Vertex => {
            let instances = texts.iter().map(|t| Instance { content: t }).collect();
            let parameters = req.dimensions.map(|output_dimensionality| PredictParameters { output_dimensionality });
            ("predict", serde_json::to_vec(&PredictRequest { instances, parameters }))
        }
    };
    let body = body.map_err(|e| ApiError::internal(format!("could not encode the embeddings request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(endpoint(s, upstream_model, method)?), ..Default::default() })
}

#[derive(Deserialize)]
struct BatchEmbedResponse<'a> {
    #[serde(borrow)]
    embeddings: Vec<Values<'a>>,
}

#[derive(Deserialize)]
struct Values<'a> {
    #[serde(borrow)]
    values: &'a RawValue,
}

#[derive(Deserialize)]
struct PredictResponse<'a> {
    #[serde(borrow)]
    predictions: Vec<Prediction<'a>>,
}

#[derive(Deserialize)]
struct Prediction<'a> {
    #[serde(borrow)]
    embeddings: VertexEmbedding<'a>,
}

#[derive(Deserialize)]
struct VertexEmbedding<'a> {
    #[serde(borrow)]
    values: &'a RawValue,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    /// A JSON number that Vertex AI may write with a fraction (`4.0`).
    token_count: f64,
}

pub fn translate_embeddings(s: &Settings, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let bad = |e: serde_json::Error| super::unexpected_answer("an embeddings answer", &e, body);
    let (vectors, usage): (Vec<&RawValue>, Option<Usage>) = match s.api {
        // The Gemini API reports no token counts for embeddings: usage stays unknown, never zero.
        Api::Gemini => {
            let r: BatchEmbedResponse = serde_json::from_slice(body).map_err(bad)?;
            (r.embeddings.iter().map(|e| e.values).collect(), None)
        }
        Api::Vertex => {
            let r: PredictResponse = serde_json::from_slice(body).map_err(bad)?;
            let counts: Option<Vec<f64>> = r.predictions.iter().map(|p| p.embeddings.statistics.as_ref().map(|s| s.token_count)).collect();
            // Casts and the sum saturate: no count Vertex sends can wrap the total.
            let tokens = |c: Vec<f64>| c.iter().fold(0u64, |sum, n| sum.saturating_add(n.max(0.0).round() as u64));
            let usage = counts.map(|c| Usage { input_tokens: tokens(c), ..Default::default() });
            (r.predictions.iter().map(|p| p.embeddings.values).collect(), usage)
        }
    };
    let body = embeddings::list_response(&ctx.model, &vectors, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}

#[cfg(test)]
#[path = "gemini_tests.rs"]
mod tests;
