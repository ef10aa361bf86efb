"""The OpenAI-compatible presets (examples/openai-compatible/envoy.yaml) through real Envoy, every
cluster pointed at the mock provider: each host gets its own base path, its key (or none for
self-hosted servers), and `stream_options` only where it takes them."""
import json

import pytest

from harness import Envoy, load_config
from test_core import WEATHER_TOOL, user

# client model, upstream model, host, path, key variable, takes stream_options
PRESETS = [
    ("llama-3.3-70b-together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "api.together.xyz", "/v1", "TOGETHER_API_KEY", False),
    ("llama-3.3-70b-versatile", "llama-3.3-70b-versatile", "api.groq.com", "/openai/v1", "GROQ_API_KEY", True),
    ("mistral-large", "mistral-large-latest", "api.mistral.ai", "/v1", "MISTRAL_API_KEY", False),
    ("deepseek-chat", "deepseek-chat", "api.deepseek.com", "", "DEEPSEEK_API_KEY", True),
    ("llama-3.3-70b-fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", "api.fireworks.ai", "/inference/v1", "FIREWORKS_API_KEY", True),
    ("claude-sonnet-openrouter", "anthropic/claude-sonnet-4.5", "openrouter.ai", "/api/v1", "OPENROUTER_API_KEY", True),
    ("local-llama", "meta-llama/Llama-3.1-8B-Instruct", "localhost:8000", "/v1", None, True),
    ("llama3.2", "llama3.2", "localhost:11434", "/v1", None, True),
    ("tgi", "tgi", "localhost:8080", "/v1", None, True),
]


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    cfg = load_config("examples/openai-compatible/envoy.yaml")
    for cluster in cfg["static_resources"]["clusters"]:
        cluster["type"] = "STATIC"
        cluster.pop("dns_lookup_family", None)
        cluster.pop("transport_socket", None)
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"].update(address="127.0.0.1", port_value=mock.port)
    keys = {name: "test-openai-key" for *_, name, _ in PRESETS if name}
    envoy = Envoy(cfg, tmp_path_factory.mktemp("openai-compatible"), env=keys)
    yield envoy
    envoy.stop()


@pytest.mark.parametrize("model,upstream,host,base,key,stream_options", PRESETS, ids=[p[0] for p in PRESETS])
def test_preset_reaches_its_host_path_and_key(gw, mock, test_id, model, upstream, host, base, key, stream_options):
    s = gw.stream({"model": model, "messages": [user("hi")], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert s.status == 200 and s.data()[-1] == "[DONE]", s.body
    chunks = [c for c in s.data()[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello! You said: hi"
    sent = mock.only_request(test_id)
    assert (sent["path"], sent["headers"]["host"], sent["body"]["model"]) == (f"{base}/chat/completions", host, upstream)
    assert sent["headers"].get("authorization") == ("Bearer test-openai-key" if key else None)
    if stream_options:
        assert sent["body"]["stream_options"] == {"include_usage": True}
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    else:
        assert "stream_options" not in sent["body"]
        assert s.headers["x-tollgate-dropped-params"] == "stream_options"


@pytest.mark.parametrize("model,host,key", [("mistral-embed", "api.mistral.ai", True), ("nomic-embed-text", "localhost:11434", False)])
def test_preset_embeddings(gw, mock, test_id, model, host, key):
    r = gw.request("POST", "/v1/embeddings", {"model": model, "input": "hello"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["usage"]["prompt_tokens"] == 1
    sent = mock.only_request(test_id)
    assert (sent["path"], sent["headers"]["host"]) == ("/v1/embeddings", host)
    assert ("authorization" in sent["headers"]) == key


@pytest.mark.parametrize("model", [p[0] for p in PRESETS])
def test_preset_passes_tools_images_and_json_mode_through(gw, mock, test_id, model):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    response_format = {"type": "json_object"}
    r = gw.chat({"model": model, "response_format": response_format, "tools": [WEATHER_TOOL],
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}, image]}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    sent = mock.only_request(test_id)["body"]
    assert (sent["messages"][0]["content"][1], sent["response_format"], sent["tools"]) == (image, response_format, [WEATHER_TOOL])
