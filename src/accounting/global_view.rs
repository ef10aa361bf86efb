//! Global mode's view of the shared counters: what the rate-limit service holds for this
//! gateway's scopes, for the usage API and the global budget gauges.
//!
//! Tollgate asks the service itself (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
//! with each scope's charge descriptors — the ones the example's route charges at stream end,
//! `(key, alice), (charge, usd)` and so on — each with a `hits_addend` of 0, a check that counts
//! nothing (envoyproxy/ratelimit's `utils.GetHitsAddends`), and reads each `DescriptorStatus`:
//! the limit (`current_limit.requests_per_unit`) less what remains (`limit_remaining`) is what
//! the counter holds, in the counter's units. The service clamps `limit_remaining` at 0, so a
//! counter past its limit reads as the limit, "at least".
//!
//! The call is gRPC over HTTP/2 made with the shells' ordinary HTTP callout (a gRPC request is an
//! HTTP/2 POST whose body is a length-prefixed protobuf message), so both shells can make it.
//! The few protobuf fields are written and read here from their field numbers
//! (api/envoy/service/ratelimit/v3/rls.proto, api/envoy/extensions/common/ratelimit/v3/ratelimit.proto).

use super::budget::BudgetLevel;
use super::global::GlobalCharges;
use super::money::{Pico, format_usd};
use crate::host::{SharedStore, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

/// The service's method, as the HTTP/2 path of a gRPC call.
pub const METHOD_PATH: &str = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit";

/// Shared-data key holding when this Envoy's next gauge refresh is due: one VM claims each.
const REFRESH_KEY: &str = "tollgate.global_view.next_refresh_ms";

/// Where the rate-limit service is and how to read it (`rate_limits.global_view`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalView {
    /// The Envoy cluster that reaches the service (HTTP/2).
    pub cluster: String,
    /// The rate-limit filter's `domain`.
    pub domain: String,
    pub timeout_ms: u64,
    /// How often the global budget gauges are refreshed.
    pub refresh_ms: u64,
    /// The money unit of the dollar counters.
    pub charges: GlobalCharges,
}

/// Which of a scope's counters (the descriptor's `charge` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Charge {
    Tokens,
    Usd,
    UsdMonth,
}

impl Charge {
    pub const ALL: [Charge; 3] = [Charge::Tokens, Charge::Usd, Charge::UsdMonth];

    fn value(self) -> &'static str {
        match self {
            Charge::Tokens => "tokens",
            Charge::Usd => "usd",
            Charge::UsdMonth => "usd_month",
        }
    }

    /// The budget period a dollar counter stands for (the example's `usd` is the daily budget).
    fn period(self) -> Option<&'static str> {
        match self {
            Charge::Tokens => None,
            Charge::Usd => Some("daily"),
            Charge::UsdMonth => Some("monthly"),
        }
    }
}

/// One counter of the service: a scope's charge descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter<'a> {
    /// Tollgate's scope kind (`global`, `key`, `team`, `model`).
    pub kind: &'static str,
    pub name: &'a str,
    pub charge: Charge,
}

impl Counter<'_> {
    /// The descriptor's entries, as the example's rate-limit actions name them; `None` for a
    /// kind no descriptor names (providers).
    fn entries(&self) -> Option<[(&str, &str); 2]> {
        let scope = match self.kind {
            "global" => ("gateway", "all"),
            "key" => ("key", self.name),
            "team" => ("team", self.name),
            "model" => ("model", self.name),
            _ => return None,
        };
        Some([scope, ("charge", self.charge.value())])
    }
}

/// The counters of these scopes (`(kind, name)`) that a descriptor names, each charge of each.
pub fn counters<'a>(scopes: impl IntoIterator<Item = (&'static str, &'a str)>, charges: &[Charge]) -> Vec<Counter<'a>> {
    let mut out = Vec::new();
    for (kind, name) in scopes {
        for &charge in charges {
            let counter = Counter { kind, name, charge };
            if counter.entries().is_some() {
                out.push(counter);
            }
        }
    }
    out
}

