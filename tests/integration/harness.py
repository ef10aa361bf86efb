"""Starts the real pieces for integration tests: the mock provider binary and Envoy 1.40 with the
built Tollgate module, configured from the shipped Envoy YAML with ports and settings patched."""
from __future__ import annotations

import copy
import http.client
import json
import os
import pathlib
import select
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENVOY_BIN = os.environ.get("ENVOY_BIN", str(ROOT / ".venv/bin/envoy"))
WASM = ROOT / "target/wasm32-wasip1/release/tollgate.wasm"
# TOLLGATE_BUILD=native runs the same tests against the native build (target/native/libtollgate.so,
# `make native`): each Envoy gets the dynamic-module filter in place of every Tollgate wasm filter.
BUILD = os.environ.get("TOLLGATE_BUILD", "wasm")
NATIVE_DIR = ROOT / "target/native"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
# Tests of Tollgate's Envoy metrics: the native build has none yet (README, "Native build").
MOCK_BIN = ROOT / "target/release/mock-provider"
KEYS = {"OPENAI_API_KEY": "test-openai-key", "ANTHROPIC_API_KEY": "test-anthropic-key"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last})")


# ---- HTTP ----------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json()["error"]


def request(port: int, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 30) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"content-type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=hdrs)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    error: str | None = None

    @property
    def body(self) -> bytes:
        return b"".join(chunk for _, chunk in self.reads)

    def events(self) -> list[str]:
        return [e for e in self.body.decode().split("\n\n") if e.strip()]

    def data(self) -> list:
        """Every `data:` payload, JSON-decoded (the literal `[DONE]` kept as a string)."""
        out = []
        for event in self.events():
            for line in event.splitlines():
                if line.startswith("data: "):
                    payload = line[len("data: "):]
                    out.append(payload if payload == "[DONE]" else json.loads(payload))
        return out


def stream(port: int, path: str, body, headers: dict | None = None, timeout: float = 30) -> Stream:
    """POSTs and records each body read with its arrival time (seconds since the request was sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {"content-type": "application/json"}
    hdrs.update(headers or {})
    start = time.monotonic()
    conn.request("POST", path, body=json.dumps(body), headers=hdrs)
    r = conn.getresponse()
    s = Stream(r.status, {k.lower(): v for k, v in r.getheaders()})
    try:
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            s.reads.append((time.monotonic() - start, chunk))
    except (http.client.IncompleteRead, ConnectionError, http.client.HTTPException) as e:
        s.error = f"{type(e).__name__}: {e}"
    conn.close()
    return s


def early_response_upload(port: int, head: bytes, body_chunks) -> Response:
    """Uploads like a robust client (curl): keeps sending the body only while the server has not
    answered, and reads an early final response such as a 413."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head_part, _, rest = data.partition(b"\r\n\r\n")
        lines = head_part.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += sock.recv(65536)
        return Response(int(lines[0].split()[1]), headers, rest[:length])


# ---- mock provider -------------------------------------------------------------------------------

