//! The gateway's internal representation, between the client dialects and the providers: a chat
//! request (`request`) and what a model answers (`answer`). Client dialects parse into it and
//! render answers from it; providers render their requests from it and translate their answers
//! into it. It imports nothing above the foundation.

pub mod answer;
pub mod request;
pub mod text;
