//! Tollgate's facts about a request as OpenTelemetry GenAI span attributes on Envoy's own span.
//!
//! With `span_attributes` configured, each attribute is one filter state value,
//! `wasm.<attribute name>`, which Envoy's tracer copies
//! onto the request's span through a `custom_tags` entry
//! `{tag: <name>, value: "%FILTER_STATE(wasm.<name>:PLAIN)%"}` (examples/tracing/envoy.yaml).
//! Envoy applies custom tags when the stream completes, before the filters' `on_log` (checked on
//! Envoy 1.40: filter state set in `on_log` never reaches the span), so the attributes are set as
//! the answer passes: who serves it when its headers arrive, usage and cost with its last byte.
//!
//! Names and values follow the GenAI semantic conventions where they define one
//! (open-telemetry/semantic-conventions, model/gen-ai/registry.yaml: `gen_ai.provider.name`
//! members, `gen_ai.operation.name` members, `gen_ai.usage.*`); Tollgate's own facts are
//! `tollgate.*`. Every value is Tollgate's: names from the configuration, counts from the
//! provider's usage, times from the host clock; no header a client sends becomes an attribute,
//! and filter state is written by Envoy's filters only. The exception is a wildcard model
//! entry's upstream model, the client's model name, named as `gen_ai.response.model` only once
//! the provider answered it completely.

use super::Exchange;
use super::response::Effect;
use crate::accounting::money::format_usd;
use crate::config::Config;
use crate::providers::{Operation, Provider};
use crate::schema::ProviderKind;

pub const OPERATION_NAME: &str = "gen_ai.operation.name";
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// Every input token, cache reads and writes included, as the conventions count them.
pub const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const CACHE_READ_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
pub const CACHE_CREATION_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
pub const COST_USD: &str = "tollgate.cost_usd";
pub const ROUTE: &str = "tollgate.route";
pub const ATTEMPTS: &str = "tollgate.attempts";
pub const TIME_TO_FIRST_TOKEN_MS: &str = "tollgate.time_to_first_token_ms";

/// Every attribute Tollgate sets, in the order of the README's table.
pub const ATTRIBUTES: [&str; 12] = [
    OPERATION_NAME,
    PROVIDER_NAME,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    CACHE_READ_TOKENS,
    CACHE_CREATION_TOKENS,
    COST_USD,
    ROUTE,
    ATTEMPTS,
    TIME_TO_FIRST_TOKEN_MS,
];

/// The provider as the conventions' `gen_ai.provider.name` names it. An OpenAI-compatible
/// server has no well-known name of its own: its configured name stands for it (e.g. `groq`).
pub fn provider_name(provider: &Provider) -> &str {
    match provider.kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Azure => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        // generativelanguage.googleapis.com and aiplatform.googleapis.com, as the members' notes say.
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Vertex => "gcp.vertex_ai",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::Cohere => "cohere",
        ProviderKind::OpenaiCompatible => &provider.name,
    }
}

/// Chat completions, Messages and Responses are all `chat`; counting tokens and reading a
/// stored response are no GenAI operation of the conventions.
fn operation_name(operation: Operation) -> Option<&'static str> {
    match operation {
        Operation::Chat => Some("chat"),
        Operation::Embeddings => Some("embeddings"),
        Operation::CountTokens | Operation::StoredResponse => None,
    }
}

fn set(name: &'static str, value: impl Into<String>) -> Effect {
    Effect::SetProperty(name, value.into().into_bytes())
}

/// When the answer's headers arrive: what was asked and who serves it (after a failover, the
/// target that answered). A stream the client leaves early still carries these.
pub fn at_response_head(config: &Config, ex: &Exchange) -> Vec<Effect> {
    let mut effects = Vec::with_capacity(5);
    if let Some(operation) = operation_name(ex.ctx.operation) {
        effects.push(set(OPERATION_NAME, operation));
    }
    if let Some(provider) = ex.provider(config) {
        effects.push(set(PROVIDER_NAME, provider_name(provider)));
    }
    // The model's counter scope, as the `gen_ai_request_model` metric label names it: the
    // configured upstream model, or the pattern of a wildcard entry.
    if let Some(scope) = config.accounting.scopes.get(ex.model_scope as usize) {
        effects.push(set(REQUEST_MODEL, scope.name.as_str()));
    }
    if let Some(route) = ex.route_index().and_then(|r| config.router.routes.get(r)) {
        effects.push(set(ROUTE, route.name.as_str()));
    }
    effects.push(set(ATTEMPTS, ex.attempts.to_string()));
    effects
}

