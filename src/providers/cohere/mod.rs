//! Cohere v2 Chat and Embed ↔ OpenAI Chat Completions and Embeddings, both ways, streaming
//! included.
//! References: https://docs.cohere.com/reference/chat, https://docs.cohere.com/reference/chat-stream,
//! https://docs.cohere.com/docs/streaming, https://docs.cohere.com/reference/embed,
//! https://docs.cohere.com/reference/errors, https://docs.cohere.com/docs/how-does-cohere-pricing-work.
//!
//! This file holds the settings and the `ProviderApi` impl; the translation lives in
//! `request`, `response` (errors included), `embeddings` and `stream`, which share this file's imports.

use super::completion;
use super::streams::{ToolCallIndex, malformed_event};
use super::turns::legacy_function_role;
use super::{BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::client::ClientBody;
use crate::client::StreamWriter;
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::json::Str;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

mod embeddings;
mod request;
mod response;
mod stream;

use embeddings::*;
use request::*;
use response::*;
pub use stream::StreamState;

/// Cohere has no settings beyond the common ones.
#[derive(Debug)]
pub struct Settings;

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/v2"
    }

    fn default_host(_spec: &ProviderSpec) -> Option<String> {
        Some("api.cohere.com".into())
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        let CompileInput { base_path, key, .. } = *input;
        Ok(CompiledProvider {
            settings: Settings,
            chat_path: format!("{base_path}/chat"),
            auth: key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))),
            headers: Vec::new(),
            missing_env: Vec::new(),
        })
    }

    fn unsupported<'p>(&self, provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
        check_unsupported(provider, req)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_request(provider, req, to.model, edits)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, req, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }
}

#[cfg(test)]
mod tests;
