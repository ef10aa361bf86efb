//! Amazon Bedrock ↔ OpenAI: Chat Completions over Converse and ConverseStream, embeddings over
//! InvokeModel (Titan and Cohere text embeddings), every request signed with SigV4 in the filter.
//! References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ContentBlock.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html.

use super::chunks::{ChunkWriter, ToolCallIndex, malformed_event};
use super::completion::{self, Answer};
use super::media::{Source, media_source};
use super::reasoning::{self, Effort, Thinking};
use super::structured;
use super::thought_signature;
use super::turns::{self, AssistantCall, Conversation, Turn, TurnRules};
use super::{
    CompileInput, CompiledProvider, Destination, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest, sigv4,
};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamFraming, StreamTranslation};
use crate::openai::ApiError;
use crate::openai::embeddings::{self, EmbeddingsRequest};
use crate::openai::error::kind_for_status;
use crate::openai::request::{ChatRequest, Content, Message, Part, Role, Str, ToolChoice};
use crate::openai::response::ChunkHeader;
use crate::schema::{JsonSchemaForm, ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

/// The SigV4 signing name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

/// AWS credentials read from the environment at load time. `Secret` keeps them out of `Debug`.
#[derive(Debug)]
struct Credentials {
    access_key_id: Secret,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

#[derive(Debug)]
pub struct Settings {
    region: String,
    /// `None` when a variable is missing; the provider then reports it (`CompiledProvider::missing_env`)
    /// before any request is built.
    credentials: Option<Credentials>,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::Region, SpecField::AwsAccessKeyIdEnv, SpecField::AwsSecretAccessKeyEnv, SpecField::AwsSessionTokenEnv]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        ""
    }

    fn default_host(spec: &ProviderSpec) -> Option<String> {
        spec.region.as_deref().map(default_host)
    }

    /// Requests are signed with AWS credentials instead.
    fn requires_key(_kind: ProviderKind) -> bool {
        false
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
        build_request(provider, self, req, to.model, to.now_ms, edits)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &Destination,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, self, req, to.model, to.now_ms)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(ctx, body)
    }

    fn translate_error(&self, status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, error_type, body)
    }

    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::AwsEventStream
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, env, .. } = *input;
    let region = match spec.region.as_deref() {
        None => return Err(FieldError { field: "region", message: "is required for kind `bedrock` (e.g. `us-east-1`)".into() }),
        Some(r) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') => r.to_owned(),
        Some(r) => return Err(FieldError { field: "region", message: format!("`{r}` is not an AWS region name such as `us-east-1`") }),
    };
    let variable = |field: &'static str, configured: Option<&String>, default: &'static str| match configured {
        Some(name) if name.trim().is_empty() => Err(FieldError { field, message: "must name an environment variable".into() }),
        Some(name) => Ok((name.clone(), true)),
        None => Ok((default.to_owned(), false)),
    };
    let (key_var, _) = variable("aws_access_key_id_env", spec.aws_access_key_id_env.as_ref(), "AWS_ACCESS_KEY_ID")?;
    let (secret_var, _) = variable("aws_secret_access_key_env", spec.aws_secret_access_key_env.as_ref(), "AWS_SECRET_ACCESS_KEY")?;
    let (token_var, token_configured) = variable("aws_session_token_env", spec.aws_session_token_env.as_ref(), "AWS_SESSION_TOKEN")?;
    let read = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(Secret::new);
    let (key, secret, token) = (read(&key_var), read(&secret_var), read(&token_var));
    let mut missing_env = Vec::new();
    if key.is_none() {
        missing_env.push(key_var);
    }
    if secret.is_none() {
        missing_env.push(secret_var);
    }
    // The session token is optional, unless the config names its variable: then temporary
    // credentials are meant, and signing without the token would only earn 403s.
    if token.is_none() && token_configured {
        missing_env.push(token_var);
    }
    let credentials = match (key, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Some(Credentials { access_key_id, secret_access_key, session_token: token }),
        _ => None,
    };
    Ok(CompiledProvider {
        settings: Settings { region, credentials },
        // Never requested as is: every Bedrock request carries its model in its own path.
        chat_path: format!("{base_path}/model/{{modelId}}/converse"),
        auth: None,
        headers: vec![("content-type", "application/json".to_owned())],
        missing_env,
    })
}

/// `bedrock-runtime.{region}.amazonaws.com`
/// (https://docs.aws.amazon.com/general/latest/gr/bedrock.html#br-rt).
pub fn default_host(region: &str) -> String {
    format!("bedrock-runtime.{region}.amazonaws.com")
}

