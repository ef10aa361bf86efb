"""`make profile`: where a Tollgate request's time goes.

1. The core, natively under callgrind (tests/microbench/examples/profile.rs): instructions per
   request for each filter callback and by kind of work. Instruction counts are exact and
   independent of machine load; the wasm build under V8 runs more instructions for the same work.
2. Envoy under load, sampled by `perf` (when the kernel allows it): CPU per request by where it
   ran — Envoy's own code (the stripped binary: Envoy, V8's runtime, the proxy-wasm host calls),
   the JIT-compiled wasm, the kernel — for bare Envoy and Envoy + Tollgate.
3. Host calls per request (tests/microbench/examples/host_calls.rs): one request of each scenario
   through the session state machines against a host that counts the proxy-wasm host calls the
   shell would make, by phase and kind, and the bytes they copy across the VM boundary.
Writes tests/bench/profile.md and prints it. `--host-calls` runs only part 3 and replaces its
section in tests/bench/profile.md.
"""
from __future__ import annotations

import collections
import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import bench
from bench import PASSTHROUGH, TRANSLATE, Envoy, Side, free_port, table

PROFILE_BIN = bench.ROOT / "target/profiling/examples/profile"
HOST_CALLS_BIN = bench.ROOT / "target/profiling/examples/host_calls"
HOST_CALLS_HEADING = "## Host calls per request"
ITERATIONS = {"translate": 2000, "passthrough": 2000, "large": 100, "stream": 1000, "messages_passthrough": 2000,
              "responses_passthrough": 2000}
STEPS = {
    "step_request_headers": "on_http_request_headers",
    "step_request_body": "on_http_request_body (parse, route, translate)",
    "step_response": "response headers + body (translate back)",
    "step_log": "on_log (access log, accounting, metrics)",
}
# Self cost is grouped by the source file the instructions came from, so inlined serde or
# allocator code counts as such; other library code inlined into Tollgate's functions is Tollgate's.
KINDS = [
    ("JSON parsing", r"serde_json-[^/]+/src/(de|read)\.rs|serde_core-[^/]+/src/de/"),
    ("JSON writing", r"serde_json-[^/]+/src/ser\.rs|serde_core-[^/]+/src/ser/"),
    ("UTF-8 validation", r"core/src/str/(validations|converts)\.rs"),
    ("allocation", r"malloc\.c|alloc/src/raw_vec|std/src/sys/alloc"),
    ("memcpy/memmove", r"memmove|memcpy|memset"),
    ("hashing", r"core/src/hash/"),
    ("formatting", r"core/src/fmt/|alloc/src/fmt"),
    ("Tollgate's own code", r"(^|/)src/(accounting|config|gateway|openai|providers|stream|json\.rs|host\.rs)|:<?tollgate::"),
]
OTHER = "std library and other"
# perf's object names, for a reader.
OBJECTS = {"envoy": "Envoy binary (incl. V8 runtime, host calls)", "[JIT]": "JIT-compiled wasm", "[kernel.kallsyms]": "kernel (network I/O)"}
LINE = re.compile(r"^\s*([\d,]+)\s+(\S.*?):(.+?)(?: \[[^\]]*\])?$")


def callgrind(scenario: str, workdir: pathlib.Path) -> tuple[dict, dict, collections.Counter]:
    """Per-request instructions: by step (inclusive), by kind of work, by function (self)."""
    n = ITERATIONS[scenario]
    out = workdir / f"callgrind.{scenario}"
    # Counting only inside the step functions leaves set-up (config, fixtures) out.
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--toggle-collect=*step_*",
                    str(PROFILE_BIN), scenario, str(n)], check=True, capture_output=True)

    def annotate(*extra) -> list[tuple[int, str, str]]:
        text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", "--show-percs=no", *extra, str(out)],
                              check=True, capture_output=True, text=True).stdout
        return [(int(m[1].replace(",", "")), m[2], m[3]) for m in map(LINE.match, text.splitlines())
                if m and m[3] != "PROGRAM TOTALS" and "PROGRAM TOTALS" not in m[2]]

    steps = collections.Counter()
    for count, _, function in annotate("--inclusive=yes"):
        step = function.removeprefix("profile::")
        if step in STEPS:
            # Inlined code shows up once per source file; the function's own line is the largest.
            steps[step] = max(steps[step], count / n)
    kinds, functions = collections.Counter(), collections.Counter()
    for count, file, function in annotate():
        kind = next((name for name, pattern in KINDS if re.search(pattern, f"{file}:{function}")), OTHER)
        kinds[kind] += count / n
        functions[function] += count / n
    return steps, kinds, functions


