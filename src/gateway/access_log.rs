//! One JSON object per request for Envoy's access log (exported as filter state): what was asked,
//! what served it, tokens, cost, who asked, timings. Never secrets; never prompt text.

use super::Exchange;
use crate::accounting::budget::{Accounting, Caller};
use crate::accounting::money::format_usd;
use crate::config::Config;
use crate::guardrails::{Audit, Guardrails};

/// The entry's fields, in the order they are written; `None` and empty ones are left out, except
/// `cost_usd` (`null`: the answer could not be priced).
#[derive(Default)]
pub struct Entry<'a> {
    pub status: u16,
    pub error_code: Option<&'a str>,
    pub model: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub upstream_model: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub team: Option<&'a str>,
    /// The API the client spoke (`openai_chat`, `anthropic_messages`).
    pub dialect: Option<&'static str>,
    pub stream: bool,
    pub completed: bool,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Exact, in USD.
    pub cost_usd: Option<String>,
    pub time_to_first_token_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub dropped_params: Vec<&'a str>,
    /// What the guardrails found and did: detector, action, direction, count (never the text).
    pub guardrails: Vec<GuardrailEntry<'a>>,
}

pub struct GuardrailEntry<'a> {
    pub detector: &'a str,
    pub action: &'static str,
    pub direction: &'static str,
    pub count: u32,
}

/// Writes a JSON object whose member names are literals (ASCII, nothing to escape): only the
/// values go through the JSON encoder, which is most of what an entry costs otherwise.
struct Object {
    out: Vec<u8>,
    first: bool,
}

impl Object {
    fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        Object { out, first: true }
    }

    fn name(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn value(&mut self, name: &str, value: &impl serde::Serialize) {
        self.name(name);
        // Writing into a Vec fails only for values that are not JSON, which none of these is.
        let _ = serde_json::to_writer(&mut self.out, value);
    }

    fn some(&mut self, name: &str, value: Option<&impl serde::Serialize>) {
        if let Some(value) = value {
            self.value(name, value);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

impl Entry<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        let mut o = Object::new(512);
        o.value("status", &self.status);
        o.some("error_code", self.error_code.as_ref());
        o.some("model", self.model.as_ref());
        o.some("provider", self.provider.as_ref());
        o.some("upstream_model", self.upstream_model.as_ref());
        o.some("key_id", self.key_id.as_ref());
        o.some("team", self.team.as_ref());
        o.some("dialect", self.dialect.as_ref());
        o.value("stream", &self.stream);
        o.value("completed", &self.completed);
        o.value("input_tokens", &self.input_tokens);
        o.value("cached_input_tokens", &self.cached_input_tokens);
        o.value("cache_write_tokens", &self.cache_write_tokens);
        o.value("output_tokens", &self.output_tokens);
        o.value("reasoning_tokens", &self.reasoning_tokens);
        o.value("cost_usd", &self.cost_usd);
        o.some("time_to_first_token_ms", self.time_to_first_token_ms.as_ref());
        o.some("duration_ms", self.duration_ms.as_ref());
        if !self.dropped_params.is_empty() {
            o.value("dropped_params", &self.dropped_params);
        }
        if !self.guardrails.is_empty() {
            o.name("guardrails");
            o.out.push(b'[');
            for (i, g) in self.guardrails.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                let mut line = Object::new(96);
                line.value("detector", &g.detector);
                line.value("action", &g.action);
                line.value("direction", &g.direction);
                line.value("count", &g.count);
                o.out.extend_from_slice(&line.finish());
            }
            o.out.push(b']');
        }
        o.finish()
    }
}

fn guardrail_entries<'a>(guardrails: &'a Guardrails, audit: &Audit) -> Vec<GuardrailEntry<'a>> {
    audit
        .iter()
        .map(|l| GuardrailEntry {
            detector: guardrails.name(l.detector),
            action: l.action.as_str(),
            direction: l.direction.as_str(),
            count: l.count,
        })
        .collect()
}

fn caller_names(accounting: &Accounting, caller: Caller) -> (Option<&str>, Option<&str>) {
    let Some(key) = caller.key.and_then(|k| accounting.keys.get(k)) else { return (None, None) };
    let team = key.team.and_then(|t| accounting.scopes.get(t as usize)).map(|s| s.name.as_str());
    (Some(key.id.as_str()), team)
}