/// Signs the final request. Only headers the filter itself sets are signed (`host` is the
/// `:authority` the filter writes): Envoy adds others (`x-forwarded-*`, `x-request-id`, …)
/// after the filter, and a signed header it touched would invalidate the signature.
fn signed(provider: &Provider, s: &Settings, path: String, body: Vec<u8>, now_ms: u64) -> Result<UpstreamRequest, ApiError> {
    let Some(c) = &s.credentials else {
        return Err(ApiError::internal(format!("The gateway has no AWS credentials for provider `{}`.", provider.name))
            .with_code("provider_credentials_missing"));
    };
    let amz_date = sigv4::amz_date(now_ms);
    let payload_sha256 = sigv4::sha256_hex(&body);
    let mut signed_headers =
        vec![("host", provider.authority.as_str()), ("x-amz-content-sha256", payload_sha256.as_str()), ("x-amz-date", amz_date.as_str())];
    if let Some(token) = &c.session_token {
        signed_headers.push(("x-amz-security-token", token.expose()));
    }
    let scope = sigv4::Scope {
        access_key_id: c.access_key_id.expose(),
        secret_access_key: c.secret_access_key.expose(),
        region: &s.region,
        service: SERVICE,
        amz_date: &amz_date,
    };
    let request = sigv4::Request { method: "POST", path: &path, headers: &signed_headers, payload_sha256: &payload_sha256 };
    let signature = sigv4::sign(&scope, &request).ok_or_else(|| ApiError::internal("could not sign the Bedrock request"))?;
    let mut headers = vec![("x-amz-date", amz_date.clone()), ("x-amz-content-sha256", payload_sha256.clone())];
    if let Some(token) = &c.session_token {
        headers.push(("x-amz-security-token", token.expose().to_owned()));
    }
    headers.push(("authorization", signature.authorization));
    Ok(UpstreamRequest { body: Some(body), path: Some(path), headers, ..Default::default() })
}

/// `{base}/model/{modelId}/{action}`: the model id is one path segment, so its `:` (versions)
/// and `/` (ARNs) are percent-encoded.
fn model_path(provider: &Provider, model: &str, action: &str) -> String {
    format!("{}/model/{}/{action}", provider.base_path, sigv4::uri_encode(model))
}

// ---- request ---------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest<'r> {
    messages: Vec<Turn<Block<'r>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<Block<'r>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'r>>,
    #[serde(skip_serializing_if = "ModelFields::is_empty")]
    additional_model_request_fields: ModelFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig>,
}

/// `outputConfig.textFormat`: structured outputs
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_OutputFormat.html; the
/// schema travels as JSON text, `JsonSchemaDefinition.schema` being a string).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputConfig {
    text_format: TextFormat,
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
    structure: FormatStructure,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FormatStructure {
    json_schema: JsonSchemaDefinition,
}

#[derive(Serialize)]
struct JsonSchemaDefinition {
    schema: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// `additionalModelRequestFields`: settings in the model's own request format. Claude takes
/// Anthropic's `thinking` and `output_config.effort`
/// (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html,
/// https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-adaptive-thinking.html);
/// Nova 2 its `reasoningConfig`
/// (https://docs.aws.amazon.com/nova/latest/nova2-userguide/extended-thinking.html).
#[derive(Serialize, Default)]
struct ModelFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<ClaudeOutputConfig>,
    #[serde(rename = "reasoningConfig", skip_serializing_if = "Option::is_none")]
    reasoning_config: Option<NovaReasoning>,
}

impl ModelFields {
    fn is_empty(&self) -> bool {
        self.thinking.is_none() && self.output_config.is_none() && self.reasoning_config.is_none()
    }
}

