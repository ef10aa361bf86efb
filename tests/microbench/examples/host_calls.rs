//! Host calls per request (`make profile`): one request of each scenario through the session
//! state machines against a counting host; prints, as JSON, the calls and bytes by scenario,
//! phase and kind (`{"kinds": [every kind], "runs": [[scenario, [[phase, [{kind, calls, bytes,
//! host_call}]]]]]}`, in order).
//! Usage: host_calls

use microbench::Scenario;
use microbench::host_calls::{Path, record};
use serde_json::{Value, json};
use tollgate::gateway::session::recording::{Kind, Phase};

fn main() {
    let runs = Scenario::ALL.into_iter().map(|s| (s.name().to_owned(), s, Path::Direct));
    let failover = std::iter::once(("translate_failover".to_owned(), Scenario::Translate, Path::Failover));
    let mut out = Vec::new();
    for (name, scenario, path) in runs.chain(failover) {
        let host = record(scenario, path);
        let phases: Vec<Value> = Phase::ALL
            .into_iter()
            .map(|phase| {
                let kinds: Vec<Value> = Kind::ALL
                    .into_iter()
                    .map(|kind| (kind, host.tally(phase, kind)))
                    .filter(|(_, tally)| tally.calls > 0)
                    .map(|(kind, t)| json!({"kind": kind.name(), "calls": t.calls, "bytes": t.bytes, "host_call": kind.is_host_call()}))
                    .collect();
                json!([phase.name(), kinds])
            })
            .collect();
        out.push(json!([name, phases]));
    }
    let kinds: Vec<&str> = Kind::ALL.into_iter().map(Kind::name).collect();
    println!("{}", json!({"kinds": kinds, "runs": out}));
}
