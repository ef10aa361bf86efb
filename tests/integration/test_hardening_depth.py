"""Deeply nested JSON through real Envoy: a request nesting 100,000 levels in any field is a 400 in
OpenAI's shape, and an answer or stream event that deep is a clean error; the VM never overflows
its stack (once it did, killing every request in flight on it), so the next request is served."""
import json
import re

import pytest

import patched

DEPTH = 100_000
ARRAYS = "[" * DEPTH + "]" * DEPTH
OBJECTS = '{"a":' * DEPTH + "1" + "}" * DEPTH
USER = [{"role": "user", "content": "hi"}]
GEMINI_KEY = {"GEMINI_API_KEY": "test-gemini-key"}
# What Envoy logs when the module traps or panics, and when it reloads a failed VM.
VM_FAILURE = re.compile(r"RangeError|Maximum call stack|panicked|proxy_on_\w+ failed|wasm.*(trap|crash|reload)", re.I)


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    envoy = patched.start(
        mock, tmp_path_factory.mktemp("depth"),
        providers={"gemini": {"kind": "gemini", "cluster": "mock_openai", "api_key_env": "GEMINI_API_KEY"}},
        models={"gemini-flash": {"provider": "gemini", "model": "gemini-2.5-flash"},
                "embedding-small": {"provider": "openai", "model": "text-embedding-3-small"}},
        env=GEMINI_KEY)
    yield envoy
    envoy.stop()


def chat_body(model: str, field: str, deep: str) -> str:
    """A valid chat request with `deep` (raw JSON text) in the place `field` names."""
    placeholder = '"__DEEP__"'
    body = {"model": model, "messages": USER}
    if field == "model":
        body["model"] = "__DEEP__"
    elif field == "messages":
        body["messages"] = "__DEEP__"
    elif field == "messages[0]":
        body["messages"] = ["__DEEP__"]
    elif field == "messages[0].content":
        body["messages"] = [{"role": "user", "content": "__DEEP__"}]
    elif field == "messages[0].tool_calls":
        body["messages"] = USER + [{"role": "assistant", "tool_calls": "__DEEP__"}]
        field = "messages[1].tool_calls"
    elif field == "tools[0].function.parameters":
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": "__DEEP__"}}]
    elif field == "response_format.json_schema.schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "n", "schema": "__DEEP__"}}
    else:  # a top-level member: metadata, stop, tool_choice, stream_options, an unknown one
        body[field] = "__DEEP__"
    return json.dumps(body).replace(placeholder, deep), field


FIELDS = ["model", "messages", "messages[0]", "messages[0].content", "messages[0].tool_calls",
          "tools[0].function.parameters", "response_format.json_schema.schema", "metadata", "stop",
          "tool_choice", "stream_options", "user", "unknown_extra_member"]


def assert_nesting_error(r, field: str):
    assert r.status == 400, (field, r.status, r.body[:300])
    e = r.error
    assert (e["type"], e["code"]) == ("invalid_request_error", "nesting_too_deep"), e
    # `messages[0]` is an element: the field holding it is `messages`.
    named = field.removesuffix("[0]")
    assert e["param"] is not None and e["param"].startswith(named), (field, e)
    assert "64 levels" in e["message"], e


def assert_vm_alive(gw):
    r = gw.chat({"model": "gpt-4o-mini", "messages": USER})
    assert r.status == 200, r.body[:300]
    failures = [line for line in gw.log().splitlines() if VM_FAILURE.search(line)]
    assert not failures, failures[:3]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet", "gemini-flash"])
def test_a_request_nested_100000_deep_in_any_field_is_a_400_and_the_vm_survives(gw, model):
    for deep in (ARRAYS, OBJECTS):
        for field in FIELDS:
            body, field = chat_body(model, field, deep)
            assert_nesting_error(gw.chat(body), field)
    # The body itself, and a streaming request.
    r = gw.chat(ARRAYS)
    assert (r.status, r.error["code"], r.error["param"]) == (400, "nesting_too_deep", None)
    body, _ = chat_body(model, "metadata", OBJECTS)
    r = gw.chat(body.replace('"messages"', '"stream": true, "messages"', 1))
    assert_nesting_error(r, "metadata")
    assert_vm_alive(gw)


def test_embeddings_input_nested_100000_deep_is_a_400(gw):
    for deep in (ARRAYS, OBJECTS):
        for body in ('{"model":"embedding-small","input":%s}' % deep, '{"model":"embedding-small","input":["a",%s]}' % deep):
            r = gw.request("POST", "/v1/embeddings", body)
            assert_nesting_error(r, "input")
        r = gw.request("POST", "/v1/embeddings", '{"model":"embedding-small","input":"a","extra":%s}' % deep)
        assert_nesting_error(r, "extra")
    assert_vm_alive(gw)


def assert_bad_upstream(error: dict):
    assert (error["type"], error["code"]) == ("api_error", "bad_upstream_response"), error
    assert "64 levels" in error["message"], error


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet", "gemini-flash"])
def test_an_answer_nested_100000_deep_is_a_502_in_openai_shape(gw, mock, model):
    for deep in (ARRAYS, OBJECTS):
        mock.fault(status=200, body='{"id":"x","choices":%s,"content":%s,"candidates":%s}' % (deep, deep, deep))
        r = gw.chat({"model": model, "messages": USER})
        assert r.status == 502, r.body[:300]
        assert_bad_upstream(r.error)
        # An error answer that deep keeps its status and gets the gateway's message.
        mock.fault(status=429, body='{"error":%s}' % deep)
        r = gw.chat({"model": model, "messages": USER})
        assert r.status == 429 and r.error["type"] == "rate_limit_error", r.body[:300]
    assert_vm_alive(gw)


# One normal event, then one nested 100,000 deep, in each provider's framing.
STREAMS = {
    "gpt-4o-mini": ['data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
                    "data: %s\n\n"],
    "claude-sonnet": ['event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}\n\n',
                      "event: content_block_delta\ndata: %s\n\n"],
    "gemini-flash": ['data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}\n\n', "data: %s\n\n"],
}


@pytest.mark.parametrize("model", list(STREAMS))
def test_a_stream_event_nested_100000_deep_ends_the_stream_with_an_error(gw, mock, model):
    first, deep_event = STREAMS[model]
    # Within the stream-event limit (limits.max_stream_event_bytes): the depth is what fails.
    deep = "[" * 50_000 + "]" * 50_000
    mock.fault(events=[first, deep_event % deep, 'data: {"never":"forwarded"}\n\n'])
    s = gw.stream({"model": model, "messages": USER, "stream": True})
    assert s.status == 200 and s.error is None, (s.status, s.error)
    data = s.data()
    assert_bad_upstream(data[-1]["error"])
    assert "never" not in s.body.decode() and "[DONE]" not in data
    assert_vm_alive(gw)
