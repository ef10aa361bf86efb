"""The OpenAI Responses API as a client API (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`)
through real Envoy, driven by the official openai SDK: passed through byte for byte to OpenAI and
Azure, translated both ways for every other provider (answers, the typed event stream, function
calls, structured output, reasoning), OpenAI-shaped errors, and accounting equal to chat's."""
from __future__ import annotations

import http.client
import json
import pathlib
import re
from decimal import Decimal

import openai
import pydantic
import pytest
from openai.types.responses import (Response, ResponseCompletedEvent, ResponseContentPartAddedEvent, ResponseContentPartDoneEvent,
                                    ResponseCreatedEvent, ResponseErrorEvent, ResponseFunctionCallArgumentsDeltaEvent,
                                    ResponseFunctionCallArgumentsDoneEvent, ResponseIncompleteEvent, ResponseInProgressEvent,
                                    ResponseOutputItemAddedEvent, ResponseOutputItemDoneEvent, ResponseReasoningSummaryPartAddedEvent,
                                    ResponseReasoningSummaryPartDoneEvent, ResponseReasoningSummaryTextDeltaEvent,
                                    ResponseReasoningSummaryTextDoneEvent, ResponseStreamEvent, ResponseTextDeltaEvent,
                                    ResponseTextDoneEvent)

from client_apis import (ACCOUNTED, AZURE, CONVERSATION_CHAT, OTHER_KINDS, accounted_as_chat, every_kind_gateway, log_entries,
                         mock_cache_headers, next_entry, sha, split_at_model)
from harness import stream

FIXTURES = pathlib.Path(__file__).parent / "fixtures"

KEY = "tg-responses-test-key"

# Provider name → client-facing model, upstream model.
TARGETS = {
    "openai": ("gpt-4o-mini", "gpt-4o-mini"),
    "azure": ("azure-gpt", "gpt-4o-prod"),
    "azure_dated": ("azure-dated", "gpt-4o-dated"),
    "anthropic": ("claude-sonnet", "claude-sonnet-4-5-20250929"),
    "deepseek": ("deepseek-chat", "deepseek-chat"),
    "gemini": ("gemini-flash", "gemini-2.5-flash"),
    "bedrock": ("bedrock-sonnet", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    "cohere": ("command-a", "command-a-03-2025"),
}
PROVIDERS = list(TARGETS)
# Those that speak the Responses API themselves and get the client's bytes.
PASSTHROUGH = ["openai", "azure", "azure_dated"]
TRANSLATED = [p for p in PROVIDERS if p not in PASSTHROUGH]
# Where each passthrough provider is asked: the mock's path and query.
UPSTREAM_PATHS = {"openai": ("/v1/responses", None), "azure": ("/openai/v1/responses", None),
                  "azure_dated": ("/openai/responses", "api-version=2025-04-01-preview")}


WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather for a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}
WEATHER_SCHEMA = {"type": "json_schema", "name": "weather", "strict": True,
                  "schema": {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
                             "required": ["city", "temp"], "additionalProperties": False}}
# What the mock's reasoning models say they thought (the Responses mock for OpenAI and Azure).
THOUGHTS = {"openai": "Working through the question first.", "anthropic": "Let me think this through.", "gemini": "Thinking it over.",
            "bedrock": "Weighing it up."}
REASONING_MODELS = {"openai": "gpt-5-mini", "anthropic": "claude-sonnet", "gemini": "gemini-flash", "bedrock": "bedrock-sonnet"}


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    """The demo gateway with one provider of every kind on the mock (Azure twice: the v1 API and a
    dated preview version), a virtual key, prices for every upstream model, and the access log in
    a file."""
    workdir = tmp_path_factory.mktemp("responses")
    providers = {"azure": {**AZURE, "api_version": "v1"}, "azure_dated": {**AZURE, "api_version": "2025-04-01-preview"}, **OTHER_KINDS}
    models = {
        "gpt-5-mini": {"provider": "openai", "model": "gpt-5-mini"},
        "gpt-5-codex": {"provider": "openai", "model": "gpt-5-codex"},
    }
    envoy = every_kind_gateway(mock, workdir, TARGETS, providers, models, {"keys": [{"id": "responses", "sha256": sha(KEY)}]})
    yield envoy
    envoy.stop()


