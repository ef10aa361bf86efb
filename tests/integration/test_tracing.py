"""Traces (issue 15, section 3): Tollgate's facts as OpenTelemetry GenAI attributes on Envoy's own
spans. Envoy's OpenTelemetry tracer, configured as examples/tracing/envoy.yaml ships it, exports
to a real OTLP/gRPC receiver (the collector's TraceService from `opentelemetry-proto`, served by
`grpcio`); the providers are mocks that record the `traceparent` they receive."""
import secrets
import threading
from concurrent import futures
from decimal import Decimal

import grpc
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from harness import ROOT, Envoy, Mock, free_port, load_config, localize, plugin_config, set_plugin_config, wait_until

EXAMPLE = "examples/tracing/envoy.yaml"
# The README's table, in its order: every attribute Tollgate sets.
ATTRIBUTES = [
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens", "tollgate.cost_usd", "tollgate.route", "tollgate.attempts",
    "tollgate.time_to_first_token_ms",
]
# USD per million tokens, patched in so each span's cost can be checked against its usage.
PRICES = {"gpt-4o-mini": {"input": "1", "output": "2", "cache_read": "0.5"},
          "claude-sonnet-4-5": {"input": "3", "output": "15", "cache_read": "0.30", "cache_write": "3.75"}}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span Envoy exports, by trace id."""

    def __init__(self):
        self.spans = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 - the gRPC method's name
        with self.lock:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def span(self, trace_id: str):
        """The one span of this trace, once Envoy has exported it (it flushes every 5 s)."""
        def found():
            with self.lock:
                spans = [s for s in self.spans if s.trace_id.hex() == trace_id]
            assert len(spans) <= 1, f"{len(spans)} spans in trace {trace_id}"
            return spans[0] if spans else None
        return wait_until(found, 20, f"span of trace {trace_id}")


def attributes(span) -> dict:
    return {a.key: a.value.string_value for a in span.attributes}


def tollgate_attributes(span) -> dict:
    return {k: v for k, v in attributes(span).items() if k in ATTRIBUTES}


def cost(model: str, usage: dict, cache_read=0, cache_write=0) -> Decimal:
    """What the answer costs at PRICES, each kind of token at its own price."""
    price = PRICES[model]
    tokens = {"input": usage["prompt_tokens"] - cache_read - cache_write, "output": usage["completion_tokens"],
              "cache_read": cache_read, "cache_write": cache_write}
    return sum(Decimal(n) * Decimal(price.get(kind, "0")) for kind, n in tokens.items()) / Decimal(1_000_000)


def answered(provider: str, model: str, usage: dict, cache_read=0, cache_write=0, attempts=1, **tollgate) -> dict:
    """The attributes of a complete chat answer with this usage (cost and timing checked apart)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": str(usage["prompt_tokens"]),
        "gen_ai.usage.output_tokens": str(usage["completion_tokens"]),
        "gen_ai.usage.cache_read.input_tokens": str(cache_read),
        "gen_ai.usage.cache_creation.input_tokens": str(cache_write),
        "tollgate.attempts": str(attempts),
        **{f"tollgate.{name}": value for name, value in tollgate.items()},
    }


@pytest.fixture(scope="module")
def receiver():
    service = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    service.port = free_port()
    server.add_insecure_port(f"127.0.0.1:{service.port}")
    server.start()
    yield service
    server.stop(grace=None)


@pytest.fixture(scope="module")
def net():
    mocks = {"openai": Mock(), "anthropic": Mock()}
    yield mocks
    for m in mocks.values():
        m.stop()


