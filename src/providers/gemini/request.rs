//! The GenerateContent request built from an OpenAI chat request.

use super::*;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentRequest<'r> {
    pub(super) contents: Vec<Turn<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) system_instruction: Option<SystemInstruction<'r>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tools: Vec<ToolOut<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_config: Option<ToolConfig<'r>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub(super) generation_config: GenerationConfig<'r>,
}

#[derive(Serialize)]
pub(super) struct SystemInstruction<'r> {
    pub(super) parts: Vec<PartOut<'r>>,
}

#[derive(Serialize)]
pub(super) struct Turn<'r> {
    pub(super) role: &'static str,
    pub(super) parts: Vec<PartOut<'r>>,
}

/// A Part is a union written as an object with exactly one data member, which is how serde
/// writes an externally tagged enum; a function call part also carries its thought signature.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum PartOut<'r> {
    Text(&'r str),
    InlineData(Blob<'r>),
    FileData(FileData<'r>),
    FunctionResponse(FunctionResponseOut<'r>),
    #[serde(untagged)]
    FunctionCall(CallPart<'r>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CallPart<'r> {
    pub(super) function_call: FunctionCallOut<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thought_signature: Option<Cow<'r, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Blob<'r> {
    pub(super) mime_type: &'r str,
    pub(super) data: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileData<'r> {
    pub(super) mime_type: &'static str,
    pub(super) file_uri: &'r str,
}

#[derive(Serialize)]
pub(super) struct FunctionCallOut<'r> {
    pub(super) name: &'r str,
    pub(super) args: &'r RawValue,
}

#[derive(Serialize)]
pub(super) struct FunctionResponseOut<'r> {
    pub(super) name: &'r str,
    pub(super) response: ToolOutput<'r>,
}

/// `functionResponse.response` must be an object: tool output that is not one is wrapped.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum ToolOutput<'r> {
    Object(Box<RawValue>),
    Wrapped { content: Cow<'r, str> },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolOut<'r> {
    pub(super) function_declarations: Vec<FunctionDeclaration<'r>>,
}

#[derive(Serialize)]
pub(super) struct FunctionDeclaration<'r> {
    pub(super) name: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters: Option<Schema<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolConfig<'r> {
    pub(super) function_calling_config: FunctionCallingConfig<'r>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FunctionCallingConfig<'r> {
    pub(super) mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_function_names: Vec<&'r str>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerationConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) stop_sequences: Vec<&'r str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_schema: Option<Schema<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_config: Option<ThinkingConfig>,
}

/// `generationConfig.thinkingConfig` (https://ai.google.dev/gemini-api/docs/thinking): a budget
/// for Gemini 2.5 models, a level for Gemini 3 models (the API refuses both at once); thought
/// summaries come back as `reasoning_content`.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(super) struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_budget: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) thinking_level: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) include_thoughts: bool,
}

/// The largest budget every Gemini 2.5 model takes (Flash and Flash-Lite: 24,576; Pro: 32,768).
pub(super) const MAX_THINKING_BUDGET: u64 = 24576;

/// The shipped default form of a model (overridden by a model's `params`).
pub(super) fn reasoning_form(model: &str) -> ReasoningForm {
    if model.starts_with("gemini-3") { ReasoningForm::Level } else { ReasoningForm::Budget }
}

pub(super) fn thinking_config(effort: Effort, form: ReasoningForm, model: &str) -> ThinkingConfig {
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
    pub(super) fn is_empty(&self) -> bool {
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
pub(super) const MAPPED_EXTRA: &[&str] = &["seed", "reasoning_effort"];

pub fn build_request(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    s.unsupported(provider, req).resolve(edits)?;
    super::super::drop_metadata(req, edits);
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
    let body = crate::json::to_vec_sized(&body, req.body_len + 256)
        .map_err(|e| ApiError::internal(format!("could not encode the Gemini request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(path), ..Default::default() })
}

pub(super) fn check_unsupported<'p>(provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
    let mut u = Unsupported::new(provider);
    // Gemini can sample several candidates, but the answer has room for one choice only.
    u.add_choices_and_logprobs(req);
    // Gemini decides alone whether to call functions in parallel.
    if req.parallel_tool_calls == Some(false) {
        u.add("parallel_tool_calls");
    }
    u.add_unknown_members(req, MAPPED_EXTRA);
    u
}

pub(super) fn generation_config<'r>(
    req: &'r ChatRequest,
    model: &str,
    form: Option<ReasoningForm>,
) -> Result<GenerationConfig<'r>, ApiError> {
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
pub(super) struct JsonSchemaFormat<'a> {
    #[serde(borrow, default)]
    pub(super) schema: Option<&'a RawValue>,
}

pub(super) type ResponseFormat<'r> = (Option<&'static str>, Option<Schema<'r>>);

pub(super) fn response_format<'r>(req: &'r ChatRequest) -> Result<ResponseFormat<'r>, ApiError> {
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

pub(super) fn function_declarations<'r>(req: &'r ChatRequest) -> Result<Vec<FunctionDeclaration<'r>>, ApiError> {
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

pub(super) fn tool_config<'r>(req: &'r ChatRequest) -> Option<ToolConfig<'r>> {
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

pub(super) type Converted<'r> = (Option<SystemInstruction<'r>>, Vec<Turn<'r>>);

/// System and developer messages become `systemInstruction`; tool results are user turns of
/// `functionResponse` parts; turns alternate between `user` and `model`.
pub(super) fn convert_messages<'r>(req: &'r ChatRequest) -> Result<Converted<'r>, ApiError> {
    let Conversation { system, turns: mut contents } = turns::conversation(req, &GeminiTurns { req })?;
    for turn in &mut contents {
        sign_first_call(&mut turn.content);
    }
    let system = (!system.is_empty()).then_some(SystemInstruction { parts: system });
    Ok((system, contents.into_iter().map(|t| Turn { role: t.role, parts: t.content }).collect()))
}

/// Gemini 3 wants a signature on the first function call of each model turn; where the client's
/// history carries none, Google's placeholder stands in (see `thought_signature`).
pub(super) fn sign_first_call(parts: &mut [PartOut]) {
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

pub(super) struct GeminiTurns<'r, 'a> {
    /// Where tool results find the names of the functions that made them.
    pub(super) req: &'r ChatRequest<'a>,
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
        turns::content_blocks(
            content,
            |t| PartOut::Text(t),
            |out, j, p| {
                out.extend(part_out(i, j, p, role)?);
                Ok(())
            },
        )
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
pub(super) fn called_function<'r>(req: &'r ChatRequest, i: usize, id: &str) -> Result<&'r str, ApiError> {
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

pub(super) fn tool_output<'r>(i: usize, m: &'r Message) -> Result<ToolOutput<'r>, ApiError> {
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

pub(super) fn part_out<'r>(i: usize, j: usize, p: &'r Part, role: Role) -> Result<Option<PartOut<'r>>, ApiError> {
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
pub(super) fn media<'r>(url: &'r str, param: &str) -> Result<PartOut<'r>, ApiError> {
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

