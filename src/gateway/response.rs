//! The response callbacks as the core sees them: what to read from the host and what the shell
//! must do (set headers, replace the body, answer locally), as plain [`Effect`]s. The shell
//! reads through a [`ResponseHost`] and applies the effects in order; it decides nothing.

use super::exchange::{ATTEMPT_PROPERTY, Exchange, Finished, ResponseHead, ResponseMode, Role, USAGE_PROPERTY};
use super::{Escalation, HeaderEdit, apply_header_edits, span};
use crate::config::Config;
use crate::headers::forwards_response;
use crate::router::health;

/// What the core reads of the upstream response.
pub trait ResponseHost {
    /// The response headers (names are lower case).
    fn headers(&self) -> Vec<(String, String)>;
    /// Envoy's property at this path (filter state is `["<name>"]`).
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// The response body buffered so far (its first `size` bytes).
    fn body(&self, size: usize) -> Vec<u8>;
}

/// A host call for the shell to make, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    /// Set the response header (replacing every value), or with `None` remove it.
    SetHeader(String, Option<String>),
    /// Replace every response header with these.
    SetHeaders(Vec<(String, String)>),
    /// Replace the response body (the part received so far).
    ReplaceBody(Vec<u8>),
    /// Answer locally in place of the paused upstream response.
    Respond { status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8> },
    /// Set the request's filter state `wasm.<name>`.
    SetProperty(&'static str, Vec<u8>),
}

/// What a response callback returns: the effects, then whether the response waits.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    pub effects: Vec<Effect>,
    /// Hold the response (headers or body) for now.
    pub pause: bool,
    /// Every target failed and the route has a last resort: the response waits (paused) until
    /// the gateway filter has called it.
    pub escalate: Option<Escalation>,
}

impl Step {
    fn go_on(effects: Vec<Effect>) -> Self {
        Step { effects, pause: false, escalate: None }
    }

    fn wait(effects: Vec<Effect>) -> Self {
        Step { effects, pause: true, escalate: None }
    }

    /// A buffered answer is final: escalate, or put it in place.
    fn finished(mut effects: Vec<Effect>, finished: Finished, put: impl FnOnce(Finished, &mut Vec<Effect>) -> bool) -> Self {
        if let Some(escalation) = finished.escalate {
            return Step { effects, pause: true, escalate: Some(escalation) };
        }
        let go_on = put(finished, &mut effects);
        Step { effects, pause: !go_on, escalate: None }
    }
}

impl Exchange {
    /// The upstream response headers arrived. `now_ms` reads the host's clock, only when the
    /// answer needs the time (in wasm each read is a host call).
    pub fn on_response_head(&mut self, config: &Config, host: &dyn ResponseHost, now_ms: &dyn Fn() -> u64, end_of_stream: bool) -> Step {
        // One read of the map and one write back: each host call costs about a microsecond.
        let received = host.headers();
        let header = |name: &str| crate::headers::value(&received, name).map(str::to_owned);
        let status = header(":status").and_then(|s| s.parse().ok()).unwrap_or(502);
        let content_type = header("content-type");
        let served = match self.role() {
            Role::ViaFailoverCluster { .. } => host.property(&[ATTEMPT_PROPERTY]).and_then(|s| String::from_utf8(s).ok()),
            _ => None,
        };
        let attempts = self.route_index().and_then(|_| header("x-envoy-attempt-count")).and_then(|a| a.parse().ok());
        let rate_limited_until = (status == 429).then(|| health::rate_limited_until(now_ms(), &header)).flatten();
        let error_type = if (200..300).contains(&status) { None } else { header("x-amzn-errortype") };
        // Errors Envoy produced itself, without a provider's answer (a 429: its rate-limit filter).
        let envoy_reply = (status >= 500 || status == 429)
            .then(|| host.property(&["response", "code_details"]))
            .flatten()
            .and_then(|d| String::from_utf8(d).ok())
            .filter(|d| d != "via_upstream");
        // A refusal of Envoy's rate-limit filter: its `enable_x_ratelimit_headers` say in how many
        // seconds the limit that refused resets, which is when a retry can pass.
        let global_retry_after = envoy_reply.as_deref().filter(|d| *d == "request_rate_limited").and(header("x-ratelimit-reset"));
        let head = ResponseHead {
            status,
            content_type: content_type.as_deref(),
            served: served.as_deref(),
            attempts,
            rate_limited_until,
            error_type: error_type.as_deref(),
            envoy_reply: envoy_reply.as_deref(),
        };
        let mode = self.on_response_headers(config, &head);
        // Read above what the exchange needs; the client gets only the allowlisted provider
        // headers (a provider's own `x-tollgate-*` included in what is removed), then Tollgate's.
        let announced = header("content-length").and_then(|l| l.parse().ok());
        let mut headers: Vec<(String, String)> = received.into_iter().filter(|(name, _)| forwards_response(name)).collect();
        let mut edits: Vec<HeaderEdit> = self.client_headers(config).into_iter().map(|(name, value)| (name.into(), Some(value))).collect();
        if let Some(seconds) = global_retry_after {
            edits.push(("retry-after".into(), seconds.parse::<u64>().ok().map(|s| s.max(1).to_string())));
        }
        if mode == ResponseMode::Stream {
            edits.push(("content-length".into(), None));
            edits.push(("content-type".into(), Some("text/event-stream".into())));
            edits.push(("cache-control".into(), Some("no-cache".into())));
        }
        apply_header_edits(&mut headers, edits);
        let mut effects = vec![Effect::SetHeaders(headers)];
        if self.traced(config) {
            effects.extend(span::at_response_head(config, self));
        }
        match mode {
            ResponseMode::Stream => Step::go_on(effects),
            ResponseMode::Buffer if end_of_stream => {
                // No body will follow: answer with the translated result right away.
                let finished = self.on_complete_body(config, &[]);
                effects.extend(self.span_end(config, host));
                Step::finished(effects, finished, |finished, effects| {
                    effects.push(self.local_reply(config, finished));
                    false
                })
            }
            ResponseMode::Buffer => {
                if let Some(refused) = announced.and_then(|length| self.too_large(config, length)) {
                    effects.push(self.local_reply(config, refused));
                }
                Step::wait(effects)
            }
        }
    }