#[derive(Serialize)]
struct ClaudeOutputConfig {
    effort: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaReasoning {
    #[serde(rename = "type")]
    kind: &'static str,
    max_reasoning_effort: &'static str,
}

/// Room for the answer on top of Claude's thinking when the client sets no limit.
const ANSWER_TOKENS: u64 = 4096;

/// What `reasoning_effort` becomes for the model: model fields, and the output limit.
fn reasoning(
    req: &ChatRequest,
    model: &str,
    form: Option<ReasoningForm>,
    unsupported: &mut Unsupported,
) -> Result<(ModelFields, Option<u64>), ApiError> {
    let limit = req.output_limit();
    let Some(effort) = reasoning::requested(req)? else { return Ok((ModelFields::default(), limit)) };
    if model.contains("anthropic.claude") && reasoning::claude_thinks(model) {
        let form = form.unwrap_or_else(|| reasoning::claude_form(model));
        let claude = reasoning::claude(req, effort, form, ANSWER_TOKENS)?;
        let fields = ModelFields {
            thinking: claude.thinking,
            output_config: claude.effort.map(|effort| ClaudeOutputConfig { effort }),
            reasoning_config: None,
        };
        let max_tokens = if effort == Effort::None { limit } else { Some(claude.max_tokens) };
        return Ok((fields, max_tokens));
    }
    if model.contains("amazon.nova-2") {
        let max_reasoning_effort = match effort {
            Effort::None => return Ok((ModelFields::default(), limit)),
            Effort::Minimal | Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High | Effort::Xhigh => "high",
        };
        let reasoning_config = Some(NovaReasoning { kind: "enabled", max_reasoning_effort });
        return Ok((ModelFields { reasoning_config, ..Default::default() }, limit));
    }
    if effort != Effort::None {
        unsupported.add("reasoning_effort");
    }
    Ok((ModelFields::default(), limit))
}

/// A `ContentBlock` union member (also the `SystemContentBlock` members text and cachePoint).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'r> {
    Text(&'r str),
    Image(Image<'r>),
    ToolUse(ToolUse<'r>),
    ToolResult(ToolResult<'r>),
    CachePoint(CachePoint),
}

#[derive(Serialize)]
struct Image<'r> {
    format: &'static str,
    source: ImageSource<'r>,
}

#[derive(Serialize)]
struct ImageSource<'r> {
    /// Base64 in JSON, as blobs are.
    bytes: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse<'r> {
    tool_use_id: Cow<'r, str>,
    name: &'r str,
    input: &'r RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'r> {
    tool_use_id: Cow<'r, str>,
    content: Vec<ResultBlock<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ResultBlock<'r> {
    Text(&'r str),
    Json(&'r RawValue),
    Image(Image<'r>),
}

#[derive(Serialize)]
struct CachePoint {
    #[serde(rename = "type")]
    kind: &'static str,
}

const CACHE_POINT: CachePoint = CachePoint { kind: "default" };

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<&'r str>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none() && self.temperature.is_none() && self.top_p.is_none() && self.stop_sequences.is_empty()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'r> {
    tools: Vec<ToolEntry<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry<'r> {
    tool_spec: ToolSpec<'r>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'r> {
    name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'r str>,
    input_schema: Schema<'r>,
    /// Strict tool use (`ToolSpecification.strict`,
    /// https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolSpecification.html).
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
struct Schema<'r> {
    json: &'r RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum ToolChoiceOut<'r> {
    Auto(Empty),
    Any(Empty),
    Tool(Named<'r>),
}

/// `{}`: the auto and any tool choices carry no fields.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Named<'r> {
    name: &'r str,
}

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    now_ms: u64,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let mut unsupported = check_unsupported(provider, req);
    if let Some(t) = req.temperature
        && t > 1.0
    {
        return Err(ApiError::invalid_param("temperature", format!("`temperature` must be between 0 and 1 for Bedrock models, got {t}.")));
    }
    let Conversation { system, turns: messages } = turns::conversation(req, &ConverseTurns)?;
    let native = structured::claude_native(upstream_model);
    if !native {
        unsupported.add_strict_tools(req);
    }
    let answer = structured::requested(req, edits.json_schema, native, &mut unsupported)?;
    let mut tool_config = tool_config(req, &messages, native, &mut unsupported);
    let (mut model_fields, max_tokens) = reasoning(req, upstream_model, edits.reasoning, &mut unsupported)?;
    let mut output_config = None;
    match &answer {
        Some(a) if a.form == JsonSchemaForm::Tool => {
            // A forced tool and Claude's thinking do not go together (see the Anthropic translator).
            if model_fields.thinking.take().is_some() {
                unsupported.add("reasoning_effort");
            }
            let tools = vec![ToolEntry {
                tool_spec: ToolSpec { name: a.name, description: a.description, input_schema: Schema { json: a.schema }, strict: None },
            }];
            tool_config = Some(ToolConfig { tools, tool_choice: Some(ToolChoiceOut::Tool(Named { name: a.name })) });
        }
        Some(a) => {
            let json_schema = JsonSchemaDefinition {
                schema: a.schema.get().to_owned(),
                name: a.name.to_owned(),
                description: a.description.map(str::to_owned),
            };
            output_config =
                Some(OutputConfig { text_format: TextFormat { kind: "json_schema", structure: FormatStructure { json_schema } } });
        }
        None => {}
    }
    if model_fields.thinking.is_some() {
        unsupported.add_sampling_while_thinking(req);
    }
    let answer_tool = structured::answer_tool(answer.as_ref());
    unsupported.resolve(edits)?;
    super::drop_metadata(req, edits);
    // What thinking does not allow was refused or dropped (`add_sampling_while_thinking`).
    let samples = model_fields.thinking.is_none();
    let body = ConverseRequest {
        messages,
        system,
        inference_config: InferenceConfig {
            max_tokens,
            temperature: req.temperature.filter(|t| samples || *t == 1.0),
            top_p: req.top_p.filter(|p| samples || *p >= 0.95),
            stop_sequences: req.stop.iter().map(|s| &**s).collect(),
        },
        tool_config,
        additional_model_request_fields: model_fields,
        output_config,
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Converse request: {e}")))?;
    let action = if req.stream { "converse-stream" } else { "converse" };
    let built = signed(provider, s, model_path(provider, upstream_model, action), body, now_ms)?;
    Ok(UpstreamRequest { answer_tool, ..built })
}

fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
    let mut u = Unsupported::new(provider);
    u.add_choices_and_logprobs(req);
    u.add_penalties(req);
    u.add_response_format_other_than(req, &["text", "json_schema"]);
    // Converse has no switch for parallel tool calls; the models decide.
    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        u.add("parallel_tool_calls");
    }
    u.add_unknown_members(req, MAPPED_EXTRA);
    u
}

/// Members without a typed field that this translator maps.
const MAPPED_EXTRA: &[&str] = &["reasoning_effort"];

/// `toolConfig`. Converse's tool choice has no `none`: withholding the tools expresses it, but
/// Bedrock refuses toolUse/toolResult blocks without a `toolConfig`, so once the conversation
/// holds tool calls `none` cannot be honoured.
/// `strict_tool_use`: the model holds tool inputs to their schemas when asked.
fn tool_config<'r>(
    req: &'r ChatRequest,
    messages: &[Turn<Block>],
    strict_tool_use: bool,
    unsupported: &mut Unsupported,
) -> Option<ToolConfig<'r>> {
    let tools: Vec<ToolEntry> = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| ToolEntry {
            tool_spec: ToolSpec {
                name: &f.name,
                description: f.description.as_deref().filter(|d| !d.is_empty()),
                input_schema: Schema { json: f.parameters.unwrap_or_else(|| turns::no_parameters_schema()) },
                strict: f.strict.filter(|s| *s && strict_tool_use),
            },
        })
        .collect();
    if tools.is_empty() {
        return None;
    }
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(ToolChoice::Mode(m)) => match &**m {
            "none" => {
                let has_tool_blocks =
                    messages.iter().flat_map(|t| &t.content).any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
                if !has_tool_blocks {
                    return None;
                }
                unsupported.add("tool_choice");
                None
            }
            "required" => Some(ToolChoiceOut::Any(Empty {})),
            _ => Some(ToolChoiceOut::Auto(Empty {})),
        },
        Some(ToolChoice::Function(name)) => Some(ToolChoiceOut::Tool(Named { name })),
    };
    Some(ToolConfig { tools, tool_choice })
}

/// System and developer messages become `system`.
struct ConverseTurns;

impl<'r> TurnRules<'r> for ConverseTurns {
    type Block = Block<'r>;
    const NO_TURNS: &'static str = "Bedrock models need at least one user message besides system messages.";

    fn system(&self, i: usize, m: &'r Message, out: &mut Vec<Block<'r>>) -> Result<(), ApiError> {
        turns::system_texts(i, m, "Bedrock", |text, cache_control| push_with_cache_point(out, Block::Text(text), cache_control))
    }

    /// Empty text is left out: Bedrock refuses blank text blocks.
    fn content(&self, i: usize, content: Option<&'r Content>, role: Role) -> Result<Vec<Block<'r>>, ApiError> {
        turns::content_blocks(content, Block::Text, |out, j, p| {
            let block = match &*p.kind {
                "text" => p.text.as_deref().filter(|t| !t.is_empty()).map(Block::Text),
                "refusal" => p.refusal.as_deref().filter(|t| !t.is_empty()).map(Block::Text),
                "image_url" => Some(Block::Image(image(i, j, p)?)),
                other => {
                    return Err(ApiError::invalid_param(
                        format!("messages[{i}].content[{j}]"),
                        format!("Content parts of type `{other}` are not supported by Bedrock models in {} messages.", role.as_str()),
                    ));
                }
            };
            if let Some(block) = block {
                push_with_cache_point(out, block, p.cache_control);
            }
            Ok(())
        })
    }

    fn tool_call(&self, call: AssistantCall<'r>) -> Block<'r> {
        Block::ToolUse(ToolUse { tool_use_id: tool_use_id(call.id), name: call.name, input: call.input })
    }

    fn tool_result(&self, i: usize, m: &'r Message) -> Result<Block<'r>, ApiError> {
        let tool_use_id = tool_use_id(m.tool_call_id.as_deref().unwrap_or_default());
        Ok(Block::ToolResult(ToolResult { tool_use_id, content: result_blocks(i, m.content.as_ref())? }))
    }

    /// Tool results open the user turn, before any text, as the models expect.
    fn leads_turn(block: &Block) -> bool {
        matches!(block, Block::ToolResult(_))
    }

    fn model_opens(&self, i: usize) -> Result<(), ApiError> {
        Err(ApiError::invalid_param(
            format!("messages[{i}].role"),
            "Bedrock conversations must start with a user message (after any system messages).",
        ))
    }
}

/// Converse takes tool use ids of 1 to 64 characters of `[a-zA-Z0-9_-]`
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ToolUseBlock.html). Any
/// other id (such as a Gemini call's, which carries its thought signature) is sent as a digest of
/// itself, the same for the call and for its result.
fn tool_use_id(id: &str) -> Cow<'_, str> {
    let valid = (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        return Cow::Borrowed(id);
    }
    Cow::Owned(thought_signature::digest_id("tooluse_", id))
}

/// Anthropic-style `cache_control` on a part marks a prompt-cache checkpoint; Converse writes
/// checkpoints as `cachePoint` blocks after the content they close.
fn push_with_cache_point<'r>(out: &mut Vec<Block<'r>>, block: Block<'r>, cache_control: Option<&RawValue>) {
    out.push(block);
    if cache_control.is_some() {
        out.push(Block::CachePoint(CACHE_POINT));
    }
}

/// `data:image/<type>;base64,<data>` → an image block. Converse takes images inline or from S3,
/// never by URL.
fn image<'r>(i: usize, j: usize, p: &'r Part) -> Result<Image<'r>, ApiError> {
    let param = || format!("messages[{i}].content[{j}]");
    let url = p.image_url.as_ref().map(|u| &*u.url).unwrap_or_default();
    let inline = url.starts_with("data:").then(|| media_source(url, &param())).transpose()?;
    let Some(Source::Base64 { media_type, data: bytes }) = inline else {
        return Err(ApiError::invalid_param(
            param(),
            "Bedrock models take images inline only: send a base64 data URL (`data:image/png;base64,…`), not an image URL.",
        ));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(ApiError::invalid_param(
                param(),
                format!("Image type `{other}` is not supported by Bedrock (use png, jpeg, gif or webp)."),
            ));
        }
    };
    Ok(Image { format, source: ImageSource { bytes } })
}