/// With the answer's last byte: the model that answered (complete answers only: an error's or
/// a refused answer's model is only what was asked), usage, cost and time to first token.
pub fn at_end(ex: &Exchange) -> Vec<Effect> {
    let mut effects = Vec::with_capacity(7);
    if ex.completed {
        effects.push(set(RESPONSE_MODEL, ex.upstream_model()));
    }
    if let Some(usage) = ex.usage {
        effects.push(set(INPUT_TOKENS, usage.prompt_tokens().to_string()));
        effects.push(set(OUTPUT_TOKENS, usage.output_tokens.to_string()));
        effects.push(set(CACHE_READ_TOKENS, usage.cache_read_tokens.to_string()));
        effects.push(set(CACHE_CREATION_TOKENS, usage.cache_write_tokens.to_string()));
    }
    if let Some(cost) = ex.cost() {
        effects.push(set(COST_USD, format_usd(cost)));
    }
    if let Some(ttft) = ex.time_to_first_token_ms() {
        effects.push(set(TIME_TO_FIRST_TOKEN_MS, ttft.to_string()));
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::budget::Charges;
    use crate::accounting::prices::Price;
    use crate::gateway::exchange::Opening;
    use crate::providers::ResponseContext;
    use crate::usage::Usage;

    fn config() -> Config {
        let json = r#"{"providers":{
            "oa":{"kind":"openai","cluster":"c","api_key_env":"K"},
            "az":{"kind":"azure","cluster":"c","host":"x.openai.azure.com","api_key_env":"K","api_version":"v1"},
            "an":{"kind":"anthropic","cluster":"c","api_key_env":"K"},
            "ge":{"kind":"gemini","cluster":"c","api_key_env":"K"},
            "ve":{"kind":"vertex","cluster":"c","api_key_env":"K","project":"p","location":"us-central1"},
            "be":{"kind":"bedrock","cluster":"c","region":"us-east-1"},
            "co":{"kind":"cohere","cluster":"c","api_key_env":"K"},
            "groq":{"kind":"openai_compatible","cluster":"c","host":"api.groq.com"}},
            "models":{"m":{"provider":"oa","model":"up"}},
            "routes":[{"name":"r","match":{"models":["routed"]},"targets":[{"provider":"oa","model":"t"}]}]}"#;
        Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap()
    }

    fn props(effects: &[Effect]) -> Vec<(&'static str, String)> {
        effects
            .iter()
            .map(|e| match e {
                Effect::SetProperty(name, value) => (*name, String::from_utf8(value.clone()).unwrap()),
                other => panic!("not a property: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn provider_names_are_the_conventions_well_known_values() {
        let c = config();
        let names: Vec<(&str, &str)> = c.providers.iter().map(|p| (p.name.as_str(), provider_name(p))).collect();
        for expected in [
            ("oa", "openai"),
            ("az", "azure.ai.openai"),
            ("an", "anthropic"),
            ("ge", "gcp.gemini"),
            ("ve", "gcp.vertex_ai"),
            ("be", "aws.bedrock"),
            ("co", "cohere"),
            ("groq", "groq"),
        ] {
            assert!(names.contains(&expected), "{expected:?} not in {names:?}");
        }
    }

    fn exchange(c: &Config, operation: Operation) -> Exchange {
        routed(c, operation, None)
    }

    fn routed(c: &Config, operation: Operation, route: Option<usize>) -> Exchange {
        let provider = c.providers.iter().position(|p| p.name == "oa").unwrap();
        let scope = c.accounting.scopes.iter().position(|s| s.name == "up").unwrap() as u32;
        Exchange::new(Opening {
            provider,
            ctx: ResponseContext { stream: true, model: "up".into(), operation, ..Default::default() },
            charges: Charges {
                price: Some(Price { input: 1_000_000, output: 2_000_000, cache_read: 0, cache_write: 0 }),
                ..Default::default()
            },
            requested_model: "client text".into(),
            model_scope: scope,
            started_ms: 1000,
            route,
            ..Default::default()
        })
    }

    #[test]
    fn head_names_operation_provider_model_and_attempts() {
        let c = config();
        let ex = exchange(&c, Operation::Chat);
        assert_eq!(
            props(&at_response_head(&c, &ex)),
            vec![(OPERATION_NAME, "chat".into()), (PROVIDER_NAME, "openai".into()), (REQUEST_MODEL, "up".into()), (ATTEMPTS, "1".into())]
        );
        let embeddings = exchange(&c, Operation::Embeddings);
        assert_eq!(props(&at_response_head(&c, &embeddings))[0], (OPERATION_NAME, "embeddings".into()));
        let counting = exchange(&c, Operation::CountTokens);
        assert!(props(&at_response_head(&c, &counting)).iter().all(|(name, _)| *name != OPERATION_NAME));
    }

    #[test]
    fn a_routed_request_names_its_route() {
        let c = config();
        let mut ex = routed(&c, Operation::Chat, Some(0));
        ex.attempts = 2;
        let head = props(&at_response_head(&c, &ex));
        assert!(head.contains(&(ROUTE, "r".into())) && head.contains(&(ATTEMPTS, "2".into())), "{head:?}");
    }

    #[test]
    fn end_carries_usage_with_cached_tokens_in_the_input_cost_and_time_to_first_token() {
        let c = config();
        let mut ex = exchange(&c, Operation::Chat);
        ex.status = 200;
        ex.completed = true;
        ex.first_byte_ms = Some(1250);
        ex.usage = Some(Usage { input_tokens: 3, cache_read_tokens: 5, cache_write_tokens: 2, output_tokens: 4, reasoning_tokens: 0 });
        assert_eq!(
            props(&at_end(&ex)),
            vec![
                (RESPONSE_MODEL, "up".into()),
                (INPUT_TOKENS, "10".into()),
                (OUTPUT_TOKENS, "4".into()),
                (CACHE_READ_TOKENS, "5".into()),
                (CACHE_CREATION_TOKENS, "2".into()),
                // 3 × 1 µ$ + 4 × 2 µ$ (cache tokens at price 0)
                (COST_USD, "0.000011".into()),
                (TIME_TO_FIRST_TOKEN_MS, "250".into()),
            ]
        );
    }

    #[test]
    fn an_incomplete_answer_names_no_response_model_and_no_usage_it_did_not_report() {
        let c = config();
        let mut ex = exchange(&c, Operation::Chat);
        ex.status = 200;
        assert_eq!(props(&at_end(&ex)), vec![], "e.g. an answer over the size limit, refused");
    }

    #[test]
    fn nothing_the_client_wrote_becomes_an_attribute() {
        let c = config();
        let mut ex = exchange(&c, Operation::Chat);
        ex.status = 200;
        ex.completed = true;
        let all = [props(&at_response_head(&c, &ex)), props(&at_end(&ex))].concat();
        assert!(all.iter().all(|(name, value)| ATTRIBUTES.contains(name) && !value.contains("client text")), "{all:?}");
    }
}
