"""Omnisend: many batches' state from one GET /api/batches (connectors/omnisend_batches.py), and the
emulator's listing (connectors/sandbox/omnisend.py) as the 2026-03-15 spec describes it."""
from __future__ import annotations

import json
from collections import deque

import httpx
import pytest

from connectors.base import Contact
from connectors.errors import VendorError
from connectors.omnisend_batches import all_accepted
from connectors.sandbox.common import FakeClock
from connectors.sandbox.omnisend import OmnisendEmulator
from tests.connectors.test_omnisend import KEY, make_client, people

ITEMS = "GET /api/batches/(?P<id>[^/]+)/items"
LISTING = "GET /api/batches"
POSTS = "POST /api/batches"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def em(clock: FakeClock) -> OmnisendEmulator:
    return OmnisendEmulator(clock=clock, sleep=clock.sleep)


def pipelined(client, contacts: list[Contact], tag: str, depth: int = 16, batch: int = 10):
    """What jobs/export_run.py does: keep `depth` submissions in flight, collect the oldest."""
    client.max_batch_items = batch
    target = client.find_target(tag)
    inflight: deque = deque()
    outcomes = []
    for b in client.upsert_batches(iter(contacts)):
        inflight.append(client.submit_upsert(b, target))
        while len(inflight) >= depth:
            outcomes += client.collect(inflight.popleft())
    while inflight:
        outcomes += client.collect(inflight.popleft())
    return outcomes


class Rewriter(httpx.BaseTransport):
    """Delegates to the emulator, letting a test rewrite (or replace) the listing's answers."""

    def __init__(self, inner: httpx.BaseTransport, listing=None) -> None:
        self.inner = inner
        self.listing = listing
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(f"{request.method} {request.url.path}")
        resp = self.inner.handle_request(request)
        if self.listing is not None and request.method == "GET" and request.url.path == "/api/batches":
            return self.listing(request, resp)
        return resp


def rewrite_batches(fn):
    def listing(request, resp):
        body = json.loads(resp.read())
        body["batches"] = fn(body["batches"])
        return httpx.Response(200, json=body)
    return listing


# ---------------------------------------------------------------- the client

def test_pipelined_export_makes_about_one_request_per_batch(em, clock):
    c = make_client(em, clock)
    outcomes = pipelined(c, people(1000), "segment: L")     # 100 batches, 16 in flight
    assert [o.email for o in outcomes] == [p.email for p in people(1000)]
    assert {o.status for o in outcomes} == {"accepted"}
    routes = em.requests_by_route
    assert routes[POSTS] == 100 and ITEMS not in routes
    assert routes[LISTING] <= 100 // 15 + 2        # one listing answers for a window of batches
    assert len(em.contacts_with_tag("segment: L")) == 1000


def test_only_batches_with_errors_have_their_items_read(em, clock):
    c = make_client(em, clock)
    em.failing_emails = {"p15@example.com", "p47@example.com"}   # batches 2 and 5 of 10
    outcomes = pipelined(c, people(100), "segment: E")
    by_status = {o.email: o.status for o in outcomes}
    assert by_status["p15@example.com"] == by_status["p47@example.com"] == "rejected"
    assert sum(s == "accepted" for s in by_status.values()) == 98
    assert em.requests_by_route[ITEMS] == 2
    assert set(em.contacts_with_tag("segment: E")) == {e for e, s in by_status.items() if s == "accepted"}


def test_newest_first_listing_with_other_batches_of_the_account(em, clock):
    other = make_client(em, clock, list_batches=False)
    pipelined(other, people(300, "old"), "segment: Other")      # 30 batches someone else made earlier
    em.list_newest_first = True
    c = make_client(em, clock)
    c.batch_listing.page_size = 20
    outcomes = pipelined(c, people(400), "segment: N")
    assert {o.status for o in outcomes} == {"accepted"} and len(outcomes) == 400
    assert c.batch_listing.requests <= 40 // 15 + 3 and c.batch_listing.enabled