/// A tool's output: JSON objects as `json` blocks (models get them structured), other text as
/// `text`, images inline. Bedrock refuses an empty result, so silence is said in words.
fn result_blocks<'r>(i: usize, content: Option<&'r Content>) -> Result<Vec<ResultBlock<'r>>, ApiError> {
    let text_block = |t: &'r str| match serde_json::from_str::<&RawValue>(t) {
        Ok(v) if v.get().starts_with('{') => ResultBlock::Json(v),
        _ => ResultBlock::Text(t),
    };
    let mut out = Vec::new();
    match content {
        Some(Content::Text(t)) if !t.is_empty() => out.push(text_block(t)),
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match &*p.kind {
                    "text" => out.extend(p.text.as_deref().filter(|t| !t.is_empty()).map(ResultBlock::Text)),
                    "image_url" => out.push(ResultBlock::Image(image(i, j, p)?)),
                    other => {
                        return Err(ApiError::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            format!("Content parts of type `{other}` are not supported by Bedrock models in tool messages."),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if out.is_empty() {
        out.push(ResultBlock::Text("(empty)"));
    }
    Ok(out)
}

// ---- response --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    #[serde(borrow)]
    output: Output<'a>,
    #[serde(borrow)]
    stop_reason: Str<'a>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct Output<'a> {
    #[serde(borrow, default)]
    message: Option<OutputMessage<'a>>,
}

#[derive(Deserialize)]
struct OutputMessage<'a> {
    #[serde(borrow, default)]
    content: Vec<OutputBlock<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    tool_use: Option<OutputToolUse<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Reasoning<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputToolUse<'a> {
    #[serde(borrow)]
    tool_use_id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    input: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reasoning<'a> {
    #[serde(borrow, default)]
    reasoning_text: Option<ReasoningText<'a>>,
}

#[derive(Deserialize)]
struct ReasoningText<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
}

/// `TokenUsage`. `inputTokens` excludes the tokens read from or written to the prompt cache
/// (`totalTokens` = input + output + cache read + cache write; see the prompt caching guide), which
/// is the gateway's own convention, so the counts map one to one.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct TokenUsage {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    output_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cache_read_input_tokens: u64,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cache_write_input_tokens: u64,
}

