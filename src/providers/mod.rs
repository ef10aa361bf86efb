//! Provider registry: one module per provider kind implements `ProviderApi` (its translation
//! rules), small modules hold what several translators share (`turns`, `media`, `completion`,
//! `streams`); this file maps each kind to its module (`registry!`, one line per kind).

pub mod anthropic;
mod api;
pub mod azure;
pub mod bedrock;
pub mod cohere;
mod completion;
pub mod gemini;
mod media;
pub mod openai;
mod provider;
mod reasoning;
pub mod sigv4;
mod streams;
mod structured;
mod test_support;
mod thought_signature;
mod turns;

use crate::client::{ClientBody, Dialect, StreamIdentity, StreamWriter};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::json;
use crate::openai::OpenAiError;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{JsonSchemaForm, ParamAction, ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::Decoder;
use crate::stream::sse::Event;
use crate::usage::Usage;
use std::fmt;

pub use api::{ProviderApi, SpecField, StreamFraming, StreamTranslation};
pub use provider::{Provider, Secret};

/// The registry: one line per provider kind, naming its compiled settings (which implement
/// `ProviderApi`), its per-stream state (which implements `StreamTranslation`) and the schema
/// kinds it serves. It generates `KindSettings`, `StreamTranslator` and the per-kind dispatch.
macro_rules! registry {
    ($($variant:ident($settings:ty, $stream:ty): $($kind:ident)|+;)+) => {
        /// Provider-specific compiled settings.
        #[derive(Debug)]
        pub enum KindSettings {
            $($variant($settings),)+
        }

        impl KindSettings {
            /// The provider kind's rules.
            pub fn api(&self) -> &dyn ProviderApi {
                match self {
                    $(KindSettings::$variant(s) => s,)+
                }
            }

            fn stream_translator(&self, ctx: &ResponseContext) -> StreamTranslator {
                match self {
                    $(KindSettings::$variant(_) => StreamTranslator::$variant(<$stream>::new(ctx)),)+
                }
            }
        }

        /// Per-stream translation state.
        #[derive(Debug)]
        pub enum StreamTranslator {
            $($variant($stream),)+
            /// The provider sent an event too deep to read: the client got an error and nothing more.
            Failed {
                usage: Option<Usage>,
            },
        }

        impl StreamTranslator {
            fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
                match self {
                    $(StreamTranslator::$variant(s) => s.translate_event(event, out),)+
                    StreamTranslator::Failed { .. } => false,
                }
            }

            /// The upstream ended: writes what the client still needs (an error if the stream was cut).
            pub fn finish(&mut self, out: &mut Vec<u8>) {
                match self {
                    $(StreamTranslator::$variant(s) => s.finish(out),)+
                    StreamTranslator::Failed { .. } => {}
                }
            }

            /// Usage seen so far (complete once the stream finished normally).
            pub fn usage(&self) -> Option<Usage> {
                match self {
                    $(StreamTranslator::$variant(s) => s.usage(),)+
                    StreamTranslator::Failed { usage } => *usage,
                }
            }

            /// What the guardrails found in the answer so far (in a stream they check).
            pub fn answer_findings(&self) -> Option<&crate::guardrails::AnswerFindings> {
                match self {
                    $(StreamTranslator::$variant(s) => s.answer_findings(),)+
                    StreamTranslator::Failed { .. } => None,
                }
            }

            /// The stream reached its proper end (`[DONE]` / `message_stop`).
            pub fn completed(&self) -> bool {
                match self {
                    $(StreamTranslator::$variant(s) => s.completed(),)+
                    StreamTranslator::Failed { .. } => false,
                }
            }
        }

        /// Compiles the kind's settings after rejecting the schema fields it does not read.
        pub fn compile(input: &CompileInput) -> Result<CompiledProvider<KindSettings>, FieldError> {
            let kind = input.spec.kind;
            match kind {
                $($(ProviderKind::$kind)|+ => {
                    SpecField::reject_unused(input.spec, <$settings>::accepted_fields(kind))?;
                    <$settings>::compile(input).map(|c| c.map(KindSettings::$variant))
                })+
            }
        }

        /// The `:authority` when the config names no `host`.
        pub fn default_host(spec: &ProviderSpec) -> Option<String> {
            match spec.kind {
                $($(ProviderKind::$kind)|+ => <$settings>::default_host(spec),)+
            }
        }

        /// The path prefix when the config names no `base_path`.
        pub fn default_base_path(kind: ProviderKind) -> &'static str {
            match kind {
                $($(ProviderKind::$kind)|+ => <$settings>::default_base_path(kind),)+
            }
        }

        pub fn requires_key(kind: ProviderKind) -> bool {
            match kind {
                $($(ProviderKind::$kind)|+ => <$settings>::requires_key(kind),)+
            }
        }
    };
}

