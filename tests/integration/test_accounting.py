"""Cost, usage and budgets through real Envoy with 2 workers (issue 6): exact counters, virtual
keys, budget caps, usage API, Prometheus metrics and the JSON access log."""
import asyncio
import hashlib
import json
import re
import time
from decimal import Decimal

import pytest

from harness import Envoy, load_config, plugin_config, point_static_clusters, set_plugin_config, wait_until

ALICE, BOB, ADMIN, CAROL = "tg-alice-demo-key", "tg-bob-demo-key", "tg-admin-demo-key", "tg-carol-test-key"
# Keys with small daily budgets of their own, for the budget-bound tests (issue 10 item 6).
DAVE, ERIN = "tg-dave-test-key", "tg-erin-test-key"
FRANK = "tg-frank-test-key"  # in a team whose budget is spent at once
# USD per token, from the example config (claude) and the shipped price table (gpt-4o-mini)
PRICES = {"claude-sonnet-4-5-20250929": (Decimal("3e-6"), Decimal("15e-6")), "gpt-4o-mini": (Decimal("0.15e-6"), Decimal("0.6e-6"))}


def auth(key):
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def gw(mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("accounting")
    cfg = load_config("examples/virtual-keys-and-budgets/envoy.yaml")
    point_static_clusters(cfg, mock.port)
    cfg["stats_flush_interval"] = "1s"
    for cluster in cfg["static_resources"]["clusters"]:
        limit = {"max_connections": 5000, "max_pending_requests": 5000, "max_requests": 5000}
        cluster["circuit_breakers"] = {"thresholds": [limit]}
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    log_path = workdir / "access.log"
    hcm["access_log"][0]["typed_config"]["path"] = str(log_path)
    plugin = plugin_config(cfg)
    for key_id, key, cap in [("carol", CAROL, "0.001"), ("dave", DAVE, "0.01"), ("erin", ERIN, "0.05")]:
        plugin["auth"]["keys"].append({"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest(), "budget": {"daily_usd": cap}})
    plugin["teams"]["tiny"] = {"budget": {"daily_usd": "0.000001"}}
    plugin["auth"]["keys"].append({"id": "frank", "sha256": hashlib.sha256(FRANK.encode()).hexdigest(), "team": "tiny"})
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, workdir, concurrency=2)
    envoy.access_log = log_path
    yield envoy
    envoy.stop()


def usage_report(gw):
    r = gw.request("GET", "/v1/tollgate/usage", headers=auth(ADMIN))
    assert r.status == 200, r.body
    return r.json()


def quiet_usage_report(gw):
    """A report with every earlier request's batched counters written (each worker flushes once a second)."""
    time.sleep(1.5)
    return usage_report(gw)


def today(report, group, name):
    return report["scopes"][group][name]["today"]


def delta(before, after, group, name, field):
    old, new = today(before, group, name)[field], today(after, group, name)[field]
    if field == "cost_usd":
        return Decimal(new) - Decimal(old)
    return new - old


def cost_of(model, usage):
    input_price, output_price = PRICES[model]
    return usage["prompt_tokens"] * input_price + usage["completion_tokens"] * output_price


# ---- virtual keys --------------------------------------------------------------------------------

def test_missing_or_unknown_keys_get_401_and_disallowed_models_403(gw, mock, test_id):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    r = gw.chat(body, {"x-test-id": test_id})
    assert r.status == 401 and r.error["code"] == "missing_api_key" and r.error["type"] == "authentication_error"
    r = gw.chat(body, {"x-test-id": test_id, **auth("tg-not-a-key")})
    assert r.status == 401 and r.error["code"] == "invalid_api_key"
    assert gw.request("GET", "/v1/models").status == 401
    r = gw.chat(body, {"x-test-id": test_id, **auth(ALICE)})
    assert r.status == 403 and r.error["code"] == "model_not_allowed" and r.error["param"] == "model"
    assert mock.requests(test_id) == []
    r = gw.chat({**body, "model": "gpt-4o-mini"}, {"x-test-id": test_id, **auth(ALICE)})
    assert r.status == 200
    sent = mock.only_request(test_id)
    assert sent["headers"]["authorization"] == "Bearer test-openai-key", "the gateway key never reaches the provider"


def test_usage_api_needs_an_admin_key(gw):
    assert gw.request("GET", "/v1/tollgate/usage").status == 401
    assert gw.request("GET", "/v1/tollgate/usage", headers=auth(ALICE)).status == 401
    report = usage_report(gw)
    assert report["object"] == "tollgate.usage"
    assert set(report["scopes"]) == {"global", "providers", "models", "keys", "teams"}
    assert set(report["scopes"]["keys"]) == {"alice", "bob", "carol", "dave", "erin", "frank"}
    alice = report["scopes"]["keys"]["alice"]
    assert alice["budget"]["daily_usd"] == "0.5"
    assert Decimal(alice["budget"]["daily_remaining_usd"]) <= Decimal("0.5")
    assert report["scopes"]["teams"]["research"]["budget"]["monthly_usd"] == "20"


# ---- exact counters ------------------------------------------------------------------------------

async def raw_post(port: int, body: dict, headers: dict) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-type: application/json\r\n"
                 f"content-length: {len(payload)}\r\n{head}\r\n".encode() + payload)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, i = b"", 0
        while True:
            j = rest.index(b"\r\n", i)
            n = int(rest[i:j], 16)
            if n == 0:
                break
            out += rest[j + 2:j + 2 + n]
            i = j + 2 + n + 2
        rest = out
    return status, rest


async def burst(port: int, requests: list[tuple[dict, dict]]):
    return await asyncio.gather(*(raw_post(port, body, headers) for body, headers in requests))


def client_usage(status: int, body: bytes, stream: bool) -> dict:
    assert status == 200, body[:300]
    if not stream:
        return json.loads(body)["usage"]
    events = [json.loads(e[6:]) for e in body.decode().split("\n\n") if e.startswith("data: {")]
    return events[-1]["usage"]


def test_counters_are_exact_after_2000_concurrent_requests(gw):
    before = quiet_usage_report(gw)
    requests = []
    for i in range(2000):
        model = ("claude-sonnet", "gpt-4o-mini")[i % 2]
        stream = i % 4 >= 2
        words = " ".join(["word"] * (1 + i % 7))
        body = {"model": model, "messages": [{"role": "user", "content": f"request {i} {words}"}]}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        requests.append((body, auth(BOB)))
    results = asyncio.run(burst(gw.port, requests))

    expected = {"claude-sonnet-4-5-20250929": [0, 0, Decimal(0)], "gpt-4o-mini": [0, 0, Decimal(0)]}
    for (body, _), (status, payload) in zip(requests, results):
        upstream = "claude-sonnet-4-5-20250929" if body["model"] == "claude-sonnet" else "gpt-4o-mini"
        u = client_usage(status, payload, body.get("stream", False))
        e = expected[upstream]
        e[0] += u["prompt_tokens"]
        e[1] += u["completion_tokens"]
        e[2] += cost_of(upstream, u)

    def settled():
        r = usage_report(gw)
        # the global scope has a cap: written at once; bob and the models have none: batched per worker (accounting_flush_ms)
        return delta(before, r, "keys", "bob", "requests") == 2000 and delta(before, r, "global", "all", "requests") == 2000 \
            and all(delta(before, r, "models", m, "requests") == 1000 for m in expected) and r

    after = wait_until(settled, 10, "counters")
    for model, (prompt, completion, cost) in expected.items():
        assert delta(before, after, "models", model, "requests") == 1000
        assert delta(before, after, "models", model, "input_tokens") == prompt
        assert delta(before, after, "models", model, "output_tokens") == completion
        assert delta(before, after, "models", model, "cost_usd") == cost
    total_cost = sum(e[2] for e in expected.values())
    assert delta(before, after, "keys", "bob", "cost_usd") == total_cost
    assert delta(before, after, "global", "all", "cost_usd") == total_cost
    assert delta(before, after, "providers", "openai", "requests") == 1000
    assert delta(before, after, "global", "all", "errors") == 0
    assert after["scopes"]["global"]["all"]["reserved_usd"] == "0"


# ---- budgets -------------------------------------------------------------------------------------

def test_budget_cap_refuses_before_the_provider_and_concurrency_cannot_overshoot(gw, mock, test_id):
    body = {"model": "claude-sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "spend some budget please"}]}
    results = asyncio.run(burst(gw.port, [(body, {**auth(CAROL), "x-test-id": test_id})] * 40))
    statuses = [s for s, _ in results]
    accepted = statuses.count(200)
    refused = [json.loads(p)["error"] for s, p in results if s == 429]
    assert accepted + len(refused) == 40 and accepted >= 1 and refused, statuses
    assert all(e["code"] == "budget_exceeded" and e["type"] == "insufficient_quota" for e in refused)
    assert "key `carol`" in refused[0]["message"]
    assert len(mock.requests(test_id)) == accepted, "refused requests never reach the provider"
    wait_until(lambda: usage_report(gw)["scopes"]["keys"]["carol"]["reserved_usd"] == "0", 10, "settled")
    # spend the rest one request at a time: the cap holds exactly
    for _ in range(50):
        r = gw.chat(body, auth(CAROL))
        if r.status == 429:
            break
        assert r.status == 200
    assert r.status == 429 and r.error["code"] == "budget_exceeded"
    carol = usage_report(gw)["scopes"]["keys"]["carol"]
    spent = Decimal(carol["today"]["cost_usd"])
    # refused only once the next request's worst case no longer fits: every body byte as an
    # input token at the dearest input rate (cache writes, $3.75/M), and its whole max_tokens
    worst = len(json.dumps(body)) * Decimal("3.75e-6") + 10 * Decimal("15e-6")
    assert Decimal("0.001") - worst < spent <= Decimal("0.001"), spent
    assert carol["reserved_usd"] == "0"


def spend_until_refused(gw, body, key, test_id, burst_size):
    """A burst, then one request at a time until the budget refuses; returns the key's day."""
    results = asyncio.run(burst(gw.port, [(body, {**auth(key), "x-test-id": test_id})] * burst_size))
    assert {s for s, _ in results} <= {200, 429}, [p[:200] for s, p in results if s not in (200, 429)]
    for _ in range(50):
        r = gw.chat(body, {**auth(key), "x-test-id": test_id})
        if r.status == 429:
            break
        assert r.status == 200, r.body
    assert r.status == 429 and r.error["code"] == "budget_exceeded"
    return wait_until(lambda: (k := usage_report(gw)["scopes"]["keys"][key_id(key)]) and k["reserved_usd"] == "0" and k, 10, "settled")


def key_id(key):
    return {DAVE: "dave", ERIN: "erin"}[key]


def test_long_answers_without_max_tokens_never_exceed_the_budget(gw, mock, test_id):
    # Each answer would be 6,000+ tokens; the request names no limit, so Tollgate sends one.
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "please write 6000 words"}]}
    dave = spend_until_refused(gw, body, DAVE, test_id, burst_size=10)
    assert Decimal(dave["today"]["cost_usd"]) <= Decimal("0.01"), dave["today"]
    sent = mock.requests(test_id)
    assert sent and all(1 <= r["body"]["max_tokens"] <= 4096 for r in sent), [r["body"].get("max_tokens") for r in sent]
    assert len(sent) == dave["today"]["requests"], "refused requests never reach the provider"
    # the last ones got what was left of the budget, not the default allowance
    assert min(r["body"]["max_tokens"] for r in sent) < 4096


