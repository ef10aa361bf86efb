//! Azure OpenAI (<https://learn.microsoft.com/azure/ai-services/openai/reference>,
//! <https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle>): dated
//! `/openai/deployments/{deployment}/…?api-version=…` paths and the v1 API's `/openai/v1/…`,
//! `api-key` authentication, and OpenAI's bodies (answered by [`crate::openai`]) with Azure's
//! content-filter annotations added.
//!
//! Markers in a request trip the content filter: `[filtered-prompt]` is refused with Azure's 400
//! `content_filter` error, `[filtered-output]` ends the answer with `finish_reason:
//! content_filter`.

use serde_json::{Value, json};

use crate::http::{Request, Response};
use crate::openai;
use crate::provider::{Answer, Provider};
use crate::responses;
use crate::script::Cache;

/// Dated versions before this one refuse `stream_options`.
const STREAM_OPTIONS_SINCE: &str = "2024-09-01";
/// The first dated version with the Responses API
/// (<https://learn.microsoft.com/azure/ai-foundry/openai/how-to/responses>).
const RESPONSES_SINCE: &str = "2025-03-01-preview";

pub struct Azure {
    key: String,
    /// The responses this resource stored.
    store: responses::Store,
}

#[derive(Debug, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
    /// The Responses API; the rest of the path after `responses` (`""` or `/{id}`).
    Responses(String),
}

impl Azure {
    pub fn new(key: String) -> Self {
        Azure { key, store: responses::Store::default() }
    }

    /// The endpoint, and the dated `api-version` when the path is a deployment's.
    fn route(request: &Request) -> Result<(Endpoint, Option<String>), Response> {
        let version = request.query_param("api-version");
        let (endpoint, dated) = if let Some(rest) = request.path.strip_prefix("/openai/deployments/") {
            let Some((_deployment, endpoint)) = rest.split_once('/').filter(|(deployment, _)| !deployment.is_empty()) else {
                return Err(error(404, "Resource not found"));
            };
            match version {
                None => return Err(error(404, "Resource not found")),
                Some(v) if !is_dated(&v) => return Err(error(400, "API version not supported")),
                Some(v) => (endpoint, Some(v)),
            }
        } else if let Some(rest) = request.path.strip_prefix("/openai/responses") {
            // The Responses API under a dated (preview) version, without a deployment in the path.
            return match version {
                Some(v) if is_dated(&v) && v.as_str() >= RESPONSES_SINCE => Ok((Endpoint::Responses(rest.to_owned()), Some(v))),
                _ => Err(error(400, "API version not supported")),
            };
        } else if let Some(endpoint) = request.path.strip_prefix("/openai/v1/") {
            if !matches!(version.as_deref(), None | Some("v1" | "preview")) {
                return Err(error(400, "API version not supported"));
            }
            (endpoint, None)
        } else {
            return Err(error(404, "Resource not found"));
        };
        match endpoint {
            "chat/completions" => Ok((Endpoint::Chat, dated)),
            "embeddings" => Ok((Endpoint::Embeddings, dated)),
            responses if dated.is_none() && responses.starts_with("responses") => {
                Ok((Endpoint::Responses(responses["responses".len()..].to_owned()), None))
            }
            _ => Err(error(404, "Resource not found")),
        }
    }
}

fn is_dated(version: &str) -> bool {
    let date = version.get(..10).unwrap_or_default();
    date.len() == 10
        && date.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() })
        && matches!(version.get(10..), Some("" | "-preview"))
}

/// Azure's own errors: the status as `code`, no `type`.
fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"error": {"code": status.to_string(), "message": message}}))
}

impl Provider for Azure {
    fn error(&self, status: u16, message: &str) -> Response {
        error(status, message)
    }

    fn stream_error(&self, request: &Request, sent: usize) -> String {
        match Azure::route(request) {
            Ok((Endpoint::Responses(_), _)) => responses::stream_error(sent),
            _ => openai::stream_error(),
        }
    }

