//! Anthropic Messages API ↔ OpenAI Chat Completions, both ways, streaming included.
//! References: https://docs.anthropic.com/en/api/messages,
//! https://docs.anthropic.com/en/docs/build-with-claude/streaming,
//! https://docs.anthropic.com/en/api/errors, https://docs.anthropic.com/en/api/versioning,
//! https://platform.claude.com/docs/en/build-with-claude/extended-thinking and
//! https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking (thinking).
//!
//! This file holds the settings and the `ProviderApi` impl; the translation lives in
//! `request`, `response` (errors included) and `stream`, which share this file's imports.

use super::completion;
use super::media::{Source, media_source};
use super::reasoning::{self, ClaudeThinking, Effort, Thinking};
use super::streams::{ToolCallIndex, malformed_event};
use super::structured;
use super::turns::{self, AssistantCall, Conversation, Turn, TurnRules};
use super::{BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::client::StreamWriter;
use crate::client::{ClientBody, Dialect};
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::conversation::text::JsonStr;
use crate::error::ApiError;
use crate::json::Str;
use crate::patterns;
use crate::schema::{JsonSchemaForm, ParamAction, ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

pub mod hosted;
mod request;
mod response;
mod stream;

use request::*;
pub use response::translate_error;
use response::*;
pub use stream::StreamState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// Long-standing version: `x-api-key` auth, sampling parameters accepted.
    V2023_06_01,
    /// October 2026: `Authorization: Bearer`, `temperature`/`top_p`/`top_k` rejected with 400
    /// (see shared provider notes; codersera.com "Anthropic API Version 2026-10-21").
    V2026_10_21,
}

impl ApiVersion {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "2023-06-01" => Some(ApiVersion::V2023_06_01),
            "2026-10-21" => Some(ApiVersion::V2026_10_21),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2023_06_01 => "2023-06-01",
            ApiVersion::V2026_10_21 => "2026-10-21",
        }
    }

    fn accepts_sampling(self) -> bool {
        self == ApiVersion::V2023_06_01
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub version: ApiVersion,
    pub default_max_tokens: u64,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv, SpecField::ApiVersion, SpecField::DefaultMaxTokens]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/v1"
    }

    fn default_host(_spec: &ProviderSpec) -> Option<String> {
        Some("api.anthropic.com".into())
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn param_defaults(&self, upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        default_policy(self, upstream_model)
    }

    fn unsupported<'p>(&self, provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
        check_unsupported(provider, req)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        match client.dialect {
            Dialect::AnthropicMessages => passthrough(client.bytes, to.model, edits),
            _ => build_request(provider, self, req, to.model, edits),
        }
    }

    fn speaks(&self, dialect: Dialect, _upstream_model: &str) -> bool {
        dialect == Dialect::AnthropicMessages
    }

    /// A Messages client's request, as it came but for the model
    /// (https://docs.anthropic.com/en/api/messages-count-tokens).
    fn build_count_tokens(
        &self,
        provider: &Provider,
        _req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
    ) -> Option<Result<UpstreamRequest, ApiError>> {
        let path = Some(format!("{}/messages/count_tokens", provider.base_path));
        (client.dialect == Dialect::AnthropicMessages)
            .then(|| passthrough(client.bytes, to.model, &Edits::default()).map(|built| UpstreamRequest { path, ..built }))
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_chat(ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

/// An Anthropic message for the client: as it came to a Messages client (only its usage read),
/// translated for the others. Also the answer of Claude on the platforms that serve Anthropic's
/// API (`hosted`).
pub fn translate_chat(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    match ctx.dialect {
        Dialect::AnthropicMessages if ctx.native => passthrough_usage(body),
        _ => translate_response(ctx, body),
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let version = match spec.api_version.as_deref() {
        None => ApiVersion::V2023_06_01,
        Some(v) => ApiVersion::parse(v).ok_or_else(|| FieldError {
            field: "api_version",
            message: format!("unknown Anthropic API version `{v}`; supported: 2023-06-01, 2026-10-21"),
        })?,
    };
    let default_max_tokens = spec.default_max_tokens.unwrap_or(4096);
    if default_max_tokens == 0 {
        return Err(FieldError { field: "default_max_tokens", message: "must be at least 1".into() });
    }
    let auth = key.map(|k| match version {
        ApiVersion::V2023_06_01 => ("x-api-key", Secret::new(k.to_owned())),
        ApiVersion::V2026_10_21 => ("authorization", Secret::new(format!("Bearer {k}"))),
    });
    Ok(CompiledProvider {
        settings: Settings { version, default_max_tokens },
        chat_path: format!("{base_path}/messages"),
        auth,
        headers: vec![("anthropic-version", version.as_str().to_owned())],
        missing_env: Vec::new(),
    })
}

/// Models that answer "`temperature` is deprecated for this model" (shared provider notes;
/// BerriAI/litellm issue 26444).
const NO_TEMPERATURE: &[&str] = &["claude-opus-4-7*", "claude-opus-4-8*", "claude-opus-5*", "claude-sonnet-5*", "claude-haiku-5*"];

pub fn default_policy(s: &Settings, model: &str) -> Vec<(&'static str, ParamAction)> {
    if !s.version.accepts_sampling() {
        return vec![("temperature", ParamAction::Drop), ("top_p", ParamAction::Drop)];
    }
    if NO_TEMPERATURE.iter().any(|p| patterns::matches(p, model)) {
        return vec![("temperature", ParamAction::Drop)];
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
