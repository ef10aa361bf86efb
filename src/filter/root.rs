//! Root context: compiles the plugin configuration once per `on_configure`.

use super::downstream::Downstream;
use super::host;
use super::upstream::Upstream;
use crate::config::Config;
use crate::config::schema::Role;
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
            Ok(mut config) => {
                let root_id = host::property(vec!["plugin_root_id"]).unwrap_or_default();
                if root_id.ends_with(b"upstream") {
                    config.role = Role::Upstream;
                }
                for warning in &config.warnings {
                    log::warn!("{warning}");
                }
                config.accounting.ensure_records(&host::Shared);
                log::info!("configured {} providers", config.providers.len());
                // Each worker splits weighted traffic with its own random sequence.
                config.router.seed(host::now_nanos());
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
        match &self.gateway {
            Some(g) if g.config.role == Role::Upstream => Some(Box::new(Upstream::new(g.clone()))),
            other => Some(Box::new(Downstream::new(other.clone()))),
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
