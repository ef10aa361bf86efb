//! The plugin configuration as users write it (JSON inside the Envoy YAML). Unknown fields are
//! rejected so that a typo fails loudly at load time instead of being ignored.

mod error;
mod guardrails;
mod params;
mod usd;

pub use error::ConfigError;
pub use guardrails::{
    CustomDetectorSpec, ExternalGuardrailSpec, FailMode, GuardrailAction, GuardrailDirection, GuardrailPolicySpec, GuardrailScopeSpec,
    GuardrailsSpec,
};
pub use params::check_params;
use serde::Deserialize;
use std::collections::BTreeMap;
use usd::{deserialize_optional_usd, deserialize_usd};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSpec>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelSpec>,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Prices in USD per 1M tokens by upstream model name (`*` patterns allowed); these
    /// override the shipped defaults.
    #[serde(default)]
    pub prices: BTreeMap<String, PriceSpec>,
    /// Virtual keys. When present, every request needs one.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    #[serde(default)]
    pub teams: BTreeMap<String, TeamSpec>,
    /// Gateway-wide spending caps.
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    /// Request and token rate limits of the whole gateway and of upstream models.
    #[serde(default)]
    pub rate_limits: RateLimitsSpec,
    /// Routing rules, evaluated in order before `models`; the first match wins.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// Envoy clusters whose endpoints are several providers in priority order (endpoint
    /// metadata `tollgate.provider`), for failover between providers within one request.
    #[serde(default)]
    pub failover_clusters: Vec<FailoverClusterSpec>,
    /// Per-target circuit breaker.
    #[serde(default)]
    pub breaker: BreakerSpec,
    /// Envoy retry steering for routes that set none.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Honour `x-tollgate-explain: 1` (answer with the routing decision, call no provider).
    #[serde(default)]
    pub explain: bool,
    /// Write the GenAI span attributes to filter state for Envoy's tracer (`gateway::span`);
    /// off, the dozen host calls per request are saved where nothing traces.
    #[serde(default)]
    pub span_attributes: bool,
    /// How often each worker writes the counters of scopes without a cap (providers, models,
    /// uncapped keys and teams) to shared data; 0 writes them on every request. Capped scopes
    /// are always written at once, so budgets never lag.
    #[serde(default = "default_accounting_flush_ms")]
    pub accounting_flush_ms: u64,
    /// PII and secret detection on prompts, and what to do with what is found.
    #[serde(default)]
    pub guardrails: GuardrailsSpec,
}

fn default_accounting_flush_ms() -> u64 {
    1000
}

/// Which filter instance this is. Set from the plugin's `root_id` rather than the JSON, so
/// both instances can share one configuration.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The HTTP connection manager's filter (`root_id: tollgate`).
    #[default]
    Gateway,
    /// The per-attempt filter of failover clusters (`root_id: tollgate_upstream`), which
    /// translates each attempt for the provider it reaches.
    Upstream,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: String,
    #[serde(default, rename = "match")]
    pub conditions: MatchSpec,
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Tried in order when the chosen target is unavailable or fails.
    #[serde(default)]
    pub fallback: Vec<TargetSpec>,
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Receives the request when every target failed (e.g. a human review queue).
    #[serde(default)]
    pub last_resort: Option<LastResortSpec>,
    /// Client request headers forwarded to this route's providers besides the built-in allowlist.
    #[serde(default)]
    pub forward_headers: Vec<String>,
}

/// Every condition given must hold. Values allow `*` wildcards; text matching ignores case.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Requested model names.
    #[serde(default)]
    pub models: Vec<String>,
    /// Request header name → value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body `user`, or a key of the body's `metadata` object → value.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Virtual key ids.
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub teams: Vec<String>,
    /// Prompt content (system, developer and user text).
    #[serde(default)]
    pub prompt: Option<PromptSpec>,
    /// Time-of-day window.
    #[serde(default)]
    pub time: Option<TimeSpec>,
    /// Guardrail detectors (`guardrails`): matches when the prompt has a finding of any of them.
    #[serde(default)]
    pub guardrails: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// Matches when any keyword occurs (case-insensitive substring).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Matches when any regex matches (case-insensitive).
    #[serde(default)]
    pub regex: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// `HH:MM`, inclusive.
    pub after: String,
    /// `HH:MM`, exclusive; earlier than `after` means the window spans midnight.
    pub before: String,
    /// `+HH:MM` / `-HH:MM`; UTC when absent.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// `mon` … `sun` in that offset; every day when empty.
    #[serde(default)]
    pub days: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub provider: String,
    /// Upstream model name.
    pub model: String,
    /// For the `weighted` strategy.
    #[serde(default)]
    pub weight: Option<u32>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamAction>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first available target, in order.
    #[default]
    Priority,
    Weighted,
    RoundRobin,
    LeastLatency,
    LeastCost,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Envoy `x-envoy-retry-on` conditions.
    #[serde(default = "default_retry_on")]
    pub on: String,
    #[serde(default = "default_retriable_codes")]
    pub retriable_status_codes: Vec<u16>,
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub per_try_timeout_ms: Option<u64>,
}

