//! Route conditions, compiled once: model names, headers, body metadata, caller, prompt
//! content and time-of-day windows. Every condition given must hold.

use crate::clock::MS_PER_DAY;
use crate::conversation::request::{Message, Role};
use crate::json::Str;
use crate::patterns;
use crate::schema::ConfigError;
use crate::schema::{MatchSpec, TimeSpec};
use regex_lite::Regex;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What a request offers to the conditions.
pub struct Facts<'r> {
    pub model: &'r str,
    /// Request headers (lower-case names).
    pub headers: &'r [(String, String)],
    pub user: Option<&'r str>,
    pub metadata: Option<&'r RawValue>,
    pub messages: &'r [Message<'r>],
    pub key: Option<&'r str>,
    pub team: Option<&'r str>,
    pub now_ms: u64,
    /// The guardrail detectors that found something in the prompt.
    pub guardrails: &'r [&'r str],
}

impl<'r> Facts<'r> {
    pub fn header(&self, name: &str) -> Option<&'r str> {
        crate::headers::value(self.headers, name)
    }
}

#[derive(Debug)]
struct Window {
    after_min: u32,
    before_min: u32,
    offset_min: i64,
    /// Bit 0 = Monday … bit 6 = Sunday; 0 = every day.
    days: u8,
}

impl Window {
    fn contains(&self, now_ms: u64) -> bool {
        let local_min = i64::try_from(now_ms / 60_000).unwrap_or(0) + self.offset_min;
        let minutes_per_day = i64::try_from(MS_PER_DAY / 60_000).unwrap_or(1440);
        let minute = u32::try_from(local_min.rem_euclid(minutes_per_day)).unwrap_or(0);
        // 1970-01-01 was a Thursday (Monday = 0 → Thursday = 3).
        let weekday = (local_min.div_euclid(minutes_per_day) + 3).rem_euclid(7);
        let day_ok = self.days == 0 || self.days & (1 << weekday) != 0;
        let in_window = if self.after_min <= self.before_min {
            self.after_min <= minute && minute < self.before_min
        } else {
            minute >= self.after_min || minute < self.before_min
        };
        day_ok && in_window
    }
}

#[derive(Debug, Default)]
pub struct Matcher {
    models: Vec<String>,
    headers: Vec<(String, String)>,
    metadata: Vec<(String, String)>,
    keys: Vec<String>,
    teams: Vec<String>,
    keywords: Vec<String>,
    regexes: Vec<Regex>,
    window: Option<Window>,
    guardrails: Vec<String>,
}

