"""Guardrails through real Envoy (issue 16): prompts' PII redacted before the provider sees them
for OpenAI and Messages clients, on the translated paths and on the same-dialect fast paths;
secrets blocked; account data routed to an in-VPC model; answers' PII masked and secrets blocked,
whole and streamed in pieces that split them; embeddings inputs and `count_tokens` guarded too;
the access log and Prometheus metrics name detector, action, direction and count but never the
text. One Envoy (the demo config) for the module."""
import json

import pytest

from harness import Envoy, load_config, plugin_config, point_static_clusters, request, set_plugin_config, stream, wait_until
from test_accounting import prometheus

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
# Any leak of the card shows its first two groups; "4111" alone is no proof, a random hex test id can hold it.
CARD_LEAK = CARD[:9]
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
IBAN = "DE89 3704 0044 0532 0130 00"
PROMPT = f"Mail {EMAIL} about card {CARD}; again: {EMAIL}."
REDACTED = "Mail <EMAIL_1> about card <CARD_1>; again: <EMAIL_1>."
MESSAGES_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "any"}
ANSWERED = ["gpt-answers", "claude-answers"]
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("guardrails")
    cfg = load_config("envoy/demo.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["providers"]["invpc"] = {"kind": "openai_compatible", "cluster": "mock_openai", "host": "llm.vpc.internal",
                                    "api_key_env": "OPENAI_API_KEY"}
    # Models whose redactions are restored in the answer.
    plugin["models"].update({"gpt-restore": {"provider": "openai", "model": "gpt-4o-mini"},
                             "claude-restore": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929"},
                             # Models whose answers are checked (their prompts' PII is only logged).
                             "gpt-answers": {"provider": "openai", "model": "gpt-4o-mini"},
                             "claude-answers": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929"},
                             "embedding-small": {"provider": "openai", "model": "text-embedding-3-small"}})
    plugin["routes"] = [{"name": "compliance", "match": {"guardrails": ["iban"]},
                         "targets": [{"provider": "invpc", "model": "vpc-llama"}]}]
    plugin["guardrails"] = {
        "custom": [{"name": "codename", "keywords": ["bluebird"]}],
        "policies": [
            {"detectors": ["aws_access_key", "private_key", "openai_key"], "action": "block"},
            {"detectors": ["iban"], "action": "route"},
            {"detectors": ["email", "card"], "action": "log", "when": {"models": ANSWERED}},
            {"detectors": ["email", "card"], "action": "redact", "direction": "response", "when": {"models": ANSWERED}},
            {"detectors": ["github_token"], "action": "block", "direction": "response", "when": {"models": ANSWERED}},
            {"detectors": ["email", "card"], "action": "redact", "restore": True, "when": {"models": ["gpt-restore", "claude-restore"]}},
            {"detectors": ["email", "card", "codename"], "action": "redact"},
            {"detectors": ["*"], "action": "log"},
        ],
    }
    set_plugin_config(cfg, plugin)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    log_path = workdir / "access.log"
    hcm["access_log"][0]["typed_config"]["path"] = str(log_path)
    envoy = Envoy(cfg, workdir, args=["--file-flush-interval-msec", "100"])
    envoy.access_log = log_path
    yield envoy
    envoy.stop()


def entry_of(gw, request_id: str) -> dict:
    def find():
        if not gw.access_log.exists():
            return None
        for line in gw.access_log.read_text().splitlines():
            e = json.loads(line)
            if e["request_id"] == request_id:
                return e
        return None
    return wait_until(find, 10, f"access log entry {request_id}")


def upstream_text(sent: dict) -> str:
    """All the text of the conversation the provider received (OpenAI or Anthropic shape)."""
    return json.dumps(sent["body"].get("messages"))


