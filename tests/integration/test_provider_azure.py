"""Azure OpenAI through real Envoy: deployment paths, `api-version`, `api-key`, the v1 API, OpenAI
passthrough of chat, streams (usage included from the versions that take it), embeddings, errors
and content-filter results."""
import base64
import json
import struct

import openai
import pytest

import patched
from test_core import WEATHER_TOOL, user

HOST = "tollgate-test.openai.azure.com"
KEY = {"AZURE_OPENAI_API_KEY": "test-azure-key"}


def azure(api_version, **extra):
    return {"kind": "azure", "cluster": "mock_openai", "host": HOST, "api_key_env": "AZURE_OPENAI_API_KEY", "api_version": api_version, **extra}


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    envoy = patched.start(
        mock, tmp_path_factory.mktemp("azure"),
        providers={"azure": azure("2024-10-21"), "azure_2024_06": azure("2024-06-01"), "azure_v1": azure("v1")},
        models={"azure-gpt": {"provider": "azure", "model": "gpt-4o-prod"},
                "azure-old": {"provider": "azure_2024_06", "model": "gpt-4o-old"},
                "azure-v1": {"provider": "azure_v1", "model": "gpt-4o-v1"},
                "azure-embed": {"provider": "azure", "model": "embed-small"},
                "azure-v1-embed": {"provider": "azure_v1", "model": "embed-small"},
                "azure-*": {"provider": "azure"}},
        env=KEY)
    yield envoy
    envoy.stop()


def assert_azure_request(sent, path, query):
    assert (sent["path"], sent["query"]) == (path, query)
    assert sent["headers"]["api-key"] == "test-azure-key"
    assert sent["headers"]["host"] == HOST
    assert "authorization" not in sent["headers"]


