//! The client dialects behind one seam: which API the client speaks, and the answers, stream
//! events and errors it gets, rendered in that API's shape from the gateway's representation
//! (`conversation`). Providers write to a [`StreamWriter`] without knowing the client's API.

use crate::anthropic::message_answer::{self, EventWriter};
use crate::anthropic::messages;
use crate::conversation::answer::{Completion, Finish};
use crate::conversation::request::ChatRequest;
use crate::conversation::text::Text;
use crate::error::ApiError;
use crate::guardrails::{AnswerFindings, AnswerGuard, Restore, StreamChannel};
use crate::openai::OpenAiError;
use crate::openai::chat;
use crate::openai::chat_answer::{self, ChunkWriter};
use crate::openai::response::ChunkHeader;
use crate::openai::{responses, responses_answer};
use crate::usage::Usage;

/// The API a client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`) and embeddings.
    #[default]
    OpenAiChat,
    /// Anthropic Messages (`POST /v1/messages`).
    AnthropicMessages,
    /// OpenAI Responses (`POST /v1/responses`).
    OpenAiResponses,
}

impl Dialect {
    const ALL: [Dialect; 3] = [Dialect::OpenAiChat, Dialect::AnthropicMessages, Dialect::OpenAiResponses];

    /// The dialect's name in access logs and failover plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai_chat",
            Dialect::AnthropicMessages => "anthropic_messages",
            Dialect::OpenAiResponses => "openai_responses",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The client headers of this API that a provider speaking it natively reads: Anthropic's
    /// version and beta flags (https://docs.anthropic.com/en/api/versioning,
    /// https://docs.anthropic.com/en/api/beta-headers). Another provider never gets them.
    pub fn native_headers(self) -> &'static [&'static str] {
        match self {
            Dialect::OpenAiChat | Dialect::OpenAiResponses => &[],
            Dialect::AnthropicMessages => &["anthropic-version", "anthropic-beta"],
        }
    }
}

/// The client's request body as it came, in its dialect: a provider that speaks the same API
/// edits these bytes instead of rendering the request again (the lossless fast path).
#[derive(Debug, Clone, Copy)]
pub struct ClientBody<'b> {
    pub dialect: Dialect,
    pub bytes: &'b [u8],
    /// The client's request headers, for a provider that takes one of its API's headers in the
    /// body instead (Bedrock's `anthropic_beta`).
    pub headers: &'b [(String, String)],
}

#[cfg(test)]
impl<'b> ClientBody<'b> {
    /// A body that came without headers.
    pub fn bare(dialect: Dialect, bytes: &'b [u8]) -> Self {
        ClientBody { dialect, bytes, headers: &[] }
    }
}

