"""What the client-API suites (test_messages_api.py, test_responses_api.py) share: a gateway with
one provider of every kind on the mock, reading its access log, and the chat request whose
accounting each client API's must equal."""
from __future__ import annotations

import hashlib
import json
import re

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config, wait_until, wasm_filters

ENV = {
    "GEMINI_API_KEY": "test-gemini-key", "COHERE_API_KEY": "test-cohere-key", "AZURE_OPENAI_API_KEY": "test-azure-key",
    "DEEPSEEK_API_KEY": "test-openai-key", "VERTEX_ACCESS_TOKEN": "test-vertex-token",
    # The mock's default long-term AWS key; the session token set empty so a developer's cannot leak in.
    "AWS_ACCESS_KEY_ID": "AKIDMOCKBEDROCK", "AWS_SECRET_ACCESS_KEY": "mock/bedrock+secret-key", "AWS_SESSION_TOKEN": "",
}

AZURE = {"kind": "azure", "cluster": "mock_openai", "host": "tollgate-test.openai.azure.com", "api_key_env": "AZURE_OPENAI_API_KEY"}
# Besides the demo's OpenAI and Anthropic, one provider of each other kind, all on the mock.
OTHER_KINDS = {
    "deepseek": {"kind": "openai_compatible", "cluster": "mock_openai", "host": "api.deepseek.com", "base_path": "",
                 "api_key_env": "DEEPSEEK_API_KEY"},
    "gemini": {"kind": "gemini", "cluster": "mock_openai", "api_key_env": "GEMINI_API_KEY"},
    "bedrock": {"kind": "bedrock", "cluster": "mock_openai", "region": "us-east-1"},
    "vertex": {"kind": "vertex", "cluster": "mock_openai", "project": "tollgate-test", "location": "us-east5",
               "api_key_env": "VERTEX_ACCESS_TOKEN"},
    "cohere": {"kind": "cohere", "cluster": "mock_openai", "api_key_env": "COHERE_API_KEY"},
}
PRICE = {"input": "3", "output": "15", "cache_read": "0.30", "cache_write": "3.75"}


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def every_kind_gateway(mock, workdir, targets: dict, providers: dict, models: dict, auth: dict, teams: dict | None = None) -> Envoy:
    """The demo gateway with `providers` added on the mock, a model per target (provider name →
    client-facing model, upstream model) plus `models`, `auth` and `teams`, a price for every
    target's upstream model, and the access log in a file, flushed within 100 ms."""
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["providers"].update(providers)
    plugin["models"] = {client: {"provider": provider, "model": upstream} for provider, (client, upstream) in targets.items()}
    plugin["models"].update(models)
    plugin["auth"] = auth
    if teams:
        plugin["teams"] = teams
    plugin["prices"] = {upstream: PRICE for _, upstream in targets.values()}
    set_plugin_config(cfg, plugin)
    for f in wasm_filters(cfg):
        f["vm_config"]["environment_variables"]["host_env_keys"] += list(ENV)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    log_path = workdir / "access.log"
    hcm["access_log"][0]["typed_config"]["path"] = str(log_path)
    envoy = Envoy(cfg, workdir, env=ENV, args=["--file-flush-interval-msec", "100"])
    envoy.access_log = log_path
    return envoy


def log_entries(gw) -> list[dict]:
    if not gw.access_log.exists():
        return []
    return [json.loads(line)["tollgate"] for line in gw.access_log.read_text().splitlines() if line.strip()]


def next_entry(gw, before: int, upstream: str) -> dict:
    """The access-log entry of the next request served by `upstream`, once Envoy wrote it."""
    def newest():
        entries = [e for e in log_entries(gw)[before:] if e.get("upstream_model") == upstream]
        return entries[-1] if entries else None
    return wait_until(newest, 10, f"access log entry for {upstream}")


def split_at_model(raw: str) -> tuple[str, str, str]:
    """(what comes before the `model` member's value, the value, what comes after)."""
    found = re.search(r'"model"\s*:\s*"((?:[^"\\]|\\.)*)"', raw)
    assert found, raw[:200]
    return raw[:found.start(1)], found.group(1), raw[found.end(1):]


# ---- accounting equal to chat's ------------------------------------------------------------------

CONVERSATION_CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"},
                     {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "tell me more"}]
# What must be the same in the access-log entries of one conversation asked through two APIs.
ACCOUNTED = ("provider", "upstream_model", "stream", "completed", "input_tokens", "cached_input_tokens", "cache_write_tokens",
             "output_tokens", "reasoning_tokens", "cost_usd")


def mock_cache_headers(provider: str) -> dict:
    """Asks the mock to report 2 cache-read tokens, and for Anthropic 1 cache-write token."""
    return {"x-mock-cache-read": "2", **({"x-mock-cache-write": "1"} if provider == "anthropic" else {})}


def accounted_as_chat(gw, provider: str, model: str, upstream: str, key: str, streamed: bool) -> dict:
    """The access-log entry of CONVERSATION_CHAT sent as a chat completion."""
    headers = {"authorization": f"Bearer {key}", **mock_cache_headers(provider)}
    before = len(log_entries(gw))
    chat = {"model": model, "messages": CONVERSATION_CHAT, "max_tokens": 100}
    if streamed:
        s = gw.stream({**chat, "stream": True}, headers)
        assert s.status == 200 and s.error is None, s.body[:300]
    else:
        r = gw.chat(chat, headers)
        assert r.status == 200, r.body
    return next_entry(gw, before, upstream)
