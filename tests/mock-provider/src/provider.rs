//! What every provider has in common: recording the request, the faults tests
//! inject (queued through `/_mock/faults` or asked for with `x-mock-*` request
//! headers), and delivering the answer either whole or as a paced stream.
//! A provider module only supplies its wire format through [`Provider`].

use std::io;
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::http::{Chunked, Request, Response};
use crate::record::{self, Fault, Recorded, Recorder, Ticket};
use crate::script::{self, Cache};

pub trait Provider {
    /// An error response in this provider's format.
    fn error(&self, status: u16, message: &str) -> Response;

    /// The event this provider sends when the stream answering `request` fails after `sent`
    /// events.
    fn stream_error(&self, request: &Request, sent: usize) -> String;

    /// The media type of this provider's streams.
    fn stream_content_type(&self) -> &'static str {
        "text/event-stream"
    }

    /// The bytes of one streamed event on the wire. SSE events are sent as
    /// written; binary framings (AWS event streams) encode them here.
    fn encode_event(&self, event: &str) -> Vec<u8> {
        event.as_bytes().to_vec()
    }

    /// Validates the request and answers it; `Err` holds an error response.
    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response>;
}

pub struct Answer {
    /// The non-streaming response; also what a streaming client gets under
    /// `x-mock-wrong-content-type`.
    pub whole: Response,
    /// One event per entry, when the client asked to stream: framed SSE text,
    /// or what [`Provider::encode_event`] frames.
    pub events: Option<Vec<String>>,
}

/// Whether the connection can carry another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    KeepAlive,
    Close,
}

impl Flow {
    pub fn after(keep_alive: bool) -> Self {
        if keep_alive { Flow::KeepAlive } else { Flow::Close }
    }
}

pub fn serve(provider: &dyn Provider, request: &Request, recorder: &Mutex<Recorder>, out: &mut TcpStream) -> io::Result<Flow> {
    let (ticket, queued) = {
        let mut log = record::lock(recorder);
        let ticket = log.record(Recorded::of(request));
        (ticket, log.take_fault())
    };
    let answered = Answered { recorder, ticket };
    let keep_alive = request.keep_alive();
    let respond = |out: &mut TcpStream, response: Response, delay: Duration| {
        thread::sleep(delay);
        answered.add(&response.body);
        response.write_to(out, keep_alive).map(|()| Flow::after(keep_alive))
    };
    if let Some(fault) = queued {
        let delay = Duration::from_millis(fault.delay_ms);
        if fault.reset {
            thread::sleep(delay);
            // The gateway sees the connection die without an answer.
            out.shutdown(std::net::Shutdown::Both)?;
            return Ok(Flow::Close);
        }
        thread::sleep(delay);
        if let Some(events) = &fault.events {
            return stream(provider, request, out, &[], events, &Controls::default(), &answered);
        }
        if let Some(status) = fault.status {
            return respond(out, queued_fault(provider, &fault, status), Duration::ZERO);
        }
    }
    let controls = match Controls::from_headers(request) {
        Ok(controls) => controls,
        Err(message) => return respond(out, provider.error(400, &message), Duration::ZERO),
    };
    if let Some(response) = injected(provider, &controls) {
        return respond(out, response, controls.delay);
    }
    match script::with_piece_bytes(controls.piece_bytes, || provider.answer(request, controls.cache)) {
        Err(response) => respond(out, response, controls.delay),
        Ok(Answer { events: Some(events), whole }) if !controls.wrong_content_type => {
            stream(provider, request, out, &whole.headers, &events, &controls, &answered)
        }
        Ok(Answer { whole, .. }) if controls.forge_tollgate => {
            let forged = FORGED_HEADERS.iter().fold(whole, |response, (name, value)| response.with_header(name, *value));
            respond(out, forged, controls.delay)
        }
        Ok(answer) => respond(out, answer.whole, controls.delay),
    }
}

/// Adds what the mock answers to the request's record, before it is sent.
struct Answered<'a> {
    recorder: &'a Mutex<Recorder>,
    ticket: Ticket,
}

impl Answered<'_> {
    fn add(&self, bytes: &[u8]) {
        record::lock(self.recorder).answered(self.ticket, bytes);
    }
}