/// A chat request in the client's dialect, parsed into the gateway's representation and
/// validated; errors name the offending field as the client wrote it.
pub fn parse_chat(body: ClientBody<'_>) -> Result<ChatRequest<'_>, ApiError> {
    match body.dialect {
        Dialect::OpenAiChat => chat::parse(body.bytes),
        Dialect::AnthropicMessages => messages::parse(body.bytes),
        Dialect::OpenAiResponses => responses::parse(body.bytes),
    }
}

/// The client's name for a field of the representation (whose names are Chat Completions'),
/// as errors and `x-tollgate-dropped-params` give it.
pub fn field_name(dialect: Dialect, field: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let renamed = match (dialect, field) {
        (Dialect::AnthropicMessages, "stop") => "stop_sequences",
        (Dialect::AnthropicMessages, "reasoning_effort") => "thinking",
        (Dialect::AnthropicMessages, "user") => "metadata.user_id",
        (Dialect::AnthropicMessages, "parallel_tool_calls") => "tool_choice.disable_parallel_tool_use",
        (Dialect::AnthropicMessages, "response_format") => "output_config.format",
        (Dialect::OpenAiResponses, "max_tokens" | "max_completion_tokens") => "max_output_tokens",
        (Dialect::OpenAiResponses, "reasoning_effort") => "reasoning.effort",
        (Dialect::OpenAiResponses, "response_format") => "text.format",
        (Dialect::AnthropicMessages | Dialect::OpenAiResponses, _) => {
            // A tool's `function.strict` is the tool's own `strict` in both.
            return match field.strip_prefix("tools[").and_then(|rest| rest.split_once("].function.")) {
                Some((i, member)) => Cow::Owned(format!("tools[{i}].{member}")),
                None => Cow::Borrowed(field),
            };
        }
        _ => return Cow::Borrowed(field),
    };
    Cow::Borrowed(renamed)
}

/// An error about a request, its field named as the client wrote it.
pub fn in_client_terms(dialect: Dialect, mut e: ApiError) -> ApiError {
    if let Some(param) = e.param.take() {
        let named = field_name(dialect, &param).into_owned();
        if named != param {
            e.message = e.message.replace(&format!("`{param}`"), &format!("`{named}`"));
        }
        e.param = Some(named);
    }
    e
}

/// A request to count the input tokens of (Messages' `count_tokens`), parsed.
pub fn parse_count_tokens(body: ClientBody<'_>) -> Result<ChatRequest<'_>, ApiError> {
    match body.dialect {
        Dialect::AnthropicMessages => messages::parse_count_tokens(body.bytes),
        Dialect::OpenAiChat => chat::parse(body.bytes),
        Dialect::OpenAiResponses => responses::parse(body.bytes),
    }
}

/// The client's body with its output limit set to `limit` (budgets clamp it), still in the
/// client's dialect: a failover cluster's attempts parse it as the client sent it.
pub fn with_output_limit(body: ClientBody<'_>, limit: u64) -> Result<Vec<u8>, ApiError> {
    match body.dialect {
        Dialect::OpenAiChat => chat::with_output_limit(body.bytes, limit),
        Dialect::AnthropicMessages => messages::with_output_limit(body.bytes, limit),
        Dialect::OpenAiResponses => responses::with_output_limit(body.bytes, limit),
    }
}

/// A whole answer as the client's body.
pub fn completion_body(dialect: Dialect, completion: Completion) -> Result<Vec<u8>, ApiError> {
    match dialect {
        Dialect::OpenAiChat => chat_answer::completion_body(completion),
        Dialect::AnthropicMessages => message_answer::completion_body(completion),
        Dialect::OpenAiResponses => responses_answer::completion_body(completion),
    }
}

/// An error as the client's response body.
pub fn error_body(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat | Dialect::OpenAiResponses => e.to_json(),
        Dialect::AnthropicMessages => message_answer::error_body(e),
    }
}

/// An error after a stream started, as the client's stream event.
pub fn error_event(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat => e.to_sse_event(),
        Dialect::AnthropicMessages => message_answer::error_event(e),
        // Where the stream's numbering is unknown (it failed before Tollgate read any of it).
        Dialect::OpenAiResponses => responses_answer::error_event(e, 0),
    }
}

/// The identity an answer's stream repeats.
#[derive(Debug, Clone, Default)]
pub struct StreamIdentity {
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub model: String,
}

/// The client's side of a translated stream: a provider reports what its stream says (text,
/// reasoning, tool calls, the finish, the end) and the client's dialect writes it.
#[derive(Debug)]
pub struct StreamWriter {
    render: Render,
    failed: bool,
    /// The guardrails' work on the answer (placeholders restored, findings checked); boxed, as
    /// most streams have none.
    rewriting: Option<Box<Rewriting>>,
}

/// What the guardrails do to the answer and each channel's held-back tail (see
/// [`StreamChannel`]). Reasoning is restored but not checked (see `guardrails::answer`).
#[derive(Debug)]
struct Rewriting {
    restore: Option<Restore>,
    guard: Option<AnswerGuard>,
    found: AnswerFindings,
    text: StreamChannel,
    reasoning: StreamChannel,
    arguments: Vec<(u32, StreamChannel)>,
}

