//! Guardrails: PII and secret detection on the gateway's representation of a request (the text
//! of every message, content part and tool result, and tool-call arguments), so every client
//! dialect gets the same protection, and the actions taken on what is found (log, redact, block,
//! route) per model, key, team and route; policies with `direction: response` check the
//! provider's answers too (see [`answer`]). Detectors and policies are compiled once from the
//! `guardrails` section; what a request found is reported as an [`Audit`] (detector, count,
//! action, direction), never with the matched text.

pub mod answer;
#[cfg(test)]
mod answer_tests;
pub mod detectors;
pub mod external;
pub mod redact;
#[cfg(test)]
mod tests;

use crate::conversation::request::{ChatRequest, Content};
use crate::patterns;
use crate::schema::{ConfigError, GuardrailAction, GuardrailDirection, GuardrailScopeSpec, GuardrailsSpec};
use detectors::{Custom, Detectors, Span};
use external::External;
use regex_lite::Regex;
use std::sync::Arc;

pub use answer::{AnswerFindings, AnswerGuard, StreamChannel};
pub use redact::{Redaction, Restore, StreamRestore};

/// The compiled `guardrails` section.
#[derive(Debug)]
pub struct Guardrails {
    /// Shared with the answer checks of the requests in flight.
    pub detectors: Arc<Detectors>,
    /// The external guardrail service, if configured.
    pub external: Option<External>,
    policies: Vec<Policy>,
    /// By detector id: whether anything on the request side names it (only those run there).
    enabled: Vec<bool>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails { detectors: Arc::new(Detectors::new(Vec::new())), external: None, policies: Vec::new(), enabled: Vec::new() }
    }
}

#[derive(Debug)]
struct Policy {
    /// By detector id.
    detectors: Vec<bool>,
    action: GuardrailAction,
    restore: bool,
    direction: GuardrailDirection,
    models: Vec<String>,
    keys: Vec<String>,
    teams: Vec<String>,
    routes: Vec<String>,
}

/// Who sent a request and where it goes, for the policies' `when`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'r> {
    pub model: &'r str,
    pub key: Option<&'r str>,
    pub team: Option<&'r str>,
    pub route: Option<&'r str>,
}

/// Which way the scanned text went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// One line of the audit: how many findings of a detector got an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditLine {
    pub detector: usize,
    pub action: GuardrailAction,
    pub direction: Direction,
    pub count: u32,
}

/// What the guardrails found in a request and did about it.
pub type Audit = Vec<AuditLine>;

/// A finding in the request's text: its detector and the matched text (which never leaves the
/// gateway but for the placeholder mapping of a redaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding<'t> {
    pub detector: usize,
    pub value: &'t str,
}

/// What the policies decided for a request.
#[derive(Debug, Default)]
pub struct Verdict {
    pub audit: Audit,
    /// The detectors whose findings block the request.
    pub blocked: Vec<usize>,
    /// The detectors whose findings must be routed by a rule naming them.
    pub routed: Vec<usize>,
    /// The replacements for the findings to redact (none: nothing to redact).
    pub redaction: Redaction,
    /// The placeholders to map back in the answer (`restore: true`).
    pub restore: Option<Restore>,
}

fn bad_name(field: &str, name: &str) -> ConfigError {
    ConfigError::new(field, format!("unknown detector `{name}`; the built-in ones are {}", builtin_list()))
}

fn builtin_list() -> String {
    detectors::Builtin::ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
}

