"""SendGrid client + emulator specifics (in-process, FakeClock)."""
from __future__ import annotations

import json

import httpx
import pytest

from connectors.base import Contact
from connectors.errors import VendorError
from connectors.registry import REGIONS, VENDORS, make_client
from connectors.sandbox.common import FakeClock
from connectors.sandbox.sendgrid import SendGridEmulator
from connectors.sendgrid import FIELD_LIMITS, SendGridClient


@pytest.fixture
def env():
    clock = FakeClock()
    em = SendGridEmulator(clock=clock, sleep=clock.sleep)
    client = SendGridClient("SG.key-abcdef", base_url="http://sandbox.sendgrid.local", transport=em.transport(),
                            sleep=clock.sleep, clock=clock)
    return clock, em, client


def test_field_limits_exposed():
    assert FIELD_LIMITS == {"email": 254, "first_name": 50, "last_name": 50, "country": 50, "state": 50,
                            "city": 60, "address": 100}


def test_verify_permission_and_auth(env):
    clock, em, _ = env
    ok = SendGridClient("SG.nomarketing-key", base_url="http://s", transport=em.transport()).verify()
    assert not ok.ok and "Marketing access" in ok.message
    assert SendGridClient("SG.good", base_url="http://s", transport=em.transport()).verify().ok


def test_list_paging_follows_metadata_next(env):
    clock, em, client = env
    for i in range(2005):
        em.lists[f"id-{i}"] = {"id": f"id-{i}", "name": f"L{i}", "members": set()}
    targets = client.list_targets()
    assert len(targets) == 2005 and client.find_target("L2004").id == "id-2004"
    assert em.requests_by_route["GET /v3/marketing/lists"] == 6  # 3 pages, twice


def test_list_cap_gives_clear_error(env):
    clock, em, client = env
    for i in range(1000):
        em.lists[f"id-{i}"] = {"id": f"id-{i}", "name": f"L{i}", "members": set()}
    with pytest.raises(VendorError) as ei:
        client.create_target("one too many")
    assert "maximum number of lists" in ei.value.user_message


def test_field_mapping_and_truncation(env):
    clock, em, client = env
    t = client.create_target("S")
    c = Contact("A@Example.com", {"first_name": "x" * 80, "state": "CA", "address": "1 Main St", "postal_code": "9",
                                  "unknown_field": "dropped", "city": None})
    client.collect(client.submit_upsert([c], t))
    stored = em.contact("a@example.com")
    assert stored == {"email": "a@example.com", "first_name": "x" * 50, "state_province_region": "CA",
                      "address_line_1": "1 Main St", "postal_code": "9"}


def test_batches_respect_count_and_bytes():
    client = SendGridClient("k", base_url="http://s", transport=httpx.MockTransport(lambda r: httpx.Response(500)),
                            max_batch_contacts=1000, max_batch_bytes=20_000)
    items = [Contact(f"user{i}@example.com", {"first_name": "Firstname", "city": "Somewhere"}) for i in range(2000)]
    batches = list(client.upsert_batches(iter(items)))
    assert sum(len(b) for b in batches) == 2000
    for b in batches:
        body = json.dumps({"list_ids": ["11111111-2222-4333-8444-000000000001"],
                           "contacts": [client._to_sendgrid(c) for c in b]}, separators=(",", ":"))
        assert len(body.encode()) <= 20_000 and len(b) <= 1000


def test_too_long_email_rejected_locally(env):
    clock, em, client = env
    t = client.create_target("S")
    long_email = "a" * 250 + "@x.com"
    sub = client.submit_upsert([Contact(long_email, {}), Contact("ok@x.com", {})], t)
    outs = client.collect(sub)
    assert outs[0].status == "rejected" and "254" in outs[0].reason and outs[1].status == "accepted"


