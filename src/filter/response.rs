//! Response handling shared by both roles: drives the exchange through the response callbacks.

use super::host;
use crate::gateway::exchange::{ATTEMPT_PROPERTY, Finished, ResponseHead, ResponseMode};
use crate::gateway::{Exchange, Gateway};
use crate::headers::forwards_response;
use crate::router::health;
use proxy_wasm::types::{Action, BufferType, MapType};

const RESP: MapType = MapType::HttpResponseHeaders;

/// Reads what the exchange needs from the response headers and applies its decision. An answer
/// without a body that needs escalation is returned for the caller to act on, as in [`on_body`].
pub fn on_headers(gateway: &Gateway, exchange: &mut Exchange, end_of_stream: bool) -> (Action, Option<Finished>) {
    let status = host::header(RESP, ":status").and_then(|s| s.parse().ok()).unwrap_or(502);
    let content_type = host::header(RESP, "content-type");
    let served = if exchange.ctx.relay { host::property(vec![ATTEMPT_PROPERTY]) } else { None };
    let served = served.as_deref().and_then(|s| std::str::from_utf8(s).ok());
    let attempts = if exchange.route.is_some() { host::header(RESP, "x-envoy-attempt-count").and_then(|a| a.parse().ok()) } else { None };
    let rate_limited_until =
        (status == 429).then(|| health::rate_limited_until(host::now_ms(), &|name| host::header(RESP, name))).flatten();
    let error_type = if (200..300).contains(&status) { None } else { host::header(RESP, "x-amzn-errortype") };
    // Errors Envoy produced itself, without a provider's answer.
    let envoy_reply = (status >= 500)
        .then(|| host::property(vec!["response", "code_details"]))
        .flatten()
        .and_then(|d| String::from_utf8(d).ok())
        .filter(|d| d != "via_upstream");
    let head = ResponseHead {
        status,
        content_type: content_type.as_deref(),
        served,
        attempts,
        rate_limited_until,
        error_type: error_type.as_deref(),
        envoy_reply: envoy_reply.as_deref(),
    };
    let mode = exchange.on_response_headers(&gateway.config, &head);
    // Read above what the exchange needs; the client gets only the allowlisted provider headers
    // (a provider's own `x-tollgate-*` included in what is removed), then Tollgate's.
    for (name, _) in host::headers(RESP).iter().filter(|(name, _)| !forwards_response(name)) {
        host::set_header(RESP, name, None);
    }
    for (name, value) in exchange.client_headers(&gateway.config) {
        host::set_header(RESP, name, Some(&value));
    }
    match mode {
        ResponseMode::Stream => {
            host::set_header(RESP, "content-length", None);
            host::set_header(RESP, "content-type", Some("text/event-stream"));
            host::set_header(RESP, "cache-control", Some("no-cache"));
            (Action::Continue, None)
        }
        ResponseMode::Buffer if end_of_stream => {
            // No body will follow: answer with the translated result right away.
            let finished = exchange.on_complete_body(&gateway.config, &[]);
            if finished.escalate.is_some() {
                return (Action::Pause, Some(finished));
            }
            respond_with(gateway, exchange, finished);
            (Action::Pause, None)
        }
        ResponseMode::Buffer => {
            let announced = host::header(RESP, "content-length").and_then(|l| l.parse().ok());
            if let Some(refused) = announced.and_then(|length| exchange.too_large(&gateway.config, length)) {
                respond_with(gateway, exchange, refused);
            }
            (Action::Pause, None)
        }
    }
}

/// Replaces the paused upstream response (headers not yet sent) with Tollgate's own.
pub fn respond_with(gateway: &Gateway, exchange: &Exchange, finished: Finished) {
    let mut headers = exchange.client_headers(&gateway.config);
    headers.push(("content-type", "application/json".into()));
    host::respond(finished.status, &headers, &finished.body.unwrap_or_default());
}

/// Streams translate chunk by chunk; buffered answers are translated whole. A buffered answer
/// that needs escalation is returned for the caller to act on.
pub fn on_body(gateway: &Gateway, exchange: &mut Exchange, body_size: usize, end_of_stream: bool) -> (Action, Option<Finished>) {
    if exchange.is_streaming() {
        if exchange.first_byte_ms.is_none() && body_size > 0 {
            exchange.first_byte_ms = Some(host::now_ms());
        }
        let chunk = host::body(BufferType::HttpResponseBody, body_size);
        if let Some(out) = exchange.on_stream_chunk(&chunk, end_of_stream) {
            host::replace_body(BufferType::HttpResponseBody, body_size, &out);
        }
        return (Action::Continue, None);
    }
    if exchange.is_refused() {
        return (Action::Pause, None);
    }
    if !end_of_stream {
        if let Some(refused) = exchange.too_large(&gateway.config, body_size) {
            respond_with(gateway, exchange, refused);
        }
        return (Action::Pause, None);
    }
    let body = host::body(BufferType::HttpResponseBody, body_size);
    let finished = exchange.on_complete_body(&gateway.config, &body);
    if finished.escalate.is_some() {
        return (Action::Pause, Some(finished));
    }
    rewrite(exchange.status, body_size, &finished);
    (Action::Continue, None)
}

/// Puts a buffered response's final status and body in place.
pub fn rewrite(upstream_status: u16, body_size: usize, finished: &Finished) {
    if finished.status != upstream_status {
        host::set_header(RESP, ":status", Some(&finished.status.to_string()));
    }
    if let Some(new_body) = &finished.body {
        host::replace_body(BufferType::HttpResponseBody, body_size, new_body);
        host::set_header(RESP, "content-length", Some(&new_body.len().to_string()));
        host::set_header(RESP, "content-type", Some("application/json"));
    }
}
