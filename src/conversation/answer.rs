//! What a model answers, in the gateway's terms: the text, the reasoning, the tool calls, why
//! it stopped and what it cost in tokens. Providers gather a whole answer into a [`Completion`]
//! (and stream one as the events of `client::StreamWriter`); the client's dialect renders it.

use super::text::AnswerText;
use crate::usage::Usage;
use std::borrow::Cow;

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn.
    EndTurn,
    /// The model produced one of the request's stop sequences.
    StopSequence,
    /// The output limit (or the context window) cut the answer.
    MaxTokens,
    /// The model waits for the results of its tool calls.
    ToolUse,
    /// A provider's safety system withheld or cut the answer.
    ContentFilter,
}

impl Finish {
    /// A JSON schema answered through a forced tool makes the call the answer, which ends the
    /// turn rather than waiting for a tool result.
    pub fn answered_by_tool(self, by_tool: bool) -> Finish {
        match self {
            Finish::ToolUse if by_tool => Finish::EndTurn,
            other => other,
        }
    }
}

/// What the model said, gathered from the blocks or parts of a provider's answer.
#[derive(Debug, Default)]
pub struct Answer<'a> {
    pub text: AnswerText<'a>,
    pub reasoning: String,
    /// The provider's signature over the reasoning, which it needs to read it back.
    pub reasoning_signature: Option<String>,
    pub tool_calls: Vec<AnswerCall<'a>>,
    /// Why the provider answered nothing (a blocked prompt).
    pub refusal: Option<String>,
}

/// A tool call of the answer, its arguments a JSON text.
#[derive(Debug)]
pub struct AnswerCall<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub arguments: Cow<'a, str>,
}

impl<'a> Answer<'a> {
    /// About the bytes a client's body of this answer takes: what it is written into is sized
    /// once, not grown as it is written.
    pub fn body_size_hint(&self) -> usize {
        let calls: usize = self.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len() + 128).sum();
        self.text.len() + self.reasoning.len() + self.reasoning_signature.as_ref().map_or(0, String::len) + calls + 640
    }

    pub fn add_tool_call(&mut self, id: &'a str, name: &'a str, arguments: &'a str) {
        self.tool_calls.push(AnswerCall { id, name, arguments: Cow::Borrowed(arguments) });
    }
}

/// A whole answer with its identity, as a client gets it.
#[derive(Debug)]
pub struct Completion<'a> {
    pub id: &'a str,
    /// Seconds since the epoch.
    pub created: u64,
    pub model: &'a str,
    pub answer: Answer<'a>,
    pub finish: Option<Finish>,
    /// `None`: the provider reported none (the answer then reports zero).
    pub usage: Option<Usage>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_answered_by_its_tool_ends_the_turn() {
        assert_eq!(Finish::ToolUse.answered_by_tool(true), Finish::EndTurn);
        assert_eq!(Finish::ToolUse.answered_by_tool(false), Finish::ToolUse);
        assert_eq!(Finish::MaxTokens.answered_by_tool(true), Finish::MaxTokens);
    }
}
