#!/usr/bin/env python3
"""A rate-limit service speaking Envoy's protocol (envoy.service.ratelimit.v3.RateLimitService,
gRPC), with envoyproxy/ratelimit's documented semantics over Redis, for the integration tests.

usage: service.py --port P --redis-port R --config limits.json

limits.json: {"domain": "tollgate", "descriptors": [
    {"key": "key", "value": "alice"?, "requests_per_unit": 5, "unit": "minute"},
    {"entries": [["key", null], ["charge", "usd_day"]], "requests_per_unit": 5000000, "unit": "day"}]}
A limit matches a descriptor with exactly its entries, in order; an entry (or `key`) without a
value matches every value of its key (each value counted apart).

Semantics (https://github.com/envoyproxy/ratelimit#overview): each descriptor of a request is
counted in a fixed window of its unit (second, minute, hour, day, 30-day month) aligned to the
Unix epoch; the hits added are the descriptor's own `hits_addend` when it has one, 0 included (a
check that counts nothing: utils.GetHitsAddends, "the zero value means check only"), else the
request's and at least 1; one Lua script does INCRBY and EXPIRE atomically, so every service
instance and every Envoy sharing the Redis sees one count. A descriptor whose count after the
increment exceeds its limit is OVER_LIMIT (the hits stay counted, as in envoyproxy/ratelimit), and
so is the response. Descriptors without a limit are OK. Keys are envoyproxy/ratelimit's:
`domain_key_value[_key_value…]_windowstart`. A Redis that fails or is unreachable makes the call
fail (gRPC UNAVAILABLE), as envoyproxy/ratelimit's does, and Envoy's `failure_mode_deny` decides.

Served by grpc.aio and redis.asyncio on one event loop (no thread per call), with each
descriptor's limit looked up once: the same semantics, faster, for the load tests and `make bench`.

The messages are read and written by hand from their field numbers
(api/envoy/service/ratelimit/v3/rls.proto, api/envoy/extensions/common/ratelimit/v3/ratelimit.proto):
the few fields the protocol needs, with no generated code.
"""
import argparse
import asyncio
import json
import signal
import sys
import time

import grpc
import redis
import redis.asyncio

UNITS = {"second": (1, 1), "minute": (60, 2), "hour": (3600, 3), "day": (86400, 4), "month": (30 * 86400, 5)}
# Every descriptor of a call in one round trip: INCRBY and EXPIRE per key, the counts returned in order.
INCR = """local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  redis.call('EXPIRE', key, ARGV[2 * i])
end
return counts"""
OK, OVER_LIMIT = 1, 2


# ---- protobuf wire format ------------------------------------------------------------------------

def varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(data: bytes):
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    i = 0
    while i < len(data):
        tag, i = varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            size, i = varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def put_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def put(number: int, value) -> bytes:
    if isinstance(value, int):
        return put_varint(number << 3) + put_varint(value)
    return put_varint(number << 3 | 2) + put_varint(len(value)) + value


def parse_request(data: bytes) -> tuple[str, list[tuple[list[tuple[str, str]], int | None]], int]:
    """domain, [(entries, the descriptor's hits_addend or None)], the request's hits_addend."""
    domain, descriptors, hits = "", [], 0
    for number, value in fields(data):
        if number == 1:
            domain = value.decode()
        elif number == 2:
            entries, addend = [], None
            for n, v in fields(value):
                if n == 1:
                    entry = dict(fields(v))
                    entries.append((entry.get(1, b"").decode(), entry.get(2, b"").decode()))
                elif n == 3:  # google.protobuf.UInt64Value
                    addend = dict(fields(v)).get(1, 0)
            descriptors.append((entries, addend))
        elif number == 3:
            hits = value
    return domain, descriptors, hits


def status(code: int, limit: int, unit: int, remaining: int, reset_s: int) -> bytes:
    current = put(1, limit) + put(2, unit)
    return put(1, code) + put(2, current) + put(3, remaining) + put(4, put(1, reset_s))


# ---- the semantics --------------------------------------------------------------------------------

def window_start(now: int, seconds: int) -> int:
    """The start of the fixed window holding `now` (windows are aligned to the Unix epoch)."""
    return now - now % seconds


