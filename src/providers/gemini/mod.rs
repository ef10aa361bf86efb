//! Google Gemini API and Vertex AI ↔ OpenAI Chat Completions and Embeddings, both ways,
//! streaming included. Vertex AI hosts the same GenerateContent body as the Gemini API; the two
//! differ in host, path, auth and embeddings endpoint. Vertex AI also serves Claude in Anthropic's
//! own API (`claude`).
//! References:
//! https://ai.google.dev/api/generate-content (request, response, streaming with `alt=sse`,
//! finish and block reasons, usage metadata),
//! https://ai.google.dev/api/caching#Content (Content, Part, FunctionCall, FunctionResponse),
//! https://ai.google.dev/api/caching#Schema (the OpenAPI 3.0 subset of JSON Schema Gemini takes),
//! https://ai.google.dev/gemini-api/docs/function-calling (function declarations, tool config,
//! function responses as objects),
//! https://ai.google.dev/gemini-api/docs/thought-signatures (signatures of function calls),
//! https://ai.google.dev/gemini-api/docs/thinking (thinking budgets and levels),
//! https://ai.google.dev/gemini-api/docs/structured-output (JSON mode),
//! https://ai.google.dev/gemini-api/docs/file-input-methods and
//! https://blog.google/innovation-and-ai/technology/developers-tools/gemini-api-new-file-limits
//! (public HTTPS URLs as `fileData`),
//! https://ai.google.dev/api/embeddings#method:-models.batchembedcontents,
//! https://ai.google.dev/gemini-api/docs/troubleshooting (error statuses),
//! https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/inference (Vertex paths
//! and `Authorization: Bearer` access tokens),
//! https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api
//! (Vertex `:predict`), https://cloud.google.com/apis/design/errors (error body and codes).
//!
//! This file holds the settings and the `ProviderApi` impl; the translation lives in
//! `request`, `schema` (JSON schemas for Gemini), `response`, `errors`, `stream` and `embeddings`, which share this file's imports.

use super::completion;
use super::media::{Source, media_source};
use super::reasoning::{self, Effort};
use super::streams::malformed_event;
use super::thought_signature;
use super::turns::{self, AssistantCall, Conversation, TurnRules};
use super::{BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamTranslation};
use crate::client::StreamWriter;
use crate::client::{ClientBody, Dialect};
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::json::{Str, strip_position};
use crate::openai::embeddings::EmbeddingsRequest;
use crate::providers::anthropic;
use crate::schema::{ParamAction, ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

mod claude;
mod embeddings;
mod errors;
mod request;
mod response;
mod schema;
mod stream;

use embeddings::*;
use errors::*;
use request::*;
use response::*;
use schema::*;
pub use stream::StreamState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Gemini,
    Vertex,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub api: Api,
    /// The collection every model endpoint sits under: `{base}/models` or
    /// `{base}/projects/{project}/locations/{location}/publishers/google/models`.
    pub models_path: String,
    /// Vertex AI: where its Anthropic publisher's models are (`claude`).
    pub claude_models_path: Option<String>,
}

