//! Metrics: which series a finished request adds to. Names follow the OpenTelemetry GenAI
//! semantic conventions where they fit (https://opentelemetry.io/docs/specs/semconv/gen-ai/
//! gen-ai-metrics/): token usage by `gen_ai.token.type`, operation duration, time to first token.
//!
//! Labels travel inside the Envoy stat name (`tollgate.provider.<p>.model.<m>.<label>.<v>.<metric>`)
//! and become Prometheus labels through the `stats_tags` regexes shipped in the Envoy configs.
//! Every label value comes from configuration or a small fixed set, so cardinality is bounded.

use super::Exchange;
use crate::accounting::budget::{Accounting, BudgetLevel, ScopeId};
use crate::accounting::money::Pico;
use crate::guardrails::{Audit, Direction, Guardrails};
use crate::schema::GuardrailAction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    TokenUsage,
    CostNanoUsd,
    UnpricedRequests,
    OperationDurationMs,
    TimeToFirstTokenMs,
    /// Streams that ended without their proper end (truncated, reset, cut off).
    IncompleteResponses,
    /// Requests Tollgate answered itself (bad input, auth, budget), by status.
    Rejections,
    /// Attempts a failover cluster made, by target and status (0: no response).
    Attempts,
    /// Requests answered by a fallback after the first target failed.
    Fallbacks,
    /// Breakers that opened.
    BreakerOpened,
    /// Guardrail findings, by detector, action and direction.
    GuardrailFindings,
}

impl Metric {
    pub fn is_histogram(self) -> bool {
        matches!(self, Metric::OperationDurationMs | Metric::TimeToFirstTokenMs)
    }

    fn stat_name(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::TokenUsage => "gen_ai_client_token_usage",
            Metric::CostNanoUsd => "cost_nano_usd",
            Metric::UnpricedRequests => "unpriced_requests",
            Metric::OperationDurationMs => "gen_ai_client_operation_duration_ms",
            Metric::TimeToFirstTokenMs => "gen_ai_server_time_to_first_token_ms",
            Metric::IncompleteResponses => "incomplete_responses",
            Metric::Rejections => "rejections",
            Metric::Attempts => "attempts",
            Metric::Fallbacks => "fallbacks",
            Metric::BreakerOpened => "breaker_opened",
            Metric::GuardrailFindings => "guardrail_findings",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    None,
    Status(u16),
    TokenType(&'static str),
    /// A guardrail detector (by id), the action taken and the direction.
    Guardrail(usize, GuardrailAction, Direction),
}

/// One time series: a metric for a provider/model with at most one extra label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Series {
    pub metric: Metric,
    pub provider: Option<ScopeId>,
    pub model: Option<ScopeId>,
    pub label: Label,
}

/// A label of a series: a segment of the flat stat name (`provider.<p>`, read back by the
/// shipped configs' `stats_tags` regexes) or, in the native build, a tag of a labelled stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelName {
    Provider,
    Model,
    TokenType,
    Status,
    Guardrail,
    Action,
    Direction,
}

impl LabelName {
    fn segment(self) -> &'static str {
        match self {
            LabelName::Provider => "provider",
            LabelName::Model => "model",
            LabelName::TokenType => "token_type",
            LabelName::Status => "status",
            LabelName::Guardrail => "guardrail",
            LabelName::Action => "action",
            LabelName::Direction => "direction",
        }
    }

    /// The Prometheus label: the `tag_name` of the shipped `stats_tags`.
    pub fn tag(self) -> &'static str {
        match self {
            LabelName::Provider => "gen_ai_provider_name",
            LabelName::Model => "gen_ai_request_model",
            LabelName::TokenType => "gen_ai_token_type",
            LabelName::Status => "http_status",
            LabelName::Guardrail => "guardrail",
            LabelName::Action => "guardrail_action",
            LabelName::Direction => "direction",
        }
    }
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::Requests,
        Metric::TokenUsage,
        Metric::CostNanoUsd,
        Metric::UnpricedRequests,
        Metric::OperationDurationMs,
        Metric::TimeToFirstTokenMs,
        Metric::IncompleteResponses,
        Metric::Rejections,
        Metric::Attempts,
        Metric::Fallbacks,
        Metric::BreakerOpened,
        Metric::GuardrailFindings,
    ];

    /// The labels its series carry, in the order of the shipped `stats_tags`.
    pub fn labels(self) -> &'static [LabelName] {
        use LabelName::*;
        match self {
            Metric::Requests | Metric::Attempts => &[Provider, Model, Status],
            Metric::TokenUsage => &[Provider, Model, TokenType],
            Metric::Rejections => &[Status],
            Metric::GuardrailFindings => &[Guardrail, Action, Direction],
            _ => &[Provider, Model],
        }
    }

    /// The stat's name without its labels (a labelled stat's name).
    pub fn base_name(self) -> String {
        format!("tollgate.{}", self.stat_name())
    }
}

