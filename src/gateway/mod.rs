//! The request story, top-down: classify the endpoint and identify the caller → parse the body
//! once → resolve the model → check the caller may use it → apply the model's parameter policy →
//! translate for the provider → admit against budgets. The response story is in [`exchange`];
//! [`Gateway::finish`] accounts for the result.

pub mod access_log;
pub mod exchange;
pub mod telemetry;

use crate::accounting::budget::{self, Caller};
use crate::config::schema::ParamAction;
use crate::config::{Config, Provider, Resolved};
use crate::host::SharedStore;
use crate::openai::ApiError;
use crate::openai::embeddings;
use crate::openai::request::{self, ChatRequest};
use crate::providers::{self, Built, Edits, Operation, ResponseContext, Target};
pub use exchange::Exchange;

/// Headers a client may use to authenticate to Tollgate or to a provider; none of them is ever
/// forwarded upstream.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"];

/// The header the Envoy route reads to pick the upstream cluster.
pub const CLUSTER_HEADER: &str = "x-tollgate-cluster";

pub struct Gateway {
    pub config: Config,
}

/// A response Tollgate answers itself.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The OpenAI error code, for the access log.
    pub error_code: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Reply { status, body, headers: vec![("content-type", "application/json".into())], error_code: None }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let mut reply = Reply::json(e.status, e.to_json());
        reply.error_code = e.code.map(|c| c.into_owned()).or_else(|| Some(e.kind.into_owned()));
        reply
    }
}

/// The request headers Tollgate looks at.
#[derive(Debug, Default)]
pub struct RequestHead<'h> {
    pub method: &'h str,
    pub path: &'h str,
    pub content_length: Option<&'h str>,
    pub authorization: Option<&'h str>,
}

/// What to do once the request headers are known.
#[derive(Debug, PartialEq)]
pub enum OnHeaders {
    /// Not a Tollgate endpoint: leave the request to the rest of the Envoy config.
    PassThrough,
    Respond(Reply),
    /// A chat completion or embeddings request from this caller: wait for the whole body.
    ReadBody(Caller, Operation),
}

/// Where and how to send a request upstream.
#[derive(Debug)]
pub struct Forward<'c> {
    pub provider: &'c Provider,
    /// The body, path and extra headers the provider needs.
    pub upstream: Built,
    pub exchange: Exchange,
}

