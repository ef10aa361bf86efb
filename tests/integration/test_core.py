"""Gateway core through real Envoy: endpoints, routing, OpenAI passthrough, Anthropic translation,
errors and bad input (issue 2)."""
import json

import openai
import pytest

from harness import Envoy, early_response_upload, load_config, plugin_config, point_static_clusters, set_plugin_config

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def user(text):
    return {"role": "user", "content": text}


# ---- endpoints -----------------------------------------------------------------------------------

def test_models_are_listed_from_config(demo):
    r = demo.request("GET", "/v1/models")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    listed = {m["id"]: m for m in r.json()["data"]}
    assert r.json()["object"] == "list"
    assert set(listed) == {"gpt-4o-mini", "fast", "gpt-4o", "claude-sonnet", "claude", "claude-opus"}
    assert listed["claude"]["owned_by"] == "anthropic" and listed["claude"]["object"] == "model"
    one = demo.request("GET", "/v1/models/fast")
    assert one.status == 200 and one.json()["id"] == "fast" and one.json()["owned_by"] == "openai"
    missing = demo.request("GET", "/v1/models/nope")
    assert missing.status == 404 and missing.error["code"] == "model_not_found"


def test_unknown_v1_path_and_wrong_method_are_openai_errors(demo):
    r = demo.request("POST", "/v1/completions", {"model": "fast", "prompt": "x"})
    assert r.status == 404
    assert set(r.error) == {"message", "type", "param", "code"}
    r = demo.request("GET", "/v1/chat/completions")
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert r.error["type"] == "invalid_request_error"


def test_paths_outside_v1_are_left_to_envoy(demo):
    r = demo.request("GET", "/healthz")
    assert r.status == 404 and r.body == b"not found\n"


# ---- OpenAI passthrough --------------------------------------------------------------------------

def test_openai_passthrough_rewrites_model_and_credentials(demo, mock, test_id):
    r = demo.chat({"model": "fast", "messages": [user("hello there")], "seed": 7},
                  {"x-test-id": test_id, "authorization": "Bearer client-secret", "x-api-key": "client-key",
                   "accept-encoding": "gzip"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "openai"
    assert r.headers["x-tollgate-model"] == "gpt-4o-mini"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello! You said: hello there"
    assert body["usage"]["total_tokens"] > 0
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["seed"] == 7, "unknown parameters pass through to OpenAI-style providers"
    assert sent["headers"]["authorization"] == "Bearer test-openai-key"
    assert sent["headers"]["host"] == "api.openai.com"
    for leaked in ("x-api-key", "accept-encoding", "x-tollgate-cluster"):
        assert leaked not in sent["headers"]
    assert "client-secret" not in json.dumps(sent)


def test_openai_passthrough_keeps_tools_images_and_json_mode_streamed_or_not(demo, mock, test_id):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    response_format = {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}}
    body = {"model": "gpt-4o", "response_format": response_format, "tools": [WEATHER_TOOL], "tool_choice": "auto",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}, image]}]}
    r = demo.chat(body, {"x-test-id": test_id})
    assert r.status == 200, r.body
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    s = demo.stream({**body, "stream": True}, {"x-test-id": test_id})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in s.data()[:-1] if c["choices"]]
    arguments = "".join(d["tool_calls"][0]["function"].get("arguments", "") for d in deltas if d.get("tool_calls"))
    assert json.loads(arguments) == {"city": "Paris"}
    for sent in mock.requests(test_id):
        sent = sent["body"]
        assert (sent["messages"], sent["response_format"], sent["tools"], sent["tool_choice"]) == \
            (body["messages"], response_format, [WEATHER_TOOL], "auto"), "forwarded field for field"