def test_oldest_first_listing_behind_a_long_history_is_paged_to_our_batches(em, clock):
    other = make_client(em, clock, list_batches=False)
    pipelined(other, people(600, "old"), "segment: Other")      # 60 older batches before ours
    items_before = em.requests_by_route[ITEMS]
    c = make_client(em, clock)
    c.batch_listing.page_size = 10                               # ours start 6 pages in (4 pages a pass)
    outcomes = pipelined(c, people(400), "segment: O")
    assert {o.status for o in outcomes} == {"accepted"} and len(outcomes) == 400
    assert em.requests_by_route[ITEMS] == items_before           # no batch of ours polled on its items
    # the first collect pages through the history once; afterwards each pass starts at our oldest batch
    assert c.batch_listing.requests <= 7 + 2 * (40 // 15 + 2)


def test_oldest_first_listing_finds_its_tail_in_log_requests(em, clock):
    make_batches(em, clock, 5000)          # earlier runs of the day: 5,000 batches before ours
    c = make_client(em, clock)
    outcomes = pipelined(c, people(1000), "segment: T")            # 100 batches of ours
    assert {o.status for o in outcomes} == {"accepted"} and ITEMS not in em.requests_by_route
    # page 0, gallop 250 ... 7750, bisect to the tail, then about one listing per window of 16 (reading the
    # 20 pages before ours 4 a pass would take 5 passes and poll the first window on its items)
    assert c.batch_listing.requests <= 10 + 100 // 15 + 2


class SmallerPages(httpx.BaseTransport):
    """A vendor whose listing pages hold at most `cap` batches whatever limit we ask for."""

    def __init__(self, inner: httpx.BaseTransport, cap: int, say_limit: bool) -> None:
        self.inner, self.cap, self.say_limit = inner, cap, say_limit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path == "/api/batches":
            asked = int(request.url.params.get("limit", 100))
            request = httpx.Request("GET", request.url.copy_set_param("limit", min(asked, self.cap)),
                                    headers=request.headers)
            resp = self.inner.handle_request(request)
            body = json.loads(resp.read())
            if not self.say_limit:
                body["paging"].pop("limit")
            return httpx.Response(200, json=body)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("say_limit", [True, False])
def test_listing_with_smaller_pages_than_asked_still_finds_the_tail(em, clock, say_limit):
    make_batches(em, clock, 2000)
    c = make_client(em, clock, transport=SmallerPages(em.transport(), 100, say_limit))
    outcomes = pipelined(c, people(1000), "segment: Cap")
    assert {o.status for o in outcomes} == {"accepted"} and ITEMS not in em.requests_by_route
    assert c.batch_listing.page_size == 100 and c.batch_listing.requests <= 12 + 100 // 15 + 2


@pytest.mark.parametrize("status", [404, 405, 400])
def test_listing_not_supported_falls_back_to_polling_each_batch(em, clock, status):
    rw = Rewriter(em.transport(), lambda request, resp: httpx.Response(
        status, json={"title": "Not here", "status": status}))
    c = make_client(em, clock, transport=rw)
    outcomes = pipelined(c, people(200), "segment: F")
    assert {o.status for o in outcomes} == {"accepted"} and len(outcomes) == 200
    assert rw.paths.count("GET /api/batches") == 1                 # tried once, then off for the run
    assert sum(p.endswith("/items") for p in rw.paths) == 20       # every batch polled on its items


def test_batch_missing_from_the_listing_is_polled_directly(em, clock):
    hidden: set[str] = set()

    def hide_first(batches):
        if not hidden and batches:
            hidden.add(em.batch_ids()[0])
        return [b for b in batches if b["batchID"] not in hidden]

    rw = Rewriter(em.transport(), rewrite_batches(hide_first))
    c = make_client(em, clock, transport=rw)
    outcomes = pipelined(c, people(100), "segment: M")
    assert {o.status for o in outcomes} == {"accepted"} and len(outcomes) == 100
    hidden_id = next(iter(hidden))
    assert rw.paths.count(f"GET /api/batches/{hidden_id}/items") == 1
    assert sum(p.endswith("/items") for p in rw.paths) == 1
    assert c.batch_listing.enabled


def test_listing_that_never_shows_our_batches_is_switched_off(em, clock):
    rw = Rewriter(em.transport(), rewrite_batches(lambda batches: []))
    c = make_client(em, clock, transport=rw)
    outcomes = pipelined(c, people(300), "segment: Z")
    assert {o.status for o in outcomes} == {"accepted"} and len(outcomes) == 300
    assert rw.paths.count("GET /api/batches") <= 5 and not c.batch_listing.enabled


def test_counts_that_do_not_add_up_read_the_items(em, clock):
    def lie(batches):
        return [{**b, "totalCount": b["totalCount"] - 1} for b in batches]

    rw = Rewriter(em.transport(), rewrite_batches(lie))
    c = make_client(em, clock, transport=rw)
    outcomes = pipelined(c, people(30), "segment: C")
    assert {o.status for o in outcomes} == {"accepted"}
    assert sum(p.endswith("/items") for p in rw.paths) == 3


def test_stopped_batch_in_the_listing_is_a_vendor_error(em, clock):
    rw = Rewriter(em.transport(), rewrite_batches(lambda bs: [{**b, "status": "stopped"} for b in bs]))
    c = make_client(em, clock, transport=rw)
    sub = c.submit_upsert(people(3), c.find_target("segment: S"))
    with pytest.raises(VendorError, match="stopped processing"):
        c.collect(sub)


def test_submission_from_an_earlier_client_is_polled_directly(em, clock):
    first = make_client(em, clock)
    sub = first.submit_upsert(people(3), first.find_target("segment: R"))
    second = make_client(em, clock)      # a resumed run: it never submitted this batch
    assert {o.status for o in second.collect(sub)} == {"accepted"}
    assert em.requests_by_route.get(LISTING, 0) == 0 and em.requests_by_route[ITEMS] == 1


def test_listing_requests_are_paced_by_the_client_rate_limit(em, clock):
    from connectors.http import RateLimit

    c = make_client(em, clock, rate_limits={"default": RateLimit(4, 60.0)})
    outcomes = pipelined(c, people(60), "segment: P", depth=2)   # 6 POSTs + listings > 4 a minute
    assert {o.status for o in outcomes} == {"accepted"}
    assert c.http.limiter.waited_s > 0


def test_all_accepted_needs_every_count_to_add_up():
    done = {"status": "finished", "totalCount": 100, "finishedCount": 100, "errorsCount": 0}
    assert all_accepted(done, 100)
    assert not all_accepted(done, 99)
    assert not all_accepted({**done, "errorsCount": 1}, 100)
    assert not all_accepted({**done, "finishedCount": 99}, 100)
    assert not all_accepted({**done, "status": "inProgress"}, 100)
    assert not all_accepted({k: v for k, v in done.items() if k != "errorsCount"}, 100)
    assert not all_accepted(None, 100)


# ---------------------------------------------------------------- the emulator's listing

def http(em: OmnisendEmulator) -> httpx.Client:
    return httpx.Client(transport=em.transport(), base_url="http://sandbox.omnisend.local",
                        headers={"Authorization": f"Omnisend-API-Key {KEY}", "Omnisend-Version": "2026-03-15"})


def make_batches(em: OmnisendEmulator, clock: FakeClock, n: int, gap_s: float = 0.0) -> list[str]:
    h = http(em)
    ids = []
    for i in range(n):
        r = h.post("/api/batches", json={"method": "POST", "endpoint": "contacts",
                                         "items": [{"identifiers": [{"type": "email", "id": f"b{i}@x.com"}]}]})
        ids.append(r.json()["batchID"])
        clock.advance(gap_s)
    return ids


@pytest.mark.parametrize("query, field", [
    ({}, "endpoint"), ({"endpoint": "orders"}, "endpoint"), ({"endpoint": "contacts", "limit": 251}, "limit"),
    ({"endpoint": "contacts", "limit": 0}, "limit"), ({"endpoint": "contacts", "offset": -1}, "offset"),
    ({"endpoint": "contacts", "status": "done"}, "status"),
    ({"endpoint": "contacts", "dateFrom": "07/12/2026"}, "dateFrom"),
    ({"endpoint": "contacts", "dateTo": "2026-13-45"}, "dateTo"),
])
def test_emulator_listing_validates_its_query(em, query, field):
    r = http(em).get("/api/batches", params=query)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json()["errors"]]


