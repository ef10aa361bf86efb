//! A host that plays Envoy for one request in memory: it keeps the request's headers, bodies
//! and filter state as the filters change them, logs what the session asks (the session tests
//! read that), and counts the host calls the proxy-wasm shell would make for each, by phase and
//! kind, with the bytes they copy across the VM boundary (`make profile` reports them). Each
//! trait call is one proxy-wasm host call, except counter increments, which the shell batches
//! per VM.

use super::{Reporter, StreamHost};
use crate::config::Config;
use crate::gateway::response::ResponseHost;
use crate::gateway::telemetry::Series;
use crate::host::memory::MemoryStore;
use crate::host::{SharedStore, StoreError};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// The filter callback a host call is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Phase {
    #[default]
    RequestHeaders,
    RequestBody,
    /// Every callback of the upstream role (a failover cluster's per-attempt filter).
    Attempt,
    ResponseHeaders,
    ResponseBody,
    Log,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::RequestHeaders, Phase::RequestBody, Phase::Attempt, Phase::ResponseHeaders, Phase::ResponseBody, Phase::Log];

    pub fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request headers",
            Phase::RequestBody => "request body",
            Phase::Attempt => "upstream attempt",
            Phase::ResponseHeaders => "response headers",
            Phase::ResponseBody => "response body",
            Phase::Log => "log",
        }
    }
}

/// What a host call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    HeaderMapRead,
    HeaderMapWrite,
    HeaderWrite,
    BodyRead,
    BodyReplace,
    PropertyRead,
    PropertyWrite,
    AccessLogExport,
    TimeRead,
    /// A histogram sample: one host call each.
    Histogram,
    /// A counter increment: summed per VM and flushed on a timer, no host call of its own.
    CounterBatched,
    SharedDataGet,
    SharedDataPut,
    LocalReply,
    HttpCall,
    Resume,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::HeaderMapRead,
        Kind::HeaderMapWrite,
        Kind::HeaderWrite,
        Kind::BodyRead,
        Kind::BodyReplace,
        Kind::PropertyRead,
        Kind::PropertyWrite,
        Kind::AccessLogExport,
        Kind::TimeRead,
        Kind::Histogram,
        Kind::CounterBatched,
        Kind::SharedDataGet,
        Kind::SharedDataPut,
        Kind::LocalReply,
        Kind::HttpCall,
        Kind::Resume,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::HeaderMapRead => "header map reads",
            Kind::HeaderMapWrite => "header map writes",
            Kind::HeaderWrite => "single header writes",
            Kind::BodyRead => "body reads",
            Kind::BodyReplace => "body replaces",
            Kind::PropertyRead => "property reads",
            Kind::PropertyWrite => "property writes",
            Kind::AccessLogExport => "access log export",
            Kind::TimeRead => "time reads",
            Kind::Histogram => "histogram samples",
            Kind::CounterBatched => "counter increments (batched, no call)",
            Kind::SharedDataGet => "shared-data gets",
            Kind::SharedDataPut => "shared-data puts",
            Kind::LocalReply => "local replies",
            Kind::HttpCall => "HTTP callouts",
            Kind::Resume => "resumes",
        }
    }

    /// Whether the proxy-wasm shell makes a host call for it.
    pub fn is_host_call(self) -> bool {
        self != Kind::CounterBatched
    }
}

/// Calls of one phase and kind, and the bytes they copied across the boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    pub bytes: u64,
}

