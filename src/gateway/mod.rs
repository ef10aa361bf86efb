//! The request story, top-down: classify the endpoint and identify the caller → parse the body
//! once → select where it goes (routing rules, strategies, health; or the `models` entry) →
//! apply the target model's parameter policy → translate for the provider (here, or per attempt
//! in the upstream filter for failover clusters) → admit against budgets → steer Envoy's
//! retries. The response story is in [`exchange`]; [`Gateway::finish`] accounts for the result.

pub mod access_log;
pub mod client_request;
pub mod exchange;
pub mod global_usage;
pub mod last_resort;
pub mod plugin;
mod refusal;
pub mod response;
pub mod selection;
pub mod session;
pub mod span;
pub mod telemetry;
pub mod upstream;

use crate::accounting::budget::{self, Ask, Caller, Charges};
use crate::accounting::ledger::Outcome;
use crate::accounting::prices::Price;
use crate::client::{self, ClientBody, Dialect};
use crate::config::Config;
use crate::conversation::request::ChatRequest;
use crate::error::ApiError;
use crate::guardrails::external::Analysis;
use crate::guardrails::{Audit, Guardrails, Scope, Verdict};
use crate::host::SharedStore;
use crate::openai::embeddings;
use crate::providers::Provider;
use crate::providers::{self, BuildContext, Edits, Operation, ResponseContext, UpstreamRequest};
use crate::router::health::{self, Observation};
use crate::router::rules::Facts;
use crate::router::{Commitment, Demand, Retry};
use crate::schema::ParamAction;
pub use exchange::Exchange;
use exchange::{Opening, Role};
use selection::{Choice, Selection};
use std::cell::RefCell;

/// The header the Envoy route reads to pick the upstream cluster.
pub const CLUSTER_HEADER: &str = "x-tollgate-cluster";

pub use crate::headers::is_control_header;

pub struct Gateway {
    pub config: Config,
    /// This worker's not-yet-written counters of uncapped scopes.
    batch: RefCell<budget::Batch>,
}

/// A response Tollgate answers itself.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The OpenAI error code, for the access log.
    pub error_code: Option<String>,
    /// What the guardrails found and did (a blocked request), for the access log and metrics.
    pub guardrails: Audit,
}

impl Reply {
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Reply { status, body, headers: vec![("content-type", "application/json".into())], error_code: None, guardrails: Audit::new() }
    }
}

impl Reply {
    /// An error answered in the client's dialect.
    pub fn error(dialect: Dialect, e: ApiError) -> Self {
        let mut reply = Reply::json(e.status, client::error_body(dialect, &e));
        reply.error_code = e.code.map(|c| c.into_owned()).or_else(|| Some(e.kind.into_owned()));
        reply.headers.extend(e.headers.map(|h| h.0).unwrap_or_default());
        reply
    }
}

/// An OpenAI client's error answer (the endpoints of the OpenAI dialect, and where no dialect is
/// known yet).
impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::error(Dialect::OpenAiChat, e)
    }
}

/// The request headers Tollgate looks at.
#[derive(Debug, Default)]
pub struct RequestHead<'h> {
    pub method: &'h str,
    pub path: &'h str,
    pub content_length: Option<&'h str>,
    pub authorization: Option<&'h str>,
    /// `x-api-key`, where Anthropic clients put their key.
    pub api_key: Option<&'h str>,
}

/// What the body phase needs from the request headers.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'h> {
    pub operation: Operation,
    /// The API the client speaks.
    pub dialect: Dialect,
    pub caller: Caller,
    /// The client's request headers less control headers (for routing rules on headers and
    /// the header policy).
    pub headers: &'h [(String, String)],
    /// The client sent `x-tollgate-explain: 1`.
    pub explain: bool,
}

/// What to do once the request headers are known.
#[derive(Debug, PartialEq)]
pub enum OnHeaders {
    /// Not a Tollgate endpoint: leave the request to the rest of the Envoy config.
    PassThrough,
    Respond(Reply),
    /// A chat completion or embeddings request from this caller, in this dialect: wait for the
    /// whole body.
    ReadBody(Caller, Operation, Dialect),
    /// The usage API in global mode: ask the rate-limit service first
    /// ([`Gateway::global_usage_call`]).
    ReadGlobalUsage,
}

/// What to do with a complete request body.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once per request and moved straight into its context
pub enum Next<'c> {
    Forward(Forward<'c>),
    Respond(Reply),
    /// No target is available: hand the request to the route's last resort, then answer.
    Escalate(Escalation),
    /// Call the external guardrail service, then [`Gateway::on_analysed`] with its answer.
    Analyze(Analysis),
}

/// Where and how to send a request upstream.
#[derive(Debug)]
pub struct Forward<'c> {
    pub to: Destination<'c>,
    /// The body, path and extra headers the provider needs.
    pub upstream: UpstreamRequest,
    /// Envoy retry steering.
    pub retry_headers: Vec<(&'static str, String)>,
    /// The matched route's `forward_headers`.
    pub route_forward: &'c [String],
    pub exchange: Exchange,
    /// The request body must be kept: a last resort may need it after the providers failed.
    pub keep_body: bool,
}