impl From<TokenUsage> for Usage {
    fn from(u: TokenUsage) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            cache_read_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_write_input_tokens,
            output_tokens: u.output_tokens,
            reasoning_tokens: 0,
        }
    }
}

/// A JSON schema answered through its tool: the call is the answer, which ends as `stop`.
fn answer_finish(stop_reason: &str, answered_by_tool: bool) -> &'static str {
    match finish_reason(stop_reason) {
        "tool_calls" if answered_by_tool => "stop",
        other => other,
    }
}

/// Converse `stopReason` → OpenAI `finish_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse answers carry no id; OpenAI clients expect one per completion.
fn completion_id(created: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("chatcmpl-bedrock-{created:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn translate_response(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: ConverseResponse = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("a Converse answer", &e, body))?;
    let mut answer = Answer::default();
    let mut answered_by_tool = false;
    for block in r.output.message.iter().flat_map(|m| &m.content) {
        if let Some(t) = &block.text {
            answer.text.push_str(t);
        }
        if let Some(t) = block.reasoning_content.as_ref().and_then(|r| r.reasoning_text.as_ref()).and_then(|r| r.text.as_deref()) {
            answer.reasoning.push_str(t);
        }
        if let Some(call) = &block.tool_use {
            if ctx.answer_tool.as_deref() == Some(&*call.name) {
                answered_by_tool = true;
                answer.text.push_str(call.input.get());
            } else {
                answer.add_tool_call(&call.tool_use_id, &call.name, call.input.get());
            }
        }
    }
    let finish = Some(answer_finish(&r.stop_reason, answered_by_tool));
    completion::encode(&completion_id(ctx.created), ctx.created, &ctx.model, answer.into_message(), finish, r.usage.map(Usage::from))
}

// ---- errors ----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
    /// Some AWS front ends capitalise it.
    #[serde(rename = "Message", borrow, default)]
    message_capitalised: Option<Str<'a>>,
    /// The error type, where the header is missing.
    #[serde(rename = "__type", borrow, default)]
    kind: Option<Str<'a>>,
}

