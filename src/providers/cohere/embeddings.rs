//! Embeddings over Cohere's v2 `embed`.

use super::*;
use crate::openai::embeddings;

/// Cohere embeds at most 96 texts per call.
pub(super) const MAX_TEXTS: usize = 96;

#[derive(Serialize)]
pub(super) struct EmbedBody<'r> {
    pub(super) model: &'r str,
    pub(super) texts: Vec<&'r str>,
    pub(super) input_type: &'static str,
    pub(super) embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output_dimension: Option<u64>,
}

/// `POST /v2/embed`. OpenAI has no way to say what a text is for, so every text is embedded as
/// `search_document` (what is stored and searched); Cohere also has `search_query`, which
/// clients of this endpoint cannot ask for. Vectors are always fetched as floats: OpenAI's base64
/// is encoded from them on the way back.
pub fn build_embeddings(provider: &Provider, req: &EmbeddingsRequest, upstream_model: &str) -> Result<UpstreamRequest, ApiError> {
    let Some(texts) = req.inputs()?.texts else {
        return Err(ApiError::invalid_param(
            "input",
            "Cohere models embed text: send `input` as a string or an array of strings, not token ids.",
        ));
    };
    if texts.len() > MAX_TEXTS {
        return Err(ApiError::invalid_param(
            "input",
            format!("`input` holds {} texts; Cohere embeds at most {MAX_TEXTS} per request.", texts.len()),
        ));
    }
    let body = EmbedBody {
        model: upstream_model,
        texts: texts.iter().map(|t| &**t).collect(),
        input_type: "search_document",
        embedding_types: ["float"],
        output_dimension: req.dimensions,
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("could not encode the Cohere request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(format!("{}/embed", provider.base_path)), ..Default::default() })
}

#[derive(Deserialize)]
pub(super) struct EmbedResponse<'a> {
    #[serde(borrow)]
    pub(super) embeddings: EmbeddingsByType<'a>,
    #[serde(default)]
    pub(super) meta: Option<EmbedMeta>,
}

#[derive(Deserialize)]
pub(super) struct EmbeddingsByType<'a> {
    #[serde(borrow)]
    pub(super) float: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct EmbedMeta {
    #[serde(default)]
    pub(super) billed_units: Option<Counts>,
}

pub fn translate_embeddings(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let r: EmbedResponse =
        serde_json::from_slice(body).map_err(|e| super::super::unexpected_answer("Cohere float embeddings", &e, body))?;
    let usage = r.meta.and_then(|m| m.billed_units).map(|b| Usage { input_tokens: b.input_tokens, ..Default::default() });
    let body = embeddings::list_response(&ctx.model, &r.embeddings.float, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}