class Mock:
    def __init__(self):
        self.proc = subprocess.Popen([str(MOCK_BIN), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"mock provider did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def requests(self, test_id: str | None = None) -> list[dict]:
        path = "/_mock/requests" + (f"?test_id={test_id}" if test_id else "")
        return request(self.port, "GET", path).json()

    def only_request(self, test_id: str) -> dict:
        got = self.requests(test_id)
        assert len(got) == 1, f"expected one upstream request for {test_id}, got {len(got)}"
        return got[0]

    def fault(self, **spec):
        assert request(self.port, "POST", "/_mock/faults", spec).status in (200, 204)

    def clear_faults(self):
        request(self.port, "DELETE", "/_mock/faults")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


# ---- Envoy ---------------------------------------------------------------------------------------

def load_config(name: str, inline_discovered: bool = True) -> dict:
    """A shipped bootstrap. A Tollgate filter it takes by ECDS from a file (envoy/demo.yaml) is
    put in place as a static filter unless `inline_discovered` is false, so tests patch its
    plugin configuration as in any other config; the reload tests keep the ECDS form."""
    cfg = yaml.safe_load((ROOT / name).read_text())
    if inline_discovered:
        _inline_discovered_filters(cfg)
    return cfg


def discovered_resource(filter_entry: dict) -> dict:
    """The TypedExtensionConfig an ECDS filter entry names, read from its `path_config_source`."""
    path = ROOT / filter_entry["config_discovery"]["config_source"]["path_config_source"]["path"]
    resources = yaml.safe_load(path.read_text())["resources"]
    return next(r for r in resources if r["name"] == filter_entry["name"])


def _inline_discovered_filters(cfg: dict):
    for node in each_dict(cfg):
        filters = node.get("http_filters")
        if isinstance(filters, list):
            for i, entry in enumerate(filters):
                if "path_config_source" in entry.get("config_discovery", {}).get("config_source", {}):
                    filters[i] = {"name": "envoy.filters.http.wasm", "typed_config": discovered_resource(entry)["typed_config"]}


def each_dict(node):
    """Every dict in a nest of dicts and lists, each before what it holds."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from each_dict(v)
    elif isinstance(node, list):
        for v in node:
            yield from each_dict(v)


def wasm_filters(cfg: dict) -> list[dict]:
    """Every Tollgate wasm filter config in the bootstrap (listener and cluster filters)."""
    return [node["typed_config"]["config"] for node in each_dict(cfg)
            if isinstance(node.get("typed_config"), dict) and node["typed_config"].get("@type") == WASM_TYPE]


def plugin_config(cfg: dict) -> dict:
    return json.loads(wasm_filters(cfg)[0]["configuration"]["value"])


def set_plugin_config(cfg: dict, plugin: dict):
    for f in wasm_filters(cfg):
        f["configuration"]["value"] = json.dumps(plugin)


def localize(cfg: dict, ports: dict[str, int]):
    """Points a real-provider config at local mocks: every cluster named in `ports` (and every
    failover-cluster endpoint whose `tollgate.provider` is named) goes to that port, over plain
    HTTP."""
    for cluster in cfg["static_resources"]["clusters"]:
        endpoints = [ep for group in cluster.get("load_assignment", {}).get("endpoints", []) for ep in group["lb_endpoints"]]
        targets = [ports.get(ep.get("metadata", {}).get("filter_metadata", {}).get("tollgate", {}).get("provider", cluster["name"]))
                   for ep in endpoints]
        if not any(targets):
            continue
        cluster["type"] = "STATIC"
        for key in ("transport_socket", "transport_socket_matches", "dns_lookup_family"):
            cluster.pop(key, None)
        for ep, port in zip(endpoints, targets):
            ep["endpoint"]["address"]["socket_address"].update(address="127.0.0.1", port_value=port)
            ep.get("metadata", {}).get("filter_metadata", {}).pop("envoy.transport_socket_match", None)


def point_static_clusters(cfg: dict, port: int):
    """Sends every loopback endpoint of the config to `port` (the test's mock provider)."""
    for cluster in cfg["static_resources"]["clusters"]:
        for group in cluster.get("load_assignment", {}).get("endpoints", []):
            for ep in group["lb_endpoints"]:
                addr = ep["endpoint"]["address"]["socket_address"]
                if addr["address"] == "127.0.0.1":
                    addr["port_value"] = port


# The mock tags requests by `x-test-id` and takes `x-mock-*` instructions; Tollgate forwards only
# allowlisted client headers, so every test config names these in each provider's forward_headers.
TEST_HEADERS = ["x-test-id", "x-mock-*"]


def forward_test_headers(filter_config: dict):
    try:
        plugin = json.loads(filter_config["configuration"]["value"])
    except (KeyError, TypeError, ValueError):
        return  # a test of invalid configurations
    providers = plugin.get("providers") if isinstance(plugin, dict) else None
    if not isinstance(providers, dict):
        return
    for provider in providers.values():
        if isinstance(provider, dict):
            provider["forward_headers"] = [*provider.get("forward_headers", []), *TEST_HEADERS]
    filter_config["configuration"]["value"] = json.dumps(plugin)


def as_native(cfg: dict) -> dict:
    """A copy of the bootstrap with each Tollgate wasm filter (listener or cluster) replaced by the
    native build's dynamic-module filter: the same plugin JSON, the root id as `filter_name`."""
    cfg = copy.deepcopy(cfg)
    for node in each_dict(cfg):
        typed = node.get("typed_config")
        if isinstance(typed, dict) and typed.get("@type") == WASM_TYPE:
            wasm = typed.get("config", {})
            if node.get("name") == "envoy.filters.http.wasm":
                node["name"] = "envoy.filters.http.dynamic_modules"
            node["typed_config"] = {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "dynamic_module_config": {"name": "tollgate"},
                "filter_name": wasm.get("root_id", ""),
                "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": wasm.get("configuration", {}).get("value", "")},
            }
    return cfg


class Envoy:
    """One Envoy process. `cfg` is a bootstrap dict (usually a shipped YAML, patched)."""

    def __init__(self, cfg: dict, workdir: pathlib.Path, concurrency: int = 1, env: dict | None = None,
                 args: list[str] | None = None):
        self.cfg = copy.deepcopy(cfg)
        self.port = free_port()
        self.admin_port = free_port()
        self.cfg["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        self.cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = self.port
        for f in wasm_filters(self.cfg):
            forward_test_headers(f)
            code = f["vm_config"]["code"]["local"]
            if not pathlib.Path(code["filename"]).is_absolute():  # a shipped config: the freshly built module
                code["filename"] = str(WASM)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "envoy.json"
        self.config_path.write_text(json.dumps(as_native(self.cfg) if BUILD == "native" else self.cfg, indent=1))
        self.log_path = workdir / "envoy.log"
        full_env = dict(os.environ)
        full_env.update(KEYS)
        full_env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(NATIVE_DIR)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [ENVOY_BIN, "-c", str(self.config_path), "--disable-hot-restart", "--concurrency", str(concurrency),
             "-l", "warn", "--component-log-level", "wasm:info,dynamic_modules:info", "--log-path", str(self.log_path),
             *(args or [])],
            cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, 30, "envoy")
        except TimeoutError:
            self.stop()
            raise RuntimeError("envoy failed to start:\n" + self.log()[-3000:])

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError("envoy exited:\n" + self.log()[-3000:])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as r:
            if r.status != 200:
                return False
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def request(self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 30) -> Response:
        return request(self.port, method, path, body, headers, timeout)

    def chat(self, body, headers: dict | None = None, timeout: float = 30) -> Response:
        return request(self.port, "POST", "/v1/chat/completions", body, headers, timeout)

    def stream(self, body, headers: dict | None = None, timeout: float = 30) -> Stream:
        return stream(self.port, "/v1/chat/completions", body, headers, timeout)

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def validate(cfg_path: pathlib.Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.setdefault("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", str(NATIVE_DIR))
    full_env.update(env or {})
    return subprocess.run([ENVOY_BIN, "--mode", "validate", "--disable-hot-restart", "-c", str(cfg_path)],
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60)
