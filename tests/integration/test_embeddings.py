"""Embeddings through real Envoy: OpenAI passthrough (floats and base64 as the client asks, usage
accounted) on the demo config, and OpenAI-compatible self-hosted servers without keys (Ollama-like),
chat and streaming included."""
import base64
import json
import struct

import pytest

import patched
from test_core import user

# A self-hosted server started without a key: addressed as localhost, the mock takes no key.
OLLAMA = {"kind": "openai_compatible", "cluster": "mock_openai", "host": "localhost:11434"}


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    envoy = patched.start(
        mock, tmp_path_factory.mktemp("embeddings"),
        providers={"ollama": OLLAMA, "no_stream_options": {**OLLAMA, "base_path": "/strict/v1", "stream_usage": False}},
        models={"embedding-small": {"provider": "openai", "model": "text-embedding-3-small"},
                "nomic-embed-text": {"provider": "ollama"},
                "llama3.2": {"provider": "ollama"},
                "mistral-small": {"provider": "no_stream_options", "model": "mistral-small-latest"}})
    yield envoy
    envoy.stop()


def embed(gw, body, headers=None):
    return gw.request("POST", "/v1/embeddings", body, headers)


def vectors(response):
    return [d["embedding"] for d in response.json()["data"]]


def test_openai_embeddings_pass_through_with_the_model_rewritten(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "text-embedding-3-small"))
    r = embed(gw, {"model": "embedding-small", "input": ["hello world", "the second text"], "dimensions": 16, "user": "u1"},
              {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "openai" and r.headers["x-tollgate-model"] == "text-embedding-3-small"
    body = r.json()
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert [(d["object"], d["index"], len(d["embedding"])) for d in body["data"]] == [("embedding", 0, 16), ("embedding", 1, 16)]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    entry = patched.accounted(gw, "text-embedding-3-small", before)
    assert (entry["input_tokens"], entry["output_tokens"], entry["completed"]) == (5, 0, True)
    assert entry["cost_usd"] is not None, "text-embedding-3-small is priced by the shipped table"
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/embeddings" and sent["headers"]["host"] == "api.openai.com"
    assert sent["headers"]["authorization"] == "Bearer test-openai-key"
    assert sent["body"] == {"model": "text-embedding-3-small", "input": ["hello world", "the second text"], "dimensions": 16, "user": "u1"}


def test_base64_is_what_the_client_asked_for_and_decodes_to_the_floats(gw, mock, test_id):
    floats = vectors(embed(gw, {"model": "embedding-small", "input": ["hello world", "x"]}))
    r = embed(gw, {"model": "embedding-small", "input": ["hello world", "x"], "encoding_format": "base64"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert mock.only_request(test_id)["body"]["encoding_format"] == "base64"
    decoded = []
    for encoded in vectors(r):
        raw = base64.b64decode(encoded)
        decoded.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
    assert decoded == floats
    assert r.json()["usage"]["prompt_tokens"] == 3


def test_token_ids_and_errors(gw, mock, test_id):
    r = embed(gw, {"model": "embedding-small", "input": [[1, 2, 3], [4, 5]]}, {"x-test-id": test_id})
    assert r.status == 200 and r.json()["usage"]["prompt_tokens"] == 5
    r = embed(gw, {"model": "embedding-small", "input": "x"}, {"x-test-id": test_id, "x-mock-status": "429"})
    assert r.status == 429 and r.error["type"] == "requests"
    for body, param in [({"model": "embedding-small"}, "input"), ({"model": "embedding-small", "input": ""}, "input"),
                        ({"model": "embedding-small", "input": "x", "encoding_format": "hex"}, "encoding_format")]:
        r = embed(gw, body, {"x-test-id": test_id + "bad"})
        assert r.status == 400 and r.error["param"] == param, r.body
    assert mock.requests(test_id + "bad") == []
    r = embed(gw, {"model": "claude", "input": "x"})
    assert r.status == 400 and r.error["code"] == "unsupported_operation"


def test_keyless_self_hosted_server_gets_no_credentials(gw, mock, test_id):
    r = embed(gw, {"model": "nomic-embed-text", "input": "hello world"}, {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.json()["model"] == "nomic-embed-text" and len(vectors(r)[0]) == 8
    r = gw.chat({"model": "llama3.2", "messages": [user("hi")]}, {"x-test-id": test_id})
    assert r.status == 200 and r.json()["choices"][0]["message"]["content"] == "Hello! You said: hi"
    for sent, path in zip(mock.requests(test_id), ["/v1/embeddings", "/v1/chat/completions"]):
        assert sent["path"] == path and sent["headers"]["host"] == "localhost:11434"
        assert "authorization" not in sent["headers"] and "client-secret" not in json.dumps(sent)


def test_keyless_server_streams_with_usage_accounted(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "llama3.2"))
    s = gw.stream({"model": "llama3.2", "messages": [user("one two")], "stream": True}, {"x-test-id": test_id})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    assert not any(isinstance(c, dict) and c.get("usage") for c in s.data())
    assert mock.only_request(test_id)["body"]["stream_options"] == {"include_usage": True}
    entry = patched.accounted(gw, "llama3.2", before)
    assert (entry["input_tokens"], entry["output_tokens"], entry["stream"]) == (2, 5, True)


def test_hosts_without_stream_options_never_get_them(gw, mock, test_id):
    s = gw.stream({"model": "mistral-small", "messages": [user("hi")], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    assert s.headers["x-tollgate-dropped-params"] == "stream_options"
    sent = mock.only_request(test_id)
    assert sent["path"] == "/strict/v1/chat/completions"
    assert "stream_options" not in sent["body"] and sent["body"]["model"] == "mistral-small-latest"