impl ProviderApi for Settings {
    fn accepted_fields(kind: ProviderKind) -> &'static [SpecField] {
        match kind {
            ProviderKind::Vertex => &[SpecField::ApiKeyEnv, SpecField::Project, SpecField::Location],
            _ => &[SpecField::ApiKeyEnv],
        }
    }

    fn default_base_path(kind: ProviderKind) -> &'static str {
        match kind {
            ProviderKind::Vertex => "/v1",
            _ => "/v1beta",
        }
    }

    fn default_host(spec: &ProviderSpec) -> Option<String> {
        match spec.kind {
            ProviderKind::Vertex => Some(vertex_host(spec.location.as_deref())),
            _ => Some("generativelanguage.googleapis.com".into()),
        }
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn unsupported<'p>(&self, provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
        check_unsupported(provider, req)
    }

    fn param_defaults(&self, upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        if self.serves_claude(upstream_model) {
            return anthropic::default_policy(&anthropic::hosted::HOSTED, upstream_model);
        }
        Vec::new()
    }

    /// Anthropic's Messages API, for Claude.
    fn speaks(&self, dialect: Dialect, upstream_model: &str) -> bool {
        dialect == Dialect::AnthropicMessages && self.serves_claude(upstream_model)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        match &self.claude_models_path {
            Some(claude_models) if self.serves_claude(to.model) => {
                claude::build_chat(provider, claude_models, req, client, to.model, edits)
            }
            _ => build_request(provider, self, req, to.model, edits),
        }
    }

    fn build_embeddings(
        &self,
        _provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(self, req, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        if self.serves_claude(&ctx.model) {
            return anthropic::translate_chat(ctx, body);
        }
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(self, ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        if claude::is_anthropic_error(body) {
            return claude::translate_error(status, body);
        }
        translate_error(status, body)
    }

    fn build_count_tokens(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
    ) -> Option<Result<UpstreamRequest, ApiError>> {
        match &self.claude_models_path {
            Some(claude_models) if self.serves_claude(to.model) => claude::build_count_tokens(claude_models, client, to.model),
            _ => Some(build_count_tokens(provider, self, req, to.model)),
        }
    }

    fn translate_count_tokens(&self, body: &[u8]) -> Result<Translated, ApiError> {
        translate_count_tokens(body)
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let (api, models_path, claude_models_path, auth) = if spec.kind == ProviderKind::Vertex {
        let project = path_segment(spec.project.as_deref(), "project")?;
        let location = path_segment(spec.location.as_deref(), "location")?;
        let path = format!("{base_path}/projects/{project}/locations/{location}/publishers/google/models");
        let claude = claude::models_path(base_path, project, location);
        // An OAuth access token the operator refreshes (e.g. `gcloud auth print-access-token`).
        (Api::Vertex, path, Some(claude), key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))))
    } else {
        (Api::Gemini, format!("{base_path}/models"), None, key.map(|k| ("x-goog-api-key", Secret::new(k.to_owned()))))
    };
    Ok(CompiledProvider {
        // Every request names its own endpoint (model and method are in the path).
        chat_path: models_path.clone(),
        settings: Settings { api, models_path, claude_models_path },
        auth,
        headers: Vec::new(),
        missing_env: Vec::new(),
    })
}

/// Vertex AI's regional endpoint; the `global` location has no regional prefix. A missing
/// location gets the global host here and is refused by `compile`.
pub fn vertex_host(location: Option<&str>) -> String {
    match location {
        Some(l) if l != "global" => format!("{l}-aiplatform.googleapis.com"),
        _ => "aiplatform.googleapis.com".into(),
    }
}

fn path_segment<'s>(value: Option<&'s str>, field: &'static str) -> Result<&'s str, FieldError> {
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) => Ok(v),
        Some(_) => Err(FieldError { field, message: "may only use letters, digits, `-`, `_`, `.` and `:`".into() }),
        None => Err(FieldError { field, message: "is required for kind `vertex`".into() }),
    }
}

/// `{models}/{model}:{method}`. The model lands in the path, so a name that could change the
/// path (a client's name under a wildcard route) is refused.
fn endpoint(s: &Settings, model: &str, method: &str) -> Result<String, ApiError> {
    endpoint_under(&s.models_path, model, method)
}

/// `{models}/{model}:{method}` for a model collection.
fn endpoint_under(models: &str, model: &str, method: &str) -> Result<String, ApiError> {
    let valid = !model.is_empty() && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !valid {
        return Err(ApiError::invalid_param(
            "model",
            format!("`{model}` is not a valid Gemini model name (letters, digits, `-`, `_`, `.` and `@` only)."),
        ));
    }
    Ok(format!("{models}/{model}:{method}"))
}

#[cfg(test)]
mod tests;
