//! Tollgate: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter.
//!
//! The crate is split into a pure core (everything except the shells), which never calls a host
//! and is unit-tested natively, and two thin host shells over the same core: `filter` adapts
//! proxy-wasm callbacks (the wasm build only), `native` Envoy's dynamic-module ABI (any other
//! target: `libtollgate.so`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::indexing_slicing
    )
)]

pub mod accounting;
pub mod anthropic;
pub mod client;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod error;
pub mod gateway;
pub mod guardrails;
pub mod headers;
pub mod host;
pub mod json;
pub mod openai;
#[cfg(test)]
mod parser_property_tests;
pub mod patterns;
pub mod providers;
pub mod router;
pub mod schema;
pub mod stream;
pub mod usage;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;
#[cfg(all(not(target_arch = "wasm32"), not(test)))]
mod native;