def size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def host_calls() -> str:
    """The section on host calls: per phase (calls and bytes copied), then per kind."""
    counted = json.loads(subprocess.run([str(HOST_CALLS_BIN)], check=True, capture_output=True, text=True).stdout)
    runs = counted["runs"]
    counts = {name: {phase: {e["kind"]: e for e in kinds} for phase, kinds in phases} for name, phases in runs}
    names = list(counts)
    phases = [phase for phase, _ in runs[0][1]]

    def calls(entries: dict) -> tuple[int, int]:
        real = [e for e in entries.values() if e["host_call"]]
        return sum(e["calls"] for e in real), sum(e["bytes"] for e in real)

    def cell(n: int, b: int) -> str:
        return f"{n} ({size(b)})" if n else "–"

    by_phase = [[phase, *(cell(*calls(counts[s][phase])) for s in names)] for phase in phases]
    totals = [calls({f"{p}/{k}": e for p in phases for k, e in counts[s][p].items()}) for s in names]
    by_phase.append(["**total**", *(f"**{cell(*t)}**" for t in totals)])
    kinds = [k for k in counted["kinds"] if any(k in counts[s][p] for s in names for p in phases)]
    by_kind = [[kind, *(str(sum(counts[s][p].get(kind, {}).get("calls", 0) for p in phases) or "–") for s in names)] for kind in kinds]
    return f"""{HOST_CALLS_HEADING}

One request of each scenario through the session state machines (`session::Downstream`, and
`session::Upstream` for the attempt in `translate_failover`, the translate request through a
failover cluster), against a host that counts the proxy-wasm host calls the shell makes for it
(tests/microbench/examples/host_calls.rs). Streams arrive one event per chunk. Bytes are those
copied across the VM boundary (bodies read and written, header maps, properties, shared data).
Counter increments are summed per VM and flushed on a timer: they make no host call of their own.

{table(["Host calls per request (bytes copied)", *names], by_phase)}

{table(["By kind", *names], by_kind)}"""


def replace_host_calls(text: str, section: str) -> str:
    """`text` (profile.md) with its host-call section replaced, or added before the Envoy part."""
    start = text.find(HOST_CALLS_HEADING)
    if start < 0:
        envoy = text.find("## Envoy under load")
        start = envoy if envoy >= 0 else len(text)
        return f"{text[:start]}{section}\n\n{text[start:]}"
    end = text.find("\n## ", start + len(HOST_CALLS_HEADING))
    return f"{text[:start]}{section}\n{text[end:] if end >= 0 else ''}"


def perf_by_object(side: Side, files: list[pathlib.Path], workdir: pathlib.Path, seconds: int) -> tuple[dict, float]:
    """CPU µs per request of one Envoy under c=32 load, split by the object the samples fell in."""
    data = workdir / f"perf.{side.name}"
    bench.wrk(side, files, 32, 2)  # warm-up
    perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-p", str(side.envoy.proc.pid), "-o", str(data),
                             "--", "sleep", str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = bench.wrk(side, files, 32, seconds)
    perf.wait()
    text = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "dso"],
                          check=True, capture_output=True, text=True).stdout
    shares = collections.Counter()
    for m in re.finditer(r"^\s*([\d.]+)%\s+(.+?)\s*$", text, re.M):
        shares[OBJECTS.get(m[2].split(" tid ")[0], "libc and others")] += float(m[1]) / 100
    return {k: v * run["cpu_us_per_request"] for k, v in shares.items()}, run["cpu_us_per_request"]