registry! {
    OpenAi(openai::Settings, openai::StreamState): Openai | OpenaiCompatible;
    Anthropic(anthropic::Settings, anthropic::StreamState): Anthropic;
    Gemini(gemini::Settings, gemini::StreamState): Gemini | Vertex;
    Bedrock(bedrock::Settings, bedrock::StreamState): Bedrock;
    Cohere(cohere::Settings, cohere::StreamState): Cohere;
    Azure(azure::Settings, openai::StreamState): Azure;
}

/// What a provider's compile step reads.
pub struct CompileInput<'a> {
    pub spec: &'a ProviderSpec,
    pub base_path: &'a str,
    /// The API key, when `api_key_env` is set and the variable exists.
    pub key: Option<&'a str>,
    /// Environment lookup for further credentials (e.g. AWS keys).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// What a provider's compile step yields besides the common fields: its `settings` and how it is
/// reached.
#[derive(Debug)]
pub struct CompiledProvider<S> {
    pub settings: S,
    pub chat_path: String,
    pub auth: Option<(&'static str, Secret)>,
    pub headers: Vec<(&'static str, String)>,
    /// Environment variables the provider needs that are not set: the config loads with a
    /// warning and requests to the provider fail with an error naming them.
    pub missing_env: Vec<String>,
}

impl<S> CompiledProvider<S> {
    fn map<T>(self, f: impl FnOnce(S) -> T) -> CompiledProvider<T> {
        let CompiledProvider { settings, chat_path, auth, headers, missing_env } = self;
        CompiledProvider { settings: f(settings), chat_path, auth, headers, missing_env }
    }
}

/// A config error relative to the provider's own entry.
#[derive(Debug)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Shipped parameter defaults for a model, overridden by the model's configured `params`.
pub fn param_policy(provider: &Provider, upstream_model: &str, overrides: &[(String, ParamAction)]) -> Vec<(String, ParamAction)> {
    let defaults = provider.settings.api().param_defaults(upstream_model);
    let mut policy: Vec<(String, ParamAction)> =
        defaults.into_iter().filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k)).map(|(k, v)| (k.to_owned(), v)).collect();
    policy.extend(overrides.iter().cloned());
    policy
}

/// Parameter changes made on the way to the provider.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Edits {
    pub dropped: Vec<String>,
    pub renamed: Vec<(String, String)>,
    /// The model's policy on how it takes `reasoning_effort`, when it names one.
    pub reasoning: Option<ReasoningForm>,
    /// The model's policy on how it answers in a `json_schema`, when it names one.
    pub json_schema: Option<JsonSchemaForm>,
}

/// The API operation a request performs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Operation {
    #[default]
    Chat,
    Embeddings,
    /// Counting a chat request's input tokens (Messages' `count_tokens`).
    CountTokens,
    /// Reading or deleting a response OpenAI stored (`GET`/`DELETE /v1/responses/{id}`).
    StoredResponse,
}

/// What a provider needs to build a request besides the request itself: the upstream model and
/// the time (for request signatures).
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'r> {
    pub model: &'r str,
    pub now_ms: u64,
}

