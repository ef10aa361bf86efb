//! The OpenAI Responses dialect, outbound: the `response` object a whole answer becomes, and the
//! typed events of a streamed one, numbered by `sequence_number`
//! (https://platform.openai.com/docs/api-reference/responses/object,
//! https://platform.openai.com/docs/api-reference/responses-streaming).

use crate::conversation::answer::{Completion, Finish};
use crate::error::ApiError;
use crate::usage::Usage;
use serde::Serialize;

/// Responses' ids: `resp_…`, `msg_…`, `rs_…`, `fc_…`; another provider's id gets the prefix.
fn prefixed(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) { id.to_owned() } else { format!("{prefix}{id}") }
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    incomplete_details: Option<Incomplete>,
    error: Option<()>,
    model: &'a str,
    output: &'a [Item],
    parallel_tool_calls: bool,
    tool_choice: &'static str,
    tools: [(); 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct Incomplete {
    reason: &'static str,
}

/// What a finish makes of the response: its status, and why it is incomplete.
fn status(finish: Option<Finish>) -> (&'static str, Option<Incomplete>) {
    match finish {
        Some(Finish::MaxTokens) => ("incomplete", Some(Incomplete { reason: "max_output_tokens" })),
        Some(Finish::ContentFilter) => ("incomplete", Some(Incomplete { reason: "content_filter" })),
        _ => ("completed", None),
    }
}

/// Responses' `usage`: `input_tokens` counts cached and cache-written tokens too.
#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        let input = u.prompt_tokens();
        UsageOut {
            input_tokens: input,
            input_tokens_details: InputDetails { cached_tokens: u.cache_read_tokens, cache_write_tokens: u.cache_write_tokens },
            output_tokens: u.output_tokens,
            output_tokens_details: OutputDetails { reasoning_tokens: u.reasoning_tokens },
            total_tokens: input.saturating_add(u.output_tokens),
        }
    }
}

/// An output item, as the response lists it and the stream's events carry it.
#[derive(Serialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Item {
    Reasoning { id: String, summary: Vec<SummaryText> },
    Message { id: String, status: &'static str, role: &'static str, content: Vec<ContentOut> },
    FunctionCall { id: String, call_id: String, name: String, arguments: String, status: &'static str },
}

#[derive(Serialize, Debug, Clone)]
struct SummaryText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentOut {
    OutputText { text: String, annotations: [(); 0] },
    Refusal { refusal: String },
}

fn summary(text: String) -> SummaryText {
    SummaryText { kind: "summary_text", text }
}

fn output_text(text: String) -> ContentOut {
    ContentOut::OutputText { text, annotations: [] }
}

/// The `response` body: reasoning first, then the message (text or refusal), then the calls.
pub fn completion_body(c: Completion) -> Result<Vec<u8>, ApiError> {
    let Completion { id, created, model, answer, finish, usage } = c;
    let size = answer.body_size_hint();
    let mut output = Vec::with_capacity(answer.tool_calls.len() + 2);
    if !answer.reasoning.is_empty() {
        output.push(Item::Reasoning { id: prefixed("rs_", id), summary: vec![summary(answer.reasoning)] });
    }
    let content = match answer.refusal {
        Some(refusal) => Some(ContentOut::Refusal { refusal }),
        None if !answer.text.is_empty() || answer.tool_calls.is_empty() => Some(output_text(answer.text.decode().into_owned())),
        None => None,
    };
    if let Some(content) = content {
        output.push(Item::Message { id: prefixed("msg_", id), status: "completed", role: "assistant", content: vec![content] });
    }
    for call in answer.tool_calls {
        output.push(Item::FunctionCall {
            id: prefixed("fc_", call.id),
            call_id: call.id.to_owned(),
            name: call.name.to_owned(),
            arguments: call.arguments.into_owned(),
            status: "completed",
        });
    }
    let (status, incomplete_details) = status(finish);
    let id = prefixed("resp_", id);
    let response = ResponseOut {
        id: &id,
        object: "response",
        created_at: created,
        status,
        incomplete_details,
        error: None,
        model,
        output: &output,
        parallel_tool_calls: true,
        tool_choice: "auto",
        tools: [],
        usage: Some(UsageOut::from(&usage.unwrap_or_default())),
    };
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, &response).map(|()| out).map_err(|e| ApiError::internal(format!("could not encode the response: {e}")))
}