    fn answer(&self, request: &Request, cache: Cache) -> Result<Answer, Response> {
        let (endpoint, dated) = Azure::route(request)?;
        if request.header("api-key") != Some(self.key.as_str()) {
            return Err(error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ));
        }
        match endpoint {
            Endpoint::Embeddings => return openai::embeddings(&request.body),
            Endpoint::Responses(rest) => return responses::serve(request, cache, &self.store, Some(&rest)),
            Endpoint::Chat => {}
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if body.get("stream_options").is_some() && dated.as_deref().is_some_and(|v| v < STREAM_OPTIONS_SINCE) {
            return Err(Response::json(
                400,
                &json!({"error": {"message": "Unrecognized request argument supplied: stream_options", "type": "invalid_request_error", "param": null, "code": null}}),
            ));
        }
        let text = String::from_utf8_lossy(&request.body);
        if text.contains("[filtered-prompt]") {
            return Err(filtered_prompt());
        }
        let filtered = text.contains("[filtered-output]");
        let answer = openai::chat(&request.body, cache)?;
        Ok(annotate(answer, filtered))
    }
}

fn filter_results(filtered: bool) -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    let violence = if filtered { json!({"filtered": true, "severity": "medium"}) } else { safe.clone() };
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": violence})
}

fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": filter_results(false)}])
}

/// Azure's refusal of a prompt its content filter flags
/// (<https://learn.microsoft.com/azure/ai-foundry/openai/concepts/content-filter>).
fn filtered_prompt() -> Response {
    Response::json(
        400,
        &json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
            "type": null,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": filter_results(true)}
        }}),
    )
}

/// Adds Azure's filter results to OpenAI's answer: `prompt_filter_results` on the completion (in
/// a first chunk of its own when streaming) and `content_filter_results` on every choice.
fn annotate(answer: Answer, filtered: bool) -> Answer {
    let mut completion: Value = serde_json::from_slice(&answer.whole.body).unwrap_or(Value::Null);
    completion["prompt_filter_results"] = prompt_filter_results();
    annotate_choices(&mut completion, filtered);
    let whole = Response { body: completion.to_string().into_bytes(), ..answer.whole };
    let events = answer.events.map(|events| {
        let first =
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": prompt_filter_results()});
        std::iter::once(format!("data: {first}\n\n"))
            .chain(events.into_iter().map(|event| {
                let payload = event.strip_prefix("data: ").map(str::trim_end).unwrap_or_default();
                match serde_json::from_str::<Value>(payload) {
                    Ok(mut chunk) => {
                        annotate_choices(&mut chunk, filtered);
                        format!("data: {chunk}\n\n")
                    }
                    Err(_) => event,
                }
            }))
            .collect()
    });
    Answer { whole, events }
}

