"""Amazon Bedrock through real Envoy: Converse and ConverseStream translation, SigV4 signatures the
mock verifies, session tokens, tools, images, typed errors, Titan and Cohere embeddings."""
import base64
import copy
import json
import struct

import openai
import pytest

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config, wasm_filters
from test_core import WEATHER_TOOL, user

CLAUDE = "anthropic.claude-3-5-sonnet-20240620-v1:0"
CLAUDE_PATH = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0"

# The mock provider's default AWS credentials: a long-term key, and a temporary key that only
# works with its session token. A third variable holds a wrong secret for the long-term key.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDMOCKBEDROCK",
    "AWS_SECRET_ACCESS_KEY": "mock/bedrock+secret-key",
    # Set empty so a developer's own session token cannot leak into the test.
    "AWS_SESSION_TOKEN": "",
    "BEDROCK_STS_KEY_ID": "ASIAMOCKBEDROCK",
    "BEDROCK_STS_SECRET": "mock/bedrock+temporary-secret",
    "BEDROCK_STS_TOKEN": "mock-session-token/abc+def==",
    "BEDROCK_WRONG_SECRET": "not-the-secret",
}


@pytest.fixture(scope="module")
def bedrock(mock, tmp_path_factory):
    """The demo config plus Bedrock providers reaching the mock through their own cluster."""
    cfg = load_config("envoy/demo.yaml")
    clusters = cfg["static_resources"]["clusters"]
    cluster = copy.deepcopy(next(c for c in clusters if c["name"] == "mock_anthropic"))
    cluster["name"] = cluster["load_assignment"]["cluster_name"] = "mock_bedrock"
    clusters.append(cluster)
    point_static_clusters(cfg, mock.port)
    # Bedrock paths (/model/...) are outside /v1/: route on the cluster Tollgate named instead, as
    # examples/bedrock/envoy.yaml does.
    routes = find_routes(cfg)
    routes.insert(0, {"match": {"prefix": "/", "headers": [{"name": "x-tollgate-cluster", "present_match": True}]},
                      "route": {"cluster_header": "x-tollgate-cluster", "timeout": "600s"},
                      "request_headers_to_remove": ["x-tollgate-cluster"]})
    plugin = plugin_config(cfg)
    plugin["providers"].update({
        "bedrock": {"kind": "bedrock", "cluster": "mock_bedrock", "region": "us-east-1"},
        "bedrock-sts": {"kind": "bedrock", "cluster": "mock_bedrock", "region": "eu-west-1",
                        "aws_access_key_id_env": "BEDROCK_STS_KEY_ID", "aws_secret_access_key_env": "BEDROCK_STS_SECRET",
                        "aws_session_token_env": "BEDROCK_STS_TOKEN"},
        "bedrock-wrong": {"kind": "bedrock", "cluster": "mock_bedrock", "region": "us-east-1",
                          "aws_secret_access_key_env": "BEDROCK_WRONG_SECRET"},
        "bedrock-unset": {"kind": "bedrock", "cluster": "mock_bedrock", "region": "us-east-1",
                          "aws_access_key_id_env": "BEDROCK_NOT_SET"},
    })
    plugin["models"].update({
        "bedrock-claude": {"provider": "bedrock", "model": CLAUDE},
        "bedrock-sts": {"provider": "bedrock-sts", "model": "us.anthropic.claude-3-5-haiku-20241022-v1:0"},
        "bedrock-wrong": {"provider": "bedrock-wrong", "model": CLAUDE},
        "bedrock-unset": {"provider": "bedrock-unset", "model": CLAUDE},
        "bedrock-sonnet-4-5": {"provider": "bedrock", "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
        "bedrock-nova-2": {"provider": "bedrock", "model": "us.amazon.nova-2-lite-v1:0"},
        "titan": {"provider": "bedrock", "model": "amazon.titan-embed-text-v2:0"},
        "cohere-embed": {"provider": "bedrock", "model": "cohere.embed-english-v3"},
    })
    set_plugin_config(cfg, plugin)
    for f in wasm_filters(cfg):
        f["vm_config"]["environment_variables"]["host_env_keys"] += list(AWS_ENV)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("bedrock"), env=AWS_ENV)
    yield envoy
    envoy.stop()


