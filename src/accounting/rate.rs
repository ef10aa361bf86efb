//! Request and token rate limits of one scope (requests and tokens per minute), exact within one
//! Envoy: each limited scope keeps two leaky buckets in one shared-data record, updated with
//! compare-and-swap by every worker.
//!
//! A bucket holds what was admitted and drains continuously at its limit per minute, so it is
//! empty again one minute after its last admission and never lets more than its limit through in
//! any minute plus what had drained (no double burst at window edges, as fixed windows allow).
//! Levels are integers in 1/60,000ths of a request or token, so a bucket drains by exactly its
//! per-minute limit every millisecond and no rounding accumulates.
//!
//! A request reserves one request and its token estimate on admission; settlement replaces the
//! estimate with the tokens it really used. A record that is never settled (a crashed VM) drains
//! by itself within a minute, so nothing needs to expire.

use crate::host::{self, SharedStore, StoreError};

const MINUTE_MS: u64 = 60_000;

/// The most a per-minute limit may be: levels then stay far below `u64::MAX`
/// (10^12 × 60,000 = 6 × 10^16).
pub const MAX_PER_MINUTE: u64 = 1_000_000_000_000;

/// A scope's per-minute limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
}

impl RateLimits {
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

/// Which of a scope's two limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Requests,
    Tokens,
}

impl Dimension {
    /// As OpenAI names it in rate-limit errors (`type`) and headers (`x-ratelimit-*-requests`).
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Requests => "requests",
            Dimension::Tokens => "tokens",
        }
    }

    /// As OpenAI's rate-limit messages abbreviate it.
    pub fn unit(self) -> &'static str {
        match self {
            Dimension::Requests => "requests per min (RPM)",
            Dimension::Tokens => "tokens per min (TPM)",
        }
    }
}

/// One limit's state after an admission, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: u64,
    /// Whole requests or tokens that could be admitted now.
    pub remaining: u64,
    /// Until the bucket is empty again (the limit fully available).
    pub reset_ms: u64,
}

/// The tighter of two standings: the one with less remaining.
pub fn tighter(a: Option<Standing>, b: Option<Standing>) -> Option<Standing> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.remaining < a.remaining { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Both limits' standings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standings {
    pub requests: Option<Standing>,
    pub tokens: Option<Standing>,
}

impl Standings {
    pub fn merge(self, other: Standings) -> Standings {
        Standings { requests: tighter(self.requests, other.requests), tokens: tighter(self.tokens, other.tokens) }
    }
}

/// Why a request does not fit now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub dimension: Dimension,
    pub limit: u64,
    /// What the bucket holds now, in whole requests or tokens (rounded up).
    pub used: u64,
    pub requested: u64,
    /// When the request would fit; `None` when it never can (it asks more than the limit).
    pub retry_after_ms: Option<u64>,
    /// The exceeded limit's state now.
    pub standing: Standing,
}

/// A record: when it was last drained, and the two levels then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Buckets {
    at_ms: u64,
    requests: u64,
    tokens: u64,
}

impl Buckets {
    fn parse(bytes: Option<&[u8]>) -> Buckets {
        let text = bytes.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or_default();
        let mut numbers = text.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
        let mut next = || numbers.next().unwrap_or(0);
        Buckets { at_ms: next(), requests: next(), tokens: next() }
    }

    fn encode(&self) -> Vec<u8> {
        format!("{} {} {}", self.at_ms, self.requests, self.tokens).into_bytes()
    }

    /// The levels at `now_ms`: each drained by its limit per millisecond since `at_ms`. A clock
    /// that went back drains nothing.
    fn drained(self, now_ms: u64, limits: &RateLimits) -> Buckets {
        let elapsed = now_ms.saturating_sub(self.at_ms);
        let drain = |level: u64, limit: Option<u64>| limit.map_or(0, |l| level.saturating_sub(elapsed.saturating_mul(l)));
        Buckets {
            at_ms: now_ms.max(self.at_ms),
            requests: drain(self.requests, limits.requests),
            tokens: drain(self.tokens, limits.tokens),
        }
    }
}

fn standing(level: u64, limit: u64) -> Standing {
    let capacity = limit.saturating_mul(MINUTE_MS);
    Standing { limit, remaining: capacity.saturating_sub(level) / MINUTE_MS, reset_ms: level.div_ceil(limit.max(1)) }
}