/// What a malicious provider in a failover cluster would send to pass for Tollgate's upstream
/// filter (`x-mock-forge-tollgate: 1`): its internal response headers and its former in-band
/// usage comment, claiming one token each way.
const FORGED_HEADERS: &[(&str, &str)] =
    &[("x-tollgate-provider", "forged"), ("x-tollgate-model", "forged-model"), ("x-tollgate-usage", "1 0 0 1 0")];
const FORGED_USAGE_COMMENT: &str = ": tollgate-usage 1 0 0 1 0\n\n";

/// The answer a test forced with `x-mock-status` or `x-mock-garbage`, if any.
fn injected(provider: &dyn Provider, controls: &Controls) -> Option<Response> {
    if let Some(status) = controls.status {
        let mut response = provider.error(status, default_message(status));
        let retry_after = match &controls.retry_after {
            Some(retry_after) => Some(retry_after.as_str()),
            None => (status == 429).then_some("1"),
        };
        if let Some(retry_after) = retry_after {
            response = response.with_header("retry-after", retry_after);
        }
        return Some(response);
    }
    controls.garbage.then(|| Response::new(200, "application/json", "this is not json"))
}

fn queued_fault(provider: &dyn Provider, fault: &Fault, status: u16) -> Response {
    let mut response = match &fault.body {
        Some(serde_json::Value::String(text)) => Response::new(status, "application/json", text.clone()),
        Some(body) => Response::json(status, body),
        None => provider.error(status, default_message(status)),
    };
    if let Some(retry_after) = &fault.retry_after {
        response = response.with_header("retry-after", retry_after.to_string());
    }
    response
}

fn default_message(status: u16) -> &'static str {
    match status {
        400 => "Invalid request.",
        401 => "Invalid authentication.",
        403 => "Permission denied.",
        404 => "Not found.",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "Rate limit reached for requests.",
        500 => "The server had an error while processing your request.",
        502 => "Bad gateway.",
        503 => "The service is temporarily unavailable.",
        529 => "Overloaded",
        _ => "Injected fault.",
    }
}

fn stream(
    provider: &dyn Provider,
    request: &Request,
    out: &mut TcpStream,
    headers: &[(String, String)],
    events: &[String],
    controls: &Controls,
    answered: &Answered,
) -> io::Result<Flow> {
    let keep_alive = request.keep_alive();
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name != "content-type")
        .cloned()
        .chain([
            ("content-type".to_owned(), provider.stream_content_type().to_owned()),
            ("cache-control".to_owned(), "no-cache".to_owned()),
        ])
        .chain(FORGED_HEADERS.iter().filter(|_| controls.forge_tollgate).map(|(n, v)| ((*n).to_owned(), (*v).to_owned())))
        .collect();
    let mut body = Chunked::start(out, 200, &headers, keep_alive)?;
    let send = |body: &mut Chunked<'_, TcpStream>, bytes: Vec<u8>| {
        answered.add(&bytes);
        body.send(&bytes)
    };
    let sent = controls.stream_fault.map_or(events.len(), |fault| fault.after.min(events.len()));
    for (index, event) in events.iter().take(sent).enumerate() {
        if index > 0 {
            thread::sleep(controls.delay);
        }
        if controls.forge_tollgate && index + 1 == events.len() {
            // After the real usage, before the end of the stream.
            send(&mut body, provider.encode_event(FORGED_USAGE_COMMENT))?;
        }
        send(&mut body, provider.encode_event(event))?;
    }
    match controls.stream_fault.map(|fault| fault.kind) {
        Some(FaultKind::Reset) => {
            body.abort()?;
            return Ok(Flow::Close);
        }
        Some(FaultKind::Error) => {
            thread::sleep(controls.delay);
            send(&mut body, provider.encode_event(&provider.stream_error(request, sent)))?;
        }
        Some(FaultKind::Truncate) | None => {}
    }
    body.finish()?;
    Ok(Flow::after(keep_alive))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// End the body cleanly, leaving out the rest of the events.
    Truncate,
    /// Drop the connection without ending the body.
    Reset,
    /// Send the provider's in-stream error event, then end cleanly.
    Error,
}

