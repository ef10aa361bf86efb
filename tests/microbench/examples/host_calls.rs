//! Host calls per request (`make profile`): one request of each scenario through the session
//! state machines against a counting host; prints, as JSON, the calls and bytes by scenario,
//! phase and kind. Usage: host_calls

use microbench::Scenario;
use microbench::host_calls::{Path, record};
use serde_json::{Map, Value, json};
use tollgate::gateway::session::recording::{Kind, Phase};

fn main() {
    let runs = Scenario::ALL.into_iter().map(|s| (s.name().to_owned(), s, Path::Direct));
    let failover = std::iter::once(("translate_failover".to_owned(), Scenario::Translate, Path::Failover));
    let mut out = Map::new();
    for (name, scenario, path) in runs.chain(failover) {
        let host = record(scenario, path);
        let mut phases = Map::new();
        for phase in Phase::ALL {
            let mut kinds = Map::new();
            for kind in Kind::ALL {
                let tally = host.tally(phase, kind);
                if tally.calls > 0 {
                    kinds.insert(kind.name().to_owned(), json!({"calls": tally.calls, "bytes": tally.bytes, "host_call": kind.is_host_call()}));
                }
            }
            phases.insert(phase.name().to_owned(), Value::Object(kinds));
        }
        out.insert(name, Value::Object(phases));
    }
    println!("{}", Value::Object(out));
}
