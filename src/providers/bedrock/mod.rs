//! Amazon Bedrock ↔ OpenAI: Chat Completions over Converse and ConverseStream, embeddings over
//! InvokeModel (Titan and Cohere text embeddings), Messages clients' requests for Claude over
//! InvokeModel with Anthropic's own body (`invoke`), every request signed with SigV4 in the filter.
//! References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ContentBlock.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html,
//! https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html,
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html.
//!
//! This file holds the settings and the `ProviderApi` impl; the translation lives in
//! `request`, `response`, `errors`, `embeddings` and `stream`, which share this file's imports.

use super::completion;
use super::media::{Source, media_source};
use super::reasoning::{self, Effort, Thinking};
use super::streams::{ToolCallIndex, malformed_event};
use super::structured;
use super::thought_signature;
use super::turns::{self, AssistantCall, Conversation, Turn, TurnRules};
use super::{
    BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, Unsupported, UpstreamRequest, sigv4,
};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField, StreamFraming, StreamTranslation};
use crate::client::StreamWriter;
use crate::client::{ClientBody, Dialect};
use crate::conversation::answer::{Answer, Completion, Finish};
use crate::conversation::request::{ChatRequest, Content, Message, Part, Role, ToolChoice};
use crate::error::ApiError;
use crate::error::kind_for_status;
use crate::json::Str;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{JsonSchemaForm, ProviderKind, ProviderSpec, ReasoningForm};
use crate::stream::sse::Event;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

mod embeddings;
mod errors;
mod invoke;
mod request;
mod response;
mod stream;

use embeddings::*;
use errors::*;
pub use invoke::{ClaudeStream, invokes_claude, is_anthropic};
use request::*;
use response::*;
pub use stream::ConverseStream;

/// The SigV4 signing name of the Bedrock runtime.
const SERVICE: &str = "bedrock";

/// AWS credentials read from the environment at load time. `Secret` keeps them out of `Debug`.
#[derive(Debug)]
struct Credentials {
    access_key_id: Secret,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

#[derive(Debug)]
pub struct Settings {
    region: String,
    /// `None` when a variable is missing; the provider then reports it (`CompiledProvider::missing_env`)
    /// before any request is built.
    credentials: Option<Credentials>,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::Region, SpecField::AwsAccessKeyIdEnv, SpecField::AwsSecretAccessKeyEnv, SpecField::AwsSessionTokenEnv]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        ""
    }

    fn default_host(spec: &ProviderSpec) -> Option<String> {
        spec.region.as_deref().map(default_host)
    }

    /// Requests are signed with AWS credentials instead.
    fn requires_key(_kind: ProviderKind) -> bool {
        false
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn unsupported<'p>(&self, provider: &'p Provider, req: &ChatRequest) -> Unsupported<'p> {
        check_unsupported(provider, req)
    }

    /// Claude on Bedrock reads its signed thinking back (`reasoningContent`).
    fn reads_thinking(&self) -> bool {
        true
    }

    /// Anthropic's Messages API, for Claude (InvokeModel with the Anthropic body).
    fn speaks(&self, dialect: Dialect, upstream_model: &str) -> bool {
        invokes_claude(dialect, upstream_model)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        if invokes_claude(client.dialect, to.model) {
            return invoke::build_invoke(provider, self, req, client, to, edits);
        }
        build_request(provider, self, req, to.model, to.now_ms, edits)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        _raw: &[u8],
        to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, self, req, to.model, to.now_ms)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        if invokes_claude(ctx.dialect, &ctx.model) {
            return super::anthropic::translate_chat(ctx, body);
        }
        translate_response(ctx, body)
    }

    fn translate_embeddings(&self, _provider: &Provider, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        translate_embeddings(ctx, body)
    }

    fn translate_error(&self, status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError {
        translate_error(status, error_type, body)
    }

    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::AwsEventStream
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, env, .. } = *input;
    let region = match spec.region.as_deref() {
        None => return Err(FieldError { field: "region", message: "is required for kind `bedrock` (e.g. `us-east-1`)".into() }),
        Some(r) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') => r.to_owned(),
        Some(r) => return Err(FieldError { field: "region", message: format!("`{r}` is not an AWS region name such as `us-east-1`") }),
    };
    let variable = |field: &'static str, configured: Option<&String>, default: &'static str| match configured {
        Some(name) if name.trim().is_empty() => Err(FieldError { field, message: "must name an environment variable".into() }),
        Some(name) => Ok((name.clone(), true)),
        None => Ok((default.to_owned(), false)),
    };
    let (key_var, _) = variable("aws_access_key_id_env", spec.aws_access_key_id_env.as_ref(), "AWS_ACCESS_KEY_ID")?;
    let (secret_var, _) = variable("aws_secret_access_key_env", spec.aws_secret_access_key_env.as_ref(), "AWS_SECRET_ACCESS_KEY")?;
    let (token_var, token_configured) = variable("aws_session_token_env", spec.aws_session_token_env.as_ref(), "AWS_SESSION_TOKEN")?;
    let read = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(Secret::new);
    let (key, secret, token) = (read(&key_var), read(&secret_var), read(&token_var));
    let mut missing_env = Vec::new();
    if key.is_none() {
        missing_env.push(key_var);
    }
    if secret.is_none() {
        missing_env.push(secret_var);
    }
    // The session token is optional, unless the config names its variable: then temporary
    // credentials are meant, and signing without the token would only earn 403s.
    if token.is_none() && token_configured {
        missing_env.push(token_var);
    }
    let credentials = match (key, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Some(Credentials { access_key_id, secret_access_key, session_token: token }),
        _ => None,
    };
    Ok(CompiledProvider {
        settings: Settings { region, credentials },
        // Never requested as is: every Bedrock request carries its model in its own path.
        chat_path: format!("{base_path}/model/{{modelId}}/converse"),
        auth: None,
        headers: vec![("content-type", "application/json".to_owned())],
        missing_env,
    })
}

