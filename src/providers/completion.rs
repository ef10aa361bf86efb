//! The OpenAI `chat.completion` a provider's whole answer becomes.

use super::Translated;
use crate::openai::ApiError;
use crate::openai::response::{AssistantMessage, ChatCompletion, FunctionOut, ToolCallOut};
use crate::usage::Usage;
use std::borrow::Cow;

/// What the model said, gathered from the blocks or parts of a provider's answer.
#[derive(Default)]
pub(super) struct Answer<'a> {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallOut<'a>>,
}

impl<'a> Answer<'a> {
    /// A function call, its arguments JSON text.
    pub fn add_tool_call(&mut self, id: &'a str, name: &'a str, arguments: &'a str) {
        self.tool_calls.push(ToolCallOut { id, kind: "function", function: FunctionOut { name, arguments: Cow::Borrowed(arguments) } });
    }

    /// The content is `null` when the answer is tool calls alone, as OpenAI writes it.
    pub fn into_message(self) -> AssistantMessage<'a> {
        let Answer { text, reasoning, tool_calls } = self;
        AssistantMessage {
            role: "assistant",
            content: if text.is_empty() && !tool_calls.is_empty() { None } else { Some(Cow::Owned(text)) },
            tool_calls,
            refusal: None,
            reasoning_content: (!reasoning.is_empty()).then_some(Cow::Owned(reasoning)),
        }
    }
}

/// The client's body, and the usage the provider reported (a completion without it reports zero).
pub(super) fn encode(
    id: &str,
    created: u64,
    model: &str,
    message: AssistantMessage,
    finish_reason: Option<&str>,
    usage: Option<Usage>,
) -> Result<Translated, ApiError> {
    let completion = ChatCompletion::new(id, created, model, message, finish_reason, &usage.unwrap_or_default());
    let body = serde_json::to_vec(&completion).map_err(|e| ApiError::internal(format!("could not encode the completion: {e}")))?;
    Ok(Translated { body: Some(body), usage })
}
