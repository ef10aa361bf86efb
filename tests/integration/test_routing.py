"""Routing and resilience through real Envoy with 2 workers (issue 5): rules, strategies,
Envoy-driven cross-provider failover with per-attempt translation, breakers in shared data,
rate limits, explain, last resort. Built from the shipped examples/failover/envoy.yaml, with
its clusters pointed at local mock providers."""
import asyncio
import datetime
import json
import threading
import time

import pytest

from harness import Envoy, Mock, free_port, load_config, localize, plugin_config, set_plugin_config, wait_until, stream
from test_accounting import burst, prometheus

FAULTS = ["500", "503", "429", "refused", "timeout", "reset"]


def chat_route(name, primary_provider="openai", fallback_model="claude-sonnet-4-5", **extra):
    return {"name": name, "match": {"models": [name]},
            "targets": [{"provider": primary_provider, "model": f"{name}-primary"}],
            "fallback": [{"provider": "anthropic", "model": fallback_model}], **extra}


@pytest.fixture(scope="module")
def net():
    mocks = {"a": Mock(), "b": Mock(), "review": Mock()}
    yield mocks
    for m in mocks.values():
        m.stop()


@pytest.fixture(scope="module")
def gw(net, tmp_path_factory):
    cfg = load_config("examples/failover/envoy.yaml")
    dead = free_port()
    clusters = cfg["static_resources"]["clusters"]
    chain = next(c for c in clusters if c["name"] == "openai_then_anthropic")
    # A second failover cluster whose first endpoint refuses connections.
    dead_chain = json.loads(json.dumps(chain))
    dead_chain["name"] = dead_chain["load_assignment"]["cluster_name"] = "dead_then_anthropic"
    dead_chain["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["metadata"]["filter_metadata"]["tollgate"]["provider"] = "deadai"
    clusters.append(dead_chain)
    fast = json.loads(json.dumps(next(c for c in clusters if c["name"] == "openai")))
    fast["name"] = fast["load_assignment"]["cluster_name"] = "openai_b"
    clusters.append(fast)
    # Envoy's outlier detection would eject the fault-injected mock endpoints for 30 s and make
    # later tests depend on earlier ones; the breaker under test here is Tollgate's own.
    for cluster in clusters:
        if "outlier_detection" in cluster:
            cluster["outlier_detection"] = {"consecutive_5xx": 1000, "consecutive_gateway_failure": 1000, "consecutive_local_origin_failure": 1000}
    # A route that sends to a failover cluster without Tollgate's plan (a misconfiguration).
    vhost = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    vhost["routes"].insert(1, {"match": {"prefix": "/raw/"}, "route": {"cluster": "openai_then_anthropic"}})
    localize(cfg, {"openai": net["a"].port, "anthropic": net["b"].port, "deadai": dead, "openai_b": net["b"].port,
                   "review_queue": net["review"].port})
    plugin = plugin_config(cfg)
    now = datetime.datetime.now(datetime.timezone.utc)
    window_now = {"after": f"{now.hour:02d}:00", "before": f"{(now.hour + 2) % 24:02d}:00"}
    window_later = {"after": f"{(now.hour + 3) % 24:02d}:00", "before": f"{(now.hour + 4) % 24:02d}:00"}
    # A provider whose cluster Envoy lacks, and one whose cluster has no endpoint.
    hollow = json.loads(json.dumps(fast))
    hollow["name"] = hollow["load_assignment"]["cluster_name"] = "hollow_cluster"
    hollow["load_assignment"]["endpoints"] = []
    clusters.append(hollow)
    plugin["providers"]["ghost"] = {"kind": "openai", "cluster": "ghost_cluster", "api_key_env": "OPENAI_API_KEY"}
    plugin["providers"]["hollow"] = {"kind": "openai", "cluster": "hollow_cluster", "api_key_env": "OPENAI_API_KEY"}
    plugin["models"] = {**plugin.get("models", {}), "ghost-model": {"provider": "ghost"}, "hollow-model": {"provider": "hollow"}}
    plugin["providers"]["deadai"] = {"kind": "openai", "cluster": "deadai_direct", "api_key_env": "OPENAI_API_KEY"}
    plugin["providers"]["openai_b"] = {"kind": "openai", "cluster": "openai_b", "api_key_env": "OPENAI_API_KEY"}
    plugin["providers"]["anthropic"]["forward_headers"] = ["anthropic-beta"]
    plugin["failover_clusters"].append({"cluster": "dead_then_anthropic", "providers": ["deadai", "anthropic"]})
    plugin["prices"] = {"dear-model": {"input": "10", "output": "30"}, "cheap-model": {"input": "0.1", "output": "0.3"}}
    plugin["breaker"] = {"consecutive_failures": 3, "cooldown_seconds": 3}
    # Guardrails that rewrite the answer of one route's streams (placeholders restored, card
    # numbers masked) through the failover cluster.
    plugin["guardrails"] = {"policies": [
        {"detectors": ["email"], "action": "redact", "restore": True, "when": {"models": ["chat-guarded"]}},
        {"detectors": ["card"], "action": "redact", "direction": "response", "when": {"models": ["chat-guarded"]}}]}
    # Generous: a loaded CI machine must not turn slow answers into failovers.
    plugin["retry"] = {"max_retries": 1, "per_try_timeout_ms": 4000}
    plugin["routes"] = [
        {"name": "compliance", "match": {"prompt": {"keywords": ["account number"], "regex": ["\\b\\d{4}-\\d{4}-\\d{4}-\\d{4}\\b"]}},
         "targets": [{"provider": "anthropic", "model": "claude-compliance"}]},
        {"name": "premium", "match": {"models": ["chat"], "headers": {"x-tier": "premium"}},
         "targets": [{"provider": "openai", "model": "gpt-4o-premium"}]},
        {"name": "later", "match": {"models": ["timed"], "time": window_later}, "targets": [{"provider": "openai", "model": "later-model"}]},
        {"name": "now", "match": {"models": ["timed"], "time": window_now}, "targets": [{"provider": "openai", "model": "now-model"}]},
        {"name": "canary", "match": {"models": ["canary"]}, "strategy": "weighted",
         "targets": [{"provider": "openai", "model": "stable", "weight": 90}, {"provider": "openai", "model": "next", "weight": 10}]},
        {"name": "fast", "match": {"models": ["fast"]}, "strategy": "least_latency",
         "targets": [{"provider": "openai", "model": "slow-a"}, {"provider": "openai_b", "model": "quick-b"}]},
        {"name": "turns", "match": {"models": ["turns"]}, "strategy": "round_robin",
         "targets": [{"provider": "openai", "model": "turn-a"}, {"provider": "openai_b", "model": "turn-b"}]},
        {"name": "thrifty", "match": {"models": ["thrifty"]}, "strategy": "least_cost",
         "targets": [{"provider": "openai", "model": "dear-model"}, {"provider": "openai_b", "model": "cheap-model"}]},
        *[chat_route(f"chat-{f}", "deadai" if f == "refused" else "openai") for f in FAULTS],
        chat_route("chat-stream"),
        chat_route("chat-guarded"),
        chat_route("chat-same-id"),
        chat_route("chat-forge"),
        chat_route("chat-forward", forward_headers=["x-custom"]),
        chat_route("chat-ratelimit"),
        chat_route("chat-eject"),
        chat_route("chat-recover"),
        {"name": "solo-last", "match": {"models": ["solo-last"]}, "targets": [{"provider": "openai", "model": "solo-primary"}],
         "last_resort": {"cluster": "review_queue", "path": "/review"}},
        {**chat_route("chat-picky"), "fallback": [{"provider": "anthropic", "model": "claude-sonnet-4-5", "params": {"temperature": "reject"}}]},
        chat_route("chat-last", last_resort={"cluster": "review_queue", "path": "/review"}),
        chat_route("chat-down", fallback_model="claude-down", last_resort={"cluster": "review_queue", "path": "/review"}),
        chat_route("chat"),
        # Two routes over the same provider model with their own parameter policies (issue 10
        # item 9), one direct and two through the failover cluster (translated per attempt).
        {"name": "shared-drop", "match": {"models": ["shared-drop"]},
         "targets": [{"provider": "openai", "model": "shared", "params": {"temperature": "drop"}}]},
        {"name": "shared-keep", "match": {"models": ["shared-keep"]},
         "targets": [{"provider": "openai", "model": "shared", "params": {"top_p": "drop"}}]},
        {**chat_route("relay-drop"), "targets": [{"provider": "openai", "model": "relayed", "params": {"temperature": "drop"}}]},
        {**chat_route("relay-keep"), "targets": [{"provider": "openai", "model": "relayed", "params": {"top_p": "drop"}}]},
    ]
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("routing"), concurrency=2)
    yield envoy
    envoy.stop()


