//! Why accounting turns a request away. Accounting knows nothing of client dialects: the gateway
//! renders a refusal as the client's error (status, type, code, message).

/// A request accounting refuses, with what the client is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Auth is on and the request carries no bearer key.
    MissingKey,
    /// The bearer key is not one of the configured virtual keys.
    UnknownKey,
    /// The caller's key (`key`, its id) may not use `model`, a client-facing name.
    ModelNotAllowed { key: String, model: String },
    /// A capped scope cannot hold the request's estimate; `message` says whose cap and, for the
    /// caller's own key, the amounts.
    BudgetExceeded { message: String },
    /// A rate limit of a scope the request counts in cannot take it now (or ever, when it asks
    /// more tokens than the limit).
    RateLimited { message: String, exceeded: super::rate::Exceeded },
    /// The ledger could not be written (`reason`), so the request is refused rather than risk
    /// overspending.
    LedgerUnavailable { reason: String },
}
