//! `POST /v1/embeddings`: the request clients send and the list they get back.
//! Reference: https://platform.openai.com/docs/api-reference/embeddings

use crate::error::ApiError;
use crate::json::Str;
use crate::usage::Usage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// OpenAI accepts at most 2048 inputs per request.
pub const MAX_INPUTS: usize = 2048;

#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest<'a> {
    #[serde(borrow)]
    pub model: Str<'a>,
    #[serde(borrow)]
    pub input: &'a RawValue,
    #[serde(borrow, default)]
    pub encoding_format: Option<Str<'a>>,
    #[serde(default)]
    pub dimensions: Option<u64>,
    #[serde(borrow, default)]
    pub user: Option<Str<'a>>,
}

/// The input as texts; `None` when the client sent token ids (only OpenAI-style hosts take those).
#[derive(Debug)]
pub struct Inputs<'a> {
    pub texts: Option<Vec<Str<'a>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InputShape<'a> {
    One(#[serde(borrow)] Str<'a>),
    Many(#[serde(borrow)] Vec<Str<'a>>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

impl<'a> EmbeddingsRequest<'a> {
    pub fn inputs(&self) -> Result<Inputs<'a>, ApiError> {
        let bad = |m: &str| ApiError::invalid_param("input", m);
        let shape: InputShape = serde_json::from_str(self.input.get())
            .map_err(|_| bad("`input` must be a string, an array of strings, or token ids (an array of integers or of integer arrays)."))?;
        let (texts, count) = match shape {
            InputShape::One(s) => (Some(vec![s]), 1),
            InputShape::Many(v) => {
                let n = v.len();
                (Some(v), n)
            }
            InputShape::Tokens(t) => (None, usize::from(!t.is_empty())),
            InputShape::TokenLists(t) => (None, if t.iter().any(Vec::is_empty) { 0 } else { t.len() }),
        };
        if count == 0 || texts.as_ref().is_some_and(|t| t.iter().any(|s| s.is_empty())) {
            return Err(bad("`input` must not be empty."));
        }
        if count > MAX_INPUTS {
            return Err(bad(&format!("`input` holds {count} items; the maximum is {MAX_INPUTS}.")));
        }
        Ok(Inputs { texts })
    }

    pub fn wants_base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }
}

pub fn parse(body: &[u8]) -> Result<EmbeddingsRequest<'_>, ApiError> {
    crate::json::check_depth(body).map_err(|deep| ApiError::nesting_too_deep(&deep))?;
    let r: EmbeddingsRequest = crate::json::from_body(body).map_err(|e| {
        let text = e.to_string();
        let param = ["model", "input"].into_iter().find(|f| text.contains(&format!("`{f}`")));
        let err = ApiError::invalid_request(format!("Invalid embeddings request: {text}."));
        match param {
            Some(p) => err.with_param(p),
            None => err,
        }
    })?;
    if r.model.is_empty() {
        return Err(ApiError::invalid_param("model", "`model` must not be empty."));
    }
    if let Some(f) = &r.encoding_format
        && !matches!(&**f, "float" | "base64")
    {
        return Err(ApiError::invalid_param("encoding_format", "`encoding_format` must be \"float\" or \"base64\"."));
    }
    r.inputs()?;
    Ok(r)
}

#[derive(Serialize)]
struct ListOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut<'a>>,
    model: &'a str,
    usage: UsageOut,
}

