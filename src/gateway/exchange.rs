//! The response story of one chat request: decide between streaming and buffering when the
//! upstream headers arrive, translate each chunk as it comes (never holding more than an
//! unfinished event), and remember usage and outcome for accounting.

use crate::accounting::Usage;
use crate::accounting::budget::Tab;
use crate::config::{Config, Provider};
use crate::openai::ApiError;
use crate::providers::{self, ResponseContext, StreamTranslator};
use crate::stream::{Decoder, StreamError};

#[derive(Debug)]
enum State {
    AwaitingHeaders,
    Streaming {
        framer: Decoder,
        translator: StreamTranslator,
    },
    /// The stream was cut short by Tollgate (event over the size limit): swallow the rest.
    Aborted,
    Buffering,
    Done,
}

/// How the upstream response will be handled.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// Forward chunk by chunk after setting these headers (content-length removed).
    Stream,
    /// Hold the headers until the whole body has arrived.
    Buffer,
}

/// The final response of a buffered exchange.
#[derive(Debug, PartialEq)]
pub struct Finished {
    pub status: u16,
    /// `None`: the upstream body is forwarded unchanged.
    pub body: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Exchange {
    pub provider: usize,
    pub upstream_model: String,
    pub ctx: ResponseContext,
    /// Parameters removed on the way upstream (reported in `x-tollgate-dropped-params`).
    pub dropped: Vec<String>,
    state: State,
    pub status: u16,
    /// The upstream's `x-amzn-errortype` header on an error answer (AWS names the error there).
    pub error_type: Option<String>,
    pub usage: Option<Usage>,
    /// The upstream answer arrived complete (for streams: `[DONE]`/`message_stop` was seen).
    pub completed: bool,
    /// The counters this request touches and its budget reservations.
    pub tab: Tab,
    /// The model name the client asked for.
    pub requested_model: String,
    pub caller: crate::accounting::budget::Caller,
    /// Usage counter scope of the model, also its metrics label.
    pub model_scope: crate::accounting::budget::ScopeId,
    pub started_ms: u64,
    /// When the first streamed body chunk arrived.
    pub first_byte_ms: Option<u64>,
}

impl Exchange {
    pub fn new(provider: usize, upstream_model: String, ctx: ResponseContext, dropped: Vec<String>, tab: Tab) -> Self {
        Exchange {
            provider,
            upstream_model,
            ctx,
            dropped,
            state: State::AwaitingHeaders,
            status: 0,
            error_type: None,
            usage: None,
            completed: false,
            tab,
            requested_model: String::new(),
            caller: Default::default(),
            model_scope: 0,
            started_ms: 0,
            first_byte_ms: None,
        }
    }

    pub fn provider<'c>(&self, config: &'c Config) -> Option<&'c Provider> {
        config.providers.get(self.provider)
    }

    /// Headers that tell the client what served it.
    pub fn client_headers(&self, config: &Config) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(3);
        if let Some(p) = self.provider(config) {
            h.push(("x-tollgate-provider", p.name.clone()));
        }
        h.push(("x-tollgate-model", self.upstream_model.clone()));
        if !self.dropped.is_empty() {
            h.push(("x-tollgate-dropped-params", self.dropped.join(",")));
        }
        h
    }

    pub fn on_response_headers(&mut self, config: &Config, status: u16, content_type: Option<&str>) -> ResponseMode {
        self.status = status;
        let streaming = self.provider(config).filter(|_| self.ctx.stream && (200..300).contains(&status)).and_then(|p| {
            let framer = providers::stream_decoder(p, content_type, config.limits.max_stream_event_bytes)?;
            Some((framer, StreamTranslator::new(p, &self.ctx)))
        });
        match streaming {
            Some((framer, translator)) => {
                self.state = State::Streaming { framer, translator };
                ResponseMode::Stream
            }
            None => {
                self.state = State::Buffering;
                ResponseMode::Buffer
            }
        }
    }

    /// Translates one streamed chunk. `None`: forward the chunk unchanged.
    pub fn on_stream_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> Option<Vec<u8>> {
        let (framer, translator) = match &mut self.state {
            State::Streaming { framer, translator } => (framer, translator),
            State::Aborted => return Some(Vec::new()),
            _ => return None,
        };
        let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 2);
        let mut verbatim = framer.pending_len() == 0;
        let fed = framer.feed(chunk, |event| verbatim &= translator.on_event(&event, &mut out));
        if let Err(error) = fed {
            self.usage = translator.usage();
            self.state = State::Aborted;
            let e = match error {
                StreamError::Overflow { limit } => {
                    ApiError::bad_gateway(format!("The provider sent a stream event larger than the gateway limit of {limit} bytes."))
                        .with_code("stream_event_too_large")
                }
                StreamError::Corrupt(reason) => ApiError::bad_gateway(format!("The provider's stream is corrupt: {reason}.")),
            };
            out.extend_from_slice(&e.to_sse_event());
            return Some(out);
        }
        if end_of_stream {
            framer.finish(|event| verbatim &= translator.on_event(&event, &mut out));
            let before = out.len();
            translator.finish(&mut out);
            verbatim &= out.len() == before;
        }
        self.usage = translator.usage();
        if end_of_stream {
            self.completed = translator.completed();
            self.state = State::Done;
        }
        if verbatim && framer_is_empty(&self.state) && out.len() == chunk.len() { None } else { Some(out) }
    }

    /// Translates a complete buffered response (success or error).
    pub fn on_complete_body(&mut self, config: &Config, body: &[u8]) -> Finished {
        self.state = State::Done;
        let Some(provider) = self.provider(config) else {
            return error_reply(ApiError::internal("provider configuration changed during the request"));
        };
        let status = self.status;
        if !(200..300).contains(&status) {
            return error_reply(providers::translate_error(provider, status, self.error_type.as_deref(), body));
        }
        if self.ctx.stream {
            return error_reply(ApiError::bad_gateway("The provider answered a streaming request without an event stream."));
        }
        match providers::translate_response(provider, &self.ctx, body) {
            Ok(t) => {
                self.usage = t.usage;
                self.completed = true;
                Finished { status, body: t.body }
            }
            Err(e) => error_reply(e),
        }
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. } | State::Aborted)
    }
}

fn framer_is_empty(state: &State) -> bool {
    match state {
        State::Streaming { framer, .. } => framer.pending_len() == 0,
        _ => true,
    }
}

fn error_reply(e: ApiError) -> Finished {
    Finished { status: e.status, body: Some(e.to_json()) }
}
