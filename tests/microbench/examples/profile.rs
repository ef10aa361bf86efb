//! Callgrind driver (`make profile`): runs whole requests of one scenario, each step in its own
//! never-inlined function so callgrind can attribute instructions to the filter callback that
//! would run them. Usage: profile SCENARIO ITERATIONS

use microbench::{Scenario, Store, gateway};
use std::hint::black_box;
use tollgate::gateway::{Exchange, Gateway};

#[inline(never)]
fn step_request_headers(gateway: &Gateway, store: &Store, scenario: Scenario, body: &[u8]) {
    black_box(microbench::request_headers(gateway, store, scenario, body.len()));
}

#[inline(never)]
fn step_request_body(gateway: &Gateway, store: &Store, scenario: Scenario, body: &[u8]) -> Exchange {
    let (upstream, exchange) = microbench::request_body(gateway, store, scenario, body);
    black_box(upstream);
    exchange
}

#[inline(never)]
fn step_response(gateway: &Gateway, exchange: &mut Exchange, scenario: Scenario) {
    black_box(microbench::response(gateway, exchange, scenario));
}

#[inline(never)]
fn step_log(gateway: &Gateway, store: &Store, mut exchange: Exchange) {
    black_box(microbench::log(gateway, store, &mut exchange));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: profile translate|passthrough|large|stream|messages_passthrough|responses_passthrough ITERATIONS";
    let scenario = Scenario::ALL.into_iter().find(|s| Some(s.name()) == args.get(1).map(String::as_str)).expect(usage);
    let iterations: usize = args.get(2).and_then(|n| n.parse().ok()).expect(usage);
    let (gateway, store) = (gateway(), Store::default());
    let body = scenario.request_body();
    for _ in 0..iterations {
        step_request_headers(&gateway, &store, scenario, &body);
        let mut exchange = step_request_body(&gateway, &store, scenario, &body);
        step_response(&gateway, &mut exchange, scenario);
        step_log(&gateway, &store, exchange);
    }
}