def hits(descriptor_addend: int | None, request_addend: int) -> int:
    """What a descriptor adds: its own hits_addend (0: only check), else the request's, at least 1."""
    return descriptor_addend if descriptor_addend is not None else max(1, request_addend)


def cache_key(domain: str, entries: list[tuple[str, str]], window: int) -> str:
    return "_".join([domain, *(f"{k}_{v}" for k, v in entries), str(window)])


def matches(limit: dict, entries: list[tuple[str, str]]) -> int:
    """0: no match; else how specific (entries matched by value count more)."""
    wanted = limit.get("entries") or [[limit["key"], limit.get("value")]]
    if [k for k, _ in wanted] != [k for k, _ in entries]:
        return 0
    if any(v is not None and v != got for (_, v), (_, got) in zip(wanted, entries)):
        return 0
    return 1 + sum(v is not None for _, v in wanted)


# ---- the service ---------------------------------------------------------------------------------

class Service:
    def __init__(self, config: dict, store: redis.asyncio.Redis):
        self.domain = config["domain"]
        self.limits = config["descriptors"]
        self.incr = store.register_script(INCR)
        self.matched: dict[tuple, dict | None] = {}

    def limit_for(self, entries: list[tuple[str, str]]):
        """The most specific limit matching `entries` (remembered: the limits never change)."""
        key = tuple(entries)
        if key not in self.matched:
            if len(self.matched) >= 10_000:  # bounded, whatever values the descriptors carry
                self.matched.clear()
            ranked = sorted(((matches(d, entries), i) for i, d in enumerate(self.limits)), reverse=True)
            self.matched[key] = self.limits[ranked[0][1]] if ranked and ranked[0][0] else None
        return self.matched[key]

    async def should_rate_limit(self, data: bytes, context) -> bytes:
        try:
            return await self.decide(*parse_request(data))
        except redis.RedisError as e:
            print(f"ratelimit service: redis failed: {e!r}", file=sys.stderr, flush=True)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"redis: {e}")

    async def decide(self, domain: str, descriptors, request_hits: int) -> bytes:
        now = int(time.time())
        counted = []  # (index in the response, limit, unit, window end, key, hits, seconds)
        for i, (entries, addend) in enumerate(descriptors):
            limit = self.limit_for(entries) if domain == self.domain else None
            if limit is not None:
                seconds, unit = UNITS[limit["unit"]]
                window = window_start(now, seconds)
                counted.append((i, limit, unit, window + seconds, cache_key(domain, entries, window), hits(addend, request_hits), seconds))
        counts = await self.incr(keys=[c[4] for c in counted], args=[a for c in counted for a in (c[5], c[6])]) if counted else []
        statuses = [put(1, OK)] * len(descriptors)
        overall = OK
        for (i, limit, unit, window_end, *_), count in zip(counted, counts):
            code = OK if count <= limit["requests_per_unit"] else OVER_LIMIT
            overall = max(overall, code)
            remaining = max(0, limit["requests_per_unit"] - count)
            statuses[i] = status(code, limit["requests_per_unit"], unit, remaining, window_end - now)
        return put(1, overall) + b"".join(put(2, s) for s in statuses)


async def serve(args, config: dict):
    """One event loop serves every call (grpc.aio and redis.asyncio): no thread per call, so no
    lock contention between them, and each call waits on Redis without holding a thread."""
    # Bounded so that a Redis that is gone or hangs fails the call fast, not after Envoy's timeout.
    store = redis.asyncio.Redis(host="127.0.0.1", port=args.redis_port, socket_timeout=0.5, socket_connect_timeout=0.5)
    service = Service(config, store)
    handler = grpc.method_handlers_generic_handler("envoy.service.ratelimit.v3.RateLimitService", {
        "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
            service.should_rate_limit, request_deserializer=lambda b: b, response_serializer=lambda b: b),
    })
    # Several processes may serve one port, as replicas behind one address.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)  # calls in flight may finish; no new ones are taken


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    asyncio.run(serve(args, config))


if __name__ == "__main__":
    main()
