"""The Anthropic Messages API as a client API (`POST /v1/messages`, `/v1/messages/count_tokens`)
through real Envoy, driven by the official anthropic SDK: passed through byte for byte to Anthropic
and to Claude on Bedrock (InvokeModel) and Vertex AI (rawPredict), translated both ways for every
other provider (answers, Anthropic's stream grammar, tools, thinking), Anthropic-shaped errors,
virtual keys and budgets, and accounting equal to chat's."""
from __future__ import annotations

import base64
import http.client
import json
import pathlib
import re
import time
from decimal import Decimal

import anthropic
import pydantic
import pytest
from anthropic.types import (Message, RawContentBlockDeltaEvent, RawContentBlockStartEvent, RawContentBlockStopEvent,
                             RawMessageDeltaEvent, RawMessageStartEvent, RawMessageStopEvent, RawMessageStreamEvent)
from anthropic.types.shared import ErrorResponse

from client_apis import (ACCOUNTED, AZURE, CONVERSATION_CHAT, OTHER_KINDS, accounted_as_chat, every_kind_gateway, log_entries,
                         mock_cache_headers, next_entry, sha, split_at_model)
from harness import stream

FIXTURES = pathlib.Path(__file__).parent / "fixtures"

KEY = "tg-messages-test-key"          # any model
NARROW = "tg-messages-narrow-key"     # gpt-4o-mini only
SPENT = "tg-messages-spent-key"       # in a team whose daily budget no request fits in

# Provider name (its kind, except the OpenAI-compatible host) → client-facing model, upstream model.
TARGETS = {
    "anthropic": ("claude-sonnet", "claude-sonnet-4-5-20250929"),
    "openai": ("gpt-4o-mini", "gpt-4o-mini"),
    "azure": ("azure-gpt", "gpt-4o-prod"),
    "deepseek": ("deepseek-chat", "deepseek-chat"),
    "gemini": ("gemini-flash", "gemini-2.5-flash"),
    # Claude in Anthropic's own API on both clouds: InvokeModel and the Anthropic publisher.
    "bedrock": ("bedrock-sonnet", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "vertex": ("vertex-claude", "claude-sonnet-4-5@20250929"),
    "cohere": ("command-a", "command-a-03-2025"),
}
PROVIDERS = list(TARGETS)
OPENAI_SHAPED = {"openai", "azure", "deepseek"}
# A Bedrock model that is not Anthropic's, which Messages clients reach through Converse.
NOVA = ("bedrock-nova", "us.amazon.nova-pro-v1:0")


WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
# A 1x1 PNG.
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    """The demo gateway with one provider of every kind on the mock, virtual keys, a spent team
    budget, prices for every upstream model, and the access log in a file."""
    workdir = tmp_path_factory.mktemp("messages")
    providers = {"azure": {**AZURE, "api_version": "2024-10-21"}, **OTHER_KINDS}
    models = {
        # Claude Code's own name for the model, served under the dated upstream name.
        "claude-sonnet-4-5": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929"},
        # Targets of their own for provider 429s: a 429 marks its target rate-limited for a while.
        "claude-limited": {"provider": "anthropic", "model": "claude-haiku-4-5-20251001"},
        "gpt-limited": {"provider": "openai", "model": "gpt-4.1-nano"},
        NOVA[0]: {"provider": "bedrock", "model": NOVA[1]},
    }
    auth = {"keys": [
        {"id": "messages", "sha256": sha(KEY)},
        {"id": "narrow", "sha256": sha(NARROW), "models": ["gpt-4o-mini"]},
        {"id": "spent", "sha256": sha(SPENT), "team": "spent"},
    ]}
    teams = {"spent": {"budget": {"daily_usd": "0.000001"}}}
    envoy = every_kind_gateway(mock, workdir, TARGETS, providers, models, auth, teams)
    yield envoy
    envoy.stop()


@pytest.fixture(autouse=True)
def no_sdk_environment(monkeypatch):
    """The SDK reads credentials and its base URL from the environment; a developer's must not leak in."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def sdk(gw, key: str = KEY, **options) -> anthropic.Anthropic:
    """The official client pointed at the gateway; no retries, so every error reaches the test."""
    return anthropic.Anthropic(base_url=f"http://127.0.0.1:{gw.port}", api_key=key, max_retries=0, **options)


def model_of(provider: str) -> str:
    return NOVA[0] if provider == NOVA[0] else TARGETS[provider][0]


# ---- reading answers -----------------------------------------------------------------------------

STREAM_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
EVENT_CLASSES = (RawMessageStartEvent, RawContentBlockStartEvent, RawContentBlockDeltaEvent, RawContentBlockStopEvent,
                 RawMessageDeltaEvent, RawMessageStopEvent)
# The delta types each block type may receive.
DELTAS = {"text": {"text_delta", "citations_delta"}, "thinking": {"thinking_delta", "signature_delta"},
          "redacted_thinking": set(), "tool_use": {"input_json_delta"}}


def sse(body: bytes) -> list[tuple[str | None, dict]]:
    """Each SSE event of a body as (its `event:` name, its JSON data)."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:"):].removeprefix(" "))
        assert data, f"an event without data: {block!r}"
        events.append((name, json.loads("\n".join(data))))
    return events


