//! OpenAI and OpenAI-compatible hosts (vLLM, Ollama, together, Groq, …): the body passes through
//! with the model rewritten; Tollgate only edits the members it owns and reads usage back.
//! Reference: https://platform.openai.com/docs/api-reference/chat

mod answer;
mod from_conversation;

use super::{
    BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest,
    thought_signature,
};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::client::{self, ClientBody, Dialect, StreamWriter};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::guardrails::AnswerFindings;
use crate::json;
use crate::json::Str;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::openai::response::WireUsage;
use crate::openai::responses_rewrite::ResponsesRewrite;
use crate::patterns;
use crate::schema::{ParamAction, ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The host understands `stream_options.include_usage`.
    pub stream_usage: bool,
    /// The host serves the Responses API (OpenAI and Azure; OpenAI-compatible hosts get
    /// Responses clients' requests translated into chat).
    pub responses_api: bool,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv, SpecField::StreamUsage]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/v1"
    }

    /// An OpenAI-compatible host must be named.
    fn default_host(spec: &ProviderSpec) -> Option<String> {
        (spec.kind == ProviderKind::Openai).then(|| "api.openai.com".into())
    }

    fn requires_key(kind: ProviderKind) -> bool {
        kind == ProviderKind::Openai
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        let CompileInput { spec, base_path, key, .. } = *input;
        Ok(CompiledProvider {
            settings: Settings { stream_usage: spec.stream_usage.unwrap_or(true), responses_api: spec.kind == ProviderKind::Openai },
            chat_path: format!("{base_path}/chat/completions"),
            auth: key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))),
            headers: Vec::new(),
            missing_env: Vec::new(),
        })
    }

    fn param_defaults(&self, upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        default_policy(upstream_model)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        let mut built = build_chat(self, provider, req, client, to.model, edits)?;
        if client.dialect == Dialect::OpenAiResponses && self.responses_api {
            built.path = self.responses_path(provider, "");
        }
        Ok(built)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        raw: &[u8],
        to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, req, raw, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_chat(ctx, body)
    }

    fn speaks(&self, dialect: Dialect, _upstream_model: &str) -> bool {
        self.speaks(dialect)
    }

    fn responses_path(&self, provider: &Provider, rest: &str) -> Option<String> {
        self.responses_api.then(|| format!("{}/responses{rest}", provider.base_path))
    }

    fn translate_embeddings(&self, _provider: &Provider, _ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

/// OpenAI reasoning models reject sampling parameters and take `max_completion_tokens`
/// (https://platform.openai.com/docs/guides/reasoning). `gpt-5-chat*` is a non-reasoning model.
pub fn default_policy(model: &str) -> Vec<(&'static str, ParamAction)> {
    let reasoning = ["o1*", "o3*", "o4*", "gpt-5*"].iter().any(|p| patterns::matches(p, model)) && !patterns::matches("gpt-5-chat*", model);
    if !reasoning {
        return Vec::new();
    }
    vec![
        ("temperature", ParamAction::Drop),
        ("top_p", ParamAction::Drop),
        ("presence_penalty", ParamAction::Drop),
        ("frequency_penalty", ParamAction::Drop),
        ("max_tokens", ParamAction::Rename("max_completion_tokens".into())),
    ]
}

impl Settings {
    pub fn speaks(&self, dialect: Dialect) -> bool {
        match dialect {
            Dialect::OpenAiChat => true,
            Dialect::OpenAiResponses => self.responses_api,
            Dialect::AnthropicMessages => false,
        }
    }
}

/// A client that speaks Chat Completions or Responses has its bytes go on, edited where Tollgate
/// owns them (the fast path); another client's request is rendered from the representation first.
pub fn build_chat(
    s: &Settings,
    provider: &Provider,
    req: &ChatRequest,
    client: ClientBody,
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    match client.dialect {
        Dialect::OpenAiChat => build_request(s, req, client.bytes, upstream_model, edits),
        Dialect::OpenAiResponses if s.responses_api => {
            // The provider sets the path (Azure's depends on its API version).
            responses_passthrough(client.bytes, upstream_model, edits)
        }
        _ => {
            let mut u = Unsupported::new(provider);
            from_conversation::check_unsupported(&mut u, req);
            u.resolve(edits)?;
            let rendered = from_conversation::render(req, upstream_model)?;
            let built = build_request(s, req, &rendered, upstream_model, edits)?;
            Ok(UpstreamRequest { body: built.body.or(Some(rendered)), ..built })
        }
    }
}

/// A Responses client's request goes on as it came but for the model and the members the model's
/// parameter policy drops (its renames are Chat Completions' own and do not apply).
pub fn responses_passthrough(raw: &[u8], upstream_model: &str, edits: &Edits) -> Result<UpstreamRequest, ApiError> {
    let members = json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let dropped: Vec<&str> = edits.dropped.iter().map(|d| if d == "max_tokens" { "max_output_tokens" } else { d.as_str() }).collect();
    if dropped.is_empty() && only_model_is(&members, raw, upstream_model) {
        return Ok(UpstreamRequest::default());
    }
    let model = json::quote(upstream_model);
    let in_place = dropped.is_empty().then(|| json::replace_value(raw, &members, "model", &model)).flatten();
    let body = in_place.unwrap_or_else(|| json::rewrite(raw, &members, |k| k != "model" && !dropped.contains(&k), &[("model", &model)]));
    Ok(UpstreamRequest::body(body))
}

pub fn build_request(
    s: &Settings,
    req: &ChatRequest,
    raw: &[u8],
    upstream_model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let members = json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let injected_usage = req.stream && s.stream_usage && req.include_usage != Some(true);
    // Hosts without `stream_options` reject the member (Mistral answers 422) and report streamed
    // usage unasked, so the client's is dropped rather than forwarded.
    if !s.stream_usage && members.iter().any(|m| m.key(raw) == "stream_options") {
        edits.dropped.push("stream_options".into());
    }
    let messages = short_call_ids(req, &members, raw)?;
    if !injected_usage
        && messages.is_none()
        && edits.dropped.is_empty()
        && edits.renamed.is_empty()
        && only_model_is(&members, raw, upstream_model)
    {
        return Ok(UpstreamRequest::default());
    }

    let renamed_values: Vec<(&str, &[u8])> = edits
        .renamed
        .iter()
        .filter_map(|(from, to)| members.iter().rev().find(|m| m.key(raw) == from.as_str()).map(|m| (to.as_str(), m.value(raw))))
        .collect();
    let stream_options;
    let model = json::quote(upstream_model);
    let mut append: Vec<(&str, &[u8])> = vec![("model", &model)];
    append.extend(renamed_values.iter().copied());
    if injected_usage {
        stream_options = with_include_usage(&members, raw);
        append.push(("stream_options", &stream_options));
    }
    if let Some(messages) = &messages {
        append.push(("messages", messages));
    }
    let body = json::rewrite(
        raw,
        &members,
        |k| {
            k != "model"
                && (messages.is_none() || k != "messages")
                && (!injected_usage || k != "stream_options")
                && !edits.dropped.iter().any(|d| d == k)
                && !edits.renamed.iter().any(|(from, to)| from == k || to == k)
        },
        &append,
    );
    Ok(UpstreamRequest { body: Some(body), injected_usage, ..Default::default() })
}

/// OpenAI refuses tool-call ids longer than 40 characters ("Invalid 'messages[2].tool_calls[0].id':
/// string too long. Expected a string with maximum length 40", code `string_above_max_length`).
/// A history with Gemini call ids, which carry their thought signatures, gets `messages` with
/// those ids replaced by digests (the same for a call and its result); `None` otherwise, the
/// usual case, which leaves the body untouched.
fn short_call_ids(req: &ChatRequest, members: &[json::Member], raw: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
    let carried = req.messages.iter().any(|m| {
        m.tool_call_id.as_deref().is_some_and(thought_signature::carries_signature)
            || m.tool_calls.iter().flatten().any(|c| thought_signature::carries_signature(&c.id))
    });
    let Some(member) = members.iter().rev().find(|m| m.key(raw) == "messages").filter(|_| carried) else { return Ok(None) };
    let mut messages: Vec<serde_json::Value> =
        serde_json::from_slice(member.value(raw)).map_err(|e| ApiError::invalid_param("messages", format!("Invalid `messages`: {e}.")))?;
    let shorten = |id: &mut serde_json::Value| {
        if let Some(long) = id.as_str().filter(|s| thought_signature::carries_signature(s)) {
            *id = thought_signature::digest_id("call_", long).into();
        }
    };
    for message in &mut messages {
        if let Some(id) = message.get_mut("tool_call_id") {
            shorten(id);
        }
        for call in message.get_mut("tool_calls").and_then(serde_json::Value::as_array_mut).into_iter().flatten() {
            if let Some(id) = call.get_mut("id") {
                shorten(id);
            }
        }
    }
    serde_json::to_vec(&messages).map(Some).map_err(|e| ApiError::internal(format!("could not encode the messages: {e}")))
}

/// Embeddings pass through with the model rewritten.
pub fn build_embeddings(
    provider: &Provider,
    _req: &EmbeddingsRequest,
    raw: &[u8],
    upstream_model: &str,
) -> Result<UpstreamRequest, ApiError> {
    let members = json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let path = Some(format!("{}/embeddings", provider.base_path));
    if only_model_is(&members, raw, upstream_model) {
        return Ok(UpstreamRequest { path, ..Default::default() });
    }
    let model = json::quote(upstream_model);
    Ok(UpstreamRequest { body: Some(json::rewrite(raw, &members, |k| k != "model", &[("model", &model)])), path, ..Default::default() })
}

#[derive(Deserialize)]
struct EmbeddingsPeek {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[allow(dead_code)]
    data: IgnoredAny,
}

pub fn translate_embeddings(body: &[u8]) -> Result<Translated, ApiError> {
    let peek: EmbeddingsPeek = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("an embedding list", &e, body))?;
    Ok(Translated { body: None, usage: peek.usage.as_ref().map(Usage::from) })
}

