//! Cohere's chat stream events as OpenAI chunks.

use super::*;

/// One event of the v2 stream. Cohere frames events as SSE with `event:` naming the type and the
/// same `type` inside the JSON, then ends with `data: [DONE]`.
#[derive(Deserialize)]
pub(super) struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(super) id: Option<Str<'a>>,
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(borrow, default)]
    pub(super) delta: Option<EventDelta<'a>>,
}

#[derive(Deserialize)]
pub(super) struct EventDelta<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<DeltaMessage<'a>>,
    #[serde(borrow, default)]
    pub(super) finish_reason: Option<Str<'a>>,
    #[serde(default)]
    pub(super) usage: Option<CohereUsage>,
    #[serde(borrow, default)]
    pub(super) error: Option<Str<'a>>,
}

#[derive(Deserialize)]
pub(super) struct DeltaMessage<'a> {
    #[serde(borrow, default)]
    pub(super) content: Option<ContentBlock<'a>>,
    #[serde(borrow, default)]
    pub(super) tool_plan: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) tool_calls: Option<DeltaCall<'a>>,
}

#[derive(Deserialize)]
pub(super) struct DeltaCall<'a> {
    #[serde(borrow, default)]
    pub(super) id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) function: Option<DeltaCallFunction<'a>>,
}

#[derive(Deserialize)]
pub(super) struct DeltaCallFunction<'a> {
    #[serde(borrow, default)]
    pub(super) name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) arguments: Option<Str<'a>>,
}

#[derive(Debug)]
pub struct StreamState {
    pub(super) chunks: StreamWriter,
    pub(super) usage: Option<CohereUsage>,
    pub(super) tool_calls: ToolCallIndex,
    pub(super) ended: bool,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ctx.stream_writer(String::new(), ctx.model.clone()),
            usage: None,
            tool_calls: ToolCallIndex::default(),
            ended: false,
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        // Cohere's closing `[DONE]` follows `message-end`, after which the client already has its own.
        if !event.has_data || self.ended || self.chunks.failed() || &*event.data == b"[DONE]" {
            return;
        }
        let e: StreamEvent = match serde_json::from_slice(&event.data) {
            Ok(e) => e,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        let message = e.delta.as_ref().and_then(|d| d.message.as_ref());
        match &*e.kind {
            "message-start" => {
                if let Some(id) = &e.id {
                    self.chunks.set_id(id.0.clone().into_owned());
                }
                self.chunks.opening(out);
            }
            "content-start" | "content-delta" => {
                if let Some(block) = message.and_then(|m| m.content.as_ref()) {
                    self.chunks.text(out, block.text.as_deref());
                    self.chunks.reasoning(out, block.thinking.as_deref());
                }
            }
            "tool-plan-delta" => self.chunks.text(out, message.and_then(|m| m.tool_plan.as_deref())),
            "tool-call-start" => {
                if let Some(call) = message.and_then(|m| m.tool_calls.as_ref()) {
                    self.tool_call_start(e.index.unwrap_or(0), call, out);
                }
            }
            "tool-call-delta" => {
                if let Some(call) = message.and_then(|m| m.tool_calls.as_ref()) {
                    self.tool_call_delta(e.index.unwrap_or(0), call, out);
                }
            }
            "message-end" => self.message_end(e.delta.as_ref(), out),
            // `content-end`, `tool-call-end`, citation and debug events carry nothing to forward.
            _ => {}
        }
    }

    pub(super) fn tool_call_start(&mut self, index: u32, call: &DeltaCall, out: &mut Vec<u8>) {
        let tool_index = self.tool_calls.start(index);
        let function = call.function.as_ref();
        let name = function.and_then(|f| f.name.as_deref());
        let arguments = function.and_then(|f| f.arguments.as_deref()).unwrap_or_default();
        self.chunks.tool_call(out, tool_index, call.id.as_deref(), name, arguments);
    }

    pub(super) fn tool_call_delta(&mut self, index: u32, call: &DeltaCall, out: &mut Vec<u8>) {
        if let Some(tool_index) = self.tool_calls.of(index) {
            self.chunks.tool_arguments(out, tool_index, call.function.as_ref().and_then(|f| f.arguments.as_deref()));
        }
    }

    pub(super) fn message_end(&mut self, delta: Option<&EventDelta>, out: &mut Vec<u8>) {
        self.usage = delta.and_then(|d| d.usage).or(self.usage);
        let reason = delta.and_then(|d| d.finish_reason.as_deref()).unwrap_or("COMPLETE");
        if let Some(e) = generation_failed(reason, delta.and_then(|d| d.error.as_deref())) {
            return self.chunks.fail(out, &e);
        }
        self.ended = true;
        self.chunks.finish(out, Some(finish_reason(reason)));
        self.chunks.done(out, self.usage());
    }
}

/// A stream cut before `message-end` gets the truncation error.
impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.on_event(event, out);
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn chunks(&self) -> Option<&StreamWriter> {
        Some(&self.chunks)
    }
}
