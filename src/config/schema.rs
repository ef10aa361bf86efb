//! The plugin configuration as users write it (JSON inside the Envoy YAML). Unknown fields are
//! rejected so that a typo fails loudly at load time instead of being ignored.

use crate::accounting::prices::PriceSpec;
use serde::Deserialize;
use std::collections::BTreeMap;

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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    #[serde(default, deserialize_with = "crate::accounting::money::deserialize_optional_usd")]
    pub daily_usd: Option<String>,
    #[serde(default, deserialize_with = "crate::accounting::money::deserialize_optional_usd")]
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
    Cohere,
    Azure,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::OpenaiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
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
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    #[serde(default = "default_max_event_bytes")]
    pub max_stream_event_bytes: usize,
    /// Output tokens assumed when a request sets no limit, for budget reservations.
    #[serde(default = "default_estimated_output_tokens")]
    pub estimated_output_tokens: u64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_request_bytes: default_max_request_bytes(),
            max_stream_event_bytes: default_max_event_bytes(),
            estimated_output_tokens: default_estimated_output_tokens(),
        }
    }
}

fn default_max_request_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_max_event_bytes() -> usize {
    1024 * 1024
}

fn default_estimated_output_tokens() -> u64 {
    4096
}