/// The body already names `model` exactly once, plainly spelt, with the upstream name: nothing
/// to rewrite, and no duplicate key for a provider to read differently from Tollgate.
pub(super) fn only_model_is(members: &[json::Member], raw: &[u8], upstream_model: &str) -> bool {
    let mut models = members.iter().filter(|m| m.key(raw) == "model");
    match (models.next(), models.next()) {
        (Some(m), None) => {
            raw.get(m.key.clone()) == Some(b"model".as_slice())
                && m.value(raw).strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")) == Some(upstream_model.as_bytes())
        }
        _ => false,
    }
}

/// The client's `stream_options` with `include_usage: true`, keeping its other members.
fn with_include_usage(members: &[json::Member], raw: &[u8]) -> Vec<u8> {
    let existing = members.iter().rev().find(|m| m.key(raw) == "stream_options").map(|m| m.value(raw));
    match existing.and_then(|v| json::members(v).map(|ms| (v, ms))) {
        Some((v, ms)) => json::rewrite(v, &ms, |k| k != "include_usage", &[("include_usage", b"true")]),
        None => b"{\"include_usage\":true}".to_vec(),
    }
}

#[derive(Deserialize)]
struct CompletionPeek {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[allow(dead_code)]
    choices: IgnoredAny,
}

/// The answer as the client's dialect has it: an OpenAI client's untouched, with its usage read.
pub fn translate_chat(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    match (ctx.dialect, ctx.native) {
        (Dialect::OpenAiChat, _) => translate_response(body),
        (Dialect::OpenAiResponses, true) => responses_usage(body),
        _ => answer::translate_completion(ctx, body),
    }
}

