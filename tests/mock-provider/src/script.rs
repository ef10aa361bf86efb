//! The provider-neutral deterministic "model".
//!
//! Every provider module translates its request into a [`Conversation`], asks
//! [`reply`] what to say, and renders the [`Reply`] in its own wire format. The
//! rules are simple enough that a test can predict the text, tool call and usage
//! of any request, and they never look at whether the client asked to stream, so
//! streamed and non-streamed answers always agree.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Tokens an image costs, whatever its size, so tests can predict usage.
const IMAGE_TOKENS: u64 = 85;
/// Output tokens charged per tool call on top of the words of the reply text.
const TOOL_CALL_TOKENS: u64 = 10;

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// Next value of the per-process counter that makes response, tool call and
/// request ids unique.
pub fn next_id() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    Image,
    ToolCall {
        name: String,
        /// Compact JSON, so the same arguments count the same under any provider.
        args: String,
    },
    ToolResult {
        text: String,
        images: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    #[default]
    Auto,
    None,
    /// Some tool must be called (OpenAI `required`, Anthropic `any`).
    Required,
    Named(String),
}

/// A tool definition reduced to what the script needs: its name and the
/// arguments a call to it would carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    args: Args,
}

impl Tool {
    /// `order` lists the schema's property names as they appear in the request,
    /// which `serde_json::Map` cannot tell us (see [`KeyOrder`]).
    pub fn new(name: String, schema: &Value, order: &[String]) -> Self {
        let properties = schema.get("properties");
        let mut args = Args::default();
        for key in order {
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                args.insert(key, sample(property));
            }
        }
        Tool { name, args }
    }

    /// The arguments a call to this tool carries, also what a JSON-mode answer holds.
    pub fn sample_args(&self) -> &Args {
        &self.args
    }
}

/// The value the mock passes for a parameter, chosen by its JSON schema type.
fn sample(property: &Value) -> Value {
    let kind = match property.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // Nullable parameters are written as e.g. ["string", "null"].
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|kind| *kind != "null").unwrap_or("null"),
        _ => "null",
    };
    match kind {
        "string" => Value::from("Paris"),
        "number" | "integer" => Value::from(1),
        "boolean" => Value::Bool(true),
        "object" => Value::Object(Default::default()),
        "array" => Value::Array(Vec::new()),
        _ => Value::Null,
    }
}

/// Tool call arguments as a JSON object whose keys keep schema order when
/// serialized, unlike `serde_json::Map`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(Vec<(String, Value)>);

impl Args {
    fn insert(&mut self, key: &str, value: Value) {
        if !self.0.iter().any(|(existing, _)| existing == key) {
            self.0.push((key.to_owned(), value));
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("string keys and JSON values always serialize")
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Keys of a JSON object in document order.
///
/// `serde_json::Map` sorts keys unless serde_json's `preserve_order` feature is
/// on, and enabling it here would change key order for every crate in the
/// workspace, so providers re-read tool schemas with this instead.
#[derive(Debug, Default)]
pub struct KeyOrder(pub Vec<String>);

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;

        impl<'de> Visitor<'de> for Keys {
            type Value = KeyOrder;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(KeyOrder(keys))
            }
        }

        deserializer.deserialize_map(Keys)
    }
}

/// Token counts the client asked, via `x-mock-cache-*` headers, to see
/// reported as prompt cache hits and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cache {
    pub read: u64,
    pub write: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub cache: Cache,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub args: Args,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    EndTurn,
    MaxTokens,
    StopSequence(String),
    ToolUse,
}

/// Token usage; `input` excludes the cached tokens, as Anthropic reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl Usage {
    /// The whole prompt, as OpenAI reports it.
    pub fn prompt(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tool_call: Option<ToolCall>,
    pub finish: Finish,
    pub usage: Usage,
}

/// A tool result holding this makes the model call its first tool once more, so tests can run
/// tool loops of several steps.
pub const CALL_AGAIN: &str = "[call again]";