def find_routes(cfg: dict) -> list:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def content_of(chunks) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if isinstance(c, dict) and c.get("choices"))


def finish_of(chunks):
    reasons = [c["choices"][0]["finish_reason"] for c in chunks
               if isinstance(c, dict) and c.get("choices") and c["choices"][0]["finish_reason"]]
    assert len(reasons) == 1, reasons
    return reasons[0]


# ---- Converse ------------------------------------------------------------------------------------

def test_converse_translation_and_signed_request(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-claude", "messages": [
        {"role": "system", "content": "You are terse."}, user("Hi"), {"role": "assistant", "content": "Hello."},
        user("How are you?")], "max_tokens": 200, "temperature": 0.4, "top_p": 0.9, "stop": "STOP", "user": "u-1"},
        {"x-test-id": test_id, "authorization": "Bearer client-secret"})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "bedrock"
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == CLAUDE
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! You said: How are you?", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    sent = mock.only_request(test_id)
    assert sent["path"] == f"{CLAUDE_PATH}/converse"
    headers = sent["headers"]
    assert headers["host"] == "bedrock-runtime.us-east-1.amazonaws.com"
    assert headers["content-type"] == "application/json"
    date = headers["x-amz-date"]
    assert len(date) == 16 and date.endswith("Z")
    assert headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK/{date[:8]}/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=")
    assert "x-amz-security-token" not in headers
    assert "client-secret" not in json.dumps(sent)
    assert sent["body"] == {
        "system": [{"text": "You are terse."}],
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}, {"role": "assistant", "content": [{"text": "Hello."}]},
                     {"role": "user", "content": [{"text": "How are you?"}]}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.4, "topP": 0.9, "stopSequences": ["STOP"]},
    }


def test_mock_verifies_the_signature_and_a_wrong_secret_is_refused(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-wrong", "messages": [user("x")]}, {"x-test-id": test_id})
    assert r.status == 403, r.body
    assert r.error["type"] == "authentication_error" and r.error["code"] == "invalid_credentials"
    assert "rejected the gateway's credentials" in r.error["message"]
    assert "InvalidSignatureException" in r.error["message"]
    assert "not-the-secret" not in r.body.decode()
    assert "Canonical String" not in r.error["message"], "AWS's signature diagnostics hold signed header values"
    assert len(mock.requests(test_id)) == 1, "the request reached the mock, which refused its signature"


def test_session_token_is_sent_and_signed(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-sts", "messages": [user("hello")]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    headers = mock.only_request(test_id)["headers"]
    assert headers["host"] == "bedrock-runtime.eu-west-1.amazonaws.com"
    assert headers["x-amz-security-token"] == AWS_ENV["BEDROCK_STS_TOKEN"]
    assert "/eu-west-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," \
        in headers["authorization"]
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIAMOCKBEDROCK/")


def test_missing_credentials_fail_before_the_provider(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-unset", "messages": [user("x")]}, {"x-test-id": test_id})
    assert r.status == 500 and r.error["code"] == "provider_credentials_missing"
    assert "BEDROCK_NOT_SET" in r.error["message"]
    assert mock.requests(test_id) == []


def test_cached_tokens_are_reported_apart_from_input(bedrock, test_id):
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("one two three four five six")]},
                     {"x-test-id": test_id, "x-mock-cache-read": "4", "x-mock-cache-write": "2"})
    assert r.status == 200, r.body
    usage = r.json()["usage"]
    plain = bedrock.chat({"model": "bedrock-claude", "messages": [user("one two three four five six")]}).json()["usage"]
    assert usage["prompt_tokens"] == plain["prompt_tokens"], "cached tokens are part of the prompt"
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == 2


