//! The gateway's error: an HTTP status, a type, a message, the offending request field and a
//! code. Each client dialect renders it in its own shape (`openai::error` for OpenAI's). Types
//! and statuses follow https://platform.openai.com/docs/guides/error-codes, whose types Anthropic
//! shares (`invalid_request_error`, `authentication_error`, `rate_limit_error`, `api_error`, …).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: Cow<'static, str>,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<Cow<'static, str>>,
    /// Response headers that go with the error (a rate limit's `retry-after`); boxed, as most
    /// errors have none and every `Result` carrying an `ApiError` stays small.
    pub headers: Option<Box<ErrorHeaders>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorHeaders(pub Vec<(&'static str, String)>);

impl ApiError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind: Cow::Borrowed(kind), message: message.into(), param: None, code: None, headers: None }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    /// A 400 that names the offending request field, so clients can find their mistake.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_request(message).with_param(param)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", message).with_code("not_found")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(404, "invalid_request_error", format!("The model `{model}` does not exist or is not served by this gateway."))
            .with_param("model")
            .with_code("model_not_found")
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(405, "invalid_request_error", format!("Method {method} is not allowed on {path}.")).with_code("method_not_allowed")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(413, "invalid_request_error", format!("Request body exceeds the gateway limit of {limit} bytes."))
            .with_code("request_too_large")
    }

    /// A request nesting JSON deeper than the gateway parses (`crate::json::MAX_DEPTH`).
    pub fn nesting_too_deep(deep: &crate::json::TooDeep) -> Self {
        let limit = crate::json::MAX_DEPTH;
        let message = if deep.path.is_empty() {
            format!("The request body nests JSON more than {limit} levels deep; the gateway accepts at most {limit}.")
        } else {
            format!("`{}` nests JSON more than {limit} levels deep; the gateway accepts at most {limit}.", deep.path)
        };
        let e = Self::invalid_request(message).with_code("nesting_too_deep");
        if deep.path.is_empty() { e } else { e.with_param(deep.path.clone()) }
    }

    /// The upstream answered with something Tollgate cannot make sense of.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "api_error", message).with_code("bad_upstream_response")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "api_error", message).with_code("internal_error")
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_headers(mut self, headers: Vec<(&'static str, String)>) -> Self {
        self.headers = Some(Box::new(ErrorHeaders(headers)));
        self
    }

    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// The error `type` conventionally used for an HTTP status.
pub fn kind_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_status() {
        assert_eq!(kind_for_status(401), "authentication_error");
        assert_eq!(kind_for_status(404), "invalid_request_error");
        assert_eq!(kind_for_status(429), "rate_limit_error");
        assert_eq!(kind_for_status(503), "api_error");
    }
}