pub fn reply(conversation: &Conversation) -> Reply {
    let (text, tool_call) = if let Some(results) = trailing_tool_results(conversation) {
        match conversation.tools.first().filter(|_| results.iter().any(|r| r.contains(CALL_AGAIN))) {
            Some(tool) => ("Let me check again.".to_owned(), Some(to_call(tool))),
            None => (format!("Tool results: {}", results.join("; ")), None),
        }
    } else if let Some(tool) = chosen_tool(conversation) {
        ("Let me check.".to_owned(), Some(tool))
    } else {
        let said = last_user_text(conversation);
        (format!("Hello! You said: {said}{}", " more".repeat(asked_length(&said))), None)
    };
    let (text, tool_call, finish) = limit(text, tool_call, conversation);
    let output = words(&text) + tool_call.as_ref().map_or(0, |_| TOOL_CALL_TOKENS);
    let total = input_tokens(conversation);
    let cache = conversation.cache;
    let usage = Usage { input: total.saturating_sub(cache.read + cache.write), cache_read: cache.read, cache_write: cache.write, output };
    Reply { text, tool_call, finish, usage }
}

/// Claude says nothing before a call it was forced to make: "the models will not emit a natural
/// language response or explanation before `tool_use` content blocks" when `tool_choice` is
/// `any` or `tool` (https://platform.claude.com/docs/en/agents-and-tools/tool-use/implement-tool-use).
pub fn forced_call_alone(conversation: &Conversation, reply: &mut Reply) {
    if reply.tool_call.is_some() && matches!(conversation.tool_choice, ToolChoice::Required | ToolChoice::Named(_)) {
        reply.usage.output -= words(&reply.text);
        reply.text.clear();
    }
}

fn trailing_tool_results(conversation: &Conversation) -> Option<Vec<&str>> {
    let last = conversation.turns.last()?;
    let results: Vec<&str> = last
        .blocks
        .iter()
        .filter_map(|block| match block {
            Block::ToolResult { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    (!results.is_empty()).then_some(results)
}

fn chosen_tool(conversation: &Conversation) -> Option<ToolCall> {
    let first = conversation.tools.first()?;
    let forced = match &conversation.tool_choice {
        ToolChoice::None => return None,
        ToolChoice::Auto => false,
        ToolChoice::Required | ToolChoice::Named(_) => true,
    };
    if !forced && !last_user_text(conversation).to_lowercase().contains("weather") {
        return None;
    }
    let call = match &conversation.tool_choice {
        ToolChoice::Named(name) => conversation
            .tools
            .iter()
            .find(|tool| &tool.name == name)
            .map_or_else(|| ToolCall { name: name.clone(), args: Args::default() }, to_call),
        _ => to_call(first),
    };
    Some(call)
}

fn to_call(tool: &Tool) -> ToolCall {
    ToolCall { name: tool.name.clone(), args: tool.args.clone() }
}

fn last_user_text(conversation: &Conversation) -> String {
    let Some(turn) = conversation.turns.iter().rev().find(|turn| turn.role == Role::User) else {
        return String::new();
    };
    let parts: Vec<&str> = turn
        .blocks
        .iter()
        .filter_map(|block| match block {
            Block::Text(text) => Some(text.as_str()),
            Block::Image => Some("[image]"),
            _ => None,
        })
        .collect();
    parts.join(" ")
}

/// A long answer on request: a prompt with "write <n> words" gets `n` more words of reply,
/// for tests of output limits and budgets (capped, so a prompt cannot exhaust memory).
fn asked_length(said: &str) -> usize {
    const MAX_WORDS: usize = 3_000_000;
    let pieces: Vec<&str> = said.split_whitespace().collect();
    pieces
        .windows(3)
        .find(|w| w[0].eq_ignore_ascii_case("write") && w[2].trim_end_matches(['.', ',', '!']).eq_ignore_ascii_case("words"))
        .and_then(|w| w[1].parse::<usize>().ok())
        .map_or(0, |n| n.min(MAX_WORDS))
}

/// Applies stop sequences, then the output limit, in the order a real model
/// would hit them while generating; either one cuts the tool call off too.
fn limit(mut text: String, mut tool_call: Option<ToolCall>, conversation: &Conversation) -> (String, Option<ToolCall>, Finish) {
    let mut finish = if tool_call.is_some() { Finish::ToolUse } else { Finish::EndTurn };
    let earliest_stop = conversation
        .stop
        .iter()
        .filter(|stop| !stop.is_empty())
        .filter_map(|stop| text.find(stop.as_str()).map(|at| (at, stop)))
        .min_by_key(|(at, _)| *at);
    if let Some((at, stop)) = earliest_stop {
        finish = Finish::StopSequence(stop.clone());
        text.truncate(at);
        tool_call = None;
    }
    if let Some(max) = conversation.max_tokens
        && words(&text) > max
    {
        // Fits in usize: it is smaller than a count of words in memory.
        let kept = &word_pieces(&text)[..max as usize];
        let end = kept.iter().map(|piece| piece.len()).sum();
        text.truncate(end);
        tool_call = None;
        finish = Finish::MaxTokens;
    }
    (text, tool_call, finish)
}

/// The prompt's tokens as the script counts them (also what token-counting endpoints answer).
pub fn input_tokens(conversation: &Conversation) -> u64 {
    let system: u64 = conversation.system.iter().map(|text| words(text)).sum();
    let tools: u64 = conversation.tools.iter().map(|tool| words(&tool.name)).sum();
    let blocks: u64 = conversation
        .turns
        .iter()
        .flat_map(|turn| &turn.blocks)
        .map(|block| match block {
            Block::Text(text) => words(text),
            Block::Image => IMAGE_TOKENS,
            Block::ToolCall { name, args } => words(name) + words(args),
            Block::ToolResult { text, images } => words(text) + images * IMAGE_TOKENS,
        })
        .sum();
    system + tools + blocks
}

pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Dimensions of an embedding when the request names none: small, so tests stay readable.
pub const EMBEDDING_DIMENSIONS: usize = 8;

/// A deterministic embedding of `text`: the same text always gets the same vector under every
/// provider. Components are multiples of 1/1024 in [-1, 1), exact as f32, so a float vector and
/// its base64 encoding can be compared exactly.
pub fn embedding(text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a seeds an xorshift sequence.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)) | 1;
    (0..dimensions)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // 11 bits: 0..2048, so the value is exact.
            ((state >> 53) as f32 - 1024.0) / 1024.0
        })
        .collect()
}