/// A Bedrock stream: ConverseStream's events, or Claude's Anthropic events from
/// InvokeModelWithResponseStream.
#[derive(Debug)]
pub enum StreamState {
    Converse(ConverseStream),
    Claude(ClaudeStream),
}

impl StreamState {
    pub fn new(ctx: &ResponseContext) -> Self {
        if invokes_claude(ctx.dialect, &ctx.model) {
            StreamState::Claude(ClaudeStream::new(ctx))
        } else {
            StreamState::Converse(ConverseStream::new(ctx))
        }
    }

    fn inner(&self) -> &dyn StreamTranslation {
        match self {
            StreamState::Converse(s) => s,
            StreamState::Claude(s) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn StreamTranslation {
        match self {
            StreamState::Converse(s) => s,
            StreamState::Claude(s) => s,
        }
    }
}

impl StreamTranslation for StreamState {
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.inner_mut().translate_event(event, out)
    }

    fn usage(&self) -> Option<Usage> {
        self.inner().usage()
    }

    fn ended(&self) -> bool {
        self.inner().ended()
    }

    fn chunks(&self) -> Option<&StreamWriter> {
        self.inner().chunks()
    }

    fn completed(&self) -> bool {
        self.inner().completed()
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.inner_mut().finish(out);
    }
}

/// `bedrock-runtime.{region}.amazonaws.com`
/// (https://docs.aws.amazon.com/general/latest/gr/bedrock.html#br-rt).
pub fn default_host(region: &str) -> String {
    format!("bedrock-runtime.{region}.amazonaws.com")
}

/// Signs the final request. Only headers the filter itself sets are signed (`host` is the
/// `:authority` the filter writes): Envoy adds others (`x-forwarded-*`, `x-request-id`, …)
/// after the filter, and a signed header it touched would invalidate the signature.
fn signed(provider: &Provider, s: &Settings, path: String, body: Vec<u8>, now_ms: u64) -> Result<UpstreamRequest, ApiError> {
    let Some(c) = &s.credentials else {
        return Err(ApiError::internal(format!("The gateway has no AWS credentials for provider `{}`.", provider.name))
            .with_code("provider_credentials_missing"));
    };
    let amz_date = sigv4::amz_date(now_ms);
    let payload_sha256 = sigv4::sha256_hex(&body);
    let mut signed_headers =
        vec![("host", provider.authority.as_str()), ("x-amz-content-sha256", payload_sha256.as_str()), ("x-amz-date", amz_date.as_str())];
    if let Some(token) = &c.session_token {
        signed_headers.push(("x-amz-security-token", token.expose()));
    }
    let scope = sigv4::Scope {
        access_key_id: c.access_key_id.expose(),
        secret_access_key: c.secret_access_key.expose(),
        region: &s.region,
        service: SERVICE,
        amz_date: &amz_date,
    };
    let request = sigv4::Request { method: "POST", path: &path, headers: &signed_headers, payload_sha256: &payload_sha256 };
    let signature = sigv4::sign(&scope, &request).ok_or_else(|| ApiError::internal("could not sign the Bedrock request"))?;
    let mut headers = vec![("x-amz-date", amz_date.clone()), ("x-amz-content-sha256", payload_sha256.clone())];
    if let Some(token) = &c.session_token {
        headers.push(("x-amz-security-token", token.expose().to_owned()));
    }
    headers.push(("authorization", signature.authorization));
    Ok(UpstreamRequest { body: Some(body), path: Some(path), headers, ..Default::default() })
}

/// `{base}/model/{modelId}/{action}`: the model id is one path segment, so its `:` (versions)
/// and `/` (ARNs) are percent-encoded.
fn model_path(provider: &Provider, model: &str, action: &str) -> String {
    format!("{}/model/{}/{action}", provider.base_path, sigv4::uri_encode(model))
}

#[cfg(test)]
mod tests;