def test_emulator_listing_pages_with_offset_and_limit(em, clock):
    ids = make_batches(em, clock, 7)
    h = http(em)
    first = h.get("/api/batches", params={"endpoint": "contacts", "limit": 3}).json()
    assert [b["batchID"] for b in first["batches"]] == ids[:3]
    assert first["paging"]["limit"] == 3 and first["paging"]["offset"] == 0
    assert "offset=3" in first["paging"]["next"] and "previous" not in first["paging"]
    last = h.get("/api/batches", params={"endpoint": "contacts", "limit": 3, "offset": 6}).json()
    assert [b["batchID"] for b in last["batches"]] == ids[6:] and "next" not in last["paging"]
    assert "offset=3" in last["paging"]["previous"]
    assert len(h.get("/api/batches", params={"endpoint": "contacts"}).json()["batches"]) == 7   # default 100
    assert h.get("/api/batches", params={"endpoint": "products"}).json()["batches"] == []
    b = first["batches"][0]
    assert {"batchID", "status", "totalCount", "finishedCount", "errorsCount", "createdAt", "endpoint",
            "method"} <= set(b) and "responses" not in b and b["status"] == "finished" and b["totalCount"] == 1
    em.list_newest_first = True
    newest = h.get("/api/batches", params={"endpoint": "contacts", "limit": 2}).json()
    assert [x["batchID"] for x in newest["batches"]] == ids[::-1][:2]


