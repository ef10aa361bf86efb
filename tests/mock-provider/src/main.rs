//! A mock LLM provider for Tollgate's tests and demo.
//!
//! It speaks the OpenAI Chat Completions and Embeddings, Anthropic Messages,
//! Gemini / Vertex AI GenerateContent, Amazon Bedrock (Converse,
//! ConverseStream, InvokeModel, SigV4-signed), Cohere v2 and Azure OpenAI wire
//! formats, validates what the gateway forwards as strictly as the real APIs, answers
//! with a deterministic script, records every request for assertions, and
//! injects faults on demand. See `--help` for the command line.

mod anthropic;
mod azure;
mod bedrock;
mod cohere;
mod gemini;
mod http;
mod openai;
mod provider;
mod record;
mod responses;
mod script;
mod sigv4;
mod validate;
mod vertex_claude;

use std::env;
use std::io::{self, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::anthropic::Anthropic;
use crate::azure::Azure;
use crate::bedrock::Bedrock;
use crate::cohere::Cohere;
use crate::gemini::Gemini;
use crate::http::{ReadError, Request, Response};
use crate::openai::OpenAi;
use crate::provider::Flow;
use crate::record::{Fault, Recorder};
use crate::responses::Responses;
use crate::sigv4::Credentials;
use crate::vertex_claude::VertexClaude;

const USAGE: &str = "usage: mock-provider --listen HOST:PORT [--openai-key KEY] [--anthropic-key KEY] [--gemini-key KEY] \
                     [--vertex-token TOKEN] [--aws-credentials KEY:SECRET[:TOKEN]]... [--cohere-key KEY] [--azure-key KEY]";

/// The AWS credentials Bedrock requests may be signed with unless
/// `--aws-credentials` names others: a long-term key, and a temporary one that
/// only works with its session token.
const DEFAULT_AWS_CREDENTIALS: &[&str] =
    &["AKIDMOCKBEDROCK:mock/bedrock+secret-key", "ASIAMOCKBEDROCK:mock/bedrock+temporary-secret:mock-session-token/abc+def=="];

#[derive(Debug, PartialEq, Eq)]
struct Config {
    listen: String,
    openai_key: String,
    anthropic_key: String,
    gemini_key: String,
    vertex_token: String,
    aws_credentials: Vec<Credentials>,
    cohere_key: String,
    azure_key: String,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut listen = None;
    let mut openai_key = "test-openai-key".to_owned();
    let mut anthropic_key = "test-anthropic-key".to_owned();
    let mut gemini_key = "test-gemini-key".to_owned();
    let mut vertex_token = "test-vertex-token".to_owned();
    let mut aws_credentials = Vec::new();
    let mut cohere_key = "test-cohere-key".to_owned();
    let mut azure_key = "test-azure-key".to_owned();
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--listen" => listen.insert(String::new()),
            "--openai-key" => &mut openai_key,
            "--anthropic-key" => &mut anthropic_key,
            "--gemini-key" => &mut gemini_key,
            "--vertex-token" => &mut vertex_token,
            "--aws-credentials" => {
                let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                aws_credentials.push(value.parse()?);
                continue;
            }
            "--cohere-key" => &mut cohere_key,
            "--azure-key" => &mut azure_key,
            _ => return Err(format!("unknown argument {flag:?}")),
        };
        *slot = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    }
    if aws_credentials.is_empty() {
        aws_credentials = DEFAULT_AWS_CREDENTIALS.iter().map(|text| text.parse()).collect::<Result<_, _>>()?;
    }
    Ok(Config {
        listen: listen.ok_or("--listen is required")?,
        openai_key,
        anthropic_key,
        gemini_key,
        vertex_token,
        aws_credentials,
        cohere_key,
        azure_key,
    })
}

/// State shared by all connection threads.
struct App {
    openai: OpenAi,
    responses: Responses,
    anthropic: Anthropic,
    gemini: Gemini,
    bedrock: Bedrock,
    vertex_claude: VertexClaude,
    cohere: Cohere,
    azure: Azure,
    recorder: Mutex<Recorder>,
}

