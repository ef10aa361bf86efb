//! Google API errors as OpenAI errors.

use super::*;

#[derive(Deserialize)]
pub(super) struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    pub(super) error: GoogleError<'a>,
}

#[derive(Deserialize)]
pub(super) struct GoogleError<'a> {
    #[serde(borrow, default)]
    pub(super) message: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) status: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub(super) details: Vec<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ErrorDetail<'a> {
    #[serde(borrow, default)]
    pub(super) reason: Option<Str<'a>>,
}

/// A Google error → OpenAI error. The HTTP status Google answered with stands (it already
/// matches the google.rpc code), except that the Gemini API answers a bad key with 400
/// INVALID_ARGUMENT and reason API_KEY_INVALID, which clients know as a 401. An error inside a
/// stream has no status of its own (`http` is `None`): the google.rpc code gives it.
pub(super) fn map_error(http: Option<u16>, e: &GoogleError) -> ApiError {
    let rpc = e.status.as_deref().unwrap_or_default();
    let key_invalid = e.details.iter().any(|d| d.reason.as_deref() == Some("API_KEY_INVALID"));
    let canonical = match rpc {
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    };
    let status = match http {
        _ if key_invalid => 401,
        Some(status) if (400..=599).contains(&status) => status,
        _ => canonical,
    };
    let code: Option<Cow<'static, str>> = match status {
        401 => Some("invalid_api_key".into()),
        429 => Some("rate_limit_exceeded".into()),
        _ if rpc.is_empty() => None,
        _ => Some(rpc.to_ascii_lowercase().into()),
    };
    let message = e.message.as_ref().map(|m| m.0.clone().into_owned()).unwrap_or_else(|| format!("The provider answered HTTP {status}."));
    let err = ApiError::new(status, kind_for_status(status), message);
    match code {
        Some(c) => err.with_code(c),
        None => err,
    }
}

pub fn translate_error(status: u16, body: &[u8]) -> ApiError {
    // The streaming method wraps its errors in a one-element array. The array is tried first:
    // serde would also read an array as the envelope's fields in order.
    let parsed = serde_json::from_slice::<[ErrorEnvelope; 1]>(body).map(|[e]| e).or_else(|_| serde_json::from_slice::<ErrorEnvelope>(body));
    match parsed {
        Ok(envelope) => map_error(Some(status), &envelope.error),
        Err(_) => ApiError::new(status, kind_for_status(status), super::super::status_message(status, body)),
    }
}
