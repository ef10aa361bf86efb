//! One JSON object per request for Envoy's access log (exported as filter state): what was asked,
//! what served it, tokens, cost, who asked, timings. Never secrets; never prompt text.

use super::Exchange;
use crate::accounting::budget::{Accounting, Caller};
use crate::accounting::money::format_usd;
use crate::config::Config;
use crate::guardrails::{Audit, Guardrails};
use serde::Serialize;

#[derive(Serialize, Default)]
pub struct Entry<'a> {
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<&'a str>,
    /// The API the client spoke (`openai_chat`, `anthropic_messages`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<&'static str>,
    pub stream: bool,
    pub completed: bool,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Exact, in USD; `null` when the answer could not be priced.
    pub cost_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_params: Vec<&'a str>,
    /// What the guardrails found and did: detector, action, direction, count (never the text).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailEntry<'a>>,
}

#[derive(Serialize)]
pub struct GuardrailEntry<'a> {
    pub detector: &'a str,
    pub action: &'static str,
    pub direction: &'static str,
    pub count: u32,
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
        ..Default::default()
    };
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The entry of a request Tollgate answered itself.
pub fn for_reply(config: &Config, caller: Caller, status: u16, error_code: Option<&str>, audit: &Audit) -> Vec<u8> {
    let (key_id, team) = caller_names(&config.accounting, caller);
    let guardrails = guardrail_entries(&config.guardrails, audit);
    let entry = Entry { status, error_code, key_id, team, guardrails, ..Default::default() };
    serde_json::to_vec(&entry).unwrap_or_default()
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
}
