//! Claude on a cloud platform that serves Anthropic's Messages API itself: Amazon Bedrock's
//! InvokeModel and Vertex AI's Anthropic publisher (`rawPredict`). The body is Anthropic's but
//! for `model`, which the platform takes in the path, and the platform's `anthropic_version`
//! in the body instead of the header; the answers are Anthropic's own.
//! References: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-anthropic-claude-messages-request-response.html
//! (`anthropic_version: bedrock-2023-05-31`, `anthropic_beta`, no `stream` member: streaming is
//! InvokeModelWithResponseStream), https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude
//! and https://docs.anthropic.com/en/api/claude-on-vertex-ai (`anthropic_version:
//! vertex-2023-10-16`, `stream` in the body, betas in the `anthropic-beta` header).

use super::*;

/// How a platform takes the Anthropic body.
#[derive(Debug, Clone, Copy)]
pub struct Platform {
    /// The body's `anthropic_version`.
    pub version: &'static str,
    /// Streaming is asked for by the path (Bedrock's `invoke-with-response-stream`), so the body
    /// has no `stream` member.
    pub stream_in_path: bool,
    /// The client's `anthropic-beta` header goes into the body as the `anthropic_beta` array
    /// (Bedrock; Vertex reads the header, which reaches it as it reaches Anthropic).
    pub betas_in_body: bool,
}

pub const BEDROCK: Platform = Platform { version: "bedrock-2023-05-31", stream_in_path: true, betas_in_body: true };
pub const VERTEX: Platform = Platform { version: "vertex-2023-10-16", stream_in_path: false, betas_in_body: false };

/// Anthropic's rules as a platform applies them: the long-standing API version (sampling
/// parameters accepted) and Anthropic's default output limit.
pub const HOSTED: Settings = Settings { version: ApiVersion::V2023_06_01, default_max_tokens: 4096 };

/// The platform's request body for a chat: a Messages client's own bytes edited (members the
/// model's policy drops removed, every other byte as the client sent it), any other client's
/// request rendered as for Anthropic and edited alike.
pub fn build_hosted(
    provider: &Provider,
    req: &ChatRequest,
    client: ClientBody,
    upstream_model: &str,
    edits: &mut Edits,
    platform: Platform,
) -> Result<UpstreamRequest, ApiError> {
    if client.dialect == Dialect::AnthropicMessages {
        let dropped: Vec<&str> = edits.dropped.iter().map(|d| messages_member(d)).collect();
        return platform_body(client.bytes, &dropped, client.headers, platform).map(UpstreamRequest::body);
    }
    let rendered = build_request(provider, &HOSTED, req, upstream_model, edits)?;
    let body = platform_body(rendered.body.as_deref().unwrap_or_default(), &[], &[], platform)?;
    Ok(UpstreamRequest { body: Some(body), ..rendered })
}

/// The body less `model`, `dropped` (and `stream` where the path says it), with the platform's
/// `anthropic_version` (and the client's betas where the body takes them).
pub(super) fn platform_body(raw: &[u8], dropped: &[&str], headers: &[(String, String)], platform: Platform) -> Result<Vec<u8>, ApiError> {
    let members = crate::json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let betas: Vec<&str> = if platform.betas_in_body { header_betas(headers) } else { Vec::new() };
    // What the platform takes elsewhere or from Tollgate: the model, the version, where the path
    // says it the stream, and the betas where the header gives them.
    let replaced = |k: &str| match k {
        "model" | "anthropic_version" => true,
        "stream" => platform.stream_in_path,
        "anthropic_beta" => !betas.is_empty(),
        _ => false,
    };
    let keep = |k: &str| !replaced(k) && !dropped.contains(&k);
    let version = crate::json::quote(platform.version);
    let betas_json = serde_json::to_vec(&betas).map_err(|e| ApiError::internal(format!("could not encode the betas: {e}")))?;
    let mut append: Vec<(&str, &[u8])> = vec![("anthropic_version", &version)];
    if !betas.is_empty() {
        append.push(("anthropic_beta", &betas_json));
    }
    Ok(crate::json::rewrite(raw, &members, keep, &append))
}

/// A token-counting request for the platform: the model named in the body (the count endpoint
/// serves every model), with the platform's `anthropic_version`.
pub fn count_tokens_body(raw: &[u8], upstream_model: &str, platform: Platform) -> Result<Vec<u8>, ApiError> {
    let members = crate::json::members(raw).ok_or_else(|| ApiError::invalid_request("The request body must be a JSON object."))?;
    let (model, version) = (crate::json::quote(upstream_model), crate::json::quote(platform.version));
    let keep = |k: &str| !matches!(k, "model" | "anthropic_version");
    Ok(crate::json::rewrite(raw, &members, keep, &[("model", &model), ("anthropic_version", &version)]))
}

/// Every beta the client's `anthropic-beta` headers name (a comma-separated list, which may be
/// repeated: https://docs.anthropic.com/en/api/beta-headers).
fn header_betas(headers: &[(String, String)]) -> Vec<&str> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("anthropic-beta"))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|beta| !beta.is_empty())
        .collect()
}
