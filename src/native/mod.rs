//! The native shell: Tollgate as an Envoy dynamic module (`libtollgate.so`, loaded by
//! `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`). It adapts the ABI's
//! event hooks to the same core as the proxy-wasm shell (`filter`), with the same plugin JSON:
//! the core's [`session`] state machines decide, this shell only makes the calls.
//!
//! Envoy loads the module once per process: every worker shares its memory, so the shared store
//! is one process-wide map ([`stream::STORE`]). The core's per-request types are single-threaded
//! (as in a wasm VM), so each worker compiles its own [`Gateway`] from the configuration the main
//! thread checked. Each hook runs inside [`guarded`]: a panic must not unwind into Envoy.

mod abi;
mod default_hooks;
mod metrics;
mod stream;

use crate::gateway::Gateway;
use crate::gateway::plugin::{self, Clock};
use crate::gateway::session::{self, Flow};
use crate::gateway::telemetry;
use crate::schema::Role;
use abi::{EnvoyBuffer, FilterConfigEnvoyPtr, FilterEnvoyPtr, HttpHeader, ModuleBuffer};
use metrics::Metrics;
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use stream::{Hook, Process, STORE, Stream};

/// Runs a hook's body; a panic is logged and the hook returns `fallback`.
fn guarded<T>(fallback: T, hook: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(hook)).unwrap_or_else(|_| {
        log::error!("tollgate: a hook panicked; the request goes on without Tollgate's answer");
        fallback
    })
}

/// Core logging into Envoy's log (component `dynamic_modules`).
struct EnvoyLog;

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => abi::LOG_ERROR,
            log::Level::Warn => abi::LOG_WARN,
            log::Level::Info => abi::LOG_INFO,
            _ => abi::LOG_DEBUG,
        };
        let message = format!("tollgate: {}", record.args());
        // SAFETY: ABI call with a buffer that outlives it.
        unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) };
    }

    fn flush(&self) {}
}

static LOG: EnvoyLog = EnvoyLog;

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    guarded(std::ptr::null(), || {
        if log::set_logger(&LOG).is_ok() {
            log::set_max_level(log::LevelFilter::Info);
        }
        std::panic::set_hook(Box::new(|info| log::error!("tollgate panicked: {info}")));
        abi::ABI_VERSION.as_ptr().cast()
    })
}

// ---- Filter configuration ------------------------------------------------------------------------

/// One `DynamicModuleFilter` configuration: its `filter_name` (the role, as a wasm `root_id`)
/// and the plugin JSON, checked on the main thread.
struct FilterConfig {
    id: u64,
    root_id: Vec<u8>,
    json: Vec<u8>,
    metrics: Arc<Metrics>,
}

static NEXT_CONFIG_ID: AtomicU64 = AtomicU64::new(1);
/// Configurations Envoy still holds; a worker drops its gateways of the others.
static LIVE_CONFIGS: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

thread_local! {
    /// This worker's gateway for each configuration.
    static GATEWAYS: RefCell<Vec<WorkerGateway>> = const { RefCell::new(Vec::new()) };
}

struct WorkerGateway {
    config_id: u64,
    /// `None`: the configuration was refused here.
    gateway: Option<Rc<Gateway>>,
    /// The configuration's stats.
    metrics: Arc<Metrics>,
}

/// The stats of the configuration this worker compiled `config` from.
pub(crate) fn metrics_of(config: &crate::config::Config) -> Option<Arc<Metrics>> {
    GATEWAYS.with(|gateways| {
        let gateways = gateways.borrow();
        let found = gateways.iter().find(|w| w.gateway.as_ref().is_some_and(|g| std::ptr::eq(&g.config, config)));
        found.map(|w| w.metrics.clone())
    })
}

fn set_live(id: u64, live: bool) {
    let mut configs = LIVE_CONFIGS.lock().unwrap_or_else(PoisonError::into_inner);
    let configs = configs.get_or_insert_with(HashSet::new);
    if live {
        configs.insert(id);
    } else {
        configs.remove(&id);
    }
}

fn is_live(id: u64) -> bool {
    LIVE_CONFIGS.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_some_and(|c| c.contains(&id))
}

fn compile(root_id: &[u8], json: &[u8]) -> Result<crate::config::Config, crate::schema::ConfigError> {
    let now = stream::now();
    let clock = Clock {
        now_ms: now.as_millis().try_into().unwrap_or(u64::MAX),
        now_nanos: u64::try_from(now.as_nanos() & u128::from(u64::MAX)).unwrap_or(0),
    };
    plugin::configure(json, root_id, &|name| std::env::var(name).ok(), &*STORE, clock, false)
}

