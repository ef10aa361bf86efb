//! Just enough HTTP/1.1 for the mock: one request at a time per connection,
//! bodies framed by Content-Length or chunked encoding, responses with a
//! Content-Length or streamed as chunks.

use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};

/// Longest request or header line accepted; real clients stay far below.
const MAX_LINE: u64 = 64 * 1024;
const MAX_HEADERS: usize = 256;
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Names are lowercase; repeated headers stay separate, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    http10: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn keep_alive(&self) -> bool {
        let close = self.header("connection").is_some_and(|value| value.split(',').any(|v| v.trim().eq_ignore_ascii_case("close")));
        !close && !self.http10
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| bytes.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (escaped, bytes[at]) {
            (Some(byte), _) => {
                out.push(byte);
                at += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                at += 1;
            }
            (None, byte) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The peer sent something that is not HTTP/1.1; answer 400 and hang up.
    Malformed(String),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ReadError::Io(error) => write!(f, "{error}"),
            ReadError::Malformed(reason) => f.write_str(reason),
        }
    }
}

fn malformed<T>(reason: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError::Malformed(reason.into()))
}

/// Reads the next request, or `None` if the peer closed the connection
/// between requests. `interim` receives `100 Continue` when a client waits
/// for it before sending the body.
pub fn read_request(reader: &mut impl BufRead, interim: &mut impl Write) -> Result<Option<Request>, ReadError> {
    // RFC 9112 asks servers to ignore empty lines before a request line.
    let line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return malformed("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return malformed("malformed method");
    }
    if !target.starts_with('/') {
        return malformed("request target must be an absolute path");
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return malformed("unsupported HTTP version"),
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    let mut request =
        Request { method: method.to_owned(), path: path.to_owned(), query, headers: read_headers(reader)?, body: Vec::new(), http10 };
    let chunked = match request.header("transfer-encoding") {
        None => false,
        Some(coding) if coding.eq_ignore_ascii_case("chunked") => true,
        Some(_) => return malformed("unsupported transfer-encoding"),
    };
    let length = content_length(&request.headers)?;
    if chunked && length.is_some() {
        return malformed("both transfer-encoding and content-length");
    }
    if !chunked && length.unwrap_or(0) == 0 {
        return Ok(Some(request));
    }
    if request.header("expect").is_some_and(|value| value.eq_ignore_ascii_case("100-continue")) {
        interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        interim.flush()?;
    }
    request.body = match length {
        Some(length) => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        }
        None => read_chunked(reader)?,
    };
    Ok(Some(request))
}

/// One CRLF- (or bare LF-) terminated line, without its terminator.
fn read_line(reader: &mut impl BufRead) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    if reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return malformed("line too long or connection closed mid-line");
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(line) {
        Ok(line) => Ok(Some(line)),
        Err(_) => malformed("header is not UTF-8"),
    }
}

fn read_headers(reader: &mut impl BufRead) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return malformed("connection closed in headers");
        };
        if line.is_empty() {
            return Ok(headers);
        }
        if headers.len() == MAX_HEADERS {
            return malformed("too many headers");
        }
        let Some((name, value)) = line.split_once(':') else {
            return malformed("header without a colon");
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return malformed("malformed header name");
        }
        headers.push((name.to_ascii_lowercase(), value.trim_matches([' ', '\t']).to_owned()));
    }
}

fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, ReadError> {
    let mut length = None;
    for (_, value) in headers.iter().filter(|(name, _)| name == "content-length") {
        let parsed = match value.parse::<usize>() {
            Ok(parsed) if value.bytes().all(|b| b.is_ascii_digit()) => parsed,
            _ => return malformed("malformed content-length"),
        };
        if length.is_some_and(|seen| seen != parsed) {
            return malformed("conflicting content-length headers");
        }
        if parsed > MAX_BODY {
            return malformed("body too large");
        }
        length = Some(parsed);
    }
    Ok(length)
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return malformed("connection closed in chunked body");
        };
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = match usize::from_str_radix(size, 16) {
            Ok(size) if size.saturating_add(body.len()) <= MAX_BODY => size,
            Ok(_) => return malformed("body too large"),
            Err(_) => return malformed("malformed chunk size"),
        };
        if size == 0 {
            // Trailers carry nothing the mock needs; consume them.
            read_headers(reader)?;
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if read_line(reader)?.as_deref() != Some("") {
            return malformed("chunk not followed by CRLF");
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response { status, headers: vec![("content-type".to_owned(), content_type.to_owned())], body: body.into() }
    }

    pub fn json(status: u16, body: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(body).expect("response types always serialize");
        Response::new(status, "application/json", body)
    }

    pub fn no_content() -> Self {
        Response { status: 204, headers: Vec::new(), body: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn write_to(&self, out: &mut impl Write, keep_alive: bool) -> io::Result<()> {
        let mut message = head(self.status, &self.headers, keep_alive);
        if self.status != 204 {
            message.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        message.push_str("\r\n");
        let mut message = message.into_bytes();
        message.extend_from_slice(&self.body);
        out.write_all(&message)?;
        out.flush()
    }
}

/// Status line and headers, without the blank line that ends them.
fn head(status: u16, headers: &[(String, String)], keep_alive: bool) -> String {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !keep_alive {
        head.push_str("connection: close\r\n");
    }
    head
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        // Anthropic's non-standard "overloaded" status.
        529 => "Overloaded",
        _ => "Unknown",
    }
}

/// A response body sent as chunks, each written and flushed as soon as it is
/// produced so clients observe the stream's timing.
pub struct Chunked<'a, W: Write> {
    out: &'a mut W,
}

impl<'a, W: Write> Chunked<'a, W> {
    pub fn start(out: &'a mut W, status: u16, headers: &[(String, String)], keep_alive: bool) -> io::Result<Self> {
        let mut message = head(status, headers, keep_alive);
        message.push_str("transfer-encoding: chunked\r\n\r\n");
        out.write_all(message.as_bytes())?;
        out.flush()?;
        Ok(Chunked { out })
    }

    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        // An empty chunk would end the body.
        if data.is_empty() {
            return Ok(());
        }
        let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(b"\r\n");
        self.out.write_all(&chunk)?;
        self.out.flush()
    }

    pub fn finish(self) -> io::Result<()> {
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()
    }
}

impl Chunked<'_, TcpStream> {
    /// Drops the connection without the terminating chunk, as a crashed
    /// upstream would. std cannot set SO_LINGER to 0 on stable Rust, so the
    /// peer sees a FIN in mid-body rather than an RST; the shutdown makes it
    /// go out now even though the reading half still holds a clone.
    pub fn abort(self) -> io::Result<()> {
        self.out.shutdown(Shutdown::Both)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<Request>, ReadError> {
        read_request(&mut raw.as_bytes(), &mut Vec::new())
    }

    #[test]
    fn reads_content_length_and_query() {
        let raw = "POST /v1/messages?test_id=a%20b&x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Test-Id: t\r\n\r\n{}";
        let request = parse(raw).unwrap().unwrap();
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.query_param("test_id").as_deref(), Some("a b"));
        assert_eq!(request.header("x-test-id"), Some("t"));
        assert_eq!(request.body, b"{}");
        assert!(request.keep_alive());
    }

    #[test]
    fn reads_chunked_bodies_and_answers_expect() {
        let raw = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n";
        let mut interim = Vec::new();
        let request = read_request(&mut raw.as_bytes(), &mut interim).unwrap().unwrap();
        assert_eq!(request.body, b"abcde");
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(!request.keep_alive());
    }

    #[test]
    fn rejects_malformed_requests() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert!(matches!(parse(raw), Err(ReadError::Malformed(_))), "accepted {raw:?}");
        }
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn writes_chunks() {
        let mut out = Vec::new();
        let mut body = Chunked::start(&mut out, 200, &[], true).unwrap();
        body.send(b"hello").unwrap();
        body.send(b"").unwrap();
        body.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"));
        assert!(text.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    }
}