def test_max_tokens_finish_length_and_unsupported_parameters(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("one two three four five")], "max_completion_tokens": 3},
                     {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert mock.only_request(test_id)["body"]["inferenceConfig"] == {"maxTokens": 3}
    for extra in ({"seed": 1}, {"response_format": {"type": "json_object"}}, {"n": 2}):
        r = bedrock.chat({"model": "bedrock-claude", "messages": [user("x")], **extra}, {"x-test-id": test_id + "u"})
        assert r.status == 400 and r.error["code"] == "unsupported_parameter", r.body
        assert r.error["param"] == next(iter(extra))
    assert mock.requests(test_id + "u") == []


def test_reasoning_effort_becomes_the_models_reasoning_fields(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-sonnet-4-5", "messages": [user("hi")], "reasoning_effort": "low"}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["reasoning_content"] == "Weighing it up."
    sent = mock.only_request(test_id)["body"]
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert sent["inferenceConfig"]["maxTokens"] == 2048 + 4096
    s = bedrock.stream({"model": "bedrock-nova-2", "messages": [user("hi")], "reasoning_effort": "medium", "stream": True},
                       {"x-test-id": test_id + "n"})
    chunks = s.data()[:-1]
    assert "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"]) == "Weighing it up."
    sent = mock.only_request(test_id + "n")["body"]
    assert sent["additionalModelRequestFields"] == {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}}
    # Claude 3.5 cannot think: the parameter is refused like any other the model cannot honour
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("hi")], "reasoning_effort": "low"}, {"x-test-id": test_id + "u"})
    assert r.status == 400 and (r.error["param"], r.error["code"]) == ("reasoning_effort", "unsupported_parameter"), r.body
    assert mock.requests(test_id + "u") == []


WEATHER_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_json_schema_becomes_structured_outputs_or_a_forced_tool(bedrock, mock, test_id):
    r = bedrock.chat({"model": "bedrock-sonnet-4-5", "messages": [user("Weather in Paris?")], "response_format": WEATHER_FORMAT},
                     {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"city": "Paris"}
    text_format = mock.only_request(test_id)["body"]["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == WEATHER_FORMAT["json_schema"]["schema"]
    # Claude 3.5 has no structured outputs: a forced tool, whose input is the answer, streamed or not
    for stream in (False, True):
        body = {"model": "bedrock-claude", "messages": [user("Weather in Paris?")], "response_format": WEATHER_FORMAT, "stream": stream}
        if stream:
            chunks = bedrock.stream(body, {"x-test-id": test_id + "s"}).data()[:-1]
            content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
            assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
        else:
            r = bedrock.chat(body, {"x-test-id": test_id + "t"})
            assert r.status == 200, r.body
            content = r.json()["choices"][0]["message"]["content"]
            assert r.json()["choices"][0]["finish_reason"] == "stop"
        assert json.loads(content) == {"city": "Paris"}
    sent = mock.only_request(test_id + "t")["body"]
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "weather"}} and "outputConfig" not in sent


