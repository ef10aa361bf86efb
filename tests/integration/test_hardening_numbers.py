"""Numbers from providers at the edge of their type, through real Envoy: a `retry-after` larger
than any clock once wrapped around to "now" (the release build does not trap on overflow), so the
rate-limited provider was asked again at once. It saturates now, and the hour cap applies."""
from test_routing import gw, inject, net, reset_mocks, user  # noqa: F401 - the routing fixtures, a fresh gateway for this module


def test_a_retry_after_beyond_u64_keeps_the_target_skipped(gw, net, test_id):  # noqa: F811
    reset_mocks(net)
    net["a"].fault(status=429, retry_after="18446744073709551615")
    r = gw.chat({"model": "chat-ratelimit", "messages": [user("x")]}, {"x-test-id": test_id})
    assert (r.status, r.headers["x-tollgate-attempts"]) == (200, "2"), r.body
    r = gw.chat({"model": "chat-ratelimit", "messages": [user("x")]}, {"x-test-id": test_id + "b"})
    assert (r.status, r.headers["x-tollgate-provider"], r.headers["x-tollgate-attempts"]) == (200, "anthropic", "1")
    assert net["a"].requests(test_id + "b") == [], "the rate-limited provider is not asked again"
    assert "panicked" not in gw.log()
