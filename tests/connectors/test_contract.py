"""One contract suite for every export vendor (parametrised over tests/connectors/conftest.py HARNESSES)
and fault scenarios. Each scenario ends either in success with the emulator's list holding exactly the
accepted contacts (none missing, none extra; every email exactly one outcome) or in a clear ConnectorError.
In-process runs use a FakeClock (nothing waits); one loopback run per vendor uses real sockets."""
from __future__ import annotations

import json

import httpx
import pytest

from connectors.base import Contact, ExportClient, Submission
from connectors.errors import AuthError, ConnectorError, RateLimitedError, TransientError
from connectors.http import RetryPolicy
from connectors.sandbox.common import FakeClock
from connectors.sandbox.server import serve
from tests.connectors.conftest import FAST_RETRY, HARNESSES

VENDORS = sorted(HARNESSES)


def contacts(n: int, prefix: str = "user") -> list[Contact]:
    return [Contact(f"{prefix}{i}@example.com", {"first_name": f"First{i}", "last_name": "Last", "city": "Vilnius",
                                                 "state": "VL", "country": "LT", "postal_code": f"{10000 + i}"})
            for i in range(n)]


def persisted(sub: Submission) -> Submission:
    """What the export runner does: persist BEFORE collecting, collect from the stored copy."""
    return Submission.from_dict(json.loads(json.dumps(sub.to_dict())))


def run_upsert(client, items, segment="Segment A"):
    assert client.verify().ok
    target = client.find_target(segment) or client.create_target(segment)
    outcomes = []
    for batch in client.upsert_batches(iter(items)):
        sub = client.submit_upsert(batch, target)
        outcomes += client.collect(persisted(sub))
    return target, outcomes


def run_remove(client, emails, target):
    outcomes = []
    for batch in client.remove_batches(iter(emails)):
        outcomes += client.collect(persisted(client.submit_remove(batch, target)))
    return outcomes


def assert_exact(h, em, target, items, outcomes):
    emails = [c.email for c in items]
    assert [o.email for o in outcomes] == emails, "every email gets exactly one outcome, in order"
    accepted = {o.email.lower() for o in outcomes if o.status == "accepted"}
    assert all(o.status in ("accepted", "rejected") for o in outcomes)
    assert h.members(em, target) == accepted
    return accepted


def setup(vendor, clock, **client_kw):
    h = HARNESSES[vendor]
    em = h.make_emulator(clock)
    kw = {"transport": em.transport(), "sleep": clock.sleep, "clock": clock, "retry": FAST_RETRY,
          **h.small_batch_opts, **client_kw}
    client = h.make_client(em, **kw)
    assert isinstance(client, ExportClient)
    return h, em, client


SCENARIOS = {
    "happy": lambda em, h: None,
    "429_with_hint": lambda em, h: _faults(em, h, rate_limit_burst=3, rate_limit_retry_hint=True, rate_limit_wait_s=2),
    "429_without_hint": lambda em, h: _faults(em, h, rate_limit_burst=3, rate_limit_retry_hint=False),
    "5xx_burst": lambda em, h: _faults(em, h, server_error_burst=3, server_error_status=500),
    "503_burst_any_path": lambda em, h: _faults(em, h, server_error_burst=2, path_pattern=None),
    "dropped_connections": lambda em, h: _faults(em, h, drop_connections=3),
}


def _faults(em, h, path_pattern="default", **kw):
    em.faults.path_pattern = h.upsert_path if path_pattern == "default" else path_pattern
    for k, v in kw.items():
        setattr(em.faults, k, v)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("vendor", VENDORS)
def test_upsert_and_remove_end_state_exact(vendor, scenario):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    items = contacts(10)
    SCENARIOS[scenario](em, h)
    target, outcomes = run_upsert(client, items)
    accepted = assert_exact(h, em, target, items, outcomes)
    assert accepted == {c.email for c in items}
    # remove three, add them back under the same fault knobs: still exact
    SCENARIOS[scenario](em, h)
    removed = [c.email for c in items[:3]]
    rem = run_remove(client, removed, target)
    assert [o.email for o in rem] == removed and all(o.status == "accepted" for o in rem)
    assert h.members(em, target) == accepted - set(removed)
    # a second run of the same export does not duplicate anyone
    _, outcomes2 = run_upsert(client, items)
    assert h.members(em, target) == accepted
    client.close()