pub(super) fn mime_from_extension(url: &str) -> Option<&'static str> {
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

/// `countTokens` on the request's `generateContent` body: wrapped in `generateContentRequest`
/// with its model for the Gemini API, which then counts the system instruction and tools too
/// (https://ai.google.dev/api/tokens#method:-models.counttokens); as it is for Vertex AI
/// (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/count-tokens).
pub fn build_count_tokens(provider: &Provider, s: &Settings, req: &ChatRequest, upstream_model: &str) -> Result<UpstreamRequest, ApiError> {
    let built = build_request(provider, s, req, upstream_model, &mut Edits::default())?;
    let path = Some(endpoint(s, upstream_model, "countTokens")?);
    let body = built.body.unwrap_or_default();
    let body = match s.api {
        Api::Vertex => body,
        Api::Gemini => {
            let members = crate::json::members(&body).ok_or_else(|| ApiError::internal("the Gemini request is not a JSON object"))?;
            let model = crate::json::quote(&format!("models/{upstream_model}"));
            let request = crate::json::rewrite(&body, &members, |_| true, &[("model", &model)]);
            let mut wrapped = b"{\"generateContentRequest\":".to_vec();
            wrapped.extend_from_slice(&request);
            wrapped.push(b'}');
            wrapped
        }
    };
    Ok(UpstreamRequest { body: Some(body), path, ..Default::default() })
}