def perf_works() -> bool:
    return shutil.which("perf") is not None and subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/dev/null", "true"],
                          capture_output=True).returncode == 0


def envoy_profile(workdir: pathlib.Path) -> str:
    port = free_port()
    nginx = bench.start_nginx(workdir, port)
    sides = []
    try:
        for name, cfg in bench.envoy_configs(port).items():
            sides.append(Side(name, Envoy(cfg, workdir / name, concurrency=1)))
        sections = []
        for s in (TRANSLATE, PASSTHROUGH):
            cost = {side.name: perf_by_object(side, [bench.raw_request(workdir, side, s)], workdir, 5) for side in sides}
            where = sorted({k for c, _ in cost.values() for k in c}, key=lambda k: -cost["tollgate"][0].get(k, 0))
            names = [side.name for side in sides]
            rows = [[k, *(f"{cost[n][0].get(k, 0):.1f}" for n in names),
                     f"{cost['tollgate'][0].get(k, 0) - cost['bare'][0].get(k, 0):+.1f}"] for k in where]
            rows.append(["**total**", *(f"{cost[n][1]:.1f}" for n in names), f"{cost['tollgate'][1] - cost['bare'][1]:+.1f}"])
            sections.append(f"### {s.title}\n\n" + table(["Envoy CPU µs per request, c=32", *names, "Tollgate − bare"], rows))
        return "\n\n".join(sections)
    finally:
        for side in sides:
            side.envoy.stop()
        nginx.terminate()
        nginx.wait()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping nginx and Envoy
    if "--host-calls" in sys.argv[1:]:
        out = bench.BENCH / "profile.md"
        section = host_calls()
        out.write_text(replace_host_calls(out.read_text() if out.exists() else "", section))
        print(section)
        return
    with tempfile.TemporaryDirectory(prefix="tollgate-profile-") as tmp:
        work = pathlib.Path(tmp)
        results = {s: callgrind(s, work) for s in ITERATIONS}
        names = list(ITERATIONS)

        def fmt(v: float) -> str:
            return f"{v:,.0f}"

        steps = table(["Instructions per request", *names],
                      [[label, *(fmt(results[s][0][step]) for s in names)] for step, label in STEPS.items()]
                      + [["**total**", *(fmt(sum(results[s][0].values())) for s in names)]])
        kind_names = [k for k, _ in KINDS] + [OTHER]
        kinds = table(["By kind of work", *names],
                      [[k, *(f"{fmt(results[s][1][k])} ({results[s][1][k] / sum(results[s][1].values()):.0%})" for s in names)]
                       for k in kind_names])
        top = "\n\n".join(
            f"**{s}**\n\n" + table(["Function (self)", "instructions / request"],
                                   [[f"`{f[:110]}`", fmt(c)] for f, c in results[s][2].most_common(8)])
            for s in ("translate", "stream"))
        calls = host_calls()
        envoy = envoy_profile(work) if perf_works() else "`perf record` does not work here: skipped."

    text = f"""# Where a Tollgate request's time goes

## The core, natively (callgrind)

The filter callbacks' work without the proxy-wasm host calls (tests/microbench/examples/profile.rs),
on the load benchmark's fixtures. Streams arrive in one chunk.

{steps}

{kinds}

Heaviest functions:

{top}

{calls}

## Envoy under load (perf, sampled)

The Envoy binary is stripped, so its share cannot be split further here; the last column is what
Tollgate costs Envoy per request, wherever it is spent. "floor" is the reference filter that only
reads the body and names the cluster (tests/bench/floor-filter). Noisy on a busy machine.

{envoy}
"""
    (bench.BENCH / "profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