impl App {
    fn new(config: Config) -> Self {
        App {
            responses: Responses::new(config.openai_key.clone()),
            openai: OpenAi::new(config.openai_key),
            anthropic: Anthropic::new(config.anthropic_key),
            vertex_claude: VertexClaude::new(config.vertex_token.clone()),
            gemini: Gemini::new(config.gemini_key, config.vertex_token),
            bedrock: Bedrock::new(config.aws_credentials),
            cohere: Cohere::new(config.cohere_key),
            azure: Azure::new(config.azure_key),
            recorder: Mutex::default(),
        }
    }
}

/// Azure's deployment and dated Responses paths are its own; its v1 API shares `/openai/v1/…`
/// with OpenAI-compatible hosts that use that base path (Groq), and is told apart by its `api-key`
/// header.
fn is_azure(request: &Request) -> bool {
    let path = &request.path;
    path.starts_with("/openai/deployments/")
        || path.starts_with("/openai/responses")
        || path.starts_with("/openai/v1/") && request.header("api-key").is_some()
}

/// `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`.
fn is_responses(request: &Request) -> bool {
    request.path == "/v1/responses" || request.path.strip_prefix("/v1/responses/").is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match parse_args(args.into_iter()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("mock-provider: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&config.listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mock-provider: cannot listen on {}: {error}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = announce(&listener) {
        eprintln!("mock-provider: {error}");
        return ExitCode::FAILURE;
    }
    run(listener, Arc::new(App::new(config)));
    ExitCode::SUCCESS
}

/// Scripts wait for this line to learn the port, so it is flushed at once.
fn announce(listener: &TcpListener) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()
}

fn run(listener: TcpListener, app: Arc<App>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let app = Arc::clone(&app);
                thread::spawn(move || match connection(&app, stream) {
                    // Clients hang up mid-answer all the time in fault tests.
                    Err(error) if !hung_up(&error) => {
                        eprintln!("mock-provider: connection: {error}");
                    }
                    _ => {}
                });
            }
            // Usually a client that gave up before we accepted it. Pause so
            // that running out of file descriptors does not become a busy loop.
            Err(error) => {
                eprintln!("mock-provider: accept: {error}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn hung_up(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::UnexpectedEof
    )
}

fn connection(app: &App, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let request = match http::read_request(&mut reader, &mut out) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(ReadError::Malformed(reason)) => {
                let body = json!({"error": format!("malformed request: {reason}")});
                return Response::json(400, &body).write_to(&mut out, false);
            }
            Err(ReadError::Io(error)) => return Err(error),
        };
        if route(app, &request, &mut out)? == Flow::Close {
            return Ok(());
        }
    }
}

fn route(app: &App, request: &Request, out: &mut TcpStream) -> io::Result<Flow> {
    let path = request.path.as_str();
    let response = match request.method.as_str() {
        "POST" | "GET" | "DELETE" if is_azure(request) && (request.method == "POST" || path.contains("/responses/")) => {
            return provider::serve(&app.azure, request, &app.recorder, out);
        }
        "POST" | "GET" | "DELETE" if is_responses(request) => {
            return provider::serve(&app.responses, request, &app.recorder, out);
        }
        "POST" if path.ends_with("/chat/completions") || path.ends_with("/embeddings") => {
            return provider::serve(&app.openai, request, &app.recorder, out);
        }
        "POST" if path.ends_with("/v2/chat") || path.ends_with("/v2/embed") => {
            return provider::serve(&app.cohere, request, &app.recorder, out);
        }
        "POST" if path.ends_with("/messages") || path.ends_with("/messages/count_tokens") => {
            return provider::serve(&app.anthropic, request, &app.recorder, out);
        }
        "POST" if vertex_claude::handles(path) => {
            return provider::serve(&app.vertex_claude, request, &app.recorder, out);
        }
        "POST" if gemini::handles(path) => {
            return provider::serve(&app.gemini, request, &app.recorder, out);
        }
        // /model/{modelId}/converse, /converse-stream and /invoke
        "POST" if path.starts_with("/model/") => {
            return provider::serve(&app.bedrock, request, &app.recorder, out);
        }
        "GET" if path == "/_mock/health" => Response::new(200, "text/plain", "ok"),
        "GET" if path == "/_mock/requests" => {
            let test_id = request.query_param("test_id");
            let recorder = record::lock(&app.recorder);
            Response::json(200, &recorder.requests(test_id.as_deref()))
        }
        "DELETE" if path == "/_mock/requests" => {
            record::lock(&app.recorder).clear_requests();
            Response::no_content()
        }
        "POST" if path == "/_mock/faults" => queue_fault(app, request),
        // A stand-in for a human review queue, Tollgate's last resort when every provider fails.
        "POST" if path == "/review" => {
            let mut recorder = record::lock(&app.recorder);
            recorder.record(record::Recorded::of(request));
            Response::json(202, &json!({"queued": true, "ticket": format!("rev-{}", recorder.requests(None).len())}))
        }
        "DELETE" if path == "/_mock/faults" => {
            record::lock(&app.recorder).clear_faults();
            Response::no_content()
        }
        method => {
            let body = json!({"error": format!("no route for {method} {path}")});
            Response::json(404, &body)
        }
    };
    let keep_alive = request.keep_alive();
    response.write_to(out, keep_alive)?;
    Ok(Flow::after(keep_alive))
}

