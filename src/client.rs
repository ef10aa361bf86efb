//! The client dialects behind one seam: which API the client speaks, and the answers, stream
//! events and errors it gets, rendered in that API's shape from the gateway's representation
//! (`conversation`). Providers write to a [`StreamWriter`] without knowing the client's API.

use crate::conversation::answer::{Completion, Finish};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::openai::OpenAiError;
use crate::openai::chat;
use crate::openai::chat_answer::{self, ChunkWriter};
use crate::openai::response::ChunkHeader;
use crate::usage::Usage;

/// The API a client speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`) and embeddings.
    #[default]
    OpenAiChat,
}

impl Dialect {
    const ALL: [Dialect; 1] = [Dialect::OpenAiChat];

    /// The dialect's name in access logs and failover plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai_chat",
        }
    }

    pub fn from_name(name: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// The client's request body as it came, in its dialect: a provider that speaks the same API
/// edits these bytes instead of rendering the request again (the lossless fast path).
#[derive(Debug, Clone, Copy)]
pub struct ClientBody<'b> {
    pub dialect: Dialect,
    pub bytes: &'b [u8],
}

/// A chat request in the client's dialect, parsed into the gateway's representation and
/// validated; errors name the offending field as the client wrote it.
pub fn parse_chat(body: ClientBody<'_>) -> Result<ChatRequest<'_>, ApiError> {
    match body.dialect {
        Dialect::OpenAiChat => chat::parse(body.bytes),
    }
}

/// The client's body with its output limit set to `limit` (budgets clamp it), still in the
/// client's dialect: a failover cluster's attempts parse it as the client sent it.
pub fn with_output_limit(body: ClientBody<'_>, limit: u64) -> Result<Vec<u8>, ApiError> {
    match body.dialect {
        Dialect::OpenAiChat => chat::with_output_limit(body.bytes, limit),
    }
}

/// A whole answer as the client's body.
pub fn completion_body(dialect: Dialect, completion: Completion) -> Result<Vec<u8>, ApiError> {
    match dialect {
        Dialect::OpenAiChat => chat_answer::completion_body(completion),
    }
}

/// An error as the client's response body.
pub fn error_body(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat => e.to_json(),
    }
}

/// An error after a stream started, as the client's stream event.
pub fn error_event(dialect: Dialect, e: &ApiError) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat => e.to_sse_event(),
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
}

#[derive(Debug)]
enum Render {
    OpenAiChat(ChunkWriter),
}

impl StreamWriter {
    /// `client_wants_usage`: the client asked for the usage in the stream (OpenAI's
    /// `stream_options.include_usage`).
    pub fn new(dialect: Dialect, identity: StreamIdentity, client_wants_usage: bool) -> Self {
        let StreamIdentity { id, created, model } = identity;
        let render = match dialect {
            Dialect::OpenAiChat => Render::OpenAiChat(ChunkWriter::new(ChunkHeader { id, created, model }, client_wants_usage)),
        };
        StreamWriter { render, failed: false }
    }

    /// The answer's id, once the provider's stream names it.
    pub fn set_id(&mut self, id: String) {
        match &mut self.render {
            Render::OpenAiChat(w) => w.header.id = id,
        }
    }

    /// The model that answers, once the provider's stream names it.
    pub fn set_model(&mut self, model: String) {
        match &mut self.render {
            Render::OpenAiChat(w) => w.header.model = model,
        }
    }

    /// The answer begins.
    pub fn opening(&self, out: &mut Vec<u8>) {
        match &self.render {
            Render::OpenAiChat(w) => w.opening(out),
        }
    }

    /// More of the answer's text; empty text writes nothing.
    pub fn text(&self, out: &mut Vec<u8>, text: Option<&str>) {
        let Some(text) = text.filter(|t| !t.is_empty()) else { return };
        match &self.render {
            Render::OpenAiChat(w) => w.text(out, text),
        }
    }

    /// More of the model's reasoning; empty text writes nothing.
    pub fn reasoning(&self, out: &mut Vec<u8>, text: Option<&str>) {
        let Some(text) = text.filter(|t| !t.is_empty()) else { return };
        match &self.render {
            Render::OpenAiChat(w) => w.reasoning(out, text),
        }
    }

    /// Tool call `index` (numbered from 0 in the order calls start) begins; `arguments` is empty
    /// unless the provider sends calls whole.
    pub fn tool_call(&self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        match &self.render {
            Render::OpenAiChat(w) => w.tool_call(out, index, id, name, arguments),
        }
    }

    /// More arguments of tool call `index`; empty arguments write nothing.
    pub fn tool_arguments(&self, out: &mut Vec<u8>, index: u32, arguments: Option<&str>) {
        let Some(arguments) = arguments.filter(|a| !a.is_empty()) else { return };
        match &self.render {
            Render::OpenAiChat(w) => w.tool_arguments(out, index, arguments),
        }
    }

    /// Why the model stopped (`None`: the provider did not say).
    pub fn finish(&self, out: &mut Vec<u8>, finish: Option<Finish>) {
        match &self.render {
            Render::OpenAiChat(w) => w.finish(out, finish),
        }
    }

    /// The proper end of the stream, with the answer's usage.
    pub fn done(&self, out: &mut Vec<u8>, usage: Option<Usage>) {
        match &self.render {
            Render::OpenAiChat(w) => w.done(out, usage),
        }
    }

    /// Reports `e` to the client; the stream carries nothing after it.
    pub fn fail(&mut self, out: &mut Vec<u8>, e: &ApiError) {
        self.failed = true;
        match &self.render {
            Render::OpenAiChat(w) => w.fail(out, e),
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The upstream ended: a stream cut before its end (`complete` false) gets the truncation
    /// error, unless it already failed.
    pub fn upstream_ended(&self, out: &mut Vec<u8>, complete: bool) {
        if !complete && !self.failed {
            match &self.render {
                Render::OpenAiChat(w) => w.fail(out, &truncated_error()),
            }
        }
    }
}

/// The error a client gets when the provider's stream ends before its proper end.
pub fn truncated_error() -> ApiError {
    ApiError::new(502, "api_error", "The provider's stream ended before it was complete; the answer is truncated.")
        .with_code("stream_truncated")
}
