//! A chat request in the gateway's own terms: the conversation (messages of text, images,
//! files, tool calls and tool results, with prompt-cache markers) and the parameters that shape
//! the answer. Every client dialect yields one (`openai::chat` parses OpenAI's wire format
//! straight into it) and every provider renders its upstream request from one.
//!
//! Its serde form is OpenAI Chat Completions' wire format
//! (https://platform.openai.com/docs/api-reference/chat/create), which maps onto it one to one, so
//! the OpenAI dialect needs no second copy. Strings borrow from the request body unless they
//! contain escapes, and opaque JSON (tool schemas, `metadata`, unknown parameters) stays as raw
//! slices: no `serde_json::Value` tree is built on the hot path.

use crate::json::{Str, Text};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
            Role::Function => "function",
        }
    }
}

/// `content`: either a plain string or a list of typed parts.
#[derive(Debug, Clone)]
pub enum Content<'a> {
    Text(Text<'a>),
    Parts(Vec<Part<'a>>),
}

/// Read as raw JSON first so that a plain string keeps its quoted bytes (see [`Text`]); a list
/// of parts is then parsed from its raw slice.
impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = Deserialize::deserialize(d)?;
        if let Some(text) = Text::of_quoted(raw) {
            return text.map(Content::Text).map_err(de::Error::custom);
        }
        if raw.get().starts_with('[') {
            let parts = serde_json::from_str(raw.get()).map_err(|e| de::Error::custom(crate::json::strip_position(&e.to_string())))?;
            return Ok(Content::Parts(parts));
        }
        Err(de::Error::invalid_type(crate::json::unexpected(raw), &"a string or an array of content parts"))
    }
}

impl Content<'_> {
    /// All text of the content joined by newlines (text parts only).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Content::Text(s) => Cow::Borrowed(s),
            Content::Parts(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
                match texts.as_slice() {
                    [one] => Cow::Borrowed(one),
                    _ => Cow::Owned(texts.join("\n")),
                }
            }
        }
    }
}

/// One part of a message's content, by `kind`: `text`, `image_url`, `file`, `refusal`,
/// `input_audio`, and from dialects that send a model's reasoning back, `thinking` (its text in
/// `thinking`, the provider's `signature`) and `redacted_thinking` (its data in `signature`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    pub file: Option<FilePart<'a>>,
    #[serde(borrow, default)]
    pub refusal: Option<Text<'a>>,
    /// Anthropic prompt-caching marker some OpenAI-format clients send; forwarded where supported.
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub thinking: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub signature: Option<Str<'a>>,
}

impl Part<'_> {
    /// A model's earlier reasoning, which only the provider that wrote it can read back.
    pub fn is_thinking(&self) -> bool {
        matches!(&*self.kind, "thinking" | "redacted_thinking")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ImageUrl<'a> {
    #[serde(borrow)]
    pub url: Str<'a>,
    #[serde(borrow, default)]
    pub detail: Option<Str<'a>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FilePart<'a> {
    #[serde(borrow, default)]
    pub file_data: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub file_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub filename: Option<Str<'a>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message<'a> {
    pub role: Role,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    pub tool_call_id: Option<Str<'a>>,
    /// A tool result that reports the tool's failure.
    #[serde(default)]
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolCall<'a> {
    #[serde(borrow)]
    pub id: Str<'a>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCall<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow)]
    pub arguments: Str<'a>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub function: Option<FunctionDef<'a>>,
    /// A prompt-cache marker after this tool's definition.
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef<'a> {
    #[serde(borrow)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub description: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    #[serde(default)]
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice<'a> {
    /// `"auto"`, `"none"` or `"required"`.
    Mode(Str<'a>),
    /// `{"type":"function","function":{"name":…}}`.
    Function(Str<'a>),
}

#[derive(Deserialize)]
struct NamedToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    function: NamedFunction<'a>,
}

#[derive(Deserialize)]
struct NamedFunction<'a> {
    #[serde(borrow)]
    name: Str<'a>,
}

struct ToolChoiceVisitor;

impl<'de> Visitor<'de> for ToolChoiceVisitor {
    type Value = ToolChoice<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#""auto", "none", "required" or {"type":"function","function":{"name":…}}"#)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(ToolChoice::Mode(Str(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(ToolChoice::Mode(Str(Cow::Owned(v.to_owned()))))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let named = NamedToolChoice::deserialize(de::value::MapAccessDeserializer::new(map))?;
        if &*named.kind != "function" {
            return Err(de::Error::custom(format_args!("tool_choice type `{}` is not supported; use \"function\"", &*named.kind)));
        }
        Ok(ToolChoice::Function(named.function.name))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ToolChoiceVisitor)
    }
}