/// What the stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning,
    Message,
    /// A tool call, by its index among the answer's tool calls.
    Call(u32),
}

/// The events of one streamed answer: `response.created` and `response.in_progress`, each
/// output item added, its deltas and done events, then `response.completed` (or
/// `response.incomplete`) with the whole response and its usage. Every event carries the next
/// `sequence_number`.
#[derive(Debug)]
pub struct EventWriter {
    pub id: String,
    pub model: String,
    created: u64,
    sequence: u64,
    /// The items so far, in output order; the last is open while `open` says so.
    items: Vec<Item>,
    open: Option<Open>,
    /// The output index of each tool call, by tool-call index.
    call_items: Vec<usize>,
    finish: Option<Finish>,
}

impl EventWriter {
    pub fn new(id: String, created: u64, model: String) -> Self {
        EventWriter { id, model, created, sequence: 0, items: Vec::new(), open: None, call_items: Vec::new(), finish: None }
    }

    pub fn opening(&mut self, out: &mut Vec<u8>) {
        let response = self.response("in_progress", None, None);
        self.write(out, "response.created", |seq| json_event("response.created", seq, &[("response", &response)]));
        self.write(out, "response.in_progress", |seq| json_event("response.in_progress", seq, &[("response", &response)]));
    }

    pub fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.open != Some(Open::Message) {
            self.close(out);
            let id = prefixed("msg_", &self.id);
            self.open_item(out, Open::Message, Item::Message { id, status: "in_progress", role: "assistant", content: Vec::new() });
            let (item_id, index) = self.current();
            let part = output_text(String::new());
            self.write(out, "response.content_part.added", |seq| {
                json_event(
                    "response.content_part.added",
                    seq,
                    &[("item_id", &item_id), ("output_index", &index), ("content_index", &0), ("part", &part)],
                )
            });
            if let Some(Item::Message { content, .. }) = self.items.last_mut() {
                content.push(part);
            }
        }
        let (item_id, index) = self.current();
        self.write(out, "response.output_text.delta", |seq| {
            json_event(
                "response.output_text.delta",
                seq,
                &[("item_id", &item_id), ("output_index", &index), ("content_index", &0), ("delta", &text), ("logprobs", &[(); 0])],
            )
        });
        if let Some(Item::Message { content, .. }) = self.items.last_mut()
            && let Some(ContentOut::OutputText { text: all, .. }) = content.last_mut()
        {
            all.push_str(text);
        }
    }

    pub fn reasoning(&mut self, out: &mut Vec<u8>, text: &str) {
        if self.open != Some(Open::Reasoning) {
            self.close(out);
            let id = prefixed("rs_", &self.id);
            self.open_item(out, Open::Reasoning, Item::Reasoning { id, summary: Vec::new() });
            let (item_id, index) = self.current();
            let part = summary(String::new());
            self.write(out, "response.reasoning_summary_part.added", |seq| {
                json_event(
                    "response.reasoning_summary_part.added",
                    seq,
                    &[("item_id", &item_id), ("output_index", &index), ("summary_index", &0), ("part", &part)],
                )
            });
            if let Some(Item::Reasoning { summary, .. }) = self.items.last_mut() {
                summary.push(part);
            }
        }
        let (item_id, index) = self.current();
        self.write(out, "response.reasoning_summary_text.delta", |seq| {
            json_event(
                "response.reasoning_summary_text.delta",
                seq,
                &[("item_id", &item_id), ("output_index", &index), ("summary_index", &0), ("delta", &text)],
            )
        });
        if let Some(Item::Reasoning { summary, .. }) = self.items.last_mut()
            && let Some(part) = summary.last_mut()
        {
            part.text.push_str(text);
        }
    }

    pub fn tool_call(&mut self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        self.close(out);
        let call_id = id.unwrap_or_default().to_owned();
        let item = Item::FunctionCall {
            id: prefixed("fc_", &call_id),
            call_id,
            name: name.unwrap_or_default().to_owned(),
            arguments: String::new(),
            status: "in_progress",
        };
        self.open_item(out, Open::Call(index), item);
        if self.call_items.len() <= index as usize {
            self.call_items.resize(index as usize + 1, usize::MAX);
        }
        if let Some(slot) = self.call_items.get_mut(index as usize) {
            *slot = self.items.len().saturating_sub(1);
        }
        if !arguments.is_empty() {
            self.tool_arguments(out, index, arguments);
        }
    }

    pub fn tool_arguments(&mut self, out: &mut Vec<u8>, index: u32, arguments: &str) {
        let Some(at) = self.call_items.get(index as usize).copied().filter(|at| *at != usize::MAX) else { return };
        let Some(Item::FunctionCall { id, arguments: all, .. }) = self.items.get_mut(at) else { return };
        all.push_str(arguments);
        let item_id = id.clone();
        self.write(out, "response.function_call_arguments.delta", |seq| {
            json_event(
                "response.function_call_arguments.delta",
                seq,
                &[("item_id", &item_id), ("output_index", &at), ("delta", &arguments)],
            )
        });
    }

    pub fn finish(&mut self, finish: Option<Finish>) {
        self.finish = finish.or(self.finish);
    }

    /// Closes the open item, then `response.completed` (or `response.incomplete`) with the
    /// whole response.
    pub fn done(&mut self, out: &mut Vec<u8>, usage: Option<Usage>) {
        self.close(out);
        let (status, incomplete) = status(self.finish);
        let response = self.response(status, incomplete, Some(UsageOut::from(&usage.unwrap_or_default())));
        let name = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.write(out, name, |seq| json_event(name, seq, &[("response", &response)]));
    }

    /// A failure after the stream started: an `error` event (its code, message and field).
    pub fn fail(&mut self, out: &mut Vec<u8>, e: &ApiError) {
        out.extend_from_slice(&error_event(e, self.sequence));
        self.sequence = self.sequence.saturating_add(1);
    }

    /// The `error` event that would come next, for a stream that ends with it.
    pub fn error_event(&self, e: &ApiError) -> Vec<u8> {
        error_event(e, self.sequence)
    }

    fn response(&self, status: &'static str, incomplete_details: Option<Incomplete>, usage: Option<UsageOut>) -> serde_json::Value {
        let id = prefixed("resp_", &self.id);
        let response = ResponseOut {
            id: &id,
            object: "response",
            created_at: self.created,
            status,
            incomplete_details,
            error: None,
            model: &self.model,
            output: &self.items,
            parallel_tool_calls: true,
            tool_choice: "auto",
            tools: [],
            usage,
        };
        serde_json::to_value(&response).unwrap_or_default()
    }

    /// The open item's id and output index.
    fn current(&self) -> (String, usize) {
        let id = match self.items.last() {
            Some(Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::FunctionCall { id, .. }) => id.clone(),
            None => String::new(),
        };
        (id, self.items.len().saturating_sub(1))
    }

    fn open_item(&mut self, out: &mut Vec<u8>, open: Open, item: Item) {
        let index = self.items.len();
        self.write(out, "response.output_item.added", |seq| {
            json_event("response.output_item.added", seq, &[("output_index", &index), ("item", &item)])
        });
        self.items.push(item);
        self.open = Some(open);
    }

    /// The open item's done events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let (item_id, index) = self.current();
        match (open, self.items.last_mut()) {
            (Open::Message, Some(Item::Message { status, content, .. })) => {
                *status = "completed";
                let part = content.last().cloned();
                let text = match &part {
                    Some(ContentOut::OutputText { text, .. }) => text.clone(),
                    _ => String::new(),
                };
                self.write(out, "response.output_text.done", |seq| {
                    json_event(
                        "response.output_text.done",
                        seq,
                        &[("item_id", &item_id), ("output_index", &index), ("content_index", &0), ("text", &text), ("logprobs", &[(); 0])],
                    )
                });
                self.write(out, "response.content_part.done", |seq| {
                    json_event(
                        "response.content_part.done",
                        seq,
                        &[("item_id", &item_id), ("output_index", &index), ("content_index", &0), ("part", &part)],
                    )
                });
            }
            (Open::Reasoning, Some(Item::Reasoning { summary, .. })) => {
                let part = summary.last().cloned();
                let text = part.as_ref().map(|p| p.text.clone()).unwrap_or_default();
                self.write(out, "response.reasoning_summary_text.done", |seq| {
                    json_event(
                        "response.reasoning_summary_text.done",
                        seq,
                        &[("item_id", &item_id), ("output_index", &index), ("summary_index", &0), ("text", &text)],
                    )
                });
                self.write(out, "response.reasoning_summary_part.done", |seq| {
                    json_event(
                        "response.reasoning_summary_part.done",
                        seq,
                        &[("item_id", &item_id), ("output_index", &index), ("summary_index", &0), ("part", &part)],
                    )
                });
            }
            (Open::Call(_), Some(Item::FunctionCall { arguments, status, .. })) => {
                *status = "completed";
                let arguments = arguments.clone();
                self.write(out, "response.function_call_arguments.done", |seq| {
                    json_event(
                        "response.function_call_arguments.done",
                        seq,
                        &[("item_id", &item_id), ("output_index", &index), ("arguments", &arguments)],
                    )
                });
            }
            _ => {}
        }
        let item = self.items.last().cloned();
        self.write(out, "response.output_item.done", |seq| {
            json_event("response.output_item.done", seq, &[("output_index", &index), ("item", &item)])
        });
    }

    /// Writes one `event: <name>` SSE event, its data made with the next sequence number.
    fn write(&mut self, out: &mut Vec<u8>, name: &str, data: impl FnOnce(u64) -> Vec<u8>) {
        let data = data(self.sequence);
        self.sequence = self.sequence.saturating_add(1);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\n\n");
    }
}