def strictly_typed(events: list[tuple[str | None, dict]]) -> list:
    """Validates every event against the SDK's own types (which its stream parser does not:
    it builds them without validation) and checks that each names its type in `event:`, as
    Anthropic's do and as SDKs dispatching on the event name need."""
    typed = []
    for name, data in events:
        assert name == data.get("type"), f"`event: {name}` for data of type {data.get('type')!r}"
        if name == "ping":
            assert data == {"type": "ping"}
            continue
        if name == "error":
            ErrorResponse.model_validate(data)
            typed.append(data)
            continue
        typed.append(STREAM_EVENT.validate_python(data))
    return typed


def check_grammar(events: list):
    """Anthropic's event grammar: message_start; then each content block in turn (start, its
    deltas, stop), indexes counting up from 0; then message_delta and message_stop."""
    assert all(isinstance(e, EVENT_CLASSES) for e in events), [type(e).__name__ for e in events]
    assert isinstance(events[0], RawMessageStartEvent), events[0]
    assert events[0].message.content == [] and events[0].message.stop_reason is None
    assert isinstance(events[-2], RawMessageDeltaEvent) and isinstance(events[-1], RawMessageStopEvent), events[-2:]
    assert events[-2].delta.stop_reason is not None
    open_block, next_index = None, 0
    for event in events[1:-2]:
        if isinstance(event, RawContentBlockStartEvent):
            assert open_block is None, f"block {event.index} started inside block {open_block.index}"
            assert event.index == next_index, (event.index, next_index)
            open_block, next_index = event, next_index + 1
        elif isinstance(event, RawContentBlockDeltaEvent):
            assert open_block is not None and event.index == open_block.index, f"a delta for block {event.index} outside it"
            assert event.delta.type in DELTAS[open_block.content_block.type], (open_block.content_block.type, event.delta.type)
        elif isinstance(event, RawContentBlockStopEvent):
            assert open_block is not None and event.index == open_block.index, f"block {event.index} stopped twice or never started"
            open_block = None
        else:
            raise AssertionError(f"{event.type} between message_start and message_delta")
    assert open_block is None, f"block {open_block.index} never stopped"


def summary(message: Message) -> dict:
    """What streamed and whole answers must agree on (ids of messages and tool calls are fresh each time)."""
    assert message.type == "message" and message.role == "assistant"
    blocks = []
    for block in message.content:
        if block.type == "tool_use":
            assert block.id.startswith("toolu_"), block.id
            blocks.append(("tool_use", block.name, block.input))
        elif block.type == "thinking":
            blocks.append(("thinking", block.thinking))
        else:
            blocks.append((block.type, block.text))
    u = message.usage
    usage = (u.input_tokens, u.output_tokens, u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0)
    return {"content": blocks, "stop_reason": message.stop_reason, "stop_sequence": message.stop_sequence, "usage": usage}


def raw_stream(gw, body: dict, headers: dict | None = None, path: str = "/v1/messages"):
    return stream(gw.port, path, body, {"x-api-key": KEY, "anthropic-version": "2023-06-01", **(headers or {})})


# ---- answers and streams, every provider ---------------------------------------------------------