/// `ThrottlingException:http://internal.amazon.com/…` or `com.amazon.coral#ThrottlingException`
/// → `ThrottlingException`.
fn error_name(raw: &str) -> &str {
    let name = raw.split(':').next().unwrap_or(raw);
    name.rsplit('#').next().unwrap_or(name).trim()
}

/// AWS error type → OpenAI status, type and code. Stream exceptions (`throttlingException`) use
/// the same names with a lower-case initial; they arrive without a status of their own.
fn map_error(status: Option<u16>, kind: &str, message: String) -> ApiError {
    let lower = kind.to_ascii_lowercase();
    let (default_status, openai_kind, code): (u16, &'static str, &'static str) = match lower.as_str() {
        "throttlingexception" => (429, "rate_limit_error", "rate_limit_exceeded"),
        "servicequotaexceededexception" => (429, "rate_limit_error", "quota_exceeded"),
        "validationexception" => (400, "invalid_request_error", "invalid_request"),
        "accessdeniedexception" => (403, "permission_error", "access_denied"),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception"
        | "expiredtokenexception" => (403, "authentication_error", "invalid_credentials"),
        "resourcenotfoundexception" => (404, "invalid_request_error", "model_not_found"),
        "modeltimeoutexception" => (408, "api_error", "model_timeout"),
        "modelnotreadyexception" => (429, "api_error", "model_not_ready"),
        "modelerrorexception" | "modelstreamerrorexception" => (502, "api_error", "model_error"),
        "serviceunavailableexception" => (503, "api_error", "service_unavailable"),
        "internalserverexception" => (500, "api_error", "internal_error"),
        _ => {
            let status = status.unwrap_or(500);
            let e = ApiError::new(status, kind_for_status(status), message);
            return if kind.is_empty() { e } else { e.with_code(kind.to_owned()) };
        }
    };
    // 424 (the model failed) means nothing to OpenAI clients: it is the upstream's fault, a 502.
    let status = status.filter(|s| *s != 424).unwrap_or(default_status);
    ApiError::new(status, openai_kind, message).with_code(code)
}

pub fn translate_error(status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let kind = error_type.or(parsed.as_ref().and_then(|b| b.kind.as_deref())).map(error_name).unwrap_or_default();
    // Only the first paragraph: AWS appends the canonical request to signature errors, and it
    // holds signed header values such as the session token, which clients must never see.
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.as_ref().or(b.message_capitalised.as_ref()))
        .map(|m| m.split("\n\n").next().unwrap_or_default().trim().to_owned());
    let message = match message {
        Some(m) if kind.is_empty() => m,
        Some(m) => format!("{kind}: {m}"),
        None => super::status_message(status, body),
    };
    map_error(Some(status), kind, message)
}

// ---- embeddings --------------------------------------------------------------------------------

/// The InvokeModel body format, chosen by model id (which may carry a cross-region prefix such
/// as `us.` or be an ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmbeddingFamily {
    Titan,
    Cohere,
}

