//! The OpenAI API as clients speak it: request, responses, errors.

pub mod embeddings;
pub mod error;
pub mod request;
pub mod response;

pub use error::ApiError;