def test_strict_tools_map_where_the_model_has_them_and_metadata_is_listed_as_dropped(bedrock, mock, test_id):
    tool = {"type": "function", "function": {"name": "get_weather", "strict": True,
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    r = bedrock.chat({"model": "bedrock-sonnet-4-5", "messages": [user("hi")], "tools": [tool], "metadata": {"run": "7"}},
                     {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-dropped-params"] == "metadata"
    assert mock.only_request(test_id)["body"]["toolConfig"]["tools"][0]["toolSpec"]["strict"] is True
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("hi")], "tools": [tool]}, {"x-test-id": test_id + "u"})
    assert r.status == 400 and (r.error["param"], r.error["code"]) == ("tools[0].function.strict", "unsupported_parameter"), r.body
    assert mock.requests(test_id + "u") == []


def test_history_with_gemini_call_ids_reaches_converse_with_ids_it_takes(bedrock, mock, test_id):
    """A Gemini 3 call id carries its thought signature and is far longer than Converse's 64."""
    call_id = "call_0_tsig_" + "A" * 1000
    messages = [user("What is the weather in Paris?"),
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"}]
    r = bedrock.chat({"model": "bedrock-claude", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    turns = mock.only_request(test_id)["body"]["messages"]
    sent_id = turns[1]["content"][0]["toolUse"]["toolUseId"]
    assert len(sent_id) <= 64 and turns[2]["content"][0]["toolResult"]["toolUseId"] == sent_id


# ---- tools and images ----------------------------------------------------------------------------

def test_tool_call_round_trip(bedrock, mock, test_id):
    messages = [user("What is the weather in Paris?")]
    r = bedrock.chat({"model": "bedrock-claude", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    sent = mock.only_request(test_id)["body"]
    assert sent["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "get_weather", "description": WEATHER_TOOL["function"]["description"],
        "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}]}

    messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"}]
    r = bedrock.chat({"model": "bedrock-claude", "messages": messages, "tools": [WEATHER_TOOL]}, {"x-test-id": test_id + "2"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Tool results: 18C and sunny"
    turns = mock.only_request(test_id + "2")["body"]["messages"]
    assert turns[1]["content"][-1] == {"toolUse": {"toolUseId": call["id"], "name": "get_weather", "input": {"city": "Paris"}}}
    assert turns[2]["content"] == [{"toolResult": {"toolUseId": call["id"], "content": [{"text": "18C and sunny"}]}}]

    # "none" with tool calls in the history cannot be expressed in Converse
    r = bedrock.chat({"model": "bedrock-claude", "messages": messages, "tools": [WEATHER_TOOL], "tool_choice": "none"},
                     {"x-test-id": test_id + "3"})
    assert r.status == 400 and r.error["param"] == "tool_choice"
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("weather?")], "tools": [WEATHER_TOOL], "tool_choice": "none"},
                     {"x-test-id": test_id + "4"})
    assert r.status == 200 and r.json()["choices"][0]["finish_reason"] == "stop"
    assert "toolConfig" not in mock.only_request(test_id + "4")["body"]


def test_forced_tool_choice_and_openai_sdk_tool_calls(bedrock, mock, test_id):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{bedrock.port}/v1", api_key="anything", max_retries=0,
                           default_headers={"x-test-id": test_id})
    completion = client.chat.completions.create(
        model="bedrock-claude", messages=[{"role": "user", "content": "Hi there"}], tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert completion.choices[0].finish_reason == "tool_calls"
    assert mock.only_request(test_id)["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}


def test_images_are_sent_inline(bedrock, mock, test_id):
    png = "iVBORw0KGgoAAAANSUhEUg=="
    r = bedrock.chat({"model": "bedrock-claude", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Describe this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}]}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == "Hello! You said: Describe this [image]"
    content = mock.only_request(test_id)["body"]["messages"][0]["content"]
    assert content == [{"text": "Describe this"}, {"image": {"format": "png", "source": {"bytes": png}}}]

    r = bedrock.chat({"model": "bedrock-claude", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}, {"x-test-id": test_id + "u"})
    assert r.status == 400 and r.error["param"] == "messages[0].content[0]"
    assert "data URL" in r.error["message"]
    assert mock.requests(test_id + "u") == []


# ---- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("upstream,expected,kind,code", [
    (400, 400, "invalid_request_error", "invalid_request"),
    (403, 403, "permission_error", "access_denied"),
    (404, 404, "invalid_request_error", "model_not_found"),
    (424, 502, "api_error", "model_error"),
    (429, 429, "rate_limit_error", "rate_limit_exceeded"),
    (500, 500, "api_error", "internal_error"),
    (503, 503, "api_error", "service_unavailable"),
])
def test_bedrock_errors_map_to_openai_errors(bedrock, upstream, expected, kind, code, test_id):
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-status": str(upstream)})
    assert r.status == expected, r.body
    assert set(r.error) == {"message", "type", "param", "code"}
    assert (r.error["type"], r.error["code"]) == (kind, code)
    assert r.error["message"]


def test_upstream_garbage_is_a_502(bedrock, test_id):
    r = bedrock.chat({"model": "bedrock-claude", "messages": [user("x")]}, {"x-test-id": test_id, "x-mock-garbage": "1"})
    assert r.status == 502 and r.error["code"] == "bad_upstream_response"


# ---- ConverseStream ------------------------------------------------------------------------------

def test_stream_is_openai_sse_and_matches_non_streaming(bedrock, mock, test_id):
    text = "Stream me h\u00e9llo w\u00f6rld \U0001F30D please"
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user(text)], "stream": True,
                        "stream_options": {"include_usage": True}}, {"x-test-id": test_id})
    assert s.status == 200 and s.error is None
    assert s.headers["content-type"].startswith("text/event-stream")
    assert mock.only_request(test_id)["path"] == f"{CLAUDE_PATH}/converse-stream"
    data = s.data()
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {CLAUDE}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert b":event-type" not in s.body and b'"p":' not in s.body

    whole = bedrock.chat({"model": "bedrock-claude", "messages": [user(text)]}).json()
    assert content_of(chunks) == whole["choices"][0]["message"]["content"] == f"Hello! You said: {text}"
    assert finish_of(chunks) == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["usage"] == whole["usage"]


def test_usage_chunk_only_when_the_client_asks(bedrock):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("hi")], "stream": True})
    assert s.status == 200
    assert not any(isinstance(c, dict) and c.get("usage") for c in s.data())
    assert s.data()[-1] == "[DONE]"