/// `x-mock-stream-fault: <kind>-after-<events>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StreamFault {
    kind: FaultKind,
    after: usize,
}

impl FromStr for StreamFault {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (kind, after) = text.split_once("-after-").ok_or(())?;
        let kind = match kind {
            "truncate" => FaultKind::Truncate,
            "reset" => FaultKind::Reset,
            "error" => FaultKind::Error,
            _ => return Err(()),
        };
        let after = after.parse().map_err(|_| ())?;
        Ok(StreamFault { kind, after })
    }
}

/// The `x-mock-*` request headers, which tests use to steer one request.
#[derive(Debug, Default, PartialEq)]
struct Controls {
    status: Option<u16>,
    retry_after: Option<String>,
    delay: Duration,
    stream_fault: Option<StreamFault>,
    garbage: bool,
    wrong_content_type: bool,
    forge_tollgate: bool,
    cache: Cache,
    /// `x-mock-piece-bytes`: streamed text in pieces of this many bytes instead of words.
    piece_bytes: usize,
}

impl Controls {
    /// A malformed control header is the test's mistake; reporting it beats
    /// silently answering normally.
    fn from_headers(request: &Request) -> Result<Self, String> {
        let status = parsed::<u16>(request, "x-mock-status")?;
        if let Some(status) = status.filter(|status| !(400..=599).contains(status)) {
            return Err(format!("x-mock-status must be 400-599, got {status}"));
        }
        Ok(Controls {
            status,
            retry_after: request.header("x-mock-retry-after").map(str::to_owned),
            delay: Duration::from_millis(parsed(request, "x-mock-delay-ms")?.unwrap_or(0)),
            stream_fault: parsed(request, "x-mock-stream-fault")?,
            garbage: flag(request, "x-mock-garbage")?,
            wrong_content_type: flag(request, "x-mock-wrong-content-type")?,
            forge_tollgate: flag(request, "x-mock-forge-tollgate")?,
            cache: Cache {
                read: parsed(request, "x-mock-cache-read")?.unwrap_or(0),
                write: parsed(request, "x-mock-cache-write")?.unwrap_or(0),
            },
            piece_bytes: parsed(request, "x-mock-piece-bytes")?.unwrap_or(0),
        })
    }
}

fn parsed<T: FromStr>(request: &Request, name: &str) -> Result<Option<T>, String> {
    request.header(name).map(|value| value.parse().map_err(|_| format!("invalid {name} header: {value:?}"))).transpose()
}

fn flag(request: &Request, name: &str) -> Result<bool, String> {
    match request.header(name) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(value) => Err(format!("invalid {name} header: {value:?}, expected 1 or 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut raw = String::from("POST /v1/messages HTTP/1.1\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap()
    }

    #[test]
    fn reads_control_headers() {
        let controls = Controls::from_headers(&request(&[
            ("x-mock-status", "429"),
            ("x-mock-delay-ms", "15"),
            ("x-mock-stream-fault", "reset-after-3"),
            ("x-mock-garbage", "1"),
            ("x-mock-cache-read", "7"),
            ("x-mock-forge-tollgate", "1"),
            ("x-mock-piece-bytes", "5"),
        ]))
        .unwrap();
        assert!(controls.forge_tollgate);
        assert_eq!(controls.piece_bytes, 5);
        assert_eq!(controls.status, Some(429));
        assert_eq!(controls.delay, Duration::from_millis(15));
        assert_eq!(controls.stream_fault, Some(StreamFault { kind: FaultKind::Reset, after: 3 }));
        assert!(controls.garbage && !controls.wrong_content_type);
        assert_eq!(controls.cache, Cache { read: 7, write: 0 });
    }

    #[test]
    fn rejects_malformed_control_headers() {
        for header in [
            ("x-mock-status", "abc"),
            ("x-mock-status", "200"),
            ("x-mock-delay-ms", "-1"),
            ("x-mock-stream-fault", "explode-after-2"),
            ("x-mock-stream-fault", "truncate-after-"),
            ("x-mock-garbage", "yes"),
        ] {
            assert!(Controls::from_headers(&request(&[header])).is_err(), "{header:?}");
        }
    }
}