@pytest.fixture(scope="module")
def gw_one_worker(gw, tmp_path_factory):
    """The same gateway on one worker: concurrent connections then share its memory."""
    envoy = Envoy(gw.cfg, tmp_path_factory.mktemp("routing-one-worker"), concurrency=1)
    yield envoy
    envoy.stop()


def user(text):
    return {"role": "user", "content": text}


def reset_mocks(net):
    for m in net.values():
        m.clear_faults()


def inject(net, fault: str, mock="a", count=1):
    spec = {"500": {"status": 500}, "503": {"status": 503}, "429": {"status": 429, "retry_after": "2"},
            "timeout": {"delay_ms": 9000}, "reset": {"reset": True}, "529": {"status": 529}}.get(fault)
    if spec:
        net[mock].fault(count=count, **spec)


# ---- failover within one request ---------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
def test_primary_failure_is_answered_by_the_fallback_translated_for_it(gw, net, fault, test_id):
    reset_mocks(net)
    inject(net, fault)
    r = gw.chat({"model": f"chat-{fault}", "messages": [user("hello failover")], "temperature": 0.3}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-provider"] == "anthropic"
    assert r.headers["x-tollgate-model"] == "claude-sonnet-4-5"
    assert r.headers["x-tollgate-route"] == f"chat-{fault}"
    assert r.headers["x-tollgate-attempts"] == "2"
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "Hello! You said: hello failover"
    to_fallback = net["b"].only_request(test_id)
    assert to_fallback["path"] == "/v1/messages"
    assert to_fallback["headers"]["x-api-key"] == "test-anthropic-key"
    assert to_fallback["body"]["model"] == "claude-sonnet-4-5" and to_fallback["body"]["max_tokens"] == 4096
    assert "x-tollgate-plan" not in to_fallback["headers"]
    if fault != "refused":
        to_primary = net["a"].only_request(test_id)
        assert to_primary["body"]["model"] == f"chat-{fault}-primary" and to_primary["path"] == "/v1/chat/completions"


def test_streaming_request_fails_over_before_any_byte(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503")
    s = gw.stream({"model": "chat-stream", "stream": True, "messages": [user("stream after failover")]}, {"x-test-id": test_id})
    assert s.status == 200 and s.headers["x-tollgate-provider"] == "anthropic"
    data = s.data()
    assert data[-1] == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in data[:-1] if c.get("choices"))
    assert text == "Hello! You said: stream after failover"
    assert not any(isinstance(c, dict) and c.get("usage") for c in data), "the relayed usage chunk is only for the gateway"
    assert "tollgate-usage" not in s.body.decode()
    assert net["b"].only_request(test_id)["body"]["stream"] is True


@pytest.mark.parametrize("path, failover", [("/v1/chat/completions", True), ("/v1/messages", False), ("/v1/messages", True),
                                            ("/v1/responses", True)])
def test_streams_through_the_failover_cluster_get_their_answer_rewritten(gw, net, test_id, path, failover):
    reset_mocks(net)
    if failover:
        inject(net, "503")
    prompt = "Mail jane@example.com about card 4111 1111 1111 1111."
    body = {"model": "chat-guarded", "stream": True, "max_tokens": 64, "messages": [user(prompt)]}
    if path == "/v1/responses":
        body = {"model": "chat-guarded", "stream": True, "store": False, "input": prompt}
    s = stream(gw.port, path, body, {"x-test-id": test_id, "x-mock-piece-bytes": "3"})
    assert s.status == 200, s.body
    assert s.headers["x-tollgate-provider"] == ("anthropic" if failover else "openai")
    served = net["b" if failover else "a"].only_request(test_id)
    assert "Mail <EMAIL_1> about card 4111" in json.dumps(served["body"]), "the provider saw the placeholder"
    events = [e for e in s.data() if isinstance(e, dict)]
    if path == "/v1/messages":
        text = "".join(e["delta"].get("text", "") for e in events if e.get("type") == "content_block_delta")
        assert events[-1]["type"] == "message_stop"
    elif path == "/v1/responses":
        text = "".join(e["delta"] for e in events if e.get("type") == "response.output_text.delta")
        assert events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    else:
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))
        assert s.data()[-1] == "[DONE]"
    assert text == "Hello! You said: Mail jane@example.com about card <CARD>.", text


