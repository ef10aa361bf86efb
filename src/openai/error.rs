//! OpenAI's error shape, which every failure answered in the OpenAI dialects takes:
//! `{"error":{"message":…,"type":…,"param":…,"code":…}}`
//! (https://platform.openai.com/docs/guides/error-codes).

use crate::error::ApiError;
use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// OpenAI's rendering of the gateway's error.
pub trait OpenAiError {
    fn to_json(&self) -> Vec<u8>;
    /// The same error as one SSE event, for failures after a stream has started.
    fn to_sse_event(&self) -> Vec<u8>;
}

impl OpenAiError for ApiError {
    fn to_json(&self) -> Vec<u8> {
        let envelope =
            Envelope { error: Body { message: &self.message, kind: &self.kind, param: self.param.as_deref(), code: self.code.as_deref() } };
        serde_json::to_vec(&envelope)
            .unwrap_or_else(|_| br#"{"error":{"message":"error","type":"api_error","param":null,"code":null}}"#.to_vec())
    }

    fn to_sse_event(&self) -> Vec<u8> {
        let json = self.to_json();
        let mut out = Vec::with_capacity(json.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_openai_shape_with_nulls() {
        let e = ApiError::invalid_request("bad \"thing\"");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v, serde_json::json!({"error":{"message":"bad \"thing\"","type":"invalid_request_error","param":null,"code":null}}));
    }

    #[test]
    fn param_and_code_are_included() {
        let e = ApiError::model_not_found("gpt-x");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(e.status, 404);
    }

    #[test]
    fn sse_event_wraps_json() {
        let e = ApiError::bad_gateway("cut");
        let ev = e.to_sse_event();
        assert!(ev.starts_with(b"data: {\"error\""));
        assert!(ev.ends_with(b"\n\n"));
    }
}
