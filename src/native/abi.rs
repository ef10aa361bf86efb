//! The part of Envoy's dynamic-module ABI this module uses, declared by hand from
//! `source/extensions/dynamic_modules/abi/abi.h` (envoyproxy/envoy, Apache-2.0; the v0.1 ABI of
//! Envoy 1.39, which Envoy 1.40 keeps). C enums are `int`-sized: passed here as `u32`, with
//! their values as constants in the order the header declares them.

use std::ffi::{c_char, c_void};

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy, valid until the hook returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer { ptr: std::ptr::null(), length: 0 };
}

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module, read during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    /// A null buffer (`set_header` removes the header with it).
    pub const NULL: ModuleBuffer = ModuleBuffer { ptr: std::ptr::null(), length: 0 };

    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer { ptr: bytes.as_ptr().cast(), length: bytes.len() }
    }
}

/// `envoy_dynamic_module_type_module_http_header` (and `..._envoy_http_header`, same layout).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl HttpHeader {
    pub fn of(key: &str, value: &str) -> Self {
        HttpHeader { key_ptr: key.as_ptr().cast(), key_length: key.len(), value_ptr: value.as_ptr().cast(), value_length: value.len() }
    }
}

/// The ABI version Envoy 1.40 expects (another string only logs a warning).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

pub type FilterConfigEnvoyPtr = *mut c_void;
pub type FilterEnvoyPtr = *mut c_void;

// envoy_dynamic_module_type_http_header_type
pub const REQUEST_HEADER: u32 = 0;
pub const RESPONSE_HEADER: u32 = 2;

// envoy_dynamic_module_type_http_body_type
pub const RECEIVED_REQUEST_BODY: u32 = 0;
pub const BUFFERED_REQUEST_BODY: u32 = 1;
pub const RECEIVED_RESPONSE_BODY: u32 = 2;
pub const BUFFERED_RESPONSE_BODY: u32 = 3;

// envoy_dynamic_module_type_on_http_filter_{request,response}_headers_status
pub const HEADERS_CONTINUE: u32 = 0;
pub const HEADERS_STOP_ITERATION: u32 = 1;
// envoy_dynamic_module_type_on_http_filter_{request,response}_body_status
pub const BODY_CONTINUE: u32 = 0;
pub const BODY_STOP_ITERATION_AND_BUFFER: u32 = 1;
// ..._trailers_status and ..._local_reply_status
pub const TRAILERS_CONTINUE: u32 = 0;
pub const LOCAL_REPLY_CONTINUE: u32 = 0;

// envoy_dynamic_module_type_http_callout_init_result / _http_callout_result
pub const CALLOUT_INIT_SUCCESS: u32 = 0;
pub const CALLOUT_SUCCESS: u32 = 0;

// envoy_dynamic_module_type_metadata_source: host (LbEndpoint) metadata
pub const METADATA_SOURCE_HOST: u32 = 3;

// envoy_dynamic_module_type_attribute_id: response.code_details
pub const ATTRIBUTE_RESPONSE_CODE_DETAILS: u32 = 16;

// envoy_dynamic_module_type_metrics_result
pub const METRICS_SUCCESS: u32 = 0;

// envoy_dynamic_module_type_log_level
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;

unsafe extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    pub fn envoy_dynamic_module_callback_http_get_headers_size(filter: FilterEnvoyPtr, header_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(filter: FilterEnvoyPtr, header_type: u32, result: *mut HttpHeader) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(filter: FilterEnvoyPtr, body_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(filter: FilterEnvoyPtr, body_type: u32, result: *mut EnvoyBuffer) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_size(filter: FilterEnvoyPtr, body_type: u32) -> usize;
    pub fn envoy_dynamic_module_callback_http_append_body(filter: FilterEnvoyPtr, body_type: u32, data: ModuleBuffer) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(filter: FilterEnvoyPtr, body_type: u32, number_of_bytes: usize) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);
    pub fn envoy_dynamic_module_callback_http_filter_continue_encoding(filter: FilterEnvoyPtr);

    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut HttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;

    // Labelled metrics, defined while the configuration loads (later definitions are refused)
    // and recorded from the configuration, from any thread. Ids start at 1.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        histogram_id: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: FilterConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
}

/// Copies Envoy's bytes (`None` for a null buffer).
///
/// # Safety
/// `ptr` must point to `length` readable bytes, or be null.
pub unsafe fn copy(ptr: *const c_char, length: usize) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: Envoy hands out a pointer to `length` bytes valid during this hook (caller's contract).
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), length) }.to_vec())
}
