//! Azure OpenAI: OpenAI's wire format behind Azure's paths, `api-key` authentication and
//! `api-version`. Bodies, responses, streams and errors (content-filter results included, which
//! Azure writes in OpenAI's shape) go through openai.rs; only Azure's differences live here.
//! References: https://learn.microsoft.com/azure/ai-services/openai/reference (dated versions),
//! https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle (the v1 API),
//! https://learn.microsoft.com/azure/ai-foundry/openai/latest (v1 paths and headers).

use super::{BuildContext, CompileInput, CompiledProvider, Edits, FieldError, ResponseContext, Translated, UpstreamRequest, openai};
use super::{Provider, Secret};
use super::{ProviderApi, SpecField};
use crate::client::{ClientBody, Dialect};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{ParamAction, ProviderKind, ProviderSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// `{base}/v1/…`: the deployment is the body's `model`, and no `api-version` is needed.
    V1,
    /// `{base}/deployments/{deployment}/…?api-version=…`, e.g. `2024-10-21` or `2025-04-01-preview`.
    Dated(String),
}

impl ApiVersion {
    fn parse(v: &str) -> Option<Self> {
        if v == "v1" {
            return Some(ApiVersion::V1);
        }
        let date_ok =
            v.get(..10).is_some_and(|d| d.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() }));
        (date_ok && matches!(v.get(10..), Some("" | "-preview"))).then(|| ApiVersion::Dated(v.to_owned()))
    }

    /// Dated versions take `stream_options` from 2024-09-01-preview on, and the first GA version
    /// with it is 2024-10-21 (Azure/azure-rest-api-specs, stable/2024-10-21/inference.yaml;
    /// earlier versions answer 400 to it, see azure-rest-api-specs issue 29157). The v1 API follows
    /// OpenAI's current API.
    fn takes_stream_options(&self) -> bool {
        match self {
            ApiVersion::V1 => true,
            ApiVersion::Dated(v) => v.get(..10).is_some_and(|date| date >= "2024-09-01"),
        }
    }
}

#[derive(Debug)]
pub struct Settings {
    pub version: ApiVersion,
    pub openai: openai::Settings,
}

impl ProviderApi for Settings {
    fn accepted_fields(_kind: ProviderKind) -> &'static [SpecField] {
        &[SpecField::ApiKeyEnv, SpecField::ApiVersion, SpecField::StreamUsage]
    }

    fn default_base_path(_kind: ProviderKind) -> &'static str {
        "/openai"
    }

    /// Every Azure resource has a host of its own.
    fn default_host(_spec: &ProviderSpec) -> Option<String> {
        None
    }

    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError> {
        compile(input)
    }

    fn param_defaults(&self, upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        openai::default_policy(upstream_model)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError> {
        build_chat(provider, self, req, client, to.model, edits)
    }

    fn build_embeddings(
        &self,
        provider: &Provider,
        req: &EmbeddingsRequest,
        raw: &[u8],
        to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        build_embeddings(provider, self, req, raw, to.model)
    }

    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        openai::translate_chat(ctx, body)
    }

    fn speaks(&self, dialect: Dialect, _upstream_model: &str) -> bool {
        self.openai.speaks(dialect)
    }

    /// Responses has no deployment segment: the body's `model` names the deployment
    /// (https://learn.microsoft.com/en-us/azure/ai-foundry/openai/how-to/responses).
    fn responses_path(&self, provider: &Provider, rest: &str) -> Option<String> {
        Some(match &self.version {
            ApiVersion::V1 => format!("{}/v1/responses{rest}", provider.base_path),
            ApiVersion::Dated(v) => {
                let join = if rest.contains('?') { '&' } else { '?' };
                format!("{}/responses{rest}{join}api-version={v}", provider.base_path)
            }
        })
    }

    fn translate_embeddings(&self, _provider: &Provider, _ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError> {
        openai::translate_embeddings(body)
    }

    fn translate_error(&self, status: u16, _error_type: Option<&str>, body: &[u8]) -> ApiError {
        openai::translate_error(status, body)
    }
}