HELLO = dict(max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Hello there"}])
WEATHER_QUESTION = dict(max_tokens=200, tools=[WEATHER], messages=[{"role": "user", "content": "What's the weather in Paris?"}])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_create_answers_in_anthropics_shape(gw, mock, provider, test_id):
    raw = sdk(gw).messages.with_raw_response.create(model=model_of(provider), **HELLO, extra_headers={"x-test-id": test_id})
    assert raw.headers["x-tollgate-provider"] == provider
    message = raw.parse()
    Message.model_validate(message.model_dump())  # every required member present, of its type
    assert message.model == model_of(provider) or message.model == TARGETS[provider][1]
    assert summary(message) == {"content": [("text", "Hello! You said: Hello there")], "stop_reason": "end_turn",
                                "stop_sequence": None, "usage": (4, 5, 0, 0)}, "2 system + 2 user words in, 5 words out"
    sent = mock.only_request(test_id)
    assert KEY not in json.dumps(sent["headers"]), "the virtual key never reaches a provider"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("ask", [HELLO, WEATHER_QUESTION], ids=["text", "tool_use"])
def test_streamed_events_follow_anthropics_grammar_and_agree_with_the_whole_answer(gw, provider, ask):
    client = sdk(gw)
    model = model_of(provider)
    events = list(client.messages.create(model=model, **ask, stream=True))
    check_grammar(events)

    with client.messages.stream(model=model, **ask) as s:
        streamed = s.get_final_message()
    whole = client.messages.create(model=model, **ask)
    assert summary(streamed) == summary(whole)
    if ask is WEATHER_QUESTION:
        assert summary(whole)["content"] == [("text", "Let me check."), ("tool_use", "get_weather", {"city": "Paris"})]
        assert whole.stop_reason == "tool_use"

    s = raw_stream(gw, {"model": model, **ask, "stream": True})
    assert s.status == 200 and s.error is None, s.body[:500]
    assert s.headers["content-type"].startswith("text/event-stream")
    check_grammar(strictly_typed(sse(s.body)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_image_blocks_reach_every_provider_as_images(gw, provider):
    content = [{"type": "text", "text": "look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}]
    message = sdk(gw).messages.create(model=model_of(provider), max_tokens=100, messages=[{"role": "user", "content": content}])
    # The mock answers "[image]" for an image it received as one, and counts 85 tokens for it.
    assert summary(message)["content"] == [("text", "Hello! You said: look [image]")]
    assert message.usage.input_tokens == 1 + 85


@pytest.mark.parametrize("provider", ["anthropic", "bedrock", "vertex", "cohere"])
def test_stop_sequences_stop_the_answer_and_are_reported(gw, provider):
    """The providers that say a stop sequence ended the answer (OpenAI and Gemini say only "stop")."""
    message = sdk(gw).messages.create(model=model_of(provider), max_tokens=100, stop_sequences=["there"],
                                      messages=[{"role": "user", "content": "hello there"}])
    assert message.content[0].text == "Hello! You said: hello "
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence in ("there", None)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_tokens_cuts_the_answer(gw, provider):
    message = sdk(gw).messages.create(model=model_of(provider), max_tokens=3, messages=[{"role": "user", "content": "one two three four"}])
    assert (message.content[0].text, message.stop_reason, message.usage.output_tokens) == ("Hello! You said:", "max_tokens", 3)


def test_request_members_are_translated_for_openai(gw, mock, test_id):
    sdk(gw).messages.create(
        model="gpt-4o-mini", max_tokens=300, temperature=0.4, top_p=0.9, stop_sequences=["END"],
        system=[{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in English.", "cache_control": {"type": "ephemeral"}}],
        metadata={"user_id": "user-42"}, tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "hi"}], extra_headers={"x-test-id": test_id})
    b = mock.only_request(test_id)["body"]
    assert b["model"] == "gpt-4o-mini"
    assert b.get("max_tokens", b.get("max_completion_tokens")) == 300
    assert (b["temperature"], b["top_p"], b["stop"]) == (0.4, 0.9, ["END"])
    system = [m for m in b["messages"] if m["role"] in ("system", "developer")]
    assert "You are terse." in json.dumps(system) and "Answer in English." in json.dumps(system)
    assert b["messages"][-1] == {"role": "user", "content": "hi"} or b["messages"][-1]["content"] == [{"type": "text", "text": "hi"}]
    assert b["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": WEATHER["description"],
                                                            "parameters": WEATHER["input_schema"]}}]
    assert b["tool_choice"] == "required" and b["parallel_tool_calls"] is False
    assert "user-42" in (b.get("user"), b.get("safety_identifier")), "metadata.user_id names the end user"


@pytest.mark.parametrize("choice,expected", [({"type": "none"}, "none"), ({"type": "auto"}, "auto"),
                                             ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}})])
def test_tool_choice_reaches_openai(gw, mock, test_id, choice, expected):
    message = sdk(gw).messages.create(model="gpt-4o-mini", **WEATHER_QUESTION, tool_choice=choice, extra_headers={"x-test-id": test_id})
    assert mock.only_request(test_id)["body"]["tool_choice"] == expected
    assert message.stop_reason == ("end_turn" if choice["type"] == "none" else "tool_use")


# ---- tool use round trip -------------------------------------------------------------------------

