"""Omnisend client (connectors/omnisend.py) against its emulator (connectors/sandbox/omnisend.py).

In-process tests use a FakeClock shared by client and emulator, so nothing really waits."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from connectors.base import Contact, ExportClient, Submission
from connectors.errors import AuthError, RateLimitedError, TransientError, VendorError
from connectors.http import RetryPolicy
from connectors.omnisend import API_VERSION, FIELD_LIMITS, OmnisendClient, default_tag, outcomes_from_items
from connectors.sandbox.common import FakeClock
from connectors.sandbox.omnisend import (
    CONTACT_REQUEST_TYPES,
    CREATE_BATCH_REQUEST_SCHEMA,
    TAGS_REQUEST_SCHEMA,
    OmnisendEmulator,
)
from connectors.sandbox.server import serve

FAST_RETRY = RetryPolicy(max_attempts=5, base_backoff_s=0.01, max_backoff_s=0.05)
SPEC_DIR = Path("/work/shared/vendor-specs/omnisend-2026")
KEY = "om-test-key-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def em(clock: FakeClock) -> OmnisendEmulator:
    return OmnisendEmulator(clock=clock, sleep=clock.sleep, batch_delay_s=0.0)


def make_client(em: OmnisendEmulator, clock: FakeClock, transport: httpx.BaseTransport | None = None,
                **kw) -> OmnisendClient:
    kw.setdefault("retry", FAST_RETRY)
    return OmnisendClient(kw.pop("api_key", KEY), base_url="http://sandbox.omnisend.local",
                          transport=transport or em.transport(), sleep=clock.sleep, clock=clock, **kw)


@pytest.fixture
def client(em: OmnisendEmulator, clock: FakeClock) -> OmnisendClient:
    c = make_client(em, clock)
    yield c
    c.close()


def people(n: int, prefix: str = "p") -> list[Contact]:
    return [Contact(f"{prefix}{i}@example.com", {"first_name": f"F{i}", "last_name": "L", "address": "1 Main St",
                                                 "city": "Austin", "state": "TX", "country": "US",
                                                 "postal_code": "78701"}) for i in range(n)]


def export(client: OmnisendClient, contacts: list[Contact], tag: str):
    target = client.find_target(tag)
    outcomes, subs = [], []
    for batch in client.upsert_batches(iter(contacts)):
        sub = Submission.from_dict(json.loads(json.dumps(client.submit_upsert(batch, target).to_dict())))
        subs.append(sub)
        outcomes += client.collect(sub)
    return target, outcomes, subs


class Recorder(httpx.BaseTransport):
    """Records requests, optionally answers the first ones itself, then delegates to the emulator."""

    def __init__(self, inner: httpx.BaseTransport, canned: list[httpx.Response] | None = None) -> None:
        self.inner = inner
        self.canned = list(canned or [])
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.canned:
            resp = self.canned.pop(0)
            resp.request = request
            return resp
        return self.inner.handle_request(request)


# ---------------------------------------------------------------- verify / auth / version

def test_is_export_client_and_verify_ok(client):
    assert isinstance(client, ExportClient)
    result = client.verify()
    assert result.ok and "Omnisend brand" in result.message


def test_auth_failure(em, clock):
    c = make_client(em, clock, api_key="invalid-key-999")
    result = c.verify()
    assert not result.ok and "rejected the API key" in result.message
    assert "invalid-key-999" not in result.message + (result.detail or "")
    with pytest.raises(AuthError):
        c.list_targets()


def test_retired_version_is_a_clear_vendor_error(em, clock, client):
    em.supported_versions = {"2027-01-01"}
    result = client.verify()
    assert not result.ok and "retired API version 2026-03-15" in result.message
    target = client.create_target("segment: S")
    with pytest.raises(VendorError) as ei:
        client.submit_upsert(people(1), target)
    assert ei.value.status == 410 and "Update Insight Relay" in ei.value.user_message


def test_headers_and_batch_body(em, clock):
    rec = Recorder(em.transport())
    c = make_client(em, clock, transport=rec)
    export(c, [Contact("A@Example.com", {"first_name": "Ann", "country": "United States", "custom": "x"}),
               Contact("b@example.com", {"country": "lt", "postal_code": "01100", "city": None})], "segment: VIP")
    post = next(r for r in rec.requests if r.method == "POST")
    assert post.url.path == "/api/batches"
    assert post.headers["authorization"] == f"Omnisend-API-Key {KEY}"
    assert post.headers["omnisend-version"] == API_VERSION
    body = json.loads(post.content)
    assert body["method"] == "POST" and body["endpoint"] == "contacts" and len(body["items"]) == 2
    a, b = body["items"]
    assert a["identifiers"] == [{"type": "email", "id": "A@Example.com",
                                 "channels": {"email": {"status": "nonSubscribed"}}, "sendWelcomeMessage": False}]
    assert a["firstName"] == "Ann" and a["country"] == "United States" and a["tags"] == ["segment: VIP"]
    assert "custom" not in a
    assert b["countryCode"] == "LT" and b["postalCode"] == "01100" and "city" not in b
    # two requests for one batch: submit, then the batch listing (finished, no errors: items never read)
    assert [(r.method, r.url.path) for r in rec.requests] == [("POST", "/api/batches"), ("GET", "/api/batches")]
    listing = rec.requests[1].url.params
    assert listing["endpoint"] == "contacts" and listing["limit"] == "250" and listing["offset"] == "0"
    assert len(listing["dateFrom"]) == 10


def test_field_limits_empty_because_spec_has_no_maxlength():
    assert FIELD_LIMITS == {}
    if (SPEC_DIR / "omnisend-contacts-api-2026-03-15.json").exists():
        spec = json.loads((SPEC_DIR / "omnisend-contacts-api-2026-03-15.json").read_text())
        props = spec["components"]["schemas"]["ContactRequest"]["properties"]
        assert not any("maxLength" in p for p in props.values())


@pytest.mark.skipif(not SPEC_DIR.exists(), reason="vendor specs not available")
def test_embedded_schemas_match_the_vendor_spec():
    batches = json.loads((SPEC_DIR / "omnisend-batches-api-2026-03-15.json").read_text())
    spec_req = batches["components"]["schemas"]["CreateBatchRequest"]

    def strip(s):
        if isinstance(s, dict):
            return {k: strip(v) for k, v in s.items() if k not in ("example", "description")}
        return s

    assert strip(spec_req) == CREATE_BATCH_REQUEST_SCHEMA
    contacts = json.loads((SPEC_DIR / "omnisend-contacts-api-2026-03-15.json").read_text())
    schemas = contacts["components"]["schemas"]
    assert strip(schemas["RemoveTagsRequest"]) == strip(TAGS_REQUEST_SCHEMA)
    assert {k: v.get("type") for k, v in schemas["ContactRequest"]["properties"].items()} == CONTACT_REQUEST_TYPES


# ---------------------------------------------------------------- upsert / collect

def test_upsert_happy_path(em, client):
    contacts = people(250)
    target, outcomes, subs = export(client, contacts, default_tag("VIP"))
    assert target.id == target.name == "segment: VIP"
    assert [len(s.emails) for s in subs] == [100, 100, 50]
    assert all(s.job_id for s in subs)
    assert [o.email for o in outcomes] == [c.email for c in contacts]
    assert {o.status for o in outcomes} == {"accepted"}
    assert len(em.contacts_with_tag("segment: VIP")) == 250
    stored = em.contact("p7@example.com")
    assert stored["firstName"] == "F7" and stored["countryCode"] == "US" and stored["postalCode"] == "78701"
    assert stored["status"] == "nonSubscribed"
    # second run: updates, no duplicates; a second tag is added, the first kept
    export(client, contacts[:10], "segment: Other")
    assert em.contact_count == 250
    assert set(em.contact("p1@example.com")["tags"]) == {"segment: VIP", "segment: Other"}


def test_batch_with_failed_items(em, client):
    contacts = people(6)
    contacts.insert(2, Contact("user@bad_domain.example", {}))
    em.failing_emails.add("p4@example.com")
    _, outcomes, _ = export(client, contacts, "segment: S")
    by_email = {o.email: o for o in outcomes}
    assert by_email["user@bad_domain.example"].status == "rejected"
    assert "Must be a valid email address" in by_email["user@bad_domain.example"].reason
    assert by_email["p4@example.com"].status == "rejected" and "sandbox fault" in by_email["p4@example.com"].reason
    assert sum(o.status == "accepted" for o in outcomes) == 5
    assert set(em.contacts_with_tag("segment: S")) == {o.email for o in outcomes if o.status == "accepted"}


def test_locally_invalid_email_is_not_sent(em, client):
    _, outcomes, subs = export(client, [Contact("not an email", {}), Contact("ok@example.com", {})], "segment: S")
    assert [o.status for o in outcomes] == ["rejected", "accepted"]
    assert em.contact_count == 1


def test_whole_batch_failing(em, client):
    em.fail_next_batches = 1
    _, outcomes, _ = export(client, people(3), "segment: S")
    assert {o.status for o in outcomes} == {"rejected"} and all("sandbox fault" in o.reason for o in outcomes)


def test_late_finishing_batch_polled_on_its_items_when_listing_is_off(em, clock):
    em.batch_delay_s = 40.0
    client = make_client(em, clock, list_batches=False)
    seen = []
    original = em.route_batch_items

    def spy(request, match):
        resp = original(request, match)
        body = json.loads(resp.read())
        seen.append(body["status"])
        if body["status"] != "finished":
            assert body["responses"] == [] and body["errors"] == []
        return resp

    em.route_batch_items = spy
    _, outcomes, _ = export(client, people(5), "segment: Late")
    assert {o.status for o in outcomes} == {"accepted"}
    assert seen[0] == "pending" and "inProgress" in seen and seen[-1] == "finished"
    assert sum(clock.slept) >= 40.0


def test_late_finishing_batch_is_waited_for_on_the_listing(em, clock, client):
    em.batch_delay_s = 40.0
    seen = []
    original = em.route_batches_list

    def spy(request, match):
        resp = original(request, match)
        seen.extend(b["status"] for b in json.loads(resp.read())["batches"])
        return resp

    em.route_batches_list = spy
    _, outcomes, _ = export(client, people(5), "segment: Late")
    assert {o.status for o in outcomes} == {"accepted"}
    assert seen[0] == "pending" and "inProgress" in seen and seen[-1] == "finished"
    assert sum(clock.slept) >= 40.0
    assert [k for k in em.requests_by_route if k.endswith("/items")] == []   # no errors: items never read


def test_batch_not_finished_in_time_can_be_collected_later(em, clock):
    em.batch_delay_s = 600.0
    c = make_client(em, clock, max_poll_s=60.0)
    target = c.create_target("segment: Slow")
    sub = c.submit_upsert(people(3), target)
    stored = sub.to_dict()
    with pytest.raises(TransientError) as ei:
        c.collect(sub)
    assert ei.value.resume == {"job_id": sub.job_id}
    clock.advance(600)
    outcomes = c.collect(Submission.from_dict(stored))
    assert {o.status for o in outcomes} == {"accepted"}


def test_wait_for_batch_polls_status(em, clock, client):
    em.batch_delay_s = 5
    sub = client.submit_upsert(people(2), client.create_target("segment: S"))
    body = client.wait_for_batch(sub.job_id)
    assert body["status"] == "finished" and body["totalCount"] == 2 and body["errorsCount"] == 0


def test_unreported_items_are_pending():
    body = {"responses": [{"request": {"identifiers": [{"type": "email", "id": "a@x.com"}]}, "responseCode": 201}],
            "errors": [{"request": {"identifiers": [{"type": "email", "id": "b@x.com"}]}, "responseCode": 400,
                        "response": {"title": "Validation failed", "detail": "bad",
                                     "errors": [{"field": "identifiers.0.id", "message": "Must be valid"}]}}]}
    outs = outcomes_from_items(body)
    assert outs[0].email == "b@x.com" and outs[0].status == "rejected" and "Must be valid" in outs[0].reason
    assert outs[1].status == "accepted"


# ---------------------------------------------------------------- faults and rate limits

def test_429_burst_with_retry_after_in_body(em, clock):
    canned = [httpx.Response(429, json={"type": "x", "title": "Too many requests", "status": 429,
                                        "retryAfter": 13}) for _ in range(2)]
    rec = Recorder(em.transport(), canned)
    c = make_client(em, clock, transport=rec)
    _, outcomes, _ = export(c, people(3), "segment: S")
    assert {o.status for o in outcomes} == {"accepted"}
    assert sum(1 for s in clock.slept if 13 <= s < 13.1) == 2  # waited exactly what the body asked


def test_429_burst_from_emulator(em, clock, client):
    em.faults.rate_limit_burst = 3
    em.faults.rate_limit_wait_s = 5
    em.faults.path_pattern = r"^/api/batches$"
    _, outcomes, _ = export(client, people(4), "segment: S")
    assert {o.status for o in outcomes} == {"accepted"}
    assert sum(clock.slept) >= 15


def test_long_rate_limit_gives_retry_time(em, client):
    em.faults.rate_limit_burst = 1
    em.faults.rate_limit_wait_s = 7200
    with pytest.raises(RateLimitedError) as ei:
        client.submit_upsert(people(1), client.create_target("segment: S"))
    assert ei.value.retry_after_s >= 7200 and "Try again" in ei.value.user_message


def test_5xx_burst_is_retried(em, client):
    em.faults.server_error_burst = 3
    em.faults.server_error_status = 502
    _, outcomes, _ = export(client, people(4), "segment: S")
    assert {o.status for o in outcomes} == {"accepted"}


def test_outage_is_transient(em, client):
    em.faults.outage = True
    assert not client.verify().ok
    with pytest.raises(TransientError):
        client.submit_upsert(people(1), client.create_target("segment: S"))


def test_emulator_rate_limits_and_headers(em, clock):
    em.rate_limits_enabled = True
    em.rate_limit_rules = {"default": (5, 60.0), "tags": (2, 60.0)}
    c = make_client(em, clock, rate_limits=False, retry=RetryPolicy(max_attempts=5, max_wait_s=120),
                    max_batch_items=2)
    _, outcomes, _ = export(c, people(8), "segment: S")  # 4 batches x 3 requests > 5 per minute
    assert {o.status for o in outcomes} == {"accepted"}
    assert any(s >= 20 for s in clock.slept)  # waited for the fixed one-minute window to reset
    http = httpx.Client(transport=em.transport(), base_url="http://x",
                        headers={"Authorization": f"Omnisend-API-Key {KEY}", "Omnisend-Version": API_VERSION})
    r = http.get("/api/brands/current")
    assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(r.headers)


def test_client_paces_tag_requests_at_60_per_minute(em, clock):
    c = make_client(em, clock, rate_limits=True, remove_batch_size=1)
    export(c, people(3), "segment: S")
    start = clock.now
    emails = [f"x{i}@example.com" for i in range(61)]
    for batch in c.remove_batches(emails):
        c.submit_remove(batch, c.create_target("segment: S"))
    assert clock.now - start >= 59.0
    assert em.tag_requests["remove"] == 61


# ---------------------------------------------------------------- remove (untag)

def test_remove_untags_never_deletes(em, client):
    target, _, _ = export(client, people(5), "segment: S")
    export(client, people(2), "segment: Keep")
    emails = ["p0@example.com", "p1@example.com", "stranger@example.com"]
    outcomes = []
    for batch in client.remove_batches(emails):
        sub = client.submit_remove(batch, target)
        assert sub.kind == "remove" and sub.outcomes is not None
        outcomes += client.collect(Submission.from_dict(sub.to_dict()))
    assert [o.email for o in outcomes] == emails and {o.status for o in outcomes} == {"accepted"}
    assert sorted(em.contacts_with_tag("segment: S")) == ["p2@example.com", "p3@example.com", "p4@example.com"]
    assert em.contact_count == 5
    assert em.contact("p0@example.com")["tags"] == ["segment: Keep"]
    assert em.contact("p0@example.com")["status"] == "nonSubscribed"


def test_remove_batches_at_most_250(client):
    sizes = [len(b) for b in client.remove_batches(f"e{i}@x.com" for i in range(600))]
    assert sizes == [250, 250, 100]


def test_upsert_batches_respect_byte_budget(em, clock):
    c = make_client(em, clock, max_batch_bytes=20_000)
    big = [Contact(f"u{i}@example.com", {"address": "x" * 900}) for i in range(100)]
    batches = list(c.upsert_batches(big))
    assert len(batches) > 1 and all(len(json.dumps({"items": [c.contact_body(x, "segment: S") for x in b]})) < 20_000
                                    for b in batches)


# ---------------------------------------------------------------- emulator details

def _raw(em):
    return httpx.Client(transport=em.transport(), base_url="http://sandbox.omnisend.local",
                        headers={"Authorization": f"Omnisend-API-Key {KEY}", "Omnisend-Version": API_VERSION})


def test_emulator_version_policy(em):
    http = _raw(em)
    r = http.get("/api/brands/current", headers={"Omnisend-Version": ""})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = http.get("/api/brands/current", headers={"Omnisend-Version": "2020-01-01"})
    assert r.status_code == 410 and r.json()["title"] == "API version retired"


def test_emulator_validates_batch_body(em):
    http = _raw(em)
    item = {"identifiers": [{"type": "email", "id": "a@example.com"}]}
    r = http.post("/api/batches", json={"method": "POST", "endpoint": "contacts", "items": [item] * 101})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "items"
    r = http.post("/api/batches", json={"method": "PATCH", "endpoint": "contacts", "items": [item]})
    assert r.status_code == 400
    r = http.post("/api/batches", content=b"{" + b" " * (1 << 20) + b"}",
                  headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = http.post("/api/batches", json={"method": "POST", "endpoint": "contacts",
                                        "items": [{"identifiers": "nope"}, {"firstName": 3}, item]})
    bid = r.json()["batchID"]
    items = http.get(f"/api/batches/{bid}/items").json()
    assert items["status"] == "finished" and items["errorsCount"] == 2
    assert len(items["responses"]) == 1 and all(e["responseCode"] == 400 for e in items["errors"])


def test_emulator_contacts_and_tags_endpoints(em):
    http = _raw(em)
    body = {"identifiers": [{"type": "email", "id": "x@example.com"}], "firstName": "X", "tags": ["t1"]}
    assert http.post("/api/contacts", json=body).status_code == 201
    r = http.post("/api/contacts", json={**body, "lastName": "Y"})
    assert r.status_code == 200 and r.json()["lastName"] == "Y" and r.json()["firstName"] == "X"
    assert http.get(f"/api/contacts/{r.json()['id']}").json()["email"] == "x@example.com"
    for i in range(5):
        http.post("/api/contacts", json={"identifiers": [{"type": "email", "id": f"y{i}@example.com"}]})
    assert http.post("/api/contacts/tags", json={"tags": ["t2"], "emails": ["y1@example.com", "nobody@x.com"]}
                     ).status_code == 202
    assert http.post("/api/contacts/tags", json={"tags": ["t2"]}).status_code == 400
    page1 = http.get("/api/contacts", params={"limit": 4}).json()
    assert len(page1["contacts"]) == 4 and page1["paging"]["hasMore"]
    page2 = http.get("/api/contacts", params={"limit": 4, "after": page1["paging"]["cursors"]["after"]}).json()
    assert len(page2["contacts"]) == 2 and not page2["paging"]["hasMore"]
    tagged = http.get("/api/contacts", params={"tag": "t2"}).json()["contacts"]
    assert [c["email"] for c in tagged] == ["y1@example.com"]
    r = http.request("DELETE", "/api/contacts/tags", json={"tags": ["t2"], "emails": ["y1@example.com"]})
    assert r.status_code == 202 and em.contacts_with_tag("t2") == []
    snap = em.snapshot()
    assert snap["contacts_total"] == 6 and snap["contacts_per_tag"] == {"t1": 1}
    assert snap["members"]["t1"] == ["x@example.com"]


def test_snapshot_lists_batches_with_status(em, clock, client):
    em.batch_delay_s = 10
    sub = client.submit_upsert(people(3), client.create_target("segment: S"))
    snap = em.snapshot()
    assert snap["recent_batches"][0]["batchID"] == sub.job_id and snap["recent_batches"][0]["status"] == "pending"
    assert snap["batches_by_status"]["pending"] == 1
    clock.advance(10)
    snap = em.snapshot()
    assert snap["recent_batches"][0]["status"] == "finished" and snap["batches_by_status"]["finished"] == 1
    assert snap["contacts_per_tag"] == {"segment: S": 3}


def test_registry_sandbox_region_uses_singleton():
    from connectors.registry import make_client as registry_make
    from connectors.sandbox import get_emulator

    em = get_emulator("omnisend")
    em.reset()
    em.batch_delay_s = 0
    c = registry_make("omnisend", "key-1234", "sandbox", rate_limits=False)
    assert isinstance(c, OmnisendClient) and c.verify().ok
    target, outcomes, _ = export(c, people(2), "segment: Reg")
    assert {o.status for o in outcomes} == {"accepted"} and len(em.contacts_with_tag("segment: Reg")) == 2
    em.reset()


# ---------------------------------------------------------------- loopback

def test_loopback_end_to_end():
    em = OmnisendEmulator(batch_delay_s=0.05)
    with serve(em) as server:
        c = OmnisendClient(KEY, base_url=server.url, rate_limits=False, poll_interval_s=0.02,
                           retry=RetryPolicy(max_attempts=4, base_backoff_s=0.01, max_backoff_s=0.05))
        assert c.verify().ok
        em.faults.server_error_burst = 1
        em.faults.drop_connections = 1
        em.faults.path_pattern = r"^/api/batches$"
        _, outcomes, subs = export(c, people(230) + [Contact("user@bad_domain.example", {})], "segment: Loop")
        assert sum(o.status == "accepted" for o in outcomes) == 230
        assert [o.status for o in outcomes][-1] == "rejected"
        assert len(em.contacts_with_tag("segment: Loop")) == 230
        c.close()


# ---------------------------------------------------------------- property: exact end state

from hypothesis import given, settings, strategies as st  # noqa: E402

_EMAILS = st.one_of(
    st.from_regex(r"[a-z]{1,6}[0-9]{0,2}@(example|test)\.(com|org)", fullmatch=True),
    st.sampled_from(["user@bad_domain.example", "x@-bad-.com", "no-at-sign", "", "A@Example.COM", "a@example.com"]),
)


@settings(max_examples=25, deadline=None)
@given(emails=st.lists(_EMAILS, max_size=30), batch=st.integers(1, 7))
def test_every_email_gets_one_outcome_and_members_match(emails, batch):
    clock = FakeClock()
    em = OmnisendEmulator(clock=clock, sleep=clock.sleep)
    c = make_client(em, clock, max_batch_items=batch)
    _, outcomes, _ = export(c, [Contact(e, {}) for e in emails], "segment: P")
    assert [o.email for o in outcomes] == emails
    assert all(o.status in ("accepted", "rejected") and (o.status == "accepted" or o.reason) for o in outcomes)
    assert set(em.contacts_with_tag("segment: P")) == {o.email.lower() for o in outcomes if o.status == "accepted"}


def test_sandbox_process_mode_answers_the_post_first_and_processes_the_batch_beside_it(em, clock, monkeypatch):
    """process_in_background (what `manage.py sandbox` sets): POST /api/batches answers 201 before the
    batch is processed, as at Omnisend; the worker (or a poll that comes first) processes it once."""
    em.process_in_background = True
    monkeypatch.setattr(em, "_start_worker", lambda: None)   # hold the worker back: the poll must settle it
    client = make_client(em, clock)
    batch = people(3, "bg")
    target = client.create_target("segment: BG")
    sub = client.submit_upsert(batch, target)
    assert em._batches[sub.job_id].done is False               # answered, not processed yet
    assert len(em._contacts) == 0
    outcomes = client.collect(sub)
    assert [o.status for o in outcomes] == ["accepted"] * 3
    assert sorted(em.contacts_with_tag("segment: BG")) == sorted(c.email.lower() for c in batch)
    client.close()


def test_sandbox_process_mode_worker_processes_batches_over_loopback():
    em = OmnisendEmulator()
    em.process_in_background = True
    with serve(em) as server:
        client = OmnisendClient(KEY, base_url=server.url, retry=FAST_RETRY, rate_limits=False)
        target = client.create_target("segment: Loop")
        subs = [client.submit_upsert(people(50, f"w{k}-"), target) for k in range(5)]
        outcomes = [o for s in subs for o in client.collect(s)]
        client.close()
    assert len(outcomes) == 250 and {o.status for o in outcomes} == {"accepted"}
    assert len(em.contacts_with_tag("segment: Loop")) == 250


@pytest.mark.parametrize("max_batch_bytes", [1_000_000, 20_000, 1_000])
def test_item_size_estimate_is_an_upper_bound_and_batches_keep_to_the_budget(max_batch_bytes):
    """_size_of never under-counts an item's JSON (quotes, backslashes, control characters, non-ASCII, long
    values), on its fast path (6 bytes per character) or the exact one, so no batch exceeds its budget."""
    import random

    import orjson

    rng = random.Random(16)
    alphabet = 'abcXYZ019 "\\\x01\x1f\u00e9\u65e5\U0001f600@.'
    client = OmnisendClient(KEY, base_url="http://127.0.0.1:9", max_batch_bytes=max_batch_bytes)
    contacts = []
    for i in range(600):
        size = rng.choice((3, 20, 200, 2_000, 5_000))
        fields = {k: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))
                  for k in ("first_name", "last_name", "city", "country")}
        fields["phone"] = None
        contacts.append(Contact(f"p{i}@example.com", fields))
    for c in contacts:
        assert client._size_of(c) >= len(orjson.dumps(client.contact_body(c, "segment: S")))
    budget = int(max_batch_bytes * 0.98)
    for batch in client.upsert_batches(contacts):
        assert len(batch) <= client.max_batch_items
        body = orjson.dumps({"method": "POST", "endpoint": "contacts",
                             "items": [client.contact_body(c, "segment: S") for c in batch]})
        assert len(batch) == 1 or len(body) <= budget
