//! AWS errors as OpenAI errors.

use super::*;

#[derive(Deserialize)]
pub(super) struct ErrorBody<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<Str<'a>>,
    /// Some AWS front ends capitalise it.
    #[serde(rename = "Message", borrow, default)]
    pub(super) message_capitalised: Option<Str<'a>>,
    /// The error type, where the header is missing.
    #[serde(rename = "__type", borrow, default)]
    pub(super) kind: Option<Str<'a>>,
}

/// `ThrottlingException:http://internal.amazon.com/…` or `com.amazon.coral#ThrottlingException`
/// → `ThrottlingException`.
pub(super) fn error_name(raw: &str) -> &str {
    let name = raw.split(':').next().unwrap_or(raw);
    name.rsplit('#').next().unwrap_or(name).trim()
}

/// AWS error type → OpenAI status, type and code. Stream exceptions (`throttlingException`) use
/// the same names with a lower-case initial; they arrive without a status of their own.
pub(super) fn map_error(status: Option<u16>, kind: &str, message: String) -> ApiError {
    let lower = kind.to_ascii_lowercase();
    let (default_status, openai_kind, code): (u16, &'static str, &'static str) = match lower.as_str() {
        "throttlingexception" => (429, "rate_limit_error", "rate_limit_exceeded"),
        "servicequotaexceededexception" => (429, "rate_limit_error", "quota_exceeded"),
        "validationexception" => (400, "invalid_request_error", "invalid_request"),
        "accessdeniedexception" => (403, "permission_error", "access_denied"),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception"
        | "expiredtokenexception" => (403, "authentication_error", "invalid_credentials"),
        "resourcenotfoundexception" => (404, "invalid_request_error", "model_not_found"),
        "modeltimeoutexception" => (408, "api_error", "model_timeout"),
        "modelnotreadyexception" => (429, "api_error", "model_not_ready"),
        "modelerrorexception" | "modelstreamerrorexception" => (502, "api_error", "model_error"),
        "serviceunavailableexception" => (503, "api_error", "service_unavailable"),
        "internalserverexception" => (500, "api_error", "internal_error"),
        _ => {
            let status = status.unwrap_or(500);
            let e = ApiError::new(status, kind_for_status(status), message);
            return if kind.is_empty() { e } else { e.with_code(kind.to_owned()) };
        }
    };
    // 424 (the model failed) means nothing to OpenAI clients: it is the upstream's fault, a 502.
    let status = status.filter(|s| *s != 424).unwrap_or(default_status);
    ApiError::new(status, openai_kind, message).with_code(code)
}

pub fn translate_error(status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let kind = error_type.or(parsed.as_ref().and_then(|b| b.kind.as_deref())).map(error_name).unwrap_or_default();
    // Only the first paragraph: AWS appends the canonical request to signature errors, and it
    // holds signed header values such as the session token, which clients must never see.
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.as_ref().or(b.message_capitalised.as_ref()))
        .map(|m| m.split("\n\n").next().unwrap_or_default().trim().to_owned());
    let message = match message {
        Some(m) if kind.is_empty() => m,
        Some(m) => format!("{kind}: {m}"),
        None => super::super::status_message(status, body),
    };
    map_error(Some(status), kind, message)
}
