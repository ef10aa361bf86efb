"""The demo gateway (envoy/demo.yaml) with more providers and models, for provider tests: the plugin
config patched, the providers' key variables passed to the module, the access log written to a file
so tests can read what Tollgate accounted."""
from __future__ import annotations

import json
import pathlib

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config, wait_until, wasm_filters


def start(mock, workdir: pathlib.Path, providers: dict, models: dict, env: dict | None = None) -> Envoy:
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["providers"].update(providers)
    plugin["models"].update(models)
    set_plugin_config(cfg, plugin)
    for f in wasm_filters(cfg):
        f["vm_config"]["environment_variables"]["host_env_keys"] += list(env or {})
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    log_path = workdir / "access.log"
    hcm["access_log"][0]["typed_config"]["path"] = str(log_path)
    envoy = Envoy(cfg, workdir, env=env)
    envoy.access_log = log_path
    return envoy


def accounted_entries(envoy: Envoy, upstream_model: str) -> list[dict]:
    """Tollgate's access-log entries (tokens, cost, outcome) for requests served by this model."""
    if not envoy.access_log.exists():
        return []
    entries = (json.loads(line)["tollgate"] for line in envoy.access_log.read_text().splitlines() if line.strip())
    return [e for e in entries if e.get("upstream_model") == upstream_model]


def accounted(envoy: Envoy, upstream_model: str, before: int) -> dict:
    """The entry of the next request served by this model, once Envoy has written it."""
    def newest():
        entries = accounted_entries(envoy, upstream_model)
        return entries[-1] if len(entries) > before else None
    return wait_until(newest, 10, f"access log entry for {upstream_model}")