fn minutes(field: &str, hhmm: &str) -> Result<u32, ConfigError> {
    let bad = || ConfigError::new(field, format!("`{hhmm}` is not a time like 18:00"));
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || h == 24 && m > 0 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn compile_window(field: &str, t: &TimeSpec) -> Result<Window, ConfigError> {
    let offset_min = match t.utc_offset.as_deref() {
        None => 0,
        Some(o) => {
            let bad = || ConfigError::new(format!("{field}.utc_offset"), format!("`{o}` is not an offset like +01:00"));
            let sign = match o.get(..1) {
                Some("+") => 1,
                Some("-") => -1,
                _ => return Err(bad()),
            };
            sign * i64::from(minutes(&format!("{field}.utc_offset"), o.get(1..).unwrap_or_default()).map_err(|_| bad())?)
        }
    };
    let mut days = 0u8;
    for d in &t.days {
        let i = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .position(|n| d.eq_ignore_ascii_case(n))
            .ok_or_else(|| ConfigError::new(format!("{field}.days"), format!("`{d}` is not one of mon tue wed thu fri sat sun")))?;
        days |= 1 << i;
    }
    Ok(Window {
        after_min: minutes(&format!("{field}.after"), &t.after)?,
        before_min: minutes(&format!("{field}.before"), &t.before)?,
        offset_min,
        days,
    })
}

impl Matcher {
    pub fn compile(field: &str, m: &MatchSpec) -> Result<Matcher, ConfigError> {
        let mut regexes = Vec::new();
        let prompt = m.prompt.as_ref();
        for (i, r) in prompt.map(|p| p.regex.as_slice()).unwrap_or_default().iter().enumerate() {
            let re = Regex::new(&format!("(?i){r}")).map_err(|e| ConfigError::new(format!("{field}.prompt.regex[{i}]"), e.to_string()))?;
            regexes.push(re);
        }
        if prompt.is_some_and(|p| p.keywords.iter().any(String::is_empty)) {
            return Err(ConfigError::new(format!("{field}.prompt.keywords"), "keywords must not be empty"));
        }
        let lower = |map: &BTreeMap<String, String>| map.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        Ok(Matcher {
            models: m.models.clone(),
            headers: lower(&m.headers),
            metadata: m.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            keys: m.keys.clone(),
            teams: m.teams.clone(),
            keywords: prompt.map(|p| p.keywords.iter().map(|k| k.to_lowercase()).collect()).unwrap_or_default(),
            regexes,
            window: m.time.as_ref().map(|t| compile_window(&format!("{field}.time"), t)).transpose()?,
            guardrails: m.guardrails.clone(),
        })
    }

    /// Model names this route answers exactly (listed by `GET /v1/models`).
    pub fn exact_models(&self) -> impl Iterator<Item = &str> {
        self.models.iter().filter(|m| !m.contains('*')).map(String::as_str)
    }

    pub fn matches(&self, f: &Facts) -> bool {
        let any = |patterns: &[String], value: Option<&str>| {
            patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| patterns::matches(p, v)))
        };
        any(&self.models, Some(f.model))
            && any(&self.keys, f.key)
            && any(&self.teams, f.team)
            && self.headers.iter().all(|(name, pattern)| f.header(name).is_some_and(|v| patterns::matches(pattern, v)))
            && self.metadata_matches(f)
            && self.window.as_ref().is_none_or(|w| w.contains(f.now_ms))
            && self.prompt_matches(f)
            && (self.guardrails.is_empty() || self.guardrails.iter().any(|g| f.guardrails.contains(&g.as_str())))
    }

    /// Whether the rule matches on findings of guardrail detector `name`.
    pub fn names_guardrail(&self, name: &str) -> bool {
        self.guardrails.iter().any(|g| g == name)
    }

    fn metadata_matches(&self, f: &Facts) -> bool {
        if self.metadata.is_empty() {
            return true;
        }
        let map: BTreeMap<&str, Str> = f.metadata.and_then(|m| serde_json::from_str(m.get()).ok()).unwrap_or_default();
        self.metadata.iter().all(|(key, pattern)| {
            let value = if key == "user" { f.user } else { map.get(key.as_str()).map(|s| &**s) };
            value.is_some_and(|v| patterns::matches(pattern, v))
        })
    }

    fn prompt_matches(&self, f: &Facts) -> bool {
        if self.keywords.is_empty() && self.regexes.is_empty() {
            return true;
        }
        let texts: Vec<_> = f
            .messages
            .iter()
            .filter(|m| matches!(m.role, Role::System | Role::Developer | Role::User))
            .filter_map(|m| m.content.as_ref().map(|c| c.text()))
            .collect();
        let lowered: Vec<String> = if self.keywords.is_empty() { Vec::new() } else { texts.iter().map(|t| t.to_lowercase()).collect() };
        self.keywords.iter().any(|k| lowered.iter().any(|t| t.contains(k.as_str())))
            || self.regexes.iter().any(|re| texts.iter().any(|t| re.is_match(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat;

    fn matcher(json: &str) -> Matcher {
        Matcher::compile("routes[0].match", &serde_json::from_str(json).unwrap()).unwrap()
    }

    // 2026-11-24 (a Tuesday) 12:00 UTC
    const NOON_TUESDAY: u64 = 1_795_521_600_000;
    const HOUR: u64 = 3_600_000;

    fn check(m: &Matcher, body: &str, headers: &[(&str, &str)], key: Option<&str>, now_ms: u64) -> bool {
        let req = chat::parse(body.as_bytes()).unwrap();
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let facts = Facts {
            model: &req.model,
            headers: &headers,
            user: req.user.as_deref(),
            metadata: req.metadata,
            messages: &req.messages,
            key,
            team: None,
            now_ms,
            guardrails: &["iban"],
        };
        m.matches(&facts)
    }

    const BODY: &str = r#"{"model":"gpt-4o","user":"vip-7","metadata":{"department":"finance"},
        "messages":[{"role":"system","content":"You help with banking."},{"role":"user","content":"What is my Account Number 4111 1111?"},
                    {"role":"assistant","content":"transaction"}]}"#;

    #[test]
    fn empty_match_matches_everything() {
        assert!(check(&matcher("{}"), BODY, &[], None, 0));
    }

    #[test]
    fn models_headers_keys_and_metadata() {
        assert!(check(&matcher(r#"{"models":["gpt-*"]}"#), BODY, &[], None, 0));
        assert!(!check(&matcher(r#"{"models":["claude*"]}"#), BODY, &[], None, 0));
        let premium = matcher(r#"{"headers":{"X-Tier":"premium"}}"#);
        assert!(check(&premium, BODY, &[("x-tier", "premium")], None, 0));
        assert!(!check(&premium, BODY, &[("x-tier", "basic")], None, 0));
        assert!(!check(&premium, BODY, &[], None, 0));
        assert!(check(&matcher(r#"{"keys":["alice"]}"#), BODY, &[], Some("alice"), 0));
        assert!(!check(&matcher(r#"{"keys":["alice"]}"#), BODY, &[], None, 0));
        assert!(check(&matcher(r#"{"metadata":{"user":"vip-*","department":"finance"}}"#), BODY, &[], None, 0));
        assert!(!check(&matcher(r#"{"metadata":{"department":"sales"}}"#), BODY, &[], None, 0));
        assert!(check(&matcher(r#"{"guardrails":["card","iban"]}"#), BODY, &[], None, 0), "the test's findings are an IBAN");
        assert!(!check(&matcher(r#"{"guardrails":["card"]}"#), BODY, &[], None, 0));
    }

    #[test]
    fn prompt_keywords_and_regexes_ignore_case_and_assistant_text() {
        assert!(check(&matcher(r#"{"prompt":{"keywords":["account number"]}}"#), BODY, &[], None, 0));
        assert!(check(&matcher(r#"{"prompt":{"regex":["\\b\\d{4} \\d{4}\\b"]}}"#), BODY, &[], None, 0));
        assert!(check(&matcher(r#"{"prompt":{"regex":["BANKING"]}}"#), BODY, &[], None, 0));
        assert!(!check(&matcher(r#"{"prompt":{"keywords":["transaction"]}}"#), BODY, &[], None, 0), "assistant text is not the prompt");
    }

    #[test]
    fn time_windows_in_an_offset_and_across_midnight() {
        let evening = matcher(r#"{"time":{"after":"18:00","before":"08:00","utc_offset":"+01:00"}}"#);
        assert!(!check(&evening, BODY, &[], None, NOON_TUESDAY));
        assert!(check(&evening, BODY, &[], None, NOON_TUESDAY + 5 * HOUR), "18:00 local");
        assert!(check(&evening, BODY, &[], None, NOON_TUESDAY + 18 * HOUR), "07:00 local next day");
        assert!(!check(&evening, BODY, &[], None, NOON_TUESDAY + 19 * HOUR), "08:00 local");
        let weekdays = matcher(r#"{"time":{"after":"09:00","before":"17:00","days":["mon","tue"]}}"#);
        assert!(check(&weekdays, BODY, &[], None, NOON_TUESDAY));
        assert!(!check(&weekdays, BODY, &[], None, NOON_TUESDAY + 24 * HOUR), "Wednesday");
    }

    #[test]
    fn bad_conditions_name_their_field() {
        for (json, field) in [
            (r#"{"prompt":{"regex":["("]}}"#, "routes[0].match.prompt.regex[0]"),
            (r#"{"time":{"after":"25:00","before":"08:00"}}"#, "routes[0].match.time.after"),
            (r#"{"time":{"after":"18:00","before":"08:00","utc_offset":"1"}}"#, "routes[0].match.time.utc_offset"),
            (r#"{"time":{"after":"18:00","before":"08:00","days":["someday"]}}"#, "routes[0].match.time.days"),
            (r#"{"prompt":{"keywords":[""]}}"#, "routes[0].match.prompt.keywords"),
        ] {
            let e = Matcher::compile("routes[0].match", &serde_json::from_str(json).unwrap()).unwrap_err();
            assert_eq!(e.field, field, "{json}");
        }
    }
}
