//! Usage counters in shared data: one record per scope (global, provider, model, key, team)
//! holding today's and this month's totals (UTC) plus the cost currently reserved by requests in
//! flight. Every change is a CAS read-modify-write, so counters stay exact across workers.

use super::money::Pico;
use crate::clock::{MS_PER_DAY, civil_from_days};
use crate::host::{self, SharedStore, StoreError};
use crate::usage::Usage;

const VERSION: u8 = 2;
const TOTALS_LEN: usize = 8 * 8 + 16;
const LEASE_LEN: usize = 8 + 16;
const RECORD_LEN: usize = 1 + 4 + 4 + 2 * TOTALS_LEN + LEASES * LEASE_LEN;
/// Version 1 held one reservation sum (no lifetime) before the totals.
const V1_RECORD_LEN: usize = 1 + 4 + 4 + 16 + 2 * TOTALS_LEN;

/// Reservation slots per record. Reservations expire on a grid of `lifetime / 8`, so at most 9
/// expiry times are alive at once: a record never needs more slots than this, whatever the load.
const LEASES: usize = 10;
const GRID_PER_LIFETIME: u64 = 8;

/// How long a reservation holds budget when it is never settled (its request's VM crashed, a
/// CAS gave up): it stops counting after `ms`, so a leak heals by itself. Reservations made
/// within the same grid interval share one slot that expires at the interval's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub ms: u64,
}

impl Default for Lifetime {
    /// The configuration's default (`limits.reservation_lifetime_seconds`).
    fn default() -> Self {
        Lifetime { ms: 900_000 }
    }
}

impl Lifetime {
    /// When a reservation made at `now_ms` expires: at least `ms` later, on the grid.
    pub fn expiry(&self, now_ms: u64) -> u64 {
        let grid = (self.ms / GRID_PER_LIFETIME).max(1);
        now_ms.saturating_add(self.ms).div_ceil(grid).saturating_mul(grid)
    }
}

/// Budget held by admitted requests whose reservations expire at the same time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    pub expires_ms: u64,
    pub amount: Pico,
}

pub fn scope_key(kind: &str, name: &str) -> String {
    format!("tollgate:usage:{kind}:{name}")
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    /// Served requests whose cost is unknown (no usage reported, or no price for the model).
    pub unpriced: u64,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: Pico,
}

/// What one request contributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub usage: Option<Usage>,
    /// `None`: usage or price unknown.
    pub cost: Option<Pico>,
    pub failed: bool,
}

impl Totals {
    /// Counts one finished request. Counters saturate: a provider reporting absurd usage pins
    /// them at the maximum rather than wrapping to small numbers.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn add(&mut self, o: &Outcome) {
        self.requests = self.requests.saturating_add(1);
        self.errors = self.errors.saturating_add(u64::from(o.failed));
        if let Some(u) = &o.usage {
            self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
            self.cache_read_tokens = self.cache_read_tokens.saturating_add(u.cache_read_tokens);
            self.cache_write_tokens = self.cache_write_tokens.saturating_add(u.cache_write_tokens);
            self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
            self.reasoning_tokens = self.reasoning_tokens.saturating_add(u.reasoning_tokens);
        }
        match o.cost {
            Some(c) => self.cost = self.cost.saturating_add(c),
            None if !o.failed || o.usage.is_some() => self.unpriced = self.unpriced.saturating_add(1),
            None => {}
        }
    }

    /// Adds another total (a batch of requests) to this one, saturating.
    #[deny(clippy::arithmetic_side_effects)]
    pub fn merge(&mut self, o: &Totals) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors = self.errors.saturating_add(o.errors);
        self.unpriced = self.unpriced.saturating_add(o.unpriced);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost = self.cost.saturating_add(o.cost);
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.requests,
            self.errors,
            self.unpriced,
            self.input_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.output_tokens,
            self.reasoning_tokens,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.cost.to_le_bytes());
    }

    fn decode(b: &mut Reader) -> Totals {
        Totals {
            requests: b.u64(),
            errors: b.u64(),
            unpriced: b.u64(),
            input_tokens: b.u64(),
            cache_read_tokens: b.u64(),
            cache_write_tokens: b.u64(),
            output_tokens: b.u64(),
            reasoning_tokens: b.u64(),
            cost: b.u128(),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(head) = self.0.get(..N) {
            out.copy_from_slice(head);
            self.0 = self.0.get(N..).unwrap_or_default();
        }
        out
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
}

/// A UTC calendar day and month, as counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Days since 1970-01-01.
    pub day: u32,
    /// `year * 12 + (month - 1)`.
    pub month: u32,
}

