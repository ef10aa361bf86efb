//! Guardrails on the provider's answer: the findings of the `direction: response` policies are
//! logged, masked with a typed placeholder (`<EMAIL>`, `<CARD>`) or end the answer (block).
//!
//! Whole answers are checked in every string value of the client's JSON, whichever path made
//! it, but for the members that carry the provider's metadata or signed reasoning
//! ([`UNSCANNED_MEMBERS`]). Streams are checked per channel (the answer's text, each tool call's
//! arguments) as they arrive: a chunk is written at once but for its tail that may be the start
//! of a finding the next chunk completes — the run after the last character no finding spans
//! (see [`AnswerGuard::held`]), at most [`WINDOW`] bytes.

use super::detectors::{Detectors, Span};
use super::redact::{Restore, StreamRestore, rewrite_strings};
use super::{Audit, AuditLine, Direction};
use crate::error::ApiError;
use crate::schema::GuardrailAction;
use std::sync::Arc;

/// The most a stream channel holds back for a finding that may continue in the next chunk, in
/// bytes. Longer findings (PEM private key blocks, very long JWTs) are acted on as far as they
/// have arrived when the window fills.
pub const WINDOW: usize = 512;

/// Object members of an answer that are not scanned: ids, names and states the provider or the
/// gateway writes, and reasoning, which Anthropic signs (a changed thinking block is refused
/// when the client sends it back) — the request side does not scan it either.
const UNSCANNED_MEMBERS: [&str; 16] = [
    "id",
    "object",
    "model",
    "type",
    "role",
    "status",
    "finish_reason",
    "stop_reason",
    "stop_sequence",
    "system_fingerprint",
    "service_tier",
    "call_id",
    "signature",
    "thinking",
    "reasoning_content",
    "encrypted_content",
];

/// The answer-side policies that apply to one request.
#[derive(Debug, Clone)]
pub struct AnswerGuard {
    detectors: Arc<Detectors>,
    /// By detector id: what its findings in this answer get (`None`: it does not run).
    actions: Vec<Option<GuardrailAction>>,
    enabled: Vec<bool>,
    /// The values the request's redaction restores for the client: not findings of the answer.
    exempt: Vec<String>,
    /// Only built-in detectors run, whose findings are ASCII: a non-ASCII character ends any.
    ascii: bool,
}

/// What the answer's checks found so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AnswerFindings {
    pub audit: Audit,
    /// The detectors whose findings blocked the answer.
    pub blocked: Vec<usize>,
}

impl AnswerFindings {
    fn record(&mut self, detector: usize, action: GuardrailAction) {
        match self.audit.iter_mut().find(|l| l.detector == detector && l.action == action) {
            Some(line) => line.count = line.count.saturating_add(1),
            None => self.audit.push(AuditLine { detector, action, direction: Direction::Response, count: 1 }),
        }
        if action == GuardrailAction::Block && !self.blocked.contains(&detector) {
            self.blocked.push(detector);
        }
    }
}

impl AnswerGuard {
    /// `None` when no detector gets an action.
    pub(super) fn new(detectors: Arc<Detectors>, actions: Vec<Option<GuardrailAction>>, restore: Option<&Restore>) -> Option<Self> {
        let enabled: Vec<bool> = actions.iter().map(Option::is_some).collect();
        if !enabled.contains(&true) {
            return None;
        }
        let ascii = enabled.iter().zip(&detectors.kinds).all(|(on, kind)| !on || matches!(kind, super::detectors::Kind::Builtin(_)));
        let exempt = restore.map(|r| r.originals().map(str::to_owned).collect()).unwrap_or_default();
        Some(AnswerGuard { detectors, actions, enabled, exempt, ascii })
    }

    fn action(&self, detector: usize) -> Option<GuardrailAction> {
        self.actions.get(detector).copied().flatten()
    }

    /// The names of `detectors`, for the block's error message.
    pub fn names(&self, detectors: &[usize]) -> String {
        detectors.iter().map(|d| self.detectors.name(*d)).collect::<Vec<_>>().join(", ")
    }

    /// The error that replaces an answer the findings of `blocked` block: the request side's
    /// refusal (400 `content_blocked`), told about the answer, naming the detectors only.
    pub fn refusal(&self, blocked: &[usize]) -> ApiError {
        let message = format!("The provider's answer was blocked by the gateway's guardrails: it contains {}.", self.names(blocked));
        ApiError::new(400, "invalid_request_error", message).with_code("content_blocked")
    }

    /// The findings in `text` that get an action.
    fn spans(&self, text: &str) -> Vec<Span> {
        let mut spans = Vec::new();
        self.detectors.scan(text, &self.enabled, &mut spans);
        spans.retain(|s| !text.get(s.start..s.end).is_some_and(|v| self.exempt.iter().any(|e| e == v)));
        spans
    }

    /// Appends `text` to `out` with the findings `spans` acted on, recording each; a blocking one
    /// stops it (neither it nor what follows is written).
    fn act(&self, text: &str, spans: &[Span], out: &mut String, found: &mut AnswerFindings) {
        let mut copied = 0;
        for s in spans {
            let Some(action) = self.action(s.detector) else { continue };
            found.record(s.detector, action);
            match action {
                GuardrailAction::Block => {
                    out.push_str(text.get(copied..s.start).unwrap_or_default());
                    return;
                }
                GuardrailAction::Redact => {
                    out.push_str(text.get(copied..s.start).unwrap_or_default());
                    out.push('<');
                    out.push_str(self.detectors.placeholder(s.detector));
                    out.push('>');
                    copied = s.end;
                }
                GuardrailAction::Log | GuardrailAction::Route => {}
            }
        }
        out.push_str(text.get(copied..).unwrap_or_default());
    }

