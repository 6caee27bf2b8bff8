"""Unit tests for connectors.http (retries, waits, limiter, redaction) and connectors.base helpers.
All waiting goes through FakeClock.sleep: nothing really waits."""
from __future__ import annotations

import email.utils
import json
import logging

import httpx
import pytest

from connectors.base import Contact, Outcome, Submission, Target, batched, complete_outcomes
from connectors.errors import (
    AuthError,
    RateLimitedError,
    STATUS_ERRORS,
    TransientError,
    VendorUnreachableError,
    error_for_status,
)
from connectors.http import (
    MAX_WAIT_S,
    HttpClient,
    RateLimit,
    RateLimiter,
    RedactingFilter,
    RetryPolicy,
    redact,
    retry_wait_s,
)

SECRET = "SG.supersecret-key-ABCDEFG"


def scripted(responses):
    """MockTransport answering from a list of Response objects / exceptions (last one repeats)."""
    calls = []

    def handler(request: httpx.Request):
        calls.append(request)
        item = responses[min(len(calls) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler), calls


def make(transport, clock, **kw):
    kw.setdefault("retry", RetryPolicy(max_attempts=4, base_backoff_s=1.0, max_backoff_s=8.0))
    return HttpClient("sendgrid", "http://vendor.test", auth_headers={"Authorization": f"Bearer {SECRET}"},
                      secrets=[SECRET], transport=transport, sleep=clock.sleep, clock=clock, rand=lambda: 0.5, **kw)


def ok(body=None):
    return httpx.Response(200, json=body or {"ok": True})


def test_retry_after_seconds(fake_clock):
    t, calls = scripted([httpx.Response(429, headers={"Retry-After": "7"}), ok()])
    resp = make(t, fake_clock).get("/x")
    assert resp.status_code == 200 and len(calls) == 2
    assert 7 <= fake_clock.slept[0] < 7.1


def test_retry_after_http_date(fake_clock):
    when = email.utils.formatdate(fake_clock.now + 20, usegmt=True)
    t, calls = scripted([httpx.Response(503, headers={"Retry-After": when}), ok()])
    make(t, fake_clock).get("/x")
    assert 19 <= fake_clock.slept[0] <= 21


def test_sendgrid_ratelimit_reset_epoch(fake_clock):
    reset = int(fake_clock.now) + 12
    t, calls = scripted([httpx.Response(429, headers={"X-RateLimit-Reset": str(reset), "X-RateLimit-Remaining": "0"},
                                        json={"errors": [{"field": None, "message": "too many requests"}]}), ok()])
    make(t, fake_clock).get("/x")
    assert 11 <= fake_clock.slept[0] <= 12.1


def test_omnisend_reset_seconds_left_and_body_retry_after(fake_clock):
    r1 = httpx.Response(429, headers={"X-Rate-Limit-Reset": "4"})
    r2 = httpx.Response(429, json={"retryAfter": 9, "status": 429})
    assert retry_wait_s(r1, clock=fake_clock) == 4
    assert retry_wait_s(r2, clock=fake_clock) == 9
    assert retry_wait_s(httpx.Response(429), clock=fake_clock) is None


def test_exponential_backoff_without_hint(fake_clock):
    t, calls = scripted([httpx.Response(500), httpx.Response(502), httpx.Response(503), ok()])
    make(t, fake_clock).get("/x")
    # equal jitter with rand=0.5: 0.75 * base * 2^(n-1)
    assert fake_clock.slept == pytest.approx([0.75, 1.5, 3.0])


def test_backoff_is_capped():
    p = RetryPolicy(base_backoff_s=1, max_backoff_s=5)
    assert p.backoff_s(10, lambda: 1.0) == 5
    assert p.backoff_s(1, lambda: 0.0) == 0.5


def test_wait_beyond_budget_raises_rate_limited_with_retry_after(fake_clock):
    t, calls = scripted([httpx.Response(429, headers={"Retry-After": str(int(MAX_WAIT_S) + 3600)})])
    with pytest.raises(RateLimitedError) as ei:
        make(t, fake_clock).get("/x")
    assert len(calls) == 1 and fake_clock.slept == []
    err = ei.value
    assert err.retry_after_s == pytest.approx(MAX_WAIT_S + 3600) and err.budget_exhausted
    assert err.retry_at == pytest.approx(fake_clock() + MAX_WAIT_S + 3600)
    assert "Try again in about 62 minutes (after " in err.user_message


def test_429s_are_not_counted_as_attempts(fake_clock):
    """Issue 13: five (here seven) 429s in a row with Retry-After: 1 are ridden out, although the
    policy allows only 4 attempts; those are for 5xx and dropped connections."""
    t, calls = scripted([httpx.Response(429, headers={"Retry-After": "1"})] * 7 + [ok()])
    client = make(t, fake_clock)
    assert client.get("/x").status_code == 200
    assert len(calls) == 8
    assert 7.0 <= sum(fake_clock.slept) < 7.5 and client.rate_limit_waited_s == pytest.approx(sum(fake_clock.slept))


def test_429s_until_the_budget_is_spent(fake_clock):
    t, calls = scripted([httpx.Response(429, headers={"Retry-After": "2"})])
    client = make(t, fake_clock, retry=RetryPolicy(max_attempts=2, rate_limit_budget_s=10.0))
    with pytest.raises(RateLimitedError) as ei:
        client.get("/x")
    # 2 s waits with a little jitter: four fit into 10 s, the fifth does not
    assert len(calls) == 5 and len(fake_clock.slept) == 4 and sum(fake_clock.slept) <= 10.0
    assert ei.value.budget_exhausted and ei.value.retry_after_s == 2
    assert "after waiting" in ei.value.user_message


def test_budget_is_per_client_not_per_request(fake_clock):
    t, calls = scripted([httpx.Response(429, headers={"Retry-After": "4"}), ok()])
    client = make(t, fake_clock, retry=RetryPolicy(rate_limit_budget_s=6.0))
    assert client.get("/x").status_code == 200
    calls.clear()   # the script restarts: 429 (4 s, but only ~2 s of budget left), then ok
    with pytest.raises(RateLimitedError):
        client.get("/y")


def test_429_without_hint_backs_off_capped_and_unlimited_by_attempts(fake_clock):
    t, calls = scripted([httpx.Response(429)] * 6 + [ok()])
    assert make(t, fake_clock).get("/x").status_code == 200   # max_attempts=4
    assert fake_clock.slept == [0.75, 1.5, 3.0, 6.0, 6.0, 6.0]   # equal jitter at rand 0.5, capped at 8


def test_5xx_with_rate_limit_remaining_zero_is_rate_limiting(fake_clock):
    throttled = httpx.Response(503, headers={"X-RateLimit-Remaining": "0", "Retry-After": "1"})
    t, calls = scripted([throttled] * 6 + [ok()])
    assert make(t, fake_clock).get("/x").status_code == 200


def test_on_wait_counts_down_in_steps(fake_clock):
    from connectors.http import WAIT_NOTICE_INTERVAL_S

    t, _ = scripted([httpx.Response(429, headers={"Retry-After": "12"}), ok()])
    client = make(t, fake_clock)
    client.rand = lambda: 0.0   # no jitter: exact numbers
    notices = []
    client.on_wait = lambda vendor, left, reason: notices.append((vendor, left, reason))
    assert client.get("/x").status_code == 200
    assert WAIT_NOTICE_INTERVAL_S == 5.0
    assert notices == [("sendgrid", 12.0, "rate_limit"), ("sendgrid", 7.0, "rate_limit"), ("sendgrid", 2.0, "rate_limit")]
    assert fake_clock.slept == [5.0, 5.0, 2.0]


def test_on_wait_raising_stops_the_wait_at_once(fake_clock):
    class Stop(Exception):
        pass

    t, calls = scripted([httpx.Response(429, headers={"Retry-After": "600"}), ok()])
    client = make(t, fake_clock)
    notices = []

    def listener(vendor, left, reason):
        notices.append(left)
        if len(notices) == 3:
            raise Stop()

    client.on_wait = listener
    with pytest.raises(Stop):
        client.get("/x")
    assert len(calls) == 1 and sum(fake_clock.slept) == 10.0   # two steps, not ten minutes


def test_set_wait_listener_finds_the_http_client(fake_clock):
    from connectors.http import set_wait_listener

    t, _ = scripted([ok()])
    http = make(t, fake_clock)

    class VendorLike:
        def __init__(self):
            self.http = http

    def listener(*a):
        return None

    assert set_wait_listener(VendorLike(), listener) and http.on_wait is listener
    assert not set_wait_listener(object(), listener)


def test_5xx_burst_gives_transient_after_max_attempts(fake_clock):
    t, calls = scripted([httpx.Response(503)])
    with pytest.raises(TransientError) as ei:
        make(t, fake_clock).get("/x")
    assert len(calls) == 4 and "4 tries" in ei.value.user_message and ei.value.status == 503


def test_5xx_burst_recovers(fake_clock):
    t, calls = scripted([httpx.Response(500)] * 3 + [ok()])
    assert make(t, fake_clock).get("/x").status_code == 200


def test_connect_errors_retry_then_unreachable(fake_clock):
    t, calls = scripted([httpx.ConnectError("refused")])
    with pytest.raises(VendorUnreachableError) as ei:
        make(t, fake_clock).get("/x")
    assert len(calls) == 4 and "could not reach SendGrid" in ei.value.user_message


def test_read_timeout_retried_then_recovers(fake_clock):
    t, calls = scripted([httpx.ReadTimeout("slow"), httpx.ReadError("dropped"), ok()])
    assert make(t, fake_clock).get("/x").status_code == 200 and len(calls) == 3


def test_read_timeouts_give_transient(fake_clock):
    t, calls = scripted([httpx.ReadTimeout("slow")])
    with pytest.raises(TransientError) as ei:
        make(t, fake_clock).get("/x")
    assert "did not answer in time" in ei.value.user_message


def test_non_retryable_status_maps_via_table(fake_clock):
    t, calls = scripted([httpx.Response(401, json={"errors": [{"message": f"bad key {SECRET}"}]})])
    with pytest.raises(AuthError) as ei:
        make(t, fake_clock).get("/x")
    assert len(calls) == 1
    assert ei.value.user_message == "The API key was rejected by SendGrid. Check that you copied the whole key."
    assert SECRET not in (ei.value.detail or "") and "***" in ei.value.detail


def test_status_table_covers_key_statuses():
    for status in (400, 401, 403, 404, 413, 427, 429, 500, 503):
        assert status in STATUS_ERRORS
    err = error_for_status(427, "leadspace")
    assert type(err).__name__ == "InsufficientCreditsError" and "Leadspace" in err.user_message


def test_redaction_in_errors_and_logs(fake_clock, caplog):
    t, calls = scripted([httpx.ConnectError(f"cannot connect with key {SECRET}")])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(VendorUnreachableError) as ei:
        make(t, fake_clock).get(f"/x?api_key={SECRET}")
    assert SECRET not in str(ei.value) and SECRET not in (ei.value.detail or "")
    assert caplog.records, "expected retry warnings"
    for rec in caplog.records:
        assert SECRET not in rec.getMessage()
    assert SECRET not in caplog.text
    # logging a secret through any connectors logger is redacted too
    logging.getLogger("connectors.http").warning("leaking %s", SECRET)
    assert SECRET not in caplog.text


def test_redact_helper_and_filter():
    assert redact(f"a {SECRET} b {SECRET}", [SECRET]) == "a *** b ***"
    assert redact("nothing", ["abc"]) == "nothing"  # too short to be a secret
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", ("topsecret-1",), None)
    RedactingFilter(["topsecret-1"]).filter(rec)
    assert rec.getMessage() == "key=***"


def test_auth_header_only_sent_to_own_origin(fake_clock):
    t, calls = scripted([ok()])
    c = make(t, fake_clock)
    c.get("/x")
    c.get("https://storage.other.test/errors.csv")
    assert calls[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "authorization" not in calls[1].headers


def test_rate_limiter_sliding_window(fake_clock):
    lim = RateLimiter({"default": RateLimit(3, 1.0), "tags": RateLimit(1, 60.0)}, clock=fake_clock, sleep=fake_clock.sleep)
    start = fake_clock.now
    for _ in range(7):
        lim.acquire()
    # 3 per second: the 7th request is in the third second
    assert 2.0 <= fake_clock.now - start < 2.01
    lim.acquire("tags")
    t0 = fake_clock.now
    lim.acquire("tags")
    assert fake_clock.now - t0 == pytest.approx(60.0)
    lim.acquire("unknown-bucket-uses-default")


def test_rate_limits_on_client(fake_clock):
    t, calls = scripted([ok()])
    c = make(t, fake_clock, rate_limits={"default": RateLimit(400, 60.0)})
    for _ in range(401):
        c.get("/x")
    assert fake_clock.now - 1_700_000_000.0 == pytest.approx(60.0)


def test_batched_count_and_bytes():
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    items = ["aaaa", "bb", "cccccc", "d"]
    out = list(batched(items, 10, max_bytes=8, size_of=len))
    assert out == [["aaaa", "bb"], ["cccccc"], ["d"]]
    assert list(batched(["x" * 20], 5, max_bytes=8, size_of=len)) == [["x" * 20]]
    # lazy: works on an endless generator
    def endless():
        i = 0
        while True:
            yield i
            i += 1
    gen = batched(endless(), 2)
    assert next(gen) == [0, 1] and next(gen) == [2, 3]


def test_data_classes_round_trip_json():
    sub = Submission("sendgrid", "upsert", "job-1", ["a@x.com"], [Outcome("a@x.com", "accepted")],
                     Target("L1", "seg"), {"rejected": {"b": "r"}})
    again = Submission.from_dict(json.loads(json.dumps(sub.to_dict())))
    assert again == sub
    c = Contact("a@x.com", {"first_name": "A", "city": None})
    assert Contact.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_complete_outcomes_one_per_email():
    out = complete_outcomes(["A@x.com", "b@x.com"], [Outcome("a@x.com", "rejected", "bad"), Outcome("z@x.com", "rejected")])
    assert [(o.email, o.status) for o in out] == [("A@x.com", "rejected"), ("b@x.com", "accepted")]


def test_5xx_cap_counts_only_failures_not_rate_limit_waits(fake_clock):
    """Rate limiting in between does not use up the 5xx attempts, nor extend them."""
    throttled = httpx.Response(429, headers={"Retry-After": "1"})
    t, calls = scripted([httpx.Response(503), throttled, throttled, httpx.Response(503), throttled,
                         httpx.Response(503), httpx.Response(503), ok()])
    with pytest.raises(TransientError) as ei:
        make(t, fake_clock).get("/x")                       # max_attempts=4: the fourth 503 gives up
    assert len(calls) == 7 and "4 tries" in ei.value.user_message