@pytest.fixture(autouse=True)
def no_sdk_environment(monkeypatch):
    """The SDK reads credentials and its base URL from the environment; a developer's must not leak in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


def sdk(gw, key: str = KEY) -> openai.OpenAI:
    """The official client pointed at the gateway; no retries, so every error reaches the test."""
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key=key, max_retries=0)


def model_of(provider: str) -> str:
    return TARGETS[provider][0]


# ---- reading answers -----------------------------------------------------------------------------

STREAM_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
# The events that may come between an item's output_item.added and its output_item.done.
ITEM_EVENTS = {
    "message": {ResponseContentPartAddedEvent, ResponseTextDeltaEvent, ResponseTextDoneEvent, ResponseContentPartDoneEvent},
    "reasoning": {ResponseReasoningSummaryPartAddedEvent, ResponseReasoningSummaryTextDeltaEvent, ResponseReasoningSummaryTextDoneEvent,
                  ResponseReasoningSummaryPartDoneEvent},
    "function_call": {ResponseFunctionCallArgumentsDeltaEvent, ResponseFunctionCallArgumentsDoneEvent},
}


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
    """Validates every event strictly against the SDK's own types (which its stream parser does
    not: it builds them without validation), and checks that each names its type in `event:`,
    as OpenAI's do, and that sequence numbers count up from 0."""
    typed = []
    for position, (name, data) in enumerate(events):
        assert name == data.get("type"), f"`event: {name}` for data of type {data.get('type')!r}"
        try:
            event = STREAM_EVENT.validate_python(data, strict=True)
        except pydantic.ValidationError as e:
            raise AssertionError(f"event {position} is none of the SDK's stream events ({e.error_count()} mismatches): {data}") from None
        assert event.sequence_number == position, [e.get("sequence_number") for _, e in events]
        typed.append(event)
    return typed


def check_grammar(events: list, finished=(ResponseCompletedEvent,)):
    """The Responses stream grammar: response.created and response.in_progress; then each output
    item in turn (output_item.added, the events of its kind, output_item.done), output indexes
    counting up from 0, deltas adding up to what their done event says; then the final event,
    whose response lists every item as its output_item.done did, with usage."""
    assert isinstance(events[0], ResponseCreatedEvent) and isinstance(events[1], ResponseInProgressEvent), events[:2]
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert isinstance(events[-1], finished), events[-1]
    final = events[-1].response
    assert final.usage is not None and final.id == events[0].response.id
    open_item, next_index, done_items = None, 0, []
    texts: dict = {}
    for event in events[2:-1]:
        if isinstance(event, ResponseOutputItemAddedEvent):
            assert open_item is None, f"item {event.output_index} added inside item {open_item.output_index}"
            assert event.output_index == next_index, (event.output_index, next_index)
            open_item, next_index, texts = event, next_index + 1, {}
        elif isinstance(event, ResponseOutputItemDoneEvent):
            assert open_item is not None and event.output_index == open_item.output_index, f"item {event.output_index} done twice or never added"
            assert event.item.type == open_item.item.type and event.item.id == open_item.item.id
            done_items.append(event.item)
            open_item = None
        else:
            assert open_item is not None, f"{event.type} outside any item"
            assert type(event) in ITEM_EVENTS[open_item.item.type], (open_item.item.type, event.type)
            assert event.output_index == open_item.output_index and event.item_id == open_item.item.id, event
            if isinstance(event, (ResponseTextDeltaEvent, ResponseReasoningSummaryTextDeltaEvent, ResponseFunctionCallArgumentsDeltaEvent)):
                key = (type(event).__name__.replace("Delta", "Done"), getattr(event, "content_index", getattr(event, "summary_index", 0)))
                texts[key] = texts.get(key, "") + event.delta
            elif isinstance(event, (ResponseTextDoneEvent, ResponseReasoningSummaryTextDoneEvent)):
                index = getattr(event, "content_index", getattr(event, "summary_index", 0))
                assert texts.get((type(event).__name__, index), "") == event.text, "the deltas add up to the text"
            elif isinstance(event, ResponseFunctionCallArgumentsDoneEvent):
                assert texts.get((type(event).__name__, 0), "") == event.arguments, "the deltas add up to the arguments"
    assert open_item is None, f"item {open_item.output_index} never done"
    assert [i.model_dump() for i in done_items] == [i.model_dump() for i in final.output], "the final response lists the items as done"


def summary(response: Response) -> dict:
    """What streamed and whole answers must agree on (ids are fresh each time)."""
    assert response.object == "response" and response.id.startswith("resp"), response.id
    items = []
    for item in response.output:
        if item.type == "message":
            assert item.role == "assistant" and item.id.startswith("msg"), item
            items.append(("message", "".join(part.text for part in item.content)))
        elif item.type == "function_call":
            assert item.call_id and item.id.startswith("fc"), item
            items.append(("function_call", item.name, json.loads(item.arguments)))
        elif item.type == "reasoning":
            assert item.id.startswith("rs"), item
            items.append(("reasoning", [part.text for part in item.summary]))
        else:
            items.append((item.type,))
    u = response.usage
    usage = (u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens, u.output_tokens_details.reasoning_tokens)
    reason = response.incomplete_details.reason if response.incomplete_details else None
    return {"output": items, "status": response.status, "incomplete": reason, "usage": usage}


def headers(test_id: str | None = None, **extra) -> dict:
    return {"authorization": f"Bearer {KEY}", **({"x-test-id": test_id} if test_id else {}), **extra}


def raw_stream(gw, body: dict, extra: dict | None = None):
    return stream(gw.port, "/v1/responses", body, {**headers(), **(extra or {})})