    /// A whole text, acted on; `None` when it is unchanged.
    pub fn check_text(&self, text: &str, found: &mut AnswerFindings) -> Option<String> {
        let spans = self.spans(text);
        let changes = spans.iter().any(|s| matches!(self.action(s.detector), Some(GuardrailAction::Redact | GuardrailAction::Block)));
        let mut out = String::new();
        self.act(text, &spans, &mut out, found);
        changes.then_some(out)
    }

    /// A whole answer's JSON with the findings in its string values acted on (see
    /// [`UNSCANNED_MEMBERS`]); `None` when nothing changed. When a finding blocks, `found.blocked`
    /// says so and the body must not be sent.
    pub fn check_json(&self, body: &[u8], found: &mut AnswerFindings) -> Option<Vec<u8>> {
        rewrite_strings(body, |member, text| {
            if member.is_some_and(|m| UNSCANNED_MEMBERS.contains(&m)) {
                return None;
            }
            self.check_text(text, found)
        })
    }

    /// How many bytes at the end of `text` may be the start of a finding the next chunk
    /// continues: the run after the last character no finding spans, at most [`WINDOW`].
    /// Findings span no line break; with only built-in detectors, no non-ASCII character; and a
    /// space only between the groups of a number (card, phone, IBAN: a group of digits and
    /// `+()-./` or four upper-case letters or digits before it).
    fn held(&self, text: &str) -> usize {
        let mut start = text.len();
        for (i, c) in text.char_indices().rev() {
            if text.len() - i > WINDOW || self.ends_findings(text, i, c) {
                break;
            }
            start = i;
        }
        text.len() - start
    }

    fn ends_findings(&self, text: &str, at: usize, c: char) -> bool {
        match c {
            '\n' | '\r' => true,
            ' ' | '\t' => !group_before(text.get(..at).unwrap_or_default()),
            c if !c.is_ascii() => self.ascii || c.is_whitespace(),
            _ => false,
        }
    }
}

/// `text` ends in what may be a group of a number that continues after a space.
fn group_before(text: &str) -> bool {
    let token = text.rsplit([' ', '\t']).next().unwrap_or_default();
    let numeric = |c: char| c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | '.' | '/');
    let iban_group = token.len() == 4 && token.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    iban_group || (!token.is_empty() && token.chars().all(numeric) && token.chars().any(|c| c.is_ascii_digit()))
}

/// One streamed channel checked as it arrives: what may be an unfinished finding at its end is
/// held until the next chunk (or the channel's end) decides it.
#[derive(Debug, Default)]
pub struct StreamScan {
    pending: String,
}

impl StreamScan {
    /// What of the held text and `chunk` can be written now, acted on. After a blocking
    /// finding, what preceded it (and `found.blocked` says so).
    pub fn push(&mut self, guard: &AnswerGuard, chunk: &str, found: &mut AnswerFindings) -> String {
        self.pending.push_str(chunk);
        self.release(guard, false, found)
    }

    /// The channel ends: whatever is held, acted on.
    pub fn flush(&mut self, guard: &AnswerGuard, found: &mut AnswerFindings) -> String {
        self.release(guard, true, found)
    }

    fn release(&mut self, guard: &AnswerGuard, all: bool, found: &mut AnswerFindings) -> String {
        let text = &self.pending;
        let spans = guard.spans(text);
        let mut cut = if all { text.len() } else { text.len() - guard.held(text) };
        // A finding across the cut is held whole if the window allows, else acted on now.
        if let Some(s) = spans.iter().find(|s| s.start < cut && s.end > cut) {
            cut = if text.len() - s.start <= WINDOW { s.start } else { s.end };
        }
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let decided: Vec<Span> = spans.into_iter().filter(|s| s.end <= cut).collect();
        let mut out = String::with_capacity(cut);
        guard.act(text.get(..cut).unwrap_or_default(), &decided, &mut out, found);
        self.pending.drain(..cut);
        out
    }
}

/// One streamed channel of the answer on its way to the client: the request's placeholders
/// restored ([`StreamRestore`]), then checked ([`StreamScan`]); each holds back its own tail.
#[derive(Debug, Default)]
pub struct StreamChannel {
    restore: StreamRestore,
    scan: StreamScan,
}

impl StreamChannel {
    pub fn push(&mut self, restore: Option<&Restore>, guard: Option<&AnswerGuard>, chunk: &str, found: &mut AnswerFindings) -> String {
        let restored = match restore {
            Some(r) => self.restore.push(r, chunk),
            None => chunk.to_owned(),
        };
        match guard {
            Some(g) => self.scan.push(g, &restored, found),
            None => restored,
        }
    }

    pub fn flush(&mut self, restore: Option<&Restore>, guard: Option<&AnswerGuard>, found: &mut AnswerFindings) -> String {
        let restored = restore.map(|r| self.restore.flush(r)).unwrap_or_default();
        let Some(g) = guard else { return restored };
        let mut out = self.scan.push(g, &restored, found);
        if found.blocked.is_empty() {
            out.push_str(&self.scan.flush(g, found));
        }
        out
    }
}
