"""Iterable client + emulator specifics (in-process, FakeClock)."""
from __future__ import annotations

import httpx
import pytest

from connectors.base import Contact
from connectors.errors import VendorError
from connectors.iterable import IterableClient
from connectors.sandbox.common import FakeClock
from connectors.sandbox.iterable import IterableEmulator


@pytest.fixture
def env():
    clock = FakeClock()
    em = IterableEmulator(clock=clock, sleep=clock.sleep)
    client = IterableClient("it-key-abcdef", base_url="http://sandbox.iterable.local", transport=em.transport(),
                            sleep=clock.sleep, clock=clock)
    return clock, em, client


def test_field_mapping_and_request_shape(env):
    clock, em, client = env
    seen = []
    real = em.handle

    def spy(request):
        if request.url.path == "/api/lists/subscribe":
            seen.append(request.read())
        return real(request)

    client.http._client._transport = httpx.MockTransport(spy)
    t = client.create_target("Segment")
    client.submit_upsert([Contact("a@x.com", {"first_name": "A", "last_name": "B", "postal_code": "1",
                                              "x_score": "9", "city": None})], t)
    assert em.user("a@x.com")["dataFields"] == {"firstName": "A", "lastName": "B", "postalCode": "1", "x_score": "9"}
    assert b'"updateExistingUsersOnly":false' in seen[0] and b'"listId":' in seen[0]


def test_each_failed_category_named(env):
    clock, em, client = env
    t = client.create_target("S")
    em.forgotten.add("f@x.com")
    em.conflict.add("c@x.com")
    outs = client.submit_upsert([Contact("f@x.com", {}), Contact("c@x.com", {}), Contact("bad", {}),
                                 Contact("ok@x.com", {})], t).outcomes
    reasons = [o.reason for o in outs]
    assert "forgottenEmails" in reasons[0] and "conflictEmails" in reasons[1] and "invalidEmails" in reasons[2]
    assert outs[3].status == "accepted" and em.list_members(t.id) == ["ok@x.com"]


def test_batch_too_large_is_clear(env):
    clock, em, client = env
    t = client.create_target("S")
    client.batch_size = 5000  # bypass the client cap on purpose
    with pytest.raises(VendorError) as ei:
        client.submit_upsert([Contact(f"u{i}@x.com", {}) for i in range(1001)], t)
    assert "too large" in ei.value.user_message


def test_unsubscribe_keeps_channel_and_users(env):
    clock, em, client = env
    t = client.create_target("S")
    client.submit_upsert([Contact("a@x.com", {}), Contact("b@x.com", {})], t)
    outs = client.submit_remove(["a@x.com", "ghost@x.com"], t).outcomes
    assert [o.status for o in outs] == ["accepted", "accepted"]
    assert em.list_members(t.id) == ["b@x.com"] and em.user("a@x.com") is not None


def test_get_users_is_text_plain(env):
    clock, em, client = env
    t = client.create_target("S")
    client.submit_upsert([Contact("a@x.com", {})], t)
    r = client.http.get("/api/lists/getUsers", params={"listId": t.id})
    assert r.headers["content-type"].startswith("text/plain") and r.text.split() == ["a@x.com"]


def test_duplicate_list_names_pick_first(env):
    clock, em, client = env
    a = client.create_target("Same")
    client.create_target("Same")
    assert client.find_target("Same").id == a.id
