//! The Anthropic Messages API as clients speak it (Claude Code, the anthropic SDKs): requests
//! parsed into the gateway's representation (`messages`), answers, stream events and errors
//! rendered from it (`message_answer`).

pub mod message_answer;
pub mod messages;