fn compile(input: &CompileInput) -> Result<CompiledProvider<Settings>, FieldError> {
    let CompileInput { spec, base_path, key, .. } = *input;
    let version = match spec.api_version.as_deref() {
        None => {
            return Err(FieldError {
                field: "api_version",
                message: "is required for kind `azure`: a dated version such as `2024-10-21`, or `v1` for the v1 API".into(),
            });
        }
        Some(v) => ApiVersion::parse(v).ok_or_else(|| FieldError {
            field: "api_version",
            message: format!("`{v}` is not an Azure OpenAI API version; use `YYYY-MM-DD`, `YYYY-MM-DD-preview` or `v1`"),
        })?,
    };
    // Without `stream_options` streamed answers carry no usage; `stream_usage` overrides the
    // version's default for resources that behave otherwise.
    let stream_usage = spec.stream_usage.unwrap_or_else(|| version.takes_stream_options());
    let chat_path = match version {
        ApiVersion::V1 => format!("{base_path}/v1/chat/completions"),
        // Every request of a dated version carries its own path: the deployment is part of it.
        ApiVersion::Dated(_) => format!("{base_path}/deployments"),
    };
    Ok(CompiledProvider {
        settings: Settings { version, openai: openai::Settings { stream_usage, responses_api: true } },
        chat_path,
        auth: key.map(|k| ("api-key", Secret::new(k.to_owned()))),
        headers: Vec::new(),
        missing_env: Vec::new(),
    })
}

/// The body passes through as for OpenAI, `model` rewritten to the deployment: dated versions
/// ignore it (the path names the deployment), the v1 API reads it.
pub fn build_chat(
    provider: &Provider,
    s: &Settings,
    req: &ChatRequest,
    client: ClientBody,
    deployment: &str,
    edits: &mut Edits,
) -> Result<UpstreamRequest, ApiError> {
    let mut built = openai::build_chat(&s.openai, provider, req, client, deployment, edits)?;
    built.path = match client.dialect {
        Dialect::OpenAiResponses => s.responses_path(provider, ""),
        _ => Some(path(provider, &s.version, deployment, "chat/completions")?),
    };
    Ok(built)
}

pub fn build_embeddings(
    provider: &Provider,
    s: &Settings,
    req: &EmbeddingsRequest,
    raw: &[u8],
    deployment: &str,
) -> Result<UpstreamRequest, ApiError> {
    let mut built = openai::build_embeddings(provider, req, raw, deployment)?;
    built.path = Some(path(provider, &s.version, deployment, "embeddings")?);
    Ok(built)
}

fn path(provider: &Provider, version: &ApiVersion, deployment: &str, endpoint: &str) -> Result<String, ApiError> {
    match version {
        ApiVersion::V1 => Ok(format!("{}/v1/{endpoint}", provider.base_path)),
        ApiVersion::Dated(v) => {
            check_deployment(deployment)?;
            Ok(format!("{}/deployments/{deployment}/{endpoint}?api-version={v}", provider.base_path))
        }
    }
}