/// The entry of a request that reached a provider.
pub fn for_exchange(config: &Config, ex: &Exchange, now_ms: u64) -> Vec<u8> {
    let (key_id, team) = caller_names(&config.accounting, ex.caller);
    let usage = ex.usage.unwrap_or_default();
    let entry = Entry {
        status: ex.status,
        error_code: ex.answer_blocked.then_some("content_blocked"),
        model: Some(&ex.requested_model),
        provider: ex.provider(config).map(|p| p.name.as_str()),
        upstream_model: Some(ex.upstream_model()),
        key_id,
        team,
        dialect: Some(ex.ctx.dialect.as_str()),
        stream: ex.ctx.stream,
        completed: ex.completed,
        input_tokens: usage.input_tokens,
        cached_input_tokens: usage.cache_read_tokens,
        cache_write_tokens: usage.cache_write_tokens,
        output_tokens: usage.output_tokens,
        reasoning_tokens: usage.reasoning_tokens,
        cost_usd: ex.cost().map(format_usd),
        time_to_first_token_ms: ex.time_to_first_token_ms(),
        duration_ms: (ex.started_ms > 0).then(|| now_ms.saturating_sub(ex.started_ms)),
        dropped_params: ex.dropped.iter().map(String::as_str).collect(),
        guardrails: guardrail_entries(&config.guardrails, &ex.guardrails),
    };
    entry.to_json()
}

/// The entry of a request Tollgate answered itself.
pub fn for_reply(config: &Config, caller: Caller, status: u16, error_code: Option<&str>, audit: &Audit) -> Vec<u8> {
    let (key_id, team) = caller_names(&config.accounting, caller);
    let guardrails = guardrail_entries(&config.guardrails, audit);
    Entry { status, error_code, key_id, team, guardrails, ..Default::default() }.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::budget::Charges;
    use crate::accounting::prices::Price;
    use crate::gateway::exchange::Opening;
    use crate::providers::ResponseContext;
    use crate::usage::Usage;
    use serde_json::{Value, json};

    fn config() -> Config {
        let hash: String = crate::accounting::keys::hash("tg-a").iter().map(|b| format!("{b:02x}")).collect();
        let json = format!(
            r#"{{"providers":{{"p":{{"kind":"openai_compatible","cluster":"c","host":"h"}}}},"models":{{"m":{{"provider":"p","model":"up"}}}},
               "auth":{{"keys":[{{"id":"alice","sha256":"{hash}","team":"t"}}]}},"teams":{{"t":{{}}}}}}"#
        );
        Config::from_json(json.as_bytes(), &|_| None, 0).unwrap()
    }

    #[test]
    fn exchange_entry_has_usage_cost_and_caller_but_no_secrets() {
        let c = config();
        let price = Price { input: 1_000_000, output: 1_000_000, cache_read: 0, cache_write: 0 };
        let mut ex = Exchange::new(Opening {
            ctx: ResponseContext { stream: true, model: "up".into(), ..Default::default() },
            dropped: vec!["temperature".into()],
            charges: Charges { price: Some(price), ..Default::default() },
            requested_model: "m".into(),
            caller: Caller { key: Some(0) },
            ..Default::default()
        });
        ex.status = 200;
        ex.completed = true;
        ex.started_ms = 1000;
        ex.first_byte_ms = Some(1100);
        ex.usage = Some(Usage { input_tokens: 3, output_tokens: 2, ..Default::default() });
        let v: Value = serde_json::from_slice(&for_exchange(&c, &ex, 1500)).unwrap();
        assert_eq!(
            v,
            json!({"status":200,"model":"m","provider":"p","upstream_model":"up","key_id":"alice","team":"t","dialect":"openai_chat","stream":true,
            "completed":true,"input_tokens":3,"cached_input_tokens":0,"cache_write_tokens":0,"output_tokens":2,"reasoning_tokens":0,
            "cost_usd":"0.000005","time_to_first_token_ms":100,"duration_ms":500,"dropped_params":["temperature"]})
        );
        assert!(!String::from_utf8(for_exchange(&c, &ex, 1500)).unwrap().contains("tg-a"));
    }

    #[test]
    fn reply_entry_names_the_error() {
        let c = config();
        let v: Value = serde_json::from_slice(&for_reply(&c, Caller::default(), 401, Some("invalid_api_key"), &Vec::new())).unwrap();
        assert_eq!(v["status"], 401);
        assert_eq!(v["error_code"], "invalid_api_key");
        assert_eq!(v["cost_usd"], Value::Null);
    }

    #[test]
    fn values_are_escaped_and_guardrail_lines_are_objects() {
        let entry = Entry {
            status: 200,
            model: Some("a \"quoted\" model\n"),
            cost_usd: Some("0.1".into()),
            guardrails: vec![GuardrailEntry { detector: "email", action: "redact", direction: "request", count: 2 }],
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&entry.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"status":200,"model":"a \"quoted\" model\n","stream":false,"completed":false,"input_tokens":0,"cached_input_tokens":0,
            "cache_write_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":"0.1",
            "guardrails":[{"detector":"email","action":"redact","direction":"request","count":2}]})
        );
    }
}
