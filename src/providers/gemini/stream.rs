//! `streamGenerateContent?alt=sse` events as OpenAI chunks.

use super::*;

/// Each `data:` event of `streamGenerateContent?alt=sse` is a partial GenerateContentResponse:
/// new parts, and on the last one `finishReason` and the full usage.
#[derive(Debug)]
pub struct StreamState {
    pub(super) chunks: StreamWriter,
    pub(super) started: bool,
    pub(super) usage: Option<UsageMetadata>,
    pub(super) tool_calls: usize,
    pub(super) finish_reason: Option<Finish>,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ctx.stream_writer(String::new(), ctx.model.clone()),
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
            self.chunks.set_id(completion_id(&r));
            if let Some(model) = &r.model_version {
                self.chunks.set_model(model.to_string());
            }
            self.chunks.opening(out);
        }
        let candidate = r.candidates.first();
        for part in candidate.and_then(|c| c.content.as_ref()).map(|c| c.parts.as_slice()).unwrap_or_default() {
            self.part(part, out);
        }
        let finish = match candidate.and_then(|c| c.finish_reason.as_deref()) {
            Some(reason) => Some(finish_reason(reason, self.tool_calls > 0)),
            None => block_reason(&r).map(|_| Finish::ContentFilter),
        };
        if let Some(finish) = finish {
            self.finish_reason = Some(finish);
            self.chunks.finish(out, Some(finish));
        }
    }

    pub(super) fn part(&mut self, part: &PartIn, out: &mut Vec<u8>) {
        if let Some(call) = &part.function_call {
            // Gemini sends each function call whole, never its arguments in pieces.
            let id = call_id(part, call, self.tool_calls);
            let index = u32::try_from(self.tool_calls).unwrap_or(u32::MAX);
            self.tool_calls += 1;
            self.chunks.tool_call(out, index, Some(&id), Some(&call.name), call.arguments());
        } else if part.thought == Some(true) {
            self.chunks.reasoning(out, part.text.as_deref());
        } else {
            self.chunks.text(out, part.text.as_deref());
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

    fn chunks(&self) -> Option<&StreamWriter> {
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