def test_a_messages_request_fails_over_from_openai_to_anthropic_translated_per_attempt(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503")
    body = {"model": "chat-503", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "hello failover"}]}
    r = gw.request("POST", "/v1/messages", body, {"x-test-id": test_id, "anthropic-beta": "some-beta-2025"})
    assert r.status == 200, r.body
    assert (r.headers["x-tollgate-provider"], r.headers["x-tollgate-attempts"]) == ("anthropic", "2")
    message = r.json()
    assert message["type"] == "message" and message["content"][0]["text"] == "Hello! You said: hello failover"
    to_primary = net["a"].only_request(test_id)
    assert to_primary["path"] == "/v1/chat/completions", "the OpenAI attempt got chat"
    assert to_primary["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "anthropic-beta" not in to_primary["headers"]
    to_fallback = net["b"].only_request(test_id)
    assert to_fallback["path"] == "/v1/messages", "the Anthropic attempt got the client's own request"
    assert to_fallback["body"] == {**body, "model": "claude-sonnet-4-5"}
    assert to_fallback["headers"]["anthropic-beta"] == "some-beta-2025"
    # Streamed, the fallback's events reach the client as Anthropic sent them.
    reset_mocks(net)
    inject(net, "503")
    s = stream(gw.port, "/v1/messages", {**body, "model": "chat-stream", "stream": True}, {"x-test-id": test_id + "s"})
    assert s.status == 200 and s.headers["x-tollgate-provider"] == "anthropic"
    events = [e.split("\n", 1)[0] for e in s.body.decode().split("\n\n") if e]
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
    assert "stream_truncated" not in s.body.decode()


def test_a_responses_request_fails_over_to_anthropic_translated(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503")
    r = gw.request("POST", "/v1/responses", {"model": "chat-503", "input": "hello failover", "store": False}, {"x-test-id": test_id})
    assert r.status == 200, r.body
    assert (r.headers["x-tollgate-provider"], r.headers["x-tollgate-attempts"]) == ("anthropic", "2")
    response = r.json()
    assert response["object"] == "response" and response["output"][0]["content"][0]["text"] == "Hello! You said: hello failover"
    assert net["b"].only_request(test_id)["path"] == "/v1/messages"


def test_rate_limited_target_is_skipped_until_retry_after(gw, net, test_id):
    reset_mocks(net)
    inject(net, "429")
    assert gw.chat({"model": "chat-ratelimit", "messages": [user("x")]}, {"x-test-id": test_id}).headers["x-tollgate-attempts"] == "2"
    r = gw.chat({"model": "chat-ratelimit", "messages": [user("x")]}, {"x-test-id": test_id + "b"})
    assert (r.status, r.headers["x-tollgate-provider"], r.headers["x-tollgate-attempts"]) == (200, "anthropic", "1")
    assert net["a"].requests(test_id + "b") == [], "the rate-limited provider is not asked again"
    time.sleep(2.2)
    r = gw.chat({"model": "chat-ratelimit", "messages": [user("x")]}, {"x-test-id": test_id + "c"})
    assert r.headers["x-tollgate-provider"] == "openai"


def test_breaker_ejects_the_primary_across_workers_and_traffic_returns(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503", count=3)
    for i in range(3):
        r = gw.chat({"model": "chat-eject", "messages": [user("x")]}, {"x-test-id": f"{test_id}-{i}"})
        assert r.headers["x-tollgate-provider"] == "anthropic"
    # new connections spread over both workers: none of them may reach the primary
    results = asyncio.run(burst(gw.port, [({"model": "chat-eject", "messages": [user("y")]}, {"x-test-id": test_id + "-open"})] * 20))
    assert all(status == 200 for status, _ in results)
    assert net["a"].requests(test_id + "-open") == [], "no request reaches an ejected target"
    assert len(net["b"].requests(test_id + "-open")) == 20
    time.sleep(3.2)
    r = gw.chat({"model": "chat-eject", "messages": [user("x")]}, {"x-test-id": test_id + "-probe"})
    assert r.headers["x-tollgate-provider"] == "openai", "after the cool-down one probe goes to the recovered primary"
    r = gw.chat({"model": "chat-eject", "messages": [user("x")]}, {"x-test-id": test_id + "-back"})
    assert r.headers["x-tollgate-provider"] == "openai"


def test_breaker_recovers_at_its_cool_down_even_when_explained_meanwhile(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503", count=3)
    for i in range(3):
        assert gw.chat({"model": "chat-recover", "messages": [user("x")]}, {"x-test-id": f"{test_id}-{i}"}).headers["x-tollgate-provider"] == "anthropic"
    explain = {"x-tollgate-explain": "1"}
    skipped = gw.chat({"model": "chat-recover", "messages": [user("x")]}, explain).json()["skipped"]
    assert skipped == [{"target": "openai/chat-recover-primary", "reason": "circuit_open"}]
    time.sleep(3 + 0.3)  # the fixture's cool-down, and a margin
    # Decisions that send nothing take nothing: the probe slot stays free.
    for _ in range(3):
        assert gw.chat({"model": "chat-recover", "messages": [user("x")]}, explain).json()["plan"][0] == "openai/chat-recover-primary"
    r = gw.chat({"model": "chat-recover", "messages": [user("x")]}, {"x-test-id": test_id + "-probe"})
    assert (r.status, r.headers["x-tollgate-provider"]) == (200, "openai"), "the first real request after the cool-down probes"
    assert len(net["a"].requests(test_id + "-probe")) == 1 and net["b"].requests(test_id + "-probe") == []
    r = gw.chat({"model": "chat-recover", "messages": [user("x")]}, {"x-test-id": test_id + "-closed"})
    assert r.headers["x-tollgate-provider"] == "openai", "the probe succeeded: closed"
    assert gw.chat({"model": "chat-recover", "messages": [user("x")]}, explain).json()["skipped"] == []


def test_last_resort_receives_the_request_when_every_target_fails(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503", mock="a")
    inject(net, "529", mock="b")
    r = gw.chat({"model": "chat-last", "messages": [user("please review")]}, {"x-test-id": test_id})
    assert r.status == 503
    assert r.error["code"] == "all_targets_failed"
    # Behaviour change (issue 10): the client learns the providers tried, not the upstream models.
    assert "Tried: openai, anthropic." in r.error["message"] and "chat-last-primary" not in r.error["message"]
    assert "last-resort handler (HTTP 202" in r.error["message"] and "rev-" in r.error["message"]
    review = next(r for r in net["review"].requests() if r["body"]["messages"] == [user("please review")])
    assert review["path"] == "/review" and review["body"]["model"] == "chat-last"
    assert review["headers"]["x-request-id"]
    assert "openai/chat-last-primary" in review["headers"]["x-tollgate-tried"]


@pytest.mark.parametrize("model", ["solo-last", "chat-last"])
def test_errors_without_a_body_still_reach_the_last_resort(gw, net, model, test_id):
    reset_mocks(net)
    # Envoy retries the lone target on its cluster once: both attempts fail, with empty bodies.
    net["a"].fault(status=503, body="", count=2)
    net["b"].fault(status=529, body="", count=1)
    r = gw.chat({"model": model, "messages": [user("empty errors")]}, {"x-test-id": test_id})
    assert r.status == 503 and r.error["code"] == "all_targets_failed", r.body
    assert "last-resort handler (HTTP 202" in r.error["message"]
    assert any(q["body"]["messages"] == [user("empty errors")] for q in net["review"].requests())


def test_when_every_breaker_is_open_no_provider_is_called(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503", mock="a", count=50)
    inject(net, "529", mock="b", count=50)
    # Envoy retries a lone target on its own cluster, so failures add up unevenly: go on until
    # both breakers are open.
    for _ in range(10):
        explained = gw.chat({"model": "chat-down", "messages": [user("x")]}, {"x-tollgate-explain": "1"}).json()
        if not explained["plan"]:
            break
        assert gw.chat({"model": "chat-down", "messages": [user("x")]}).status == 503
    reset_mocks(net)
    r = gw.chat({"model": "chat-down", "messages": [user("down for review")]}, {"x-test-id": test_id})
    assert r.status == 503 and r.error["code"] == "all_targets_failed"
    assert "last-resort handler (HTTP 202" in r.error["message"] and "rev-" in r.error["message"]
    assert net["a"].requests(test_id) == [] and net["b"].requests(test_id) == [], "no provider is called"
    assert any(q["body"]["messages"] == [user("down for review")] for q in net["review"].requests())
    r = gw.chat({"model": "chat-down", "messages": [user("x")]}, {"x-tollgate-explain": "1"})
    assert {s["reason"] for s in r.json()["skipped"]} == {"circuit_open"}


def test_without_last_resort_the_503_lists_what_was_tried(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503", mock="a")
    inject(net, "529", mock="b")
    r = gw.chat({"model": "chat", "messages": [user("x")]}, {"x-test-id": test_id})
    assert r.status == 503 and r.error["code"] == "all_targets_failed"
    assert "Tried: openai, anthropic." in r.error["message"], "providers, not the upstream models behind the route"
    assert "chat-primary" not in r.error["message"] and "claude-sonnet-4-5" not in r.error["message"]


# ---- rules and strategies ----------------------------------------------------------------------

def served_model(gw, body, headers=None):
    r = gw.chat(body, headers or {})
    assert r.status == 200, r.body
    return r.headers["x-tollgate-route"], r.headers["x-tollgate-model"]


def test_rules_on_prompt_header_and_time(gw, net):
    reset_mocks(net)
    assert served_model(gw, {"model": "chat", "messages": [user("What is the ACCOUNT NUMBER for this?")]}) == ("compliance", "claude-compliance")
    assert served_model(gw, {"model": "chat", "messages": [user("card 4111-1111-1111-1111 was charged")]}) == ("compliance", "claude-compliance")
    assert served_model(gw, {"model": "chat", "messages": [user("hi")]}, {"x-tier": "premium"}) == ("premium", "gpt-4o-premium")
    assert served_model(gw, {"model": "chat", "messages": [user("hi")]})[0] == "chat"
    assert served_model(gw, {"model": "timed", "messages": [user("hi")]}) == ("now", "now-model")


def test_weighted_split_is_90_10_within_3_percent(gw, net):
    reset_mocks(net)
    requests = [({"model": "canary", "messages": [user("hi")]}, {})] * 2000
    counts = {"stable": 0, "next": 0}
    for chunk in range(0, len(requests), 250):
        for status, body in asyncio.run(burst(gw.port, requests[chunk:chunk + 250])):
            assert status == 200
            counts[json.loads(body)["model"]] += 1
    share = counts["next"] / 2000
    assert 0.07 <= share <= 0.13, counts


def test_least_latency_prefers_the_faster_provider(gw, net):
    reset_mocks(net)
    net["a"].fault(delay_ms=150, count=1000)
    picks = [served_model(gw, {"model": "fast", "messages": [user("hi")]})[1] for _ in range(40)]
    reset_mocks(net)
    assert picks.count("quick-b") >= 30, picks


def test_round_robin_alternates_in_each_worker(gw, net):
    reset_mocks(net)
    picks = [served_model(gw, {"model": "turns", "messages": [user("hi")]})[1] for _ in range(20)]
    # each of the 2 workers alternates strictly, so the totals differ by at most one per worker
    assert abs(picks.count("turn-a") - picks.count("turn-b")) <= 2 and len(set(picks)) == 2, picks


def test_least_cost_picks_the_cheaper_equivalent_target(gw, net):
    reset_mocks(net)
    assert {served_model(gw, {"model": "thrifty", "messages": [user("hi")]})[1] for _ in range(5)} == {"cheap-model"}


def test_explain_returns_the_decision_without_calling_a_provider(gw, net, test_id):
    reset_mocks(net)
    r = gw.chat({"model": "chat", "messages": [user("hi")]}, {"x-tollgate-explain": "1", "x-test-id": test_id})
    assert r.status == 200
    d = r.json()
    assert d["route"] == "chat" and d["failover_cluster"] is True
    assert d["plan"] == ["openai/chat-primary", "anthropic/claude-sonnet-4-5"]
    assert d["cluster"] == "openai_then_anthropic"
    assert net["a"].requests(test_id) == [] and net["b"].requests(test_id) == []


def test_client_control_headers_are_never_trusted(gw, net, test_id):
    reset_mocks(net)
    r = gw.chat({"model": "chat", "messages": [user("hi")]},
                {"x-test-id": test_id, "x-tollgate-cluster": "review_queue", "x-envoy-upstream-rq-timeout-ms": "1",
                 "x-envoy-max-retries": "9", "x-tollgate-plan": "chat;anthropic=evil"})
    assert r.status == 200 and r.headers["x-tollgate-provider"] == "openai"
    sent = net["a"].only_request(test_id)
    assert sent["body"]["model"] == "chat-primary"
    assert not any(h.startswith(("x-tollgate-", "x-envoy-max-retries")) for h in sent["headers"])
    assert net["review"].requests(test_id) == []


# ---- what reaches the providers ----------------------------------------------------------------

def test_concurrent_requests_with_the_same_request_id_each_fail_over_translated(gw_one_worker, net, test_id):
    """Plans used to be keyed by the client's x-request-id: the first request to finish removed
    the second's plan, whose retry then went to Anthropic untranslated with OpenAI's key."""
    reset_mocks(net)
    net["a"].fault(status=503, delay_ms=1500, count=1)  # the first request fails slowly
    net["a"].fault(status=503, count=1)                 # the second fails at once and finishes first
    results = {}

    def send(name):
        results[name] = gw_one_worker.chat({"model": "chat-same-id", "messages": [user(f"hello {name}")]},
                                {"x-test-id": f"{test_id}-{name}", "x-request-id": "shared-request-id"})

    slow = threading.Thread(target=send, args=("slow",))
    slow.start()
    time.sleep(0.5)
    send("fast")
    slow.join()
    for name in ("slow", "fast"):
        r = results[name]
        assert r.status == 200, (name, r.body)
        assert r.headers["x-tollgate-provider"] == "anthropic"
        assert r.json()["choices"][0]["message"]["content"] == f"Hello! You said: hello {name}"
        to_openai = net["a"].only_request(f"{test_id}-{name}")
        assert to_openai["headers"]["x-request-id"] == "shared-request-id", "the client's id is kept (and was the collision)"
        to_anthropic = net["b"].only_request(f"{test_id}-{name}")
        assert to_anthropic["path"] == "/v1/messages" and to_anthropic["headers"]["host"] == "api.anthropic.com"
        assert to_anthropic["headers"]["x-api-key"] == "test-anthropic-key"
        assert "authorization" not in to_anthropic["headers"], "OpenAI's key never reaches Anthropic"
        assert to_anthropic["body"]["model"] == "claude-sonnet-4-5" and to_anthropic["body"]["max_tokens"] == 4096


def test_a_request_reaching_a_failover_cluster_without_a_plan_is_refused(gw, net, test_id):
    reset_mocks(net)
    for headers in ({}, {"x-tollgate-plan": "chat;openai=gpt-4o,anthropic=claude", "x-request-id": "guess"}):
        r = gw.request("POST", "/raw/v1/chat/completions", {"model": "chat", "messages": [user("hi")]},
                       {"x-test-id": test_id, **headers})
        assert r.status == 500, r.body
        assert r.error["code"] == "routing_plan_missing"
    assert net["a"].requests(test_id) == [] and net["b"].requests(test_id) == [], "no provider is called"


CLIENT_ONLY = {"cookie": "session=secret", "openai-organization": "org-someone-else", "openai-project": "proj-x",
               "anthropic-beta": "some-beta", "x-custom": "custom-value", "x-forwarded-for": "10.1.2.3"}
TRACING = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "v=1",
           "user-agent": "test-client/1.0", "x-request-id": "trace-me"}


def test_client_headers_outside_the_allowlist_do_not_reach_the_provider(gw, net, test_id):
    reset_mocks(net)
    r = gw.chat({"model": "chat", "messages": [user("hi")]}, {"x-test-id": test_id, "x-tier": "premium", **CLIENT_ONLY, **TRACING})
    assert r.status == 200, r.body
    sent = net["a"].only_request(test_id)["headers"]
    for name in CLIENT_ONLY:
        assert name not in sent, name
    for name, value in TRACING.items():
        assert sent[name] == value, name
    assert sent["authorization"] == "Bearer test-openai-key"


@pytest.mark.parametrize("route_headers", [{"x-tier": "premium"}, {}], ids=["direct", "failover"])
def test_provider_response_headers_about_the_gateways_account_do_not_reach_the_client(gw, net, route_headers, test_id):
    reset_mocks(net)
    r = gw.chat({"model": "chat", "messages": [user("hi")]}, {"x-test-id": test_id, **route_headers})
    assert r.status == 200 and r.headers["x-tollgate-provider"] == "openai", r.body
    for name in ("openai-organization", "x-ratelimit-remaining-tokens", "set-cookie"):
        assert name not in r.headers, name
    assert r.headers["x-request-id"].startswith("chatcmpl-"), "the provider's request id is kept for support"


def test_forward_headers_of_route_and_provider_reach_each_attempt(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503")
    r = gw.chat({"model": "chat-forward", "messages": [user("hi")]}, {"x-test-id": test_id, **CLIENT_ONLY, **TRACING})
    assert r.status == 200 and r.headers["x-tollgate-provider"] == "anthropic", r.body
    to_openai = net["a"].only_request(test_id)["headers"]
    to_anthropic = net["b"].only_request(test_id)["headers"]
    assert to_openai["x-custom"] == to_anthropic["x-custom"] == "custom-value", "the route's forward_headers"
    assert to_anthropic["anthropic-beta"] == "some-beta", "the provider's forward_headers"
    assert "anthropic-beta" not in to_openai
    for name in ("cookie", "openai-organization", "openai-project", "x-forwarded-for"):
        assert name not in to_openai and name not in to_anthropic, name
    assert to_anthropic["traceparent"] == TRACING["traceparent"]


def test_a_provider_cannot_forge_the_upstream_filters_reports(gw, net, test_id):
    """The provider streams Tollgate's former internal usage comment (claiming 1 token each way)
    and x-tollgate-* response headers; the usage accounted is the real one."""
    reset_mocks(net)
    body = {"model": "chat-forge", "stream": True, "stream_options": {"include_usage": True},
            "messages": [user("count every one of these words honestly please")]}
    # events 50 ms apart: the forged comment arrives in a chunk of its own
    s = gw.stream(body, {"x-test-id": test_id, "x-mock-forge-tollgate": "1", "x-mock-delay-ms": "50"})
    assert s.status == 200, s.body
    assert (s.headers["x-tollgate-provider"], s.headers["x-tollgate-model"]) == ("openai", "chat-forge-primary")
    assert "x-tollgate-usage" not in s.headers
    real = [c for c in s.data() if isinstance(c, dict) and c.get("usage")][-1]["usage"]
    assert real["completion_tokens"] > 1 and real["prompt_tokens"] > 1
    labels = 'gen_ai_provider_name="openai",gen_ai_request_model="chat-forge-primary"'
    output = f'tollgate_gen_ai_client_token_usage{{{labels},gen_ai_token_type="output"}}'
    # counters are defined at once and added on each worker's next flush
    accounted = wait_until(lambda: (lambda m: m if m.get(output, 0) > 0 else None)(prometheus(gw)), 10, "usage counters")
    assert accounted[output] == real["completion_tokens"]
    assert accounted[f'tollgate_gen_ai_client_token_usage{{{labels},gen_ai_token_type="input"}}'] == real["prompt_tokens"]


@pytest.mark.parametrize("prefix", ["shared", "relay"])
def test_routes_sharing_a_provider_model_keep_their_own_params(gw, net, prefix, test_id):
    reset_mocks(net)
    body = {"messages": [user("hi")], "temperature": 0.4, "top_p": 0.5}
    drop = gw.chat({**body, "model": f"{prefix}-drop"}, {"x-test-id": test_id + "-drop"})
    keep = gw.chat({**body, "model": f"{prefix}-keep"}, {"x-test-id": test_id + "-keep"})
    assert (drop.status, keep.status) == (200, 200), (drop.body, keep.body)
    assert drop.headers["x-tollgate-dropped-params"] == "temperature"
    assert keep.headers["x-tollgate-dropped-params"] == "top_p"
    sent_drop = net["a"].only_request(test_id + "-drop")["body"]
    sent_keep = net["a"].only_request(test_id + "-keep")["body"]
    assert "temperature" not in sent_drop and sent_drop["top_p"] == 0.5
    assert "top_p" not in sent_keep and sent_keep["temperature"] == 0.4


@pytest.mark.parametrize("model,says", [("ghost-model", "missing from the gateway's Envoy configuration"),
                                        ("hollow-model", "no healthy endpoint")])
def test_errors_from_envoy_itself_say_no_provider_was_reached(gw, net, model, says):
    r = gw.chat({"model": model, "messages": [user("hi")]})
    assert r.status == 503, r.body
    assert says in r.error["message"] and "answered HTTP" not in r.error["message"], r.error
    assert r.error["code"] == "provider_unreachable"
    assert "_cluster" not in r.error["message"], "Envoy's cluster names stay internal"


def test_a_fallback_that_refuses_the_request_is_skipped_not_a_final_400(gw, net, test_id):
    reset_mocks(net)
    inject(net, "503")
    # The fallback's policy rejects temperature: the request goes to the primary alone, whose
    # own retry answers, instead of failing over into a 400.
    r = gw.chat({"model": "chat-picky", "temperature": 0.3, "messages": [user("hi")]}, {"x-test-id": test_id})
    assert (r.status, r.headers.get("x-tollgate-provider")) == (200, "openai"), r.body
    assert len(net["a"].requests(test_id)) == 2 and net["b"].requests(test_id) == []
    explained = gw.chat({"model": "chat-picky", "temperature": 0.3, "messages": [user("hi")]}, {"x-tollgate-explain": "1"}).json()
    assert explained["skipped"] == [{"target": "anthropic/claude-sonnet-4-5", "reason": "rejects_request"}]
