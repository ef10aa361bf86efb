//! Messages stream events as OpenAI chunks.

use super::*;

#[derive(Deserialize)]
pub(super) struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Str<'a>,
    #[serde(borrow, default)]
    pub(super) message: Option<StartMessage<'a>>,
    #[serde(default)]
    pub(super) index: Option<u32>,
    #[serde(borrow, default)]
    pub(super) content_block: Option<ContentBlock<'a>>,
    #[serde(borrow, default)]
    pub(super) delta: Option<StreamDelta<'a>>,
    #[serde(default)]
    pub(super) usage: Option<DeltaUsage>,
    #[serde(borrow, default)]
    pub(super) error: Option<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
pub(super) struct StartMessage<'a> {
    #[serde(borrow)]
    pub(super) id: Str<'a>,
    #[serde(borrow)]
    pub(super) model: Str<'a>,
    #[serde(default)]
    pub(super) usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
pub(super) struct StreamDelta<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) kind: Option<Str<'a>>,
    /// Kept escaped: the client gets the provider's bytes.
    #[serde(borrow, default)]
    pub(super) text: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub(super) partial_json: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) thinking: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pub(super) stop_reason: Option<Str<'a>>,
}

/// `message_delta` usage: cumulative counts; any field may be absent.
#[derive(Deserialize)]
pub(super) struct DeltaUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
}

#[derive(Debug)]
pub struct StreamState {
    pub(super) chunks: StreamWriter,
    pub(super) usage: Option<AnthropicUsage>,
    pub(super) finish_reason: Option<Finish>,
    pub(super) tool_calls: ToolCallIndex,
    pub(super) stopped: bool,
    /// The tool whose input is the answer (`ResponseContext::answer_tool`), and its block.
    pub(super) answer_tool: Option<String>,
    pub(super) answer_block: Option<u32>,
    /// The client speaks Messages: events go on untouched, only their usage is read.
    pub(super) passthrough: bool,
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        StreamState {
            chunks: ctx.stream_writer(String::new(), String::new()),
            usage: None,
            finish_reason: None,
            tool_calls: ToolCallIndex::default(),
            stopped: false,
            answer_tool: ctx.answer_tool.clone(),
            answer_block: None,
            passthrough: ctx.native,
        }
    }

    /// Forwards the event as it came, reading the usage of `message_start` and `message_delta`.
    fn pass_through(&mut self, event: &Event, out: &mut Vec<u8>) {
        // A tail the stream ended on may be cut short: its usage counts, but it is not passed
        // on as if it were whole, and it ends nothing.
        if event.complete {
            out.extend_from_slice(event.raw);
        }
        if self.stopped || !event.has_data {
            return;
        }
        // Only the events that carry usage or end the stream are parsed.
        let kind = event.name;
        if kind == b"message_stop" {
            self.stopped = event.complete;
            return;
        }
        if kind != b"message_start" && kind != b"message_delta" {
            return;
        }
        let Ok(e) = serde_json::from_slice::<StreamEvent>(&event.data) else { return };
        if let Some(m) = e.message {
            self.usage = m.usage.or(self.usage);
        }
        if let Some(u) = e.usage {
            self.merge_usage(&u);
        }
    }

    pub fn on_event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if !event.has_data || self.stopped || self.chunks.failed() {
            return;
        }
        if let Some(text) = text_delta(&event.data) {
            return self.chunks.text(out, Some(text));
        }
        let e: StreamEvent = match serde_json::from_slice(&event.data) {
            Ok(e) => e,
            Err(err) => return self.chunks.fail(out, &malformed_event(&err, &event.data)),
        };
        match &*e.kind {
            "message_start" => {
                if let Some(m) = e.message {
                    self.chunks.set_id(m.id.0.into_owned());
                    self.chunks.set_model(m.model.0.into_owned());
                    self.usage = m.usage.or(self.usage);
                }
                self.chunks.opening(out);
            }
            "content_block_start" => self.block_start(e.index.unwrap_or(0), e.content_block, out),
            "content_block_delta" => {
                if let Some(d) = e.delta {
                    self.block_delta(e.index.unwrap_or(0), &d, out);
                }
            }
            "message_delta" => {
                if let Some(u) = e.usage {
                    self.merge_usage(&u);
                }
                let answered_by_tool = self.answer_block.is_some();
                let reason = e.delta.and_then(|d| d.stop_reason).map(|r| finish_reason(&r).answered_by_tool(answered_by_tool));
                self.finish_reason = reason.or(self.finish_reason);
                self.chunks.finish(out, self.finish_reason);
            }
            "message_stop" => {
                self.stopped = true;
                self.chunks.done(out, self.usage());
            }
            "error" => {
                let (kind, message) = match e.error {
                    Some(d) => (d.kind.0.into_owned(), d.message.map(|m| m.0.into_owned()).unwrap_or_default()),
                    None => (String::new(), "The provider reported an error mid-stream.".into()),
                };
                self.chunks.fail(out, &map_error(500, &kind, message));
            }
            // `ping`, `content_block_stop` and event types added later carry nothing to forward.
            _ => {}
        }
    }

    pub(super) fn block_start(&mut self, index: u32, block: Option<ContentBlock>, out: &mut Vec<u8>) {
        let Some(block) = block else { return };
        match &*block.kind {
            "text" => self.chunks.text(out, block.text),
            "thinking" => self.chunks.reasoning(out, block.thinking),
            "tool_use" if self.answer_tool.is_some() && block.name.as_deref() == self.answer_tool.as_deref() => {
                self.answer_block = Some(index);
            }
            "tool_use" => {
                let tool_index = self.tool_calls.start(index);
                self.chunks.tool_call(out, tool_index, block.id.as_deref(), block.name.as_deref(), "");
            }
            _ => {}
        }
    }

    pub(super) fn block_delta(&mut self, index: u32, d: &StreamDelta, out: &mut Vec<u8>) {
        match d.kind.as_deref() {
            Some("text_delta") => self.chunks.text(out, d.text),
            Some("thinking_delta") => self.chunks.reasoning(out, d.thinking),
            Some("input_json_delta") if self.answer_block == Some(index) => self.chunks.text(out, d.partial_json.as_deref()),
            Some("input_json_delta") => {
                if let Some(tool_index) = self.tool_calls.of(index) {
                    self.chunks.tool_arguments(out, tool_index, d.partial_json.as_deref());
                }
            }
            _ => {}
        }
    }

    pub(super) fn merge_usage(&mut self, d: &DeltaUsage) {
        let mut u = self.usage.unwrap_or_default();
        u.input_tokens = d.input_tokens.unwrap_or(u.input_tokens);
        u.output_tokens = d.output_tokens.unwrap_or(u.output_tokens);
        u.cache_creation_input_tokens = d.cache_creation_input_tokens.unwrap_or(u.cache_creation_input_tokens);
        u.cache_read_input_tokens = d.cache_read_input_tokens.unwrap_or(u.cache_read_input_tokens);
        self.usage = Some(u);
    }
}

