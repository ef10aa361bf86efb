//! The Anthropic Messages dialect, outbound: the `message` a whole answer becomes, the named
//! events of a streamed one, and Anthropic's error shape
//! (https://docs.anthropic.com/en/api/messages, https://docs.anthropic.com/en/docs/build-with-claude/streaming,
//! https://docs.anthropic.com/en/api/errors).

use crate::conversation::answer::{Completion, Finish};
use crate::conversation::text::Text;
use crate::error::ApiError;
use crate::usage::Usage;
use serde::Serialize;
use serde_json::value::RawValue;

/// Anthropic's `stop_reason`.
pub fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::EndTurn => "end_turn",
        Finish::StopSequence => "stop_sequence",
        Finish::MaxTokens => "max_tokens",
        Finish::ToolUse => "tool_use",
        Finish::ContentFilter => "refusal",
    }
}

/// Anthropic's ids: `msg_…` for messages, `toolu_…` for tool calls; another provider's id gets
/// the prefix (and stays recognisable behind it).
fn anthropic_id(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) { id.to_owned() } else { format!("{prefix}{id}") }
}

#[derive(Serialize)]
struct MessageOut<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: Text<'a> },
    ToolUse { id: String, name: &'a str, input: &'a RawValue },
}

/// Anthropic's `usage`: `input_tokens` excludes the cached and cache-written tokens.
#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        UsageOut {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_write_tokens,
            cache_read_input_tokens: u.cache_read_tokens,
        }
    }
}

/// The `message` body: reasoning first, then the text (or the refusal), then the tool calls.
pub fn completion_body(c: Completion) -> Result<Vec<u8>, ApiError> {
    let Completion { id, model, answer, finish, usage, .. } = c;
    let size = answer.body_size_hint();
    let inputs: Vec<&RawValue> = answer
        .tool_calls
        .iter()
        .map(|call| serde_json::from_str::<&RawValue>(&call.arguments))
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::bad_gateway("The provider returned a tool call whose arguments are not a JSON object."))?;
    let mut content = Vec::with_capacity(answer.tool_calls.len() + 2);
    if !answer.reasoning.is_empty() {
        content.push(BlockOut::Thinking { thinking: &answer.reasoning, signature: answer.reasoning_signature.as_deref().unwrap_or("") });
    }
    let text = match &answer.refusal {
        Some(refusal) => Text::Plain(refusal),
        None => answer.text.as_text(),
    };
    if !text.is_empty() || (answer.tool_calls.is_empty() && content.is_empty()) {
        content.push(BlockOut::Text { text });
    }
    for (call, input) in answer.tool_calls.iter().zip(inputs) {
        content.push(BlockOut::ToolUse { id: anthropic_id("toolu_", call.id), name: call.name, input });
    }
    let message = MessageOut {
        id: anthropic_id("msg_", id),
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: finish.map(stop_reason),
        stop_sequence: None,
        usage: UsageOut::from(&usage.unwrap_or_default()),
    };
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, &message).map(|()| out).map_err(|e| ApiError::internal(format!("could not encode the message: {e}")))
}

/// Anthropic's error `type` for a status (https://docs.anthropic.com/en/api/errors).
pub fn error_type(e: &ApiError) -> &'static str {
    match e.status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ if e.kind == "rate_limit_error" => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":…,"message":…}}`.
pub fn error_body(e: &ApiError) -> Vec<u8> {
    let out = ErrorOut { kind: "error", error: ErrorDetail { kind: error_type(e), message: &e.message } };
    serde_json::to_vec(&out).unwrap_or_else(|_| br#"{"type":"error","error":{"type":"api_error","message":"error"}}"#.to_vec())
}

/// The error as an `event: error` SSE event, for failures after a stream started.
pub fn error_event(e: &ApiError) -> Vec<u8> {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(&error_body(e));
    out.extend_from_slice(b"\n\n");
    out
}

/// The kind of the content block the stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
    /// A tool call, by its index among the answer's tool calls.
    ToolUse(u32),
}

/// The events of one streamed answer: `message_start`, each content block as
/// `content_block_start`, its deltas and `content_block_stop` (blocks numbered from 0 in the
/// order they open), then `message_delta` with the stop reason and the usage, and `message_stop`.
#[derive(Debug)]
pub struct EventWriter {
    pub id: String,
    pub model: String,
    open: Option<Open>,
    /// Blocks opened so far.
    blocks: u32,
    /// The block of each tool call, by tool-call index.
    tool_blocks: Vec<u32>,
    finish: Option<Finish>,
    /// The signature of the reasoning block, written when it closes.
    signature: Option<String>,
}

impl EventWriter {
    pub fn new(id: String, model: String) -> Self {
        EventWriter { id, model, open: None, blocks: 0, tool_blocks: Vec::new(), finish: None, signature: None }
    }

