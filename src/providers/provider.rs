//! A provider as configured: where it is, how to authenticate, and its kind's compiled settings.

use super::KindSettings;
use crate::accounting::budget::ScopeId;
use crate::headers;
use crate::schema::{ConfigError, ProviderKind, ProviderSpec};
use std::fmt;

/// A provider API key. Its `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub cluster: String,
    pub authority: String,
    /// Path prefix of every endpoint, e.g. `/v1`.
    pub base_path: String,
    pub chat_path: String,
    /// The auth header sent upstream, e.g. `authorization: Bearer …`.
    pub auth: Option<(&'static str, Secret)>,
    /// The key's environment variable when it was not set at load time.
    pub missing_key_env: Option<String>,
    /// Fixed headers the provider needs (e.g. `anthropic-version`).
    pub headers: Vec<(&'static str, String)>,
    /// Client request headers forwarded to this provider besides the built-in allowlist.
    pub forward_headers: Vec<String>,
    pub drop_unsupported: bool,
    /// The kind's own settings, which hold its rules (`KindSettings::api`).
    pub settings: KindSettings,
    /// Usage counter scope.
    pub scope: ScopeId,
}

impl Provider {
    /// Compiles the entry `providers.{name}`; problems that do not stop loading go to `warnings`.
    pub fn compile(
        name: &str,
        p: &ProviderSpec,
        env: &dyn Fn(&str) -> Option<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Provider, ConfigError> {
        let field = format!("providers.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::new(field, "provider names may use letters, digits, `-` and `_`"));
        }
        if p.cluster.trim().is_empty() {
            return Err(ConfigError::new(format!("{field}.cluster"), "must name the Envoy cluster that reaches the provider"));
        }
        let base_path = match &p.base_path {
            Some(b) if b.starts_with('/') || b.is_empty() => b.trim_end_matches('/').to_owned(),
            Some(_) => return Err(ConfigError::new(format!("{field}.base_path"), "must start with `/`")),
            None => super::default_base_path(p.kind).to_owned(),
        };
        let api_key = match &p.api_key_env {
            Some(var) if var.is_empty() => {
                return Err(ConfigError::new(format!("{field}.api_key_env"), "must name an environment variable"));
            }
            Some(var) => match env(var) {
                Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                // The environment is not configuration: the config still loads (and validates
                // anywhere), and requests to this provider get a clear error naming the variable.
                _ => {
                    warnings.push(format!(
                        "{field}.api_key_env: environment variable `{var}` is not set (export it and list it in vm_config.environment_variables.host_env_keys); requests to this provider will fail"
                    ));
                    None
                }
            },
            None if super::requires_key(p.kind) => {
                return Err(ConfigError::new(format!("{field}.api_key_env"), format!("is required for kind `{}`", p.kind.as_str())));
            }
            None => None,
        };
        let input = super::CompileInput { spec: p, base_path: &base_path, key: api_key.as_deref(), env };
        let compiled = super::compile(&input).map_err(|e| ConfigError::new(format!("{field}.{}", e.field), e.message))?;
        // After the provider's own checks: a default host can derive from them (Bedrock's region).
        let authority = match (&p.host, super::default_host(p)) {
            (Some(h), _) if !h.trim().is_empty() => h.clone(),
            (Some(_), _) => return Err(ConfigError::new(format!("{field}.host"), "must not be empty")),
            (None, Some(default)) => default,
            (None, None) => {
                return Err(ConfigError::new(format!("{field}.host"), format!("is required for kind `{}`", p.kind.as_str())));
            }
        };
        for var in &compiled.missing_env {
            warnings.push(format!("{field}: environment variable `{var}` is not set; requests to this provider will fail"));
        }
        let missing_key_env = match &p.api_key_env {
            Some(var) if api_key.is_none() => Some(var.clone()),
            _ => compiled.missing_env.first().cloned(),
        };
        Ok(Provider {
            name: name.to_owned(),
            kind: p.kind,
            cluster: p.cluster.clone(),
            authority,
            base_path,
            chat_path: compiled.chat_path,
            auth: compiled.auth,
            missing_key_env,
            headers: compiled.headers,
            forward_headers: headers::compile_forward_headers(&format!("{field}.forward_headers"), &p.forward_headers)?,
            drop_unsupported: p.drop_unsupported,
            settings: compiled.settings,
            scope: 0,
        })
    }
}
