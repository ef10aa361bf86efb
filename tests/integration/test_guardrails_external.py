"""The external guardrail hook through real Envoy (issue 16): a Presidio-analyzer-compatible
service called once per chat request over an Envoy cluster, its findings merged with the
built-in ones, fail-closed and fail-open. Presidio itself is not installed here (its spaCy
models are not published on PyPI), so `Analyzer` below speaks its contract: `POST /analyze`
with `{"text","language"}` answered by `[{"entity_type","start","end","score"}]`, offsets in
characters (https://microsoft.github.io/presidio/api-docs/api-docs.html)."""
import copy
import http.server
import json
import threading
import time

import pytest

from harness import Envoy, free_port, load_config, plugin_config, point_static_clusters, set_plugin_config

NAME = "Alice Smith"
EMAIL = "alice@example.com"


class Analyzer(http.server.ThreadingHTTPServer):
    """Finds PERSON names from a fixed list, and LOCATION "Paris" with a low score. Text with
    `FAIL-500` gets a 500, text with `SLOW` an answer after the gateway's timeout."""

    def __init__(self):
        self.received = []
        super().__init__(("127.0.0.1", 0), AnalyzerHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class AnalyzerHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.received.append({"path": self.path, "body": request})
        text = request["text"]
        if "FAIL-500" in text:
            return self.answer(500, {"error": "analyzer crashed"})
        if "SLOW" in text:
            time.sleep(1.5)
        found = []
        for entity, word, score in (("PERSON", NAME, 0.85), ("LOCATION", "Paris", 0.3)):
            at = text.find(word)  # Python string indices: characters, as Presidio counts
            if at >= 0:
                found.append({"entity_type": entity, "start": at, "end": at + len(word), "score": score,
                              "analysis_explanation": None, "recognition_metadata": {"recognizer_name": "mock"}})
        self.answer(200, found)

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def analyzer():
    server = Analyzer()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def gws(mock, analyzer, tmp_path_factory):
    """Two gateways on the demo config with the hook: failing closed and failing open."""
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    cluster = copy.deepcopy(cfg["static_resources"]["clusters"][0])
    cluster["name"] = cluster["load_assignment"]["cluster_name"] = "presidio"
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = analyzer.server_address[1]
    cfg["static_resources"]["clusters"].append(cluster)
    envoys = {}
    for mode in ("closed", "open"):
        plugin = plugin_config(cfg)
        plugin["guardrails"] = {
            "external": {"cluster": "presidio", "timeout_ms": 500, "on_failure": mode, "entities": ["PERSON", "LOCATION"], "min_score": 0.5},
            "policies": [{"detectors": ["person", "email"], "action": "redact"}, {"detectors": ["location"], "action": "log"}],
        }
        mode_cfg = copy.deepcopy(cfg)
        set_plugin_config(mode_cfg, plugin)
        envoys[mode] = Envoy(mode_cfg, tmp_path_factory.mktemp(f"external-{mode}"))
    yield envoys
    for envoy in envoys.values():
        envoy.stop()


def sent_text(mock, test_id) -> str:
    return json.dumps(mock.only_request(test_id)["body"]["messages"], ensure_ascii=False)


def test_findings_of_the_service_are_merged_with_the_built_in_ones(gws, mock, analyzer, test_id):
    prompt = f"Grüße! Schreib {NAME} ({EMAIL}) in Paris"
    r = gws["closed"].chat({"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": prompt}]},
                           {"x-test-id": test_id})
    assert r.status == 200, r.body
    call = next(c for c in analyzer.received if prompt in c["body"]["text"])
    assert call["path"] == "/analyze" and call["body"] == {"text": f"Be brief.\n{prompt}", "language": "en"}
    text = sent_text(mock, test_id)
    assert "Schreib <PERSON_1> (<EMAIL_1>) in Paris" in text, "character offsets after non-ASCII text; low scores ignored"
    assert NAME not in text and EMAIL not in text


@pytest.mark.parametrize("trouble", ["FAIL-500", "SLOW"])
def test_a_failing_service_refuses_the_request_when_failing_closed(gws, mock, test_id, trouble):
    r = gws["closed"].chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{trouble} for {NAME}"}]},
                           {"x-test-id": test_id})
    assert r.status == 503, r.body
    assert r.json()["error"]["code"] == "guardrail_unavailable"
    assert mock.requests(test_id) == []


@pytest.mark.parametrize("trouble", ["FAIL-500", "SLOW"])
def test_a_failing_service_lets_the_request_go_on_with_the_built_in_findings_when_failing_open(gws, mock, test_id, trouble):
    r = gws["open"].chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{trouble} for {NAME} at {EMAIL}"}]},
                         {"x-test-id": test_id})
    assert r.status == 200, r.body
    text = sent_text(mock, test_id)
    assert "<EMAIL_1>" in text and NAME in text, "the built-in detectors still ran; the service's findings are missing"


def test_messages_requests_are_analysed_too(gws, mock, test_id):
    body = {"model": "claude-sonnet", "max_tokens": 20, "messages": [{"role": "user", "content": f"Hi {NAME}"}]}
    r = gws["closed"].request("POST", "/v1/messages", body, {"x-test-id": test_id, "anthropic-version": "2023-06-01"})
    assert r.status == 200, r.body
    assert "Hi <PERSON_1>" in sent_text(mock, test_id)