    pub fn opening(&mut self, out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct Start<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            message: MessageOut<'a>,
        }
        let message = MessageOut {
            id: anthropic_id("msg_", &self.id),
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: UsageOut::from(&Usage::default()),
        };
        write(out, "message_start", &Start { kind: "message_start", message });
    }

    pub fn text(&mut self, out: &mut Vec<u8>, text: Text) {
        self.open_block(out, Open::Text, |index| BlockStart {
            kind: "content_block_start",
            index,
            content_block: BlockOut::Text { text: Text::Plain("") },
        });
        self.delta(out, Delta::Text { text });
    }

    pub fn reasoning(&mut self, out: &mut Vec<u8>, text: &str) {
        self.open_block(out, Open::Thinking, |index| BlockStart {
            kind: "content_block_start",
            index,
            content_block: BlockOut::Thinking { thinking: "", signature: "" },
        });
        self.delta(out, Delta::Thinking { thinking: text });
    }

    /// The provider's signature over the reasoning so far.
    pub fn reasoning_signature(&mut self, signature: &str) {
        self.signature = Some(signature.to_owned());
    }

    pub fn tool_call(&mut self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let id = anthropic_id("toolu_", id.unwrap_or_default());
        let empty = serde_json::from_str::<&RawValue>("{}").ok();
        let Some(input) = empty else { return };
        let name = name.unwrap_or_default();
        self.open_block(out, Open::ToolUse(index), |block| BlockStart {
            kind: "content_block_start",
            index: block,
            content_block: BlockOut::ToolUse { id, name, input },
        });
        if self.tool_blocks.len() <= index as usize {
            self.tool_blocks.resize(index as usize + 1, u32::MAX);
        }
        if let Some(slot) = self.tool_blocks.get_mut(index as usize) {
            *slot = self.blocks.saturating_sub(1);
        }
        if !arguments.is_empty() {
            self.delta(out, Delta::InputJson { partial_json: arguments });
        }
    }

    pub fn tool_arguments(&mut self, out: &mut Vec<u8>, index: u32, arguments: &str) {
        // Calls stream one after another; a late delta of an earlier call still names its block.
        if let Some(block) = self.tool_blocks.get(index as usize).copied().filter(|b| *b != u32::MAX) {
            let delta = DeltaEvent { kind: "content_block_delta", index: block, delta: Delta::InputJson { partial_json: arguments } };
            write(out, "content_block_delta", &delta);
        }
    }

    pub fn finish(&mut self, finish: Option<Finish>) {
        self.finish = finish.or(self.finish);
    }

    /// Closes the open block, then `message_delta` (stop reason and usage) and `message_stop`.
    pub fn done(&mut self, out: &mut Vec<u8>, usage: Option<Usage>) {
        self.close_block(out);
        #[derive(Serialize)]
        struct MessageDelta {
            #[serde(rename = "type")]
            kind: &'static str,
            delta: StopDelta,
            usage: UsageOut,
        }
        #[derive(Serialize)]
        struct StopDelta {
            stop_reason: Option<&'static str>,
            stop_sequence: Option<()>,
        }
        let delta = StopDelta { stop_reason: Some(stop_reason(self.finish.unwrap_or(Finish::EndTurn))), stop_sequence: None };
        write(out, "message_delta", &MessageDelta { kind: "message_delta", delta, usage: UsageOut::from(&usage.unwrap_or_default()) });
        #[derive(Serialize)]
        struct Stop {
            #[serde(rename = "type")]
            kind: &'static str,
        }
        write(out, "message_stop", &Stop { kind: "message_stop" });
    }

    fn open_block<'b>(&mut self, out: &mut Vec<u8>, kind: Open, start: impl FnOnce(u32) -> BlockStart<'b>) {
        if self.open == Some(kind) {
            return;
        }
        self.close_block(out);
        write(out, "content_block_start", &start(self.blocks));
        self.open = Some(kind);
        self.blocks = self.blocks.saturating_add(1);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let index = self.blocks.saturating_sub(1);
        if let (Open::Thinking, Some(signature)) = (open, self.signature.take()) {
            let delta = DeltaEvent { kind: "content_block_delta", index, delta: Delta::Signature { signature: &signature } };
            write(out, "content_block_delta", &delta);
        }
        #[derive(Serialize)]
        struct BlockStop {
            #[serde(rename = "type")]
            kind: &'static str,
            index: u32,
        }
        write(out, "content_block_stop", &BlockStop { kind: "content_block_stop", index });
    }

    fn delta(&self, out: &mut Vec<u8>, delta: Delta) {
        write(out, "content_block_delta", &DeltaEvent { kind: "content_block_delta", index: self.blocks.saturating_sub(1), delta });
    }
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: BlockOut<'a>,
}

#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

/// A content block's delta; its `type` is the variant's name with `_delta`.
#[derive(Serialize)]
#[serde(tag = "type")]
enum Delta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: Text<'a> },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