/// Checks one limit for `amount` more; the new level when it fits.
fn check(dimension: Dimension, level: u64, limit: Option<u64>, amount: u64) -> Result<u64, Exceeded> {
    let Some(limit) = limit else { return Ok(level) };
    let capacity = limit.saturating_mul(MINUTE_MS);
    let next = level.saturating_add(amount.saturating_mul(MINUTE_MS));
    if next <= capacity {
        return Ok(next);
    }
    // It fits once the level has drained to `capacity - amount`, at `limit` per millisecond.
    let fits_at = capacity.checked_sub(amount.saturating_mul(MINUTE_MS));
    Err(Exceeded {
        dimension,
        limit,
        used: level.div_ceil(MINUTE_MS),
        requested: amount,
        retry_after_ms: fits_at.map(|target| level.saturating_sub(target).div_ceil(limit.max(1))),
        standing: standing(level, limit),
    })
}

/// Admits one request asking `tokens` into the scope's buckets at `key`, or says which limit it
/// would pass. Limits without a value are not checked (their level stays 0).
pub fn admit(
    store: &dyn SharedStore,
    key: &str,
    now_ms: u64,
    limits: &RateLimits,
    tokens: u64,
) -> Result<Result<Standings, Exceeded>, StoreError> {
    let mut standings = Standings::default();
    let written = host::update(store, key, |current| {
        let b = Buckets::parse(current).drained(now_ms, limits);
        let requests = check(Dimension::Requests, b.requests, limits.requests, 1)?;
        let tokens = check(Dimension::Tokens, b.tokens, limits.tokens, if limits.tokens.is_some() { tokens } else { 0 })?;
        standings =
            Standings { requests: limits.requests.map(|l| standing(requests, l)), tokens: limits.tokens.map(|l| standing(tokens, l)) };
        Ok(Buckets { at_ms: b.at_ms, requests, tokens }.encode())
    })?;
    Ok(written.map(|()| standings))
}

/// Corrects an admission: `requests` back (a request refused after all) and the reserved tokens
/// replaced by the `used` ones. Used tokens above the reservation are added even past the limit
/// (later requests wait for them to drain); what drained meanwhile is not given back twice.
pub fn correct(
    store: &dyn SharedStore,
    key: &str,
    now_ms: u64,
    limits: &RateLimits,
    returned_requests: u64,
    (reserved, used): (u64, u64),
) -> Result<(), StoreError> {
    let written = host::update::<std::convert::Infallible>(store, key, |current| {
        let b = Buckets::parse(current).drained(now_ms, limits);
        let requests = if limits.requests.is_some() { b.requests.saturating_sub(returned_requests.saturating_mul(MINUTE_MS)) } else { 0 };
        let tokens = match limits.tokens {
            None => 0,
            Some(_) if used >= reserved => b.tokens.saturating_add((used - reserved).saturating_mul(MINUTE_MS)),
            Some(_) => b.tokens.saturating_sub((reserved - used).saturating_mul(MINUTE_MS)),
        };
        Ok(Buckets { at_ms: b.at_ms, requests, tokens }.encode())
    })?;
    written.map_err(|never| match never {})
}

