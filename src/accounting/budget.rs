//! Callers, scopes and budgets: who is calling (virtual keys), which counters a request touches,
//! admission against spending caps (reserve an estimate first, settle to the actual cost later),
//! and the usage report.

use super::global::GlobalCharges;
use super::global_view::{self, Charge, Counter, GlobalView};
use super::keys::{self, KeyIndex};
use super::ledger::{self, Caps, Hold, Lifetime, Outcome, Period, Record, Totals};
use super::money::{Pico, format_usd, parse_usd};
use super::prices::{Price, PriceTable};
use super::rate::{self, RateLimits, Standings};
use super::refusal::Refusal;
use crate::host::SharedStore;
use crate::patterns;
use crate::schema::ConfigError;
use crate::schema::{AuthSpec, BudgetSpec, RateLimitSpec, TeamSpec};
use serde::Serialize;
use std::collections::BTreeMap;

pub type ScopeId = u32;

#[derive(Debug, Clone)]
pub struct Scope {
    pub kind: &'static str,
    pub name: String,
    /// Shared-data key of the scope's record.
    pub key: String,
    pub caps: Caps,
    pub soft_percent: Option<u8>,
    pub rate: RateLimits,
    /// Shared-data key of the scope's rate-limit buckets.
    rate_key: String,
}

impl Scope {
    fn new(kind: &'static str, name: &str) -> Scope {
        Scope {
            kind,
            name: name.to_owned(),
            key: ledger::scope_key(kind, name),
            caps: Caps::default(),
            soft_percent: None,
            rate: RateLimits::default(),
            rate_key: format!("tollgate:rate:{kind}:{name}"),
        }
    }
}

#[derive(Debug)]
pub struct VirtualKey {
    pub id: String,
    pub scope: ScopeId,
    pub team: Option<ScopeId>,
    /// Client-facing model names allowed (`*` patterns); empty: all.
    models: Vec<String>,
}

/// One cap of a capped scope (`kind` `global`, `key` or `team`) in one `period` (`daily`, `monthly`).
#[derive(Debug, PartialEq, Eq)]
pub struct BudgetLevel<'a> {
    pub kind: &'static str,
    pub name: &'a str,
    pub period: &'static str,
    pub limit: Pico,
    pub spent: Pico,
    pub remaining: Pico,
}

/// Who is calling: the virtual key's index, when auth is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller {
    pub key: Option<usize>,
}

/// What one request is charged to: the counters (scopes) it counts in, and what it holds reserved
/// in each (global, provider, model, then the caller's key and team), at which price.
#[derive(Debug, Default, Clone)]
pub struct Charges {
    pub scopes: Vec<(ScopeId, Pico)>,
    pub price: Option<Price>,
    /// When the reservations stop counting if the request never settles (see [`Lifetime`]).
    pub expires_ms: u64,
    /// The rate-limited scopes that admitted the request, each holding one request and
    /// `rate_tokens` tokens until it settles.
    pub(crate) rated: Vec<ScopeId>,
    pub(crate) rate_tokens: u64,
    /// The tightest rate limits the request counted in, for the client's `x-ratelimit-*` headers.
    pub standings: Standings,
}

impl Charges {
    fn hold(&self, amount: Pico) -> Hold {
        Hold { amount, expires_ms: self.expires_ms }
    }
}

impl Charges {
    /// Another target answered (failover): count it there, at its price. Reservations stay
    /// where they were made (global, key, team).
    pub fn retarget(&mut self, provider: ScopeId, model: ScopeId, price: Option<Price>) {
        if let Some(entry) = self.scopes.get_mut(1) {
            entry.0 = provider;
        }
        if let Some(entry) = self.scopes.get_mut(2) {
            entry.0 = model;
        }
        self.price = price;
    }
}

/// Counts of uncapped scopes gathered between flushes: most requests then touch shared data
/// not at all, and each scope is written once per flush. Capped scopes are never batched, so
/// budgets always see exact spending.
#[derive(Debug, Default)]
pub struct Batch {
    /// (scope, day, a time within that day, totals)
    pending: Vec<(ScopeId, u32, u64, ledger::Totals)>,
}

