"""Gemini API and Vertex AI through real Envoy: translation both ways, streaming, tools, images,
JSON mode, errors, embeddings, and what the mock provider received."""
import base64
import copy
import json
import struct

import openai
import pytest

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config, wasm_filters
from test_core import WEATHER_TOOL, user

KEYS = {"GEMINI_API_KEY": "test-gemini-key", "VERTEX_ACCESS_TOKEN": "test-vertex-token"}
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash"
VERTEX_PATH = "/v1/projects/tollgate-test/locations/us-central1/publishers/google/models/gemini-2.5-flash"


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    """The demo config with a Gemini API and a Vertex AI provider, both on the mock."""
    cfg = load_config("envoy/demo.yaml")
    clusters = cfg["static_resources"]["clusters"]
    for name in ("mock_gemini", "mock_vertex"):
        cluster = copy.deepcopy(clusters[0])
        cluster["name"] = cluster["load_assignment"]["cluster_name"] = name
        clusters.append(cluster)
    point_static_clusters(cfg, mock.port)
    # The demo routes only /v1/ upstream; the Gemini API lives under /v1beta, so (as in
    # examples/gemini/envoy.yaml) every request Tollgate named a cluster for goes to it.
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
        "match": {"prefix": "/", "headers": [{"name": "x-tollgate-cluster", "present_match": True}]},
        "route": {"cluster_header": "x-tollgate-cluster", "timeout": "600s"},
        "request_headers_to_remove": ["x-tollgate-cluster"]})
    for f in wasm_filters(cfg):
        f["vm_config"]["environment_variables"]["host_env_keys"] += list(KEYS)
    plugin = plugin_config(cfg)
    plugin["providers"]["gemini"] = {"kind": "gemini", "cluster": "mock_gemini", "api_key_env": "GEMINI_API_KEY"}
    plugin["providers"]["vertex"] = {"kind": "vertex", "cluster": "mock_vertex", "api_key_env": "VERTEX_ACCESS_TOKEN",
                                     "project": "tollgate-test", "location": "us-central1"}
    plugin["models"].update({
        "gemini-flash": {"provider": "gemini", "model": "gemini-2.5-flash"},
        "gemini-3": {"provider": "gemini", "model": "gemini-3-pro-preview"},
        "vertex-flash": {"provider": "vertex", "model": "gemini-2.5-flash"},
        "gemini-embed": {"provider": "gemini", "model": "text-embedding-004"},
        "vertex-embed": {"provider": "vertex", "model": "text-embedding-005"},
    })
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("gemini"), env=KEYS)
    yield envoy
    envoy.stop()


def chunks_of(s):
    data = s.data()
    assert data[-1] == "[DONE]", data[-3:]
    return data[:-1]