@pytest.mark.parametrize("vendor", VENDORS)
def test_auth_failure_is_clear(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock, api_key="invalid-key-123456")
    result = client.verify()
    assert not result.ok and "rejected" in result.message and "invalid-key-123456" not in result.message
    with pytest.raises(AuthError) as ei:
        client.list_targets()
    assert "invalid-key-123456" not in str(ei.value) + (ei.value.detail or "")


@pytest.mark.parametrize("vendor", VENDORS)
def test_partial_row_failures(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    items = contacts(9)
    bad = []
    if h.invalid_email:
        items.insert(4, Contact(h.invalid_email, {}))
        bad.append(h.invalid_email)
    if h.make_rows_fail:
        h.make_rows_fail(em, [items[1].email, items[7].email])
        bad += [items[1].email, items[7].email]
    target, outcomes = run_upsert(client, items)
    accepted = assert_exact(h, em, target, items, outcomes)
    rejected = {o.email for o in outcomes if o.status == "rejected"}
    assert rejected == set(bad)
    assert all(o.reason for o in outcomes if o.status == "rejected")
    assert len(accepted) == len(items) - len(bad)


@pytest.mark.parametrize("vendor", VENDORS)
def test_outage_ends_in_clear_error(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    em.faults.outage = True
    assert not client.verify().ok
    with pytest.raises(TransientError) as ei:
        client.list_targets()
    assert "try" in ei.value.user_message.lower()


@pytest.mark.parametrize("vendor", VENDORS)
def test_long_rate_limit_fails_with_retry_time(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    target = client.create_target("S")
    _faults(em, h, rate_limit_burst=1, rate_limit_retry_hint=True, rate_limit_wait_s=3600)
    batch = next(iter(client.upsert_batches(contacts(2))))
    try:
        client.submit_upsert(batch, target)
    except RateLimitedError as exc:  # vendors that send a wait hint
        assert exc.retry_after_s and exc.retry_after_s >= 3600 and "Try again" in exc.user_message
    else:  # vendors with no documented hint just back off and succeed
        pass


@pytest.mark.parametrize("vendor", VENDORS)
def test_rate_limits_enabled_still_exact(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock, retry=RetryPolicy())  # default backoff: no hint from some vendors
    em.rate_limits_enabled = True
    em.rate_limit_rules = {k: (2, 1.0) for k in em.rate_limit_rules}
    items = contacts(25)
    target, outcomes = run_upsert(client, items)
    assert_exact(h, em, target, items, outcomes)
    assert clock.now > 1_700_000_000.0  # it had to wait (fake time)


@pytest.mark.parametrize("vendor", [v for v in VENDORS if HARNESSES[v].set_job_delay])
def test_async_job_finishing_late(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    h.set_job_delay(em, 45.0)
    items = contacts(6)
    target, outcomes = run_upsert(client, items)
    assert_exact(h, em, target, items, outcomes)
    assert sum(clock.slept) >= 45.0


@pytest.mark.parametrize("vendor", [v for v in VENDORS if HARNESSES[v].fail_next_jobs])
def test_async_job_failing(vendor):
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    h.fail_next_jobs(em, 1)
    items = contacts(8)
    target, outcomes = run_upsert(client, items)
    accepted = assert_exact(h, em, target, items, outcomes)
    rejected = [o for o in outcomes if o.status == "rejected"]
    assert rejected and all(o.reason for o in rejected) and len(accepted) == len(items) - len(rejected)


@pytest.mark.parametrize("vendor", VENDORS)
def test_loopback_with_timeouts_and_dropped_connections(vendor):
    h = HARNESSES[vendor]
    em = h.make_emulator(None)  # real clock: the server really sleeps for slow_s
    with serve(em) as server:
        client = h.make_client(em, base_url=server.url, transport=None,
                               timeout=httpx.Timeout(0.5, read=0.25),
                               retry=RetryPolicy(max_attempts=6, base_backoff_s=0.01, max_backoff_s=0.05),
                               **h.small_batch_opts)
        items = contacts(12)
        em.faults.path_pattern = h.upsert_path
        em.faults.slow_s, em.faults.slow_burst = 0.6, 1
        em.faults.drop_connections = 2
        target, outcomes = run_upsert(client, items)
        assert_exact(h, em, target, items, outcomes)
        assert {o.status for o in outcomes} == {"accepted"}
        client.close()
        # timeouts that never end give a clear error
        client = h.make_client(em, base_url=server.url, transport=None, timeout=httpx.Timeout(0.5, read=0.1),
                               retry=RetryPolicy(max_attempts=2, base_backoff_s=0.01, max_backoff_s=0.02))
        em.faults.path_pattern = None
        em.faults.slow_s, em.faults.slow_burst = 0.3, 0
        with pytest.raises(ConnectorError) as ei:
            client.list_targets()
        assert "did not answer in time" in ei.value.user_message
        em.faults.slow_s = 0
        client.close()


LOOKUP_PATHS = {"sendgrid": r"/v3/marketing/contacts/search/emails", "iterable": r"/api/lists/getUsers",
                "omnisend": r"/api/contacts$"}


@pytest.mark.parametrize("fault", ["none", "5xx_burst", "429_with_hint"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_membership_lookup_finds_exactly_the_members(vendor, fault):
    """Issue 13: existing_members answers which contacts are on the list, from the vendor's own endpoint,
    through 5xx and 429 on that endpoint. Search clients report only candidates; list clients the list."""
    clock = FakeClock()
    h, em, client = setup(vendor, clock)
    items = contacts(7, prefix="before")
    target, outcomes = run_upsert(client, items)
    assert all(o.status == "accepted" for o in outcomes)
    if fault != "none":
        em.faults.path_pattern = LOOKUP_PATHS[vendor]
        if fault == "5xx_burst":
            em.faults.server_error_burst = 2
        else:
            em.faults.rate_limit_burst, em.faults.rate_limit_wait_s = 2, 3
    members = {c.email for c in items}
    candidates = sorted(members)[:3] + [f"stranger{i}@example.com" for i in range(3)]
    found = set(client.existing_members(target, iter(candidates)))
    if client.MEMBERSHIP_LOOKUP.strategy == "search":
        assert found == set(sorted(members)[:3])
    else:
        assert found == members
    assert em.faults.server_error_burst == 0 and em.faults.rate_limit_burst == 0   # the faults did fire


@pytest.mark.parametrize("vendor", VENDORS)
def test_membership_lookup_pages_and_paces_at_the_documented_limit(vendor):
    """A list bigger than a page is read whole (Omnisend: cursor pages of 250; SendGrid: 100 emails a
    search), and with rate limits on the client waits for the vendor's limit instead of failing (Iterable:
    getUsers is 5 calls a minute, so the sixth lookup waits for the minute to pass)."""
    clock = FakeClock()
    h, em, client = setup(vendor, clock, rate_limits=True)
    items = contacts(260, prefix="page")
    target, outcomes = run_upsert(client, items)
    assert all(o.status == "accepted" for o in outcomes)
    em.rate_limits_enabled = True
    emails = [c.email for c in items]
    rounds = 6 if vendor == "iterable" else 1
    t0 = clock.time()
    for _ in range(rounds):
        assert set(client.existing_members(target, iter(emails))) == set(emails)
    if vendor == "iterable":
        assert clock.time() - t0 >= 60 - 1e-6          # the sixth call waited for getUsers' minute
    routes = em.requests_by_route
    calls = sum(n for r, n in routes.items() if r.split(" ", 1)[1].startswith(LOOKUP_PATHS[vendor].rstrip("$")))
    expected_calls = {"sendgrid": 3, "iterable": 6, "omnisend": 2}[vendor]
    assert calls == expected_calls


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_sandbox_started_with_a_seeded_list_shows_its_members_to_the_lookup(vendor):
    """`manage.py sandbox --seed-list NAME=a,b` starts with a list (Omnisend: tag) that already holds
    members (issue 13's pre-existing members); the vendor's lookup endpoint sees them, the upsert adds to them."""
    from connectors.sandbox.server import spawn

    h = HARNESSES[vendor]
    seeded = ["old1@example.com", "old2@example.com"]
    with spawn(vendor, "--seed-list", "Segment A=" + ",".join(seeded)) as sandbox:
        client = h.make_client(None, base_url=sandbox.url, retry=FAST_RETRY)
        try:
            target, outcomes = run_upsert(client, contacts(3, prefix="new"))
            assert all(o.status == "accepted" for o in outcomes)
            candidates = seeded + [c.email for c in contacts(3, prefix="new")] + ["nobody@example.com"]
            found = set(client.existing_members(target, iter(candidates)))
        finally:
            client.close()
    assert found == set(seeded) | {f"new{i}@example.com" for i in range(3)}
