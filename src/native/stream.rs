//! One request's host calls over Envoy's dynamic-module ABI, as the core's [`StreamHost`] sees
//! them. Every `unsafe` block is an ABI call with a filter pointer Envoy gave this hook and
//! buffers that live through the call.

use super::abi::{self, EnvoyBuffer, FilterEnvoyPtr, HttpHeader, ModuleBuffer};
use crate::config::Config;
use crate::gateway::response::ResponseHost;
use crate::gateway::session::{ENDPOINT_PROVIDER_PATH, Reporter, StreamHost};
use crate::gateway::telemetry::Series;
use crate::host::SharedStore;
use crate::host::process::ProcessStore;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Shared by every worker: the module is loaded once per process.
pub static STORE: LazyLock<ProcessStore> = LazyLock::new(ProcessStore::default);

/// Filter state keys carry the prefix the proxy-wasm shell's do (`wasm.<name>`), so Envoy's
/// access log and CEL expressions read both builds' entries alike.
const FILTER_STATE_PREFIX: &str = "wasm.";

/// Where in the stream a hook runs: the received body chunk exists only in body hooks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    RequestBody,
    ResponseBody,
    Other,
}

/// The stream of one hook call.
pub struct Stream {
    pub filter: FilterEnvoyPtr,
    pub hook: Hook,
    /// Request header changes re-pick the route (the gateway role names the cluster in a header;
    /// the ABI does not clear Envoy's route cache itself).
    pub clears_route: bool,
}

impl Stream {
    fn headers(&self, kind: u32) -> Vec<(String, String)> {
        // SAFETY: ABI calls; `found` has room for as many headers as Envoy reported.
        let count = unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.filter, kind) };
        let mut found = vec![HttpHeader { key_ptr: std::ptr::null(), key_length: 0, value_ptr: std::ptr::null(), value_length: 0 }; count];
        if count == 0 || !unsafe { abi::envoy_dynamic_module_callback_http_get_headers(self.filter, kind, found.as_mut_ptr()) } {
            return Vec::new();
        }
        found
            .iter()
            .filter_map(|h| {
                // SAFETY: Envoy filled each entry with its own header bytes.
                let key = unsafe { abi::copy(h.key_ptr, h.key_length) }?;
                let value = unsafe { abi::copy(h.value_ptr, h.value_length) }.unwrap_or_default();
                Some((String::from_utf8(key).ok()?, String::from_utf8_lossy(&value).into_owned()))
            })
            .collect()
    }

    fn set_header(&self, kind: u32, name: &str, value: Option<&str>) {
        let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: ABI call with buffers that outlive it.
        if !unsafe { abi::envoy_dynamic_module_callback_http_set_header(self.filter, kind, ModuleBuffer::of(name.as_bytes()), value) } {
            log::warn!("could not set header {name}");
        }
    }

    /// Rewrites the map to `wanted`: names it lacks are removed, changed names rewritten.
    fn set_headers(&self, kind: u32, wanted: &[(String, String)]) {
        let current = self.headers(kind);
        let values = |map: &[(String, String)], name: &str| -> Vec<String> {
            map.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
        };
        let mut done: Vec<&str> = Vec::new();
        for (name, _) in &current {
            if !done.contains(&name.as_str()) && !wanted.iter().any(|(k, _)| k == name) {
                self.set_header(kind, name, None);
            }
            done.push(name);
        }
        let mut written: Vec<&str> = Vec::new();
        for (name, _) in wanted {
            if written.contains(&name.as_str()) {
                continue;
            }
            written.push(name);
            let new = values(wanted, name);
            if new == values(&current, name) {
                continue;
            }
            let mut each = new.iter();
            self.set_header(kind, name, each.next().map(String::as_str));
            for more in each {
                // SAFETY: ABI call with buffers that outlive it.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_add_header(
                        self.filter,
                        kind,
                        ModuleBuffer::of(name.as_bytes()),
                        ModuleBuffer::of(more.as_bytes()),
                    );
                }
            }
        }
    }

    fn chunks(&self, kind: u32) -> Vec<u8> {
        // SAFETY: ABI calls; `chunks` has room for as many buffers as Envoy reported.
        let count = unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.filter, kind) };
        let mut chunks = vec![EnvoyBuffer::EMPTY; count];
        if count == 0 || !unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks(self.filter, kind, chunks.as_mut_ptr()) } {
            return Vec::new();
        }
        let mut body = Vec::new();
        for chunk in &chunks {
            // SAFETY: each buffer Envoy set, valid during this hook.
            body.extend(unsafe { abi::copy(chunk.ptr, chunk.length) }.unwrap_or_default());
        }
        body
    }

    /// The body so far: what earlier hooks buffered, then the chunk this hook received.
    fn body(&self, buffered: u32, received: u32, size: usize) -> Vec<u8> {
        let mut body = self.chunks(buffered);
        if self.hook != Hook::Other {
            body.extend(self.chunks(received));
        }
        body.truncate(size);
        body
    }

    /// Replaces the body so far. In a body hook the new bytes take the received chunk's place
    /// (Envoy moves it behind the buffered ones); outside one only the buffered body exists.
    fn replace_body(&self, buffered: u32, received: u32, body: &[u8]) {
        // SAFETY: ABI calls with buffers that outlive them; draining an absent body is a no-op.
        unsafe {
            abi::envoy_dynamic_module_callback_http_drain_body(self.filter, buffered, usize::MAX);
            let target = if self.hook == Hook::Other {
                buffered
            } else {
                abi::envoy_dynamic_module_callback_http_drain_body(self.filter, received, usize::MAX);
                received
            };
            if !abi::envoy_dynamic_module_callback_http_append_body(self.filter, target, ModuleBuffer::of(body)) {
                log::warn!("could not replace the body");
            }
        }
    }

    fn filter_state(&self, name: &str) -> Option<Vec<u8>> {
        let key = format!("{FILTER_STATE_PREFIX}{name}");
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: ABI call; `value` receives a buffer owned by Envoy, copied at once.
        unsafe {
            if !abi::envoy_dynamic_module_callback_http_get_filter_state_bytes(self.filter, ModuleBuffer::of(key.as_bytes()), &mut value) {
                return None;
            }
            abi::copy(value.ptr, value.length)
        }
    }

    fn attribute(&self, id: u32) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: ABI call; `value` receives a buffer owned by Envoy, copied at once.
        unsafe {
            if !abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(self.filter, id, &mut value) {
                return None;
            }
            abi::copy(value.ptr, value.length)
        }
    }

    fn host_metadata(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: ABI call; `value` receives a buffer owned by Envoy, copied at once.
        unsafe {
            let found = abi::envoy_dynamic_module_callback_http_get_metadata_string(
                self.filter,
                abi::METADATA_SOURCE_HOST,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut value,
            );
            if !found {
                return None;
            }
            abi::copy(value.ptr, value.length)
        }
    }
}

