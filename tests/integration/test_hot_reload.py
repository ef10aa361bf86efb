"""Configuration changes without a restart (issue 15): the shipped demo (envoy/demo.yaml) takes
Tollgate's configuration by ECDS from a watched file. Rewriting the file changes models, prices
and keys in the running Envoy; the VM and its shared data (counters, budgets, breakers) are kept;
a bad update is refused with the field named while the previous configuration keeps serving."""
import copy
import hashlib
import json
import os
import re
import threading
import time
from datetime import datetime
from decimal import Decimal

import pytest
import yaml

from harness import Envoy, ROOT, discovered_resource, forward_test_headers, load_config, point_static_clusters, wait_until

ALICE, BOB, ADMIN, FRANK = "tg-alice-reload-key", "tg-bob-reload-key", "tg-admin-reload-key", "tg-frank-reload-key"
STAT = "extension_config_discovery.http_filter.tollgate"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def auth(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


class Reloadable:
    """The demo Envoy with its ECDS file in a test directory: `publish` replaces the file the way
    a deployment should (write aside, rename into the watched directory)."""

    def __init__(self, mock, workdir):
        cfg = load_config("envoy/demo.yaml", inline_discovered=False)
        point_static_clusters(cfg, mock.port)
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        entry = next(f for f in hcm["http_filters"] if "config_discovery" in f)
        self.resource = discovered_resource(entry)
        self.plugin = json.loads(self.resource["typed_config"]["config"]["configuration"]["value"])
        self.dir = workdir / "ecds"
        self.dir.mkdir()
        self.path = self.dir / "tollgate.yaml"
        entry["config_discovery"]["config_source"]["path_config_source"] = {
            "path": str(self.path), "watched_directory": {"path": str(self.dir)}}
        self._write(self.plugin)
        # Log lines reach the file within 0.1 s, so tests can read what a reload logged.
        self.envoy = Envoy(cfg, workdir, concurrency=2, args=["--file-flush-interval-msec", "100"])

    def _write(self, plugin, raw: str | None = None):
        resource = copy.deepcopy(self.resource)
        config = resource["typed_config"]["config"]
        config["vm_config"]["code"]["local"]["filename"] = str(ROOT / config["vm_config"]["code"]["local"]["filename"])
        config["configuration"]["value"] = json.dumps(plugin)
        forward_test_headers(config)
        if raw is not None:
            config["configuration"]["value"] = raw
        aside = self.dir / ".tollgate.yaml.new"
        aside.write_text(yaml.safe_dump({"resources": [resource]}))
        os.rename(aside, self.path)

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.envoy.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            if value.lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def publish(self, plugin=None, raw: str | None = None) -> str:
        """Writes a new configuration and waits until Envoy took or refused it: `success` or `rejected`."""
        before = self.stats()
        self._write(plugin if plugin is not None else self.plugin, raw)

        def outcome():
            now = self.stats()
            for kind in ("success", "rejected"):
                if now.get(f"{STAT}.update_{kind}", 0) > before.get(f"{STAT}.update_{kind}", 0):
                    return kind
            return None

        return wait_until(outcome, 10, "the ECDS update")


def base_plugin(plugin: dict) -> dict:
    """The demo's configuration with keys, a spent team budget, prices and a quick breaker."""
    plugin = copy.deepcopy(plugin)
    plugin["auth"] = {
        "admin_keys_sha256": [sha(ADMIN)],
        "keys": [{"id": "alice", "sha256": sha(ALICE)}, {"id": "bob", "sha256": sha(BOB)},
                 {"id": "frank", "sha256": sha(FRANK), "team": "tiny"}],
    }
    plugin["teams"] = {"tiny": {"budget": {"daily_usd": "0.000001"}}}
    plugin["prices"] = {"gpt-4o-mini": {"input": "1", "output": "2"}}
    plugin["routes"] = [{"name": "flaky", "match": {"models": ["flaky"]}, 
                        "targets": [{"provider": "openai", "model": "flaky"}, {"provider": "anthropic", "model": "steady"}]}]
    plugin["breaker"] = {"consecutive_failures": 2, "cooldown_seconds": 600}
    plugin["explain"] = True
    plugin["accounting_flush_ms"] = 0
    return plugin


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    reloadable = Reloadable(mock, tmp_path_factory.mktemp("reload"))
    reloadable.plugin = base_plugin(reloadable.plugin)
    assert reloadable.publish() == "success"
    yield reloadable
    reloadable.envoy.stop()


def models(gw, key=ALICE) -> set[str]:
    return {m["id"] for m in gw.envoy.request("GET", "/v1/models", headers=auth(key)).json()["data"]}


def usage(gw) -> dict:
    r = gw.envoy.request("GET", "/v1/tollgate/usage", headers=auth(ADMIN))
    assert r.status == 200, r.body
    return r.json()


def spent(report: dict, group: str, name: str) -> Decimal:
    return Decimal(report["scopes"][group][name]["today"]["cost_usd"])


def counters(report: dict, without: tuple[str, str]) -> dict:
    return {(group, name): scope["today"] for group, scopes in report["scopes"].items() for name, scope in scopes.items()
            if (group, name) != without and name != "gpt-5-mini"}


def chat(gw, key, model="gpt-4o-mini", headers=None):
    return gw.envoy.chat({"model": model, "messages": [user("hello")]}, {**auth(key), **(headers or {})})


def configurations_logged(gw, since: datetime) -> list[tuple[str, int]]:
    """(thread, n) of each "configuration n of this VM" line Envoy logged at or after `since`."""
    lines = re.findall(r"^\[([\d-]+ [\d:.]+)\]\[(\d+)\]\[info\]\[wasm\].*configuration (\d+) of this VM", gw.envoy.log(), re.M)
    return [(thread, int(n)) for at, thread, n in lines if datetime.strptime(at, "%Y-%m-%d %H:%M:%S.%f") >= since]


def vms_configured(gw, since: datetime) -> list[tuple[str, int]]:
    """The configurations logged since `since`, once the main thread and both workers logged one
    (and a moment more, for lines still on their way to the file: it is flushed every 0.1 s)."""
    wait_until(lambda: len({t for t, _ in configurations_logged(gw, since)}) == 3, 5, "each thread's configuration log line")
    time.sleep(0.3)
    return configurations_logged(gw, since)


def logged_since(gw, offset: int, text: str) -> str:
    """The log written since `offset`, once it contains `text`."""
    return wait_until(lambda: text in gw.envoy.log()[offset:] and gw.envoy.log()[offset:], 5, f"log line {text!r}")


def test_a_file_change_adds_a_model_changes_a_price_and_revokes_a_key_while_a_stream_runs(gw, test_id):
    assert chat(gw, BOB).status == 200
    first = chat(gw, ALICE)
    assert first.status == 200
    tokens = first.json()["usage"]
    assert "gpt-5-mini" not in models(gw)
    created = gw.stats()["wasm.envoy.wasm.runtime.v8.active"]
    before = usage(gw)

    # A stream that starts on the old configuration: 0.3 s between its events.
    streamed = {}

    def run_stream():
        streamed["result"] = gw.envoy.stream(
            {"model": "claude-sonnet", "stream": True, "messages": [user("count slowly")]},
            {**auth(BOB), "x-mock-delay-ms": "300", "x-test-id": test_id})

    streamer = threading.Thread(target=run_stream)
    streamer.start()
    time.sleep(0.4)
    assert streamer.is_alive(), "the stream must still be running when the configuration changes"

    changed = copy.deepcopy(gw.plugin)
    changed["models"]["gpt-5-mini"] = {"provider": "openai"}
    changed["prices"]["gpt-4o-mini"] = {"input": "10", "output": "20"}
    changed["auth"]["keys"] = [k for k in changed["auth"]["keys"] if k["id"] != "bob"]
    started, published = time.monotonic(), datetime.now()
    assert gw.publish(changed) == "success"
    assert time.monotonic() - started < 5
    gw.plugin = changed

    # Counters (exact: accounting_flush_ms 0) are what they were before the change, for every
    # scope in both configurations (bob's key is gone from the report, gpt-5-mini is new).
    assert counters(usage(gw), without=("keys", "bob")) == counters(before, without=("keys", "bob"))
    assert "gpt-5-mini" in models(gw)
    assert chat(gw, ALICE, "gpt-5-mini").status == 200
    revoked = chat(gw, BOB)
    assert revoked.status == 401, revoked.body
    # The new price: 10 and 20 USD per million input and output tokens.
    assert chat(gw, ALICE).status == 200
    after = usage(gw)
    expected = Decimal(tokens["prompt_tokens"]) * Decimal("10e-6") + Decimal(tokens["completion_tokens"]) * Decimal("20e-6")
    assert spent(after, "models", "gpt-4o-mini") - spent(before, "models", "gpt-4o-mini") == expected

    streamer.join(timeout=30)
    result = streamed["result"]
    assert result.status == 200 and result.error is None, result.error
    assert result.data()[-1] == "[DONE]" and len(result.data()) > 3, "the stream started before the change completes"
    # Bob's stream, admitted on the old configuration, is counted once when it ends.
    model = "claude-sonnet-4-5-20250929"
    assert usage(gw)["scopes"]["models"][model]["today"]["requests"] == before["scopes"]["models"][model]["today"]["requests"] + 1

    # The VMs were kept: the VMs of both workers and of the main thread logged their second (or
    # later) configuration; Envoy checked the update in one fresh VM first (its first).
    logged = vms_configured(gw, published)
    assert len({thread for thread, n in logged if n >= 2}) == 3, logged
    assert [n for _, n in logged].count(1) == 1, logged
    assert gw.stats()["wasm.envoy.wasm.runtime.v8.active"] == created


def test_budgets_and_breakers_survive_a_reload(gw):
    refused = chat(gw, FRANK)
    assert refused.status == 429 and refused.error["code"] == "budget_exceeded", refused.body
    for _ in range(2):
        chat(gw, ALICE, "flaky", {"x-mock-status": "503"})
    explain = {"x-tollgate-explain": "1"}
    assert chat(gw, ALICE, "flaky", explain).json()["skipped"] == [{"target": "openai/flaky", "reason": "circuit_open"}]
    spent_before = spent(usage(gw), "teams", "tiny")

    changed = copy.deepcopy(gw.plugin)
    changed["models"]["claude-haiku"] = {"provider": "anthropic"}
    assert gw.publish(changed) == "success"
    gw.plugin = changed
    assert "claude-haiku" in models(gw)

    assert chat(gw, FRANK).status == 429, "the team's spending survived the reload"
    assert spent(usage(gw), "teams", "tiny") == spent_before
    assert chat(gw, ALICE, "flaky", explain).json()["skipped"] == [{"target": "openai/flaky", "reason": "circuit_open"}], \
        "the breaker opened before the reload is still open"


BAD_UPDATES = [
    ("invalid JSON", None, '{"providers": {', "invalid tollgate configuration"),
    ("a typo'd field", lambda p: p["providers"]["openai"].update(clustr="mock_openai"), None,
     "invalid tollgate configuration at `providers.openai.clustr`"),
    ("a model naming no provider", lambda p: p["models"].update({"gpt-6": {"provider": "opneai"}}), None,
     "invalid tollgate configuration at `models.gpt-6.provider`"),
]


@pytest.mark.parametrize("what,mutate,raw,logged", BAD_UPDATES, ids=[b[0] for b in BAD_UPDATES])
def test_a_bad_update_is_refused_and_the_previous_configuration_keeps_serving(gw, what, mutate, raw, logged):
    serving = models(gw)
    log_before = len(gw.envoy.log())
    rejected_before = gw.stats()[f"{STAT}.update_rejected"]
    bad = copy.deepcopy(gw.plugin)
    if mutate:
        mutate(bad)
    assert gw.publish(bad, raw) == "rejected", what
    assert gw.stats()[f"{STAT}.update_rejected"] == rejected_before + 1
    logged_since(gw, log_before, logged)
    assert models(gw) == serving
    assert chat(gw, ALICE).status == 200
    # The next good update applies.
    assert gw.publish() == "success"


def test_a_provider_on_a_cluster_envoy_lacks_is_accepted_and_answers_503_naming_it(gw):
    """Not refusable: the filter cannot see Envoy's clusters when it is configured."""
    changed = copy.deepcopy(gw.plugin)
    changed["providers"]["ghost"] = {"kind": "openai", "cluster": "ghost_cluster", "api_key_env": "OPENAI_API_KEY"}
    changed["models"]["ghost-model"] = {"provider": "ghost"}
    assert gw.publish(changed) == "success"
    gw.plugin = changed
    r = chat(gw, ALICE, "ghost-model")
    assert r.status == 503 and r.error["code"] == "provider_unreachable", r.body
    assert "missing from the gateway's Envoy configuration" in r.error["message"]
    assert chat(gw, ALICE).status == 200


def test_a_changed_vm_config_starts_new_vms_and_shared_data_outlives_them(gw):
    """A new `.wasm` or any other vm_config change gives new VMs; shared data is Envoy's, per
    vm_id, so counters, budgets and breakers carry over."""
    assert chat(gw, ALICE).status == 200
    before = usage(gw)
    explain = {"x-tollgate-explain": "1"}
    assert chat(gw, ALICE, "flaky", explain).json()["skipped"] == [{"target": "openai/flaky", "reason": "circuit_open"}]
    gw.resource["typed_config"]["config"]["vm_config"]["environment_variables"]["key_values"] = {"TOLLGATE_TEST_GENERATION": "2"}
    published = datetime.now()
    assert gw.publish() == "success"
    logged = vms_configured(gw, published)
    assert {n for _, n in logged} == {1}, f"every VM configured since is new: {logged}"
    assert counters(usage(gw), without=("keys", "bob")) == counters(before, without=("keys", "bob"))
    assert chat(gw, FRANK).status == 429
    assert chat(gw, ALICE, "flaky", explain).json()["skipped"] == [{"target": "openai/flaky", "reason": "circuit_open"}]