@pytest.fixture(scope="module")
def gw(net, receiver, tmp_path_factory):
    cfg = load_config(EXAMPLE)
    localize(cfg, {"openai": net["openai"].port, "anthropic": net["anthropic"].port, "otel_collector": receiver.port})
    # Envoy's outlier detection would eject the fault-injected mock for 30 s.
    for cluster in cfg["static_resources"]["clusters"]:
        cluster.pop("outlier_detection", None)
    # Envoy's tracer exports every 5 s or 5 spans (runtime keys of the OpenTelemetry tracer):
    # each span at once here, so the tests need not wait.
    cfg["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {"tracing.opentelemetry.min_flush_spans": 1}}]}
    plugin = plugin_config(cfg)
    plugin["prices"] = PRICES
    set_plugin_config(cfg, plugin)
    envoy = Envoy(cfg, tmp_path_factory.mktemp("tracing"))
    yield envoy
    envoy.stop()


def traced(test_id: str, **extra) -> tuple[str, dict]:
    """A client's W3C trace context: Envoy's span joins its trace."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", "x-test-id": test_id, **extra}


def traceparent_of(span) -> str:
    return f"00-{span.trace_id.hex()}-{span.span_id.hex()}-01"


def user(text):
    return [{"role": "user", "content": text}]


def test_the_shipped_tags_are_every_attribute_from_tollgate_filter_state_only():
    hcm = yaml.safe_load((ROOT / EXAMPLE).read_text())["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    tags = hcm["tracing"]["custom_tags"]
    assert [t["tag"] for t in tags] == ATTRIBUTES
    # Filter state only: a client can write headers, never filter state.
    assert all(t == {"tag": t["tag"], "value": f"%FILTER_STATE(wasm.{t['tag']}:PLAIN)%"} for t in tags), tags
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in ATTRIBUTES)


def test_a_chat_answer_puts_its_usage_and_cost_on_envoys_span_and_its_traceparent_upstream(gw, net, receiver, test_id):
    trace_id, headers = traced(test_id, **{"x-mock-cache-read": "3"})
    r = gw.chat({"model": "gpt-4o-mini", "messages": user("trace me")}, headers)
    assert r.status == 200, r.body
    usage = r.json()["usage"]
    span = receiver.span(trace_id)
    got = tollgate_attributes(span)
    assert Decimal(got.pop("tollgate.cost_usd")) == cost("gpt-4o-mini", usage, cache_read=3)
    assert got == answered("openai", "gpt-4o-mini", usage, cache_read=3)
    # Envoy's own facts stay on the span beside Tollgate's.
    assert attributes(span)["http.status_code"] == "200"
    # The provider got the span's trace context (the trace the client started, Envoy's span as parent).
    assert net["openai"].only_request(test_id)["headers"]["traceparent"] == traceparent_of(span)


def test_a_stream_whose_usage_comes_in_its_last_event_has_it_on_the_span(gw, net, receiver, test_id):
    trace_id, headers = traced(test_id, **{"x-mock-cache-read": "4", "x-mock-cache-write": "2"})
    s = gw.stream({"model": "claude-sonnet", "stream": True, "stream_options": {"include_usage": True},
                   "messages": user("stream a traced answer")}, headers)
    assert s.status == 200 and s.error is None, s.body
    usage = next(d["usage"] for d in s.data() if isinstance(d, dict) and d.get("usage"))
    span = receiver.span(trace_id)
    got = tollgate_attributes(span)
    assert int(got.pop("tollgate.time_to_first_token_ms")) >= 0
    assert Decimal(got.pop("tollgate.cost_usd")) == cost("claude-sonnet-4-5", usage, cache_read=4, cache_write=2)
    assert got == answered("anthropic", "claude-sonnet-4-5", usage, cache_read=4, cache_write=2)
    assert usage["completion_tokens"] > 1, "the usage of the whole stream, not of its first event"
    assert net["anthropic"].only_request(test_id)["headers"]["traceparent"] == traceparent_of(span)


def test_a_failover_names_the_provider_that_answered_its_route_and_attempts(gw, net, receiver, test_id):
    net["openai"].fault(count=1, status=503)
    try:
        trace_id, headers = traced(test_id)
        r = gw.chat({"model": "chat", "messages": user("fail over, traced")}, headers)
    finally:
        net["openai"].clear_faults()
    assert r.status == 200, r.body
    assert r.headers["x-tollgate-attempts"] == "2"
    usage = r.json()["usage"]
    span = receiver.span(trace_id)
    got = tollgate_attributes(span)
    assert Decimal(got.pop("tollgate.cost_usd")) == cost("claude-sonnet-4-5", usage)
    assert got == answered("anthropic", "claude-sonnet-4-5", usage, attempts=2, route="default")
    # Both attempts carried the trace context, through Tollgate's per-attempt upstream filter.
    for provider in ("openai", "anthropic"):
        assert net[provider].only_request(test_id)["headers"]["traceparent"] == traceparent_of(span), provider


def test_a_request_tollgate_refuses_has_a_span_without_tollgate_attributes(gw, receiver, test_id):
    trace_id, headers = traced(test_id)
    r = gw.chat({"model": "no-such-model", "messages": user("hello")}, headers)
    assert r.status == 404, r.body
    span = receiver.span(trace_id)
    assert attributes(span)["http.status_code"] == "404"
    assert tollgate_attributes(span) == {}
