//! The trait every provider kind implements, and the one a provider's stream state implements.
//! `mod.rs` holds the registry that maps each kind to its implementation.

use super::{
    BuildContext, CompileInput, CompiledProvider, Edits, FieldError, Provider, ResponseContext, Translated, Unsupported, UpstreamRequest,
};
use crate::client::{self, ClientBody, Dialect, StreamWriter};
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::openai::OpenAiError;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::schema::{ParamAction, ProviderKind, ProviderSpec};
use crate::stream::sse::Event;
use crate::usage::Usage;

/// A provider kind's rules, implemented by its compiled settings. The functions without `self`
/// run while the config compiles, before there are settings.
pub trait ProviderApi {
    /// The optional schema fields this kind reads; setting any other is a config error.
    fn accepted_fields(kind: ProviderKind) -> &'static [SpecField]
    where
        Self: Sized;

    /// The path prefix when the config names no `base_path`.
    fn default_base_path(kind: ProviderKind) -> &'static str
    where
        Self: Sized;

    /// The `:authority` when the config names no `host`; `None`: the config must name one.
    fn default_host(spec: &ProviderSpec) -> Option<String>
    where
        Self: Sized;

    /// Whether the config must name `api_key_env`.
    fn requires_key(_kind: ProviderKind) -> bool
    where
        Self: Sized,
    {
        true
    }

    /// Compiles the kind's own settings from its schema entry (its accepted fields are checked).
    fn compile(input: &CompileInput) -> Result<CompiledProvider<Self>, FieldError>
    where
        Self: Sized;

    /// Shipped parameter defaults for a model, before the model's configured `params`.
    fn param_defaults(&self, _upstream_model: &str) -> Vec<(&'static str, ParamAction)> {
        Vec::new()
    }

    /// The chat parameters this kind cannot honour whatever the model (`build_chat` adds those
    /// that depend on the model, then resolves them: dropped or a 400).
    fn unsupported<'p>(&self, provider: &'p Provider, _req: &ChatRequest) -> Unsupported<'p> {
        Unsupported::new(provider)
    }

    fn build_chat(
        &self,
        provider: &Provider,
        req: &ChatRequest,
        client: ClientBody,
        to: &BuildContext,
        edits: &mut Edits,
    ) -> Result<UpstreamRequest, ApiError>;

    fn build_embeddings(
        &self,
        provider: &Provider,
        _req: &EmbeddingsRequest,
        _raw: &[u8],
        _to: &BuildContext,
    ) -> Result<UpstreamRequest, ApiError> {
        Err(no_embeddings(provider))
    }

    /// A non-streaming chat answer, translated to OpenAI's shape.
    fn translate_chat(&self, ctx: &ResponseContext, body: &[u8]) -> Result<Translated, ApiError>;

    fn translate_embeddings(&self, provider: &Provider, _ctx: &ResponseContext, _body: &[u8]) -> Result<Translated, ApiError> {
        Err(no_embeddings(provider))
    }

    /// A non-2xx answer as the OpenAI error the client gets; `error_type` is the
    /// `x-amzn-errortype` header, where AWS names the error.
    fn translate_error(&self, status: u16, error_type: Option<&str>, body: &[u8]) -> ApiError;

    /// Whether the kind takes back a model's signed reasoning (thinking parts with a signature
    /// from an earlier turn); the others never see it.
    fn reads_thinking(&self) -> bool {
        false
    }

    /// Whether the kind speaks this client API itself for the upstream model: its clients' bytes
    /// go on edited, not re-encoded, its answers come back as they are, and the headers of that
    /// API reach it. Some kinds speak it for some models only (Claude on Bedrock and Vertex AI).
    fn speaks(&self, _dialect: Dialect, _upstream_model: &str) -> bool {
        false
    }

    /// The path of the kind's Responses API followed by `rest` (`/{id}`, a query), where it
    /// serves one.
    fn responses_path(&self, _provider: &Provider, _rest: &str) -> Option<String> {
        None
    }

    /// The request that counts `req`'s input tokens, where the kind has an endpoint for it
    /// (`None`: the gateway estimates).
    fn build_count_tokens(
        &self,
        _provider: &Provider,
        _req: &ChatRequest,
        _client: ClientBody,
        _to: &BuildContext,
    ) -> Option<Result<UpstreamRequest, ApiError>> {
        None
    }

    /// The provider's count as the client gets it (`{"input_tokens": N}`); `None` body: as is.
    fn translate_count_tokens(&self, _body: &[u8]) -> Result<Translated, ApiError> {
        Ok(Translated::default())
    }

    /// How the kind frames its streams.
    fn stream_framing(&self) -> StreamFraming {
        StreamFraming::ServerSentEvents
    }
}

/// The framing of a provider's streamed answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFraming {
    /// `text/event-stream`.
    ServerSentEvents,
    /// AWS `application/vnd.amazon.eventstream`.
    AwsEventStream,
}

/// A provider's per-stream translation state. The translated streams share `completed` and
/// `finish`; a stream whose end is not one event overrides them.
pub trait StreamTranslation {
    /// Translates one event into `out`; returns true when `out` got exactly the event's raw bytes.
    fn translate_event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool;

    /// Usage seen so far (complete once the stream finished normally).
    fn usage(&self) -> Option<Usage>;

    /// The provider's own end event arrived (`[DONE]`, `message_stop`, …).
    fn ended(&self) -> bool;

    /// The client's side of the stream, for streams translated into the client's dialect.
    fn chunks(&self) -> Option<&StreamWriter> {
        None
    }

    /// The stream reached its proper end.
    fn completed(&self) -> bool {
        self.ended()
    }

