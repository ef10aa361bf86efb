//! Response callbacks of both roles: hands the response to the core through a
//! [`ResponseHost`] and applies the [`Effect`]s it returns.

use super::host;
use crate::gateway::response::{Effect, ResponseHost, Step};
use proxy_wasm::types::{Action, BufferType, MapType};

const RESP: MapType = MapType::HttpResponseHeaders;

/// The upstream response as proxy-wasm shows it.
pub struct Response;

impl ResponseHost for Response {
    fn headers(&self) -> Vec<(String, String)> {
        host::headers(RESP)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        host::property(path.to_vec())
    }

    fn body(&self, size: usize) -> Vec<u8> {
        host::body(BufferType::HttpResponseBody, size)
    }
}

/// Makes the host calls, in order (`body_size`: the buffered body they replace).
pub fn apply(effects: Vec<Effect>, body_size: usize) {
    for effect in effects {
        match effect {
            Effect::SetHeader(name, value) => host::set_header(RESP, &name, value.as_deref()),
            Effect::SetHeaders(headers) => host::set_headers(RESP, &headers),
            Effect::ReplaceBody(body) => host::replace_body(BufferType::HttpResponseBody, body_size, &body),
            Effect::Respond { status, headers, body } => host::respond(status, &headers, &body),
            Effect::SetProperty(name, value) => host::set_property(name, &value),
        }
    }
}

/// Applies a step's effects; the action it asks for.
pub fn run(step: Step, body_size: usize) -> Action {
    apply(step.effects, body_size);
    if step.pause { Action::Pause } else { Action::Continue }
}