fn default_retry_on() -> String {
    "5xx,reset,connect-failure,refused-stream,retriable-status-codes".into()
}

fn default_retriable_codes() -> Vec<u16> {
    vec![429]
}

fn default_max_retries() -> u32 {
    1
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LastResortSpec {
    pub cluster: String,
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_last_resort_timeout")]
    pub timeout_ms: u64,
}

fn default_last_resort_timeout() -> u64 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverClusterSpec {
    pub cluster: String,
    /// Provider names in the cluster's endpoint priority order.
    pub providers: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// Open when at least this share of the window's requests failed (with `min_requests`).
    #[serde(default)]
    pub error_rate_percent: Option<u32>,
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u64,
    #[serde(default = "default_cooldown_seconds")]
    pub cooldown_seconds: u64,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            consecutive_failures: default_consecutive_failures(),
            error_rate_percent: None,
            min_requests: default_min_requests(),
            window_seconds: default_window_seconds(),
            cooldown_seconds: default_cooldown_seconds(),
        }
    }
}

fn default_consecutive_failures() -> u32 {
    5
}

fn default_min_requests() -> u32 {
    20
}

fn default_window_seconds() -> u64 {
    60
}

fn default_cooldown_seconds() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// SHA-256 (hex) of keys allowed to read `GET /v1/tollgate/usage`.
    #[serde(default)]
    pub admin_keys_sha256: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Stable name used in counters, logs and the usage API (never the key itself).
    pub id: String,
    /// SHA-256 of the key, hex: `printf %s "$KEY" | sha256sum`.
    pub sha256: String,
    #[serde(default)]
    pub team: Option<String>,
    /// Client-facing model names this key may use (`*` patterns allowed); empty: all.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

