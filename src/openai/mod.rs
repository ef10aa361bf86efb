//! The OpenAI API as clients speak it: the chat dialect (`chat`), embeddings, the response
//! shapes and errors.

pub mod chat;
pub mod chat_answer;
pub mod embeddings;
pub mod error;
pub mod response;
pub mod responses;
pub mod responses_answer;
pub mod responses_rewrite;

pub use error::OpenAiError;
