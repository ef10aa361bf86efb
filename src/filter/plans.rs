//! Hands the routing plan from the gateway filter to the upstream filter of a failover cluster.
//!
//! Not in a request header: Envoy reuses one request header map for every retry attempt, so a
//! header the first attempt removed (to keep it from the provider) would be gone for the
//! second. Both filters run in the same VM on the same worker thread (same `vm_config`), so a
//! map in VM memory, keyed by the request id, reaches every attempt.

use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    static PLANS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

pub fn put(request_id: &str, plan: String) {
    PLANS.with(|p| p.borrow_mut().insert(request_id.to_owned(), plan));
}

pub fn get(request_id: &str) -> Option<String> {
    PLANS.with(|p| p.borrow().get(request_id).cloned())
}

pub fn remove(request_id: &str) {
    PLANS.with(|p| p.borrow_mut().remove(request_id));
}
