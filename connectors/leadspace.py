"""Leadspace company enrichment client (Enrichment API: single + bulk).

Data classes (JSON-serialisable: to_dict() / from_dict())
    CompanyInput(external_id: str, name: str|None, website: str|None = None, street=None, city=None,
                 state=None, country=None, postal_code=None)
    EnrichmentResult(external_id, status: "enriched"|"not_matched"|"invalid_input"|"error",
                     confidence: "HIGH"|"MEDIUM"|"LOW"|"VERY LOW"|None, company: dict, reason: str|None)
        company keys (COMPANY_KEYS): ls_company_id, name, website, industry, sub_industry, sic, naics,
        employees_exact, employees_range, revenue_exact, revenue_range, hq_street, hq_city, hq_state,
        hq_country, hq_postal_code (all present, None when unknown; {} unless status == "enriched").

LeadspaceClient(api_key, *, base_url="https://apigw.leadspace.com", transport=None, rate_limits=True,
                sleep=None, clock=None, timeout=None, retry=None, rand=None)
  verify() -> VerifyResult: POST /enrichment/enrich/single with {} (vendor-apis.md §4.3):
      400 -> ok (token accepted, no credit used); 401 -> not ok (AuthError message);
      427 -> not ok (InsufficientCreditsError message). Never raises for vendor answers.
  enrich_single(rec: CompanyInput) -> EnrichmentResult       (400 -> invalid_input, not raised)
  submit_bulk(records: list[CompanyInput] (<= 500)) -> bulk_id  (202 {"id":"/v3/enrichment/results/<id>"})
  poll_bulk(bulk_id) -> list[EnrichmentResult] | None         (None while 204 = still processing)
  close()
  The bulk pipeline (many bulks in flight, polled oldest first, stored as they come, resumable) is the
  enrichment runner's, jobs/enrichment_run.py: there is one.
Errors: 427 anywhere -> InsufficientCreditsError (message: credits ran out, the next run continues);
  it carries `.partial_results` (list[EnrichmentResult] of the bulk finished before credits ran out).
  401 -> AuthError; 429/5xx retried (no rate headers: backoff); other ->
  ConnectorError subclasses (connectors.http).
Per-record codes in bulk results: 1100 internal error -> status "error"; 1200 invalid input ->
  "invalid_input"; 427 (credits ran out inside a bulk) -> InsufficientCreditsError after the bulk's
  other results are kept.
Rate limit (client side, rate_limits=True): 30 requests per second ("default" bucket).

Exactly-once submission (not possible with this contract): if the process dies after Leadspace accepted
a bulk (202) and before the caller stored its id, the bulk cannot be found again, so a resumed run sends
it once more. The contract (vendor-apis.md §4, vendor-specs/leadspace-enrichment-openapi.yml) offers
no lookup: the bulk request takes an optional `external_bulk_id`, but no endpoint lists bulks or finds one
by that reference (results are only `GET /v3/enrichment/results/{bulkId}` with Leadspace's own id), the
completion callback body does not echo it, and nothing says Leadspace de-duplicates on it. A
`callbackUrl` carrying our own reference would reveal the lost bulkId, but needs a publicly reachable
HTTPS endpoint this app does not have, and the callback's delivery/retry is undocumented. So the
emulator does not invent a lookup either; the window stays one DuckDB insert long (at most one bulk,
and only its matched records are charged).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import httpx

from connectors.base import VerifyResult
from connectors.errors import (
    AuthError,
    ConnectorError,
    InsufficientCreditsError,
    RecordRejectedError,
    VendorError,
)
from connectors.http import RateLimit, RetryPolicy, VendorClient, get_logger
from connectors.spec import ENRICHMENT, SANDBOX, VendorSpec

log = get_logger("connectors.leadspace")

VENDOR = "leadspace"
DEFAULT_BASE_URL = "https://apigw.leadspace.com"
SPEC = VendorSpec(
    vendor=VENDOR, label="Leadspace", kind=ENRICHMENT,
    description="Enriches profiles with Leadspace company and person data.",
    regions={"production": DEFAULT_BASE_URL, SANDBOX: "http://sandbox.leadspace.local"},
    client="connectors.leadspace:LeadspaceClient",
    docs_url="https://support.leadspace.com/hc/en-us/sections/201997649-API",
    privacy_url="https://www.leadspace.com/privacy-policy/",
    rate_limits={"default": RateLimit(30, 1.0)},   # 30 requests/s (Leadspace's spec)
    key_label="Leadspace token",
)
SINGLE_PATH = "/enrichment/enrich/single"
BULK_PATH = "/enrichment/enrich/bulk"
RESULTS_PREFIX = "/v3/enrichment/results/"
MAX_BULK_RECORDS = 500
CODE_INTERNAL_ERROR = 1100
CODE_INVALID_INPUT = 1200
CODE_INSUFFICIENT_CREDITS = 427

ResultStatus = Literal["enriched", "not_matched", "invalid_input", "error"]
CONFIDENCE_LEVELS = ("HIGH", "MEDIUM", "LOW", "VERY LOW")
COMPANY_KEYS = (
    "ls_company_id", "name", "website", "industry", "sub_industry", "sic", "naics", "employees_exact",
    "employees_range", "revenue_exact", "revenue_range", "hq_street", "hq_city", "hq_state", "hq_country",
    "hq_postal_code",
)


@dataclass(slots=True)
class CompanyInput:
    external_id: str
    name: str | None
    website: str | None = None
    street: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    postal_code: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CompanyInput":
        return cls(**{k: d.get(k) for k in ("external_id", "name", "website", "street", "city", "state",
                                             "country", "postal_code")})

    def to_request(self) -> dict:
        """The Leadspace request record (only non-empty inputs are sent)."""
        company: dict[str, Any] = {}
        if self.name:
            company["name"] = self.name
        if self.website:
            company["website"] = self.website
        address = {k: v for k, v in (("street", self.street), ("city", self.city), ("state", self.state),
                                     ("country", self.country), ("postalcode", self.postal_code)) if v}
        if address:
            company["address"] = address
        return {"external_id": str(self.external_id), "company": company}


@dataclass(slots=True)
class EnrichmentResult:
    external_id: str
    status: ResultStatus
    confidence: str | None = None
    company: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"external_id": self.external_id, "status": self.status, "confidence": self.confidence,
                "company": dict(self.company), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "EnrichmentResult":
        return cls(external_id=d["external_id"], status=d["status"], confidence=d.get("confidence"),
                   company=dict(d.get("company") or {}), reason=d.get("reason"))


def _num(v: Any) -> int | float | None:
    if type(v) is int:
        return v
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return int(v) if isinstance(v, float) and v.is_integer() else v
    try:
        f = float(str(v).replace(",", ""))
    except ValueError:
        return None
    return int(f) if f.is_integer() else f


def _str(v: Any) -> str | None:
    if type(v) is str:
        return v or None
    return None if v is None else str(v)


def company_from_payload(c: dict) -> dict[str, Any]:
    """Leadspace EnrichedCompany -> our flat company dict (COMPANY_KEYS)."""
    get = c.get
    address = get("address")
    if type(address) is not dict:
        address = {}
    employees = get("employees")
    if type(employees) is not dict:
        employees = {}
    revenue = get("revenue_dollar")
    if type(revenue) is not dict:
        revenue = {}
    aget = address.get
    return {
        "ls_company_id": _str(get("ug_company_id") or get("ls_id")),
        "name": _str(get("name")),
        "website": _str(get("website")),
        "industry": _str(get("industry")),
        "sub_industry": _str(get("sub_industry")),
        "sic": _str(get("sic")),
        "naics": _str(get("naics")),
        "employees_exact": _num(employees.get("exact")),
        "employees_range": _str(employees.get("range")),
        "revenue_exact": _num(revenue.get("exact")),
        "revenue_range": _str(revenue.get("range")),
        "hq_street": _str(aget("address") or aget("street")),
        "hq_city": _str(aget("city")),
        "hq_state": _str(aget("state")),
        "hq_country": _str(aget("country")),
        "hq_postal_code": _str(aget("zipcode") or aget("postalcode")),
    }


def _record_code(rec: dict) -> int | None:
    for key in ("code", "error_code", "errorCode"):
        v = rec.get(key)
        if v is not None:
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    err = rec.get("error")
    if isinstance(err, dict) and err.get("code") is not None:
        try:
            return int(err["code"])
        except (TypeError, ValueError):
            return None
    return None


def _record_reason(rec: dict) -> str | None:
    err = rec.get("error")
    if isinstance(err, dict):
        err = err.get("message") or err.get("error")
    text = err or rec.get("message") or rec.get("details")
    return str(text)[:300] if text else None


def parse_result(rec: Any, external_id: str | None = None) -> tuple[EnrichmentResult | None, int | None]:
    """One Leadspace result record -> (EnrichmentResult, None), or (None, 427) for a record that was
    not processed because credits ran out."""
    if not isinstance(rec, dict):
        return EnrichmentResult(str(external_id or ""), "error", reason="Leadspace returned an unreadable record."), None
    ext = rec.get("external_id")
    ext = str(ext) if ext is not None else (external_id or "")
    if rec.get("status") == "success" and "code" not in rec and "error" not in rec:
        code = None  # the common case: skip the error-code probing
    else:
        code = _record_code(rec)
    if code == CODE_INSUFFICIENT_CREDITS:
        return None, CODE_INSUFFICIENT_CREDITS
    if rec.get("status") == "failure" or code is not None:
        reason = _record_reason(rec)
        if code == CODE_INVALID_INPUT:
            return EnrichmentResult(ext, "invalid_input", reason=reason or "Leadspace said the input is invalid."), None
        return EnrichmentResult(ext, "error", reason=reason or (
            "Leadspace had an internal error for this record." if code == CODE_INTERNAL_ERROR
            else "Leadspace could not enrich this record.")), None
    data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
    company = data.get("company") if isinstance(data.get("company"), dict) else None
    status_text = str(data.get("enrichment_status") or "")
    if not company or status_text == "Not Enriched":
        return EnrichmentResult(ext, "not_matched", reason="Leadspace found no matching company."), None
    confidence = (company.get("matching_confidence") or {}).get("level") if isinstance(
        company.get("matching_confidence"), dict) else None
    if confidence not in CONFIDENCE_LEVELS:
        confidence = None
    return EnrichmentResult(ext, "enriched", confidence, company_from_payload(company)), None


def _credits_error(done: int, partial: list[EnrichmentResult]) -> InsufficientCreditsError:
    if done:
        msg = (f"Your Leadspace account ran out of credits after {done} profiles were enriched in this run. "
               "Add credits; the next run continues with the profiles not enriched yet.")
    else:
        msg = ("Your Leadspace account has run out of credits. Add credits; the next run continues "
               "with the profiles not enriched yet.")
    err = InsufficientCreditsError(msg, status=427, vendor=VENDOR)
    err.partial_results = partial
    return err


class LeadspaceClient(VendorClient):
    vendor = VENDOR
    default_base_url = DEFAULT_BASE_URL

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limits: Any = True,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        timeout: Any = None,
        retry: RetryPolicy | None = None,
        rand: Callable[[], float] | None = None,
        **_ignored: Any,
    ) -> None:
        self._init_http(api_key, {"Authorization": f"Bearer {api_key}"}, base_url=base_url, transport=transport,
                        rate_limits=rate_limits, sleep=sleep, clock=clock, timeout=timeout, retry=retry, rand=rand)


    def _on_error(self, resp: httpx.Response) -> ConnectorError | None:
        status = resp.status_code
        if status == 401:
            return AuthError("Leadspace rejected the token (wrong or expired). Check the Leadspace token.",
                             status=401, vendor=VENDOR)
        if status == 427:
            return _credits_error(0, [])
        said = _envelope_text(resp)
        if status == 400:
            return RecordRejectedError("Leadspace rejected the request." + (f" Leadspace said: {said}" if said else ""),
                                       status=400, vendor=VENDOR)
        if status == 404:
            return VendorError("Leadspace no longer has these bulk results (unknown or expired id).",
                               status=404, vendor=VENDOR)
        return None

    def verify(self) -> VerifyResult:
        try:
            resp = self.http.post(SINGLE_PATH, json={}, ok=(200, 400), on_error=self._on_error)
        except ConnectorError as exc:
            return VerifyResult(False, exc.user_message, exc.detail)
        if resp.status_code == 400:
            return VerifyResult(True, "Connected to Leadspace. The token was accepted (no credits used).",
                                _envelope_text(resp) or None)
        return VerifyResult(True, "Connected to Leadspace. The token was accepted.", None)

    # ------------------------------------------------------------ single
    def enrich_single(self, rec: CompanyInput) -> EnrichmentResult:
        if not (rec.name or "").strip():
            return EnrichmentResult(str(rec.external_id), "invalid_input",
                                    reason="A company name is required for enrichment.")
        resp = self.http.post(SINGLE_PATH, json=rec.to_request(), ok=(200, 400), on_error=self._on_error)
        if resp.status_code == 400:
            said = _envelope_text(resp)
            return EnrichmentResult(str(rec.external_id), "invalid_input",
                                    reason=f"Leadspace said the input is invalid: {said}" if said
                                    else "Leadspace said the input is invalid.")
        result, code = parse_result(self.http.json(resp), str(rec.external_id))
        if code == CODE_INSUFFICIENT_CREDITS or result is None:
            raise _credits_error(0, [])
        result.external_id = str(rec.external_id)
        return result

    # ------------------------------------------------------------ bulk
    def submit_bulk(self, records: list[CompanyInput]) -> str:
        if not records:
            raise ValueError("submit_bulk needs at least one record")
        if len(records) > MAX_BULK_RECORDS:
            raise ValueError(f"a Leadspace bulk takes at most {MAX_BULK_RECORDS} records")
        resp = self.http.post(BULK_PATH, json={"data": [r.to_request() for r in records]}, ok=(200, 201, 202),
                              on_error=self._on_error)
        body = self.http.json(resp)
        ref = body.get("id") if isinstance(body, dict) else None
        if not ref:
            raise VendorError("Leadspace accepted the bulk but gave no results id.", vendor=VENDOR,
                              detail=self.http.redact(resp.text[:300]))
        return str(ref).rstrip("/").rsplit("/", 1)[-1]

    def poll_bulk(self, bulk_id: str) -> list[EnrichmentResult] | None:
        resp = self.http.get(f"{RESULTS_PREFIX}{bulk_id}", ok=(200, 204), on_error=self._on_error)
        if resp.status_code == 204 or not resp.content:
            return None
        body = self.http.json(resp)
        records = body.get("results") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise VendorError("Leadspace returned bulk results we could not read.", vendor=VENDOR,
                              detail=self.http.redact(resp.text[:300]))
        results: list[EnrichmentResult] = []
        out_of_credits = False
        for rec in records:
            result, code = parse_result(rec)
            if code == CODE_INSUFFICIENT_CREDITS:
                out_of_credits = True
            elif result is not None:
                results.append(result)
        if out_of_credits:
            raise _credits_error(sum(1 for r in results if r.status == "enriched"), results)
        return results


def _envelope_text(resp: httpx.Response) -> str:
    try:
        body = json.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("error", "details") if body.get(k)]
    return ": ".join(parts)[:300]