def post_raw(gw, body: bytes, extra: dict) -> tuple[int, dict, bytes]:
    """Sends these exact bytes to the gateway's /v1/responses."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request("POST", "/v1/responses", body=body, headers={"content-type": "application/json", **headers(), **extra})
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, answer


# ---- answers and streams, every provider ---------------------------------------------------------

HELLO = dict(instructions="Be brief.", input="Hello there")
WEATHER_QUESTION = dict(tools=[WEATHER], input=[{"role": "user", "content": "What's the weather in Paris?"}])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_create_answers_in_the_responses_shape(gw, mock, provider, test_id):
    raw = sdk(gw).responses.with_raw_response.create(model=model_of(provider), **HELLO, extra_headers={"x-test-id": test_id})
    assert raw.headers["x-tollgate-provider"] == provider
    Response.model_validate_json(raw.content, strict=True)  # every required member present, of its type
    response = raw.parse()
    assert response.model in TARGETS[provider]
    assert response.output_text == "Hello! You said: Hello there"
    assert summary(response) == {"output": [("message", "Hello! You said: Hello there")], "status": "completed", "incomplete": None,
                                 "usage": (4, 0, 5, 0)}, "2 instruction + 2 input words in, 5 words out"
    assert response.output[0].status == "completed" and response.output[0].content[0].annotations == []
    sent = mock.only_request(test_id)
    assert KEY not in json.dumps(sent["headers"]), "the virtual key never reaches a provider"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("ask", [HELLO, WEATHER_QUESTION], ids=["text", "function_call"])
def test_streamed_events_follow_the_grammar_and_agree_with_the_whole_answer(gw, provider, ask):
    client = sdk(gw)
    model = model_of(provider)
    events = list(client.responses.create(model=model, **ask, stream=True))
    check_grammar(events)

    with client.responses.stream(model=model, **ask) as s:
        streamed = s.get_final_response()
    whole = client.responses.create(model=model, **ask)
    assert summary(streamed) == summary(whole) == summary(events[-1].response)
    if ask is WEATHER_QUESTION:
        assert summary(whole)["output"] == [("message", "Let me check."), ("function_call", "get_weather", {"city": "Paris"})]

    s = raw_stream(gw, {"model": model, **ask, "stream": True})
    assert s.status == 200 and s.error is None, s.body[:500]
    assert s.headers["content-type"].startswith("text/event-stream")
    check_grammar(strictly_typed(sse(s.body)))


# A 1x1 PNG.
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_input_images_reach_every_provider_as_images(gw, provider):
    content = [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"}]
    response = sdk(gw).responses.create(model=model_of(provider), input=[{"role": "user", "content": content}])
    # The mock answers "[image]" for an image it received as one, and counts 85 tokens for it.
    assert response.output_text == "Hello! You said: look [image]"
    assert response.usage.input_tokens == 1 + 85


@pytest.mark.parametrize("provider", PROVIDERS)
def test_max_output_tokens_leaves_the_response_incomplete(gw, provider):
    ask = dict(model=model_of(provider), max_output_tokens=16, input="please write 40 words")
    whole = sdk(gw).responses.create(**ask)
    assert (whole.status, whole.incomplete_details.reason, whole.usage.output_tokens) == ("incomplete", "max_output_tokens", 16)
    s = raw_stream(gw, {**ask, "stream": True})
    events = strictly_typed(sse(s.body))
    check_grammar(events, finished=(ResponseIncompleteEvent,))
    assert summary(events[-1].response) == summary(whole)


# ---- passthrough to OpenAI and Azure -------------------------------------------------------------

@pytest.mark.parametrize("provider", PASSTHROUGH)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_openai_and_azure_get_the_clients_bytes_and_the_client_gets_theirs(gw, mock, provider, streamed, test_id):
    # Spacing, member order and escapes no re-serialization would keep; members only OpenAI knows.
    body = ('{ "input" : [{"role":"user","content":[{"type":"input_text","text":"caf\\u00e9 \u00e9t\u00e9"}]}],\n'
            f' "model":"{model_of(provider)}", "store":false, "truncation":"auto", "service_tier":"auto",'
            ' "metadata":{"run":"1"}, "prompt_cache_key":"k-1", "text":{"verbosity":"low"},'
            f' "max_output_tokens":1000, "stream":{json.dumps(streamed)}}}').encode()
    status, got_headers, answer = post_raw(gw, body, {"x-test-id": test_id})
    assert status == 200, answer[:500]
    assert got_headers["x-tollgate-provider"] == provider

    sent = mock.only_request(test_id)
    assert (sent["path"], sent["query"]) == UPSTREAM_PATHS[provider]
    before, model, after = split_at_model(sent["raw_body"])
    client_before, client_model, client_after = split_at_model(body.decode())
    assert (client_model, model) == TARGETS[provider]
    assert (before, after) == (client_before, client_after), "every byte but the model's name as the client sent it"
    auth = "api-key" if provider.startswith("azure") else "authorization"
    assert sent["headers"][auth] in ("test-azure-key", "Bearer test-openai-key"), "the gateway's credentials replace the client's"

    assert sent["response_body"], "the mock recorded its answer"
    assert answer.decode() == sent["response_body"], "the answer reaches the client exactly as the provider sent it"
    if streamed:
        assert got_headers["content-type"].startswith("text/event-stream")
        check_grammar(strictly_typed(sse(answer)))
    else:
        Response.model_validate_json(answer, strict=True)


def test_the_parameter_policy_drops_what_reasoning_models_refuse(gw, mock, test_id):
    """OpenAI's reasoning models refuse sampling members (the mock as OpenAI does); the default
    policy drops them from the passthrough too, and says so."""
    raw = sdk(gw).responses.with_raw_response.create(model="gpt-5-mini", input="hi", temperature=0.5, top_p=0.9, max_output_tokens=500,
                                                     extra_headers={"x-test-id": test_id})
    assert sorted(raw.headers["x-tollgate-dropped-params"].split(",")) == ["temperature", "top_p"]
    assert raw.parse().output_text == "Hello! You said: hi"
    assert mock.only_request(test_id)["body"] == {"model": "gpt-5-mini", "input": "hi", "max_output_tokens": 500}


def test_a_codex_request_passes_through_to_openai_untouched(gw, mock, test_id):
    body = (FIXTURES / "codex_responses_request.json").read_bytes()
    status, got_headers, answer = post_raw(gw, body, {"x-test-id": test_id, "originator": "codex_cli_rs",
                                                      "user-agent": "codex_cli_rs/0.58.0 (Debian 13; x86_64) xterm-256color"})
    assert status == 200, answer[:500]
    assert got_headers["content-type"].startswith("text/event-stream")
    sent = mock.only_request(test_id)
    assert sent["path"] == "/v1/responses"
    assert sent["raw_body"] == body.decode(), "the model's name is the upstream one already: not a byte changes"
    assert answer.decode() == sent["response_body"], "the stream reaches Codex exactly as OpenAI sent it"
    events = strictly_typed(sse(answer))
    check_grammar(events)
    final = events[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"], "gpt-5-codex reasons first"
    assert final.output[0].encrypted_content, "asked for with include, as Codex needs for its next turn"
    assert final.usage.output_tokens_details.reasoning_tokens > 0


def codex_for(model: str) -> dict:
    body = json.loads((FIXTURES / "codex_responses_request.json").read_bytes())
    return {**body, "model": model}


def test_a_codex_request_is_translated_for_anthropic(gw, mock, test_id):
    s = raw_stream(gw, codex_for("claude-sonnet"), {"x-test-id": test_id})
    assert s.status == 200 and s.error is None, s.body[:500]
    assert "input[3]" in s.headers.get("x-tollgate-dropped-params", "").split(","), "the reasoning item is left out, and said so"
    events = strictly_typed(sse(s.body))
    check_grammar(events)
    assert summary(events[-1].response)["output"][-1] == ("message", "Hello! You said: Thanks. Which of them builds the project?")

    sent = mock.only_request(test_id)["body"]
    assert sent["model"] == "claude-sonnet-4-5-20250929"
    assert "You are Codex" in json.dumps(sent["system"]), "instructions become the system prompt"
    assert [t["name"] for t in sent["tools"]] == [t["name"] for t in codex_for("x")["tools"]]
    assert sent["tools"][0]["input_schema"] == codex_for("x")["tools"][0]["parameters"]
    assert sent["thinking"]["type"] in ("enabled", "adaptive"), "reasoning.effort becomes thinking"
    calls = [b for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_use"]
    results = [b for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"]
    assert [c["name"] for c in calls] == ["shell"] and results[0]["tool_use_id"] == calls[0]["id"]
    assert "encrypted_content" not in json.dumps(sent) and "prompt_cache_key" not in sent and "store" not in sent


def test_a_codex_request_mid_turn_reaches_anthropic(gw, mock, test_id):
    """Codex's usual request: the turn goes on after a tool ran (the input ends with its output),
    and the reasoning that led to the call cannot be given back to Claude."""
    body = codex_for("claude-sonnet")
    body["input"] = body["input"][:6]
    s = raw_stream(gw, body, {"x-test-id": test_id})
    assert s.status == 200 and s.error is None, s.body[:500]
    events = strictly_typed(sse(s.body))
    check_grammar(events)
    assert summary(events[-1].response)["output"][-1][0] == "message"
    # Claude refuses thinking in a turn whose tool call does not open with its thinking block
    # (the mock as Anthropic does), so this turn goes without.
    assert "thinking" not in mock.only_request(test_id)["body"]


# ---- function calls ------------------------------------------------------------------------------

def upstream_tool_turns(provider: str, body: dict) -> tuple[tuple, tuple]:
    """(call id, name, arguments) of the assistant's function call and (call id, text of the
    output) as the provider received them in its own format."""
    if provider in PASSTHROUGH:
        call = next(i for i in body["input"] if i.get("type") == "function_call")
        output = next(i for i in body["input"] if i.get("type") == "function_call_output")
        return (call["call_id"], call["name"], json.loads(call["arguments"])), (output["call_id"], json.dumps(output["output"]))
    if provider in ("deepseek", "cohere"):
        assistant = next(m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls"))
        call = assistant["tool_calls"][0]
        result = next(m for m in body["messages"] if m["role"] == "tool")
        arguments = call["function"]["arguments"]
        return ((call["id"], call["function"]["name"], json.loads(arguments) if isinstance(arguments, str) else arguments),
                (result["tool_call_id"], json.dumps(result["content"])))
    if provider == "gemini":
        parts = [p for c in body["contents"] for p in c["parts"]]
        call = next(p["functionCall"] for p in parts if "functionCall" in p)
        result = next(p["functionResponse"] for p in parts if "functionResponse" in p)
        # Gemini pairs a result with its call by name (ids are optional).
        return (call["name"], call["name"], call["args"]), (result["name"], json.dumps(result["response"]))
    if provider == "bedrock":
        blocks = [b for m in body["messages"] for b in m["content"]]
        call = next(b["toolUse"] for b in blocks if "toolUse" in b)
        result = next(b["toolResult"] for b in blocks if "toolResult" in b)
        return (call["toolUseId"], call["name"], call["input"]), (result["toolUseId"], json.dumps(result["content"]))
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    call = next(b for b in blocks if b["type"] == "tool_use")
    result = next(b for b in blocks if b["type"] == "tool_result")
    return (call["id"], call["name"], call["input"]), (result["tool_use_id"], json.dumps(result["content"]))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_function_call_round_trip(gw, mock, provider, test_id):
    client = sdk(gw)
    model = model_of(provider)
    first = client.responses.create(model=model, **WEATHER_QUESTION)
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.name, json.loads(call.arguments), call.status) == ("get_weather", {"city": "Paris"}, "completed")

    history = [*WEATHER_QUESTION["input"], *(item.model_dump(exclude_none=True) for item in first.output),
               {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}]
    second = client.responses.create(model=model, tools=[WEATHER], input=history, extra_headers={"x-test-id": test_id})
    assert summary(second)["output"] == [("message", "Tool results: 18C and sunny")]
    assert second.status == "completed"

    (call_id, name, arguments), (result_id, result_text) = upstream_tool_turns(provider, mock.only_request(test_id)["body"])
    assert (name, arguments) == ("get_weather", {"city": "Paris"})
    assert result_id == call_id, "the output answers the call it was sent with"
    assert "18C and sunny" in result_text
    if provider in PASSTHROUGH:
        assert call_id == call.call_id, "passed through: the provider's own call id"


@pytest.mark.parametrize("provider", ["anthropic", "deepseek"])
def test_request_members_are_translated(gw, mock, provider, test_id):
    sdk(gw).responses.create(
        model=model_of(provider), instructions="You are terse.", max_output_tokens=300, temperature=0.4, top_p=0.9,
        tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False, user="user-42",
        store=False, include=["message.output_text.logprobs"], truncation="auto", prompt_cache_key="k", service_tier="auto",
        input=[{"role": "developer", "content": "Answer in English."}, {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        extra_headers={"x-test-id": test_id})
    b = mock.only_request(test_id)["body"]
    assert b["model"] == TARGETS[provider][1]
    assert (b["temperature"], b["top_p"]) == (0.4, 0.9)
    for ignored in ("store", "include", "truncation", "prompt_cache_key", "service_tier", "instructions", "input", "max_output_tokens"):
        assert ignored not in b, f"{ignored} is the Responses API's, not {provider}'s"
    if provider == "anthropic":
        assert b["max_tokens"] == 300
        assert "You are terse." in json.dumps(b["system"]) and "Answer in English." in json.dumps(b["system"])
        assert b["tools"] == [{"name": "get_weather", "description": WEATHER["description"], "input_schema": WEATHER["parameters"],
                               **({"strict": True} if "strict" in b["tools"][0] else {})}]
        assert b["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
        assert b["metadata"] == {"user_id": "user-42"}
    else:
        assert b.get("max_tokens", b.get("max_completion_tokens")) == 300
        system = [m for m in b["messages"] if m["role"] in ("system", "developer")]
        assert "You are terse." in json.dumps(system) and "Answer in English." in json.dumps(system)
        assert b["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": WEATHER["description"],
                                                                "parameters": WEATHER["parameters"], "strict": True}}]
        assert b["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}} and b["parallel_tool_calls"] is False
        assert "user-42" in (b.get("user"), b.get("safety_identifier"))


# ---- structured output ---------------------------------------------------------------------------

# The mocks that answer in the requested schema (Cohere and the OpenAI-compatible host take it, but
# their mocks do not write JSON).
ANSWER_IN_SCHEMA = {"openai", "azure", "azure_dated", "anthropic", "gemini", "bedrock"}


def upstream_schema(provider: str, body: dict):
    """The JSON schema the provider was asked to answer in, in its own format."""
    if provider in PASSTHROUGH:
        return body["text"]["format"]["schema"]
    if provider == "deepseek":
        assert body["response_format"]["type"] == "json_schema"
        return body["response_format"]["json_schema"]["schema"]
    if provider == "cohere":
        assert body["response_format"]["type"] == "json_object"
        return body["response_format"]["json_schema"]
    if provider == "gemini":
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        # Gemini's OpenAPI-style schema names its types in capitals.
        schema = body["generationConfig"].get("responseJsonSchema", body["generationConfig"].get("responseSchema"))
        return json.loads(re.sub(r'"type": "([A-Z]+)"', lambda m: f'"type": "{m.group(1).lower()}"', json.dumps(schema)))
    if provider == "bedrock":
        return json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    return body["output_config"]["format"]["schema"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_json_schema_output(gw, mock, provider, test_id):
    response = sdk(gw).responses.create(model=model_of(provider), input="Weather in Paris as JSON", text={"format": WEATHER_SCHEMA},
                                        extra_headers={"x-test-id": test_id})
    schema = upstream_schema(provider, mock.only_request(test_id)["body"])
    assert schema["properties"] == WEATHER_SCHEMA["schema"]["properties"]
    if provider in ANSWER_IN_SCHEMA:
        assert json.loads(response.output_text) == {"city": "Paris", "temp": 1}
    with sdk(gw).responses.stream(model=model_of(provider), input="Weather in Paris as JSON", text={"format": WEATHER_SCHEMA}) as s:
        assert s.get_final_response().output_text == response.output_text


def json_mode(provider: str, body: dict) -> bool:
    """Whether the provider was asked for JSON output, in its own format."""
    if provider in PASSTHROUGH:
        return body["text"]["format"] == {"type": "json_object"}
    if provider in ("deepseek", "cohere"):
        return body["response_format"]["type"] == "json_object"
    if provider == "gemini":
        return body["generationConfig"]["responseMimeType"] == "application/json"
    raise AssertionError(f"{provider} has no JSON mode without a schema")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_json_object_output_is_asked_for_or_refused_by_its_name(gw, mock, provider, test_id):
    """JSON mode without a schema: the provider's own where it has one; refused naming `text.format`
    where it has none (Anthropic, Bedrock)."""
    ask = dict(model=model_of(provider), input="Answer in JSON: hi", text={"format": {"type": "json_object"}}, extra_headers={"x-test-id": test_id})
    if provider in ("anthropic", "bedrock"):
        with pytest.raises(openai.BadRequestError) as e:
            sdk(gw).responses.create(**ask)
        assert_openai_error(e.value, 400, "invalid_request_error")
        assert e.value.body["param"] == "text.format", e.value.body
        assert mock.requests(test_id) == []
        return
    response = sdk(gw).responses.create(**ask)
    assert json_mode(provider, mock.only_request(test_id)["body"])
    if provider in PASSTHROUGH:
        assert json.loads(response.output_text) == {}


# ---- reasoning -----------------------------------------------------------------------------------

REASON = dict(max_output_tokens=4096, reasoning={"effort": "low", "summary": "auto"}, input="hi")


@pytest.mark.parametrize("provider", list(REASONING_MODELS))
def test_reasoning_comes_back_as_reasoning_items(gw, mock, provider, test_id):
    client = sdk(gw)
    model = REASONING_MODELS[provider]
    whole = client.responses.create(model=model, **REASON, extra_headers={"x-test-id": test_id})
    assert summary(whole)["output"] == [("reasoning", [THOUGHTS[provider]]), ("message", "Hello! You said: hi")]
    if provider == "openai":
        assert whole.usage.output_tokens_details.reasoning_tokens == 12

    s = raw_stream(gw, {"model": model, **REASON, "stream": True})
    events = strictly_typed(sse(s.body))
    check_grammar(events)
    thought = "".join(e.delta for e in events if isinstance(e, ResponseReasoningSummaryTextDeltaEvent))
    assert thought == THOUGHTS[provider]
    with client.responses.stream(model=model, **REASON) as st:
        assert summary(st.get_final_response()) == summary(whole)

    sent = mock.only_request(test_id)["body"]
    if provider == "openai":
        assert sent["reasoning"] == REASON["reasoning"]
    elif provider == "gemini":
        assert sent["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    elif provider == "bedrock":
        assert "thinking" in sent["additionalModelRequestFields"] or "reasoningConfig" in sent["additionalModelRequestFields"]
    else:
        assert sent["thinking"]["type"] in ("enabled", "adaptive")


def test_reasoning_items_are_left_out_for_other_providers_and_said_so(gw, mock, test_id):
    item = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}], "encrypted_content": "opaque"}
    raw = sdk(gw).responses.with_raw_response.create(
        model="claude-sonnet", input=[{"role": "user", "content": "hi"}, item, {"role": "assistant", "content": "Hello."},
                                      {"role": "user", "content": "again"}], extra_headers={"x-test-id": test_id})
    assert raw.headers["x-tollgate-dropped-params"].split(",") == ["input[1]"]
    assert raw.parse().output_text == "Hello! You said: again"
    assert "opaque" not in mock.only_request(test_id)["raw_body"]


# ---- state: previous_response_id, stored responses ------------------------------------------------

def test_previous_response_id_needs_openai(gw, mock, test_id):
    client = sdk(gw)
    for member, value in (("previous_response_id", "resp_123"), ("conversation", "conv_123")):
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model="claude-sonnet", input="hi", extra_headers={"x-test-id": test_id}, **{member: value})
        assert_openai_error(e.value, 400, "invalid_request_error")
        assert e.value.body.get("param") == member or member in e.value.body["message"], e.value.body
    assert mock.requests(test_id) == [], "refused by the gateway"

    first = client.responses.create(model="gpt-4o-mini", **WEATHER_QUESTION)
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(model="gpt-4o-mini", tools=[WEATHER], previous_response_id=first.id,
                                     input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}],
                                     extra_headers={"x-test-id": test_id + "2"})
    assert second.output_text == "Tool results: 18C and sunny", "OpenAI continued the response it stored"
    assert mock.only_request(test_id + "2")["body"]["previous_response_id"] == first.id


def stored_round_trip(client: openai.OpenAI, model: str, test_id: str) -> str:
    """Creates a response, fetches it, deletes it, fails to fetch it again; returns its id."""
    created = client.responses.create(model=model, input="remember me")
    fetched = client.responses.retrieve(created.id, extra_headers={"x-test-id": test_id})
    assert fetched.model_dump() == created.model_dump()
    client.responses.delete(created.id, extra_headers={"x-test-id": test_id})
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve(created.id, extra_headers={"x-test-id": test_id})
    assert_openai_error(e.value, 404, "invalid_request_error")
    return created.id


def test_stored_responses_are_fetched_and_deleted_at_openai(demo, mock, test_id):
    """The demo gateway: OpenAI is its only provider that stores responses."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{demo.port}/v1", api_key="unused", max_retries=0)
    id = stored_round_trip(client, "gpt-4o-mini", test_id)
    sent = mock.requests(test_id)
    assert [(r["method"], r["path"]) for r in sent] == [("GET", f"/v1/responses/{id}"), ("DELETE", f"/v1/responses/{id}"),
                                                        ("GET", f"/v1/responses/{id}")]
    assert all(r["headers"]["authorization"] == "Bearer test-openai-key" for r in sent)

    unstored = client.responses.create(model="gpt-4o-mini", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_stored_responses_are_asked_of_azure_on_its_own_path(gw, mock, test_id):
    """Here the first provider (by name) that stores responses is Azure's v1 API."""
    id = stored_round_trip(sdk(gw), "azure-gpt", test_id)
    sent = mock.requests(test_id)
    assert [(r["method"], r["path"], r["query"]) for r in sent] == [("GET", f"/openai/v1/responses/{id}", None),
                                                                    ("DELETE", f"/openai/v1/responses/{id}", None),
                                                                    ("GET", f"/openai/v1/responses/{id}", None)]
    assert all(r["headers"]["api-key"] == "test-azure-key" for r in sent)


def test_items_only_openai_knows_reach_openai(gw, mock, test_id):
    """Items of OpenAI's own tools and state go on to OpenAI, even with no message beside them:
    a reference to a stored item, a custom (free-form) tool's call and output as Codex sends for
    apply_patch."""
    apply_patch = {"type": "custom", "name": "apply_patch", "description": "Edits files", "format": {"type": "grammar", "syntax": "lark",
                                                                                                 "definition": "start: /.+/"}}
    reference = [{"type": "item_reference", "id": "msg_earlier"}]
    patched = [{"type": "custom_tool_call", "call_id": "call_patch1", "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
               {"type": "custom_tool_call_output", "call_id": "call_patch1", "output": "Done!"}]
    for n, items in enumerate([reference, patched]):
        response = sdk(gw).responses.create(model="gpt-4o-mini", tools=[apply_patch], input=items, extra_headers={"x-test-id": f"{test_id}{n}"})
        assert response.status == "completed"
        assert mock.only_request(f"{test_id}{n}")["body"]["input"] == items
    with pytest.raises(openai.BadRequestError) as e:
        sdk(gw).responses.create(model="claude-sonnet", tools=[WEATHER, apply_patch], input="patch it")
    assert e.value.body["param"] == "tools[1]" or "tools[1]" in e.value.body["message"], e.value.body


# ---- errors --------------------------------------------------------------------------------------

def assert_openai_error(error: openai.APIStatusError, status: int, kind: str | None = None):
    """OpenAI's error shape: `{"error": {"message", "type", "param", "code"}}` (the SDK gives the
    inner object as `body`)."""
    assert error.status_code == status, error
    body = error.body
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    assert {"type", "param", "code"} <= set(body), body
    if kind:
        assert body["type"] == kind, body


def test_a_bad_key_is_refused(gw, mock, test_id):
    with pytest.raises(openai.AuthenticationError) as e:
        sdk(gw, "tg-not-a-key").responses.create(model="gpt-4o-mini", input="hi", extra_headers={"x-test-id": test_id})
    assert_openai_error(e.value, 401)
    assert mock.requests(test_id) == []


def test_an_unknown_model_is_not_found(gw):
    with pytest.raises(openai.NotFoundError) as e:
        sdk(gw).responses.create(model="no-such-model", input="hi")
    assert_openai_error(e.value, 404)
    assert e.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("body,param", [({"input": 5}, "input"), ({"input": [{"role": "user", "content": "hi"}, {"type": "teleport"}]}, "input[1]"),
                                        ({"input": "hi", "max_output_tokens": "many"}, "max_output_tokens")],
                         ids=["input", "item", "max_output_tokens"])
def test_a_bad_request_is_refused_naming_the_member(gw, provider, body, param):
    with pytest.raises(openai.BadRequestError) as e:
        sdk(gw).post("/responses", body={"model": model_of(provider), **body}, cast_to=Response)
    assert_openai_error(e.value, 400, "invalid_request_error")
    assert (e.value.body["param"] or "").startswith(param) or param in e.value.body["message"], e.value.body


@pytest.mark.parametrize("provider", TRANSLATED)
def test_built_in_tools_need_openai(gw, mock, provider, test_id):
    with pytest.raises(openai.BadRequestError) as e:
        sdk(gw).responses.create(model=model_of(provider), input="news?", tools=[WEATHER, {"type": "web_search"}],
                                 extra_headers={"x-test-id": test_id})
    assert_openai_error(e.value, 400, "invalid_request_error")
    assert e.value.body["param"] == "tools[1]" or "tools[1]" in e.value.body["message"], e.value.body
    assert mock.requests(test_id) == [], "refused by the gateway"


def test_built_in_tools_reach_openai(gw, mock, test_id):
    response = sdk(gw).responses.create(model="gpt-4o-mini", input="news?", tools=[{"type": "web_search"}], extra_headers={"x-test-id": test_id})
    assert response.status == "completed"
    assert mock.only_request(test_id)["body"]["tools"] == [{"type": "web_search"}]


@pytest.mark.parametrize("provider,fault", [("openai", "error-after-4"), ("openai", "truncate-after-4"), ("azure", "truncate-after-5"),
                                            ("anthropic", "error-after-3"), ("deepseek", "error-after-2"), ("bedrock", "error-after-3"),
                                            ("gemini", "truncate-after-2")])
def test_a_stream_failing_midway_ends_with_an_error_event(gw, provider, fault):
    """A provider's in-stream error, or a stream it ended early, ends the client's stream with the
    Responses `error` event, numbered after the events before it (OpenAI's own passes through)."""
    body = {"model": model_of(provider), "input": "one two three four five six", "stream": True}
    s = raw_stream(gw, body, {"x-mock-stream-fault": fault})
    assert s.status == 200 and s.error is None
    events = strictly_typed(sse(s.body))
    assert isinstance(events[0], ResponseCreatedEvent) and isinstance(events[-1], ResponseErrorEvent), [e.type for e in events]
    assert sum(isinstance(e, ResponseErrorEvent) for e in events) == 1, "one error ends the stream"
    assert not any(isinstance(e, (ResponseCompletedEvent, ResponseIncompleteEvent)) for e in events), "a failed stream never ends cleanly"

    # The SDK hands the error event over; its helper knows the response never completed.
    typed = list(sdk(gw).responses.create(**body, extra_headers={"x-mock-stream-fault": fault}))
    assert typed[-1].type == "error"
    with pytest.raises(RuntimeError, match="response.completed"):
        with sdk(gw).responses.stream(**{k: v for k, v in body.items() if k != "stream"}, extra_headers={"x-mock-stream-fault": fault}) as st:
            st.get_final_response()


# ---- accounting ----------------------------------------------------------------------------------

CONVERSATION_RESPONSES = dict(instructions="Be brief.", input=CONVERSATION_CHAT[1:])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "stream"])
def test_responses_cost_what_chat_completions_cost(gw, provider, streamed):
    model, upstream = TARGETS[provider]
    via_chat = accounted_as_chat(gw, provider, model, upstream, KEY, streamed)
    cache = mock_cache_headers(provider)

    before = len(log_entries(gw))
    client = sdk(gw)
    if streamed:
        with client.responses.stream(model=model, max_output_tokens=100, **CONVERSATION_RESPONSES, extra_headers=cache) as s:
            response = s.get_final_response()
    else:
        response = client.responses.create(model=model, max_output_tokens=100, **CONVERSATION_RESPONSES, extra_headers=cache)
    via_responses = next_entry(gw, before, upstream)

    assert (via_chat.get("dialect"), via_responses.get("dialect")) == ("openai_chat", "openai_responses")
    assert {f: via_responses[f] for f in ACCOUNTED} == {f: via_chat[f] for f in ACCOUNTED}
    assert via_responses["key_id"] == "responses" and via_responses["completed"] is True
    assert Decimal(via_responses["cost_usd"]) > 0
    # Cohere bills without a cache discount, so chat accounts no cached tokens there either
    assert via_responses["cached_input_tokens"] == (0 if provider == "cohere" else 2)
    assert response.usage.input_tokens == 8, "2 instruction words + 2 + 1 + 3, the cached ones included"
