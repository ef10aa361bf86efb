//! Root context: compiles the plugin configuration once per `on_configure`, writes batched usage
//! counters and metrics, reports the VM's memory and, in global mode, refreshes the global budget
//! gauges from the rate-limit service on a timer.

use super::downstream::Downstream;
use super::host;
use super::upstream::Upstream;
use crate::gateway::{Gateway, plugin, telemetry};
use crate::schema::Role;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MetricType};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[derive(Default)]
pub struct Root {
    gateway: Option<Rc<Gateway>>,
    heap: HeapGauge,
}

/// The `tollgate.vm_heap_bytes` gauge: wasm linear memory (it only grows, so it shows the peak and
/// any leak). Envoy runs one VM per worker plus one on the main thread, all writing the same
/// gauge, so each VM adds only its own change and the gauge holds their sum. Both root contexts
/// of a VM (gateway and upstream roles) tick; the VM-wide `REPORTED` keeps them from counting it twice.
#[derive(Default)]
struct HeapGauge {
    id: Option<u32>,
}

thread_local! {
    static REPORTED: Cell<u64> = const { Cell::new(0) };
    /// Configurations this VM accepted: past 1, a reload kept the VM (and its memory). Logged so
    /// an operator can tell a reload that kept the VM from one that started a new one.
    static CONFIGURATIONS: Cell<u32> = const { Cell::new(0) };
}

impl HeapGauge {
    fn update(&mut self) {
        if self.id.is_none() {
            self.id = hostcalls::define_metric(MetricType::Gauge, "tollgate.vm_heap_bytes").ok();
        }
        let Some(id) = self.id else { return };
        let bytes = core::arch::wasm32::memory_size(0) as u64 * 65536;
        let reported = REPORTED.with(Cell::get);
        if hostcalls::increment_metric(id, bytes as i64 - reported as i64).is_ok() {
            REPORTED.with(|r| r.set(bytes));
        }
    }
}

impl Root {
    fn flush(&self) {
        host::flush_metrics();
        if let Some(gateway) = &self.gateway {
            gateway.flush(&host::Shared);
        }
        self.report_budgets();
    }

    /// The budget gauges, from shared data: every VM writes the same values.
    fn report_budgets(&self) {
        if let Some(gateway) = &self.gateway {
            let levels = gateway.config.accounting.levels(&host::Shared, host::now_ms());
            host::set_gauges(&telemetry::budget_gauges(&levels));
        }
    }
}

impl Context for Root {
    /// The plugin is being unloaded (config change or shutdown): nothing batched may be lost.
    fn on_done(&mut self) -> bool {
        self.flush();
        true
    }

    /// The rate-limit service's answer for the global budget gauges.
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        if let Some(gateway) = &self.gateway {
            let (status, body) = host::call_response(body_size);
            host::set_gauges(&gateway.global_budget_gauges(status, &body));
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        self.heap.update();
        let json = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size).ok().flatten().unwrap_or_default();
        let root_id = host::property(vec!["plugin_root_id"]).unwrap_or_default();
        let clock = plugin::Clock { now_ms: host::now_ms(), now_nanos: host::now_nanos() };
        match plugin::configure(&json, &root_id, &|name| std::env::var(name).ok(), &host::Shared, clock, true) {
            Ok(config) => {
                for warning in &config.warnings {
                    log::warn!("{warning}");
                }
                let generation = CONFIGURATIONS.with(|c| c.replace(c.get().saturating_add(1))).saturating_add(1);
                log::info!("configured {} providers (configuration {generation} of this VM)", config.providers.len());
                self.set_tick_period(Duration::from_millis(plugin::tick_ms(config.accounting.flush_ms)));
                self.flush();
                host::define_metrics(&telemetry::startup_series(&config.served_scopes()), &config);
                self.gateway = Some(Rc::new(Gateway::new(config)));
                self.report_budgets();
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.heap.update();
        self.flush();
        if let Some(call) = self.gateway.as_ref().and_then(|g| g.global_budget_call(&host::Shared, host::now_ms())) {
            host::call(call.cluster, &call.headers, &call.body, call.timeout_ms);
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
