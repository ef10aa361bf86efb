"""Global request rate limits (issue 14): three Envoys running examples/global-limits/envoy.yaml
share limits through one rate-limit service (tests/ratelimit-service, envoyproxy/ratelimit's
semantics) over a real Redis; fail-open when the service is gone; the count outlives an Envoy
restart."""
import hashlib
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from harness import ROOT, Envoy, free_port, load_config, localize, plugin_config, set_plugin_config, wait_until

KEY, MODEL_KEY = "tg-global-key", "tg-global-model-key"
KEY_LIMIT, MODEL_LIMIT = 6, 3
LIMITS = {"domain": "tollgate", "descriptors": [
    {"key": "key", "value": "global", "requests_per_unit": KEY_LIMIT, "unit": "minute"},
    {"key": "model", "value": "claude-sonnet-4-5-20250929", "requests_per_unit": MODEL_LIMIT, "unit": "minute"},
]}


def listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: `make test` installs it (Debian package redis-server)")
    workdir, port = tmp_path_factory.mktemp("redis"), free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_until(lambda: listening(port), 10, "redis")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


class Service:
    def __init__(self, workdir: pathlib.Path, redis_port: int, port: int):
        config = workdir / "limits.json"
        config.write_text(json.dumps(LIMITS))
        self.port = port
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests/ratelimit-service/service.py"), "--port", str(port),
                                      "--redis-port", str(redis_port), "--config", str(config)])
        wait_until(lambda: listening(port), 15, "rate-limit service")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def service(redis_port, tmp_path_factory):
    s = Service(tmp_path_factory.mktemp("ratelimit"), redis_port, free_port())
    yield s
    if s.proc.poll() is None:
        s.stop()


@pytest.fixture(scope="module")
def cfg(mock, service):
    cfg = load_config("examples/global-limits/envoy.yaml")
    localize(cfg, {"mock_openai": mock.port, "mock_anthropic": mock.port, "ratelimit": service.port})
    plugin = plugin_config(cfg)
    for key_id, key in [("global", KEY), ("model-user", MODEL_KEY)]:
        plugin["auth"]["keys"].append({"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest()})
    set_plugin_config(cfg, plugin)
    return cfg


@pytest.fixture(scope="module")
def envoys(cfg, tmp_path_factory):
    started = [Envoy(cfg, tmp_path_factory.mktemp(f"envoy{i}"), concurrency=2) for i in range(3)]
    yield started
    for e in started:
        e.stop()


def auth(key):
    return {"authorization": f"Bearer {key}"}


def chat(model="gpt-4o-mini"):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def fresh_window():
    """The service counts fixed minute windows: start a test early in one."""
    if time.time() % 60 > 45:
        time.sleep(60 - time.time() % 60 + 0.1)


def test_a_keys_limit_holds_across_three_envoys(envoys, mock, test_id):
    fresh_window()
    headers = {"x-test-id": test_id, **auth(KEY)}
    answers = [envoys[i % 3].chat(chat(), headers) for i in range(3 * KEY_LIMIT)]
    assert [a.status for a in answers] == [200] * KEY_LIMIT + [429] * (2 * KEY_LIMIT)
    refused = answers[-1]
    assert refused.error["code"] == "rate_limit_exceeded" and refused.error["type"] == "requests"
    upstream = mock.requests(test_id)
    assert len(upstream) == KEY_LIMIT
    assert not any(h.startswith("x-tollgate-rl-") for h in upstream[0]["headers"]), "descriptor headers stay in Envoy"
    # A client cannot spend (or dodge) another key's limit by sending the headers itself.
    forged = {"x-test-id": test_id, **auth(MODEL_KEY), "x-tollgate-rl-key": "global"}
    assert envoys[0].chat(chat(), forged).status == 200


def test_an_upstream_models_limit_counts_every_key(envoys, test_id):
    fresh_window()
    statuses = [envoys[i % 3].chat(chat("claude-sonnet"), {"x-test-id": test_id, **auth(k)}).status
                for i, k in enumerate([MODEL_KEY, "tg-bob-demo-key"] * MODEL_LIMIT)]
    assert statuses == [200] * MODEL_LIMIT + [429] * MODEL_LIMIT
    assert envoys[0].chat(chat(), {"x-test-id": test_id, **auth(MODEL_KEY)}).status == 200, "other models are not limited"


def test_the_count_outlives_an_envoy_restart(envoys, cfg, tmp_path_factory, test_id):
    fresh_window()
    headers = {"x-test-id": test_id, **auth(KEY)}
    while envoys[0].chat(chat(), headers).status == 200:
        pass
    envoys[0].stop()
    envoys[0] = Envoy(cfg, tmp_path_factory.mktemp("envoy0-restarted"), concurrency=2)
    assert envoys[0].chat(chat(), headers).status == 429


def test_requests_pass_when_the_service_is_gone(envoys, service, test_id):
    fresh_window()
    headers = {"x-test-id": test_id, **auth(KEY)}
    while envoys[1].chat(chat(), headers).status == 200:
        pass
    service.stop()
    # failure_mode_deny: false — a service that cannot be reached lets requests through.
    assert [e.chat(chat(), headers).status for e in envoys] == [200, 200, 200]