/// Responses' `usage`: `input_tokens` counts the cached ones too
/// (https://platform.openai.com/docs/api-reference/responses/object).
#[derive(Deserialize, Default)]
struct ResponsesUsage {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    input_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<ResponsesInputDetails>,
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    output_tokens: u64,
    #[serde(default)]
    output_tokens_details: Option<ResponsesOutputDetails>,
}

#[derive(Deserialize, Default)]
struct ResponsesInputDetails {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    cached_tokens: u64,
}

#[derive(Deserialize, Default)]
struct ResponsesOutputDetails {
    #[serde(default, deserialize_with = "crate::json::null_as_zero")]
    reasoning_tokens: u64,
}

impl From<&ResponsesUsage> for Usage {
    fn from(u: &ResponsesUsage) -> Self {
        let cached = u.input_tokens_details.as_ref().map_or(0, |d| d.cached_tokens).min(u.input_tokens);
        Usage {
            input_tokens: u.input_tokens.saturating_sub(cached),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            output_tokens: u.output_tokens,
            reasoning_tokens: u.output_tokens_details.as_ref().map_or(0, |d| d.reasoning_tokens),
        }
    }
}

#[derive(Deserialize)]
struct ResponsePeek {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

/// A `response.completed` (or `.incomplete`, `.failed`) event: the response with its usage.
#[derive(Deserialize)]
struct ResponseEventPeek {
    #[serde(default)]
    response: Option<ResponsePeek>,
}

fn responses_usage(body: &[u8]) -> Result<Translated, ApiError> {
    if let Some(usage) = super::passthrough_usage::<ResponsesUsage>(body, &[]) {
        return Ok(Translated { body: None, usage: usage.as_ref().map(Usage::from) });
    }
    let peek: ResponsePeek = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("a response", &e, body))?;
    Ok(Translated { body: None, usage: peek.usage.as_ref().map(Usage::from) })
}

