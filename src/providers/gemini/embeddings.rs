//! Embeddings: the Gemini API's `batchEmbedContents` and Vertex AI's `predict`.

use super::*;
use crate::openai::embeddings;

#[derive(Serialize)]
pub(super) struct BatchEmbedRequest<'r> {
    pub(super) requests: Vec<EmbedRequest<'r>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EmbedRequest<'r> {
    pub(super) model: &'r str,
    pub(super) content: EmbedContent<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output_dimensionality: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct EmbedContent<'r> {
    pub(super) parts: [PartOut<'r>; 1],
}

#[derive(Serialize)]
pub(super) struct PredictRequest<'r> {
    pub(super) instances: Vec<Instance<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parameters: Option<PredictParameters>,
}

#[derive(Serialize)]
pub(super) struct Instance<'r> {
    pub(super) content: &'r str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PredictParameters {
    pub(super) output_dimensionality: u64,
}

/// Gemini: `batchEmbedContents`, one request per input. Vertex AI: `predict`, one instance per
/// input. `user` has no counterpart and does not change the vectors.
pub fn build_embeddings(s: &Settings, req: &EmbeddingsRequest, upstream_model: &str) -> Result<UpstreamRequest, ApiError> {
    let texts = req
        .inputs()?
        .texts
        .ok_or_else(|| ApiError::invalid_param("input", "Gemini embedding models take text; token-id inputs are not supported."))?;
    let (method, body) = match s.api {
        Api::Gemini => {
            let model = format!("models/{upstream_model}");
            let requests = texts
                .iter()
                .map(|t| EmbedRequest {
                    model: &model,
                    content: EmbedContent { parts: [PartOut::Text(t)] },
                    output_dimensionality: req.dimensions,
                })
                .collect();
            ("batchEmbedContents", serde_json::to_vec(&BatchEmbedRequest { requests }))
        }
        Api::Vertex => {
            let instances = texts.iter().map(|t| Instance { content: t }).collect();
            let parameters = req.dimensions.map(|output_dimensionality| PredictParameters { output_dimensionality });
            ("predict", serde_json::to_vec(&PredictRequest { instances, parameters }))
        }
    };
    let body = body.map_err(|e| ApiError::internal(format!("could not encode the embeddings request: {e}")))?;
    Ok(UpstreamRequest { body: Some(body), path: Some(endpoint(s, upstream_model, method)?), ..Default::default() })
}

#[derive(Deserialize)]
pub(super) struct BatchEmbedResponse<'a> {
    #[serde(borrow)]
    pub(super) embeddings: Vec<Values<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Values<'a> {
    #[serde(borrow)]
    pub(super) values: &'a RawValue,
}

#[derive(Deserialize)]
pub(super) struct PredictResponse<'a> {
    #[serde(borrow)]
    pub(super) predictions: Vec<Prediction<'a>>,
}

#[derive(Deserialize)]
pub(super) struct Prediction<'a> {
    #[serde(borrow)]
    pub(super) embeddings: VertexEmbedding<'a>,
}

#[derive(Deserialize)]
pub(super) struct VertexEmbedding<'a> {
    #[serde(borrow)]
    pub(super) values: &'a RawValue,
    #[serde(default)]
    pub(super) statistics: Option<Statistics>,
}

#[derive(Deserialize)]
pub(super) struct Statistics {
    /// A JSON number that Vertex AI may write with a fraction (`4.0`).
    pub(super) token_count: f64,
}

pub fn translate_embeddings(s: &Settings, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
    let bad = |e: serde_json::Error| super::super::unexpected_answer("an embeddings answer", &e, body);
    let (vectors, usage): (Vec<&RawValue>, Option<Usage>) = match s.api {
        // The Gemini API reports no token counts for embeddings: usage stays unknown, never zero.
        Api::Gemini => {
            let r: BatchEmbedResponse = serde_json::from_slice(body).map_err(bad)?;
            (r.embeddings.iter().map(|e| e.values).collect(), None)
        }
        Api::Vertex => {
            let r: PredictResponse = serde_json::from_slice(body).map_err(bad)?;
            let counts: Option<Vec<f64>> = r.predictions.iter().map(|p| p.embeddings.statistics.as_ref().map(|s| s.token_count)).collect();
            // Casts and the sum saturate: no count Vertex sends can wrap the total.
            let tokens = |c: Vec<f64>| c.iter().fold(0u64, |sum, n| sum.saturating_add(n.max(0.0).round() as u64));
            let usage = counts.map(|c| Usage { input_tokens: tokens(c), ..Default::default() });
            (r.predictions.iter().map(|p| p.embeddings.values).collect(), usage)
        }
    };
    let body = embeddings::list_response(&ctx.model, &vectors, usage.as_ref(), ctx.base64)?;
    Ok(Translated { body: Some(body), usage })
}