/// Per-minute limits of one scope; an absent one is unlimited.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Input and output tokens, as the provider reports them.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSpec {
    /// Every request through this gateway.
    #[serde(default)]
    pub gateway: Option<RateLimitSpec>,
    /// By upstream model name (as the usage report's `models` lists them).
    #[serde(default)]
    pub models: BTreeMap<String, RateLimitSpec>,
    /// Name the request's key, team and upstream model in request headers for Envoy's
    /// rate-limit filter (global limits through a rate-limit service).
    #[serde(default)]
    pub descriptor_headers: bool,
    /// Write each finished request's tokens and cost to filter state for the route's rate
    /// limits applied at stream end (global token limits and budgets).
    #[serde(default)]
    pub global_charges: Option<GlobalChargesSpec>,
    /// Read the global counters from the rate-limit service for the usage API and the global
    /// budget gauges.
    #[serde(default)]
    pub global_view: Option<GlobalViewSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalViewSpec {
    /// The Envoy cluster of the rate-limit service (HTTP/2).
    pub cluster: String,
    /// The rate-limit filter's `domain` (default `tollgate`).
    #[serde(default)]
    pub domain: Option<String>,
    /// Default 100.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How often the global budget gauges are refreshed (default 10000).
    #[serde(default)]
    pub refresh_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalChargesSpec {
    /// One unit of the cost counter in dollars (default 0.000001).
    #[serde(default, deserialize_with = "deserialize_optional_usd")]
    pub cost_unit_usd: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    #[serde(default, deserialize_with = "deserialize_optional_usd")]
    pub daily_usd: Option<String>,
    #[serde(default, deserialize_with = "deserialize_optional_usd")]
    pub monthly_usd: Option<String>,
    /// Above this share of a cap, routing prefers cheaper targets.
    #[serde(default)]
    pub soft_limit_percent: Option<u8>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Openai,
    OpenaiCompatible,
    Anthropic,
    Gemini,
    Vertex,
    Bedrock,
    Cohere,
    Azure,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Cohere => "cohere",
            ProviderKind::Azure => "azure",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    /// The Envoy cluster that reaches this provider.
    pub cluster: String,
    /// `:authority` sent upstream; defaults to the provider's public API host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix before the endpoint, e.g. `/v1`.
    #[serde(default)]
    pub base_path: Option<String>,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Provider API version, e.g. Anthropic's `anthropic-version` or Azure OpenAI's `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// `max_tokens` sent when the client gives none and the provider requires one.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    /// Drop parameters the provider cannot honour instead of answering 400.
    #[serde(default)]
    pub drop_unsupported: bool,
    /// For OpenAI-style providers: whether the host understands `stream_options.include_usage`.
    #[serde(default)]
    pub stream_usage: Option<bool>,
    /// Google Cloud project (Vertex AI).
    #[serde(default)]
    pub project: Option<String>,
    /// Google Cloud location, e.g. `us-central1` (Vertex AI).
    #[serde(default)]
    pub location: Option<String>,
    /// AWS region, e.g. `us-east-1` (Bedrock).
    #[serde(default)]
    pub region: Option<String>,
    /// Environment variable names of AWS credentials (Bedrock).
    #[serde(default)]
    pub aws_access_key_id_env: Option<String>,
    #[serde(default)]
    pub aws_secret_access_key_env: Option<String>,
    #[serde(default)]
    pub aws_session_token_env: Option<String>,
    /// Client request headers forwarded to this provider besides the built-in allowlist.
    #[serde(default)]
    pub forward_headers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub provider: String,
    /// Upstream model name; defaults to the client-facing name.
    #[serde(default)]
    pub model: Option<String>,
    /// More client-facing names for the same upstream model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Per-parameter policy; overrides the shipped defaults for this model.
    #[serde(default)]
    pub params: BTreeMap<String, ParamAction>,
}

/// What to do with a request parameter a model or API version cannot take.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ParamAction {
    /// Forward as sent.
    Pass,
    /// Remove it and say so in `x-tollgate-dropped-params`.
    Drop,
    /// Answer 400 naming the parameter.
    Reject,
    /// Send the value under another name (e.g. `max_tokens` → `max_completion_tokens`).
    Rename(String),
    /// `reasoning_effort` only: the form of the provider's thinking setting the model takes.
    Reasoning(ReasoningForm),
    /// `response_format` only: how the model is made to answer in a `json_schema`.
    JsonSchema(JsonSchemaForm),
}

/// How a model takes `reasoning_effort`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningForm {
    /// A thinking token budget (Anthropic `thinking.budget_tokens`, Gemini 2.5 `thinkingBudget`).
    Budget,
    /// A named level (Anthropic adaptive thinking with `output_config.effort`, Gemini 3
    /// `thinkingLevel`).
    Level,
}

/// How a model is made to answer in a JSON schema.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JsonSchemaForm {
    /// The provider's structured outputs (Anthropic `output_config.format`, Bedrock
    /// `outputConfig.textFormat`).
    Native,
    /// A tool whose input schema is the schema, which the model is forced to call; its input
    /// is the answer.
    Tool,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "default_max_event_bytes")]
    pub max_stream_event_bytes: usize,
    /// Largest non-streamed answer Tollgate buffers to translate; larger ones get a 502. Keep it
    /// below Envoy's `per_connection_buffer_limit_bytes` so Tollgate answers before Envoy does.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Output limit of a request that sets none, for budget reservations; sent to the provider
    /// when a capped budget applies.
    #[serde(default = "default_estimated_output_tokens")]
    pub estimated_output_tokens: u64,
    /// How long a budget reservation holds when its request never settles (a crashed VM):
    /// longer than any request may take (the shipped Envoy routes time out after 600 s).
    #[serde(default = "default_reservation_lifetime_seconds")]
    pub reservation_lifetime_seconds: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_request_bytes: default_max_request_bytes(),
            max_stream_event_bytes: default_max_event_bytes(),
            max_response_bytes: default_max_response_bytes(),
            estimated_output_tokens: default_estimated_output_tokens(),
            reservation_lifetime_seconds: default_reservation_lifetime_seconds(),
        }
    }
}

fn default_max_request_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_max_response_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_max_event_bytes() -> usize {
    1024 * 1024
}

fn default_estimated_output_tokens() -> u64 {
    4096
}

fn default_reservation_lifetime_seconds() -> u64 {
    900
}

/// What users write: USD per 1M tokens, as decimal strings or numbers.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    #[serde(deserialize_with = "deserialize_usd")]
    pub input: String,
    #[serde(deserialize_with = "deserialize_usd")]
    pub output: String,
    #[serde(default, deserialize_with = "deserialize_optional_usd")]
    pub cache_read: Option<String>,
    #[serde(default, deserialize_with = "deserialize_optional_usd")]
    pub cache_write: Option<String>,
}
