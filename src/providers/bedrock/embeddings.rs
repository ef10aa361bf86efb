//! Embeddings: Titan and Cohere embedding models through `InvokeModel`.

use super::*;
use crate::openai::embeddings;

/// The InvokeModel body format, chosen by model id (which may carry a cross-region prefix such
/// as `us.` or be an ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EmbeddingFamily {
    Titan,
    Cohere,
}

impl EmbeddingFamily {
    pub(super) fn of(model: &str) -> Option<Self> {
        if model.contains("amazon.titan-embed") {
            Some(EmbeddingFamily::Titan)
        } else if model.contains("cohere.embed") {
            Some(EmbeddingFamily::Cohere)
        } else {
            None
        }
    }
}

/// Cohere embed accepts at most 96 texts per call.
pub(super) const COHERE_MAX_TEXTS: usize = 96;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TitanRequest<'r> {
    pub(super) input_text: &'r str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dimensions: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct CohereRequest<'r> {
    pub(super) texts: Vec<&'r str>,
    /// OpenAI's API has no notion of query versus document; documents is the neutral choice.
    pub(super) input_type: &'static str,
}

pub fn build_embeddings(
    provider: &Provider,
    s: &Settings,
    req: &EmbeddingsRequest,
    upstream_model: &str,
    now_ms: u64,
) -> Result<UpstreamRequest, ApiError> {
    let Some(family) = EmbeddingFamily::of(upstream_model) else {
        return Err(ApiError::invalid_param(
            "model",
            format!(
                "Bedrock model `{upstream_model}` has no known embeddings format; the gateway supports amazon.titan-embed-* and cohere.embed-* models."
            ),
        ));
    };
    let texts = req.inputs()?.texts.ok_or_else(|| {
        ApiError::invalid_param(
            "input",
            "Bedrock embedding models take text; send `input` as a string or an array of strings, not token ids.",
        )
    })?;
    let body = match family {
        EmbeddingFamily::Titan => {
            let [text] = texts.as_slice() else {
                return Err(ApiError::invalid_param(
                    "input",
                    format!(
                        "Titan embedding models embed one text per request; got {} inputs. Send `input` as a single string.",
                        texts.len()
                    ),
                ));
            };
            serde_json::to_vec(&TitanRequest { input_text: text, dimensions: req.dimensions })
        }
        EmbeddingFamily::Cohere => {
            if req.dimensions.is_some() {
                return Err(ApiError::invalid_param("dimensions", "Cohere embedding models on Bedrock do not take `dimensions`.")
                    .with_code("unsupported_parameter"));
            }
            if texts.len() > COHERE_MAX_TEXTS {
                return Err(ApiError::invalid_param(
                    "input",
                    format!("Cohere embedding models take at most {COHERE_MAX_TEXTS} inputs per request; got {}.", texts.len()),
                ));
            }
            serde_json::to_vec(&CohereRequest { texts: texts.iter().map(|t| &**t).collect(), input_type: "search_document" })
        }
    }
    .map_err(|e| ApiError::internal(format!("could not encode the embeddings request: {e}")))?;
    signed(provider, s, model_path(provider, upstream_model, "invoke"), body, now_ms)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TitanResponse<'a> {
    #[serde(borrow)]
    pub(super) embedding: &'a RawValue,
    #[serde(default)]
    pub(super) input_text_token_count: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct CohereResponse<'a> {
    /// An array of vectors, or `{"float": [...]}` when embedding types were requested.
    #[serde(borrow)]
    pub(super) embeddings: &'a RawValue,
    #[serde(default)]
    pub(super) meta: Option<CohereMeta>,
}

#[derive(Deserialize)]
pub(super) struct CohereByType<'a> {
    #[serde(borrow)]
    pub(super) float: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct CohereMeta {
    #[serde(default)]
    pub(super) billed_units: Option<BilledUnits>,
}

#[derive(Deserialize)]
pub(super) struct BilledUnits {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
}

pub fn translate_embeddings(ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let bad = |e: serde_json::Error| super::super::unexpected_answer("an embedding", &e, body);
    let tokens = |n: u64| Usage { input_tokens: n, ..Default::default() };
    let (vectors, usage) = match EmbeddingFamily::of(&ctx.model) {
        Some(EmbeddingFamily::Cohere) => {
            let r: CohereResponse = serde_json::from_slice(body).map_err(bad)?;
            let vectors = match serde_json::from_str::<Vec<&RawValue>>(r.embeddings.get()) {
                Ok(v) => v,
                Err(_) => serde_json::from_str::<CohereByType>(r.embeddings.get()).map_err(bad)?.float,
            };
            (vectors, r.meta.and_then(|m| m.billed_units).and_then(|b| b.input_tokens).map(tokens))
        }
        _ => {
            let r: TitanResponse = serde_json::from_slice(body).map_err(bad)?;
            (vec![r.embedding], r.input_text_token_count.map(tokens))
        }
    };
    let body = embeddings::list_response(&ctx.model, &vectors, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}