/// Where a request goes, by the role of the filter sending it.
#[derive(Debug)]
pub enum Destination<'c> {
    /// The gateway filter translated the request for this provider: its cluster.
    Provider(&'c Provider),
    /// The gateway filter sends to a failover cluster, whose upstream filter translates each
    /// attempt from the plan it reads.
    FailoverCluster { cluster: &'c str, plan: String },
    /// The upstream filter translated this attempt for its endpoint's provider (the cluster is
    /// already chosen).
    Attempt(&'c Provider),
}

impl Forward<'_> {
    /// The provider this filter translated for (none for a failover cluster).
    pub fn provider(&self) -> Option<&Provider> {
        match self.to {
            Destination::Provider(p) | Destination::Attempt(p) => Some(p),
            Destination::FailoverCluster { .. } => None,
        }
    }

    /// The cluster the route reads from [`CLUSTER_HEADER`] (gateway filter only).
    pub fn cluster(&self) -> Option<&str> {
        match &self.to {
            Destination::Provider(p) => Some(&p.cluster),
            Destination::FailoverCluster { cluster, .. } => Some(cluster),
            Destination::Attempt(_) => None,
        }
    }

    /// For failover clusters: the plan the upstream filter reads for each attempt.
    pub fn plan(&self) -> Option<&str> {
        match &self.to {
            Destination::FailoverCluster { plan, .. } => Some(plan),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<&str> {
        let provider = self.provider()?;
        Some(self.upstream.path.as_deref().unwrap_or(&provider.chat_path))
    }

    /// The request headers sent on: the client's headers the policy forwards (see
    /// [`headers`](crate::headers)) followed by Tollgate's, and the cluster header the
    /// route reads (gateway filter only: an attempt's headers go to the provider).
    pub fn request_headers(&self, client: &[(String, String)], content_length: Option<usize>) -> Vec<(String, String)> {
        let provider_forward = self.provider().map_or(&[][..], |p| p.forward_headers.as_slice());
        let mut headers = crate::headers::forwarded(client, &[provider_forward, self.route_forward]);
        let dialect = self.exchange.ctx.dialect;
        if self.provider().is_some_and(|p| p.settings.api().speaks(dialect, &self.exchange.ctx.model)) {
            let native = dialect.native_headers();
            let missing = |name: &str| !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
            let extra: Vec<(String, String)> =
                client.iter().filter(|(n, _)| native.iter().any(|h| n.eq_ignore_ascii_case(h)) && missing(n)).cloned().collect();
            headers.extend(extra);
        }
        let mut edits = self.header_edits(content_length);
        if let Some(cluster) = self.cluster() {
            edits.push((CLUSTER_HEADER.into(), Some(cluster.to_owned())));
        }
        apply_header_edits(&mut headers, edits);
        headers
    }

    /// How the request headers change, in order: the provider's path, authority, credentials
    /// and fixed headers, then the translation's and Envoy's retry steering, and the body length
    /// when it is given.
    fn header_edits(&self, content_length: Option<usize>) -> Vec<HeaderEdit> {
        let mut edits: Vec<HeaderEdit> = Vec::new();
        if let (Some(p), Some(path)) = (self.provider(), self.path()) {
            edits.push((":path".into(), Some(path.to_owned())));
            edits.push((":authority".into(), Some(p.authority.clone())));
            let credentials = p.auth.iter().map(|(name, value)| (*name, value.expose()));
            edits.extend(
                credentials.chain(p.headers.iter().map(|(n, v)| (*n, v.as_str()))).map(|(n, v)| (n.to_owned(), Some(v.to_owned()))),
            );
        }
        for (name, value) in self.upstream.headers.iter().chain(&self.retry_headers) {
            edits.push(((*name).to_owned(), Some(value.clone())));
        }
        if let Some(length) = content_length {
            edits.push(("content-length".into(), Some(length.to_string())));
        }
        edits
    }
}

/// A header to set (replacing every value it had) or, with `None`, to remove.
pub type HeaderEdit = (String, Option<String>);

/// Applies edits to a header list as Envoy would apply them one by one.
pub fn apply_header_edits(headers: &mut Vec<(String, String)>, edits: Vec<HeaderEdit>) {
    for (name, value) in edits {
        let first = headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(&name));
        let mut seen = false;
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name) || !std::mem::replace(&mut seen, true) && value.is_some());
        match (first, value) {
            (Some(i), Some(value)) => {
                if let Some(slot) = headers.get_mut(i) {
                    slot.1 = value;
                }
            }
            (None, Some(value)) => headers.push((name, value)),
            (_, None) => {}
        }
    }
}

/// What the shell exports for a request: its access log entry and metric samples.
#[derive(Debug, Default, PartialEq)]
pub struct Records {
    pub access_log: Vec<u8>,
    pub metrics: Vec<(telemetry::Series, u64)>,
    /// Filter state for Envoy's rate limits applied at stream end (global charges).
    pub properties: Vec<(&'static str, Vec<u8>)>,
}

/// A call to a route's last resort (e.g. a human review queue) when every target failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub cluster: String,
    pub path: String,
    pub authority: String,
    pub timeout_ms: u64,
    /// `provider/model` of the targets tried or skipped, for the handler.
    pub tried: String,
    /// Their providers, for the client.
    pub tried_providers: String,
    /// The client's dialect, in which the final answer is written.
    pub dialect: Dialect,
}

impl Escalation {
    /// The headers of the call to the last resort, which gets the client's request as it came.
    pub fn request_headers<'a>(&'a self, request_id: &'a str) -> [(&'static str, &'a str); 6] {
        [
            (":method", "POST"),
            (":path", self.path.as_str()),
            (":authority", self.authority.as_str()),
            ("content-type", "application/json"),
            ("x-request-id", request_id),
            ("x-tollgate-tried", self.tried.as_str()),
        ]
    }
}

impl Gateway {
    pub fn new(config: Config) -> Self {
        Gateway { config, batch: RefCell::default() }
    }