/// An event's `sequence_number`, read without parsing the event.
fn sequence_number(data: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sequence_number\":";
    let at = memchr::memmem::find(data, KEY)?.saturating_add(KEY.len());
    let digits = data.get(at..)?.iter().skip_while(|b| b.is_ascii_whitespace()).take_while(|b| b.is_ascii_digit());
    digits.fold(None, |n: Option<u64>, d| Some(n.unwrap_or(0).saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// The events that end a Responses stream.
fn ends_responses(event_name: &[u8]) -> bool {
    matches!(event_name, b"response.completed" | b"response.incomplete" | b"response.failed")
}

pub fn translate_response(body: &[u8]) -> Result<Translated, ApiError> {
    if let Some(usage) = super::passthrough_usage::<WireUsage>(body, &["choices"]) {
        return Ok(Translated { body: None, usage: usage.as_ref().map(Usage::from) });
    }
    let peek: CompletionPeek = serde_json::from_slice(body).map_err(|e| super::unexpected_answer("a chat completion", &e, body))?;
    Ok(Translated { body: None, usage: peek.usage.as_ref().map(Usage::from) })
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    /// An object (OpenAI) or a string (Ollama, TGI).
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    /// vLLM and others put the fields at the top level.
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(borrow, default)]
    message: Option<Str<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    param: Option<Str<'a>>,
    #[serde(borrow, default)]
    code: Option<&'a RawValue>,
}

pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    let envelope = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    let (message, kind, param, code) = match &envelope {
        Some(ErrorEnvelope { error: Some(raw), .. }) => match serde_json::from_str::<ErrorObject>(raw.get()) {
            Ok(o) => (o.message, o.kind, o.param, o.code),
            Err(_) => (serde_json::from_str::<Str>(raw.get()).ok(), None, None, None),
        },
        Some(ErrorEnvelope { error: None, message, kind }) => (message.clone(), kind.clone(), None, None),
        None => (None, None, None, None),
    };
    let message = message.map_or_else(|| super::status_message(status, body), |m| m.0.into_owned());
    let mut e = ApiError::new(status, kind_for_status(status), message);
    if let Some(k) = kind {
        e.kind = k.0.into_owned().into();
    }
    e.param = param.map(|p| p.0.into_owned());
    e.code = code.and_then(code_text).map(Into::into);
    e
}

fn code_text(raw: &RawValue) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw.get()).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A non-streaming answer relayed from a failover cluster's upstream filter (OpenAI format).
pub fn translate_relayed(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    if super::nests_too_deep(body) {
        return Err(super::too_deep_answer("returned a response"));
    }
    match (ctx.operation, ctx.dialect) {
        (super::Operation::Chat, Dialect::OpenAiChat) => translate_response(body),
        // Its usage is what the upstream filter reports.
        (super::Operation::Chat, _) => Ok(Translated::default()),
        (super::Operation::Embeddings, _) => translate_embeddings(body),
        (super::Operation::CountTokens | super::Operation::StoredResponse, _) => Ok(Translated::default()),
    }
}

