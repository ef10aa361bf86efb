"""Streaming through real Envoy (issue 3): per-chunk translation without buffering, exact usage,
clean errors."""
import json

import openai
import pytest

from test_core import WEATHER_TOOL, user


def content_of(chunks) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if isinstance(c, dict) and c.get("choices"))


def finish_of(chunks):
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if isinstance(c, dict) and c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(reasons) == 1, reasons
    return reasons[0]


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_stream_is_openai_sse_and_matches_non_streaming(demo, model, test_id):
    text = "Stream me h\u00e9llo w\u00f6rld \U0001F30D please"
    s = demo.stream({"model": model, "messages": [user(text)], "stream": True, "stream_options": {"include_usage": True}},
                    {"x-test-id": test_id})
    assert s.status == 200 and s.error is None
    assert s.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in s.headers
    data = s.data()
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1 and len({c["model"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0

    whole = demo.chat({"model": model, "messages": [user(text)]}, {"x-test-id": test_id + "n"}).json()
    assert content_of(chunks) == whole["choices"][0]["message"]["content"] == f"Hello! You said: {text}"
    assert finish_of(chunks) == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"]["prompt_tokens"] == whole["usage"]["prompt_tokens"]
    assert chunks[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_usage_chunk_only_when_the_client_asks(demo, mock, model, test_id):
    s = demo.stream({"model": model, "messages": [user("hi")], "stream": True}, {"x-test-id": test_id})
    assert s.status == 200
    assert not any(isinstance(c, dict) and c.get("usage") for c in s.data())
    assert s.data()[-1] == "[DONE]"
    sent = mock.only_request(test_id)["body"]
    if model == "gpt-4o":
        assert sent["stream_options"] == {"include_usage": True}, "Tollgate asks upstream for usage anyway"


def test_anthropic_ping_and_named_events_never_reach_the_client(demo):
    s = demo.stream({"model": "claude", "messages": [user("hi")], "stream": True})
    body = s.body.decode()
    assert "event:" not in body and "ping" not in body and "message_start" not in body


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_nothing_is_buffered_with_a_slow_upstream(demo, model, test_id):
    """The mock sends one event every 200 ms; each must reach the client as it is produced."""
    s = demo.stream({"model": model, "messages": [user("one two three four five six")], "stream": True},
                    {"x-test-id": test_id, "x-mock-delay-ms": "200"})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    arrivals = []
    seen = b""
    for at, chunk in s.reads:
        seen += chunk
        if b'"content":"' in chunk:
            arrivals.append(at)
    total = s.reads[-1][0]
    assert total >= 1.5, f"the slow mock should take well over a second, took {total:.2f}s"
    assert arrivals, seen
    assert arrivals[0] < total - 1.0, f"first content at {arrivals[0]:.2f}s of {total:.2f}s: buffered"
    assert len(arrivals) >= 5, f"content arrived in {len(arrivals)} reads: chunks were batched"
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert sum(g > 0.1 for g in gaps) >= 4, gaps


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_truncated_stream_ends_with_an_error_event(demo, model, test_id):
    s = demo.stream({"model": model, "messages": [user("one two three four")], "stream": True},
                    {"x-test-id": test_id, "x-mock-stream-fault": "truncate-after-4"})
    assert s.status == 200
    data = s.data()
    assert "[DONE]" not in data
    assert data[-1]["error"]["code"] == "stream_truncated"


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_upstream_error_event_mid_stream(demo, model, test_id):
    s = demo.stream({"model": model, "messages": [user("one two three")], "stream": True},
                    {"x-test-id": test_id, "x-mock-stream-fault": "error-after-3"})
    data = s.data()
    assert "[DONE]" not in data
    assert "error" in data[-1] and data[-1]["error"]["message"]


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_reset_mid_stream_never_looks_like_a_clean_end(demo, model, test_id):
    s = demo.stream({"model": model, "messages": [user("one two three four")], "stream": True},
                    {"x-test-id": test_id, "x-mock-stream-fault": "reset-after-3"})
    assert "[DONE]" not in s.data()
    assert s.error is not None, "the client must see the transfer break"


@pytest.mark.parametrize("model", ["claude", "gpt-4o"])
def test_error_before_the_stream_starts_is_json_with_status(demo, model, test_id):
    s = demo.stream({"model": model, "messages": [user("x")], "stream": True}, {"x-test-id": test_id, "x-mock-status": "429"})
    assert s.status == 429
    assert s.headers["content-type"] == "application/json"
    assert json.loads(s.body)["error"]["message"]


def test_json_answer_to_a_streaming_request_is_502(demo, test_id):
    s = demo.stream({"model": "claude", "messages": [user("x")], "stream": True},
                    {"x-test-id": test_id, "x-mock-wrong-content-type": "1"})
    assert s.status == 502


def test_openai_sdk_stream_reassembles_text_tools_and_usage(demo):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{demo.port}/v1", api_key="anything", max_retries=0)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    whole = client.chat.completions.create(model="claude-sonnet", messages=messages, tools=[WEATHER_TOOL])

    text, calls, usage, finish = "", {}, None, None
    for chunk in client.chat.completions.create(model="claude-sonnet", messages=messages, tools=[WEATHER_TOOL],
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = tc.id or entry["id"]
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""

    message = whole.choices[0].message
    assert text == (message.content or "")
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    assert all(c["id"] for c in calls.values())
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [(t.function.name, json.loads(t.function.arguments)) for t in message.tool_calls]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == \
        (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens)
