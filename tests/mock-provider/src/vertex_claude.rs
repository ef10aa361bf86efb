//! Claude on Vertex AI: the Anthropic publisher's `rawPredict`, `streamRawPredict` and
//! `count-tokens:rawPredict`
//! (<https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/use-claude>).
//! Vertex checks the access token and host as for Gemini; the body is Anthropic's without
//! `model`, with `anthropic_version: vertex-2023-10-16`, and the answers are Anthropic's own
//! message and SSE events. Errors before the model are Vertex's (Google's format).

use crate::anthropic::{self, Platform};
use crate::gemini::{authorize_vertex, error_response};
use crate::http::{Request, Response};
use crate::provider::{Answer, Provider};
use crate::script::Cache;

const VERSION: &str = "vertex-2023-10-16";

pub struct VertexClaude {
    token: String,
}

impl VertexClaude {
    pub fn new(token: String) -> Self {
        VertexClaude { token }
    }
}

/// The location, model and method of `/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:{method}`.
fn target(path: &str) -> Option<(&str, &str, &str)> {
    let (prefix, rest) = path.split_once("/publishers/anthropic/models/")?;
    let (model, method) = rest.split_once(':')?;
    match prefix.split('/').collect::<Vec<_>>().as_slice() {
        ["", "v1", "projects", project, "locations", location] if !project.is_empty() && !location.is_empty() && !model.is_empty() => {
            Some((location, model, method))
        }
        _ => None,
    }
}

/// Whether `path` is an Anthropic publisher's method.
pub fn handles(path: &str) -> bool {
    target(path).is_some_and(|(_, _, method)| method == "rawPredict" || method == "streamRawPredict")
}

impl Provider for VertexClaude {
    fn error(&self, status: u16, message: &str) -> Response {
        error_response(status, message)
    }

    fn stream_error(&self, _request: &Request, _sent: usize) -> String {
        anthropic::overloaded_event()
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        let Some((location, model, method)) = target(&request.path) else {
            return Err(error_response(404, &format!("The requested URL {} was not found on this server.", request.path)));
        };
        authorize_vertex(request, &self.token, location)?;
        let invalid = |message: String| error_response(400, &message);
        if model == "count-tokens" {
            return anthropic::hosted_count_tokens(request, VERSION).map_err(invalid);
        }
        let platform = Platform { model, version: VERSION, stream: None, betas_in_body: false };
        let answer = anthropic::hosted(request, cache, &platform).map_err(invalid)?;
        // The method and the body agree on streaming.
        if (method == "streamRawPredict") != answer.events.is_some() {
            return Err(invalid(format!("{method} with `stream` {} in the body", answer.events.is_some())));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const MODELS: &str = "/v1/projects/p/locations/us-east5/publishers/anthropic/models";

    fn send(path: &str, body: &Value, token: &str) -> Result<Answer, Response> {
        let body = body.to_string();
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: us-east5-aiplatform.googleapis.com\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        VertexClaude::new("t".into()).answer(&request, Cache::default())
    }

    fn message(extra: Value) -> Value {
        let mut body = json!({"anthropic_version": VERSION, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    }

    #[test]
    fn serves_claude_in_anthropics_api_behind_vertexs_checks() {
        let raw = format!("{MODELS}/claude-sonnet-4-5@20250929:rawPredict");
        let stream = format!("{MODELS}/claude-sonnet-4-5@20250929:streamRawPredict");
        assert!(handles(&raw) && handles(&stream) && !handles("/v1/projects/p/locations/l/publishers/google/models/g:rawPredict"));
        let answer = send(&raw, &message(json!({})), "t").ok().unwrap();
        assert!(answer.events.is_none());
        assert!(send(&stream, &message(json!({"stream": true})), "t").ok().unwrap().events.is_some());
        for (path, body, token, status) in [
            (&raw, message(json!({})), "wrong", 401),
            (&raw, message(json!({"model": "claude"})), "t", 400),
            (&raw, message(json!({"anthropic_version": "bedrock-2023-05-31"})), "t", 400),
            (&stream, message(json!({})), "t", 400),
            (&raw, message(json!({"stream": true})), "t", 400),
        ] {
            assert_eq!(send(path, &body, token).err().unwrap().status, status, "{body}");
        }
        let count = format!("{MODELS}/count-tokens:rawPredict");
        let counted = send(
            &count,
            &message(json!({"model": "claude-sonnet-4-5@20250929"}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.remove("max_tokens");
                    Value::Object(o)
                })
                .unwrap(),
            "t",
        )
        .ok()
        .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&counted.whole.body).unwrap(), json!({"input_tokens": 1}));
    }
}
