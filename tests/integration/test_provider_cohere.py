"""Cohere v2 through real Envoy: chat, streaming (raw SSE and the OpenAI SDK), tools, images, JSON
mode, errors and embeddings, translated both ways; billed units accounted."""
import base64
import json
import struct

import openai
import pytest

import patched
from test_core import WEATHER_TOOL, user

UPSTREAM = "command-a-03-2025"


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    envoy = patched.start(
        mock, tmp_path_factory.mktemp("cohere"),
        providers={"cohere": {"kind": "cohere", "cluster": "mock_openai", "api_key_env": "COHERE_API_KEY"}},
        models={"command-a": {"provider": "cohere", "model": UPSTREAM},
                "cohere-embed": {"provider": "cohere", "model": "embed-v4.0"},
                "text-embedding-3-small": {"provider": "openai"}},
        env={"COHERE_API_KEY": "test-cohere-key"})
    yield envoy
    envoy.stop()


def sdk(gw):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="anything", max_retries=0)


# ---- chat ------------------------------------------------------------------------------------------

def test_chat_is_translated_both_ways_and_billed_units_accounted(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, UPSTREAM))
    r = gw.chat({"model": "command-a", "messages": [{"role": "system", "content": "Be brief."}, user("hello there")],
                 "max_tokens": 100, "temperature": 0.2, "top_p": 1, "stop": ["zzz"], "seed": 3},
                {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "cohere" and r.headers["x-tollgate-model"] == UPSTREAM
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == UPSTREAM
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! You said: hello there", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    # The mock bills the 4 prompt words and counts 66 preamble tokens more under `tokens`: the
    # client sees and Tollgate accounts what Cohere bills.
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"], body["usage"]["total_tokens"]) == (4, 5, 9)
    entry = patched.accounted(gw, UPSTREAM, before)
    assert (entry["input_tokens"], entry["output_tokens"], entry["completed"]) == (4, 5, True)
    assert entry["cost_usd"] is not None, "command-a is priced by the shipped table"

    sent = mock.only_request(test_id)
    assert sent["path"] == "/v2/chat"
    assert sent["headers"]["authorization"] == "Bearer test-cohere-key"
    assert sent["headers"]["host"] == "api.cohere.com"
    assert "client-secret" not in json.dumps(sent)
    assert sent["body"] == {"model": UPSTREAM, "max_tokens": 100, "temperature": 0.2, "p": 0.99, "stop_sequences": ["zzz"], "seed": 3,
                            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]}


def test_images_and_json_mode_reach_cohere_in_its_shapes(gw, mock, test_id):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    r = gw.chat({"model": "command-a", "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
                 "messages": [{"role": "user", "content": [
                     {"type": "text", "text": "Describe"},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]}]},
                {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Hello! You said: Describe [image]"
    sent = mock.only_request(test_id)["body"]
    assert sent["response_format"] == {"type": "json_object", "json_schema": schema}
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}


def test_tool_call_round_trip(gw, mock, test_id):
    messages = [user("What is the weather in Paris?")]
    r = gw.chat({"model": "command-a", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check.", "Cohere's tool_plan is the text before the calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert mock.only_request(test_id)["body"]["tools"] == [WEATHER_TOOL]

    messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]
    r = gw.chat({"model": "command-a", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id + "2"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Tool results: 18C and sunny"
    turns = mock.only_request(test_id + "2")["body"]["messages"]
    assert turns[1] == {"role": "assistant", "tool_plan": "Let me check.", "tool_calls": [call]}
    assert turns[2] == {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}


def test_named_tool_choice_sends_only_that_tool_as_required(gw, mock, test_id):
    now = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    r = gw.chat({"model": "command-a", "messages": [user("hi")], "tools": [WEATHER_TOOL, now],
                 "tool_choice": {"type": "function", "function": {"name": "now"}}}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "now"
    sent = mock.only_request(test_id)["body"]
    assert sent["tool_choice"] == "REQUIRED" and [t["function"]["name"] for t in sent["tools"]] == ["now"]


# ---- streaming -------------------------------------------------------------------------------------

def test_stream_is_openai_sse_and_matches_non_streaming(gw, mock, test_id):
    text = "Stream me h\u00e9llo w\u00f6rld \U0001F30D please"
    before = len(patched.accounted_entries(gw, UPSTREAM))
    s = gw.stream({"model": "command-a", "messages": [user(text)], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id})
    assert s.status == 200 and s.error is None
    assert s.headers["content-type"].startswith("text/event-stream")
    assert b"event:" not in s.body and s.body.count(b"[DONE]") == 1
    data = s.data()
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {UPSTREAM}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "stream_options" not in mock.only_request(test_id)["body"] and mock.only_request(test_id)["body"]["stream"] is True
    entry = patched.accounted(gw, UPSTREAM, before)

    whole = gw.chat({"model": "command-a", "messages": [user(text)]}).json()
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == whole["choices"][0]["message"]["content"] == f"Hello! You said: {text}"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert (entry["input_tokens"], entry["output_tokens"], entry["stream"], entry["completed"]) == \
        (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"], True, True)


def test_usage_chunk_only_when_the_client_asks(gw):
    s = gw.stream({"model": "command-a", "messages": [user("hi")], "stream": True})
    assert s.data()[-1] == "[DONE]"
    assert not any(isinstance(c, dict) and "usage" in c for c in s.data())


def test_openai_sdk_reassembles_streamed_text_and_tool_calls(gw):
    client = sdk(gw)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    whole = client.chat.completions.create(model="command-a", messages=messages, tools=[WEATHER_TOOL])
    text, calls, usage, finish = "", {}, None, None
    for chunk in client.chat.completions.create(model="command-a", messages=messages, tools=[WEATHER_TOOL],
                                                stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
    message = whole.choices[0].message
    assert text == message.content == "Let me check."
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    assert all(c["id"] for c in calls.values())
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [(t.function.name, json.loads(t.function.arguments)) for t in message.tool_calls]
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)


def test_cut_stream_ends_with_the_truncation_error(gw, test_id):
    s = gw.stream({"model": "command-a", "messages": [user("one two three four")], "stream": True},
                  {"x-test-id": test_id, "x-mock-stream-fault": "truncate-after-4"})
    data = s.data()
    assert "[DONE]" not in data and data[-1]["error"]["code"] == "stream_truncated"


def test_generation_error_mid_stream_becomes_an_error_event(gw, test_id):
    s = gw.stream({"model": "command-a", "messages": [user("one two three")], "stream": True},
                  {"x-test-id": test_id, "x-mock-stream-fault": "error-after-3"})
    data = s.data()
    assert "[DONE]" not in data
    assert data[-1]["error"]["code"] == "provider_error" and "internal server error" in data[-1]["error"]["message"]


# ---- errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("upstream,expected,kind", [
    (400, 400, "invalid_request_error"), (401, 401, "authentication_error"), (404, 404, "invalid_request_error"),
    (422, 422, "invalid_request_error"), (429, 429, "rate_limit_error"), (498, 401, "authentication_error"),
    (500, 500, "api_error"), (503, 503, "api_error")])
def test_cohere_errors_become_openai_errors(gw, test_id, upstream, expected, kind):
    for stream in (False, True):
        r = gw.chat({"model": "command-a", "messages": [user("x")], "stream": stream}, {"x-test-id": test_id, "x-mock-status": str(upstream)})
        assert r.status == expected, r.body
        assert r.headers["content-type"] == "application/json"
        assert set(r.error) == {"message", "type", "param", "code"} and r.error["type"] == kind and r.error["message"]
        if expected == 401:
            assert "rejected the gateway's credentials" in r.error["message"]


def test_cohere_validation_message_reaches_the_client(gw, test_id):
    r = gw.chat({"model": "command-a", "messages": [user("")]}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["message"].startswith("invalid request: messages[0].content")


def test_parameters_cohere_cannot_honour_are_refused_before_the_provider(gw, mock, test_id):
    for body, param in [({"logit_bias": {"1": 2}}, "logit_bias"), ({"n": 2}, "n"), ({"temperature": 1.5}, "temperature"),
                        ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]}, "messages[0].content[0]")]:
        r = gw.chat({"model": "command-a", "messages": [user("x")], **body}, {"x-test-id": test_id})
        assert r.status == 400 and r.error["param"] == param, r.body
    assert mock.requests(test_id) == []


# ---- embeddings ------------------------------------------------------------------------------------

def embed(gw, body, headers=None):
    return gw.request("POST", "/v1/embeddings", body, headers)


def test_embeddings_are_cohere_embed_and_openai_lists(gw, mock, test_id):
    before = len(patched.accounted_entries(gw, "embed-v4.0"))
    r = embed(gw, {"model": "cohere-embed", "input": ["hello world", "second text here"], "dimensions": 256}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert body["object"] == "list" and body["model"] == "embed-v4.0"
    assert [(d["object"], d["index"], len(d["embedding"])) for d in body["data"]] == [("embedding", 0, 256), ("embedding", 1, 256)]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert patched.accounted(gw, "embed-v4.0", before)["input_tokens"] == 5
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v2/embed" and sent["headers"]["authorization"] == "Bearer test-cohere-key"
    assert sent["body"] == {"model": "embed-v4.0", "texts": ["hello world", "second text here"], "input_type": "search_document",
                            "embedding_types": ["float"], "output_dimension": 256}

    # The mock embeds a text the same way whichever API asks: Cohere's floats equal OpenAI's.
    reference = embed(gw, {"model": "text-embedding-3-small", "input": "hello world", "dimensions": 256}).json()
    assert body["data"][0]["embedding"] == reference["data"][0]["embedding"]

    encoded = embed(gw, {"model": "cohere-embed", "input": "hello world", "dimensions": 256, "encoding_format": "base64"}).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == body["data"][0]["embedding"]


def test_embeddings_cohere_cannot_take_are_400(gw, mock, test_id):
    for body in ({"model": "cohere-embed", "input": [1, 2, 3]}, {"model": "cohere-embed", "input": ["x"] * 97}):
        r = embed(gw, body, {"x-test-id": test_id})
        assert r.status == 400 and r.error["param"] == "input", r.body
    assert mock.requests(test_id) == []
    r = embed(gw, {"model": "cohere-embed", "input": "x"}, {"x-test-id": test_id, "x-mock-status": "429"})
    assert r.status == 429 and r.error["type"] == "rate_limit_error"