/// Most of a stream: a text delta, as Anthropic writes it (compact, members in this order).
const TEXT_DELTA: (&[u8], &[u8], &[u8]) =
    (br#"{"type":"content_block_delta","index":"#, br#","delta":{"type":"text_delta","text":"#, b"}}");

/// The text of an event spelled exactly as [`TEXT_DELTA`], read without the general parse: what
/// the parse would make of it, and the same verdict on the string (serde reads it). Any other
/// spelling is `None` and takes the parse.
pub(super) fn text_delta(data: &[u8]) -> Option<JsonStr<'_>> {
    let (open, middle, close) = TEXT_DELTA;
    let rest = data.strip_prefix(open)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // An index as serde reads a u32, without the leading zeros JSON forbids.
    if !(1..=9).contains(&digits) || (digits > 1 && rest.first() == Some(&b'0')) {
        return None;
    }
    let quoted = rest.get(digits..)?.strip_prefix(middle)?.strip_suffix(close)?;
    if quoted.first() != Some(&b'"') || crate::json::string_end(quoted, 1)? + 1 != quoted.len() {
        return None;
    }
    serde_json::from_slice(quoted).ok()
}

impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        if self.passthrough {
            self.pass_through(event, out);
            return event.complete;
        }
        self.on_event(event, out);
        false
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }

    fn ended(&self) -> bool {
        self.stopped
    }

    fn chunks(&self) -> Option<&StreamWriter> {
        Some(&self.chunks)
    }
}
