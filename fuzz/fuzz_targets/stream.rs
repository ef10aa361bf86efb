//! Provider streams (SSE or AWS event stream), for the provider the first byte picks, fed in
//! pieces the second byte sizes. The decoder's memory stays within its event limit.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::providers::{self, ResponseContext, StreamTranslator};

thread_local! {
    /// Compiled once per thread: a `Config` is not `Sync` (its router keeps per-worker state).
    static CONFIG: Config = common::config();
}
const MAX_EVENT_BYTES: usize = 4096;

fuzz_target!(|data: &[u8]| CONFIG.with(|config| run(config, data)));

fn run(config: &Config, data: &[u8]) {
    let Some((provider, rest)) = common::pick(config, data) else { return };
    let Some((piece, body)) = rest.split_first() else { return };
    let ctx = ResponseContext { stream: true, client_wants_usage: true, ..Default::default() };
    for content_type in ["text/event-stream", "application/vnd.amazon.eventstream"] {
        let Some(mut decoder) = providers::stream_decoder(provider, Some(content_type), MAX_EVENT_BYTES) else { continue };
        let mut translator = StreamTranslator::new(provider, &ctx);
        let mut out = Vec::new();
        for chunk in body.chunks(usize::from(*piece).max(1)) {
            if decoder.feed(chunk, |e| _ = translator.on_event(&e, &mut out)).is_err() {
                break;
            }
            assert!(decoder.pending_len() <= MAX_EVENT_BYTES + 16);
        }
        decoder.finish(|e| _ = translator.on_event(&e, &mut out));
        translator.finish(&mut out);
    }
}