#[derive(Serialize)]
struct EmbeddingOut<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Floats(&'a RawValue),
    Base64(String),
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// Builds OpenAI's embedding list from providers' vectors (raw JSON arrays of numbers, kept as
/// sent when the client wants floats).
pub fn list_response(model: &str, vectors: &[&RawValue], usage: Option<&Usage>, base64: bool) -> Result<Vec<u8>, ApiError> {
    let mut data = Vec::with_capacity(vectors.len());
    for (index, v) in vectors.iter().enumerate() {
        let embedding = if base64 { Vector::Base64(to_base64_f32(v)?) } else { Vector::Floats(v) };
        data.push(EmbeddingOut { object: "embedding", index, embedding });
    }
    let tokens = usage.map_or(0, Usage::prompt_tokens);
    let list = ListOut { object: "list", data, model, usage: UsageOut { prompt_tokens: tokens, total_tokens: tokens } };
    serde_json::to_vec(&list).map_err(|e| ApiError::internal(format!("could not encode embeddings: {e}")))
}

/// OpenAI's base64 format: little-endian f32s, base64-encoded.
fn to_base64_f32(vector: &RawValue) -> Result<String, ApiError> {
    let floats: Vec<f32> = serde_json::from_str(vector.get())
        .map_err(|e| ApiError::bad_gateway(format!("The provider returned an embedding that is not a list of numbers ({e}).")))?;
    let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
    Ok(base64(&bytes))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk.first().copied().unwrap_or(0), chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET.get(((n >> (18 - 6 * i)) & 63) as usize).copied().unwrap_or(b'=')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_nested_too_deep_is_a_400_naming_it() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for body in [format!(r#"{{"model":"e","input":{deep}}}"#), format!(r#"{{"model":"e","input":[[{deep}]]}}"#)] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.param.as_deref(), e.code.as_deref()), (400, Some("input"), Some("nesting_too_deep")));
        }
    }

    #[test]
    fn inputs_of_every_shape() {
        let r = parse(br#"{"model":"m","input":"hello"}"#).unwrap();
        assert_eq!(r.inputs().unwrap().texts.unwrap().len(), 1);
        let r = parse(br#"{"model":"m","input":["a","b"],"encoding_format":"base64","dimensions":256}"#).unwrap();
        assert!(r.wants_base64());
        assert_eq!(r.dimensions, Some(256));
        assert_eq!(r.inputs().unwrap().texts.unwrap().len(), 2);
        assert!(parse(br#"{"model":"m","input":[1,2,3]}"#).unwrap().inputs().unwrap().texts.is_none());
        assert!(parse(br#"{"model":"m","input":[[1],[2]]}"#).unwrap().inputs().unwrap().texts.is_none());
    }

    #[test]
    fn bad_requests_name_the_param() {
        for (body, param) in [
            (&br#"{"input":"x"}"#[..], "model"),
            (br#"{"model":"m"}"#, "input"),
            (br#"{"model":"m","input":""}"#, "input"),
            (br#"{"model":"m","input":[]}"#, "input"),
            (br#"{"model":"m","input":{"a":1}}"#, "input"),
            (br#"{"model":"m","input":"x","encoding_format":"hex"}"#, "encoding_format"),
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some(param)), "{}", String::from_utf8_lossy(body));
        }
        let many = format!(r#"{{"model":"m","input":[{}]}}"#, vec!["\"x\""; MAX_INPUTS + 1].join(","));
        assert_eq!(parse(many.as_bytes()).unwrap_err().param.as_deref(), Some("input"));
    }

    #[test]
    fn list_response_keeps_floats_exact_or_encodes_base64() {
        let v1: &RawValue = serde_json::from_str("[0.1,-2.5e-3]").unwrap();
        let v2: &RawValue = serde_json::from_str("[1.0,0]").unwrap();
        let usage = Usage { input_tokens: 7, ..Default::default() };
        let out: serde_json::Value = serde_json::from_slice(&list_response("m", &[v1, v2], Some(&usage), false).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"object":"list","model":"m","usage":{"prompt_tokens":7,"total_tokens":7},
            "data":[{"object":"embedding","index":0,"embedding":[0.1,-2.5e-3]},{"object":"embedding","index":1,"embedding":[1.0,0]}]})
        );
        let out: serde_json::Value = serde_json::from_slice(&list_response("m", &[v2], None, true).unwrap()).unwrap();
        // 1.0f32 = 00 00 80 3f, 0.0f32 = 00 00 00 00
        assert_eq!(out["data"][0]["embedding"], "AACAPwAAAAA=");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}
