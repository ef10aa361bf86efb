//! Claude on Vertex AI: the Anthropic publisher's `rawPredict` and `streamRawPredict`, which take
//! Anthropic's Messages body (model in the path, `anthropic_version: vertex-2023-10-16` in the
//! body, see `anthropic::hosted`) and answer with Anthropic's own message and SSE events. A
//! Vertex provider serves a model from it when the model is named `claude-…`, as Vertex names
//! Claude (`claude-sonnet-4-5@20250929`).
//! References: https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude,
//! https://docs.anthropic.com/en/api/claude-on-vertex-ai.

use super::*;
use crate::providers::anthropic::{self, hosted};

/// The Anthropic publisher's models, beside Google's: `{base}/projects/{project}/locations/{location}/publishers/anthropic/models`.
pub(super) fn models_path(base_path: &str, project: &str, location: &str) -> String {
    format!("{base_path}/projects/{project}/locations/{location}/publishers/anthropic/models")
}

impl Settings {
    /// The model is Claude, served by Vertex AI's Anthropic publisher.
    pub fn serves_claude(&self, upstream_model: &str) -> bool {
        self.claude_models_path.is_some() && upstream_model.starts_with("claude-")
    }
}

pub(super) fn build_chat(
    provider: &Provider,
    models_path: &str,
    req: &ChatRequest,
    client: ClientBody,
    model: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let method = if req.stream { "streamRawPredict" } else { "rawPredict" };
    let path = Some(endpoint_under(models_path, model, method)?);
    let built = hosted::build_hosted(provider, req, client, model, edits, hosted::VERTEX)?;
    Ok(UpstreamRequest { path, ..built })
}

/// `count-tokens:rawPredict`: a Messages client's count request as it came but for the model,
/// which stays in the body here, and the platform's `anthropic_version`.
pub(super) fn build_count_tokens(models_path: &str, client: ClientBody, model: &str) -> Option<Result<UpstreamRequest, ApiError>> {
    let path = Some(format!("{models_path}/count-tokens:rawPredict"));
    (client.dialect == Dialect::AnthropicMessages).then(|| {
        hosted::count_tokens_body(client.bytes, model, hosted::VERTEX).map(|body| UpstreamRequest { path, ..UpstreamRequest::body(body) })
    })
}

#[derive(Deserialize)]
struct ErrorPeek<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
}

/// Claude's own errors are Anthropic's (`{"type":"error","error":{…}}`); Vertex AI's, before the
/// model is reached (credentials, quota, an unknown model), are Google's.
pub(super) fn is_anthropic_error(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorPeek>(body).is_ok_and(|p| p.kind.as_deref() == Some("error"))
}

pub(super) fn translate_error(status: u16, body: &[u8]) -> ApiError {
    anthropic::translate_error(status, body)
}

#[cfg(test)]
#[path = "claude_tests.rs"]
mod tests;