    /// The upstream ended: writes what the client still needs (an error if the stream was cut).
    fn finish(&mut self, out: &mut Vec<u8>) {
        match self.chunks() {
            Some(chunks) => chunks.upstream_ended(out, self.ended()),
            None if !self.ended() => out.extend_from_slice(&client::truncated_error().to_sse_event()),
            None => {}
        }
    }
}

pub(super) fn no_embeddings(provider: &Provider) -> ApiError {
    ApiError::invalid_param(
        "model",
        format!(
            "Provider `{}` ({}) has no embeddings API; route embeddings models to a provider that does.",
            provider.name,
            provider.kind.as_str()
        ),
    )
    .with_code("unsupported_operation")
}

/// The optional fields of a provider's schema entry that only some kinds read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecField {
    ApiKeyEnv,
    ApiVersion,
    DefaultMaxTokens,
    StreamUsage,
    Project,
    Location,
    Region,
    AwsAccessKeyIdEnv,
    AwsSecretAccessKeyEnv,
    AwsSessionTokenEnv,
}

impl SpecField {
    /// Every field, in the order a misplaced one is reported.
    pub const ALL: [SpecField; 10] = [
        SpecField::ApiKeyEnv,
        SpecField::ApiVersion,
        SpecField::DefaultMaxTokens,
        SpecField::StreamUsage,
        SpecField::Project,
        SpecField::Location,
        SpecField::Region,
        SpecField::AwsAccessKeyIdEnv,
        SpecField::AwsSecretAccessKeyEnv,
        SpecField::AwsSessionTokenEnv,
    ];

    /// Google Cloud and AWS settings, which OpenAI-style and Anthropic providers never read.
    pub const CLOUD: [SpecField; 6] = [
        SpecField::Project,
        SpecField::Location,
        SpecField::Region,
        SpecField::AwsAccessKeyIdEnv,
        SpecField::AwsSecretAccessKeyEnv,
        SpecField::AwsSessionTokenEnv,
    ];

    /// The field's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            SpecField::ApiKeyEnv => "api_key_env",
            SpecField::ApiVersion => "api_version",
            SpecField::DefaultMaxTokens => "default_max_tokens",
            SpecField::StreamUsage => "stream_usage",
            SpecField::Project => "project",
            SpecField::Location => "location",
            SpecField::Region => "region",
            SpecField::AwsAccessKeyIdEnv => "aws_access_key_id_env",
            SpecField::AwsSecretAccessKeyEnv => "aws_secret_access_key_env",
            SpecField::AwsSessionTokenEnv => "aws_session_token_env",
        }
    }

    fn is_set(self, spec: &ProviderSpec) -> bool {
        match self {
            SpecField::ApiKeyEnv => spec.api_key_env.is_some(),
            SpecField::ApiVersion => spec.api_version.is_some(),
            SpecField::DefaultMaxTokens => spec.default_max_tokens.is_some(),
            SpecField::StreamUsage => spec.stream_usage.is_some(),
            SpecField::Project => spec.project.is_some(),
            SpecField::Location => spec.location.is_some(),
            SpecField::Region => spec.region.is_some(),
            SpecField::AwsAccessKeyIdEnv => spec.aws_access_key_id_env.is_some(),
            SpecField::AwsSecretAccessKeyEnv => spec.aws_secret_access_key_env.is_some(),
            SpecField::AwsSessionTokenEnv => spec.aws_session_token_env.is_some(),
        }
    }

    /// Rejects the first set field that is not among `accepted`, so a misplaced setting fails
    /// loudly.
    pub fn reject_unused(spec: &ProviderSpec, accepted: &[SpecField]) -> Result<(), FieldError> {
        match SpecField::ALL.into_iter().find(|f| !accepted.contains(f) && f.is_set(spec)) {
            Some(f) => Err(FieldError { field: f.name(), message: format!("is not used by providers of kind `{}`", spec.kind.as_str()) }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SpecField;
    use crate::providers::{CompileInput, compile};
    use crate::schema::ProviderSpec;

    /// The fields each kind reads (the rest are refused by name), as the kinds documented them
    /// before the fields were typed.
    #[test]
    fn each_kind_refuses_the_fields_it_does_not_read() {
        let accepted: &[(&str, &[&str])] = &[
            ("openai", &["api_key_env", "stream_usage"]),
            ("openai_compatible", &["api_key_env", "stream_usage"]),
            ("anthropic", &["api_key_env", "api_version", "default_max_tokens"]),
            ("azure", &["api_key_env", "api_version", "stream_usage"]),
            ("cohere", &["api_key_env"]),
            ("gemini", &["api_key_env"]),
            ("vertex", &["api_key_env", "project", "location"]),
            ("bedrock", &["region", "aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"]),
        ];
        for (kind, fields) in accepted {
            for field in SpecField::ALL {
                let value = match field {
                    SpecField::DefaultMaxTokens => "5",
                    SpecField::StreamUsage => "true",
                    _ => "\"x\"",
                };
                let json = format!(r#"{{"kind":"{kind}","cluster":"c","{}":{value}}}"#, field.name());
                let spec: ProviderSpec = serde_json::from_str(&json).unwrap();
                let input = CompileInput { spec: &spec, base_path: "", key: None, env: &|_| None };
                let refused = compile(&input).is_err_and(|e| e.field == field.name() && e.message.contains("is not used"));
                assert_eq!(refused, !fields.contains(&field.name()), "{kind}.{}", field.name());
            }
        }
    }

    #[test]
    fn every_field_is_listed_once() {
        for (i, f) in SpecField::ALL.iter().enumerate() {
            assert!(!SpecField::ALL[..i].contains(f), "{f:?} listed twice");
        }
        assert!(SpecField::CLOUD.iter().all(|f| SpecField::ALL.contains(f)));
    }
}
