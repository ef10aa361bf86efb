"""The README's first command: `make run` (envoy/run.sh once the build is done) serves the demo
on 127.0.0.1:10000 against the local mock provider when no provider keys are set."""
import json
import os
import signal
import socket
import subprocess
import urllib.request

import pytest

from harness import ROOT, wait_until

PORTS = {"gateway": 10000, "admin": 9901, "mock": 8081}
DEMO_CONFIG = ROOT / "envoy/demo/tollgate.ecds.yaml"


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def run_sh():
    taken = [name for name, port in PORTS.items() if port_taken(port)]
    if taken:
        pytest.skip(f"the demo's fixed ports are in use here: {taken}")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ENVOY_CONFIG")}
    proc = subprocess.Popen(["envoy/run.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is None and port_taken(PORTS["gateway"]) and port_taken(PORTS["admin"]), 30, "make run")
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def post(path: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{PORTS['gateway']}{path}", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), json.loads(r.read())


def models() -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['gateway']}/v1/models", timeout=10) as r:
        return {m["id"] for m in json.loads(r.read())["data"]}


def added_model_appears_after_an_in_place_edit():
    """The README's "edit this file, see the new model in /v1/models", saved the way most
    editors save (in place: no move that Envoy's watch would see by itself)."""
    shipped = DEMO_CONFIG.read_text()
    edited = shipped.replace('"gpt-4o": {"provider": "openai"},', '"gpt-4o": {"provider": "openai"}, "gpt-4.1": {"provider": "openai"},')
    assert edited != shipped
    try:
        with DEMO_CONFIG.open("w") as f:
            f.write(edited)
        wait_until(lambda: "gpt-4.1" in models(), 10, "the edited demo configuration")
    finally:
        with DEMO_CONFIG.open("w") as f:
            f.write(shipped)
    wait_until(lambda: "gpt-4.1" not in models(), 10, "the restored demo configuration")


def test_make_run_serves_the_readme_examples_from_the_mock(run_sh):
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['gateway']}/v1/models", timeout=10) as r:
        assert "claude-sonnet" in {m["id"] for m in json.loads(r.read())["data"]}
    status, headers, body = post("/v1/chat/completions", {"model": "claude-sonnet", "messages": [{"role": "user", "content": "Hello"}]})
    assert status == 200 and headers["x-tollgate-provider"] == "anthropic"
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    added_model_appears_after_an_in_place_edit()
    os.killpg(run_sh.pid, signal.SIGINT)  # Ctrl-C
    output = run_sh.communicate(timeout=15)[0]
    assert "Demo mode" in output and "http://127.0.0.1:10000" in output, output