impl Batch {
    fn add(&mut self, scope: ScopeId, now_ms: u64, outcome: &Outcome) {
        let day = Period::at(now_ms).day;
        match self.pending.iter_mut().find(|(s, d, _, _)| *s == scope && *d == day) {
            Some(entry) => entry.3.add(outcome),
            None => {
                let mut t = ledger::Totals::default();
                t.add(outcome);
                self.pending.push((scope, day, now_ms, t));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Accounting {
    pub prices: PriceTable,
    /// 0: no batching; see [`Batch`].
    pub flush_ms: u64,
    /// How long an unsettled reservation holds budget.
    pub lifetime: Lifetime,
    pub scopes: Vec<Scope>,
    pub keys: Vec<VirtualKey>,
    index: KeyIndex<usize>,
    admins: KeyIndex<()>,
    pub auth_required: bool,
    /// See [`Accounting::descriptor_headers`].
    pub descriptor_headers: bool,
    /// Global mode's charges at stream end (`rate_limits.global_charges`).
    pub global_charges: Option<GlobalCharges>,
    /// Global mode's counters read back from the service (`rate_limits.global_view`).
    pub global_view: Option<GlobalView>,
}

/// The request headers that name a request's scopes to Envoy's rate-limit filter, whose route
/// `rate_limits` turn them into descriptors for a global rate-limit service.
const DESCRIPTOR_HEADERS: [&str; 3] = ["x-tollgate-rl-key", "x-tollgate-rl-team", "x-tollgate-rl-model"];

pub const GLOBAL: ScopeId = 0;

fn compile_budget(field: &str, b: Option<&BudgetSpec>) -> Result<(Caps, Option<u8>), ConfigError> {
    let Some(b) = b else { return Ok((Caps::default(), None)) };
    let usd = |v: &Option<String>, name: &str| -> Result<Option<Pico>, ConfigError> {
        v.as_deref().map(|t| parse_usd(t, 1).map_err(|e| ConfigError::new(format!("{field}.{name}"), e))).transpose()
    };
    let caps = Caps { daily: usd(&b.daily_usd, "daily_usd")?, monthly: usd(&b.monthly_usd, "monthly_usd")? };
    if let Some(p) = b.soft_limit_percent
        && !(1..=100).contains(&p)
    {
        return Err(ConfigError::new(format!("{field}.soft_limit_percent"), "must be between 1 and 100"));
    }
    if caps.is_empty() && b.soft_limit_percent.is_some() {
        return Err(ConfigError::new(format!("{field}.soft_limit_percent"), "needs daily_usd or monthly_usd"));
    }
    Ok((caps, b.soft_limit_percent))
}

fn compile_rate(field: &str, spec: Option<&RateLimitSpec>) -> Result<RateLimits, ConfigError> {
    let Some(spec) = spec else { return Ok(RateLimits::default()) };
    let limit = |v: Option<u64>, name: &str| match v {
        Some(n) if !(1..=rate::MAX_PER_MINUTE).contains(&n) => {
            Err(ConfigError::new(format!("{field}.{name}"), format!("must be between 1 and {}", rate::MAX_PER_MINUTE)))
        }
        v => Ok(v),
    };
    Ok(RateLimits {
        requests: limit(spec.requests_per_minute, "requests_per_minute")?,
        tokens: limit(spec.tokens_per_minute, "tokens_per_minute")?,
    })
}

impl Accounting {
    pub fn new(prices: PriceTable, global: Option<&BudgetSpec>) -> Result<Self, ConfigError> {
        let mut a = Accounting { prices, ..Default::default() };
        let (caps, soft) = compile_budget("budget", global)?;
        a.scopes.push(Scope { caps, soft_percent: soft, ..Scope::new("global", "all") });
        Ok(a)
    }

    /// Registers (or finds) a counter scope.
    pub fn scope(&mut self, kind: &'static str, name: &str) -> ScopeId {
        if let Some(i) = self.scopes.iter().position(|s| s.kind == kind && s.name == name) {
            return ScopeId::try_from(i).unwrap_or(GLOBAL);
        }
        self.scopes.push(Scope::new(kind, name));
        ScopeId::try_from(self.scopes.len() - 1).unwrap_or(GLOBAL)
    }

    pub fn add_auth(&mut self, auth: &AuthSpec, teams: &BTreeMap<String, TeamSpec>) -> Result<(), ConfigError> {
        self.auth_required = true;
        for (name, team) in teams {
            let (caps, soft) = compile_budget(&format!("teams.{name}.budget"), team.budget.as_ref())?;
            let rate = compile_rate(&format!("teams.{name}.rate_limit"), team.rate_limit.as_ref())?;
            let id = self.scope("team", name);
            if let Some(s) = self.scopes.get_mut(id as usize) {
                s.caps = caps;
                s.soft_percent = soft;
                s.rate = rate;
            }
        }
        for (i, k) in auth.keys.iter().enumerate() {
            let field = format!("auth.keys[{i}]");
            if k.id.is_empty() || !k.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
                return Err(ConfigError::new(format!("{field}.id"), "use letters, digits and - _ . @"));
            }
            if self.keys.iter().any(|other| other.id == k.id) {
                return Err(ConfigError::new(format!("{field}.id"), format!("key id `{}` is used twice", k.id)));
            }
            let hash = keys::parse_hex(&k.sha256)
                .ok_or_else(|| ConfigError::new(format!("{field}.sha256"), "must be 64 hex characters (the SHA-256 of the key)"))?;
            let team = match &k.team {
                Some(t) if !teams.contains_key(t) => {
                    return Err(ConfigError::new(format!("{field}.team"), format!("team `{t}` is not defined under `teams`")));
                }
                Some(t) => Some(self.scope("team", t)),
                None => None,
            };
            let (caps, soft) = compile_budget(&format!("{field}.budget"), k.budget.as_ref())?;
            let rate = compile_rate(&format!("{field}.rate_limit"), k.rate_limit.as_ref())?;
            let scope = self.scope("key", &k.id);
            if let Some(s) = self.scopes.get_mut(scope as usize) {
                s.caps = caps;
                s.soft_percent = soft;
                s.rate = rate;
            }
            if !self.index.insert(hash, self.keys.len()) {
                return Err(ConfigError::new(format!("{field}.sha256"), "the same key hash is configured twice"));
            }
            self.keys.push(VirtualKey { id: k.id.clone(), scope, team, models: k.models.clone() });
        }
        for (i, h) in auth.admin_keys_sha256.iter().enumerate() {
            let hash =
                keys::parse_hex(h).ok_or_else(|| ConfigError::new(format!("auth.admin_keys_sha256[{i}]"), "must be 64 hex characters"))?;
            self.admins.insert(hash, ());
        }
        Ok(())
    }

    /// Refuses a missing or unknown key when auth is on.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        self.authenticate_either(authorization, None)
    }

    /// The caller of a request whose key is in `Authorization: Bearer`, or else in `x-api-key`
    /// (where Anthropic clients send it).
    pub fn authenticate_either(&self, authorization: Option<&str>, api_key: Option<&str>) -> Result<Caller, Refusal> {
        if !self.auth_required {
            return Ok(Caller::default());
        }
        let token = authorization.and_then(keys::bearer).or(api_key.map(str::trim).filter(|k| !k.is_empty())).ok_or(Refusal::MissingKey)?;
        match self.index.find(token) {
            Some(&i) => Ok(Caller { key: Some(i) }),
            None => Err(Refusal::UnknownKey),
        }
    }

    pub fn is_admin(&self, authorization: Option<&str>) -> bool {
        authorization.and_then(keys::bearer).is_some_and(|t| self.admins.find(t).is_some())
    }

    /// Whether the caller's key may use `model` (a client-facing name); also what `/v1/models` lists.
    pub fn may_use(&self, caller: Caller, model: &str) -> bool {
        let Some(key) = caller.key.and_then(|k| self.keys.get(k)) else { return true };
        key.models.is_empty() || key.models.iter().any(|p| patterns::matches(p, model))
    }

    /// Refuses when the caller's key may not use `model`.
    pub fn check_model(&self, caller: Caller, model: &str) -> Result<(), Refusal> {
        let Some(key) = caller.key.and_then(|k| self.keys.get(k)).filter(|_| !self.may_use(caller, model)) else { return Ok(()) };
        Err(Refusal::ModelNotAllowed { key: key.id.clone(), model: model.to_owned() })
    }

    /// The scopes a request counts in: global, provider, model, and the caller's key and team.
    pub fn charges(&self, caller: Caller, provider: ScopeId, model: ScopeId, price: Option<Price>) -> Charges {
        let mut scopes = Vec::with_capacity(5);
        scopes.extend([(GLOBAL, 0), (provider, 0), (model, 0)]);
        if let Some(key) = caller.key.and_then(|k| self.keys.get(k)) {
            scopes.push((key.scope, 0));
            if let Some(team) = key.team {
                scopes.push((team, 0));
            }
        }
        Charges { scopes, price, ..Charges::default() }
    }

    /// Sets the rate limits of an existing scope (the gateway's, or an upstream model's:
    /// `None` when no model of that name is configured).
    pub fn limit_rate(&mut self, kind: &str, name: &str, field: &str, spec: &RateLimitSpec) -> Result<Option<()>, ConfigError> {
        let rate = compile_rate(field, Some(spec))?;
        Ok(self.scopes.iter_mut().find(|s| s.kind == kind && s.name == name).map(|s| s.rate = rate))
    }

    /// The request headers naming the caller's key and team and the upstream model (scope
    /// `model`), when `rate_limits.descriptor_headers` is on; names only, never secrets.
    pub fn descriptor_headers(&self, caller: Caller, model: ScopeId) -> Vec<(&'static str, String)> {
        if !self.descriptor_headers {
            return Vec::new();
        }
        let [key_header, team_header, model_header] = DESCRIPTOR_HEADERS;
        let key = caller.key.and_then(|k| self.keys.get(k));
        let name = |id: Option<ScopeId>| id.and_then(|id| self.scopes.get(id as usize)).map(|s| s.name.clone());
        let named =
            [(key_header, key.map(|k| k.id.clone())), (team_header, name(key.and_then(|k| k.team))), (model_header, name(Some(model)))];
        named.into_iter().filter_map(|(header, value)| Some((header, value?))).collect()
    }

    /// Takes one request and `tokens` in every rate-limited scope the request counts in, or
    /// refuses (giving back what it took).
    fn admit_rates(&self, store: &dyn SharedStore, now_ms: u64, charges: &mut Charges, tokens: u64) -> Result<(), Refusal> {
        charges.rate_tokens = tokens;
        for i in 0..charges.scopes.len() {
            let Some(&(id, _)) = charges.scopes.get(i) else { break };
            let Some(scope) = self.scopes.get(id as usize).filter(|s| !s.rate.is_empty()) else { continue };
            let refused = match rate::admit(store, &scope.rate_key, now_ms, &scope.rate, tokens) {
                Ok(Ok(standings)) => {
                    charges.rated.push(id);
                    charges.standings = charges.standings.merge(standings);
                    continue;
                }
                Ok(Err(exceeded)) => Refusal::RateLimited { message: rate_refusal_message(scope, &exceeded), exceeded },
                Err(e) => Refusal::LedgerUnavailable { reason: format!("{e:?}") },
            };
            self.correct_rates(store, now_ms, charges, 1, 0);
            charges.rated.clear();
            return Err(refused);
        }
        Ok(())
    }

    /// Corrects the rate-limit buckets the request was admitted to: `requests` given back, its
    /// reserved tokens replaced by `used`.
    fn correct_rates(&self, store: &dyn SharedStore, now_ms: u64, charges: &Charges, requests: u64, used: u64) {
        for id in &charges.rated {
            let Some(scope) = self.scopes.get(*id as usize) else { continue };
            if let Err(e) = rate::correct(store, &scope.rate_key, now_ms, &scope.rate, requests, (charges.rate_tokens, used)) {
                log::error!("could not correct the rate limits of {} (they drain by themselves): {e:?}", scope.key);
            }
        }
    }

    /// Reserves `estimate` in every capped scope the request is charged to, or refuses (releasing
    /// whatever was already reserved).
    /// Rate limits are checked first, each taking one request and `tokens` (the request's
    /// token estimate).
    pub fn admit(&self, store: &dyn SharedStore, now_ms: u64, charges: &mut Charges, estimate: Pico, tokens: u64) -> Result<(), Refusal> {
        self.admit_rates(store, now_ms, charges, tokens)?;
        charges.expires_ms = self.lifetime.expiry(now_ms);
        for i in 0..charges.scopes.len() {
            let Some(&(id, _)) = charges.scopes.get(i) else { break };
            let Some(scope) = self.scopes.get(id as usize) else { continue };
            if scope.caps.is_empty() {
                continue;
            }
            let refused = match ledger::reserve(store, &scope.key, now_ms, charges.hold(estimate), &scope.caps) {
                Ok(Ok(())) => {
                    if let Some(entry) = charges.scopes.get_mut(i) {
                        entry.1 = estimate;
                    }
                    continue;
                }
                Ok(Err(exceeded)) => Refusal::BudgetExceeded { message: refusal_message(scope, &exceeded, estimate) },
                Err(e) => Refusal::LedgerUnavailable { reason: format!("{e:?}") },
            };
            self.release(store, charges);
            return Err(refused);
        }
        Ok(())
    }

    /// What the capped scopes of `charges` still allow this request to cost (the tightest of them);
    /// `None` when no capped scope applies.
    pub fn headroom(&self, store: &dyn SharedStore, now_ms: u64, charges: &Charges) -> Option<Pico> {
        let capped = charges.scopes.iter().filter_map(|(id, _)| self.scopes.get(*id as usize)).filter(|s| !s.caps.is_empty());
        capped.map(|s| ledger::read(store, &s.key, now_ms).headroom(&s.caps, now_ms)).min()
    }

    /// Gives back every reservation of a request that never reached a provider. One that cannot be
    /// written back (the CAS gave up) stops counting when it expires.
    pub fn release(&self, store: &dyn SharedStore, charges: &mut Charges) {
        // No time passes for the buckets (a write never drains what another already drained).
        self.correct_rates(store, 0, charges, 1, 0);
        charges.rated.clear();
        let expires_ms = charges.expires_ms;
        for (id, reserved) in &mut charges.scopes {
            if *reserved > 0
                && let Some(scope) = self.scopes.get(*id as usize)
            {
                if let Err(e) = ledger::release(store, &scope.key, Hold { amount: *reserved, expires_ms }) {
                    log::error!("could not release a reservation in {} (it expires by itself): {e:?}", scope.key);
                }
                *reserved = 0;
            }
        }
    }

    /// Records the finished request in every scope and settles its reservations. With a batch,
    /// uncapped scopes are counted there and written at the next [`Accounting::flush`].
    /// Rate limits count the tokens the provider reported (all input and output), or keep the
    /// estimate when it reported none.
    pub fn settle(&self, store: &dyn SharedStore, now_ms: u64, charges: &Charges, outcome: &Outcome, mut batch: Option<&mut Batch>) {
        let used = outcome.usage.map_or(charges.rate_tokens, |u| u.prompt_tokens().saturating_add(u.output_tokens));
        self.correct_rates(store, now_ms, charges, 0, used);
        for (id, reserved) in &charges.scopes {
            let Some(scope) = self.scopes.get(*id as usize) else { continue };
            if let Some(b) = batch.as_deref_mut()
                && *reserved == 0
                && scope.caps.is_empty()
            {
                b.add(*id, now_ms, outcome);
                continue;
            }
            if let Err(e) = ledger::settle(store, &scope.key, now_ms, outcome, charges.hold(*reserved)) {
                log::error!("could not record usage in {}: {e:?}", scope.key);
            }
        }
    }

    /// Writes a batch to shared data.
    pub fn flush(&self, store: &dyn SharedStore, batch: &mut Batch) {
        for (id, _, at_ms, totals) in batch.pending.drain(..) {
            if let Some(scope) = self.scopes.get(id as usize)
                && let Err(e) = ledger::merge(store, &scope.key, at_ms, &totals)
            {
                log::error!("could not record usage in {}: {e:?}", scope.key);
            }
        }
    }

    /// Creates every scope's record up front (see [`ledger::ensure`]).
    pub fn ensure_records(&self, store: &dyn SharedStore) {
        for s in &self.scopes {
            ledger::ensure(store, &s.key);
        }
    }

    pub fn has_soft_limits(&self) -> bool {
        self.scopes.iter().any(|s| s.soft_percent.is_some())
    }

    /// The caller's budgets (global, key, team) are past a soft limit: routing then prefers
    /// cheaper targets.
    pub fn caller_over_soft_limit(&self, store: &dyn SharedStore, now_ms: u64, caller: Caller) -> bool {
        let key = caller.key.and_then(|k| self.keys.get(k));
        let scopes = [Some(GLOBAL), key.map(|k| k.scope), key.and_then(|k| k.team)];
        scopes.into_iter().flatten().filter_map(|id| self.scopes.get(id as usize)).any(|s| {
            let Some(percent) = s.soft_percent else { return false };
            let r = ledger::read(store, &s.key, now_ms);
            let reserved = r.reserved_at(now_ms);
            let over = |cap: Option<Pico>, spent: Pico| cap.is_some_and(|c| (spent + reserved) * 100 >= c * Pico::from(percent));
            over(s.caps.daily, r.today.cost) || over(s.caps.monthly, r.this_month.cost)
        })
    }

    /// Every cap of every capped scope with what is spent and what remains (after reservations in
    /// flight, as admission sees it), for the budget gauges.
    pub fn levels(&self, store: &dyn SharedStore, now_ms: u64) -> Vec<BudgetLevel<'_>> {
        let mut out = Vec::new();
        for s in self.scopes.iter().filter(|s| s.caps.daily.is_some() || s.caps.monthly.is_some()) {
            let r = ledger::read(store, &s.key, now_ms);
            let reserved = r.reserved_at(now_ms);
            for (period, cap, spent) in [("daily", s.caps.daily, r.today.cost), ("monthly", s.caps.monthly, r.this_month.cost)] {
                if let Some(limit) = cap {
                    let remaining = limit.saturating_sub(spent + reserved);
                    out.push(BudgetLevel { kind: s.kind, name: &s.name, period, limit, spent, remaining });
                }
            }
        }
        out
    }

    /// The counters the usage API reads from the rate-limit service in global mode: every
    /// charge of every scope a descriptor names.
    pub fn global_counters(&self) -> Vec<Counter<'_>> {
        global_view::counters(self.scopes.iter().map(|s| (s.kind, s.name.as_str())), &Charge::ALL)
    }