    /// `now_ms` reads the host's clock, only when the answer needs the time (the usage report):
    /// in wasm each read is a host call.
    pub fn on_request_headers(&self, head: &RequestHead, store: &dyn SharedStore, now_ms: &dyn Fn() -> u64) -> OnHeaders {
        let RequestHead { method, path, content_length, authorization, api_key } = *head;
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
            "tollgate/usage" if accounting.global_view.is_some() => OnHeaders::ReadGlobalUsage,
            "tollgate/usage" => OnHeaders::Respond(Reply::json(200, accounting.report(store, now_ms(), None))),
            _ if rest.starts_with("chat/completions") || rest.starts_with("models") || rest == "embeddings" => {
                let caller = match accounting.authenticate(authorization) {
                    Ok(c) => c,
                    Err(refusal) => return respond(refusal.into()),
                };
                self.route_endpoint(rest, method, path, content_length, caller)
            }
            _ if rest == "responses" || rest.starts_with("responses/") => {
                let caller = match accounting.authenticate(authorization) {
                    Ok(c) => c,
                    Err(refusal) => return respond(refusal.into()),
                };
                let limit = self.config.limits.max_request_bytes;
                match (rest, method) {
                    ("responses", "POST") => match content_length.map(str::parse::<usize>) {
                        Some(Ok(n)) if n > limit => respond(ApiError::too_large(limit)),
                        _ => OnHeaders::ReadBody(caller, Operation::Chat, Dialect::OpenAiResponses),
                    },
                    ("responses", _) => allow("POST"),
                    (_, "GET" | "DELETE") => OnHeaders::ReadBody(caller, Operation::StoredResponse, Dialect::OpenAiResponses),
                    _ => allow("GET, DELETE"),
                }
            }
            "messages" | "messages/count_tokens" => {
                let respond = |e: ApiError| OnHeaders::Respond(Reply::error(Dialect::AnthropicMessages, e));
                if method != "POST" {
                    let mut reply = Reply::error(Dialect::AnthropicMessages, ApiError::method_not_allowed(method, path));
                    reply.headers.push(("allow", "POST".to_owned()));
                    return OnHeaders::Respond(reply);
                }
                let caller = match accounting.authenticate_either(authorization, api_key) {
                    Ok(c) => c,
                    Err(refusal) => return respond(refusal.into()),
                };
                let limit = self.config.limits.max_request_bytes;
                let operation = if rest == "messages" { Operation::Chat } else { Operation::CountTokens };
                match content_length.map(str::parse::<usize>) {
                    Some(Ok(n)) if n > limit => respond(ApiError::too_large(limit)),
                    _ => OnHeaders::ReadBody(caller, operation, Dialect::AnthropicMessages),
                }
            }
            _ => respond(ApiError::not_found(format!(
                "Unknown endpoint {method} {path}. This gateway serves POST /v1/chat/completions, POST /v1/messages, POST /v1/embeddings and GET /v1/models."
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
                    _ => OnHeaders::ReadBody(caller, operation, Dialect::OpenAiChat),
                }
            }
            _ if method != "GET" => allow("GET"),
            // A key with a model allowlist sees only the models it may use; the others do not
            // exist for it (404, like an unknown model).
            "models" | "models/" => {
                let accounting = &self.config.accounting;
                let list = match caller.key {
                    None => self.config.models_json.clone(),
                    Some(_) => self.config.models_json_where(&|id| accounting.may_use(caller, id)),
                };
                OnHeaders::Respond(Reply::json(200, list))
            }
            _ => {
                let id = rest.strip_prefix("models/").unwrap_or_default();
                match self.config.model_card(id).filter(|_| self.config.accounting.may_use(caller, id)) {
                    Some(card) => OnHeaders::Respond(Reply::json(200, card.to_vec())),
                    None => OnHeaders::Respond(ApiError::model_not_found(id).into()),
                }
            }
        }
    }

    /// Handles a complete request body.
    pub fn on_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, ApiError> {
        if let (Operation::Chat, Some(external)) = (incoming.operation, &self.config.guardrails.external)
            && body.len() <= self.config.limits.max_request_bytes
        {
            let req = client::parse_chat(ClientBody { dialect: incoming.dialect, bytes: body, headers: incoming.headers })?;
            return Ok(Next::Analyze(external.analysis(&Guardrails::analysed_text(&req))));
        }
        self.decide_body(incoming, body, None, store, now_ms)
    }

    /// The external guardrail service answered the [`Next::Analyze`] call (`status` `None`: it
    /// did not): the request is decided with its findings.
    pub fn on_analysed(
        &self,
        incoming: &Incoming,
        body: &[u8],
        answer: (Option<u16>, &[u8]),
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> Result<Next<'_>, ApiError> {
        self.decide_body(incoming, body, Some(answer), store, now_ms)
    }

    fn decide_body(
        &self,
        incoming: &Incoming,
        body: &[u8],
        analysed: Option<(Option<u16>, &[u8])>,
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> Result<Next<'_>, ApiError> {
        if body.len() > self.config.limits.max_request_bytes {
            return Err(ApiError::too_large(self.config.limits.max_request_bytes));
        }
        // A request that lost a probe race is decided again: the target is then half-open and
        // skipped. Each round needs another request to win a race, so a few rounds suffice.
        for _ in 0..PROBE_RACES {
            let handled = match incoming.operation {
                Operation::Chat => self.on_chat_body(incoming, body, analysed, store, now_ms),
                Operation::Embeddings => self.on_embeddings_body(incoming, body, store, now_ms),
                Operation::CountTokens => self.on_count_tokens_body(incoming, body, store, now_ms),
                Operation::StoredResponse => self.on_stored_response(incoming, store, now_ms),
            };
            match handled {
                Ok(next) => return Ok(next),
                Err(Halt::Refused(e)) => return Err(e),
                Err(Halt::ProbeTaken) => {}
            }
        }
        Err(all_targets_failed("", "its recovering targets are being probed by other requests"))
    }

