//! The upstream role: the per-attempt filter of a failover cluster. Forwards proxy-wasm's
//! callbacks to the core's [`session::Upstream`].

use super::stream::{Stream, action};
use crate::gateway::{Gateway, session};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct Upstream(session::Upstream);

impl Upstream {
    pub fn new(gateway: Rc<Gateway>) -> Self {
        Upstream(session::Upstream::new(gateway))
    }
}

impl Context for Upstream {
    fn on_done(&mut self) -> bool {
        self.0.on_done(&Stream);
        true
    }
}

impl HttpContext for Upstream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&Stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(&Stream, body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&Stream, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_response_body(&Stream, body_size, end_of_stream))
    }
}
