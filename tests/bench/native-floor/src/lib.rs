//! `make bench`'s native reference filter: tests/bench/floor-filter's work (hold the request
//! headers until the body is complete, read the body, name the cluster in a header) as an Envoy
//! dynamic module, so Envoy + this module is the fastest any body-routing native filter can be.
//! It declares the ABI with Tollgate's own declarations (src/native/abi.rs, by path) and
//! exports the hooks it does not use from Tollgate's defaults.

#[allow(dead_code)] // Tollgate's whole declaration file: this filter uses a few of its calls.
#[path = "../../../../src/native/abi.rs"]
mod abi;
#[path = "../../../../src/native/default_hooks.rs"]
mod default_hooks;

use abi::{EnvoyBuffer, FilterConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer};
use std::ffi::{c_char, c_void};

/// Any non-null pointer: the filter keeps no state.
static STATELESS: u8 = 0;

fn stateless() -> *const c_void {
    (&raw const STATELESS).cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _envoy: FilterConfigEnvoyPtr,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    stateless()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(_config: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(_config: *const c_void, _envoy: FilterEnvoyPtr) -> *const c_void {
    stateless()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_module: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if end_of_stream { abi::HEADERS_CONTINUE } else { abi::HEADERS_STOP_ITERATION }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    _module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    if !end_of_stream {
        return abi::BODY_STOP_ITERATION_AND_BUFFER;
    }
    route_on_body(envoy);
    abi::BODY_CONTINUE
}

/// Reads the whole request body and names the cluster.
fn route_on_body(envoy: FilterEnvoyPtr) {
    let mut body = Vec::new();
    for kind in [abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY] {
        // SAFETY: ABI calls; `chunks` has room for as many buffers as Envoy reported, and each
        // buffer Envoy set is valid during this hook.
        unsafe {
            let count = abi::envoy_dynamic_module_callback_http_get_body_chunks_size(envoy, kind);
            let mut chunks = vec![EnvoyBuffer::EMPTY; count];
            if count > 0 && abi::envoy_dynamic_module_callback_http_get_body_chunks(envoy, kind, chunks.as_mut_ptr()) {
                for chunk in &chunks {
                    body.extend(abi::copy(chunk.ptr, chunk.length).unwrap_or_default());
                }
            }
        }
    }
    // The choice means nothing; depending on the body keeps the copy from being optimised away.
    let cluster: &[u8] = if body.is_empty() { b"mock_openai" } else { b"mock_anthropic" };
    // SAFETY: ABI calls with buffers that outlive them.
    unsafe {
        let header = ModuleBuffer::of(b"x-tollgate-cluster");
        abi::envoy_dynamic_module_callback_http_set_header(envoy, abi::REQUEST_HEADER, header, ModuleBuffer::of(cluster));
        abi::envoy_dynamic_module_callback_http_clear_route_cache(envoy);
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::HEADERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::BODY_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(_envoy: FilterEnvoyPtr, _module: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const abi::HttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}