impl Guardrails {
    /// Compiles the section; `route_detectors` are the detectors routing rules match on
    /// (`routes[].match.guardrails`, with their field), which must exist and run too.
    pub fn compile(spec: &GuardrailsSpec, route_detectors: &[(String, &str)]) -> Result<Guardrails, ConfigError> {
        let mut custom = Vec::with_capacity(spec.custom.len());
        for (i, c) in spec.custom.iter().enumerate() {
            let field = format!("guardrails.custom[{i}]");
            let name_ok = !c.name.is_empty() && c.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(ConfigError::new(format!("{field}.name"), "names are lower-case letters, digits and `_`"));
            }
            if detectors::Builtin::ALL.iter().any(|b| b.name() == c.name) || spec.custom.iter().take(i).any(|o| o.name == c.name) {
                return Err(ConfigError::new(format!("{field}.name"), format!("`{}` is already a detector", c.name)));
            }
            let pattern = match (&c.regex, c.keywords.as_slice()) {
                (Some(r), []) => r.clone(),
                (None, words) if !words.is_empty() && words.iter().all(|w| !w.trim().is_empty()) => {
                    let alternatives: Vec<String> = words.iter().map(|w| regex_lite::escape(w.trim())).collect();
                    format!(r"(?i)\b(?:{})\b", alternatives.join("|"))
                }
                _ => return Err(ConfigError::new(field, "give either `regex` or a non-empty list of `keywords`")),
            };
            let regex = Regex::new(&pattern).map_err(|e| ConfigError::new(format!("{field}.regex"), e.to_string()))?;
            custom.push(Custom { name: c.name.clone(), placeholder: c.name.to_ascii_uppercase(), regex });
        }
        let mut detectors = Detectors::new(custom);
        let external = spec.external.as_ref().map(|e| External::compile(e, &mut detectors)).transpose()?;
        let count = detectors.kinds.len();
        let mut enabled = vec![false; count];
        let mut policies = Vec::with_capacity(spec.policies.len());
        for (i, p) in spec.policies.iter().enumerate() {
            let field = format!("guardrails.policies[{i}].detectors");
            if p.detectors.is_empty() {
                return Err(ConfigError::new(field, "name at least one detector (or `*`)"));
            }
            let mut named = vec![false; count];
            for name in &p.detectors {
                if name == "*" {
                    named.iter_mut().for_each(|n| *n = true);
                    continue;
                }
                let id = detectors.find(name).ok_or_else(|| bad_name(&field, name))?;
                if p.direction.answers() && matches!(detectors.kinds.get(id), Some(detectors::Kind::External { .. })) {
                    return Err(ConfigError::new(field, format!("`{name}` is found by the external service, which checks requests only")));
                }
                if let Some(slot) = named.get_mut(id) {
                    *slot = true;
                }
            }
            if p.direction.requests() {
                enabled.iter_mut().zip(&named).for_each(|(e, n)| *e |= n);
            }
            let at = |member: &str| format!("guardrails.policies[{i}].{member}");
            if p.restore && p.action != GuardrailAction::Redact {
                return Err(ConfigError::new(at("restore"), "only a `redact` policy restores"));
            }
            if p.restore && !p.direction.requests() {
                return Err(ConfigError::new(
                    at("restore"),
                    "restoring maps the request's placeholders back: give `direction` `request` or `both`",
                ));
            }
            if p.action == GuardrailAction::Route && p.direction.answers() {
                return Err(ConfigError::new(at("action"), "an answer cannot be routed: answers take `log`, `redact` or `block`"));
            }
            let GuardrailScopeSpec { models, keys, teams, routes } = &p.when;
            policies.push(Policy {
                detectors: named,
                action: p.action,
                restore: p.restore,
                direction: p.direction,
                models: models.clone(),
                keys: keys.clone(),
                teams: teams.clone(),
                routes: routes.clone(),
            });
        }
        for (field, name) in route_detectors {
            let id = detectors.find(name).ok_or_else(|| bad_name(field, name))?;
            if let Some(slot) = enabled.get_mut(id) {
                *slot = true;
            }
        }
        Ok(Guardrails { detectors: Arc::new(detectors), external, policies, enabled })
    }

    /// Whether any detector runs at all.
    pub fn active(&self) -> bool {
        self.enabled.contains(&true)
    }

    pub fn name(&self, detector: usize) -> &str {
        self.detectors.name(detector)
    }

    /// The findings in a request's text: system, user, assistant and tool messages (text and
    /// refusal parts) and tool-call arguments. Thinking blocks are not scanned: they are signed
    /// by the provider that wrote them and cannot be changed.
    pub fn scan<'r>(&self, req: &'r ChatRequest<'r>) -> Vec<Finding<'r>> {
        self.scan_texts(texts(req))
    }

    /// The findings in `texts` (an embeddings request's inputs, the texts of a chat request).
    pub fn scan_texts<'t>(&self, texts: impl Iterator<Item = &'t str>) -> Vec<Finding<'t>> {
        let mut findings = Vec::new();
        if !self.active() {
            return findings;
        }
        let mut spans: Vec<Span> = Vec::new();
        for text in texts {
            spans.clear();
            self.detectors.scan(text, &self.enabled, &mut spans);
            findings.extend(spans.iter().filter_map(|s| Some(Finding { detector: s.detector, value: text.get(s.start..s.end)? })));
        }
        findings
    }

    /// The text the external service analyses: every scanned text, a line each.
    pub fn analysed_text(req: &ChatRequest) -> String {
        texts(req).collect::<Vec<_>>().join("\n")
    }

    /// The names of the detectors with findings, for routing rules.
    pub fn found<'g>(&'g self, findings: &[Finding]) -> Vec<&'g str> {
        let mut names: Vec<&str> = Vec::new();
        for f in findings {
            let name = self.name(f.detector);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// What the policies do with a request's findings: for each, the first policy that applies
    /// to `scope` and names its detector decides; findings no policy takes are left alone.
    pub fn decide(&self, findings: &[Finding], scope: Scope) -> Verdict {
        let mut verdict = Verdict::default();
        let mut redacted: Vec<Finding> = Vec::new();
        let mut restored: Vec<&str> = Vec::new();
        for f in findings {
            let Some(policy) = self.policies.iter().find(|p| p.direction.requests() && p.names(f.detector) && p.applies(scope)) else {
                continue;
            };
            match verdict.audit.iter_mut().find(|l| l.detector == f.detector && l.action == policy.action) {
                Some(line) => line.count = line.count.saturating_add(1),
                None => {
                    verdict.audit.push(AuditLine { detector: f.detector, action: policy.action, direction: Direction::Request, count: 1 })
                }
            }
            let mark = |list: &mut Vec<usize>| {
                if !list.contains(&f.detector) {
                    list.push(f.detector);
                }
            };
            match policy.action {
                GuardrailAction::Block => mark(&mut verdict.blocked),
                GuardrailAction::Route => mark(&mut verdict.routed),
                GuardrailAction::Redact => {
                    redacted.push(*f);
                    if policy.restore {
                        restored.push(f.value);
                    }
                }
                GuardrailAction::Log => {}
            }
        }
        verdict.redaction = Redaction::new(&redacted, &self.detectors);
        verdict.restore = verdict.redaction.restore(|original| restored.contains(&original));
        verdict
    }

    /// The checks of the answer to a request of `scope`: per detector, the action of the first
    /// answer-side policy that applies and names it; `None` when no policy applies. The values
    /// `restore` gives back to the client are not findings of the answer.
    pub fn answer_guard(&self, scope: Scope, restore: Option<&Restore>) -> Option<AnswerGuard> {
        let answering: Vec<&Policy> = self.policies.iter().filter(|p| p.direction.answers() && p.applies(scope)).collect();
        if answering.is_empty() {
            return None;
        }
        let actions = (0..self.detectors.kinds.len())
            .map(|d| {
                let scanned = !matches!(self.detectors.kinds.get(d), Some(detectors::Kind::External { .. }));
                answering.iter().find(|p| p.names(d)).map(|p| p.action).filter(|_| scanned)
            })
            .collect();
        AnswerGuard::new(Arc::clone(&self.detectors), actions, restore)
    }
}

/// The texts of a request that guardrails look at, in order.
fn texts<'r>(req: &'r ChatRequest<'r>) -> impl Iterator<Item = &'r str> {
    req.messages.iter().flat_map(|message| {
        let content: Vec<&'r str> = match &message.content {
            Some(Content::Text(t)) => vec![&**t],
            Some(Content::Parts(parts)) => {
                parts.iter().filter(|p| !p.is_thinking()).flat_map(|p| p.text.as_deref().into_iter().chain(p.refusal.as_deref())).collect()
            }
            None => Vec::new(),
        };
        content.into_iter().chain(message.tool_calls.iter().flatten().map(|c| &*c.function.arguments))
    })
}

impl Policy {
    fn names(&self, detector: usize) -> bool {
        self.detectors.get(detector) == Some(&true)
    }

    fn applies(&self, scope: Scope) -> bool {
        let any = |patterns: &[String], value: Option<&str>| {
            patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| patterns::matches(p, v)))
        };
        any(&self.models, Some(scope.model)) && any(&self.keys, scope.key) && any(&self.teams, scope.team) && any(&self.routes, scope.route)
    }
}