def test_emulator_enforces_size_limits(env):
    clock, em, client = env
    t = client.create_target("S")
    h = {"Authorization": "Bearer k", "content-type": "application/json"}
    too_many = {"list_ids": [t.id], "contacts": [{"email": f"u{i}@x.com"} for i in range(30_001)]}
    r = em.handle(httpx.Request("PUT", "http://s/v3/marketing/contacts", headers=h, json=too_many))
    assert r.status_code == 400 and r.json()["errors"][0]["message"]
    big = {"list_ids": [t.id], "contacts": [{"email": "u@x.com", "custom_fields": {"w1": "x" * 7_000_000}}]}
    r = em.handle(httpx.Request("PUT", "http://s/v3/marketing/contacts", headers=h, json=big))
    assert r.status_code == 413
    bad = {"contacts": [{"email": "u@x.com", "first_name": "x" * 51}]}
    r = em.handle(httpx.Request("PUT", "http://s/v3/marketing/contacts", headers=h, json=bad))
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "contacts[0]"


def test_rate_limit_headers_on_every_response(env):
    clock, em, client = env
    r = em.handle(httpx.Request("GET", "http://s/v3/scopes", headers={"Authorization": "Bearer k"}))
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)


def test_remove_never_deletes_contacts_and_reports_long_emails(env):
    clock, em, client = env
    t = client.create_target("S")
    items = [Contact(f"u{i}@x.com", {}) for i in range(150)]
    for b in client.upsert_batches(items):
        client.collect(client.submit_upsert(b, t))
    long_email = "l" * 101 + "@x.com"
    emails = [c.email for c in items[:120]] + [long_email]
    outs = []
    for b in client.remove_batches(emails):
        outs += client.submit_remove(b, t).outcomes
    assert len(outs) == 121 and outs[-1].status == "rejected" and "100 characters" in outs[-1].reason
    assert len(em.list_members(t.id)) == 30
    assert len(em.contacts) == 150  # contacts kept


def test_pending_job_resumable_after_crash(env):
    clock, em, client = env
    em.job_delay_s = 10
    t = client.create_target("S")
    sub = client.submit_upsert([Contact("a@x.com", {})], t)
    stored = json.dumps(sub.to_dict())  # runner persists, then "crashes"
    fresh = SendGridClient("SG.key-abcdef", base_url="http://s", transport=em.transport(), sleep=clock.sleep, clock=clock)
    from connectors.base import Submission
    outs = fresh.collect(Submission.from_dict(json.loads(stored)))
    assert [o.status for o in outs] == ["accepted"]
    assert em.requests_by_route["PUT /v3/marketing/contacts"] == 1


def test_registry_regions_and_sandbox():
    assert REGIONS["sendgrid"]["eu"] == "https://api.eu.sendgrid.com"
    assert VENDORS["leadspace"]["kind"] == "enrichment"
    c = make_client("sendgrid", "SG.k", "sandbox", sleep=lambda s: None)
    assert c.verify().ok
    with pytest.raises(ValueError):
        make_client("sendgrid", "k", "mars")


def test_contact_size_estimate_is_an_upper_bound_of_what_is_sent():
    """_size_of never under-counts a contact's JSON (quotes, backslashes, control characters written as
    \\u00XX, non-ASCII, custom fields), so a PUT never exceeds the byte budget it was batched for."""
    import random

    import orjson

    from connectors.base import json_text_bytes

    rng = random.Random(16)
    alphabet = 'abcXYZ019 "\\\x01\x1f\u00e9\u65e5\U0001f600@.'
    client = SendGridClient("SG.test", base_url="http://127.0.0.1:9")
    client.custom_field_ids = {"plan": "e1_T"}
    for i in range(400):
        fields = {k: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, rng.choice((3, 40, 400)))))
                  for k in ("first_name", "last_name", "city", "plan")}
        c = Contact(f"p{i}@example.com", fields)
        assert client._size_of(c) >= len(orjson.dumps(client._to_sendgrid(c)))
    for text in ("", "plain", 'q"b\\', "\x00\x1f", "日本😀", "\x7f"):
        assert json_text_bytes(text) >= len(orjson.dumps(text)) - 2