impl Series {
    /// The values of the metric's [`Metric::labels`], in order; empty where the series has none
    /// (Prometheus reads an empty label as an absent one). Sanitised so a `.` cannot split a
    /// segment of the flat name.
    pub fn label_values(&self, accounting: &Accounting, guardrails: &Guardrails) -> Vec<String> {
        let scope_name = |id: Option<ScopeId>| id.and_then(|i| accounting.scopes.get(i as usize)).map(|s| sanitize(&s.name));
        let guardrail = match self.label {
            Label::Guardrail(detector, action, direction) => Some((detector, action, direction)),
            _ => None,
        };
        self.metric
            .labels()
            .iter()
            .map(|name| match name {
                LabelName::Provider => scope_name(self.provider).unwrap_or_default(),
                LabelName::Model => scope_name(self.model).unwrap_or_default(),
                LabelName::TokenType => match self.label {
                    Label::TokenType(t) => t.to_owned(),
                    _ => String::new(),
                },
                LabelName::Status => match self.label {
                    Label::Status(code) => code.to_string(),
                    _ => String::new(),
                },
                LabelName::Guardrail => guardrail.map(|(d, _, _)| sanitize(guardrails.name(d))).unwrap_or_default(),
                LabelName::Action => guardrail.map(|(_, a, _)| a.as_str().to_owned()).unwrap_or_default(),
                LabelName::Direction => guardrail.map(|(_, _, d)| d.as_str().to_owned()).unwrap_or_default(),
            })
            .collect()
    }

    /// The flat Envoy stat name (`tollgate.provider.<p>.model.<m>.status.<s>.requests`).
    pub fn name(&self, accounting: &Accounting, guardrails: &Guardrails) -> String {
        let mut name = String::from("tollgate");
        for (label, value) in self.metric.labels().iter().zip(self.label_values(accounting, guardrails)) {
            if !value.is_empty() {
                name.push('.');
                name.push_str(label.segment());
                name.push('.');
                name.push_str(&value);
            }
        }
        name.push('.');
        name.push_str(self.metric.stat_name());
        name
    }
}

