//! Provider answers and error answers, for the provider the first byte picks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::providers::{self, Operation, ResponseContext};

thread_local! {
    /// Compiled once per thread: a `Config` is not `Sync` (its router keeps per-worker state).
    static CONFIG: Config = common::config();
}

fuzz_target!(|data: &[u8]| CONFIG.with(|config| run(config, data)));

fn run(config: &Config, data: &[u8]) {
    let Some((provider, body)) = common::pick(config, data) else { return };
    for operation in [Operation::Chat, Operation::Embeddings] {
        let ctx = ResponseContext { operation, model: "amazon.titan-embed-text-v2:0".into(), ..Default::default() };
        let _ = providers::translate_response(provider, &ctx, body);
    }
    let e = providers::translate_error(provider, 429, Some("ThrottlingException"), body);
    assert!((400..=599).contains(&e.status));
}