/// An event's JSON: its `type`, its `sequence_number`, then `fields` in order.
fn json_event(kind: &str, sequence: u64, fields: &[(&str, &dyn erased::Field)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":");
    out.extend_from_slice(&crate::json::quote(kind));
    out.extend_from_slice(b",\"sequence_number\":");
    out.extend_from_slice(sequence.to_string().as_bytes());
    for (name, value) in fields {
        out.push(b',');
        out.extend_from_slice(&crate::json::quote(name));
        out.push(b':');
        value.write(&mut out);
    }
    out.push(b'}');
    out
}

/// Event fields of any serialisable type behind one reference type.
mod erased {
    pub trait Field {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize> Field for T {
        fn write(&self, out: &mut Vec<u8>) {
            // Serialising these owned values into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, self);
        }
    }
}

/// The `error` event numbered `sequence` (the stream's next number, where it is known).
pub fn error_event(e: &ApiError, sequence: u64) -> Vec<u8> {
    let code = e.code.as_deref().unwrap_or(&e.kind);
    let data = json_event("error", sequence, &[("code", &code), ("message", &e.message), ("param", &e.param)]);
    let mut out = Vec::with_capacity(data.len() + 24);
    out.extend_from_slice(b"event: error\ndata: ");
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::answer::Answer;
    use serde_json::{Value, json};

    use crate::stream::sse::named_events as events;

    #[test]
    fn a_whole_answer_is_a_response() {
        let mut answer = Answer { text: "Sunny.".into(), reasoning: "Look it up.".into(), ..Default::default() };
        answer.add_tool_call("call_1", "weather", r#"{"city":"Paris"}"#);
        let usage = Usage { input_tokens: 10, cache_read_tokens: 4, cache_write_tokens: 1, output_tokens: 5, reasoning_tokens: 2 };
        let c = Completion { id: "msg_01", created: 9, model: "claude", answer, finish: Some(Finish::ToolUse), usage: Some(usage) };
        let v: Value = serde_json::from_slice(&completion_body(c).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"id":"resp_msg_01","object":"response","created_at":9,"status":"completed","incomplete_details":null,"error":null,
                "model":"claude","output":[
                    {"type":"reasoning","id":"rs_msg_01","summary":[{"type":"summary_text","text":"Look it up."}]},
                    {"type":"message","id":"msg_01","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Sunny.","annotations":[]}]},
                    {"type":"function_call","id":"fc_call_1","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}],
                "parallel_tool_calls":true,"tool_choice":"auto","tools":[],
                "usage":{"input_tokens":15,"input_tokens_details":{"cached_tokens":4,"cache_write_tokens":1},"output_tokens":5,
                         "output_tokens_details":{"reasoning_tokens":2},"total_tokens":20}})
        );
        let cut = Completion { id: "x", created: 1, model: "m", answer: Answer::default(), finish: Some(Finish::MaxTokens), usage: None };
        let v: Value = serde_json::from_slice(&completion_body(cut).unwrap()).unwrap();
        assert_eq!((&v["status"], &v["incomplete_details"]["reason"]), (&json!("incomplete"), &json!("max_output_tokens")));
        let refused = Answer { refusal: Some("no".into()), ..Default::default() };
        let c = Completion { id: "x", created: 1, model: "m", answer: refused, finish: Some(Finish::ContentFilter), usage: None };
        let v: Value = serde_json::from_slice(&completion_body(c).unwrap()).unwrap();
        assert_eq!(v["output"][0]["content"][0], json!({"type":"refusal","refusal":"no"}));
        assert_eq!(v["incomplete_details"]["reason"], "content_filter");
    }