/// The HTTP/2 headers and body of the check for `counters`.
pub fn request<'a>(view: &'a GlobalView, counters: &[Counter]) -> ([(&'static str, &'a str); 5], Vec<u8>) {
    let headers = [
        (":method", "POST"),
        (":path", METHOD_PATH),
        (":authority", view.cluster.as_str()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    (headers, frame(&request_message(&view.domain, counters)))
}

/// `RateLimitRequest`: `domain` (1), a `RateLimitDescriptor` (2) per counter with its entries
/// (1: `key` 1, `value` 2) and `hits_addend` (3, a `UInt64Value` holding 0: an empty message).
/// The request's own `hits_addend` is left unset.
fn request_message(domain: &str, counters: &[Counter]) -> Vec<u8> {
    let mut message = Vec::new();
    put_bytes(&mut message, 1, domain.as_bytes());
    for entries in counters.iter().filter_map(Counter::entries) {
        let mut descriptor = Vec::new();
        for (key, value) in entries {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, key.as_bytes());
            put_bytes(&mut entry, 2, value.as_bytes());
            put_bytes(&mut descriptor, 1, &entry);
        }
        put_bytes(&mut descriptor, 3, &[]);
        put_bytes(&mut message, 2, &descriptor);
    }
    message
}

/// A gRPC message on the wire: uncompressed (0), its length (big-endian u32), the message.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A protobuf field's value: a varint, or the bytes of a length-delimited field (fixed-width
/// fields are skipped: none of those read here has one).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order; an error for malformed input.
struct Fields<'a> {
    rest: &'a [u8],
}

fn varint(data: &mut &[u8]) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or("truncated varint")?;
        *data = rest;
        n |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("varint too long".to_owned())
}

fn take<'a>(data: &mut &'a [u8], n: u64) -> Result<&'a [u8], String> {
    let n = usize::try_from(n).map_err(|_| "field too long")?;
    if n > data.len() {
        return Err("truncated field".to_owned());
    }
    let (value, rest) = data.split_at(n);
    *data = rest;
    Ok(value)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let mut field = || {
            let tag = varint(&mut self.rest)?;
            let value = match tag & 7 {
                0 => Value::Varint(varint(&mut self.rest)?),
                1 => take(&mut self.rest, 8).map(|_| Value::Fixed)?,
                2 => {
                    let size = varint(&mut self.rest)?;
                    Value::Bytes(take(&mut self.rest, size)?)
                }
                5 => take(&mut self.rest, 4).map(|_| Value::Fixed)?,
                wire => return Err(format!("unsupported wire type {wire}")),
            };
            Ok((tag >> 3, value))
        };
        let result = field();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

fn fields(data: &[u8]) -> Fields<'_> {
    Fields { rest: data }
}

/// What the service said about one descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// `current_limit.requests_per_unit`; `None` when the service has no limit for it (it then
    /// keeps no counter either).
    pub limit: Option<u32>,
    /// `current_limit.unit`.
    pub unit: u64,
    /// `limit_remaining`.
    pub remaining: u32,
    /// `duration_until_reset.seconds`.
    pub resets_in_seconds: Option<u64>,
}