impl ResponseHost for Stream {
    fn headers(&self) -> Vec<(String, String)> {
        Stream::headers(self, abi::RESPONSE_HEADER)
    }

    /// The proxy-wasm property paths the core reads, from where the ABI keeps them.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match path {
            [name] => self.filter_state(name),
            ["response", "code_details"] => self.attribute(abi::ATTRIBUTE_RESPONSE_CODE_DETAILS),
            _ if path == ENDPOINT_PROVIDER_PATH => self.host_metadata("tollgate", "provider"),
            _ => None,
        }
    }

    fn body(&self, size: usize) -> Vec<u8> {
        Stream::body(self, abi::BUFFERED_RESPONSE_BODY, abi::RECEIVED_RESPONSE_BODY, size)
    }
}

impl StreamHost for Stream {
    fn request_headers(&self) -> Vec<(String, String)> {
        Stream::headers(self, abi::REQUEST_HEADER)
    }

    fn set_request_headers(&self, headers: &[(String, String)]) {
        self.set_headers(abi::REQUEST_HEADER, headers);
        if self.clears_route {
            // SAFETY: ABI call (a no-op in a phase where it does not apply).
            unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) };
        }
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        self.body(abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY, size)
    }

    fn replace_request_body(&self, _size: usize, body: &[u8]) {
        self.replace_body(abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY, body);
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.set_header(abi::RESPONSE_HEADER, name, value);
    }

    fn set_response_headers(&self, headers: &[(String, String)]) {
        self.set_headers(abi::RESPONSE_HEADER, headers);
    }

    fn replace_response_body(&self, _size: usize, body: &[u8]) {
        self.replace_body(abi::BUFFERED_RESPONSE_BODY, abi::RECEIVED_RESPONSE_BODY, body);
    }

    fn set_property(&self, name: &str, value: &[u8]) {
        let key = format!("{FILTER_STATE_PREFIX}{name}");
        // SAFETY: ABI call with buffers that outlive it.
        if !unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.filter,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        } {
            log::debug!("could not set filter state {key}");
        }
    }

    fn respond(&self, status: u16, headers: &[(&str, String)], body: &[u8]) {
        let mut headers: Vec<HttpHeader> = headers.iter().map(|(k, v)| HttpHeader::of(k, v)).collect();
        // SAFETY: ABI call with buffers that outlive it.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.filter,
                u32::from(status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"tollgate"),
            );
        }
    }

    fn call(&self, cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> bool {
        let mut headers: Vec<HttpHeader> = headers.iter().map(|(k, v)| HttpHeader::of(k, v)).collect();
        let mut id = 0u64;
        // SAFETY: ABI call with buffers that outlive it.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_http_callout(
                self.filter,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if result != abi::CALLOUT_INIT_SUCCESS {
            log::warn!("could not call cluster {cluster}: callout result {result}");
        }
        result == abi::CALLOUT_INIT_SUCCESS
    }

    fn resume_request(&self) {
        // SAFETY: ABI call.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.filter) };
    }

    fn resume_response(&self) {
        // SAFETY: ABI call.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_encoding(self.filter) };
    }

    fn export_access_log(&self, entry: &[u8]) {
        self.set_property("tollgate", entry);
    }
}

impl Reporter for Stream {
    fn record_metric(&self, series: Series, value: u64, config: &Config) {
        Process.record_metric(series, value, config);
    }

    fn store(&self) -> &dyn SharedStore {
        Process.store()
    }

    fn now_ms(&self) -> u64 {
        Process.now_ms()
    }
}

/// Reporting without a stream (after Envoy let go of it): the process's store and clock.
pub struct Process;

impl Reporter for Process {
    fn record_metric(&self, series: Series, value: u64, config: &Config) {
        if let Some(metrics) = super::metrics_of(config) {
            metrics.record(series, value, config);
        }
    }

    fn store(&self) -> &dyn SharedStore {
        &*STORE
    }

    fn now_ms(&self) -> u64 {
        now().as_millis().try_into().unwrap_or(u64::MAX)
    }
}

pub fn now() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}