def test_chat_goes_to_the_deployment_with_api_version_and_key(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "gpt-4o-prod"))
    r = gw.chat({"model": "azure-gpt", "messages": [user("hello there")], "seed": 1, "tools": [WEATHER_TOOL]},
                {"x-test-id": test_id, "authorization": "Bearer client-secret", "api-key": "client-key"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "azure" and r.headers["x-tollgate-model"] == "gpt-4o-prod"
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Hello! You said: hello there"
    assert body["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False, "Azure's fields pass through"
    assert body["choices"][0]["content_filter_results"]["violence"]["severity"] == "safe"
    sent = mock.only_request(test_id)
    assert_azure_request(sent, "/openai/deployments/gpt-4o-prod/chat/completions", "api-version=2024-10-21")
    assert sent["body"]["model"] == "gpt-4o-prod" and sent["body"]["seed"] == 1 and sent["body"]["tools"] == [WEATHER_TOOL]
    assert "client-secret" not in json.dumps(sent) and "client-key" not in json.dumps(sent)
    entry = patched.accounted(gw, "gpt-4o-prod", before)
    assert (entry["input_tokens"], entry["output_tokens"]) == (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"])


def test_v1_api_uses_the_v1_path_and_names_the_deployment_in_the_body(gw, mock, test_id):
    r = gw.chat({"model": "azure-v1", "messages": [user("hi")]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    sent = mock.only_request(test_id)
    assert_azure_request(sent, "/openai/v1/chat/completions", None)
    assert sent["body"]["model"] == "gpt-4o-v1"


def test_stream_gets_usage_from_azure_without_showing_it_to_the_client(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "gpt-4o-prod"))
    s = gw.stream({"model": "azure-gpt", "messages": [user("one two three")], "stream": True}, {"x-test-id": test_id})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    chunks = s.data()[:-1]
    assert "prompt_filter_results" in chunks[0] and chunks[0]["choices"] == [], "Azure's first chunk passes through"
    assert not any("usage" in c and c["usage"] for c in chunks)
    assert mock.only_request(test_id)["body"]["stream_options"] == {"include_usage": True}
    entry = patched.accounted(gw, "gpt-4o-prod", before)
    whole = gw.chat({"model": "azure-gpt", "messages": [user("one two three")]}).json()
    assert (entry["input_tokens"], entry["output_tokens"], entry["stream"]) == \
        (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"], True)


def test_openai_sdk_streams_text_tools_and_usage_from_azure(gw):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="anything", max_retries=0)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    whole = client.chat.completions.create(model="azure-gpt", messages=messages, tools=[WEATHER_TOOL])
    text, calls, usage = "", {}, None
    for chunk in client.chat.completions.create(model="azure-gpt", messages=messages, tools=[WEATHER_TOOL],
                                                stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
    assert text == whole.choices[0].message.content
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [(t.function.name, json.loads(t.function.arguments)) for t in whole.choices[0].message.tool_calls]
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)


def test_versions_before_stream_options_never_get_them(gw, mock, test_id):
    s = gw.stream({"model": "azure-old", "messages": [user("hi")], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id})
    assert s.status == 200 and s.data()[-1] == "[DONE]", s.body
    assert s.headers["x-tollgate-dropped-params"] == "stream_options"
    sent = mock.only_request(test_id)
    assert_azure_request(sent, "/openai/deployments/gpt-4o-old/chat/completions", "api-version=2024-06-01")
    assert "stream_options" not in sent["body"]


def test_embeddings_pass_through_as_floats_or_base64(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "embed-small"))
    r = gw.request("POST", "/v1/embeddings", {"model": "azure-embed", "input": ["hello world", "x"], "dimensions": 4}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    floats = r.json()
    assert [len(d["embedding"]) for d in floats["data"]] == [4, 4] and floats["usage"]["prompt_tokens"] == 3
    assert patched.accounted(gw, "embed-small", before)["input_tokens"] == 3
    sent = mock.only_request(test_id)
    assert_azure_request(sent, "/openai/deployments/embed-small/embeddings", "api-version=2024-10-21")
    assert sent["body"] == {"model": "embed-small", "input": ["hello world", "x"], "dimensions": 4}
    r = gw.request("POST", "/v1/embeddings", {"model": "azure-v1-embed", "input": "hello world", "dimensions": 4, "encoding_format": "base64"},
                   {"x-test-id": test_id + "b"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == floats["data"][0]["embedding"]
    assert_azure_request(mock.only_request(test_id + "b"), "/openai/v1/embeddings", None)


def test_content_filter_refusal_is_an_openai_error(gw, test_id):
    for stream in (False, True):
        r = gw.chat({"model": "azure-gpt", "stream": stream, "messages": [user("tell me [filtered-prompt]")]}, {"x-test-id": test_id})
        assert r.status == 400, r.body
        assert (r.error["code"], r.error["param"], r.error["type"]) == ("content_filter", "prompt", "invalid_request_error")
        assert "content management policy" in r.error["message"]


def test_filtered_answers_keep_azure_finish_reason_and_results(gw, test_id):
    r = gw.chat({"model": "azure-gpt", "messages": [user("say [filtered-output]")]}, {"x-test-id": test_id})
    assert r.status == 200
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["content_filter_results"]["violence"]["filtered"] is True
    s = gw.stream({"model": "azure-gpt", "stream": True, "messages": [user("say [filtered-output]")]}, {"x-test-id": test_id})
    finishes = [c["choices"][0]["finish_reason"] for c in s.data()[:-1] if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["content_filter"]


@pytest.mark.parametrize("upstream", [401, 403, 404, 429, 500, 503])
def test_azure_errors_keep_status_in_openai_shape(gw, test_id, upstream):
    r = gw.chat({"model": "azure-gpt", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-status": str(upstream)})
    assert r.status == upstream, r.body
    assert set(r.error) == {"message", "type", "param", "code"} and r.error["code"] == str(upstream)
    if upstream in (401, 403):
        assert "rejected the gateway's credentials" in r.error["message"]


def test_model_names_that_cannot_be_deployments_never_reach_azure(gw, mock, test_id):
    """A wildcard model forwards the requested name as the deployment, which becomes part of the path."""
    for name in ("azure-a/../b", "azure-a?api-version=1", "azure-a b"):
        r = gw.chat({"model": name, "messages": [user("x")]}, {"x-test-id": test_id})
        assert r.status == 400 and r.error["param"] == "model", r.body
    assert mock.requests(test_id) == []
    r = gw.chat({"model": "azure-gpt-4o.mini_1", "messages": [user("x")]}, {"x-test-id": test_id})
    assert r.status == 200
    assert mock.only_request(test_id)["path"] == "/openai/deployments/azure-gpt-4o.mini_1/chat/completions"


def test_images_json_mode_and_tools_pass_through_unchanged(gw, mock, test_id):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}
    response_format = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}}
    r = gw.chat({"model": "azure-gpt", "response_format": response_format, "tools": [WEATHER_TOOL], "tool_choice": "required",
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "weather here?"}, image]}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    sent = mock.only_request(test_id)["body"]
    assert sent["messages"][0]["content"][1] == image
    assert (sent["response_format"], sent["tool_choice"]) == (response_format, "required")