/// The upstream request a provider built.
#[derive(Default)]
pub struct UpstreamRequest {
    /// `None`: forward the client's body untouched.
    pub body: Option<Vec<u8>>,
    /// The upstream path when it depends on the request (model or streaming in the path);
    /// `None`: the provider's chat path.
    pub path: Option<String>,
    /// Headers for this request only (e.g. a request signature).
    pub headers: Vec<(&'static str, String)>,
    /// Tollgate asked for `stream_options.include_usage` the client did not ask for.
    pub injected_usage: bool,
    /// The tool whose input is the answer's content (a JSON schema answered through a forced
    /// tool, see `structured`).
    pub answer_tool: Option<String>,
}

/// Header values are left out: they may hold request signatures and session tokens.
impl fmt::Debug for UpstreamRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamRequest")
            .field("body", &self.body.as_ref().map(Vec::len))
            .field("path", &self.path)
            .field("headers", &self.headers.iter().map(|(name, _)| *name).collect::<Vec<_>>())
            .field("injected_usage", &self.injected_usage)
            .field("answer_tool", &self.answer_tool)
            .finish()
    }
}

impl UpstreamRequest {
    pub fn body(body: Vec<u8>) -> Self {
        UpstreamRequest { body: Some(body), ..Default::default() }
    }
}

/// The upstream request for a chat: rendered from the gateway's representation (`req`), or,
/// where the provider speaks the client's dialect, the client's own bytes edited.
pub fn build_chat(
    provider: &Provider,
    req: &ChatRequest,
    client: ClientBody,
    to: &BuildContext,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let api = provider.settings.api();
    if api.speaks(client.dialect, to.model) {
        return api.build_chat(provider, req, client, to, edits);
    }
    if let Some((name, _)) = req.extra.iter().find(|(k, _)| crate::openai::responses::STATEFUL.contains(&&**k)) {
        return Err(ApiError::invalid_param(
            name.0.clone().into_owned(),
            format!(
                "`{}` continues a conversation OpenAI stored; provider `{}` ({}) is stateless: send the whole conversation in `input`.",
                &**name,
                provider.name,
                provider.kind.as_str()
            ),
        )
        .with_code("unsupported_parameter"));
    }
    edits.dropped.extend(req.left_out.iter().cloned());
    if req.has_thinking() {
        let mut req = req.clone();
        req.forget_thinking(api.reads_thinking());
        return api.build_chat(provider, &req, client, to, edits);
    }
    api.build_chat(provider, req, client, to, edits)
}

pub fn build_embeddings(provider: &Provider, req: &EmbeddingsRequest, raw: &[u8], to: &BuildContext) -> Result<UpstreamRequest, ApiError> {
    provider.settings.api().build_embeddings(provider, req, raw, to)
}