def test_openai_errors_pass_through_in_openai_shape(demo, mock, test_id):
    r = demo.chat({"model": "gpt-4o", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-status": "429"})
    assert r.status == 429
    assert r.error["message"] and "type" in r.error and "code" in r.error


# ---- Anthropic translation -----------------------------------------------------------------------

def test_anthropic_translation_of_system_and_multi_turn(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [
        {"role": "system", "content": "You are terse."},
        user("Hi"), {"role": "assistant", "content": "Hello."},
        {"role": "developer", "content": "Answer in English."}, user("How are you?")],
        "max_tokens": 200, "temperature": 0.4, "stop": "STOP", "user": "user-42"},
        {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "anthropic"
    assert r.headers["x-tollgate-model"] == "claude-sonnet-4-5-20250929"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "claude-sonnet-4-5-20250929"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! You said: How are you?", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == "test-anthropic-key"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["host"] == "api.anthropic.com"
    assert "authorization" not in sent["headers"]
    b = sent["body"]
    assert b["model"] == "claude-sonnet-4-5-20250929"
    assert b["system"] == [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English."}]
    assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user"]
    assert (b["max_tokens"], b["temperature"], b["stop_sequences"], b["metadata"]) == (200, 0.4, ["STOP"], {"user_id": "user-42"})


def test_anthropic_max_tokens_default_and_finish_length(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [user("one two three four five")], "max_completion_tokens": 3},
                  {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert mock.only_request(test_id)["body"]["max_tokens"] == 3
    r = demo.chat({"model": "claude", "messages": [user("x")]}, {"x-test-id": test_id + "b"})
    assert mock.only_request(test_id + "b")["body"]["max_tokens"] == 4096


def test_images_are_translated_to_anthropic_sources(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe these"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    content = mock.only_request(test_id)["body"]["messages"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}}
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


def test_tool_call_round_trip_through_anthropic(demo, mock, test_id):
    messages = [user("What is the weather in Paris?")]
    r = demo.chat({"model": "claude", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    sent = mock.only_request(test_id)["body"]
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]

    messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]
    r = demo.chat({"model": "claude", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id + "2"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Tool results: 18C and sunny"
    turns = mock.only_request(test_id + "2")["body"]["messages"]
    assert turns[1]["content"][-1] == {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": {"city": "Paris"}}
    assert turns[2]["content"][0]["type"] == "tool_result" and turns[2]["content"][0]["tool_use_id"] == call["id"]


def test_reasoning_effort_becomes_claude_thinking_and_the_thinking_comes_back(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [user("hi")], "reasoning_effort": "medium"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    message = r.json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Let me think this through.", "Hello! You said: hi")
    sent = mock.only_request(test_id)["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 8192} and sent["max_tokens"] == 4096 + 8192
    # Claude Opus 4.7 thinks adaptively, at an effort level; streamed thinking is reasoning_content deltas
    s = demo.stream({"model": "claude-opus", "messages": [user("hi")], "reasoning_effort": "high", "max_tokens": 500,
                     "stream": True}, {"x-test-id": test_id + "s"})
    chunks = [c for c in s.data() if c != "[DONE]"]
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"]) == "Let me think this through."
    sent = mock.only_request(test_id + "s")["body"]
    assert (sent["thinking"], sent["output_config"], sent["max_tokens"]) == ({"type": "adaptive"}, {"effort": "high"}, 500)


def test_reasoning_effort_through_a_claude_tool_loop(demo, mock, test_id):
    """Anthropic wants a thinking tool loop to carry the signed thinking block back, which OpenAI's
    format cannot: the continuing request goes without thinking and succeeds."""
    messages = [user("What is the weather in Paris?")]
    r = demo.chat({"model": "claude", "messages": messages, "tools": [WEATHER_TOOL], "reasoning_effort": "low"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    call = choice["message"]["tool_calls"][0]
    messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]
    r = demo.chat({"model": "claude", "messages": messages, "tools": [WEATHER_TOOL], "reasoning_effort": "low"}, {"x-test-id": test_id + "2"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Tool results: 18C and sunny"
    assert "thinking" not in mock.only_request(test_id + "2")["body"]


def test_reasoning_effort_refuses_sampling_claude_cannot_do_while_thinking(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [user("hi")], "reasoning_effort": "low", "temperature": 0.3}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["param"] == "temperature" and r.error["code"] == "unsupported_parameter", r.body
    assert mock.requests(test_id) == []


WEATHER_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}}


def test_json_schema_becomes_claude_structured_outputs(demo, mock, test_id):
    r = demo.chat({"model": "claude", "messages": [user("Weather in Paris?")], "response_format": WEATHER_FORMAT}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"city": "Paris"}
    sent = mock.only_request(test_id)["body"]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": WEATHER_FORMAT["json_schema"]["schema"]}}


def test_strict_tools_reach_claude_and_metadata_is_listed_as_dropped(demo, mock, test_id):
    tool = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "strict": True}}
    r = demo.chat({"model": "claude", "messages": [user("Weather in Paris?")], "tools": [tool], "metadata": {"run": "7"}, "user": "u-1"},
                  {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-dropped-params"] == "metadata"
    sent = mock.only_request(test_id)["body"]
    assert sent["tools"][0]["strict"] is True and sent["metadata"] == {"user_id": "u-1"}


def test_history_with_gemini_call_ids_reaches_openai_with_ids_it_takes(demo, mock, test_id):
    """A Gemini 3 call id carries its thought signature; OpenAI takes ids of at most 40 characters."""
    call_id = "call_0_tsig_" + "A" * 1000
    messages = [user("What is the weather in Paris?"),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"}]
    r = demo.chat({"model": "gpt-4o", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    sent = mock.only_request(test_id)["body"]["messages"]
    short = sent[1]["tool_calls"][0]["id"]
    assert len(short) <= 40 and sent[2]["tool_call_id"] == short


@pytest.mark.parametrize("upstream,expected", [(400, 400), (401, 401), (403, 403), (404, 404), (413, 413),
                                               (429, 429), (500, 500), (529, 503)])
def test_anthropic_errors_map_to_openai_errors(demo, upstream, expected, test_id):
    r = demo.chat({"model": "claude", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-status": str(upstream)})
    assert r.status == expected, r.body
    err = r.error
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if upstream in (401, 403):
        assert "rejected the gateway's credentials" in err["message"]
    if upstream == 529:
        assert err["code"] == "overloaded"


def test_upstream_garbage_is_a_502(demo, test_id):
    for model in ("claude", "gpt-4o"):
        r = demo.chat({"model": model, "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-garbage": "1"})
        assert r.status == 502, r.body
        assert r.error["code"] == "bad_upstream_response"


def test_shipped_policy_drops_temperature_for_models_that_reject_it(demo, mock, test_id):
    r = demo.chat({"model": "claude-opus", "messages": [user("hi")], "temperature": 0.2}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-dropped-params"] == "temperature"
    assert "temperature" not in mock.only_request(test_id)["body"]


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b"", 400, None),
    (json.dumps({"messages": [user("x")]}), 400, "model"),
    (json.dumps({"model": "nope", "messages": [user("x")]}), 404, "model"),
    (json.dumps({"model": "claude", "messages": []}), 400, "messages"),
    (json.dumps({"model": "claude", "messages": [{"role": "user", "content": 42}]}), 400, "messages[0].content"),
    (json.dumps({"model": "claude", "messages": [{"role": "robot", "content": "x"}]}), 400, "messages[0].role"),
    (json.dumps({"model": "claude", "messages": [user("x")], "temperature": "warm"}), 400, "temperature"),
    (json.dumps({"model": "claude", "messages": [user("x")], "n": 3}), 400, "n"),
    (json.dumps({"model": "claude", "messages": [user("x")], "temperature": 1.7}), 400, "temperature"),
])
def test_bad_input_gets_openai_errors_and_never_reaches_a_provider(demo, mock, test_id, body, status, param):
    r = demo.request("POST", "/v1/chat/completions", body, {"x-test-id": test_id, "content-type": "application/json"})
    assert r.status == status, r.body
    assert set(r.error) == {"message", "type", "param", "code"}
    assert r.error["param"] == param
    assert mock.requests(test_id) == []


def test_oversized_bodies_get_413(demo, mock, test_id):
    big = json.dumps({"model": "claude", "messages": [user("x" * (8 * 1024 * 1024 + 10))]}).encode()
    pieces = [big[i:i + 65536] for i in range(0, len(big), 65536)]
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"x-test-id: {test_id}\r\n").encode()
    # announced size: refused from the headers, before the body is read
    r = early_response_upload(demo.port, head + f"content-length: {len(big)}\r\n\r\n".encode(), pieces)
    assert r.status == 413 and r.error["code"] == "request_too_large"
    # chunked upload without a length: refused once the buffered body passes the limit
    chunked = (b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    r = early_response_upload(demo.port, head + b"transfer-encoding: chunked\r\n\r\n", chunked)
    assert r.status == 413 and r.error["code"] == "request_too_large"
    assert mock.requests(test_id) == []


def test_fast_chunked_uploads_past_the_limit_always_get_an_openai_413(demo, mock, test_id):
    # Big pieces sent as fast as possible: one read can carry the body past Envoy's buffer limit
    # before Tollgate sees it, and Envoy then answers itself (in OpenAI's shape, from the YAML).
    big = json.dumps({"model": "claude", "messages": [user("x" * (10 * 1024 * 1024))]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"x-test-id: {test_id}\r\ntransfer-encoding: chunked\r\n\r\n").encode()
    for size in (65536, 1 << 20, 4 << 20):
        pieces = [big[i:i + size] for i in range(0, len(big), size)]
        for _ in range(3):
            r = early_response_upload(demo.port, head, (b"%x\r\n%s\r\n" % (len(p), p) for p in pieces))
            assert r.status == 413 and r.error["code"] == "request_too_large", (size, r.body[:100])
            assert set(r.error) == {"message", "type", "param", "code"}
    assert mock.requests(test_id) == []


@pytest.mark.parametrize("model", ["gpt-4o", "claude"])
def test_an_answer_larger_than_the_gateway_buffers_is_an_openai_502(demo, model, test_id):
    # about 10 MB of answer: past limits.max_response_bytes and Envoy's buffer limit
    r = demo.chat({"model": model, "max_tokens": 3000000, "messages": [user("write 2000000 words")]}, {"x-test-id": test_id}, timeout=60)
    assert r.status == 502, r.body[:200]
    assert r.error["code"] == "response_too_large" and set(r.error) == {"message", "type", "param", "code"}


# ---- the official OpenAI SDK ---------------------------------------------------------------------

def test_openai_sdk_gets_parsed_completion_with_tool_calls_from_anthropic(demo):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{demo.port}/v1", api_key="anything", max_retries=0)
    completion = client.chat.completions.create(
        model="claude-sonnet", messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL])
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage.total_tokens > 0
    models = [m.id for m in client.models.list()]
    assert "claude-sonnet" in models
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


# ---- provider API versions -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def next_version(mock, tmp_path_factory):
    """The demo with Anthropic's 2026-10-21 API version."""
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["providers"]["anthropic"]["api_version"] = "2026-10-21"
    plugin["models"]["strict"] = {"provider": "anthropic", "model": "claude-sonnet-4-5", "params": {"temperature": "reject"}}
    plugin["models"]["opus-budget"] = {"provider": "anthropic", "model": "claude-opus-4-6",
                                       "params": {"reasoning_effort": {"reasoning": "budget"}}}
    plugin["models"]["haiku-3-5"] = {"provider": "anthropic", "model": "claude-3-5-haiku-20241022"}
    plugin["models"]["sonnet-tool-json"] = {"provider": "anthropic", "model": "claude-sonnet-4-5",
                                            "params": {"response_format": {"json_schema": "tool"}}}
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("next-version"))
    yield envoy
    envoy.stop()


def test_api_version_2026_uses_bearer_auth_and_drops_sampling(next_version, mock, test_id):
    r = next_version.chat({"model": "claude", "messages": [user("hi")], "temperature": 0.5, "top_p": 0.9}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-dropped-params"] == "temperature,top_p"
    sent = mock.only_request(test_id)
    assert sent["headers"]["anthropic-version"] == "2026-10-21"
    assert sent["headers"]["authorization"] == "Bearer test-anthropic-key"
    assert "x-api-key" not in sent["headers"]
    assert "temperature" not in sent["body"] and "top_p" not in sent["body"]


def test_configured_reject_policy_answers_400_before_the_provider(next_version, mock, test_id):
    r = next_version.chat({"model": "strict", "messages": [user("hi")], "temperature": 0.5}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["param"] == "temperature"
    assert mock.requests(test_id) == []


def test_a_models_policy_chooses_how_it_thinks(next_version, mock, test_id):
    """Claude Opus 4.6 thinks adaptively by default; this model's policy asks for a budget."""
    r = next_version.chat({"model": "opus-budget", "messages": [user("hi")], "reasoning_effort": "minimal"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    sent = mock.only_request(test_id)["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "output_config" not in sent


@pytest.mark.parametrize("model", ["haiku-3-5", "sonnet-tool-json"])
def test_json_schema_is_a_forced_tool_where_claude_has_no_structured_outputs_or_by_policy(next_version, mock, test_id, model):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{next_version.port}/v1", api_key="anything", max_retries=0)
    completion = client.chat.completions.create(model=model, messages=[user("Weather in Paris?")], response_format=WEATHER_FORMAT,
                                                extra_headers={"x-test-id": test_id})
    choice = completion.choices[0]
    assert (json.loads(choice.message.content), choice.message.tool_calls, choice.finish_reason) == ({"city": "Paris"}, None, "stop")
    sent = mock.only_request(test_id)["body"]
    assert sent["tool_choice"] == {"type": "tool", "name": "weather"} and "output_config" not in sent
    stream = client.chat.completions.create(model=model, messages=[user("Weather in Paris?")], response_format=WEATHER_FORMAT, stream=True)
    chunks = [c for c in stream if c.choices]
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks)) == {"city": "Paris"}
    assert not any(c.choices[0].delta.tool_calls for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
