//! A configuration with one provider of every kind, for the fuzz targets.

use tollgate::config::Config;
use tollgate::providers::Provider;

pub const CONFIG: &str = r#"{
    "providers": {
        "openai": {"kind": "openai", "cluster": "c", "api_key_env": "K"},
        "anthropic": {"kind": "anthropic", "cluster": "c", "api_key_env": "K"},
        "gemini": {"kind": "gemini", "cluster": "c", "api_key_env": "K"},
        "vertex": {"kind": "vertex", "cluster": "c", "api_key_env": "K", "project": "p", "location": "us-central1"},
        "bedrock": {"kind": "bedrock", "cluster": "c", "region": "us-east-1"},
        "cohere": {"kind": "cohere", "cluster": "c", "api_key_env": "K"},
        "azure": {"kind": "azure", "cluster": "c", "host": "r.openai.azure.com", "api_key_env": "K", "api_version": "2024-10-21"}
    },
    "models": {"gpt": {"provider": "openai"}}
}"#;

pub fn config() -> Config {
    match Config::from_json(CONFIG.as_bytes(), &|_| Some("key".into()), 0) {
        Ok(c) => c,
        Err(e) => panic!("the fuzz configuration must load: {e}"),
    }
}

/// The provider the first input byte picks, and the rest of the input.
pub fn pick<'c, 'd>(config: &'c Config, data: &'d [u8]) -> Option<(&'c Provider, &'d [u8])> {
    let (first, rest) = data.split_first()?;
    let provider = config.providers.get(usize::from(*first) % config.providers.len())?;
    Some((provider, rest))
}