def test_emulator_listing_filters_by_day_and_status(em, clock):
    clock.now = 1_790_000_000.0            # 2026-09-21 12:53 UTC
    ids = make_batches(em, clock, 4, gap_s=86_400.0)   # one batch a day, 21st to 24th
    h = http(em)

    def listed(**q):
        return [b["batchID"] for b in h.get("/api/batches", params={"endpoint": "contacts", **q}).json()["batches"]]

    assert listed(dateFrom="2026-09-22") == ids[1:]
    assert listed(dateTo="2026-09-22") == ids[:2]                         # the whole day, inclusive
    assert listed(dateFrom="2026-09-22", dateTo="2026-09-23") == ids[1:3]
    assert listed(dateFrom="2026-09-25") == []
    em.batch_delay_s = 100.0
    late = make_batches(em, clock, 2)
    assert listed(status="pending") == late
    assert listed(status="finished", limit=2, offset=1) == ids[1:3]
    assert listed(status="stopped") == []


def test_tail_search_reads_every_one_of_ours_when_they_fill_several_pages(em, clock):
    make_batches(em, clock, 200)
    c = make_client(em, clock)
    c.batch_listing.page_size = 10
    target = c.find_target("segment: W")
    subs = [c.submit_upsert(people(2, f"w{k}-"), target) for k in range(35)]   # 35 in flight, pages of 10
    assert {o.status for o in c.collect(subs[0])} == {"accepted"}
    listing = c.batch_listing
    assert all(listing.state(s.job_id)["status"] == "finished" for s in subs[1:])   # one pass saw all 35
    requests = listing.requests
    for s in subs[1:]:
        c.collect(s)
    assert listing.requests == requests and ITEMS not in em.requests_by_route