@pytest.mark.parametrize("model, provider_shape", [("gpt-4o-mini", "openai passthrough"), ("claude-sonnet", "anthropic translated")])
def test_openai_client_prompt_is_redacted_before_the_provider(gw, mock, test_id, model, provider_shape):
    rid = f"{test_id}-rid"
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if provider_shape == "openai passthrough":
        body["x_vendor_field"] = {"keep": EMAIL}
    r = gw.chat(body, {"x-test-id": test_id, "x-request-id": rid})
    assert r.status == 200, r.body
    sent = mock.only_request(test_id)
    text = upstream_text(sent)
    assert REDACTED in text, text
    assert EMAIL not in json.dumps(sent["body"]) and CARD_LEAK not in json.dumps(sent["body"])
    if provider_shape == "openai passthrough":
        assert sent["body"]["x_vendor_field"] == {"keep": "<EMAIL_1>"}, "the fast path keeps unknown fields, redacted too"
    log = entry_of(gw, rid)
    assert log["tollgate"]["guardrails"] == [
        {"detector": "email", "action": "redact", "direction": "request", "count": 2},
        {"detector": "card", "action": "redact", "direction": "request", "count": 1},
    ]
    line = json.dumps(log)
    assert EMAIL not in line and CARD_LEAK not in line and "<EMAIL_1>" not in line


@pytest.mark.parametrize("model", ["claude-sonnet", "gpt-4o-mini"])
def test_messages_client_prompt_is_redacted_before_the_provider(gw, mock, test_id, model):
    body = {"model": model, "max_tokens": 50, "system": f"Customer {EMAIL}",
            "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}]}]}
    r = request(gw.port, "POST", "/v1/messages", body, {**MESSAGES_HEADERS, "x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.json()["type"] == "message"
    sent = json.dumps(mock.only_request(test_id)["body"])
    assert "<EMAIL_1> about card <CARD_1>" in sent and "Customer <EMAIL_1>" in sent, sent
    assert EMAIL not in sent and CARD_LEAK not in sent
    if model == "claude-sonnet":
        assert '"cache_control": {"type": "ephemeral"}' in sent, "passthrough keeps the rest of the block"


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"my key is {AWS_KEY}"}]}),
    ("/v1/messages", {"model": "claude-sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": f"my key is {AWS_KEY}"}]}),
])
def test_secrets_block_the_request_in_the_clients_dialect_without_echoing_them(gw, mock, test_id, path, body):
    rid = f"{test_id}-rid"
    r = request(gw.port, "POST", path, body, {**MESSAGES_HEADERS, "x-test-id": test_id, "x-request-id": rid})
    assert r.status == 400, r.body
    error = r.json()["error"]
    assert "aws_access_key" in error["message"] and AWS_KEY not in r.body.decode()
    if path == "/v1/messages":
        assert r.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["code"] == "content_blocked"
    assert mock.requests(test_id) == []
    log = entry_of(gw, rid)
    assert log["tollgate"]["error_code"] == "content_blocked"
    assert log["tollgate"]["guardrails"] == [{"detector": "aws_access_key", "action": "block", "direction": "request", "count": 1}]
    assert AWS_KEY not in json.dumps(log)


def test_account_data_goes_to_the_in_vpc_model_unredacted(gw, mock, test_id):
    r = gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": f"Transfer from {IBAN} please"}]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "invpc" and r.headers["x-tollgate-route"] == "compliance"
    sent = mock.only_request(test_id)
    assert sent["body"]["model"] == "vpc-llama" and IBAN in upstream_text(sent)
    plain = gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": "No account data here"}]}, {"x-test-id": test_id + "b"})
    assert plain.headers["x-tollgate-provider"] == "openai"


def test_findings_are_counted_by_detector_action_and_direction(gw, test_id):
    gw.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "project bluebird, ping 10.0.0.7"}]}, {"x-test-id": test_id})
    gw.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}, {"x-test-id": test_id})

    def counted():
        m = prometheus(gw)
        codename = m.get('tollgate_guardrail_findings{guardrail="codename",guardrail_action="redact",direction="request"}', 0)
        ipv4 = m.get('tollgate_guardrail_findings{guardrail="ipv4",guardrail_action="log",direction="request"}', 0)
        return codename >= 1 and ipv4 >= 1 and m
    m = wait_until(counted, 10, "guardrail counters")
    assert m.get('tollgate_guardrail_findings{guardrail="aws_access_key",guardrail_action="block",direction="request"}', 0) >= 1


RESTORED = f"You said: {PROMPT}"


