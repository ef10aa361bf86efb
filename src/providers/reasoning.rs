//! OpenAI's `reasoning_effort` (https://platform.openai.com/docs/api-reference/chat/create) in
//! the terms of the translated providers' thinking settings, and the Anthropic thinking request
//! that the Messages API and Bedrock (for Claude models) share.

use crate::conversation::request::{ChatRequest, Role};
use crate::error::ApiError;
use crate::schema::ReasoningForm;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
}

/// The request's `reasoning_effort`, if it has one.
pub fn requested(req: &ChatRequest) -> Result<Option<Effort>, ApiError> {
    let Some(raw) = req.extra("reasoning_effort") else { return Ok(None) };
    serde_json::from_str(raw.get()).map(Some).map_err(|_| {
        ApiError::invalid_param(
            "reasoning_effort",
            "`reasoning_effort` must be one of \"none\", \"minimal\", \"low\", \"medium\", \"high\" or \"xhigh\".",
        )
    })
}

impl Effort {
    /// Thinking tokens for providers that take a budget; `None` for no thinking.
    pub fn budget_tokens(self) -> Option<u64> {
        match self {
            Effort::None => None,
            Effort::Minimal => Some(MIN_BUDGET_TOKENS),
            Effort::Low => Some(2048),
            Effort::Medium => Some(8192),
            Effort::High => Some(16384),
            Effort::Xhigh => Some(32768),
        }
    }

    /// Anthropic's `output_config.effort` (https://platform.claude.com/docs/en/build-with-claude/effort:
    /// low, medium, high, xhigh, max); `None` for no thinking.
    fn anthropic_effort(self) -> Option<&'static str> {
        match self {
            Effort::None => None,
            Effort::Minimal | Effort::Low => Some("low"),
            Effort::Medium => Some("medium"),
            Effort::High => Some("high"),
            Effort::Xhigh => Some("xhigh"),
        }
    }
}

/// Anthropic's smallest thinking budget
/// (https://platform.claude.com/docs/en/build-with-claude/extended-thinking).
pub const MIN_BUDGET_TOKENS: u64 = 1024;

/// Anthropic `thinking`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    Enabled { budget_tokens: u64 },
    Adaptive,
}

/// What a Claude model gets for a request: `thinking`, `output_config.effort`, `max_tokens`.
#[derive(Debug, PartialEq, Eq)]
pub struct ClaudeThinking {
    pub thinking: Option<Thinking>,
    pub effort: Option<&'static str>,
    pub max_tokens: u64,
}

impl ClaudeThinking {
    /// No thinking: the client's output limit, or the default.
    pub fn off(req: &ChatRequest, default_max_tokens: u64) -> Self {
        ClaudeThinking { thinking: None, effort: None, max_tokens: req.output_limit().unwrap_or(default_max_tokens) }
    }
}

/// Models on which Claude thinks adaptively, with an effort level: `budget_tokens` is
/// deprecated on the 4.6 models and refused on later ones
/// (https://platform.claude.com/docs/en/build-with-claude/adaptive-thinking). Bedrock model
/// ids hold the same names (`anthropic.claude-opus-4-6-v1`, `us.anthropic.claude-…`).
const ADAPTIVE_MODELS: &[&str] = &[
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5",
    "claude-mythos",
    "claude-fable",
];

/// Claude models from before extended thinking (Claude 3.7 Sonnet was the first that thinks,
/// https://platform.claude.com/docs/en/build-with-claude/extended-thinking).
const NON_THINKING_MODELS: &[&str] =
    &["claude-3-5", "claude-3-haiku", "claude-3-opus", "claude-3-sonnet", "claude-instant", "claude-v2", "claude-2"];

pub fn claude_thinks(model: &str) -> bool {
    // Each of those names starts `claude-`: they are looked for only where that does.
    !model
        .match_indices("claude-")
        .any(|(at, _)| model.get(at..).is_some_and(|rest| NON_THINKING_MODELS.iter().any(|m| rest.starts_with(m))))
}

/// The shipped default form of a Claude model (overridden by a model's `params`).
pub fn claude_form(model: &str) -> ReasoningForm {
    if ADAPTIVE_MODELS.iter().any(|m| model.contains(m)) { ReasoningForm::Level } else { ReasoningForm::Budget }
}

/// Claude's thinking for `effort` in `form`. Anthropic counts thinking within `max_tokens` and
/// wants `budget_tokens` below it, as OpenAI counts reasoning within the output limit: a
/// client's limit stays the bound and the budget fits under it; without one, the default room
/// for the answer comes on top of the thinking.
///
/// A request that continues a tool loop gets no thinking: Anthropic then wants the assistant
/// message to open with the signed thinking block of its answer ("When `thinking` is enabled, a
/// final `assistant` message must start with a thinking block … To avoid this requirement,
/// disable `thinking`"), which OpenAI's format has no place for.
pub fn claude(req: &ChatRequest, effort: Effort, form: ReasoningForm, default_max_tokens: u64) -> Result<ClaudeThinking, ApiError> {
    let limit = req.output_limit();
    let (Some(budget), Some(level)) = (effort.budget_tokens(), effort.anthropic_effort()) else {
        return Ok(ClaudeThinking::off(req, default_max_tokens));
    };
    let thinks = !continues_tool_loop(req);
    match form {
        ReasoningForm::Level => Ok(ClaudeThinking {
            thinking: thinks.then_some(Thinking::Adaptive),
            effort: Some(level),
            max_tokens: limit.unwrap_or(default_max_tokens.saturating_add(budget)),
        }),
        ReasoningForm::Budget => {
            let (budget_tokens, max_tokens) = match limit {
                None => (budget, default_max_tokens.saturating_add(budget)),
                Some(limit) if limit > MIN_BUDGET_TOKENS => (budget.min(limit - 1), limit),
                Some(_) => {
                    let param = if req.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
                    return Err(ApiError::invalid_param(
                        param,
                        format!(
                            "`reasoning_effort` needs an output limit above {MIN_BUDGET_TOKENS} tokens for this model: its thinking budget is at least {MIN_BUDGET_TOKENS} tokens and counts within `{param}`."
                        ),
                    ));
                }
            };
            let thinking = thinks.then_some(Thinking::Enabled { budget_tokens });
            Ok(ClaudeThinking { thinking, effort: None, max_tokens })
        }
    }
}