fn sanitize(value: &str) -> String {
    value.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// The samples a finished exchange adds, at `now_ms`.
pub fn samples(exchange: &Exchange, provider: ScopeId, now_ms: u64) -> Vec<(Series, u64)> {
    let series = |metric, label| Series { metric, provider: Some(provider), model: Some(exchange.model_scope), label };
    let mut out = Vec::with_capacity(9);
    out.push((series(Metric::Requests, Label::Status(exchange.status)), 1));
    if (200..300).contains(&exchange.status) && !exchange.completed {
        out.push((series(Metric::IncompleteResponses, Label::None), 1));
    }
    if let Some(u) = &exchange.usage {
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cached_input", u.cache_read_tokens),
            ("cache_write", u.cache_write_tokens),
            ("reasoning", u.reasoning_tokens),
        ] {
            if n > 0 {
                out.push((series(Metric::TokenUsage, Label::TokenType(kind)), n));
            }
        }
    }
    match (exchange.usage, exchange.charges.price) {
        (Some(u), Some(p)) => {
            let nano = nano_usd(p.cost(&u));
            if nano > 0 {
                out.push((series(Metric::CostNanoUsd, Label::None), nano));
            }
        }
        _ if exchange.completed => out.push((series(Metric::UnpricedRequests, Label::None), 1)),
        _ => {}
    }
    if exchange.attempts > 1 && (200..300).contains(&exchange.status) && !exchange.plan().is_empty() {
        out.push((series(Metric::Fallbacks, Label::None), 1));
    }
    if exchange.breaker_opened {
        out.push((series(Metric::BreakerOpened, Label::None), 1));
    }
    if exchange.started_ms > 0 {
        out.push((series(Metric::OperationDurationMs, Label::None), now_ms.saturating_sub(exchange.started_ms)));
        if let Some(ttft) = exchange.time_to_first_token_ms() {
            out.push((series(Metric::TimeToFirstTokenMs, Label::None), ttft));
        }
    }
    out.extend(guardrail_samples(&exchange.guardrails));
    out
}

/// One counter per audit line (gateway-wide: no provider or model label).
pub fn guardrail_samples(audit: &Audit) -> impl Iterator<Item = (Series, u64)> + '_ {
    audit.iter().map(|l| {
        let label = Label::Guardrail(l.detector, l.action, l.direction);
        (Series { metric: Metric::GuardrailFindings, provider: None, model: None, label }, u64::from(l.count))
    })
}

/// What one attempt of a failover cluster adds (upstream role).
pub fn attempt_samples(exchange: &Exchange, config: &crate::config::Config, breaker_opened: bool) -> Vec<(Series, u64)> {
    let provider = exchange.provider(config).map(|p| p.scope);
    let model = exchange.target.and_then(|t| config.router.target(t)).map(|t| t.scope);
    let series = |metric, label| Series { metric, provider, model, label };
    let mut out = vec![(series(Metric::Attempts, Label::Status(exchange.status)), 1)];
    if breaker_opened {
        out.push((series(Metric::BreakerOpened, Label::None), 1));
    }
    out
}

/// The series each configured (provider, model) pair has from startup, at zero: dashboards and
/// alerts then read 0 before the first request, not "no data", and `rate()` sees the first
/// error (Prometheus takes no increase from a series' first sample). Requests start at zero for
/// 200 and the usual provider failures; other statuses appear when they first happen. Refusals start at zero for the statuses a
/// caller's mistake or budget gives.
pub fn startup_series(served: &[(ScopeId, ScopeId)]) -> Vec<Series> {
    let mut out: Vec<Series> = [400, 401, 403, 404, 413, 429].into_iter().map(rejection).collect();
    out.reserve(served.len() * 15);
    for &(provider, model) in served {
        let series = |metric, label| Series { metric, provider: Some(provider), model: Some(model), label };
        for status in [200, 429, 500, 502, 503, 504] {
            out.push(series(Metric::Requests, Label::Status(status)));
        }
        for kind in ["input", "output"] {
            out.push(series(Metric::TokenUsage, Label::TokenType(kind)));
        }
        for metric in [
            Metric::CostNanoUsd,
            Metric::UnpricedRequests,
            Metric::IncompleteResponses,
            Metric::Fallbacks,
            Metric::BreakerOpened,
            Metric::OperationDurationMs,
            Metric::TimeToFirstTokenMs,
        ] {
            out.push(series(metric, Label::None));
        }
    }
    out
}

/// The budget gauges (`tollgate.budget.scope.<kind>.name.<name>.period.<period>.<which>_nano_usd`,
/// `which` is `limit`, `spent` or `remaining`) and their values, from each capped scope's level.
pub fn budget_gauges(levels: &[BudgetLevel]) -> Vec<(String, u64)> {
    level_gauges("tollgate.budget", levels)
}

/// Whether the rate-limit service answered the last refresh of the global budget gauges.
pub const GLOBAL_SERVICE_AVAILABLE: &str = "tollgate.global_budget.service_available";

