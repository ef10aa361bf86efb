//! A Responses event stream that passes through (from OpenAI, or relayed from a failover
//! cluster's upstream filter) rewritten by the guardrails on its way to the client: the request's
//! placeholders restored and the answer's findings checked, as the client stream writer does for
//! translated streams (`client::StreamWriter`), with the same per-channel hold-back.
//!
//! Each delta (`response.output_text.delta`, `response.function_call_arguments.delta`, and, only
//! restored, `response.reasoning_summary_text.delta`) goes through its channel's
//! [`StreamChannel`]; what a channel still holds is written as one more delta right before its
//! `.done` event. Every other event (the `.done` events, `response.output_item.done`,
//! `response.completed`…) carries whole texts, rewritten in all its strings as a whole answer is
//! (its findings are the deltas' already, so they are not counted again). Events are numbered
//! anew (`sequence_number`), as inserted deltas and dropped empty ones shift them
//! (https://platform.openai.com/docs/api-reference/responses-streaming).

use crate::error::ApiError;
use crate::guardrails::{AnswerFindings, AnswerGuard, Restore, StreamChannel};
use crate::openai::responses_answer;
use serde_json::Value;

#[derive(Debug)]
pub struct ResponsesRewrite {
    restore: Option<Restore>,
    guard: Option<AnswerGuard>,
    found: AnswerFindings,
    /// By `item_id` and content (or summary) index.
    channels: Vec<((String, u64), StreamChannel)>,
    next_sequence: u64,
    /// A finding blocked the answer: the client got the error, nothing more is written.
    blocked: bool,
}

/// A delta event's type, the `.done` event that ends its channel, and whether the answer's
/// checks apply (reasoning is only restored).
const DELTAS: [(&str, &str, bool); 3] = [
    ("response.output_text.delta", "response.output_text.done", true),
    ("response.function_call_arguments.delta", "response.function_call_arguments.done", true),
    ("response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", false),
];

impl ResponsesRewrite {
    /// `None` when the guardrails leave the answer alone.
    pub fn new(restore: Option<Restore>, guard: Option<AnswerGuard>) -> Option<Self> {
        (restore.is_some() || guard.is_some()).then(|| ResponsesRewrite {
            restore,
            guard,
            found: AnswerFindings::default(),
            channels: Vec::new(),
            next_sequence: 0,
            blocked: false,
        })
    }

    pub fn found(&self) -> &AnswerFindings {
        &self.found
    }

    /// The number the next event Tollgate writes gets (its truncation error, say).
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Writes the rewritten event `data` (a complete event's JSON) to `out`.
    pub fn on_event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.blocked {
            return;
        }
        let Ok(mut event) = serde_json::from_slice::<Value>(data) else { return };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some((_, _, checked)) = DELTAS.iter().find(|(delta, ..)| *delta == kind) {
            let delta = event.get("delta").and_then(Value::as_str).unwrap_or_default().to_owned();
            let rewritten = self.through_channel(channel_key(&event), Some(&delta), *checked);
            if !rewritten.is_empty() {
                set(&mut event, "delta", Value::String(rewritten));
                self.write(&kind, event, out);
            }
            self.end_if_blocked(out);
            return;
        }
        if let Some((delta_kind, _, checked)) = DELTAS.iter().find(|(_, done, _)| *done == kind) {
            let held = self.through_channel(channel_key(&event), None, *checked);
            if !held.is_empty() {
                let mut delta = event.clone();
                set(&mut delta, "type", Value::String((*delta_kind).to_owned()));
                set(&mut delta, "delta", Value::String(held));
                if let Some(fields) = delta.as_object_mut() {
                    fields.remove("text");
                    fields.remove("arguments");
                }
                self.write(delta_kind, delta, out);
            }
            if self.end_if_blocked(out) {
                return;
            }
        }
        let whole = serde_json::to_vec(&event).unwrap_or_default();
        let restored = self.restore.as_ref().and_then(|r| r.apply_json(&whole));
        let restored = restored.as_deref().unwrap_or(&whole);
        // Counted already, as the deltas went by.
        let checked = self.guard.as_ref().and_then(|g| g.check_json(restored, &mut AnswerFindings::default()));
        let rewritten = checked.as_deref().unwrap_or(restored);
        match serde_json::from_slice::<Value>(rewritten) {
            Ok(v) => self.write(&kind, v, out),
            Err(_) => self.write(&kind, event, out),
        }
    }

    /// `delta` through the channel `key` (`None`: the channel ends, what it holds comes out).
    fn through_channel(&mut self, key: (String, u64), delta: Option<&str>, checked: bool) -> String {
        let at = match self.channels.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.channels.push((key, StreamChannel::default()));
                self.channels.len() - 1
            }
        };
        let Some((_, channel)) = self.channels.get_mut(at) else { return String::new() };
        let guard = self.guard.as_ref().filter(|_| checked);
        match delta {
            Some(d) => channel.push(self.restore.as_ref(), guard, d, &mut self.found),
            None => channel.flush(self.restore.as_ref(), guard, &mut self.found),
        }
    }

    fn write(&mut self, kind: &str, mut event: Value, out: &mut Vec<u8>) {
        set(&mut event, "sequence_number", Value::from(self.next_sequence));
        self.next_sequence += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&serde_json::to_vec(&event).unwrap_or_default());
        out.extend_from_slice(b"\n\n");
    }

    /// A finding blocked the answer: the stream ends with the error event.
    fn end_if_blocked(&mut self, out: &mut Vec<u8>) -> bool {
        if self.found.blocked.is_empty() {
            return false;
        }
        if !self.blocked {
            self.blocked = true;
            let e = self.guard.as_ref().map_or_else(|| ApiError::internal("blocked"), |g| g.refusal(&self.found.blocked));
            out.extend_from_slice(&responses_answer::error_event(&e, self.next_sequence));
            self.next_sequence += 1;
        }
        true
    }

    /// The answer was blocked: the provider's own end events must not follow.
    pub fn blocked(&self) -> bool {
        self.blocked
    }
}

/// Sets a member of an event (every event is an object; anything else is left alone).
fn set(event: &mut Value, member: &str, value: Value) {
    if let Some(fields) = event.as_object_mut() {
        fields.insert(member.to_owned(), value);
    }
}

fn channel_key(event: &Value) -> (String, u64) {
    let item = event.get("item_id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let index = event.get("content_index").or_else(|| event.get("summary_index")).and_then(Value::as_u64).unwrap_or(0);
    (item, index)
}
