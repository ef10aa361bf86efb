//! `make bench`'s reference filter. A gateway that routes on the `model` field has to hold the
//! request headers until the body is complete and copy the body into the VM; this filter does
//! only that (and names the cluster, as Tollgate does), so Envoy + this filter is the fastest
//! any such filter can be on this Envoy and its V8 runtime.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor;

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if end_of_stream { Action::Continue } else { Action::Pause }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = proxy_wasm::hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size).ok().flatten().unwrap_or_default();
        // The choice means nothing; depending on the body keeps the copy from being optimised away.
        let cluster = if body.is_empty() { "mock_openai" } else { "mock_anthropic" };
        let _ = proxy_wasm::hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-tollgate-cluster", Some(cluster));
        Action::Continue
    }
}
