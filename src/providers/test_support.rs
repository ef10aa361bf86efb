//! What the tests of the translating providers (Anthropic, Bedrock, Gemini, Cohere) share:
//! building a request as a client sends it, running a stream through a translator, and reading
//! the OpenAI chunks that come out.
#![cfg(test)]

use super::{Edits, ResponseContext, Translated, UpstreamRequest};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::openai::chat;
use crate::stream::Decoder;
use crate::stream::sse::Event;
use serde_json::{Value, json};

pub fn user(text: &str) -> Value {
    json!({"role":"user","content":text})
}

/// Parses `body` as a client's request and has `build` translate it: the JSON sent upstream,
/// the upstream request, and the parameter edits.
pub fn build(
    body: &Value,
    build: impl FnOnce(&ChatRequest, &mut Edits) -> Result<UpstreamRequest, ApiError>,
) -> Result<(Value, UpstreamRequest, Edits), ApiError> {
    let bytes = serde_json::to_vec(body).unwrap();
    let req = chat::parse(&bytes)?;
    let mut edits = Edits::default();
    let built = build(&req, &mut edits)?;
    let sent = serde_json::from_slice(built.body.as_ref().unwrap()).unwrap();
    Ok((sent, built, edits))
}

/// Each parameter, set alone on `body`, is a 400 naming it; where the provider drops unsupported
/// parameters (`translate`'s second argument), it is dropped and reported instead. Returns what
/// was sent once each was dropped.
pub fn assert_refused_or_dropped(
    body: &Value,
    params: Vec<(&str, Value)>,
    translate: impl Fn(&Value, bool) -> Result<(Value, Edits), ApiError>,
) -> Vec<Value> {
    let mut sent = Vec::new();
    for (key, value) in params {
        let mut body = body.clone();
        body[key] = value;
        let e = translate(&body, false).unwrap_err();
        assert_eq!((e.status, e.param.as_deref(), e.code.as_deref()), (400, Some(key), Some("unsupported_parameter")), "{key}");
        assert!(e.message.contains("drop_unsupported"), "{key}: {}", e.message);
        let (out, edits) = translate(&body, true).unwrap();
        assert_eq!(edits.dropped, vec![key.to_string()]);
        assert!(out.get(key).is_none(), "{key}: {out}");
        sent.push(out);
    }
    sent
}

pub fn body_of(t: &Translated) -> Value {
    serde_json::from_slice(t.body.as_ref().unwrap()).unwrap()
}

/// The context of a streamed answer from `model`, created at 7.
pub fn stream_ctx(model: &str, client_wants_usage: bool) -> ResponseContext {
    ResponseContext { created: 7, stream: true, client_wants_usage, model: model.into(), ..Default::default() }
}

/// Feeds `chunks` through `decoder` into a stream translator, then ends the stream: what the
/// client gets.
pub fn translate_stream<S>(
    state: &mut S,
    mut decoder: Decoder,
    chunks: &[&[u8]],
    on_event: impl Fn(&mut S, &Event, &mut Vec<u8>),
    finish: impl FnOnce(&mut S, &mut Vec<u8>),
) -> String {
    let mut out = Vec::new();
    for c in chunks {
        decoder.feed(c, |e| on_event(state, &e, &mut out)).unwrap();
    }
    decoder.finish(|e| on_event(state, &e, &mut out));
    finish(state, &mut out);
    String::from_utf8(out).unwrap()
}

/// The client gets the same stream however the upstream's bytes are split (in two at every
/// position, or byte by byte), and it completes every time.
pub fn assert_any_split_gives_the_same_output<S>(body: &[u8], run: impl Fn(&[&[u8]]) -> (String, S), completed: impl Fn(&S) -> bool) {
    let (whole, _) = run(&[body]);
    for i in 0..=body.len() {
        let (split, s) = run(&[&body[..i], &body[i..]]);
        assert_eq!(split, whole, "split at {i}");
        assert!(completed(&s));
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run(&bytes).0, whole);
}

/// The chunks of a translated stream, without its `[DONE]`.
pub fn chunks_of(out: &str) -> Vec<Value> {
    out.split("\n\n")
        .filter(|e| !e.is_empty() && *e != "data: [DONE]")
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

/// The last event of a translated stream (an error, where it failed).
pub fn last_event(out: &str) -> Value {
    let last = out.trim_end().rsplit("\n\n").next().unwrap();
    serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap()
}

/// Every chunk is a `chat.completion.chunk` of the stream `stream_ctx` describes.
pub fn assert_chunk_headers(chunks: &[Value], id: &str, model: &str) {
    for c in chunks {
        assert_eq!(
            (c["id"].as_str(), c["created"].as_u64(), c["model"].as_str(), c["object"].as_str()),
            (Some(id), Some(7), Some(model), Some("chat.completion.chunk"))
        );
    }
}

/// The streamed content, all chunks together.
pub fn content_of(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
}

pub fn finish_reasons(chunks: &[Value]) -> Vec<&str> {
    chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect()
}

pub fn tool_call_deltas(chunks: &[Value]) -> Vec<&Value> {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"].get("tool_calls")).collect()
}

/// The context of a streamed answer from `model` to a Messages client.
pub fn messages_stream_ctx(model: &str) -> ResponseContext {
    ResponseContext { dialect: crate::client::Dialect::AnthropicMessages, ..stream_ctx(model, false) }
}

/// The events of a Messages stream, (name, data), after checking Anthropic's grammar: the data
/// names its event; `message_start` first; blocks numbered from 0 in order, each started before
/// its deltas and stopped once; `message_delta` then `message_stop` last. Returns the text, the
/// tool calls (id, name, arguments) and the stop reason.
pub fn messages_stream(out: &str) -> (String, Vec<(String, String, String)>, String) {
    let events = crate::stream::sse::named_events(out.as_bytes());
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("message_start"), "{out}");
    assert_eq!(events.iter().rev().take(2).map(|e| e.0.as_str()).collect::<Vec<_>>(), ["message_stop", "message_delta"], "{out}");
    let (mut text, mut calls, mut open, mut next) = (String::new(), Vec::<(String, String, String)>::new(), None, 0);
    let mut call_of_block = std::collections::HashMap::new();
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str());
        let index = data["index"].as_u64();
        match name.as_str() {
            "content_block_start" => {
                assert_eq!((open, index), (None, Some(next)), "blocks open one at a time, in order: {out}");
                open = index;
                next += 1;
                let block = &data["content_block"];
                if block["type"] == "tool_use" {
                    call_of_block.insert(index.unwrap(), calls.len());
                    calls.push((block["id"].as_str().unwrap().to_owned(), block["name"].as_str().unwrap().to_owned(), String::new()));
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => text.push_str(delta["text"].as_str().unwrap()),
                    "input_json_delta" => calls[call_of_block[&index.unwrap()]].2.push_str(delta["partial_json"].as_str().unwrap()),
                    "thinking_delta" | "signature_delta" => {}
                    other => panic!("unknown delta {other}"),
                }
                assert!(index < Some(next), "a delta names a started block");
            }
            "content_block_stop" => {
                assert_eq!(open, index, "the open block stops: {out}");
                open = None;
            }
            _ => {}
        }
    }
    let stop_reason = events[events.len() - 2].1["delta"]["stop_reason"].as_str().unwrap().to_owned();
    (text, calls, stop_reason)
}
