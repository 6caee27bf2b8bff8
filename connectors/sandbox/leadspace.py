"""Leadspace sandbox: company enrichment against the built-in directory (connectors/sandbox/companies.py).

API
---
LeadspaceEmulator(*, clock=None, sleep=None, credits=1_000_000, bulk_delay_s=2.0)
    Emulator subclass (faults, rate limits, transport(): see connectors/sandbox/common.py).
    Knobs (plain attributes):
      credits: int                    remaining credits; at 0 every enrichment request gets 427
      credits_per_match: int = 1      cost of a matched record; NOT matched and invalid records cost 0
      bulk_delay_s: float             results answer 204 for this long after submission (injected clock)
      internal_error_ids: set[str]    external_ids whose records fail with code 1100 (internal error)
      max_bulk_records: int = 500
    snapshot(): single/bulk request counts, records received/enriched/not matched/invalid,
    credits left and used, recent bulk jobs (id, records, status, ready).

Routes (base https://apigw.leadspace.com, `Authorization: Bearer <token>`):
    POST /enrichment/enrich/single     200 EnrichmentResult (no match is a 200 "Not Enriched");
                                       400 when company.name is missing (verify sends {} and gets 400)
    POST /enrichment/enrich/bulk       {"data":[<=500 records]} -> 202 {"id":"/v3/enrichment/results/<id>"};
                                       400 over 500 records / not a list / bad JSON
    GET  /v3/enrichment/results/{id}   204 while processing, then 200 {"results":[...], "bulkStatus"}; 404
Errors use the envelope {"error","tracking_id","request_timestamp","details"}; 401 has an empty body
(the docs say to ignore it). 429 (over 30 requests per second when rate limits are enabled, or the
burst fault) carries no headers: Leadspace documents none.

Emulator policies (Leadspace does not document these):
- Credits are checked when a request arrives: at 0 credits every single/bulk request gets 427
  ("insufficient credits"). A bulk is processed at submission in record order; each matched record
  costs `credits_per_match`; when credits run out inside a bulk, the remaining records come back as
  {"status":"failure","code":427,"error":"Insufficient credits"} and the bulk's bulkStatus is
  INSUFFICIENT_CREDITS. Results polling costs nothing.
- Per-record failures in bulk results: {"status":"failure","external_id","code":1200,"error":...}
  for invalid input (no company name), code 1100 for internal errors. A single request for a record
  in `internal_error_ids` answers 200 with that same failure record (not a 500, which clients retry).
- Matching and confidence: see companies.match_company (name + website + location).
"""
from __future__ import annotations

import re
import uuid
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

from connectors.sandbox.common import Emulator, json_response
from connectors.sandbox.companies import Company, match_company

MAX_BULK_RECORDS = 500
RECENT_BULKS = 50
MAX_STORED_BULKS = 4000  # oldest results are forgotten beyond this (404 on poll)
CODE_INTERNAL_ERROR = 1100
CODE_INVALID_INPUT = 1200
CODE_INSUFFICIENT_CREDITS = 427


def _now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@lru_cache(maxsize=16384)
def company_payload(c: Company, confidence: str) -> dict:
    """The EnrichedCompany subset the sandbox returns (vendor-apis.md §4.3). Cached and shared:
    treat the returned dict as read-only."""
    return {
        "ug_company_id": c.ls_company_id, "name": c.name,
        "website": c.website, "industry": c.industry, "sub_industry": c.sub_industry, "sic": c.sic,
        "naics": c.naics, "employees": {"exact": c.employees_exact, "range": c.employees_range},
        "revenue_dollar": {"exact": c.revenue_exact, "range": c.revenue_range},
        "address": {"country": c.country, "state": c.state, "city": c.city, "address": c.street,
                    "zipcode": c.postal_code},
        "matching_confidence": {"level": confidence},
    }


def _text(v: Any) -> str | None:
    return v if type(v) is str and v else None


