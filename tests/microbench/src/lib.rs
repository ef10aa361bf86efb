//! One Tollgate request through the core, step by step as the filter shell (src/filter/http.rs)
//! drives it, on the same fixtures as the load benchmark (tests/bench/fixtures). Shared by the
//! criterion benches and the callgrind driver; everything but the proxy-wasm host calls runs.

use serde_json::{Value, json};
use tollgate::accounting::budget::Caller;
use tollgate::client::Dialect;
use tollgate::config::Config;
use tollgate::gateway::exchange::{ResponseHead, ResponseMode};
use tollgate::gateway::{Exchange, Gateway, Incoming, Next, OnHeaders, RequestHead, access_log, telemetry};
use tollgate::providers::Operation;

pub mod host_calls;

pub const ANTHROPIC_RESPONSE: &[u8] = include_bytes!("../../bench/fixtures/anthropic_response.json");
pub const OPENAI_RESPONSE: &[u8] = include_bytes!("../../bench/fixtures/openai_response.json");
pub const ANTHROPIC_STREAM: &[u8] = include_bytes!("../../bench/fixtures/anthropic_stream.sse");
pub const OPENAI_RESPONSES_RESPONSE: &[u8] = include_bytes!("../../bench/fixtures/openai_responses_response.json");
const CHAT_REQUEST: &str = include_str!("../../bench/fixtures/chat_request.json");

/// The plugin configuration of envoy/demo.yaml.
pub(crate) const DEMO_CONFIG: &str = r#"{
  "providers": {
    "openai": {"kind": "openai", "cluster": "mock_openai", "host": "api.openai.com", "api_key_env": "OPENAI_API_KEY"},
    "anthropic": {"kind": "anthropic", "cluster": "mock_anthropic", "host": "api.anthropic.com",
                  "api_key_env": "ANTHROPIC_API_KEY", "api_version": "2023-06-01"}
  },
  "models": {
    "gpt-4o-mini": {"provider": "openai", "aliases": ["fast"]},
    "gpt-4o": {"provider": "openai"},
    "claude-sonnet": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "aliases": ["claude"]},
    "claude-opus": {"provider": "anthropic", "model": "claude-opus-4-7"}
  }
}"#;

pub(crate) const NOW_MS: u64 = 1_767_225_600_000;

/// The load benchmark's scenarios (tests/bench/bench.py builds the same bodies).
#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    /// OpenAI request translated to Anthropic, Anthropic answer translated back.
    Translate,
    /// OpenAI passthrough; the alias `fast` is rewritten to `gpt-4o-mini`.
    Passthrough,
    /// As `Translate`, with a 100 KB prompt.
    Large,
    /// As `Translate`, streamed.
    Stream,
    /// The same conversation as an Anthropic Messages request, passed through to Anthropic.
    MessagesPassthrough,
    /// The same conversation as an OpenAI Responses request, passed through to OpenAI.
    ResponsesPassthrough,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Translate,
        Scenario::Passthrough,
        Scenario::Large,
        Scenario::Stream,
        Scenario::MessagesPassthrough,
        Scenario::ResponsesPassthrough,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Translate => "translate",
            Scenario::Passthrough => "passthrough",
            Scenario::Large => "large",
            Scenario::Stream => "stream",
            Scenario::MessagesPassthrough => "messages_passthrough",
            Scenario::ResponsesPassthrough => "responses_passthrough",
        }
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Scenario::MessagesPassthrough => Dialect::AnthropicMessages,
            Scenario::ResponsesPassthrough => Dialect::OpenAiResponses,
            _ => Dialect::OpenAiChat,
        }
    }

    pub(crate) fn client_path(self) -> &'static str {
        match self.dialect() {
            Dialect::AnthropicMessages => "/v1/messages",
            Dialect::OpenAiResponses => "/v1/responses",
            Dialect::OpenAiChat => "/v1/chat/completions",
        }
    }

    pub fn request_body(self) -> Vec<u8> {
        let mut req: Value = serde_json::from_str(CHAT_REQUEST).expect("fixture is JSON");
        let openai = matches!(self, Scenario::Passthrough | Scenario::ResponsesPassthrough);
        req["model"] = json!(if openai { "fast" } else { "claude-sonnet" });
        match self {
            Scenario::Stream => req["stream"] = json!(true),
            Scenario::Large => {
                let paragraph = "Clause 4.2: the \"Supplier\" shall deliver the goods described in Annex B.\nNo further terms apply.\n";
                let content = req["messages"][3]["content"].as_str().expect("fixture's last message is text");
                req["messages"][3]["content"] = json!(format!("{content}\n\n{}", paragraph.repeat(100_000 / paragraph.len())));
            }
            Scenario::MessagesPassthrough => req = as_messages(&req),
            Scenario::ResponsesPassthrough => req = as_responses(&req),
            Scenario::Translate | Scenario::Passthrough => {}
        }
        serde_json::to_vec(&req).expect("serializes")
    }

    /// The provider's answer, and its content type.
    pub fn upstream_reply(self) -> (&'static [u8], &'static str) {
        match self {
            Scenario::Translate | Scenario::Large | Scenario::MessagesPassthrough => (ANTHROPIC_RESPONSE, "application/json"),
            Scenario::ResponsesPassthrough => (OPENAI_RESPONSES_RESPONSE, "application/json"),
            Scenario::Passthrough => (OPENAI_RESPONSE, "application/json"),
            Scenario::Stream => (ANTHROPIC_STREAM, "text/event-stream"),
        }
    }
}

/// The chat fixture's system prompts, as one text.
fn system_text(chat: &Value) -> String {
    let messages = chat["messages"].as_array().expect("fixture has messages");
    let system: Vec<&str> = messages.iter().filter(|m| m["role"] == "system").filter_map(|m| m["content"].as_str()).collect();
    system.join(" ")
}