/// One `event: <name>` SSE event.
fn write<T: Serialize>(out: &mut Vec<u8>, event: &str, data: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serialising these borrowed structs into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::answer::Answer;
    use serde_json::{Value, json};

    use crate::stream::sse::named_events as events;

    #[test]
    fn a_whole_answer_is_a_message() {
        let mut answer = Answer { text: "Hi.".into(), reasoning: "Think.".into(), ..Default::default() };
        answer.add_tool_call("call_1", "f", r#"{"a":1}"#);
        let usage = Usage { input_tokens: 10, cache_read_tokens: 4, cache_write_tokens: 2, output_tokens: 5, reasoning_tokens: 1 };
        let c = Completion { id: "chatcmpl-9", created: 1, model: "gpt-4o", answer, finish: Some(Finish::ToolUse), usage: Some(usage) };
        let v: Value = serde_json::from_slice(&completion_body(c).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"id":"msg_chatcmpl-9","type":"message","role":"assistant","model":"gpt-4o",
                "content":[{"type":"thinking","thinking":"Think.","signature":""},{"type":"text","text":"Hi."},
                           {"type":"tool_use","id":"toolu_call_1","name":"f","input":{"a":1}}],
                "stop_reason":"tool_use","stop_sequence":null,
                "usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":4}})
        );
        let empty = Completion { id: "msg_1", created: 1, model: "m", answer: Answer::default(), finish: None, usage: None };
        let v: Value = serde_json::from_slice(&completion_body(empty).unwrap()).unwrap();
        assert_eq!((&v["id"], &v["content"], &v["stop_reason"]), (&json!("msg_1"), &json!([{"type":"text","text":""}]), &Value::Null));
        let mut bad = Answer::default();
        bad.add_tool_call("c", "f", "not json");
        assert_eq!(
            completion_body(Completion { id: "x", created: 1, model: "m", answer: bad, finish: None, usage: None }).unwrap_err().status,
            502
        );
    }

    #[test]
    fn every_finish_has_its_stop_reason() {
        let reasons = [
            (Finish::EndTurn, "end_turn"),
            (Finish::StopSequence, "stop_sequence"),
            (Finish::MaxTokens, "max_tokens"),
            (Finish::ToolUse, "tool_use"),
            (Finish::ContentFilter, "refusal"),
        ];
        for (finish, reason) in reasons {
            assert_eq!(stop_reason(finish), reason);
        }
    }

    #[test]
    fn errors_take_anthropics_shape_and_type() {
        let cases = [
            (ApiError::invalid_request("bad"), "invalid_request_error"),
            (ApiError::new(401, "authentication_error", "no key"), "authentication_error"),
            (ApiError::new(403, "permission_error", "no"), "permission_error"),
            (ApiError::model_not_found("x"), "not_found_error"),
            (ApiError::too_large(5), "request_too_large"),
            (ApiError::new(429, "insufficient_quota", "budget"), "rate_limit_error"),
            (ApiError::new(503, "api_error", "down"), "overloaded_error"),
            (ApiError::bad_gateway("odd"), "api_error"),
        ];
        for (e, kind) in cases {
            let v: Value = serde_json::from_slice(&error_body(&e)).unwrap();
            assert_eq!(v, json!({"type":"error","error":{"type":kind,"message":e.message}}));
        }
        let event = error_event(&ApiError::bad_gateway("cut"));
        assert_eq!(events(&event)[0].0, "error");
    }

    #[test]
    fn a_stream_follows_the_event_grammar() {
        let mut w = EventWriter::new("chatcmpl-1".into(), "gpt-4o".into());
        let mut out = Vec::new();
        w.opening(&mut out);
        w.reasoning(&mut out, "Hmm");
        w.reasoning_signature("sig");
        w.text(&mut out, "Hel".into());
        w.text(&mut out, "lo".into());
        w.tool_call(&mut out, 0, Some("call_a"), Some("f"), "");
        w.tool_arguments(&mut out, 0, "{\"x\":");
        w.tool_call(&mut out, 1, Some("call_b"), Some("g"), "{}");
        w.tool_arguments(&mut out, 0, "1}");
        w.finish(Some(Finish::ToolUse));
        w.done(&mut out, Some(Usage { input_tokens: 3, output_tokens: 4, ..Default::default() }));
        let e = events(&out);
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &e {
            assert_eq!(data["type"], name.as_str(), "the data names its event");
        }
        assert_eq!(e[0].1["message"]["id"], "msg_chatcmpl-1");
        assert_eq!(e[1].1["content_block"], json!({"type":"thinking","thinking":"","signature":""}));
        assert_eq!(e[3].1["delta"], json!({"type":"signature_delta","signature":"sig"}));
        assert_eq!((e[5].1["index"].as_u64(), &e[7].1["delta"]["text"]), (Some(1), &json!("lo")));
        assert_eq!(e[9].1["content_block"], json!({"type":"tool_use","id":"toolu_call_a","name":"f","input":{}}));
        assert_eq!((e[13].1["index"].as_u64(), &e[13].1["delta"]["partial_json"]), (Some(3), &json!("{}")));
        assert_eq!((e[14].1["index"].as_u64(), &e[14].1["delta"]["partial_json"]), (Some(2), &json!("1}")), "a late delta names its block");
        assert_eq!(e[16].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(e[16].1["usage"]["output_tokens"], 4);
    }
}