impl EmbeddingFamily {
    fn of(model: &str) -> Option<Self> {
        if model.contains("amazon.titan-embed") {
            Some(EmbeddingFamily::Titan)
        } else if model.contains("cohere.embed") {
            Some(EmbeddingFamily::Cohere)
        } else {
            None
        }
    }
}

/// Cohere embed accepts at most 96 texts per call.
const COHERE_MAX_TEXTS: usize = 96;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanRequest<'r> {
    input_text: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u64>,
}

#[derive(Serialize)]
struct CohereRequest<'r> {
    texts: Vec<&'r str>,
    /// OpenAI's API has no notion of query versus document; documents is the neutral choice.
    input_type: &'static str,
}

pub fn build_embeddings(
    provider: &Provider,
    s: &Settings,
    req: &EmbeddingsRequest,
    upstream_model: &str,
    now_ms: u64,
) -> Result<UpstreamRequest, ApiError> {
    let Some(family) = EmbeddingFamily::of(upstream_model) else {
        return Err(ApiError::invalid_param(
            "model",
            format!(
                "Bedrock model `{upstream_model}` has no known embeddings format; the gateway supports amazon.titan-embed-* and cohere.embed-* models."
            ),
        ));
    };
    let texts = req.inputs()?.texts.ok_or_else(|| {
        ApiError::invalid_param(
            "input",
            "Bedrock embedding models take text; send `input` as a string or an array of strings, not token ids.",
        )
    })?;
    let body = match family {
        EmbeddingFamily::Titan => {
            let [text] = texts.as_slice() else {
                return Err(ApiError::invalid_param(
                    "input",
                    format!(
                        "Titan embedding models embed one text per request; got {} inputs. Send `input` as a single string.",
                        texts.len()
                    ),
                ));
            };
            serde_json::to_vec(&TitanRequest { input_text: text, dimensions: req.dimensions })
        }
        EmbeddingFamily::Cohere => {
            if req.dimensions.is_some() {
                return Err(ApiError::invalid_param("dimensions", "Cohere embedding models on Bedrock do not take `dimensions`.")
                    .with_code("unsupported_parameter"));
            }
            if texts.len() > COHERE_MAX_TEXTS {
                return Err(ApiError::invalid_param(
                    "input",
                    format!("Cohere embedding models take at most {COHERE_MAX_TEXTS} inputs per request; got {}.", texts.len()),
                ));
            }
            serde_json::to_vec(&CohereRequest { texts: texts.iter().map(|t| &**t).collect(), input_type: "search_document" })
        }
    }
    .map_err(|e| ApiError::internal(format!("could not encode the embeddings request: {e}")))?;
    signed(provider, s, model_path(provider, upstream_model, "invoke"), body, now_ms)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse<'a> {
    #[serde(borrow)]
    embedding: &'a RawValue,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct CohereResponse<'a> {
    /// An array of vectors, or `{"float": [...]}` when embedding types were requested.
    #[serde(borrow)]
    embeddings: &'a RawValue,
    #[serde(default)]
    meta: Option<CohereMeta>,
}

#[derive(Deserialize)]
struct CohereByType<'a> {
    #[serde(borrow)]
    float: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct CohereMeta {
    #[serde(default)]
    billed_units: Option<BilledUnits>,
}

#[derive(Deserialize)]
struct BilledUnits {
    #[serde(default)]
    input_tokens: Option<u64>,
}

pub fn translate_embeddings(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let bad = |e: serde_json::Error| super::unexpected_answer("an embedding", &e, body);
    let tokens = |n: u64| Usage { input_tokens: n, ..Default::default() };
    let (vectors, usage) = match EmbeddingFamily::of(&ctx.model) {
        Some(EmbeddingFamily::Cohere) => {
            let r: CohereResponse = serde_json::from_slice(body).map_err(bad)?;
            let vectors = match serde_json::from_str::<Vec<&RawValue>>(r.embeddings.get()) {
                Ok(v) => v,
                Err(_) => serde_json::from_str::<CohereByType>(r.embeddings.get()).map_err(bad)?.float,
            };
            (vectors, r.meta.and_then(|m| m.billed_units).and_then(|b| b.input_tokens).map(tokens))
        }
        _ => {
            let r: TitanResponse = serde_json::from_slice(body).map_err(bad)?;
            (vec![r.embedding], r.input_text_token_count.map(tokens))
        }
    };
    let body = embeddings::list_response(&ctx.model, &vectors, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}

// ---- streaming -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    #[serde(default)]
    content_block_index: u32,
    #[serde(borrow, default)]
    start: Option<StartBody<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    #[serde(borrow, default)]
    tool_use: Option<StartToolUse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartToolUse<'a> {
    #[serde(borrow)]
    tool_use_id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta<'a> {
    #[serde(default)]
    content_block_index: u32,
    #[serde(borrow)]
    delta: DeltaBody<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaBody<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    tool_use: Option<DeltaToolUse<'a>>,
    #[serde(borrow, default)]
    reasoning_content: Option<DeltaReasoning<'a>>,
}

#[derive(Deserialize)]
struct DeltaToolUse<'a> {
    #[serde(borrow)]
    input: Str<'a>,
}