fn turns(chat: &Value) -> Vec<Value> {
    let messages = chat["messages"].as_array().expect("fixture has messages");
    messages.iter().filter(|m| m["role"] != "system").map(|m| json!({"role": m["role"], "content": m["content"]})).collect()
}

/// The same conversation as an Anthropic Messages request (as tests/bench/bench.py's `as_messages`).
fn as_messages(chat: &Value) -> Value {
    let tools: Vec<Value> = chat["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let f = &t["function"];
            json!({"name": f["name"], "description": f.get("description").cloned().unwrap_or(json!("")), "input_schema": f["parameters"]})
        })
        .collect();
    let mut req = json!({"model": chat["model"], "max_tokens": chat.get("max_tokens").cloned().unwrap_or(json!(1024)),
                         "system": system_text(chat), "messages": turns(chat), "tools": tools,
                         "metadata": {"user_id": chat.get("user").cloned().unwrap_or(json!("bench"))}});
    if let Some(t) = chat.get("temperature") {
        req["temperature"] = t.clone();
    }
    req
}

/// The same conversation as an OpenAI Responses request (as tests/bench/bench.py's `as_responses`).
fn as_responses(chat: &Value) -> Value {
    let tools: Vec<Value> = chat["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut tool = t["function"].clone();
            tool["type"] = json!("function");
            tool
        })
        .collect();
    let mut req = json!({"model": chat["model"], "instructions": system_text(chat), "input": turns(chat), "tools": tools,
                         "max_output_tokens": chat.get("max_tokens").cloned().unwrap_or(json!(1024)), "store": false,
                         "user": chat.get("user").cloned().unwrap_or(json!("bench"))});
    if let Some(t) = chat.get("temperature") {
        req["temperature"] = t.clone();
    }
    req
}

/// The providers' keys.
pub(crate) fn env(name: &str) -> Option<String> {
    Some(format!("{name}-bench"))
}

pub fn gateway() -> Gateway {
    Gateway::new(Config::from_json(DEMO_CONFIG.as_bytes(), &env, NOW_MS / 1000).expect("demo config is valid"))
}

/// The demo configuration with every built-in guardrail detector on (redacting, restored in
/// answers), as tests/bench/bench.py's guardrails rows configure it.
pub fn guarded_gateway() -> Gateway {
    let mut config: Value = serde_json::from_str(DEMO_CONFIG).expect("demo config is JSON");
    config["guardrails"] = json!({"policies": [{"detectors": ["*"], "action": "redact", "restore": true}]});
    Gateway::new(Config::from_json(config.to_string().as_bytes(), &env, NOW_MS / 1000).expect("guarded config is valid"))
}

/// proxy-wasm shared data stand-in: the accounting reads and writes its records here.
pub use tollgate::host::memory::MemoryStore as Store;

/// `on_http_request_headers`: classify the request.
pub fn request_headers(gateway: &Gateway, store: &Store, scenario: Scenario, body_len: usize) -> OnHeaders {
    let content_length = body_len.to_string();
    let head = RequestHead {
        method: "POST",
        path: scenario.client_path(),
        content_length: Some(&content_length),
        authorization: None,
        api_key: None,
    };
    gateway.on_request_headers(&head, store, &|| NOW_MS)
}

/// `on_http_request_body`: parse, route and translate; the upstream body (if rewritten) and the
/// exchange that handles the response.
pub fn request_body(gateway: &Gateway, store: &Store, scenario: Scenario, body: &[u8]) -> (Option<Vec<u8>>, Exchange) {
    let incoming =
        Incoming { operation: Operation::Chat, dialect: scenario.dialect(), caller: Caller::default(), headers: &[], explain: false };
    match gateway.on_body(&incoming, body, store, NOW_MS) {
        Ok(Next::Forward(forward)) => (forward.upstream.body, forward.exchange),
        _ => unreachable!("the scenario's request is valid and routed"),
    }
}

/// `on_http_response_headers` and `on_http_response_body`: the body the client gets (`None`:
/// the upstream body unchanged). Streams arrive in one chunk, as from the load benchmark's mock.
pub fn response(gateway: &Gateway, exchange: &mut Exchange, scenario: Scenario) -> Option<Vec<u8>> {
    let (body, content_type) = scenario.upstream_reply();
    let head = ResponseHead { status: 200, content_type: Some(content_type), ..Default::default() };
    let mode = exchange.on_response_headers(&gateway.config, &head);
    let headers = exchange.client_headers(&gateway.config);
    std::hint::black_box(headers);
    match mode {
        ResponseMode::Stream => exchange.on_stream_chunk(body, true),
        ResponseMode::Buffer => exchange.on_complete_body(&gateway.config, body).body,
    }
}

/// `on_log`: access log entry, accounting, metric samples.
pub fn log(gateway: &Gateway, store: &Store, exchange: &mut Exchange) -> usize {
    let entry = access_log::for_exchange(&gateway.config, exchange, NOW_MS);
    gateway.finish(exchange, store, NOW_MS);
    let provider = exchange.provider(&gateway.config).expect("routed");
    entry.len() + telemetry::samples(exchange, provider.scope, NOW_MS).len()
}

/// One whole request, all four steps.
pub fn full_request(gateway: &Gateway, store: &Store, scenario: Scenario, body: &[u8]) -> usize {
    std::hint::black_box(request_headers(gateway, store, scenario, body.len()));
    let (upstream, mut exchange) = request_body(gateway, store, scenario, body);
    let reply = response(gateway, &mut exchange, scenario);
    upstream.map_or(0, |b| b.len()) + reply.map_or(0, |b| b.len()) + log(gateway, store, &mut exchange)
}