    fn facts<'r>(
        &'r self,
        incoming: &Incoming<'r>,
        model: &'r str,
        req: Option<&'r ChatRequest<'r>>,
        guardrails: &'r [&'r str],
        now_ms: u64,
    ) -> Facts<'r> {
        let accounting = &self.config.accounting;
        let key = incoming.caller.key.and_then(|k| accounting.keys.get(k));
        Facts {
            model,
            headers: incoming.headers,
            user: req.and_then(|r| r.user.as_deref()),
            metadata: req.and_then(|r| r.metadata),
            messages: req.map(|r| r.messages.as_slice()).unwrap_or_default(),
            key: key.map(|k| k.id.as_str()),
            team: key.and_then(|k| k.team).and_then(|t| accounting.scopes.get(t as usize)).map(|s| s.name.as_str()),
            now_ms,
            guardrails,
        }
    }

    fn on_chat_body(
        &self,
        incoming: &Incoming,
        body: &[u8],
        analysed: Option<(Option<u16>, &[u8])>,
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> Result<Next<'_>, Halt> {
        // Holds the body with the guardrails' redactions, when there are any.
        let redacted_body: Vec<u8>;
        // What the external guardrail service analysed, which its findings borrow.
        let analysed_text: String;
        let client = ClientBody { dialect: incoming.dialect, bytes: body, headers: incoming.headers };
        let req = client::parse_chat(client)?;
        let output = req.output_limit().unwrap_or(self.config.limits.estimated_output_tokens);
        let demand = Demand { input_tokens: body.len() as u64 / 4, output_tokens: output, stream: req.stream };
        let guardrails = &self.config.guardrails;
        let mut findings = guardrails.scan(&req);
        if let (Some(external), Some((status, answer))) = (&guardrails.external, analysed) {
            analysed_text = Guardrails::analysed_text(&req);
            match external.findings(&analysed_text, status, answer) {
                Ok(more) => findings.extend(more),
                Err(why) if external.fail_open => {
                    log::warn!("guardrail service `{}`: {why}; the request goes on (fail open)", external.cluster)
                }
                Err(why) => {
                    let e =
                        ApiError::new(503, "api_error", format!("The gateway's guardrail service could not check this request: {why}."));
                    return Ok(Next::Respond(Reply::error(incoming.dialect, e.with_code("guardrail_unavailable"))));
                }
            }
        }
        let found = guardrails.found(&findings);
        let facts = self.facts(incoming, &req.model, Some(&req), &found, now_ms);
        let selection = self.select(&facts, incoming.caller, store, demand)?;
        let scope = Scope { model: facts.model, key: facts.key, team: facts.team, route: selection.route().map(|r| r.name.as_str()) };
        let verdict = guardrails.decide(&findings, scope);
        if let Some(reply) = self.guarded(&verdict, selection.route(), incoming.dialect) {
            return Ok(Next::Respond(reply));
        }
        let Verdict { audit, redaction, restore, .. } = verdict;
        let guard = guardrails.answer_guard(scope, restore.as_ref());
        // Redaction rewrites the client's own JSON (see `guardrails::redact`): every path below,
        // the same-dialect fast path included, then starts from the redacted body.
        let (client, req, redacted) = match redaction.apply_json(body) {
            Some(b) => {
                redacted_body = b;
                let client = ClientBody { bytes: &redacted_body, ..client };
                (client, client::parse_chat(client)?, true)
            }
            None => (client, req, false),
        };
        let selection = self.accepted(selection, |choice| translate_chat(choice, req.clone(), client, None, now_ms).map(|_| ()))?;
        if incoming.explain && self.config.router.explain {
            return Ok(Next::Respond(Reply::json(200, self.explain(&selection))));
        }
        let ctx = ResponseContext {
            operation: Operation::Chat,
            dialect: incoming.dialect,
            created: now_ms / 1000,
            stream: req.stream,
            client_wants_usage: req.include_usage == Some(true),
            restore,
            guard,
            ..Default::default()
        };
        let ask = Ask {
            input_tokens: budget::input_bound(body.len(), req.media_parts(), !req.tools.is_empty()),
            output_tokens: output,
            choices: req.n.unwrap_or(1),
        };
        let requested = req.model.0.clone().into_owned();
        let next = match selection {
            Selection::Exhausted { route, skipped } => {
                Ok(self.exhausted(route, &skipped.iter().map(|s| s.target).collect::<Vec<_>>(), incoming.dialect)?)
            }
            Selection::Failover { route, first, plan, failover_cluster, commitment, .. } => {
                let price = self.config.router.dearest_price(&plan);
                let (mut charges, limit) = self.reserve(incoming.caller, &first, price, ask, (store, now_ms))?;
                // The upstream filter translates each attempt from the body it receives.
                let limited = limit.filter(|l| Some(*l) != req.output_limit()).map(|l| client::with_output_limit(client, l)).transpose();
                let upstream = match limited {
                    Ok(body) => UpstreamRequest { body: body.or_else(|| redacted.then(|| client.bytes.to_vec())), ..Default::default() },
                    Err(e) => {
                        self.config.accounting.release(store, &mut charges);
                        return Err(e.into());
                    }
                };
                let admitted = Admitted { caller: incoming.caller, charges, upstream, commitment };
                self.via_failover_cluster(
                    Operation::Chat,
                    route,
                    first,
                    &plan,
                    failover_cluster,
                    ctx,
                    requested,
                    incoming,
                    admitted,
                    (store, now_ms),
                )
            }
            Selection::Direct { route, choice, commitment, .. } => {
                let (mut charges, limit) = self.reserve(incoming.caller, &choice, choice.price, ask, (store, now_ms))?;
                let limit = limit.filter(|l| Some(*l) != req.output_limit());
                let (upstream, dropped) = match translate_chat(&choice, req, client, limit, now_ms) {
                    Ok((mut upstream, dropped)) => {
                        if redacted && upstream.body.is_none() {
                            upstream.body = Some(client.bytes.to_vec());
                        }
                        (upstream, dropped)
                    }
                    Err(e) => {
                        self.config.accounting.release(store, &mut charges);
                        return Err(e.into());
                    }
                };
                let ctx = ResponseContext { injected_usage: upstream.injected_usage, answer_tool: upstream.answer_tool.clone(), ..ctx };
                let to = Destination::Provider(choice.provider);
                let prepared = Prepared {
                    choice,
                    route,
                    requested,
                    ctx,
                    dropped,
                    admitted: Admitted { caller: incoming.caller, charges, upstream, commitment },
                };
                self.admit(prepared, Role::Direct, to, store, now_ms).map(Next::Forward)
            }
        };
        next.map(|next| with_audit(next, audit))
    }

    /// A request the guardrails refuse: a finding whose policy blocks, or one that must be routed
    /// by a rule naming its detector when the request's route does not (compliance routing
    /// never falls back to an ordinary target).
    fn guarded(&self, verdict: &Verdict, route: Option<&crate::router::Route>, dialect: Dialect) -> Option<Reply> {
        let names = |ids: &[usize]| ids.iter().map(|d| self.config.guardrails.name(*d)).collect::<Vec<_>>().join(", ");
        let unrouted: Vec<usize> =
            verdict.routed.iter().copied().filter(|d| !route.is_some_and(|r| r.names_guardrail(self.config.guardrails.name(*d)))).collect();
        let message = if !verdict.blocked.is_empty() {
            format!("The request was blocked by the gateway's guardrails: it contains {}.", names(&verdict.blocked))
        } else if !unrouted.is_empty() {
            format!("The request contains {}, which this gateway only sends by a routing rule for it; none applies.", names(&unrouted))
        } else {
            return None;
        };
        let mut reply = Reply::error(dialect, ApiError::new(400, "invalid_request_error", message).with_code("content_blocked"));
        reply.guardrails = verdict.audit.clone();
        Some(reply)
    }

    fn on_embeddings_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, Halt> {
        // Holds the body with the guardrails' redactions, when there are any.
        let redacted_body: Vec<u8>;
        let req = embeddings::parse(body)?;
        let demand = Demand { input_tokens: body.len() as u64 / 4, output_tokens: 0, stream: false };
        // The request-side guardrails on the input texts, as on a prompt (the external hook is
        // called for chat requests only).
        let guardrails = &self.config.guardrails;
        let inputs = req.inputs()?;
        let findings = guardrails.scan_texts(inputs.texts.iter().flatten().map(|t| &**t));
        let found = guardrails.found(&findings);
        let facts = self.facts(incoming, &req.model, None, &found, now_ms);
        let selection = self.select(&facts, incoming.caller, store, demand)?;
        let scope = Scope { model: facts.model, key: facts.key, team: facts.team, route: selection.route().map(|r| r.name.as_str()) };
        let verdict = guardrails.decide(&findings, scope);
        if let Some(reply) = self.guarded(&verdict, selection.route(), incoming.dialect) {
            return Ok(Next::Respond(reply));
        }
        let (body, req, redacted) = match verdict.redaction.apply_json(body) {
            Some(b) => {
                redacted_body = b;
                (&redacted_body[..], embeddings::parse(&redacted_body)?, true)
            }
            None => (body, req, false),
        };
        let accepts = |choice: &Choice| {
            providers::build_embeddings(choice.provider, &req, body, &BuildContext { model: &choice.model, now_ms }).map(|_| ())
        };
        let selection = self.accepted(selection, accepts)?;
        if incoming.explain && self.config.router.explain {
            return Ok(Next::Respond(Reply::json(200, self.explain(&selection))));
        }
        let ctx =
            ResponseContext { operation: Operation::Embeddings, created: now_ms / 1000, base64: req.wants_base64(), ..Default::default() };
        // Embeddings bill input only; token-id inputs spend at least two bytes per token too.
        let ask = Ask { input_tokens: budget::input_bound(body.len(), 0, false), output_tokens: 0, choices: 1 };
        let requested = req.model.0.clone().into_owned();
        let next = match selection {
            Selection::Exhausted { route, skipped } => {
                Ok(self.exhausted(route, &skipped.iter().map(|s| s.target).collect::<Vec<_>>(), incoming.dialect)?)
            }
            Selection::Failover { route, first, plan, failover_cluster, commitment, .. } => {
                let price = self.config.router.dearest_price(&plan);
                let (charges, _) = self.reserve(incoming.caller, &first, price, ask, (store, now_ms))?;
                let upstream = UpstreamRequest { body: redacted.then(|| body.to_vec()), ..Default::default() };
                let admitted = Admitted { caller: incoming.caller, charges, upstream, commitment };
                self.via_failover_cluster(
                    Operation::Embeddings,
                    route,
                    first,
                    &plan,
                    failover_cluster,
                    ctx,
                    requested,
                    incoming,
                    admitted,
                    (store, now_ms),
                )
            }
            Selection::Direct { route, choice, commitment, .. } => {
                let mut upstream =
                    providers::build_embeddings(choice.provider, &req, body, &BuildContext { model: &choice.model, now_ms })?;
                if redacted && upstream.body.is_none() {
                    upstream.body = Some(body.to_vec());
                }
                let (charges, _) = self.reserve(incoming.caller, &choice, choice.price, ask, (store, now_ms))?;
                let to = Destination::Provider(choice.provider);
                let prepared = Prepared {
                    choice,
                    route,
                    requested,
                    ctx,
                    dropped: Vec::new(),
                    admitted: Admitted { caller: incoming.caller, charges, upstream, commitment },
                };
                self.admit(prepared, Role::Direct, to, store, now_ms).map(Next::Forward)
            }
        };
        next.map(|next| with_audit(next, verdict.audit))
    }

    /// Messages' `count_tokens`: the target's provider counts where it has the endpoint (an
    /// Anthropic provider; the request goes on as it came but for the model), else the gateway
    /// estimates from the conversation's text and says so (`x-tollgate-estimate: 1`). Nothing is
    /// charged.
    fn on_count_tokens_body(&self, incoming: &Incoming, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, Halt> {
        // Holds the body with the guardrails' redactions, when there are any.
        let redacted_body: Vec<u8>;
        let client = ClientBody { dialect: incoming.dialect, bytes: body, headers: incoming.headers };
        let req = client::parse_count_tokens(client)?;
        let demand = Demand { input_tokens: body.len() as u64 / 4, output_tokens: 0, stream: false };
        // The request-side guardrails as on the chat request it counts, so what is refused or
        // redacted there is here too (the external hook is called for chat requests only).
        let guardrails = &self.config.guardrails;
        let findings = guardrails.scan(&req);
        let found = guardrails.found(&findings);
        let facts = self.facts(incoming, &req.model, Some(&req), &found, now_ms);
        let (route, choice, commitment) = match self.select(&facts, incoming.caller, store, demand)? {
            Selection::Direct { route, choice, commitment, .. } => (route, choice, commitment),
            Selection::Failover { route, first, commitment, .. } => (Some(route), first, commitment),
            Selection::Exhausted { route, skipped } => {
                return Ok(self.exhausted(route, &skipped.iter().map(|s| s.target).collect::<Vec<_>>(), incoming.dialect)?);
            }
        };
        let scope = Scope { model: facts.model, key: facts.key, team: facts.team, route: route.map(|r| r.name.as_str()) };
        let verdict = guardrails.decide(&findings, scope);
        if let Some(reply) = self.guarded(&verdict, route, incoming.dialect) {
            return Ok(Next::Respond(reply));
        }
        let (client, req) = match verdict.redaction.apply_json(body) {
            Some(b) => {
                redacted_body = b;
                let client = ClientBody { bytes: &redacted_body, ..client };
                (client, client::parse_count_tokens(client)?)
            }
            None => (client, req),
        };
        let to = BuildContext { model: &choice.model, now_ms };
        let Some(upstream) = choice.provider.settings.api().build_count_tokens(choice.provider, &req, client, &to) else {
            let estimate = req.text_bytes().div_ceil(4);
            let mut reply = Reply::json(200, format!("{{\"input_tokens\":{estimate}}}").into_bytes());
            reply.headers.push(("x-tollgate-estimate", "1".to_owned()));
            reply.guardrails = verdict.audit;
            return Ok(Next::Respond(reply));
        };
        let upstream = upstream?;
        let ctx =
            ResponseContext { operation: Operation::CountTokens, dialect: incoming.dialect, created: now_ms / 1000, ..Default::default() };
        let prepared = Prepared {
            choice,
            route,
            requested: req.model.0.clone().into_owned(),
            ctx,
            dropped: Vec::new(),
            admitted: Admitted { caller: incoming.caller, charges: Charges::default(), upstream, commitment },
        };
        let to = Destination::Provider(prepared.choice.provider);
        self.admit(prepared, Role::Direct, to, store, now_ms).map(|f| with_audit(Next::Forward(f), verdict.audit))
    }

    /// `GET`/`DELETE /v1/responses/{id}`: a response only OpenAI keeps (Tollgate stores none), so
    /// the request goes as it came to the first provider that serves the Responses API.
    fn on_stored_response(&self, incoming: &Incoming, store: &dyn SharedStore, now_ms: u64) -> Result<Next<'_>, Halt> {
        let path = crate::headers::value(incoming.headers, ":path").unwrap_or_default();
        let stored = path.strip_prefix("/v1/responses").unwrap_or_default();
        let providers = &self.config.providers;
        let Some((index, provider)) = providers.iter().enumerate().find(|(_, p)| p.settings.api().speaks(Dialect::OpenAiResponses, ""))
        else {
            return Err(ApiError::not_found(
                "Stored responses live at OpenAI: this gateway has no OpenAI or Azure provider to ask. Requests to other providers are stateless.",
            )
            .into());
        };
        Gateway::credentials(provider)?;
        let upstream = UpstreamRequest { path: provider.settings.api().responses_path(provider, stored), ..Default::default() };
        let ctx = ResponseContext {
            operation: Operation::StoredResponse,
            dialect: incoming.dialect,
            created: now_ms / 1000,
            ..Default::default()
        };
        let choice = Choice {
            provider,
            provider_index: index,
            model: String::new(),
            policy: std::borrow::Cow::Borrowed(&[]),
            scope: 0,
            price: None,
            target: None,
        };
        let prepared = Prepared {
            choice,
            route: None,
            requested: String::new(),
            ctx,
            dropped: Vec::new(),
            admitted: Admitted { caller: incoming.caller, charges: Charges::default(), upstream, commitment: Commitment::default() },
        };
        self.admit(prepared, Role::Direct, Destination::Provider(provider), store, now_ms).map(Next::Forward)
    }

    /// Reserves a request's worst case in the caller's capped budgets. Where a cap applies and
    /// the price is known, the output limit is clamped to what the budgets still pay for (the
    /// returned limit, which the provider must receive); when not even one output token fits,
    /// the reservation is refused with the budget 429.
    fn reserve(
        &self,
        caller: Caller,
        choice: &Choice,
        price: Option<Price>,
        ask: Ask,
        (store, now_ms): (&dyn SharedStore, u64),
    ) -> Result<(Charges, Option<u64>), ApiError> {
        let accounting = &self.config.accounting;
        let mut charges = accounting.charges(caller, choice.provider.scope, choice.scope, choice.price);
        let limit = match price {
            Some(p) if ask.output_tokens > 0 => {
                accounting.headroom(store, now_ms, &charges).map(|room| budget::affordable_output(p, room, ask).unwrap_or(1))
            }
            _ => None,
        };
        let ask = Ask { output_tokens: limit.unwrap_or(ask.output_tokens), ..ask };
        accounting.admit(store, now_ms, &mut charges, budget::estimate(price, ask), ask.tokens())?;
        Ok((charges, limit))
    }

    /// No target of the route is available: the last resort, or a 503 saying why.
    fn exhausted(&self, route: &crate::router::Route, skipped: &[crate::router::TargetId], dialect: Dialect) -> Result<Next<'_>, ApiError> {
        let tried = self.config.router.names(skipped, &self.config.providers).join(", ");
        let tried_providers = self.config.router.provider_names(skipped, &self.config.providers).join(", ");
        match &route.last_resort {
            Some(l) => Ok(Next::Escalate(Escalation {
                cluster: l.cluster.clone(),
                path: l.path.clone(),
                authority: l.authority.clone(),
                timeout_ms: l.timeout_ms,
                tried,
                tried_providers,
                dialect,
            })),
            None => Err(all_targets_failed(&tried_providers, "every target is unavailable (circuit open or rate-limited)")),
        }
    }

    /// Sends the request to a failover cluster; the upstream filter translates each attempt.
    #[allow(clippy::too_many_arguments)]
    fn via_failover_cluster<'c>(
        &'c self,
        operation: Operation,
        route: &'c crate::router::Route,
        first: Choice<'c>,
        plan: &[crate::router::TargetId],
        failover_cluster: usize,
        ctx: ResponseContext,
        requested: String,
        incoming: &Incoming,
        mut admitted: Admitted,
        (store, now_ms): (&dyn SharedStore, u64),
    ) -> Result<Next<'c>, Halt> {
        let router = &self.config.router;
        let Some(cluster) = router.failover_clusters.get(failover_cluster).map(|c| c.cluster.as_str()) else {
            self.config.accounting.release(store, &mut admitted.charges);
            return Err(ApiError::internal("unknown failover cluster").into());
        };
        // The upstream filter always reports usage; the client sees the usage chunk only if asked.
        let ctx = ResponseContext { injected_usage: ctx.stream && !ctx.client_wants_usage, ..ctx };
        let attempts = u32::try_from(plan.len().saturating_sub(1)).unwrap_or(u32::MAX);
        let headers = retry_headers(router.retry_for(route), attempts);
        // Every attempt rebuilds its headers from the client's: carry those any attempt may forward.
        let providers = &self.config.providers;
        let native: Vec<String> = incoming.dialect.native_headers().iter().map(|h| (*h).to_owned()).collect();
        let mut lists: Vec<&[String]> = vec![&route.forward_headers, &native];
        lists.extend(
            plan.iter().filter_map(|t| router.target(*t)).filter_map(|t| providers.get(t.provider)).map(|p| p.forward_headers.as_slice()),
        );
        let carried = crate::headers::forwarded(incoming.headers, &lists);
        let to = Destination::FailoverCluster {
            cluster,
            plan: upstream::encode_plan(&router.encode_plan(operation, plan, providers), route.index, incoming.dialect, &carried),
        };
        let role = Role::ViaFailoverCluster { plan: plan.to_vec() };
        let prepared = Prepared { choice: first, route: Some(route), requested, ctx, dropped: Vec::new(), admitted };
        let mut forward = self.admit(prepared, role, to, store, now_ms)?;
        forward.retry_headers = headers;
        Ok(Next::Forward(forward))
    }

    /// Takes what the plan needs now that the request is admitted (its probe, its round-robin
    /// turn) and hands the request over to its exchange.
    fn admit<'c>(
        &'c self,
        p: Prepared<'c>,
        role: Role,
        to: Destination<'c>,
        store: &dyn SharedStore,
        now_ms: u64,
    ) -> Result<Forward<'c>, Halt> {
        let Prepared { choice, route, requested, mut ctx, dropped, admitted: Admitted { caller, mut charges, mut upstream, commitment } } =
            p;
        if let Some(r) = route
            && !self.config.router.commit(r, commitment, store, now_ms)
        {
            self.config.accounting.release(store, &mut charges);
            return Err(Halt::ProbeTaken);
        }
        upstream.headers.extend(self.config.accounting.descriptor_headers(caller, choice.scope));
        ctx.model = choice.model;
        // A stream the guardrails rewrite is parsed event by event even from a provider that
        // speaks the client's API (OpenAI chat and Messages; a Responses stream passes through,
        // rewritten event by event, see `openai::responses_rewrite`).
        let rewriting = ctx.stream && ctx.rewrites_answer() && ctx.dialect != Dialect::OpenAiResponses;
        ctx.native = choice.provider.settings.api().speaks(ctx.dialect, &ctx.model) && !rewriting;
        // Through a failover cluster, each attempt reports its own target's health from the
        // upstream filter.
        let target = if let Role::ViaFailoverCluster { .. } = role { None } else { choice.target };
        let exchange = Exchange::new(Opening {
            role,
            provider: choice.provider_index,
            ctx,
            dropped,
            charges,
            requested_model: requested,
            caller,
            model_scope: choice.scope,
            started_ms: now_ms,
            route: route.map(|r| r.index),
            target,
        });
        let retry = route.and_then(|r| self.config.router.retry_for(r)).or(self.config.router.default_retry.as_ref());
        Ok(Forward {
            to,
            upstream,
            retry_headers: retry_headers(retry, 0),
            route_forward: route.map_or(&[][..], |r| r.forward_headers.as_slice()),
            exchange,
            keep_body: route.is_some_and(|r| r.last_resort.is_some()),
        })
    }

    /// Accounts for a finished exchange (complete, failed or cut off): usage and cost in every
    /// scope, reservations settled, and the target's health when the route has alternatives.
    pub fn finish(&self, exchange: &mut Exchange, store: &dyn SharedStore, now_ms: u64) -> Outcome {
        let failed = !exchange.completed || !(200..300).contains(&exchange.status);
        let outcome = budget::outcome(&exchange.charges, exchange.usage, failed);
        let accounting = &self.config.accounting;
        match self.batch.try_borrow_mut() {
            Ok(mut batch) if accounting.flush_ms > 0 => accounting.settle(store, now_ms, &exchange.charges, &outcome, Some(&mut batch)),
            _ => accounting.settle(store, now_ms, &exchange.charges, &outcome, None),
        }
        if let Some(target) = exchange.target.and_then(|t| self.config.router.target(t)) {
            exchange.breaker_opened = self.report_health(&target.health_key, exchange, store, now_ms);
        }
        outcome
    }

    /// Writes this worker's batched counters to shared data.
    pub fn flush(&self, store: &dyn SharedStore) {
        if let Ok(mut batch) = self.batch.try_borrow_mut()
            && !batch.is_empty()
        {
            self.config.accounting.flush(store, &mut batch);
        }
    }

    /// Records how an attempt went; true when this opened the target's breaker.
    pub(crate) fn report_health(&self, key: &str, exchange: &Exchange, store: &dyn SharedStore, now_ms: u64) -> bool {
        let attempt = match exchange.status {
            200..=299 if exchange.completed => Observation::Success {
                latency_us: now_ms.saturating_sub(exchange.started_ms) * 1000,
                ttfb_us: exchange.time_to_first_token_ms().map(|t| t * 1000),
            },
            429 => Observation::RateLimited { until_ms: exchange.rate_limited_until },
            // Client errors say nothing about the target's health.
            400..=499 if exchange.status != 408 => return false,
            _ => Observation::Failure,
        };
        match health::record(store, key, now_ms, &self.config.router.breaker, attempt) {
            Ok(t) => t == health::Transition::Opened,
            Err(e) => {
                log::warn!("could not record health for {key}: {e:?}");
                false
            }
        }
    }

    /// What a request Tollgate answered itself leaves behind: a rejection metric for errors and
    /// its access log entry.
    pub fn reply_records(&self, caller: Caller, reply: &Reply) -> Records {
        let mut metrics = if reply.status >= 400 { vec![(telemetry::rejection(reply.status), 1)] } else { Vec::new() };
        metrics.extend(telemetry::guardrail_samples(&reply.guardrails));
        Records {
            access_log: access_log::for_reply(&self.config, caller, reply.status, reply.error_code.as_deref(), &reply.guardrails),
            metrics,
            properties: Vec::new(),
        }
    }

    /// The request is over, whatever ended it (completion, upstream reset, client disconnect):
    /// it is accounted (with the usage the upstream filter reported, `usage_report`, for a
    /// failover request) and leaves its access log entry and metrics.
    pub fn on_log(&self, exchange: &mut Exchange, usage_report: Option<&[u8]>, store: &dyn SharedStore, now_ms: u64) -> Records {
        exchange.take_reported_usage(usage_report);
        exchange.take_stream_findings();
        let access_log = access_log::for_exchange(&self.config, exchange, now_ms);
        let outcome = self.finish(exchange, store, now_ms);
        let metrics = exchange.provider(&self.config).map(|p| telemetry::samples(exchange, p.scope, now_ms)).unwrap_or_default();
        let properties = self.config.accounting.global_charges.map(|g| g.hits(&outcome).properties().into()).unwrap_or_default();
        Records { access_log, metrics, properties }
    }

    /// An attempt is over (answered or not): the target's health and the attempt's metrics.
    pub fn on_attempt_done(&self, exchange: &Exchange, store: &dyn SharedStore, now_ms: u64) -> Vec<(telemetry::Series, u64)> {
        let opened = self.finish_attempt(exchange, store, now_ms);
        telemetry::attempt_samples(exchange, &self.config, opened)
    }

    /// The answer after a last resort took the request.
    pub fn escalated_reply(&self, escalation: &Escalation, status: Option<u16>, body: &[u8]) -> Reply {
        let handler = match status {
            Some(s @ 200..=299) => format!("it was handed to the last-resort handler (HTTP {s}: {})", providers::excerpt(body)),
            Some(s) => format!("the last-resort handler failed too (HTTP {s})"),
            None => "the last-resort handler could not be reached".into(),
        };
        Reply::error(escalation.dialect, all_targets_failed(&escalation.tried_providers, &handler).with_code("all_targets_failed"))
    }
}