    /// The dollar counters of the capped scopes, for the global budget gauges.
    pub fn global_budget_counters(&self) -> Vec<Counter<'_>> {
        let capped = self.scopes.iter().filter(|s| s.caps.daily.is_some() || s.caps.monthly.is_some());
        global_view::counters(capped.map(|s| (s.kind, s.name.as_str())), &[Charge::Usd, Charge::UsdMonth])
    }

    /// The `GET /v1/tollgate/usage` body (`global`: what the rate-limit service holds, in
    /// global mode).
    pub fn report(&self, store: &dyn SharedStore, now_ms: u64, global: Option<global_view::Report>) -> Vec<u8> {
        let period = Period::at(now_ms);
        let mut groups: BTreeMap<&str, BTreeMap<&str, ScopeReport>> = BTreeMap::new();
        for s in &self.scopes {
            let r = ledger::read(store, &s.key, now_ms);
            let group = match s.kind {
                "global" => "global",
                "provider" => "providers",
                "model" => "models",
                "key" => "keys",
                _ => "teams",
            };
            groups.entry(group).or_default().insert(&s.name, ScopeReport::new(s, &r, now_ms));
        }
        let report = Report {
            object: "tollgate.usage",
            generated_at: now_ms / 1000,
            day: period.day_label(),
            month: period.month_label(),
            scopes: groups,
            global,
        };
        serde_json::to_vec(&report).unwrap_or_default()
    }
}