/// The deployment becomes a path segment, and wildcard models forward the name the client asked
/// for: anything but Azure's deployment-name characters could change the path or its query.
fn check_deployment(name: &str) -> Result<(), ApiError> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(allowed) && name.bytes().any(|b| b != b'.') {
        return Ok(());
    }
    Err(ApiError::invalid_param(
        "model",
        format!("`{name}` cannot name an Azure OpenAI deployment: use 1 to 64 letters, digits, `-`, `_` or `.`."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::openai::{chat, embeddings};

    fn config(extra: &str) -> Result<Config, crate::schema::ConfigError> {
        let json = format!(
            r#"{{"providers":{{"az":{{"kind":"azure","cluster":"c","host":"res.openai.azure.com","api_key_env":"K"{extra}}}}},
                "models":{{"gpt":{{"provider":"az","model":"gpt-4o-prod"}},"any-*":{{"provider":"az"}}}}}}"#
        );
        Config::from_json(json.as_bytes(), &|_| Some("secret".into()), 0)
    }

    fn settings(c: &Config) -> &Settings {
        match &c.providers[0].settings {
            super::super::KindSettings::Azure(s) => s,
            _ => panic!(),
        }
    }

    fn chat(c: &Config, body: &str, deployment: &str) -> Result<UpstreamRequest, ApiError> {
        let req = chat::parse(body.as_bytes()).unwrap();
        build_chat(
            &c.providers[0],
            settings(c),
            &req,
            ClientBody::bare(Dialect::OpenAiChat, body.as_bytes()),
            deployment,
            &mut Edits::default(),
        )
    }

    const BODY: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"x"}],"stream":true}"#;

    #[test]
    fn dated_versions_put_deployment_and_version_in_the_path() {
        let c = config(r#","api_version":"2024-10-21""#).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.authority, "res.openai.azure.com");
        let (name, value) = p.auth.as_ref().unwrap();
        assert_eq!((*name, value.expose()), ("api-key", "secret"));
        let b = chat(&c, BODY, "gpt-4o-prod").unwrap();
        assert_eq!(b.path.as_deref(), Some("/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"));
        let v: serde_json::Value = serde_json::from_slice(&b.body.unwrap()).unwrap();
        assert_eq!(v["model"], "gpt-4o-prod", "the body names the deployment too");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(b.injected_usage);
        let req = embeddings::parse(br#"{"model":"e","input":"x"}"#).unwrap();
        let b = build_embeddings(&c.providers[0], settings(&c), &req, br#"{"model":"e","input":"x"}"#, "emb-3").unwrap();
        assert_eq!(b.path.as_deref(), Some("/openai/deployments/emb-3/embeddings?api-version=2024-10-21"));
    }

    #[test]
    fn v1_api_uses_the_v1_paths_and_the_body_model() {
        let c = config(r#","api_version":"v1""#).unwrap();
        assert_eq!(c.providers[0].chat_path, "/openai/v1/chat/completions");
        let b = chat(&c, BODY, "gpt-4o-prod").unwrap();
        assert_eq!(b.path.as_deref(), Some("/openai/v1/chat/completions"));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&b.body.unwrap()).unwrap()["model"], "gpt-4o-prod");
        let raw = br#"{"model":"e","input":["a","b"],"encoding_format":"base64"}"#;
        let b = build_embeddings(&c.providers[0], settings(&c), &embeddings::parse(raw).unwrap(), raw, "emb-3").unwrap();
        assert_eq!(b.path.as_deref(), Some("/openai/v1/embeddings"));
        let v: serde_json::Value = serde_json::from_slice(&b.body.unwrap()).unwrap();
        assert_eq!((v["model"].as_str(), v["encoding_format"].as_str()), (Some("emb-3"), Some("base64")));
        let c = config(r#","api_version":"v1","base_path":"/custom""#).unwrap();
        assert_eq!(chat(&c, BODY, "d").unwrap().path.as_deref(), Some("/custom/v1/chat/completions"));
    }

    #[test]
    fn stream_usage_follows_the_api_version_unless_configured() {
        for (version, injected) in [
            ("2024-06-01", false),
            ("2024-08-01-preview", false),
            ("2024-09-01-preview", true),
            ("2024-10-21", true),
            ("2025-04-01-preview", true),
            ("v1", true),
        ] {
            let c = config(&format!(r#","api_version":"{version}""#)).unwrap();
            let b = chat(&c, BODY, "d").unwrap();
            assert_eq!(b.injected_usage, injected, "{version}");
        }
        let c = config(r#","api_version":"2024-06-01","stream_usage":true"#).unwrap();
        assert!(chat(&c, BODY, "d").unwrap().injected_usage);
        let c = config(r#","api_version":"2024-10-21","stream_usage":false"#).unwrap();
        assert!(!chat(&c, BODY, "d").unwrap().injected_usage);
    }

    #[test]
    fn api_version_and_host_are_required_and_checked() {
        for (extra, field) in [
            ("", "providers.az.api_version"),
            (r#","api_version":"latest""#, "providers.az.api_version"),
            (r#","api_version":"2024-10-21&x=1""#, "providers.az.api_version"),
            (r#","api_version":"24-10-21""#, "providers.az.api_version"),
            (r#","api_version":"v1","default_max_tokens":5"#, "providers.az.default_max_tokens"),
        ] {
            assert_eq!(config(extra).unwrap_err().field, field, "{extra}");
        }
        let json =
            r#"{"providers":{"az":{"kind":"azure","cluster":"c","api_key_env":"K","api_version":"v1"}},"models":{"m":{"provider":"az"}}}"#;
        assert_eq!(Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap_err().field, "providers.az.host");
        let json = r#"{"providers":{"az":{"kind":"azure","cluster":"c","host":"h","api_version":"v1"}},"models":{"m":{"provider":"az"}}}"#;
        assert_eq!(Config::from_json(json.as_bytes(), &|_| Some("k".into()), 0).unwrap_err().field, "providers.az.api_key_env");
    }

    #[test]
    fn deployment_names_cannot_change_the_path() {
        let c = config(r#","api_version":"2024-10-21""#).unwrap();
        for bad in ["", ".", "..", "a/b", "a?api-version=1", "a b", "a%2f", &"x".repeat(65)] {
            let e = chat(&c, BODY, bad).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some("model")), "{bad}");
        }
        assert!(chat(&c, BODY, "gpt-4o.mini_2").is_ok());
    }

    #[test]
    fn responses_have_no_deployment_in_their_path() {
        let c = config(r#","api_version":"v1""#).unwrap();
        assert_eq!(settings(&c).responses_path(&c.providers[0], "/resp_1").as_deref(), Some("/openai/v1/responses/resp_1"));
        let c = config(r#","api_version":"2025-04-01-preview""#).unwrap();
        let s = settings(&c);
        assert_eq!(s.responses_path(&c.providers[0], "").as_deref(), Some("/openai/responses?api-version=2025-04-01-preview"));
        assert_eq!(
            s.responses_path(&c.providers[0], "/resp_1?include=x").as_deref(),
            Some("/openai/responses/resp_1?include=x&api-version=2025-04-01-preview")
        );
    }
}