impl Forward<'_> {
    pub fn path(&self) -> &str {
        self.upstream.path.as_deref().unwrap_or(&self.provider.chat_path)
    }
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        Gateway { config }
    }

    pub fn on_request_headers(&self, head: &RequestHead, store: &dyn SharedStore, now_ms: u64) -> OnHeaders {
        let RequestHead { method, path, content_length, authorization } = *head;
        let path = path.split('?').next().unwrap_or_default();
        let Some(rest) = path.strip_prefix("/v1/") else {
            return OnHeaders::PassThrough;
        };
        let respond = |e: ApiError| OnHeaders::Respond(e.into());
        let allow = |allowed: &str| OnHeaders::Respond(with_allow(ApiError::method_not_allowed(method, path), allowed));
        let accounting = &self.config.accounting;
        match rest {
            "tollgate/usage" if method != "GET" => allow("GET"),
            "tollgate/usage" if !accounting.is_admin(authorization) => respond(
                ApiError::new(401, "authentication_error", "The usage API needs an admin key (`auth.admin_keys_sha256`).")
                    .with_code("admin_key_required"),
            ),
            "tollgate/usage" => OnHeaders::Respond(Reply::json(200, accounting.report(store, now_ms))),
            _ if rest.starts_with("chat/completions") || rest.starts_with("models") || rest == "embeddings" => {
                let caller = match accounting.authenticate(authorization) {
                    Ok(c) => c,
                    Err(e) => return respond(e),
                };
                self.route_endpoint(rest, method, path, content_length, caller)
            }
            _ => respond(ApiError::not_found(format!(
                "Unknown endpoint {method} {path}. This gateway serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models."
            ))),
        }
    }

    fn route_endpoint(&self, rest: &str, method: &str, path: &str, content_length: Option<&str>, caller: Caller) -> OnHeaders {
        let allow = |allowed: &str| OnHeaders::Respond(with_allow(ApiError::method_not_allowed(method, path), allowed));
        match rest {
            "chat/completions" | "embeddings" if method != "POST" => allow("POST"),
            "chat/completions" | "embeddings" => {
                let limit = self.config.limits.max_request_bytes;
                let operation = if rest == "embeddings" { Operation::Embeddings } else { Operation::Chat };
                match content_length.map(str::parse::<usize>) {
                    Some(Ok(n)) if n > limit => OnHeaders::Respond(ApiError::too_large(limit).into()),
                    _ => OnHeaders::ReadBody(caller, operation),
                }
            }
            _ if method != "GET" => allow("GET"),
            "models" | "models/" => OnHeaders::Respond(Reply::json(200, self.config.models_json.clone())),
            _ => {
                let id = rest.strip_prefix("models/").unwrap_or_default();
                match self.config.model_card(id) {
                    Some(card) => OnHeaders::Respond(Reply::json(200, card.to_vec())),
                    None => OnHeaders::Respond(ApiError::model_not_found(id).into()),
                }
            }
        }
    }

    /// Handles a complete request body and prepares the upstream request.
    pub fn on_body(
        &self,
        operation: Operation,
        body: &[u8],
        caller: Caller,
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> Result<Forward<'_>, ApiError> {
        if body.len() > self.config.limits.max_request_bytes {
            return Err(ApiError::too_large(self.config.limits.max_request_bytes));
        }
        match operation {
            Operation::Chat => self.on_chat_body(body, caller, store, now_ms),
            Operation::Embeddings => self.on_embeddings_body(body, caller, store, now_ms),
        }
    }

    fn on_chat_body(&self, body: &[u8], caller: Caller, store: &dyn SharedStore, now_ms: u64) -> Result<Forward<'_>, ApiError> {
        let mut req = request::parse(body)?;
        let route = self.route(&req.model, caller)?;
        let mut edits = Edits::default();
        apply_policy(&mut req, &route.policy, &mut edits)?;
        let target = Target { model: &route.upstream_model, now_ms };
        let upstream = providers::build_chat(route.provider, &req, body, &target, &mut edits)?;
        let output_allowance = req.output_limit().unwrap_or(self.config.limits.estimated_output_tokens);
        let ctx = ResponseContext {
            operation: Operation::Chat,
            created: now_ms / 1000,
            stream: req.stream,
            client_wants_usage: req.include_usage == Some(true),
            injected_usage: upstream.injected_usage,
            ..Default::default()
        };
        let estimate = budget::estimate(route.price, body.len(), output_allowance);
        let requested = req.model.0.into_owned();
        self.admit(Prepared { route, requested, ctx, dropped: edits.dropped, upstream, estimate }, caller, store, now_ms)
    }

    fn on_embeddings_body(&self, body: &[u8], caller: Caller, store: &dyn SharedStore, now_ms: u64) -> Result<Forward<'_>, ApiError> {
        let req = embeddings::parse(body)?;
        let route = self.route(&req.model, caller)?;
        let target = Target { model: &route.upstream_model, now_ms };
        let upstream = providers::build_embeddings(route.provider, &req, body, &target)?;
        let ctx =
            ResponseContext { operation: Operation::Embeddings, created: now_ms / 1000, base64: req.wants_base64(), ..Default::default() };
        let estimate = budget::estimate(route.price, body.len(), 0);
        let requested = req.model.0.into_owned();
        self.admit(Prepared { route, requested, ctx, dropped: Vec::new(), upstream, estimate }, caller, store, now_ms)
    }

    /// Resolves the requested model for this caller.
    fn route(&self, requested: &str, caller: Caller) -> Result<Route<'_>, ApiError> {
        let Resolved { provider, provider_index, upstream_model, policy, scope, price } =
            self.config.resolve(requested).ok_or_else(|| ApiError::model_not_found(requested))?;
        self.config.accounting.check_model(caller, requested)?;
        if let Some(var) = &provider.missing_key_env {
            return Err(ApiError::new(
                500,
                "api_error",
                format!("The gateway has no API key for provider `{}`: environment variable `{var}` is not set.", provider.name),
            )
            .with_code("provider_credentials_missing"));
        }
        Ok(Route { provider, provider_index, upstream_model: upstream_model.into_owned(), policy, scope, price })
    }

    /// Reserves budget and hands the request over to its exchange.
    fn admit<'c>(&'c self, p: Prepared<'c>, caller: Caller, store: &dyn SharedStore, now_ms: u64) -> Result<Forward<'c>, ApiError> {
        let Prepared { route, requested, mut ctx, dropped, upstream, estimate } = p;
        let accounting = &self.config.accounting;
        let mut tab = accounting.tab(caller, route.provider.scope, route.scope, route.price);
        accounting.admit(store, now_ms, &mut tab, estimate)?;
        ctx.model = route.upstream_model.clone();
        let mut exchange = Exchange::new(route.provider_index, route.upstream_model, ctx, dropped, tab);
        exchange.started_ms = now_ms;
        exchange.model_scope = route.scope;
        exchange.caller = caller;
        exchange.requested_model = requested;
        Ok(Forward { provider: route.provider, upstream, exchange })
    }

    /// Accounts for a finished exchange (complete, failed or cut off): usage and cost in every
    /// scope, reservations settled.
    pub fn finish(&self, exchange: &Exchange, store: &dyn SharedStore, now_ms: u64) {
        let failed = !exchange.completed || !(200..300).contains(&exchange.status);
        let outcome = budget::outcome(&exchange.tab, exchange.usage, failed);
        self.config.accounting.settle(store, now_ms, &exchange.tab, &outcome);
    }
}

fn with_allow(e: ApiError, allow: &str) -> Reply {
    let mut reply = Reply::from(e);
    reply.headers.push(("allow", allow.to_owned()));
    reply
}

/// A requested model resolved for a caller.
struct Route<'c> {
    provider: &'c Provider,
    provider_index: usize,
    upstream_model: String,
    policy: std::borrow::Cow<'c, [(String, ParamAction)]>,
    scope: crate::accounting::budget::ScopeId,
    price: Option<crate::accounting::prices::Price>,
}

/// A request translated for its provider, waiting for budget admission.
struct Prepared<'c> {
    route: Route<'c>,
    requested: String,
    ctx: ResponseContext,
    dropped: Vec<String>,
    upstream: Built,
    estimate: crate::accounting::money::Pico,
}

/// Applies a model's parameter policy to the parsed request.
fn apply_policy(req: &mut ChatRequest, policy: &[(String, ParamAction)], edits: &mut Edits) -> Result<(), ApiError> {
    for (param, action) in policy {
        if !req.has_param(param) {
            continue;
        }
        match action {
            ParamAction::Pass => {}
            ParamAction::Drop => {
                req.remove_param(param);
                edits.dropped.push(param.clone());
            }
            ParamAction::Reject => {
                return Err(ApiError::invalid_param(
                    param.clone(),
                    format!("Parameter `{param}` is not accepted for model `{}` by this gateway's policy.", &*req.model),
                )
                .with_code("unsupported_parameter"));
            }
            ParamAction::Rename(to) => edits.renamed.push((param.clone(), to.clone())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
