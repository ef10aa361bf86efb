//! Per-target health in shared data, updated with CAS by every worker: a circuit breaker
//! (closed → open after consecutive failures or a high error rate → half-open after the
//! cool-down, letting exactly one probe through), rate-limit windows from `retry-after`, and
//! latency averages for the least-latency strategy. This complements Envoy's outlier detection,
//! which works per endpoint rather than per provider model.

use crate::clock;
use crate::host::{self, SharedStore, StoreError};
use crate::schema::BreakerSpec;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum State {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    pub state: State,
    pub consecutive_failures: u32,
    pub window_start_ms: u64,
    pub window_requests: u32,
    pub window_failures: u32,
    pub open_until_ms: u64,
    pub probe_started_ms: u64,
    /// Rate-limited by the provider until then.
    pub unavailable_until_ms: u64,
    /// Exponentially weighted averages (µs): whole response, and time to first byte of streams.
    pub latency_us: u64,
    pub ttfb_us: u64,
    pub samples: u32,
    pub last_sample_ms: u64,
}

const LEN: usize = 1 + 4 * 4 + 8 * 7;

impl Health {
    pub fn decode(b: &[u8]) -> Health {
        if b.len() != LEN {
            return Health::default();
        }
        let u32_at = |i: usize| b.get(i..i + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes);
        let u64_at = |i: usize| b.get(i..i + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes);
        Health {
            state: match b.first() {
                Some(1) => State::Open,
                Some(2) => State::HalfOpen,
                _ => State::Closed,
            },
            consecutive_failures: u32_at(1),
            window_requests: u32_at(5),
            window_failures: u32_at(9),
            samples: u32_at(13),
            window_start_ms: u64_at(17),
            open_until_ms: u64_at(25),
            probe_started_ms: u64_at(33),
            unavailable_until_ms: u64_at(41),
            latency_us: u64_at(49),
            ttfb_us: u64_at(57),
            last_sample_ms: u64_at(65),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.push(match self.state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        });
        for v in [self.consecutive_failures, self.window_requests, self.window_failures, self.samples] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.window_start_ms,
            self.open_until_ms,
            self.probe_started_ms,
            self.unavailable_until_ms,
            self.latency_us,
            self.ttfb_us,
            self.last_sample_ms,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// Breaker settings in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Breaker {
    pub consecutive_failures: u32,
    pub error_rate_percent: Option<u32>,
    pub min_requests: u32,
    pub window_ms: u64,
    pub cooldown_ms: u64,
}

impl From<&BreakerSpec> for Breaker {
    fn from(s: &BreakerSpec) -> Self {
        Breaker {
            consecutive_failures: s.consecutive_failures.max(1),
            error_rate_percent: s.error_rate_percent,
            min_requests: s.min_requests.max(1),
            window_ms: s.window_seconds.max(1) * 1000,
            cooldown_ms: s.cooldown_seconds.max(1) * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Cool-down over: one request may probe (see [`claim_probe`]).
    Probe,
    Unavailable(&'static str),
}

impl Health {
    pub fn availability(&self, now_ms: u64, b: &Breaker) -> Availability {
        if now_ms < self.unavailable_until_ms {
            return Availability::Unavailable("rate_limited");
        }
        match self.state {
            State::Closed => Availability::Available,
            State::Open if now_ms < self.open_until_ms => Availability::Unavailable("circuit_open"),
            State::Open => Availability::Probe,
            // A probe that never reported back (its request vanished) is given up after a cool-down.
            State::HalfOpen if now_ms >= self.probe_started_ms + b.cooldown_ms => Availability::Probe,
            State::HalfOpen => Availability::Unavailable("circuit_half_open"),
        }
    }
}

pub fn read(store: &dyn SharedStore, key: &str) -> Health {
    store.get(key).map(|(v, _)| Health::decode(&v)).unwrap_or_default()
}

/// Takes the single half-open probe slot; false when another request took it first.
pub fn claim_probe(store: &dyn SharedStore, key: &str, now_ms: u64, b: &Breaker) -> bool {
    let result = host::update(store, key, |current| {
        let mut h = current.map(Health::decode).unwrap_or_default();
        if h.availability(now_ms, b) != Availability::Probe {
            return Err(());
        }
        h.state = State::HalfOpen;
        h.probe_started_ms = now_ms;
        Ok(h.encode())
    });
    matches!(result, Ok(Ok(())))
}

/// How one attempt at a target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Success {
        latency_us: u64,
        ttfb_us: Option<u64>,
    },
    /// 5xx, connection failure, reset, timeout, or a cut stream.
    Failure,
    /// 429: unavailable until the given time (from `retry-after` and friends) or one second.
    RateLimited {
        until_ms: Option<u64>,
    },
}

/// What an update did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

fn ewma(current: u64, sample: u64, first: bool) -> u64 {
    if first { sample } else { (current * 7 + sample * 3) / 10 }
}

pub fn record(store: &dyn SharedStore, key: &str, now_ms: u64, b: &Breaker, attempt: Attempt) -> Result<Transition, StoreError> {
    let mut transition = Transition::None;
    host::update::<()>(store, key, |current| {
        let mut h = current.map(Health::decode).unwrap_or_default();
        transition = apply(&mut h, now_ms, b, attempt);
        Ok(h.encode())
    })?
    .map_err(|()| StoreError::Unavailable)?;
    Ok(transition)
}

fn apply(h: &mut Health, now_ms: u64, b: &Breaker, attempt: Attempt) -> Transition {
    if now_ms >= h.window_start_ms + b.window_ms {
        h.window_start_ms = now_ms;
        h.window_requests = 0;
        h.window_failures = 0;
    }
    h.window_requests += 1;
    match attempt {
        Attempt::Success { latency_us, ttfb_us } => {
            let first = h.samples == 0;
            h.latency_us = ewma(h.latency_us, latency_us, first || h.latency_us == 0);
            if let Some(t) = ttfb_us {
                h.ttfb_us = ewma(h.ttfb_us, t, h.ttfb_us == 0);
            }
            h.samples = h.samples.saturating_add(1);
            h.last_sample_ms = now_ms;
            h.consecutive_failures = 0;
            let was_open = h.state != State::Closed;
            h.state = State::Closed;
            if was_open { Transition::Closed } else { Transition::None }
        }
        Attempt::RateLimited { until_ms } => {
            h.unavailable_until_ms = h.unavailable_until_ms.max(until_ms.unwrap_or(now_ms + 1000));
            Transition::None
        }
        Attempt::Failure => {
            h.window_failures += 1;
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            let rate_tripped = b
                .error_rate_percent
                .is_some_and(|p| h.window_requests >= b.min_requests && h.window_failures * 100 >= h.window_requests * p);
            let trip = h.state == State::HalfOpen || h.consecutive_failures >= b.consecutive_failures || rate_tripped;
            if trip && h.state != State::Open {
                h.state = State::Open;
                h.open_until_ms = now_ms + b.cooldown_ms;
                return Transition::Opened;
            }
            if trip {
                h.open_until_ms = now_ms + b.cooldown_ms;
            }
            Transition::None
        }
    }
}

/// When a rate-limited provider says it takes requests again: `retry-after` (seconds or an
/// HTTP-date), else the latest of OpenAI's `x-ratelimit-reset-*` durations and Anthropic's
/// `anthropic-ratelimit-*-reset` timestamps. Capped at an hour; numbers too large for a `u64`
/// saturate (then meet the cap), anything else unreadable (negative, fractional) is ignored.
#[deny(clippy::arithmetic_side_effects)]
pub fn rate_limited_until(now_ms: u64, header: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    const CAP_MS: u64 = 3_600_000;
    let until = if let Some(v) = header("retry-after") {
        // delay-seconds are plain digits (RFC 9110 §10.2.3).
        let v = v.trim();
        clock::saturating_number(v).map(|s| now_ms.saturating_add(s.saturating_mul(1000))).or_else(|| clock::parse_http_date(v))
    } else {
        let durations = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
            .iter()
            .filter_map(|h| header(h).and_then(|v| clock::parse_duration_ms(&v)).map(|d| now_ms.saturating_add(d)));
        let stamps = [
            "anthropic-ratelimit-requests-reset",
            "anthropic-ratelimit-tokens-reset",
            "anthropic-ratelimit-input-tokens-reset",
            "anthropic-ratelimit-output-tokens-reset",
        ]
        .iter()
        .filter_map(|h| header(h).and_then(|v| clock::parse_rfc3339(&v)));
        durations.chain(stamps).max()
    };
    until.map(|u| u.clamp(now_ms, now_ms.saturating_add(CAP_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    const B: Breaker =
        Breaker { consecutive_failures: 3, error_rate_percent: Some(50), min_requests: 10, window_ms: 60_000, cooldown_ms: 30_000 };
    const T0: u64 = 1_000_000;

    #[test]
    fn round_trips_and_garbage_is_healthy() {
        let h = Health {
            state: State::HalfOpen,
            consecutive_failures: 2,
            window_requests: 9,
            open_until_ms: 77,
            latency_us: 1234,
            samples: 5,
            last_sample_ms: 99,
            ..Default::default()
        };
        assert_eq!(Health::decode(&h.encode()), h);
        assert_eq!(Health::decode(b"x"), Health::default());
    }

    #[test]
    fn opens_after_consecutive_failures_then_probes_once_and_recovers() {
        let s = MemoryStore::default();
        let k = "tollgate:health:t";
        for i in 0..2 {
            assert_eq!(record(&s, k, T0 + i, &B, Attempt::Failure).unwrap(), Transition::None);
        }
        assert_eq!(read(&s, k).availability(T0, &B), Availability::Available);
        assert_eq!(record(&s, k, T0 + 2, &B, Attempt::Failure).unwrap(), Transition::Opened);
        assert_eq!(read(&s, k).availability(T0 + 10_000, &B), Availability::Unavailable("circuit_open"));
        // cool-down over: exactly one probe
        let later = T0 + 2 + 30_000;
        assert_eq!(read(&s, k).availability(later, &B), Availability::Probe);
        assert!(claim_probe(&s, k, later, &B));
        assert!(!claim_probe(&s, k, later, &B), "the second request does not get the probe");
        assert_eq!(read(&s, k).availability(later, &B), Availability::Unavailable("circuit_half_open"));
        // the probe succeeds: closed again
        assert_eq!(record(&s, k, later + 5, &B, Attempt::Success { latency_us: 100, ttfb_us: None }).unwrap(), Transition::Closed);
        assert_eq!(read(&s, k).availability(later + 6, &B), Availability::Available);
    }

    #[test]
    fn failed_probe_reopens_and_stale_probe_is_given_up() {
        let s = MemoryStore::default();
        let k = "h";
        for i in 0..3 {
            record(&s, k, T0 + i, &B, Attempt::Failure).unwrap();
        }
        let later = T0 + 40_000;
        assert!(claim_probe(&s, k, later, &B));
        assert_eq!(record(&s, k, later + 1, &B, Attempt::Failure).unwrap(), Transition::Opened);
        assert_eq!(read(&s, k).availability(later + 2, &B), Availability::Unavailable("circuit_open"));
        let again = later + 1 + 30_000;
        assert!(claim_probe(&s, k, again, &B));
        // the probe request never reports: after another cool-down someone may probe again
        assert_eq!(read(&s, k).availability(again + 30_000, &B), Availability::Probe);
    }

    #[test]
    fn error_rate_trips_with_enough_requests() {
        let mut h = Health::default();
        for i in 0..10 {
            let a = if i % 2 == 1 { Attempt::Failure } else { Attempt::Success { latency_us: 1, ttfb_us: None } };
            let t = apply(&mut h, T0 + i, &B, a);
            assert_eq!(t == Transition::Opened, i == 9, "step {i}");
        }
    }

    #[test]
    fn rate_limits_make_a_target_unavailable_until_reset() {
        let mut h = Health::default();
        apply(&mut h, T0, &B, Attempt::RateLimited { until_ms: Some(T0 + 5000) });
        assert_eq!(h.availability(T0 + 4999, &B), Availability::Unavailable("rate_limited"));
        assert_eq!(h.availability(T0 + 5000, &B), Availability::Available);
        assert_eq!(h.consecutive_failures, 0, "rate limits are not failures");
    }

    #[test]
    fn latency_averages() {
        let mut h = Health::default();
        apply(&mut h, T0, &B, Attempt::Success { latency_us: 1000, ttfb_us: Some(100) });
        apply(&mut h, T0, &B, Attempt::Success { latency_us: 2000, ttfb_us: Some(200) });
        assert_eq!((h.latency_us, h.ttfb_us, h.samples), (1300, 130, 2));
    }

    #[test]
    fn retry_after_and_reset_headers() {
        let now = 1_795_521_600_000;
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(rate_limited_until(now, &headers(&[("retry-after", "7")])), Some(now + 7000));
        assert_eq!(rate_limited_until(now, &headers(&[("retry-after", "Tue, 24 Nov 2026 12:00:30 GMT")])), Some(now + 30_000));
        assert_eq!(
            rate_limited_until(now, &headers(&[("x-ratelimit-reset-requests", "2s"), ("x-ratelimit-reset-tokens", "6m0s")])),
            Some(now + 360_000)
        );
        assert_eq!(
            rate_limited_until(now, &headers(&[("anthropic-ratelimit-requests-reset", "2026-11-24T12:00:10Z")])),
            Some(now + 10_000)
        );
        assert_eq!(rate_limited_until(now, &headers(&[("retry-after", "999999")])), Some(now + 3_600_000));
        assert_eq!(rate_limited_until(now, &headers(&[])), None);
    }

    #[test]
    fn huge_and_garbage_rate_limit_headers_saturate_or_are_ignored() {
        let cap = Some(u64::MAX);
        for (name, value) in [
            ("retry-after", "18446744073709551615"),
            ("retry-after", "99999999999999999999999999"),
            ("x-ratelimit-reset-requests", "18446744073709551615h"),
            ("x-ratelimit-reset-tokens", "99999999999999999999h"),
            ("x-ratelimit-reset-tokens", "5124095576030431h59m59.999s"),
        ] {
            let header = |h: &str| (h == name).then(|| value.to_owned());
            assert_eq!(rate_limited_until(1000, &header), Some(1000 + 3_600_000), "{name}: {value}");
            assert_eq!(rate_limited_until(u64::MAX - 5, &header), cap, "{name}: {value} at the end of time");
        }
        for value in [
            "-5",
            "1.5",
            "",
            "1e9",
            "+",
            "Tue, 24 Nov 18446744073709551615 12:00:30 GMT",
            "Tue, 24 Nov 2026 99999999999999999999:00:00 GMT",
        ] {
            let header = |h: &str| (h == "retry-after").then(|| value.to_owned());
            assert_eq!(rate_limited_until(1000, &header), None, "retry-after: {value:?}");
        }
        for value in [
            "18446744073709551615-11-24T12:00:10Z",
            "2026-11-24T12:00:10+18446744073709551615:00",
            "2026-11-24T18446744073709551615:00:10Z",
        ] {
            let header = |h: &str| (h == "anthropic-ratelimit-tokens-reset").then(|| value.to_owned());
            assert_eq!(rate_limited_until(1000, &header), None, "{value:?}");
        }
    }

    #[test]
    fn breaker_settings_are_seconds_turned_into_milliseconds() {
        let spec =
            BreakerSpec { consecutive_failures: 4, error_rate_percent: Some(40), min_requests: 7, window_seconds: 9, cooldown_seconds: 3 };
        let b = Breaker::from(&spec);
        assert_eq!((b.consecutive_failures, b.error_rate_percent, b.min_requests), (4, Some(40), 7));
        assert_eq!((b.window_ms, b.cooldown_ms), (9_000, 3_000));
        let zeros =
            BreakerSpec { consecutive_failures: 0, error_rate_percent: None, min_requests: 0, window_seconds: 0, cooldown_seconds: 0 };
        let b = Breaker::from(&zeros);
        assert_eq!((b.consecutive_failures, b.min_requests, b.window_ms, b.cooldown_ms), (1, 1, 1_000, 1_000));
    }

    #[test]
    fn the_cool_down_ends_exactly_on_time() {
        let mut h = Health::default();
        for i in 0..3 {
            apply(&mut h, T0 + i, &B, Attempt::Failure);
        }
        let opened = T0 + 2;
        assert_eq!(h.open_until_ms, opened + B.cooldown_ms);
        assert_eq!(h.availability(opened + B.cooldown_ms - 1, &B), Availability::Unavailable("circuit_open"));
        assert_eq!(h.availability(opened + B.cooldown_ms, &B), Availability::Probe);
        // a probe that never reports is given up exactly one cool-down after it started
        h.state = State::HalfOpen;
        h.probe_started_ms = opened + B.cooldown_ms;
        assert_eq!(h.availability(h.probe_started_ms + B.cooldown_ms - 1, &B), Availability::Unavailable("circuit_half_open"));
        assert_eq!(h.availability(h.probe_started_ms + B.cooldown_ms, &B), Availability::Probe);
        // a failure while open (a late report) pushes the reopening back from now
        let mut h = Health { state: State::Open, open_until_ms: T0, consecutive_failures: 9, ..Default::default() };
        assert_eq!(apply(&mut h, T0 + 500, &B, Attempt::Failure), Transition::None);
        assert_eq!((h.state, h.open_until_ms), (State::Open, T0 + 500 + B.cooldown_ms));
        // the failed probe reopens for a full cool-down from its report
        let mut h = Health { state: State::HalfOpen, ..Default::default() };
        assert_eq!(apply(&mut h, T0, &B, Attempt::Failure), Transition::Opened, "one failure is enough when half-open");
        assert_eq!((h.state, h.open_until_ms), (State::Open, T0 + B.cooldown_ms));
    }

    #[test]
    fn windows_restart_on_time_and_count_each_attempt() {
        let mut h = Health::default();
        apply(&mut h, T0, &B, Attempt::Failure);
        apply(&mut h, T0 + 1, &B, Attempt::Success { latency_us: 1, ttfb_us: None });
        assert_eq!((h.window_start_ms, h.window_requests, h.window_failures, h.consecutive_failures), (T0, 2, 1, 0));
        apply(&mut h, T0 + B.window_ms - 1, &B, Attempt::Failure);
        assert_eq!((h.window_requests, h.window_failures), (3, 2), "still the same window");
        apply(&mut h, T0 + B.window_ms, &B, Attempt::Failure);
        assert_eq!((h.window_start_ms, h.window_requests, h.window_failures), (T0 + B.window_ms, 1, 1), "a new window");
        assert_eq!(h.consecutive_failures, 2, "consecutive failures span windows");
    }

    #[test]
    fn error_rate_trips_at_exactly_its_percentage_and_not_below_min_requests() {
        let b =
            Breaker { consecutive_failures: 100, error_rate_percent: Some(30), min_requests: 10, window_ms: 60_000, cooldown_ms: 1_000 };
        let run = |failures: u32, requests: u32| {
            let mut h = Health::default();
            let mut last = Transition::None;
            for i in 0..requests {
                let a = if i >= requests - failures { Attempt::Failure } else { Attempt::Success { latency_us: 1, ttfb_us: None } };
                last = apply(&mut h, T0, &b, a);
            }
            (last, h.state)
        };
        assert_eq!(run(3, 10), (Transition::Opened, State::Open), "3 of 10 is 30 %");
        assert_eq!(run(2, 10).1, State::Closed, "20 %");
        assert_eq!(run(3, 9).1, State::Closed, "33 % of too few requests");
        assert_eq!(run(3, 11).1, State::Closed, "27 %");
        let no_rate = Breaker { error_rate_percent: None, ..b };
        let mut h = Health::default();
        for _ in 0..20 {
            apply(&mut h, T0, &no_rate, Attempt::Failure);
        }
        assert_eq!(h.state, State::Closed, "only consecutive failures count without a rate");
    }

    #[test]
    fn rate_limits_default_to_a_second_and_keep_the_latest_reset() {
        let mut h = Health::default();
        assert_eq!(apply(&mut h, T0, &B, Attempt::RateLimited { until_ms: None }), Transition::None);
        assert_eq!(h.unavailable_until_ms, T0 + 1000);
        apply(&mut h, T0, &B, Attempt::RateLimited { until_ms: Some(T0 + 10) });
        assert_eq!(h.unavailable_until_ms, T0 + 1000, "an earlier reset does not shorten it");
        assert_eq!((h.window_requests, h.consecutive_failures, h.state), (2, 0, State::Closed));
        assert_eq!(h.availability(T0 + 999, &B), Availability::Unavailable("rate_limited"));
        // a rate limit hides even an open breaker's own reason
        let open = Health { state: State::Open, open_until_ms: T0 + 5, unavailable_until_ms: T0 + 5, ..Default::default() };
        assert_eq!(open.availability(T0, &B), Availability::Unavailable("rate_limited"));
    }

    #[test]
    fn latency_averages_weigh_the_past_seven_tenths() {
        let mut h = Health::default();
        apply(&mut h, T0, &B, Attempt::Success { latency_us: 1000, ttfb_us: None });
        assert_eq!((h.latency_us, h.ttfb_us, h.samples, h.last_sample_ms), (1000, 0, 1, T0));
        apply(&mut h, T0 + 7, &B, Attempt::Success { latency_us: 2000, ttfb_us: Some(500) });
        assert_eq!((h.latency_us, h.ttfb_us, h.samples, h.last_sample_ms), (1300, 500, 2, T0 + 7), "the first ttfb is taken as is");
        apply(&mut h, T0 + 8, &B, Attempt::Success { latency_us: 300, ttfb_us: Some(100) });
        assert_eq!((h.latency_us, h.ttfb_us), ((1300 * 7 + 300 * 3) / 10, (500 * 7 + 100 * 3) / 10));
        // an average of zero (instant answers so far) restarts from the next sample
        let mut instant = Health { samples: 2, latency_us: 0, ..Default::default() };
        apply(&mut instant, T0, &B, Attempt::Success { latency_us: 1000, ttfb_us: None });
        assert_eq!(instant.latency_us, 1000);
        assert_eq!(ewma(10, 20, true), 20);
        assert_eq!(ewma(10, 20, false), 13);
    }

    #[test]
    fn closing_reports_its_transition_once() {
        let s = MemoryStore::default();
        let ok = Attempt::Success { latency_us: 1, ttfb_us: None };
        assert_eq!(record(&s, "k", T0, &B, ok).unwrap(), Transition::None);
        let mut open = Health { state: State::Open, ..Default::default() };
        assert_eq!(apply(&mut open, T0, &B, ok), Transition::Closed);
        assert_eq!(apply(&mut open, T0, &B, ok), Transition::None);
        for state in [State::Closed, State::Open, State::HalfOpen] {
            let h = Health { state, unavailable_until_ms: 3, probe_started_ms: 4, ttfb_us: 5, window_failures: 6, ..Default::default() };
            assert_eq!(Health::decode(&h.encode()), h, "{state:?}");
        }
        assert_eq!(Health::default().encode().len(), LEN);
        assert_eq!(LEN, 73);
    }
}