/// `stop`: a string or a list of strings.
struct StopVisitor;

impl<'de> Visitor<'de> for StopVisitor {
    type Value = Vec<Str<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, an array of strings or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(vec![Str(Cow::Borrowed(v))])
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(vec![Str(Cow::Owned(v.to_owned()))])
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element()? {
            out.push(s);
        }
        Ok(out)
    }
}

struct Stop<'a>(Vec<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Stop<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StopVisitor).map(Stop)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Str<'a>,
    #[serde(borrow, default)]
    pub json_schema: Option<&'a RawValue>,
}

/// A parsed `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest<'a> {
    pub model: Str<'a>,
    pub messages: Vec<Message<'a>>,
    pub stream: bool,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: Option<bool>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<Str<'a>>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: Option<ToolChoice<'a>>,
    pub parallel_tool_calls: Option<bool>,
    pub user: Option<Str<'a>>,
    pub n: Option<u64>,
    pub logprobs: Option<bool>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub response_format: Option<ResponseFormat<'a>>,
    pub metadata: Option<&'a RawValue>,
    /// Every other top-level member, in body order, with its raw value.
    pub extra: Vec<(Str<'a>, &'a RawValue)>,
    /// What the client sent that only a provider speaking its API reads (e.g. Responses'
    /// reasoning items), by the client's field name: left out for the others, and listed
    /// among the dropped parameters.
    pub left_out: Vec<String>,
    /// The size of the client's body (0 when not known), to size what is written from it.
    pub body_len: usize,
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = ChatRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat completion request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = ChatRequest::default();
        let mut model: Option<Str<'de>> = None;
        let mut messages: Option<Vec<Message<'de>>> = None;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            match &*key {
                "model" => model = Some(map.next_value()?),
                "messages" => messages = Some(map.next_value()?),
                "stream" => r.stream = map.next_value::<Option<bool>>()?.unwrap_or(false),
                "stream_options" => r.include_usage = map.next_value::<Option<StreamOptions>>()?.and_then(|o| o.include_usage),
                "max_tokens" => r.max_tokens = map.next_value()?,
                "max_completion_tokens" => r.max_completion_tokens = map.next_value()?,
                "temperature" => r.temperature = map.next_value()?,
                "top_p" => r.top_p = map.next_value()?,
                "stop" => r.stop = map.next_value::<Stop>()?.0,
                "tools" => r.tools = map.next_value::<Option<Vec<Tool>>>()?.unwrap_or_default(),
                "tool_choice" => r.tool_choice = map.next_value()?,
                "parallel_tool_calls" => r.parallel_tool_calls = map.next_value()?,
                "user" => r.user = map.next_value()?,
                "n" => r.n = map.next_value()?,
                "logprobs" => r.logprobs = map.next_value()?,
                "presence_penalty" => r.presence_penalty = map.next_value()?,
                "frequency_penalty" => r.frequency_penalty = map.next_value()?,
                "response_format" => r.response_format = map.next_value()?,
                "metadata" => r.metadata = map.next_value()?,
                _ => {
                    let raw: &'de RawValue = map.next_value()?;
                    if raw.get() != "null" {
                        r.extra.push((key, raw));
                    }
                }
            }
        }
        r.model = model.ok_or_else(|| de::Error::missing_field("model"))?;
        r.messages = messages.ok_or_else(|| de::Error::missing_field("messages"))?;
        Ok(r)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ChatRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor)
    }
}