fn map_bytes(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// One request as a shell would see it, and every host call the filters made.
#[derive(Default)]
pub struct RecordingHost {
    pub request_headers: RefCell<Vec<(String, String)>>,
    pub request_body: RefCell<Vec<u8>>,
    pub response_headers: RefCell<Vec<(String, String)>>,
    /// The response body buffered so far (a streamed response: the current chunk).
    pub response_body: RefCell<Vec<u8>>,
    /// The request's filter state, shared by both roles' filters, and Envoy's other properties
    /// (by their path, joined with `.`).
    pub properties: RefCell<Vec<(String, Vec<u8>)>>,
    /// The writes and calls that change the stream, in order.
    pub log: RefCell<Vec<String>>,
    pub store: MemoryStore,
    pub now_ms: u64,
    phase: Cell<Phase>,
    tallies: RefCell<BTreeMap<(Phase, Kind), Tally>>,
}

impl RecordingHost {
    /// A request with these headers and body, at `now_ms`.
    pub fn new(headers: &[(&str, &str)], body: &[u8], now_ms: u64) -> Self {
        RecordingHost {
            request_headers: RefCell::new(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            request_body: RefCell::new(body.to_vec()),
            now_ms,
            ..RecordingHost::default()
        }
    }

    /// The provider's answer arrives (or, streaming, its next chunk: `headers` `None`).
    pub fn answer(&self, headers: Option<&[(&str, &str)]>, body: &[u8]) {
        if let Some(headers) = headers {
            *self.response_headers.borrow_mut() = headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        }
        *self.response_body.borrow_mut() = body.to_vec();
    }

    /// The callback the following host calls are made in.
    pub fn enter(&self, phase: Phase) {
        self.phase.set(phase);
    }

    pub fn tally(&self, phase: Phase, kind: Kind) -> Tally {
        self.tallies.borrow().get(&(phase, kind)).copied().unwrap_or_default()
    }

    /// The logged writes and calls so far, and forgets them.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    pub fn request_header_value(&self, name: &str) -> Option<String> {
        self.request_headers.borrow().iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn count(&self, kind: Kind, bytes: usize) {
        let mut tallies = self.tallies.borrow_mut();
        let tally = tallies.entry((self.phase.get(), kind)).or_default();
        tally.calls += 1;
        tally.bytes += bytes as u64;
    }

    fn note(&self, entry: String) {
        self.log.borrow_mut().push(entry);
    }
}

impl ResponseHost for RecordingHost {
    fn headers(&self) -> Vec<(String, String)> {
        let headers = self.response_headers.borrow().clone();
        self.count(Kind::HeaderMapRead, map_bytes(&headers));
        headers
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let name = path.join(".");
        let value = self.properties.borrow().iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        self.count(Kind::PropertyRead, value.as_ref().map_or(0, Vec::len));
        value
    }

    fn body(&self, size: usize) -> Vec<u8> {
        let body = self.response_body.borrow().get(..size).unwrap_or_default().to_vec();
        self.count(Kind::BodyRead, body.len());
        body
    }
}

impl SharedStore for RecordingHost {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let found = self.store.get(key);
        self.count(Kind::SharedDataGet, found.as_ref().map_or(0, |(v, _)| v.len()));
        found
    }

    fn put(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.count(Kind::SharedDataPut, value.len());
        self.store.put(key, value, cas)
    }
}

impl Reporter for RecordingHost {
    fn record_metric(&self, series: Series, _value: u64, _config: &Config) {
        self.count(if series.metric.is_histogram() { Kind::Histogram } else { Kind::CounterBatched }, 0);
    }

    fn store(&self) -> &dyn SharedStore {
        self
    }

    fn now_ms(&self) -> u64 {
        self.count(Kind::TimeRead, 8);
        self.now_ms
    }
}

impl StreamHost for RecordingHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        let headers = self.request_headers.borrow().clone();
        self.count(Kind::HeaderMapRead, map_bytes(&headers));
        headers
    }

    fn set_request_headers(&self, headers: &[(String, String)]) {
        self.count(Kind::HeaderMapWrite, map_bytes(headers));
        self.note("set_request_headers".into());
        *self.request_headers.borrow_mut() = headers.to_vec();
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        let body = self.request_body.borrow().get(..size).unwrap_or_default().to_vec();
        self.count(Kind::BodyRead, body.len());
        body
    }

    fn replace_request_body(&self, size: usize, body: &[u8]) {
        self.count(Kind::BodyReplace, body.len());
        self.note(format!("replace_request_body {size}"));
        *self.request_body.borrow_mut() = body.to_vec();
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.count(Kind::HeaderWrite, name.len() + value.map_or(0, str::len));
        self.note(format!("set_response_header {name}"));
        let mut headers = self.response_headers.borrow_mut();
        headers.retain(|(k, _)| k != name);
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }

    fn set_response_headers(&self, headers: &[(String, String)]) {
        self.count(Kind::HeaderMapWrite, map_bytes(headers));
        self.note("set_response_headers".into());
        *self.response_headers.borrow_mut() = headers.to_vec();
    }

    fn replace_response_body(&self, size: usize, body: &[u8]) {
        self.count(Kind::BodyReplace, body.len());
        self.note(format!("replace_response_body {size}"));
        *self.response_body.borrow_mut() = body.to_vec();
    }

    fn set_property(&self, name: &str, value: &[u8]) {
        self.count(Kind::PropertyWrite, name.len() + value.len());
        self.properties.borrow_mut().push((name.into(), value.to_vec()));
    }

    fn respond(&self, status: u16, headers: &[(&str, String)], body: &[u8]) {
        self.count(Kind::LocalReply, headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + body.len());
        self.note(format!("respond {status}"));
    }

    fn call(&self, cluster: &str, headers: &[(&str, &str)], body: &[u8], _timeout_ms: u64) -> bool {
        self.count(Kind::HttpCall, headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + body.len());
        self.note(format!("call {cluster}"));
        false
    }

    fn resume_request(&self) {
        self.count(Kind::Resume, 0);
        self.note("resume_request".into());
    }

    fn resume_response(&self) {
        self.count(Kind::Resume, 0);
        self.note("resume_response".into());
    }

    fn export_access_log(&self, entry: &[u8]) {
        self.count(Kind::AccessLogExport, entry.len());
        self.note(format!("access_log {}", String::from_utf8_lossy(entry)));
    }
}