class _Bulk:
    __slots__ = ("id", "created", "ready_at", "results", "records", "status", "matched")

    def __init__(self, bulk_id: str, created: float, ready_at: float, results: list, status: str, matched: int):
        self.id = bulk_id
        self.created = created
        self.ready_at = ready_at
        self.results = results
        self.records = len(results)
        self.status = status
        self.matched = matched


class LeadspaceEmulator(Emulator):
    vendor = "leadspace"
    RATE_LIMIT_RULES = {"default": (30, 1.0)}
    ROUTES = [
        ("POST", r"/enrichment/enrich/single", "route_single"),
        ("POST", r"/enrichment/enrich/bulk", "route_bulk"),
        ("GET", r"/v3/enrichment/results/(?P<id>[^/]+)", "route_results"),
    ]

    def __init__(self, *, clock: Callable[[], float] | None = None, sleep: Callable[[float], None] | None = None,
                 credits: int = 1_000_000, bulk_delay_s: float = 2.0) -> None:
        self.initial_credits = credits
        self.bulk_delay_s = bulk_delay_s
        self.credits_per_match = 1
        self.max_bulk_records = MAX_BULK_RECORDS
        self.internal_error_ids: set[str] = set()
        super().__init__(clock=clock, sleep=sleep)

    def reset_state(self) -> None:
        self.credits = self.initial_credits
        self.credits_used = 0
        self.internal_error_ids = set()
        self._bulks: dict[str, _Bulk] = {}
        self.counts = {"single_requests": 0, "bulk_requests": 0, "results_polls": 0, "records": 0,
                       "enriched": 0, "not_matched": 0, "invalid_input": 0, "internal_error": 0,
                       "credit_refusals": 0}

    # ------------------------------------------------------------ base hooks
    def api_key(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None

    def envelope(self, status: int, error: str, details: str = "") -> httpx.Response:
        now = self.clock()
        return json_response(status, {"error": error, "tracking_id": uuid.uuid4().hex,
                                      "request_timestamp": _now_iso(now), "details": details})

    def error_response(self, status: int, message: str, code: str | None = None) -> httpx.Response:
        return self.envelope(status, message)

    def auth_error(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, content=b"", headers={"content-type": "text/plain"})

    def rate_limited_response(self, request: httpx.Request, retry_after_s: float, reset_epoch: float,
                              include_retry_hint: bool) -> httpx.Response:
        # Leadspace documents no rate-limit headers, so none are sent even when a hint is asked for.
        return self.envelope(429, "Rate limit exceeded", "Too many requests per second for this program.")

    def server_error_response(self, status: int) -> httpx.Response:
        return self.envelope(status, "Internal server error" if status == 500 else "Service unavailable",
                             "The sandbox is simulating a server failure.")

    def not_found(self, request: httpx.Request) -> httpx.Response:
        return self.envelope(404, "Not found", f"No such resource: {request.url.path}")

    # ------------------------------------------------------------ enrichment core
    def _enrich(self, record: Any) -> tuple[str, dict]:
        """One input record -> (kind, result dict). kind: enriched|not_matched|invalid|error.
        Call with the lock held (touches credits)."""
        external_id = record.get("external_id") if isinstance(record, dict) else None
        base: dict[str, Any] = {"external_id": external_id} if external_id is not None else {}
        company = record.get("company") if isinstance(record, dict) else None
        name = company.get("name") if isinstance(company, dict) else None
        if not isinstance(name, str) or not name.strip():
            return "invalid", {"status": "failure", **base, "code": CODE_INVALID_INPUT,
                               "error": "Invalid input: company.name is required for account enrichment"}
        if external_id is not None and str(external_id) in self.internal_error_ids:
            return "error", {"status": "failure", **base, "code": CODE_INTERNAL_ERROR,
                             "error": "Internal error while enriching this record"}
        address = company.get("address")
        if type(address) is not dict:
            address = {}
        match, confidence = match_company(
            name, _text(company.get("website")), _text(address.get("city")), _text(address.get("state")),
            _text(address.get("country")), _text(address.get("postalcode")))
        if match is None:
            return "not_matched", {"status": "success", **base, "data": {"enrichment_status": "Not Enriched"}}
        if self.credits < self.credits_per_match:
            return "credits", {"status": "failure", **base, "code": CODE_INSUFFICIENT_CREDITS,
                               "error": "Insufficient credits"}
        self.credits -= self.credits_per_match
        self.credits_used += self.credits_per_match
        return "enriched", {"status": "success", **base, "data": {
            "enrichment_status": "Company Enriched", "company": company_payload(match, confidence)}}

    def _count(self, kind: str) -> None:
        key = {"enriched": "enriched", "not_matched": "not_matched", "invalid": "invalid_input",
               "error": "internal_error", "credits": "credit_refusals"}[kind]
        self.counts[key] += 1

    # ------------------------------------------------------------ routes
    def route_single(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        try:
            body = self.read_json(request)
        except ValueError:
            return self.envelope(400, "Bad request", "The JSON body is missing or malformed.")
        with self.lock:
            self.counts["single_requests"] += 1
            if self.credits <= 0:
                self.counts["credit_refusals"] += 1
                return self.envelope(427, "Insufficient credits", "The program has no credits left.")
            if not isinstance(body, dict):
                return self.envelope(400, "Bad request", "The body must be a JSON object.")
            self.counts["records"] += 1
            kind, result = self._enrich(body)
            self._count(kind)
        if kind == "invalid":
            return self.envelope(400, "Insufficient input", "Account enrichment requires company.name.")
        if kind == "credits":
            return self.envelope(427, "Insufficient credits", "The program has no credits left.")
        return json_response(200, result)

    def route_bulk(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        try:
            body = self.read_json(request)
        except ValueError:
            return self.envelope(400, "Bad request", "The JSON body is missing or malformed.")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return self.envelope(400, "Bad request", "'data' must be a non-empty list of records.")
        if len(data) > self.max_bulk_records:
            return self.envelope(400, "Bad request",
                                 f"A bulk request takes at most {self.max_bulk_records} records; got {len(data)}.")
        with self.lock:
            self.counts["bulk_requests"] += 1
            if self.credits <= 0:
                self.counts["credit_refusals"] += 1
                return self.envelope(427, "Insufficient credits", "The program has no credits left.")
            self.counts["records"] += len(data)
            results, status, matched = [], "COMPLETED", 0
            for record in data:
                kind, result = self._enrich(record)
                self._count(kind)
                if kind == "credits":
                    status = "INSUFFICIENT_CREDITS"
                elif kind == "enriched":
                    matched += 1
                results.append(result)
            now = self.clock()
            bulk_id = str(uuid.uuid4())
            self._bulks[bulk_id] = _Bulk(bulk_id, now, now + max(0.0, self.bulk_delay_s), results, status, matched)
            while len(self._bulks) > MAX_STORED_BULKS:
                self._bulks.pop(next(iter(self._bulks)))
        return json_response(202, {"id": f"/v3/enrichment/results/{bulk_id}"})

    def route_results(self, request: httpx.Request, match: re.Match) -> httpx.Response:
        with self.lock:
            self.counts["results_polls"] += 1
            bulk = self._bulks.get(match.group("id"))
            if bulk is None:
                return self.envelope(404, "Not found", "The results are not found.")
            if self.clock() < bulk.ready_at:
                return httpx.Response(204)
            return json_response(200, {"results": bulk.results, "bulkStatus": bulk.status})

    # ------------------------------------------------------------ snapshot
    def state_snapshot(self, max_members: int | None) -> dict:
        now = self.clock()
        recent = list(self._bulks.values())[-RECENT_BULKS:]
        return {
            **self.counts,
            "credits_left": self.credits,
            "credits_used": self.credits_used,
            "credits_per_match": self.credits_per_match,
            "bulk_delay_s": self.bulk_delay_s,
            "recent_bulks": [{"id": b.id, "records": b.records, "matched": b.matched, "status": b.status,
                              "ready": now >= b.ready_at} for b in reversed(recent)],
        }