def test_prompts_denser_than_four_bytes_a_token_never_exceed_the_budget(gw, mock, test_id):
    # 2 bytes per token (the mock counts words): twice what bytes ÷ 4 would reserve.
    body = {"model": "claude-sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "a " * 1500}]}
    erin = spend_until_refused(gw, body, ERIN, test_id, burst_size=20)
    assert erin["today"]["input_tokens"] >= 1500 * erin["today"]["requests"]
    assert Decimal(erin["today"]["cost_usd"]) <= Decimal("0.05"), erin["today"]
    assert all(r["body"]["max_tokens"] == 5 for r in mock.requests(test_id)), "a limit the budget pays for is sent as asked"


# ---- streaming and usage -------------------------------------------------------------------------

@pytest.mark.parametrize("model,upstream", [("claude-sonnet", "claude-sonnet-4-5-20250929"), ("gpt-4o-mini", "gpt-4o-mini")])
def test_streaming_and_non_streaming_cost_the_same(gw, model, upstream):
    body = {"model": model, "messages": [{"role": "user", "content": "the same question, twice over"}]}
    deltas = []
    for stream in (False, True):
        before = quiet_usage_report(gw)
        if stream:
            assert gw.stream({**body, "stream": True}, auth(BOB)).status == 200
        else:
            assert gw.chat(body, auth(BOB)).status == 200
        after = wait_until(lambda: (r := usage_report(gw)) and delta(before, r, "models", upstream, "requests") == 1 and r, 10, "count")
        deltas.append(tuple(delta(before, after, "models", upstream, f) for f in ("input_tokens", "output_tokens", "cost_usd")))
    assert deltas[0] == deltas[1] and deltas[0][2] > 0, deltas


@pytest.mark.parametrize("fault", ["reset-after-4", "truncate-after-4"])
def test_cut_streams_still_record_partial_usage(gw, fault):
    before = usage_report(gw)
    s = gw.stream({"model": "claude-sonnet", "stream": True, "messages": [{"role": "user", "content": "one two three four five"}]},
                  {**auth(BOB), "x-mock-stream-fault": fault})
    assert "[DONE]" not in s.data()
    after = wait_until(lambda: (r := usage_report(gw)) and delta(before, r, "keys", "bob", "requests") == 1 and r, 10, "count")
    assert delta(before, after, "keys", "bob", "errors") == 1
    assert delta(before, after, "keys", "bob", "input_tokens") > 0, "input tokens from message_start are kept"
    assert delta(before, after, "keys", "bob", "cost_usd") > 0


# ---- metrics and logs ----------------------------------------------------------------------------

# Envoy 1.40 names a dynamic module's stats under its own prefix (README, Native build: metrics).
NATIVE_PREFIX = "envoy_dynamicmodulescustom_"


def prometheus(gw) -> dict[str, float]:
    samples = {}
    for line in gw.admin("/stats/prometheus").splitlines():
        line = line.removeprefix(NATIVE_PREFIX)
        if line.startswith("tollgate_"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_prometheus_exposes_genai_metrics_with_bounded_labels(gw):
    assert gw.stream({"model": "claude-sonnet", "stream": True, "messages": [{"role": "user", "content": "metrics please"}]}, auth(BOB)).status == 200
    assert gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).status == 401
    claude = 'gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5-20250929"'

    def scraped():
        s = prometheus(gw)
        # histograms are recorded at once, counters summed by each worker and added once a second
        # (every series exists from startup, at zero)
        return s if s.get(f"tollgate_gen_ai_server_time_to_first_token_ms_count{{{claude}}}", 0) >= 1 \
            and s.get('tollgate_rejections{http_status="401"}', 0) >= 1 else None

    s = wait_until(scraped, 10, "histograms flushed")
    assert s[f'tollgate_gen_ai_client_token_usage{{{claude},gen_ai_token_type="input"}}'] > 0
    assert s[f'tollgate_gen_ai_client_token_usage{{{claude},gen_ai_token_type="output"}}'] > 0
    assert s[f'tollgate_requests{{{claude},http_status="200"}}'] >= 1
    assert s[f"tollgate_cost_nano_usd{{{claude}}}"] > 0
    assert s[f"tollgate_gen_ai_client_operation_duration_ms_count{{{claude}}}"] >= 1
    assert s['tollgate_rejections{http_status="401"}'] >= 1
    label_values = set(re.findall(r'="([^"]*)"', " ".join(s)))
    allowed = {"anthropic", "openai", "claude-sonnet-4-5-20250929", "gpt-4o-mini", "gpt-4o", "input", "output", "cached_input",
               "cache_write", "reasoning", "200", "400", "401", "403", "404", "413", "429", "500", "502", "503", "504", "+Inf",
               # budget gauges: scope kinds, the capped keys and teams of the configuration, periods
               "global", "all", "key", "team", "alice", "carol", "dave", "erin", "research", "tiny", "daily", "monthly"}
    assert all(v in allowed or re.fullmatch(r"[0-9.e+]+", v) for v in label_values), label_values - allowed


def test_access_log_has_one_json_line_per_request_without_secrets(gw):
    marker = "access log check"
    start = gw.access_log.stat().st_size if gw.access_log.exists() else 0
    assert gw.chat({"model": "claude-sonnet", "messages": [{"role": "user", "content": marker}]}, auth(ALICE)).status == 200
    assert gw.chat({"model": "gpt-4o", "messages": [{"role": "user", "content": marker}]}, auth(ALICE)).status == 403

    def alices():
        text = gw.access_log.read_bytes()[start:].decode()
        found = [e for e in map(json.loads, filter(str.strip, text.splitlines())) if e["tollgate"].get("key_id") == "alice"]
        return found if len(found) >= 2 else None

    entries = wait_until(alices, 10, "access log")
    served = next(e for e in entries if e["tollgate"].get("provider") == "anthropic")
    t = served["tollgate"]
    assert served["response_code"] == 200 and served["request_id"]
    assert (t["key_id"], t["team"], t["model"], t["upstream_model"]) == ("alice", "research", "claude-sonnet", "claude-sonnet-4-5-20250929")
    assert t["input_tokens"] > 0 and t["output_tokens"] > 0 and Decimal(t["cost_usd"]) > 0 and t["completed"] is True
    refused = next(e for e in entries if e["tollgate"]["status"] == 403)
    assert refused["tollgate"]["error_code"] == "model_not_allowed"
    text = gw.access_log.read_text()
    assert marker not in text, "no prompt text in logs"
    assert "tg-" not in text and "test-anthropic-key" not in text, "no keys in logs"
    assert ALICE not in gw.log() and "test-anthropic-key" not in gw.log()


# ---- what a caller is told -----------------------------------------------------------------------

def test_a_key_lists_only_the_models_it_may_use(gw):
    ids = lambda key: {m["id"] for m in gw.request("GET", "/v1/models", headers=auth(key)).json()["data"]}
    assert ids(ALICE) == {"gpt-4o-mini", "claude-sonnet"}, "alice may use gpt-4o-mini and claude-*"
    assert ids(BOB) == {"gpt-4o-mini", "gpt-4o", "claude-sonnet"}
    r = gw.request("GET", "/v1/models/gpt-4o", headers=auth(ALICE))
    assert r.status == 404 and r.error["code"] == "model_not_found"
    assert gw.request("GET", "/v1/models/gpt-4o", headers=auth(BOB)).status == 200
    assert gw.request("GET", "/v1/models/claude-sonnet", headers=auth(ALICE)).status == 200


def test_a_team_budget_refusal_names_the_limit_without_its_amounts(gw, mock, test_id):
    r = gw.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, {**auth(FRANK), "x-test-id": test_id})
    assert r.status == 429 and r.error["code"] == "budget_exceeded"
    assert r.error["message"] == "Budget exceeded for team `tiny`: its daily budget is used up."
    assert mock.requests(test_id) == []


def test_provider_errors_name_the_client_facing_model(gw, mock, test_id):
    mock.fault(status=400, count=1, body={"type": "error", "error": {
        "type": "invalid_request_error", "message": "model claude-sonnet-4-5-20250929 does not support this request"}})
    r = gw.chat({"model": "claude-sonnet", "messages": [{"role": "user", "content": "x"}]}, {**auth(BOB), "x-test-id": test_id})
    assert r.status == 400, r.body
    assert r.error["message"] == "model claude-sonnet does not support this request"