/// A forwarded request carries what the guardrails found in it to its exchange.
fn with_audit(next: Next<'_>, audit: Audit) -> Next<'_> {
    match next {
        Next::Forward(mut forward) => {
            forward.exchange.guardrails = audit;
            Next::Forward(forward)
        }
        other => other,
    }
}

/// The 503 that lists the providers tried.
fn all_targets_failed(tried: &str, what: &str) -> ApiError {
    let tried = if tried.is_empty() { String::new() } else { format!(" Tried: {tried}.") };
    ApiError::new(503, "api_error", format!("No target could serve this request: {what}.{tried}")).with_code("all_targets_failed")
}

/// Envoy retry steering headers (honoured by the router for requests from Tollgate).
fn retry_headers(retry: Option<&Retry>, min_retries: u32) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    let (on, codes, max) = match retry {
        Some(r) => (r.on.as_str(), r.status_codes.as_str(), r.max_retries.max(min_retries)),
        None if min_retries > 0 => ("5xx,reset,connect-failure,refused-stream,retriable-status-codes", "429", min_retries),
        None => return h,
    };
    h.push(("x-envoy-retry-on", on.to_owned()));
    if !codes.is_empty() {
        h.push(("x-envoy-retriable-status-codes", codes.to_owned()));
    }
    h.push(("x-envoy-max-retries", max.to_string()));
    if let Some(r) = retry {
        if let Some(t) = r.timeout_ms {
            h.push(("x-envoy-upstream-rq-timeout-ms", t.to_string()));
        }
        if let Some(t) = r.per_try_timeout_ms {
            h.push(("x-envoy-upstream-rq-per-try-timeout-ms", t.to_string()));
        }
    }
    h
}

