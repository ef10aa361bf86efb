//! ConverseStream events as OpenAI chunks.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockStart<'a> {
    #[serde(default)]
    pub(super) content_block_index: u32,
    #[serde(borrow, default)]
    pub(super) start: Option<StartBody<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartBody<'a> {
    #[serde(borrow, default)]
    pub(super) tool_use: Option<StartToolUse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StartToolUse<'a> {
    #[serde(borrow)]
    pub(super) tool_use_id: Str<'a>,
    #[serde(borrow)]
    pub(super) name: Str<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BlockDelta<'a> {
    #[serde(default)]
    pub(super) content_block_index: u32,
    #[serde(borrow)]
    pub(super) delta: DeltaBody<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeltaBody<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) tool_use: Option<DeltaToolUse<'a>>,
    #[serde(borrow, default)]
    pub(super) reasoning_content: Option<DeltaReasoning<'a>>,
}

#[derive(Deserialize)]
pub(super) struct DeltaToolUse<'a> {
    #[serde(borrow)]
    pub(super) input: Str<'a>,
}

#[derive(Deserialize)]
pub(super) struct DeltaReasoning<'a> {
    #[serde(borrow, default)]
    pub(super) text: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) signature: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageStop<'a> {
    #[serde(borrow)]
    pub(super) stop_reason: Str<'a>,
}

#[derive(Deserialize)]
pub(super) struct Metadata {
    #[serde(default)]
    pub(super) usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
pub(super) struct ExceptionBody<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<Str<'a>>,
}

/// Translates ConverseStream events (decoded by the event-stream framer) chunk by chunk.
/// `messageStop` carries the finish reason and `metadata` the usage, in that order; the stream
/// is complete once both arrived.
#[derive(Debug)]
pub struct ConverseStream {
    pub(super) chunks: StreamWriter,
    pub(super) usage: Option<TokenUsage>,
    pub(super) tool_calls: ToolCallIndex,
    pub(super) stopped: bool,
    pub(super) metadata: bool,
    pub(super) done: bool,
    /// The tool whose input is the answer (`ResponseContext::answer_tool`), and its block.
    pub(super) answer_tool: Option<String>,
    pub(super) answer_block: Option<u32>,
}

impl ConverseStream {
    pub fn new(ctx: &ResponseContext) -> Self {
        ConverseStream {
            chunks: ctx.stream_writer(completion_id(ctx.created), ctx.model.clone()),
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
                self.chunks.finish(out, Some(finish_reason(&m.stop_reason).answered_by_tool(self.answer_block.is_some())));
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

    pub(super) fn block_start(&mut self, s: &BlockStart, out: &mut Vec<u8>) {
        let Some(tool) = s.start.as_ref().and_then(|s| s.tool_use.as_ref()) else { return };
        if self.answer_tool.as_deref() == Some(&*tool.name) {
            self.answer_block = Some(s.content_block_index);
            return;
        }
        let tool_index = self.tool_calls.start(s.content_block_index);
        self.chunks.tool_call(out, tool_index, Some(&tool.tool_use_id), Some(&tool.name), "");
    }

    pub(super) fn block_delta(&mut self, d: &BlockDelta, out: &mut Vec<u8>) {
        self.chunks.text(out, d.delta.text.as_deref());
        self.chunks.reasoning(out, d.delta.reasoning_content.as_ref().and_then(|r| r.text.as_deref()));
        if let Some(signature) = d.delta.reasoning_content.as_ref().and_then(|r| r.signature.as_deref()) {
            self.chunks.reasoning_signature(signature);
        }
        if self.answer_block == Some(d.content_block_index) {
            self.chunks.text(out, d.delta.tool_use.as_ref().map(|t| &*t.input));
        } else if let Some(tool_index) = self.tool_calls.of(d.content_block_index) {
            self.chunks.tool_arguments(out, tool_index, d.delta.tool_use.as_ref().map(|t| &*t.input));
        }
    }

    pub(super) fn maybe_done(&mut self, out: &mut Vec<u8>) {
        if !(self.stopped && self.metadata) {
            return;
        }
        self.done = true;
        self.chunks.done(out, self.usage());
    }
}

impl StreamTranslation for ConverseStream {
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

    fn chunks(&self) -> Option<&StreamWriter> {
        Some(&self.chunks)
    }
}