def test_openai_sdk_stream_reassembles_text_tools_and_usage(bedrock):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{bedrock.port}/v1", api_key="anything", max_retries=0)
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    whole = client.chat.completions.create(model="bedrock-claude", messages=messages, tools=[WEATHER_TOOL])

    text, calls, usage, finish = "", {}, None, None
    for chunk in client.chat.completions.create(model="bedrock-claude", messages=messages, tools=[WEATHER_TOOL],
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
    assert text == message.content == "Let me check."
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    assert all(c["id"] for c in calls.values())
    assert [(c["name"], json.loads(c["arguments"])) for c in calls.values()] == \
        [(t.function.name, json.loads(t.function.arguments)) for t in message.tool_calls]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == \
        (whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens)


def test_streamed_cache_usage_matches_non_streaming(bedrock, test_id):
    headers = {"x-test-id": test_id, "x-mock-cache-read": "3"}
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("a b c d e")], "stream": True,
                        "stream_options": {"include_usage": True}}, headers)
    whole = bedrock.chat({"model": "bedrock-claude", "messages": [user("a b c d e")]}, headers).json()
    assert s.data()[-2]["usage"] == whole["usage"]
    assert whole["usage"]["prompt_tokens_details"]["cached_tokens"] == 3


def test_nothing_is_buffered_with_a_slow_upstream(bedrock, test_id):
    """The mock sends one event-stream message every 200 ms; each must reach the client as it is produced."""
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("one two three four five six")], "stream": True},
                       {"x-test-id": test_id, "x-mock-delay-ms": "200"})
    assert s.status == 200 and s.data()[-1] == "[DONE]"
    arrivals = [at for at, chunk in s.reads if b'"content":"' in chunk]
    total = s.reads[-1][0]
    assert total >= 1.5, f"the slow mock should take well over a second, took {total:.2f}s"
    assert arrivals and arrivals[0] < total - 1.0, f"first content at {arrivals[0]:.2f}s of {total:.2f}s: buffered"
    assert len(arrivals) >= 5, f"content arrived in {len(arrivals)} reads: chunks were batched"


def test_json_answer_to_a_streaming_request_is_502(bedrock, test_id):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("x")], "stream": True},
                       {"x-test-id": test_id, "x-mock-wrong-content-type": "1"})
    assert s.status == 502


