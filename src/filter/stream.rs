//! One request's host calls over proxy-wasm, as the core's [`StreamHost`] sees them.

use super::host;
use crate::config::Config;
use crate::gateway::response::ResponseHost;
use crate::gateway::session::{Flow, Reporter, StreamHost};
use crate::gateway::telemetry::Series;
use crate::host::SharedStore;
use proxy_wasm::types::{Action, BufferType, MapType};

const REQ: MapType = MapType::HttpRequestHeaders;
const RESP: MapType = MapType::HttpResponseHeaders;

/// The current request of this VM's context (proxy-wasm calls always act on it).
pub struct Stream;

/// Proxy-wasm's action for the core's flow.
pub fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl ResponseHost for Stream {
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

impl StreamHost for Stream {
    fn request_headers(&self) -> Vec<(String, String)> {
        host::headers(REQ)
    }

    fn set_request_headers(&self, headers: &[(String, String)]) {
        host::set_headers(REQ, headers);
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        host::body(BufferType::HttpRequestBody, size)
    }

    fn replace_request_body(&self, size: usize, body: &[u8]) {
        host::replace_body(BufferType::HttpRequestBody, size, body);
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        host::set_header(RESP, name, value);
    }

    fn set_response_headers(&self, headers: &[(String, String)]) {
        host::set_headers(RESP, headers);
    }

    fn replace_response_body(&self, size: usize, body: &[u8]) {
        host::replace_body(BufferType::HttpResponseBody, size, body);
    }

    fn set_property(&self, name: &str, value: &[u8]) {
        host::set_property(name, value);
    }

    fn respond(&self, status: u16, headers: &[(&str, String)], body: &[u8]) {
        host::respond(status, headers, body);
    }

    fn call(&self, cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> bool {
        host::call(cluster, headers, body, timeout_ms)
    }

    fn resume_request(&self) {
        host::resume_request();
    }

    fn resume_response(&self) {
        host::resume_response();
    }

    fn export_access_log(&self, entry: &[u8]) {
        host::export_access_log(entry);
    }
}

impl Reporter for Stream {
    fn record_metric(&self, series: Series, value: u64, config: &Config) {
        host::record_metric(series, value, config);
    }

    fn store(&self) -> &dyn SharedStore {
        &host::Shared
    }

    fn now_ms(&self) -> u64 {
        host::now_ms()
    }
}
