//! Root context: compiles the plugin configuration once per `on_configure`.

use super::host;
use super::http::Http;
use crate::config::Config;
use crate::gateway::Gateway;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};
use std::rc::Rc;

#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let json = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        match Config::from_json(&json, &|name| std::env::var(name).ok(), host::now_ms() / 1000) {
            Ok(config) => {
                for warning in &config.warnings {
                    log::warn!("{warning}");
                }
                config.accounting.ensure_records(&host::Shared);
                log::info!("configured {} providers", config.providers.len());
                self.gateway = Some(Rc::new(Gateway::new(config)));
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http::new(self.gateway.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
