"""Helpers shared by the enrichment tests (no tests here): profiles, a connection, an emulator with a
fake clock, and a transport that counts what the vendor charged per normalised company."""
from __future__ import annotations

import json
from collections import Counter

import httpx
import pandas as pd

from connectors.sandbox.companies import company_for_index, unknown_company_for_index
from core import enrichment as core

PROFILE_COLUMNS = ["customer_id", "email", "company_name", "company_website", "street", "city", "state",
                   "country", "postal_code"]


def insert_profiles(db, rows: list[dict]) -> None:
    df = pd.DataFrame([{c: r.get(c) for c in PROFILE_COLUMNS} for r in rows], columns=PROFILE_COLUMNS).astype(object)
    with db.transaction() as cur:
        cur.register("p_df", df)
        cur.execute(f"INSERT INTO profiles ({', '.join(PROFILE_COLUMNS)}) SELECT * FROM p_df")
        cur.unregister("p_df")


def profile_for(i: int, company, *, name=None, website=True) -> dict:
    return {"customer_id": f"c{i:06d}", "email": f"p{i}@example.com",
            "company_name": company.name if name is None else name,
            "company_website": company.website if website else None,
            "street": company.street, "city": company.city, "state": company.state,
            "country": company.country, "postal_code": company.postal_code}


def make_profiles(n_companies: int, per_company: int = 2, unknown: int = 0, invalid: int = 0) -> list[dict]:
    """per_company profiles at each of n_companies directory companies (same inputs -> one key),
    plus `unknown` profiles at companies that never match and `invalid` without a company name."""
    rows, i = [], 0
    for c in range(n_companies):
        company = company_for_index(c)
        for _ in range(per_company):
            rows.append(profile_for(i, company))
            i += 1
    for u in range(unknown):
        rows.append(profile_for(i, unknown_company_for_index(u)))
        i += 1
    for _ in range(invalid):
        rows.append(profile_for(i, company_for_index(0), name="  "))
        i += 1
    return rows


def make_connection(db, admin) -> int:
    from core import consent
    from services import connections

    return connections.create_connection(
        db, admin, vendor="leadspace", name="Leadspace Sandbox", region="sandbox", api_key="sandbox-key-1234",
        shared_with_contributors=True, consent_version=consent.current_version("leadspace"),
        allow_unverified=True)


class ChargeCounter:
    """Wraps the emulator transport; counts, per normalised company, the records the vendor accepted
    in a bulk and did not refuse for credits (what it may charge for)."""

    def __init__(self, emulator, fail_after_bulks: int | None = None, exc: type[BaseException] | None = None):
        self.emulator = emulator
        self.inner = emulator.transport()
        self.accepted: Counter[str] = Counter()
        self.bulk_records: dict[str, list[str]] = {}
        self.bulk_posts = 0
        self.fail_after_bulks = fail_after_bulks
        self.exc = exc

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        is_bulk = request.method == "POST" and request.url.path.endswith("/enrich/bulk")
        if is_bulk and self.fail_after_bulks is not None and self.bulk_posts >= self.fail_after_bulks:
            raise self.exc("simulated crash")
        response = self.inner.handle_request(request)
        if is_bulk and response.status_code == 202:
            self.bulk_posts += 1
            body = json.loads(request.content)
            keys = []
            for rec in body["data"]:
                c = rec["company"]
                a = c.get("address") or {}
                inp = {"name": c.get("name"), "website": c.get("website"), "street": a.get("street"),
                       "city": a.get("city"), "state": a.get("state"), "country": a.get("country"),
                       "postal_code": a.get("postalcode")}
                keys.append(core.input_key(inp))
            bulk_id = json.loads(response.read())["id"].rsplit("/", 1)[-1]
            self.bulk_records[bulk_id] = keys
            self.accepted.update(keys)
        elif request.method == "GET" and response.status_code == 200 and "/results/" in request.url.path:
            bulk_id = request.url.path.rsplit("/", 1)[-1]
            body = json.loads(response.read())
            keys = self.bulk_records.pop(bulk_id, None)
            if keys is not None:
                for key, rec in zip(keys, body["results"]):
                    if rec.get("code") == 427:   # refused for credits: not charged
                        self.accepted[key] -= 1
        return response

    def sent_twice(self) -> list[str]:
        return [k for k, n in self.accepted.items() if n > 1]
