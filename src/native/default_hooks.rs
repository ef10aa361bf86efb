//! The hooks Envoy resolves when it loads a module, in the form a filter that does not use them
//! needs: no-ops, and `Continue` where a status is due. Shared (by path) with the bench's native
//! floor filter (tests/bench/native-floor), which exports the same ABI.

use super::abi::{self, EnvoyBuffer, FilterConfigEnvoyPtr, FilterEnvoyPtr, HttpHeader};
use std::ffi::c_void;

/// Exports each hook as a no-op with the header's parameter types.
macro_rules! unused_hooks {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $arg),*) {}
        )*
    };
}

type Module = *const c_void;

unused_hooks! {
    envoy_dynamic_module_on_http_filter_scheduled(FilterEnvoyPtr, Module, u64);
    envoy_dynamic_module_on_http_filter_config_scheduled(FilterConfigEnvoyPtr, Module, u64);
    envoy_dynamic_module_on_http_filter_http_stream_headers(FilterEnvoyPtr, Module, u64, *const HttpHeader, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_data(FilterEnvoyPtr, Module, u64, *const EnvoyBuffer, usize, bool);
    envoy_dynamic_module_on_http_filter_http_stream_trailers(FilterEnvoyPtr, Module, u64, *const HttpHeader, usize);
    envoy_dynamic_module_on_http_filter_http_stream_complete(FilterEnvoyPtr, Module, u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(FilterEnvoyPtr, Module, u64, u32);
    envoy_dynamic_module_on_http_filter_config_http_callout_done(FilterConfigEnvoyPtr, Module, u64, u32, *const HttpHeader, usize, *const EnvoyBuffer, usize);
    envoy_dynamic_module_on_http_filter_config_http_stream_headers(FilterConfigEnvoyPtr, Module, u64, *const HttpHeader, usize, bool);
    envoy_dynamic_module_on_http_filter_config_http_stream_data(FilterConfigEnvoyPtr, Module, u64, *const EnvoyBuffer, usize, bool);
    envoy_dynamic_module_on_http_filter_config_http_stream_trailers(FilterConfigEnvoyPtr, Module, u64, *const HttpHeader, usize);
    envoy_dynamic_module_on_http_filter_config_http_stream_complete(FilterConfigEnvoyPtr, Module, u64);
    envoy_dynamic_module_on_http_filter_config_http_stream_reset(FilterConfigEnvoyPtr, Module, u64, u32);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(FilterEnvoyPtr, Module);
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(FilterEnvoyPtr, Module);
    envoy_dynamic_module_on_http_filter_per_route_config_destroy(Module);
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _envoy: FilterEnvoyPtr,
    _module: *const c_void,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    abi::LOCAL_REPLY_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(_envoy: FilterEnvoyPtr, _module: *const c_void) -> u32 {
    abi::TRAILERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(_envoy: FilterEnvoyPtr, _module: *const c_void) -> u32 {
    abi::TRAILERS_CONTINUE
}

/// No per-route configuration: every route takes the filter's.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(_name: EnvoyBuffer, _config: EnvoyBuffer) -> *const c_void {
    std::ptr::null()
}