/// Input tokens an image part may cost, whatever its size: above OpenAI's largest
/// (gpt-4.1-mini: 1,536 patches × 1.62 ≈ 2,490; gpt-4o high detail: at most 85 + 6 × 170 =
/// 1,105; https://platform.openai.com/docs/guides/images-vision#calculating-costs), Anthropic's
/// (≈ 1,600 for the largest image it keeps, https://docs.anthropic.com/en/docs/build-with-claude/vision)
/// and Gemini's per image (258 per 768-px tile, 1,120 at high media resolution,
/// https://ai.google.dev/gemini-api/docs/image-understanding).
pub const IMAGE_TOKENS: u64 = 2_500;

/// Input tokens providers add when a request has tools (Anthropic's tool-use system prompt is
/// 346 tokens, https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview#pricing).
pub const TOOLS_TOKENS: u64 = 500;

/// An upper bound on a request's input tokens: its body's length in bytes, plus
/// [`IMAGE_TOKENS`] per image and [`TOOLS_TOKENS`] when it has tools.
///
/// Bytes bound text tokens: every tokenizer in use (byte-level BPE at OpenAI and Anthropic,
/// SentencePiece with byte fallback at Google, Llama, Mistral) turns at least one byte of UTF-8
/// text into each token, and JSON never spells text shorter than its UTF-8 bytes (escapes only
/// lengthen it). The per-message tokens of chat templates (3–4 at OpenAI) are covered by each
/// message's own JSON framing, at least 28 bytes. Bytes ÷ 4, the usual average, is no bound:
/// CJK text or digits run near one token per 1–3 bytes.
pub fn input_bound(body_len: usize, images: usize, has_tools: bool) -> u64 {
    let bytes = u64::try_from(body_len).unwrap_or(u64::MAX);
    let images = u64::try_from(images).unwrap_or(u64::MAX);
    bytes.saturating_add(images.saturating_mul(IMAGE_TOKENS)).saturating_add(if has_tools { TOOLS_TOKENS } else { 0 })
}

/// The most a request can produce and consume, for admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ask {
    /// See [`input_bound`].
    pub input_tokens: u64,
    /// The output limit of each choice.
    pub output_tokens: u64,
    /// `n`: each choice may produce `output_tokens`.
    pub choices: u64,
}

impl Ask {
    /// Every token the request may consume, input and output: what rate limits reserve.
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens.saturating_mul(self.choices.max(1)))
    }
}

/// Worst-case cost of a request: every input token at the dearest input rate, and the full
/// output limit for every choice.
pub fn estimate(price: Option<Price>, ask: Ask) -> Pico {
    let Some(p) = price else { return 0 };
    let output = Pico::from(ask.output_tokens) * Pico::from(ask.choices.max(1));
    Pico::from(ask.input_tokens).saturating_mul(p.input_ceiling()).saturating_add(output.saturating_mul(p.output))
}

/// The largest output limit per choice, at most `ask.output_tokens`, whose worst case fits in
/// `headroom`; `None` when not even one output token fits.
pub fn affordable_output(price: Price, headroom: Pico, ask: Ask) -> Option<u64> {
    let input = estimate(Some(price), Ask { output_tokens: 0, ..ask });
    let per_token = price.output.saturating_mul(Pico::from(ask.choices.max(1)));
    let left = headroom.checked_sub(input)?;
    // Free output (a zero price) is limited by the request alone.
    let affordable = left.checked_div(per_token).map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(u64::MAX));
    Some(affordable.min(ask.output_tokens)).filter(|n| *n >= 1)
}

#[derive(Serialize)]
struct Report<'a> {
    object: &'static str,
    generated_at: u64,
    day: String,
    month: String,
    scopes: BTreeMap<&'a str, BTreeMap<&'a str, ScopeReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    global: Option<global_view::Report<'a>>,
}

#[derive(Serialize)]
struct ScopeReport {
    today: TotalsReport,
    month: TotalsReport,
    reserved_usd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    budget: Option<BudgetReport>,
}

#[derive(Serialize)]
struct TotalsReport {
    requests: u64,
    errors: u64,
    unpriced_requests: u64,
    input_tokens: u64,
    cached_input_tokens: u64,
    cache_write_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    cost_usd: String,
}

#[derive(Serialize)]
struct BudgetReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_remaining_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monthly_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monthly_remaining_usd: Option<String>,
}

impl TotalsReport {
    fn new(t: &Totals) -> Self {
        TotalsReport {
            requests: t.requests,
            errors: t.errors,
            unpriced_requests: t.unpriced,
            input_tokens: t.input_tokens,
            cached_input_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            output_tokens: t.output_tokens,
            reasoning_tokens: t.reasoning_tokens,
            cost_usd: format_usd(t.cost),
        }
    }
}

impl ScopeReport {
    fn new(s: &Scope, r: &Record, now_ms: u64) -> Self {
        let reserved = r.reserved_at(now_ms);
        let remaining = |cap: Option<Pico>, spent: Pico| cap.map(|c| format_usd(c.saturating_sub(spent + reserved)));
        ScopeReport {
            today: TotalsReport::new(&r.today),
            month: TotalsReport::new(&r.this_month),
            reserved_usd: format_usd(reserved),
            budget: (!s.caps.is_empty()).then(|| BudgetReport {
                daily_usd: s.caps.daily.map(format_usd),
                daily_remaining_usd: remaining(s.caps.daily, r.today.cost),
                monthly_usd: s.caps.monthly.map(format_usd),
                monthly_remaining_usd: remaining(s.caps.monthly, r.this_month.cost),
            }),
        }
    }
}

/// What a finished request contributes, priced.
pub fn outcome(charges: &Charges, usage: Option<crate::usage::Usage>, failed: bool) -> Outcome {
    let cost = match (usage, charges.price) {
        (Some(u), Some(p)) => Some(p.cost(&u)),
        _ => None,
    };
    Outcome { usage, cost, failed }
}

/// A rate-limit refusal in OpenAI's words ("Rate limit reached for … on requests per min (RPM):
/// Limit 3, Used 3, Requested 1."). Unlike budgets, the limits are no secret: the
/// `x-ratelimit-*` headers tell them to every caller.
fn rate_refusal_message(scope: &Scope, e: &rate::Exceeded) -> String {
    let whose = match scope.kind {
        "global" => "this gateway".to_owned(),
        kind => format!("{kind} `{}`", scope.name),
    };
    let (unit, limit, requested) = (e.dimension.unit(), e.limit, e.requested);
    match e.retry_after_ms {
        None => format!("Request too large for {whose} on {unit}: Limit {limit}, Requested {requested}."),
        Some(ms) => format!(
            "Rate limit reached for {whose} on {unit}: Limit {limit}, Used {}, Requested {requested}. Please try again in {}.",
            e.used,
            rate::format_reset(ms)
        ),
    }
}