    /// A part of the upstream body arrived (`body_size`: all of it buffered so far). Streams
    /// translate chunk by chunk; buffered answers are translated whole. `now_ms`: as for
    /// [`Self::on_response_head`].
    pub fn on_response_body(
        &mut self,
        config: &Config,
        host: &dyn ResponseHost,
        now_ms: &dyn Fn() -> u64,
        body_size: usize,
        end_of_stream: bool,
    ) -> Step {
        let mut step = self.response_body(config, host, now_ms, body_size, end_of_stream);
        // Reported as it becomes known, so a stream cut later is still accounted.
        if let Some(usage) = self.usage_report() {
            step.effects.push(Effect::SetProperty(USAGE_PROPERTY, usage.into_bytes()));
        }
        if end_of_stream {
            step.effects.extend(self.span_end(config, host));
        }
        step
    }

    /// The request's span gets Tollgate's attributes: they are enabled, and this is the gateway
    /// filter's exchange (an upstream filter's attempt has the gateway filter as its client).
    fn traced(&self, config: &Config) -> bool {
        config.span_attributes && !matches!(self.role(), Role::Attempt { .. })
    }

    /// The span attributes known once the answer is complete. Through a failover cluster the
    /// usage is the upstream filter's report, final by now: its filter sees each chunk first.
    fn span_end(&mut self, config: &Config, host: &dyn ResponseHost) -> Vec<Effect> {
        if !self.traced(config) {
            return Vec::new();
        }
        if matches!(self.role(), Role::ViaFailoverCluster { .. }) {
            self.take_reported_usage(host.property(&[USAGE_PROPERTY]).as_deref());
        }
        span::at_end(self)
    }

    fn response_body(&mut self, config: &Config, host: &dyn ResponseHost, now: &dyn Fn() -> u64, size: usize, eos: bool) -> Step {
        if self.is_streaming() {
            if self.first_byte_ms.is_none() && size > 0 {
                self.first_byte_ms = Some(now());
            }
            let chunk = host.body(size);
            let effects = self.on_stream_chunk(&chunk, eos).map(Effect::ReplaceBody).into_iter().collect();
            return Step::go_on(effects);
        }
        if self.is_refused() {
            return Step::wait(Vec::new());
        }
        if !eos {
            let refused = self.too_large(config, size).map(|refused| self.local_reply(config, refused));
            return Step::wait(refused.into_iter().collect());
        }
        let body = host.body(size);
        let finished = self.on_complete_body(config, &body);
        Step::finished(Vec::new(), finished, |finished, effects| {
            effects.extend(self.rewrite(finished));
            true
        })
    }

    /// The last resort's answer replaces the paused response: into its buffered body (`true`:
    /// it had one; the response then goes on), or as a local reply when it had none.
    pub(super) fn escalated(&self, config: &Config, status: u16, body: Vec<u8>, had_body: bool) -> Vec<Effect> {
        let finished = Finished { status, body: Some(body), escalate: None };
        if had_body { self.rewrite(finished) } else { vec![self.local_reply(config, finished)] }
    }

    /// Tollgate's answer in place of the paused upstream response (headers not yet sent).
    fn local_reply(&self, config: &Config, finished: Finished) -> Effect {
        let mut headers = self.client_headers(config);
        headers.push(("content-type", "application/json".into()));
        Effect::Respond { status: finished.status, headers, body: finished.body.unwrap_or_default() }
    }

    /// A buffered response's final status and body, put in place.
    fn rewrite(&self, finished: Finished) -> Vec<Effect> {
        let mut effects = Vec::new();
        if finished.status != self.status {
            effects.push(Effect::SetHeader(":status".into(), Some(finished.status.to_string())));
        }
        if let Some(new_body) = finished.body {
            let length = new_body.len().to_string();
            effects.push(Effect::ReplaceBody(new_body));
            effects.push(Effect::SetHeader("content-length".into(), Some(length)));
            effects.push(Effect::SetHeader("content-type".into(), Some("application/json".into())));
        }
        effects
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
