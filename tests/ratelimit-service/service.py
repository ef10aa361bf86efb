#!/usr/bin/env python3
"""A rate-limit service speaking Envoy's protocol (envoy.service.ratelimit.v3.RateLimitService,
gRPC), with envoyproxy/ratelimit's documented semantics over Redis, for the integration tests.

usage: service.py --port P --redis-port R --config limits.json

limits.json: {"domain": "tollgate", "descriptors": [{"key": "key", "value": "alice"?, "requests_per_unit": 5, "unit": "minute"}]}
A descriptor entry without `value` matches every value of its key (each value counted apart).

Semantics (https://github.com/envoyproxy/ratelimit#overview): each descriptor of a request is
counted in a fixed window of its unit (second, minute, hour, day, month); the hits added are the
descriptor's `hits_addend`, else the request's, and at least 1; one Lua script does INCRBY and
EXPIRE atomically, so every service instance and every Envoy sharing the Redis sees one count.
A descriptor whose count after the increment exceeds its limit is OVER_LIMIT (the hits stay
counted, as in envoyproxy/ratelimit), and so is the response. Descriptors without a limit are OK.

The messages are read and written by hand from their field numbers
(api/envoy/service/ratelimit/v3/rls.proto, api/envoy/extensions/common/ratelimit/v3/ratelimit.proto):
the few fields the protocol needs, with no generated code.
"""
import argparse
import json
import signal
import time
from concurrent import futures

import grpc
import redis

UNITS = {"second": (1, 1), "minute": (60, 2), "hour": (3600, 3), "day": (86400, 4), "month": (30 * 86400, 5)}
INCR = "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('EXPIRE', KEYS[1], ARGV[2]) return n"
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


def parse_request(data: bytes) -> tuple[str, list[tuple[list[tuple[str, str]], int]], int]:
    """domain, [(entries, hits_addend or 0)], the request's hits_addend."""
    domain, descriptors, hits = "", [], 0
    for number, value in fields(data):
        if number == 1:
            domain = value.decode()
        elif number == 2:
            entries, addend = [], 0
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


# ---- the service ---------------------------------------------------------------------------------

class Service:
    def __init__(self, config: dict, store: redis.Redis):
        self.domain = config["domain"]
        self.limits = config["descriptors"]
        self.store = store
        self.incr = store.register_script(INCR)

    def limit_for(self, entries: list[tuple[str, str]]):
        if len(entries) != 1:
            return None
        key, value = entries[0]
        exact = [d for d in self.limits if d["key"] == key and d.get("value") == value]
        return (exact or [d for d in self.limits if d["key"] == key and "value" not in d] or [None])[0]

    def should_rate_limit(self, data: bytes, _context) -> bytes:
        domain, descriptors, request_hits = parse_request(data)
        overall, statuses = OK, []
        now = int(time.time())
        for entries, addend in descriptors:
            limit = self.limit_for(entries) if domain == self.domain else None
            if limit is None:
                statuses.append(put(1, OK))
                continue
            seconds, unit = UNITS[limit["unit"]]
            window = now - now % seconds
            key = "_".join([domain, *(f"{k}_{v}" for k, v in entries), str(window)])
            count = self.incr(keys=[key], args=[max(1, addend or request_hits), seconds])
            code = OK if count <= limit["requests_per_unit"] else OVER_LIMIT
            overall = max(overall, code)
            remaining = max(0, limit["requests_per_unit"] - count)
            statuses.append(status(code, limit["requests_per_unit"], unit, remaining, window + seconds - now))
        return put(1, overall) + b"".join(put(2, s) for s in statuses)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    service = Service(config, redis.Redis(host="127.0.0.1", port=args.redis_port))
    handler = grpc.method_handlers_generic_handler("envoy.service.ratelimit.v3.RateLimitService", {
        "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
            service.should_rate_limit, request_deserializer=lambda b: b, response_serializer=lambda b: b),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
