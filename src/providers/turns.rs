//! OpenAI `messages` shaped into the alternating user and model turns of Anthropic Messages,
//! Bedrock Converse and Gemini: the walk over the conversation and the checks the three share.
//! What a message becomes (blocks, parts) stays each provider's own.

use crate::conversation::request::{ChatRequest, Content, Message, Part, Role};
use crate::error::ApiError;
use crate::json::Text;
use serde::Serialize;
use serde_json::value::RawValue;

/// One turn of the conversation: a role and its blocks.
#[derive(Serialize)]
pub(super) struct Turn<B> {
    pub role: &'static str,
    pub content: Vec<B>,
}

/// A conversation in these APIs' terms: the system prompt apart, then the turns.
pub(super) struct Conversation<B> {
    pub system: Vec<B>,
    pub turns: Vec<Turn<B>>,
}

/// What a provider makes of each kind of message.
pub(super) trait TurnRules<'r> {
    type Block;
    /// The role of the model's turns.
    const MODEL_ROLE: &'static str = "assistant";
    /// Why a conversation of system messages alone is refused.
    const NO_TURNS: &'static str;

    /// Adds what a system or developer message becomes to the system prompt.
    fn system(&self, i: usize, m: &'r Message, out: &mut Vec<Self::Block>) -> Result<(), ApiError>;
    /// What the content of a user, assistant or tool message becomes.
    fn content(&self, i: usize, content: Option<&'r Content>, role: Role) -> Result<Vec<Self::Block>, ApiError>;
    fn tool_call(&self, call: AssistantCall<'r>) -> Self::Block;
    fn tool_result(&self, i: usize, m: &'r Message) -> Result<Self::Block, ApiError>;

    /// Whether `block` goes ahead of the other blocks of the turn it joins.
    fn leads_turn(_block: &Self::Block) -> bool {
        false
    }

    /// An assistant message would open the conversation: the error, where the provider refuses that.
    fn model_opens(&self, _i: usize) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The conversation of `req` under a provider's `rules`. Tool results join the user turn after
/// them, and consecutive same-role turns merge, since these APIs want the roles to alternate.
pub(super) fn conversation<'r, R: TurnRules<'r>>(req: &'r ChatRequest, rules: &R) -> Result<Conversation<R::Block>, ApiError> {
    let mut system = Vec::new();
    let mut turns = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => rules.system(i, m, &mut system)?,
            Role::User => {
                let blocks = rules.content(i, m.content.as_ref(), m.role)?;
                if blocks.is_empty() {
                    return Err(ApiError::invalid_param(
                        format!("messages[{i}].content"),
                        format!("messages[{i}]: user content must not be empty."),
                    ));
                }
                push_turn::<R>(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks = rules.content(i, m.content.as_ref(), m.role)?;
                for call in assistant_calls(i, m) {
                    blocks.push(rules.tool_call(call?));
                }
                if !blocks.is_empty() {
                    if turns.is_empty() {
                        rules.model_opens(i)?;
                    }
                    push_turn::<R>(&mut turns, R::MODEL_ROLE, blocks);
                }
            }
            Role::Tool => {
                let result = rules.tool_result(i, m)?;
                push_turn::<R>(&mut turns, "user", vec![result]);
            }
            Role::Function => return Err(legacy_function_role(i)),
        }
    }
    if turns.is_empty() {
        return Err(ApiError::invalid_param("messages", R::NO_TURNS));
    }
    Ok(Conversation { system, turns })
}

fn push_turn<'r, R: TurnRules<'r>>(turns: &mut Vec<Turn<R::Block>>, role: &'static str, blocks: Vec<R::Block>) {
    match turns.last_mut() {
        Some(turn) if turn.role == role => {
            for block in blocks {
                if R::leads_turn(&block) {
                    let at = turn.content.iter().position(|b| !R::leads_turn(b)).unwrap_or(turn.content.len());
                    turn.content.insert(at, block);
                } else {
                    turn.content.push(block);
                }
            }
        }
        _ => turns.push(Turn { role, content: blocks }),
    }
}

pub(super) fn legacy_function_role(i: usize) -> ApiError {
    ApiError::invalid_param(
        format!("messages[{i}].role"),
        "The legacy `function` role is not supported; send tool results as `tool` messages.",
    )
}

/// A message's content as blocks: a string is one text block, none when it is empty; each part
/// goes through `push_part`, which adds what the part becomes.
pub(super) fn content_blocks<'r, B>(
    content: Option<&'r Content>,
    text: impl FnOnce(&'r Text<'r>) -> B,
    mut push_part: impl FnMut(&mut Vec<B>, usize, &'r Part) -> Result<(), ApiError>,
) -> Result<Vec<B>, ApiError> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(t)) if t.is_empty() => Ok(Vec::new()),
        Some(Content::Text(t)) => Ok(vec![text(t)]),
        Some(Content::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                push_part(&mut out, j, p)?;
            }
            Ok(out)
        }
    }
}

/// Hands the texts of a system message to `push`, each with the prompt-cache marker of its part.
/// Empty texts are left out; a part of another type is refused, naming `provider`.
pub(super) fn system_texts<'r>(
    i: usize,
    m: &'r Message,
    provider: &str,
    mut push: impl FnMut(&'r Text<'r>, Option<&'r RawValue>),
) -> Result<(), ApiError> {
    match &m.content {
        Some(Content::Text(t)) if !t.is_empty() => push(t, None),
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match (&*p.kind, &p.text) {
                    ("text", Some(t)) if !t.is_empty() => push(t, p.cache_control),
                    ("text", _) => {}
                    (other, _) => {
                        return Err(ApiError::invalid_param(
                            format!("messages[{i}].content[{j}]"),
                            format!("System messages can only hold text for {provider} models, got a `{other}` part."),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A tool call of an assistant message, its arguments parsed.
pub(super) struct AssistantCall<'r> {
    pub id: &'r str,
    pub name: &'r str,
    pub input: &'r RawValue,
}

/// The tool calls of assistant message `i`. Arguments are a JSON string in OpenAI's format and
/// an object in these APIs'; anything but an object is refused.
fn assistant_calls<'r>(i: usize, m: &'r Message) -> impl Iterator<Item = Result<AssistantCall<'r>, ApiError>> {
    m.tool_calls.iter().flatten().enumerate().map(move |(j, call)| {
        let input = tool_input(&call.function.arguments).ok_or_else(|| {
            ApiError::invalid_param(
                format!("messages[{i}].tool_calls[{j}].function.arguments"),
                format!("messages[{i}].tool_calls[{j}]: `arguments` must be a JSON object encoded as a string."),
            )
        })?;
        Ok(AssistantCall { id: &call.id, name: &call.function.name, input })
    })
}

fn tool_input(arguments: &str) -> Option<&RawValue> {
    if arguments.trim().is_empty() {
        return Some(raw("{}"));
    }
    let value: &RawValue = serde_json::from_str(arguments).ok()?;
    value.get().trim_start().starts_with('{').then_some(value)
}

/// The input schema of a function declared without parameters, for APIs that require one.
pub(super) fn no_parameters_schema() -> &'static RawValue {
    raw(r#"{"type":"object","properties":{}}"#)
}

fn raw(json: &'static str) -> &'static RawValue {
    serde_json::from_str(json).unwrap_or(RawValue::NULL)
}