fn queue_fault(app: &App, request: &Request) -> Response {
    let queued = serde_json::from_slice::<Fault>(&request.body)
        .map_err(|error| error.to_string())
        .and_then(|fault| record::lock(&app.recorder).queue_fault(fault));
    match queued {
        Ok(()) => Response::json(200, &json!({"queued": true})),
        Err(message) => Response::json(400, &json!({"error": message})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::io::{BufRead, Read};
    use std::net::SocketAddr;

    #[test]
    fn parses_the_command_line() {
        let args = |list: &[&str]| parse_args(list.iter().map(|arg| arg.to_string()));
        let parsed = args(&["--listen", "127.0.0.1:0", "--openai-key", "o"]).unwrap();
        assert_eq!(
            (parsed.listen.as_str(), parsed.openai_key.as_str(), parsed.anthropic_key.as_str()),
            ("127.0.0.1:0", "o", "test-anthropic-key")
        );
        assert_eq!((parsed.gemini_key.as_str(), parsed.vertex_token.as_str()), ("test-gemini-key", "test-vertex-token"));
        assert_eq!((parsed.cohere_key.as_str(), parsed.azure_key.as_str()), ("test-cohere-key", "test-azure-key"));
        assert_eq!(parsed.aws_credentials.len(), 2);
        assert!(parsed.aws_credentials[1].session_token.is_some());
        let parsed = args(&["--listen", "x", "--aws-credentials", "K:S", "--aws-credentials", "K2:S2:T2"]).unwrap();
        assert_eq!(parsed.aws_credentials, vec!["K:S".parse().unwrap(), "K2:S2:T2".parse().unwrap()]);
        assert!(args(&["--listen", "x", "--aws-credentials", "nocolon"]).is_err());
        assert!(args(&[]).is_err());
        assert!(args(&["--listen"]).is_err());
        assert!(args(&["--listen", "x", "--bogus", "y"]).is_err());
    }

    fn start() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = parse_args(["--listen", "127.0.0.1:0"].map(String::from).into_iter()).unwrap();
        let app = Arc::new(App::new(config));
        thread::spawn(move || run(listener, app));
        addr
    }

    struct Client {
        reader: BufReader<TcpStream>,
        out: TcpStream,
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Self {
            let out = TcpStream::connect(addr).unwrap();
            let reader = BufReader::new(out.try_clone().unwrap());
            Client { reader, out }
        }

        fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
            let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: mock\r\n");
            for (name, value) in headers {
                raw.push_str(&format!("{name}: {value}\r\n"));
            }
            raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
            self.out.write_all(raw.as_bytes()).unwrap();
            self.read_reply()
        }

        fn line(&mut self) -> String {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            line.trim_end_matches("\r\n").to_owned()
        }

        fn read_reply(&mut self) -> Reply {
            let status = self.line().split(' ').nth(1).unwrap().parse().unwrap();
            let mut headers = Vec::new();
            loop {
                let line = self.line();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(": ").unwrap();
                headers.push((name.to_owned(), value.to_owned()));
            }
            let mut reply = Reply { status, headers, body: Vec::new() };
            if reply.header("transfer-encoding") == Some("chunked") {
                loop {
                    let size = usize::from_str_radix(&self.line(), 16).unwrap();
                    let mut chunk = vec![0; size + 2];
                    self.reader.read_exact(&mut chunk).unwrap();
                    if size == 0 {
                        break;
                    }
                    reply.body.extend_from_slice(&chunk[..size]);
                }
            } else if let Some(length) = reply.header("content-length") {
                reply.body = vec![0; length.parse().unwrap()];
                self.reader.read_exact(&mut reply.body).unwrap();
            }
            reply
        }
    }

    const OPENAI: &[(&str, &str)] = &[("authorization", "Bearer test-openai-key"), ("x-test-id", "round-trip")];
    const ANTHROPIC: &[(&str, &str)] =
        &[("x-api-key", "test-anthropic-key"), ("anthropic-version", "2023-06-01"), ("x-test-id", "round-trip")];

    #[test]
    fn round_trips_over_http() {
        let mut client = Client::connect(start());
        assert_eq!(client.send("GET", "/_mock/health", &[], "").body, b"ok");

        let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let reply = client.send("POST", "/v1/chat/completions", OPENAI, chat);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["choices"][0]["message"]["content"], "Hello! You said: hi");

        let chat = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let reply = client.send("POST", "/openai/v1/chat/completions", OPENAI, chat);
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        let text = String::from_utf8(reply.body).unwrap();
        assert!(text.starts_with("data: {"));
        assert!(text.ends_with("data: [DONE]\n\n"));

        let message = r#"{"model":"claude-x","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let reply = client.send("POST", "/v1/messages", ANTHROPIC, message);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["content"][0]["text"], "Hello! You said: hi");

        let message = r#"{"model":"claude-x","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let reply = client.send("POST", "/v1/messages", ANTHROPIC, message);
        let text = String::from_utf8(reply.body).unwrap();
        assert!(text.starts_with("event: message_start\ndata: {"));
        assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));

        let embed = r#"{"model":"text-embedding-3-small","input":"hi"}"#;
        let reply = client.send("POST", "/v1/embeddings", OPENAI, embed);
        assert_eq!(reply.json()["data"][0]["object"], "embedding");

        let cohere = [("authorization", "Bearer test-cohere-key"), ("x-test-id", "round-trip")];
        let chat = r#"{"model":"command-a","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(client.send("POST", "/v2/chat", &cohere, chat).json()["message"]["content"][0]["text"], "Hello! You said: hi");
        let embed = r#"{"model":"embed-v4.0","texts":["hi"],"input_type":"search_query"}"#;
        assert_eq!(client.send("POST", "/v2/embed", &cohere, embed).json()["response_type"], "embeddings_by_type");

        let azure = [("api-key", "test-azure-key"), ("x-test-id", "round-trip")];
        let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let reply = client.send("POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", &azure, chat);
        assert!(reply.json()["prompt_filter_results"].is_array());
        let reply = client.send("POST", "/openai/v1/chat/completions", &azure, chat);
        assert!(reply.json()["prompt_filter_results"].is_array(), "api-key on the v1 path is Azure");

        let response = r#"{"model":"gpt-4o","input":"hi"}"#;
        let created = client.send("POST", "/v1/responses", OPENAI, response).json();
        assert_eq!(created["output"][0]["content"][0]["text"], "Hello! You said: hi");
        let stored = format!("/v1/responses/{}", created["id"].as_str().unwrap());
        assert_eq!(client.send("GET", &stored, OPENAI, "").json(), created);
        assert_eq!(client.send("DELETE", &stored, OPENAI, "").json()["deleted"], true);
        let reply = client.send("GET", &stored, OPENAI, "");
        assert_eq!(reply.status, 404);

        let log = client.send("GET", "/_mock/requests?test_id=round-trip", &[], "");
        let log = log.json();
        assert_eq!(log.as_array().unwrap().len(), 13);
        assert_eq!((log[11]["method"].as_str(), log[11]["path"].as_str()), (Some("DELETE"), Some(stored.as_str())));
        assert_eq!(log[7]["query"], "api-version=2024-10-21");
        assert_eq!(log[0]["path"], "/v1/chat/completions");
        assert_eq!(log[0]["body"]["model"], "gpt-4o");
        assert_eq!(log[2]["headers"]["anthropic-version"], "2023-06-01");
        assert_eq!(log[3]["test_id"], "round-trip");
    }

    #[test]
    fn injects_faults() {
        let mut client = Client::connect(start());
        let chat = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let fault = r#"{"status":503,"count":2,"retry_after":"2"}"#;
        assert_eq!(client.send("POST", "/_mock/faults", &[], fault).status, 200);
        for _ in 0..2 {
            let reply = client.send("POST", "/v1/chat/completions", OPENAI, chat);
            assert_eq!(reply.status, 503);
            assert_eq!(reply.header("retry-after"), Some("2"));
            assert_eq!(reply.json()["error"]["type"], "server_error");
        }
        assert_eq!(client.send("POST", "/v1/chat/completions", OPENAI, chat).status, 200);

        let message = r#"{"model":"claude-x","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let limited = [ANTHROPIC, &[("x-mock-status", "429")]].concat();
        let reply = client.send("POST", "/v1/messages", &limited, message);
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.json()["error"]["type"], "rate_limit_error");

        let garbage = [ANTHROPIC, &[("x-mock-garbage", "1")]].concat();
        assert_eq!(client.send("POST", "/v1/messages", &garbage, message).body, b"this is not json");

        let streaming = r#"{"model":"claude-x","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let failing = [ANTHROPIC, &[("x-mock-stream-fault", "error-after-2")]].concat();
        let text = String::from_utf8(client.send("POST", "/v1/messages", &failing, streaming).body).unwrap();
        assert_eq!(text.matches("event: ").count(), 3);
        assert!(text.ends_with(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
        ));

        let response_stream = r#"{"model":"gpt-4o","input":"one two three","stream":true}"#;
        let failing = [OPENAI, &[("x-mock-stream-fault", "error-after-3")]].concat();
        let text = String::from_utf8(client.send("POST", "/v1/responses", &failing, response_stream).body).unwrap();
        assert_eq!(text.matches("event: ").count(), 4);
        assert!(text.ends_with("\"sequence_number\":3,\"type\":\"error\"}\n\n"), "{text}");

        let scripted = r#"{"events":["event: a\ndata: [[1]]\n\n","data: {}\n\n"]}"#;
        assert_eq!(client.send("POST", "/_mock/faults", &[], scripted).status, 200);
        let reply = client.send("POST", "/v1/messages", ANTHROPIC, message);
        assert_eq!((reply.status, reply.header("content-type")), (200, Some("text/event-stream")));
        assert_eq!(reply.body, b"event: a\ndata: [[1]]\n\ndata: {}\n\n", "a scripted stream, whatever was asked");

        let wrong = [ANTHROPIC, &[("x-mock-wrong-content-type", "1")]].concat();
        let reply = client.send("POST", "/v1/messages", &wrong, streaming);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json()["type"], "message");

        let reset = [ANTHROPIC, &[("x-mock-stream-fault", "reset-after-1")]].concat();
        let mut raw = format!("POST /v1/messages HTTP/1.1\r\ncontent-length: {}\r\n", streaming.len());
        for (name, value) in &reset {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(streaming);
        client.out.write_all(raw.as_bytes()).unwrap();
        let mut rest = String::new();
        client.reader.read_to_string(&mut rest).ok();
        assert!(rest.contains("event: message_start"));
        assert!(!rest.contains("\r\n0\r\n\r\n"));
    }

    #[test]
    fn rejects_bad_http_and_unknown_routes() {
        let addr = start();
        let mut client = Client::connect(addr);
        assert_eq!(client.send("GET", "/nope", &[], "").status, 404);
        let mut client = Client::connect(addr);
        client.out.write_all(b"NOT HTTP\r\n\r\n").unwrap();
        assert_eq!(client.read_reply().status, 400);
    }
}
