//! The host shell: adapts proxy-wasm callbacks to the core. It reads and writes headers and
//! bodies and applies the core's decisions; no gateway rules live here.

mod downstream;
mod host;
mod root;
mod stream;
mod upstream;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        // A panic traps the VM; leave a critical log line behind so operators see why.
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("tollgate panicked: {info}"));
    }));
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