def upstream_tool_turns(provider: str, body: dict) -> tuple[tuple, tuple]:
    """(call id, name, arguments) of the assistant's tool call and (call id, text of the result,
    is_error) of the tool result, as the provider received them in its own format."""
    if provider in OPENAI_SHAPED or provider == "cohere":
        assistant = next(m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
        call = assistant["tool_calls"][0]
        result = next(m for m in body["messages"] if m["role"] == "tool")
        arguments = call["function"]["arguments"]
        return ((call["id"], call["function"]["name"], json.loads(arguments) if isinstance(arguments, str) else arguments),
                (result["tool_call_id"], json.dumps(result["content"]), None))
    if provider == "gemini":
        parts = [p for c in body["contents"] for p in c["parts"]]
        call = next(p["functionCall"] for p in parts if "functionCall" in p)
        result = next(p["functionResponse"] for p in parts if "functionResponse" in p)
        # Gemini pairs a result with its call by name (ids are optional).
        return (call["name"], call["name"], call["args"]), (result["name"], json.dumps(result["response"]), None)
    if provider == NOVA[0]:
        blocks = [b for m in body["messages"] for b in m["content"]]
        call = next(b["toolUse"] for b in blocks if "toolUse" in b)
        result = next(b["toolResult"] for b in blocks if "toolResult" in b)
        return ((call["toolUseId"], call["name"], call["input"]),
                (result["toolUseId"], json.dumps(result["content"]), result.get("status") == "error"))
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    call = next(b for b in blocks if b["type"] == "tool_use")
    result = next(b for b in blocks if b["type"] == "tool_result")
    return (call["id"], call["name"], call["input"]), (result["tool_use_id"], json.dumps(result["content"]), result.get("is_error"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_use_round_trip(gw, mock, provider, test_id):
    client = sdk(gw)
    model = model_of(provider)
    first = client.messages.create(model=model, **WEATHER_QUESTION, extra_headers={"x-test-id": test_id})
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.id.startswith("toolu_") and (call.name, call.input) == ("get_weather", {"city": "Paris"})

    history = [*WEATHER_QUESTION["messages"], {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]}]
    second = client.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=history, extra_headers={"x-test-id": test_id + "2"})
    assert summary(second)["content"] == [("text", "Tool results: 18C and sunny")]
    assert second.stop_reason == "end_turn"

    sent = mock.only_request(test_id + "2")["body"]
    (call_id, name, arguments), (result_id, result_text, _) = upstream_tool_turns(provider, sent)
    assert (name, arguments) == ("get_weather", {"city": "Paris"})
    assert result_id == call_id, "the result answers the call it was sent with"
    assert "18C and sunny" in result_text
    if provider == "anthropic":
        assert call_id == call.id, "passed through: Anthropic's own id"


@pytest.mark.parametrize("provider", ["anthropic", NOVA[0]])
def test_tool_results_marked_as_errors_stay_errors(gw, mock, provider, test_id):
    """Anthropic takes `is_error` as it is; Bedrock's Converse has its own `status: error`."""
    client = sdk(gw)
    first = client.messages.create(model=model_of(provider), **WEATHER_QUESTION)
    call = next(b for b in first.content if b.type == "tool_use")
    history = [*WEATHER_QUESTION["messages"], {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "is_error": True,
                                             "content": [{"type": "text", "text": "city not found"}]}]}]
    client.messages.create(model=model_of(provider), max_tokens=200, tools=[WEATHER], messages=history, extra_headers={"x-test-id": test_id})
    _, (_, text, is_error) = upstream_tool_turns(provider, mock.only_request(test_id)["body"])
    assert "city not found" in text and is_error is True


# ---- thinking ------------------------------------------------------------------------------------

# What each mock provider thinks, when asked to.
THOUGHTS = {"anthropic": "Let me think this through.", "gemini": "Thinking it over.", "bedrock": "Let me think this through.",
            "vertex": "Let me think this through."}
THINK = dict(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048}, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("provider", list(THOUGHTS))
def test_thinking_comes_back_as_thinking_blocks(gw, mock, provider, test_id):
    client = sdk(gw)
    whole = client.messages.create(model=model_of(provider), **THINK, extra_headers={"x-test-id": test_id})
    Message.model_validate(whole.model_dump())  # a thinking block carries a signature
    assert summary(whole)["content"] == [("thinking", THOUGHTS[provider]), ("text", "Hello! You said: hi")]

    events = list(client.messages.create(model=model_of(provider), **THINK, stream=True))
    check_grammar(events)
    thought = "".join(e.delta.thinking for e in events if isinstance(e, RawContentBlockDeltaEvent) and e.delta.type == "thinking_delta")
    assert thought == THOUGHTS[provider]
    with client.messages.stream(model=model_of(provider), **THINK) as s:
        assert summary(s.get_final_message()) == summary(whole)

    sent = mock.only_request(test_id)["body"]
    if provider == "gemini":
        assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    else:
        assert sent["thinking"] == THINK["thinking"]


# ---- Anthropic passthrough -----------------------------------------------------------------------