impl Period {
    pub fn at(now_ms: u64) -> Period {
        let day = now_ms / MS_PER_DAY;
        let (y, m, _) = civil_from_days(day);
        Period { day: u32::try_from(day).unwrap_or(u32::MAX), month: u32::try_from(y * 12 + u64::from(m) - 1).unwrap_or(u32::MAX) }
    }

    /// `YYYY-MM-DD`.
    pub fn day_label(&self) -> String {
        let (y, m, d) = civil_from_days(u64::from(self.day));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYY-MM`.
    pub fn month_label(&self) -> String {
        format!("{:04}-{:02}", self.month / 12, self.month % 12 + 1)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub day: u32,
    pub month: u32,
    /// Estimated cost of admitted requests not yet settled, by expiry (see [`Lifetime`]).
    pub leases: [Lease; LEASES],
    pub today: Totals,
    pub this_month: Totals,
}

impl Record {
    pub fn decode(bytes: &[u8]) -> Record {
        let mut r = Reader(bytes.get(1..).unwrap_or_default());
        match (bytes.first(), bytes.len()) {
            (Some(&VERSION), RECORD_LEN) => {
                let (day, month) = (r.u32(), r.u32());
                let mut leases = [Lease::default(); LEASES];
                for lease in &mut leases {
                    *lease = Lease { expires_ms: r.u64(), amount: r.u128() };
                }
                Record { day, month, leases, today: Totals::decode(&mut r), this_month: Totals::decode(&mut r) }
            }
            // Written before reservations expired (a module upgrade keeps shared data): keep the
            // spending; the old reservation sum had no owner left to settle it.
            (Some(1), V1_RECORD_LEN) => {
                let (day, month, _) = (r.u32(), r.u32(), r.u128());
                Record { day, month, today: Totals::decode(&mut r), this_month: Totals::decode(&mut r), ..Default::default() }
            }
            _ => Record::default(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.day.to_le_bytes());
        out.extend_from_slice(&self.month.to_le_bytes());
        for lease in &self.leases {
            out.extend_from_slice(&lease.expires_ms.to_le_bytes());
            out.extend_from_slice(&lease.amount.to_le_bytes());
        }
        self.today.encode(&mut out);
        self.this_month.encode(&mut out);
        out
    }

    /// What unexpired reservations hold at `now_ms`.
    pub fn reserved_at(&self, now_ms: u64) -> Pico {
        self.leases.iter().filter(|l| l.expires_ms > now_ms).map(|l| l.amount).fold(0, Pico::saturating_add)
    }

    /// Holds `amount` until `expires_ms`: in that expiry's slot, else in a free or expired one.
    /// Only a lifetime changed by a reload can leave no such slot; the amount then joins the
    /// latest-expiring slot, which holds it at least as long.
    fn hold(&mut self, now_ms: u64, expires_ms: u64, amount: Pico) {
        let slot = match self.leases.iter().position(|l| l.expires_ms == expires_ms) {
            Some(i) => i,
            None => {
                let free = self.leases.iter().position(|l| l.expires_ms <= now_ms || l.amount == 0);
                let i = free.unwrap_or_else(|| (0..LEASES).max_by_key(|&i| self.leases.get(i).map_or(0, |l| l.expires_ms)).unwrap_or(0));
                if let Some(l) = self.leases.get_mut(i) {
                    let kept = if free.is_some() { 0 } else { l.amount };
                    *l = Lease { expires_ms: l.expires_ms.max(expires_ms), amount: kept };
                }
                i
            }
        };
        if let Some(l) = self.leases.get_mut(slot) {
            l.amount = l.amount.saturating_add(amount);
        }
    }

    /// Gives back a reservation: nothing when its lease expired already (it no longer counts).
    fn give_back(&mut self, expires_ms: u64, amount: Pico) {
        if let Some(l) = self.leases.iter_mut().find(|l| l.expires_ms == expires_ms) {
            l.amount = l.amount.saturating_sub(amount);
        }
    }

    /// What the caps still allow at `now_ms` after what is spent and reserved (the tighter period).
    pub fn headroom(&self, caps: &Caps, now_ms: u64) -> Pico {
        let reserved = self.reserved_at(now_ms);
        let left = |cap: Option<Pico>, spent: Pico| cap.map_or(Pico::MAX, |c| c.saturating_sub(spent.saturating_add(reserved)));
        left(caps.daily, self.today.cost).min(left(caps.monthly, self.this_month.cost))
    }

    /// Starts fresh totals when the day or month changed: old periods age out.
    pub fn roll_to(&mut self, p: Period) {
        if self.day != p.day {
            self.day = p.day;
            self.today = Totals::default();
        }
        if self.month != p.month {
            self.month = p.month;
            self.this_month = Totals::default();
        }
    }
}

/// Spending caps of one scope, in pico-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub daily: Option<Pico>,
    pub monthly: Option<Pico>,
}

impl Caps {
    pub fn is_empty(&self) -> bool {
        self.daily.is_none() && self.monthly.is_none()
    }
}

/// A reservation that would take a scope past a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub period: &'static str,
    pub cap: Pico,
    pub committed: Pico,
}

/// Creates the record if it does not exist. Done at configuration time for every known scope:
/// shared-data writes to a missing key are unconditional, so creating keys on the request path
/// could let two workers' first writes overwrite each other.
pub fn ensure(store: &dyn SharedStore, key: &str) {
    if store.get(key).is_none() {
        let _ = store.put(key, &Record::default().encode(), None);
    }
}

pub fn read(store: &dyn SharedStore, key: &str, now_ms: u64) -> Record {
    let mut r = store.get(key).map(|(v, _)| Record::decode(&v)).unwrap_or_default();
    r.roll_to(Period::at(now_ms));
    r
}

/// A reservation held in one scope: what it holds until when. Settling or releasing it gives
/// back exactly this; once it expired there is nothing to give back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    pub amount: Pico,
    pub expires_ms: u64,
}

/// Admits `amount` against the scope's caps and holds it until `expires_ms`.
pub fn reserve(store: &dyn SharedStore, key: &str, now_ms: u64, hold: Hold, caps: &Caps) -> Result<Result<(), Exceeded>, StoreError> {
    let period = Period::at(now_ms);
    host::update(store, key, |current| {
        let mut r = current.map(Record::decode).unwrap_or_default();
        r.roll_to(period);
        let reserved = r.reserved_at(now_ms);
        for (name, cap, spent) in [("daily", caps.daily, r.today.cost), ("monthly", caps.monthly, r.this_month.cost)] {
            if let Some(cap) = cap {
                let committed = spent.saturating_add(reserved);
                if committed.saturating_add(hold.amount) > cap {
                    return Err(Exceeded { period: name, cap, committed });
                }
            }
        }
        r.hold(now_ms, hold.expires_ms, hold.amount);
        Ok(r.encode())
    })
}

/// Records a finished request and gives back what it had reserved in this scope.
pub fn settle(store: &dyn SharedStore, key: &str, now_ms: u64, outcome: &Outcome, release: Hold) -> Result<(), StoreError> {
    let period = Period::at(now_ms);
    host::update::<()>(store, key, |current| {
        let mut r = current.map(Record::decode).unwrap_or_default();
        r.roll_to(period);
        r.give_back(release.expires_ms, release.amount);
        r.today.add(outcome);
        r.this_month.add(outcome);
        Ok(r.encode())
    })
    .map(|_| ())
}

/// Adds a batch of totals gathered at `at_ms` (their day and month), without reservations.
pub fn merge(store: &dyn SharedStore, key: &str, at_ms: u64, totals: &Totals) -> Result<(), StoreError> {
    let period = Period::at(at_ms);
    host::update::<()>(store, key, |current| {
        let mut r = current.map(Record::decode).unwrap_or_default();
        // A batch from before a rollover must not land in the new period.
        if r.day <= period.day {
            r.roll_to(period);
        }
        if r.day == period.day {
            r.today.merge(totals);
        }
        if r.month == period.month {
            r.this_month.merge(totals);
        }
        Ok(r.encode())
    })
    .map(|_| ())
}

/// Returns a reservation that was never used (the request failed before reaching a provider).
pub fn release(store: &dyn SharedStore, key: &str, hold: Hold) -> Result<(), StoreError> {
    host::update::<()>(store, key, |current| {
        let mut r = current.map(Record::decode).unwrap_or_default();
        r.give_back(hold.expires_ms, hold.amount);
        Ok(r.encode())
    })
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryStore;

    const DAY: u64 = MS_PER_DAY;
    // 2026-11-24T12:00:00Z
    const NOW: u64 = 1_795_521_600_000;

    const LIFE: Lifetime = Lifetime { ms: 600_000 };

    fn hold(amount: Pico) -> Hold {
        Hold { amount, expires_ms: LIFE.expiry(NOW) }
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage { input_tokens: input, output_tokens: output, ..Default::default() }
    }

    #[test]
    fn periods_follow_the_utc_calendar() {
        let p = Period::at(NOW);
        assert_eq!((p.day_label(), p.month_label()), ("2026-11-24".to_string(), "2026-11".to_string()));
        assert_eq!(Period::at(0).day_label(), "1970-01-01");
        let leap = Period::at(1_709_164_800_000); // 2024-02-29
        assert_eq!(leap.day_label(), "2024-02-29");
        let new_year = Period::at(1_798_761_600_000 - 1); // 2026-12-31T23:59:59.999Z
        assert_eq!((new_year.day_label(), new_year.month_label()), ("2026-12-31".to_string(), "2026-12".to_string()));
        assert_eq!(Period::at(1_798_761_600_000).month_label(), "2027-01");
    }

    #[test]
    fn record_round_trips_and_garbage_reads_as_empty() {
        let mut r = Record { day: 3, month: 7, ..Default::default() };
        r.hold(NOW, NOW + 5, 99);
        r.today.add(&Outcome { usage: Some(usage(5, 6)), cost: Some(u128::MAX / 2), failed: false });
        r.this_month = r.today;
        assert_eq!(Record::decode(&r.encode()), r);
        assert_eq!(Record::decode(b"nonsense"), Record::default());
    }

    #[test]
    fn settle_counts_tokens_cost_errors_and_unpriced() {
        let s = MemoryStore::default();
        let k = scope_key("model", "m");
        ensure(&s, &k);
        settle(&s, &k, NOW, &Outcome { usage: Some(usage(10, 5)), cost: Some(1000), failed: false }, Hold::default()).unwrap();
        settle(&s, &k, NOW, &Outcome { usage: Some(usage(1, 1)), cost: None, failed: false }, Hold::default()).unwrap();
        settle(&s, &k, NOW, &Outcome { usage: None, cost: None, failed: true }, Hold::default()).unwrap();
        settle(&s, &k, NOW, &Outcome { usage: Some(usage(2, 0)), cost: Some(7), failed: true }, Hold::default()).unwrap();
        let r = read(&s, &k, NOW);
        assert_eq!(
            r.today,
            Totals { requests: 4, errors: 2, unpriced: 1, input_tokens: 13, output_tokens: 6, cost: 1007, ..Default::default() }
        );
        assert_eq!(r.this_month, r.today);
    }

    #[test]
    fn day_and_month_roll_over_independently() {
        let s = MemoryStore::default();
        let k = scope_key("global", "all");
        let o = Outcome { usage: Some(usage(1, 1)), cost: Some(10), failed: false };
        settle(&s, &k, NOW, &o, Hold::default()).unwrap();
        settle(&s, &k, NOW + DAY, &o, Hold::default()).unwrap();
        let r = read(&s, &k, NOW + DAY);
        assert_eq!((r.today.requests, r.this_month.requests), (1, 2));
        // 2026-12-01: new month and new day
        let r = read(&s, &k, NOW + 7 * DAY);
        assert_eq!((r.today.requests, r.this_month.requests), (0, 0));
    }

    #[test]
    fn reservations_hold_budget_until_settled() {
        let s = MemoryStore::default();
        let k = scope_key("key", "alice");
        let caps = Caps { daily: Some(100), monthly: None };
        assert_eq!(reserve(&s, &k, NOW, hold(60), &caps).unwrap(), Ok(()));
        // a concurrent request cannot take the same budget
        assert_eq!(reserve(&s, &k, NOW, hold(50), &caps).unwrap(), Err(Exceeded { period: "daily", cap: 100, committed: 60 }));
        assert_eq!(reserve(&s, &k, NOW, hold(40), &caps).unwrap(), Ok(()));
        // settle the first at its actual (lower) cost: budget frees up
        settle(&s, &k, NOW, &Outcome { usage: Some(usage(1, 1)), cost: Some(20), failed: false }, hold(60)).unwrap();
        let r = read(&s, &k, NOW);
        assert_eq!((r.reserved_at(NOW), r.today.cost), (40, 20));
        release(&s, &k, hold(40)).unwrap();
        assert_eq!(read(&s, &k, NOW).reserved_at(NOW), 0);
        assert_eq!(reserve(&s, &k, NOW, hold(80), &caps).unwrap(), Ok(()));
        assert!(reserve(&s, &k, NOW, hold(1), &caps).unwrap().is_err());
        // the monthly cap counts too
        let monthly = Caps { daily: None, monthly: Some(50) };
        assert_eq!(reserve(&s, "other", NOW, hold(51), &monthly).unwrap().unwrap_err().period, "monthly");
    }

    #[test]
    fn reservation_survives_a_competing_writer() {
        let s = MemoryStore::default();
        let k = scope_key("key", "bob");
        ensure(&s, &k);
        let key = k.clone();
        s.interleave(move |s| {
            reserve(s, &key, NOW, hold(70), &Caps { daily: Some(100), monthly: None }).unwrap().unwrap();
        });
        // our attempt loses the race, re-reads, and sees the competitor's reservation
        let r = reserve(&s, &k, NOW, hold(50), &Caps { daily: Some(100), monthly: None }).unwrap();
        assert_eq!(r, Err(Exceeded { period: "daily", cap: 100, committed: 70 }));
    }

    #[test]
    fn merged_batches_land_in_their_own_period() {
        let s = MemoryStore::default();
        let k = scope_key("model", "m");
        let mut batch = Totals::default();
        batch.add(&Outcome { usage: Some(usage(3, 4)), cost: Some(10), failed: false });
        batch.add(&Outcome { usage: Some(usage(1, 1)), cost: Some(5), failed: true });
        merge(&s, &k, NOW, &batch).unwrap();
        let r = read(&s, &k, NOW);
        assert_eq!((r.today.requests, r.today.errors, r.today.input_tokens, r.today.cost), (2, 1, 4, 15));
        // the record moved on to the next day: yesterday's batch counts in the month only
        settle(&s, &k, NOW + DAY, &Outcome::default(), Hold::default()).unwrap();
        merge(&s, &k, NOW, &batch).unwrap();
        let r = read(&s, &k, NOW + DAY);
        assert_eq!((r.today.requests, r.this_month.requests), (1, 5));
    }

    #[test]
    fn ensure_never_overwrites() {
        let s = MemoryStore::default();
        let k = scope_key("team", "t");
        settle(&s, &k, NOW, &Outcome { usage: None, cost: Some(5), failed: false }, Hold::default()).unwrap();
        ensure(&s, &k);
        assert_eq!(read(&s, &k, NOW).today.cost, 5);
    }

    #[test]
    fn an_unsettled_reservation_stops_counting_when_it_expires() {
        let s = MemoryStore::default();
        let k = scope_key("key", "crashed");
        let caps = Caps { daily: Some(100), monthly: None };
        // a request reserves and its VM dies: nobody ever settles it
        assert_eq!(reserve(&s, &k, NOW, hold(90), &caps).unwrap(), Ok(()));
        let expiry = LIFE.expiry(NOW);
        assert!((NOW + LIFE.ms..=NOW + LIFE.ms + LIFE.ms / 8).contains(&expiry), "within one grid step of the lifetime");
        assert!(reserve(&s, &k, expiry - 1, Hold { amount: 20, expires_ms: LIFE.expiry(expiry - 1) }, &caps).unwrap().is_err());
        assert_eq!(read(&s, &k, expiry - 1).reserved_at(expiry - 1), 90);
        assert_eq!(read(&s, &k, expiry).reserved_at(expiry), 0, "expired: no longer counts");
        assert_eq!(reserve(&s, &k, expiry, Hold { amount: 20, expires_ms: LIFE.expiry(expiry) }, &caps).unwrap(), Ok(()));
        // a late settlement of the expired one records its cost and gives back nothing twice
        settle(&s, &k, expiry, &Outcome { usage: None, cost: Some(5), failed: false }, hold(90)).unwrap();
        let r = read(&s, &k, expiry);
        assert_eq!((r.reserved_at(expiry), r.today.cost), (20, 5));
    }

    #[test]
    fn reservations_share_grid_slots_and_never_run_out_of_them() {
        let s = MemoryStore::default();
        let k = scope_key("global", "all");
        let caps = Caps { daily: None, monthly: Some(u128::MAX / 4) };
        let mut live: Vec<(u64, Hold)> = Vec::new();
        // one reservation every 7 s for three lifetimes; every third one is settled at once
        for step in 0..(3 * LIFE.ms / 7_000) {
            let now = NOW + step * 7_000;
            let h = Hold { amount: u128::from(step + 1), expires_ms: LIFE.expiry(now) };
            reserve(&s, &k, now, h, &caps).unwrap().unwrap();
            if step % 3 == 0 {
                settle(&s, &k, now, &Outcome::default(), h).unwrap();
            } else {
                live.push((now, h));
            }
            let expected: u128 = live.iter().filter(|(_, h)| h.expires_ms > now).map(|(_, h)| h.amount).sum();
            assert_eq!(read(&s, &k, now).reserved_at(now), expected, "step {step}");
        }
    }

    #[test]
    fn a_lifetime_shortened_by_a_reload_still_holds_every_reservation() {
        let mut r = Record::default();
        // nine live slots of a long lifetime fill the ring but one
        for i in 0..LEASES as u64 {
            r.hold(NOW, NOW + 1_000 * (i + 1), 1);
        }
        // a new expiry with no slot of its own joins the latest-expiring one
        r.hold(NOW, NOW + 500, 7);
        assert_eq!(r.reserved_at(NOW), LEASES as u128 + 7);
        assert_eq!(r.reserved_at(NOW + 1_000 * LEASES as u64 - 1), 1 + 7);
    }

    #[test]
    fn version_1_records_keep_their_spending() {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&Period::at(NOW).day.to_le_bytes());
        v1.extend_from_slice(&Period::at(NOW).month.to_le_bytes());
        v1.extend_from_slice(&77u128.to_le_bytes());
        let mut totals = Totals::default();
        totals.add(&Outcome { usage: Some(usage(3, 4)), cost: Some(42), failed: false });
        totals.encode(&mut v1);
        totals.encode(&mut v1);
        let r = Record::decode(&v1);
        assert_eq!((r.today.cost, r.this_month.requests, r.reserved_at(NOW)), (42, 1, 0));
    }
}