fn with_allow(e: ApiError, allow: &str) -> Reply {
    let mut reply = Reply::from(e);
    reply.headers.push(("allow", allow.to_owned()));
    reply
}

/// A request translated for its provider, its budget reserved.
struct Prepared<'c> {
    choice: Choice<'c>,
    route: Option<&'c crate::router::Route>,
    requested: String,
    ctx: ResponseContext,
    dropped: Vec<String>,
    admitted: Admitted,
}

/// What admission holds for a request: whose reservations, what goes upstream, and what its
/// plan takes on commit.
struct Admitted {
    caller: Caller,
    charges: Charges,
    upstream: UpstreamRequest,
    commitment: Commitment,
}

/// How many times a request is decided again after losing a probe race.
const PROBE_RACES: usize = 3;

/// Why a request body was not forwarded.
#[derive(Debug)]
enum Halt {
    Refused(ApiError),
    /// Another request won the first target's half-open probe after this one was decided.
    ProbeTaken,
}

impl From<ApiError> for Halt {
    fn from(e: ApiError) -> Self {
        Halt::Refused(e)
    }
}

/// Translates a chat request for a single target, with the output limit budgets impose.
fn translate_chat(
    choice: &Choice,
    req: ChatRequest,
    client: ClientBody,
    limit: Option<u64>,
    now_ms: u64,
) -> Result<(UpstreamRequest, Vec<String>), ApiError> {
    let (upstream, dropped) = build_for(choice, req, client, limit, now_ms).map_err(|e| client::in_client_terms(client.dialect, e))?;
    Ok((upstream, dropped.iter().map(|d| client::field_name(client.dialect, d).into_owned()).collect()))
}

fn build_for(
    choice: &Choice,
    req: ChatRequest,
    client: ClientBody,
    limit: Option<u64>,
    now_ms: u64,
) -> Result<(UpstreamRequest, Vec<String>), ApiError> {
    let limited = limit.map(|l| client::with_output_limit(client, l)).transpose()?;
    let client = ClientBody { bytes: limited.as_deref().unwrap_or(client.bytes), ..client };
    let mut req = match &limited {
        Some(_) => client::parse_chat(client)?,
        None => req,
    };
    let mut edits = Edits::default();
    apply_policy(&mut req, &choice.policy, &mut edits)?;
    let mut upstream = providers::build_chat(choice.provider, &req, client, &BuildContext { model: &choice.model, now_ms }, &mut edits)?;
    drop(req);
    if upstream.body.is_none() {
        upstream.body = limited;
    }
    Ok((upstream, edits.dropped))
}

/// Applies a model's parameter policy to the parsed request.
pub(crate) fn apply_policy(req: &mut ChatRequest, policy: &[(String, ParamAction)], edits: &mut Edits) -> Result<(), ApiError> {
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
            ParamAction::Reasoning(form) => edits.reasoning = Some(*form),
            ParamAction::JsonSchema(form) => edits.json_schema = Some(*form),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
