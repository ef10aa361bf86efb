//! What the mock has been sent, and what it has been told to break.
//!
//! Tests read the log through `/_mock/requests` to assert on what the gateway
//! forwarded, and queue faults through `/_mock/faults`. Both live in one
//! [`Recorder`] that every connection thread shares behind a mutex.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::Request;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Parsed JSON, or the raw text when the body is not JSON.
    pub body: Value,
    /// The body exactly as it arrived (lossy UTF-8), for tests that a gateway passed bytes through
    /// unchanged: `body` is re-parsed and loses key order, spacing and number spelling.
    pub raw_body: String,
    pub test_id: Option<String>,
    /// The body the mock answered with, exactly as sent (a stream's events in order, as framed on
    /// the wire; lossy UTF-8), so tests can check that a gateway passed the answer through
    /// unchanged. Each event is added before it is sent, so a client that has read it can find it.
    pub response_body: String,
    /// Which request this is, for adding `response_body` once the answer is known.
    #[serde(skip)]
    seq: u64,
}

impl Recorded {
    pub fn of(request: &Request) -> Self {
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in &request.headers {
            headers
                .entry(name.clone())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let body =
            serde_json::from_slice(&request.body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()));
        Recorded {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            test_id: request.header("x-test-id").map(str::to_owned),
            headers,
            body,
            raw_body: String::from_utf8_lossy(&request.body).into_owned(),
            response_body: String::new(),
            seq: 0,
        }
    }
}

/// Names one recorded request, to add what the mock answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// A fault queued through `POST /_mock/faults`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `None`: no error, the request is answered normally after `delay_ms` (a slow provider).
    pub status: Option<u16>,
    /// Close the connection without answering (a reset, as a crashed provider would).
    #[serde(default)]
    pub reset: bool,
    #[serde(default = "one")]
    pub count: u32,
    pub retry_after: Option<RetryAfter>,
    #[serde(default)]
    pub delay_ms: u64,
    /// Sent verbatim instead of the provider's error body: a JSON string as
    /// its raw text, any other value as JSON.
    pub body: Option<Value>,
    /// Sent as a 200 stream instead of the answer, one entry per event, each framed as the
    /// provider frames its events (SSE text as written; Bedrock: `name\npayload`).
    pub events: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

/// Tests write Retry-After either as the header text or as seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum RetryAfter {
    Text(String),
    Seconds(u64),
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RetryAfter::Text(text) => f.write_str(text),
            RetryAfter::Seconds(seconds) => write!(f, "{seconds}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Recorder {
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    next_seq: u64,
}

impl Recorder {
    pub fn record(&mut self, mut request: Recorded) -> Ticket {
        self.next_seq += 1;
        request.seq = self.next_seq;
        self.requests.push(request);
        Ticket(self.next_seq)
    }

    /// Appends to what the mock answered the request `ticket` names (nothing if the log was
    /// cleared since).
    pub fn answered(&mut self, ticket: Ticket, bytes: &[u8]) {
        if let Some(request) = self.requests.iter_mut().rev().find(|request| request.seq == ticket.0) {
            request.response_body.push_str(&String::from_utf8_lossy(bytes));
        }
    }

    /// Oldest first; all of them, or only those sent with `x-test-id: test_id`.
    pub fn requests(&self, test_id: Option<&str>) -> Vec<&Recorded> {
        self.requests.iter().filter(|request| test_id.is_none() || request.test_id.as_deref() == test_id).collect()
    }

    pub fn clear_requests(&mut self) {
        self.requests.clear();
    }

    pub fn queue_fault(&mut self, fault: Fault) -> Result<(), String> {
        if let Some(status) = fault.status
            && !(200..=599).contains(&status)
        {
            return Err(format!("status must be 200-599, got {status}"));
        }
        if fault.count == 0 {
            return Err("count must be at least 1".to_owned());
        }
        self.faults.push_back(fault);
        Ok(())
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The fault the next provider request must get, used up after `count`.
    pub fn take_fault(&mut self) -> Option<Fault> {
        let front = self.faults.front_mut()?;
        if front.count > 1 {
            front.count -= 1;
            return Some(front.clone());
        }
        self.faults.pop_front()
    }
}

/// Locks the recorder even if another thread panicked while holding it: the
/// log stays usable, and the mock must keep answering.
pub fn lock(recorder: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    recorder.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_raw_body_and_what_was_answered() {
        let raw = "POST /v1/messages HTTP/1.1\r\ncontent-length: 14\r\n\r\n{\"b\":1, \"a\":2}";
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        let mut recorder = Recorder::default();
        let first = recorder.record(Recorded::of(&request));
        let second = recorder.record(Recorded::of(&request));
        recorder.answered(second, b"event: a\n\n");
        recorder.answered(second, b"event: b\n\n");
        let logged = recorder.requests(None);
        assert_eq!(logged[0].raw_body, r#"{"b":1, "a":2}"#);
        assert_eq!((logged[0].response_body.as_str(), logged[1].response_body.as_str()), ("", "event: a\n\nevent: b\n\n"));
        recorder.clear_requests();
        recorder.answered(first, b"late");
        assert!(recorder.requests(None).is_empty());
        let json = serde_json::to_value(Recorded::of(&request)).unwrap();
        assert!(json.get("seq").is_none() && json["response_body"] == "");
    }

    #[test]
    fn faults_are_used_up_in_order() {
        let mut recorder = Recorder::default();
        let fault: Fault = serde_json::from_str(r#"{"status":503,"count":2,"retry_after":"2"}"#).unwrap();
        recorder.queue_fault(fault).unwrap();
        recorder.queue_fault(serde_json::from_str(r#"{"status":429,"retry_after":7}"#).unwrap()).unwrap();
        recorder.queue_fault(serde_json::from_str(r#"{"delay_ms":10}"#).unwrap()).unwrap();
        recorder.queue_fault(serde_json::from_str(r#"{"reset":true}"#).unwrap()).unwrap();
        let statuses: Vec<Option<u16>> = std::iter::from_fn(|| recorder.take_fault()).map(|fault| fault.status).collect();
        assert_eq!(statuses, [Some(503), Some(503), Some(429), None, None]);
        assert!(recorder.queue_fault(serde_json::from_str(r#"{"status":503,"count":0}"#).unwrap()).is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"status":503,"typo":1}"#).is_err());
    }
}