/// A duration as OpenAI's `x-ratelimit-reset-*` headers write it: `20ms`, `1.5s`, `6m0s`.
pub fn format_reset(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (minutes, ms) = (ms / MINUTE_MS, ms % MINUTE_MS);
    let seconds = match (ms / 1000, ms % 1000) {
        (s, 0) => format!("{s}"),
        (s, frac) => format!("{s}.{frac:03}").trim_end_matches('0').to_owned(),
    };
    if minutes == 0 { format!("{seconds}s") } else { format!("{minutes}m{seconds}s") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    const RPM3: RateLimits = RateLimits { requests: Some(3), tokens: None };

    fn admitted(store: &MemoryStore, now: u64, limits: &RateLimits, tokens: u64) -> Result<Standings, Exceeded> {
        admit(store, "rl", now, limits, tokens).unwrap()
    }

    #[test]
    fn the_limit_admits_exactly_that_many_requests_in_a_burst() {
        let store = MemoryStore::default();
        let remaining: Vec<u64> = (0..3).map(|_| admitted(&store, 1000, &RPM3, 0).unwrap().requests.unwrap().remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let e = admitted(&store, 1000, &RPM3, 0).unwrap_err();
        assert_eq!((e.dimension, e.limit, e.used, e.requested), (Dimension::Requests, 3, 3, 1));
        // One request drains every 20 s.
        assert_eq!(e.retry_after_ms, Some(20_000));
    }

    #[test]
    fn the_bucket_drains_at_the_limit_per_minute() {
        let store = MemoryStore::default();
        for _ in 0..3 {
            admitted(&store, 0, &RPM3, 0).unwrap();
        }
        assert_eq!(admitted(&store, 19_999, &RPM3, 0).unwrap_err().retry_after_ms, Some(1));
        let s = admitted(&store, 20_000, &RPM3, 0).unwrap().requests.unwrap();
        assert_eq!((s.remaining, s.reset_ms), (0, 60_000));
        // A minute of quiet empties it whatever it held.
        let s = admitted(&store, 200_000, &RPM3, 0).unwrap().requests.unwrap();
        assert_eq!((s.remaining, s.reset_ms), (2, 20_000));
    }

    #[test]
    fn tokens_are_reserved_then_corrected_to_what_was_used() {
        let limits = RateLimits { requests: None, tokens: Some(1000) };
        let store = MemoryStore::default();
        let s = admitted(&store, 0, &limits, 600).unwrap();
        assert_eq!(s.tokens.unwrap().remaining, 400);
        assert_eq!(s.requests, None);
        let e = admitted(&store, 0, &limits, 600).unwrap_err();
        assert_eq!((e.dimension, e.used, e.requested), (Dimension::Tokens, 600, 600));
        // 200 tokens must drain, at 1000 a minute: 12 s.
        assert_eq!(e.retry_after_ms, Some(12_000));
        correct(&store, "rl", 0, &limits, 0, (600, 100)).unwrap();
        assert_eq!(admitted(&store, 0, &limits, 600).unwrap().tokens.unwrap().remaining, 300);
        // More than reserved: added past the limit, and later requests wait for it.
        correct(&store, "rl", 0, &limits, 0, (600, 1500)).unwrap();
        let e = admitted(&store, 0, &limits, 1).unwrap_err();
        assert_eq!(e.used, 1600);
        assert_eq!(e.retry_after_ms, Some(36_060));
    }

    #[test]
    fn a_request_larger_than_the_limit_never_fits() {
        let limits = RateLimits { requests: Some(10), tokens: Some(100) };
        let store = MemoryStore::default();
        let e = admitted(&store, 0, &limits, 101).unwrap_err();
        assert_eq!((e.dimension, e.retry_after_ms), (Dimension::Tokens, None));
        // Nothing was written for the refused request.
        assert_eq!(admitted(&store, 0, &limits, 100).unwrap().requests.unwrap().remaining, 9);
    }

    #[test]
    fn a_returned_request_is_admissible_again() {
        let store = MemoryStore::default();
        for _ in 0..3 {
            admitted(&store, 0, &RPM3, 0).unwrap();
        }
        correct(&store, "rl", 0, &RPM3, 1, (0, 0)).unwrap();
        assert_eq!(admitted(&store, 0, &RPM3, 0).unwrap().requests.unwrap().remaining, 0);
        assert!(admitted(&store, 0, &RPM3, 0).is_err());
    }

    #[test]
    fn concurrent_workers_never_admit_past_the_limit() {
        let store = MemoryStore::default();
        admitted(&store, 0, &RPM3, 0).unwrap();
        admitted(&store, 0, &RPM3, 0).unwrap();
        // Another worker takes the last slot between this one's read and write.
        store.interleave(|s| {
            admit(s, "rl", 0, &RPM3, 0).unwrap().unwrap();
        });
        assert!(admitted(&store, 0, &RPM3, 0).is_err(), "the retry saw the competing admission");
    }

    #[test]
    fn a_clock_going_back_drains_nothing() {
        let store = MemoryStore::default();
        for _ in 0..3 {
            admitted(&store, 50_000, &RPM3, 0).unwrap();
        }
        assert!(admitted(&store, 10_000, &RPM3, 0).is_err());
    }

    #[test]
    fn the_tighter_standing_has_less_remaining() {
        let a = Standing { limit: 10, remaining: 5, reset_ms: 1 };
        let b = Standing { limit: 100, remaining: 4, reset_ms: 2 };
        assert_eq!(tighter(Some(a), Some(b)), Some(b));
        assert_eq!(tighter(Some(a), None), Some(a));
        assert_eq!(tighter(None, Some(b)), Some(b));
    }

    #[test]
    fn resets_are_written_as_openai_does() {
        let cases = [
            (0, "0ms"),
            (20, "20ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1_234, "1.234s"),
            (59_990, "59.99s"),
            (360_000, "6m0s"),
            (61_500, "1m1.5s"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_reset(ms), text, "{ms} ms");
        }
    }
}