/// This worker's gateway for `config`, compiled on first use.
fn worker_gateway(config: &FilterConfig) -> Option<Rc<Gateway>> {
    GATEWAYS.with(|gateways| {
        let mut gateways = gateways.borrow_mut();
        if let Some(w) = gateways.iter().find(|w| w.config_id == config.id) {
            return w.gateway.clone();
        }
        gateways.retain(|w| is_live(w.config_id));
        let gateway = match compile(&config.root_id, &config.json) {
            Ok(compiled) => Some(Rc::new(Gateway::new(compiled))),
            Err(e) => {
                log::error!("{e}");
                None
            }
        };
        gateways.push(WorkerGateway { config_id: config.id, gateway: gateway.clone(), metrics: config.metrics.clone() });
        gateway
    })
}

/// # Safety
/// `buffer` must be a buffer Envoy passed to the running hook.
unsafe fn bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    // SAFETY: the caller's contract.
    unsafe { abi::copy(buffer.ptr, buffer.length) }.unwrap_or_default()
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy_ptr: FilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded(std::ptr::null(), || {
        // SAFETY: both buffers are Envoy's arguments to this hook.
        let (root_id, json) = unsafe { (bytes(name), bytes(config)) };
        let metrics = match compile(&root_id, &json) {
            Ok(compiled) => {
                for warning in &compiled.warnings {
                    log::warn!("{warning}");
                }
                log::info!("configured {} providers", compiled.providers.len());
                let metrics = Metrics::define(config_envoy_ptr);
                metrics.start_at_zero(&telemetry::startup_series(&compiled.served_scopes()), &compiled);
                Arc::new(metrics)
            }
            Err(e) => {
                log::error!("{e}");
                return std::ptr::null();
            }
        };
        let id = NEXT_CONFIG_ID.fetch_add(1, Ordering::Relaxed);
        set_live(id, true);
        Box::into_raw(Box::new(FilterConfig { id, root_id, json, metrics })).cast_const().cast()
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guarded((), || {
        if config.is_null() {
            return;
        }
        // SAFETY: the pointer `config_new` returned, destroyed once by Envoy.
        let config = unsafe { Box::from_raw(config.cast_mut().cast::<FilterConfig>()) };
        set_live(config.id, false);
    });
}

// ---- Filters -------------------------------------------------------------------------------------

/// One stream's filter, in the role its configuration takes.
enum Filter {
    Downstream(session::Downstream),
    Upstream(session::Upstream),
}

impl Filter {
    fn stream(&self, filter: FilterEnvoyPtr, hook: Hook) -> Stream {
        Stream { filter, hook, clears_route: matches!(self, Filter::Downstream(_)) }
    }
}

/// # Safety
/// `module` must be null or a pointer `filter_new` returned and Envoy has not destroyed.
unsafe fn filter<'f>(module: *const c_void) -> Option<&'f mut Filter> {
    // SAFETY: the caller's contract; Envoy calls one stream's hooks on one thread, one at a time.
    unsafe { module.cast_mut().cast::<Filter>().as_mut() }
}

/// Runs `hook` on the stream's filter (when it has one).
fn with_filter<T: Copy>(module: *const c_void, fallback: T, hook: impl FnOnce(&mut Filter) -> T) -> T {
    guarded(fallback, || {
        // SAFETY: Envoy passes the pointer `filter_new` returned for this stream.
        match unsafe { filter(module) } {
            Some(f) => hook(f),
            None => fallback,
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(config: *const c_void, _filter_envoy_ptr: FilterEnvoyPtr) -> *const c_void {
    guarded(std::ptr::null(), || {
        // SAFETY: the pointer `config_new` returned, alive while Envoy creates filters from it.
        let Some(config) = (unsafe { config.cast::<FilterConfig>().as_ref() }) else { return std::ptr::null() };
        let gateway = worker_gateway(config);
        let filter = match gateway {
            Some(g) if g.config.role == Role::Upstream => Filter::Upstream(session::Upstream::new(g)),
            other => Filter::Downstream(session::Downstream::new(other)),
        };
        Box::into_raw(Box::new(filter)).cast_const().cast()
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    guarded((), || {
        if module.is_null() {
            return;
        }
        // SAFETY: the pointer `filter_new` returned, destroyed once by Envoy.
        let mut filter = unsafe { Box::from_raw(module.cast_mut().cast::<Filter>()) };
        // Envoy completes an upstream (cluster) filter's stream by destroying it, without
        // `stream_complete`: the attempt reports here, where only the process is left to call.
        if let Filter::Upstream(u) = filter.as_mut() {
            u.on_done(&Process);
        }
    });
}

fn headers_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::HEADERS_CONTINUE,
        Flow::Pause => abi::HEADERS_STOP_ITERATION,
    }
}

fn body_status(flow: Flow) -> u32 {
    match flow {
        Flow::Continue => abi::BODY_CONTINUE,
        Flow::Pause => abi::BODY_STOP_ITERATION_AND_BUFFER,
    }
}

/// The whole body so far: what earlier hooks buffered plus the chunk just received.
fn body_size(envoy: FilterEnvoyPtr, buffered: u32, received: u32) -> usize {
    // SAFETY: ABI calls with the filter pointer of the running hook.
    unsafe {
        abi::envoy_dynamic_module_callback_http_get_body_size(envoy, buffered)
            .saturating_add(abi::envoy_dynamic_module_callback_http_get_body_size(envoy, received))
    }
}

/// Which half of the stream a hook is about.
#[derive(Clone, Copy)]
enum Half {
    Request,
    Response,
}

fn headers_hook(envoy: FilterEnvoyPtr, module: *const c_void, half: Half, end_of_stream: bool) -> u32 {
    with_filter(module, abi::HEADERS_CONTINUE, |f| {
        let stream = f.stream(envoy, Hook::Other);
        headers_status(match (f, half) {
            (Filter::Downstream(d), Half::Request) => d.on_request_headers(&stream, end_of_stream),
            (Filter::Upstream(u), Half::Request) => u.on_request_headers(&stream),
            (Filter::Downstream(d), Half::Response) => d.on_response_headers(&stream, end_of_stream),
            (Filter::Upstream(u), Half::Response) => u.on_response_headers(&stream, end_of_stream),
        })
    })
}

fn body_hook(envoy: FilterEnvoyPtr, module: *const c_void, half: Half, end_of_stream: bool) -> u32 {
    with_filter(module, abi::BODY_CONTINUE, |f| {
        let (hook, size) = match half {
            Half::Request => (Hook::RequestBody, body_size(envoy, abi::BUFFERED_REQUEST_BODY, abi::RECEIVED_REQUEST_BODY)),
            Half::Response => (Hook::ResponseBody, body_size(envoy, abi::BUFFERED_RESPONSE_BODY, abi::RECEIVED_RESPONSE_BODY)),
        };
        let stream = f.stream(envoy, hook);
        body_status(match (f, half) {
            (Filter::Downstream(d), Half::Request) => d.on_request_body(&stream, size, end_of_stream),
            (Filter::Upstream(u), Half::Request) => u.on_request_body(&stream, size, end_of_stream),
            (Filter::Downstream(d), Half::Response) => d.on_response_body(&stream, size, end_of_stream),
            (Filter::Upstream(u), Half::Response) => u.on_response_body(&stream, size, end_of_stream),
        })
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    headers_hook(envoy, module, Half::Request, end_of_stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    body_hook(envoy, module, Half::Request, end_of_stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    headers_hook(envoy, module, Half::Response, end_of_stream)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> u32 {
    body_hook(envoy, module, Half::Response, end_of_stream)
}

/// Trailers pass as they are.
/// Called once the stream is over, before Envoy writes the access log: the request is
/// accounted and leaves its entry (gateway role), or the attempt reports its target's health
/// (upstream role; else at `destroy`).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(envoy: FilterEnvoyPtr, module: *const c_void) {
    with_filter(module, (), |f| {
        let stream = f.stream(envoy, Hook::Other);
        match f {
            Filter::Downstream(d) => d.on_log(&stream),
            Filter::Upstream(u) => u.on_done(&stream),
        }
    });
}

/// The answer to a [`session::StreamHost::call`] (the last resort, or the guardrail service).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy: FilterEnvoyPtr,
    module: *const c_void,
    _callout_id: u64,
    result: u32,
    headers: *const HttpHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    with_filter(module, (), |f| {
        let Filter::Downstream(d) = f else { return };
        let (status, body) = if result == abi::CALLOUT_SUCCESS {
            // SAFETY: Envoy's arrays of `headers_size` headers and `body_chunks_size` buffers,
            // valid during this hook.
            unsafe { (callout_status(headers, headers_size), callout_body(body_chunks, body_chunks_size)) }
        } else {
            (None, Vec::new())
        };
        let stream = Stream { filter: envoy, hook: Hook::Other, clears_route: true };
        d.on_call_response(&stream, status, &body);
    });
}

/// # Safety
/// `headers` must be null or point to `count` headers Envoy owns for the running hook.
unsafe fn callout_status(headers: *const HttpHeader, count: usize) -> Option<u16> {
    if headers.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let headers = unsafe { std::slice::from_raw_parts(headers, count) };
    headers.iter().find_map(|h| {
        // SAFETY: each header's bytes, owned by Envoy for the running hook.
        let (key, value) = unsafe { (abi::copy(h.key_ptr, h.key_length)?, abi::copy(h.value_ptr, h.value_length)?) };
        if key != b":status" {
            return None;
        }
        std::str::from_utf8(&value).ok()?.parse().ok()
    })
}

/// # Safety
/// `chunks` must be null or point to `count` buffers Envoy owns for the running hook.
unsafe fn callout_body(chunks: *const EnvoyBuffer, count: usize) -> Vec<u8> {
    if chunks.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    let chunks = unsafe { std::slice::from_raw_parts(chunks, count) };
    let mut body = Vec::new();
    for chunk in chunks {
        // SAFETY: each buffer, owned by Envoy for the running hook.
        body.extend(unsafe { abi::copy(chunk.ptr, chunk.length) }.unwrap_or_default());
    }
    body
}
