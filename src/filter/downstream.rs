//! The gateway role: the HTTP connection manager's filter. Forwards proxy-wasm's callbacks to
//! the core's [`session::Downstream`].

use super::host;
use super::stream::{Stream, action};
use crate::gateway::{Gateway, session};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct Downstream(session::Downstream);

impl Downstream {
    pub fn new(gateway: Option<Rc<Gateway>>) -> Self {
        Downstream(session::Downstream::new(gateway))
    }
}

impl Context for Downstream {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let (status, body) = host::call_response(body_size);
        self.0.on_call_response(&Stream, status, &body);
    }
}

impl HttpContext for Downstream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&Stream, end_of_stream))
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

    fn on_log(&mut self) {
        self.0.on_log(&Stream);
    }
}