impl Rewriting {
    fn text(&mut self, chunk: &str) -> String {
        self.text.push(self.restore.as_ref(), self.guard.as_ref(), chunk, &mut self.found)
    }

    fn reasoning(&mut self, chunk: &str) -> String {
        self.reasoning.push(self.restore.as_ref(), None, chunk, &mut self.found)
    }

    fn arguments(&mut self, index: u32, chunk: &str) -> String {
        let at = match self.arguments.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                self.arguments.push((index, StreamChannel::default()));
                self.arguments.len() - 1
            }
        };
        let (restore, guard, found) = (self.restore.as_ref(), self.guard.as_ref(), &mut self.found);
        self.arguments.get_mut(at).map(|(_, c)| c.push(restore, guard, chunk, found)).unwrap_or_default()
    }

    fn flush_text(&mut self) -> String {
        self.text.flush(self.restore.as_ref(), self.guard.as_ref(), &mut self.found)
    }

    fn flush_reasoning(&mut self) -> String {
        self.reasoning.flush(self.restore.as_ref(), None, &mut self.found)
    }

    /// The content-blocked error, once a finding blocked the answer.
    fn blocked(&self) -> Option<ApiError> {
        let guard = self.guard.as_ref().filter(|_| !self.found.blocked.is_empty())?;
        Some(answer_blocked(&guard.names(&self.found.blocked)))
    }
}

/// The error that replaces an answer the guardrails block (the request side's refusal, told
/// about the answer).
pub fn answer_blocked(detectors: &str) -> ApiError {
    ApiError::new(
        400,
        "invalid_request_error",
        format!("The provider's answer was blocked by the gateway's guardrails: it contains {detectors}."),
    )
    .with_code("content_blocked")
}

#[derive(Debug)]
enum Render {
    OpenAiChat(ChunkWriter),
    AnthropicMessages(EventWriter),
    OpenAiResponses(responses_answer::EventWriter),
}

impl StreamWriter {
    /// `client_wants_usage`: the client asked for the usage in the stream (OpenAI's
    /// `stream_options.include_usage`; Messages streams always carry it).
    pub fn new(dialect: Dialect, identity: StreamIdentity, client_wants_usage: bool) -> Self {
        let StreamIdentity { id, created, model } = identity;
        let render = match dialect {
            Dialect::OpenAiChat => Render::OpenAiChat(ChunkWriter::new(ChunkHeader::new(id, created, model), client_wants_usage)),
            Dialect::AnthropicMessages => Render::AnthropicMessages(EventWriter::new(id, model)),
            Dialect::OpenAiResponses => Render::OpenAiResponses(responses_answer::EventWriter::new(id, created, model)),
        };
        StreamWriter { render, failed: false, rewriting: None }
    }

    /// The answer's id, once the provider's stream names it.
    pub fn set_id(&mut self, id: String) {
        match &mut self.render {
            Render::OpenAiChat(w) => w.header.set_id(id),
            Render::AnthropicMessages(w) => w.id = id,
            Render::OpenAiResponses(w) => w.id = id,
        }
    }

    /// The model that answers, once the provider's stream names it.
    pub fn set_model(&mut self, model: String) {
        match &mut self.render {
            Render::OpenAiChat(w) => w.header.set_model(model),
            Render::AnthropicMessages(w) => w.model = model,
            Render::OpenAiResponses(w) => w.model = model,
        }
    }

    /// The answer begins.
    pub fn opening(&mut self, out: &mut Vec<u8>) {
        match &mut self.render {
            Render::OpenAiChat(w) => w.opening(out),
            Render::AnthropicMessages(w) => w.opening(out),
            Render::OpenAiResponses(w) => w.opening(out),
        }
    }