/// The components widened to f64, which JSON writes exactly (an f32 is written in its shortest
/// form, which a reader parsing f64 would not get back bit for bit).
pub fn exact(vector: &[f32]) -> Vec<f64> {
    vector.iter().copied().map(f64::from).collect()
}

/// Re-serializes tool call arguments compactly, so that the same arguments
/// count the same whether a provider sends them as a string or as an object.
pub fn canonical_args(raw: &str) -> String {
    serde_json::from_str::<Value>(raw).map_or_else(|_| raw.to_owned(), |value| value.to_string())
}

thread_local! {
    /// `x-mock-piece-bytes` of the request being answered on this thread (0: none given).
    static PIECE_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Runs `answer` with streams split every `bytes` bytes (0: per word), for the request whose
/// `x-mock-piece-bytes` asked so: tests split findings at awkward points that way.
pub fn with_piece_bytes<T>(bytes: usize, answer: impl FnOnce() -> T) -> T {
    PIECE_BYTES.set(bytes);
    let answered = answer();
    PIECE_BYTES.set(0);
    answered
}

/// The pieces a stream sends `text` in, one per event: per word ([`word_pieces`]), or every
/// `x-mock-piece-bytes` bytes (on character boundaries) when the request asked so.
pub fn stream_pieces(text: &str) -> Vec<&str> {
    let bytes = PIECE_BYTES.get();
    if bytes == 0 {
        return word_pieces(text);
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + bytes).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

/// Splits text into one piece per word, each carrying the whitespace before it
/// (and the last one any trailing whitespace), so the pieces concatenate back
/// to the exact text. Streams send one piece per event.
pub fn word_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut seen_word = false;
    // Where the whitespace run before the current character began, if any.
    let mut gap: Option<usize> = None;
    for (at, c) in text.char_indices() {
        if c.is_whitespace() {
            gap.get_or_insert(at);
            continue;
        }
        if let Some(gap) = gap.take()
            && seen_word
        {
            pieces.push(&text[start..gap]);
            start = gap;
        }
        seen_word = true;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits a string into three roughly equal parts on character boundaries,
/// the way providers stream tool arguments in fragments.
pub fn thirds(text: &str) -> [&str; 3] {
    let cut = |part: usize| {
        let mut at = text.len() * part / 3;
        while !text.is_char_boundary(at) {
            at += 1;
        }
        at
    };
    let (first, second) = (cut(1), cut(2));
    [&text[..first], &text[first..second], &text[second..]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Turn {
        Turn { role: Role::User, blocks: vec![Block::Text(text.to_owned())] }
    }

    fn weather_tool() -> Tool {
        let schema = json!({"type": "object", "properties": {
            "location": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
        }});
        let order = ["location", "days", "metric"].map(String::from);
        Tool::new("get_weather".to_owned(), &schema, &order)
    }

    #[test]
    fn echoes_the_last_user_message() {
        let conversation = Conversation {
            system: vec!["Be brief".to_owned()],
            turns: vec![
                user("first"),
                Turn { role: Role::Assistant, blocks: vec![Block::Text("ok".to_owned())] },
                Turn { role: Role::User, blocks: vec![Block::Text("look at".to_owned()), Block::Image] },
            ],
            ..Default::default()
        };
        let reply = reply(&conversation);
        assert_eq!(reply.text, "Hello! You said: look at [image]");
        assert_eq!(reply.finish, Finish::EndTurn);
        assert_eq!(reply.tool_call, None);
        // 2 system + 1 + 1 + 2 words + one image; 6 reply words.
        assert_eq!(reply.usage.input, 2 + 1 + 1 + 2 + IMAGE_TOKENS);
        assert_eq!(reply.usage.output, 6);
    }

    #[test]
    fn calls_a_tool_when_asked_about_weather() {
        let conversation =
            Conversation { turns: vec![user("What's the WEATHER in Paris?")], tools: vec![weather_tool()], ..Default::default() };
        let reply = reply(&conversation);
        assert_eq!(reply.text, "Let me check.");
        assert_eq!(reply.finish, Finish::ToolUse);
        let call = reply.tool_call.expect("a tool call");
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.args.to_json(), r#"{"location":"Paris","days":1,"metric":true}"#);
        assert_eq!(reply.usage.output, 3 + TOOL_CALL_TOKENS);
        assert_eq!(reply.usage.input, 5 + 1);
    }

    #[test]
    fn tool_choice_forces_or_forbids_calls() {
        let mut conversation =
            Conversation { turns: vec![user("hi")], tools: vec![weather_tool()], tool_choice: ToolChoice::Required, ..Default::default() };
        assert!(reply(&conversation).tool_call.is_some());

        conversation.tool_choice = ToolChoice::Named("other".to_owned());
        let call = reply(&conversation).tool_call.expect("a tool call");
        assert_eq!(call.name, "other");
        assert_eq!(call.args.to_json(), "{}");

        conversation.tool_choice = ToolChoice::None;
        conversation.turns = vec![user("weather?")];
        assert_eq!(reply(&conversation).tool_call, None);
    }

    #[test]
    fn summarizes_tool_results() {
        let conversation = Conversation {
            turns: vec![
                user("weather"),
                Turn {
                    role: Role::Assistant,
                    blocks: vec![Block::ToolCall { name: "get_weather".to_owned(), args: r#"{"location":"Paris"}"#.to_owned() }],
                },
                Turn {
                    role: Role::User,
                    blocks: vec![
                        Block::ToolResult { text: "sunny".to_owned(), images: 0 },
                        Block::ToolResult { text: "22 C".to_owned(), images: 1 },
                    ],
                },
            ],
            tools: vec![weather_tool()],
            ..Default::default()
        };
        let reply = reply(&conversation);
        assert_eq!(reply.text, "Tool results: sunny; 22 C");
        assert_eq!(reply.tool_call, None);
        assert_eq!(reply.usage.input, 1 + 2 + 1 + 2 + IMAGE_TOKENS + 1);
    }

    #[test]
    fn long_answers_on_request_until_the_output_limit() {
        let mut conversation = Conversation { turns: vec![user("please write 500 words.")], ..Default::default() };
        assert_eq!(reply(&conversation).usage.output, 3 + 4 + 500);
        conversation.max_tokens = Some(20);
        let cut = reply(&conversation);
        assert_eq!((cut.usage.output, cut.finish), (20, Finish::MaxTokens));
        assert_eq!(asked_length("write many words"), 0);
        assert_eq!(asked_length("write 999999999 words"), 3_000_000);
    }

    #[test]
    fn calls_again_when_a_tool_result_asks() {
        let mut conversation = Conversation {
            turns: vec![
                user("weather"),
                Turn { role: Role::Assistant, blocks: vec![Block::ToolCall { name: "get_weather".to_owned(), args: "{}".to_owned() }] },
                Turn { role: Role::User, blocks: vec![Block::ToolResult { text: format!("cloudy {CALL_AGAIN}"), images: 0 }] },
            ],
            tools: vec![weather_tool()],
            ..Default::default()
        };
        assert_eq!(reply(&conversation).tool_call.map(|c| c.name).as_deref(), Some("get_weather"));
        conversation.tools.clear();
        assert_eq!(reply(&conversation).tool_call, None, "no tool to call");
    }

    #[test]
    fn max_tokens_and_stop_sequences_cut_the_reply() {
        let mut conversation = Conversation { turns: vec![user("one two  three")], max_tokens: Some(4), ..Default::default() };
        let cut = reply(&conversation);
        assert_eq!(cut.text, "Hello! You said: one");
        assert_eq!(cut.finish, Finish::MaxTokens);
        assert_eq!(cut.usage.output, 4);

        conversation.max_tokens = None;
        conversation.stop = vec!["three".to_owned(), "two".to_owned()];
        let stopped = reply(&conversation);
        assert_eq!(stopped.text, "Hello! You said: one ");
        assert_eq!(stopped.finish, Finish::StopSequence("two".to_owned()));
    }

    #[test]
    fn cache_headers_move_input_tokens() {
        let conversation = Conversation { turns: vec![user("a b c d e")], cache: Cache { read: 3, write: 1 }, ..Default::default() };
        let usage = reply(&conversation).usage;
        assert_eq!((usage.input, usage.cache_read, usage.cache_write), (1, 3, 1));
        assert_eq!(usage.prompt(), 5);
    }

    #[test]
    fn word_pieces_rebuild_the_text() {
        for text in ["Hello! You said: a\n b", "  lead", "trail  ", "", "   "] {
            assert_eq!(word_pieces(text).concat(), text);
        }
        assert_eq!(word_pieces("a bc"), ["a", " bc"]);
        assert_eq!(word_pieces("  a\n\tb c "), ["  a", "\n\tb", " c "]);
    }

    #[test]
    fn stream_pieces_split_by_bytes_on_request() {
        assert_eq!(stream_pieces("a bc"), ["a", " bc"]);
        assert_eq!(with_piece_bytes(2, || stream_pieces("abcdé!")), ["ab", "cd", "é", "!"]);
        assert_eq!(stream_pieces("a bc"), ["a", " bc"], "only for the request that asked");
    }

    #[test]
    fn thirds_split_on_char_boundaries() {
        assert_eq!(thirds(r#"{"a":1}"#).concat(), r#"{"a":1}"#);
        assert_eq!(thirds("ééé"), ["é", "é", "é"]);
        assert_eq!(thirds("{}"), ["", "{", "}"]);
    }

    #[test]
    fn key_order_follows_the_document() {
        let order: KeyOrder = serde_json::from_str(r#"{"z":1,"a":{"b":2},"m":[]}"#).unwrap();
        assert_eq!(order.0, ["z", "a", "m"]);
    }

    #[test]
    fn embeddings_are_deterministic_and_exact() {
        let a = embedding("hello", 16);
        assert_eq!(a.len(), 16);
        assert_eq!(a, embedding("hello", 16));
        assert_ne!(a, embedding("hello!", 16));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v) && (v * 1024.0).fract() == 0.0));
        assert_eq!(embedding("hello", 4), a[..4]);
    }

    #[test]
    fn canonical_args_ignore_formatting() {
        assert_eq!(canonical_args(r#"{ "a" : 1 }"#), r#"{"a":1}"#);
        assert_eq!(canonical_args("not json"), "not json");
    }
}
