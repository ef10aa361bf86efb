#!/usr/bin/env python3
"""`make validate`: every configuration the project ships is checked by the program that reads it.

- Envoy bootstraps (envoy/*.yaml, examples/*/envoy.yaml) by `envoy --mode validate`, which also
  compiles Tollgate's plugin configuration in them.
- A Tollgate filter a bootstrap takes by ECDS from a file (envoy/demo.yaml takes
  envoy/demo/tollgate.yaml) is not read by validate mode, so the bootstrap is validated a second
  time with that file's TypedExtensionConfig put in place, as the tests run it.
- Docker Compose files (examples/*/docker-compose.yaml) by `docker compose config` (or Debian's
  `docker-compose`, which `make validate` installs where no Compose plugin is), which needs no
  Docker daemon.
- An envoyproxy/ratelimit limits file next to an example (examples/*/ratelimit/config.yaml), which
  no program here reads: checked against that service's documented schema
  (https://github.com/envoyproxy/ratelimit#configuration), and every descriptor key it limits must
  be one the example's Envoy sends, in the domain that Envoy names.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from harness import KEYS, ROOT, load_config, validate  # noqa: E402

RATELIMIT_UNITS = {"second", "minute", "hour", "day", "week", "month", "year"}
MAX_DESCRIPTOR_DEPTH = 8


def bootstraps() -> list[Path]:
    return sorted([*ROOT.glob("envoy/*.yaml"), *ROOT.glob("examples/*/envoy.yaml")])


def takes_filters_by_ecds(node) -> bool:
    if isinstance(node, dict):
        source = node.get("config_discovery", {}).get("config_source", {})
        return "path_config_source" in source or any(takes_filters_by_ecds(v) for v in node.values())
    if isinstance(node, list):
        return any(takes_filters_by_ecds(v) for v in node)
    return False


def reason(result: subprocess.CompletedProcess) -> str:
    """What Envoy said: Tollgate's own message naming the field if there is one, else the last line."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    ours = [line for line in lines if "invalid tollgate configuration" in line]
    return (ours or lines or ["(no output)"])[-1]


def validate_bootstrap(path: Path) -> list[str]:
    name = str(path.relative_to(ROOT))
    problems = []
    result = validate(path, KEYS)
    if result.returncode != 0:
        problems.append(f"{name}: {reason(result)}")
    if takes_filters_by_ecds(yaml.safe_load(path.read_text())):
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=ROOT / "target") as inlined:
            json.dump(load_config(name), inlined)
            inlined.flush()
            result = validate(Path(inlined.name), KEYS)
        if result.returncode != 0:
            problems.append(f"{name} with its ECDS file in place: {reason(result)}")
    return problems


def sent_descriptors(envoy_config) -> tuple[set[str], set[str]]:
    """The rate-limit domains and descriptor keys an Envoy config's filters and routes name."""
    domains, keys = set(), set()

    def walk(node):
        if isinstance(node, dict):
            if node.get("@type", "").endswith("ratelimit.v3.RateLimit") and "domain" in node:
                domains.add(node["domain"])
            for action in node.get("actions", []) if isinstance(node.get("actions"), list) else []:
                for kind in action.values():
                    if isinstance(kind, dict) and "descriptor_key" in kind:
                        keys.add(kind["descriptor_key"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(envoy_config)
    return domains, keys


def ratelimit_problems(path: Path) -> list[str]:
    name = str(path.relative_to(ROOT))
    limits = yaml.safe_load(path.read_text())
    domains, keys = sent_descriptors(yaml.safe_load((path.parent.parent / "envoy.yaml").read_text()))
    problems = []
    if limits.get("domain") not in domains:
        problems.append(f"{name}: domain {limits.get('domain')!r} is not one the example's Envoy sends ({sorted(domains)})")

    def check(descriptors, where: str, depth: int):
        if depth > MAX_DESCRIPTOR_DEPTH or not isinstance(descriptors, list) or not descriptors:
            problems.append(f"{name}: {where}: expected a non-empty list of descriptors")
            return
        for i, d in enumerate(descriptors):
            at = f"{where}[{i}]"
            if not isinstance(d, dict) or not isinstance(d.get("key"), str):
                problems.append(f"{name}: {at}: a descriptor needs a string `key`")
                continue
            unknown = set(d) - {"key", "value", "rate_limit", "descriptors", "shadow_mode", "detailed_metric"}
            if unknown:
                problems.append(f"{name}: {at}: unknown fields {sorted(unknown)}")
            if depth == 0 and d["key"] not in keys:
                problems.append(f"{name}: {at}: key {d['key']!r} is not a descriptor the example's Envoy sends ({sorted(keys)})")
            limit = d.get("rate_limit")
            if limit is not None:
                per_unit = limit.get("requests_per_unit")
                if limit.get("unit") not in RATELIMIT_UNITS or not isinstance(per_unit, int) or per_unit < 0:
                    problems.append(f"{name}: {at}.rate_limit: needs `unit` in {sorted(RATELIMIT_UNITS)} and a whole `requests_per_unit`")
            if "descriptors" in d:
                check(d["descriptors"], f"{at}.descriptors", depth + 1)

    check(limits.get("descriptors"), "descriptors", 0)
    return problems


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def compose_problems(path: Path, compose: list[str]) -> list[str]:
    result = subprocess.run([*compose, "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60)
    return [] if result.returncode == 0 else [f"{path.relative_to(ROOT)}: {result.stderr.strip()}"]


def main() -> int:
    problems = []
    paths = bootstraps()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path, found in zip(paths, pool.map(validate_bootstrap, paths)):
            problems += found
            if not found:
                print(f"valid: {path.relative_to(ROOT)}")
    for path in sorted(ROOT.glob("examples/*/ratelimit/config.yaml")):
        found = ratelimit_problems(path)
        problems += found
        if not found:
            print(f"valid: {path.relative_to(ROOT)} (envoyproxy/ratelimit limits)")
    compose = compose_command()
    if compose is None:
        problems.append("no Docker Compose client to check examples/*/docker-compose.yaml with")
    else:
        for path in sorted(ROOT.glob("examples/*/docker-compose.yaml")):
            found = compose_problems(path, compose)
            problems += found
            if not found:
                print(f"valid: {path.relative_to(ROOT)} ({' '.join(compose)} config)")
    for problem in problems:
        print(f"INVALID: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