/// The global budget gauges (`tollgate.global_budget.scope.…`, named as the budget gauges): what
/// the rate-limit service's counters hold.
pub fn global_budget_gauges(levels: &[BudgetLevel]) -> Vec<(String, u64)> {
    level_gauges("tollgate.global_budget", levels)
}

fn level_gauges(family: &str, levels: &[BudgetLevel]) -> Vec<(String, u64)> {
    let mut out = Vec::with_capacity(levels.len() * 3);
    for l in levels {
        let prefix = format!("{family}.scope.{}.name.{}.period.{}.", l.kind, sanitize(l.name), l.period);
        for (which, value) in [("limit", l.limit), ("spent", l.spent), ("remaining", l.remaining)] {
            out.push((format!("{prefix}{which}_nano_usd"), nano_usd(value)));
        }
    }
    out
}

/// A request Tollgate answered itself with `status`.
pub fn rejection(status: u16) -> Series {
    Series { metric: Metric::Rejections, provider: None, model: None, label: Label::Status(status) }
}

/// Nano-dollars, the unit of the cost counter (Envoy counters take whole increments).
fn nano_usd(pico: Pico) -> u64 {
    u64::try_from(pico / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::budget::Charges;
    use crate::accounting::prices::{Price, PriceTable};
    use crate::gateway::exchange::Opening;
    use crate::providers::ResponseContext;
    use crate::usage::Usage;

    fn accounting() -> (Accounting, ScopeId, ScopeId) {
        let mut a = Accounting::new(PriceTable::default(), None).unwrap();
        let p = a.scope("provider", "openai");
        let m = a.scope("model", "gpt-4.1-mini");
        (a, p, m)
    }

    #[test]
    fn names_carry_sanitised_labels() {
        let (a, p, m) = accounting();
        let s = Series { metric: Metric::TokenUsage, provider: Some(p), model: Some(m), label: Label::TokenType("input") };
        assert_eq!(
            s.name(&a, &Guardrails::default()),
            "tollgate.provider.openai.model.gpt-4_1-mini.token_type.input.gen_ai_client_token_usage"
        );
        assert_eq!(rejection(429).name(&a, &Guardrails::default()), "tollgate.status.429.rejections");
        let g = Label::Guardrail(7, GuardrailAction::Redact, Direction::Request);
        let s = Series { metric: Metric::GuardrailFindings, provider: None, model: None, label: g };
        assert_eq!(s.name(&a, &Guardrails::default()), "tollgate.guardrail.email.action.redact.direction.request.guardrail_findings");
    }

    #[test]
    fn labelled_series_carry_the_values_of_the_flat_names_segments() {
        let (a, p, m) = accounting();
        let g = Guardrails::default();
        let tokens = Series { metric: Metric::TokenUsage, provider: Some(p), model: Some(m), label: Label::TokenType("input") };
        assert_eq!(tokens.metric.base_name(), "tollgate.gen_ai_client_token_usage");
        let tags: Vec<&str> = tokens.metric.labels().iter().map(|l| l.tag()).collect();
        assert_eq!(tags, ["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"]);
        assert_eq!(tokens.label_values(&a, &g), ["openai", "gpt-4_1-mini", "input"]);
        let guardrail = Label::Guardrail(7, GuardrailAction::Redact, Direction::Request);
        let finding = Series { metric: Metric::GuardrailFindings, provider: None, model: None, label: guardrail };
        assert_eq!(finding.label_values(&a, &g), ["email", "redact", "request"]);
        // An upstream attempt whose target is unknown has empty provider and model labels.
        let attempt = Series { metric: Metric::Attempts, provider: None, model: None, label: Label::Status(0) };
        assert_eq!(attempt.label_values(&a, &g), ["", "", "0"]);
        assert_eq!(attempt.name(&a, &g), "tollgate.status.0.attempts");
        for metric in Metric::ALL {
            let series = Series { metric, provider: Some(p), model: Some(m), label: Label::Status(200) };
            assert_eq!(series.label_values(&a, &g).len(), metric.labels().len(), "{metric:?}");
        }
    }

    #[test]
    fn every_served_pair_starts_with_its_series_and_budgets_become_gauges() {
        let (a, p, m) = accounting();
        let names: Vec<String> = startup_series(&[(p, m)]).iter().map(|s| s.name(&a, &Guardrails::default())).collect();
        assert!(names.contains(&"tollgate.provider.openai.model.gpt-4_1-mini.status.200.requests".to_owned()), "{names:?}");
        assert!(names.contains(&"tollgate.provider.openai.model.gpt-4_1-mini.token_type.output.gen_ai_client_token_usage".to_owned()));
        assert!(names.contains(&"tollgate.provider.openai.model.gpt-4_1-mini.gen_ai_server_time_to_first_token_ms".to_owned()));
        assert!(names.contains(&"tollgate.status.401.rejections".to_owned()));
        assert!(names.contains(&"tollgate.provider.openai.model.gpt-4_1-mini.status.503.requests".to_owned()));
        assert_eq!(names.len(), 6 + 15);
        let level = BudgetLevel { kind: "key", name: "a.b", period: "daily", limit: 5_000_000, spent: 2_000_000, remaining: 2_999_999 };
        assert_eq!(
            budget_gauges(&[level]),
            vec![
                ("tollgate.budget.scope.key.name.a_b.period.daily.limit_nano_usd".to_owned(), 5000),
                ("tollgate.budget.scope.key.name.a_b.period.daily.spent_nano_usd".to_owned(), 2000),
                ("tollgate.budget.scope.key.name.a_b.period.daily.remaining_nano_usd".to_owned(), 2999),
            ]
        );
    }

    #[test]
    fn finished_exchange_yields_usage_cost_and_latency() {
        let (_, p, m) = accounting();
        let price = Price { input: 1_000_000, output: 2_000_000, cache_read: 0, cache_write: 0 };
        let ctx = ResponseContext { model: "gpt-4.1-mini".into(), ..Default::default() };
        let mut ex = Exchange::new(Opening {
            ctx,
            charges: Charges { price: Some(price), ..Default::default() },
            model_scope: m,
            ..Default::default()
        });
        ex.status = 200;
        ex.completed = true;
        ex.started_ms = 1000;
        ex.first_byte_ms = Some(1200);
        ex.usage = Some(Usage { input_tokens: 10, output_tokens: 5, reasoning_tokens: 2, ..Default::default() });
        let got: Vec<(Metric, Label, u64)> = samples(&ex, p, 1500).into_iter().map(|(s, v)| (s.metric, s.label, v)).collect();
        assert_eq!(
            got,
            vec![
                (Metric::Requests, Label::Status(200), 1),
                (Metric::TokenUsage, Label::TokenType("input"), 10),
                (Metric::TokenUsage, Label::TokenType("output"), 5),
                (Metric::TokenUsage, Label::TokenType("reasoning"), 2),
                (Metric::CostNanoUsd, Label::None, 20_000),
                (Metric::OperationDurationMs, Label::None, 500),
                (Metric::TimeToFirstTokenMs, Label::None, 200),
            ]
        );
    }

    #[test]
    fn cut_streams_and_unpriced_answers_are_counted() {
        let (_, p, _) = accounting();
        let mut ex = Exchange::new(Opening { ctx: ResponseContext { model: "m".into(), ..Default::default() }, ..Default::default() });
        ex.status = 200;
        let metrics: Vec<Metric> = samples(&ex, p, 0).into_iter().map(|(s, _)| s.metric).collect();
        assert_eq!(metrics, vec![Metric::Requests, Metric::IncompleteResponses]);
        ex.completed = true;
        let metrics: Vec<Metric> = samples(&ex, p, 0).into_iter().map(|(s, _)| s.metric).collect();
        assert_eq!(metrics, vec![Metric::Requests, Metric::UnpricedRequests]);
    }
}