def stream_text(events: list, messages: bool) -> str:
    events = [e for e in events if isinstance(e, dict)]
    if messages:
        return "".join(e["delta"].get("text", "") for e in events if e.get("type") == "content_block_delta")
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in events if c.get("choices"))


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("path, model", [
    ("/v1/chat/completions", "gpt-restore"),      # OpenAI → OpenAI: the fast path
    ("/v1/chat/completions", "claude-restore"),   # OpenAI → Anthropic: translated
    ("/v1/messages", "claude-restore"),           # Messages → Anthropic: the fast path
    ("/v1/messages", "gpt-restore"),              # Messages → OpenAI: translated
])
def test_restore_maps_placeholders_in_the_answer_back_for_the_client(gw, mock, test_id, path, model, streamed):
    messages = path == "/v1/messages"
    body = {"model": model, "stream": streamed, "messages": [{"role": "user", "content": PROMPT}]}
    if messages:
        body["max_tokens"] = 100
    headers = {**MESSAGES_HEADERS, "x-test-id": test_id}
    if streamed:
        s = stream(gw.port, path, body, headers)
        assert s.status == 200, s.body
        text = stream_text(s.data(), messages)
    else:
        r = request(gw.port, "POST", path, body, headers)
        assert r.status == 200, r.body
        text = r.json()["content"][0]["text"] if messages else r.json()["choices"][0]["message"]["content"]
    assert REDACTED in upstream_text(mock.only_request(test_id)), "the provider saw placeholders"
    assert RESTORED in text, text


# ---- answers -------------------------------------------------------------------------------------

ANSWER_PROMPT = f"Mail {EMAIL} about card {CARD}."
MASKED = "Mail <EMAIL> about card <CARD>."


def answer_text(path: str, streamed, r) -> str:
    """The answer's text, whole (`r` a response) or streamed (`r` a Stream), in the client's dialect."""
    if streamed:
        events = [e for e in r.data() if isinstance(e, dict)]
        if path == "/v1/responses":
            return "".join(e["delta"] for e in events if e.get("type") == "response.output_text.delta")
        return stream_text(events, path == "/v1/messages")
    body = r.json()
    if path == "/v1/messages":
        return body["content"][0]["text"]
    if path == "/v1/responses":
        return body["output"][0]["content"][0]["text"]
    return body["choices"][0]["message"]["content"]


def ask(gw, path, model, prompt, streamed, headers):
    body = {"model": model, "stream": streamed}
    if path == "/v1/responses":
        body["input"] = prompt
    else:
        body["messages"] = [{"role": "user", "content": prompt}]
    if path == "/v1/messages":
        body["max_tokens"] = 100
    headers = {**MESSAGES_HEADERS, **headers}
    return stream(gw.port, path, body, headers) if streamed else request(gw.port, "POST", path, body, headers)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("path, model, piece_bytes", [
    ("/v1/chat/completions", "gpt-answers", 3),     # OpenAI → OpenAI: passthrough unless checked
    ("/v1/chat/completions", "claude-answers", 5),  # OpenAI → Anthropic: translated
    ("/v1/messages", "claude-answers", 1),          # Messages → Anthropic: passthrough unless checked
    ("/v1/messages", "gpt-answers", 7),             # Messages → OpenAI: translated
    ("/v1/responses", "claude-answers", 4),         # Responses → Anthropic: translated
    ("/v1/responses", "gpt-answers", 2),            # Responses → OpenAI: passes through, rewritten
])
def test_answers_pii_is_masked_for_the_client_even_split_across_stream_chunks(gw, mock, test_id, path, model, piece_bytes, streamed):
    rid = f"{test_id}-rid"
    r = ask(gw, path, model, ANSWER_PROMPT, streamed, {"x-test-id": test_id, "x-request-id": rid, "x-mock-piece-bytes": str(piece_bytes)})
    assert r.status == 200, r.body
    assert ANSWER_PROMPT in json.dumps(mock.only_request(test_id)["body"]), "the prompt's PII is only logged"
    text = answer_text(path, streamed, r)
    assert text == f"Hello! You said: {MASKED}", text
    assert EMAIL not in r.body.decode() and CARD_LEAK not in r.body.decode()
    log = entry_of(gw, rid)
    assert log["tollgate"]["guardrails"] == [
        {"detector": "email", "action": "log", "direction": "request", "count": 1},
        {"detector": "card", "action": "log", "direction": "request", "count": 1},
        {"detector": "email", "action": "redact", "direction": "response", "count": 1},
        {"detector": "card", "action": "redact", "direction": "response", "count": 1},
    ]
    assert EMAIL not in json.dumps(log)


