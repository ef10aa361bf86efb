//! Google Gemini API and Vertex AI ↔ OpenAI Chat Completions and Embeddings, both ways,
//! streaming included. Vertex AI hosts the same GenerateContent body as the Gemini API; the two
//! differ in host, path, auth and embeddings endpoint.
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
use crate::client::ClientBody;
use crate::client::StreamWriter;
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::json::{Str, strip_position};
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_request(provider, self, req, to.model, edits)
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
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(self, ctx, body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, body)
    }

    fn build_count_tokens(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        _client: ClientBody,
        to: &BuildContext,
    ) -> Option<Result<UpstreamRequest, ApiError>> {
        Some(build_count_tokens(provider, self, req, to.model))
    }

    fn translate_count_tokens(&self, body: &[u8]) -> Result<Translated, ApiError> {
        translate_count_tokens(body)
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let (api, models_path, auth) = if spec.kind == ProviderKind::Vertex {
        let project = path_segment(spec.project.as_deref(), "project")?;
        let location = path_segment(spec.location.as_deref(), "location")?;
        let path = format!("{base_path}/projects/{project}/locations/{location}/publishers/google/models");
        // An OAuth access token the operator refreshes (e.g. `gcloud auth print-access-token`).
        (Api::Vertex, path, key.map(|k| ("authorization", Secret::new(format!("Bearer {k}")))))
    } else {
        (Api::Gemini, format!("{base_path}/models"), key.map(|k| ("x-goog-api-key", Secret::new(k.to_owned()))))
    };
    Ok(CompiledProvider {
        // Every request names its own endpoint (model and method are in the path).
        chat_path: models_path.clone(),
        settings: Settings { api, models_path },
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
    let valid = !model.is_empty() && model.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !valid {
        return Err(ApiError::invalid_param(
            "model",
            format!("`{model}` is not a valid Gemini model name (letters, digits, `-`, `_`, `.` and `@` only)."),
        ));
    }
    Ok(format!("{}/{model}:{method}", s.models_path))
}

#[cfg(test)]
mod tests;