#[derive(Deserialize)]
struct DeltaReasoning<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    #[serde(borrow)]
    stop_reason: Str<'a>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct ExceptionBody<'a> {
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
}

/// Translates ConverseStream events (decoded by the event-stream framer) chunk by chunk.
/// `messageStop` carries the finish reason and `metadata` the usage, in that order; the stream
/// is complete once both arrived.
#[derive(Debug)]
pub struct StreamState {
    chunks: ChunkWriter,
    usage: Option<TokenUsage>,
    tool_calls: ToolCallIndex,
    stopped: bool,
    metadata: bool,
    done: bool,
    /// The tool whose input is the answer (`ResponseContext::answer_tool`), and its block.
    answer_tool: Option<String>,
    answer_block: Option<u32>,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        let header = ChunkHeader { id: completion_id(ctx.created), created: ctx.created, model: ctx.model.clone() };
        StreamState {
            chunks: ChunkWriter::new(ctx, header),
            usage: None,
            tool_calls: ToolCallIndex::default(),
            stopped: false,
            metadata: false,
            done: false,
            answer_tool: ctx.answer_tool.clone(),
            answer_block: None,
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.done || self.chunks.failed() {
            return;
        }
        let translated = match event.name {
            b"messageStart" => {
                self.chunks.opening(out);
                Ok(())
            }
            b"contentBlockStart" => serde_json::from_slice(&event.data).map(|s| self.block_start(&s, out)),
            b"contentBlockDelta" => serde_json::from_slice(&event.data).map(|d| self.block_delta(&d, out)),
            b"messageStop" => serde_json::from_slice::<MessageStop>(&event.data).map(|m| {
                self.stopped = true;
                self.chunks.finish_reason(out, Some(answer_finish(&m.stop_reason, self.answer_block.is_some())));
                self.maybe_done(out);
            }),
            b"metadata" => serde_json::from_slice::<Metadata>(&event.data).map(|m| {
                self.metadata = true;
                self.usage = m.usage.or(self.usage);
                self.maybe_done(out);
            }),
            name if name.ends_with(b"Exception") => {
                let kind = String::from_utf8_lossy(name);
                let message = serde_json::from_slice::<ExceptionBody>(&event.data)
                    .ok()
                    .and_then(|b| b.message)
                    .map_or_else(|| "The provider reported an error mid-stream.".to_owned(), |m| m.0.into_owned());
                self.chunks.fail(out, &map_error(None, &kind, message));
                Ok(())
            }
            // `contentBlockStop` and event types added later carry nothing to forward.
            _ => Ok(()),
        };
        if let Err(err) = translated {
            self.chunks.fail(out, &malformed_event(&err, &event.data));
        }
    }

    fn block_start(&mut self, s: &BlockStart, out: &mut Vec<u8>) {
        let Some(tool) = s.start.as_ref().and_then(|s| s.tool_use.as_ref()) else { return };
        if self.answer_tool.as_deref() == Some(&*tool.name) {
            self.answer_block = Some(s.content_block_index);
            return;
        }
        let tool_index = self.tool_calls.start(s.content_block_index);
        self.chunks.tool_call(out, tool_index, Some(&tool.tool_use_id), Some(&tool.name), "");
    }

    fn block_delta(&mut self, d: &BlockDelta, out: &mut Vec<u8>) {
        self.chunks.content(out, d.delta.text.as_deref());
        self.chunks.reasoning(out, d.delta.reasoning_content.as_ref().and_then(|r| r.text.as_deref()));
        if self.answer_block == Some(d.content_block_index) {
            self.chunks.content(out, d.delta.tool_use.as_ref().map(|t| &*t.input));
        } else if let Some(tool_index) = self.tool_calls.of(d.content_block_index) {
            self.chunks.tool_arguments(out, tool_index, d.delta.tool_use.as_ref().map(|t| &*t.input));
        }
    }

    fn maybe_done(&mut self, out: &mut Vec<u8>) {
        if !(self.stopped && self.metadata) {
            return;
        }
        self.done = true;
        self.chunks.done(out, self.usage());
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

    fn ended(&self) -> bool {
        self.done
    }

    fn chunks(&self) -> Option<&ChunkWriter> {
        Some(&self.chunks)
    }
}

#[cfg(test)]
#[path = "bedrock_tests.rs"]
mod tests;
