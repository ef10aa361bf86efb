//! Global mode's view in the usage API and the global budget gauges: the call to the rate-limit
//! service (see [`crate::accounting::global_view`]) and what its answer becomes.

use super::{Gateway, Reply, telemetry};
use crate::accounting::global_view;
use crate::host::SharedStore;

/// A check of the service's counters, to send to its cluster.
#[derive(Debug)]
pub struct ServiceCall<'g> {
    pub cluster: &'g str,
    pub headers: [(&'static str, &'g str); 5],
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl Gateway {
    /// The call that reads the usage API's `global` section; `None` outside global mode.
    pub fn global_usage_call(&self) -> Option<ServiceCall<'_>> {
        let view = self.config.accounting.global_view.as_ref()?;
        let (headers, body) = global_view::request(view, &self.config.accounting.global_counters());
        Some(ServiceCall { cluster: &view.cluster, headers, body, timeout_ms: view.timeout_ms })
    }

    /// The usage API's answer, with what the service answered (`status` `None`: no answer; the
    /// report then says the service is unavailable).
    pub fn global_usage_answered(&self, status: Option<u16>, body: &[u8], store: &dyn SharedStore, now_ms: u64) -> Reply {
        let accounting = &self.config.accounting;
        let counters = accounting.global_counters();
        let global =
            accounting.global_view.as_ref().map(|view| view.report(&counters, global_view::parse_answer(status, body, counters.len())));
        Reply::json(200, accounting.report(store, now_ms, global))
    }

    /// The call that refreshes the global budget gauges, when this VM's turn has come (one VM
    /// per `refresh_ms` per Envoy) and some scope is capped.
    pub fn global_budget_call(&self, store: &dyn SharedStore, now_ms: u64) -> Option<ServiceCall<'_>> {
        let view = self.config.accounting.global_view.as_ref()?;
        let counters = self.config.accounting.global_budget_counters();
        if counters.is_empty() || !view.claim_refresh(store, now_ms) {
            return None;
        }
        let (headers, body) = global_view::request(view, &counters);
        Some(ServiceCall { cluster: &view.cluster, headers, body, timeout_ms: view.timeout_ms })
    }

    /// The global budget gauges from the service's answer, and whether it answered (the gauges of
    /// the counters keep their last values when it did not).
    pub fn global_budget_gauges(&self, status: Option<u16>, body: &[u8]) -> Vec<(String, u64)> {
        let accounting = &self.config.accounting;
        let Some(view) = &accounting.global_view else { return Vec::new() };
        let counters = accounting.global_budget_counters();
        match global_view::parse_answer(status, body, counters.len()) {
            Ok(statuses) => {
                let mut gauges = telemetry::global_budget_gauges(&view.budget_levels(&counters, &statuses));
                gauges.push((telemetry::GLOBAL_SERVICE_AVAILABLE.to_owned(), 1));
                gauges
            }
            Err(e) => {
                log::warn!("global budget gauges not refreshed: {e}");
                vec![(telemetry::GLOBAL_SERVICE_AVAILABLE.to_owned(), 0)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::global_view::tests::{answer, status_bytes};
    use crate::config::Config;
    use crate::gateway::{OnHeaders, RequestHead};
    use crate::host::memory::MemoryStore;

    /// `tg-admin-demo-key`'s SHA-256.
    const ADMIN: &str = "d5da4bd39ce2d6c3d190e07818ee0c80ee4d249d9d5b86c735bf806987b35952";

    fn gateway(global_view: bool) -> Gateway {
        let view = if global_view { r#", "global_view": {"cluster": "ratelimit", "refresh_ms": 1000}"# } else { "" };
        let json = format!(
            r#"{{"providers": {{"openai": {{"kind": "openai", "cluster": "c", "api_key_env": "K"}}}}, "models": {{"gpt-4o": {{"provider": "openai"}}}},
               "auth": {{"keys": [{{"id": "alice", "sha256": "{ADMIN}", "budget": {{"daily_usd": "5"}}}}], "admin_keys_sha256": ["{ADMIN}"]}},
               "rate_limits": {{"descriptor_headers": true, "global_charges": {{}}{view}}}}}"#
        );
        Gateway::new(Config::from_json(json.as_bytes(), &|_| Some("key".into()), 1).unwrap())
    }

    fn usage_headers(g: &Gateway) -> OnHeaders {
        let head = RequestHead {
            method: "GET",
            path: "/v1/tollgate/usage",
            content_length: None,
            authorization: Some("Bearer tg-admin-demo-key"),
            api_key: None,
        };
        g.on_request_headers(&head, &MemoryStore::default(), &|| 1_000)
    }

    #[test]
    fn the_usage_api_asks_the_service_only_in_global_mode() {
        assert!(matches!(usage_headers(&gateway(false)), OnHeaders::Respond(_)));
        assert_eq!(gateway(false).global_usage_call().map(|c| c.cluster), None);
        let g = gateway(true);
        assert_eq!(usage_headers(&g), OnHeaders::ReadGlobalUsage);
        let call = g.global_usage_call().unwrap();
        assert_eq!((call.cluster, call.timeout_ms), ("ratelimit", 100));
        assert!(call.headers.contains(&(":path", global_view::METHOD_PATH)));
    }

    #[test]
    fn the_usage_api_adds_what_the_service_holds_or_says_it_is_unavailable() {
        let g = gateway(true);
        let store = MemoryStore::default();
        let asked = g.config.accounting.global_counters();
        let mut statuses = vec![status_bytes(None, 0, None); asked.len()];
        let alice_usd = asked.iter().position(|c| c.name == "alice" && c.charge == global_view::Charge::Usd).unwrap();
        statuses[alice_usd] = status_bytes(Some((5_000_000, 4)), 3_750_000, Some(60));
        let reply = g.global_usage_answered(Some(200), &answer(&statuses), &store, 1_000);
        assert_eq!(reply.status, 200);
        let report: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(report["global"]["available"], true);
        assert_eq!(report["global"]["scopes"]["keys"]["alice"]["usd"]["spent_usd"], "1.25");
        assert!(report["scopes"]["keys"]["alice"]["today"].is_object(), "the local view is kept");

        let down = g.global_usage_answered(None, &[], &store, 1_000);
        assert_eq!(down.status, 200, "never a 5xx: the report says the service is unavailable");
        let report: serde_json::Value = serde_json::from_slice(&down.body).unwrap();
        assert_eq!(report["global"]["available"], false);
        assert!(report["global"]["error"].as_str().unwrap().contains("did not answer"));
    }

    #[test]
    fn the_gauges_refresh_once_per_period_from_the_capped_scopes() {
        let g = gateway(true);
        let store = MemoryStore::default();
        let call = g.global_budget_call(&store, 1_000).unwrap();
        assert!(g.global_budget_call(&store, 1_500).is_none(), "once per refresh_ms");
        assert!(g.global_budget_call(&store, 2_000).is_some());
        // Capped: the gateway has no budget, alice has a daily one (both periods are read).
        let counters = g.config.accounting.global_budget_counters();
        assert_eq!(counters.iter().map(|c| (c.kind, c.name)).collect::<Vec<_>>(), [("key", "alice"), ("key", "alice")]);
        assert!(!call.body.is_empty());
        let statuses = [status_bytes(Some((5_000_000, 4)), 4_000_000, None), status_bytes(None, 0, None)];
        let gauges = g.global_budget_gauges(Some(200), &answer(&statuses));
        let spent = "tollgate.global_budget.scope.key.name.alice.period.daily.spent_nano_usd";
        assert!(gauges.contains(&(spent.to_owned(), 1_000_000_000)), "{gauges:?}");
        assert!(gauges.contains(&(telemetry::GLOBAL_SERVICE_AVAILABLE.to_owned(), 1)));
        assert_eq!(g.global_budget_gauges(Some(200), b""), [(telemetry::GLOBAL_SERVICE_AVAILABLE.to_owned(), 0)]);
        assert!(gateway(false).global_budget_call(&store, 9_000).is_none(), "local mode: no call");
    }
}