fn annotate_choices(completion: &mut Value, filtered: bool) {
    for choice in completion["choices"].as_array_mut().into_iter().flatten() {
        let finished = !choice["finish_reason"].is_null();
        choice["content_filter_results"] = if finished || choice.get("message").is_some() { filter_results(filtered) } else { json!({}) };
        if filtered && finished {
            choice["finish_reason"] = json!("content_filter");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(target: &str, headers: &[(&str, &str)], body: &Value) -> Result<Answer, Response> {
        let body = body.to_string();
        let mut raw = format!("POST {target} HTTP/1.1\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        let request = crate::http::read_request(&mut raw.as_bytes(), &mut Vec::new()).unwrap().unwrap();
        Azure::new("az".to_owned()).answer(&request, Cache::default())
    }

    const KEY: &[(&str, &str)] = &[("api-key", "az")];
    const CHAT: &str = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21";

    fn chat(text: &str, stream: bool) -> Value {
        json!({"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": text}]})
    }

    fn json_of(response: &Response) -> Value {
        serde_json::from_slice(&response.body).unwrap()
    }

    #[test]
    fn answers_dated_and_v1_paths_with_filter_results() {
        for target in [CHAT, "/openai/v1/chat/completions", "/openai/v1/chat/completions?api-version=preview"] {
            let answer = send(target, KEY, &chat("hi", false)).ok().unwrap();
            let body = json_of(&answer.whole);
            assert_eq!(body["choices"][0]["message"]["content"], "Hello! You said: hi", "{target}");
            assert_eq!(body["choices"][0]["content_filter_results"]["hate"]["filtered"], false);
            assert_eq!(body["prompt_filter_results"][0]["prompt_index"], 0);
        }
        let answer =
            send("/openai/deployments/emb/embeddings?api-version=2024-10-21", KEY, &json!({"input": "x", "model": "emb"})).ok().unwrap();
        assert_eq!(json_of(&answer.whole)["object"], "list");
    }

    #[test]
    fn refuses_wrong_paths_versions_and_keys() {
        for (target, headers, status) in [
            ("/openai/deployments/gpt-4o/chat/completions", KEY, 404),
            ("/openai/deployments/gpt-4o/chat/completions?api-version=latest", KEY, 400),
            ("/openai/deployments//chat/completions?api-version=2024-10-21", KEY, 404),
            ("/openai/deployments/gpt-4o/completions?api-version=2024-10-21", KEY, 404),
            ("/openai/v1/chat/completions?api-version=2024-10-21", KEY, 400),
            (CHAT, &[("api-key", "wrong")][..], 401),
            (CHAT, &[("authorization", "Bearer az")][..], 401),
        ] {
            let response = send(target, headers, &chat("hi", false)).err().unwrap_or_else(|| panic!("accepted {target}"));
            assert_eq!(response.status, status, "{target}");
            assert_eq!(json_of(&response)["error"]["code"], status.to_string());
        }
        let old = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01";
        let mut body = chat("hi", true);
        body["stream_options"] = json!({"include_usage": true});
        assert_eq!(send(old, KEY, &body).err().unwrap().status, 400);
        assert!(send(CHAT, KEY, &body).is_ok());
    }

    #[test]
    fn answers_the_responses_api_on_v1_and_dated_preview_paths() {
        let body = json!({"model": "gpt-4o-prod", "input": "hi"});
        for target in ["/openai/v1/responses", "/openai/responses?api-version=2025-04-01-preview"] {
            let answer = send(target, KEY, &body).ok().unwrap_or_else(|| panic!("refused {target}"));
            assert_eq!(json_of(&answer.whole)["output"][0]["content"][0]["text"], "Hello! You said: hi", "{target}");
        }
        for (target, status) in [("/openai/responses?api-version=2024-10-21", 400), ("/openai/responses", 400)] {
            assert_eq!(send(target, KEY, &body).err().unwrap().status, status, "{target}");
        }
        assert_eq!(send("/openai/v1/responses", &[("api-key", "wrong")], &body).err().unwrap().status, 401);
        let request =
            crate::http::read_request(&mut "POST /openai/v1/responses HTTP/1.1\r\n\r\n".as_bytes(), &mut Vec::new()).unwrap().unwrap();
        assert!(Azure::new("az".to_owned()).stream_error(&request, 3).starts_with("event: error\n"));
    }

    #[test]
    fn content_filter_refuses_prompts_and_cuts_answers() {
        let response = send(CHAT, KEY, &chat("[filtered-prompt]", false)).err().unwrap();
        assert_eq!(response.status, 400);
        let error = &json_of(&response)["error"];
        assert_eq!((error["code"].as_str(), error["param"].as_str()), (Some("content_filter"), Some("prompt")));
        let body = json_of(&send(CHAT, KEY, &chat("[filtered-output]", false)).ok().unwrap().whole);
        assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(body["choices"][0]["content_filter_results"]["violence"]["filtered"], true);
        let events = send(CHAT, KEY, &chat("[filtered-output]", true)).ok().unwrap().events.unwrap();
        assert!(events[0].contains("prompt_filter_results") && events[0].contains("\"choices\":[]"));
        assert!(events.iter().any(|e| e.contains("\"finish_reason\":\"content_filter\"")));
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
    }
}