    #[test]
    fn a_stream_is_the_typed_event_sequence() {
        let mut w = EventWriter::new("msg_7".into(), 3, "claude".into());
        let mut out = Vec::new();
        w.opening(&mut out);
        w.reasoning(&mut out, "Hm");
        w.text(&mut out, "Hel");
        w.text(&mut out, "lo");
        w.tool_call(&mut out, 0, Some("call_a"), Some("f"), "");
        w.tool_arguments(&mut out, 0, "{\"x\":1}");
        w.finish(Some(Finish::ToolUse));
        w.done(&mut out, Some(Usage { input_tokens: 3, output_tokens: 4, ..Default::default() }));
        let e = events(&out);
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (i, (name, data)) in e.iter().enumerate() {
            assert_eq!((data["type"].as_str(), data["sequence_number"].as_u64()), (Some(name.as_str()), Some(i as u64)));
        }
        assert_eq!(e[0].1["response"]["status"], "in_progress");
        assert_eq!(e[12].1["text"], "Hello");
        assert_eq!((e[10].1["output_index"].as_u64(), &e[10].1["item_id"]), (Some(1), &json!("msg_7")));
        assert_eq!(e[17].1["arguments"], "{\"x\":1}");
        let done = &e[19].1["response"];
        assert_eq!(done["output"][1]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][2]["status"], "completed");
        assert_eq!(done["usage"]["total_tokens"], 7);
        let mut failed = Vec::new();
        w.fail(&mut failed, &ApiError::bad_gateway("cut"));
        let (name, data) = &events(&failed)[0];
        assert_eq!((name.as_str(), &data["code"], data["sequence_number"].as_u64()), ("error", &json!("bad_upstream_response"), Some(20)));
    }
}