/// `DescriptorStatus`: `current_limit` (2: `requests_per_unit` 1, `unit` 2), `limit_remaining`
/// (3), `duration_until_reset` (4: `seconds` 1).
fn status(data: &[u8]) -> Result<Status, String> {
    let mut status = Status::default();
    for field in fields(data) {
        match field? {
            (2, Value::Bytes(limit)) => {
                for inner in fields(limit) {
                    match inner? {
                        (1, Value::Varint(n)) => status.limit = Some(u32::try_from(n).unwrap_or(u32::MAX)),
                        (2, Value::Varint(unit)) => status.unit = unit,
                        _ => {}
                    }
                }
                // A limit of 0 is written as no field at all.
                status.limit.get_or_insert(0);
            }
            (3, Value::Varint(n)) => status.remaining = u32::try_from(n).unwrap_or(u32::MAX),
            (4, Value::Bytes(duration)) => {
                status.resets_in_seconds = Some(0);
                for inner in fields(duration) {
                    if let (1, Value::Varint(seconds)) = inner? {
                        status.resets_in_seconds = Some(seconds);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(status)
}

/// The statuses of a call's answer (`status`: the HTTP status, `None` when there was no answer),
/// one per counter asked about, or why there are none.
pub fn parse_answer(status: Option<u16>, body: &[u8], asked: usize) -> Result<Vec<Status>, String> {
    match status {
        None => return Err("the rate-limit service did not answer in time or could not be reached".to_owned()),
        Some(200) => {}
        Some(other) => return Err(format!("the rate-limit service answered HTTP {other}")),
    }
    // A gRPC error (the service failed, e.g. its Redis is down) comes without a message.
    let (&compressed, rest) = body.split_first().ok_or("the rate-limit service answered with an error (no message)")?;
    if compressed != 0 {
        return Err("the rate-limit service answered a compressed message".to_owned());
    }
    let (length, message) = rest.split_at_checked(4).ok_or("truncated gRPC message")?;
    let length: [u8; 4] = length.try_into().map_err(|_| "truncated gRPC message")?;
    let message = message.get(..u32::from_be_bytes(length) as usize).ok_or("truncated gRPC message")?;
    let mut statuses = Vec::with_capacity(asked);
    for field in fields(message) {
        if let (2, Value::Bytes(s)) = field? {
            statuses.push(self::status(s)?);
        }
    }
    if statuses.len() != asked {
        return Err(format!("the rate-limit service answered {} statuses for {asked} descriptors", statuses.len()));
    }
    Ok(statuses)
}

/// `current_limit.unit` as a window's name.
fn window(unit: u64) -> &'static str {
    match unit {
        1 => "second",
        2 => "minute",
        3 => "hour",
        4 => "day",
        5 => "month",
        6 => "year",
        _ => "unknown",
    }
}

/// One counter as the service holds it, in its own units (tokens or money units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub limit: u64,
    /// The limit less what remains: what the counter holds, or at least that when `exhausted`.
    pub spent: u64,
    pub remaining: u64,
    /// Nothing remains: the counter is at least its limit (the service does not say how far over).
    pub exhausted: bool,
}

impl Level {
    fn of(status: &Status) -> Option<Level> {
        let limit = u64::from(status.limit?);
        let remaining = u64::from(status.remaining).min(limit);
        Some(Level { limit, spent: limit - remaining, remaining, exhausted: remaining == 0 })
    }
}

/// The usage API's `global` section.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report<'a> {
    /// The rate-limit service's cluster.
    pub service: &'a str,
    /// The service answered.
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Scope group (`global`, `keys`, `teams`, `models`) → name → charge → counter; only the
    /// counters the service has a limit for.
    pub scopes: BTreeMap<&'static str, BTreeMap<&'a str, BTreeMap<&'static str, CounterReport>>>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CounterReport {
    /// The service's window (`day`, `month` — envoyproxy/ratelimit's is 30 days — `minute`, …).
    pub window: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_tokens: Option<u64>,
    /// Nothing remains: spent is at least the limit.
    pub exhausted: bool,
}

fn group(kind: &str) -> &'static str {
    match kind {
        "global" => "global",
        "key" => "keys",
        "team" => "teams",
        _ => "models",
    }
}

impl GlobalView {
    /// Money units as pico-dollars.
    fn pico(&self, units: u64) -> Pico {
        Pico::from(units).saturating_mul(self.charges.cost_unit)
    }

    /// The usage API's `global` section from the answer to the check of `counters`.
    pub fn report<'a>(&'a self, counters: &[Counter<'a>], answer: Result<Vec<Status>, String>) -> Report<'a> {
        let mut report = Report { service: &self.cluster, available: answer.is_ok(), error: None, scopes: BTreeMap::new() };
        let statuses = match answer {
            Ok(s) => s,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
        for (counter, status) in counters.iter().zip(&statuses) {
            let Some(level) = Level::of(status) else { continue };
            let usd = |units: u64| (counter.charge != Charge::Tokens).then(|| format_usd(self.pico(units)));
            let tokens = |n: u64| (counter.charge == Charge::Tokens).then_some(n);
            let entry = CounterReport {
                window: window(status.unit),
                resets_in_seconds: status.resets_in_seconds,
                limit_usd: usd(level.limit),
                spent_usd: usd(level.spent),
                remaining_usd: usd(level.remaining),
                limit_tokens: tokens(level.limit),
                spent_tokens: tokens(level.spent),
                remaining_tokens: tokens(level.remaining),
                exhausted: level.exhausted,
            };
            report.scopes.entry(group(counter.kind)).or_default().entry(counter.name).or_default().insert(counter.charge.value(), entry);
        }
        report
    }

    /// The levels of the dollar counters the service has a limit for, for the global budget
    /// gauges (`usd` is the daily budget, `usd_month` the monthly one).
    pub fn budget_levels<'a>(&self, counters: &[Counter<'a>], statuses: &[Status]) -> Vec<BudgetLevel<'a>> {
        let mut out = Vec::new();
        for (counter, status) in counters.iter().zip(statuses) {
            let (Some(period), Some(level)) = (counter.charge.period(), Level::of(status)) else { continue };
            out.push(BudgetLevel {
                kind: counter.kind,
                name: counter.name,
                period,
                limit: self.pico(level.limit),
                spent: self.pico(level.spent),
                remaining: self.pico(level.remaining),
            });
        }
        out
    }

    /// Whether this VM refreshes the gauges now: at most one VM of the Envoy per `refresh_ms`
    /// (the first to move the shared due time on wins; the others see it moved).
    pub fn claim_refresh(&self, store: &dyn SharedStore, now_ms: u64) -> bool {
        let due = store.get(REFRESH_KEY);
        let at = due.as_ref().and_then(|(v, _)| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_le_bytes);
        if now_ms < at {
            return false;
        }
        let next = now_ms.saturating_add(self.refresh_ms).to_le_bytes();
        match store.put(REFRESH_KEY, &next, due.map(|(_, cas)| cas)) {
            Ok(()) => true,
            Err(StoreError::CasMismatch | StoreError::Unavailable) => false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    fn view() -> GlobalView {
        GlobalView {
            cluster: "ratelimit".into(),
            domain: "tollgate".into(),
            timeout_ms: 100,
            refresh_ms: 10_000,
            charges: GlobalCharges::default(),
        }
    }

    /// A `DescriptorStatus` as a service writes it.
    pub(crate) fn status_bytes(limit: Option<(u64, u64)>, remaining: u64, reset: Option<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, 1 << 3);
        put_varint(&mut out, 1);
        if let Some((per_unit, unit)) = limit {
            let mut current = Vec::new();
            for (field, n) in [(1u64, per_unit), (2, unit)] {
                put_varint(&mut current, field << 3);
                put_varint(&mut current, n);
            }
            put_bytes(&mut out, 2, &current);
        }
        put_varint(&mut out, 3 << 3);
        put_varint(&mut out, remaining);
        if let Some(seconds) = reset {
            let mut duration = Vec::new();
            put_varint(&mut duration, 1 << 3);
            put_varint(&mut duration, seconds);
            put_bytes(&mut out, 4, &duration);
        }
        out
    }

    /// A `RateLimitResponse` with these statuses, in a gRPC frame.
    pub(crate) fn answer(statuses: &[Vec<u8>]) -> Vec<u8> {
        let mut message = Vec::new();
        put_varint(&mut message, 1 << 3);
        put_varint(&mut message, 1);
        for s in statuses {
            put_bytes(&mut message, 2, s);
        }
        frame(&message)
    }

    #[test]
    fn names_each_scopes_charge_descriptors_and_skips_providers() {
        let got = counters([("global", "all"), ("key", "alice"), ("provider", "openai")], &[Charge::Usd]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].entries(), Some([("gateway", "all"), ("charge", "usd")]));
        assert_eq!(got[1].entries(), Some([("key", "alice"), ("charge", "usd")]));
        let team = Counter { kind: "team", name: "research", charge: Charge::UsdMonth };
        assert_eq!(team.entries(), Some([("team", "research"), ("charge", "usd_month")]));
        let model = Counter { kind: "model", name: "gpt-4o", charge: Charge::Tokens };
        assert_eq!(model.entries(), Some([("model", "gpt-4o"), ("charge", "tokens")]));
    }

    #[test]
    fn writes_a_check_that_counts_nothing_in_a_grpc_frame() {
        let v = view();
        let (headers, body) = request(&v, &counters([("key", "alice")], &[Charge::Usd]));
        assert!(headers.contains(&(":path", METHOD_PATH)) && headers.contains(&("content-type", "application/grpc")));
        assert_eq!(headers.iter().find(|(k, _)| *k == ":authority"), Some(&(":authority", "ratelimit")));
        let entry = |k: &str, v: &str| {
            let mut e = vec![0x0A, k.len() as u8];
            e.extend_from_slice(k.as_bytes());
            e.extend_from_slice(&[0x12, v.len() as u8]);
            e.extend_from_slice(v.as_bytes());
            e
        };
        // descriptor: entries (1) ×2, then hits_addend (3) = UInt64Value{} (0: a check).
        let mut descriptor = Vec::new();
        for e in [entry("key", "alice"), entry("charge", "usd")] {
            descriptor.push(0x0A);
            descriptor.push(e.len() as u8);
            descriptor.extend(e);
        }
        descriptor.extend_from_slice(&[0x1A, 0x00]);
        let mut message = vec![0x0A, 8];
        message.extend_from_slice(b"tollgate");
        message.push(0x12);
        message.push(descriptor.len() as u8);
        message.extend(descriptor);
        // No request-level hits_addend (field 3 of the request) is written.
        let mut expected = vec![0, 0, 0, 0, message.len() as u8];
        expected.extend(message);
        assert_eq!(body, expected);
    }

    #[test]
    fn reads_each_descriptors_limit_remaining_and_reset() {
        let body = answer(&[status_bytes(Some((1_500_000, 4)), 250_000, Some(3600)), status_bytes(None, 0, None)]);
        let statuses = parse_answer(Some(200), &body, 2).unwrap();
        assert_eq!(statuses[0], Status { limit: Some(1_500_000), unit: 4, remaining: 250_000, resets_in_seconds: Some(3600) });
        assert_eq!(statuses[1].limit, None, "no limit: the service keeps no counter");
        assert_eq!(Level::of(&statuses[0]), Some(Level { limit: 1_500_000, spent: 1_250_000, remaining: 250_000, exhausted: false }));
        assert_eq!(Level::of(&statuses[1]), None);
    }

    #[test]
    fn a_counter_with_nothing_left_is_at_least_its_limit() {
        let exhausted = Status { limit: Some(10), unit: 2, remaining: 0, resets_in_seconds: None };
        assert_eq!(Level::of(&exhausted), Some(Level { limit: 10, spent: 10, remaining: 0, exhausted: true }));
        let nonsense = Status { limit: Some(10), unit: 2, remaining: 20, resets_in_seconds: None };
        assert_eq!(Level::of(&nonsense).map(|l| l.spent), Some(0), "never negative");
    }

    #[test]
    fn failures_are_reasons_not_statuses() {
        assert!(parse_answer(None, b"", 1).unwrap_err().contains("did not answer"));
        assert!(parse_answer(Some(503), b"", 1).unwrap_err().contains("503"));
        assert!(parse_answer(Some(200), b"", 1).unwrap_err().contains("error"), "a gRPC error has no message");
        assert!(parse_answer(Some(200), &[1, 0, 0, 0, 0], 1).unwrap_err().contains("compressed"));
        assert!(parse_answer(Some(200), &[0, 0, 0, 0, 9, 1], 1).is_err(), "truncated");
        let one = answer(&[status_bytes(Some((5, 2)), 5, None)]);
        assert!(parse_answer(Some(200), &one, 2).unwrap_err().contains("1 statuses for 2"));
        // Malformed protobuf inside a well-formed frame.
        assert!(parse_answer(Some(200), &frame(&[0x12, 0x05, 0x08]), 1).is_err());
        assert!(parse_answer(Some(200), &frame(&[0x0F]), 1).is_err(), "wire type 7");
        assert!(parse_answer(Some(200), &frame(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), 0).is_err());
    }

    #[test]
    fn reports_dollars_in_usd_and_tokens_as_counts() {
        let v = view();
        let scopes = counters([("key", "alice"), ("model", "gpt-4o")], &Charge::ALL);
        let mut statuses = vec![Status::default(); scopes.len()];
        statuses[0] = Status { limit: Some(100), unit: 2, remaining: 40, resets_in_seconds: Some(30) }; // alice tokens
        statuses[1] = Status { limit: Some(1_500_000), unit: 4, remaining: 0, resets_in_seconds: Some(600) }; // alice usd
        let report = v.report(&scopes, Ok(statuses.clone()));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["available"], true);
        let alice = &json["scopes"]["keys"]["alice"];
        assert_eq!(
            alice["tokens"],
            serde_json::json!({"window": "minute", "resets_in_seconds": 30, "limit_tokens": 100,
                   "spent_tokens": 60, "remaining_tokens": 40, "exhausted": false})
        );
        assert_eq!(
            alice["usd"],
            serde_json::json!({"window": "day", "resets_in_seconds": 600, "limit_usd": "1.5",
                   "spent_usd": "1.5", "remaining_usd": "0", "exhausted": true})
        );
        assert!(alice.get("usd_month").is_none() && json["scopes"].get("models").is_none(), "counters without a limit are left out");
        let levels = v.budget_levels(&scopes, &statuses);
        assert_eq!(levels.len(), 1, "dollar counters only");
        assert_eq!((levels[0].period, levels[0].limit, levels[0].spent), ("daily", 1_500_000 * 1_000_000, 1_500_000 * 1_000_000));
    }

    #[test]
    fn an_unreachable_service_is_said_so() {
        let v = view();
        let json = serde_json::to_value(v.report(&[], Err("down".into()))).unwrap();
        assert_eq!(json, serde_json::json!({"service": "ratelimit", "available": false, "error": "down", "scopes": {}}));
    }

    #[test]
    fn one_vm_refreshes_per_period() {
        let (v, store) = (view(), MemoryStore::default());
        assert!(v.claim_refresh(&store, 1_000));
        assert!(!v.claim_refresh(&store, 1_000), "another VM in the same period");
        assert!(!v.claim_refresh(&store, 10_999));
        assert!(v.claim_refresh(&store, 11_000));
    }
}