@pytest.mark.parametrize("path, model, streamed", [
    ("/v1/chat/completions", "gpt-answers", False),
    ("/v1/chat/completions", "gpt-answers", True),
    ("/v1/messages", "claude-answers", True),
    ("/v1/responses", "gpt-answers", True),
])
def test_a_secret_in_the_answer_blocks_it_in_the_clients_dialect(gw, mock, test_id, path, model, streamed):
    rid = f"{test_id}-rid"
    prompt = f"the token is {GITHUB_TOKEN} ok"
    r = ask(gw, path, model, prompt, streamed, {"x-test-id": test_id, "x-request-id": rid, "x-mock-piece-bytes": "6"})
    assert GITHUB_TOKEN in json.dumps(mock.only_request(test_id)["body"]), "the prompt's token is only logged"
    assert GITHUB_TOKEN[:6] not in r.body.decode()
    if streamed:
        assert r.status == 200, r.body
        events = [e for e in r.data() if isinstance(e, dict)]
        assert answer_text(path, True, r) == "Hello! You said: the token is ", "what came before the secret was sent"
        last = events[-1]
        if path == "/v1/responses":
            assert (last["type"], last["code"]) == ("error", "content_blocked") and "github_token" in last["message"], last
            assert "response.completed" not in r.body.decode()
            numbers = [e["sequence_number"] for e in events]
            assert numbers == list(range(len(events))), numbers
        elif path == "/v1/messages":
            assert "github_token" in last["error"]["message"], last
            assert last["type"] == "error" and "message_stop" not in r.body.decode()
        else:
            assert "github_token" in last["error"]["message"], last
            assert last["error"]["code"] == "content_blocked" and "[DONE]" not in r.body.decode()
    else:
        assert r.status == 400, r.body
        assert r.json()["error"]["code"] == "content_blocked" and "github_token" in r.json()["error"]["message"]
    log = entry_of(gw, rid)
    assert log["tollgate"]["error_code"] == "content_blocked"
    assert {"detector": "github_token", "action": "block", "direction": "response", "count": 1} in log["tollgate"]["guardrails"]

    def counted():
        m = prometheus(gw)
        return m.get('tollgate_guardrail_findings{guardrail="github_token",guardrail_action="block",direction="response"}', 0) >= 1
    wait_until(counted, 10, "the answer's block counted")


def test_embeddings_inputs_are_redacted_and_blocked(gw, mock, test_id):
    r = request(gw.port, "POST", "/v1/embeddings", {"model": "embedding-small", "input": [f"to {EMAIL}", "plain"]}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert mock.only_request(test_id)["body"]["input"] == ["to <EMAIL_1>", "plain"]
    r = request(gw.port, "POST", "/v1/embeddings", {"model": "embedding-small", "input": f"key {AWS_KEY}"}, {"x-test-id": test_id + "b"})
    assert r.status == 400 and r.json()["error"]["code"] == "content_blocked", r.body
    assert mock.requests(test_id + "b") == []


def test_count_tokens_is_guarded_like_the_request_it_counts(gw, mock, test_id):
    body = {"model": "claude-sonnet", "messages": [{"role": "user", "content": PROMPT}]}
    r = request(gw.port, "POST", "/v1/messages/count_tokens", body, {**MESSAGES_HEADERS, "x-test-id": test_id})
    assert r.status == 200, r.body
    sent = json.dumps(mock.only_request(test_id)["body"])
    assert REDACTED in sent and EMAIL not in sent, sent
    body = {"model": "claude-sonnet", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}
    r = request(gw.port, "POST", "/v1/messages/count_tokens", body, {**MESSAGES_HEADERS, "x-test-id": test_id + "b"})
    assert r.status == 400 and r.json()["error"]["type"] == "invalid_request_error" and "aws_access_key" in r.body.decode(), r.body
    assert mock.requests(test_id + "b") == []