    /// Placeholders of the request's redaction are written as their originals (a chunk that
    /// ends in what may be the start of one, from a `<`, holds that tail back until the next
    /// chunk of the channel or its end), and the answer's findings are checked (`guard`, holding
    /// back what may be an unfinished finding, see `guardrails::answer`).
    pub fn rewriting(mut self, restore: Option<Restore>, guard: Option<AnswerGuard>) -> Self {
        if restore.is_some() || guard.is_some() {
            self.rewriting = Some(Box::new(Rewriting {
                restore,
                guard,
                found: AnswerFindings::default(),
                text: StreamChannel::default(),
                reasoning: StreamChannel::default(),
                arguments: Vec::new(),
            }));
        }
        self
    }

    /// What the guardrails found in the answer so far.
    pub fn answer_findings(&self) -> Option<&AnswerFindings> {
        self.rewriting.as_ref().map(|r| &r.found)
    }

    /// More of the answer's text; empty text writes nothing.
    pub fn text<'t>(&mut self, out: &mut Vec<u8>, text: Option<impl Into<Text<'t>>>) {
        let Some(text) = text.map(Into::into).filter(|t| !t.is_empty() && !self.failed) else { return };
        let Some(r) = &mut self.rewriting else { return self.write_text(out, text) };
        let reasoning = r.flush_reasoning();
        let text = r.text(&text.decode());
        self.write_reasoning(out, Text::Plain(&reasoning));
        self.write_text(out, Text::Plain(&text));
        self.end_if_blocked(out);
    }

    fn write_text(&mut self, out: &mut Vec<u8>, text: Text) {
        if text.is_empty() {
            return;
        }
        match &mut self.render {
            Render::OpenAiChat(w) => w.text(out, text),
            Render::AnthropicMessages(w) => w.text(out, text),
            Render::OpenAiResponses(w) => w.text(out, &text.decode()),
        }
    }

    /// More of the model's reasoning; empty text writes nothing.
    pub fn reasoning<'t>(&mut self, out: &mut Vec<u8>, text: Option<impl Into<Text<'t>>>) {
        let Some(text) = text.map(Into::into).filter(|t| !t.is_empty() && !self.failed) else { return };
        let Some(r) = &mut self.rewriting else { return self.write_reasoning(out, text) };
        let held = r.flush_text();
        let text = r.reasoning(&text.decode());
        self.write_text(out, Text::Plain(&held));
        self.end_if_blocked(out);
        self.write_reasoning(out, Text::Plain(&text));
    }

    fn write_reasoning(&mut self, out: &mut Vec<u8>, text: Text) {
        if text.is_empty() {
            return;
        }
        match &mut self.render {
            Render::OpenAiChat(w) => w.reasoning(out, text),
            Render::AnthropicMessages(w) => w.reasoning(out, &text.decode()),
            Render::OpenAiResponses(w) => w.reasoning(out, &text.decode()),
        }
    }

    /// The provider's signature over the reasoning (dialects without one leave it out).
    pub fn reasoning_signature(&mut self, signature: &str) {
        match &mut self.render {
            Render::OpenAiChat(_) | Render::OpenAiResponses(_) => {}
            Render::AnthropicMessages(w) => w.reasoning_signature(signature),
        }
    }

    /// Tool call `index` (numbered from 0 in the order calls start) begins; `arguments` is empty
    /// unless the provider sends calls whole.
    pub fn tool_call(&mut self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        self.flush_held(out);
        if self.failed {
            return;
        }
        let rewritten = self.rewriting.as_mut().map(|r| r.arguments(index, arguments));
        let arguments = rewritten.as_deref().unwrap_or(arguments);
        match &mut self.render {
            Render::OpenAiChat(w) => w.tool_call(out, index, id, name, arguments),
            Render::AnthropicMessages(w) => w.tool_call(out, index, id, name, arguments),
            Render::OpenAiResponses(w) => w.tool_call(out, index, id, name, arguments),
        }
        self.end_if_blocked(out);
    }

    /// More arguments of tool call `index`; empty arguments write nothing.
    pub fn tool_arguments(&mut self, out: &mut Vec<u8>, index: u32, arguments: Option<&str>) {
        let Some(arguments) = arguments.filter(|a| !a.is_empty() && !self.failed) else { return };
        let Some(r) = &mut self.rewriting else { return self.write_arguments(out, index, arguments) };
        let arguments = r.arguments(index, arguments);
        self.write_arguments(out, index, &arguments);
        self.end_if_blocked(out);
    }

    fn write_arguments(&mut self, out: &mut Vec<u8>, index: u32, arguments: &str) {
        if arguments.is_empty() {
            return;
        }
        match &mut self.render {
            Render::OpenAiChat(w) => w.tool_arguments(out, index, arguments),
            Render::AnthropicMessages(w) => w.tool_arguments(out, index, arguments),
            Render::OpenAiResponses(w) => w.tool_arguments(out, index, arguments),
        }
    }

    /// Why the model stopped (`None`: the provider did not say).
    pub fn finish(&mut self, out: &mut Vec<u8>, finish: Option<Finish>) {
        self.flush_held(out);
        if self.failed {
            return;
        }
        match &mut self.render {
            Render::OpenAiChat(w) => w.finish(out, finish),
            // Messages and Responses say it at the end, with the usage.
            Render::AnthropicMessages(w) => w.finish(finish),
            Render::OpenAiResponses(w) => w.finish(finish),
        }
    }

    /// The proper end of the stream, with the answer's usage.
    pub fn done(&mut self, out: &mut Vec<u8>, usage: Option<Usage>) {
        self.flush_held(out);
        if self.failed {
            return;
        }
        match &mut self.render {
            Render::OpenAiChat(w) => w.done(out, usage),
            Render::AnthropicMessages(w) => w.done(out, usage),
            Render::OpenAiResponses(w) => w.done(out, usage),
        }
    }

    /// Reports `e` to the client; the stream carries nothing after it.
    pub fn fail(&mut self, out: &mut Vec<u8>, e: &ApiError) {
        self.failed = true;
        match &mut self.render {
            Render::OpenAiResponses(w) => w.fail(out, e),
            _ => self.write_error(out, e),
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Writes what rewriting holds back, before the answer moves on (a tool call, the finish,
    /// the end).
    fn flush_held(&mut self, out: &mut Vec<u8>) {
        let Some(r) = self.rewriting.as_mut().filter(|_| !self.failed) else { return };
        let text = r.flush_text();
        let reasoning = r.flush_reasoning();
        let mut arguments: Vec<(u32, String)> = Vec::with_capacity(r.arguments.len());
        for (index, channel) in &mut r.arguments {
            if r.found.blocked.is_empty() {
                arguments.push((*index, channel.flush(r.restore.as_ref(), r.guard.as_ref(), &mut r.found)));
            }
        }
        self.write_reasoning(out, Text::Plain(&reasoning));
        self.write_text(out, Text::Plain(&text));
        for (index, a) in arguments {
            self.write_arguments(out, index, &a);
        }
        self.end_if_blocked(out);
    }

    /// A finding blocked the answer: the stream ends with the error, after what was written.
    fn end_if_blocked(&mut self, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        if let Some(e) = self.rewriting.as_ref().and_then(|r| r.blocked()) {
            self.fail(out, &e);
        }
    }

    /// The upstream ended: a stream cut before its end (`complete` false) gets the truncation
    /// error, unless it already failed.
    pub fn upstream_ended(&self, out: &mut Vec<u8>, complete: bool) {
        if !complete && !self.failed {
            self.write_error(out, &truncated_error());
        }
    }

    fn write_error(&self, out: &mut Vec<u8>, e: &ApiError) {
        match &self.render {
            Render::OpenAiChat(w) => w.fail(out, e),
            Render::AnthropicMessages(_) => out.extend_from_slice(&message_answer::error_event(e)),
            Render::OpenAiResponses(w) => out.extend_from_slice(&w.error_event(e)),
        }
    }
}

/// The error a client gets when the provider's stream ends before its proper end.
pub fn truncated_error() -> ApiError {
    ApiError::new(502, "api_error", "The provider's stream ended before it was complete; the answer is truncated.")
        .with_code("stream_truncated")
}
