//! The plugin configuration, and the JSON editing passthrough requests use.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::config::Config;
use tollgate::json;

fuzz_target!(|data: &[u8]| {
    let _ = Config::from_json(data, &|_| Some("key".into()), 0);
    let _ = json::check_depth(data);
    let _ = json::path_at(data, data.len() / 2);
    if let Some(members) = json::members(data) {
        let _ = json::rewrite(data, &members, |k| k != "model", &[("model", b"\"m\"")]);
    }
});
