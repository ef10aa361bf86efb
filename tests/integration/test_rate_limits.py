"""Request and token rate limits per key, team, upstream model and gateway through real Envoy
with 2 workers (issue 14, local mode): exact admission across workers, OpenAI's 429 and
`x-ratelimit-*` headers, tokens settled to the reported usage."""
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config

# key → its own limits (None: only the team's, model's and gateway's apply)
KEYS = {
    "rpm": ("tg-rate-rpm-key", {"requests_per_minute": 3}),
    "burst": ("tg-rate-burst-key", {"requests_per_minute": 10}),
    "tpm": ("tg-rate-tpm-key", {"tokens_per_minute": 2000}),
    "team-a": ("tg-rate-team-a-key", None),
    "team-b": ("tg-rate-team-b-key", None),
    "plain": ("tg-rate-plain-key", None),
    "other": ("tg-rate-other-key", None),
}
GATEWAY_RPM = 100_000
CLAUDE_RPM = 4


def auth(key_id):
    return {"authorization": f"Bearer {KEYS[key_id][0]}"}


def chat(model="gpt-4o-mini", content="hi", **extra):
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    cfg = load_config("examples/virtual-keys-and-budgets/envoy.yaml")
    point_static_clusters(cfg, mock.port)
    plugin = plugin_config(cfg)
    plugin["teams"]["shared"] = {"rate_limit": {"requests_per_minute": 2}}
    for key_id, (key, limit) in KEYS.items():
        entry = {"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest()}
        if key_id.startswith("team-"):
            entry["team"] = "shared"
        if limit:
            entry["rate_limit"] = limit
        plugin["auth"]["keys"].append(entry)
    plugin["rate_limits"] = {
        "gateway": {"requests_per_minute": GATEWAY_RPM},
        "models": {"claude-sonnet-4-5-20250929": {"requests_per_minute": CLAUDE_RPM}},
    }
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("rate_limits"), concurrency=2)
    yield envoy
    envoy.stop()


def test_a_key_gets_its_requests_per_minute_then_openais_429(gw, mock, test_id):
    headers = {"x-test-id": test_id, **auth("rpm")}
    remaining = []
    for _ in range(3):
        r = gw.chat(chat(), headers)
        assert r.status == 200, r.body
        assert r.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(r.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    # The third request's reset: the whole bucket (3 requests) drains in a minute, less the
    # moments between requests.
    assert 58 <= float(r.headers["x-ratelimit-reset-requests"].rstrip("s")) <= 60, r.headers
    r = gw.chat(chat(), headers)
    assert r.status == 429
    assert r.error["code"] == "rate_limit_exceeded" and r.error["type"] == "requests"
    assert r.error["message"].startswith("Rate limit reached for key `rpm` on requests per min (RPM): Limit 3, Used 3, Requested 1.")
    # One request drains every 20 s; a little of that has passed.
    assert 18 <= int(r.headers["retry-after"]) <= 20 and 17_000 <= int(r.headers["retry-after-ms"]) <= 20_000, r.headers
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(mock.requests(test_id)) == 3, "the refused request never reached the provider"


def test_admission_is_exact_across_workers(gw, mock, test_id):
    headers = {"x-test-id": test_id, **auth("burst")}
    # 30 requests at once on their own connections, spread over both workers; one request
    # drains every 6 s, so exactly the limit gets through.
    with ThreadPoolExecutor(30) as pool:
        statuses = sorted(pool.map(lambda _: gw.chat(chat(), headers).status, range(30)))
    assert statuses == [200] * 10 + [429] * 20
    assert len(mock.requests(test_id)) == 10


def test_tokens_are_reserved_on_admission_and_settled_to_the_usage(gw, test_id):
    headers = {"x-test-id": test_id, **auth("tpm")}
    body = chat(max_tokens=100)
    r = gw.chat(body, headers)
    assert r.status == 200, r.body
    assert r.headers["x-ratelimit-limit-tokens"] == "2000"
    assert "x-ratelimit-limit-requests" in r.headers, "the gateway's request limit still applies"
    # Admission reserved the body's bytes (a bound on its input tokens) and the output limit.
    reserved = 2000 - int(r.headers["x-ratelimit-remaining-tokens"])
    assert reserved == len(json.dumps(body)) + 100
    used = r.json()["usage"]["total_tokens"]
    assert used < reserved
    # The next admission sees the first request's reported usage instead of its reservation
    # (less what drained meanwhile: 2000 a minute, a few tokens between two requests).
    r = gw.chat(body, headers)
    after_second = 2000 - int(r.headers["x-ratelimit-remaining-tokens"])
    assert used + reserved - 10 <= after_second <= used + reserved, (used, reserved, after_second)
    # A request asking more than the limit can never fit: 429 without retry-after.
    r = gw.chat(chat(max_tokens=5000), headers)
    assert r.status == 429 and r.error["type"] == "tokens"
    assert r.error["message"].startswith("Request too large for key `tpm` on tokens per min (TPM): Limit 2000, Requested ")
    assert "retry-after" not in r.headers


def test_a_teams_limit_is_shared_by_its_keys(gw, test_id):
    a = gw.chat(chat(), {"x-test-id": test_id, **auth("team-a")})
    b = gw.chat(chat(), {"x-test-id": test_id, **auth("team-b")})
    assert (a.status, b.status) == (200, 200)
    assert (a.headers["x-ratelimit-remaining-requests"], b.headers["x-ratelimit-remaining-requests"]) == ("1", "0")
    r = gw.chat(chat(), {"x-test-id": test_id, **auth("team-a")})
    assert r.status == 429 and "team `shared`" in r.error["message"]


def test_an_upstream_models_limit_counts_every_caller_and_the_messages_api_answers_in_its_shape(gw, test_id):
    for key_id in ["plain", "other"] * (CLAUDE_RPM // 2):
        r = gw.chat(chat("claude-sonnet", max_tokens=50), {"x-test-id": test_id, **auth(key_id)})
        assert r.status == 200, r.body
    assert r.headers["x-ratelimit-limit-requests"] == str(CLAUDE_RPM) and r.headers["x-ratelimit-remaining-requests"] == "0"
    body = {"model": "claude-sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    r = gw.request("POST", "/v1/messages", body, {"x-test-id": test_id, "x-api-key": KEYS["other"][0]})
    assert r.status == 429
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
    assert r.json()["error"]["message"].startswith("Rate limit reached for model `claude-sonnet-4-5-20250929`")
    assert 1 <= int(r.headers["retry-after"]) <= 15
    # Other models are not limited by it.
    assert gw.chat(chat(), {"x-test-id": test_id, **auth("other")}).status == 200


def test_without_a_limit_of_its_own_a_key_sees_the_gateways(gw, test_id):
    r = gw.chat(chat(), {"x-test-id": test_id, **auth("plain")})
    assert r.status == 200
    assert r.headers["x-ratelimit-limit-requests"] == str(GATEWAY_RPM)
    assert "x-ratelimit-limit-tokens" not in r.headers
    s = gw.stream(chat(stream=True), {"x-test-id": test_id, **auth("plain")})
    assert s.status == 200 and s.headers["x-ratelimit-limit-requests"] == str(GATEWAY_RPM), "streamed answers carry them too"