/// Parameters a policy or a provider can act on, by their OpenAI name.
impl ChatRequest<'_> {
    pub fn has_param(&self, name: &str) -> bool {
        match name {
            "temperature" => self.temperature.is_some(),
            "top_p" => self.top_p.is_some(),
            "max_tokens" => self.max_tokens.is_some(),
            "max_completion_tokens" => self.max_completion_tokens.is_some(),
            "stop" => !self.stop.is_empty(),
            "tools" => !self.tools.is_empty(),
            "tool_choice" => self.tool_choice.is_some(),
            "parallel_tool_calls" => self.parallel_tool_calls.is_some(),
            "user" => self.user.is_some(),
            "n" => self.n.is_some(),
            "logprobs" => self.logprobs.is_some(),
            "presence_penalty" => self.presence_penalty.is_some(),
            "frequency_penalty" => self.frequency_penalty.is_some(),
            "response_format" => self.response_format.is_some(),
            "metadata" => self.metadata.is_some(),
            other => self.extra.iter().any(|(k, _)| &**k == other),
        }
    }

    /// Removes a parameter; `model`, `messages` and `stream` are structural and never removed.
    pub fn remove_param(&mut self, name: &str) {
        match name {
            "temperature" => self.temperature = None,
            "top_p" => self.top_p = None,
            "max_tokens" => self.max_tokens = None,
            "max_completion_tokens" => self.max_completion_tokens = None,
            "stop" => self.stop.clear(),
            "tools" => self.tools.clear(),
            "tool_choice" => self.tool_choice = None,
            "parallel_tool_calls" => self.parallel_tool_calls = None,
            "user" => self.user = None,
            "n" => self.n = None,
            "logprobs" => self.logprobs = None,
            "presence_penalty" => self.presence_penalty = None,
            "frequency_penalty" => self.frequency_penalty = None,
            "response_format" => self.response_format = None,
            "metadata" => self.metadata = None,
            other => self.extra.retain(|(k, _)| &**k != other),
        }
    }

    /// The output limit the client asked for (`max_completion_tokens` supersedes `max_tokens`).
    pub fn output_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Image and file parts: what a request's bytes do not bound in tokens.
    pub fn media_parts(&self) -> usize {
        let parts = self.messages.iter().filter_map(|m| match &m.content {
            Some(Content::Parts(parts)) => Some(parts),
            _ => None,
        });
        parts.flatten().filter(|p| matches!(&*p.kind, "image_url" | "file")).count()
    }

    /// The bytes of text the conversation holds (messages, tool definitions), from which its
    /// input tokens are estimated where no provider counts them.
    pub fn text_bytes(&self) -> usize {
        let content = self.messages.iter().filter_map(|m| m.content.as_ref()).map(|c| c.text().len());
        let calls =
            self.messages.iter().flat_map(|m| m.tool_calls.iter().flatten()).map(|c| c.function.name.len() + c.function.arguments.len());
        let tools = self
            .tools
            .iter()
            .filter_map(|t| t.function.as_ref())
            .map(|f| f.name.len() + f.description.as_deref().map_or(0, str::len) + f.parameters.map_or(0, |p| p.get().len()));
        content.chain(calls).chain(tools).sum()
    }

    /// Whether an assistant message carries a model's earlier reasoning.
    pub fn has_thinking(&self) -> bool {
        self.messages.iter().any(|m| matches!(&m.content, Some(Content::Parts(parts)) if parts.iter().any(Part::is_thinking)))
    }

    /// Leaves out the model's earlier reasoning, for a provider that cannot take it back (it
    /// was written, and signed, by another); `keep_signed`: but for what carries a signature,
    /// which a provider that reads its own signed thinking gets.
    pub fn forget_thinking(&mut self, keep_signed: bool) {
        for m in &mut self.messages {
            if let Some(Content::Parts(parts)) = &mut m.content {
                parts.retain(|p| !p.is_thinking() || keep_signed && p.signature.as_deref().is_some_and(|s| !s.is_empty()));
            }
        }
    }

    /// Raw value of a member that has no typed field.
    pub fn extra(&self, name: &str) -> Option<&RawValue> {
        self.extra.iter().find(|(k, _)| &**k == name).map(|(_, v)| *v)
    }
}