/// A streamed answer: passed through to an OpenAI client (but for the usage chunk Tollgate asked
/// for on the client's behalf), translated event by event for another.
#[derive(Debug)]
pub struct StreamState {
    mode: Mode,
    /// A Responses stream's last `sequence_number`, which an error Tollgate ends it with follows.
    last_sequence: Option<u64>,
    /// The provider ended the stream with its own error event: nothing more is added.
    upstream_error: bool,
    /// The client's API, in which a cut stream's error is written.
    dialect: Dialect,
    injected_usage: bool,
    usage: Option<Usage>,
    done: bool,
    /// A Responses stream that passes through rewritten by the guardrails.
    rewrite: Option<Box<ResponsesRewrite>>,
}

#[derive(Debug)]
enum Mode {
    Passthrough,
    /// A Responses client and an OpenAI provider: the events go on, the usage is read from the
    /// final one.
    ResponsesPassthrough,
    Translate(answer::ChunkTranslation),
    /// A failover cluster's upstream filter already answers in the client's dialect.
    Relay(Dialect),
}

#[derive(Deserialize)]
struct ChunkPeek {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        let mode = match (ctx.dialect, ctx.native) {
            (Dialect::OpenAiChat, _) if !ctx.rewrites_answer() => Mode::Passthrough,
            (Dialect::OpenAiResponses, true) => Mode::ResponsesPassthrough,
            _ => Mode::Translate(answer::ChunkTranslation::new(ctx)),
        };
        StreamState {
            mode,
            last_sequence: None,
            upstream_error: false,
            dialect: ctx.dialect,
            injected_usage: ctx.injected_usage,
            usage: None,
            done: false,
            rewrite: responses_rewrite(ctx),
        }
    }

    /// The gateway filter's side of a failover cluster's stream, in the client's dialect (its
    /// usage is what the upstream filter reports).
    pub fn relay(ctx: &ResponseContext) -> Self {
        StreamState {
            mode: Mode::Relay(ctx.dialect),
            last_sequence: None,
            upstream_error: false,
            dialect: ctx.dialect,
            injected_usage: ctx.injected_usage,
            usage: None,
            done: false,
            rewrite: responses_rewrite(ctx),
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        match &mut self.mode {
            Mode::Passthrough | Mode::Relay(Dialect::OpenAiChat) => self.pass_through(event, out),
            Mode::Translate(t) => {
                t.on_event(event, &mut self.usage, out);
                self.done = self.done || &*event.data == b"[DONE]";
                false
            }
            // A tail the stream ended on may be cut short: it is not passed on as if it were
            // whole, and it ends nothing (its usage still counts where it reads).
            Mode::Relay(_) | Mode::ResponsesPassthrough if !event.complete => false,
            Mode::Relay(Dialect::AnthropicMessages) => {
                self.done = self.done || event.name == b"message_stop";
                out.extend_from_slice(event.raw);
                true
            }
            Mode::Relay(Dialect::OpenAiResponses) => {
                self.done = self.done || ends_responses(event.name);
                self.pass_responses(event, out)
            }
            Mode::ResponsesPassthrough => {
                self.last_sequence = sequence_number(&event.data).or(self.last_sequence);
                self.upstream_error = self.upstream_error || event.name == b"error" || event.name == b"response.failed";
                if !self.done
                    && ends_responses(event.name)
                    && let Ok(peek) = serde_json::from_slice::<ResponseEventPeek>(&event.data)
                {
                    self.done = true;
                    self.usage = peek.response.and_then(|r| r.usage).as_ref().map(Usage::from).or(self.usage);
                }
                self.pass_responses(event, out)
            }
        }
    }

    /// A Responses event goes on, rewritten when the guardrails rewrite the answer.
    fn pass_responses(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        match &mut self.rewrite {
            Some(r) => {
                r.on_event(&event.data, out);
                false
            }
            None => {
                out.extend_from_slice(event.raw);
                true
            }
        }
    }

    fn pass_through(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        if &*event.data == b"[DONE]" {
            self.done = self.done || event.complete;
        } else if contains(&event.data, b"\"usage\"")
            && let Ok(peek) = serde_json::from_slice::<ChunkPeek>(&event.data)
            && let Some(u) = peek.usage
        {
            self.usage = Some(Usage::from(&u));
            if self.injected_usage && peek.choices.is_empty() {
                return false;
            }
        }
        // A tail the stream ended on may be cut short: its usage counts, but it is not passed
        // on as if it were whole.
        if !event.complete {
            return false;
        }
        out.extend_from_slice(event.raw);
        true
    }
}

impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.on_event(event, out)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn chunks(&self) -> Option<&StreamWriter> {
        match &self.mode {
            Mode::Translate(t) => Some(&t.chunks),
            _ => None,
        }
    }

    fn answer_findings(&self) -> Option<&AnswerFindings> {
        match &self.rewrite {
            Some(r) => Some(r.found()),
            None => self.chunks().and_then(StreamWriter::answer_findings),
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let blocked = self.rewrite.as_ref().is_some_and(|r| r.blocked());
        match &self.mode {
            Mode::Translate(t) => t.chunks.upstream_ended(out, self.done),
            _ if self.done || self.upstream_error || blocked => {}
            Mode::ResponsesPassthrough => {
                let renumbered = self.rewrite.as_ref().map(|r| r.next_sequence());
                let next = renumbered.unwrap_or_else(|| self.last_sequence.map_or(0, |s| s.saturating_add(1)));
                out.extend_from_slice(&crate::openai::responses_answer::error_event(&client::truncated_error(), next));
            }
            _ => out.extend_from_slice(&client::error_event(self.dialect, &client::truncated_error())),
        }
    }
}

/// A Responses stream passing through (from OpenAI, or relayed) is rewritten event by event when
/// the guardrails rewrite the answer (translated streams are rewritten by their `StreamWriter`).
fn responses_rewrite(ctx: &ResponseContext) -> Option<Box<ResponsesRewrite>> {
    let rewrite = ResponsesRewrite::new(ctx.restore.clone(), ctx.guard.clone());
    rewrite.filter(|_| ctx.dialect == Dialect::OpenAiResponses).map(Box::new)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod other_dialects_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat;
    use crate::stream::sse::Framer;

    fn build(body: &str, model: &str, edits: &Edits, stream_usage: bool) -> UpstreamRequest {
        let req = chat::parse(body.as_bytes()).unwrap();
        build_request(&Settings { stream_usage, responses_api: true }, &req, body.as_bytes(), model, &mut edits.clone()).unwrap()
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn unchanged_body_is_not_rebuilt() {
        let b = build(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#, "gpt-4o", &Edits::default(), true);
        assert!(b.body.is_none());
        assert!(!b.injected_usage);
    }

    #[test]
    fn model_is_rewritten_and_everything_else_kept() {
        let b = build(
            r#"{"model":"alias","messages":[{"role":"user","content":"x"}],"seed":1,"logit_bias":{"5":1}}"#,
            "gpt-4o-2024",
            &Edits::default(),
            true,
        );
        let v = json(&b.body.unwrap());
        assert_eq!(v["model"], "gpt-4o-2024");
        assert_eq!(v["seed"], 1);
        assert_eq!(v["logit_bias"]["5"], 1);
    }

    #[test]
    fn duplicate_or_escaped_model_keys_cannot_survive() {
        let b = build(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"mod\u0065l":"gpt-4o"}"#,
            "gpt-4o",
            &Edits::default(),
            true,
        );
        let body = String::from_utf8(b.body.unwrap()).unwrap();
        assert_eq!(body.matches("model").count(), 1, "{body}");
    }

    #[test]
    fn stream_usage_is_injected_when_client_did_not_ask() {
        let b = build(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#, "m", &Edits::default(), true);
        assert!(b.injected_usage);
        assert_eq!(json(&b.body.unwrap())["stream_options"]["include_usage"], true);
        let b = build(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}}"#,
            "m",
            &Edits::default(),
            true,
        );
        assert!(b.injected_usage);
        let v = json(&b.body.unwrap());
        assert_eq!(v["stream_options"], serde_json::json!({"include_obfuscation":false,"include_usage":true}));
        let b = build(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#,
            "m",
            &Edits::default(),
            true,
        );
        assert!(!b.injected_usage);
        assert!(b.body.is_none());
        let b = build(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#, "m", &Edits::default(), false);
        assert!(!b.injected_usage, "hosts without stream_options support are left alone");
        assert!(b.body.is_none());
    }

    #[test]
    fn stream_options_never_reach_hosts_that_reject_them() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let req = chat::parse(body.as_bytes()).unwrap();
        let mut edits = Edits::default();
        let b = build_request(&Settings { stream_usage: false, responses_api: true }, &req, body.as_bytes(), "m", &mut edits).unwrap();
        assert!(!b.injected_usage);
        assert!(json(&b.body.unwrap()).get("stream_options").is_none());
        assert_eq!(edits.dropped, vec!["stream_options".to_string()], "reported in x-tollgate-dropped-params");
    }

    #[test]
    fn drops_and_renames_apply_to_the_raw_body() {
        let edits = Edits {
            dropped: vec!["temperature".into()],
            renamed: vec![("max_tokens".into(), "max_completion_tokens".into())],
            ..Default::default()
        };
        let b = build(r#"{"model":"o3","messages":[{"role":"user","content":"x"}],"temperature":0.2,"max_tokens":50}"#, "o3", &edits, true);
        let v = json(&b.body.unwrap());
        assert!(v.get("temperature").is_none());
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["max_completion_tokens"], 50);
    }

    #[test]
    fn gemini_call_ids_with_signatures_are_shortened_for_openai_and_nothing_else_changes() {
        let long = format!("call_0_tsig_{}", "A".repeat(300));
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":"x"}},
            {{"role":"assistant","tool_calls":[{{"id":"{long}","type":"function","function":{{"name":"f","arguments":"{{}}"}}}},
                                             {{"id":"call_1","type":"function","function":{{"name":"f","arguments":"{{}}"}}}}]}},
            {{"role":"tool","tool_call_id":"{long}","content":"1"}},{{"role":"tool","tool_call_id":"call_1","content":"2"}}],"seed":1}}"#
        );
        let v = json(&build(&body, "gpt-4o", &Edits::default(), true).body.unwrap());
        let short = v["messages"][1]["tool_calls"][0]["id"].as_str().unwrap();
        assert!(short.len() <= 40 && short.starts_with("call_"), "{short}");
        assert_eq!(v["messages"][2]["tool_call_id"], short);
        assert_eq!(
            (&v["messages"][1]["tool_calls"][1]["id"], &v["messages"][3]["tool_call_id"]),
            (&serde_json::json!("call_1"), &serde_json::json!("call_1"))
        );
        assert_eq!(v["seed"], 1);
        let plain = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}"#;
        assert!(build(plain, "gpt-4o", &Edits::default(), true).body.is_none(), "forwarded untouched");
    }

    #[test]
    fn reasoning_models_get_default_policy() {
        assert!(default_policy("o3-mini").iter().any(|(k, a)| *k == "temperature" && *a == ParamAction::Drop));
        assert!(default_policy("gpt-5").iter().any(|(k, _)| *k == "max_tokens"));
        assert!(default_policy("gpt-5-chat-latest").is_empty());
        assert!(default_policy("gpt-4o").is_empty());
    }

    #[test]
    fn response_usage_is_read_and_body_kept() {
        let t = translate_response(br#"{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4}}}"#).unwrap();
        assert!(t.body.is_none());
        let u = t.usage.unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (6, 4, 3));
        let t = translate_response(br#"{"choices":[]}"#).unwrap();
        assert!(t.usage.is_none());
        let e = translate_response(b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(e.status, 502);
        let e = translate_response(br#"{"usage":{}}"#).unwrap_err();
        assert_eq!(e.status, 502, "a body without choices is not a completion");
    }

    #[test]
    fn errors_normalise_every_known_shape() {
        let e = translate_error(429, br#"{"error":{"message":"Slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#);
        assert_eq!(
            (e.status, e.message.as_str(), &*e.kind, e.code.as_deref()),
            (429, "Slow down", "requests", Some("rate_limit_exceeded"))
        );
        let e = translate_error(400, br#"{"object":"error","message":"bad","type":"BadRequestError","code":400}"#);
        assert_eq!((e.message.as_str(), &*e.kind), ("bad", "BadRequestError"));
        let e = translate_error(404, br#"{"error":"model 'x' not found"}"#);
        assert_eq!(e.message, "model 'x' not found");
        let e = translate_error(502, b"<html>\n<b>Bad   Gateway</b></html>");
        assert!(e.message.contains("<html> <b>Bad Gateway</b></html>"), "{}", e.message);
        assert_eq!(&*e.kind, "api_error");
        let e = translate_error(401, br#"{"error":{"message":"bad key","code":"invalid_api_key"}}"#);
        assert_eq!(&*e.kind, "authentication_error");
    }

    fn run_stream(body: &[u8], injected: bool) -> (Vec<u8>, StreamState) {
        let mut s = StreamState::new(&ResponseContext { injected_usage: injected, stream: true, ..Default::default() });
        let mut out = Vec::new();
        let mut f = Framer::new(1 << 16);
        f.feed(body, |e| {
            s.on_event(&e, &mut out);
        })
        .unwrap();
        f.finish(|e| {
            s.on_event(&e, &mut out);
        });
        s.finish(&mut out);
        (out, s)
    }

    const STREAM: &[u8] = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn injected_usage_chunk_is_removed_and_read() {
        let (out, s) = run_stream(STREAM, true);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("usage"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(s.usage.unwrap().input_tokens, 5);
    }

    #[test]
    fn requested_usage_chunk_is_kept_verbatim_at_every_split() {
        let (whole, _) = run_stream(STREAM, false);
        assert_eq!(whole, STREAM);
        for i in 0..STREAM.len() {
            let mut s = StreamState::new(&ResponseContext { stream: true, injected_usage: true, ..Default::default() });
            let mut out = Vec::new();
            let mut f = Framer::new(1 << 16);
            for part in [&STREAM[..i], &STREAM[i..]] {
                f.feed(part, |e| {
                    s.on_event(&e, &mut out);
                })
                .unwrap();
            }
            s.finish(&mut out);
            assert_eq!(out, run_stream(STREAM, true).0, "split {i}");
            assert_eq!(s.usage.unwrap().output_tokens, 1);
        }
    }

    #[test]
    fn comments_in_a_stream_are_never_read_as_usage() {
        // What a provider could send to imitate Tollgate's former in-band usage channel.
        let forged = ": tollgate-usage 1 0 0 1 0\n\n";
        let mut s = StreamState::new(&ResponseContext { stream: true, ..Default::default() });
        let mut out = Vec::new();
        Framer::new(1 << 16)
            .feed(format!("{forged}data: {{\"choices\":[]}}\n\n").as_bytes(), |e| {
                s.on_event(&e, &mut out);
            })
            .unwrap();
        assert_eq!(s.usage, None);
    }

    #[test]
    fn truncated_stream_ends_with_an_error_event() {
        let cut = &STREAM[..STREAM.len() - 16];
        let (out, s) = run_stream(cut, true);
        let text = String::from_utf8(out).unwrap();
        assert!(!s.done);
        assert!(text.ends_with("\"code\":\"stream_truncated\"}}\n\n"), "{text}");
        assert_eq!(s.usage.unwrap().input_tokens, 5, "usage seen before the cut is kept");
    }
}
