//! Error-tolerant wrappers over proxy-wasm host calls. The SDK's trait methods panic on an
//! unexpected status, which would trap the VM; these log and carry on instead.

use crate::accounting::budget::Accounting;
use crate::gateway::telemetry::Series;
use crate::host::{SharedStore, StoreError};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

thread_local! {
    /// Metric ids of this VM, defined on first use of each series.
    static METRICS: RefCell<HashMap<Series, u32>> = RefCell::new(HashMap::new());
    /// Gauge ids of this VM, by stat name.
    static GAUGES: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
    /// Counter increments not yet handed to Envoy, by metric id.
    static PENDING: RefCell<HashMap<u32, u64>> = RefCell::new(HashMap::new());
}

/// Histograms go to Envoy at once (each sample counts); counters are summed here and added by
/// [`flush_metrics`] on the root context's timer, one host call per counter instead of one
/// per request.
pub fn record_metric(series: Series, value: u64, accounting: &Accounting) {
    let histogram = series.metric.is_histogram();
    if value == 0 && !histogram {
        return;
    }
    let Some(id) = metric_id(series, accounting) else { return };
    if histogram {
        if let Err(status) = hostcalls::record_metric(id, value) {
            log::debug!("metric update failed: {status:?}");
        }
    } else {
        PENDING.with(|p| *p.borrow_mut().entry(id).or_default() += value);
    }
}

/// Defines the series without recording: Envoy shows them at zero.
pub fn define_metrics(series: &[Series], accounting: &Accounting) {
    for s in series {
        metric_id(*s, accounting);
    }
}

fn metric_id(series: Series, accounting: &Accounting) -> Option<u32> {
    METRICS.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(id) = m.get(&series) {
            return Some(*id);
        }
        let kind = if series.metric.is_histogram() { MetricType::Histogram } else { MetricType::Counter };
        let id = hostcalls::define_metric(kind, &series.name(accounting)).ok()?;
        m.insert(series, id);
        Some(id)
    })
}

/// Sets each named gauge to its value (every VM writes the same values, read from shared data).
pub fn set_gauges(gauges: &[(String, u64)]) {
    GAUGES.with(|g| {
        let mut g = g.borrow_mut();
        for (name, value) in gauges {
            let id = match g.get(name) {
                Some(id) => *id,
                None => match hostcalls::define_metric(MetricType::Gauge, name) {
                    Ok(id) => *g.entry(name.clone()).or_insert(id),
                    Err(status) => {
                        log::debug!("gauge definition failed: {status:?}");
                        continue;
                    }
                },
            };
            if let Err(status) = hostcalls::record_metric(id, *value) {
                log::debug!("gauge update failed: {status:?}");
            }
        }
    });
}

pub fn flush_metrics() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (id, value) in pending {
        if let Err(status) = hostcalls::increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX)) {
            log::debug!("metric update failed: {status:?}");
        }
    }
}

pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0))
}

/// proxy-wasm shared data: one store for every worker of the VM (same `vm_id`).
pub struct Shared;

impl SharedStore for Shared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), Some(cas))) => Some((value, cas)),
            _ => None,
        }
    }

    fn put(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Unavailable),
        }
    }
}

pub fn headers(map: MapType) -> Vec<(String, String)> {
    hostcalls::get_map(map).unwrap_or_default()
}

pub fn header(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value(map, name).ok().flatten()
}

/// Replaces the whole header map: one host call for any number of changes.
pub fn set_headers(map: MapType, headers: &[(String, String)]) {
    let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if let Err(status) = hostcalls::set_map(map, pairs) {
        log::warn!("could not set the headers: {status:?}");
    }
}

pub fn set_header(map: MapType, name: &str, value: Option<&str>) {
    if let Err(status) = hostcalls::set_map_value(map, name, value) {
        log::warn!("could not set header {name}: {status:?}");
    }
}

pub fn body(buffer: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(buffer, 0, size).ok().flatten().unwrap_or_default()
}

pub fn replace_body(buffer: BufferType, size: usize, value: &[u8]) {
    if let Err(status) = hostcalls::set_buffer(buffer, 0, size, value) {
        log::warn!("could not replace body: {status:?}");
    }
}

pub fn property(path: Vec<&str>) -> Option<Vec<u8>> {
    hostcalls::get_property(path).ok().flatten()
}

/// Sends an HTTP request to an Envoy cluster; the answer comes to `on_http_call_response`.
pub fn call(cluster: &str, headers: &[(&str, &str)], body: &[u8], timeout_ms: u64) -> bool {
    let result = hostcalls::dispatch_http_call(cluster, headers.to_vec(), Some(body), vec![], Duration::from_millis(timeout_ms));
    if let Err(status) = &result {
        log::warn!("could not call cluster {cluster}: {status:?}");
    }
    result.is_ok()
}

/// The status and body of the answer to [`call`] (`None` status: no answer, e.g. a timeout).
pub fn call_response(body_size: usize) -> (Option<u16>, Vec<u8>) {
    let status = header(MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.parse().ok());
    (status, body(BufferType::HttpCallResponseBody, body_size))
}

pub fn resume_response() {
    if let Err(status) = hostcalls::resume_http_response() {
        log::warn!("could not resume the response: {status:?}");
    }
}

/// Filter state for Envoy's access log: `%FILTER_STATE(wasm.tollgate:PLAIN)%`.
pub fn export_access_log(entry: &[u8]) {
    set_property("tollgate", entry);
}

/// Sets the request's filter state `wasm.<name>`, which both roles' filters of the request read.
pub fn set_property(name: &str, value: &[u8]) {
    if let Err(status) = hostcalls::set_property(vec![name], Some(value)) {
        log::debug!("could not set property {name}: {status:?}");
    }
}

pub fn respond(status: u16, headers: &[(&str, String)], body: &[u8]) {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Err(e) = hostcalls::send_http_response(u32::from(status), headers, Some(body)) {
        log::warn!("could not send a local response: {e:?}");
    }
}
