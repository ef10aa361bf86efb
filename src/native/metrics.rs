//! Tollgate's metrics as Envoy stats of the dynamic module: one labelled stat per metric
//! (`tollgate.requests` with the tags `gen_ai_provider_name`, `gen_ai_request_model`,
//! `http_status`…), which Envoy's Prometheus output shows as the wasm build's flat names read
//! back by the shipped `stats_tags` (`tollgate_requests{gen_ai_provider_name="openai",…}`).
//! The ABI lets a configuration define stats only while it loads, so every metric is defined
//! then; label values are free at run time.

use super::abi::{self, FilterConfigEnvoyPtr, ModuleBuffer};
use crate::config::Config;
use crate::gateway::telemetry::{Metric, Series};

/// The stat ids of one filter configuration.
pub struct Metrics {
    config: FilterConfigEnvoyPtr,
    ids: Vec<(Metric, usize)>,
}

// SAFETY: the configuration pointer is only used for the ABI's configuration-level metric
// calls, which Envoy documents as safe from any thread while the configuration lives; the
// configuration outlives every filter (and so every recording) made from it.
unsafe impl Send for Metrics {}
unsafe impl Sync for Metrics {}

impl Metrics {
    /// Defines every metric on `config` (call while Envoy creates the configuration).
    pub fn define(config: FilterConfigEnvoyPtr) -> Metrics {
        let mut ids = Vec::with_capacity(Metric::ALL.len());
        for metric in Metric::ALL {
            let name = metric.base_name();
            let tags: Vec<&str> = metric.labels().iter().map(|l| l.tag()).collect();
            let mut labels: Vec<ModuleBuffer> = tags.iter().map(|t| ModuleBuffer::of(t.as_bytes())).collect();
            let mut id = 0usize;
            let define = if metric.is_histogram() {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
            } else {
                abi::envoy_dynamic_module_callback_http_filter_config_define_counter
            };
            // SAFETY: ABI call; the name and label buffers outlive it.
            let result = unsafe { define(config, ModuleBuffer::of(name.as_bytes()), labels.as_mut_ptr(), labels.len(), &mut id) };
            if result == abi::METRICS_SUCCESS {
                ids.push((metric, id));
            } else {
                log::warn!("could not define the stat {name}: result {result}");
            }
        }
        Metrics { config, ids }
    }

    /// Adds `value` to a counter, or records it in a histogram.
    pub fn record(&self, series: Series, value: u64, config: &Config) {
        let histogram = series.metric.is_histogram();
        if value == 0 && !histogram {
            return;
        }
        self.add(series, value, config);
    }

    /// Makes each counter series exist at zero (dashboards read 0, not "no data").
    pub fn start_at_zero(&self, series: &[Series], config: &Config) {
        for s in series.iter().filter(|s| !s.metric.is_histogram()) {
            self.add(*s, 0, config);
        }
    }

    fn add(&self, series: Series, value: u64, config: &Config) {
        let Some(&(_, id)) = self.ids.iter().find(|(m, _)| *m == series.metric) else { return };
        let values = series.label_values(&config.accounting, &config.guardrails);
        let mut labels: Vec<ModuleBuffer> = values.iter().map(|v| ModuleBuffer::of(v.as_bytes())).collect();
        let record = if series.metric.is_histogram() {
            abi::envoy_dynamic_module_callback_http_filter_config_record_histogram_value
        } else {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter
        };
        // SAFETY: ABI call on the configuration that defined `id`; the label buffers outlive it.
        let result = unsafe { record(self.config, id, labels.as_mut_ptr(), labels.len(), value) };
        if result != abi::METRICS_SUCCESS {
            log::debug!("could not record {:?}: result {result}", series.metric);
        }
    }
}