/// Why a request was refused, as far as the caller may know: its own key's cap and spend in
/// full; for its team or the whole gateway only which limit it hit, never their spend or caps.
fn refusal_message(scope: &Scope, exceeded: &ledger::Exceeded, estimate: Pico) -> String {
    match scope.kind {
        "key" => format!(
            "Budget exceeded for key `{}`: the {} cap is ${}, ${} is already spent or reserved, and this request may cost up to ${}.",
            scope.name,
            exceeded.period,
            format_usd(exceeded.cap),
            format_usd(exceeded.committed),
            format_usd(estimate)
        ),
        "team" => format!("Budget exceeded for team `{}`: its {} budget is used up.", scope.name, exceeded.period),
        _ => format!("Budget exceeded: the gateway's {} budget is used up.", exceeded.period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Refusals reach clients as the gateway renders them; these tests assert what clients see.
    use crate::error::ApiError;
    use crate::host::memory::MemoryStore;
    use crate::usage::Usage;

    const NOW: u64 = 1_795_521_600_000;

    fn accounting() -> Accounting {
        let auth: AuthSpec = parse(serde_json::json!({
            "keys": [
                {"id": "alice", "sha256": hex(&keys::hash("tg-alice")), "team": "research", "models": ["gpt-*"], "budget": {"daily_usd": "0.01"}},
                {"id": "bob", "sha256": hex(&keys::hash("tg-bob"))}
            ],
            "admin_keys_sha256": [hex(&keys::hash("tg-admin"))]
        }));
        let teams: BTreeMap<String, TeamSpec> =
            parse(serde_json::json!({"research": {"budget": {"monthly_usd": 5, "soft_limit_percent": 50}}}));
        let global: BudgetSpec = parse(serde_json::json!({"daily_usd": "100"}));
        let mut a = Accounting::new(PriceTable::default(), Some(&global)).unwrap();
        a.add_auth(&auth, &teams).unwrap();
        a
    }

    /// Through text, as the plugin configuration is (raw decimal values need it).
    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    fn hex(h: &[u8; 32]) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    const PRICE: Price = Price { input: 1_000_000, output: 2_000_000, cache_read: 100_000, cache_write: 1_250_000 };

    #[test]
    fn authentication_and_model_permissions() {
        let a = accounting();
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        assert_eq!(alice.key, Some(0));
        assert_eq!(a.authenticate(None).map_err(ApiError::from).unwrap_err().code.as_deref(), Some("missing_api_key"));
        let e = a.authenticate(Some("Bearer tg-mallory")).map_err(ApiError::from).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (401, Some("invalid_api_key")));
        assert!(a.check_model(alice, "gpt-4o").is_ok());
        let e = a.check_model(alice, "claude").map_err(ApiError::from).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (403, Some("model_not_allowed")));
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        assert!(a.check_model(bob, "anything").is_ok());
        assert!(a.is_admin(Some("Bearer tg-admin")));
        assert!(!a.is_admin(Some("Bearer tg-alice")));
        let open = Accounting::new(PriceTable::default(), None).unwrap();
        assert_eq!(open.authenticate(None).unwrap(), Caller::default());
    }

    #[test]
    fn config_errors_name_fields() {
        let mut a = Accounting::new(PriceTable::default(), None).unwrap();
        let bad: AuthSpec = parse(serde_json::json!({"keys": [{"id": "x", "sha256": "abc"}]}));
        assert_eq!(a.add_auth(&bad, &BTreeMap::new()).unwrap_err().field, "auth.keys[0].sha256");
        let bad: AuthSpec = parse(serde_json::json!({"keys": [{"id": "x", "sha256": hex(&[0; 32]), "team": "nope"}]}));
        assert_eq!(
            Accounting::new(PriceTable::default(), None).unwrap().add_auth(&bad, &BTreeMap::new()).unwrap_err().field,
            "auth.keys[0].team"
        );
        let budget: BudgetSpec = parse(serde_json::json!({"daily_usd": "-3"}));
        assert_eq!(Accounting::new(PriceTable::default(), Some(&budget)).unwrap_err().field, "budget.daily_usd");
        let budget: BudgetSpec = parse(serde_json::json!({"soft_limit_percent": 50}));
        assert_eq!(Accounting::new(PriceTable::default(), Some(&budget)).unwrap_err().field, "budget.soft_limit_percent");
    }

    #[test]
    fn refusals_show_amounts_only_for_the_callers_own_key() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let mut charges = a.charges(bob, provider, model, Some(PRICE));
        let e = a.admit(&store, NOW, &mut charges, 150 * 1_000_000_000_000, 0).map_err(ApiError::from).unwrap_err();
        assert_eq!(e.message, "Budget exceeded: the gateway's daily budget is used up.");
        let exceeded = ledger::Exceeded { period: "monthly", cap: 5_000_000_000_000, committed: 4_000_000_000_000 };
        let team = a.scopes.iter().find(|s| s.kind == "team").unwrap();
        let message = refusal_message(team, &exceeded, 1);
        assert_eq!(message, "Budget exceeded for team `research`: its monthly budget is used up.");
        let key = a.scopes.iter().find(|s| s.kind == "key" && s.name == "alice").unwrap();
        assert!(refusal_message(key, &exceeded, 1).contains("the monthly cap is $5, $4 is already spent or reserved"));
    }

    #[test]
    fn admission_reserves_then_settles_to_actual_cost() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        // $0.01 daily cap on alice; estimate $0.006
        a.admit(&store, NOW, &mut charges, 6_000_000_000, 0).unwrap();
        let mut second = a.charges(alice, provider, model, Some(PRICE));
        let e = a.admit(&store, NOW, &mut second, 6_000_000_000, 0).map_err(ApiError::from).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (429, Some("budget_exceeded")));
        assert!(e.message.contains("key `alice`") && e.message.contains("daily cap is $0.01"), "{}", e.message);
        // the refused request released what it had reserved in the global scope
        assert_eq!(ledger::read(&store, &a.scopes[GLOBAL as usize].key, NOW).reserved_at(NOW), 6_000_000_000);
        let usage = Usage { input_tokens: 1000, output_tokens: 500, ..Default::default() };
        a.settle(&store, NOW, &charges, &outcome(&charges, Some(usage), false), None);
        let key = ledger::read(&store, &a.scopes[a.keys[0].scope as usize].key, NOW);
        assert_eq!((key.reserved_at(NOW), key.today.cost, key.today.requests), (0, 2_000_000_000, 1));
        let team = ledger::read(&store, &a.scopes[a.keys[0].team.unwrap() as usize].key, NOW);
        assert_eq!(team.this_month.cost, 2_000_000_000);
        // now there is room again
        let mut third = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut third, 6_000_000_000, 0).unwrap();
        a.release(&store, &mut third);
        assert_eq!(ledger::read(&store, &a.scopes[a.keys[0].scope as usize].key, NOW).reserved_at(NOW), 0);
    }

    #[test]
    fn batches_hold_uncapped_scopes_until_flushed_and_capped_ones_never() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let charges = a.charges(bob, provider, model, Some(PRICE));
        let mut batch = Batch::default();
        let done = outcome(&charges, Some(Usage { input_tokens: 10, ..Default::default() }), false);
        for _ in 0..3 {
            a.settle(&store, NOW, &charges, &done, Some(&mut batch));
        }
        let count = |id: ScopeId| ledger::read(&store, &a.scopes[id as usize].key, NOW).today.requests;
        assert_eq!(count(GLOBAL), 3, "the global scope has a cap: written at once");
        assert_eq!((count(provider), count(model), count(a.keys[1].scope)), (0, 0, 0));
        a.flush(&store, &mut batch);
        assert_eq!((count(provider), count(model), count(a.keys[1].scope)), (3, 3, 3));
        assert!(batch.is_empty());
    }

    #[test]
    fn estimates_and_outcomes() {
        let ask = Ask { input_tokens: 400, output_tokens: 10, choices: 1 };
        // input at the cache-write rate, the dearer one
        assert_eq!(estimate(Some(PRICE), ask), 400 * 1_250_000 + 10 * 2_000_000);
        assert_eq!(estimate(Some(PRICE), Ask { choices: 3, ..ask }), 400 * 1_250_000 + 30 * 2_000_000, "n choices");
        assert_eq!(estimate(Some(PRICE), Ask { choices: 0, ..ask }), estimate(Some(PRICE), ask), "n absent is one");
        assert_eq!(estimate(None, ask), 0);
        let charges = Charges { scopes: vec![], price: Some(PRICE), ..Charges::default() };
        let u = Usage { input_tokens: 10, cache_read_tokens: 100, ..Default::default() };
        assert_eq!(outcome(&charges, Some(u), false).cost, Some(10 * 1_000_000 + 100 * 100_000));
        assert_eq!(outcome(&Charges::default(), Some(u), false).cost, None);
    }

    #[test]
    fn input_bound_counts_bytes_media_and_tools() {
        assert_eq!(input_bound(1000, 0, false), 1000);
        assert_eq!(input_bound(1000, 2, false), 1000 + 2 * IMAGE_TOKENS);
        assert_eq!(input_bound(1000, 0, true), 1000 + TOOLS_TOKENS);
        // u64::MAX on 64-bit targets; on wasm32 usize is too small to reach it
        let widest = (usize::MAX as u128 * (1 + u128::from(IMAGE_TOKENS)) + u128::from(TOOLS_TOKENS)).min(u128::from(u64::MAX));
        assert_eq!(u128::from(input_bound(usize::MAX, usize::MAX, true)), widest, "saturates");
        // "日本語" is 9 bytes of UTF-8 and at most 3 tokens in any tokenizer; ÷ 4 would say 2
        assert!(input_bound("日本語".len(), 0, false) >= 3);
    }

    #[test]
    fn affordable_output_fits_the_headroom() {
        let ask = Ask { input_tokens: 100, output_tokens: 4096, choices: 1 };
        let input = 100 * 1_250_000;
        // room for the input and exactly 50 output tokens
        assert_eq!(affordable_output(PRICE, input + 50 * 2_000_000, ask), Some(50));
        assert_eq!(affordable_output(PRICE, input + 50 * 2_000_000 + 1_999_999, ask), Some(50), "rounds down");
        assert_eq!(affordable_output(PRICE, input + 2_000_000, ask), Some(1));
        assert_eq!(affordable_output(PRICE, input + 1_999_999, ask), None, "not one token");
        assert_eq!(affordable_output(PRICE, input - 1, ask), None, "not even the input");
        assert_eq!(affordable_output(PRICE, Pico::MAX, ask), Some(4096), "never above what was asked");
        assert_eq!(affordable_output(PRICE, input + 50 * 2_000_000, Ask { choices: 2, ..ask }), Some(25), "per choice");
        let free_output = Price { output: 0, ..PRICE };
        assert_eq!(affordable_output(free_output, input, ask), Some(4096));
        // the worst case of the clamped request fits exactly
        let room = input + 777 * 2_000_000 + 5;
        let limit = affordable_output(PRICE, room, ask).unwrap();
        assert!(estimate(Some(PRICE), Ask { output_tokens: limit, ..ask }) <= room);
        assert!(estimate(Some(PRICE), Ask { output_tokens: limit + 1, ..ask }) > room);
    }

    #[test]
    fn headroom_is_the_tightest_capped_scope() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let charges = a.charges(alice, provider, model, Some(PRICE));
        // alice: $0.01 a day; global $100 a day; team $5 a month
        assert_eq!(a.headroom(&store, NOW, &charges), Some(10_000_000_000));
        let mut held = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut held, 4_000_000_000, 0).unwrap();
        assert_eq!(a.headroom(&store, NOW, &charges), Some(6_000_000_000), "reservations count");
        assert_eq!(a.headroom(&store, NOW, &a.charges(bob, provider, model, Some(PRICE))), Some(100_000_000_000_000 - 4_000_000_000));
        let open = Accounting::new(PriceTable::default(), None).unwrap();
        assert_eq!(open.headroom(&store, NOW, &open.charges(Caller::default(), 0, 0, None)), None, "nothing capped");
    }

    #[test]
    fn levels_give_spent_and_remaining_per_cap_with_reservations_held() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let charges = a.charges(alice, provider, model, Some(PRICE));
        a.settle(&store, NOW, &charges, &Outcome { usage: None, cost: Some(3_000_000_000), failed: false }, None);
        let mut held = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut held, 1_000_000_000, 0).unwrap();
        let levels = a.levels(&store, NOW);
        // alice: $0.01 a day; the gateway: $100 a day; team research: $5 a month; bob: uncapped
        let level = |kind, name: &str| levels.iter().find(|l| l.kind == kind && l.name == name);
        assert_eq!(
            level("key", "alice"),
            Some(&BudgetLevel {
                kind: "key",
                name: "alice",
                period: "daily",
                limit: 10_000_000_000,
                spent: 3_000_000_000,
                remaining: 6_000_000_000
            })
        );
        assert_eq!(level("team", "research").map(|l| (l.period, l.spent)), Some(("monthly", 3_000_000_000)));
        assert_eq!(level("global", "all").map(|l| l.remaining), Some(100_000_000_000_000 - 4_000_000_000));
        assert_eq!(level("key", "bob"), None, "uncapped scopes have no level");
        a.settle(&store, NOW, &charges, &Outcome { usage: None, cost: Some(20_000_000_000), failed: false }, None);
        assert_eq!(a.levels(&store, NOW).iter().find(|l| l.name == "alice").map(|l| l.remaining), Some(0), "never below zero");
    }

    #[test]
    fn soft_limit_and_report() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let charges = a.charges(alice, provider, model, Some(PRICE));
        assert!(a.has_soft_limits());
        assert!(!a.caller_over_soft_limit(&store, NOW, alice));
        let big = Outcome { usage: None, cost: Some(2_600_000_000_000), failed: false };
        a.settle(&store, NOW, &charges, &big, None);
        assert!(a.caller_over_soft_limit(&store, NOW, alice), "team research is past 50% of $5");
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        assert!(!a.caller_over_soft_limit(&store, NOW, bob), "bob has no team");
        let report: serde_json::Value = serde_json::from_slice(&a.report(&store, NOW, None)).unwrap();
        assert_eq!(report["day"], "2026-11-24");
        assert_eq!(report["scopes"]["teams"]["research"]["month"]["cost_usd"], "2.6");
        assert_eq!(report["scopes"]["teams"]["research"]["budget"]["monthly_remaining_usd"], "2.4");
        assert_eq!(report["scopes"]["keys"]["alice"]["budget"]["daily_remaining_usd"], "0");
        assert_eq!(report["scopes"]["global"]["all"]["today"]["unpriced_requests"], 0);
        assert!(report["scopes"]["keys"]["bob"]["budget"].is_null());
    }

    #[test]
    fn a_reservation_whose_settlement_gave_up_is_released_by_its_lifetime() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        a.lifetime = Lifetime { ms: 60_000 };
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let key = |a: &Accounting| a.scopes[a.keys[0].scope as usize].key.clone();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut charges, 9_000_000_000, 0).unwrap();
        assert_eq!(charges.expires_ms, a.lifetime.expiry(NOW));
        // every write of the settlement to alice's record loses its CAS race: it gives up
        store.contend(&key(&a), usize::MAX);
        a.settle(&store, NOW + 1, &charges, &outcome(&charges, None, true), None);
        store.contend(&key(&a), 0);
        assert_eq!(ledger::read(&store, &key(&a), NOW + 1).reserved_at(NOW + 1), 9_000_000_000, "still held");
        let mut next = a.charges(alice, provider, model, Some(PRICE));
        assert_eq!(a.admit(&store, NOW + 1, &mut next, 2_000_000_000, 0).map_err(ApiError::from).unwrap_err().status, 429);
        // after the lifetime the leaked reservation no longer counts
        let later = charges.expires_ms;
        a.admit(&store, later, &mut next, 2_000_000_000, 0).unwrap();
        assert_eq!(ledger::read(&store, &key(&a), later).reserved_at(later), 2_000_000_000);
    }

    #[test]
    fn a_reservation_that_gives_up_releases_what_it_took() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        // the global scope is reserved first; then every write to alice's loses its race
        let global = a.scopes[GLOBAL as usize].key.clone();
        store.contend(&a.scopes[a.keys[0].scope as usize].key, usize::MAX);
        let e = a.admit(&store, NOW, &mut charges, 1_000, 0).map_err(ApiError::from).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (503, Some("budget_unavailable")));
        assert_eq!(ledger::read(&store, &global, NOW).reserved_at(NOW), 0, "the global reservation was given back");
        assert!(charges.scopes.iter().all(|(_, r)| *r == 0));
    }

    #[test]
    fn a_retargeted_tab_counts_where_the_answer_came_from() {
        let mut a = accounting();
        let (p1, m1, p2, m2) = (a.scope("provider", "p1"), a.scope("model", "m1"), a.scope("provider", "p2"), a.scope("model", "m2"));
        let store = MemoryStore::default();
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let mut charges = a.charges(bob, p1, m1, Some(PRICE));
        let dearer = Price { output: 9_000_000, ..PRICE };
        charges.retarget(p2, m2, Some(dearer));
        assert_eq!(charges.price, Some(dearer));
        let done = outcome(&charges, Some(Usage { output_tokens: 1, ..Default::default() }), false);
        assert_eq!(done.cost, Some(9_000_000));
        a.settle(&store, NOW, &charges, &done, None);
        let count = |id: ScopeId| ledger::read(&store, &a.scopes[id as usize].key, NOW).today.requests;
        assert_eq!((count(p1), count(m1), count(p2), count(m2), count(a.keys[1].scope)), (0, 0, 1, 1, 1));
    }

    #[test]
    fn batches_keep_scopes_and_days_apart() {
        let mut batch = Batch::default();
        assert!(batch.is_empty());
        let one = Outcome { usage: None, cost: Some(1), failed: false };
        batch.add(1, NOW, &one);
        assert!(!batch.is_empty());
        batch.add(1, NOW + 1, &one);
        batch.add(2, NOW, &one);
        batch.add(1, NOW + crate::clock::MS_PER_DAY, &one);
        let summary: Vec<(ScopeId, u32, u64)> = batch.pending.iter().map(|(s, d, _, t)| (*s, *d, t.requests)).collect();
        let day = Period::at(NOW).day;
        assert_eq!(summary, vec![(1, day, 2), (2, day, 1), (1, day + 1, 1)]);
    }

    #[test]
    fn settling_batches_only_uncapped_scopes_without_reservations() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        a.ensure_records(&store);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut charges, 100, 0).unwrap();
        let mut batch = Batch::default();
        a.settle(&store, NOW, &charges, &outcome(&charges, None, false), Some(&mut batch));
        let count = |id: ScopeId| ledger::read(&store, &a.scopes[id as usize].key, NOW).today.requests;
        // global, alice and research have caps: written at once; provider and model batched
        assert_eq!((count(GLOBAL), count(a.keys[0].scope), count(a.keys[0].team.unwrap())), (1, 1, 1));
        assert_eq!((count(provider), count(model)), (0, 0));
        let pending: Vec<ScopeId> = batch.pending.iter().map(|(s, ..)| *s).collect();
        assert_eq!(pending, vec![provider, model]);
        a.flush(&store, &mut batch);
        assert_eq!((count(provider), count(model)), (1, 1));
        assert_eq!(ledger::read(&store, &a.scopes[a.keys[0].scope as usize].key, NOW).reserved_at(NOW), 0);
    }

    #[test]
    fn releasing_touches_only_scopes_holding_a_reservation() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let store = MemoryStore::default();
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut charges, 100, 0).unwrap();
        let reserved: Vec<Pico> = charges.scopes.iter().map(|(_, r)| *r).collect();
        assert_eq!(reserved, vec![100, 0, 0, 100, 100], "global, key and team are capped");
        a.release(&store, &mut charges);
        assert!(charges.scopes.iter().all(|(_, r)| *r == 0));
        let written = store.keys();
        assert!(!written.contains(&a.scopes[provider as usize].key) && !written.contains(&a.scopes[model as usize].key), "{written:?}");
        assert_eq!(ledger::read(&store, &a.scopes[GLOBAL as usize].key, NOW).reserved_at(NOW), 0);
        a.ensure_records(&store);
        assert!(store.keys().contains(&a.scopes[provider as usize].key));
    }

    #[test]
    fn soft_limits_trip_at_exactly_their_share_of_either_cap() {
        let team_key = |a: &Accounting| a.scopes[a.keys[0].team.unwrap() as usize].key.clone();
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "p"), a.scope("model", "m"));
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        // research: 50 % of $5 a month is $2.5
        let half: Pico = 2_500_000_000_000;
        for (spent, reserved, over) in [(half - 1, 0, false), (half, 0, true), (half - 10, 10, true), (half - 11, 10, false)] {
            let store = MemoryStore::default();
            ledger::settle(&store, &team_key(&a), NOW, &Outcome { usage: None, cost: Some(spent), failed: false }, Hold::default())
                .unwrap();
            if reserved > 0 {
                ledger::reserve(&store, &team_key(&a), NOW, Hold { amount: reserved, expires_ms: NOW + 1 }, &Caps::default())
                    .unwrap()
                    .unwrap();
            }
            assert_eq!(a.caller_over_soft_limit(&store, NOW, alice), over, "spent {spent} reserved {reserved}");
        }
        // a daily cap with a soft limit counts too
        let daily: BudgetSpec = parse(serde_json::json!({"daily_usd": "1", "soft_limit_percent": 10}));
        let d = Accounting::new(PriceTable::default(), Some(&daily)).unwrap();
        let store = MemoryStore::default();
        d.ensure_records(&store);
        let charges = d.charges(Caller::default(), provider, model, None);
        assert!(!d.caller_over_soft_limit(&store, NOW, Caller::default()));
        d.settle(&store, NOW, &charges, &Outcome { usage: None, cost: Some(100_000_000_000), failed: false }, None);
        assert!(d.caller_over_soft_limit(&store, NOW, Caller::default()), "10 % of $1");
        assert!(!Accounting::new(PriceTable::default(), None).unwrap().has_soft_limits());
    }

    #[test]
    fn the_report_groups_every_kind_of_scope() {
        let mut a = accounting();
        let (provider, model) = (a.scope("provider", "openai"), a.scope("model", "gpt"));
        let store = MemoryStore::default();
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        let mut charges = a.charges(alice, provider, model, Some(PRICE));
        a.admit(&store, NOW, &mut charges, 3_000_000_000, 0).unwrap();
        let report: serde_json::Value = serde_json::from_slice(&a.report(&store, NOW + 1_500, None)).unwrap();
        assert_eq!(report["object"], "tollgate.usage");
        assert_eq!(report["generated_at"], (NOW + 1_500) / 1000);
        assert_eq!(report["month"], "2026-11");
        let names = |group: &str| report["scopes"][group].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(names("global"), vec!["all"]);
        assert_eq!(names("providers"), vec!["openai"]);
        assert_eq!(names("models"), vec!["gpt"]);
        assert_eq!(names("keys"), vec!["alice", "bob"]);
        assert_eq!(names("teams"), vec!["research"]);
        assert_eq!(report["scopes"]["keys"]["alice"]["reserved_usd"], "0.003");
        assert_eq!(report["scopes"]["keys"]["alice"]["budget"]["daily_usd"], "0.01");
        assert_eq!(report["scopes"]["keys"]["alice"]["budget"]["daily_remaining_usd"], "0.007");
        assert!(report["scopes"]["teams"]["research"]["budget"]["daily_usd"].is_null());
    }

    #[test]
    fn scopes_are_registered_once_and_keys_validated() {
        let mut a = Accounting::new(PriceTable::default(), None).unwrap();
        let first = a.scope("model", "m");
        assert_eq!(first, 1, "after the global scope");
        assert_eq!(a.scope("model", "m"), first);
        assert_eq!(a.scope("provider", "m"), 2, "kind and name make a scope");
        assert_eq!(a.scope("model", "n"), 3);
        let key = |id: &str, sha: &[u8; 32]| serde_json::json!({"id": id, "sha256": hex(sha)});
        let field = |keys: serde_json::Value| {
            let auth: AuthSpec = parse(serde_json::json!({"keys": keys}));
            Accounting::new(PriceTable::default(), None).unwrap().add_auth(&auth, &BTreeMap::new()).err().map(|e| e.field)
        };
        assert_eq!(field(serde_json::json!([key("ok-id_1.x@y", &[1; 32])])), None);
        assert_eq!(field(serde_json::json!([key("", &[1; 32])])).as_deref(), Some("auth.keys[0].id"));
        assert_eq!(field(serde_json::json!([key("bad id", &[1; 32])])).as_deref(), Some("auth.keys[0].id"));
        assert_eq!(field(serde_json::json!([key("a", &[1; 32]), key("a", &[2; 32])])).as_deref(), Some("auth.keys[1].id"));
        assert_eq!(field(serde_json::json!([key("a", &[1; 32]), key("b", &[1; 32])])).as_deref(), Some("auth.keys[1].sha256"));
        let a = accounting();
        let team = &a.scopes[a.keys[0].team.unwrap() as usize];
        assert_eq!(
            (team.kind, team.name.as_str(), team.caps.monthly, team.soft_percent),
            ("team", "research", Some(5_000_000_000_000), Some(50))
        );
        let alice = &a.scopes[a.keys[0].scope as usize];
        assert_eq!((alice.kind, alice.caps.daily), ("key", Some(10_000_000_000)));
        assert!(a.keys[1].team.is_none());
        let budget = |v: serde_json::Value| Accounting::new(PriceTable::default(), Some(&parse(v))).err().map(|e| e.field);
        assert_eq!(budget(serde_json::json!({"daily_usd": "1", "soft_limit_percent": 0})).as_deref(), Some("budget.soft_limit_percent"));
        assert_eq!(budget(serde_json::json!({"daily_usd": "1", "soft_limit_percent": 101})).as_deref(), Some("budget.soft_limit_percent"));
        assert_eq!(budget(serde_json::json!({"monthly_usd": "1", "soft_limit_percent": 100})), None);
        let global = Accounting::new(PriceTable::default(), Some(&parse(serde_json::json!({"monthly_usd": "2"})))).unwrap();
        assert_eq!(
            (global.scopes[0].caps.monthly, global.scopes[0].caps.daily, global.scopes[0].soft_percent),
            (Some(2_000_000_000_000), None, None)
        );
    }

    /// Alice (team research) with 2 requests a minute, her team with 1,000 tokens, the model
    /// `m` with 5 requests and the gateway with 10.
    fn rate_limited() -> (Accounting, Caller, ScopeId) {
        let auth: AuthSpec = parse(serde_json::json!({"keys": [
            {"id": "alice", "sha256": hex(&keys::hash("tg-alice")), "team": "research", "rate_limit": {"requests_per_minute": 2}},
            {"id": "bob", "sha256": hex(&keys::hash("tg-bob")), "team": "research"}
        ]}));
        let teams: BTreeMap<String, TeamSpec> = parse(serde_json::json!({"research": {"rate_limit": {"tokens_per_minute": 1000}}}));
        let mut a = Accounting::new(PriceTable::default(), None).unwrap();
        a.add_auth(&auth, &teams).unwrap();
        let model = a.scope("model", "m");
        a.limit_rate("model", "m", "f", &parse(serde_json::json!({"requests_per_minute": 5}))).unwrap().unwrap();
        a.limit_rate("global", "all", "f", &parse(serde_json::json!({"requests_per_minute": 10}))).unwrap().unwrap();
        assert_eq!(a.limit_rate("model", "other", "f", &RateLimitSpec::default()).unwrap(), None);
        let alice = a.authenticate(Some("Bearer tg-alice")).unwrap();
        (a, alice, model)
    }

    fn refusal(r: Result<(), Refusal>) -> ApiError {
        ApiError::from(r.unwrap_err())
    }

    #[test]
    fn rate_limits_of_every_scope_apply_and_the_tightest_is_reported() {
        let (a, alice, model) = rate_limited();
        let store = MemoryStore::default();
        let provider = a.scopes.len() as ScopeId; // no such scope: not limited
        let mut first = a.charges(alice, provider, model, None);
        a.admit(&store, NOW, &mut first, 0, 300).unwrap();
        let requests = first.standings.requests.unwrap();
        assert_eq!((requests.limit, requests.remaining), (2, 1), "alice's limit is the tightest");
        assert_eq!(first.standings.tokens.unwrap().remaining, 700);
        a.admit(&store, NOW, &mut a.charges(alice, provider, model, None), 0, 300).unwrap();
        let e = refusal(a.admit(&store, NOW, &mut a.charges(alice, provider, model, None), 0, 300));
        assert_eq!((e.status, e.kind.as_ref(), e.code.as_deref()), (429, "requests", Some("rate_limit_exceeded")));
        assert_eq!(
            e.message,
            "Rate limit reached for key `alice` on requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in 30s."
        );
        let headers = e.headers.unwrap().0;
        assert!(headers.contains(&("retry-after", "30".into())), "{headers:?}");
        assert!(headers.contains(&("retry-after-ms", "30000".into())));
        assert!(headers.contains(&("x-ratelimit-remaining-requests", "0".into())));
        // Bob shares the team's tokens: 600 of 1,000 are taken.
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let e = refusal(a.admit(&store, NOW, &mut a.charges(bob, provider, model, None), 0, 500));
        assert_eq!(e.kind, "tokens");
        assert!(
            e.message.starts_with("Rate limit reached for team `research` on tokens per min (TPM): Limit 1000, Used 600, Requested 500.")
        );
        let e = refusal(a.admit(&store, NOW, &mut a.charges(bob, provider, model, None), 0, 1001));
        assert_eq!(e.message, "Request too large for team `research` on tokens per min (TPM): Limit 1000, Requested 1001.");
        assert!(!e.headers.unwrap().0.iter().any(|(n, _)| n.starts_with("retry-after")), "it never fits: no retry-after");
        // The model's 5 requests: alice's two and bob's three.
        for _ in 0..3 {
            a.admit(&store, NOW, &mut a.charges(bob, provider, model, None), 0, 1).unwrap();
        }
        let e = refusal(a.admit(&store, NOW, &mut a.charges(bob, provider, model, None), 0, 1));
        assert!(e.message.starts_with("Rate limit reached for model `m`"), "{}", e.message);
    }

    #[test]
    fn a_refused_request_gives_back_what_other_scopes_took() {
        let (a, alice, model) = rate_limited();
        let store = MemoryStore::default();
        let provider = a.scopes.len() as ScopeId;
        // The team's tokens refuse after the gateway's and the model's buckets took a request.
        refusal(a.admit(&store, NOW, &mut a.charges(alice, provider, model, None), 0, 2000));
        let mut next = a.charges(alice, provider, model, None);
        a.admit(&store, NOW, &mut next, 0, 1).unwrap();
        assert_eq!(next.standings.requests.unwrap().remaining, 1, "alice's bucket got its request back");
        // A request released before it reached a provider gives its request and tokens back.
        a.release(&store, &mut next);
        let mut again = a.charges(alice, provider, model, None);
        a.admit(&store, NOW, &mut again, 0, 1000).unwrap();
        assert_eq!(again.standings.requests.unwrap().remaining, 1);
        assert_eq!(again.standings.tokens.unwrap().remaining, 0);
    }

    #[test]
    fn settling_replaces_the_token_estimate_with_the_reported_usage() {
        let (a, alice, model) = rate_limited();
        let store = MemoryStore::default();
        let provider = a.scopes.len() as ScopeId;
        let mut charges = a.charges(alice, provider, model, None);
        a.admit(&store, NOW, &mut charges, 0, 900).unwrap();
        let usage = Usage { input_tokens: 50, cache_read_tokens: 20, cache_write_tokens: 10, output_tokens: 120, ..Default::default() };
        a.settle(&store, NOW, &charges, &outcome(&charges, Some(usage), false), None);
        let mut next = a.charges(alice, provider, model, None);
        a.admit(&store, NOW, &mut next, 0, 1).unwrap();
        assert_eq!(next.standings.tokens.unwrap().remaining, 1000 - 200 - 1);
        // No usage reported: the estimate stays counted.
        a.settle(&store, NOW, &next, &outcome(&next, None, true), None);
        let bob = a.authenticate(Some("Bearer tg-bob")).unwrap();
        let e = refusal(a.admit(&store, NOW, &mut a.charges(bob, provider, model, None), 0, 800));
        assert!(e.message.contains("Used 201, Requested 800"), "{}", e.message);
    }

    #[test]
    fn rate_limits_must_be_positive() {
        let mut a = Accounting::new(PriceTable::default(), None).unwrap();
        let zero: RateLimitSpec = parse(serde_json::json!({"tokens_per_minute": 0}));
        assert_eq!(a.limit_rate("global", "all", "rate_limits.gateway", &zero).unwrap_err().field, "rate_limits.gateway.tokens_per_minute");
        let auth: AuthSpec =
            parse(serde_json::json!({"keys": [{"id": "x", "sha256": hex(&[0; 32]), "rate_limit": {"requests_per_minute": 0}}]}));
        assert_eq!(a.add_auth(&auth, &BTreeMap::new()).unwrap_err().field, "auth.keys[0].rate_limit.requests_per_minute");
    }

    #[test]
    fn descriptor_headers_name_key_team_and_model_when_asked_for() {
        let (mut a, alice, model) = rate_limited();
        assert!(a.descriptor_headers(alice, model).is_empty(), "off by default: nothing leaves the gateway");
        a.descriptor_headers = true;
        let named = a.descriptor_headers(alice, model);
        assert_eq!(
            named,
            [("x-tollgate-rl-key", "alice".to_owned()), ("x-tollgate-rl-team", "research".into()), ("x-tollgate-rl-model", "m".into())]
        );
        let anonymous = a.descriptor_headers(Caller::default(), model);
        assert_eq!(anonymous, [("x-tollgate-rl-model", "m".to_owned())]);
    }
}