def test_a_claude_code_request_passes_through_byte_for_byte(gw, mock, test_id):
    body = (FIXTURES / "claude_code_messages_request.json").read_bytes()
    headers = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14", "x-test-id": test_id,
               "user-agent": "claude-cli/2.0.50 (external, cli)", "x-app": "cli"}
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request("POST", "/v1/messages?beta=true", body=body, headers=headers)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    assert response.status == 200, answer[:500]
    assert response.getheader("content-type").startswith("text/event-stream")

    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/messages"
    before, model, after = split_at_model(sent["raw_body"])
    client_before, client_model, client_after = split_at_model(body.decode())
    assert (client_model, model) == ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929")
    assert (before, after) == (client_before, client_after), "every byte but the model's name as the client sent it"
    assert sent["headers"]["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["headers"]["x-api-key"] == "test-anthropic-key", "the gateway's credentials replace the client's"

    assert sent["response_body"], "the mock recorded its answer"
    assert answer.decode() == sent["response_body"], "the stream reaches the client exactly as Anthropic sent it"
    events = strictly_typed(sse(answer))
    check_grammar(events)
    assert events[1].content_block.type == "thinking", "Claude thought first"


def test_versions_and_betas_are_forwarded_or_defaulted(gw, mock, test_id):
    client = sdk(gw)
    client.beta.messages.create(model="claude-sonnet", **HELLO, betas=["context-management-2025-06-27"],
                                context_management={"edits": [{"type": "clear_tool_uses_20250919"}]}, extra_headers={"x-test-id": test_id})
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["anthropic-beta"] == "context-management-2025-06-27"
    assert sent["body"]["context_management"] == {"edits": [{"type": "clear_tool_uses_20250919"}]}

    # no anthropic-version from the client: the provider's configured one
    r = gw.request("POST", "/v1/messages", {"model": "claude-sonnet", **HELLO}, {"x-api-key": KEY, "x-test-id": test_id + "v"})
    assert r.status == 200, r.body
    assert mock.only_request(test_id + "v")["headers"]["anthropic-version"] == "2023-06-01"


def test_a_whole_answer_passes_through_byte_for_byte(gw, mock, test_id):
    r = gw.request("POST", "/v1/messages", {"model": "claude-sonnet", **HELLO, "service_tier": "auto"},
                   {"x-api-key": KEY, "anthropic-version": "2023-06-01", "x-test-id": test_id, "x-mock-cache-read": "1"})
    assert r.status == 200, r.body
    assert r.body.decode() == mock.only_request(test_id)["response_body"]
    assert r.json()["usage"]["cache_read_input_tokens"] == 1


def test_authorization_bearer_carries_the_virtual_key_too(gw, mock, test_id):
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{gw.port}", auth_token=KEY, max_retries=0)
    assert client.messages.create(model="claude-sonnet", **HELLO, extra_headers={"x-test-id": test_id}).stop_reason == "end_turn"
    sent = mock.only_request(test_id)["headers"]
    assert sent["x-api-key"] == "test-anthropic-key" and "authorization" not in sent


# ---- errors --------------------------------------------------------------------------------------

def assert_anthropic_error(error: anthropic.APIStatusError, status: int, kind: str):
    assert error.status_code == status, error
    ErrorResponse.model_validate(error.body)
    assert error.body["type"] == "error" and error.body["error"]["type"] == kind and error.body["error"]["message"], error.body


def test_bad_or_missing_keys_get_authentication_errors(gw, mock, test_id):
    with pytest.raises(anthropic.AuthenticationError) as e:
        sdk(gw, "tg-not-a-key").messages.create(model="claude-sonnet", **HELLO, extra_headers={"x-test-id": test_id})
    assert_anthropic_error(e.value, 401, "authentication_error")
    r = gw.request("POST", "/v1/messages", {"model": "claude-sonnet", **HELLO}, {"anthropic-version": "2023-06-01"})
    assert r.status == 401 and r.json()["error"]["type"] == "authentication_error", r.body
    assert mock.requests(test_id) == []


def test_a_model_the_key_may_not_use_is_a_permission_error(gw):
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        sdk(gw, NARROW).messages.create(model="claude-sonnet", **HELLO)
    assert_anthropic_error(e.value, 403, "permission_error")


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_missing_max_tokens_is_an_invalid_request(gw, mock, provider, test_id):
    with pytest.raises(anthropic.BadRequestError) as e:
        sdk(gw).post("/v1/messages", body={"model": model_of(provider), "messages": [{"role": "user", "content": "hi"}]},
                     cast_to=Message, options={"headers": {"x-test-id": test_id}})
    assert_anthropic_error(e.value, 400, "invalid_request_error")
    assert "max_tokens" in e.value.body["error"]["message"]
    if provider != "anthropic":
        assert mock.requests(test_id) == [], "refused by the gateway"


def test_an_unknown_model_is_not_found(gw):
    with pytest.raises(anthropic.NotFoundError) as e:
        sdk(gw).messages.create(model="no-such-model", **HELLO)
    assert_anthropic_error(e.value, 404, "not_found_error")


@pytest.mark.parametrize("model", ["claude-limited", "gpt-limited"])
def test_a_provider_429_is_a_rate_limit_error(gw, model):
    with pytest.raises(anthropic.RateLimitError) as e:
        sdk(gw).messages.create(model=model, **HELLO, extra_headers={"x-mock-status": "429", "x-mock-retry-after": "1"})
    assert_anthropic_error(e.value, 429, "rate_limit_error")


def test_a_spent_budget_is_a_rate_limit_error(gw, mock, test_id):
    with pytest.raises(anthropic.RateLimitError) as e:
        sdk(gw, SPENT).messages.create(model="gpt-4o-mini", **HELLO, extra_headers={"x-test-id": test_id})
    assert_anthropic_error(e.value, 429, "rate_limit_error")
    assert mock.requests(test_id) == [], "refused before the provider"


@pytest.mark.parametrize("provider,fault", [("anthropic", "error-after-3"), ("openai", "error-after-2"), ("openai", "truncate-after-2"),
                                            ("bedrock", "error-after-3"), ("vertex", "error-after-3"), ("gemini", "truncate-after-2")])
def test_a_stream_failing_midway_ends_with_an_error_event(gw, provider, fault):
    """A provider's in-stream error, or a stream it ended early, becomes Anthropic's `event: error`."""
    body = {"model": model_of(provider), **HELLO, "messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}
    s = raw_stream(gw, body, {"x-mock-stream-fault": fault})
    assert s.status == 200 and s.error is None
    events = sse(s.body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "error", names
    assert "message_stop" not in names, "a failed stream never ends cleanly"
    error = strictly_typed(events[-1:])[0]
    assert error["error"]["type"] in ("api_error", "overloaded_error"), error

    with pytest.raises(anthropic.APIStatusError):
        for _ in sdk(gw).messages.create(**{k: v for k, v in body.items() if k != "stream"}, stream=True,
                                         extra_headers={"x-mock-stream-fault": fault}):
            pass


@pytest.mark.parametrize("provider", ["anthropic", "openai", "bedrock"])
def test_a_stream_the_provider_resets_midway_is_cut_off_not_ended(gw, provider):
    """Envoy resets the client's stream when the provider's connection dies after the answer began
    (as for chat: no filter can add an event then); what matters is that it never looks complete."""
    body = {"model": model_of(provider), **HELLO, "messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}
    s = raw_stream(gw, body, {"x-mock-stream-fault": "reset-after-3"})
    assert s.status == 200
    names = [name for name, _ in sse(s.body)]
    assert names[0] == "message_start" and "message_stop" not in names, names
    assert s.error is not None or names[-1] == "error", "the client can tell the answer is incomplete"


# ---- accounting ----------------------------------------------------------------------------------

CONVERSATION_MESSAGES = dict(system="Be brief.", messages=CONVERSATION_CHAT[1:])


def converse(gw, model: str, streamed: bool, headers: dict) -> Message:
    """The conversation's answer through the SDK, streamed (`get_final_message`) or whole."""
    client = sdk(gw)
    if not streamed:
        return client.messages.create(model=model, max_tokens=100, **CONVERSATION_MESSAGES, extra_headers=headers)
    with client.messages.stream(model=model, max_tokens=100, **CONVERSATION_MESSAGES, extra_headers=headers) as s:
        return s.get_final_message()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_messages_cost_what_chat_completions_cost(gw, provider, streamed):
    model, upstream = TARGETS[provider]
    via_chat = accounted_as_chat(gw, provider, model, upstream, KEY, streamed)

    before = len(log_entries(gw))
    message = converse(gw, model, streamed, mock_cache_headers(provider))
    via_messages = next_entry(gw, before, upstream)

    assert (via_chat.get("dialect"), via_messages.get("dialect")) == ("openai_chat", "anthropic_messages")
    assert {f: via_messages[f] for f in ACCOUNTED} == {f: via_chat[f] for f in ACCOUNTED}
    assert via_messages["key_id"] == "messages" and via_messages["completed"] is True
    assert Decimal(via_messages["cost_usd"]) > 0
    # Cohere bills without a cache discount, so chat accounts no cached tokens there either
    assert via_messages["cached_input_tokens"] == (0 if provider == "cohere" else 2) == (message.usage.cache_read_input_tokens or 0)
    if provider == "anthropic":
        assert via_messages["cache_write_tokens"] == 1 == message.usage.cache_creation_input_tokens
    # Anthropic counts input without the cached tokens; 2 system + 2 + 1 + 3 words in all
    cached = (message.usage.cache_read_input_tokens or 0) + (message.usage.cache_creation_input_tokens or 0)
    assert message.usage.input_tokens + cached == 8


# ---- count_tokens --------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", ["anthropic", "vertex"])
def test_count_tokens_is_answered_by_claude(gw, mock, provider, test_id):
    """By Anthropic, and by Vertex AI's Anthropic publisher (`count-tokens:rawPredict`, the model in the body)."""
    model, upstream = TARGETS[provider]
    raw = sdk(gw).messages.with_raw_response.count_tokens(
        model=model, system="Be brief.", tools=[WEATHER], messages=[{"role": "user", "content": "one two three"}],
        extra_headers={"x-test-id": test_id})
    # 2 system words, the tool's name, 3 message words
    assert raw.parse().input_tokens == 6
    assert "x-tollgate-estimate" not in raw.headers
    sent = mock.only_request(test_id)
    assert sent["body"]["model"] == upstream
    if provider == "anthropic":
        assert sent["path"] == "/v1/messages/count_tokens" and sent["headers"]["x-api-key"] == "test-anthropic-key"
    else:
        assert sent["path"] == "/v1/projects/tollgate-test/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
        assert sent["body"]["anthropic_version"] == "vertex-2023-10-16"


def test_count_tokens_for_other_providers_is_an_estimate(gw, mock, test_id):
    raw = sdk(gw).messages.with_raw_response.count_tokens(
        model="gpt-4o-mini", system="Be brief.", messages=[{"role": "user", "content": "one two three " * 50}],
        extra_headers={"x-test-id": test_id})
    assert raw.headers["x-tollgate-estimate"] == "1"
    counted = raw.parse().input_tokens
    assert isinstance(counted, int) and 100 <= counted <= 1000, counted
    assert mock.requests(test_id) == [], "OpenAI has no token counting endpoint to ask"


def test_count_tokens_is_answered_by_gemini_counttokens(gw, mock, test_id):
    raw = sdk(gw).messages.with_raw_response.count_tokens(
        model="gemini-flash", system="Be brief.", tools=[WEATHER], messages=[{"role": "user", "content": "one two three"}],
        extra_headers={"x-test-id": test_id})
    # The mock counts as it does for generateContent: 2 system words, the tool's name, 3 message words.
    assert raw.parse().input_tokens == 6
    assert "x-tollgate-estimate" not in raw.headers
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:countTokens"
    request = sent["body"]["generateContentRequest"]
    assert request["model"] == "models/gemini-2.5-flash"
    assert request["contents"][0]["parts"][0]["text"] == "one two three"
    assert request["systemInstruction"]["parts"][0]["text"] == "Be brief."


# ---- Claude on Bedrock (InvokeModel) and Vertex AI (the Anthropic publisher) -------------------------

HOSTED = {
    "bedrock": {"version": "bedrock-2023-05-31",
                "path": "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
                "stream_path": "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"},
    "vertex": {"version": "vertex-2023-10-16",
               "path": "/v1/projects/tollgate-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
               "stream_path": "/v1/projects/tollgate-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"},
}
CACHED = {"type": "ephemeral"}
# An earlier turn's signed thinking and cache_control on the system prompt, a tool and a message:
# all of it must reach Claude as the client wrote it.
SIGNED = dict(
    max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 2048},
    system=[{"type": "text", "text": "Be brief.", "cache_control": CACHED}],
    tools=[{**WEATHER, "cache_control": CACHED}],
    messages=[{"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?", "cache_control": CACHED}]},
              {"role": "assistant", "content": [
                  {"type": "thinking", "thinking": "I should call the tool.", "signature": "bW9jay10aGlua2luZy1zaWduYXR1cmU="},
                  {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C and sunny"}]}])


def bedrock_chunks(response_body: str) -> list[dict]:
    """The Anthropic events in Bedrock's event-stream answer (each `chunk` payload's base64 `bytes`)."""
    return [json.loads(base64.b64decode(b)) for b in re.findall(r'"bytes":"([A-Za-z0-9+/=]+)"', response_body)]


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_claude_on_bedrock_and_vertex_gets_the_clients_request_as_it_came(gw, mock, provider, streamed, test_id):
    hosted = HOSTED[provider]
    body = {"model": model_of(provider), **SIGNED, **({"stream": True} if streamed else {})}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14",
               "x-test-id": test_id}
    if streamed:
        answer = raw_stream(gw, body, headers)
        assert answer.status == 200 and answer.error is None, answer.body[:500]
        events = strictly_typed(sse(answer.body))
        check_grammar(events)
        assert events[1].content_block.type == "thinking" and events[1].content_block.signature == ""
    else:
        answer = gw.request("POST", "/v1/messages", body, headers)
        assert answer.status == 200, answer.body
        message = Message.model_validate(answer.json())
        assert [b.type for b in message.content] == ["thinking", "text"] and message.content[0].signature
        assert message.content[1].text == "Tool results: 18C and sunny"

    sent = mock.only_request(test_id)
    assert sent["path"] == hosted["stream_path" if streamed else "path"]
    expected = {k: v for k, v in body.items() if k != "model" and not (k == "stream" and provider == "bedrock")}
    expected["anthropic_version"] = hosted["version"]
    if provider == "bedrock":
        expected["anthropic_beta"] = ["interleaved-thinking-2025-05-14"]
        assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK/")
    else:
        assert sent["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14", "Vertex reads the betas' header"
        assert sent["headers"]["authorization"] == "Bearer test-vertex-token"
    assert sent["body"] == expected, "the client's members as it sent them, thinking signature and cache_control included"
    assert KEY not in json.dumps(sent["headers"])

    if not streamed:
        assert answer.body.decode() == sent["response_body"], "Claude's message as the platform sent it"
    elif provider == "vertex":
        assert answer.body.decode() == sent["response_body"], "Claude's events as Vertex sent them"
    else:
        assert [data for _, data in sse(answer.body)] == bedrock_chunks(sent["response_body"]), "each chunk's event as Claude wrote it"


@pytest.mark.parametrize("provider", ["bedrock", "vertex"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_claude_on_bedrock_and_vertex_is_accounted_with_its_cache_tokens(gw, provider, streamed):
    model, upstream = TARGETS[provider]
    cache = {"x-mock-cache-read": "2", "x-mock-cache-write": "1"}
    time.sleep(0.3)  # earlier tests' entries for this model are written (flushed every 100 ms)
    before = len(log_entries(gw))
    message = converse(gw, model, streamed, cache)
    entry = next_entry(gw, before, upstream)
    u = message.usage
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (2, 1)
    assert (entry["provider"], entry["dialect"], entry["stream"], entry["completed"]) == (provider, "anthropic_messages", streamed, True)
    assert (entry["input_tokens"], entry["cached_input_tokens"], entry["cache_write_tokens"], entry["output_tokens"]) == \
        (u.input_tokens, 2, 1, u.output_tokens)
    price = {"input": Decimal(3), "output": Decimal(15), "cache_read": Decimal("0.30"), "cache_write": Decimal("3.75")}
    cost = (u.input_tokens * price["input"] + 2 * price["cache_read"] + 1 * price["cache_write"] + u.output_tokens * price["output"]) / 1_000_000
    assert Decimal(entry["cost_usd"]) == cost


def test_chat_and_responses_clients_reach_claude_on_vertex_translated(gw, mock, test_id):
    r = gw.chat({"model": "vertex-claude", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello vertex"}],
                 "max_tokens": 50}, {"authorization": f"Bearer {KEY}", "x-test-id": test_id})
    assert r.status == 200, r.body
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "Hello! You said: hello vertex"
    assert body["usage"]["prompt_tokens"] == 4
    sent = mock.only_request(test_id)
    assert sent["path"] == HOSTED["vertex"]["path"]
    assert sent["body"] == {"max_tokens": 50, "system": [{"type": "text", "text": "Be brief."}],
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello vertex"}]}],
                            "anthropic_version": "vertex-2023-10-16"}

    s = gw.stream({"model": "vertex-claude", "messages": [{"role": "user", "content": "hello vertex"}], "stream": True,
                   "stream_options": {"include_usage": True}}, {"authorization": f"Bearer {KEY}", "x-test-id": test_id + "s"})
    assert s.status == 200 and s.error is None, s.body[:300]
    chunks = [json.loads(line[len("data: "):]) for line in s.body.decode().split("\n") if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "Hello! You said: hello vertex"
    assert chunks[-1]["usage"]["prompt_tokens"] == 2
    sent = mock.only_request(test_id + "s")
    assert sent["path"] == HOSTED["vertex"]["stream_path"] and sent["body"]["stream"] is True

    # A Responses client too.
    r = gw.request("POST", "/v1/responses", {"model": "vertex-claude", "input": "hello vertex", "max_output_tokens": 50},
                   {"authorization": f"Bearer {KEY}", "x-test-id": test_id + "r"})
    assert r.status == 200, r.body
    texts = [c["text"] for item in r.json()["output"] if item["type"] == "message" for c in item["content"]]
    assert texts == ["Hello! You said: hello vertex"]
    sent = mock.only_request(test_id + "r")
    assert sent["path"] == HOSTED["vertex"]["path"] and sent["body"]["anthropic_version"] == "vertex-2023-10-16"


def test_messages_clients_reach_bedrock_models_not_anthropics_through_converse(gw, mock, test_id):
    message = sdk(gw).messages.create(model=NOVA[0], **HELLO, extra_headers={"x-test-id": test_id})
    assert summary(message)["content"] == [("text", "Hello! You said: Hello there")]
    sent = mock.only_request(test_id)
    assert sent["path"] == "/model/us.amazon.nova-pro-v1%3A0/converse"
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"text": "Hello there"}]}]