/// The conversation ends in tool results answering the last assistant message's calls.
fn continues_tool_loop(req: &ChatRequest) -> bool {
    req.messages.iter().rev().take_while(|m| m.role != Role::Assistant).any(|m| m.role == Role::Tool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat;

    fn claude_for(body: &str, form: ReasoningForm) -> Result<ClaudeThinking, ApiError> {
        let req = chat::parse(body.as_bytes()).unwrap();
        claude(&req, requested(&req)?.unwrap(), form, 4096)
    }

    const ASK: &str = r#""model":"m","messages":[{"role":"user","content":"x"}]"#;

    #[test]
    fn budget_form_keeps_the_budget_under_the_output_limit() {
        let high = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"high"}}"#), ReasoningForm::Budget).unwrap();
        assert_eq!(high, ClaudeThinking { thinking: Some(Thinking::Enabled { budget_tokens: 16384 }), effort: None, max_tokens: 20480 });
        let capped =
            claude_for(&format!(r#"{{{ASK},"reasoning_effort":"high","max_completion_tokens":5000}}"#), ReasoningForm::Budget).unwrap();
        assert_eq!((capped.thinking, capped.max_tokens), (Some(Thinking::Enabled { budget_tokens: 4999 }), 5000));
        let minimal = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"minimal","max_tokens":9000}}"#), ReasoningForm::Budget).unwrap();
        assert_eq!((minimal.thinking, minimal.max_tokens), (Some(Thinking::Enabled { budget_tokens: 1024 }), 9000));
        let e = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"low","max_tokens":1024}}"#), ReasoningForm::Budget).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("max_tokens")));
    }

    #[test]
    fn level_form_thinks_adaptively_at_the_matching_effort() {
        for (effort, level) in [("minimal", "low"), ("low", "low"), ("medium", "medium"), ("high", "high"), ("xhigh", "xhigh")] {
            let t = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"{effort}","max_tokens":300}}"#), ReasoningForm::Level).unwrap();
            assert_eq!(t, ClaudeThinking { thinking: Some(Thinking::Adaptive), effort: Some(level), max_tokens: 300 });
        }
        let t = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"medium"}}"#), ReasoningForm::Level).unwrap();
        assert_eq!(t.max_tokens, 4096 + 8192, "room to think on top of the default");
    }

    #[test]
    fn none_means_no_thinking_and_bad_values_are_400() {
        for form in [ReasoningForm::Budget, ReasoningForm::Level] {
            let t = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"none"}}"#), form).unwrap();
            assert_eq!(t, ClaudeThinking { thinking: None, effort: None, max_tokens: 4096 });
        }
        let e = claude_for(&format!(r#"{{{ASK},"reasoning_effort":"extreme"}}"#), ReasoningForm::Budget).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning_effort")));
    }

    #[test]
    fn a_tool_loop_continues_without_thinking() {
        let body = r#"{"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"x"},
            {"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c","content":"1"}]}"#;
        assert_eq!(claude_for(body, ReasoningForm::Budget).unwrap().thinking, None);
        let level = claude_for(body, ReasoningForm::Level).unwrap();
        assert_eq!((level.thinking, level.effort), (None, Some("high")));
        let next_turn = body.replace(
            r#"{"role":"tool","tool_call_id":"c","content":"1"}]"#,
            r#"{"role":"tool","tool_call_id":"c","content":"1"},{"role":"assistant","content":"ok"},{"role":"user","content":"y"}]"#,
        );
        assert!(claude_for(&next_turn, ReasoningForm::Budget).unwrap().thinking.is_some());
    }

    #[test]
    fn newer_claude_models_think_adaptively() {
        assert_eq!(claude_form("claude-opus-4-6"), ReasoningForm::Level);
        assert_eq!(claude_form("us.anthropic.claude-sonnet-4-6"), ReasoningForm::Level);
        assert_eq!(claude_form("claude-sonnet-4-5-20250929"), ReasoningForm::Budget);
        assert_eq!(claude_form("anthropic.claude-3-7-sonnet-20250219-v1:0"), ReasoningForm::Budget);
        assert!(claude_thinks("anthropic.claude-3-7-sonnet-20250219-v1:0") && claude_thinks("claude-opus-4-8"));
        assert!(!claude_thinks("anthropic.claude-3-5-sonnet-20240620-v1:0") && !claude_thinks("claude-3-haiku-20240307"));
    }
}
