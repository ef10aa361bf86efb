//! Accounting's refusals as OpenAI errors. The statuses, types and codes follow OpenAI's own:
//! https://platform.openai.com/docs/guides/error-codes (401 invalid key, 403 not permitted,
//! 429 `insufficient_quota` when the quota is spent).

use crate::accounting::rate::{self, Dimension, Standing, Standings};
use crate::accounting::refusal::Refusal;
use crate::error::ApiError;

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingKey => {
                ApiError::new(401, "authentication_error", "Missing API key: send `Authorization: Bearer <your gateway key>`.")
                    .with_code("missing_api_key")
            }
            Refusal::UnknownKey => ApiError::new(401, "authentication_error", "Incorrect API key provided.").with_code("invalid_api_key"),
            Refusal::ModelNotAllowed { key, model } => {
                ApiError::new(403, "permission_error", format!("Key `{key}` is not allowed to use model `{model}`."))
                    .with_param("model")
                    .with_code("model_not_allowed")
            }
            Refusal::BudgetExceeded { message } => ApiError::new(429, "insufficient_quota", message).with_code("budget_exceeded"),
            // OpenAI's rate-limit errors: type `requests` or `tokens`, code `rate_limit_exceeded`,
            // with `retry-after` (seconds) and `retry-after-ms`, which its SDKs read first
            // (https://platform.openai.com/docs/guides/rate-limits).
            Refusal::RateLimited { message, exceeded } => {
                let mut headers = Vec::with_capacity(5);
                if let Some(ms) = exceeded.retry_after_ms {
                    headers.push(("retry-after", ms.div_ceil(1000).to_string()));
                    headers.push(("retry-after-ms", ms.to_string()));
                }
                push_standing(&mut headers, exceeded.dimension, exceeded.standing);
                ApiError::new(429, exceeded.dimension.name(), message).with_code("rate_limit_exceeded").with_headers(headers)
            }
            Refusal::LedgerUnavailable { reason } => {
                ApiError::new(503, "api_error", format!("The budget ledger is unavailable ({reason}); refusing rather than overspending."))
                    .with_code("budget_unavailable")
            }
        }
    }
}

/// OpenAI's `x-ratelimit-*` response headers for the tightest limits a request counted in
/// (https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers).
pub fn rate_headers(standings: &Standings) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(s) = standings.requests {
        push_standing(&mut headers, Dimension::Requests, s);
    }
    if let Some(s) = standings.tokens {
        push_standing(&mut headers, Dimension::Tokens, s);
    }
    headers
}

fn push_standing(headers: &mut Vec<(&'static str, String)>, dimension: Dimension, s: Standing) {
    let names = match dimension {
        Dimension::Requests => ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
        Dimension::Tokens => ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"],
    };
    let [limit, remaining, reset] = names;
    headers.extend([(limit, s.limit.to_string()), (remaining, s.remaining.to_string()), (reset, rate::format_reset(s.reset_ms))]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_openai_statuses_types_and_codes() {
        let cases = [
            (Refusal::MissingKey, 401, "authentication_error", "missing_api_key", None),
            (Refusal::UnknownKey, 401, "authentication_error", "invalid_api_key", None),
            (Refusal::ModelNotAllowed { key: "k".into(), model: "m".into() }, 403, "permission_error", "model_not_allowed", Some("model")),
            (Refusal::BudgetExceeded { message: "Budget exceeded.".into() }, 429, "insufficient_quota", "budget_exceeded", None),
            (Refusal::LedgerUnavailable { reason: "Contended".into() }, 503, "api_error", "budget_unavailable", None),
        ];
        for (refusal, status, kind, code, param) in cases {
            let e = ApiError::from(refusal);
            assert_eq!((e.status, e.kind.as_ref(), e.code.as_deref(), e.param.as_deref()), (status, kind, Some(code), param));
        }
        let e = ApiError::from(Refusal::ModelNotAllowed { key: "alice".into(), model: "claude".into() });
        assert_eq!(e.message, "Key `alice` is not allowed to use model `claude`.");
        let e = ApiError::from(Refusal::LedgerUnavailable { reason: "Contended".into() });
        assert_eq!(e.message, "The budget ledger is unavailable (Contended); refusing rather than overspending.");
    }
}
