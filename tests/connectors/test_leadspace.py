"""Leadspace client (connectors/leadspace.py), its emulator (connectors/sandbox/leadspace.py) and the
built-in company directory (connectors/sandbox/companies.py). FakeClock: nothing really waits."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from connectors.errors import InsufficientCreditsError, TransientError, VendorError
from connectors.http import RetryPolicy
from connectors.base import batched
from connectors.leadspace import (COMPANY_KEYS, MAX_BULK_RECORDS, CompanyInput, EnrichmentResult, LeadspaceClient,
                                  parse_result)
from connectors.sandbox import companies
from connectors.sandbox.common import FakeClock
from connectors.sandbox.companies import COMPANIES, company_for_index, match_company, unknown_company_for_index
from connectors.sandbox.leadspace import LeadspaceEmulator
from connectors.sandbox.server import serve

FAST_RETRY = RetryPolicy(max_attempts=5, base_backoff_s=0.01, max_backoff_s=0.05)
TOKEN = "ls-token-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def em(clock) -> LeadspaceEmulator:
    return LeadspaceEmulator(clock=clock, sleep=clock.sleep, credits=10_000, bulk_delay_s=3.0)


def make_client(em, clock, **kw) -> LeadspaceClient:
    kw.setdefault("retry", FAST_RETRY)
    return LeadspaceClient(kw.pop("api_key", TOKEN), base_url="http://sandbox.leadspace.local",
                           transport=kw.pop("transport", None) or em.transport(), sleep=clock.sleep, clock=clock, **kw)


@pytest.fixture
def client(em, clock):
    c = make_client(em, clock)
    yield c
    c.close()


def submit_and_collect(client, records, sleep, *, wait_s: float = 1.0) -> list[EnrichmentResult]:
    """The connector's primitives, one bulk of 500 after another: submit them all, then poll each until
    it is ready. (The pipelined driver is the enrichment runner, jobs/enrichment_run.py.)"""
    bulk_ids = [client.submit_bulk(chunk) for chunk in batched(records, MAX_BULK_RECORDS)]
    out: list[EnrichmentResult] = []
    for bulk_id in bulk_ids:
        while (results := client.poll_bulk(bulk_id)) is None:
            sleep(wait_s)
        out.extend(results)
    return out


def known(i: int, *, website=True, location=False) -> CompanyInput:
    c = company_for_index(i)
    return CompanyInput(f"k{i}", c.name, c.website if website else None,
                        city=c.city if location else None, country=c.country if location else None)


# ---------------------------------------------------------------- company directory

def test_directory_is_deterministic_and_plausible():
    assert len(COMPANIES) == companies.N_COMPANIES >= 2000
    again = companies._generate(companies.SEED, 50)
    assert again == COMPANIES[:50]
    assert len({companies.normalize_name(c.name) for c in COMPANIES}) == len(COMPANIES)
    assert len({c.domain for c in COMPANIES}) == len(COMPANIES)
    assert len({c.country_code for c in COMPANIES}) >= 8 and len({c.industry for c in COMPANIES}) >= 10
    c = company_for_index(123)
    assert c is COMPANIES[123] and company_for_index(123 + len(COMPANIES)) is c
    assert c.sic.isdigit() and c.naics.isdigit() and c.employees_exact > 0 and c.revenue_exact > 0
    assert c.website == f"https://www.{c.domain}" and json.dumps(c.to_dict())


def test_unknown_companies_never_match():
    for i in range(500):
        u = unknown_company_for_index(i)
        assert match_company(u.name, u.website, u.city, u.state, u.country, u.postal_code) == (None, None)


def test_confidence_levels():
    c = company_for_index(42)
    assert match_company(c.name, c.website) == (c, "HIGH")
    assert match_company(c.name.upper() + ",", f"http://{c.domain}/about") == (c, "HIGH")
    assert match_company(c.name, None, c.city, None, c.country) == (c, "HIGH")
    assert match_company(c.name) == (c, "MEDIUM")
    fuzzy = c.name.split()[0] + "x " + " ".join(c.name.split()[1:])
    assert match_company(fuzzy, c.website) == (c, "MEDIUM")
    assert match_company(fuzzy)[1] == "LOW"
    assert match_company("Totally Different Name", c.website) == (c, "LOW")
    other_country = "Japan" if c.country_code != "JP" else "Germany"
    assert match_company(fuzzy, None, None, None, other_country)[1] == "VERY LOW"
    assert match_company("Zzqx Vorpal Widgets") == (None, None)


# ---------------------------------------------------------------- verify

def test_verify_ok_uses_no_credit(em, client):
    result = client.verify()
    assert result.ok and "no credits used" in result.message
    assert em.credits == 10_000


def test_verify_bad_token(em, clock):
    result = make_client(em, clock, api_key="invalid-token-1").verify()
    assert not result.ok and "rejected the token" in result.message and "invalid-token-1" not in result.message


def test_verify_out_of_credits(em, client):
    em.credits = 0
    result = client.verify()
    assert not result.ok and "run out of credits" in result.message


# ---------------------------------------------------------------- single

def test_enrich_single_match(em, client):
    c = company_for_index(7)
    res = client.enrich_single(CompanyInput("cust-1", c.name, c.website, city=c.city, country=c.country))
    assert res.status == "enriched" and res.confidence == "HIGH" and res.external_id == "cust-1"
    assert set(res.company) == set(COMPANY_KEYS)
    assert res.company["name"] == c.name and res.company["industry"] == c.industry
    assert res.company["employees_exact"] == c.employees_exact and res.company["hq_postal_code"] == c.postal_code
    assert res.company["ls_company_id"] == c.ls_company_id
    assert EnrichmentResult.from_dict(json.loads(json.dumps(res.to_dict()))) == res
    assert em.credits == 9_999


def test_enrich_single_no_match_costs_nothing(em, client):
    res = client.enrich_single(CompanyInput("x", unknown_company_for_index(3).name))
    assert res.status == "not_matched" and res.confidence is None and res.company == {}
    assert em.credits == 10_000


def test_enrich_single_invalid_input(em, client):
    assert client.enrich_single(CompanyInput("x", "  ")).status == "invalid_input"
    assert em.request_count == 0  # answered locally
    http = httpx.Client(transport=em.transport(), base_url="http://x", headers={"Authorization": f"Bearer {TOKEN}"})
    r = http.post("/enrichment/enrich/single", json={"company": {"website": "acme.com"}})
    assert r.status_code == 400 and set(r.json()) == {"error", "tracking_id", "request_timestamp", "details"}


def test_enrich_single_427(em, client):
    em.credits = 0
    with pytest.raises(InsufficientCreditsError) as ei:
        client.enrich_single(known(1))
    assert "next run continues" in ei.value.user_message


def test_request_body_shape(em, clock):
    seen = []

    class Rec(httpx.BaseTransport):
        def handle_request(self, request):
            request.read()
            seen.append(request)
            return em.transport().handle_request(request)

    c = make_client(em, clock, transport=Rec())
    c.enrich_single(CompanyInput("e1", "Acme", "acme.com", "1 Main", "Austin", "TX", "US", "78701"))
    body = json.loads(seen[0].content)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert body == {"external_id": "e1", "company": {"name": "Acme", "website": "acme.com", "address": {
        "street": "1 Main", "city": "Austin", "state": "TX", "country": "US", "postalcode": "78701"}}}


# ---------------------------------------------------------------- bulk

def test_bulk_submit_and_poll(em, clock, client):
    records = [known(i) for i in range(10)] + [CompanyInput("u", unknown_company_for_index(0).name)]
    bulk_id = client.submit_bulk(records)
    assert client.poll_bulk(bulk_id) is None  # 204 while processing
    clock.advance(3.0)
    results = client.poll_bulk(bulk_id)
    assert [r.external_id for r in results] == [r.external_id for r in records]
    assert [r.status for r in results] == ["enriched"] * 10 + ["not_matched"]
    assert all(r.confidence == "HIGH" for r in results[:10])


def test_bulk_limits(em, client):
    with pytest.raises(ValueError):
        client.submit_bulk([known(i) for i in range(501)])
    http = httpx.Client(transport=em.transport(), base_url="http://x", headers={"Authorization": f"Bearer {TOKEN}"})
    r = http.post("/enrichment/enrich/bulk", json={"data": [{"company": {"name": "A"}}] * 501})
    assert r.status_code == 400 and "500" in r.json()["details"]
    with pytest.raises(VendorError):
        client.poll_bulk("no-such-bulk")


def test_bulk_results_follow_the_input_order(em, clock, client):
    records = [known(i, website=i % 2 == 0) for i in range(1200)]
    records.insert(600, CompanyInput("blank", None))
    results = submit_and_collect(client, records, clock.sleep)
    assert [r.external_id for r in results] == [r.external_id for r in records]
    by_id = {r.external_id: r for r in results}
    assert by_id["blank"].status == "invalid_input"          # answered by Leadspace (code 1200), not charged
    assert by_id["k0"].confidence == "HIGH" and by_id["k1"].confidence == "MEDIUM"
    assert em.snapshot()["bulk_requests"] == 3
    assert em.credits == 10_000 - 1200


def test_bulk_per_record_codes(em, client, clock):
    em.internal_error_ids = {"k2"}
    bulk_id = client.submit_bulk([known(1), known(2), CompanyInput("bad", None)])  # server-side 1200
    clock.advance(5)
    res = {r.external_id: r for r in client.poll_bulk(bulk_id)}
    assert res["k1"].status == "enriched"
    assert res["k2"].status == "error" and "Internal error" in res["k2"].reason
    assert res["bad"].status == "invalid_input" and "company.name" in res["bad"].reason


def test_single_internal_error_record(em, client):
    em.internal_error_ids = {"k9"}
    res = client.enrich_single(known(9))
    assert res.status == "error" and res.reason and em.request_count == 1


def test_parse_result_variants():
    r, code = parse_result({"status": "failure", "external_id": "a", "error": {"code": 1200, "message": "bad"}})
    assert code is None and r.status == "invalid_input" and r.reason == "bad"
    r, code = parse_result({"status": "failure", "external_id": "a", "code": 427})
    assert r is None and code == 427
    r, _ = parse_result({"status": "success", "external_id": "a", "data": {"enrichment_status": "Not Enriched"}})
    assert r.status == "not_matched"


def test_credits_run_out_mid_bulk(em, clock, client):
    em.credits = 700
    records = [known(i) for i in range(1500)]
    first = client.submit_bulk(records[:500])
    second = client.submit_bulk(records[500:1000])            # accepted: 200 credits are left for it
    with pytest.raises(InsufficientCreditsError):
        client.submit_bulk(records[1000:])                     # none left: refused at submit
    clock.advance(5)
    assert len(client.poll_bulk(first)) == 500
    with pytest.raises(InsufficientCreditsError) as ei:
        client.poll_bulk(second)
    err = ei.value
    assert "ran out of credits after 200" in err.user_message and "next run continues" in err.user_message
    assert len(err.partial_results) == 200 and all(r.status == "enriched" for r in err.partial_results)
    snap = em.snapshot()
    assert snap["credits_left"] == 0 and snap["credits_used"] == 700
    assert snap["recent_bulks"][0]["status"] == "INSUFFICIENT_CREDITS"
    # the next run continues with the rest once credits are added
    em.credits = 1000
    done = {f"k{i}" for i in range(500)} | {r.external_id for r in err.partial_results}
    rest = submit_and_collect(client, [r for r in records if r.external_id not in done], clock.sleep)
    assert len(rest) == 800 and all(r.status == "enriched" for r in rest)


def test_427_at_submit_keeps_accepted_bulks(em, clock, client):
    em.credits = 500  # exactly the first bulk; the second bulk is refused at submit
    records = [known(i) for i in range(900)]
    accepted = client.submit_bulk(records[:500])
    with pytest.raises(InsufficientCreditsError):
        client.submit_bulk(records[500:])
    clock.advance(5)
    assert len(client.poll_bulk(accepted)) == 500            # the accepted bulk is still answered


# ---------------------------------------------------------------- faults and rate limits

def test_429_burst_is_retried(em, clock, client):
    em.faults.rate_limit_burst = 3
    res = submit_and_collect(client, [known(i) for i in range(20)], clock.sleep)
    assert len(res) == 20 and all(r.status == "enriched" for r in res)
    assert em.snapshot()["bulk_requests"] == 1


def test_5xx_burst_is_retried(em, client):
    em.faults.server_error_burst = 3
    em.faults.server_error_status = 500
    assert client.enrich_single(known(3)).status == "enriched"


def test_outage_is_transient(em, client):
    em.faults.outage = True
    assert not client.verify().ok
    with pytest.raises(TransientError):
        client.enrich_single(known(3))


def test_client_paces_at_30_per_second(em, clock):
    c = make_client(em, clock, rate_limits=True)
    em.rate_limits_enabled = True
    start = clock.now
    for i in range(91):
        assert c.enrich_single(known(i)).status == "enriched"
    assert clock.now - start >= 3.0
    assert em.request_count == 91  # no 429 was needed


def test_emulator_enforces_30_tps(em, clock):
    em.rate_limits_enabled = True
    http = httpx.Client(transport=em.transport(), base_url="http://x", headers={"Authorization": f"Bearer {TOKEN}"})
    codes = [http.post("/enrichment/enrich/single", json={"company": {"name": "A"}}).status_code for _ in range(31)]
    assert codes[:30] == [200] * 30 and codes[30] == 429


def test_a_bulk_not_ready_polls_as_none(em, clock, client):
    # how long to wait is the enrichment runner's decision (RunOptions.max_bulk_wait_s)
    em.bulk_delay_s = 10_000
    bulk_id = client.submit_bulk([known(1)])
    clock.advance(60)
    assert client.poll_bulk(bulk_id) is None


def test_snapshot_counts(em, client):
    client.enrich_single(known(1))
    submit_and_collect(client, [known(2), CompanyInput("u", unknown_company_for_index(1).name)], client.http.sleep)
    snap = em.snapshot()
    assert snap["single_requests"] == 1 and snap["bulk_requests"] == 1 and snap["records"] == 3
    assert snap["enriched"] == 2 and snap["not_matched"] == 1 and snap["credits_left"] == 9_998
    assert snap["recent_bulks"][0]["records"] == 2


def test_inputs_are_json_serialisable():
    rec = CompanyInput("1", "Acme", "acme.com", city="Austin")
    assert CompanyInput.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_registry_sandbox():
    from connectors.registry import make_client as registry_make
    from connectors.sandbox import get_emulator

    em = get_emulator("leadspace")
    em.reset()
    c = registry_make("leadspace", "tok-1234", "sandbox", rate_limits=False)
    assert isinstance(c, LeadspaceClient) and c.verify().ok
    assert c.enrich_single(known(5)).status == "enriched"
    em.reset()


# ---------------------------------------------------------------- loopback

def test_loopback_bulk():
    em = LeadspaceEmulator(bulk_delay_s=0.05)
    with serve(em) as server:
        c = LeadspaceClient(TOKEN, base_url=server.url, rate_limits=True,
                            retry=RetryPolicy(max_attempts=4, base_backoff_s=0.01, max_backoff_s=0.05))
        assert c.verify().ok
        em.faults.drop_connections = 1
        results = submit_and_collect(c, [known(i) for i in range(1100)], time.sleep, wait_s=0.02)
        assert len(results) == 1100 and all(r.status == "enriched" for r in results)
        c.close()
