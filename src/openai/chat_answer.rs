//! The OpenAI Chat Completions dialect, outbound: the `chat.completion` a whole answer becomes,
//! and the `chat.completion.chunk` events of a streamed one
//! (https://platform.openai.com/docs/api-reference/chat/object,
//! https://platform.openai.com/docs/api-reference/chat-streaming/streaming).

use super::OpenAiError;
use super::response::{
    AssistantMessage, ChatCompletion, ChunkHeader, DONE_EVENT, Delta, DeltaFunction, DeltaToolCall, FunctionOut, ToolCallOut,
};
use crate::conversation::answer::{Completion, Finish};
use crate::conversation::text::Text;
use crate::error::ApiError;
use crate::usage::Usage;
use std::borrow::Cow;

/// OpenAI's `finish_reason`, which does not tell a stop sequence from the end of the turn.
pub fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::EndTurn | Finish::StopSequence => "stop",
        Finish::MaxTokens => "length",
        Finish::ToolUse => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

/// The `chat.completion` body. The content is `null` when the answer is tool calls alone, or a
/// filtered answer without text, as OpenAI writes them.
pub fn completion_body(c: Completion) -> Result<Vec<u8>, ApiError> {
    let Completion { id, created, model, answer, finish, usage } = c;
    let size = answer.body_size_hint();
    let no_text = answer.text.is_empty() && (!answer.tool_calls.is_empty() || finish == Some(Finish::ContentFilter));
    let tool_calls = answer
        .tool_calls
        .into_iter()
        .map(|call| ToolCallOut { id: call.id, kind: "function", function: FunctionOut { name: call.name, arguments: call.arguments } })
        .collect();
    let refusal = answer.refusal.as_deref();
    let message = AssistantMessage {
        role: "assistant",
        content: if no_text || refusal.is_some() { None } else { Some(answer.text.as_text()) },
        tool_calls,
        refusal,
        reasoning_content: (!answer.reasoning.is_empty()).then_some(Cow::Owned(answer.reasoning)),
    };
    let completion = ChatCompletion::new(id, created, model, message, finish.map(finish_reason), &usage.unwrap_or_default());
    let mut out = Vec::with_capacity(size);
    serde_json::to_writer(&mut out, &completion)
        .map(|()| out)
        .map_err(|e| ApiError::internal(format!("could not encode the completion: {e}")))
}

/// The chunks of one streamed answer.
#[derive(Debug)]
pub struct ChunkWriter {
    pub header: ChunkHeader,
    client_wants_usage: bool,
}

impl ChunkWriter {
    pub fn new(header: ChunkHeader, client_wants_usage: bool) -> Self {
        ChunkWriter { header, client_wants_usage }
    }

    /// The role, with the empty content OpenAI streams open with.
    pub fn opening(&self, out: &mut Vec<u8>) {
        self.header.write(out, Delta { role: Some("assistant"), content: Some(""), ..Default::default() }, None);
    }

    pub fn text(&self, out: &mut Vec<u8>, text: Text) {
        self.header.write_text(out, "content", text);
    }

    pub fn reasoning(&self, out: &mut Vec<u8>, text: Text) {
        self.header.write_text(out, "reasoning_content", text);
    }

    pub fn tool_call(&self, out: &mut Vec<u8>, index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let call = DeltaToolCall { index, id, kind: Some("function"), function: DeltaFunction { name, arguments } };
        self.header.write(out, Delta { tool_calls: Some([call]), ..Default::default() }, None);
    }

    pub fn tool_arguments(&self, out: &mut Vec<u8>, index: u32, arguments: &str) {
        let call = DeltaToolCall { index, id: None, kind: None, function: DeltaFunction { name: None, arguments } };
        self.header.write(out, Delta { tool_calls: Some([call]), ..Default::default() }, None);
    }

    pub fn finish(&self, out: &mut Vec<u8>, finish: Option<Finish>) {
        self.header.write(out, Delta::default(), finish.map(finish_reason));
    }

    /// The usage chunk when the client asked for it, then `[DONE]`.
    pub fn done(&self, out: &mut Vec<u8>, usage: Option<Usage>) {
        if self.client_wants_usage {
            self.header.write_usage(out, &usage.unwrap_or_default());
        }
        out.extend_from_slice(DONE_EVENT);
    }

    pub fn fail(&self, out: &mut Vec<u8>, e: &ApiError) {
        out.extend_from_slice(&e.to_sse_event());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::answer::Answer;

    fn body(answer: Answer, finish: Option<Finish>) -> serde_json::Value {
        let c = Completion { id: "c1", created: 5, model: "m", answer, finish, usage: None };
        serde_json::from_slice(&completion_body(c).unwrap()).unwrap()
    }

    #[test]
    fn every_finish_has_its_openai_reason() {
        let reasons = [
            (Finish::EndTurn, "stop"),
            (Finish::StopSequence, "stop"),
            (Finish::MaxTokens, "length"),
            (Finish::ToolUse, "tool_calls"),
            (Finish::ContentFilter, "content_filter"),
        ];
        for (finish, reason) in reasons {
            assert_eq!(body(Answer::default(), Some(finish))["choices"][0]["finish_reason"], reason);
        }
    }

    #[test]
    fn content_is_null_for_calls_alone_filtered_answers_and_refusals() {
        let mut calls = Answer::default();
        calls.add_tool_call("t1", "f", "{}");
        let v = body(calls, Some(Finish::ToolUse));
        assert_eq!(v["choices"][0]["message"]["content"], serde_json::Value::Null);
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(body(Answer::default(), Some(Finish::ContentFilter))["choices"][0]["message"]["content"], serde_json::Value::Null);
        let refused = Answer { refusal: Some("blocked".into()), ..Default::default() };
        let v = body(refused, Some(Finish::ContentFilter));
        assert_eq!(
            (&v["choices"][0]["message"]["content"], &v["choices"][0]["message"]["refusal"]),
            (&serde_json::Value::Null, &"blocked".into())
        );
        let v = body(Answer { text: "hi".into(), ..Default::default() }, Some(Finish::EndTurn));
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["usage"]["total_tokens"], 0, "an answer without usage reports zero");
    }
}