def test_truncated_stream_ends_with_an_error_event(bedrock, test_id):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("one two three four")], "stream": True},
                       {"x-test-id": test_id, "x-mock-stream-fault": "truncate-after-4"})
    assert s.status == 200
    data = s.data()
    assert "[DONE]" not in data
    assert data[-1]["error"]["code"] == "stream_truncated"


def test_exception_mid_stream_becomes_an_error_event(bedrock, test_id):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("one two three")], "stream": True},
                       {"x-test-id": test_id, "x-mock-stream-fault": "error-after-3"})
    data = s.data()
    assert "[DONE]" not in data
    assert data[-1]["error"]["code"] == "model_error" and data[-1]["error"]["message"]


def test_reset_mid_stream_never_looks_like_a_clean_end(bedrock, test_id):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("one two three four")], "stream": True},
                       {"x-test-id": test_id, "x-mock-stream-fault": "reset-after-3"})
    assert "[DONE]" not in s.data()
    assert s.error is not None, "the client must see the transfer break"


def test_error_before_the_stream_starts_is_json_with_status(bedrock, test_id):
    s = bedrock.stream({"model": "bedrock-claude", "messages": [user("x")], "stream": True},
                       {"x-test-id": test_id, "x-mock-status": "429"})
    assert s.status == 429
    assert s.headers["content-type"] == "application/json"
    assert json.loads(s.body)["error"]["code"] == "rate_limit_exceeded"


# ---- embeddings ----------------------------------------------------------------------------------

def test_titan_embeddings(bedrock, mock, test_id):
    r = bedrock.request("POST", "/v1/embeddings", {"model": "titan", "input": "hello embedded world", "dimensions": 256},
                        {"x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert body["object"] == "list" and body["model"] == "amazon.titan-embed-text-v2:0"
    assert len(body["data"]) == 1 and len(body["data"][0]["embedding"]) == 256
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    sent = mock.only_request(test_id)
    assert sent["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert sent["body"] == {"inputText": "hello embedded world", "dimensions": 256}
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK/")

    r = bedrock.request("POST", "/v1/embeddings", {"model": "titan", "input": ["a", "b"]}, {"x-test-id": test_id + "2"})
    assert r.status == 400 and r.error["param"] == "input"
    assert mock.requests(test_id + "2") == []


def test_titan_embeddings_through_the_openai_sdk_in_base64(bedrock):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{bedrock.port}/v1", api_key="anything", max_retries=0)
    floats = client.embeddings.create(model="titan", input="same text", encoding_format="float")
    packed = bedrock.request("POST", "/v1/embeddings", {"model": "titan", "input": "same text", "encoding_format": "base64"}).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == len(floats.data[0].embedding) == 1024
    assert all(abs(a - b) < 1e-6 for a, b in zip(decoded, floats.data[0].embedding))
    assert floats.usage.prompt_tokens == 2


def test_cohere_embeddings(bedrock, mock, test_id):
    r = bedrock.request("POST", "/v1/embeddings", {"model": "cohere-embed", "input": ["first text", "second"]},
                        {"x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert all(len(d["embedding"]) == 1024 for d in body["data"])
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}, "Cohere on Bedrock reports no token count"
    sent = mock.only_request(test_id)
    assert sent["path"] == "/model/cohere.embed-english-v3/invoke"
    assert sent["body"] == {"texts": ["first text", "second"], "input_type": "search_document"}


def test_embeddings_errors_are_openai_errors(bedrock, test_id):
    r = bedrock.request("POST", "/v1/embeddings", {"model": "titan", "input": "x"}, {"x-test-id": test_id, "x-mock-status": "429"})
    assert r.status == 429 and r.error["code"] == "rate_limit_exceeded"
    r = bedrock.request("POST", "/v1/embeddings", {"model": "bedrock-claude", "input": "x"}, {"x-test-id": test_id})
    assert r.status == 400 and r.error["param"] == "model"
