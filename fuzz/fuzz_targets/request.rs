//! Client requests: chat and embeddings parsing, then translation for the provider the first
//! byte picks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::client::{self, ClientBody, Dialect};
use tollgate::openai::embeddings;
use tollgate::providers::{self, BuildContext, Edits};

thread_local! {
    /// Compiled once per thread: a `Config` is not `Sync` (its router keeps per-worker state).
    static CONFIG: Config = common::config();
}

fuzz_target!(|data: &[u8]| CONFIG.with(|config| run(config, data)));

fn run(config: &Config, data: &[u8]) {
    let Some((provider, body)) = common::pick(config, data) else { return };
    let target = BuildContext { model: "m", now_ms: 1_700_000_000_000 };
    let client = ClientBody { dialect: Dialect::OpenAiChat, bytes: body, headers: &[] };
    if let Ok(req) = client::parse_chat(client) {
        let _ = providers::build_chat(provider, &req, client, &target, &mut Edits::default());
    }
    if let Ok(req) = embeddings::parse(body) {
        let _ = providers::build_embeddings(provider, &req, body, &target);
    }
}