/// What the response side needs to know about the request.
#[derive(Debug, Clone, Default)]
pub struct ResponseContext {
    pub operation: Operation,
    /// The API the client speaks, in which its answer is written.
    pub dialect: Dialect,
    /// The provider speaks it too: its answer passes through.
    pub native: bool,
    pub created: u64,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage`).
    pub client_wants_usage: bool,
    pub injected_usage: bool,
    /// Embeddings: the client wants base64 vectors.
    pub base64: bool,
    /// The upstream model, for responses that do not name it.
    pub model: String,
    /// Calls of this tool are the answer's content, not tool calls (`UpstreamRequest::answer_tool`).
    pub answer_tool: Option<String>,
    /// Guardrail placeholders to map back in the answer. A stream that needs it is translated
    /// event by event even from a provider that speaks the client's API (`native` is then false).
    pub restore: Option<crate::guardrails::Restore>,
    /// The guardrails' checks of the answer (`direction: response` policies); a stream that has
    /// them is translated event by event as for `restore`.
    pub guard: Option<crate::guardrails::AnswerGuard>,
}

impl ResponseContext {
    /// The guardrails change the answer's text on its way: a stream is read event by event.
    pub fn rewrites_answer(&self) -> bool {
        self.restore.is_some() || self.guard.is_some()
    }

    /// The client's side of a stream translated from a provider's, before the provider names
    /// the answer's id (and, for some, its model).
    pub fn stream_writer(&self, id: String, model: String) -> StreamWriter {
        StreamWriter::new(self.dialect, StreamIdentity { id, created: self.created, model }, self.client_wants_usage)
            .rewriting(self.restore.clone(), self.guard.clone())
    }
}

/// A translated non-streaming body and what it reported.
#[derive(Debug, Default)]
pub struct Translated {
    /// `None`: the upstream body is already what the client gets.
    pub body: Option<Vec<u8>>,
    pub usage: Option<Usage>,
}

pub fn translate_response(provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    if nests_too_deep(body) {
        return Err(too_deep_answer("returned a response"));
    }
    let api = provider.settings.api();
    match ctx.operation {
        Operation::Chat => api.translate_chat(ctx, body),
        Operation::Embeddings => api.translate_embeddings(provider, ctx, body),
        Operation::CountTokens => api.translate_count_tokens(body),
        // A stored response, in the client's dialect: nothing to translate or account.
        Operation::StoredResponse => Ok(Translated::default()),
    }
}

/// Maps a non-2xx upstream answer to the OpenAI error the client gets. `error_type` is the
/// `x-amzn-errortype` header, where AWS names the error.
pub fn translate_error(provider: &Provider, status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError {
    let mut e = if nests_too_deep(body) {
        // Too deep to read: the status and an excerpt, as for any body the gateway cannot read.
        ApiError::new(status, kind_for_status(status), status_message(status, body))
    } else {
        provider.settings.api().translate_error(status, error_type, body)
    };
    // The translated status: a provider may signal bad credentials otherwise (Cohere's 498).
    if e.status == 401 || e.status == 403 {
        e.message = format!("Provider `{}` rejected the gateway's credentials: {}", provider.name, e.message);
    }
    sane_status(e)
}

/// An error answer is always a 4xx or 5xx, whatever status the upstream used.
pub fn sane_status(mut e: ApiError) -> ApiError {
    if !(400..=599).contains(&e.status) {
        e.status = 502;
    }
    e
}

/// Upstream text quoted in an error message: bounded and on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.get(..body.len().min(200)).unwrap_or_default());
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of top-level member `key` of an answer the client gets unchanged (`Some(None)`:
/// absent), found without parsing the rest, which is mostly the answer's text and is forwarded
/// as it came. `None` when the body is not one JSON object (with only whitespace after it), names
/// `key` more than once, or does not name each of `required` exactly once: the caller then
/// parses it whole, which decides and words the error, as it would have for any answer.
pub fn top_level_member<'b>(body: &'b [u8], key: &str, required: &[&str]) -> Option<Option<&'b [u8]>> {
    let members = json::members(body)?;
    let end = members.last().map_or(0, |m| m.value.end);
    let after = body.get(end..)?;
    let close = after.iter().position(|&b| b == b'}')?;
    if !after.get(close + 1..)?.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return None;
    }
    // One pass, each key read once: how often each required member is named, and `key`'s values.
    let mut named = vec![0usize; required.len()];
    let mut value = None;
    for m in &members {
        // A key without escapes is its own name: compared as bytes, decoded only when escaped.
        let raw = body.get(m.key.clone()).unwrap_or_default();
        let is = |name: &str| raw == name.as_bytes() || (raw.contains(&b'\\') && m.key(body) == name);
        if let Some(count) = required.iter().position(|r| is(r)).and_then(|i| named.get_mut(i)) {
            *count += 1;
        } else if is(key) {
            if value.is_some() {
                return None;
            }
            value = Some(m.value(body));
        }
    }
    named.iter().all(|&n| n == 1).then_some(value)
}

/// The usage member of an answer passed through (see [`top_level_member`]), parsed as `U`;
/// `None` when the quick read cannot vouch for the answer and the caller parses it whole.
pub fn passthrough_usage<'b, U: serde::Deserialize<'b>>(body: &'b [u8], required: &[&str]) -> Option<Option<U>> {
    match top_level_member(body, "usage", required)? {
        Some(value) => serde_json::from_slice::<Option<U>>(value).ok(),
        None => Some(None),
    }
}

/// An upstream answer that does not parse as the `expected` kind of body.
pub fn unexpected_answer(expected: &str, e: &serde_json::Error, body: &[u8]) -> ApiError {
    ApiError::bad_gateway(format!("The provider returned a response that is not {expected} ({e}): {}", excerpt(body)))
}

/// An answer or stream event nests JSON deeper than Tollgate parses ([`json::check_depth`]).
/// Nesting deeper than the limit takes more opening brackets than the limit, and counting them
/// (a loop the compiler vectorises, strings included) is far cheaper than the scan: most answers
/// are only counted.
pub fn nests_too_deep(json: &[u8]) -> bool {
    let opening = json.iter().filter(|&&b| b == b'{' || b == b'[').count();
    opening > json::MAX_DEPTH && json::check_depth(json).is_err()
}

/// An answer or stream event nesting JSON deeper than Tollgate parses: as unreadable as one that
/// does not parse.
pub fn too_deep_answer(what: &str) -> ApiError {
    ApiError::bad_gateway(format!(
        "The provider {what} nesting JSON more than {} levels deep, which the gateway does not read.",
        json::MAX_DEPTH
    ))
}

/// The message of an upstream error whose body holds none the gateway can read.
pub fn status_message(status: u16, body: &[u8]) -> String {
    if body.is_empty() {
        format!("The provider answered HTTP {status}.")
    } else {
        format!("The provider answered HTTP {status}: {}", excerpt(body))
    }
}

/// How a provider frames its streams; `None` when the answer's content type is not its stream
/// framing (the answer is then buffered, e.g. an error).
pub fn stream_decoder(provider: &Provider, content_type: Option<&str>, max_event_bytes: usize) -> Option<Decoder> {
    let content_type = content_type.unwrap_or_default().trim_start().to_ascii_lowercase();
    match provider.settings.api().stream_framing() {
        StreamFraming::ServerSentEvents => content_type.starts_with("text/event-stream").then(|| Decoder::sse(max_event_bytes)),
        StreamFraming::AwsEventStream => {
            content_type.starts_with("application/vnd.amazon.eventstream").then(|| Decoder::event_stream(max_event_bytes))
        }
    }
}

impl StreamTranslator {
    pub fn new(provider: &Provider, ctx: &ResponseContext) -> Self {
        match &provider.settings {
            // Vertex AI's Anthropic publisher streams Anthropic's own events.
            KindSettings::Gemini(s) if s.serves_claude(&ctx.model) => StreamTranslator::Anthropic(anthropic::StreamState::new(ctx)),
            settings => settings.stream_translator(ctx),
        }
    }

    /// The gateway filter's side of a failover cluster's stream, which the upstream filter
    /// already wrote in the client's dialect: relayed as it comes, or, when the guardrails
    /// rewrite the answer, read event by event as from a provider speaking the client's API
    /// (OpenAI chat, Messages; a Responses stream is relayed unrewritten).
    pub fn relay(ctx: &ResponseContext) -> Self {
        let reread = || ResponseContext { native: false, ..ctx.clone() };
        match ctx.dialect {
            Dialect::OpenAiChat if ctx.rewrites_answer() => StreamTranslator::OpenAi(openai::StreamState::new(&reread())),
            Dialect::AnthropicMessages if ctx.rewrites_answer() => StreamTranslator::Anthropic(anthropic::StreamState::new(&reread())),
            _ => StreamTranslator::OpenAi(openai::StreamState::relay(ctx)),
        }
    }

    /// Translates one event into `out`; returns true when `out` got exactly the event's raw bytes.
    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        // Once the stream ended (or failed) nothing more is parsed, so nothing more is checked.
        let parsing = !self.completed() && !matches!(self, StreamTranslator::Failed { .. });
        if parsing && nests_too_deep(&event.data) {
            out.extend_from_slice(&too_deep_answer("sent a stream event").to_sse_event());
            *self = StreamTranslator::Failed { usage: self.usage() };
            return false;
        }
        self.translate_event(event, out)
    }
}

/// OpenAI's `metadata` tags a stored completion; the translated providers have no counterpart
/// (Anthropic's `metadata` holds only `user_id`, which `user` maps to). It changes nothing in the
/// answer, so it is never worth a 400, but the client learns it was not forwarded.
pub fn drop_metadata(req: &ChatRequest, edits: &mut Edits) {
    if req.metadata.is_some() {
        edits.dropped.push("metadata".into());
    }
}

/// Members that do not change the answer, and that the translated providers have no counterpart
/// for.
const IGNORED_PARAMS: &[&str] = &["store", "prompt_cache_key", "prompt_cache_retention", "safety_identifier"];

/// Collects parameters a provider cannot honour; they are dropped when the provider says
/// `drop_unsupported`, otherwise the first one is a 400.
pub struct Unsupported<'p> {
    provider: &'p Provider,
    names: Vec<String>,
}

impl<'p> Unsupported<'p> {
    pub fn new(provider: &'p Provider) -> Self {
        Unsupported { provider, names: Vec::new() }
    }

    pub fn add(&mut self, name: &str) {
        self.names.push(name.to_owned());
    }

    /// `n` above 1 and `logprobs`: the translated answer has room for one choice and no token
    /// log probabilities.
    pub fn add_choices_and_logprobs(&mut self, req: &ChatRequest) {
        if req.n.is_some_and(|n| n > 1) {
            self.add("n");
        }
        if req.logprobs == Some(true) {
            self.add("logprobs");
        }
    }

    pub fn add_penalties(&mut self, req: &ChatRequest) {
        if req.presence_penalty.is_some_and(|v| v != 0.0) {
            self.add("presence_penalty");
        }
        if req.frequency_penalty.is_some_and(|v| v != 0.0) {
            self.add("frequency_penalty");
        }
    }

    /// Claude does not sample while it thinks: "Thinking isn't compatible with `temperature` or
    /// `top_k` modifications"; `top_p` may only be 0.95 to 1
    /// (https://platform.claude.com/docs/en/build-with-claude/extended-thinking).
    pub fn add_sampling_while_thinking(&mut self, req: &ChatRequest) {
        if req.temperature.is_some_and(|t| t != 1.0) {
            self.add("temperature");
        }
        if req.top_p.is_some_and(|p| p < 0.95) {
            self.add("top_p");
        }
    }

    /// Strict function tools, for a model that cannot hold tool inputs to their schemas.
    pub fn add_strict_tools(&mut self, req: &ChatRequest) {
        for (i, t) in req.tools.iter().enumerate() {
            if t.function.as_ref().is_some_and(|f| f.strict == Some(true)) {
                self.add(&format!("tools[{i}].function.strict"));
            }
        }
    }

    /// A `response_format` whose type is not among `supported`.
    pub fn add_response_format_other_than(&mut self, req: &ChatRequest, supported: &[&str]) {
        if req.response_format.as_ref().is_some_and(|f| !supported.contains(&&*f.kind)) {
            self.add("response_format");
        }
    }

    /// Request members without a typed field, except those that change nothing (`IGNORED_PARAMS`)
    /// and those the provider maps itself (`mapped`).
    pub fn add_unknown_members(&mut self, req: &ChatRequest, mapped: &[&str]) {
        for (k, _) in &req.extra {
            if !IGNORED_PARAMS.contains(&&**k) && !mapped.contains(&&**k) {
                self.add(k);
            }
        }
        // Tools a client API runs on its own provider's side (Anthropic's server tools,
        // OpenAI's built-in tools) have no counterpart here.
        for (i, t) in req.tools.iter().enumerate() {
            if t.function.is_none() {
                self.add(&format!("tools[{i}]"));
            }
        }
    }

    pub fn resolve(self, edits: &mut Edits) -> Result<(), ApiError> {
        let Some(first) = self.names.first() else { return Ok(()) };
        if self.provider.drop_unsupported {
            edits.dropped.extend(self.names);
            return Ok(());
        }
        Err(ApiError::invalid_param(
            first.clone(),
            format!(
                "Parameter `{first}` is not supported by provider `{}` ({}); remove it, or set `drop_unsupported` on the provider to have the gateway drop it.",
                self.provider.name,
                self.provider.kind.as_str()
            ),
        )
        .with_code("unsupported_parameter"))
    }
}

#[cfg(test)]
#[path = "passthrough_tests.rs"]
mod passthrough_tests;