def content_of(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def finish_of(chunks):
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(reasons) == 1, reasons
    return reasons[0]


# ---- chat ----------------------------------------------------------------------------------------

def test_chat_is_translated_both_ways(gw, mock, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [
        {"role": "system", "content": "You are terse."},
        user("Hi"), {"role": "assistant", "content": "Hello."}, user("More"),
        {"role": "developer", "content": "Answer in English."}, user("How are you?")],
        "max_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": ["STOP"], "seed": 3, "user": "user-42"},
        {"x-test-id": test_id, "authorization": "Bearer client-secret", "x-mock-cache-read": "2"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "gemini"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemini-2.5-flash"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! You said: More How are you?", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    # 6 system words + Hi + Hello. + More + How are you? = 12 prompt tokens, 2 of them cached
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (12, 7, 19)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    sent = mock.only_request(test_id)
    assert sent["path"] == f"{GEMINI_PATH}:generateContent"
    assert sent["headers"]["x-goog-api-key"] == "test-gemini-key"
    assert sent["headers"]["host"] == "generativelanguage.googleapis.com"
    assert "authorization" not in sent["headers"]
    b = sent["body"]
    assert b["systemInstruction"] == {"parts": [{"text": "You are terse."}, {"text": "Answer in English."}]}
    assert [(c["role"], [p["text"] for p in c["parts"]]) for c in b["contents"]] == [
        ("user", ["Hi"]), ("model", ["Hello."]), ("user", ["More", "How are you?"])]
    assert b["generationConfig"] == {"maxOutputTokens": 200, "temperature": 0.4, "topP": 0.9, "stopSequences": ["STOP"], "seed": 3}
    assert "user-42" not in json.dumps(b)


def test_max_tokens_gives_finish_length(gw, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("one two three four five")], "max_completion_tokens": 3},
                {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 3


def test_vertex_uses_its_path_host_and_bearer_token(gw, mock, test_id):
    r = gw.chat({"model": "vertex-flash", "messages": [user("hello vertex")]},
                {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "vertex"
    assert r.json()["choices"][0]["message"]["content"] == "Hello! You said: hello vertex"
    sent = mock.only_request(test_id)
    assert sent["path"] == f"{VERTEX_PATH}:generateContent"
    assert sent["headers"]["authorization"] == "Bearer test-vertex-token"
    assert sent["headers"]["host"] == "us-central1-aiplatform.googleapis.com"
    assert "x-goog-api-key" not in sent["headers"]
    s = gw.stream({"model": "vertex-flash", "messages": [user("hello vertex")], "stream": True}, {"x-test-id": test_id + "s"})
    assert s.status == 200 and content_of(chunks_of(s)) == "Hello! You said: hello vertex"
    sent = mock.only_request(test_id + "s")
    assert (sent["path"], sent["query"]) == (f"{VERTEX_PATH}:streamGenerateContent", "alt=sse")


# ---- streaming -----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["gemini-flash", "vertex-flash"])
def test_stream_matches_non_streaming(gw, mock, model, test_id):
    text = "Stream me h\u00e9llo w\u00f6rld \U0001F30D please"
    s = gw.stream({"model": model, "messages": [user(text)], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id, "x-mock-cache-read": "1"})
    assert s.status == 200 and s.error is None
    assert s.headers["content-type"].startswith("text/event-stream")
    chunks = chunks_of(s)
    assert len({c["id"] for c in chunks}) == 1 and len({c["model"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(chunks) > 5, "translated event by event, not in one piece"
    assert chunks[-1]["choices"] == []
    whole = gw.chat({"model": model, "messages": [user(text)]}, {"x-test-id": test_id + "n", "x-mock-cache-read": "1"}).json()
    assert content_of(chunks) == whole["choices"][0]["message"]["content"] == f"Hello! You said: {text}"
    assert finish_of(chunks) == whole["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == whole["usage"]
    assert whole["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
    assert mock.only_request(test_id)["query"] == "alt=sse"


def test_usage_chunk_only_when_asked(gw, test_id):
    s = gw.stream({"model": "gemini-flash", "messages": [user("hi")], "stream": True}, {"x-test-id": test_id})
    assert s.status == 200
    assert not any(c.get("usage") for c in chunks_of(s))


def test_cut_or_failing_streams_end_with_an_error_event(gw, test_id):
    s = gw.stream({"model": "gemini-flash", "messages": [user("a b c d e f")], "stream": True},
                  {"x-test-id": test_id, "x-mock-stream-fault": "truncate-after-2"})
    last = s.data()[-1]
    assert last["error"]["code"] == "stream_truncated" and "[DONE]" not in s.data()
    s = gw.stream({"model": "gemini-flash", "messages": [user("a b c d e f")], "stream": True},
                  {"x-test-id": test_id + "e", "x-mock-stream-fault": "error-after-2"})
    last = s.data()[-1]
    assert last["error"]["code"] == "unavailable" and last["error"]["type"] == "api_error"
    assert "overloaded" in last["error"]["message"]


def test_openai_sdk_reassembles_streamed_text_and_tool_calls(gw):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="anything", max_retries=0)
    stream = client.chat.completions.create(model="gemini-flash", messages=[user("What's the weather in Paris?")],
                                            tools=[WEATHER_TOOL], stream=True, stream_options={"include_usage": True})
    text, calls, finish, usage = "", {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": tc.id, "name": "", "arguments": ""})
                call["name"] += tc.function.name or ""
                call["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    assert text == "Let me check."
    assert list(calls.values()) == [{"id": "call_0", "name": "get_weather", "arguments": '{"city":"Paris"}'}]
    assert finish == "tool_calls"
    whole = client.chat.completions.create(model="gemini-flash", messages=[user("What's the weather in Paris?")], tools=[WEATHER_TOOL])
    call = whole.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("call_0", "get_weather", {"city": "Paris"})
    assert whole.choices[0].finish_reason == "tool_calls"
    assert usage.prompt_tokens == whole.usage.prompt_tokens and usage.completion_tokens == whole.usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="gemini-flash", messages=[user("d\u00e9j\u00e0 vu \u4e16\u754c")], stream=True) if c.choices)
    assert text == "Hello! You said: d\u00e9j\u00e0 vu \u4e16\u754c"


# ---- tools, images, JSON -------------------------------------------------------------------------

def test_tool_call_round_trip(gw, mock, test_id):
    messages = [user("What is the weather in Paris?")]
    r = gw.chat({"model": "gemini-flash", "messages": messages, "tools": [WEATHER_TOOL], "tool_choice": "auto"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    sent = mock.only_request(test_id)["body"]
    assert sent["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]
    r = gw.chat({"model": "gemini-flash", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id + "2"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Tool results: 18C and sunny"
    contents = mock.only_request(test_id + "2")["body"]["contents"]
    # Gemini 2.5 signs no calls: the history carries Google's placeholder in place of a signature.
    assert contents[1] == {"role": "model", "parts": [{"text": "Let me check."},
                                                       {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                                        "thoughtSignature": "skip_thought_signature_validator"}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": "18C and sunny"}}}]}


def streamed_message(stream):
    """The assistant message an OpenAI SDK stream adds up to, as a client sends it back."""
    content, calls = "", {}
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                call = calls.setdefault(tc.index, {"id": tc.id, "type": "function", "function": {"name": "", "arguments": ""}})
                call["function"]["name"] += tc.function.name or ""
                call["function"]["arguments"] += tc.function.arguments or ""
    return {"role": "assistant", "content": content or None, "tool_calls": list(calls.values())}


def signature_in(call_id):
    """The thought signature a tool call id carries, in the standard base64 Gemini wrote."""
    carried = call_id.split("_tsig_", 1)[1]
    return carried.replace("-", "+").replace("_", "/") + "=" * (-len(carried) % 4)


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_3_tool_loop_of_three_steps_carries_thought_signatures(gw, mock, test_id, stream):
    """Gemini 3 refuses a step whose function call lost its thought signature (the mock checks each
    against the ones it issued); the signature travels to the client and back in the tool call id."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="anything", max_retries=0)
    messages = [user("What's the weather in Paris?")]
    signatures = []
    for step, result in enumerate(["18C [call again]", "sunny", None]):
        headers = {"x-test-id": f"{test_id}-{step}"}
        if stream:
            message = streamed_message(client.chat.completions.create(
                model="gemini-3", messages=messages, tools=[WEATHER_TOOL], stream=True, extra_headers=headers))
        else:
            completion = client.chat.completions.create(model="gemini-3", messages=messages, tools=[WEATHER_TOOL], extra_headers=headers)
            message = completion.choices[0].message.model_dump(exclude_none=True)
        sent = mock.only_request(f"{test_id}-{step}")["body"]["contents"]
        assert [p["thoughtSignature"] for c in sent if c["role"] == "model" for p in c["parts"] if "functionCall" in p] == signatures
        if result is None:
            assert message["content"] == "Tool results: sunny"
            break
        (call,) = message["tool_calls"]
        assert call["id"].startswith("call_0_tsig_") and all(ch.isalnum() or ch in "_-" for ch in call["id"]), call["id"]
        signatures.append(signature_in(call["id"]))
        messages += [message, {"role": "tool", "tool_call_id": call["id"], "content": result}]
    assert len(set(signatures)) == 2
    # History whose ids carry no signature (e.g. from another provider) gets Google's placeholder.
    for m in messages:
        for c in m.get("tool_calls") or []:
            c["id"] = "call_0"
        if m["role"] == "tool":
            m["tool_call_id"] = "call_0"
    r = gw.chat({"model": "gemini-3", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id + "-placeholder"})
    assert r.status == 200, r.body
    sent = mock.only_request(test_id + "-placeholder")["body"]["contents"]
    calls = [p for c in sent if c["role"] == "model" for p in c["parts"] if "functionCall" in p]
    assert [p["thoughtSignature"] for p in calls] == ["skip_thought_signature_validator"] * 2


def test_reasoning_effort_becomes_a_thinking_budget_or_level(gw, mock, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("hi")], "reasoning_effort": "medium"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    message = r.json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Thinking it over.", "Hello! You said: hi")
    config = mock.only_request(test_id)["body"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    # Gemini 3 Pro takes a level, LOW or HIGH
    s = gw.stream({"model": "gemini-3", "messages": [user("hi")], "reasoning_effort": "minimal", "stream": True},
                  {"x-test-id": test_id + "s"})
    chunks = chunks_of(s)
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"]) == "Thinking it over."
    config = mock.only_request(test_id + "s")["body"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingLevel": "LOW", "includeThoughts": True}
    r = gw.chat({"model": "gemini-flash", "messages": [user("hi")], "reasoning_effort": "none"}, {"x-test-id": test_id + "n"})
    assert r.status == 200 and "reasoning_content" not in r.json()["choices"][0]["message"], r.body


def test_named_tool_choice_forces_that_function(gw, mock, test_id):
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    r = gw.chat({"model": "gemini-flash", "messages": [user("hi")], "tools": [WEATHER_TOOL, other],
                 "tool_choice": {"type": "function", "function": {"name": "get_time"}}}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    assert mock.only_request(test_id)["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}


def test_images_are_sent_inline_or_as_file_data(gw, mock, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe these"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Hello! You said: Describe these [image] [image]"
    assert r.json()["usage"]["prompt_tokens"] == 2 + 2 * 85
    parts = mock.only_request(test_id)["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgoAAAANSUhEUg=="}}
    assert parts[2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}
    r = gw.chat({"model": "gemini-flash", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat"}}]}]}, {"x-test-id": test_id + "x"})
    assert r.status == 400 and r.error["param"] == "messages[0].content[0]"
    assert mock.requests(test_id + "x") == []


def test_json_mode_and_json_schema(gw, mock, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("hi")], "response_format": {"type": "json_object"}}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"text": "Hello! You said: hi"}
    assert mock.only_request(test_id)["body"]["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "days"],
              "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}}}
    r = gw.chat({"model": "vertex-flash", "messages": [user("hi")],
                 "response_format": {"type": "json_schema", "json_schema": {"name": "plan", "strict": True, "schema": schema}}},
                {"x-test-id": test_id + "s"})
    assert r.status == 200, r.body
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"city": "Paris", "days": 1}
    assert mock.only_request(test_id + "s")["body"]["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "required": ["city", "days"],
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER", "nullable": True}}}}
    bad = dict(schema, properties={"city": {"oneOf": [{"type": "string"}]}})
    r = gw.chat({"model": "gemini-flash", "messages": [user("hi")],
                 "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": bad}}}, {"x-test-id": test_id + "b"})
    assert r.status == 400 and r.error["param"] == "response_format.json_schema.schema"
    assert "oneOf" in r.error["message"]
    assert mock.requests(test_id + "b") == []


def test_blocked_prompt_is_a_content_filter_answer(gw, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("something bad")]}, {"x-test-id": test_id, "x-mock-block-reason": "SAFETY"})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", None)
    assert "SAFETY" in choice["message"]["refusal"]
    assert r.json()["usage"]["prompt_tokens"] == 2
    s = gw.stream({"model": "gemini-flash", "messages": [user("something bad")], "stream": True, "stream_options": {"include_usage": True}},
                  {"x-test-id": test_id + "s", "x-mock-block-reason": "SAFETY"})
    chunks = chunks_of(s)
    assert finish_of(chunks) == "content_filter" and chunks[-1]["usage"] == r.json()["usage"]


def test_unsupported_parameters_never_reach_gemini(gw, mock, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("x")], "logit_bias": {"1": 2}}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["param"] == "logit_bias" and r.error["code"] == "unsupported_parameter"
    r = gw.chat({"model": "gemini-flash", "messages": [user("x")], "n": 2}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["param"] == "n"
    assert mock.requests(test_id) == []


# ---- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("upstream", [400, 401, 403, 404, 429, 500, 503, 504])
def test_google_errors_map_to_openai_errors(gw, upstream, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-status": str(upstream)})
    assert r.status == upstream, r.body
    assert set(r.error) == {"message", "type", "param", "code"}
    assert r.error["message"]
    expected_type = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        upstream, "api_error" if upstream >= 500 else "invalid_request_error")
    assert r.error["type"] == expected_type
    if upstream in (401, 403):
        assert "rejected the gateway's credentials" in r.error["message"]
    if upstream == 429:
        assert r.error["code"] == "rate_limit_exceeded"


def test_invalid_gemini_key_is_a_401(gw, mock, test_id):
    mock.fault(status=400, body={"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                           "status": "INVALID_ARGUMENT", "details": [
                                               {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})
    r = gw.chat({"model": "gemini-flash", "messages": [user("x")]}, {"x-test-id": test_id})
    assert r.status == 401 and r.error["type"] == "authentication_error" and r.error["code"] == "invalid_api_key"


def test_mock_validation_errors_come_back_as_400(gw, test_id):
    # Gemini rejects a request ending with a model turn that has no user turn before it.
    r = gw.chat({"model": "gemini-flash", "messages": [{"role": "assistant", "content": "I start"}]}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["type"] == "invalid_request_error"
    assert r.error["code"] == "invalid_argument" and "role" in r.error["message"]


def test_upstream_garbage_is_a_502(gw, test_id):
    r = gw.chat({"model": "gemini-flash", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-garbage": "1"})
    assert r.status == 502 and r.error["code"] == "bad_upstream_response"


# ---- embeddings ----------------------------------------------------------------------------------

def floats_of(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_gemini_embeddings_float_and_base64(gw, mock, test_id):
    r = gw.request("POST", "/v1/embeddings", {"model": "gemini-embed", "input": ["hello", "world"], "dimensions": 4},
                   {"x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert body["object"] == "list" and body["model"] == "text-embedding-004"
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1] and all(len(v) == 4 for v in vectors)
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}, "Gemini reports no embedding tokens"
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent["headers"]["x-goog-api-key"] == "test-gemini-key"
    assert sent["body"] == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 4},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "world"}]}, "outputDimensionality": 4}]}
    r = gw.request("POST", "/v1/embeddings", {"model": "gemini-embed", "input": ["hello", "world"], "dimensions": 4,
                                              "encoding_format": "base64"}, {"x-test-id": test_id + "b"})
    assert [floats_of(d["embedding"]) for d in r.json()["data"]] == vectors
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="anything", max_retries=0)
    sdk = client.embeddings.create(model="gemini-embed", input=["hello", "world"], dimensions=4)
    assert [d.embedding for d in sdk.data] == vectors


def test_vertex_embeddings_use_predict_and_report_tokens(gw, mock, test_id):
    r = gw.request("POST", "/v1/embeddings", {"model": "vertex-embed", "input": ["a b c", "d"]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert len(body["data"]) == 2 and len(body["data"][0]["embedding"]) == 8
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/projects/tollgate-test/locations/us-central1/publishers/google/models/text-embedding-005:predict"
    assert sent["headers"]["authorization"] == "Bearer test-vertex-token"
    assert sent["body"] == {"instances": [{"content": "a b c"}, {"content": "d"}]}
